//! A repair's stamps: the links of a directory unchanged since a repair found them as
//! activated are not read again, and no change to `/etc` is missed for it.

use std::time::Duration;

use blankslate_sys::mount::{self, MountFlags, Source};
use blankslate_test_support::{in_namespace, root_or_skip};

use super::*;

/// Links in `a` and `b`, and a copy in `b`.
const DECLARATION: &str = "version = 1
[etc.\"a/one\"]
text = \"1\\n\"
[etc.\"a/two\"]
text = \"2\\n\"
[etc.\"b/three\"]
text = \"3\\n\"
[etc.\"b/copy\"]
text = \"copy\\n\"
mode = \"0644\"
";

const STAMPS: &str = ".blankslate/stamps.json";

/// A root on tmpfs, whose times the kernel sets (the system's temporary directory may
/// be on a file system whose stamps are not trusted), with `DECLARATION` activated.
fn activated() -> EtcRoot {
    let scratch = EtcRoot::in_scratch(Scratch::new_in(Path::new("/dev/shm")));
    let one = scratch.build(1, DECLARATION);
    scratch.activate(&one);
    scratch
}

/// Long enough for every directory's change time to be settled (two seconds).
fn settle() {
    std::thread::sleep(Duration::from_millis(2100));
}

fn repair(state: &blankslate_state::generation::LockedState) -> Activated {
    etc::repair(state).unwrap().unwrap()
}

fn preview(scratch: &EtcRoot) -> Activated {
    etc::preview_repair(&scratch.root, &scratch.store).unwrap().unwrap()
}

fn finds_missing(activated: &Activated, path: &str) -> bool {
    matches!(action(activated, path), Some(Action::Create))
}

#[test]
fn a_repair_skips_the_links_of_unchanged_directories_and_misses_no_change() {
    if !root_or_skip("mounts over a link and a directory, in a mount namespace of its own") {
        return;
    }
    in_namespace(|| {
        let scratch = activated();
        let state = State::open_locked(&scratch.root, Path::new(DEFAULT_STATE_DIR)).unwrap();

        // Just changed: every link is read, and no stamp is kept.
        let first = repair(&state);
        assert!(first.plan.is_noop(), "{}", first.plan);
        assert_eq!(first.plan.links_unread, 0);
        assert!(!scratch.etc(STAMPS).exists());

        settle();
        let second = repair(&state);
        assert_eq!((second.plan.unchanged, second.plan.links_unread), (4, 0), "{}", second.plan);
        assert!(scratch.etc(STAMPS).exists());
        let third = repair(&state);
        assert_eq!((third.plan.unchanged, third.plan.links_unread), (4, 3), "{}", third.plan);

        // A link replaced changes its directory: those links are read, the others not.
        std::fs::remove_file(scratch.etc("a/two")).unwrap();
        std::os::unix::fs::symlink("/elsewhere", scratch.etc("a/two")).unwrap();
        let replaced = repair(&state);
        assert!(matches!(action(&replaced, "a/two"), Some(Action::BackUp { .. })), "{}", replaced.plan);
        assert_eq!(replaced.plan.links_unread, 1, "only b/three is vouched for");
        assert_eq!(scratch.link("a/two"), "/etc/static/a/two");

        // A copy written in place leaves its directory as it was: copies are always read.
        settle();
        assert!(repair(&state).plan.is_noop());
        std::fs::write(scratch.etc("b/copy"), "edited\n").unwrap();
        let edited = repair(&state);
        assert!(matches!(action(&edited, "b/copy"), Some(Action::BackUp { .. })), "{}", edited.plan);
        assert_eq!(edited.plan.links_unread, 3, "{}", edited.plan);
        assert_eq!(scratch.read("b/copy"), "copy\n");

        // A person's file added beside the links: they are read again, all right.
        settle();
        assert!(repair(&state).plan.is_noop());
        scratch.write("a/mine", "a person's\n");
        let added = repair(&state);
        assert_eq!((added.plan.is_noop(), added.plan.links_unread), (true, 1), "{}", added.plan);

        // From here on, only previews: the mounts below cannot be moved aside.
        settle();
        assert!(repair(&state).plan.is_noop());
        assert_eq!(repair(&state).plan.links_unread, 3);

        // `a` bound onto itself: the same directory, reached on another mount.
        let etc = scratch.root.open_dir("etc").unwrap();
        let a = etc.open_dir("a").unwrap();
        mount::bind(Source::Dir(&a), &etc, "a", MountFlags::empty()).unwrap();
        assert_eq!(preview(&scratch).plan.links_unread, 1, "only b's link");
        mount::unmount(&etc, "a").unwrap();

        // A link removed.
        std::fs::remove_file(scratch.etc("a/one")).unwrap();
        let removed = preview(&scratch);
        assert!(finds_missing(&removed, "a/one"), "{}", removed.plan);
        std::os::unix::fs::symlink("/etc/static/a/one", scratch.etc("a/one")).unwrap();

        // A file mounted over a link changes no time: its directory is read.
        scratch.scratch.write("mounted", "mounted\n");
        let b = scratch.root.open_dir("etc/b").unwrap();
        mount::bind(Source::File(&scratch.root, "mounted"), &b, "three", MountFlags::empty()).unwrap();
        let over_link = preview(&scratch);
        assert!(matches!(action(&over_link, "b/three"), Some(Action::BackUp { .. })), "{}", over_link.plan);
        mount::unmount(&b, "three").unwrap();

        // An empty directory mounted over a directory of links.
        std::fs::create_dir(scratch.path().join("empty")).unwrap();
        let empty = scratch.root.open_dir("empty").unwrap();
        mount::bind(Source::Dir(&empty), &etc, "a", MountFlags::empty()).unwrap();
        let over_dir = preview(&scratch);
        assert!(finds_missing(&over_dir, "a/one") && finds_missing(&over_dir, "a/two"), "{}", over_dir.plan);
        mount::unmount(&etc, "a").unwrap();

        // Two directories exchanged: each is another inode where the other was.
        let exchange = rustix::fs::RenameFlags::EXCHANGE;
        rustix::fs::renameat_with(&etc, "a", &etc, "b", exchange).unwrap();
        let exchanged = preview(&scratch);
        assert!(finds_missing(&exchanged, "a/one") && finds_missing(&exchanged, "b/three"), "{}", exchanged.plan);
        assert_eq!(exchanged.plan.links_unread, 0, "{}", exchanged.plan);
    });
}

/// Stamps count only for the generation, the boot and the clock they were kept
/// under, and only a full repair keeps them.
#[test]
fn stamps_are_kept_by_a_full_repair_and_trusted_only_as_they_were_kept() {
    let scratch = activated();
    let state = State::open_locked(&scratch.root, Path::new(DEFAULT_STATE_DIR)).unwrap();
    settle();
    assert_eq!(preview(&scratch).plan.links_unread, 0);
    etc::repair_only(&state, &["a".to_owned()]).unwrap();
    assert!(!scratch.etc(STAMPS).exists(), "neither a preview nor a repair of some paths keeps stamps");
    assert_eq!(repair(&state).plan.links_unread, 0);
    assert_eq!(preview(&scratch).plan.links_unread, 3);

    let kept: serde_json::Value = serde_json::from_slice(&std::fs::read(scratch.etc(STAMPS)).unwrap()).unwrap();
    let lead = kept["clock_lead"].as_i64().unwrap();
    let second = 1_000_000_000;
    for (field, value, trusted) in [
        ("boot", serde_json::json!("another boot"), false),
        ("generation", serde_json::json!(2), false),
        // The wall clock set back by a second since; by a fifth of one; forward.
        ("clock_lead", serde_json::json!(lead + second), false),
        ("clock_lead", serde_json::json!(lead + second / 5), true),
        ("clock_lead", serde_json::json!(lead - 2 * second), true),
    ] {
        let mut changed = kept.clone();
        changed[field] = value;
        std::fs::write(scratch.etc(STAMPS), serde_json::to_vec(&changed).unwrap()).unwrap();
        let unread = preview(&scratch).plan.links_unread;
        assert_eq!(unread, if trusted { 3 } else { 0 }, "{field} {}", changed[field]);
    }
}

/// The mount points below a directory cannot be told from a mount namespace that does
/// not hold its mount: then no stamp is trusted.
#[test]
fn mount_points_are_told_only_in_the_directory_s_own_mount_namespace() {
    if !root_or_skip("enters a mount namespace of its own") {
        return;
    }
    let outside = Dir::open_root(Path::new("/dev/shm")).unwrap();
    assert!(mount::below_dir(&outside).is_some());
    in_namespace(move || {
        assert!(mount::below_dir(&outside).is_none(), "a mount of the host's namespace");
        assert!(mount::below_dir(&Dir::open_root(Path::new("/dev/shm")).unwrap()).is_some());
    });
}
