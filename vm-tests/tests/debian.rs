//! Debian 12 and 13 with systemd on blankslate, through both boot routes: blankslate's own
//! initramfs switching into systemd, and dracut's systemd initrd running
//! `blankslate-initrd.service`. The image is adopted with `blankslate adopt`, as the
//! README's walkthrough does, and each machine goes through the day-two lifecycle
//! (`blankslate_vm_tests::lifecycle`). Debian 13 through dracut is the same lifecycle
//! in a program of its own (`debian_13_dracut.rs`), which `vm-tests/run` runs in the
//! lane beside the UEFI machines.
//!
//! Run with `cargo test -p blankslate-vm-tests -- --ignored --nocapture debian`.

use blankslate_vm_tests::debian::{self, Entry, Route, Suite};
use blankslate_vm_tests::lifecycle::{self, LIMIT};
use blankslate_vm_tests::{self as vm, Result};

#[test]
#[ignore = "boots Debian under QEMU: cargo test -p blankslate-vm-tests -- --ignored"]
fn debian_through_blankslates_own_initramfs() -> Result<()> {
    lifecycle::lifecycle(Suite::Bookworm, Route::Own)
}

#[test]
#[ignore = "boots Debian under QEMU: cargo test -p blankslate-vm-tests -- --ignored"]
fn debian_through_dracut_and_the_initrd_service() -> Result<()> {
    lifecycle::lifecycle(Suite::Bookworm, Route::Dracut)
}

#[test]
#[ignore = "boots Debian under QEMU: cargo test -p blankslate-vm-tests -- --ignored"]
fn debian_13_through_blankslates_own_initramfs() -> Result<()> {
    lifecycle::lifecycle(Suite::Trixie, Route::Own)
}

/// The volume never appears. blankslate's own initramfs names the device, and starts
/// the emergency shell it carries (busybox); dracut's systemd initrd fails the unit
/// with blankslate's message in its journal and enters emergency mode. Either way the
/// disk is not written: byte for byte the same afterwards.
/// `drivers` is the route's own advice on where the disk driver comes from.
fn missing_volume(route: Route, emergency: &str, drivers: &str) -> Result<()> {
    let work = vm::work_dir(&format!("debian-{}-missing-volume", route.name()))?;
    let disk = debian::disk(Suite::Bookworm, &work)?;
    let pristine = work.join("pristine.img");
    vm::run(std::process::Command::new("cp").arg("--sparse=always").arg(&disk).arg(&pristine))?;
    let volume = "LABEL=nosuchvolume";
    let boot = debian::boot(
        Entry::image(Suite::Bookworm, route),
        &work,
        &disk,
        volume,
        "blankslate.timeout=3",
        Some(emergency),
        LIMIT,
    )?;
    println!("{} with no volume: {:.1} s to {emergency:?}", route.name(), boot.elapsed.as_secs_f64());
    let expected = [
        "blankslate: boot failed: cannot find the persistent volume: LABEL=nosuchvolume did not appear within 3 s",
        drivers,
        "Nothing was written to any disk.",
        emergency,
    ];
    let missing: Vec<&str> = expected.iter().copied().filter(|line| !boot.log.contains(line)).collect();
    if boot.timed_out || !missing.is_empty() || boot.log.contains("Kernel panic") {
        return Err(format!("missing volume: expected {missing:?}\n--- serial log tail ---\n{}", boot.tail(40)));
    }
    vm::run(std::process::Command::new("cmp").arg(&disk).arg(&pristine))
        .map_err(|e| format!("the disk changed although the boot stopped before the volume: {e}"))?;
    Ok(())
}

#[test]
#[ignore = "boots Debian under QEMU: cargo test -p blankslate-vm-tests -- --ignored"]
fn debian_without_its_volume_gets_an_emergency_shell_from_the_initramfs() -> Result<()> {
    missing_volume(Route::Own, "built-in shell", "listed in blankslate.modules=")
}

#[test]
#[ignore = "boots Debian under QEMU: cargo test -p blankslate-vm-tests -- --ignored"]
fn debian_without_its_volume_enters_systemds_emergency_mode() -> Result<()> {
    missing_volume(Route::Dracut, "emergency mode", "in the initrd (dracut's --add-drivers)")
}
