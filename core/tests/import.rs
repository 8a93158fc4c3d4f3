//! Importing impermanence and preservation JSON (as `nix eval --json` prints it)
//! into native declarations.

use std::fmt::Write as _;
use std::path::Path;

use blankslate_core::decl::{self, Declaration, EntryKind, How, MountOption};
use blankslate_core::import::{self, ImportError, Imported};

fn fixture(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/import").join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Renders, checks and re-reads the declaration: no diagnostics, same intent.
fn assert_round_trip(imported: &Imported) -> String {
    let text = imported.to_toml();
    let checked = decl::check(Path::new("imported.toml"), &text, None);
    assert!(checked.diagnostics.items.is_empty(), "{text}\n{}", checked.diagnostics);
    let reread = checked.declaration.expect("no errors");
    assert_eq!(reread.canonical_json(), imported.declaration.canonical_json(), "{text}");
    assert!(
        !imported.notes.iter().any(|n| n.path == "(declaration)"),
        "the importer's own check found problems: {:#?}",
        imported.notes
    );
    text
}

fn notes_at<'a>(imported: &'a Imported, path: &str) -> Vec<&'a str> {
    imported.notes.iter().filter(|n| n.path == path).map(|n| n.message.as_str()).collect()
}

fn has_note(imported: &Imported, path: &str, fragment: &str) -> bool {
    notes_at(imported, path).iter().any(|m| m.contains(fragment))
}

fn all_notes(imported: &Imported) -> String {
    let mut out = String::new();
    for note in &imported.notes {
        let _ = writeln!(out, "{note}");
    }
    out
}

fn paths(declaration: &Declaration) -> Vec<String> {
    declaration.entries().into_iter().map(|e| e.path).collect()
}

#[test]
fn impermanence_current_snapshot() {
    let imported = import::impermanence(&fixture("impermanence-current.json")).unwrap();
    let text = assert_round_trip(&imported);
    insta::assert_snapshot!("impermanence_current_toml", text);
    insta::assert_snapshot!("impermanence_current_notes", all_notes(&imported));
}

#[test]
fn impermanence_folded_user_entries_are_declared_once() {
    let imported = import::impermanence(&fixture("impermanence-current.json")).unwrap();
    let root = &imported.declaration.persist["/persist"];
    let alice = &root.users["alice"];
    assert_eq!(alice.home, "/home/alice");
    assert_eq!(alice.group, "users");
    let dirs: Vec<&str> = alice.directories.iter().map(|e| e.path.as_str()).collect();
    assert_eq!(dirs, ["Documents", ".ssh", ".local/share/direnv"]);
    assert!(root.directories.iter().all(|e| e.path.starts_with("/var/")), "{:?}", root.directories);
    assert!(root.files.iter().all(|e| e.path.starts_with("/etc/")), "{:?}", root.files);
    let mut all = paths(&imported.declaration);
    let count = all.len();
    all.sort();
    all.dedup();
    assert_eq!(all.len(), count, "an entry was declared twice");
    assert!(!imported.notes.iter().any(|n| n.message.contains("already declared")), "{}", all_notes(&imported));
}

#[test]
fn impermanence_maps_owners_methods_and_mounts() {
    let imported = import::impermanence(&fixture("impermanence-current.json")).unwrap();
    let persist = &imported.declaration.persist["/persist"];
    assert!(persist.hide_mounts);
    let postgres = persist.directories.iter().find(|e| e.path == "/var/lib/postgresql").unwrap();
    assert_eq!((postgres.owner.user.as_str(), postgres.owner.group.as_str()), ("postgres", "postgres"));
    assert_eq!(postgres.owner.mode.to_string(), "0700");
    let colord = persist.directories.iter().find(|e| e.path == "/var/lib/colord").unwrap();
    assert_eq!(colord.owner.mode.to_string(), "0750", "symbolic u=rwx,g=rx,o=");
    let key = persist.files.iter().find(|e| e.path == "/etc/ssh/ssh_host_ed25519_key").unwrap();
    assert_eq!(key.how, Some(How::Symlink));
    let machine_id = persist.files.iter().find(|e| e.path == "/etc/machine-id").unwrap();
    assert_eq!(machine_id.how, Some(How::Bind));
    assert!(has_note(&imported, "\"/persist\".files[0].method", "auto"));
    let id_rsa = persist.files.iter().find(|e| e.path == "/etc/nix/id_rsa").unwrap();
    assert_eq!(id_rsa.parent.as_ref().map(|p| p.mode.to_string()).as_deref(), Some("0700"));
    assert!(machine_id.parent.is_none(), "a default parent is blankslate's default too");
    let alice = &persist.users["alice"];
    assert_eq!(alice.directories[1].owner.mode.to_string(), "0700");
    assert_eq!(alice.files[1].how, Some(How::Symlink));
    let cache = &imported.declaration.persist["/cache"];
    assert!(!cache.hide_mounts);
    assert_eq!(cache.directories[1].options, [MountOption::Hidden]);
    assert!(cache.directories[0].options.is_empty());
}

#[test]
fn impermanence_disabled_root_is_skipped_with_a_note() {
    let imported = import::impermanence(&fixture("impermanence-current.json")).unwrap();
    assert!(!imported.declaration.persist.contains_key("/old"));
    assert!(has_note(&imported, "\"/old\".enable", "disabled"));
    assert!(!paths(&imported.declaration).contains(&"/var/lib/docker".to_owned()));
}

#[test]
fn impermanence_legacy_version_with_user_home_and_trash() {
    let imported = import::impermanence(&fixture("impermanence-legacy.json")).unwrap();
    assert_round_trip(&imported);
    let root = &imported.declaration.persist["/nix/persist"];
    let bob = &root.users["bob"];
    assert_eq!(bob.home, "/srv/home/bob");
    assert_eq!(bob.group, "bob");
    assert_eq!(bob.directories.len(), 1);
    assert_eq!(bob.files.len(), 1);
    assert_eq!(root.directories.len(), 2);
    assert_eq!(root.files.len(), 1);
    assert!(has_note(&imported, "\"/nix/persist\".allowTrash", "x-gvfs-trash"));
    // Files without `method` (older versions) behave like "auto".
    assert!(has_note(&imported, "\"/nix/persist\".files[0]", "auto"));
    // Per-directory allowTrash agrees with the root: noted once, at the root.
    assert!(!imported.notes.iter().any(|n| n.path.ends_with("].allowTrash")), "{}", all_notes(&imported));
}

#[test]
fn impermanence_removed_options_unknown_fields_and_strings() {
    let imported = import::impermanence(&fixture("impermanence-unusual.json")).unwrap();
    assert_round_trip(&imported);
    // Removed options: null is what a stripping --apply may leave; a value is noted.
    assert!(has_note(&imported, "\"/persist\".defaultDirectoryMethod", "removed"));
    assert!(notes_at(&imported, "\"/persist\".allowOther").is_empty());
    assert!(notes_at(&imported, "\"/persist\".removePrefixDirectory").is_empty());
    assert!(has_note(&imported, "\"/persist\".directories[2].fooBar", "unknown field"));
    assert!(has_note(&imported, "\"/persist\".directories[1]", "`/srv/data/` is declared as `/srv/data`"));
    assert!(has_note(&imported, "\"/persist\".directories[4]", "already declared by \"/persist\".directories[3]"));
    let root = &imported.declaration.persist["/persist"];
    let dirs: Vec<&str> = root.directories.iter().map(|e| e.path.as_str()).collect();
    // Users are read first, so the home (declared as a system directory) comes first.
    assert_eq!(dirs, ["/root", "/var/lib/systemd/coredump", "/srv/data", "/var/lib/iwd", "/var/log"]);
    assert_eq!(root.files[1].how, Some(How::Symlink));
    assert!(has_note(&imported, "\"/persist\".users.root.directories[0]", "home directory of `root` itself"));
    assert_eq!(root.users["root"].directories[0].path, ".gnupg");
}

#[test]
fn preservation_snapshot() {
    let imported = import::preservation(&fixture("preservation.json")).unwrap();
    let text = assert_round_trip(&imported);
    insta::assert_snapshot!("preservation_toml", text);
    insta::assert_snapshot!("preservation_notes", all_notes(&imported));
}

#[test]
fn preservation_maps_how_parents_and_options() {
    let imported = import::preservation(&fixture("preservation.json")).unwrap();
    let root = &imported.declaration.persist["/persistent"];
    assert!(root.hide_mounts, "x-gvfs-hide in commonMountOptions");
    assert!(root.directories.iter().all(|e| e.options.is_empty()), "hiding is the root's");
    let key = root.files.iter().find(|e| e.path == "/etc/ssh/ssh_host_ed25519_key").unwrap();
    assert_eq!(key.how, Some(How::Symlink));
    assert_eq!(key.owner.mode.to_string(), "0600");
    assert!(key.parent.is_some(), "configureParent = true");
    let timers = root.directories.iter().find(|e| e.path == "/var/lib/systemd/timers").unwrap();
    assert_eq!(timers.kind, EntryKind::Directory);
    assert!(has_note(&imported, "\"/persistent\".directories[3].how", "does not link directories"));
    let alice = &root.users["alice"];
    assert_eq!(alice.home, "/home/alice");
    assert_eq!(alice.group, "users");
    let dirs: Vec<&str> = alice.directories.iter().map(|e| e.path.as_str()).collect();
    assert_eq!(dirs, [".ssh", ".local/share/Steam", "Documents"]);
    let monitors = alice.files.iter().find(|e| e.path == ".config/monitors.xml").unwrap();
    assert_eq!(monitors.parent.as_ref().map(|p| p.mode.to_string()).as_deref(), Some("0700"));
    assert!(has_note(&imported, "\"/persistent\".users.alice.directories[0].mountOptions[1]", "x-gdu.hide"));
    assert!(
        notes_at(&imported, "\"/persistent\".users.alice.directories[1].createLinkTarget").is_empty(),
        "moot once mounted"
    );
    assert!(has_note(&imported, "\"/persistent\".files[2].mode", "only when creating"));
    assert!(has_note(&imported, "\"/persistent\".users.alice.files[0].createLinkTarget", "createLinkTarget"));
    let cache = &imported.declaration.persist["/state/cache"];
    assert_eq!(cache.directories[1].options, [MountOption::NoDev]);
    assert!(has_note(&imported, "\"/state/cache\".directories[1].mountOptions[2]", "size=10G"));
    assert!(has_note(&imported, "\"/state/cache\".directories[1].unknownThing", "unknown field"));
}

#[test]
fn errors_say_where() {
    let error = import::preservation("{\"/state\": {\"files\": [{\"how\": \"symlink\"}]}}").unwrap_err();
    assert!(matches!(error, ImportError::Missing { key: "file", .. }), "{error:?}");
    assert_eq!(error.to_string(), "\"/state\".files[0]: the required field `file` is missing");
    let error = import::preservation("{\"/state\": {\"users\": {\"alice\": {\"directories\": [1]}}}}").unwrap_err();
    assert_eq!(error.to_string(), "\"/state\".users.alice.directories[0]: expected an attribute set, found a number");
    let error = import::impermanence("{\"/persist\": {\"hideMounts\": \"yes\"}}").unwrap_err();
    assert_eq!(error.to_string(), "\"/persist\".hideMounts: expected true or false, found a string");
    let error = import::impermanence("{\"/persist\": }").unwrap_err();
    assert!(matches!(error, ImportError::Json { line: 1, column: 14, .. }), "{error:?}");
}

#[test]
fn empty_input_is_an_empty_declaration() {
    for imported in [import::impermanence("{}").unwrap(), import::preservation("{}").unwrap()] {
        assert!(imported.declaration.persist.is_empty());
        assert!(imported.notes.is_empty());
        assert_round_trip(&imported);
    }
}
