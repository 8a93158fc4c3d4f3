//! The binary's `/etc` activation: `switch`, `rollback`, `--dry-run`, and crash
//! recovery, each against a scratch root (never the host's `/etc`).

use std::collections::BTreeMap;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Output;

mod common;
use common::{blankslate_env, current_generation, stderr, stdout};

const PASSWD: &str = r"root:x:0:0::/root:/bin/sh\nwww:x:33:33::/var/www:/bin/false\n";
const GROUP: &str = r"root:x:0:\nwww:x:33:\n";

/// Generation 1: links, copies, nested and declared directories, the users copies are
/// owned by.
fn generation_1() -> String {
    format!(
        r#"version = 1
[etc."passwd"]
text = "{PASSWD}"
[etc."group"]
text = "{GROUP}"
[etc."hosts"]
text = "127.0.0.1 localhost\n"
[etc."motd"]
text = "generation 1\n"
[etc."sudoers"]
text = "root ALL=(ALL) ALL\n"
mode = "0440"
[etc."leftover.conf"]
text = "leftover\n"
mode = "0644"
[etc."removed-copy"]
text = "removed copy\n"
mode = "0600"
[etc."gone/deep/old.conf"]
text = "old\n"
[etc."keep/a.conf"]
text = "a\n"
[etc."keep/b.conf"]
text = "b\n"
[etc."kind/to-copy"]
text = "was a link\n"
[etc."kind/to-link"]
text = "was a copy\n"
mode = "0644"
[etc."dirs/dropped"]
directory = true
mode = "0700"
[etc."dirs/private"]
directory = true
mode = "0750"
"#
    )
}

/// Generation 2: against generation 1 (plus [`person_edits`]) it adds, changes,
/// removes, backs up, copies and links, changes kinds both ways, and adds, changes and
/// removes declared directories.
fn generation_2() -> String {
    format!(
        r#"version = 1
[etc."passwd"]
text = "{PASSWD}"
[etc."group"]
text = "{GROUP}"
[etc."hosts"]
text = "127.0.0.1 localhost\n"
[etc."motd"]
text = "generation 2\n"
[etc."sudoers"]
text = "root ALL=(ALL) ALL\n%www ALL=(ALL) ALL\n"
mode = "0440"
group = "www"
[etc."keep/a.conf"]
text = "a\n"
[etc."kind/to-copy"]
text = "now a copy\n"
mode = "0640"
user = "www"
group = "www"
[etc."kind/to-link"]
text = "now a link\n"
[etc."conflict.conf"]
text = "managed conflict\n"
[etc."confdir"]
text = "managed confdir\n"
mode = "0644"
user = "www"
[etc."added/nested/new.conf"]
text = "new\n"
[etc."added-copy"]
text = "added copy\n"
mode = "0400"
user = "www"
[etc."dirs/private"]
directory = true
mode = "0710"
group = "www"
[etc."added/private"]
directory = true
mode = "0700"
user = "www"
[etc."added/private/key"]
text = "secret\n"
mode = "0600"
user = "www"
"#
    )
}

/// One node of a snapshot: everything a program could tell apart.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Node {
    Directory { mode: u32, uid: u32, gid: u32 },
    Link(String),
    File { contents: String, mode: u32, uid: u32, gid: u32 },
}

type Snapshot = BTreeMap<String, Node>;

/// Every node below `dir`, by relative path.
fn snapshot(dir: &Path) -> Snapshot {
    fn walk(dir: &Path, prefix: &str, out: &mut Snapshot) {
        let Ok(listing) = std::fs::read_dir(dir) else { return };
        for entry in listing {
            let entry = entry.unwrap();
            let name = entry.file_name().to_string_lossy().into_owned();
            let key = if prefix.is_empty() { name } else { format!("{prefix}/{name}") };
            let meta = std::fs::symlink_metadata(entry.path()).unwrap();
            let mode = meta.permissions().mode() & 0o7777;
            let node = if meta.file_type().is_symlink() {
                Node::Link(std::fs::read_link(entry.path()).unwrap().to_string_lossy().into_owned())
            } else if meta.is_dir() {
                walk(&entry.path(), &key, out);
                Node::Directory { mode, uid: meta.uid(), gid: meta.gid() }
            } else {
                let contents = String::from_utf8_lossy(&std::fs::read(entry.path()).unwrap()).into_owned();
                Node::File { contents, mode, uid: meta.uid(), gid: meta.gid() }
            };
            out.insert(key, node);
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, "", &mut out);
    out
}

/// Names an interrupted activation may leave and a finished one must not.
fn is_temporary(path: &str) -> bool {
    let name = path.rsplit('/').next().unwrap_or(path);
    name.contains(".blankslate-new") || name.contains(".tmp-")
}

/// A scratch root plus declaration files in it.
struct Scratch {
    dir: tempfile::TempDir,
}

impl Scratch {
    fn new() -> Scratch {
        Scratch { dir: tempfile::tempdir().unwrap() }
    }

    fn root(&self) -> &str {
        self.dir.path().to_str().unwrap()
    }

    fn etc(&self) -> PathBuf {
        self.dir.path().join("etc")
    }

    /// Writes a declaration next to (not inside) the root's /etc.
    fn declaration(&self, name: &str, text: &str) -> String {
        let path = self.dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path.to_str().unwrap().to_owned()
    }

    fn run(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        let mut all = args.to_vec();
        all.extend(["--root", self.root()]);
        blankslate_env(&all, env)
    }

    /// Runs a command that must succeed; returns its standard output.
    fn ok(&self, args: &[&str]) -> String {
        let output = self.run(args, &[]);
        assert!(output.status.success(), "{args:?}: {}{}", stdout(&output), stderr(&output));
        stdout(&output)
    }

    fn snapshot(&self) -> Snapshot {
        snapshot(&self.etc())
    }

    fn write(&self, path: &str, contents: &str) {
        let path = self.etc().join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, contents).unwrap();
    }

    fn current(&self) -> Option<u64> {
        current_generation(self.root())
    }

    /// Temporaries below /etc and in the store.
    fn leftovers(&self) -> Vec<String> {
        let mut found: Vec<String> = self.snapshot().into_keys().filter(|p| is_temporary(p)).collect();
        let store = self.dir.path().join("var/lib/blankslate/store");
        for entry in std::fs::read_dir(store).unwrap() {
            let name = entry.unwrap().file_name().to_string_lossy().into_owned();
            if name.starts_with('.') {
                found.push(format!("store/{name}"));
            }
        }
        found
    }

    /// Generation 1 active, then what people do to a live /etc: a file and a
    /// directory where generation 2 declares entries (one with an older backup
    /// already there), an edited copy that generation 2 changes, and one it removes.
    fn prepare(&self) -> String {
        let one = self.declaration("one.toml", &generation_1());
        self.ok(&["switch", &one]);
        self.write("conflict.conf", "a person's conflict.conf\n");
        self.write("conflict.conf.blankslate-backup", "an older backup\n");
        self.write("confdir/inside", "a person's directory\n");
        self.write("sudoers", "root ALL=(ALL) NOPASSWD: ALL\n");
        self.write("leftover.conf", "leftover, edited\n");
        self.declaration("two.toml", &generation_2())
    }
}

/// /etc after a clean switch from a prepared generation 1 to generation 2.
fn reference() -> Snapshot {
    let scratch = Scratch::new();
    let two = scratch.prepare();
    scratch.ok(&["switch", &two]);
    scratch.snapshot()
}

#[test]
fn a_clean_switch_makes_exactly_the_declared_etc() {
    let expected = reference();
    let get = |path: &str| expected.get(path).unwrap_or_else(|| panic!("{path} missing"));
    let file = |contents: &str, mode: u32, uid: u32, gid: u32| Node::File { contents: contents.into(), mode, uid, gid };
    assert_eq!(get("kind/to-copy"), &file("now a copy\n", 0o640, 33, 33));
    assert_eq!(get("added-copy"), &file("added copy\n", 0o400, 33, 0));
    assert_eq!(get("confdir"), &file("managed confdir\n", 0o644, 33, 0));
    assert_eq!(get("sudoers"), &file("root ALL=(ALL) ALL\n%www ALL=(ALL) ALL\n", 0o440, 0, 33));
    assert_eq!(get("kind/to-link"), &Node::Link("/etc/static/kind/to-link".into()));
    assert_eq!(get("added/nested/new.conf"), &Node::Link("/etc/static/added/nested/new.conf".into()));
    assert_eq!(get("added/private"), &Node::Directory { mode: 0o700, uid: 33, gid: 0 });
    assert_eq!(get("added/private/key"), &file("secret\n", 0o600, 33, 0));
    assert_eq!(get("dirs/private"), &Node::Directory { mode: 0o710, uid: 0, gid: 33 });
    assert!(matches!(get("sudoers.blankslate-backup"), Node::File { contents, .. } if contents.contains("NOPASSWD")));
    assert!(
        matches!(get("conflict.conf.blankslate-backup.1"), Node::File { contents, .. } if contents.starts_with("a person's"))
    );
    assert!(matches!(get("confdir.blankslate-backup/inside"), Node::File { .. }));
    assert!(matches!(get("leftover.conf"), Node::File { contents, .. } if contents == "leftover, edited\n"));
    for gone in ["removed-copy", "gone", "keep/b.conf", "dirs/dropped", ".blankslate/journal.json"] {
        assert!(!expected.contains_key(gone), "{gone}");
    }
    assert!(expected.contains_key(".blankslate/state.json"));
    let Node::Link(target) = get("static") else { panic!("static is a link") };
    assert!(target.starts_with("/var/lib/blankslate/store/") && target.ends_with("-etc/etc"), "{target}");
}

/// Kills `switch two.toml` at every step of the journaled activation in turn; each
/// time, a plain rerun finishes the interrupted activation to exactly the /etc a clean
/// switch makes.
#[test]
fn a_switch_killed_at_any_etc_step_is_finished_by_the_next_run() {
    let expected = reference();
    let mut aborted = 0;
    for n in 1.. {
        assert!(n < 100, "the failpoint never stops firing");
        let scratch = Scratch::new();
        let two = scratch.prepare();
        let old = scratch.snapshot();
        let point = format!("etc-step#{n}");
        let output = scratch.run(&["switch", &two], &[("BLANKSLATE_FAILPOINT", &point)]);
        if output.status.success() {
            assert!(!stderr(&output).contains("failpoint"), "{point}: {}", stderr(&output));
            assert_eq!(scratch.snapshot(), expected, "{point}: the run that was not stopped");
            break;
        }
        aborted += 1;
        assert!(stderr(&output).contains(&format!("failpoint {point}")), "{point}: {}", stderr(&output));
        // Half-way is fine here: but every node is the old one or the new one.
        let middle = scratch.snapshot();
        for (path, node) in &middle {
            if path.starts_with(".blankslate") || is_temporary(path) {
                continue;
            }
            assert!(
                old.get(path) == Some(node) || expected.get(path) == Some(node),
                "{point}: {path} is {node:?}, neither old nor new"
            );
        }
        assert!(scratch.etc().join(".blankslate/journal.json").exists(), "{point}: the journal records the switch");

        let output = scratch.run(&["switch", &two], &[]);
        assert!(output.status.success(), "{point}: {}", stderr(&output));
        assert!(
            stdout(&output).contains("finished the interrupted activation of generation 2 first"),
            "{point}: {}",
            stdout(&output)
        );
        assert_eq!(scratch.snapshot(), expected, "{point}: the rerun ends exactly where a clean switch does");
        assert_eq!(scratch.leftovers(), Vec::<String>::new(), "{point}");
        assert!(!scratch.etc().join(".blankslate/journal.json").exists(), "{point}");
        assert_eq!(scratch.current(), Some(2), "{point}");
    }
    // The journal, 3 backups, 4 removals (a directory's last), 2 directories, 5 staged
    // copies, 3 links, static, 5 copies moved into place, the state: every one of them
    // was a place to die.
    assert_eq!(aborted, 25, "every step was tried");
}

/// The same for the failpoints of the build inside `switch DECL`: they fire before
/// the journal is written (or after it is gone), so /etc is wholly old or wholly new.
#[test]
fn a_switch_killed_while_building_is_finished_by_the_next_run() {
    let expected = reference();
    for step in ["store-add:written", "generation:current"] {
        let mut aborted = 0;
        for n in 1.. {
            assert!(n < 10, "{step} never stops firing");
            let scratch = Scratch::new();
            let two = scratch.prepare();
            let old = scratch.snapshot();
            let point = format!("{step}#{n}");
            let output = scratch.run(&["switch", &two], &[("BLANKSLATE_FAILPOINT", &point)]);
            if output.status.success() {
                assert_eq!(scratch.snapshot(), expected, "{point}");
                break;
            }
            aborted += 1;
            assert!(stderr(&output).contains(&format!("failpoint {point}")), "{point}: {}", stderr(&output));
            let middle = scratch.snapshot();
            assert!(middle == old || middle == expected, "{point}: /etc is half-switched");

            let output = scratch.run(&["switch", &two], &[]);
            assert!(output.status.success(), "{point}: {}", stderr(&output));
            assert!(!stdout(&output).contains("finished the interrupted"), "{point}: no activation was interrupted");
            assert_eq!(scratch.snapshot(), expected, "{point}");
            assert_eq!(scratch.leftovers(), Vec::<String>::new(), "{point}");
            assert!(!scratch.etc().join(".blankslate/journal.json").exists(), "{point}");
            assert_eq!(scratch.current(), Some(2), "{point}");
        }
        // store-add: the etc object and the generation object; current: moved once,
        // only after the activation succeeded.
        let expected_aborts = if step == "store-add:written" { 2 } else { 1 };
        assert_eq!(aborted, expected_aborts, "{step}");
    }
}

#[test]
fn rollback_restores_the_previous_etc_exactly_and_dry_runs_change_nothing() {
    let scratch = Scratch::new();
    let one = scratch.declaration("one.toml", &generation_1());
    let two = scratch.declaration("two.toml", &generation_2());
    scratch.ok(&["switch", &one]);
    let first = scratch.snapshot();
    assert!(scratch.ok(&["switch", &two]).ends_with("generation 2 is active and the boot default\n"));
    let second = scratch.snapshot();
    assert_ne!(first, second);

    for args in [&["switch", "1", "--dry-run"][..], &["rollback", "--dry-run"]] {
        let out = scratch.ok(args);
        assert!(out.contains("\ngeneration 2 -> generation 1\n"), "{args:?}: {out}");
        assert!(out.contains("  - added/nested/new.conf  link\n"), "{args:?}: {out}");
        assert_eq!(scratch.snapshot(), second, "{args:?} changes nothing");
        assert_eq!(scratch.current(), Some(2), "{args:?} changes nothing");
    }

    let out = scratch.ok(&["rollback"]);
    assert!(out.starts_with("/etc: generation 2 -> generation 1\n"), "{out}");
    assert!(out.ends_with("generation 1 is active and the boot default\n"), "{out}");
    assert_eq!(scratch.snapshot(), first, "/etc is generation 1's again, exactly");
    assert_eq!(scratch.current(), Some(1));

    let output = scratch.run(&["rollback"], &[]);
    assert_eq!(output.status.code(), Some(3));
    assert!(stderr(&output).contains("there is no generation before 1"), "{}", stderr(&output));
    assert_eq!(scratch.snapshot(), first);

    // Forward again with the generation number.
    scratch.ok(&["switch", "2"]);
    assert_eq!(scratch.snapshot(), second);
}

#[test]
fn refuse_conflicts_through_the_binary_changes_nothing() {
    let scratch = Scratch::new();
    let two = scratch.prepare();
    let before = scratch.snapshot();
    let output = scratch.run(&["switch", &two, "--refuse-conflicts"], &[]);
    assert_eq!(output.status.code(), Some(3), "{}", stdout(&output));
    let message = stderr(&output);
    assert!(message.contains("refusing to activate: 3 paths hold something"), "{message}");
    for path in ["/etc/conflict.conf: a regular file", "/etc/confdir: a directory", "/etc/sudoers: a regular file"] {
        assert!(message.contains(path), "{message}");
    }
    assert_eq!(scratch.snapshot(), before);
}

/// A dry run's plan, checked to be free of the scratch root's path and to have
/// changed nothing.
fn dry_run(scratch: &Scratch, args: &[&str]) -> String {
    let before = scratch.snapshot();
    let current = scratch.current();
    let out = scratch.ok(args);
    assert!(!out.contains(scratch.root()), "the plan names no scratch path: {out}");
    assert_eq!(scratch.snapshot(), before, "{args:?} changes nothing");
    assert_eq!(scratch.current(), current, "{args:?} builds nothing");
    out
}

#[test]
fn dry_run_plans_are_stable() {
    // A first activation over a person's /etc.
    let scratch = Scratch::new();
    let one = scratch.declaration("one.toml", &generation_1());
    scratch.write("hosts", "my hosts\n");
    scratch.write("motd/inside", "a directory\n");
    insta::assert_snapshot!("first_activation_with_backups", dry_run(&scratch, &["switch", &one, "--dry-run"]));

    // Adds, changes, removes, backups, left alone.
    let scratch = Scratch::new();
    let two = scratch.prepare();
    insta::assert_snapshot!("add_change_remove", dry_run(&scratch, &["switch", &two, "--dry-run"]));

    // A no-op, by number and by declaration.
    let scratch = Scratch::new();
    let one = scratch.declaration("one.toml", &generation_1());
    scratch.ok(&["switch", &one]);
    let by_number = dry_run(&scratch, &["switch", "1", "--dry-run"]);
    assert_eq!(dry_run(&scratch, &["switch", &one, "--dry-run"]), by_number);
    insta::assert_snapshot!("noop", by_number);

    // A rollback.
    let two = scratch.declaration("two.toml", &generation_2());
    scratch.ok(&["switch", &two]);
    insta::assert_snapshot!("rollback", dry_run(&scratch, &["rollback", "--dry-run"]));
}
