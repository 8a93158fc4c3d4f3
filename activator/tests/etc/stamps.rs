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

/// Long enough for every directory's change time to be settled (two seconds).
fn settle() {
    std::thread::sleep(Duration::from_millis(2100));
}

fn repair(state: &blankslate_state::generation::LockedState) -> Activated {
    etc::repair(state).unwrap().unwrap()
}

#[test]
fn a_repair_skips_the_links_of_unchanged_directories_and_misses_no_change() {
    if !root_or_skip("mounts a file over a link, in a mount namespace of its own") {
        return;
    }
    in_namespace(|| {
        let scratch = EtcRoot::new();
        let one = scratch.build(1, DECLARATION);
        scratch.activate(&one);
        let state = State::open_locked(&scratch.root, Path::new(DEFAULT_STATE_DIR)).unwrap();

        // Just changed: every link is read, and no stamp is kept.
        let first = repair(&state);
        assert!(first.plan.is_noop(), "{}", first.plan);
        assert_eq!(first.plan.links_unread, 0);
        assert!(!scratch.etc(".blankslate/stamps.json").exists());

        settle();
        let second = repair(&state);
        assert_eq!((second.plan.unchanged, second.plan.links_unread), (4, 0), "{}", second.plan);
        assert!(scratch.etc(".blankslate/stamps.json").exists());
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

        // A file mounted over a link changes no time: its directory is read.
        settle();
        assert!(repair(&state).plan.is_noop());
        assert_eq!(repair(&state).plan.links_unread, 3);
        scratch.scratch.write("mounted", "mounted\n");
        let b = scratch.root.open_dir("etc/b").unwrap();
        mount::bind(Source::File(&scratch.root, "mounted"), &b, "three", MountFlags::empty()).unwrap();
        let preview = etc::preview_repair(&scratch.root, &scratch.store).unwrap().unwrap();
        assert!(matches!(action(&preview, "b/three"), Some(Action::BackUp { .. })), "{}", preview.plan);
        assert_eq!(preview.plan.links_unread, 2, "a's links only");
    });
}
