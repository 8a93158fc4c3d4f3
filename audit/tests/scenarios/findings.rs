//! Every kind of finding, planted in one root, in the human and JSON reports.

#[allow(clippy::wildcard_imports)]
use super::*;

/// Plants every kind of finding and checks each.
fn plant(scratch: &Scratch) {
    let s = scratch;
    // Undeclared state: a group with hostile names and special files inside.
    s.write("srv/data/a.bin", [0; 1000]);
    s.write("srv/data/deep/er/b.bin", [0; 24]);
    s.write("srv/data/editor.swp", b"ignored by glob");
    std::fs::write(s.path("srv/data").join(std::ffi::OsStr::from_bytes(b"bad\xffname")), b"12345").unwrap();
    std::fs::write(s.path("srv/data/new\nline"), b"xy").unwrap();
    // Single entries right in skeleton directories: each its own finding.
    s.write("root/notes.txt", b"remember\n");
    std::fs::write(s.path("srv").join(std::ffi::OsStr::from_bytes(b"\xfe\xff")), b"abc").unwrap();
    std::fs::write(s.path("srv/line\nbreak"), b"").unwrap();
    rustix::fs::mknodat(
        rustix::fs::CWD,
        s.path("var/lib/fifo"),
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::from_raw_mode(0o600),
        0,
    )
    .unwrap();
    // The socket file stays when the listener is dropped.
    drop(std::os::unix::net::UnixListener::bind(s.path("var/lib/sock")).unwrap());
    symlink("/nowhere/at/all", s.path("var/lib/dangling")).unwrap();
    rustix::fs::mknodat(
        rustix::fs::CWD,
        s.path("var/lib/null"),
        rustix::fs::FileType::CharacterDevice,
        rustix::fs::Mode::from_raw_mode(0o600),
        rustix::fs::makedev(1, 3),
    )
    .unwrap();
    s.write("var/lib/newapp/db/state", [7; 4096]);
    // Ignored: regenerated at boot, or by [audit] ignore.
    s.write("tmp/scratch", b"tmp");
    s.write("var/cache/apt/pkgcache.bin", [1; 100]);
    s.write("root/.cache/thumbs/x", b"cache");
    // /etc drift.
    std::fs::remove_file(s.path("etc/hosts")).unwrap();
    std::fs::write(s.path("etc/hosts"), b"127.0.0.1 localhost\n10.0.0.1 db\n").unwrap();
    std::fs::remove_file(s.path("etc/ssh/sshd_config")).unwrap();
    symlink("/usr/share/sshd_config", s.path("etc/ssh/sshd_config")).unwrap();
    std::fs::write(s.path("etc/sudoers"), b"ALL ALL=(ALL) NOPASSWD: ALL\n").unwrap();
    std::fs::set_permissions(s.path("etc/sudoers"), std::fs::Permissions::from_mode(0o644)).unwrap();
    std::fs::remove_file(s.path("etc/group")).unwrap();
    // /etc strays.
    s.write("etc/hosts.allow", b"sshd: 10.0.0.0/8\n");
    s.write("etc/ssh/ssh_host_ed25519_key", b"-----BEGIN KEY-----\n");
    // Persistence: /var/log unmounted (and its source's mode wrong), /var/lib/app
    // mounted from elsewhere (and its source's owner wrong), the symlinked history
    // replaced by a file, the machine-id's source gone.
    let root = Dir::open_root(s.root()).unwrap();
    mount::unmount(&root.open_dir("var").unwrap(), "log").unwrap();
    std::fs::set_permissions(s.path("persist/var/log"), std::fs::Permissions::from_mode(0o777)).unwrap();
    let lib = root.open_dir("var/lib").unwrap();
    mount::unmount(&lib, "app").unwrap();
    mount::bind(Source::HostPath(&s.outside()), &lib, "app", MountFlags::empty()).unwrap();
    std::os::unix::fs::chown(s.path("persist/var/lib/app"), Some(0), Some(0)).unwrap();
    std::fs::remove_file(s.path("root/.bash_history")).unwrap();
    std::fs::write(s.path("root/.bash_history"), b"ls\n").unwrap();
    std::fs::remove_file(s.path("persist/etc/machine-id")).unwrap();
    // Persist strays, and a persist temporary that must not be reported.
    s.write("persist/var/lib/oldapp/data", [3; 300]);
    s.write("persist/.app.blankslate-persist-add/x", b"in progress");
    // What fsck recovered is reported; lost+found itself is not.
    s.write("persist/lost+found/#4711", b"recovered");
}

#[test]
fn every_finding_kind_is_reported() {
    if !root_or_skip("needs root") {
        return;
    }
    let (human, json) = in_namespace(|| {
        let scratch = activated();
        plant(&scratch);
        let report = scratch.audit();
        let text = summary(&report);
        let one = |class: Class, path: &[u8], kind: &str| {
            let found = find(&report, class, path);
            assert!(found.iter().any(|f| f.kind == kind), "{class:?} {kind} {}\n{text}", String::from_utf8_lossy(path));
        };
        // Undeclared: the group, sized and counted (the .swp is ignored inside it).
        let data = find(&report, Class::Undeclared, b"/srv/data");
        assert_eq!(
            (data[0].files, data[0].bytes, data[0].kind.as_str()),
            (4, 1000 + 24 + 5 + 2, "directory"),
            "{text}"
        );
        one(Class::Undeclared, b"/root/notes.txt", "file");
        one(Class::Undeclared, b"/srv/\xfe\xff", "file");
        one(Class::Undeclared, b"/srv/line\nbreak", "file");
        one(Class::Undeclared, b"/var/lib/fifo", "fifo");
        one(Class::Undeclared, b"/var/lib/sock", "socket");
        one(Class::Undeclared, b"/var/lib/dangling", "symlink");
        one(Class::Undeclared, b"/var/lib/null", "device");
        one(Class::Undeclared, b"/var/lib/newapp", "directory");
        // /etc.
        one(Class::EtcDrift, b"/etc/hosts", "replaced-by-file");
        one(Class::EtcDrift, b"/etc/ssh/sshd_config", "points-elsewhere");
        one(Class::EtcDrift, b"/etc/sudoers", "edited");
        one(Class::EtcDrift, b"/etc/sudoers", "wrong-mode");
        one(Class::EtcDrift, b"/etc/group", "missing");
        one(Class::EtcStray, b"/etc/hosts.allow", "file");
        one(Class::EtcStray, b"/etc/ssh/ssh_host_ed25519_key", "file");
        // Persistence.
        one(Class::Persist, b"/var/log", "not-mounted");
        one(Class::Persist, b"/var/log", "wrong-mode");
        one(Class::Persist, b"/var/lib/app", "wrong-source");
        one(Class::Persist, b"/var/lib/app", "wrong-owner");
        one(Class::Persist, b"/root/.bash_history", "replaced-by-file");
        one(Class::Persist, b"/etc/machine-id", "source-missing");
        // Its bind mount is still there, on the deleted file.
        let machine_id = find(&report, Class::Persist, b"/etc/machine-id");
        assert!(machine_id[0].reason.contains("a deleted copy"), "{}", machine_id[0].reason);
        one(Class::PersistStray, b"/persist/var/lib/oldapp", "directory");
        one(Class::PersistStray, b"/persist/lost+found/#4711", "file");
        assert!(find(&report, Class::PersistStray, b"/persist/lost+found").is_empty(), "{text}");
        assert!(!text.contains("blankslate-persist-add"), "{text}");
        assert!(!text.contains("/tmp") && !text.contains("cache") && !text.contains(".swp"), "{text}");
        // Ignored: tmp, var/cache, root/.cache, the .swp.
        assert_eq!(report.ignored.files, 4, "{:?}", report.ignored);
        assert_eq!(report.exit_code(), 2);
        let mut json = blankslate_audit::render::json(&report, "ROOT");
        json.as_object_mut().unwrap().remove("stats");
        json.as_object_mut().unwrap().remove("time");
        (blankslate_audit::render::human(&report, "ROOT", false), serde_json::to_string_pretty(&json).unwrap())
    });
    insta::assert_snapshot!("human", human);
    insta::assert_snapshot!("json", json);
}
