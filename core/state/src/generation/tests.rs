//! Tests of `generation`: building, listing, amending and collecting generations.

use super::*;

fn declaration(log: &str) -> Declaration {
    let text = format!("version = 1\n[persist.\"/persist\"]\ndirectories = [\"{log}\"]\n");
    blankslate_decl::check(Path::new("t.toml"), &text, None).declaration.unwrap()
}

fn state() -> (tempfile::TempDir, LockedState) {
    let scratch = tempfile::tempdir().unwrap();
    let root = Dir::open_root(scratch.path()).unwrap();
    let state = State::open_locked(&root, Path::new(DEFAULT_STATE_DIR)).unwrap();
    (scratch, state)
}

/// A state on a read-only mount (as boot leaves it) is written through a private
/// writable view; the mount everyone else sees stays read-only.
#[test]
fn a_read_only_state_is_written_through_a_private_view() {
    if !rustix::process::geteuid().is_root() {
        eprintln!("skipped: needs root for a mount namespace");
        return;
    }
    // The scratch directory is removed from this thread, outside the namespace,
    // where nothing is mounted in it.
    let scratch = tempfile::tempdir().unwrap();
    let path = scratch.path().to_path_buf();
    let result = std::thread::spawn(move || {
        blankslate_sys::raw::unshare_mount_namespace().unwrap();
        mount::make_private().unwrap();
        let root = Dir::open_root(&path).unwrap();
        let state = State::open_locked(&root, Path::new(DEFAULT_STATE_DIR)).unwrap();
        state.build(&declaration("/var/log"), &[]).unwrap();
        drop(state);
        let holder = root.open_dir("var/lib").unwrap();
        let shared = holder.open_dir("blankslate").unwrap();
        mount::bind(mount::Source::Dir(&shared), &holder, "blankslate", mount::MountFlags::RDONLY).unwrap();
        let probe = path.join("var/lib/blankslate/probe");
        assert_eq!(
            std::fs::write(&probe, "x").unwrap_err().raw_os_error(),
            Some(rustix::io::Errno::ROFS.raw_os_error())
        );

        let state = State::open_locked(&root, Path::new(DEFAULT_STATE_DIR)).unwrap();
        let built = state.build(&declaration("/srv"), &[]).unwrap();
        assert_eq!(built.generation, 2);
        assert_eq!(state.current_number().unwrap(), Some(2));
        assert!(std::fs::write(&probe, "x").is_err(), "the shared mount became writable");
        assert!(root.open_dir("var/lib/blankslate").unwrap().is_read_only().unwrap());
        let reread = State::open_existing(&root, Path::new(DEFAULT_STATE_DIR)).unwrap().unwrap();
        assert_eq!(reread.current_number().unwrap(), Some(2), "the write did not reach the shared state");
    })
    .join();
    drop(scratch);
    result.unwrap();
}

#[test]
fn builds_number_generations_and_skip_unchanged() {
    let (_scratch, state) = state();
    let first = state.build(&declaration("/var/log"), &[]).unwrap();
    assert_eq!((first.generation, first.new), (1, true));
    let again = state.build(&declaration("/var/log"), &[]).unwrap();
    assert_eq!((again.generation, again.new), (1, false));
    let second = state.build(&declaration("/srv"), &[]).unwrap();
    assert_eq!(second.generation, 2);
    let list = state.list().unwrap();
    assert_eq!(list.iter().map(|g| (g.number, g.current)).collect::<Vec<_>>(), [(1, false), (2, true)]);
    assert!(state.declaration_json(&list[1]).unwrap().contains("\"/srv\""));
}

#[test]
fn delete_refuses_current_and_gc_keeps_every_generation() {
    let (_scratch, state) = state();
    let one = state.build(&declaration("/a"), &[]).unwrap();
    let two = state.build(&declaration("/b"), &[]).unwrap();
    let orphan = state.store().add("orphan", &Tree::file("x")).unwrap();
    assert!(matches!(state.delete(2), Err(GenerationError::DeleteCurrent(2))));
    let collected = state.collect_garbage(false).unwrap();
    assert_eq!(collected.removed, [orphan]);
    assert_eq!(collected.kept, 2);
    state.delete(1).unwrap();
    let collected = state.collect_garbage(false).unwrap();
    assert_eq!(collected.removed, [one.object]);
    assert_eq!(state.store().objects().unwrap(), [two.object]);
}

/// gc takes what is not an object with it; what a writer that died left (a
/// temporary) the lock's next holder removes before anything else.
#[test]
fn gc_removes_debris_and_the_next_writer_removes_temporaries() {
    let (_scratch, state) = state();
    let one = state.build(&declaration("/a"), &[]).unwrap();
    state.store().dir().write_atomic("stray", b"x", 0o644).unwrap();
    state.store().dir().create_dir_all(".dead-generation.tmp-1-0/part", 0o755).unwrap();
    let dry = state.collect_garbage(true).unwrap();
    assert_eq!(dry.debris, [".dead-generation.tmp-1-0", "stray"]);
    assert_eq!(state.store().debris().unwrap().len(), 2, "a dry run removes nothing");
    let collected = state.collect_garbage(false).unwrap();
    assert_eq!((collected.removed.len(), collected.kept, collected.debris.len()), (0, 1, 2));
    assert_eq!(state.store().dir().entries().unwrap().len(), 1);
    assert_eq!(state.store().objects().unwrap(), [one.object]);

    state.store().dir().create_dir_all(".x.tmp-1-0", 0o755).unwrap();
    let root = state.root().try_clone().unwrap();
    drop(state);
    let state = State::open_locked(&root, Path::new(DEFAULT_STATE_DIR)).unwrap();
    assert!(state.store().debris().unwrap().is_empty());
}

/// A `text` that only root may read makes the generation's declaration root's
/// alone; a public declaration stays readable (and keeps its object name).
#[test]
fn a_secret_text_makes_the_declaration_root_only() {
    use std::os::unix::fs::PermissionsExt as _;
    let (scratch, state) = state();
    let mode_of = |built: &Built| {
        let path = scratch.path().join("var/lib/blankslate/store").join(&built.object).join("declaration.json");
        std::fs::metadata(path).unwrap().permissions().mode() & 0o7777
    };
    let check = |text: &str| blankslate_decl::check(Path::new("t.toml"), text, None).declaration.unwrap();
    let public = state.build(&check("version = 1\n[etc.\"motd\"]\ntext = \"hi\"\n"), &[]).unwrap();
    assert_eq!(mode_of(&public), 0o444);
    for secret in [
        "[etc.\"wg.conf\"]\ntext = \"PrivateKey = x\"\nmode = \"0600\"\n",
        "[etc.\"keys\"]\ndirectory = true\nmode = \"0700\"\n[etc.\"keys/a\"]\ntext = \"k\"\n",
        "[etc.\"shadow\"]\ntext = \"root:!:1::::::\"\n",
    ] {
        let built = state.build(&check(&format!("version = 1\n{secret}")), &[]).unwrap();
        assert_eq!(mode_of(&built), 0o400, "{secret}");
        assert_eq!(state.store().check_object(&built.object), None);
    }
}

/// Building the current declaration again repairs its generation object.
#[test]
fn an_unchanged_build_repairs_a_damaged_generation_object() {
    use std::os::unix::fs::PermissionsExt as _;
    let (scratch, state) = state();
    let built = state.build(&declaration("/var/log"), &[]).unwrap();
    let object = scratch.path().join("var/lib/blankslate/store").join(&built.object);
    std::fs::set_permissions(&object, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::remove_file(object.join("references")).unwrap();
    assert!(state.store().check_object(&built.object).is_some());
    let again = state.build(&declaration("/var/log"), &[]).unwrap();
    assert_eq!((again.generation, again.new), (1, false));
    assert_eq!(state.store().check_object(&built.object), None);
}

#[test]
fn references_keep_their_objects_alive() {
    let (_scratch, state) = state();
    let leaf = state.store().add("etc", &Tree::Directory(BTreeMap::new())).unwrap();
    state.build(&declaration("/a"), &[("etc", &leaf)]).unwrap();
    assert!(state.collect_garbage(false).unwrap().removed.is_empty());
    assert!(state.store().contains(&leaf).unwrap());
}

#[test]
fn the_booted_generation_is_protected() {
    let (scratch, state) = state();
    let one = state.build(&declaration("/a"), &[]).unwrap();
    state.build(&declaration("/b"), &[]).unwrap();
    std::fs::create_dir_all(scratch.path().join("run/blankslate")).unwrap();
    std::os::unix::fs::symlink(format!("/var/lib/blankslate/store/{}", one.object), scratch.path().join(BOOTED))
        .unwrap();
    assert!(matches!(state.delete(1), Err(GenerationError::DeleteBooted(1))));
}

#[test]
fn the_activated_generation_and_its_etc_object_are_protected() {
    let (scratch, state) = state();
    let leaf = state.store().add("etc", &Tree::Directory(BTreeMap::new())).unwrap();
    state.build(&declaration("/a"), &[]).unwrap();
    state.build(&declaration("/b"), &[]).unwrap();
    std::fs::create_dir_all(scratch.path().join(activation::DIR)).unwrap();
    let record = format!("{{\"generation\":1,\"object\":\"{leaf}\",\"manifest\":{{}}}}");
    std::fs::write(scratch.path().join(activation::DIR).join(activation::STATE_FILE), record).unwrap();
    assert!(matches!(state.delete(1), Err(GenerationError::DeleteActive(1))));
    assert!(state.collect_garbage(false).unwrap().removed.is_empty(), "the active etc object is kept");
    assert!(state.store().contains(&leaf).unwrap());
}

/// The persisted paths' part is read up to the `/etc` entries only, and is what a
/// whole read gives, even when an entry's text holds what looks like the key.
#[test]
fn the_persisted_part_of_a_declaration_stops_before_the_etc_entries() {
    let (_scratch, state) = state();
    let text = "version = 1\n[root]\nsize = \"2G\"\n[persist.\"/persist\"]\ndirectories = [\"/var/log\", \
                { directory = \"/srv\", mode = \"0700\" }]\n[etc.\"a\"]\ntext = \"},\\\"etc\\\":{\"\n\
                [audit]\nignore = [\"/x/**\"]\n";
    let checked = blankslate_decl::check(Path::new("t.toml"), text, None);
    let declaration = checked.declaration.unwrap_or_else(|| panic!("{}", checked.diagnostics));
    let built = state.build(&declaration, &[]).unwrap();
    let part = state.persisted_declaration(&state.generation(built.generation).unwrap()).unwrap();
    let mut expected = Declaration::from_canonical_json(&declaration.canonical_json()).unwrap();
    expected.etc.clear();
    expected.audit = blankslate_decl::AuditSettings::default();
    assert_eq!(part, expected);
    assert_eq!(part.root.size, "2G");
    assert_eq!(part.entries().len(), 2);
    let json = declaration.canonical_json();
    let mut finder = blankslate_decl::EtcFinder::default();
    let found = json.as_bytes().chunks(7).find_map(|piece| finder.feed(piece)).unwrap();
    assert!(json[found..].starts_with(",\"etc\":{\"a\""), "{}", &json[found..]);
}

#[test]
fn an_amended_generation_keeps_the_parts_and_changes_the_declaration() {
    let (_scratch, state) = state();
    let leaf = state.store().add("etc", &Tree::Directory(BTreeMap::new())).unwrap();
    let one = state.build(&declaration("/a"), &[("etc", &leaf)]).unwrap();
    let first = state.generation(one.generation).unwrap();
    let same = state.amend(&first, &declaration("/a")).unwrap();
    assert_eq!((same.generation, same.new), (1, false), "no change, no generation");
    let amended = state.amend(&first, &declaration("/b")).unwrap();
    assert_eq!((amended.generation, amended.new), (2, true));
    let second = state.generation(2).unwrap();
    assert_eq!(state.part(&second, "etc").unwrap(), Some(leaf));
    assert!(state.declaration_json(&second).unwrap().contains("\"/b\""));
    assert_eq!(state.current_number().unwrap(), Some(1), "amend does not move current");
}

#[test]
fn dates_format_as_utc() {
    assert_eq!(format_utc(0), "1970-01-01 00:00:00");
    assert_eq!(format_utc(1_795_000_000), "2026-11-18 11:06:40");
}
