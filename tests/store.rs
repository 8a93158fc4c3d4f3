//! The store under crashes: `generations gc` killed (SIGKILL) at every write-class
//! system call it makes, or given EIO there (`strace --inject`), leaves no partial
//! object under a real name; the natural recovery (gc again, or the next build) leaves
//! a clean store, and building the removed declaration again gives a sound object and
//! a switch whose /etc links all resolve.

use std::ffi::OsString;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::ExitStatusExt;
use std::path::{Component, Path, PathBuf};
use std::process::{Command, Output};

mod common;
use blankslate_test_support::root_or_skip;
use common::{blankslate_env, output, stderr, stdout};

const STRACE: &str = "/usr/bin/strace";

/// The system calls gc changes something with (`strace -c` of a run), and the ones
/// its lock and output go through.
const KILL_CALLS: [&str; 9] =
    ["renameat", "renameat2", "unlinkat", "fchmod", "fsync", "write", "openat2", "flock", "mkdirat"];
/// Calls gc makes many of that change nothing here (opening what it reads): every
/// k-th is enough.
const SAMPLED: [(&str, usize); 1] = [("openat2", 4)];
/// The calls an I/O error can come from.
const EIO_CALLS: [&str; 6] = ["renameat", "renameat2", "unlinkat", "fchmod", "fsync", "write"];

/// Generation 1: links, a secret copy, nested directories; generation 2 differs in one
/// entry, so gc of generation 1 removes a generation object and an etc object.
const ONE: &str = r#"version = 1
[etc."hosts"]
text = "127.0.0.1 localhost\n"
[etc."motd"]
text = "generation one\n"
[etc."sudoers"]
text = "root ALL=(ALL) ALL\n"
mode = "0440"
[etc."ssh/sshd_config"]
text = "Port 22\n"
[etc."ssh/ssh_config.d/local.conf"]
text = "ForwardAgent no\n"
"#;

fn run(root: &Path, args: &[&str]) -> Output {
    let mut all = args.to_vec();
    all.extend(["--root", root.to_str().unwrap()]);
    blankslate_env(&all, &[])
}

fn ok(root: &Path, args: &[&str]) -> String {
    let output = run(root, args);
    assert!(output.status.success(), "{args:?}: {}{}", stdout(&output), stderr(&output));
    stdout(&output)
}

/// Whether `path` (absolute, as seen inside `root`) leads to something that exists,
/// following symlinks as a process whose `/` is `root` would.
fn resolves_in(root: &Path, path: &Path) -> bool {
    let mut pending: Vec<OsString> = path.components().rev().map(|c| c.as_os_str().to_owned()).collect();
    let mut resolved = PathBuf::from("/");
    let mut hops = 0;
    while let Some(name) = pending.pop() {
        match Path::new(&name).components().next() {
            Some(Component::RootDir | Component::CurDir) | None => continue,
            Some(Component::ParentDir) => {
                resolved.pop();
                continue;
            }
            _ => {}
        }
        let candidate = resolved.join(&name);
        let real = root.join(candidate.strip_prefix("/").unwrap());
        match std::fs::symlink_metadata(&real) {
            Err(_) => return false,
            Ok(meta) if meta.file_type().is_symlink() => {
                hops += 1;
                if hops > 40 {
                    return false;
                }
                let target = std::fs::read_link(&real).unwrap();
                if target.is_absolute() {
                    resolved = PathBuf::from("/");
                }
                pending.extend(target.components().rev().map(|c| c.as_os_str().to_owned()));
            }
            Ok(_) => resolved = candidate,
        }
    }
    true
}

/// Every symlink below `/etc` of `root` that leads nowhere.
fn dangling(root: &Path) -> Vec<String> {
    fn walk(root: &Path, inside: &Path, out: &mut Vec<String>) {
        for entry in std::fs::read_dir(root.join(inside.strip_prefix("/").unwrap())).unwrap() {
            let entry = entry.unwrap();
            let path = inside.join(entry.file_name());
            let kind = entry.file_type().unwrap();
            if kind.is_symlink() && !resolves_in(root, &path) {
                out.push(path.display().to_string());
            } else if kind.is_dir() && entry.file_name() != ".blankslate" {
                walk(root, &path, out);
            }
        }
    }
    let mut out = Vec::new();
    walk(root, Path::new("/etc"), &mut out);
    out
}

/// What one injection did.
enum Outcome {
    /// The call was reached and the injection made.
    Injected,
    /// gc ended before that many calls: no more points for this call.
    Past,
}

/// Runs `gc` on `root` under strace with `inject` (`signal=KILL` or `error=EIO`) at
/// the `n`th `call`.
fn gc_with(root: &Path, call: &str, inject: &str, n: usize) -> Outcome {
    let trace = root.with_extension("strace");
    let output = output(
        Command::new(STRACE)
            .args(["-f", "-qq", "-o", trace.to_str().unwrap(), "-e", &format!("trace={call}")])
            .args(["-e", &format!("inject={call}:{inject}:when={n}")])
            .arg(env!("CARGO_BIN_EXE_blankslate"))
            .args(["generations", "gc", "--root", root.to_str().unwrap()])
            .env_remove("BLANKSLATE_FAILPOINT"),
    );
    let injected = std::fs::read_to_string(&trace).unwrap().contains("(INJECTED)");
    std::fs::remove_file(&trace).unwrap();
    if output.status.signal() == Some(9) || injected {
        Outcome::Injected
    } else {
        assert!(output.status.success(), "gc at {call}#{n} ({inject}) failed uninjected: {}", stderr(&output));
        Outcome::Past
    }
}

/// The store after a gc was stopped: no object is partial (there may be debris,
/// temporaries the next writer removes); then the recovery, and a rebuild of what
/// gc removed.
fn check_after(root: &Path, declaration: &str, point: &str) {
    let verify = run(root, &["store", "verify"]);
    assert!(stdout(&verify).contains(" checked, 0 corrupt, "), "{point}: a partial object:\n{}", stdout(&verify));
    // The removed declaration, built again before any gc: a sound object, every link
    // resolving.
    ok(root, &["switch", declaration]);
    let dangling = dangling(root);
    assert!(dangling.is_empty(), "{point}: dangling /etc links {dangling:?}");
    assert_eq!(std::fs::read_to_string(root.join("etc/sudoers")).unwrap(), "root ALL=(ALL) ALL\n", "{point}");
    ok(root, &["generations", "gc"]);
    let verify = run(root, &["store", "verify"]);
    assert!(verify.status.success(), "{point}: after gc again:\n{}", stdout(&verify));
    assert!(stdout(&verify).ends_with(" checked, 0 corrupt, 0 debris\n"), "{point}: {}", stdout(&verify));
}

#[test]
fn gc_killed_or_failing_at_any_write_leaves_no_partial_object() {
    if !root_or_skip("needs root (switch makes copies owned by root)") {
        return;
    }
    assert!(Path::new(STRACE).exists(), "{STRACE} is needed: apt-get install strace");
    let scratch = tempfile::tempdir().unwrap();
    let one = scratch.path().join("one.toml");
    std::fs::write(&one, ONE).unwrap();
    let two = scratch.path().join("two.toml");
    std::fs::write(&two, ONE.replace("generation one", "generation two")).unwrap();
    let (one, two) = (one.to_str().unwrap(), two.to_str().unwrap());
    // Generation 1 built and deleted, generation 2 active: gc removes generation 1's
    // generation and etc objects.
    let template = scratch.path().join("template");
    std::fs::create_dir(&template).unwrap();
    ok(&template, &["build", one]);
    ok(&template, &["switch", two]);
    ok(&template, &["generations", "delete", "1"]);

    let mut table: Vec<(&str, &str, usize)> = Vec::new();
    for (inject, calls) in [("signal=KILL", &KILL_CALLS[..]), ("error=EIO", &EIO_CALLS[..])] {
        for call in calls {
            let mut points = 0;
            let step = SAMPLED.iter().find(|(c, _)| c == call).map_or(1, |(_, k)| *k);
            for n in (1..).step_by(step) {
                let root = scratch.path().join(format!("{call}-{n}"));
                assert!(Command::new("cp").arg("-a").arg(&template).arg(&root).status().unwrap().success());
                let outcome = gc_with(&root, call, inject, n);
                if let Outcome::Injected = outcome {
                    check_after(&root, one, &format!("gc with {inject} at {call} #{n}"));
                    points += 1;
                }
                std::fs::remove_dir_all(&root).unwrap();
                if let Outcome::Past = outcome {
                    break;
                }
            }
            table.push((inject, call, points));
        }
    }
    eprintln!("{:<12} {:<10} {:>6}  recovered", "injection", "call", "points");
    for (inject, call, points) in &table {
        eprintln!("{inject:<12} {call:<10} {points:>6}  all");
    }
    let points = |inject: &str, call: &str| table.iter().find(|t| t.0 == inject && t.1 == call).map_or(0, |t| t.2);
    // The sweep reached every kind of change gc makes: the renames that take objects
    // away, the fsync that makes them durable, the deletes of the temporaries.
    assert!(points("signal=KILL", "renameat") + points("signal=KILL", "renameat2") >= 2, "{table:?}");
    assert!(points("signal=KILL", "unlinkat") >= 10, "{table:?}");
    assert!(points("signal=KILL", "fsync") >= 2, "{table:?}");
    assert!(points("error=EIO", "unlinkat") >= 10, "{table:?}");
}

/// A flipped byte in a store object (here the secret `sudoers`) is found by `store
/// verify`, and building the same declaration again writes the object anew instead of
/// trusting what is there.
#[test]
fn a_damaged_object_is_found_and_written_again_by_the_next_build() {
    let scratch = tempfile::tempdir().unwrap();
    let one = scratch.path().join("one.toml");
    std::fs::write(&one, ONE).unwrap();
    let root = scratch.path().join("root");
    std::fs::create_dir(&root).unwrap();
    ok(&root, &["build", one.to_str().unwrap()]);
    let store = root.join("var/lib/blankslate/store");
    let is_etc = |p: &PathBuf| p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.ends_with("-etc"));
    let etc = std::fs::read_dir(&store).unwrap().map(|e| e.unwrap().path()).find(is_etc).unwrap();
    let sudoers = etc.join("etc/sudoers");
    let mut bytes = std::fs::read(&sudoers).unwrap();
    bytes[0] ^= 1;
    let mode = std::fs::metadata(&sudoers).unwrap().permissions();
    std::fs::set_permissions(&sudoers, std::fs::Permissions::from_mode(0o600)).unwrap();
    std::fs::write(&sudoers, &bytes).unwrap();
    std::fs::set_permissions(&sudoers, mode).unwrap();

    let verify = run(&root, &["store", "verify"]);
    assert_eq!(verify.status.code(), Some(1));
    let name = etc.file_name().unwrap().to_str().unwrap();
    assert!(stdout(&verify).contains(&format!("corrupt: {name}: content hashes to")), "{}", stdout(&verify));
    assert!(ok(&root, &["build", one.to_str().unwrap()]).starts_with("unchanged: generation 1"));
    assert_eq!(std::fs::read_to_string(&sudoers).unwrap(), "root ALL=(ALL) ALL\n");
    let verify = run(&root, &["store", "verify"]);
    assert!(verify.status.success(), "{}", stdout(&verify));
}
