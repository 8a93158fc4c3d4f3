//! A persistent root whose volume is not mounted, at audit or since activation.

#[allow(clippy::wildcard_imports)]
use super::*;

#[test]
fn a_persistent_root_that_is_not_mounted_is_one_finding() {
    as_root_in_namespace(|| {
        // The volume never mounted: activation made everything in a plain directory.
        let scratch = activated_with(DECLARATION, false);
        scratch.write("persist/var/log/syslog", [1; 100]);
        let report = scratch.audit();
        let text = summary(&report);
        let volume = find(&report, Class::Volume, b"/persist");
        assert_eq!(volume.len(), 1, "{text}");
        assert_eq!(volume[0].kind, "not-mounted");
        assert!(volume[0].reason.contains("not a mounted volume"), "{}", volume[0].reason);
        assert!(volume[0].reason.contains("4 paths persisted from it are on the root too"), "{}", volume[0].reason);
        assert!(volume[0].reason.contains("lost at the next reboot"), "{}", volume[0].reason);
        // Its data: the machine-id, the history and the syslog.
        assert_eq!(volume[0].files, 3, "{text}");
        // Nothing per entry, no strays from its contents.
        for class in [Class::Persist, Class::PersistStray] {
            assert_eq!(report.total(class).count, 0, "{text}");
        }
        assert_eq!(report.exit_code(), 2);
    });
}

#[test]
fn a_volume_unmounted_after_activation_is_named_as_the_cause() {
    as_root_in_namespace(|| {
        let scratch = activated();
        let root = Dir::open_root(scratch.root()).unwrap();
        mount::unmount(&root, "persist").unwrap();
        let report = scratch.audit();
        let text = summary(&report);
        let volume = find(&report, Class::Volume, b"/persist");
        assert_eq!((volume.len(), volume[0].kind.as_str()), (1, "not-mounted"), "{text}");
        // The two bind mounts still reach the volume; the symlinked history goes
        // through the empty mount point, onto the root; the machine-id is mounted too.
        assert!(
            volume[0].reason.contains("3 paths still mounted from it keep their writes; 1 path is on the root: lost"),
            "{}",
            volume[0].reason
        );
        assert_eq!(report.total(Class::Persist).count, 0, "no source-missing per entry: {text}");
        // Gone altogether: named as such.
        std::fs::remove_dir(scratch.path("persist")).unwrap();
        let report = scratch.audit();
        let volume = find(&report, Class::Volume, b"/persist");
        assert_eq!(volume[0].kind, "volume-missing", "{}", summary(&report));
        assert!(volume[0].reason.starts_with("not there: the volume is not mounted"), "{}", volume[0].reason);
        assert_eq!(report.exit_code(), 2);
        // A switch now would leave every mounted path alone: activation never moves the
        // data a mount shows of the real volume onto the root.
        assert!(volume[0].reason.contains("mount the volume again before any switch"), "{}", volume[0].reason);
        std::fs::create_dir(scratch.path("persist")).unwrap();
        let users = blankslate_decl::UserDb::from_texts(
            "root:x:0:0::/root:/bin/sh\napp:x:2000:2000::/:/bin/false\n",
            "root:x:0:\napp:x:2000:\n",
            "t",
        );
        let activated = blankslate_persist::bring_in(&root, &declaration(DECLARATION), &users, None).unwrap();
        assert!(activated.migrated.is_empty(), "{activated:?}");
        let refused: Vec<&str> = activated.conflicts.iter().map(|(path, _)| path.as_str()).collect();
        assert_eq!(refused, ["/etc/machine-id", "/var/lib/app", "/var/log"], "{activated:?}");
        assert!(!scratch.path("persist/var/log").exists(), "nothing moved onto the root");
    });
}
