//! Prints a table: how long `blankslate --version` takes as a whole process against
//! `/bin/true` (the floor of starting any program), alternating runs so that both
//! see the same load, with the ratio of the medians; and the system calls of each
//! (`strace -c -f`).
//!
//! Run: `cargo build --release && cargo bench --bench startup` (needs
//! `target/release/blankslate`; the syscall row needs `strace`).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const RUNS: usize = 201;
/// Cargo runs a bench with its own directories in the loader's search path: without
/// it, both programs start as they would from a shell, with no failed opens.
const LOADER_PATH: &str = "LD_LIBRARY_PATH";

fn binary() -> Option<PathBuf> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/release/blankslate");
    path.is_file().then_some(path)
}

fn timed(program: &Path, args: &[&str]) -> Duration {
    let start = Instant::now();
    let status = Command::new(program).args(args).env_remove(LOADER_PATH).stdout(Stdio::null()).status().unwrap();
    let elapsed = start.elapsed();
    assert!(status.success(), "{} {args:?}", program.display());
    elapsed
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

/// Total system calls of one run under `strace -c -f`.
fn syscalls(program: &Path, args: &[&str], out: &Path) -> Option<u64> {
    let status = Command::new("strace")
        .args(["-f", "-c", "-o"])
        .arg(out)
        .arg(program)
        .args(args)
        .env_remove(LOADER_PATH)
        .stdout(Stdio::null())
        .status()
        .ok()?;
    if !status.success() {
        return None;
    }
    let text = std::fs::read_to_string(out).ok()?;
    text.lines().find(|line| line.trim_end().ends_with("total")).and_then(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        fields.get(3)?.parse().ok()
    })
}

fn main() {
    let Some(binary) = binary() else {
        println!("n/a: no target/release/blankslate (run `cargo build --release` first)");
        return;
    };
    let truth = Path::new("/bin/true");
    let (mut ours, mut floor) = (Vec::new(), Vec::new());
    for _ in 0..RUNS {
        ours.push(timed(&binary, &["--version"]));
        floor.push(timed(truth, &[]));
    }
    let (ours, floor) = (median(ours), median(floor));
    let scratch = tempfile::tempdir().unwrap();
    let out = scratch.path().join("strace.out");
    let count = |program: &Path, args: &[&str]| {
        syscalls(program, args, &out).map_or_else(|| "n/a".to_owned(), |n| n.to_string())
    };
    println!("start-up: median of {RUNS} alternating runs (whole process)\n");
    println!("{:<36} {:>10} {:>12} {:>10} {:>9}", "case", "median ms", "vs /bin/true", "syscalls", "goal");
    println!(
        "{:<36} {:>10.3} {:>11.2}x {:>10} {:>9}",
        "blankslate --version",
        ours.as_secs_f64() * 1000.0,
        ours.as_secs_f64() / floor.as_secs_f64(),
        count(&binary, &["--version"]),
        "<= 1.3x"
    );
    println!(
        "{:<36} {:>10.3} {:>11.2}x {:>10} {:>9}",
        "baseline: /bin/true",
        floor.as_secs_f64() * 1000.0,
        1.0,
        count(truth, &[]),
        ""
    );
}
