//! Switching generations: a switch and reboot, a power cut during a switch, and the
//! fallbacks of an unconfirmed switch and of a boot that never gets good.

#[allow(clippy::wildcard_imports)]
use super::*;

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
