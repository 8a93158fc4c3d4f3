//! Prints a table: how long `blankslate --version` takes as a whole process against
//! `/bin/true` (the floor of starting any program), alternating runs so that all
//! see the same load, each round starting at the next program, with the ratio of the
//! medians; and the system calls of each
//! (`strace -c -f`). Two builds of blankslate: the release build cargo makes here
//! (dynamically linked), and the static binary users boot and run, as the VM tests
//! build it (`target/vm-static`), when it is there.
//!
//! Run: `cargo build --release && cargo bench --bench startup` (needs
//! `target/release/blankslate`; the static row needs the static build of the README's
//! "Install" section with `--target-dir target/vm-static`; the syscall column needs
//! `strace`).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const RUNS: usize = 201;
/// Cargo runs a bench with its own directories in the loader's search path: without
/// it, both programs start as they would from a shell, with no failed opens.
const LOADER_PATH: &str = "LD_LIBRARY_PATH";

/// The builds measured, by name, where they exist.
fn binaries() -> Vec<(&'static str, PathBuf)> {
    let target = Path::new(env!("CARGO_MANIFEST_DIR")).join("target");
    [
        ("blankslate --version", target.join("release/blankslate")),
        ("blankslate --version (static)", target.join("vm-static/x86_64-unknown-linux-gnu/release/blankslate")),
    ]
    .into_iter()
    .filter(|(_, path)| path.is_file())
    .collect()
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
    let binaries = binaries();
    if binaries.is_empty() {
        println!("n/a: no target/release/blankslate (run `cargo build --release` first)");
        return;
    }
    let truth = Path::new("/bin/true");
    // Each round starts at the next program, so that each runs as often in each place
    // of the order: which program follows which moves a median by a third.
    let programs: Vec<&Path> = binaries.iter().map(|(_, binary)| binary.as_path()).chain([truth]).collect();
    let mut samples = vec![Vec::new(); programs.len()];
    for round in 0..RUNS {
        for offset in 0..programs.len() {
            let index = (round + offset) % programs.len();
            let args: &[&str] = if programs[index] == truth { &[] } else { &["--version"] };
            samples[index].push(timed(programs[index], args));
        }
    }
    let floor = median(samples.pop().expect("/bin/true was timed"));
    let ours = samples;
    let scratch = tempfile::tempdir().unwrap();
    let out = scratch.path().join("strace.out");
    let count = |program: &Path, args: &[&str]| {
        syscalls(program, args, &out).map_or_else(|| "n/a".to_owned(), |n| n.to_string())
    };
    println!("start-up: median of {RUNS} alternating runs (whole process)\n");
    println!("{:<36} {:>10} {:>12} {:>10} {:>9}", "case", "median ms", "vs /bin/true", "syscalls", "goal");
    for ((name, binary), samples) in binaries.iter().zip(ours) {
        let time = median(samples);
        println!(
            "{name:<36} {:>10.3} {:>11.2}x {:>10} {:>9}",
            time.as_secs_f64() * 1000.0,
            time.as_secs_f64() / floor.as_secs_f64(),
            count(binary, &["--version"]),
            "<= 1.3x"
        );
    }
    println!(
        "{:<36} {:>10.3} {:>11.2}x {:>10} {:>9}",
        "baseline: /bin/true",
        floor.as_secs_f64() * 1000.0,
        1.0,
        count(truth, &[]),
        ""
    );
}
