//! Activations that must audit clean, a volume nested in another included.

#[allow(clippy::wildcard_imports)]
use super::*;

#[test]
fn a_clean_activation_audits_clean() {
    as_root_in_namespace(|| {
        let scratch = activated();
        // A volume as boot finds it: the state at its own path inside, and the
        // file system's empty lost+found.
        scratch.write("persist/var/lib/blankslate/profiles/current", b"");
        std::fs::create_dir(scratch.path("persist/lost+found")).unwrap();
        let report = scratch.audit();
        assert_eq!(report.exit_code(), 0, "{}", summary(&report));
        assert!(report.findings.is_empty(), "{}", summary(&report));
        // The persisted mounts and the state directory were skipped, not walked.
        assert!(report.stats.declared > 0);
    });
}

/// A volume mounted inside another's mount point (`/persist/big` in `/persist`): its
/// mount point is the volume's business, not a stray; unmounted, its paths are
/// reported missing and nothing of it is taken for stray data of `/persist`.
#[test]
fn a_volume_nested_in_another_audits_clean() {
    if !root_or_skip("needs root") {
        return;
    }
    let text = format!(
        "{DECLARATION}\n[persist.\"/persist/big\"]\ndevice = \"LABEL=big\"\ndirectories = [\"/var/lib/big\"]\n"
    );
    in_namespace(move || {
        let scratch = activated_mounting(&text, |root| {
            mount::mount_new(root, "persist", "tmpfs", &[], rustix::mount::MountAttrFlags::empty()).unwrap();
            let persist = root.open_dir("persist").unwrap();
            persist.create_dir("big", 0o755).unwrap();
            mount::mount_new(&persist, "big", "tmpfs", &[("mode", "755")], rustix::mount::MountAttrFlags::empty())
                .unwrap();
        });
        scratch.write("persist/big/var/lib/big/kept", b"big data");
        scratch.write("persist/var/lib/blankslate/profiles/current", b"");
        let report = scratch.audit();
        assert_eq!(report.exit_code(), 0, "{}", summary(&report));
        assert_eq!(std::fs::read(scratch.path("var/lib/big/kept")).unwrap(), b"big data");
        let big = Dir::open_root(&scratch.path("var/lib")).unwrap();
        mount::unmount(&big, "big").unwrap();
        let persist = Dir::open_root(&scratch.path("persist")).unwrap();
        mount::unmount(&persist, "big").unwrap();
        let report = scratch.audit();
        let found = summary(&report);
        assert!(found.contains("persist source-missing /var/lib/big"), "{found}");
        assert!(!found.contains("persist-stray"), "{found}");
    });
}
