//! The plain boots: first boot, a reboot that keeps only declared state, a missing
//! device, choosing a generation on the command line, and the audit of a booted root.

#[allow(clippy::wildcard_imports)]
use super::*;

/// (a) First boot: tmpfs root, /etc linked from the store, the persisted directory
/// mounted with its declared owner and mode, the boot recorded. The volume is found by
/// its label (superblock scan: no udev in the initramfs).
#[test]
#[ignore = "boots QEMU: cargo test -p blankslate-vm-tests -- --ignored (as root)"]
fn first_boot() {
    check((|| {
        let s = prepare("first-boot", FIRST_BOOT_CHECKS, &["generation-one"])?;
        let boot = vm::boot(&s.work, &s.disk, APPEND, None, LIMIT)?;
        report("first-boot", &boot);
        boot.expect_pass("first boot")
    })());
}

/// (b) Reboot: a file written to a persisted path survives (also seen on the disk with
/// debugfs); a file written elsewhere in the root is gone.
#[test]
#[ignore = "boots QEMU: cargo test -p blankslate-vm-tests -- --ignored (as root)"]
fn reboot_keeps_declared_state_only() {
    let script = r#"
case "$vmtest_phase" in
1)
    check write-persisted sh -c 'echo kept-across-boots > /var/lib/data/keep'
    check write-undeclared sh -c 'echo lost > /undeclared && mkdir -p /var/cache/x && echo lost > /var/cache/x/f'
    check audit-finds-undeclared audit_exits 1
    check audit-lists-undeclared grep -Eq 'file +/undeclared$' /run/audit.txt
    check audit-ignores-cache sh -c '! grep -q /var/cache/x /run/audit.txt'
    ;;
2)
    check persisted-survived [ "$(cat /var/lib/data/keep 2>&1)" = kept-across-boots ]
    check undeclared-gone [ ! -e /undeclared ]
    check undeclared-dir-gone [ ! -e /var/cache/x ]
    check owner-mode-again [ "$(stat -c '%u:%g %a' /var/lib/data)" = "1000:1000 700" ]
    check audit-clean-again audit_exits 0
    ;;
*)
    check phase-given false
    ;;
esac
"#;
    check((|| {
        let s = prepare("reboot", script, &["generation-one"])?;
        let first = vm::boot(&s.work, &s.disk, &format!("{APPEND} vmtest_phase=1"), None, LIMIT)?;
        report("reboot (first boot)", &first);
        first.expect_pass("reboot, first boot")?;
        let on_disk = vm::debugfs_cat(&s.disk, "/var/lib/data/keep")?;
        if on_disk.trim() != "kept-across-boots" {
            return Err(format!("after the first boot, the disk's /var/lib/data/keep holds {on_disk:?}"));
        }
        let second = vm::boot(&s.work, &s.disk, &format!("{APPEND} vmtest_phase=2"), None, LIMIT)?;
        report("reboot (second boot)", &second);
        second.expect_pass("reboot, second boot")
    })());
}

/// (c) Bad input: the persistent device does not exist. The boot says so with what to
/// do, does not panic the kernel, and halts; the disk is byte for byte unchanged.
#[test]
#[ignore = "boots QEMU: cargo test -p blankslate-vm-tests -- --ignored (as root)"]
fn missing_device_halts_without_touching_the_disk() {
    check((|| {
        let s = prepare("missing-device", "check should-not-run false", &["generation-one"])?;
        let before = std::fs::read(&s.disk).map_err(|e| e.to_string())?;
        let append = "blankslate.persist=LABEL=nosuchvolume blankslate.timeout=2 blankslate.init=/bin/vmtest-init";
        let boot = vm::boot(&s.work, &s.disk, append, Some("halted"), LIMIT)?;
        report("missing-device", &boot);
        let log = &boot.log;
        let fail = |why: &str| Err(format!("missing device: {why}\n--- serial log tail ---\n{}", boot.tail(30)));
        if boot.timed_out {
            return fail("timed out: no `halted` line");
        }
        if !log
            .contains("blankslate: boot failed: cannot find the persistent volume: LABEL=nosuchvolume did not appear")
        {
            return fail("no clear error naming the device");
        }
        if !log.contains("blankslate: what to do: check blankslate.persist=") {
            return fail("no advice");
        }
        if log.contains("Kernel panic") || log.contains("VMTEST") {
            return fail("the kernel panicked or the init ran");
        }
        if std::fs::read(&s.disk).map_err(|e| e.to_string())? != before {
            return fail("the disk image changed");
        }
        Ok(())
    })());
}

/// (d) Generations: the current one boots by default; `blankslate.generation=1` boots
/// the older one (a rollback from the boot loader), and each records what it booted.
#[test]
#[ignore = "boots QEMU: cargo test -p blankslate-vm-tests -- --ignored (as root)"]
fn a_generation_is_chosen_on_the_command_line() {
    let script = r#"
check motd [ "$(cat /etc/motd)" = "$vmtest_motd" ]
check booted-generation grep -q "\"generation\":$vmtest_generation," /run/blankslate/boot.json
"#;
    check((|| {
        let s = prepare("generations", script, &["generation-one", "generation-two"])?;
        let current = vm::boot(
            &s.work,
            &s.disk,
            &format!("{APPEND} vmtest_motd=generation-two vmtest_generation=2"),
            None,
            LIMIT,
        )?;
        report("generations (current)", &current);
        current.expect_pass("the current generation")?;
        let older = vm::boot(
            &s.work,
            &s.disk,
            &format!("{APPEND} blankslate.generation=1 vmtest_motd=generation-one vmtest_generation=1"),
            None,
            LIMIT,
        )?;
        report("generations (blankslate.generation=1)", &older);
        older.expect_pass("generation 1 from the command line")
    })());
}

/// A generation number that does not exist: a clear error, no panic.
#[test]
#[ignore = "boots QEMU: cargo test -p blankslate-vm-tests -- --ignored (as root)"]
fn an_unknown_generation_is_refused_clearly() {
    check((|| {
        let s = prepare("unknown-generation", "check should-not-run false", &["generation-one"])?;
        let boot = vm::boot(&s.work, &s.disk, &format!("{APPEND} blankslate.generation=7"), Some("halted"), LIMIT)?;
        report("unknown-generation", &boot);
        let expected = "blankslate: boot failed: cannot find generation 7";
        if boot.timed_out || !boot.log.contains(expected) || boot.log.contains("Kernel panic") {
            return Err(format!("expected `{expected}` and a halt\n--- serial log tail ---\n{}", boot.tail(30)));
        }
        Ok(())
    })());
}

/// (g) Drift: a managed /etc link replaced by a file and a persisted mount removed, on
/// the running system; the audit in the guest reports both, and exits 2 (broken).
#[test]
#[ignore = "boots QEMU: cargo test -p blankslate-vm-tests -- --ignored (as root)"]
fn the_audit_reports_drift() {
    let script = r#"
check audit-clean-first audit_exits 0
check replace-hosts sh -c 'rm /etc/hosts && echo "10.0.0.1 edited" > /etc/hosts'
check unmount-data umount /var/lib/data
check audit-exits-2 audit_exits 2
check reports-hosts grep -Eq 'replaced-by-file +/etc/hosts:' /run/audit.txt
check reports-data grep -Eq 'not-mounted +/var/lib/data:' /run/audit.txt
"#;
    check((|| {
        let s = prepare("drift", script, &["generation-one"])?;
        let boot = vm::boot(&s.work, &s.disk, APPEND, None, LIMIT)?;
        report("drift", &boot);
        boot.expect_pass("drift")
    })());
}
