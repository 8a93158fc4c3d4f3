//! Drift from the declaration: parents, directories replaced by links, declared
//! directories, undeclared bind mounts, what a systemd boot writes.

#[allow(clippy::wildcard_imports)]
use super::*;

const PARENT: &str = r#"version = 1
[persist."/persist"]
directories = [{ directory = "/srv/www", parent = { user = "root", group = "root", mode = "0711" } }]
[etc."passwd"]
text = "root:x:0:0::/root:/bin/sh\napp:x:2000:2000::/:/bin/false\n"
[etc."group"]
text = "root:x:0:\napp:x:2000:\n"
"#;

#[test]
fn a_drifted_parent_is_reported_in_the_root_and_in_the_volume() {
    as_root_in_namespace(|| {
        let scratch = activated_with(PARENT, true);
        let report = scratch.audit();
        assert_eq!(report.exit_code(), 0, "activation enforced the parent: {}", summary(&report));
        std::fs::set_permissions(scratch.path("srv"), std::fs::Permissions::from_mode(0o755)).unwrap();
        std::os::unix::fs::chown(scratch.path("persist/srv"), Some(2000), Some(2000)).unwrap();
        let report = scratch.audit();
        let text = summary(&report);
        let mode = find(&report, Class::Persist, b"/srv");
        assert_eq!((mode.len(), mode[0].kind.as_str()), (1, "wrong-mode"), "{text}");
        assert_eq!(mode[0].reason, "mode 0755, declared 0711 for the parent of /srv/www");
        let owner = find(&report, Class::Persist, b"/persist/srv");
        assert_eq!((owner.len(), owner[0].kind.as_str()), (1, "wrong-owner"), "{text}");
        assert_eq!(owner[0].reason, "owner 2000:2000, declared root:root for the parent of /srv/www");
        assert_eq!(report.exit_code(), 2);
    });
}

#[test]
fn a_persisted_directory_replaced_by_a_link_into_the_volume_keeps_its_writes() {
    as_root_in_namespace(|| {
        let scratch = activated();
        let root = Dir::open_root(scratch.root()).unwrap();
        mount::unmount(&root.open_dir("var").unwrap(), "log").unwrap();
        std::fs::remove_dir(scratch.path("var/log")).unwrap();
        symlink("/persist/var/log", scratch.path("var/log")).unwrap();
        mount::unmount(&root.open_dir("var/lib").unwrap(), "app").unwrap();
        std::fs::remove_dir(scratch.path("var/lib/app")).unwrap();
        symlink("/srv/app", scratch.path("var/lib/app")).unwrap();
        let report = scratch.audit();
        let text = summary(&report);
        let log = find(&report, Class::Persist, b"/var/log");
        assert_eq!(log[0].kind, "replaced", "{text}");
        assert!(log[0].reason.contains("writes are kept"), "{}", log[0].reason);
        assert!(!log[0].reason.contains("lost"), "{}", log[0].reason);
        let app = find(&report, Class::Persist, b"/var/lib/app");
        assert!(app[0].reason.contains("writes go there, not to the volume"), "{}", app[0].reason);
    });
}

/// What a real systemd boot writes on a root where nothing declares it: what every boot
/// regenerates is ignored (the random seed, leases, a resolver configuration, the
/// shadow tools' backups); state is reported (timer stamps).
#[test]
fn what_a_systemd_boot_writes_is_ignored_or_reported_as_what_it_is() {
    as_root_in_namespace(|| {
        let s = activated();
        for regenerated in [
            "var/lib/systemd/random-seed",
            "var/lib/dhcp/dhclient.eth0.leases",
            "etc/resolv.conf",
            "etc/shadow-",
            "run/credentials/x",
        ] {
            s.write(regenerated, b"regenerated");
        }
        s.write("var/lib/systemd/timers/stamp-apt-daily.timer", b"");
        let report = s.audit();
        let text = summary(&report);
        assert_eq!(report.ignored.files, 5, "{text}");
        assert_eq!(find(&report, Class::Undeclared, b"/var/lib/systemd/timers").len(), 1, "the stamps: {text}");
        assert!(!text.contains("random-seed") && !text.contains("resolv.conf") && !text.contains("dhcp"), "{text}");
    });
}

/// A directory of the etc tree (`ssl/private`, 0710 root:ssl-cert) is part of what
/// activation made: its mode, owner and presence are checked, what a person puts in it
/// is a stray, and a repair clears the drift.
#[test]
fn a_declared_directory_that_drifted_is_reported_and_repaired() {
    as_root_in_namespace(|| {
        let tree = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(tree.path().join("ssl/private")).unwrap();
        std::fs::create_dir_all(tree.path().join("sudoers.d")).unwrap();
        std::os::unix::fs::chown(tree.path().join("ssl/private"), Some(0), Some(110)).unwrap();
        for (path, mode) in [("ssl", 0o755), ("ssl/private", 0o710), ("sudoers.d", 0o750)] {
            std::fs::set_permissions(tree.path().join(path), std::fs::Permissions::from_mode(mode)).unwrap();
        }
        let text = format!("version = 1\n[etc_tree]\nsource = \"{}\"\n", tree.path().display());
        let scratch = activated_with(&text, false);
        let etc_drift = |report: &Report| {
            let mut found: Vec<String> = report
                .findings
                .iter()
                .filter(|f| matches!(f.class, Class::EtcDrift | Class::EtcStray))
                .map(|f| format!("{} {} {}", f.class.key(), f.kind, String::from_utf8_lossy(&f.path)))
                .collect();
            found.sort();
            found
        };
        assert_eq!(etc_drift(&scratch.audit()), Vec::<String>::new());

        std::fs::set_permissions(scratch.path("etc/ssl/private"), std::fs::Permissions::from_mode(0o755)).unwrap();
        std::os::unix::fs::chown(scratch.path("etc/ssl/private"), Some(0), Some(0)).unwrap();
        scratch.write("etc/ssl/private/mine.pem", b"a person's key\n");
        std::fs::remove_dir(scratch.path("etc/sudoers.d")).unwrap();
        let report = scratch.audit();
        assert_eq!(
            etc_drift(&report),
            [
                "etc-drift missing /etc/sudoers.d",
                "etc-drift wrong-mode /etc/ssl/private",
                "etc-drift wrong-owner /etc/ssl/private",
                "etc-stray file /etc/ssl/private/mine.pem",
            ],
            "{}",
            summary(&report)
        );
        let mode = find(&report, Class::EtcDrift, b"/etc/ssl/private");
        assert!(mode.iter().any(|f| f.reason == "mode 0755, declared 0710"), "{}", summary(&report));

        let root = Dir::open_root(scratch.root()).unwrap();
        let state = State::open_locked(&root, Path::new(STATE_DIR)).unwrap();
        etc::repair(&state).unwrap().unwrap();
        drop(state);
        assert_eq!(etc_drift(&scratch.audit()), ["etc-stray file /etc/ssl/private/mine.pem"]);
    });
}

/// A path of the volume still bind-mounted in the root after the declaration stopped
/// declaring it (what a switch killed half-way left, issue 17): one `undeclared-mount`
/// finding (exit 2). A mount of anything else (not a volume) is not one, and neither
/// are the declared bind mounts and the volume itself.
#[test]
fn a_bind_mount_from_the_volume_that_nothing_declares_is_reported() {
    as_root_in_namespace(|| {
        let scratch = activated();
        scratch.write("persist/srv/old/data", b"kept in the volume");
        std::fs::create_dir_all(scratch.path("srv/old")).unwrap();
        std::fs::create_dir_all(scratch.path("srv/other")).unwrap();
        let root = Dir::open_root(scratch.root()).unwrap();
        let srv = root.open_dir("srv").unwrap();
        let old = root.open_dir("persist/srv/old").unwrap();
        mount::bind(Source::Dir(&old), &srv, "old", MountFlags::empty()).unwrap();
        mount::bind(Source::HostPath(&scratch.outside()), &srv, "other", MountFlags::empty()).unwrap();
        let report = scratch.audit();
        let text = summary(&report);
        let found: Vec<_> = report.findings.iter().filter(|f| f.kind == "undeclared-mount").collect();
        assert_eq!(found.len(), 1, "{text}");
        assert_eq!((found[0].class, found[0].path.as_slice()), (Class::Persist, &b"/srv/old"[..]), "{text}");
        assert!(found[0].reason.contains("mounted from the volume /persist, declared by nothing"), "{text}");
        assert_eq!(report.exit_code(), 2, "{text}");
        // What is below the mount is the volume's, not the root's: not undeclared state.
        assert!(find(&report, Class::Undeclared, b"/srv/old").is_empty(), "{text}");
        mount::unmount(&srv, "old").unwrap();
        mount::unmount(&srv, "other").unwrap();
        let report = scratch.audit();
        assert!(report.findings.iter().all(|f| f.kind != "undeclared-mount"), "{}", summary(&report));
    });
}
