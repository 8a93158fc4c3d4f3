//! Prints a table: what one read of `/proc/self/mountinfo` costs with N bind mounts
//! added in a private mount namespace, against the same read with none added (the
//! baseline), and the cost of re-reading it after each of N mount events, which is
//! what systemd (and every other watcher of the table: udisks, gvfs, …) does. This
//! is the measurement behind `check`'s `many-mounts` threshold.
//!
//! Run (as root): `cargo bench -p blankslate-sys --bench mountinfo`

use std::hint::black_box;
use std::time::{Duration, Instant};

use blankslate_sys::fs::Dir;
use blankslate_sys::mount::{self, MountFlags, Source};

const STEPS: [u32; 7] = [0, 100, 250, 500, 1000, 2000, 4000];
const RUNS: usize = 31;

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

/// One full read of the mount table, split into lines as libmount does. The
/// namespace is this thread's (`/proc/self` would show the main thread's).
fn read_table() -> usize {
    let text = std::fs::read("/proc/thread-self/mountinfo").expect("procfs");
    text.split(|b| *b == b'\n').filter(|l| !l.is_empty()).count()
}

fn main() {
    let rows = std::thread::spawn(|| {
        blankslate_sys::raw::unshare_mount_namespace().expect("unshare (run as root)");
        mount::make_private().unwrap();
        let scratch = tempfile::tempdir_in("/dev/shm").unwrap();
        let root = Dir::open_root(scratch.path()).unwrap();
        let volume = root.create_dir_all("volume", 0o755).unwrap();
        let targets = root.create_dir_all("targets", 0o755).unwrap();
        let mut added = 0u32;
        let mut rows = Vec::new();
        for step in STEPS {
            while added < step {
                let name = format!("d{added}");
                volume.create_dir(&name, 0o755).unwrap();
                targets.create_dir(&name, 0o755).unwrap();
                let source = volume.open_dir(&name).unwrap();
                mount::bind(Source::Dir(&source), &targets, &name, MountFlags::empty()).unwrap();
                added += 1;
            }
            let lines = read_table();
            let read = median(
                (0..RUNS)
                    .map(|_| {
                        let start = Instant::now();
                        black_box(read_table());
                        start.elapsed()
                    })
                    .collect(),
            );
            rows.push((step, lines, read));
        }
        // The mounts go with the namespace when this thread's process exits.
        rows
    })
    .join()
    .unwrap();
    let baseline = rows[0].2;
    let us = |d: Duration| d.as_secs_f64() * 1e6;
    println!("one read of /proc/self/mountinfo, median of {RUNS}; baseline: the same read with no mount added");
    println!(
        "{:>12} {:>7} {:>12} {:>11} {:>26}",
        "bind mounts", "lines", "µs per read", "x baseline", "ms to re-read after each"
    );
    for (mounts, lines, read) in rows {
        // Re-reading after every one of N mount events costs about N reads of the
        // average table, which grows linearly: N²/2 lines in all.
        let after_each = us(baseline) * f64::from(mounts) + (us(read) - us(baseline)) * f64::from(mounts) / 2.0;
        println!(
            "{mounts:>12} {lines:>7} {:>12.1} {:>11.1} {:>26.1}",
            us(read),
            us(read) / us(baseline),
            after_each / 1000.0
        );
    }
}
