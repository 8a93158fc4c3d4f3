//! Prints a table: what the btrfs root adds to a boot when the boot before it wrote
//! FILES files that nothing declares (default 10,000 files of 1 KiB in 100
//! directories): the boot's `mount_btrfs_root` (the top level mounted, the earlier
//! root made read-only, the oldest deleted beyond `keep`, a fresh subvolume made and
//! bound, the top level unmounted) right after a boot that wrote them, against the
//! same after a boot that wrote nothing, and against mounting a tmpfs root. With
//! `keep = 0` each boot both retires and deletes the root before it, which is what
//! every boot does with one root or another once `keep` roots are kept. Medians of RUNS
//! boots each, the cases interleaved, on a btrfs in a sparse file on a loop device.
//!
//! Run (as root, with mkfs.btrfs): `cargo bench -p blankslate-activator --bench
//! btrfs_root [-- FILES RUNS]`. Everything runs in a private mount namespace on a
//! scratch directory (`Scratch` with a tmpfs of its own); without root it prints n/a.

use std::path::Path;
use std::time::{Duration, Instant};

use blankslate_activator::root::btrfs::BootRecord;
use blankslate_activator::root::{mount_btrfs_root, mount_tmpfs};
use blankslate_decl::{BtrfsRoot, Device, RootSettings};
use blankslate_sys::fs::Dir;
use blankslate_sys::mount;
use blankslate_test_support::{BtrfsImage, Scratch, in_namespace, is_root};

const DIRS: usize = 100;
const FILE_BYTES: usize = 1024;

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

/// One boot of the btrfs root: its time; the root it made is then filled with
/// `files` erased files and unmounted.
fn boot(parent: &Dir, device: &Path, spec: &BtrfsRoot, number: u32, files: usize) -> Duration {
    let record = BootRecord { booted: u64::from(number), generation: Some(1), boot_id: format!("bench-{number}") };
    let start = Instant::now();
    let (root, fresh) = mount_btrfs_root(parent, "root", device, spec, 0o755, &record).expect("a btrfs root");
    let elapsed = start.elapsed();
    assert!(fresh.problems.is_empty(), "{:?}", fresh.problems);
    let payload = vec![0x5a_u8; FILE_BYTES];
    let dirs: Vec<Dir> = (0..DIRS.min(files))
        .map(|d| {
            root.create_dir(format!("d{d}"), 0o755).unwrap();
            root.open_dir(format!("d{d}")).unwrap()
        })
        .collect();
    for i in 0..files {
        dirs[i % DIRS].create_file(format!("f{i}"), &payload, 0o644).unwrap();
    }
    root.sync_file_system().unwrap();
    mount::unmount(parent, "root").unwrap();
    elapsed
}

fn main() {
    let mut args = std::env::args().skip(1).filter(|a| !a.starts_with('-'));
    let files: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(10_000);
    let runs: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(5);
    if !is_root() {
        println!("n/a: the btrfs root bench needs root (loop devices and mounts)");
        return;
    }
    let (after_files, after_nothing, tmpfs) = in_namespace(move || {
        let scratch = Scratch::new().own_mount();
        let image = BtrfsImage::with_size(&scratch.dir().join("roots.img"), "roots", 2 << 30);
        let parent = Dir::open_root(scratch.dir()).unwrap();
        parent.create_dir("root", 0o755).unwrap();
        let spec = BtrfsRoot { device: Device::Label("roots".into()), keep: 0 };
        let (mut after_files, mut after_nothing, mut tmpfs) = (Vec::new(), Vec::new(), Vec::new());
        boot(&parent, image.device(), &spec, 0, 0);
        let mut number = 1;
        for _ in 0..runs {
            // A boot that writes the files; the next one retires and deletes its root.
            boot(&parent, image.device(), &spec, number, files);
            after_files.push(boot(&parent, image.device(), &spec, number + 1, 0));
            after_nothing.push(boot(&parent, image.device(), &spec, number + 2, 0));
            number += 3;
            let start = Instant::now();
            mount_tmpfs(&parent, "root", &RootSettings::default()).unwrap();
            tmpfs.push(start.elapsed());
            mount::unmount(&parent, "root").unwrap();
        }
        (median(after_files), median(after_nothing), median(tmpfs))
    });
    println!("the btrfs root at boot (keep = 0), median of {runs} boots each; on a loop device");
    println!("| case | ms |");
    println!("|---|---|");
    println!(
        "| btrfs root, the boot before wrote {files} files ({FILE_BYTES} B, {DIRS} dirs) | {:.2} |",
        ms(after_files)
    );
    println!("| btrfs root, the boot before wrote nothing | {:.2} |", ms(after_nothing));
    println!("| baseline: tmpfs root | {:.2} |", ms(tmpfs));
    println!("what the erased files add to a boot: {:.2} ms", ms(after_files) - ms(after_nothing));
}
