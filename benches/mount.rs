//! Prints a table: how long activating 200 persisted paths (150 directories, 50 files)
//! takes on a tmpfs scratch root (on a first boot, on a later boot, and as a no-op),
//! against a shell loop of
//! `mount --bind` for the same paths in the same namespace; and how many mount system
//! calls each path costs (strace, from a sandbox run with 0 and with 200 paths).
//!
//! Run (as root): `cargo bench --bench mount`

use std::fmt::Write as _;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use blankslate_decl::{self as decl, Declaration, UserDb};
use blankslate_sys::fs::Dir;
use blankslate_sys::mount::{self, Source};
use blankslate_test_support::Scratch;

const DIRECTORIES: usize = 150;
const FILES: usize = 50;
const RUNS: usize = 9;

fn declaration_text(directories: usize, files: usize) -> String {
    let mut text = String::from("version = 1\n[persist.\"/persist\"]\ndirectories = [\n");
    for i in 0..directories {
        let _ = writeln!(text, "  {{ directory = \"/srv/app{}/data{i}\", mode = \"0750\" }},", i % 20);
    }
    text.push_str("]\nfiles = [\n");
    for i in 0..files {
        let _ = writeln!(text, "  \"/etc/keys/key{i}\",");
    }
    text.push_str("]\n");
    text
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

/// A scratch root on tmpfs (in /dev/shm) with a `persist` directory. It is a mount of
/// its own, so that dropping it detaches every mount made inside before the directory
/// is removed: nothing is left in /dev/shm.
fn scratch_root() -> Scratch {
    let scratch = Scratch::new_in(Path::new("/dev/shm")).own_mount();
    std::fs::create_dir(scratch.path("persist")).unwrap();
    scratch
}

/// The same 200 bind mounts as a shell loop (directories and files made first).
fn shell_script(root: &Path) -> String {
    let mut script = String::from("set -e\n");
    let volume = root.join("persist");
    let (r, v) = (root.display(), volume.display());
    for i in 0..DIRECTORIES {
        let path = format!("srv/app{}/data{i}", i % 20);
        let _ = writeln!(script, "mkdir -p {v}/{path} {r}/{path}; mount --bind {v}/{path} {r}/{path}");
    }
    let _ = writeln!(script, "mkdir -p {v}/etc/keys {r}/etc/keys");
    for i in 0..FILES {
        let _ = writeln!(
            script,
            "touch {v}/etc/keys/key{i} {r}/etc/keys/key{i}; mount --bind {v}/etc/keys/key{i} {r}/etc/keys/key{i}"
        );
    }
    script
}

/// Median times: first boot (the volume is empty, every source is created), boot (a
/// fresh root over a volume that already holds every source), no-op re-activation,
/// and the shell baseline.
fn timings(declaration: &Declaration, users: &UserDb) -> [Duration; 4] {
    let mut first = Vec::new();
    let mut boot = Vec::new();
    let mut noop = Vec::new();
    let mut shell = Vec::new();
    let populated = scratch_root();
    let populated_root = Dir::open_root(populated.root()).unwrap();
    blankslate_persist::bring_in(&populated_root, declaration, users, None).unwrap();
    let volume = populated_root.open_dir("persist").unwrap();
    for _ in 0..RUNS {
        let scratch = scratch_root();
        let root = Dir::open_root(scratch.root()).unwrap();
        let start = Instant::now();
        let report = blankslate_persist::bring_in(&root, declaration, users, None).unwrap();
        first.push(start.elapsed());
        assert_eq!(report.mounted.len(), DIRECTORIES + FILES);
        let start = Instant::now();
        blankslate_persist::bring_in(&root, declaration, users, None).unwrap();
        noop.push(start.elapsed());

        let fresh = scratch_root();
        let fresh_root = Dir::open_root(fresh.root()).unwrap();
        mount::bind(Source::Dir(&volume), &fresh_root, "persist", mount::MountFlags::empty()).unwrap();
        let start = Instant::now();
        let report = blankslate_persist::bring_in(&fresh_root, declaration, users, None).unwrap();
        boot.push(start.elapsed());
        assert_eq!(report.mounted.len(), DIRECTORIES + FILES);

        let baseline = scratch_root();
        let script = shell_script(baseline.root());
        let start = Instant::now();
        let status = Command::new("sh").arg("-c").arg(&script).status().unwrap();
        shell.push(start.elapsed());
        assert!(status.success());
    }
    [median(first), median(boot), median(noop), median(shell)]
}

/// System calls (of the classes in `trace`) of a sandbox run of `declaration`
/// (strace -f -c).
fn syscalls(declaration: &str, trace: &str) -> Option<u64> {
    let scratch = tempfile::tempdir().ok()?;
    let file = scratch.path().join("d.toml");
    std::fs::write(&file, declaration).ok()?;
    let output = Command::new("strace")
        .args(["-f", "-c", "-e", trace])
        .arg(env!("CARGO_BIN_EXE_blankslate"))
        .args(["sandbox", "--dir"])
        .arg(scratch.path().join("box"))
        .arg(&file)
        .args(["--", "true"])
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&output.stderr);
    let total = text.lines().find(|l| l.trim_end().ends_with("total"))?;
    // `% time, seconds, usecs/call, calls, [errors,] total`: calls is the fourth.
    total.split_whitespace().nth(3)?.parse().ok()
}

fn main() {
    let text = declaration_text(DIRECTORIES, FILES);
    let declaration = decl::check(Path::new("bench.toml"), &text, None).declaration.unwrap();
    let users = UserDb::from_texts("root:x:0:0::/root:/bin/sh\n", "root:x:0:\n", "bench");
    let [first, boot, noop, shell] = std::thread::spawn(move || {
        blankslate_sys::raw::unshare_mount_namespace().expect("unshare (run as root)");
        blankslate_sys::mount::make_private().unwrap();
        timings(&declaration, &users)
    })
    .join()
    .unwrap();
    let paths = DIRECTORIES + FILES;
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!("{paths} persisted paths ({DIRECTORIES} directories, {FILES} files) on tmpfs, median of {RUNS} runs");
    println!("{:<46} {:>9} {:>12}", "", "ms", "x baseline");
    println!("{:<46} {:>9.2} {:>12.2}", "baseline: shell loop of mount --bind", ms(shell), 1.0);
    println!(
        "{:<46} {:>9.2} {:>12.3}",
        "blankslate, first boot (creates every source)",
        ms(first),
        ms(first) / ms(shell)
    );
    println!("{:<46} {:>9.2} {:>12.3}", "blankslate, boot (fresh root, sources exist)", ms(boot), ms(boot) / ms(shell));
    println!("{:<46} {:>9.2} {:>12.3}", "blankslate persist activation, no-op", ms(noop), ms(noop) / ms(shell));
    let empty = declaration_text(0, 0);
    for (what, trace) in [
        ("mount system calls", "trace=mount,open_tree,move_mount,fsopen,fsconfig,fsmount,umount2"),
        ("system calls in all", "trace=all"),
    ] {
        let per_path = match (syscalls(&empty, trace), syscalls(&text, trace)) {
            (Some(empty), Some(full)) => {
                let calls = u32::try_from(full.saturating_sub(empty)).unwrap_or(u32::MAX);
                format!("{:.2}", f64::from(calls) / f64::from(u32::try_from(paths).unwrap_or(1)))
            }
            _ => "n/a (strace missing or the sandbox failed)".into(),
        };
        println!("{what} per persisted path (strace -f -c of a sandbox run, 200 paths minus none): {per_path}");
    }
}
