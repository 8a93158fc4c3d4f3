//! Boots that go wrong: a crash during activation, a missing init, bad input, a path
//! the volume does not fit.

#[allow(clippy::wildcard_imports)]
use super::*;

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
