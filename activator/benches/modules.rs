//! Prints a table: what decompressing a kernel module costs `blankslate initrd`
//! (lzma-rs for `.ko.xz`, ruzstd for `.ko.zst`) next to the `xz -d` and `zstd -d`
//! programs (liblzma, libzstd) on the same data, in the same run. The module is the
//! Debian kernel's `virtio_blk.ko` when the VM tests have fetched it
//! (`target/vm-kernel`), else this bench's own first 256 KiB (machine code too).
//!
//! Run: `cargo bench -p blankslate-activator --bench modules`

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const RUNS: usize = 21;

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn timed(mut work: impl FnMut()) -> Duration {
    median(
        (0..RUNS)
            .map(|_| {
                let started = Instant::now();
                work();
                started.elapsed()
            })
            .collect(),
    )
}

/// `data` through `tool` with `args`, standard input to standard output.
fn pipe(tool: &str, args: &[&str], data: &[u8]) -> Vec<u8> {
    let mut child = Command::new(tool)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{tool}: {e}"));
    let mut stdin = child.stdin.take().unwrap();
    let input = data.to_vec();
    let writer = std::thread::spawn(move || stdin.write_all(&input));
    let output = child.wait_with_output().unwrap();
    writer.join().unwrap().unwrap();
    assert!(output.status.success(), "{tool} {args:?}");
    output.stdout
}

fn module() -> (String, Vec<u8>) {
    let cache = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/vm-kernel/unpacked/lib/modules");
    let found = std::fs::read_dir(&cache)
        .ok()
        .and_then(|mut versions| versions.next())
        .and_then(Result::ok)
        .map(|version| version.path().join("kernel/drivers/block/virtio_blk.ko"))
        .filter(|path: &PathBuf| path.exists());
    if let Some(path) = found {
        return ("virtio_blk.ko (Debian 12)".into(), std::fs::read(path).unwrap());
    }
    let mut own = std::fs::read(std::env::current_exe().unwrap()).unwrap();
    own.truncate(256 << 10);
    ("this bench's first 256 KiB".into(), own)
}

fn main() {
    let (what, plain) = module();
    println!("decompressing {what}: {} bytes, median of {RUNS} runs", plain.len());
    println!(
        "{:<34} {:>10} {:>12} {:>14} {:>7}",
        "format (as compressed)", "bytes", "blankslate", "baseline tool", "ratio"
    );
    for (format, tool, compress, decompress) in [
        (
            "xz --check=crc32 --lzma2=dict=1MiB",
            "xz",
            &["--check=crc32", "--lzma2=dict=1MiB", "-c"][..],
            &["-d", "-c"][..],
        ),
        ("zstd -19", "zstd", &["-q", "-19", "-c"][..], &["-q", "-d", "-c"][..]),
    ] {
        let packed = pipe(tool, compress, &plain);
        let path = Path::new("m.ko");
        let ours = timed(|| {
            let out = blankslate_activator::modules::decompress(path, packed.clone()).unwrap();
            assert_eq!(out.len(), plain.len());
        });
        // The tool's own start (an empty stream) is taken off its time.
        let empty = pipe(tool, compress, b"");
        let start = timed(|| drop(pipe(tool, decompress, &empty)));
        let theirs = timed(|| {
            let out = pipe(tool, decompress, &packed);
            assert_eq!(out.len(), plain.len());
        })
        .saturating_sub(start);
        println!(
            "{format:<34} {:>10} {:>9.2} ms {:>11.2} ms {:>6.2}x",
            packed.len(),
            ours.as_secs_f64() * 1000.0,
            theirs.as_secs_f64() * 1000.0,
            ours.as_secs_f64() / theirs.as_secs_f64()
        );
    }
    println!("(the baseline is the tool's time on the module less its time on an empty stream)");
}
