//! Declared directories (owner, mode, removal only when empty) and repair.

#[allow(clippy::wildcard_imports)]
use super::*;

/// An etc tree in a scratch directory, as `blankslate adopt` writes one: `dirs` are
/// `(path, mode, gid)`, `files` are `(path, contents)` (0644 root:root).
fn etc_tree(dirs: &[(&str, u32, u32)], files: &[(&str, &str)]) -> tempfile::TempDir {
    let tree = tempfile::tempdir().unwrap();
    for (path, contents) in files {
        let path = tree.path().join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, contents).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    }
    for (path, mode, gid) in dirs {
        let path = tree.path().join(path);
        std::fs::create_dir_all(&path).unwrap();
        std::os::unix::fs::chown(&path, Some(0), Some(*gid)).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(*mode)).unwrap();
    }
    tree
}

fn tree_declaration(tree: &Path) -> String {
    format!("version = 1\n[etc_tree]\nsource = \"{}\"\n", tree.display())
}

/// `(mode, uid, gid)` of a directory below the scratch root's `/etc`.
fn dir_meta(scratch: &EtcRoot, path: &str) -> (u32, u32, u32) {
    let meta = std::fs::symlink_metadata(scratch.etc(path)).unwrap_or_else(|e| panic!("/etc/{path}: {e}"));
    assert!(meta.is_dir(), "/etc/{path} is a directory");
    (meta.mode() & 0o7777, meta.uid(), meta.gid())
}

/// Debian's `ssl/private` (0710 root:ssl-cert) keeps its owner and mode, also where
/// an earlier generation made it an ordinary directory; empty directories exist. A
/// switch that no longer declares them removes the empty one, keeps the one a person
/// wrote into (and says so), and makes a still-needed one ordinary again.
#[test]
fn declared_directories_get_their_owner_and_mode_and_go_only_when_empty() {
    let scratch = EtcRoot::new();
    // Generation 1 makes ssl/private as an ordinary directory for the key below it.
    let one = scratch.build(1, "version = 1\n[etc.\"ssl/private/key.pem\"]\ntext = \"old key\\n\"\n");
    scratch.activate(&one);
    assert_eq!(dir_meta(&scratch, "ssl/private"), (0o755, 0, 0));

    let debian = etc_tree(
        &[
            ("ssl/private", 0o710, 110),
            ("apt/sources.list.d", 0o755, 0),
            ("sudoers.d", 0o750, 0),
            ("empty/deep", 0o700, 0),
        ],
        &[("ssl/private/key.pem", "key\n")],
    );
    let two = scratch.build(2, &tree_declaration(debian.path()));
    let activated = scratch.activate(&two);
    assert_eq!(action(&activated, "ssl/private"), Some(Action::Replace), "{}", activated.plan);
    assert_eq!(action(&activated, "sudoers.d"), Some(Action::Create), "{}", activated.plan);
    assert!(activated.plan.to_string().contains("+ sudoers.d     directory 0750 root:root"), "{}", activated.plan);
    assert_eq!(dir_meta(&scratch, "ssl/private"), (0o710, 0, 110));
    assert_eq!(dir_meta(&scratch, "apt/sources.list.d"), (0o755, 0, 0));
    assert_eq!(dir_meta(&scratch, "sudoers.d"), (0o750, 0, 0));
    assert_eq!(dir_meta(&scratch, "empty/deep"), (0o700, 0, 0));
    assert_eq!(scratch.read("ssl/private/key.pem"), "key\n");
    // A person's file goes where the directory is.
    scratch.write("apt/sources.list.d/mine.list", "deb http://example.org/ stable main\n");

    let ordinary = etc_tree(&[], &[("ssl/private/key.pem", "key\n")]);
    let three = scratch.build(3, &tree_declaration(ordinary.path()));
    let activated = scratch.activate(&three);
    let plan = activated.plan.to_string();
    assert_eq!(action(&activated, "sudoers.d"), Some(Action::Remove), "{plan}");
    assert_eq!(action(&activated, "empty/deep"), Some(Action::Remove), "{plan}");
    assert!(!scratch.etc("sudoers.d").exists() && !scratch.etc("empty").exists(), "{plan}");
    assert!(matches!(action(&activated, "apt/sources.list.d"), Some(Action::LeaveAlone { .. })), "{plan}");
    assert!(
        plan.contains("= apt/sources.list.d no longer declared, left alone: a directory holding a person's files"),
        "{plan}"
    );
    assert!(scratch.etc("apt/sources.list.d/mine.list").is_file(), "a person's file is never lost");
    // Still the parent of a declared file: an ordinary directory again.
    assert_eq!(action(&activated, "ssl/private"), Some(Action::Replace), "{plan}");
    assert_eq!(dir_meta(&scratch, "ssl/private"), (0o755, 0, 0));
    assert_eq!(scratch.read("ssl/private/key.pem"), "key\n");

    // Back to generation 2: the kept directory is taken as it is, with what it holds.
    scratch.activate(&two);
    assert_eq!(dir_meta(&scratch, "ssl/private"), (0o710, 0, 110));
    assert!(scratch.etc("apt/sources.list.d/mine.list").is_file());
    assert_eq!(dir_meta(&scratch, "sudoers.d"), (0o750, 0, 0));
}

/// A declared directory with the wrong mode or owner, or gone, is put back by a
/// repair, and what is in it stays; a file where it goes is moved aside.
#[test]
fn repair_puts_back_a_declared_directory() {
    let scratch = EtcRoot::new();
    let tree = etc_tree(&[("ssl/private", 0o710, 110), ("sudoers.d", 0o750, 0)], &[("ssl/private/key.pem", "key\n")]);
    let one = scratch.build(1, &tree_declaration(tree.path()));
    scratch.activate(&one);
    std::fs::set_permissions(scratch.etc("ssl/private"), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::os::unix::fs::chown(scratch.etc("ssl/private"), Some(0), Some(0)).unwrap();
    scratch.write("ssl/private/mine.pem", "a person's key\n");
    std::fs::remove_dir(scratch.etc("sudoers.d")).unwrap();
    std::fs::write(scratch.etc("sudoers.d"), "a file\n").unwrap();

    let state = State::open_locked(&scratch.root, Path::new(DEFAULT_STATE_DIR)).unwrap();
    let repaired = etc::repair(&state).unwrap().unwrap();
    let plan = repaired.plan.to_string();
    assert_eq!(action(&repaired, "ssl/private"), Some(Action::Fix { found: "mode 0755, owner 0:0".into() }), "{plan}");
    assert!(matches!(action(&repaired, "sudoers.d"), Some(Action::BackUp { .. })), "{plan}");
    assert_eq!(dir_meta(&scratch, "ssl/private"), (0o710, 0, 110));
    assert_eq!(dir_meta(&scratch, "sudoers.d"), (0o750, 0, 0));
    assert_eq!(std::fs::read_to_string(scratch.etc("ssl/private/mine.pem")).unwrap(), "a person's key\n");
    assert_eq!(std::fs::read_to_string(scratch.etc("sudoers.d.blankslate-backup")).unwrap(), "a file\n");
    let again = etc::repair(&state).unwrap().unwrap();
    assert!(again.plan.is_noop(), "{}", again.plan);
}

/// A repair finds a managed link replaced by a file: with the declared bytes it is
/// taken over, otherwise moved aside; `repair_only` looks at the paths it is given
/// and at nothing else.
#[test]
fn repair_takes_over_a_file_with_the_declared_bytes_and_repair_only_keeps_to_its_paths() {
    let scratch = EtcRoot::new();
    let one =
        scratch.build(1, "version = 1\n[etc.\"same\"]\ntext = \"same\\n\"\n[etc.\"edited\"]\ntext = \"declared\\n\"\n");
    scratch.activate(&one);
    for (name, contents) in [("same", "same\n"), ("edited", "a person's\n")] {
        std::fs::remove_file(scratch.etc(name)).unwrap();
        std::fs::write(scratch.etc(name), contents).unwrap();
    }
    let state = State::open_locked(&scratch.root, Path::new(DEFAULT_STATE_DIR)).unwrap();
    let only = etc::repair_only(&state, &["same".to_owned()]).unwrap().unwrap();
    assert_eq!(action(&only, "same"), Some(Action::Replace), "{}", only.plan);
    assert_eq!(action(&only, "edited"), None, "{}", only.plan);
    assert!(only.plan.to_string().contains("1 taken over"), "{}", only.plan);
    assert_eq!(scratch.link("same"), "/etc/static/same");
    assert_eq!(std::fs::read_to_string(scratch.etc("edited")).unwrap(), "a person's\n", "not its path");

    let repaired = etc::repair(&state).unwrap().unwrap();
    assert!(matches!(action(&repaired, "edited"), Some(Action::BackUp { .. })), "{}", repaired.plan);
    assert!(!scratch.etc("same.blankslate-backup").exists());
}

/// A declared directory that becomes a file: an empty one is replaced, one holding a
/// person's files moved aside; and back.
#[test]
fn a_declared_directory_changes_to_a_file_and_back() {
    let scratch = EtcRoot::new();
    let tree = etc_tree(&[("sudoers.d", 0o750, 0)], &[]);
    let one = scratch.build(1, &tree_declaration(tree.path()));
    let two = scratch.build(2, "version = 1\n[etc.\"sudoers.d\"]\ntext = \"now a file\\n\"\n");
    scratch.activate(&one);
    let activated = scratch.activate(&two);
    assert_eq!(action(&activated, "sudoers.d"), Some(Action::Replace), "{}", activated.plan);
    assert_eq!(scratch.read("sudoers.d"), "now a file\n");
    let activated = scratch.activate(&one);
    assert_eq!(action(&activated, "sudoers.d"), Some(Action::Replace), "{}", activated.plan);
    assert_eq!(dir_meta(&scratch, "sudoers.d"), (0o750, 0, 0));

    scratch.write("sudoers.d/mine", "a person's\n");
    let activated = scratch.activate(&two);
    assert!(matches!(action(&activated, "sudoers.d"), Some(Action::BackUp { .. })), "{}", activated.plan);
    assert_eq!(scratch.read("sudoers.d"), "now a file\n");
    assert_eq!(std::fs::read_to_string(scratch.etc("sudoers.d.blankslate-backup/mine")).unwrap(), "a person's\n");

    // An empty directory a person made inside is a person's too: moved aside with it,
    // never a rename onto a directory that fails half-way.
    std::fs::remove_dir_all(scratch.etc("sudoers.d.blankslate-backup")).unwrap();
    scratch.activate(&one);
    std::fs::create_dir(scratch.etc("sudoers.d/sub")).unwrap();
    let activated = scratch.activate(&two);
    assert!(matches!(action(&activated, "sudoers.d"), Some(Action::BackUp { .. })), "{}", activated.plan);
    assert_eq!(scratch.read("sudoers.d"), "now a file\n");
    assert!(scratch.etc("sudoers.d.blankslate-backup/sub").is_dir());
    assert!(!scratch.etc(".blankslate/journal.json").exists(), "nothing left half-done");
}
