//! The kill-point sweep (issue 17): every mutating command — `switch` both ways and
//! with `--test`/`--boot`, `rollback`, `generations gc`, `persist add`/`remove`/`sync`,
//! `repair`, `confirm`, `adopt`, and `boot --root` as a systemd initrd runs it — is
//! killed at every system call that changes something and given ENOSPC and EIO at
//! every one that writes (under strace), then recovered the natural way and checked:
//! exactly one generation, the mounts it declares, the boot default asked for, a
//! sound store, no temporaries, no data lost, no process left.
//!
//! The sweep itself takes minutes and is `#[ignore]`d: `.ci/run` runs it with
//! `cargo test --test crash_sweep -- --ignored --nocapture`. Its knobs are
//! environment variables: `BLANKSLATE_SWEEP_FIRST` and `_EVERY` (sampling beyond
//! the first points of each system call), `_EXAMPLES=N` (show the first N failing
//! points of each command and class, with how to reproduce each), `_ONLY=COMMAND`
//! and `_POINT=INJECT:SYSCALL:N` (run one point and show what happened),
//! `_WORKERS`. The other tests here show that the checker catches every class of
//! failure, so that a green sweep means something.

mod common;
use blankslate_test_support::{is_root, root_or_skip};
mod sweep;

use std::path::Path;
use std::process::Command;

use sweep::check::{self, Class, Failure};
use sweep::run::{self, Config, Ran};
use sweep::scenarios::{self, Scenario};
use sweep::trace::{self, Inject};
use sweep::world::{self, World};

/// Whether this machine can run the tests that mount and trace (root, strace);
/// with `BLANKSLATE_REQUIRE_TOOLS` a missing strace fails instead.
fn can_sweep(test: &str) -> bool {
    if !root_or_skip(&format!("{test} needs root (mount namespaces)")) {
        return false;
    }
    if !Path::new(trace::STRACE).exists() {
        assert!(
            std::env::var_os("BLANKSLATE_REQUIRE_TOOLS").is_none(),
            "{} is missing: apt-get install strace",
            trace::STRACE
        );
        eprintln!("{test}: skipped, {} is missing", trace::STRACE);
        return false;
    }
    true
}

fn scenario(name: &str) -> Scenario {
    scenarios::all().into_iter().find(|s| s.name == name).unwrap()
}

#[test]
#[ignore = "minutes of kill points; .ci/run runs it: cargo test --test crash_sweep -- --ignored --nocapture"]
fn every_mutating_command_survives_a_kill_or_an_error_at_any_system_call() {
    assert!(is_root(), "the sweep needs root (mount namespaces, loop devices)");
    assert!(Path::new(trace::STRACE).exists(), "{} is missing: apt-get install strace", trace::STRACE);
    let failing = run::sweep(&scenarios::all(), &Config::from_env());
    assert_eq!(failing, 0, "{failing} points (or clean runs) end in a wrong state: see the table above");
}

/// The classes a check finds, each once, in order.
fn classes(failures: &[Failure]) -> Vec<Class> {
    let mut found: Vec<Class> = failures.iter().map(|f| f.class).collect();
    found.sort();
    found.dedup();
    found
}

/// Plants one failure into a world that a clean `switch 2` left, and returns what
/// the check says then.
fn planted(worker: &world::Worker, plant: impl FnOnce(&World)) -> Vec<Failure> {
    let (world, expect) = run::after_clean_run(worker, &scenario("switch 1->2"));
    plant(&world);
    check::check(&world, &expect)
}

/// The directory of generation 2's `/etc` object in the store.
fn etc_object(world: &World) -> std::path::PathBuf {
    let generation = check::read_generation(&world.root, 2).unwrap();
    world.in_root("/var/lib/blankslate/store").join(generation.etc_object)
}

#[test]
fn the_checker_catches_each_failure_class() {
    if !can_sweep("the_checker_catches_each_failure_class") {
        return;
    }
    run::on_one_worker(&|worker| {
        let clean = planted(worker, |_| {});
        assert!(clean.is_empty(), "a clean switch passes: {clean:#?}");

        // A partial object under a real name, and one that /etc reads from.
        let found = planted(worker, |w| {
            let object = w.in_root("/var/lib/blankslate/store/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-etc");
            world::write_file(&object.join("manifest.json"), "{\"vers");
        });
        assert_eq!(classes(&found), [Class::PartialObject], "{found:#?}");
        let found = planted(worker, |w| {
            let motd = etc_object(w).join("etc/motd");
            std::fs::set_permissions(&motd, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
            std::fs::write(motd, "gen").unwrap();
        });
        assert!(classes(&found).contains(&Class::PartialObject), "{found:#?}");

        // Temporaries: an atomic write's, a staged entry, persist's journal.
        for (relative, in_volume) in [
            ("etc/.blankslate/.journal.json.tmp-77-0", false),
            ("etc/.motd.blankslate-new", false),
            ("var/lib/blankslate/store/.x-etc.tmp-77-0/f", false),
            (".blankslate/persist-journal.toml", true),
            ("var/log/.marker.tmp-77-1", true),
        ] {
            let found = planted(worker, |w| {
                let top = if in_volume { w.volume.clone() } else { w.root.clone() };
                world::write_file(&top.join(relative), "left\n");
            });
            assert_eq!(classes(&found), [Class::Temporary], "{relative}: {found:#?}");
        }

        // Mounts: one too many, one missing.
        let found = planted(worker, |w| {
            std::fs::create_dir_all(w.in_root("/srv/extra")).unwrap();
            world::mount_tmpfs(&w.in_root("/srv/extra"));
        });
        assert_eq!(classes(&found), [Class::Mounts], "{found:#?}");
        // The volume's data is all there: what the root does not show is a mount missing.
        let found = planted(worker, |w| world::unmount(&w.in_root("/var/log")).unwrap());
        assert_eq!(classes(&found), [Class::Mounts], "{found:#?}");

        // The boot default somewhere else than asked.
        let found = planted(worker, |w| {
            w.ok(&["switch", "--boot", "1"]);
        });
        assert_eq!(classes(&found), [Class::Generations], "{found:#?}");

        // Drift: a link replaced by a file, and a stray.
        let found = planted(worker, |w| {
            std::fs::remove_file(w.in_root("/etc/motd")).unwrap();
            std::fs::write(w.in_root("/etc/motd"), "mine\n").unwrap();
        });
        assert!(classes(&found).contains(&Class::Drift), "{found:#?}");
        assert!(!classes(&found).contains(&Class::PartialObject), "{found:#?}");
        let found = planted(worker, |w| std::fs::write(w.in_root("/etc/stray.conf"), "x\n").unwrap());
        assert_eq!(classes(&found), [Class::Drift], "{found:#?}");

        // Data lost: a volume's file changed.
        let found = planted(worker, |w| std::fs::write(w.in_volume("/srv/data/marker"), "\n").unwrap());
        assert_eq!(classes(&found), [Class::DataLost], "{found:#?}");

        // A process started for the world that is still there.
        let found = planted(worker, |w| {
            let spawned = Command::new("sh").args(["-c", "sleep 600", "watcher"]).arg(&w.root).spawn().unwrap();
            std::mem::forget(spawned);
        });
        assert_eq!(classes(&found), [Class::Process], "{found:#?}");
    });
}

#[test]
fn a_verdict_names_panics_silent_errors_and_failed_recoveries() {
    let drift = || vec![Failure::new(Class::Drift, "/etc/motd: missing")];
    let fine = || Ok(());
    let judge = |inject, ran: Ran, check: &dyn Fn() -> Vec<Failure>, recover: &dyn Fn() -> Result<(), Failure>| {
        classes(&run::verdict(inject, &ran, &mut || check(), &mut || recover()))
    };
    assert_eq!(judge(Inject::Eio, Ran::Exited(101, "panicked".into()), &Vec::new, &fine), [Class::Panic]);
    assert_eq!(judge(Inject::Enospc, Ran::Exited(0, String::new()), &drift, &fine), [Class::Silent, Class::Drift]);
    assert_eq!(judge(Inject::Enospc, Ran::Exited(0, String::new()), &Vec::new, &fine), []);
    assert_eq!(judge(Inject::Eio, Ran::Exited(3, "error".into()), &Vec::new, &fine), []);
    let stuck = || Err(Failure::new(Class::Stuck, "recovery exits 3"));
    assert_eq!(judge(Inject::Kill, Ran::Killed, &drift, &stuck), [Class::Stuck, Class::Drift]);
    assert_eq!(judge(Inject::Kill, Ran::Hung, &Vec::new, &fine), [Class::Stuck]);
    // A kill is never judged before its recovery, even when it did not land.
    assert_eq!(judge(Inject::Kill, Ran::Exited(0, String::new()), &Vec::new, &stuck), [Class::Stuck]);
}

/// The recording sees what a switch changes, and a kill injected at a point lands
/// there: the run dies by SIGKILL with the switch half done.
#[test]
fn an_injected_kill_lands_where_the_recording_says() {
    if !can_sweep("an_injected_kill_lands_where_the_recording_says") {
        return;
    }
    let switch = scenario("switch 1->2");
    run::on_one_worker(&|worker| {
        let baseline = run::baseline(worker, &switch);
        assert!(baseline.failures.is_empty(), "{:#?}", baseline.failures);
        let all = trace::Sampling { first: usize::MAX, every: 1 };
        let kills = trace::points(&baseline.recording, Inject::Kill, all);
        let names: std::collections::BTreeSet<&str> = kills.iter().map(|(p, _)| p.syscall.as_str()).collect();
        for name in ["renameat", "fsync", "write", "umount2", "symlinkat", "unlinkat", "mkdirat"] {
            assert!(names.contains(name), "no {name} among the kill points: {names:?}");
        }
        // The rename that moves /etc/static to the new generation.
        let (staged, call) = kills
            .iter()
            .find(|(p, c)| p.syscall == "renameat" && c.text.contains(".static.blankslate-new"))
            .expect("/etc/static renamed into place");
        let mut world = worker.world(switch.shape);
        (switch.setup)(&mut world);
        let output = common::output(&mut staged.command(&switch.program(&world)));
        assert_eq!(std::os::unix::process::ExitStatusExt::signal(&output.status), Some(9), "killed at {call}");
        // Killed before /etc/static moved: it is still generation 1's, under a journal.
        let two = check::read_generation(&world.root, 2).unwrap().etc_object;
        let link = std::fs::read_link(world.in_root("/etc/static")).unwrap();
        assert!(!link.to_string_lossy().contains(&two), "killed before the switch moved /etc/static: {link:?}");
        assert!(world.in_root("/etc/.blankslate/journal.json").exists(), "the journal of the half-done switch");
    });
}
