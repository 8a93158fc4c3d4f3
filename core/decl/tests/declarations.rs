//! The declaration, end to end: the shipped examples check clean, every broken
//! declaration in `tests/broken/` is refused with the rule its name promises (and a
//! reviewed, snapshotted message), passing edge cases pass, the same intent always
//! gives the same canonical JSON, and `write::to_toml` reads back unchanged.

use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};

use blankslate_decl::{self as decl, Checked, Rule, Severity, UserDb, write};

fn manifest_dir() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn examples() -> Vec<PathBuf> {
    let dir = manifest_dir().join("../../examples");
    let mut paths: Vec<PathBuf> = fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()))
        .map(|entry| entry.expect("a directory entry").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "toml"))
        .collect();
    paths.sort();
    paths
}

fn check_file(path: &Path) -> Checked {
    let text = fs::read_to_string(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    decl::check(path, &text, None)
}

/// Checks `text` as if it were `name`, and insists it is valid.
fn valid(name: &str, text: &str) -> decl::Declaration {
    let checked = decl::check(Path::new(name), text, None);
    let rendered = checked.diagnostics.render(false);
    checked.declaration.unwrap_or_else(|| panic!("{name} should be valid, but:\n{rendered}"))
}

#[test]
fn every_example_checks_clean() {
    let examples = examples();
    let names: Vec<String> = examples.iter().map(|p| p.file_name().unwrap().to_string_lossy().into_owned()).collect();
    for expected in ["desktop.toml", "laptop.toml", "server.toml"] {
        assert!(names.iter().any(|n| n == expected), "examples/{expected} is missing (found {names:?})");
    }
    for path in &examples {
        let checked = check_file(path);
        assert!(
            checked.diagnostics.items.is_empty(),
            "{} should check without diagnostics, but:\n{}",
            path.display(),
            checked.diagnostics.render(false)
        );
        assert!(checked.declaration.is_some(), "{} has no declaration", path.display());
    }
}

#[test]
fn examples_round_trip_through_to_toml() {
    for path in examples() {
        let declaration = check_file(&path).declaration.expect("examples are valid");
        let written = write::to_toml(&declaration);
        // Same directory, so relative sources (none remain: they are resolved) agree.
        let again = decl::check(&path, &written, None);
        let rendered = again.diagnostics.render(false);
        let again = again.declaration.unwrap_or_else(|| {
            panic!("to_toml of {} does not check:\n{rendered}\n--- written ---\n{written}", path.display())
        });
        assert_eq!(
            declaration.canonical_json(),
            again.canonical_json(),
            "round trip of {} changed it:\n{written}",
            path.display()
        );
    }
}

#[test]
fn examples_declare_what_they_promise() {
    let server = check_file(&manifest_dir().join("../../examples/server.toml")).declaration.expect("valid");
    let data = &server.persist["/data"];
    let postgres = &data.directories[0];
    assert_eq!((postgres.owner.user.as_str(), postgres.owner.group.as_str()), ("postgres", "postgres"));
    assert_eq!(postgres.owner.mode.to_string(), "0700");
    assert!(postgres.parent.is_some(), "the server example shows `parent`");
    let sudoers = &server.etc["sudoers"];
    assert_eq!(serde_json::to_value(sudoers.mode).unwrap(), "0440");
    assert!(matches!(&sudoers.contents, decl::EtcContents::Source(s) if s.ends_with("files/sudoers")));
    assert!(matches!(&server.etc["hosts"].contents, decl::EtcContents::Text(_)));
    let sudoers_d = &server.etc["sudoers.d"];
    assert_eq!(sudoers_d.contents, decl::EtcContents::Directory(true));
    assert_eq!(serde_json::to_value(sudoers_d.mode).unwrap(), "0750");
    assert!(!server.audit.ignore.is_empty());

    let laptop = check_file(&manifest_dir().join("../../examples/laptop.toml")).declaration.expect("valid");
    let persist = &laptop.persist["/persist"];
    assert!(persist.hide_mounts);
    let alice = &persist.users["alice"];
    let history = alice.files.iter().find(|f| f.path == ".bash_history").expect("alice keeps her history");
    assert_eq!(history.how, Some(decl::How::Symlink));

    let desktop = check_file(&manifest_dir().join("../../examples/desktop.toml")).declaration.expect("valid");
    let users = &desktop.persist["/persist"].users;
    assert!(users.len() >= 2);
    assert_eq!(users["bob"].home, "/home/family/bob");
    assert_eq!(users["alice"].group, "users");
    assert!(users["alice"].directories.iter().any(|d| d.options.contains(&decl::MountOption::NoSuid)));
}

/// `NN-rule-name--what.toml` expects `error[rule-name]`.
fn expected_rule(file_name: &str) -> &str {
    let stem = file_name.strip_suffix(".toml").expect("a .toml file");
    let (number, rest) = stem.split_once('-').expect("NN-rule");
    assert!(
        number.len() == 2 && number.bytes().all(|b| b.is_ascii_digit()),
        "{file_name}: names start with two digits"
    );
    rest.split_once("--").map_or(rest, |(rule, _)| rule)
}

/// Whether `rendered` has a `--> file:LINE:COL` location line.
fn has_location(rendered: &str, file: &str) -> bool {
    let marker = format!("--> {file}:");
    rendered.lines().filter_map(|line| line.trim_start().strip_prefix(&marker)).any(|rest| {
        rest.split_once(':').is_some_and(|(line, col)| {
            !line.is_empty()
                && line.bytes().all(|b| b.is_ascii_digit())
                && !col.is_empty()
                && col.bytes().all(|b| b.is_ascii_digit())
        })
    })
}

const ALL_ERROR_RULES: [Rule; 32] = [
    Rule::NotUtf8,
    Rule::Syntax,
    Rule::UnknownKey,
    Rule::MissingKey,
    Rule::WrongType,
    Rule::UnsupportedVersion,
    Rule::RelativePath,
    Rule::DotDot,
    Rule::NotNormalized,
    Rule::InvalidPath,
    Rule::Duplicate,
    Rule::DirectoryAndFile,
    Rule::NestedInOtherRoot,
    Rule::NestedInFile,
    Rule::NestedInSymlink,
    Rule::ShadowsEtc,
    Rule::ParentConflict,
    Rule::RootInsidePersisted,
    Rule::InvalidMode,
    Rule::InvalidSize,
    Rule::InvalidNet,
    Rule::InvalidRoot,
    Rule::InvalidName,
    Rule::EtcContents,
    Rule::EtcSourceMissing,
    Rule::EtcSource,
    Rule::OwnerOnLink,
    Rule::InvalidGlob,
    Rule::InvalidMountOption,
    Rule::ApiFilesystem,
    Rule::Volume,
    Rule::Home,
];

/// Fails to compile when a rule is added, so that the list above (and a broken
/// declaration for it) gets added too.
fn rule_is_listed(rule: Rule) -> bool {
    match rule {
        Rule::UnknownUser
        | Rule::FileBindRename
        | Rule::MachineIdBind
        | Rule::Nested
        | Rule::PrivateMode
        | Rule::SecretMode
        | Rule::ManyMounts
        | Rule::FstabConflict => false,
        Rule::NotUtf8
        | Rule::Syntax
        | Rule::UnknownKey
        | Rule::MissingKey
        | Rule::WrongType
        | Rule::UnsupportedVersion
        | Rule::RelativePath
        | Rule::DotDot
        | Rule::NotNormalized
        | Rule::InvalidPath
        | Rule::Duplicate
        | Rule::DirectoryAndFile
        | Rule::NestedInOtherRoot
        | Rule::NestedInFile
        | Rule::NestedInSymlink
        | Rule::ShadowsEtc
        | Rule::ParentConflict
        | Rule::RootInsidePersisted
        | Rule::InvalidMode
        | Rule::InvalidSize
        | Rule::InvalidNet
        | Rule::InvalidRoot
        | Rule::InvalidName
        | Rule::EtcContents
        | Rule::EtcSourceMissing
        | Rule::EtcSource
        | Rule::OwnerOnLink
        | Rule::InvalidGlob
        | Rule::InvalidMountOption
        | Rule::ApiFilesystem
        | Rule::Volume
        | Rule::Home => ALL_ERROR_RULES.contains(&rule),
    }
}

#[test]
fn broken_declarations_are_refused_with_their_rule() {
    let dir = manifest_dir().join("tests/broken");
    let mut files: Vec<String> = fs::read_dir(&dir)
        .expect("tests/broken exists")
        .map(|entry| entry.expect("a directory entry").file_name().to_string_lossy().into_owned())
        .filter(|name| Path::new(name).extension().is_some_and(|ext| ext == "toml"))
        .collect();
    files.sort();
    assert!(files.len() >= 30, "only {} broken declarations", files.len());

    let mut failures = Vec::new();
    let mut covered = Vec::new();
    for file_name in &files {
        let rule = expected_rule(file_name);
        covered.push(rule.to_owned());
        let bytes = fs::read(dir.join(file_name)).expect("readable");
        // A relative name: snapshots do not depend on where the checkout lives, and
        // relative `source`s resolve against tests/broken (cargo runs tests in core/decl/).
        let shown = format!("tests/broken/{file_name}");
        let checked = decl::check_bytes(Path::new(&shown), &bytes, None);
        let rendered = checked.diagnostics.render(false);
        if !checked.diagnostics.has_errors() || checked.declaration.is_some() {
            failures.push(format!("{file_name}: accepted, but it breaks `{rule}`"));
        }
        if !rendered.contains(&format!("error[{rule}]")) {
            failures.push(format!("{file_name}: no error[{rule}] in\n{rendered}"));
        }
        if !has_location(&rendered, &shown) {
            failures.push(format!("{file_name}: no file:line:col in\n{rendered}"));
        }
        for diagnostic in &checked.diagnostics.items {
            if diagnostic.severity == Severity::Error && diagnostic.span.is_none() {
                failures.push(format!("{file_name}: error[{}] points nowhere", diagnostic.rule.name()));
            }
        }
        let name = file_name.trim_end_matches(".toml");
        insta::assert_snapshot!(name, rendered);
    }
    for rule in ALL_ERROR_RULES {
        assert!(rule_is_listed(rule));
        if !covered.iter().any(|c| c == rule.name()) {
            failures.push(format!("no broken declaration covers `{}`", rule.name()));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn unknown_owners_are_warnings_with_a_user_database() {
    let users = UserDb::from_texts(
        "root:x:0:0::/root:/bin/sh\nalice:x:1000:100::/home/alice:/bin/bash\n",
        "root:x:0:\nusers:x:100:alice\n",
        "/etc/passwd",
    );
    let text = r#"version = 1

[persist."/persist"]
directories = [
  "/var/log",
  { directory = "/var/lib/postgresql", user = "postgres", group = "postgres", mode = "0700" },
]

[persist."/persist".users.alice]
group = "users"
directories = ["Documents"]

[persist."/persist".users.bob]
directories = ["Documents", "Music"]
files = [{ file = ".bash_history", how = "bind" }]
"#;
    let checked = decl::check(Path::new("tests/unknown-user.toml"), text, Some(&users));
    assert!(!checked.diagnostics.has_errors());
    assert!(checked.declaration.is_some(), "warnings do not make a declaration invalid");
    let warnings: Vec<_> = checked.diagnostics.items.iter().filter(|d| d.rule == Rule::UnknownUser).collect();
    // postgres and bob, each as a user and as a group; bob once for three entries.
    assert_eq!(warnings.len(), 4, "one per unknown name: {warnings:?}");
    assert!(warnings.iter().all(|d| d.severity == Severity::Warning));
    let rendered = checked.diagnostics.render(false);
    assert!(rendered.contains("warning[unknown-user]"));
    assert!(has_location(&rendered, "tests/unknown-user.toml"));
    insta::assert_snapshot!("unknown-user", rendered);

    // Known names, or no database at all: nothing to say.
    let known = UserDb::from_texts(
        "root:x:0:0::/root:/bin/sh\npostgres:x:71:71::/var/lib/postgresql:/bin/false\nalice:x:1000:100::/home/alice:/bin/bash\nbob:x:1001:1001::/home/bob:/bin/bash\n",
        "root:x:0:\npostgres:x:71:\nusers:x:100:\nbob:x:1001:\n",
        "/etc/passwd",
    );
    assert!(decl::check(Path::new("x.toml"), text, Some(&known)).diagnostics.items.is_empty());
    assert!(decl::check(Path::new("x.toml"), text, None).diagnostics.items.is_empty());
}

#[test]
fn a_home_that_differs_from_passwd_is_a_warning_at_its_line() {
    let users = UserDb::from_texts(
        "root:x:0:0::/root:/bin/sh\nalice:x:1000:100::/home/alice:/bin/bash\npostgres:x:71:71::/var/lib/postgresql:/bin/false\n",
        "root:x:0:\nusers:x:100:alice\npostgres:x:71:\n",
        "/etc/passwd",
    );
    let text = r#"version = 1

[persist."/persist".users.alice]
group = "users"
home = "/srv/alice"
directories = ["Documents"]

[persist."/persist".users.postgres]
directories = ["15"]
"#;
    let checked = decl::check(Path::new("tests/home.toml"), text, Some(&users));
    assert!(checked.declaration.is_some(), "a warning only:\n{}", checked.diagnostics.render(false));
    let homes: Vec<_> = checked.diagnostics.items.iter().filter(|d| d.rule == Rule::Home).collect();
    assert_eq!(homes.len(), 2, "alice's home, and postgres's default /home/postgres: {homes:?}");
    assert!(homes.iter().all(|d| d.severity == Severity::Warning));
    let rendered = checked.diagnostics.render(false);
    assert!(rendered.contains("--> tests/home.toml:5:8"), "at alice's `home` value:\n{rendered}");
    assert!(rendered.contains("`/home/alice` in /etc/passwd"), "{rendered}");
    assert!(rendered.contains("--> tests/home.toml:8:"), "at postgres's table, which has no `home`:\n{rendered}");
    // Without a user database there is nothing to compare with.
    assert!(decl::check(Path::new("x.toml"), text, None).diagnostics.items.is_empty());
}

/// Declarations that look odd but are fine.
const PASSING: &[(&str, &str)] = &[
    ("a net with its bounds", "version = 1\n[net]\nkeep = 5\nmax_size = \"512M\"\n"),
    ("a net with its defaults", "version = 1\n[net]\n"),
    (
        "a persisted path inside a declared /etc directory",
        r#"version = 1
[persist."/persist"]
directories = [{ directory = "/etc/NetworkManager/system-connections", mode = "0700" }]
[etc."NetworkManager"]
directory = true
[etc."NetworkManager/NetworkManager.conf"]
text = "[main]\n"
"#,
    ),
    (
        "unicode paths",
        r#"version = 1
[persist."/persist"]
directories = ["/srv/Ünïcödé/日本語 ファイル", "/srv/emoji 🎉/x", "/srv/with space", "/srv/tab\there"]
files = [{ file = "/srv/quote\"d", how = "bind" }, { file = "/srv/back\\slash", how = "bind" }]
[persist."/persist".users.zoe]
directories = ["Документы", "Photos (2024)"]
"#,
    ),
    (
        "names at the limit",
        r#"version = 1
[persist."/persist"]
directories = [{ directory = "/srv/a", user = "_svc-user.name", group = "g_32_chars_long_group_name_xxxxx" }]
"#,
    ),
    (
        "array of tables",
        r#"version = 1
[[persist."/persist".directories]]
directory = "/var/lib/app"
mode = "0700"
[[persist."/persist".directories]]
directory = "/var/lib/other"
[[persist."/persist".files]]
file = "/etc/hostid"
how = "bind"
"#,
    ),
    (
        "explicit link mode and a glob source",
        r#"version = 1
[etc."hosts"]
text = ""
mode = "link"
[etc."nginx/conf.d"]
source = "broken/nginx/*.conf"
"#,
    ),
    (
        "nesting across volumes, and files beside etc entries",
        r#"version = 1
[persist."/persist"]
directories = ["/var/lib", "/etc/ssh/keys"]
[persist."/data"]
device = "LABEL=data"
directories = ["/var/lib/postgresql", { directory = "/home/alice/.local/share/Trash", how = "symlink" }]
files = [{ file = "/srv/app.conf", how = "bind" }, { file = "/etc/ssh/ssh_host_ed25519_key", mode = "0600", how = "bind" }]
[etc."ssh/sshd_config"]
text = "PermitRootLogin no\n"
[etc."ssh/keys-readme"]
text = "not under /etc/ssh/keys\n"
"#,
    ),
    (
        "a home elsewhere and modes with special bits",
        r#"version = 1
[root]
size = "100%"
mode = "1777"
[persist."/persist".users.nobody]
home = "/var/empty"
directories = [{ directory = "cache", mode = "2770", options = ["noexec", "x-gvfs-hide", "ro", "nodev", "nosuid"] }]
"#,
    ),
    (
        "empty things",
        r#"version = 1
[root]
[persist."/persist"]
directories = []
files = []
[persist."/persist".users.alice]
[etc]
[audit]
ignore = []
"#,
    ),
    (
        "control characters in text",
        r#"version = 1
[etc."motd"]
text = "del \u007F nul \u0000 bell \u0007 cr \r tab \t é \"q\" \\ \u001b[0m"
[persist."/persist"]
directories = ["/srv/del\u007Fnul"]
"#,
    ),
    ("only a version", "version = 1\n"),
    (
        "sizes and modes in short forms",
        r#"version = 1
[root]
size = "512m"
mode = "755"
"#,
    ),
    (
        "volumes on other disks, one nested in another's mount point",
        r#"version = 1
[persist."/persist"]
directories = ["/var/log"]
[persist."/persist/big"]
device = "LABEL=big"
directories = ["/var/lib/big"]
[persist."/data"]
device = "UUID=0b1c2d3e-0000-4000-8000-00000000abcd"
fs_type = "xfs"
mount_options = ["noatime", "logbsize=256k"]
directories = ["/srv"]
[persist."/scratch"]
device = "/dev/disk/by-partlabel/scratch"
fs_type = "btrfs"
directories = ["/var/tmp/build"]
"#,
    ),
    (
        "homes where services keep theirs",
        r#"version = 1
[persist."/persist".users.postgres]
home = "/var/lib/postgresql"
directories = ["15"]
[persist."/persist".users.git]
home = "/srv/git"
directories = ["repositories"]
[persist."/persist".users.man]
home = "/var/cache/man"
files = [{ file = "index.db", how = "copy" }]
[persist."/persist".users.root]
directories = [{ directory = ".ssh", mode = "0700" }]
"#,
    ),
    (
        "same parent asked twice the same way",
        r#"version = 1
[persist."/persist"]
directories = [
  { directory = "/var/lib/postgresql/15", parent = { user = "postgres", group = "postgres" } },
  { directory = "/var/lib/postgresql/16", parent = { user = "postgres", group = "postgres", mode = "0755" } },
]
"#,
    ),
];

#[test]
fn passing_edge_cases_pass_and_round_trip() {
    for (name, text) in PASSING {
        // Named inside tests/, so the relative glob source above resolves (a source
        // may not climb out of the declaration's directory with `..`).
        let file = format!("tests/{name}.toml");
        let checked = decl::check(Path::new(&file), text, None);
        assert!(checked.diagnostics.items.is_empty(), "{name}:\n{}", checked.diagnostics.render(false));
        let declaration = checked.declaration.expect("no diagnostics, so valid");
        let written = write::to_toml(&declaration);
        let again = decl::check(Path::new(&file), &written, None);
        let rendered = again.diagnostics.render(false);
        let again =
            again.declaration.unwrap_or_else(|| panic!("{name}: to_toml does not check:\n{rendered}\n{written}"));
        assert_eq!(declaration.canonical_json(), again.canonical_json(), "{name}: round trip changed:\n{written}");
    }
}

#[test]
fn the_same_intent_gives_the_same_canonical_json() {
    let terse = valid(
        "terse.toml",
        r#"version = 1
[persist."/persist"]
directories = ["/var/log", "/var/lib/nixos", { directory = "/srv", options = ["nodev", "nosuid"] }]
files = ["/etc/machine-id"]
[persist."/persist".users.alice]
directories = ["Documents", ".ssh"]
files = [{ file = ".bash_history", how = "bind" }]
[etc."hosts"]
text = "127.0.0.1 localhost\n"
[etc."apt/sources.list.d"]
directory = true
[audit]
ignore = ["/var/cache/**", "/tmp/**"]
"#,
    );
    let verbose = valid(
        "verbose.toml",
        r#"# The same, with every default spelled out and everything in another order.
version = 1

[audit]
ignore = ["/tmp/**", "/var/cache/**", "/tmp/**"]

[etc.hosts]
text = """
127.0.0.1 localhost
"""
mode = "link"

[etc."apt/sources.list.d"]
directory = true
mode = "755"
user = "root"
group = "root"

[persist."/persist".users.alice]
home = "/home/alice"
group = "alice"
files = [{ file = ".bash_history", user = "alice", group = "alice", mode = "0644", how = "bind" }]
directories = [{ directory = ".ssh", mode = "755" }, { directory = "Documents", user = "alice" }]

[persist."/persist"]
hide_mounts = false
files = [{ file = "/etc/machine-id", user = "root", group = "root", mode = "0644", how = "bind", options = [] }]
directories = [
  { directory = "/srv", options = ["nosuid", "nodev", "nosuid"] },
  { directory = "/var/lib/nixos", user = "root", group = "root", mode = "0755" },
  "/var/log",
]

[root]
size = "25%"
mode = "0755"
"#,
    );
    assert_eq!(terse.canonical_json(), verbose.canonical_json());
    // The generation keeps the canonical JSON and reads it back, a directory entry too.
    let json = terse.canonical_json();
    assert!(json.contains(r#""directory":true"#), "{json}");
    assert_eq!(decl::Declaration::from_canonical_json(&json).unwrap().canonical_json(), json);
    // And a real difference is one.
    let different = valid(
        "different.toml",
        "version = 1\n[persist.\"/persist\"]\ndirectories = [{ directory = \"/var/log\", mode = \"0750\" }]\n",
    );
    let same_path = valid("same.toml", "version = 1\n[persist.\"/persist\"]\ndirectories = [\"/var/log\"]\n");
    assert_ne!(different.canonical_json(), same_path.canonical_json());
}

#[test]
fn a_volume_device_has_one_canonical_spelling_and_older_generations_stay_the_same() {
    let terse = valid("a.toml", "version = 1\n[persist.\"/persist\"]\n[persist.\"/data\"]\ndevice = \"UUID=AB-CD\"\n");
    let verbose = valid(
        "b.toml",
        "version = 1\n[persist.\"/persist\"]\n[persist.\"/data\"]\ndevice = \"UUID=ab-cd\"\nfs_type = \"ext4\"\nmount_options = []\n",
    );
    assert_eq!(terse.canonical_json(), verbose.canonical_json());
    assert!(terse.canonical_json().contains(r#""volume":{"device":"UUID=ab-cd","fs_type":"ext4","options":[]}"#));
    // A root without a device writes no `volume`: generations built before devices
    // existed read back, and rebuild, to the same bytes.
    let plain = valid("c.toml", "version = 1\n[persist.\"/persist\"]\ndirectories = [\"/var/log\"]\n");
    assert_eq!(
        plain.canonical_json(),
        r#"{"version":1,"root":{"size":"25%","mode":"0755"},"persist":{"/persist":{"hide_mounts":false,"directories":[{"path":"/var/log","user":"root","group":"root","mode":"0755"}],"files":[],"users":{}}},"etc":{},"audit":{"ignore":[]}}"#
    );
}

#[test]
fn a_net_is_off_unless_declared_and_its_sizes_are_powers_of_1024() {
    let none = valid("none.toml", "version = 1\n");
    assert_eq!(none.net, None);
    assert!(!none.canonical_json().contains("net"), "a declaration without [net] keeps its old hash");
    let net = valid("net.toml", "version = 1\n[net]\nmax_size = \"3g\"\n").net.expect("declared");
    assert_eq!((net.keep, net.max_size), (decl::NetSettings::DEFAULT.keep, 3 << 30));
    let net = valid("net.toml", "version = 1\n[net]\nkeep = 1\nmax_size = \"1000\"\n").net.expect("declared");
    assert_eq!((net.keep, net.max_size), (1, 1000));
}

#[test]
fn a_root_is_a_tmpfs_unless_declared_btrfs_and_old_declarations_keep_their_hash() {
    let plain = valid("plain.toml", "version = 1\n[root]\nsize = \"2G\"\n");
    assert_eq!(plain.root.btrfs, None);
    assert!(plain.canonical_json().contains(r#""root":{"size":"2G","mode":"0755"}"#), "{}", plain.canonical_json());
    let tmpfs = valid("tmpfs.toml", "version = 1\n[root]\nkind = \"tmpfs\"\nsize = \"2G\"\n");
    assert_eq!(tmpfs.canonical_json(), plain.canonical_json(), "kind = \"tmpfs\" is the default spelled out");

    let btrfs = valid("btrfs.toml", "version = 1\n[root]\nkind = \"btrfs\"\ndevice = \"LABEL=roots\"\n");
    let spec = btrfs.root.btrfs.clone().expect("a btrfs root");
    assert_eq!((spec.device, spec.keep), (decl::Device::Label("roots".into()), decl::BtrfsRoot::DEFAULT_KEEP));
    assert!(btrfs.canonical_json().contains(r#""btrfs":{"device":"LABEL=roots","keep":3}"#));
    let round_trip = decl::Declaration::from_canonical_json(&btrfs.canonical_json()).expect("reads back");
    assert_eq!(round_trip.root, btrfs.root);
    let written = write::to_toml(&btrfs);
    assert_eq!(valid("written.toml", &written).root, btrfs.root, "{written}");

    let none_kept = valid("keep.toml", "version = 1\n[root]\nkind = \"btrfs\"\ndevice = \"/dev/vdb\"\nkeep = 0\n");
    assert_eq!(none_kept.root.btrfs.expect("a btrfs root").keep, 0, "a btrfs root may keep no previous root");
}

#[test]
fn to_toml_writes_defaults_tersely() {
    let declaration = valid(
        "verbose.toml",
        r#"version = 1
[persist."/persist"]
directories = [{ directory = "/var/log", user = "root", group = "root", mode = "0755" }]
"#,
    );
    let written = write::to_toml(&declaration);
    assert!(written.contains("\"/var/log\",") && !written.contains("mode"), "{written}");
}

/// `(rule, line, column)` of every diagnostic, in order.
fn locations(checked: &Checked) -> Vec<(&'static str, usize, usize)> {
    let d = &checked.diagnostics;
    d.items
        .iter()
        .map(|item| {
            let at = d.locate(item.span.expect("every warning points somewhere").start);
            (item.rule.name(), at.line, at.column)
        })
        .collect()
}

#[test]
fn private_directories_open_to_others_and_nesting_are_warnings() {
    let text = r#"version = 1

[persist."/persist"]
directories = [
  "/var/lib/systemd",
  "/var/lib/systemd/coredump",
  { directory = "/var/lib/private", mode = "0750" },
]

[persist."/persist".users.alice]
directories = [".ssh", { directory = ".gnupg", mode = "0700" }]

[persist."/persist".users.root]
directories = [{ directory = ".gnupg", mode = "0711" }]

[persist."/persist".users.bob]
files = [
  { file = ".ssh/authorized_keys", how = "bind" },
  { file = ".local/share/gnupg/private-keys-v1.d/key", how = "bind" },
  # Closed by the parent of the next entry, whatever the order.
  { file = ".gnupg/private-keys-v1.d/key", how = "bind" },
  { file = ".gnupg/pubring.kbx", how = "bind", parent = { mode = "0700" } },
]

[persist."/persist".users.carol]
files = [{ file = ".gnupg/private-keys-v1.d/key", how = "bind" }]
"#;
    let checked = decl::check(Path::new("tests/safer.toml"), text, None);
    assert!(!checked.diagnostics.has_errors() && checked.declaration.is_some(), "warnings only");
    assert_eq!(
        locations(&checked),
        [
            ("nested", 6, 3),
            ("private-mode", 7, 17),
            ("private-mode", 11, 16),
            ("private-mode", 14, 30),
            ("private-mode", 18, 12),
            ("private-mode", 26, 19),
        ]
    );
    insta::assert_snapshot!("safer-defaults", checked.diagnostics.render(false));
}

/// A known secret kept as a copy with no mode is a warning (its mode is kept as strict
/// as it was, but the declaration should say what it is); with a mode, or as a
/// bind mount, or a file that is not a secret, it is not.
#[test]
fn a_secret_kept_as_a_copy_without_a_mode_is_a_warning() {
    let text = r#"version = 1

[persist."/persist"]
files = [
  { file = "/etc/shadow", how = "copy" },
  { file = "/etc/gshadow", how = "copy", mode = "0640", group = "shadow" },
  { file = "/etc/ssh/ssh_host_ed25519_key", how = "copy" },
  { file = "/etc/ssh/ssh_host_ed25519_key.pub", how = "copy" },
  { file = "/etc/wireguard/wg0.conf", how = "copy" },
  { file = "/etc/passwd", how = "copy" },
  { file = "/etc/ssl/private/site.key", how = "bind" },
]
"#;
    let checked = decl::check(Path::new("tests/secrets.toml"), text, None);
    assert!(!checked.diagnostics.has_errors() && checked.declaration.is_some(), "warnings only");
    assert_eq!(
        locations(&checked),
        [("secret-mode", 5, 12), ("secret-mode", 7, 12), ("secret-mode", 9, 12), ("secret-mode", 11, 12)]
    );
    let rendered = checked.diagnostics.render(false);
    assert!(rendered.contains("`/etc/shadow` holds secrets and is persisted as a copy with no mode"), "{rendered}");
}

/// A declaration of `count` bind-mounted directories, 40 to a parent under /srv.
fn many_mounts(count: usize) -> String {
    let mut text = String::from("version = 1\n\n[persist.\"/persist\"]\ndirectories = [\n");
    for i in 0..count {
        let _ = writeln!(text, "  \"/srv/app{}/data{i}\",", i / 40);
    }
    text.push_str("  { directory = \"/home/alice/.local/share/Trash\", how = \"symlink\" },\n]\n");
    text
}

#[test]
fn too_many_bind_mounts_is_a_warning_naming_the_best_parent() {
    // Links are not mounts: the Trash link keeps 250 mounts at the limit.
    let at_limit = decl::check(Path::new("tests/mounts.toml"), &many_mounts(decl::MANY_MOUNTS), None);
    assert!(at_limit.diagnostics.items.is_empty(), "{}", at_limit.diagnostics.render(false));
    let checked = decl::check(Path::new("tests/mounts.toml"), &many_mounts(decl::MANY_MOUNTS + 30), None);
    // The 251st mount is on line 4 + 251.
    assert_eq!(locations(&checked), [("many-mounts", 255, 3)]);
    let rendered = checked.diagnostics.render(false);
    assert!(rendered.contains("280 bind mounts, more than 250"), "{rendered}");
    // /srv covers all 280, but each /srv/appN only 40: the most is /srv.
    assert!(rendered.contains("`/srv` covers 280 of them"), "{rendered}");
    insta::assert_snapshot!("many-mounts", rendered);
}

#[test]
fn a_bind_mounted_machine_id_is_a_warning_and_a_copy_is_not() {
    let bound = "version = 1\n[persist.\"/persist\"]\nfiles = [\n  \"/etc/machine-id\",\n]\n";
    let checked = decl::check(Path::new("tests/machine-id.toml"), bound, None);
    assert!(checked.declaration.is_some(), "a warning only");
    assert_eq!(locations(&checked), [("machine-id-bind", 4, 3)]);
    assert!(checked.diagnostics.render(false).contains("how = \"copy\""));
    let copied = bound.replace("\"/etc/machine-id\"", "{ file = \"/etc/machine-id\", how = \"copy\" }");
    assert!(decl::check(Path::new("tests/machine-id.toml"), &copied, None).diagnostics.items.is_empty());
}

/// A file known to hold secrets given a mode everyone can read is a warning, as an
/// `/etc` copy and persisted (where no mode means the default 0644); a narrow mode,
/// or a link (stored readable by root alone), is not.
#[test]
fn a_secret_file_open_to_everyone_is_a_warning() {
    let warned = |text: &str| -> Vec<String> {
        let checked = decl::check(Path::new("secret.toml"), text, None);
        assert!(!checked.diagnostics.has_errors(), "{}", checked.diagnostics.render(false));
        checked.diagnostics.items.iter().filter(|d| d.rule == Rule::SecretMode).map(|d| d.message.clone()).collect()
    };
    let etc = "version = 1\n[etc.\"shadow\"]\ntext = \"root:!:1::::::\"\nmode = \"0644\"\n";
    assert_eq!(warned(etc), ["/etc entry `shadow` holds secrets, and mode 0644 lets everyone read it"]);
    let persisted = "version = 1\n[persist.\"/persist\"]\nfiles = [{ file = \"/etc/gshadow\", how = \"copy\" }, \
                     { file = \"/etc/ssh/ssh_host_rsa_key\", mode = \"0644\", how = \"bind\" }]\n";
    let found = warned(persisted);
    assert_eq!(found.len(), 2, "{found:?}");
    assert!(found[0].starts_with("`/etc/gshadow` holds secrets and is persisted as a copy with no mode"), "{found:?}");
    assert!(found[1].starts_with("persisted `/etc/ssh/ssh_host_rsa_key` holds secrets, and mode 0644"), "{found:?}");
    for fine in [
        "version = 1\n[etc.\"shadow\"]\ntext = \"root:!:1::::::\"\nmode = \"0640\"\ngroup = \"shadow\"\n",
        "version = 1\n[etc.\"shadow\"]\ntext = \"root:!:1::::::\"\n",
        "version = 1\n[persist.\"/persist\"]\nfiles = [{ file = \"/etc/shadow\", mode = \"0640\", how = \"copy\" }]\n",
    ] {
        assert!(warned(fine).is_empty(), "{fine}");
    }
}
