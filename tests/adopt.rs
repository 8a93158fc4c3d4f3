//! `blankslate adopt` killed at every kind of system call that changes something, then
//! run again: the volume ends exactly as an uninterrupted adopt leaves it, and the
//! installed root is never written. A volume holding anything adopt did not put there
//! is still refused.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::os::unix::fs::{PermissionsExt, chown, symlink};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use blankslate_sys::fs::Dir;
use blankslate_sys::fs::tree::{self, Node};

mod common;
use blankslate_test_support::root_or_skip;
use common::{output, stderr, stdout};

const BIN: &str = env!("CARGO_BIN_EXE_blankslate");

/// System calls that change something, as `blankslate adopt` makes them (`openat2`
/// creates files and directories too; `flock` takes the locks).
const WRITE_CALLS: [&str; 20] = [
    "openat",
    "openat2",
    "mkdirat",
    "write",
    "pwrite64",
    "fsync",
    "fdatasync",
    "renameat",
    "renameat2",
    "unlinkat",
    "fchown",
    "fchownat",
    "fchmod",
    "fchmodat",
    "symlinkat",
    "linkat",
    "mknodat",
    "utimensat",
    "ftruncate",
    "flock",
];
/// Kill points per kind of call: all of them up to this many, else this many spread
/// evenly from the first to the last.
const POINTS_PER_CALL: usize = 6;

/// A small installed system: accounts (a secret among them), a host key, programs
/// (two names for one file), logs, package state, a user's home, root's keys.
fn installed(root: &Path) {
    let files: [(&str, &str, u32, (u32, u32)); 10] = [
        ("etc/passwd", "root:x:0:0::/root:/bin/sh\nalice:x:1000:1000::/home/alice:/bin/sh\n", 0o644, (0, 0)),
        ("etc/group", "root:x:0:\nshadow:x:42:\nalice:x:1000:\n", 0o644, (0, 0)),
        ("etc/shadow", "root:!:1::::::\n", 0o640, (0, 42)),
        ("etc/hostname", "small\n", 0o644, (0, 0)),
        ("etc/ssh/ssh_host_ed25519_key", "PRIVATE\n", 0o600, (0, 0)),
        ("usr/bin/sh", "#!\n", 0o755, (0, 0)),
        ("var/log/syslog", "booted\n", 0o640, (0, 0)),
        ("var/lib/dpkg/status", "Package: sh\n", 0o644, (0, 0)),
        ("home/alice/notes", "mine\n", 0o600, (1000, 1000)),
        ("root/.ssh/authorized_keys", "ssh-ed25519 AAAA admin\n", 0o600, (0, 0)),
    ];
    for (path, text, mode, (uid, gid)) in files {
        let path = root.join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, text).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        chown(&path, Some(uid), Some(gid)).unwrap();
    }
    chown(root.join("home/alice"), Some(1000), Some(1000)).unwrap();
    std::fs::hard_link(root.join("usr/bin/sh"), root.join("usr/bin/dash")).unwrap();
    symlink("usr/bin", root.join("bin")).unwrap();
    std::fs::create_dir_all(root.join("etc/apt/sources.list.d")).unwrap();
}

/// A scratch directory holding [`installed`] as `installed`; `None` (the test is
/// skipped) without root, which owners need, or without strace.
fn scratch_with_installed() -> Option<(tempfile::TempDir, PathBuf)> {
    if !root_or_skip("needs root (owners)") || !Path::new("/usr/bin/strace").exists() {
        eprintln!("skipped: needs root (owners) and /usr/bin/strace");
        return None;
    }
    let scratch = tempfile::tempdir().unwrap();
    let root = scratch.path().join("installed");
    installed(&root);
    Some((scratch, root))
}

/// A tree as the faithful copier's walk describes it (kind, owner, mode, contents,
/// link targets, hard links), without times: directories and files adopt makes are
/// new at each run.
fn tree_of(parent: &Path, name: &str) -> BTreeMap<PathBuf, Node> {
    let nodes = tree::walk(&Dir::open_root(parent).unwrap(), OsStr::new(name), true).unwrap();
    nodes.into_iter().map(|node| (PathBuf::from(&node.path), Node { mtime: (0, 0), ..node })).collect()
}

/// The first path where `found` differs from `expected`, said.
fn difference(found: &BTreeMap<PathBuf, Node>, expected: &BTreeMap<PathBuf, Node>) -> Option<String> {
    let paths: std::collections::BTreeSet<&PathBuf> = found.keys().chain(expected.keys()).collect();
    paths
        .into_iter()
        .find(|path| found.get(*path) != expected.get(*path))
        .map(|path| format!("{} is {:?}, not {:?}", path.display(), found.get(path), expected.get(path)))
}

fn adopt(root: &Path, volume: &Path, extra: &[&str]) -> Output {
    let mut command = Command::new(BIN);
    command.args(["adopt", "--from"]).arg(root).arg("--to").arg(volume).args(extra).env("NO_COLOR", "1");
    output(&mut command)
}

/// How many times each call in [`WRITE_CALLS`] is made by one adopt into an empty
/// volume, by the thread that makes it most: strace's `when=N` counts each thread's
/// calls on their own (a tree's file data is copied by worker threads).
fn count_calls(root: &Path, volume: &Path, trace: &Path) -> BTreeMap<String, usize> {
    let mut command = Command::new("strace");
    command.args(["-f", "-qq", "-o"]).arg(trace).arg("-e").arg(format!("trace={}", WRITE_CALLS.join(",")));
    command.args([BIN, "adopt", "--from"]).arg(root).arg("--to").arg(volume);
    let traced = output(&mut command);
    assert!(traced.status.success(), "{}", stderr(&traced));
    let mut by_thread: BTreeMap<(String, &str), usize> = BTreeMap::new();
    let trace = std::fs::read_to_string(trace).unwrap();
    for line in trace.lines() {
        // `PID name(args) = result`, or a call split by another process's.
        let mut words = line.split_whitespace();
        let pid = words.next().unwrap_or_default();
        let call = words.next().and_then(|c| c.split('(').next()).unwrap_or_default();
        let call = call.trim_start_matches("<...").trim();
        if WRITE_CALLS.contains(&call) && !line.contains("resumed>") {
            *by_thread.entry((call.to_owned(), pid)).or_default() += 1;
        }
    }
    let mut counts = BTreeMap::new();
    for ((call, _), count) in by_thread {
        let most: &mut usize = counts.entry(call).or_default();
        *most = (*most).max(count);
    }
    counts
}

/// The points to kill at: per call, every one up to [`POINTS_PER_CALL`], else that
/// many spread from the first to the last.
fn kill_points(counts: &BTreeMap<String, usize>) -> Vec<(String, usize)> {
    let mut points = Vec::new();
    for (call, &count) in counts {
        let chosen: Vec<usize> = if count <= POINTS_PER_CALL {
            (1..=count).collect()
        } else {
            (0..POINTS_PER_CALL).map(|i| 1 + i * (count - 1) / (POINTS_PER_CALL - 1)).collect()
        };
        points.extend(chosen.into_iter().map(|n| (call.clone(), n)));
    }
    points
}

/// What an uninterrupted adopt of `root` leaves in `volume` (which is removed after):
/// its tree, and the record's last word. The same path for every run to compare, as the
/// first generation names where its declaration was.
fn reference(root: &Path, volume: &Path, extra: &[&str]) -> BTreeMap<PathBuf, Node> {
    std::fs::create_dir(volume).unwrap();
    let clean = adopt(root, volume, extra);
    assert!(clean.status.success(), "{}", stderr(&clean));
    let record = std::fs::read_to_string(volume.join(".blankslate/adopt.toml")).unwrap();
    assert!(record.contains("step = \"done\""), "{record}");
    let tree = tree_of(volume.parent().unwrap(), volume.file_name().unwrap().to_str().unwrap());
    std::fs::remove_dir_all(volume).unwrap();
    tree
}

/// Kills `blankslate adopt` of `root` into the empty `volume` at the `n`-th `call`;
/// false if the call was never made.
fn adopt_killed(root: &Path, volume: &Path, call: &str, n: usize) -> bool {
    std::fs::create_dir(volume).unwrap();
    let mut killed = Command::new("strace");
    killed.args(["-f", "-qq", "-o", "/dev/null", "-e"]).arg(format!("inject={call}:signal=KILL:when={n}"));
    killed.args([BIN, "adopt", "--from"]).arg(root).arg("--to").arg(volume);
    !output(&mut killed).status.success()
}

#[test]
fn adopt_killed_at_any_write_then_run_again_ends_as_an_uninterrupted_one() {
    let Some((scratch, root)) = scratch_with_installed() else { return };
    let root_before = tree_of(scratch.path(), "installed");
    let counted = scratch.path().join("counted");
    std::fs::create_dir(&counted).unwrap();
    let counts = count_calls(&root, &counted, &scratch.path().join("trace"));
    for call in ["openat2", "mkdirat", "write", "pwrite64", "fsync", "renameat", "fchown", "fchmod", "flock"] {
        assert!(counts.get(call).is_some_and(|&n| n > 0), "adopt makes {call} calls: {counts:?}");
    }
    let points = kill_points(&counts);
    // Two at a time, each in a volume of its own.
    let failures: Vec<String> = std::thread::scope(|threads| {
        let halves: Vec<_> = points
            .chunks(points.len().div_ceil(2))
            .enumerate()
            .map(|(half, points)| {
                let (root, volume) = (&root, scratch.path().join(format!("volume-{half}")));
                threads.spawn(move || {
                    let expected = reference(root, &volume, &[]);
                    let name = volume.file_name().unwrap().to_str().unwrap();
                    let mut failures = Vec::new();
                    for (call, n) in points {
                        if !adopt_killed(root, &volume, call, *n) {
                            failures.push(format!("{call}#{n}: not killed (the call was not made)"));
                        }
                        let again = adopt(root, &volume, &[]);
                        if !again.status.success() {
                            failures.push(format!("{call}#{n}: the run after the kill failed: {}", stderr(&again)));
                        } else if let Some(difference) = difference(&tree_of(volume.parent().unwrap(), name), &expected)
                        {
                            failures.push(format!("{call}#{n}: unlike an uninterrupted adopt, {difference}"));
                        }
                        std::fs::remove_dir_all(&volume).unwrap();
                    }
                    failures
                })
            })
            .collect();
        halves.into_iter().flat_map(|half| half.join().unwrap()).collect()
    });
    assert!(failures.is_empty(), "{} of {} kill points:\n{}", failures.len(), points.len(), failures.join("\n"));
    assert_eq!(tree_of(scratch.path(), "installed"), root_before, "the installed root was never written");
    eprintln!("adopt: {} kill points over {} kinds of call ({counts:?}), all recovered", points.len(), counts.len());
}

#[test]
fn an_interrupted_adopt_is_finished_restarted_or_refused_but_never_left_to_a_person() {
    let Some((scratch, root)) = scratch_with_installed() else { return };
    let volume = scratch.path().join("volume");
    let expected = reference(&root, &volume, &["--mount-point", "/data"]);
    let tree = || tree_of(scratch.path(), "volume");

    // Something that adopt did not put there: refused, and left as it is.
    assert!(adopt_killed(&root, &volume, "renameat", 5));
    assert!(volume.join(".blankslate/adopt.toml").exists(), "the record is written before the copies");
    std::fs::write(volume.join("precious"), "data").unwrap();
    let refused = adopt(&root, &volume, &[]);
    assert_eq!(refused.status.code(), Some(3));
    assert!(stderr(&refused).contains("is not empty (it holds precious)"), "{}", stderr(&refused));
    assert_eq!(std::fs::read_to_string(volume.join("precious")).unwrap(), "data");
    std::fs::remove_dir_all(&volume).unwrap();

    // Another adopt into the volume (here: another mount point): what the interrupted
    // one made goes, and the volume ends as if it had been empty.
    assert!(adopt_killed(&root, &volume, "renameat", 5));
    let again = adopt(&root, &volume, &["--mount-point", "/data"]);
    assert!(again.status.success(), "{}", stderr(&again));
    assert!(stderr(&again).contains("was removed from this volume: adopting from the start"), "{}", stderr(&again));
    assert_eq!(difference(&tree(), &expected), None);

    // A finished adoption: the same adopt changes nothing; another is refused.
    let same = adopt(&root, &volume, &["--mount-point", "/data"]);
    assert!(same.status.success(), "{}", stderr(&same));
    assert!(stdout(&same).contains("holds this adoption, finished, already: nothing was done"), "{}", stdout(&same));
    assert_eq!(difference(&tree(), &expected), None);
    let other = adopt(&root, &volume, &[]);
    assert_eq!(other.status.code(), Some(3));
    assert!(stderr(&other).contains("holds a system adopted from"), "{}", stderr(&other));
    assert_eq!(difference(&tree(), &expected), None);
}
