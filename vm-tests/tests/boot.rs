//! Boot scenarios: each builds a persistent disk, boots the static binary as `/init`
//! under QEMU, and checks the guest's markers, QEMU's isa-debug-exit status and the
//! disk afterwards. They are `#[ignore]`d so that `cargo test --workspace` (`./test`)
//! does not boot VMs; run them with
//! `cargo test -p blankslate-vm-tests -- --ignored --nocapture` (as root; `--nocapture`
//! shows the timings).

use std::path::{Path, PathBuf};
use std::time::Duration;

use blankslate_vm_tests::{self as vm, Boot, Result, Volume, check, report};

const LIMIT: Duration = Duration::from_secs(90);

/// The declaration every scenario boots: a tmpfs root, /etc from the store (with a
/// user for the owner checks), busybox and blankslate from the volume read-only, one
/// private directory, and the declarations the guest switches to. `motd` tells
/// generations apart.
fn declaration(motd: &str) -> String {
    declaration_with(motd, "", "")
}

/// The second generation of the switch scenarios: one more /etc entry and one more
/// persisted directory.
fn declaration_two() -> String {
    declaration_with(
        "generation-two",
        "\n  { directory = \"/var/lib/added\", mode = \"0750\" },",
        "\n[etc.\"added.conf\"]\ntext = \"added\\n\"\n",
    )
}

fn declaration_with(motd: &str, extra_directories: &str, extra_etc: &str) -> String {
    format!(
        r#"version = 1

[root]
size = "64M"
mode = "0755"

[persist."/persist"]
directories = [
  {{ directory = "/bin", options = ["ro"] }},
  {{ directory = "/var/lib/data", user = "tester", group = "tester", mode = "0700" }},
  {{ directory = "/var/lib/declarations", options = ["ro"] }},{extra_directories}
]

[etc."hosts"]
text = "127.0.0.1 localhost vmtest\n"

[etc."motd"]
text = "{motd}\n"

[etc."passwd"]
text = "root:x:0:0:root:/root:/bin/sh\ntester:x:1000:1000::/home/tester:/bin/sh\n"

[etc."group"]
text = "root:x:0:\ntester:x:1000:\n"
{extra_etc}"#
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
    prepare_with(name, script, generations, |_| Ok(()))
}

/// [`prepare`], with `change` applied to the volume's directory before the disk is
/// made. The second generation's declaration is always at
/// `/var/lib/declarations/two.toml` for the guest to switch to.
fn prepare_with(
    name: &str,
    script: &str,
    generations: &[&str],
    change: impl FnOnce(&Path) -> Result<()>,
) -> Result<Scenario> {
    let work = vm::work_dir(name)?;
    let volume = Volume::new(&work, &vm::guest_script(script))?;
    for (n, motd) in generations.iter().enumerate() {
        volume.build(&declaration(motd), &format!("generation-{}", n + 1))?;
    }
    let declarations = volume.dir.join("var/lib/declarations");
    std::fs::create_dir_all(&declarations).map_err(|e| e.to_string())?;
    std::fs::write(declarations.join("two.toml"), declaration_two()).map_err(|e| e.to_string())?;
    change(&volume.dir)?;
    let disk = work.join("disk.img");
    volume.make_disk(&disk, "bsvol")?;
    Ok(Scenario { work, disk })
}

const APPEND: &str = "blankslate.persist=LABEL=bsvol blankslate.init=/bin/vmtest-init";

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

const SWITCH: &str = "blankslate switch /var/lib/declarations/two.toml";

/// (h) Switch in the guest to a second generation (one more /etc entry, one more
/// persisted directory), reboot into it, then boot the first one from the command line.
#[test]
#[ignore = "boots QEMU: cargo test -p blankslate-vm-tests -- --ignored (as root)"]
fn switch_reboot_and_boot_the_old_generation() {
    let script = format!(
        r#"
case "$vmtest_phase" in
1)
    check switch-succeeds exits 0 switch {SWITCH}
    check added-etc [ "$(cat /etc/added.conf)" = added ]
    check motd-two [ "$(cat /etc/motd)" = generation-two ]
    check added-mounted grep -q ' /var/lib/added ' /proc/mounts
    check added-mode [ "$(stat -c %a /var/lib/added)" = 750 ]
    check write-added sh -c 'echo written-in-two > /var/lib/added/f'
    check store-still-read-only sh -c '! touch /var/lib/blankslate/probe 2>/dev/null'
    check audit-clean-after-switch audit_exits 0
    ;;
2)
    check booted-two grep -q '"generation":2,' /run/blankslate/boot.json
    check motd-two [ "$(cat /etc/motd)" = generation-two ]
    check added-etc [ "$(cat /etc/added.conf)" = added ]
    check added-survived [ "$(cat /var/lib/added/f)" = written-in-two ]
    check audit-clean audit_exits 0
    ;;
3)
    check booted-one grep -q '"generation":1,' /run/blankslate/boot.json
    check motd-one [ "$(cat /etc/motd)" = generation-one ]
    check no-added-etc [ ! -e /etc/added.conf ]
    check added-not-mounted sh -c '! grep -q " /var/lib/added " /proc/mounts'
    check added-kept-on-volume [ "$(cat /persist/var/lib/added/f)" = written-in-two ]
    check audit-reports-the-stray audit_exits 1
    check stray-is-added grep -Eq 'directory +/persist/var/lib/added$' /run/audit.txt
    ;;
*)
    check phase-given false
    ;;
esac
"#
    );
    check((|| {
        let s = prepare("switch", &script, &["generation-one"])?;
        for (phase, extra, what) in [
            (1, "", "switch in the guest"),
            (2, "", "reboot into the new generation"),
            (3, " blankslate.generation=1", "boot the old generation"),
        ] {
            let boot = vm::boot(&s.work, &s.disk, &format!("{APPEND} vmtest_phase={phase}{extra}"), None, LIMIT)?;
            report(&format!("switch ({what})"), &boot);
            boot.expect_pass(what)?;
        }
        Ok(())
    })());
}

/// (i) The power is cut in the middle of a switch in the guest (the switch hangs at a
/// failpoint and QEMU is killed, so what the guest had not written out is lost):
/// the next boot comes up on exactly the old or the new generation, whole, and the
/// audit and `store verify` are clean. Before `current` moves it must be the old one;
/// after, the new one.
#[test]
#[ignore = "boots QEMU: cargo test -p blankslate-vm-tests -- --ignored (as root)"]
fn a_power_cut_during_a_switch_boots_one_whole_generation() {
    let script = format!(
        r#"
case "$vmtest_phase" in
crash)
    BLANKSLATE_FAILPOINT="$vmtest_failpoint" {SWITCH}
    check switch-should-have-hung false
    ;;
after)
    generation=$(sed -n 's/.*"generation":\([0-9]*\),.*/\1/p' /run/blankslate/boot.json)
    echo "VMTEST BOOTED $generation"
    case "$generation" in
    1) check whole-one sh -c '[ "$(cat /etc/motd)" = generation-one ] && [ ! -e /etc/added.conf ]' ;;
    2) check whole-two sh -c '[ "$(cat /etc/motd)" = generation-two ] && [ -e /etc/added.conf ] && grep -q " /var/lib/added " /proc/mounts' ;;
    *) check known-generation false ;;
    esac
    check audit-clean audit_exits 0
    # No object is partial; a temporary of the cut write is debris until the next
    # writer (here gc) removes it.
    blankslate store verify > /run/vmtest-verify-cut.txt 2>&1
    check store-has-no-partial-object grep -q ' checked, 0 corrupt, ' /run/vmtest-verify-cut.txt
    check gc-recovers exits 0 gc blankslate generations gc
    check store-verifies exits 0 verify blankslate store verify
    ;;
esac
"#
    );
    check((|| {
        let s = prepare("power-cut-during-switch", &script, &["generation-one"])?;
        let pristine = s.work.join("pristine.img");
        std::fs::copy(&s.disk, &pristine).map_err(|e| e.to_string())?;
        // (failpoint, the generation the next boot must come up on)
        let points =
            [("store-add:written#1", 1), ("generation:linked#1", 1), ("etc-step#3", 1), ("generation:current#1", 2)];
        for (point, expected) in points {
            std::fs::copy(&pristine, &s.disk).map_err(|e| e.to_string())?;
            let hang = format!("blankslate: failpoint {point}: hanging");
            let append = format!("{APPEND} vmtest_phase=crash vmtest_failpoint=hang:{point}");
            let crashed = vm::boot(&s.work, &s.disk, &append, Some(&hang), LIMIT)?;
            report(&format!("power cut during a switch (at {point})"), &crashed);
            if crashed.timed_out || !crashed.log.contains(&hang) {
                return Err(format!("{point}: the switch did not reach the failpoint\n{}", crashed.tail(30)));
            }
            let after = vm::boot(&s.work, &s.disk, &format!("{APPEND} vmtest_phase=after"), None, LIMIT)?;
            report(&format!("power cut during a switch (the boot after {point})"), &after);
            after.expect_pass(&format!("the boot after a power cut at {point}"))?;
            if !after.marked("VMTEST BOOTED ").any(|g| g.parse() == Ok(expected)) {
                return Err(format!(
                    "after a power cut at {point}, expected generation {expected}\n{}",
                    after.tail(30)
                ));
            }
        }
        Ok(())
    })());
}

/// The store object of generation `number`'s /etc in a volume directory (the
/// generation object's `etc` link).
fn etc_object(volume: &Path, number: u32) -> Result<PathBuf> {
    let link = volume.join(format!("var/lib/blankslate/profiles/system-{number}-link"));
    let generation = std::fs::canonicalize(&link).map_err(|e| format!("{}: {e}", link.display()))?;
    std::fs::canonicalize(generation.join("etc")).map_err(|e| format!("generation {number}'s etc: {e}"))
}

/// (j) Bad input: a corrupt store object, a declaration the volume does not fit, a
/// mistyped command line. Each boot stops with a clear error before anything is
/// linked or mounted from the volume and the volume's data is unchanged; the damaged
/// generation's predecessor still boots, and `store verify` names the damage.
#[test]
#[ignore = "boots QEMU: cargo test -p blankslate-vm-tests -- --ignored (as root)"]
fn bad_input_stops_the_boot_clearly_and_loses_nothing() {
    let script = r#"
check booted-one grep -q '"generation":1,' /run/blankslate/boot.json
check data-intact [ "$(cat /var/lib/data/keep)" = precious ]
check verify-finds-the-damage exits 1 verify blankslate store verify
check verify-names-the-object grep -q "^corrupt: .*-etc: content hashes to" /run/verify.txt
"#;
    check((|| {
        let s = prepare_with("bad-input", script, &["generation-one", "generation-two"], |volume| {
            let data = volume.join("var/lib/data");
            std::fs::create_dir_all(&data).map_err(|e| e.to_string())?;
            std::fs::write(data.join("keep"), "precious\n").map_err(|e| e.to_string())?;
            // Generation 2's /etc/motd, changed behind the store's back.
            let motd = etc_object(volume, 2)?.join("etc/motd");
            sh_ok(&format!("chmod u+w '{0}' && echo tampered > '{0}' && chmod 0444 '{0}'", motd.display()))
        })?;
        let before = vm::debugfs_cat(&s.disk, "/var/lib/data/keep")?;
        let halted = |what: &str, append: &str, expected: &str| -> Result<()> {
            let boot = vm::boot(&s.work, &s.disk, append, Some("halted"), LIMIT)?;
            report(what, &boot);
            if boot.timed_out || !boot.log.contains(expected) || boot.log.contains("Kernel panic") {
                return Err(format!("{what}: expected `{expected}` and a halt\n{}", boot.tail(30)));
            }
            if boot.log.contains("VMTEST") {
                return Err(format!("{what}: the init ran\n{}", boot.tail(30)));
            }
            Ok(())
        };
        halted(
            "bad input (corrupt store object)",
            APPEND,
            "blankslate: boot failed: cannot use generation 2: its store object ",
        )?;
        halted(
            "bad input (mistyped command line)",
            &format!("{APPEND} blankslate.generation=two"),
            "blankslate: boot failed: cannot understand the kernel command line: `blankslate.generation=two`: a \
             generation is a number",
        )?;
        if vm::debugfs_cat(&s.disk, "/var/lib/data/keep")? != before {
            return Err("a failed boot changed the volume's data".into());
        }
        let older = vm::boot(&s.work, &s.disk, &format!("{APPEND} blankslate.generation=1"), None, LIMIT)?;
        report("bad input (the generation before the damaged one)", &older);
        older.expect_pass("the generation before the damaged one")
    })());
}

/// (k) A persisted path the volume does not fit, as a user who owns it can make it: a
/// symlink where `/var/lib/data` (the user's directory) is declared. The boot goes on:
/// the path is that path's finding (on the console, in `boot.json`, in the audit),
/// every later path is mounted, and the symlink is left as it was, never followed.
#[test]
#[ignore = "boots QEMU: cargo test -p blankslate-vm-tests -- --ignored (as root)"]
fn a_path_the_volume_does_not_fit_is_its_finding_and_the_boot_goes_on() {
    let script = r#"
check data-not-mounted sh -c '! grep -q " /var/lib/data " /proc/mounts'
check later-path-mounted grep -q ' /var/lib/declarations ' /proc/mounts
check boot-json-names-it grep -q '"persist_findings":\[{"path":"/var/lib/data"' /run/blankslate/boot.json
check audit-reports-it audit_exits 2
check audit-names-it grep -q '/var/lib/data' /run/audit.txt
check symlink-kept [ "$(readlink /persist/var/lib/data)" = ../../bin ]
"#;
    check((|| {
        let s = prepare_with("volume-mismatch", script, &["generation-one"], |volume| {
            std::fs::create_dir_all(volume.join("var/lib")).map_err(|e| e.to_string())?;
            std::os::unix::fs::symlink("../../bin", volume.join("var/lib/data")).map_err(|e| e.to_string())
        })?;
        let boot = vm::boot(&s.work, &s.disk, APPEND, None, LIMIT)?;
        report("volume-mismatch", &boot);
        if !boot.log.contains("blankslate: warning: /var/lib/data: not brought in: ") {
            return Err(format!("no warning naming /var/lib/data on the console\n{}", boot.tail(30)));
        }
        boot.expect_pass("a path the volume does not fit")
    })());
}

fn sh_ok(script: &str) -> Result<()> {
    vm::run(std::process::Command::new("sh").args(["-ec", script])).map(drop)
}

/// (l) The same binary as a service of a systemd initrd (`blankslate boot --root
/// /sysroot`, as `blankslate-initrd.service` runs it), in an initramfs whose busybox
/// `/init` does systemd's part: with a tmpfs already on /sysroot (`root=tmpfs`), and
/// with nothing there (blankslate mounts the declared tmpfs). The booted system is
/// the same as with blankslate as `/init`, and the boot record crosses the switch in
/// `/run`.
#[test]
#[ignore = "boots QEMU: cargo test -p blankslate-vm-tests -- --ignored (as root)"]
fn as_a_systemd_initrd_service() {
    let script = format!(
        r#"{FIRST_BOOT_CHECKS}
check root-size sh -c 'df -k / | tail -n 1 | grep -Eq " $vmtest_root_kib +[0-9]+ +[0-9]+ "'
"#
    );
    check((|| {
        let s = prepare("systemd-initrd-service", &script, &["generation-one"])?;
        let initrd = vm::service_initrd()?;
        // systemd's tmpfs is used as it is (the stand-in mounts 48 MiB); on an empty
        // /sysroot, blankslate mounts the declared one ([root] size = "64M").
        for (sysroot, kib, what) in [("tmpfs", 49152, "root=tmpfs"), ("none", 65536, "nothing on /sysroot")] {
            let append = format!("{APPEND} vmtest_sysroot={sysroot} vmtest_root_kib={kib}");
            let boot = vm::boot_initrd(&initrd, &s.work, &s.disk, &append, None, LIMIT)?;
            report(&format!("systemd initrd service ({what})"), &boot);
            boot.expect_pass(&format!("as a systemd initrd service ({what})"))?;
            if !boot.log.contains("systemd switches into /sysroot") {
                return Err(format!("{what}: no summary line from the service\n{}", boot.tail(30)));
            }
        }
        Ok(())
    })());
}

/// Whether the human `generations list` of the guest marks generation `$1` with `$2`
/// in the column of `$3` (1 active, 2 boot default, 3 booted, 4 good).
const MARKED: &str = r#"
marked() {
    blankslate generations list | awk -v g="$1" -v m="$2" -v c="$3" '$0 ~ "^.... +" g "  " { found = substr($0, c, 1) == m } END { exit !found }'
}
"#;

/// (m) A switch on trial that nobody confirms falls back by itself, although the
/// session that started it is gone: the switch runs in a session of its own (as a
/// remote shell would), which is killed whole once the switch returned. The
/// watcher lives on in its own session and activates generation 1 again at the
/// deadline; `generations list` and the audit say so; the boot default never moved.
/// Then a switch confirmed in time stays, becomes the boot default, and the next
/// boot comes up on it.
#[test]
#[ignore = "boots QEMU: cargo test -p blankslate-vm-tests -- --ignored (as root)"]
fn an_unconfirmed_switch_falls_back_by_itself() {
    let script = format!(
        r#"{MARKED}
case "$vmtest_phase" in
1)
    setsid sh -c '{SWITCH} --confirm-within 15 > /run/switch.txt 2>&1; touch /run/switched; sleep 600' &
    session=$!
    n=0; while [ ! -e /run/switched ] && [ $n -lt 300 ]; do sleep 0.1; n=$((n + 1)); done
    sed 's/^/switch: /' /run/switch.txt
    check on-trial grep -q 'generation 2 is active on trial' /run/switch.txt
    check motd-two [ "$(cat /etc/motd)" = generation-two ]
    check default-still-one marked 1 '*' 2
    watcher=$(sed -n 's/.*"pid": \([0-9]*\).*/\1/p' /run/blankslate/trial.json)
    echo "VMTEST session $session watcher $watcher"
    kill -9 -"$session"
    # Gone once PID 1's shell reaps it (a zombie still answers kill -0).
    n=0; while kill -0 "$session" 2>/dev/null && [ $n -lt 50 ]; do sleep 0.1; n=$((n + 1)); done
    check session-gone sh -c "! kill -0 $session 2>/dev/null"
    check watcher-lives kill -0 "$watcher"
    # The watcher records the outcome after the whole activation (/etc first, then
    # the persisted paths): waiting for /etc alone would race with the unmounts.
    n=0; while ! grep -q '"state": "reverted"' /run/blankslate/trial.json && [ $n -lt 400 ]; do sleep 0.1; n=$((n + 1)); done
    check reverted-recorded grep -q '"state": "reverted"' /run/blankslate/trial.json
    check fell-back [ "$(cat /etc/motd)" = generation-one ]
    check added-etc-gone [ ! -e /etc/added.conf ]
    check added-unmounted sh -c '! grep -q " /var/lib/added " /proc/mounts'
    check active-one marked 1 A 1
    check default-one marked 1 '*' 2
    check list-says exits 0 list blankslate generations list
    check list-not-confirmed grep -q 'not confirmed in time: generation 1 activated again at' /run/list.txt
    check audit-says audit_exits 2
    check audit-not-confirmed grep -Eq 'not-confirmed +/run/blankslate/trial.json: generation 2 was switched to and not confirmed within 15 s' /run/audit.txt
    check switch-again exits 0 switch {SWITCH} --confirm-within 60
    check confirm exits 0 confirm blankslate confirm
    check confirmed grep -q 'generation 2 confirmed: it stays active and the boot default' /run/confirm.txt
    check default-two marked 2 '*' 2
    check motd-two-again [ "$(cat /etc/motd)" = generation-two ]
    ;;
2)
    check booted-two grep -q '"generation":2,' /run/blankslate/boot.json
    check motd-two [ "$(cat /etc/motd)" = generation-two ]
    check audit-clean audit_exits 0
    ;;
*)
    check phase-given false
    ;;
esac
"#
    );
    check((|| {
        let s = prepare("unconfirmed-switch", &script, &["generation-one"])?;
        let first = vm::boot(&s.work, &s.disk, &format!("{APPEND} vmtest_phase=1"), None, LIMIT)?;
        report("unconfirmed switch (switch, lose the session, fall back, confirm)", &first);
        first.expect_pass("a switch not confirmed in time")?;
        let second = vm::boot(&s.work, &s.disk, &format!("{APPEND} vmtest_phase=2"), None, LIMIT)?;
        report("unconfirmed switch (the boot after the confirmed one)", &second);
        second.expect_pass("the boot after a confirmed switch")
    })());
}

/// (n) A new boot default on trial for three boots never reaches the good mark
/// (`blankslate confirm`, which generation 1's init runs): its init reboots itself
/// once, blankslate's /init fails once (a wrong init, after the attempt was counted:
/// it reboots rather than halting), and once its init hangs until the harness, as a
/// watchdog would, resets the machine. Each ending boot is followed by the next as a
/// boot loader would, with the same command line. The fourth boot falls back to
/// generation 1 by itself, makes it the boot default again, and the audit and
/// `generations list` say what happened.
#[test]
#[ignore = "boots QEMU: cargo test -p blankslate-vm-tests -- --ignored (as root)"]
fn a_boot_that_never_gets_good_falls_back() {
    let script = format!(
        r#"{MARKED}
case "$(cat /etc/motd):$vmtest_phase" in
generation-one:setup)
    check confirm exits 0 confirm blankslate confirm
    check one-good grep -q 'generation 1 (booted) marked good' /run/confirm.txt
    check boot-trial exits 0 boot-trial {SWITCH} --boot --tries 3
    check list-on-trial sh -c 'blankslate generations list | grep -q "on boot trial: 0 of 3 boot(s) used, then falls back to generation 1"'
    check default-two marked 2 '*' 2
    ;;
generation-two:*)
    echo "VMTEST TRIAL BOOT $(sed -n 's/.*"attempt":\([0-9]*\).*/\1/p' /run/blankslate/boot.json)"
    case "$vmtest_misbehave" in
    reboot) echo "VMTEST TRIAL REBOOT"; sync; reboot -f ;;
    *) echo "VMTEST TRIAL HANG"; sleep 600 ;;
    esac
    ;;
generation-one:after)
    check booted-one grep -q '"generation":1,' /run/blankslate/boot.json
    check fallback-recorded grep -q '"fallback":{{"attempts":3,"from":2}}' /run/blankslate/boot.json
    check default-one marked 1 '*' 2
    check list exits 0 list blankslate generations list
    check list-failed grep -q 'failed its boot trial: 3 boot(s) without `blankslate confirm`; fell back to generation 1' /run/list.txt
    check list-fallback grep -q 'booted as the fallback: generation 2 failed its trial' /run/list.txt
    check audit-says audit_exits 2
    check audit-fallback grep -Eq 'boot-fallback +/run/blankslate/boot.json: generation 2 was tried 3 time' /run/audit.txt
    ;;
*)
    check expected-boot false
    ;;
esac
"#
    );
    check((|| {
        let s = prepare("boot-trial", &script, &["generation-one"])?;
        let setup = vm::boot(&s.work, &s.disk, &format!("{APPEND} vmtest_phase=setup"), None, LIMIT)?;
        report("boot trial (generation 1 confirms, puts generation 2 on trial)", &setup);
        setup.expect_pass("setting up the trial")?;

        let attempt = |n: u32, append: &str, stop: Option<&str>| -> Result<Boot> {
            let boot = vm::boot(&s.work, &s.disk, &format!("{APPEND} {append}"), stop, LIMIT)?;
            report(&format!("boot trial (attempt {n} of 3: {append})"), &boot);
            let counted = format!("blankslate: generation 2 is on trial: boot {n} of 3");
            if boot.timed_out || !boot.log.contains(&counted) || boot.log.contains("VMTEST PASS") {
                return Err(format!("attempt {n}: expected `{counted}` and no pass\n{}", boot.tail(30)));
            }
            Ok(boot)
        };
        let first = attempt(1, "vmtest_misbehave=reboot", None)?;
        if !first.log.contains("VMTEST TRIAL BOOT 1") || !first.rebooted() {
            return Err(format!("attempt 1: the init should have rebooted\n{}", first.tail(30)));
        }
        let second = attempt(2, "blankslate.init=/sbin/nothere", None)?;
        let reboots = "blankslate: this boot was an attempt of a generation on trial: rebooting in 5 s";
        if !second.log.contains("cannot start /sbin/nothere") || !second.log.contains(reboots) || !second.rebooted() {
            return Err(format!("attempt 2: the failed boot should have rebooted\n{}", second.tail(30)));
        }
        // No reboot, no good mark: the harness resets the machine, as a watchdog would.
        attempt(3, "vmtest_misbehave=hang", Some("VMTEST TRIAL HANG"))?;

        let after = vm::boot(&s.work, &s.disk, &format!("{APPEND} vmtest_phase=after"), None, LIMIT)?;
        report("boot trial (the fallback)", &after);
        let fell_back = "blankslate: generation 2 failed its trial (3 boot(s) without `blankslate confirm`): booting \
                         generation 1, the boot default again";
        if !after.log.contains(fell_back) {
            return Err(format!("expected `{fell_back}`\n{}", after.tail(30)));
        }
        after.expect_pass("the boot after three failed attempts")?;
        let record = vm::debugfs_cat(&s.disk, "/var/lib/blankslate/boot-trial.json")?;
        if !record.contains("\"failed\": true") || !record.contains("\"attempts\": 3") {
            return Err(format!("the volume's trial record: {record}"));
        }
        Ok(())
    })());
}

/// The net, across real reboots: the first boot writes what nothing declares and
/// saves it as the shutdown unit would (`net save`, with a path over `max_size` left
/// out); the next boot has lost it, lists it, restores it as it was, and restores it
/// once more under a new name with `--declare`, which persists it; the third boot has
/// the declared copy from the volume, and its save prunes the net to `keep = 2`.
#[test]
#[ignore = "boots QEMU: cargo test -p blankslate-vm-tests -- --ignored (as root)"]
fn the_net_brings_back_what_a_reboot_erased() {
    let net = "\n[net]\nkeep = 2\nmax_size = \"64K\"\n";
    let script = r#"
DECL=/var/lib/data/system.toml
case "$vmtest_phase" in
1)
    check write-forgotten sh -c 'mkdir -p /srv/forgot && echo notes > /srv/forgot/notes && chown -R 1000:1000 /srv/forgot && chmod 0600 /srv/forgot/notes'
    check write-big sh -c 'mkdir -p /opt && head -c 200000 /dev/zero > /opt/big'
    check save exits 0 save blankslate net save
    check save-left-out-big grep -q 'left out /opt[/a-z]*: over the net' /run/save.txt
    check net-root-only [ "$(stat -c '%u:%g %a' /var/lib/blankslate/net)" = "0:0 700" ]
    ;;
2)
    check forgotten-gone [ ! -e /srv ]
    check list exits 0 list blankslate net list
    check list-names-it grep -q '/srv/forgot (directory, 1 files)' /run/list.txt
    check restore exits 0 restore blankslate net restore /srv/forgot
    check restored-as-it-was [ "$(stat -c '%u:%g %a' /srv/forgot/notes) $(cat /srv/forgot/notes)" = "1000:1000 600 notes" ]
    check restore-never-replaces exits 2 again blankslate net restore /srv/forgot
    check declare exits 0 declare blankslate net restore /srv/forgot --to /srv/kept --declare --declaration $DECL
    check declared grep -q '"/srv/kept"' $DECL
    check audit-net-size sh -c 'blankslate audit --json > /run/audit.json; grep -q "\"catches\": 1" /run/audit.json'
    check save-again exits 0 save blankslate net save
    ;;
3)
    check kept-from-volume sh -c 'grep -q " /srv/kept " /proc/mounts && [ "$(cat /srv/kept/notes)" = notes ]'
    check save-third exits 0 save blankslate net save
    check pruned-to-two sh -c '[ "$(ls /var/lib/blankslate/net | wc -l)" = 2 ] && grep -q "pruned 000001-" /run/save.txt'
    ;;
*)
    check phase-given false
    ;;
esac
"#;
    check((|| {
        let work = vm::work_dir("net")?;
        let volume = Volume::new(&work, &vm::guest_script(script))?;
        let declaration = declaration_with("net", "", net);
        volume.build(&declaration, "generation-1")?;
        let data = volume.dir.join("var/lib/data");
        std::fs::create_dir_all(&data).map_err(|e| e.to_string())?;
        std::fs::write(data.join("system.toml"), &declaration).map_err(|e| e.to_string())?;
        let disk = work.join("disk.img");
        volume.make_disk(&disk, "bsvol")?;
        for phase in 1..=3 {
            let boot = vm::boot(&work, &disk, &format!("{APPEND} vmtest_phase={phase}"), None, LIMIT)?;
            report(&format!("net (boot {phase})"), &boot);
            boot.expect_pass(&format!("net, boot {phase}"))?;
        }
        Ok(())
    })());
}
