//! Trials on Debian with systemd as PID 1, checked by the probe
//! (`vm-tests/src/vmtest-probe.sh`):
//! - a switch on trial: the watcher is a transient systemd timer (`systemd-run
//!   --on-active`) whose service runs `blankslate trial-expire`; nobody confirms, and
//!   the generation before is activated again by itself; a switch confirmed in time
//!   stays and its timer is stopped (phase `trial`);
//! - a boot on trial that never reaches its good mark: blankslate-boot-deadline.service
//!   reboots it, and the next boot falls back by itself (phases `deadline-*`).
//!
//! Run with `cargo test -p blankslate-vm-tests -- --ignored --nocapture debian`.

use std::time::Duration;

use blankslate_vm_tests::debian::{self, Entry, Route, Suite};
use blankslate_vm_tests::{self as vm, Result};

const LIMIT: Duration = Duration::from_secs(900);

#[test]
#[ignore = "boots Debian under QEMU: cargo test -p blankslate-vm-tests -- --ignored"]
fn debian_a_switch_on_trial_is_watched_by_a_systemd_timer() -> Result<()> {
    let work = vm::work_dir("debian-trial")?;
    let disk = debian::disk(Suite::Bookworm, &work)?;
    let volume = format!("LABEL={}", debian::LABEL);
    let boot = debian::boot(
        Entry::image(Suite::Bookworm, Route::Own),
        &work,
        &disk,
        &volume,
        "vmtest.phase=trial",
        None,
        LIMIT,
    )?;
    println!("debian trial: {:.1} s in QEMU", boot.elapsed.as_secs_f64());
    boot.expect_powered_off("a switch on trial under systemd")
}

/// The boot deadline of the scenario: far above the time this Debian takes to reach
/// its probe under TCG (about 20 s), so that the probe's checks run first.
const DEADLINE_S: u32 = 90;

/// A generation whose good mark never comes (blankslate-confirm waits for a network
/// that never comes up), booted on trial once: blankslate-boot-deadline.service
/// reboots it cleanly at the deadline, and the next boot falls back to the generation
/// confirmed before, with nobody at the console; `generations list` and the audit
/// say so.
#[test]
#[ignore = "boots Debian under QEMU: cargo test -p blankslate-vm-tests -- --ignored"]
fn debian_a_boot_never_confirmed_is_rebooted_by_its_deadline_and_falls_back() -> Result<()> {
    let work = vm::work_dir("debian-deadline")?;
    let disk = debian::disk(Suite::Bookworm, &work)?;
    let volume = format!("LABEL={}", debian::LABEL);
    let boot = |phase: &str| {
        let append = format!("vmtest.phase={phase} vmtest.deadline={DEADLINE_S}s");
        let boot =
            debian::boot(Entry::image(Suite::Bookworm, Route::Own), &work, &disk, &volume, &append, None, LIMIT)?;
        println!("debian {phase}: {:.1} s in QEMU", boot.elapsed.as_secs_f64());
        Ok::<_, String>(boot)
    };
    boot("deadline-arm")?.expect_powered_off("putting a generation on a boot trial")?;

    let trial = boot("deadline-trial")?;
    let said = format!(
        "generation 2 was not confirmed within {DEADLINE_S} s of booting: rebooting; the next boot falls back to \
         generation 1"
    );
    let failed: Vec<&str> = trial.marked("VMTEST FAIL ").collect();
    if trial.timed_out || !trial.passed() || !failed.is_empty() || !trial.log.contains(&said) || !trial.rebooted() {
        return Err(format!(
            "the boot on trial: expected the probe's checks, then `{said}` and a reboot; failed checks: {failed:?}\n\
             --- serial log tail ---\n{}",
            trial.tail(40)
        ));
    }
    // systemd rebooted it: the volume was left clean.
    vm::ext4_left_clean(&disk)?;

    boot("deadline-fallback")?.expect_powered_off("the boot after the deadline")
}
