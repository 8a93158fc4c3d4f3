//! Boot scenarios: each builds a persistent disk, boots the static binary as `/init`
//! under QEMU, and checks the guest's markers, QEMU's isa-debug-exit status and the
//! disk afterwards. They are `#[ignore]`d so that `cargo test --workspace` (`./test`)
//! does not boot VMs; run them with
//! `cargo test -p blankslate-vm-tests -- --ignored --nocapture` (as root; `--nocapture`
//! shows the timings).

use std::path::PathBuf;
use std::time::Duration;

use blankslate_vm_tests::{self as vm, Boot, Result, Volume};

const LIMIT: Duration = Duration::from_secs(90);

/// The declaration every scenario boots: a tmpfs root, /etc from the store (with a
/// user for the owner checks), busybox from the volume read-only, one private
/// directory. `motd` tells generations apart.
fn declaration(motd: &str) -> String {
    format!(
        r#"version = 1

[root]
size = "64M"
mode = "0755"

[persist."/persist"]
directories = [
  {{ directory = "/bin", options = ["ro"] }},
  {{ directory = "/var/lib/data", user = "tester", group = "tester", mode = "0700" }},
]

[etc."hosts"]
text = "127.0.0.1 localhost vmtest\n"

[etc."motd"]
text = "{motd}\n"

[etc."passwd"]
text = "root:x:0:0:root:/root:/bin/sh\ntester:x:1000:1000::/home/tester:/bin/sh\n"

[etc."group"]
text = "root:x:0:\ntester:x:1000:\n"
"#
    )
}

/// The guest's checks of a first boot (scenario a), shared by the others.
const FIRST_BOOT_CHECKS: &str = r#"
check root-is-tmpfs grep -q '^[^ ]* / tmpfs ' /proc/mounts
check etc-hosts-is-a-link [ "$(readlink /etc/hosts)" = /etc/static/hosts ]
check etc-hosts-content grep -q vmtest /etc/hosts
check etc-static-in-store sh -c 'readlink /etc/static | grep -q "^/var/lib/blankslate/store/.*-etc/etc$"'
check data-mounted grep -q ' /var/lib/data ' /proc/mounts
check data-owner-mode [ "$(stat -c '%u:%g %a' /var/lib/data)" = "1000:1000 700" ]
check bin-read-only sh -c '! touch /bin/probe 2>/dev/null'
check volume-mounted grep -q ' /persist ext4 ' /proc/mounts
check store-read-only sh -c '! touch /var/lib/blankslate/probe 2>/dev/null'
check booted-recorded sh -c 'readlink /run/blankslate/booted | grep -q "^/var/lib/blankslate/store/.*-generation$"'
check boot-json grep -q '"generation":' /run/blankslate/boot.json
check proc-sys-dev-moved sh -c '[ -e /proc/self ] && [ -d /sys/kernel ] && [ -c /dev/null ]'
check init-is-pid-1 [ "$$" = 1 ]
check audit-clean audit_exits 0
"#;

struct Scenario {
    work: PathBuf,
    disk: PathBuf,
}

/// A disk holding busybox, `script` as the init and generation(s) of the declaration.
fn prepare(name: &str, script: &str, generations: &[&str]) -> Result<Scenario> {
    let work = vm::work_dir(name)?;
    let volume = Volume::new(&work, &vm::guest_script(script))?;
    for (n, motd) in generations.iter().enumerate() {
        volume.build(&declaration(motd), &format!("generation-{}", n + 1))?;
    }
    let disk = work.join("disk.img");
    volume.make_disk(&disk, "bsvol")?;
    Ok(Scenario { work, disk })
}

fn report(name: &str, boot: &Boot) {
    eprintln!(
        "scenario {name}: QEMU ran {:.2} s; kernel uptime at the test init {}; /init to exec {} (of it modules and \
         disk wait {})",
        boot.elapsed.as_secs_f64(),
        boot.init_uptime().map_or_else(|| "?".into(), |s| format!("{s:.2} s")),
        boot.activation_ms().map_or_else(|| "?".into(), |ms| format!("{ms:.1} ms")),
        boot.kernel_wait_ms().map_or_else(|| "?".into(), |ms| format!("{ms:.1} ms")),
    );
}

const APPEND: &str = "blankslate.persist=LABEL=bsvol blankslate.init=/bin/vmtest-init";

fn check(result: Result<()>) {
    if let Err(error) = result {
        panic!("{error}");
    }
}

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
    ;;
2)
    check persisted-survived [ "$(cat /var/lib/data/keep 2>&1)" = kept-across-boots ]
    check undeclared-gone [ ! -e /undeclared ]
    check undeclared-dir-gone [ ! -e /var/cache/x ]
    check owner-mode-again [ "$(stat -c '%u:%g %a' /var/lib/data)" = "1000:1000 700" ]
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

/// (e) A power cut in the middle of boot activation (a failpoint aborts `/init` after
/// the volume is mounted, after `/etc`, after the persisted paths): the kernel
/// panics (QEMU's exit 0 is not taken as success), and the next boot comes up
/// whole, with the data written before still there.
#[test]
#[ignore = "boots QEMU: cargo test -p blankslate-vm-tests -- --ignored (as root)"]
fn a_crash_during_boot_activation_loses_nothing() {
    let script = r#"
case "$vmtest_phase" in
1) check write-persisted sh -c 'echo before-the-crash > /var/lib/data/keep' ;;
*) check persisted-survived [ "$(cat /var/lib/data/keep 2>&1)" = before-the-crash ]
   check data-owner-mode [ "$(stat -c '%u:%g %a' /var/lib/data)" = "1000:1000 700" ]
   check etc-hosts-is-a-link [ "$(readlink /etc/hosts)" = /etc/static/hosts ] ;;
esac
"#;
    check((|| {
        let s = prepare("crash-during-boot", script, &["generation-one"])?;
        let first = vm::boot(&s.work, &s.disk, &format!("{APPEND} vmtest_phase=1"), None, LIMIT)?;
        first.expect_pass("first boot")?;
        for n in 1..=3 {
            let point = format!("boot-step#{n}");
            let crashed = vm::boot(&s.work, &s.disk, &format!("{APPEND} BLANKSLATE_FAILPOINT={point}"), None, LIMIT)?;
            report(&format!("crash-during-boot ({point})"), &crashed);
            let aborted = crashed.log.contains(&format!("blankslate: failpoint {point}: aborting"));
            if crashed.timed_out || !aborted || crashed.log.contains("VMTEST PASS") {
                return Err(format!("{point}: expected the boot to abort there\n{}", crashed.tail(30)));
            }
            let after = vm::boot(&s.work, &s.disk, &format!("{APPEND} vmtest_phase=2"), None, LIMIT)?;
            report(&format!("crash-during-boot (boot after {point})"), &after);
            after.expect_pass(&format!("the boot after a crash at {point}"))?;
        }
        Ok(())
    })());
}

/// (f) The declared init is not in the new root: the error says so and what to do,
/// and an emergency shell starts from the new root (busybox is persisted), not a panic.
#[test]
#[ignore = "boots QEMU: cargo test -p blankslate-vm-tests -- --ignored (as root)"]
fn a_missing_init_gives_an_emergency_shell() {
    check((|| {
        let s = prepare("missing-init", "check should-not-run false", &["generation-one"])?;
        let append = "blankslate.persist=LABEL=bsvol blankslate.init=/sbin/nothere";
        let boot = vm::boot(&s.work, &s.disk, append, Some("built-in shell"), LIMIT)?;
        report("missing-init", &boot);
        let expected = [
            "blankslate: boot failed: cannot start /sbin/nothere: not found",
            "blankslate: what to do: /sbin/nothere is not in the new root",
            "blankslate: starting an emergency shell (/bin/sh)",
        ];
        let missing: Vec<&str> = expected.iter().copied().filter(|line| !boot.log.contains(line)).collect();
        if boot.timed_out || !missing.is_empty() || boot.log.contains("Kernel panic") {
            return Err(format!("missing init: expected {missing:?}\n--- serial log tail ---\n{}", boot.tail(30)));
        }
        Ok(())
    })());
}
