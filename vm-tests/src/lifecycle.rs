//! The day-two lifecycle of a Debian machine on blankslate, one suite and one boot
//! route at a time: six boots through a switch, `etc keep`, an `apt upgrade` with a
//! second kernel from the image's local repository, the previous generation with the
//! previous kernel, and the old kernel's purge. The probe unit in the guest
//! (`vmtest-probe.sh`) acts and checks in each boot; the host compares what must
//! survive across boots and reads the volume with debugfs.

use std::path::Path;
use std::time::Duration;

use crate::debian::{self, Entry, Route, Suite};
use crate::{self as vm, Boot, Result};

/// KVM boots Debian to multi-user.target in seconds, TCG in about 20 s here; a loaded
/// machine is slower.
pub const LIMIT: Duration = Duration::from_secs(900);

fn boot(entry: Entry<'_>, work: &Path, disk: &Path, phase: &str, extra: &str) -> Result<Boot> {
    let route = entry.route;
    let append = format!("vmtest.phase={phase} {extra}");
    let boot = debian::boot(entry, work, disk, &format!("LABEL={}", debian::LABEL), &append, None, LIMIT)?;
    boot.expect_powered_off(&format!("{} {} route, phase {phase}", entry.suite.name(), route.name()))?;
    // systemd cannot unmount /usr (it runs from it) but remounts it read-only: the
    // volume must need no journal replay at the next boot.
    vm::ext4_left_clean(disk)?;
    let facts = debian::facts(&boot);
    println!(
        "{} {} {phase}: {:.1} s in QEMU; blankslate activated in {} ms; systemd: {}",
        entry.suite.name(),
        route.name(),
        boot.elapsed.as_secs_f64(),
        boot.activation_ms().map_or_else(|| "?".into(), |ms| format!("{ms:.1}")),
        facts.get("startup").map_or("?", String::as_str),
    );
    Ok(boot)
}

fn same(what: &str, a: Option<&String>, b: Option<&String>) -> Result<()> {
    match (a, b) {
        (Some(a), Some(b)) if a == b && !a.is_empty() => Ok(()),
        _ => Err(format!("{what} differs across the reboot: {a:?} then {b:?}")),
    }
}

/// Six boots: first boot; a reboot (kept what is declared, lost the rest), where a
/// live `switch` makes a generation and day two installs two packages and keeps one's
/// /etc changes with `etc keep`; that generation (the switch's entry and the kept
/// package work, the other's lost conffile is the audit's `package-missing` until it
/// is back and kept), where apt upgrades the package and installs a second kernel
/// from the image's local repository, and the kernel hooks make its initramfs; the
/// first generation with the old kernel, from the command line; the new kernel with
/// that initramfs, read from the volume as a boot loader would, on the new
/// generation, where the old kernel is purged; and once more after that.
pub fn lifecycle(suite: Suite, route: Route) -> Result<()> {
    let work = vm::work_dir(&format!("debian-{}-{}", suite.name(), route.name()))?;
    let disk = debian::disk(suite, &work)?;
    let image = Entry::image(suite, route);
    let mut shares = Vec::new();
    let mut boot = |entry: Entry<'_>, phase: &str, extra: &str| {
        let boot = boot(entry, &work, &disk, phase, extra)?;
        shares.extend(debian::boot_share(&boot));
        Ok::<_, String>(debian::facts(&boot))
    };

    let first = boot(image, "first", "")?;
    // What passwd and useradd changed reached the volume (read without mounting it).
    let shadow = vm::debugfs_cat(&disk, "/etc/shadow")?;
    let password = first.get("root-password-after").ok_or("no root-password-after fact")?;
    if !shadow.lines().any(|l| l.starts_with(&format!("root:{password}:"))) {
        return Err(format!("the volume's /etc/shadow lacks root's new password:\n{shadow}"));
    }
    if !vm::debugfs_cat(&disk, "/etc/passwd")?.lines().any(|l| l.starts_with("alice:")) {
        return Err("the volume's /etc/passwd lacks alice".into());
    }

    let second = boot(image, "reboot", "")?;
    same("the SSH host key", first.get("hostkey"), second.get("hostkey"))?;
    same("/etc/machine-id", first.get("machine-id"), second.get("machine-id"))?;
    same("root's password", first.get("root-password-after"), second.get("root-password"))?;
    if vm::debugfs_cat(&disk, "/var/lib/vmtest-counter/count")?.trim() != "1" {
        return Err("persist add did not move the service's state into the volume".into());
    }

    let number = |fact: &str| -> Result<u32> {
        let value = second.get(fact).ok_or_else(|| format!("no {fact} fact"))?;
        value.parse().map_err(|_| format!("{fact} is {value:?}, not a generation number"))
    };
    let (switched, kept) = (number("switched-generation")?, number("daytwo-generation")?);
    if kept <= switched {
        return Err(format!("`etc keep` made generation {kept}, not one after the switch's {switched}"));
    }
    let kept = kept.to_string();
    let third = boot(image, "daytwo", "")?;
    same("the generation `etc keep` made", Some(&kept), third.get("generation"))?;

    // The boot loader's entry for the new kernel: its kernel and the initramfs its
    // hooks built, read from the volume's /boot.
    let new_kernel = third.get("new-kernel").ok_or("no new-kernel fact")?;
    let (_, expected_kernel) = debian::second_kernel(suite)?;
    same("the second kernel", Some(&expected_kernel), Some(new_kernel))?;
    let (vmlinuz, initrd) = (work.join("vmlinuz-new"), work.join("initrd-new"));
    let initrd_name = match route {
        Route::Own => format!("blankslate-initrd.img-{new_kernel}"),
        Route::Dracut => format!("initrd.img-{new_kernel}"),
    };
    vm::debugfs_dump(&disk, &format!("/boot/vmlinuz-{new_kernel}"), &vmlinuz)?;
    vm::debugfs_dump(&disk, &format!("/boot/{initrd_name}"), &initrd)?;
    let new = Entry { suite, route, from_volume: Some((&vmlinuz, &initrd)) };

    let fourth = boot(image, "old", "blankslate.generation=1")?;
    same("the generation asked for", Some(&"1".to_owned()), fourth.get("generation"))?;
    same("the old kernel", first.get("kernel"), fourth.get("kernel"))?;

    let fifth = boot(new, "upgraded", "")?;
    same("the kernel booted", Some(new_kernel), fifth.get("kernel"))?;
    let upgraded = third.get("upgraded-generation").ok_or("no upgraded-generation fact")?;
    same("the generation of the upgrade, after booting an old one", Some(upgraded), fifth.get("generation"))?;
    let sixth = boot(new, "purged", "")?;
    same("the kernel booted", Some(new_kernel), sixth.get("kernel"))?;
    let old_kernel = format!("vmlinuz-{}", first.get("kernel").ok_or("no kernel fact")?);
    if vm::debugfs_names(&disk, "/boot")?.contains(&old_kernel) {
        return Err(format!("the purged kernel's {old_kernel} is still in the volume's /boot"));
    }
    debian::print_boot_share(suite, route, &shares);
    Ok(())
}
