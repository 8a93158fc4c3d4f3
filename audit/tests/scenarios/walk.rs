//! How the walk goes: descriptors and memory on deep and wide trees, ignore globs,
//! hard links, unreadable directories.

#[allow(clippy::wildcard_imports)]
use super::*;

#[test]
fn deep_trees_use_few_descriptors_and_wide_ones_little_memory() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    // 300 levels: deeper than the walker keeps descriptors open for.
    let mut deep = root.join("srv/deep");
    for _ in 0..300 {
        deep.push("d");
    }
    std::fs::create_dir_all(&deep).unwrap();
    std::fs::write(deep.join("leaf"), b"leaf").unwrap();
    std::fs::create_dir_all(root.join("srv/a/b")).unwrap();
    std::fs::write(root.join("srv/a/b/c"), b"c").unwrap();
    let report = audit_plain(&root, "version = 1\n");
    assert!(report.stats.max_open <= blankslate_audit::walk::MAX_OPEN + 1, "{:?}", report.stats);
    let deep = find(&report, Class::Undeclared, b"/srv/deep");
    assert_eq!((deep[0].files, deep[0].bytes), (1, 4), "{}", summary(&report));
    assert_eq!(find(&report, Class::Undeclared, b"/srv/a")[0].files, 1);
    assert_eq!(report.exit_code(), 1);
}

#[test]
fn ignore_globs_stay_within_one_path_component() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let text = r#"version = 1
[audit]
ignore = ["/home/*/.cache/**", "/srv/*.log", "/srv/*.d/**", "/opt/**/tmp/**", "/var/lib/a?c"]
"#;
    // `*` matches one component: bob's own cache is ignored, a project's is not.
    write(root, "home/bob/.cache/thumbs/x", b"12345");
    write(root, "home/bob/project/.cache/y", b"123");
    // A home holding nothing but an ignored cache is accounted for, as it would be
    // with the literal `/home/carol/.cache/**`.
    write(root, "home/carol/.cache/z", b"1");
    write(root, "srv/app.log", b"ignored");
    write(root, "srv/sub/app.log", b"reported");
    // `DIR/**` with a wildcard in DIR: DIR itself is not an empty undeclared directory.
    write(root, "srv/conf.d/a.conf", b"x");
    std::fs::create_dir_all(root.join("srv/empty.d")).unwrap();
    // `**` crosses directories.
    write(root, "opt/a/b/tmp/t", b"t");
    write(root, "var/lib/abc", b"ignored");
    write(root, "var/lib/a/c", b"reported");
    let report = audit_plain(root, text);
    let text = summary(&report);
    let bob = find(&report, Class::Undeclared, b"/home/bob");
    assert_eq!(bob.len(), 1, "{text}");
    assert_eq!((bob[0].files, bob[0].bytes), (1, 3), "only project/.cache/y: {text}");
    assert!(find(&report, Class::Undeclared, b"/home/carol").is_empty(), "{text}");
    assert!(find(&report, Class::Undeclared, b"/srv/app.log").is_empty(), "{text}");
    assert_eq!(find(&report, Class::Undeclared, b"/srv/sub")[0].files, 1, "{text}");
    assert!(find(&report, Class::Undeclared, b"/srv/conf.d").is_empty(), "{text}");
    assert!(find(&report, Class::Undeclared, b"/srv/empty.d").is_empty(), "{text}");
    assert!(find(&report, Class::Undeclared, b"/opt/a").is_empty(), "{text}");
    assert!(find(&report, Class::Undeclared, b"/var/lib/abc").is_empty(), "{text}");
    assert_eq!(find(&report, Class::Undeclared, b"/var/lib/a")[0].files, 1, "{text}");
    // Everything reported is listed above; an empty directory nothing ignores still is.
    std::fs::create_dir_all(root.join("srv/empty")).unwrap();
    let again = audit_plain(
        root,
        r#"version = 1
[audit]
ignore = ["/home/*/.cache/**", "/srv/*.log", "/srv/*.d/**", "/opt/**/tmp/**", "/var/lib/a?c"]
"#,
    );
    let empty = find(&again, Class::Undeclared, b"/srv/empty");
    assert_eq!((empty.len(), empty[0].files), (1, 0), "{}", summary(&again));
    assert_eq!(again.total(Class::Undeclared).count, 4, "{}", summary(&again));
    // ignored: bob's and carol's caches, /srv/app.log, conf.d's file, opt's tmp, abc.
    assert_eq!(again.ignored.files, 6, "{:?}", again.ignored);
}

#[test]
fn hard_linked_data_counts_once_per_finding() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    write(root, "srv/data/a", &[0; 1000]);
    write(root, "srv/data/sub/x", &[0; 10]);
    std::fs::hard_link(root.join("srv/data/a"), root.join("srv/data/b")).unwrap();
    std::fs::hard_link(root.join("srv/data/a"), root.join("srv/data/sub/c")).unwrap();
    write(root, "srv/other/keep", b"");
    std::fs::hard_link(root.join("srv/data/a"), root.join("srv/other/d")).unwrap();
    let report = audit_plain(root, "version = 1\n");
    let data = find(&report, Class::Undeclared, b"/srv/data");
    // Four names, 1010 bytes of data.
    assert_eq!((data[0].files, data[0].bytes), (4, 1010), "{}", summary(&report));
    // Another finding holding a name of the same file counts it too.
    let other = find(&report, Class::Undeclared, b"/srv/other");
    assert_eq!((other[0].files, other[0].bytes), (2, 1000), "{}", summary(&report));
}

#[test]
fn an_unreadable_directory_is_an_error_not_an_empty_finding() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_path_buf();
    write(&root, "srv/locked/secret", b"hidden");
    write(&root, "srv/data/open", b"12");
    write(&root, "srv/data/inner/secret", b"hidden");
    for locked in ["srv/locked", "srv/data/inner"] {
        std::fs::set_permissions(root.join(locked), std::fs::Permissions::from_mode(0o000)).unwrap();
    }
    // As root, drop the capabilities that read through permissions (in this thread,
    // and so in the walker threads it starts).
    let report = std::thread::spawn(move || {
        use rustix::thread::{CapabilitySet, capabilities, set_capabilities};
        let mut sets = capabilities(None).unwrap();
        sets.effective -= CapabilitySet::DAC_OVERRIDE | CapabilitySet::DAC_READ_SEARCH;
        set_capabilities(None, sets).unwrap();
        audit_plain(&root, "version = 1\n")
    })
    .join()
    .unwrap();
    let text = summary(&report);
    assert!(find(&report, Class::Undeclared, b"/srv/locked").is_empty(), "not a 0-file finding: {text}");
    let error = find(&report, Class::Error, b"/srv/locked");
    assert!(error[0].reason.contains("lost at the next reboot; size unknown"), "{}", error[0].reason);
    let data = find(&report, Class::Undeclared, b"/srv/data");
    assert_eq!(data[0].files, 1, "{text}");
    assert!(data[0].reason.starts_with("at least"), "{}", data[0].reason);
    assert_eq!(
        find(&report, Class::Error, b"/srv/data/inner")[0].reason,
        "cannot read: Permission denied (os error 13)"
    );
    assert_eq!(report.exit_code(), 3);
}
