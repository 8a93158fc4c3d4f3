//! One writer at a time: every command that changes a root takes its state lock before
//! its first change, says which command holds it when it has to wait, and with
//! `--no-wait` or `--lock-timeout` gives up (exit 3) instead of waiting.
//!
//! The lock is held by a `blankslate build` stopped, lock held, at a failpoint
//! (`hang:`); every command runs in a private mount namespace, so that one that did
//! not take the lock first would do its work (mounts included) on the scratch root
//! only.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

mod common;
use common::{DEADLINE, Running, output, stderr};

const BIN: &str = env!("CARGO_BIN_EXE_blankslate");

/// A root with generation 1 active and a persistent root with data to move.
struct Machine {
    dir: tempfile::TempDir,
}

impl Machine {
    fn new() -> Machine {
        let scratch = Machine { dir: tempfile::tempdir().unwrap() };
        let root = scratch.root();
        for dir in ["persist", "etc", "var/lib/app"] {
            std::fs::create_dir_all(root.join(dir)).unwrap();
        }
        std::fs::write(root.join("var/lib/app/data"), "precious\n").unwrap();
        scratch.write("one.toml", "version = 1\n[persist.\"/persist\"]\ndirectories = [\"/var/log\"]\n");
        scratch.write("two.toml", "version = 1\n[etc.\"motd\"]\ntext = \"two\\n\"\n");
        // Built, not switched to: a switch needs /persist to be a mounted volume, and
        // each command here runs in a mount namespace of its own.
        let built = scratch.run(&["build", &scratch.file("one.toml")]);
        assert!(built.status.success(), "{}", stderr(&built));
        scratch
    }

    fn root(&self) -> PathBuf {
        self.dir.path().join("root")
    }

    fn file(&self, name: &str) -> String {
        self.dir.path().join(name).to_str().unwrap().to_owned()
    }

    fn write(&self, name: &str, text: &str) {
        std::fs::write(self.dir.path().join(name), text).unwrap();
    }

    /// `blankslate ARGS --root ROOT` in a private mount namespace.
    fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new("unshare");
        command.args(["--mount", "--propagation", "private", BIN]).args(args).arg("--root").arg(self.root());
        command.env("NO_COLOR", "1").env_remove("BLANKSLATE_FAILPOINT");
        command
    }

    fn run(&self, args: &[&str]) -> Output {
        output(&mut self.command(args))
    }

    /// A `build` holding the state lock until dropped, and its pid.
    fn hold(&self) -> (Running, u32) {
        let mut command = self.command(&["build", &self.file("two.toml")]);
        command.env("BLANKSLATE_FAILPOINT", "hang:store-add:written");
        let mut holder = Running::spawn(command.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::piped()));
        holder.error_lines().until(DEADLINE, |line| line.contains("hanging"));
        let pid = lock_holder(&self.root()).expect("the lock file names its holder");
        (holder, pid)
    }
}

/// The pid the state lock file names, if any.
fn lock_holder(root: &Path) -> Option<u32> {
    let record = std::fs::read_to_string(root.join("var/lib/blankslate/lock")).ok()?;
    record.split_whitespace().next()?.parse().ok()
}

#[test]
fn every_command_that_changes_a_root_takes_the_lock_first() {
    let scratch = Machine::new();
    let one = scratch.file("one.toml");
    let (holder, pid) = scratch.hold();
    let before = std::fs::read_to_string(&one).unwrap();
    let writers: Vec<Vec<&str>> = vec![
        vec!["build", &one],
        vec!["switch", &one],
        vec!["switch", "1", "--test"],
        vec!["rollback"],
        vec!["repair"],
        vec!["confirm"],
        vec!["trial-expire", "--id", "x"],
        vec!["generations", "delete", "1"],
        vec!["generations", "gc"],
        vec!["persist", "add", "/var/lib/app", "--declaration", &one],
        vec!["persist", "remove", "/var/log", "--declaration", &one],
        vec!["persist", "recover", "--declaration", &one],
        vec!["persist", "sync"],
    ];
    for args in &writers {
        let ran = scratch.run(&[&args[..], &["--no-wait"]].concat());
        assert_eq!(ran.status.code(), Some(3), "{args:?}: {}", stderr(&ran));
        let said = stderr(&ran);
        assert!(said.contains("var/lib/blankslate/lock: held by `"), "{args:?} names the lock: {said}");
        assert!(said.contains(&format!("(pid {pid})")) && said.contains("build"), "{args:?} names the holder: {said}");
    }
    // Nothing changed while the lock was held: the data is where it was, undeclared.
    assert_eq!(std::fs::read_to_string(scratch.root().join("var/lib/app/data")).unwrap(), "precious\n");
    assert!(!scratch.root().join("persist/var/lib/app").exists(), "nothing was copied");
    assert_eq!(std::fs::read_to_string(&one).unwrap(), before, "the declaration is as it was");
    let listed = common::generations(scratch.root().to_str().unwrap());
    assert_eq!(listed.as_array().map(Vec::len), Some(1), "no generation was made or removed: {listed}");
    drop(holder);
}

#[test]
fn a_waiting_writer_says_what_it_waits_for_and_a_timeout_gives_up() {
    let scratch = Machine::new();
    let (holder, pid) = scratch.hold();
    let record = std::fs::read_to_string(scratch.root().join("var/lib/blankslate/lock")).unwrap();
    assert!(record.starts_with(&format!("{pid} ")) && record.contains(" build "), "{record}");

    let timed = scratch.run(&["generations", "gc", "--lock-timeout", "1"]);
    assert_eq!(timed.status.code(), Some(3));
    assert!(stderr(&timed).contains("note: waiting at most 1 s for the lock"), "{}", stderr(&timed));
    assert!(stderr(&timed).contains("still held by `"), "{}", stderr(&timed));
    assert!(stderr(&timed).contains(&format!("(pid {pid}) after 1 s")), "{}", stderr(&timed));

    // Without a limit it waits, says for whom, and goes on once the holder is gone.
    let mut waiter =
        Running::spawn(scratch.command(&["generations", "gc"]).stdout(Stdio::null()).stderr(Stdio::piped()));
    let said = waiter.error_lines().until(DEADLINE, |line| line.starts_with("note: waiting for the lock"));
    assert!(said.last().unwrap().contains(&format!("(pid {pid})")), "{said:?}");
    drop(holder);
    assert!(waiter.wait(DEADLINE).success());
    assert_eq!(std::fs::read_to_string(scratch.root().join("var/lib/blankslate/lock")).unwrap(), "", "released");
}
