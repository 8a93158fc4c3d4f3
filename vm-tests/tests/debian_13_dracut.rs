//! Debian 13 through dracut's systemd initrd and `blankslate-initrd.service`: the
//! day-two lifecycle (`blankslate_vm_tests::lifecycle`) of the fourth suite and route.
//! It is the same as `debian.rs`'s three, in a program of its own so that
//! `vm-tests/run` can run it in the lane beside the UEFI machines, which would
//! otherwise end long before the Debian lane.
//!
//! Run with `cargo test -p blankslate-vm-tests --test debian_13_dracut -- --ignored --nocapture`.

use blankslate_vm_tests::Result;
use blankslate_vm_tests::debian::{Route, Suite};
use blankslate_vm_tests::lifecycle::lifecycle;

#[test]
#[ignore = "boots Debian under QEMU: cargo test -p blankslate-vm-tests -- --ignored"]
fn debian_13_through_dracut_and_the_initrd_service() -> Result<()> {
    lifecycle(Suite::Trixie, Route::Dracut)
}
