//! What is in the way of a declared path: files taken over, backed up under free
//! names, or refused without a change; an unknown owner.

#[allow(clippy::wildcard_imports)]
use super::*;

/// A package's file kept by declaring it as it is (copied into the etc tree): the live
/// file holds the declared bytes, so the link replaces it and nothing is backed up. A
/// file that differs by one byte still is.
#[test]
fn a_live_file_with_the_declared_bytes_is_taken_over_not_backed_up() {
    let scratch = EtcRoot::new();
    scratch.write("atd.conf", "OPTS=-l 4\n");
    scratch.write("other.conf", "OPTS=-l 5\n");
    let one = scratch.build(
        1,
        "version = 1\n[etc.\"atd.conf\"]\ntext = \"OPTS=-l 4\\n\"\n[etc.\"other.conf\"]\ntext = \"OPTS=-l 4\\n\"\n",
    );
    let activated = scratch.activate(&one);
    let backed_up: Vec<&str> = activated.plan.backups().map(|s| s.path.as_str()).collect();
    assert_eq!(backed_up, ["other.conf"]);
    assert_eq!(scratch.link("atd.conf"), "/etc/static/atd.conf");
    assert_eq!(scratch.read("atd.conf"), "OPTS=-l 4\n");
    assert!(!scratch.etc("atd.conf.blankslate-backup").exists());
    assert_eq!(scratch.read("other.conf.blankslate-backup"), "OPTS=-l 5\n");
}

#[test]
fn a_persons_file_or_directory_at_a_declared_path_is_backed_up() {
    let scratch = EtcRoot::new();
    scratch.write("hosts", "my hosts");
    scratch.write("hosts.blankslate-backup", "an older backup");
    scratch.write("profile.d/mine.sh", "export MINE=1");
    scratch.write("nested/dir/app.conf", "my app.conf");
    std::os::unix::fs::symlink("/somewhere/else", scratch.etc("resolv.conf")).unwrap();
    let one = scratch.build(
        1,
        "version = 1\n\
[etc.\"hosts\"]\ntext = \"managed hosts\"\n\
[etc.\"profile.d\"]\ntext = \"managed profile.d\"\n\
[etc.\"nested/dir/app.conf\"]\ntext = \"managed app\"\nmode = \"0644\"\n\
[etc.\"resolv.conf\"]\ntext = \"nameserver 127.0.0.1\"\n",
    );
    let activated = scratch.activate(&one);
    let backed_up: Vec<(String, String, String)> = activated
        .plan
        .backups()
        .map(|s| match &s.action {
            Action::BackUp { backup, found } => (s.path.clone(), backup.clone(), found.clone()),
            _ => unreachable!(),
        })
        .collect();
    assert_eq!(
        backed_up,
        [
            ("hosts".into(), "hosts.blankslate-backup.1".into(), "a regular file".into()),
            ("nested/dir/app.conf".into(), "app.conf.blankslate-backup".into(), "a regular file".into()),
            ("profile.d".into(), "profile.d.blankslate-backup".into(), "a directory".into()),
            ("resolv.conf".into(), "resolv.conf.blankslate-backup".into(), "a symlink to /somewhere/else".into()),
        ]
    );
    let shown = activated.plan.to_string();
    assert!(shown.contains("a regular file is there: moved to hosts.blankslate-backup.1"), "{shown}");
    assert!(shown.contains("0 added, 0 changed, 0 removed, 4 backed up"), "{shown}");
    // Contents preserved, the older backup untouched, the new entries in place.
    assert_eq!(scratch.read("hosts.blankslate-backup.1"), "my hosts");
    assert_eq!(scratch.read("hosts.blankslate-backup"), "an older backup");
    assert_eq!(scratch.read("profile.d.blankslate-backup/mine.sh"), "export MINE=1");
    assert_eq!(scratch.read("nested/dir/app.conf.blankslate-backup"), "my app.conf");
    assert_eq!(scratch.link("resolv.conf.blankslate-backup"), "/somewhere/else");
    assert_eq!(scratch.read("hosts"), "managed hosts");
    assert_eq!(scratch.read("profile.d"), "managed profile.d");
    assert_eq!(scratch.read("nested/dir/app.conf"), "managed app");
    assert_eq!(scratch.link("resolv.conf"), "/etc/static/resolv.conf");
    // Re-activating finds everything in place: the backups are not touched again.
    assert!(scratch.activate(&one).plan.is_noop());
}

#[test]
fn refusing_conflicts_changes_nothing() {
    let scratch = EtcRoot::new();
    let one = scratch.build(1, "version = 1\n[etc.\"hosts\"]\ntext = \"hosts 1\"\n[etc.\"motd\"]\ntext = \"m\"\n");
    scratch.activate(&one);
    scratch.write("sudoers", "my sudoers");
    scratch.write("ssh/sshd_config/keep", "a directory where a file goes");
    let two = scratch.build(
        2,
        "version = 1\n[etc.\"hosts\"]\ntext = \"hosts 2\"\n[etc.\"new\"]\ntext = \"new\"\n\
[etc.\"sudoers\"]\ntext = \"s\"\nmode = \"0440\"\n[etc.\"ssh/sshd_config\"]\ntext = \"c\"\n",
    );
    let before = scratch.snapshot();
    let error = scratch.try_activate(&two, OnConflict::Refuse).unwrap_err();
    match &error {
        EtcError::Conflicts { count, list } => {
            assert_eq!(*count, 2, "{list}");
            assert!(list.contains("/etc/sudoers: a regular file"), "{list}");
            assert!(list.contains("/etc/ssh/sshd_config: a directory"), "{list}");
        }
        other => panic!("expected Conflicts, got {other}"),
    }
    assert!(error.to_string().contains("nothing was changed"));
    assert_eq!(scratch.snapshot(), before, "a refused activation changes nothing at all");
    assert_eq!(etc::active_record(&scratch.root).unwrap().map(|a| a.generation), Some(1));

    // A person's directory at /etc/static blocks too.
    std::fs::remove_file(scratch.etc("sudoers")).unwrap();
    std::fs::remove_dir_all(scratch.etc("ssh")).unwrap();
    std::fs::remove_file(scratch.etc("static")).unwrap();
    scratch.write("static/mine", "x");
    let before = scratch.snapshot();
    let error = scratch.try_activate(&two, OnConflict::Refuse).unwrap_err();
    assert!(error.to_string().contains("/etc/static: not a symlink"), "{error}");
    assert_eq!(scratch.snapshot(), before);
    // Without refusing, it is backed up like any other.
    let activated = scratch.activate(&two);
    assert_eq!(activated.plan.switch_static, Some(Some("static.blankslate-backup".into())));
    assert_eq!(scratch.read("static.blankslate-backup/mine"), "x");
    assert_eq!(scratch.read("hosts"), "hosts 2");
}

#[test]
fn a_second_blocked_static_gets_a_free_backup_name() {
    let scratch = EtcRoot::new();
    scratch.write("static/mine", "first");
    scratch.write("static.blankslate-backup/older", "older");
    let one = scratch.build(1, "version = 1\n[etc.\"hosts\"]\ntext = \"hosts\"\n");
    let activated = scratch.activate(&one);
    assert_eq!(activated.plan.switch_static, Some(Some("static.blankslate-backup.1".into())));
    assert_eq!(scratch.read("static.blankslate-backup.1/mine"), "first");
    assert_eq!(scratch.read("static.blankslate-backup/older"), "older");
    assert_eq!(scratch.read("hosts"), "hosts");
}

#[test]
fn an_edited_copy_is_backed_up_when_changed_and_left_alone_when_removed() {
    let scratch = EtcRoot::new();
    let one = scratch.build(
        1,
        "version = 1\n\
[etc.\"sudoers\"]\ntext = \"sudoers 1\"\nmode = \"0440\"\n\
[etc.\"leftover.conf\"]\ntext = \"leftover 1\"\nmode = \"0644\"\n\
[etc.\"clean.conf\"]\ntext = \"clean 1\"\nmode = \"0644\"\n\
[etc.\"linked\"]\ntext = \"linked\"\n",
    );
    scratch.activate(&one);
    scratch.write("sudoers", "sudoers edited by a person");
    scratch.write("leftover.conf", "leftover edited by a person");
    // A person replaced a managed link with a file of their own.
    std::fs::remove_file(scratch.etc("linked")).unwrap();
    scratch.write("linked", "my linked");
    let two = scratch.build(2, "version = 1\n[etc.\"sudoers\"]\ntext = \"sudoers 2\"\nmode = \"0440\"\n");
    let activated = scratch.activate(&two);
    assert_eq!(
        action(&activated, "sudoers"),
        Some(Action::BackUp { backup: "sudoers.blankslate-backup".into(), found: "a regular file".into() })
    );
    assert_eq!(action(&activated, "leftover.conf"), Some(Action::LeaveAlone { found: "a regular file".into() }));
    assert_eq!(action(&activated, "linked"), Some(Action::LeaveAlone { found: "a regular file".into() }));
    assert_eq!(action(&activated, "clean.conf"), Some(Action::Remove));
    let shown = activated.plan.to_string();
    assert!(shown.contains("  = leftover.conf no longer declared, left alone: a regular file is there"), "{shown}");
    assert!(shown.ends_with("0 added, 0 changed, 1 removed, 1 backed up, 2 left alone, 0 unchanged\n"), "{shown}");

    assert_eq!(scratch.read("sudoers.blankslate-backup"), "sudoers edited by a person");
    assert_eq!(scratch.read("sudoers"), "sudoers 2");
    assert_eq!(file_meta(&scratch.etc("sudoers")), (0o440, 0, 0, true));
    assert_eq!(scratch.read("leftover.conf"), "leftover edited by a person");
    assert_eq!(scratch.read("linked"), "my linked");
    assert!(!scratch.etc("clean.conf").exists());
}

#[test]
fn an_unknown_owner_fails_before_anything_changes() {
    let scratch = EtcRoot::new();
    let one = scratch.build(1, "version = 1\n[etc.\"hosts\"]\ntext = \"hosts\"\n");
    scratch.activate(&one);
    let two = scratch.build(
        2,
        "version = 1\n[etc.\"hosts\"]\ntext = \"hosts\"\n[etc.\"x\"]\ntext = \"x\"\nmode = \"0600\"\nuser = \"nobody-here\"\n",
    );
    let before = scratch.snapshot();
    let error = scratch.try_activate(&two, OnConflict::Backup).unwrap_err();
    assert!(matches!(&error, EtcError::UnknownOwner { name, .. } if name == "nobody-here"), "{error}");
    assert_eq!(scratch.snapshot(), before);
}

/// A backup name the new generation declares is never used (the person's file would
/// be overwritten by the declared one).
#[test]
fn a_backup_never_takes_a_name_the_generation_declares() {
    let scratch = EtcRoot::new();
    scratch.write("foo", "USER DATA");
    let text = "version = 1\n[etc.\"foo\"]\ntext = \"managed\\n\"\nmode = \"0644\"\n\
                [etc.\"foo.blankslate-backup\"]\ntext = \"also managed\\n\"\n";
    let activated = scratch.activate(&scratch.build(1, text));
    assert_eq!(
        action(&activated, "foo"),
        Some(Action::BackUp { backup: "foo.blankslate-backup.1".into(), found: "a regular file".into() })
    );
    assert_eq!(std::fs::read_to_string(scratch.etc("foo.blankslate-backup.1")).unwrap(), "USER DATA");
    assert_eq!(scratch.read("foo.blankslate-backup"), "also managed\n");
}
