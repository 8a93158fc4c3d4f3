//! A switch on trial on Debian with systemd as PID 1: the watcher is a transient
//! systemd timer (`systemd-run --on-active`) whose service runs `blankslate
//! trial-expire`; nobody confirms, and the generation before is activated again by
//! itself; a switch confirmed in time stays and its timer is stopped. The checks are
//! the probe's `trial` phase (`vm-tests/src/vmtest-probe.sh`).
//!
//! Run with `cargo test -p blankslate-vm-tests -- --ignored --nocapture debian`.

use std::time::Duration;

use blankslate_vm_tests::debian::{self, Route};
use blankslate_vm_tests::{self as vm, Result};

const LIMIT: Duration = Duration::from_secs(900);

#[test]
#[ignore = "boots Debian under QEMU: cargo test -p blankslate-vm-tests -- --ignored"]
fn debian_a_switch_on_trial_is_watched_by_a_systemd_timer() -> Result<()> {
    let work = vm::work_dir("debian-trial")?;
    let disk = debian::disk(&work)?;
    let volume = format!("LABEL={}", debian::LABEL);
    let boot = debian::boot(Route::Own, &work, &disk, &volume, "vmtest.phase=trial", None, LIMIT)?;
    println!("debian trial: {:.1} s in QEMU", boot.elapsed.as_secs_f64());
    boot.expect_powered_off("a switch on trial under systemd")
}
