//! The net on scratch directories: what a save keeps and leaves out, how it prunes,
//! and that a restore brings a path back as it was and never replaces anything.

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use blankslate_decl::NetSettings;
use blankslate_net::{Catch, Erased, Holder, NetError, catches, holders, restore, save};
use blankslate_sys::fs::{Dir, temp_name};
use blankslate_test_support::{Scratch, is_root};

struct World {
    _scratch: Scratch,
    root: Dir,
    net: Dir,
}

impl World {
    fn new() -> World {
        let scratch = Scratch::with_root("root");
        fs::create_dir_all(scratch.path("home/ann")).expect("a home");
        fs::create_dir(scratch.dir().join("net")).expect("the net");
        let root = Dir::open_root(scratch.root()).expect("root opens");
        let net = Dir::open_root(&scratch.dir().join("net")).expect("net opens");
        World { _scratch: scratch, root, net }
    }

    fn live(&self, path: &str) -> std::path::PathBuf {
        self.root.path().join(path.trim_start_matches('/'))
    }

    fn write(&self, path: &str, contents: &[u8], mode: u32) -> Erased {
        let file = self.live(path);
        fs::create_dir_all(file.parent().expect("a parent")).expect("parents");
        fs::write(&file, contents).expect("write");
        fs::set_permissions(&file, fs::Permissions::from_mode(mode)).expect("chmod");
        Erased { path: path.as_bytes().to_vec(), kind: "file".into(), bytes: contents.len() as u64, files: 1 }
    }

    fn save(&self, boot: &str, erased: &[Erased], bounds: NetSettings) -> blankslate_net::Saved {
        save(&self.root, &self.net, boot, Some(1), erased, bounds).expect("save")
    }
}

const WIDE: NetSettings = NetSettings { keep: 3, max_size: 1 << 30 };

#[test]
fn a_saved_path_comes_back_as_it_was_and_never_over_what_is_there() {
    let world = World::new();
    let notes = world.write("/home/ann/notes/today.txt", b"remember the milk\n", 0o640);
    let notes = Erased { path: b"/home/ann/notes".to_vec(), kind: "directory".into(), ..notes };
    fs::set_permissions(world.live("/home/ann/notes"), fs::Permissions::from_mode(0o750)).expect("chmod");
    if is_root() {
        std::os::unix::fs::lchown(world.live("/home/ann/notes/today.txt"), Some(1234), Some(5678)).expect("chown");
    }
    let saved = world.save("boot-one", &[notes], WIDE);
    assert_eq!(saved.catch.entries.len(), 1);
    assert_eq!(saved.catch.entries[0].left_out, None, "{:?}", saved.catch.entries[0]);
    let catch_dir = world.net.path().join(&saved.catch.name);
    assert_eq!(fs::metadata(&catch_dir).expect("catch").mode() & 0o7777, 0o700, "a catch is root's alone");
    assert!(catch_dir.join("catch.json").exists());

    // The next boot erased it.
    fs::remove_dir_all(world.live("/home/ann/notes")).expect("erase");
    let restored =
        restore(&world.root, &holders(&world.net).expect("holders"), b"/home/ann/notes", None, None).expect("restore");
    assert_eq!(restored.catch, saved.catch.name);
    let file = world.live("/home/ann/notes/today.txt");
    assert_eq!(fs::read(&file).expect("restored"), b"remember the milk\n");
    let meta = fs::metadata(&file).expect("restored");
    assert_eq!(meta.mode() & 0o7777, 0o640);
    assert_eq!(fs::metadata(world.live("/home/ann/notes")).expect("dir").mode() & 0o7777, 0o750);
    if is_root() {
        assert_eq!((meta.uid(), meta.gid()), (1234, 5678));
    }

    // Now it is there: a second restore refuses, and the live file is untouched.
    fs::write(&file, b"changed since").expect("write");
    let again = restore(&world.root, &holders(&world.net).expect("holders"), b"/home/ann/notes", None, None)
        .expect_err("it exists");
    assert!(matches!(again, NetError::Exists { .. }), "{again}");
    assert_eq!(fs::read(&file).expect("live"), b"changed since");
    // A file inside a caught directory comes back on its own, elsewhere if asked.
    restore(
        &world.root,
        &holders(&world.net).expect("holders"),
        b"/home/ann/notes/today.txt",
        None,
        Some(b"/home/ann/today.old"),
    )
    .expect("to");
    assert_eq!(fs::read(world.live("/home/ann/today.old")).expect("restored"), b"remember the milk\n");
    let never = restore(&world.root, &holders(&world.net).expect("holders"), b"/home/ann/other", None, None)
        .expect_err("never caught");
    assert!(matches!(never, NetError::NotCaught { .. }), "{never}");
    let nowhere =
        restore(&world.root, &holders(&world.net).expect("holders"), b"/home/ann/notes", None, Some(b"/nowhere/notes"));
    assert!(matches!(nowhere, Err(NetError::NoParent { .. })), "{nowhere:?}");
}

#[test]
fn the_smallest_paths_are_kept_first_and_the_rest_is_left_out_with_the_reason() {
    let world = World::new();
    let small = world.write("/home/ann/.config/tool.conf", &[b'a'; 100], 0o644);
    let medium = world.write("/var/lib/game/save", &[b'b'; 600], 0o644);
    let large = world.write("/var/cache-ish/blob", &[b'c'; 5000], 0o644);
    let saved = world.save("boot-one", &[large, medium, small], NetSettings { keep: 3, max_size: 1000 });
    let left_out: Vec<(&str, bool)> =
        saved.catch.entries.iter().map(|e| (e.path.as_str(), e.left_out.is_some())).collect();
    assert_eq!(
        left_out,
        [("/home/ann/.config/tool.conf", false), ("/var/cache-ish/blob", true), ("/var/lib/game/save", false)]
    );
    let why = saved.catch.entries[1].left_out.as_deref().expect("left out");
    assert!(why.contains("max_size"), "{why}");
    let caught = world.net.path().join(&saved.catch.name).join("root");
    assert!(caught.join("var/lib/game/save").exists());
    assert!(!caught.join("var/cache-ish").exists(), "nothing of what was left out is in the catch");
    assert_eq!(saved.catch.kept_bytes(), 700);
}

#[test]
fn the_oldest_catches_go_first_to_stay_within_keep_and_max_size() {
    let world = World::new();
    let bounds = NetSettings { keep: 2, max_size: 1000 };
    let file = world.write("/home/ann/a", &[b'a'; 400], 0o644);
    let names: Vec<String> = ["one", "two", "three"]
        .iter()
        .map(|boot| world.save(boot, std::slice::from_ref(&file), bounds).catch.name)
        .collect();
    let left: Vec<String> = catches(&world.net).expect("catches").into_iter().map(|c| c.name).collect();
    assert_eq!(left, names[1..], "keep = 2 keeps the two newest");

    // Two catches of 400 and a new one of 400: over 1000, so the oldest goes.
    let bigger = world.write("/home/ann/b", &[b'b'; 400], 0o644);
    let saved = world.save("four", &[bigger], NetSettings { keep: 5, max_size: 1000 });
    assert_eq!(saved.pruned, [names[1].clone()]);
    // The newest stays even when it alone is over the bound (it was bounded as it was made).
    let saved = world.save("five", &[], NetSettings { keep: 1, max_size: 1 });
    assert_eq!(catches(&world.net).expect("catches").len(), 1);
    assert!(saved.catch.name.ends_with("-five"), "{}", saved.catch.name);
}

#[test]
fn what_a_killed_save_left_is_removed_by_the_next_and_never_listed() {
    let world = World::new();
    let temp = temp_name(std::ffi::OsStr::new("catch"));
    fs::create_dir_all(world.net.path().join(&temp).join("root/home")).expect("a killed save's leftovers");
    assert_eq!(catches(&world.net).expect("catches"), []);
    let file = world.write("/home/ann/a", b"x", 0o600);
    world.save("one", &[file], WIDE);
    let names: Vec<_> = fs::read_dir(world.net.path()).expect("net").map(|e| e.expect("entry").file_name()).collect();
    assert_eq!(names.len(), 1, "{names:?}");
    assert!(!Path::new(&names[0]).to_string_lossy().contains(".tmp-"));
}

#[test]
fn a_path_that_vanished_before_the_save_is_left_out_not_a_failure() {
    let world = World::new();
    let gone = Erased { path: b"/home/ann/gone".to_vec(), kind: "file".into(), bytes: 3, files: 1 };
    let here = world.write("/home/ann/here", b"yes", 0o644);
    let saved = world.save("one", &[gone, here], WIDE);
    let gone = saved.catch.entries.iter().find(|e| e.path == "/home/ann/gone").expect("listed");
    assert!(gone.left_out.is_some(), "{gone:?}");
    assert!(saved.catch.entries.iter().any(|e| e.path == "/home/ann/here" && e.left_out.is_none()));
}

#[test]
fn the_directories_a_boot_erased_on_the_way_come_back_as_they_were() {
    let world = World::new();
    let file = world.write("/srv/app/state/db", b"rows", 0o600);
    fs::set_permissions(world.live("/srv/app"), fs::Permissions::from_mode(0o710)).expect("chmod");
    let srv = Erased { path: b"/srv".to_vec(), kind: "directory".into(), ..file };
    let saved = world.save("one", &[srv], WIDE);
    assert_eq!(saved.catch.entries[0].left_out, None);
    fs::remove_dir_all(world.live("/srv")).expect("erase");
    // Elsewhere, the way must be there.
    let elsewhere =
        restore(&world.root, &holders(&world.net).expect("holders"), b"/srv/app/state", None, Some(b"/opt/state"));
    assert!(matches!(elsewhere, Err(NetError::NoParent { .. })), "{elsewhere:?}");
    restore(&world.root, &holders(&world.net).expect("holders"), b"/srv/app/state", None, None).expect("restore");
    assert_eq!(fs::read(world.live("/srv/app/state/db")).expect("restored"), b"rows");
    assert_eq!(fs::metadata(world.live("/srv/app")).expect("made").mode() & 0o7777, 0o710);
    assert!(!world.live("/srv/app/other").exists());
}

#[test]
fn a_previous_root_is_restored_from_as_a_catch_and_the_newest_holder_wins() {
    let world = World::new();
    let notes = world.write("/home/ann/notes", b"from the net", 0o600);
    world.save("one", std::slice::from_ref(&notes), WIDE);
    fs::remove_file(world.live("/home/ann/notes")).expect("erase");
    // A previous root of a btrfs root: a whole root, newer than the catch.
    let previous = Scratch::new();
    previous.write("home/ann/notes", b"from the previous root");
    let catch = Catch::previous_root("root-000004".into(), "b".into(), u64::MAX, Some(2), &[notes]);
    assert_eq!(catch.kept_bytes(), 12, "sized as the audit found it");
    let mut all = holders(&world.net).expect("holders");
    all.push(Holder { catch, tree: Dir::open_root(previous.root()).expect("open") });

    let restored = restore(&world.root, &all, b"/home/ann/notes", None, None).expect("restore");
    assert_eq!(restored.catch, "root-000004");
    assert_eq!(fs::read(world.live("/home/ann/notes")).expect("back"), b"from the previous root");
    let from_net = all[0].catch.name.clone();
    let older = restore(&world.root, &all, b"/home/ann/notes", Some(&from_net), Some(b"/home/ann/notes.net"));
    assert_eq!(older.expect("from the net").catch, from_net);
    assert_eq!(fs::read(world.live("/home/ann/notes.net")).expect("back"), b"from the net");
    let unknown = restore(&world.root, &all, b"/home/ann/notes", Some("root-000009"), Some(b"/home/ann/x"));
    assert!(matches!(unknown, Err(NetError::NoSuchCatch(_))), "{unknown:?}");
}

#[test]
fn a_catch_newer_than_a_previous_root_wins_over_it() {
    let world = World::new();
    let notes = world.write("/home/ann/notes", b"from the net", 0o600);
    world.save("one", std::slice::from_ref(&notes), WIDE);
    fs::remove_file(world.live("/home/ann/notes")).expect("erase");
    // A previous root booted long before the catch was kept: listed after it, but older.
    let previous = Scratch::new();
    previous.write("home/ann/notes", b"from an old root");
    let catch = Catch::previous_root("root-000001".into(), "b".into(), 1, Some(1), &[notes]);
    let mut all = holders(&world.net).expect("holders");
    all.push(Holder { catch, tree: Dir::open_root(previous.root()).expect("open") });
    let restored = restore(&world.root, &all, b"/home/ann/notes", None, None).expect("restore");
    assert_ne!(restored.catch, "root-000001", "the newer catch");
    assert_eq!(fs::read(world.live("/home/ann/notes")).expect("back"), b"from the net");
}
