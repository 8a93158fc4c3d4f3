//! The btrfs root on a real btrfs (an image on a loop device, mounted in a private
//! mount namespace): each boot gets an empty subvolume, the earlier roots are kept
//! read-only and the oldest deleted beyond `keep`, and what a killed boot left is
//! cleaned up by the next.

use std::path::Path;

use blankslate_activator::root::btrfs::{BootRecord, ROOTS_DIR, fresh_root, kept_roots};
use blankslate_activator::root::mount_btrfs_root;
use blankslate_decl::{BtrfsRoot, Device};
use blankslate_sys::fs::Dir;
use blankslate_sys::mount::{self, Detached, FsOption, MountAttrFlags};
use blankslate_test_support::{BtrfsImage, Scratch, in_namespace, root_or_skip};

fn record(generation: u32) -> BootRecord {
    BootRecord { booted: 1_700_000_000 + u64::from(generation), generation: Some(generation), boot_id: "b".into() }
}

/// The btrfs's top level, mounted detached: what `net list` sees.
fn top(device: &Path) -> Detached {
    let source = device.to_str().expect("a UTF-8 device");
    let options = [FsOption::Value("source", source), FsOption::Value("subvolid", "5")];
    Detached::new(device, "btrfs", &options, MountAttrFlags::empty()).expect("mount the top level")
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
        let scratch = Scratch::new().own_mount();
        let image = BtrfsImage::new(&scratch.dir().join("roots.img"), "roots");
        let parent = Dir::open_root(scratch.dir()).unwrap();
        parent.create_dir("root", 0o755).unwrap();
        let spec = BtrfsRoot { device: Device::Label("roots".into()), keep: 2 };
        for boot in 0..4u32 {
            let (root, fresh) = mount_btrfs_root(&parent, "root", image.device(), &spec, 0o751, &record(boot)).unwrap();
            assert_eq!(fresh.name, format!("{boot:06}"));
            assert!(root.entries().unwrap().is_empty(), "boot {boot}: the root starts empty");
            assert_eq!(root.own_meta().unwrap().mode, 0o751, "the declared mode");
            assert_eq!(fresh.retired, if boot == 0 { vec![] } else { vec![format!("{:06}", boot - 1)] });
            assert_eq!(fresh.pruned, if boot == 3 { vec!["000000".to_owned()] } else { vec![] });
            assert!(fresh.left.is_empty(), "{:?}", fresh.left);
            root.write_atomic(format!("erased-{boot}"), b"forgotten", 0o600).unwrap();
            assert!(!parent.is_mount_point("btrfs-top").unwrap(), "the top level is not left mounted");
            mount::unmount(&parent, "root").unwrap();
        }
        assert_eq!(names(image.device()), ["000001", "000002", "000003"], "two previous roots and the last");

        let top = top(image.device());
        let kept = kept_roots(&top.dir().open_dir(ROOTS_DIR).unwrap()).unwrap();
        for (kept, boot) in kept.iter().zip(1u32..) {
            assert_eq!(kept.record, Some(record(boot)));
            assert_eq!(kept.root.entries().unwrap().len(), 1, "only what that boot wrote");
            assert_eq!(kept.root.read(format!("erased-{boot}")).unwrap(), b"forgotten");
            let read_only = blankslate_sys::btrfs::is_read_only(&kept.root).unwrap();
            assert_eq!(read_only, boot < 3, "root {boot}: earlier roots are read-only, the last is not yet");
        }
        let refused = kept[0].root.write_atomic("more", b"x", 0o600).unwrap_err();
        assert_eq!(refused.source.raw_os_error(), Some(rustix::io::Errno::ROFS.raw_os_error()), "{refused}");
    });
}

#[test]
fn a_boot_killed_half_way_is_cleaned_up_by_the_next_and_loses_no_root() {
    if !root_or_skip("loop devices and mounts need root") {
        return;
    }
    in_namespace(|| {
        let scratch = Scratch::new().own_mount();
        let image = BtrfsImage::new(&scratch.dir().join("roots.img"), "roots");
        let mounted = top(image.device());
        let top = mounted.dir();
        fresh_root(top, &record(0), 5, 0o755).unwrap();
        // Killed after its new root was made but before it was renamed into place,
        // and (another kill) after renaming a pruned root, before deleting it.
        let roots = top.open_dir(ROOTS_DIR).unwrap();
        for killed in [".root.tmp-1-1", ".000000.tmp-1-2"] {
            roots.create_dir(killed, 0o700).unwrap();
            blankslate_sys::btrfs::create_subvolume(&roots.open_dir(killed).unwrap(), "root").unwrap();
        }
        let fresh = fresh_root(top, &record(1), 5, 0o755).unwrap();
        assert_eq!(fresh.name, "000001");
        assert_eq!(fresh.retired, ["000000"], "the root booted last is made read-only");
        assert!(fresh.left.is_empty(), "{:?}", fresh.left);
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
