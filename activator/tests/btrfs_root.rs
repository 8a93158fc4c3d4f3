//! The btrfs root on a real btrfs (an image on a loop device, mounted in a private
//! mount namespace): each boot gets an empty subvolume, the earlier roots are kept
//! read-only and the oldest deleted beyond `keep`, and what a killed boot left is
//! cleaned up by the next.

use std::path::Path;

use blankslate_activator::root::btrfs::{
    BootRecord, BtrfsRootError, Fresh, ROOTS_DIR, fresh_root, kept_roots, mark_switched, mount_top_level,
    previous_roots,
};
use blankslate_activator::root::mount_btrfs_root;
use blankslate_decl::{BtrfsRoot, Device};
use blankslate_sys::btrfs;
use blankslate_sys::fs::Dir;
use blankslate_sys::mount::{self, Detached, MountAttrFlags};
use blankslate_test_support::{BtrfsImage, Scratch, in_namespace, root_or_skip};

fn record(generation: u32) -> BootRecord {
    BootRecord { booted: 1_700_000_000 + u64::from(generation), generation: Some(generation), boot_id: "b".into() }
}

/// The btrfs's top level, mounted detached: what `net list` sees.
fn top(device: &Path) -> Detached {
    mount_top_level(device, MountAttrFlags::empty()).expect("mount the top level")
}

/// Runs `body` (as root, in a private mount namespace) on the top level of a fresh
/// btrfs of `bytes`, mounted detached; nothing when not root.
fn on_btrfs(bytes: u64, body: impl FnOnce(&Dir, &Path) + Send + 'static) {
    if !root_or_skip("loop devices and mounts need root") {
        return;
    }
    in_namespace(move || {
        let scratch = Scratch::new().own_mount();
        let image = BtrfsImage::with_size(&scratch.dir().join("roots.img"), "roots", bytes);
        let mounted = top(image.device());
        body(mounted.dir(), image.device());
    });
}

/// What the initramfs sees: a parent directory with `root` to mount the new root on,
/// and a btrfs labelled `roots` on a loop device (fields dropped in this order).
struct Machine {
    parent: Dir,
    image: BtrfsImage,
    scratch: Scratch,
}

impl Machine {
    fn new() -> Machine {
        let scratch = Scratch::new().own_mount();
        let image = BtrfsImage::new(&scratch.dir().join("roots.img"), "roots");
        let parent = Dir::open_root(scratch.dir()).unwrap();
        parent.create_dir("root", 0o755).unwrap();
        Machine { parent, image, scratch }
    }

    /// Boot `number` with `keep = 2`, its new root mounted on `root` with `mode`.
    fn boot(&self, number: u32, mode: u32) -> (Dir, Fresh) {
        let spec = BtrfsRoot { device: Device::Label("roots".into()), keep: 2 };
        mount_btrfs_root(&self.parent, "root", self.image.device(), &spec, mode, &record(number)).unwrap()
    }
}

fn names(device: &Path) -> Vec<String> {
    let top = top(device);
    kept_roots(&top.dir().open_dir(ROOTS_DIR).unwrap()).unwrap().into_iter().map(|r| r.name).collect()
}

#[test]
fn every_boot_gets_an_empty_root_and_keeps_the_last_ones_read_only() {
    if !root_or_skip("loop devices and mounts need root") {
        return;
    }
    in_namespace(|| {
        let machine = Machine::new();
        let (image, parent) = (&machine.image, &machine.parent);
        for boot in 0..4u32 {
            let (root, fresh) = machine.boot(boot, 0o751);
            assert_eq!(fresh.name, format!("{boot:06}"));
            assert!(root.entries().unwrap().is_empty(), "boot {boot}: the root starts empty");
            assert_eq!(root.own_meta().unwrap().mode, 0o751, "the declared mode");
            assert_eq!(fresh.retired, if boot == 0 { vec![] } else { vec![format!("{:06}", boot - 1)] });
            assert_eq!(fresh.pruned, if boot == 3 { vec!["000000".to_owned()] } else { vec![] });
            assert!(fresh.problems.is_empty(), "{:?}", fresh.problems);
            root.write_atomic(format!("erased-{boot}"), b"forgotten", 0o600).unwrap();
            assert!(!parent.is_mount_point("btrfs-top").unwrap(), "the top level is not left mounted");
            mount::unmount(parent, "root").unwrap();
        }
        assert_eq!(names(image.device()), ["000001", "000002", "000003"], "two previous roots and the last");

        let top = top(image.device());
        let kept = kept_roots(&top.dir().open_dir(ROOTS_DIR).unwrap()).unwrap();
        for (kept, boot) in kept.iter().zip(1u32..) {
            assert_eq!(kept.record, Some(record(boot)));
            assert_eq!(kept.root.entries().unwrap().len(), 1, "only what that boot wrote");
            assert_eq!(kept.root.read(format!("erased-{boot}")).unwrap(), b"forgotten");
            let read_only = btrfs::is_read_only(&kept.root).unwrap();
            assert_eq!(read_only, boot < 3, "root {boot}: earlier roots are read-only, the last is not yet");
        }
        let refused = kept[0].root.write_atomic("more", b"x", 0o600).unwrap_err();
        assert_eq!(refused.source.raw_os_error(), Some(rustix::io::Errno::ROFS.raw_os_error()), "{refused}");
    });
}

#[test]
fn a_boot_killed_half_way_is_cleaned_up_by_the_next_and_loses_no_root() {
    on_btrfs(256 << 20, |top, _| {
        fresh_root(top, &record(0), 5, 0o755).unwrap();
        // Killed after its new root was made but before it was renamed into place,
        // and (another kill) after renaming a pruned root, before deleting it.
        let roots = top.open_dir(ROOTS_DIR).unwrap();
        for killed in [".root.tmp-1-1", ".000000.tmp-1-2"] {
            roots.create_dir(killed, 0o700).unwrap();
            btrfs::create_subvolume(&roots.open_dir(killed).unwrap(), "root").unwrap();
        }
        let fresh = fresh_root(top, &record(1), 5, 0o755).unwrap();
        assert_eq!(fresh.name, "000001");
        assert_eq!(fresh.retired, ["000000"], "the root booted last is made read-only");
        assert!(fresh.problems.is_empty(), "{:?}", fresh.problems);
        let left: Vec<_> = roots.entries().unwrap().into_iter().map(|(name, _)| name).collect();
        assert_eq!(left, ["000000", "000001"], "the temporaries are gone, every root is there");
        // Killed after making the earlier roots read-only, before its own: the next
        // boot does it again, and nothing fails on a root already read-only.
        let again = fresh_root(top, &record(2), 5, 0o755).unwrap();
        assert_eq!((again.name.as_str(), again.retired.as_slice()), ("000002", &["000001".to_owned()][..]));
    });
}

#[test]
fn a_device_that_is_not_btrfs_is_refused_by_name() {
    let scratch = tempfile::tempdir().unwrap();
    let error = fresh_root(&Dir::open_root(scratch.path()).unwrap(), &record(0), 1, 0o755).unwrap_err();
    assert!(error.to_string().contains("is not on a btrfs"), "{error}");
}

#[test]
fn a_subvolume_a_user_made_inside_a_root_does_not_stop_its_deletion() {
    on_btrfs(256 << 20, |top, _| {
        let first = fresh_root(top, &record(0), 1, 0o755).unwrap();
        // What `btrfs subvolume create /var/tmp/x` does, with one more inside it,
        // made read-only by its owner.
        let tmp = first.root.create_dir_all("var/tmp", 0o1777).unwrap();
        btrfs::create_subvolume(&tmp, "x").unwrap();
        btrfs::create_subvolume(&tmp.open_dir("x").unwrap(), "y").unwrap();
        btrfs::set_read_only(&tmp.open_dir("x/y").unwrap(), true).unwrap();
        fresh_root(top, &record(1), 1, 0o755).unwrap();
        let third = fresh_root(top, &record(2), 1, 0o755).unwrap();
        assert_eq!(third.pruned, ["000000"], "{:?}", third.problems);
        assert!(third.problems.is_empty(), "{:?}", third.problems);
        let left: Vec<_> = top.open_dir(ROOTS_DIR).unwrap().entries().unwrap().into_iter().map(|(n, _)| n).collect();
        assert_eq!(left, ["000001", "000002"]);
    });
}

#[test]
fn a_full_btrfs_drops_the_oldest_roots_until_the_new_one_fits() {
    on_btrfs(128 << 20, |top, device| {
        let first = fresh_root(top, &record(0), 5, 0o755).unwrap();
        // The first boot filled the disk.
        let chunk = vec![0x5a; 1 << 20];
        let mut file = first.root.create_file("fill", b"", 0o600).unwrap();
        while std::io::Write::write_all(&mut file, &chunk).is_ok() {}
        drop((file, first)); // what is open in a root keeps its space
        btrfs::sync(top).unwrap();
        assert!(top.write_atomic("probe", &[1; 4000], 0o600).is_err(), "the btrfs is full");
        let fresh = fresh_root(top, &record(1), 5, 0o755).unwrap();
        assert_eq!(fresh.name, "000001");
        assert_eq!(fresh.dropped, ["000000"], "{:?}", fresh.problems);
        assert!(fresh.problems.is_empty(), "{:?}", fresh.problems);
        assert_eq!(names(device), ["000001"]);
    });
}

#[test]
fn roots_never_switched_into_are_pruned_before_the_others() {
    on_btrfs(256 << 20, |top, device| {
        // Boot 0 reached its system; boots 1 and 2 failed in the initramfs.
        mark_switched(&fresh_root(top, &record(0), 1, 0o755).unwrap().boot_dir).unwrap();
        fresh_root(top, &record(1), 5, 0o755).unwrap();
        fresh_root(top, &record(2), 5, 0o755).unwrap();
        let fresh = fresh_root(top, &record(3), 1, 0o755).unwrap();
        assert_eq!(fresh.pruned, ["000001", "000002"], "the failed boots' roots go first");
        assert_eq!(names(device), ["000000", "000003"], "the last good root is kept");
    });
}

#[test]
fn what_cannot_be_done_to_an_earlier_root_is_reported_and_the_boot_goes_on() {
    on_btrfs(256 << 20, |top, _| {
        // `roots/` with a careless mode and owner, and a root that is no subvolume
        // (which cannot be made read-only).
        top.create_dir(ROOTS_DIR, 0o755).unwrap();
        let roots = top.open_dir(ROOTS_DIR).unwrap();
        roots.set_owner(1000, 1000).unwrap();
        roots.create_dir_all("000000/root", 0o755).unwrap();
        let fresh = fresh_root(top, &record(1), 5, 0o755).unwrap();
        assert_eq!(fresh.name, "000001");
        assert!(
            matches!(fresh.problems.as_slice(), [BtrfsRootError::Fs(error)] if error.op == "read the flags of"),
            "{:?}",
            fresh.problems
        );
        let meta = roots.own_meta().unwrap();
        assert_eq!((meta.uid, meta.gid, meta.mode & 0o7777), (0, 0, 0o700), "roots/ is root's alone again");
    });
}

#[test]
fn the_previous_roots_are_read_from_the_running_root_s_own_btrfs_only() {
    if !root_or_skip("loop devices and mounts need root") {
        return;
    }
    in_namespace(|| {
        let machine = Machine::new();
        let (scratch, parent) = (&machine.scratch, &machine.parent);
        for boot in 0..3u32 {
            let (root, _) = machine.boot(boot, 0o755);
            if boot < 2 {
                drop(root);
                mount::unmount(parent, "root").unwrap();
            }
        }
        let live = parent.open_dir("root").unwrap();
        let previous = previous_roots(&live).unwrap().expect("a btrfs root has previous roots");
        let names: Vec<_> = previous.roots.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(names, ["000000", "000001"], "the running root is not among them");

        assert!(
            previous_roots(&Dir::open_root(scratch.dir()).unwrap()).unwrap().is_none(),
            "a root not on a btrfs has none"
        );

        // A btrfs that does not hold the running root (one labelled the same, say).
        let other = BtrfsImage::new(&scratch.dir().join("other.img"), "roots");
        parent.create_dir("other", 0o755).unwrap();
        mount_top_level(other.device(), MountAttrFlags::empty()).unwrap().attach(parent, "other").unwrap();
        let error = previous_roots(&parent.open_dir("other").unwrap()).unwrap_err();
        assert!(matches!(error, BtrfsRootError::NotTheRunningRoots { .. }), "{error}");
        mount::unmount(parent, "other").unwrap();
    });
}
