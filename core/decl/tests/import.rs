//! Importing impermanence and preservation JSON (as `nix eval --json` prints it)
//! into native declarations.

use std::fmt::Write as _;
use std::path::Path;

use blankslate_decl::import::{self, HomeUser, ImportError, Imported};
use blankslate_decl::{self as decl, Declaration, EntryKind, How, MountOption};

fn fixture(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/import").join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Renders, checks and re-reads the declaration: no errors, the same intent, and
/// every warning of `check` among the notes. Returns the TOML.
fn assert_round_trip(imported: &Imported) -> String {
    let text = imported.to_toml();
    let checked = decl::check(Path::new("imported.toml"), &text, None);
    assert!(!checked.diagnostics.has_errors(), "{text}\n{}", checked.diagnostics);
    let reread = checked.declaration.expect("no errors");
    assert_eq!(reread.canonical_json(), imported.declaration.canonical_json(), "{text}");
    let reported = notes_at(imported, "(declaration)");
    assert_eq!(reported.len(), checked.diagnostics.items.len(), "{reported:#?}");
    for (note, diagnostic) in reported.iter().zip(&checked.diagnostics.items) {
        assert!(note.contains(&diagnostic.message), "{note} / {}", diagnostic.message);
    }
    text
}

/// The rules `check` reports on the imported declaration, in order.
fn check_rules(imported: &Imported) -> Vec<&'static str> {
    let checked = decl::check(Path::new("imported.toml"), &imported.to_toml(), None);
    checked.diagnostics.items.iter().map(|d| d.rule.name()).collect()
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
    assert_eq!((timers.kind, timers.how), (EntryKind::Directory, Some(How::Symlink)), "a linked directory");
    assert!(notes_at(&imported, "\"/persistent\".directories[3].how").is_empty());
    let alice = &root.users["alice"];
    assert_eq!(alice.home, "/home/alice");
    assert_eq!(alice.group, "users");
    let dirs: Vec<&str> = alice.directories.iter().map(|e| e.path.as_str()).collect();
    assert_eq!(dirs, [".ssh", ".local/share/Steam", "Documents"]);
    let monitors = alice.files.iter().find(|e| e.path == ".config/monitors.xml").unwrap();
    assert_eq!(monitors.parent.as_ref().map(|p| p.mode.to_string()).as_deref(), Some("0700"));
    assert!(has_note(&imported, "\"/persistent\".users.alice.directories[0].mountOptions[1]", "x-gdu.hide"));
    assert_eq!(alice.directories[1].how, Some(How::Symlink));
    assert!(has_note(&imported, "\"/persistent\".files[2].mode", "only when creating"));
    // Blankslate always creates a link's target: `createLinkTarget = true` is its way.
    assert!(!imported.notes.iter().any(|n| n.path.ends_with("createLinkTarget")), "{}", all_notes(&imported));
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

// ---------------------------------------------------------------------------
// Fixtures printed by `nix eval --json` of the real modules (see fixtures/import/nix/).

fn home_user(name: Option<&str>, group: Option<&str>) -> HomeUser {
    HomeUser { name: name.map(Into::into), home: None, group: group.map(Into::into) }
}

fn entry<'a>(declaration: &'a Declaration, path: &str) -> &'a decl::Entry {
    let found = declaration.entries().into_iter().find(|e| e.path == path);
    found.unwrap_or_else(|| panic!("{path} is not declared: {:?}", paths(declaration))).entry
}

#[test]
fn fixtures_were_generated_with_the_documented_apply_function() {
    let script = fixture("nix/generate.sh");
    let clean = script.lines().find_map(|l| l.strip_prefix("clean='")).expect("generate.sh defines clean");
    assert_eq!(clean.trim_end_matches('\''), import::NIX_CLEAN);
    assert!(import::IMPERMANENCE_EVAL.contains(import::NIX_CLEAN));
    assert!(import::HOME_MANAGER_EVAL.ends_with("builtins.mapAttrs (_: hm: clean (hm.home.persistence or { }))'"));
    assert!(script.contains("\"$clean builtins.mapAttrs (_: hm: clean (hm.home.persistence or { }))\""));
}

#[test]
fn impermanence_nixos_module_snapshot() {
    let imported = import::impermanence(&fixture("impermanence-nixos.json")).unwrap();
    let text = assert_round_trip(&imported);
    insta::assert_snapshot!("impermanence_nixos_toml", text);
    insta::assert_snapshot!("impermanence_nixos_notes", all_notes(&imported));
}

#[test]
fn impermanence_nixos_module_shapes() {
    let imported = import::impermanence(&fixture("impermanence-nixos.json")).unwrap();
    let declaration = &imported.declaration;
    // Symbolic modes, as the module's own example writes them.
    assert_eq!(entry(declaration, "/var/lib/colord").owner.mode.to_string(), "0750");
    let id_rsa = entry(declaration, "/etc/nix/id_rsa");
    assert_eq!(id_rsa.parent.as_ref().map(|p| p.mode.to_string()).as_deref(), Some("0700"));
    // root's home is /root, from users.users (the removed `home` option prints null).
    let root = &declaration.persist["/persist"].users["root"];
    assert_eq!(root.home, "/root");
    assert_eq!((root.group.as_str(), root.directories.len()), ("root", 2));
    // The removed options print as null: nothing to say about them.
    assert!(
        !imported.notes.iter().any(|n| n.message.contains("removed impermanence option")),
        "{}",
        all_notes(&imported)
    );
    // All of /etc/ssh: imported, with the host keys proposed instead.
    assert_eq!(entry(declaration, "/etc/ssh").kind, EntryKind::Directory);
    let ssh = notes_at(&imported, "\"/persist\".directories[5]");
    assert!(ssh.iter().any(|n| n.contains("sshd_config") && n.contains("ssh_host_ed25519_key")), "{ssh:?}");
    // What `check` says: the nesting (both lines named) and the open private directories.
    assert_eq!(check_rules(&imported), ["nested", "private-mode", "machine-id-bind", "private-mode"]);
    assert!(has_note(
        &imported,
        "(declaration)",
        "`/var/lib/systemd/coredump` (line 9) lies inside `/var/lib/systemd` (line 8)"
    ));
    assert!(has_note(&imported, "(declaration)", "`/var/lib/private` is persisted with mode 0755"));
    assert!(has_note(&imported, "(declaration)", "`/root/.gnupg` is persisted with mode 0755"));
}

#[test]
fn home_manager_with_its_nixos_configuration_is_one_declaration() {
    let mut both = import::Importer::new();
    both.impermanence(&fixture("home-manager-nixos.json")).unwrap();
    both.home_manager(&fixture("home-manager.json"), &home_user(None, Some("users"))).unwrap();
    let imported = both.finish();
    let text = assert_round_trip(&imported);
    insta::assert_snapshot!("home_manager_toml", text);
    insta::assert_snapshot!("home_manager_notes", all_notes(&imported));
    let persist = &imported.declaration.persist["/persist"];
    assert_eq!(persist.directories.len(), 1, "/var/log from the NixOS configuration");
    let alice = &persist.users["alice"];
    assert_eq!((alice.home.as_str(), alice.group.as_str()), ("/home/alice", "users"));
    let dirs: Vec<&str> = alice.directories.iter().map(|e| e.path.as_str()).collect();
    assert_eq!(dirs, ["Documents", ".gnupg", ".local/share/keyrings", ".config/Signal"]);
    assert_eq!(alice.directories[1].owner.mode.to_string(), "0700", "u=rwx,g=,o=");
    let bob = &persist.users["bob"];
    assert_eq!(bob.home, "/srv/home/bob");
    // bob's own hideMounts hides bob's mounts, not the whole volume's.
    assert!(!persist.hide_mounts);
    assert_eq!(bob.directories[0].options, [MountOption::Hidden]);
    assert!(!persist.users.contains_key("carol"), "carol persists nothing");
    assert!(has_note(&imported, "home-manager.users.alice.home.persistence.\"/persist\".files[0].method", "auto"));
}

/// A user's own Home Manager JSON names the home: `/etc` (or any system or state
/// path) would make the user the owner of what is made there, so nothing is imported.
#[test]
fn a_home_that_is_a_system_path_is_refused_where_the_json_says_it() {
    let json = fixture("home-manager.json").replace("\"/home/alice\"", "\"/etc\"");
    let error = import::home_manager(&json, &home_user(None, Some("users"))).unwrap_err();
    assert!(matches!(error, ImportError::Home { .. }), "{error:?}");
    assert_eq!(
        error.to_string(),
        "home-manager.users.alice.home.persistence: `/etc` cannot be the home of `alice`: it holds the system's \
         configuration (accounts, passwords, sudoers); nothing is imported"
    );
    let standalone =
        r#"{"/persist": {"directories": [{"directory": "x", "user": "eve", "home": "/var/lib/blankslate/store"}]}}"#;
    let error = import::home_manager(standalone, &HomeUser::default()).unwrap_err();
    assert!(error.to_string().contains("lies inside `/var/lib/blankslate`"), "{error}");
    let given = HomeUser { name: Some("eve".into()), home: Some("/usr".into()), group: None };
    let error = import::home_manager(r#"{"/persist": {"directories": ["x"]}}"#, &given).unwrap_err();
    assert!(error.to_string().contains("`/usr` cannot be the home of `eve`"), "{error}");
    // The impermanence module's users' homes are checked the same way.
    let json = fixture("impermanence-current.json").replace("\"/home/alice\"", "\"/boot\"");
    let error = import::impermanence(&json).unwrap_err();
    assert!(error.to_string().contains("`/boot` cannot be the home of `alice`"), "{error}");
}

#[test]
fn home_manager_without_a_group_says_so() {
    let imported = import::home_manager(&fixture("home-manager.json"), &HomeUser::default()).unwrap();
    assert_eq!(imported.declaration.persist["/persist"].users["alice"].group, "alice");
    assert!(has_note(&imported, "home-manager.users.alice.home.persistence", "does not know the primary group"));
}

#[test]
fn home_manager_first_module_links_directories_and_moves_nothing_silently() {
    let json = fixture("home-manager-v1.json");
    let error = import::home_manager(&json, &HomeUser::default()).unwrap_err();
    assert_eq!(error.to_string(), "home.persistence does not say whose home it is for");
    let imported = import::home_manager(&json, &home_user(Some("alice"), Some("users"))).unwrap();
    let text = assert_round_trip(&imported);
    insta::assert_snapshot!("home_manager_v1_toml", text);
    insta::assert_snapshot!("home_manager_v1_notes", all_notes(&imported));
    let declaration = &imported.declaration;
    // `/persistent/home/alice` is alice's home in the volume `/persistent`.
    let alice = &declaration.persist["/persistent"].users["alice"];
    let trash = alice.directories.iter().find(|e| e.path == ".local/share/Trash").unwrap();
    assert_eq!(trash.how, Some(How::Symlink));
    assert_eq!(entry(declaration, "/home/alice/Music").how, None, "bindfs becomes a bind mount");
    assert_eq!(entry(declaration, "/home/alice/.screenrc").how, Some(How::Symlink), "files were links");
    // `/big/alice` is not a home's layout: declared there, with the move to make.
    assert_eq!(entry(declaration, "/home/alice/Videos").how, Some(How::Symlink), "defaultDirectoryMethod");
    assert!(declaration.persist.contains_key("/big/alice"));
    assert!(has_note(&imported, "home.persistence.\"/big/alice\"", "`/big/alice/home/alice/PATH`"));
    assert!(has_note(&imported, "home.persistence.\"/big/alice\".allowOther", "no-allow-other"));
    assert!(notes_at(&imported, "home.persistence.\"/persistent/home/alice\".allowOther").is_empty());
}

#[test]
fn preservation_module_snapshot() {
    let imported = import::preservation(&fixture("preservation-module.json")).unwrap();
    let text = assert_round_trip(&imported);
    insta::assert_snapshot!("preservation_module_toml", text);
    insta::assert_snapshot!("preservation_module_notes", all_notes(&imported));
}

#[test]
fn preservation_module_shapes() {
    let imported = import::preservation(&fixture("preservation-module.json")).unwrap();
    let declaration = &imported.declaration;
    let alice = &declaration.persist["/persistent"].users["alice"];
    assert_eq!(alice.group, "users", "homeGroup");
    // The module's `_intermediate` directories are blankslate's own parents: not declared.
    let dirs: Vec<&str> = alice.directories.iter().map(|e| e.path.as_str()).collect();
    assert_eq!(dirs, [".ssh", ".local/share/keyrings", ".local/share/Trash"]);
    let trash = &alice.directories[2];
    assert_eq!(trash.how, Some(How::Symlink));
    assert!(trash.parent.is_some(), "configureParent defaults to true for a user's link");
    assert_eq!(declaration.persist["/persistent"].users["root"].home, "/root");
    assert!(has_note(&imported, "\"/persistent\".directories[2]", "ssh_host_ed25519_key"));
    assert!(
        !imported.notes.iter().any(|n| n.path.contains("directories[3]") && n.path.contains("users")),
        "{}",
        all_notes(&imported)
    );
}
