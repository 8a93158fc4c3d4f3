//! The binary's `persist add | remove | list | recover`, killed after every step.
//!
//! Every run of the binary that may mount goes through `unshare --mount
//! --propagation private sh -c …`: its mounts live and die with that shell's private
//! namespace, never the host's. The scratch root is a plain directory whose
//! "volume" is the directory `ROOT/persist`. Each crash test populates a tree,
//! hashes it, runs the command with `BLANKSLATE_FAILPOINT=persist-step#N` for
//! N = 1, 2, … until it completes, recovers, and checks by hashes that no byte was
//! lost and that the end state is consistent: added fully (volume copy, mount,
//! declaration entry) or not at all.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs;
use std::hash::{DefaultHasher, Hasher};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use blankslate_test_support::Scratch;

mod common;

const BIN: &str = env!("CARGO_BIN_EXE_blankslate");

const DECLARATION: &str = r#"version = 1

# The one volume.
[persist."/persist"]
directories = [
  "/var/log", # logs
]
"#;

const ADDED: &str = r#"version = 1

# The one volume.
[persist."/persist"]
directories = [
  "/var/log", # logs
  { directory = "/var/lib/app", user = "app", group = "app", mode = "0750" },
]
"#;

/// A scratch root (`root/`) with `/etc/passwd`, a volume directory and a declaration
/// (`declaration.toml`, beside it).
fn scratch_root() -> Scratch {
    let scratch = Scratch::with_root("root");
    scratch.write("etc/passwd", "root:x:0:0::/root:/bin/sh\napp:x:2000:2000::/:/bin/false\n");
    scratch.write("etc/group", "root:x:0:\napp:x:2000:\n");
    fs::create_dir_all(scratch.path("persist")).unwrap();
    scratch.file("declaration.toml", DECLARATION);
    scratch
}

/// The paths and arguments of `persist add` on a [`scratch_root`].
trait Paths {
    fn declaration(&self) -> PathBuf;
    fn live(&self) -> PathBuf;
    fn in_volume(&self) -> PathBuf;
    fn args(&self) -> String;
    fn journal_exists(&self) -> bool;
}

impl Paths for Scratch {
    fn declaration(&self) -> PathBuf {
        self.dir().join("declaration.toml")
    }

    fn live(&self) -> PathBuf {
        self.path("var/lib/app")
    }

    fn in_volume(&self) -> PathBuf {
        self.path("persist/var/lib/app")
    }

    fn args(&self) -> String {
        format!("--declaration '{}' --root '{}'", self.declaration().display(), self.root().display())
    }

    fn journal_exists(&self) -> bool {
        self.path("persist/.blankslate/persist-journal.toml").exists()
    }
}

/// Runs `script` (with `$B` the binary) in a private mount namespace; returns
/// standard output.
fn session(script: &str) -> String {
    let output = common::output(
        Command::new("unshare")
            .args(["--mount", "--propagation", "private", "sh", "-c", &format!("{script}\necho session-done")])
            .env("B", BIN)
            .env("NO_COLOR", "1")
            .env_remove("BLANKSLATE_FAILPOINT"),
    );
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(output.status.success(), "session failed:\n{script}\n{stdout}\n{stderr}");
    stdout + &stderr
}

/// A tree with nested directories, a sparse file, a hard-linked pair, a symlink, a
/// FIFO, a socket, odd owners and modes, old timestamps.
fn populate(dir: &Path) {
    fs::create_dir_all(dir.join("a/b/c")).unwrap();
    fs::write(dir.join("a/b/c/data"), (0..200_000u32).map(|i| (i % 251) as u8).collect::<Vec<_>>()).unwrap();
    fs::write(dir.join("config"), "key = value\n").unwrap();
    let sparse = fs::File::create(dir.join("sparse.img")).unwrap();
    sparse.set_len(32 << 20).unwrap();
    std::os::unix::fs::FileExt::write_at(&sparse, b"data in the middle", 16 << 20).unwrap();
    drop(sparse);
    fs::hard_link(dir.join("config"), dir.join("a/config.link")).unwrap();
    std::os::unix::fs::symlink("../config", dir.join("a/config.sym")).unwrap();
    assert!(common::output(Command::new("mkfifo").arg(dir.join("pipe"))).status.success());
    drop(std::os::unix::net::UnixListener::bind(dir.join("socket")).unwrap());
    std::os::unix::fs::chown(dir.join("a/b"), Some(2000), Some(2000)).unwrap();
    fs::set_permissions(dir.join("a/b"), fs::Permissions::from_mode(0o2770)).unwrap();
    fs::set_permissions(dir.join("config"), fs::Permissions::from_mode(0o4640)).unwrap();
    let old = std::time::UNIX_EPOCH + std::time::Duration::new(1_234_567_890, 123_456_789);
    for path in ["a/b/c/data", "a/b/c", "sparse.img", "a"] {
        let file = fs::File::open(dir.join(path)).unwrap();
        file.set_times(fs::FileTimes::new().set_modified(old).set_accessed(old)).unwrap();
    }
    std::os::unix::fs::chown(dir, Some(2000), Some(2000)).unwrap();
    fs::set_permissions(dir, fs::Permissions::from_mode(0o750)).unwrap();
}

/// Per path: kind and mode, owner, mtime (ns), size, a hash of the contents, link
/// target, device number, and the hard-link group. Read with std only.
fn snapshot(top: &Path) -> BTreeMap<PathBuf, String> {
    fn visit(top: &Path, path: &Path, inodes: &mut BTreeMap<u64, PathBuf>, out: &mut BTreeMap<PathBuf, String>) {
        let meta = fs::symlink_metadata(path).unwrap();
        let rel = path.strip_prefix(top).unwrap().to_path_buf();
        let mut line = format!(
            "mode {:o} owner {}:{} mtime {}.{:09} rdev {}",
            meta.mode(),
            meta.uid(),
            meta.gid(),
            meta.mtime(),
            meta.mtime_nsec(),
            meta.rdev()
        );
        if meta.is_file() {
            let first = inodes.entry(meta.ino()).or_insert_with(|| rel.clone()).clone();
            let mut hasher = DefaultHasher::new();
            hasher.write(&fs::read(path).unwrap());
            let _ = write!(line, " size {} hash {:016x} inode-of {}", meta.len(), hasher.finish(), first.display());
        } else if meta.file_type().is_symlink() {
            let _ = write!(line, " -> {}", fs::read_link(path).unwrap().display());
        }
        out.insert(rel, line);
        if meta.is_dir() {
            let mut children: Vec<_> = fs::read_dir(path).unwrap().map(|e| e.unwrap().path()).collect();
            children.sort();
            for child in children {
                visit(top, &child, inodes, out);
            }
        }
    }
    let mut out = BTreeMap::new();
    if top.exists() {
        visit(top, top, &mut BTreeMap::new(), &mut out);
    }
    out
}

/// The `state` of `path` in a `persist list --json` printed in `output`.
fn listed_state(output: &str, path: &str) -> Option<String> {
    let start = output.find("{\n")?;
    let end = output.rfind("\n}")? + 2;
    let listing: serde_json::Value = serde_json::from_str(&output[start..end]).ok()?;
    let entries = listing["entries"].as_array()?;
    let entry = entries.iter().find(|e| e["path"] == path)?;
    entry["state"].as_str().map(str::to_owned)
}

fn status_of(output: &str, label: &str) -> i32 {
    let marker = format!("{label}=");
    let line = output.lines().find(|l| l.starts_with(&marker)).unwrap_or_else(|| panic!("no {label} in:\n{output}"));
    line[marker.len()..].trim().parse().unwrap()
}

/// The end state is all or nothing, and nothing was lost.
fn assert_consistent(scratch: &Scratch, before: &BTreeMap<PathBuf, String>, context: &str) -> bool {
    assert!(!scratch.journal_exists(), "{context}: the journal is gone after recovery");
    let text = fs::read_to_string(scratch.declaration()).unwrap();
    let leftovers: Vec<_> = fs::read_dir(scratch.root().join("persist/var/lib"))
        .map(|d| {
            d.map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).filter(|n| n.starts_with('.')).collect()
        })
        .unwrap_or_default();
    assert!(leftovers.is_empty(), "{context}: temporaries left: {leftovers:?}");
    if text == ADDED {
        assert_eq!(&snapshot(&scratch.in_volume()), before, "{context}: the volume holds every byte");
        assert_eq!(fs::read_dir(scratch.live()).unwrap().count(), 0, "{context}: the tmpfs copy is removed");
        true
    } else {
        assert_eq!(text, DECLARATION, "{context}: the declaration is untouched when the add is undone");
        assert_eq!(&snapshot(&scratch.live()), before, "{context}: the live data is intact");
        assert!(!scratch.in_volume().exists(), "{context}: nothing was left in the volume");
        false
    }
}

#[test]
fn add_killed_after_every_step_and_recovered_in_place_loses_nothing() {
    let mut outcomes = Vec::new();
    for n in 1.. {
        assert!(n < 20, "the add never completed");
        let scratch = scratch_root();
        populate(&scratch.live());
        let before = snapshot(&scratch.live());
        let args = scratch.args();
        // The crash, the recovery and the check of the mount in one namespace: the
        // recovery sees the crashed run's mount, as on a live system.
        let output = session(&format!(
            "BLANKSLATE_FAILPOINT=persist-step#{n} \"$B\" persist add /var/lib/app {args}; echo add-status=$?
             \"$B\" persist recover {args}; echo recover-status=$?
             \"$B\" persist list --json {args}"
        ));
        let add_status = status_of(&output, "add-status");
        assert_eq!(status_of(&output, "recover-status"), 0, "{output}");
        let added = assert_consistent(&scratch, &before, &format!("crash at step {n}"));
        if added {
            assert_eq!(listed_state(&output, "/var/lib/app").as_deref(), Some("mounted"), "{output}");
        }
        outcomes.push(added);
        if add_status == 0 {
            break;
        }
        assert_ne!(add_status, 3, "step {n}: a crash, not an error:\n{output}");
    }
    // Started, copied, verified are undone; placed and later are finished; the last
    // run (no crash) adds.
    assert_eq!(outcomes, [false, false, false, true, true, true, true, true, true], "{outcomes:?}");
}

#[test]
fn add_killed_after_every_step_then_run_again_completes_with_every_byte() {
    for n in 1..=8 {
        let scratch = scratch_root();
        populate(&scratch.live());
        let before = snapshot(&scratch.live());
        let args = scratch.args();
        let output = session(&format!(
            "BLANKSLATE_FAILPOINT=persist-step#{n} \"$B\" persist add /var/lib/app {args}; echo add-status=$?"
        ));
        assert_eq!(status_of(&output, "add-status"), 134, "step {n} aborts:\n{output}");
        // Between the crash and the recovery (the crashed run's mount is gone with
        // its namespace): every byte is on disk, in the live path or in the volume.
        let live = snapshot(&scratch.live());
        let volume = snapshot(&scratch.in_volume());
        assert!(live == before || volume == before, "step {n}: every byte survives the crash");
        assert!(scratch.journal_exists() || n == 8, "step {n}: the journal tells what to finish");
        // The same command again: recovers, then adds (or reports it done).
        let output = session(&format!(
            "\"$B\" persist add /var/lib/app {args}; echo add-status=$?
             \"$B\" persist list --json {args}"
        ));
        if n < 8 {
            assert_eq!(status_of(&output, "add-status"), 0, "step {n}:\n{output}");
            assert_eq!(listed_state(&output, "/var/lib/app").as_deref(), Some("mounted"), "{output}");
        }
        assert!(assert_consistent(&scratch, &before, &format!("crash at step {n}, run again")));
    }
}

#[test]
fn remove_killed_after_every_step_loses_nothing() {
    for n in 1.. {
        assert!(n < 20, "the remove never completed");
        let scratch = scratch_root();
        populate(&scratch.live());
        let before = snapshot(&scratch.live());
        let args = scratch.args();
        let output = session(&format!(
            "\"$B\" persist add /var/lib/app {args} || exit 9
             BLANKSLATE_FAILPOINT=persist-step#{n} \"$B\" persist remove /var/lib/app --copy-back --purge {args}
             echo remove-status=$?
             \"$B\" persist recover {args}; echo recover-status=$?
             \"$B\" persist list --json {args}"
        ));
        let status = status_of(&output, "remove-status");
        assert_eq!(status_of(&output, "recover-status"), 0, "{output}");
        assert!(!scratch.journal_exists());
        assert_eq!(fs::read_to_string(scratch.declaration()).unwrap(), DECLARATION, "step {n}");
        assert!(!scratch.in_volume().exists(), "step {n}: purged");
        let mut after = snapshot(&scratch.live());
        let mut expected = before.clone();
        // The top directory is the copy brought back: its own times are the copy's.
        after.remove(Path::new(""));
        expected.remove(Path::new(""));
        assert_eq!(after, expected, "step {n}: every byte is back in the root");
        assert_eq!(listed_state(&output, "/var/lib/app"), None, "no longer listed");
        if status == 0 {
            break;
        }
        assert_eq!(status, 134, "step {n} aborts:\n{output}");
    }
}

#[test]
fn list_shows_live_states_and_remove_keeps_the_volume_by_default() {
    let scratch = scratch_root();
    populate(&scratch.live());
    let before = snapshot(&scratch.live());
    let args = scratch.args();
    let output = session(&format!(
        "\"$B\" persist add /var/lib/app {args}; echo add-status=$?
         \"$B\" persist list {args}; echo list-status=$?
         \"$B\" persist remove /var/lib/app {args}; echo remove-status=$?
         \"$B\" persist list --json {args}; echo list2-status=$?"
    ));
    assert_eq!(status_of(&output, "add-status"), 0, "{output}");
    assert!(output.contains("mounted         directory /var/lib/app"), "{output}");
    assert!(output.contains("missing-source  directory /var/log"), "{output}");
    assert_eq!(status_of(&output, "list-status"), 1, "a missing source is a finding");
    assert_eq!(status_of(&output, "remove-status"), 0, "{output}");
    assert_eq!(fs::read_to_string(scratch.declaration()).unwrap(), DECLARATION);
    assert_eq!(snapshot(&scratch.in_volume()), before, "the volume keeps the data");
    assert_eq!(fs::read_dir(scratch.live()).unwrap().count(), 0);

    // A refusal: exit code 3, nothing changed.
    let output = session(&format!("\"$B\" persist add /var/log {args}; echo add-status=$?"));
    assert_eq!(status_of(&output, "add-status"), 3, "{output}");
    assert!(output.contains("already declared"), "{output}");
    assert_eq!(fs::read_to_string(scratch.declaration()).unwrap(), DECLARATION);
}

/// `persist add` and `persist remove` change the generations as they change the file:
/// right after an add, the audit finds nothing (the path is declared, its volume data
/// is not a stray) and `build` of the edited file has nothing to add; after a remove,
/// the audit reports what no longer persisting leaves (the kept volume data, the
/// path on the root), not a declared path that is not mounted.
#[test]
fn add_then_audit_is_clean_and_remove_leaves_what_the_command_says() {
    let dir = tempfile::tempdir().unwrap();
    let (root, declaration) = (dir.path().join("root"), dir.path().join("declaration.toml"));
    fs::create_dir_all(root.join("persist")).unwrap();
    fs::write(
        &declaration,
        "version = 1\n[persist.\"/persist\"]\ndirectories = [\"/var/log\"]\n\
         [etc.\"passwd\"]\ntext = \"root:x:0:0::/root:/bin/sh\\n\"\n[etc.\"group\"]\ntext = \"root:x:0:\\n\"\n",
    )
    .unwrap();
    let (r, d) = (root.display(), declaration.display());
    // The volume is a tmpfs (the audit wants a mounted volume), in the session's
    // private namespace.
    let output = session(&format!(
        "mount -t tmpfs volume '{r}/persist' && \"$B\" switch '{d}' --root '{r}' >/dev/null || exit 9
         mkdir -p '{r}/var/lib/app' && echo data > '{r}/var/lib/app/db'
         \"$B\" audit --root '{r}' >/dev/null; echo audit-before=$?
         \"$B\" persist add /var/lib/app --declaration '{d}' --root '{r}'; echo add-status=$?
         \"$B\" audit --root '{r}'; echo audit-added=$?
         \"$B\" build '{d}' --root '{r}'
         \"$B\" persist remove /var/lib/app --declaration '{d}' --root '{r}'; echo remove-status=$?
         \"$B\" audit --json --root '{r}' > '{report}'; echo audit-removed=$?",
        report = dir.path().join("audit.json").display()
    ));
    assert_eq!(status_of(&output, "audit-before"), 1, "undeclared data before the add:\n{output}");
    assert_eq!(status_of(&output, "add-status"), 0, "{output}");
    assert!(output.contains("/var/lib/app is now persisted in /persist (1 file, 5 bytes, verified)"), "{output}");
    assert!(output.contains("generation 1 with this change is generation 2, now active and current"), "{output}");
    assert_eq!(status_of(&output, "audit-added"), 0, "the audit is clean right after the add:\n{output}");
    assert!(output.contains("unchanged: generation 2 is current"), "the file and the generation agree:\n{output}");
    assert_eq!(status_of(&output, "remove-status"), 0, "{output}");
    assert!(output.contains("lists it as a persist-stray"), "{output}");
    assert!(output.contains("lists it as undeclared"), "{output}");
    assert_eq!(status_of(&output, "audit-removed"), 1, "{output}");
    let report: serde_json::Value = serde_json::from_slice(&fs::read(dir.path().join("audit.json")).unwrap()).unwrap();
    let findings: Vec<(String, String)> = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| (f["class"].as_str().unwrap().to_owned(), f["path"].as_str().unwrap().to_owned()))
        .collect();
    let expected = [("undeclared", "/var/lib/app"), ("persist-stray", "/persist/var/lib/app")];
    assert_eq!(findings, expected.map(|(c, p)| (c.to_owned(), p.to_owned())), "{output}");
}

/// The first lines of every script that mounts: it refuses to run unless it is in a
/// mount namespace of its own.
const OWN_NAMESPACE: &str = "[ \"$(readlink /proc/self/ns/mnt)\" != \"$(readlink /proc/$PPID/ns/mnt)\" ] || exit 99";

/// Room is checked before the first byte is copied: data that a volume cannot hold
/// is refused with nothing changed; holes, which the copy keeps, take no room.
#[test]
fn add_refuses_what_the_volume_has_no_room_for_before_copying_anything() {
    let scratch = scratch_root();
    fs::create_dir_all(scratch.live()).unwrap();
    fs::write(scratch.live().join("big"), vec![7u8; 4 << 20]).unwrap();
    let before = snapshot(&scratch.live());
    let (args, volume) = (scratch.args(), scratch.root().join("persist"));
    let add = |args: &str| {
        session(&format!(
            "{OWN_NAMESPACE}
             mount -t tmpfs -o size=2m volume '{v}' || exit 9
             \"$B\" persist add /var/lib/app {args}; echo add-status=$?
             echo volume: $(ls -A '{v}')
             \"$B\" persist list --json {args}",
            v = volume.display()
        ))
    };
    let output = add(&args);
    assert_eq!(status_of(&output, "add-status"), 3, "{output}");
    assert!(output.contains("refusing to persist /var/lib/app: its copy needs about 6 MiB in /persist"), "{output}");
    assert!(output.contains("MiB free: make room there"), "{output}");
    assert!(output.contains("volume: .blankslate\n"), "nothing but the volume's lock: {output}");
    assert_eq!(snapshot(&scratch.live()), before);
    assert_eq!(fs::read_to_string(scratch.declaration()).unwrap(), DECLARATION);

    // 32 MiB of holes and a little data: at home in 2 MiB.
    let scratch = scratch_root();
    populate(&scratch.live());
    let output = add(&scratch.args());
    assert_eq!(status_of(&output, "add-status"), 0, "{output}");
    assert_eq!(listed_state(&output, "/var/lib/app").as_deref(), Some("mounted"), "{output}");
}

/// A declaration that cannot be rewritten is found before anything changes, not
/// after the copy and the mount.
#[test]
fn add_with_a_read_only_declaration_changes_nothing() {
    let scratch = scratch_root();
    populate(&scratch.live());
    let before = snapshot(&scratch.live());
    let own = scratch.dir().join("declarations");
    fs::create_dir(&own).unwrap();
    let declaration = own.join("system.toml");
    fs::copy(scratch.declaration(), &declaration).unwrap();
    let output = session(&format!(
        "{OWN_NAMESPACE}
         mount --bind '{o}' '{o}' && mount -o remount,bind,ro '{o}' || exit 9
         \"$B\" persist add /var/lib/app --declaration '{d}' --root '{r}'; echo add-status=$?
         mountpoint -q '{r}/var/lib/app' && echo mounted",
        o = own.display(),
        d = declaration.display(),
        r = scratch.root().display()
    ));
    assert_eq!(status_of(&output, "add-status"), 3, "{output}");
    assert!(output.contains("cannot be rewritten") && output.contains("Read-only file system"), "{output}");
    assert!(output.contains("nothing was changed"), "{output}");
    assert!(!output.contains("mounted"), "{output}");
    assert_eq!(snapshot(&scratch.live()), before);
    assert!(!scratch.in_volume().exists() && !scratch.journal_exists());
    assert_eq!(fs::read_to_string(&declaration).unwrap(), DECLARATION);
}

/// ENOSPC at every kind of call that writes (its first and last): the add fails with exit
/// 3, never a panic; before its copy is in place it is undone at once and says that
/// nothing changed; after, it says which `persist recover` finishes it; either way,
/// after that recovery it is all or nothing and no byte is lost.
#[test]
fn add_given_enospc_at_any_write_is_undone_or_names_its_recovery() {
    const CALLS: [&str; 12] = [
        "openat2",
        "mkdirat",
        "write",
        "pwrite64",
        "fsync",
        "renameat",
        "ftruncate",
        "symlinkat",
        "linkat",
        "mknodat",
        "utimensat",
        "fsetxattr",
    ];
    if !Path::new("/usr/bin/strace").exists() {
        eprintln!("skipped: no /usr/bin/strace");
        return;
    }
    // Holes are not what this is about: a short sparse file keeps the runs quick.
    let populated = || {
        let scratch = scratch_root();
        populate(&scratch.live());
        fs::File::options().write(true).open(scratch.live().join("sparse.img")).unwrap().set_len(1 << 16).unwrap();
        scratch
    };
    let counting = populated();
    let trace = counting.dir().join("trace");
    session(&format!(
        "strace -f -qq -o '{}' -e trace={} \"$B\" persist add /var/lib/app {} || exit 9",
        trace.display(),
        CALLS.join(","),
        counting.args()
    ));
    let text = fs::read_to_string(&trace).unwrap();
    let mut points = Vec::new();
    for call in CALLS {
        // The ordinals of this call's writes to files: standard output and error are
        // the command line's, not the add's.
        let calls =
            text.lines().filter_map(|l| l.split_whitespace().nth(1)).filter(|c| c.starts_with(&format!("{call}(")));
        let ordinals: Vec<usize> = calls
            .enumerate()
            .filter(|(_, c)| !c.starts_with("write(1,") && !c.starts_with("write(2,"))
            .map(|(i, _)| i + 1)
            .collect();
        // The first and the last of each.
        let mut chosen: Vec<usize> = ordinals.first().into_iter().chain(ordinals.last()).copied().collect();
        chosen.dedup();
        points.extend(chosen.into_iter().map(|n| (call, n)));
    }
    assert!(points.len() >= 15, "{points:?}");
    let total = points.len();
    let (mut undone, mut pending) = (0, 0);
    for (call, n) in points {
        let scratch = populated();
        let before = snapshot(&scratch.live());
        let args = scratch.args();
        let output = session(&format!(
            "strace -f -qq -o /dev/null -e inject={call}:error=ENOSPC:when={n} \"$B\" persist add /var/lib/app {args}
             echo add-status=$?
             \"$B\" persist recover {args}; echo recover-status=$?"
        ));
        let context = format!("ENOSPC at {call}#{n}");
        let status = status_of(&output, "add-status");
        assert!(status == 0 || status == 3, "{context}: exit {status}:\n{output}");
        assert_eq!(status_of(&output, "recover-status"), 0, "{context}:\n{output}");
        let added = assert_consistent(&scratch, &before, &context);
        if status == 3 && output.contains("blankslate persist recover --declaration") {
            pending += 1;
        } else if status == 3 {
            // Undone at once, or failed before its first change: nothing left to do.
            assert!(!added && output.contains("nothing to recover"), "{context}:\n{output}");
            undone += usize::from(output.contains("was removed: nothing changed"));
        }
    }
    assert!(undone > 0 && pending > 0, "both outcomes were met: {undone} undone, {pending} left to recover");
    eprintln!("persist add, ENOSPC at {total} points: {undone} undone at once, {pending} left to persist recover");
}
