//! A UEFI machine with an encrypted disk, adopted as the README's walkthrough says:
//! OVMF and GRUB on the disk boot the installed Debian (ESP at /boot/efi, /boot on its
//! own partition, LUKS2 with LVM holding the root); `blankslate adopt` on it with
//! dracut (route b), GRUB's entry from the package's `42_blankslate`; the first boot
//! of blankslate is a one-time entry (`grub-reboot`) that fails on purpose, and the
//! next power-on comes back to the old system by itself; then blankslate boots from
//! its entry and its checks pass, `update-grub` there (as the admin runs it and as a
//! kernel's installation does) writes the grub.cfg the old system wrote, blankslate
//! becomes GRUB's saved default and boots by itself, the default goes back to Debian,
//! and the old system still boots from the grub.cfg written on blankslate.
//!
//! Run with `cargo test -p blankslate-vm-tests --test uefi -- --ignored --nocapture`.

use std::time::{Duration, Instant};

use blankslate_vm_tests::uefi::{self, Layout};
use blankslate_vm_tests::{Boot, Result};

/// OVMF, GRUB and Debian under TCG; a loaded machine is slower.
const LIMIT: Duration = Duration::from_secs(900);
const DEBIAN_ENTRY: &str = "Booting `Debian GNU/Linux'";
const BLANKSLATE_ENTRY: &str = "Booting `blankslate, with Linux";

fn expect(boot: &Boot, what: &str, entry: &str, ends: &str) -> Result<()> {
    if !boot.log.contains(entry) {
        return Err(format!("{what}: GRUB did not say {entry:?}\n--- serial log tail ---\n{}", boot.tail(40)));
    }
    let failed: Vec<&str> = boot.log.lines().filter(|l| l.contains("VMTEST FAIL")).collect();
    if boot.status != Some(0) || !boot.passed() || !failed.is_empty() || !boot.log.contains(ends) {
        return Err(format!(
            "{what}: QEMU status {:?}{}, PASS {}, {ends:?} {}\nfailed checks: {failed:#?}\n--- serial log tail ---\n{}",
            boot.status,
            if boot.timed_out { " (timed out)" } else { "" },
            boot.passed(),
            if boot.log.contains(ends) { "seen" } else { "missing" },
            boot.tail(40)
        ));
    }
    println!("{what}: {:.1} s in QEMU", boot.elapsed.as_secs_f64());
    Ok(())
}

#[test]
#[ignore = "boots VMs: cargo test -p blankslate-vm-tests --test uefi -- --ignored"]
fn a_uefi_machine_with_an_encrypted_disk_is_adopted_and_falls_back_by_itself() -> Result<()> {
    let started = Instant::now();
    let machine = uefi::install("uefi", Layout::LvmOnLuks, LIMIT)?;
    println!("installer: {:.1} s in QEMU", machine.installer_elapsed.as_secs_f64());

    let installed = machine.power_on("installed broken-first", None, LIMIT)?;
    expect(&installed, "the installed Debian, adopted", DEBIAN_ENTRY, "reboot: Restarting system")?;

    // The one-time entry fails: blankslate's initrd service finds no volume by the
    // label, and systemd in the initrd enters emergency mode, where the machine would
    // stay until someone resets it.
    let broken = machine.power_on("broken", Some("emergency mode"), Duration::from_secs(300))?;
    if broken.status.is_some() || !broken.log.contains(BLANKSLATE_ENTRY) || !broken.log.contains("LABEL=persist") {
        return Err(format!(
            "the broken first try did not stop in emergency mode with blankslate's error naming LABEL=persist \
             (QEMU status {:?}{}):\n{}",
            broken.status,
            if broken.timed_out { ", timed out" } else { "" },
            broken.tail(40)
        ));
    }
    println!("the broken first try: {:.1} s to emergency mode", broken.elapsed.as_secs_f64());

    let fallback = machine.power_on("fallback", None, LIMIT)?;
    expect(&fallback, "after the reset, the old system by itself", DEBIAN_ENTRY, "reboot: Restarting system")?;

    let blankslate = machine.power_on("blankslate", None, LIMIT)?;
    expect(&blankslate, "blankslate from its entry, update-grub there", BLANKSLATE_ENTRY, "reboot: Restarting system")?;

    let default = machine.power_on("blankslate-default", None, LIMIT)?;
    expect(&default, "blankslate as GRUB's saved default", BLANKSLATE_ENTRY, "reboot: Restarting system")?;

    let old = machine.power_on("old", None, LIMIT)?;
    expect(&old, "the old system, still", DEBIAN_ENTRY, "reboot: Power down")?;
    println!("the whole scenario: {:.1} s", started.elapsed().as_secs_f64());
    Ok(())
}

/// The same walkthrough with encryption and no LVM: the root on a LUKS2 partition,
/// blankslate's volume on a LUKS2 partition of its own, which dracut opens by its UUID on
/// blankslate's entry. Its first try works: the fallback is the other test's.
#[test]
#[ignore = "boots VMs: cargo test -p blankslate-vm-tests --test uefi -- --ignored"]
fn a_uefi_machine_with_luks_and_no_lvm_boots_blankslate_from_an_encrypted_partition() -> Result<()> {
    let started = Instant::now();
    let machine = uefi::install("uefi-luks", Layout::Luks, LIMIT)?;
    println!("installer (LUKS, no LVM): {:.1} s in QEMU", machine.installer_elapsed.as_secs_f64());

    let installed = machine.power_on("installed", None, LIMIT)?;
    expect(&installed, "the installed Debian (LUKS, no LVM), adopted", DEBIAN_ENTRY, "reboot: Restarting system")?;

    let blankslate = machine.power_on("blankslate", None, LIMIT)?;
    expect(&blankslate, "blankslate from a LUKS partition", BLANKSLATE_ENTRY, "reboot: Restarting system")?;
    println!("the whole scenario (LUKS, no LVM): {:.1} s", started.elapsed().as_secs_f64());
    Ok(())
}
