//! Persisted-path activation on scratch roots. Every test does its mounting in a
//! thread that first enters a private mount namespace of its own: nothing it mounts
//! can reach the host, and the namespace (with its mounts) dies with the thread.

use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use blankslate_decl::{self as decl, Declaration, UserDb};
use blankslate_persist::{PersistError, Report};
use blankslate_sys::fs::Dir;
use blankslate_sys::mount::{MountFlags, Source};
use blankslate_test_support::{Scratch, in_namespace, root_or_skip};

fn declaration(text: &str) -> Declaration {
    let checked = decl::check(Path::new("t.toml"), text, None);
    checked.declaration.unwrap_or_else(|| panic!("{}", checked.diagnostics))
}

fn users() -> UserDb {
    UserDb::from_texts(
        "root:x:0:0::/root:/bin/sh\npostgres:x:105:110::/var/lib/postgresql:/bin/false\nalice:x:1000:100::/home/alice:/bin/sh\n",
        "root:x:0:\npostgres:x:110:\nusers:x:100:alice\n",
        "test",
    )
}

/// A scratch root with its volume at `persist/`.
fn scratch_root() -> Scratch {
    let scratch = Scratch::new();
    std::fs::create_dir(scratch.path("persist")).unwrap();
    scratch
}

fn activate(root: &Path, declaration: &Declaration, previous: Option<&Declaration>) -> Result<Report, PersistError> {
    let dir = Dir::open_root(root).unwrap();
    blankslate_persist::bring_in(&dir, declaration, &users(), previous)
}

fn same_file(a: &Path, b: &Path) -> bool {
    let (a, b) = (std::fs::symlink_metadata(a).unwrap(), std::fs::symlink_metadata(b).unwrap());
    (a.dev(), a.ino()) == (b.dev(), b.ino())
}

fn mode_owner(path: &Path) -> (u32, u32, u32) {
    let meta = std::fs::symlink_metadata(path).unwrap();
    (meta.permissions().mode() & 0o7777, meta.uid(), meta.gid())
}

const FULL: &str = r#"
version = 1
[persist."/persist"]
directories = [
  "/var/log",
  { directory = "/var/lib/postgresql", user = "postgres", group = "postgres", mode = "0700", parent = { mode = "0711" } },
  { directory = "/var/lib/postgresql/16/main", user = "postgres", group = "postgres", mode = "0700" },
  { directory = "/srv/ro", options = ["ro", "nodev"] },
  { directory = "/var/lib/flatpak", options = ["x-gvfs-hide"] },
]
files = [
  "/etc/machine-id",
  { file = "/etc/ssh/ssh_host_ed25519_key", mode = "0600" },
  { file = "/var/lib/state.json", how = "symlink" },
]
[persist."/persist".users.alice]
group = "users"
directories = [{ directory = ".ssh", mode = "0700" }, "Documents"]
files = [".bash_history"]
"#;

#[test]
fn directories_files_links_and_homes_come_from_the_volume_with_their_owners() {
    if !root_or_skip("mounting needs root") {
        return;
    }
    let scratch = scratch_root();
    let root = scratch.root().to_path_buf();
    in_namespace(move || {
        let report = activate(&root, &declaration(FULL), None).unwrap();
        assert!(report.conflicts.is_empty() && report.unknown_owners.is_empty(), "{report:?}");
        let vol = root.join("persist");
        for path in [
            "var/log",
            "var/lib/postgresql",
            "var/lib/postgresql/16/main",
            "srv/ro",
            "home/alice/.ssh",
            "home/alice/Documents",
        ] {
            assert!(same_file(&root.join(path), &vol.join(path)), "{path} is the volume's directory");
        }
        for path in ["etc/machine-id", "etc/ssh/ssh_host_ed25519_key", "home/alice/.bash_history"] {
            assert!(same_file(&root.join(path), &vol.join(path)), "{path} is bind-mounted");
        }
        assert_eq!(
            std::fs::read_link(root.join("var/lib/state.json")).unwrap(),
            Path::new("/persist/var/lib/state.json")
        );
        assert_eq!(std::fs::read(vol.join("etc/machine-id")).unwrap(), b"uninitialized\n", "systemd's first boot");
        assert_eq!(mode_owner(&root.join("var/lib/postgresql")), (0o700, 105, 110));
        assert_eq!(mode_owner(&vol.join("var/lib/postgresql")), (0o700, 105, 110));
        assert_eq!(mode_owner(&root.join("var/lib")).0, 0o711, "the declared parent mode");
        assert_eq!(mode_owner(&vol.join("etc/ssh/ssh_host_ed25519_key")), (0o600, 0, 0));
        assert_eq!(mode_owner(&root.join("home/alice/.ssh")), (0o700, 1000, 100));
        assert_eq!(mode_owner(&root.join("home/alice")), (0o700, 1000, 100), "a home made for its user");
        // Hidden mounts are recorded where libmount (and so gvfs) looks for them.
        let utab = std::fs::read_to_string(root.join("run/mount/utab")).unwrap();
        let hidden: Vec<&str> = utab.lines().filter_map(|l| l.split(' ').nth(1)).collect();
        assert_eq!(hidden, ["TARGET=/var/lib/flatpak"], "{utab}");
        let id: u64 = utab.split(' ').next().unwrap().trim_start_matches("ID=").parse().unwrap();
        let mountinfo = std::fs::read_to_string("/proc/thread-self/mountinfo").unwrap();
        let line = mountinfo.lines().find(|l| l.split(' ').next() == Some(&id.to_string())).unwrap();
        assert!(line.split(' ').nth(4).unwrap().ends_with("/var/lib/flatpak"), "the id names that mount: {line}");
        // Read-only really is read-only; the nested mount sits on its parent's.
        assert!(std::fs::write(root.join("srv/ro/x"), "x").is_err());
        std::fs::write(root.join("var/lib/postgresql/16/main/PG_VERSION"), "16\n").unwrap();
        assert_eq!(std::fs::read(vol.join("var/lib/postgresql/16/main/PG_VERSION")).unwrap(), b"16\n");
        let mut mounts: Vec<String> = report.mounted.clone();
        mounts.sort();
        assert_eq!(report.mounted, mounts, "parents are mounted before what they contain");
        // Everything again: all in place, nothing mounted twice.
        let again = activate(&root, &declaration(FULL), None).unwrap();
        assert!(again.mounted.is_empty() && again.linked.is_empty(), "{again:?}");
        assert_eq!(again.unchanged.len(), 11);
    });
}

#[test]
fn owner_and_mode_drift_is_repaired_at_the_next_activation() {
    if !root_or_skip("needs root (mounts, owners)") {
        return;
    }
    let scratch = scratch_root();
    let root = scratch.root().to_path_buf();
    in_namespace(move || {
        let text = "version = 1\n[persist.\"/persist\"]\ndirectories = [{ directory = \"/srv/data\", user = \"postgres\", mode = \"0750\" }]\nfiles = [{ file = \"/etc/key\", mode = \"0600\" }]\n";
        activate(&root, &declaration(text), None).unwrap();
        std::fs::set_permissions(root.join("srv/data"), std::fs::Permissions::from_mode(0o777)).unwrap();
        std::os::unix::fs::chown(root.join("srv/data"), Some(0), Some(0)).unwrap();
        std::fs::set_permissions(root.join("etc/key"), std::fs::Permissions::from_mode(0o644)).unwrap();
        activate(&root, &declaration(text), None).unwrap();
        assert_eq!(mode_owner(&root.join("srv/data")), (0o750, 105, 0));
        assert_eq!(mode_owner(&root.join("etc/key")).0, 0o600);
    });
}

#[test]
fn data_already_in_the_root_is_migrated_into_an_empty_volume_or_reported() {
    if !root_or_skip("needs root (mounts, owners)") {
        return;
    }
    let scratch = scratch_root();
    let root = scratch.root().to_path_buf();
    std::fs::create_dir_all(root.join("var/lib/early/sub")).unwrap();
    std::fs::write(root.join("var/lib/early/sub/state"), "written before activation").unwrap();
    std::fs::hard_link(root.join("var/lib/early/sub/state"), root.join("var/lib/early/same")).unwrap();
    let fifo = rustix::fs::FileType::Fifo;
    rustix::fs::mknodat(rustix::fs::CWD, root.join("var/lib/early/fifo"), fifo, 0o644.into(), 0).unwrap();
    std::fs::create_dir_all(root.join("srv/mounted/inner")).unwrap();
    let elsewhere = tempfile::tempdir().unwrap();
    std::fs::write(elsewhere.path().join("data"), "on another file system").unwrap();
    let elsewhere_path = elsewhere.path().to_path_buf();
    std::fs::create_dir_all(root.join("srv/both")).unwrap();
    std::fs::write(root.join("srv/both/live"), "live").unwrap();
    std::fs::create_dir_all(root.join("persist/srv/both")).unwrap();
    std::fs::write(root.join("persist/srv/both/kept"), "kept").unwrap();
    std::fs::create_dir_all(root.join("etc")).unwrap();
    std::fs::write(root.join("etc/hostname"), "early\n").unwrap();
    in_namespace(move || {
        let host = Dir::open_root(&elsewhere_path).unwrap();
        let inner = Dir::open_root(&root.join("srv/mounted")).unwrap();
        blankslate_sys::mount::bind(Source::Dir(&host), &inner, "inner", MountFlags::empty()).unwrap();
        let text = "version = 1\n[persist.\"/persist\"]\ndirectories = [\"/var/lib/early\", \"/srv/both\", \"/srv/mounted\"]\n\
                    files = [{ file = \"/etc/hostname\", how = \"bind\" }]\n";
        let report = activate(&root, &declaration(text), None).unwrap();
        assert_eq!(report.migrated, ["/etc/hostname", "/var/lib/early"]);
        let moved = root.join("persist/var/lib/early");
        assert!(std::fs::symlink_metadata(moved.join("fifo")).unwrap().file_type().is_fifo(), "special files move too");
        assert!(same_file(&moved.join("same"), &moved.join("sub/state")), "hard links stay hard links");
        // A tree with another file system mounted inside is not moved, and nothing in
        // it (or on the other file system) is deleted.
        let mounted = report.conflicts.iter().find(|(p, _)| p == "/srv/mounted").expect("reported");
        assert!(mounted.1.contains("left as it is"), "{mounted:?}");
        assert_eq!(std::fs::read(root.join("srv/mounted/inner/data")).unwrap(), b"on another file system");
        assert_eq!(std::fs::read(root.join("persist/var/lib/early/sub/state")).unwrap(), b"written before activation");
        assert_eq!(std::fs::read(root.join("var/lib/early/sub/state")).unwrap(), b"written before activation");
        assert_eq!(std::fs::read(root.join("persist/etc/hostname")).unwrap(), b"early\n");
        assert_eq!(report.conflicts.len(), 2, "{report:?}");
        assert_eq!(report.conflicts[0].0, "/srv/both");
        // Neither side's data is hidden or lost.
        assert_eq!(std::fs::read(root.join("srv/both/live")).unwrap(), b"live");
        assert_eq!(std::fs::read(root.join("persist/srv/both/kept")).unwrap(), b"kept");
    });
}

const HOSTILE: &str = r#"
version = 1
[persist."/persist"]
directories = ["/srv/www", { directory = "/var/lib/important", mode = "0700" }]
files = [{ file = "/etc/shadow", mode = "0640" }]
[persist."/persist".users.alice]
group = "users"
directories = ["Documents", "Documents/work", "Music", "Videos", ".ssh"]
files = [{ file = ".bash_history", how = "copy" }]
"#;

/// What a user (or anyone who can write the volume) plants where persisted paths go:
/// a symlink, a FIFO, a file where a directory belongs. Each is refused, never
/// followed or opened, and is that entry's finding (with what is below it); every
/// other entry is brought in.
#[test]
fn what_is_planted_in_the_volume_is_that_entrys_finding_and_the_rest_comes_in() {
    if !root_or_skip("needs root (mounts, owners)") {
        return;
    }
    let scratch = scratch_root();
    let root = scratch.root().to_path_buf();
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("shadow"), "secret").unwrap();
    let vol = root.join("persist");
    std::fs::create_dir_all(vol.join("etc")).unwrap();
    std::os::unix::fs::symlink(outside.path().join("shadow"), vol.join("etc/shadow")).unwrap();
    std::os::unix::fs::symlink(outside.path(), vol.join("srv")).unwrap();
    let home = vol.join("home/alice");
    std::fs::create_dir_all(&home).unwrap();
    std::os::unix::fs::symlink(outside.path(), home.join("Documents")).unwrap();
    rustix::fs::mknodat(rustix::fs::CWD, home.join("Music"), rustix::fs::FileType::Fifo, 0o644.into(), 0).unwrap();
    std::fs::write(home.join("Videos"), "a file").unwrap();
    std::os::unix::fs::symlink(outside.path().join("shadow"), home.join(".bash_history")).unwrap();
    let outside_path = outside.path().to_path_buf();
    in_namespace(move || {
        let report = activate(&root, &declaration(HOSTILE), None).unwrap();
        let refused: Vec<&str> = report.conflicts.iter().map(|(p, _)| p.as_str()).collect();
        assert_eq!(
            refused,
            [
                "/etc/shadow",
                "/home/alice/.bash_history",
                "/home/alice/Documents",
                "/home/alice/Documents/work",
                "/home/alice/Music",
                "/home/alice/Videos",
                "/srv/www",
            ],
            "{report:#?}"
        );
        assert!(report.conflicts.iter().all(|(_, why)| why.starts_with("not brought in: ")), "{report:#?}");
        let why = |path: &str| &report.conflicts.iter().find(|(p, _)| p == path).unwrap().1;
        assert!(why("/home/alice/Documents").contains("never followed"), "{report:#?}");
        assert!(why("/home/alice/Documents/work").contains("/home/alice/Documents, which holds it"));
        assert!(why("/home/alice/.bash_history").contains("never followed"), "{report:#?}");
        // Everything else is in place.
        assert_eq!(report.mounted, ["/home/alice/.ssh", "/var/lib/important"], "{report:#?}");
        for path in ["var/lib/important", "home/alice/.ssh"] {
            assert!(same_file(&root.join(path), &vol.join(path)), "{path} is mounted");
        }
        // Nothing planted was followed, opened or changed.
        assert_eq!(mode_owner(&outside_path.join("shadow")), (0o644, 0, 0), "the target was not touched");
        assert_eq!(std::fs::read(outside_path.join("shadow")).unwrap(), b"secret");
        assert!(!outside_path.join("www").exists() && !outside_path.join("work").exists(), "nothing made outside");
        assert!(std::fs::symlink_metadata(home.join("Music")).unwrap().file_type().is_fifo());
        assert_eq!(std::fs::read(home.join("Videos")).unwrap(), b"a file");
        assert!(!root.join("home/alice/.bash_history").exists(), "no copy made of a refused one");
        // Once the user takes them away, the next activation brings them in.
        for name in ["Documents", "Music", "Videos", ".bash_history"] {
            std::fs::remove_file(home.join(name)).unwrap();
        }
        let again = activate(&root, &declaration(HOSTILE), None).unwrap();
        let refused: Vec<&str> = again.conflicts.iter().map(|(p, _)| p.as_str()).collect();
        assert_eq!(refused, ["/etc/shadow", "/srv/www"], "{again:#?}");
        assert!(same_file(&root.join("home/alice/Documents/work"), &home.join("Documents/work")));
    });
}

const LINKED_FILES: &str = r#"
version = 1
[persist."/persist".users.alice]
group = "users"
directories = ["Projects"]
files = [
  { file = ".bash_history", how = "bind" },
  { file = ".bashrc", how = "bind" },
  { file = ".netrc", how = "copy" },
  { file = ".profile", how = "bind" },
]
"#;

/// Hard links to root-only files (what anyone can make where `fs.protected_hardlinks`
/// is 0; made here as root, which the protection would have allowed), at a user's
/// persisted files in the volume and in the root: none is chowned, chmoded, read or
/// copied; each is that entry's finding, at activation, repair and sync.
#[test]
fn a_hard_link_to_a_root_file_is_never_chowned_read_or_copied() {
    if !root_or_skip("needs root (mounts, owners)") {
        return;
    }
    let scratch = scratch_root();
    let root = scratch.root().to_path_buf();
    let secret = |path: &Path, text: &str| {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
    };
    secret(&root.join("etc/shadow"), "root:$y$live-secret:1::::::\n");
    secret(&root.join("persist/secret"), "volume-secret\n");
    let (home, vol_home) = (root.join("home/alice"), root.join("persist/home/alice"));
    std::fs::create_dir_all(&home).unwrap();
    std::fs::create_dir_all(&vol_home).unwrap();
    std::fs::hard_link(root.join("persist/secret"), vol_home.join(".bash_history")).unwrap();
    std::fs::write(vol_home.join(".netrc"), "alice's\n").unwrap();
    std::fs::hard_link(root.join("etc/shadow"), home.join(".netrc")).unwrap();
    std::fs::hard_link(root.join("etc/shadow"), home.join(".profile")).unwrap();
    std::fs::create_dir(home.join("Projects")).unwrap();
    std::fs::write(home.join("Projects/mine"), "alice's own\n").unwrap();
    std::fs::hard_link(root.join("etc/shadow"), home.join("Projects/leak")).unwrap();
    in_namespace(move || {
        let declared = declaration(LINKED_FILES);
        let untouched = |report: &dyn std::fmt::Debug| {
            assert_eq!(mode_owner(&root.join("etc/shadow")), (0o600, 0, 0), "{report:#?}");
            assert_eq!(mode_owner(&root.join("persist/secret")), (0o600, 0, 0), "{report:#?}");
            assert_eq!(std::fs::read(vol_home.join(".netrc")).unwrap(), b"alice's\n", "{report:#?}");
            assert!(!vol_home.join(".profile").exists(), "nothing migrated: {report:#?}");
            for entry in walkdir(&root.join("persist")) {
                let text = std::fs::read(&entry).unwrap_or_default();
                let secret = String::from_utf8_lossy(&text).contains("live-secret");
                assert!(!secret, "{} holds a copy of /etc/shadow: {report:#?}", entry.display());
            }
        };
        let expect =
            ["/home/alice/.bash_history", "/home/alice/.netrc", "/home/alice/.profile", "/home/alice/Projects"];
        // A running system's activation (a switch: the live copy would win).
        let report = activate(&root, &declared, Some(&declared)).unwrap();
        let refused: Vec<&str> = report.conflicts.iter().map(|(p, _)| p.as_str()).collect();
        assert_eq!(refused, expect, "{report:#?}");
        assert!(report.conflicts[..3].iter().all(|(_, why)| why.contains(" hard links; ")), "{report:#?}");
        assert!(report.conflicts[3].1.contains("hard links outside it"), "{report:#?}");
        assert_eq!(std::fs::read(home.join("Projects/mine")).unwrap(), b"alice's own\n", "left as it was");
        assert_eq!(report.mounted, ["/home/alice/.bashrc"], "the others come in: {report:#?}");
        untouched(&report);
        let dir = Dir::open_root(&root).unwrap();
        let repaired = blankslate_persist::repair(&dir, &declared, &users()).unwrap();
        let refused: Vec<&str> = repaired.conflicts.iter().map(|(p, _)| p.as_str()).collect();
        assert_eq!(refused, expect, "{repaired:#?}");
        untouched(&repaired);
        let synced = blankslate_persist::copy::sync(&dir, &declared, &users(), None);
        assert_eq!(synced.failed.len(), 1, "{synced:#?}");
        assert!(synced.failed[0].1.contains("the live file") && synced.failed[0].1.contains(" hard links; "));
        untouched(&synced);
    });
}

/// Every regular file below `dir`.
fn walkdir(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let kind = std::fs::symlink_metadata(&path).unwrap().file_type();
        if kind.is_dir() {
            out.extend(walkdir(&path));
        } else if kind.is_file() {
            out.push(path);
        }
    }
    out
}

#[test]
fn a_switch_unmounts_what_is_no_longer_declared_and_keeps_its_data() {
    if !root_or_skip("needs root (mounts, owners)") {
        return;
    }
    let scratch = scratch_root();
    let root = scratch.root().to_path_buf();
    in_namespace(move || {
        let old = declaration(
            "version = 1\n[persist.\"/persist\"]\ndirectories = [\"/var/log\", \"/srv/gone\"]\nfiles = [{ file = \"/etc/gone\", how = \"symlink\" }]\n",
        );
        let new = declaration("version = 1\n[persist.\"/persist\"]\ndirectories = [\"/var/log\", \"/srv/new\"]\n");
        activate(&root, &old, None).unwrap();
        std::fs::write(root.join("srv/gone/data"), "kept in the volume").unwrap();
        let report = activate(&root, &new, Some(&old)).unwrap();
        assert_eq!(report.unmounted, ["/srv/gone", "/etc/gone"]);
        assert_eq!(report.mounted, ["/srv/new"]);
        assert!(!same_file(&root.join("srv/gone"), &root.join("persist/srv/gone")), "unmounted");
        assert!(!root.join("etc/gone").exists());
        assert_eq!(std::fs::read(root.join("persist/srv/gone/data")).unwrap(), b"kept in the volume");
        assert!(same_file(&root.join("var/log"), &root.join("persist/var/log")), "kept entries stay mounted");
    });
}

#[test]
fn a_missing_volume_is_a_clear_error() {
    let scratch = tempfile::tempdir().unwrap();
    let error =
        activate(scratch.path(), &declaration("version = 1\n[persist.\"/data\"]\ndirectories = [\"/srv\"]\n"), None)
            .unwrap_err();
    assert!(error.to_string().contains("persistent root /data is not there"), "{error}");
}

#[test]
fn mount_options_add_to_the_volumes_own_restrictions() {
    if !root_or_skip("needs root (mounts, owners)") {
        return;
    }
    let scratch = scratch_root();
    let root = scratch.root().to_path_buf();
    in_namespace(move || {
        let dir = Dir::open_root(&root).unwrap();
        let strict = rustix::mount::MountAttrFlags::MOUNT_ATTR_NOSUID
            | rustix::mount::MountAttrFlags::MOUNT_ATTR_NODEV
            | rustix::mount::MountAttrFlags::MOUNT_ATTR_NOEXEC;
        blankslate_sys::mount::mount_new(&dir, "persist", "tmpfs", &[], strict).unwrap();
        let text =
            "version = 1\n[persist.\"/persist\"]\ndirectories = [{ directory = \"/srv/ro\", options = [\"ro\"] }]\n";
        activate(&root, &declaration(text), None).unwrap();
        let mountinfo = std::fs::read_to_string("/proc/thread-self/mountinfo").unwrap();
        let target = root.join("srv/ro");
        let line = mountinfo.lines().find(|l| l.split(' ').nth(4) == target.to_str()).expect("mounted");
        let options: Vec<&str> = line.split(' ').nth(5).unwrap().split(',').collect();
        for wanted in ["ro", "nosuid", "nodev", "noexec"] {
            assert!(options.contains(&wanted), "{wanted} missing from {options:?}");
        }
    });
}

const LINKED: &str = r#"
version = 1
[persist."/persist".users.alice]
group = "users"
directories = [
  { directory = ".local/share/Trash", how = "symlink", mode = "0700" },
  { directory = ".local/share/keyrings", mode = "0700" },
]
"#;

#[test]
fn a_symlinked_directory_links_into_the_volume_and_takes_in_data_found_in_the_root() {
    if !root_or_skip("mounting needs root") {
        return;
    }
    let scratch = scratch_root();
    let root = scratch.root().to_path_buf();
    // Made (and removed) out here, where nothing is mounted in it.
    let other = scratch_root();
    let other_root = other.root().to_path_buf();
    in_namespace(move || {
        // Data a program left in the root before the first activation moves into the
        // (empty) volume directory, and the directory becomes the link.
        let trash = root.join("home/alice/.local/share/Trash");
        std::fs::create_dir_all(trash.join("files")).unwrap();
        std::fs::write(trash.join("files/old.txt"), "deleted").unwrap();
        let report = activate(&root, &declaration(LINKED), None).unwrap();
        assert_eq!(report.linked, ["/home/alice/.local/share/Trash"], "{report:?}");
        assert_eq!(report.migrated, ["/home/alice/.local/share/Trash"], "{report:?}");
        assert_eq!(std::fs::read_link(&trash).unwrap(), Path::new("/persist/home/alice/.local/share/Trash"));
        let source = root.join("persist/home/alice/.local/share/Trash");
        assert_eq!(std::fs::read_to_string(source.join("files/old.txt")).unwrap(), "deleted");
        assert_eq!(mode_owner(&source), (0o700, 1000, 100));
        // Again: nothing to do.
        let again = activate(&root, &declaration(LINKED), None).unwrap();
        assert!(again.linked.is_empty() && again.unchanged.contains(&"/home/alice/.local/share/Trash".to_owned()));

        // Switching it to a bind mount replaces the link; and back, the mount goes.
        let bound = LINKED.replace(r#"how = "symlink", "#, "");
        let report = activate(&root, &declaration(&bound), Some(&declaration(LINKED))).unwrap();
        assert!(report.mounted.contains(&"/home/alice/.local/share/Trash".to_owned()), "{report:?}");
        assert!(same_file(&trash, &source));
        let report = activate(&root, &declaration(LINKED), Some(&declaration(&bound))).unwrap();
        assert_eq!(report.linked, ["/home/alice/.local/share/Trash"], "{report:?}");
        assert!(std::fs::symlink_metadata(&trash).unwrap().file_type().is_symlink());

        // A directory in the root holding data the volume holds too is left alone.
        std::fs::create_dir_all(other_root.join("home/alice/.local/share/Trash")).unwrap();
        std::fs::write(other_root.join("home/alice/.local/share/Trash/a"), "root").unwrap();
        std::fs::create_dir_all(other_root.join("persist/home/alice/.local/share/Trash")).unwrap();
        std::fs::write(other_root.join("persist/home/alice/.local/share/Trash/b"), "volume").unwrap();
        let report = activate(&other_root, &declaration(LINKED), None).unwrap();
        assert!(report.linked.is_empty());
        assert!(
            report.conflicts.iter().any(|(p, why)| p == "/home/alice/.local/share/Trash" && why.contains("not linked"))
        );
    });
}

#[test]
fn directories_between_a_home_and_its_entries_belong_to_the_user() {
    if !root_or_skip("mounting needs root") {
        return;
    }
    let scratch = scratch_root();
    let root = scratch.root().to_path_buf();
    in_namespace(move || {
        // An earlier tool left root-owned parents in the volume (as tmpfiles does).
        let volume_local = root.join("persist/home/alice/.local");
        std::fs::create_dir_all(volume_local.join("share")).unwrap();
        std::fs::set_permissions(&volume_local, std::fs::Permissions::from_mode(0o750)).unwrap();
        let report = activate(&root, &declaration(LINKED), None).unwrap();
        assert!(report.conflicts.is_empty() && report.unknown_owners.is_empty(), "{report:?}");
        for base in [root.clone(), root.join("persist")] {
            assert_eq!(mode_owner(&base.join("home")).1, 0, "above the home: root's");
            assert_eq!(mode_owner(&base.join("home/alice")).1, 1000);
            assert_eq!(mode_owner(&base.join("home/alice/.local/share")).1, 1000);
            assert_eq!(mode_owner(&base.join("home/alice/.local/share")).2, 100, "the user's group");
        }
        // Created now: the home 0700, the rest 0755; found: the owner corrected, the
        // mode left as it was.
        assert_eq!(mode_owner(&root.join("home/alice")), (0o700, 1000, 100));
        assert_eq!(mode_owner(&root.join("home/alice/.local")), (0o755, 1000, 100));
        assert_eq!(mode_owner(&volume_local), (0o750, 1000, 100));
    });
}

const COPIES: &str = r#"
version = 1
[persist."/persist"]
files = [
  { file = "/etc/shadow", how = "copy", group = "postgres", mode = "0640" },
  { file = "/etc/passwd", how = "copy" },
]
"#;

/// An owner the new system does not know is a warning that says what was done
/// instead: root's ids.
#[test]
fn an_unknown_owner_is_a_warning_that_says_root_was_used() {
    if !root_or_skip("owners need root") {
        return;
    }
    let scratch = scratch_root();
    let root = scratch.root().to_path_buf();
    std::fs::create_dir_all(root.join("persist")).unwrap();
    let declared = declaration(
        "version = 1\n[persist.\"/persist\"]\ndirectories = [{ directory = \"/srv/bob\", user = \"bob\", group = \"bobs\" }]\n",
    );
    // The directory is bind-mounted: in a mount namespace of the test's own.
    in_namespace(move || {
        let report = activate(&root, &declared, None).unwrap();
        let reasons: Vec<&str> = report.unknown_owners.iter().map(|(_, reason)| reason.as_str()).collect();
        assert_eq!(
            reasons,
            [
                "no user `bob` in the new system's passwd: owned by root (uid 0) instead",
                "no group `bobs` in the new system's group: group root (gid 0) instead"
            ]
        );
        assert_eq!(mode_owner(&root.join("srv/bob")).1, 0);
    });
}

/// A copied `/etc/machine-id` the volume does not have yet starts, in the volume and
/// in the root, as systemd's first-boot marker, as a bound one does.
#[test]
fn a_new_copied_machine_id_starts_as_systemds_first_boot_marker() {
    if !root_or_skip("owners need root") {
        return;
    }
    let scratch = scratch_root();
    let root = scratch.root().to_path_buf();
    std::fs::create_dir_all(root.join("persist")).unwrap();
    let declared =
        declaration("version = 1\n[persist.\"/persist\"]\nfiles = [{ file = \"/etc/machine-id\", how = \"copy\" }]\n");
    let report = activate(&root, &declared, None).unwrap();
    assert_eq!(report.copied, ["/etc/machine-id"], "{report:?}");
    for file in ["etc/machine-id", "persist/etc/machine-id"] {
        assert_eq!(std::fs::read(root.join(file)).unwrap(), b"uninitialized\n", "{file}");
    }
}

/// The root after a reboot: an empty tmpfs, the same volume.
fn reboot(root: &Path) {
    for name in std::fs::read_dir(root).unwrap().map(|e| e.unwrap().file_name()) {
        if name != "persist" {
            let path = root.join(&name);
            if path.is_dir() { std::fs::remove_dir_all(path) } else { std::fs::remove_file(path) }.unwrap();
        }
    }
}

#[test]
fn a_copy_takes_renames_and_is_written_back_to_the_volume() {
    if !root_or_skip("owners need root") {
        return;
    }
    let scratch = scratch_root();
    let root = scratch.root().to_path_buf();
    std::fs::create_dir_all(root.join("persist/etc")).unwrap();
    std::fs::write(root.join("persist/etc/shadow"), "root:!:19000::::::\n").unwrap();
    let declared = declaration(COPIES);

    // Boot: the volume's contents come in as a file of the root's own.
    let report = activate(&root, &declared, None).unwrap();
    assert_eq!(report.copied, ["/etc/passwd", "/etc/shadow"], "{report:?}");
    assert_eq!(std::fs::read_to_string(root.join("etc/shadow")).unwrap(), "root:!:19000::::::\n");
    assert_eq!(mode_owner(&root.join("etc/shadow")), (0o640, 0, 110));
    assert_eq!(mode_owner(&root.join("persist/etc/shadow")), (0o640, 0, 110));
    assert!(!same_file(&root.join("etc/shadow"), &root.join("persist/etc/shadow")));

    // passwd(1): a new file renamed over the old one. The volume has not seen it yet.
    std::fs::write(root.join("etc/shadow+"), "root:$y$new:19001::::::\n").unwrap();
    std::fs::rename(root.join("etc/shadow+"), root.join("etc/shadow")).unwrap();
    let dir = Dir::open_root(&root).unwrap();
    let synced = blankslate_persist::copy::sync(&dir, &declared, &users(), None);
    assert_eq!(synced.written, ["/etc/shadow"]);
    assert_eq!(synced.unchanged, ["/etc/passwd"]);
    assert_eq!(std::fs::read_to_string(root.join("persist/etc/shadow")).unwrap(), "root:$y$new:19001::::::\n");
    assert_eq!(mode_owner(&root.join("persist/etc/shadow")), (0o640, 0, 110), "written with its owner and mode");
    assert!(blankslate_persist::copy::sync(&dir, &declared, &users(), None).written.is_empty());

    // A live file that is gone is reported; the volume keeps its copy.
    std::fs::remove_file(root.join("etc/passwd")).unwrap();
    let synced = blankslate_persist::copy::sync(&dir, &declared, &users(), None);
    assert_eq!(synced.missing, [("/etc/passwd".to_owned(), "is not in the root".to_owned())]);
    assert!(root.join("persist/etc/passwd").exists());

    // The next boot brings the written-back contents.
    reboot(&root);
    let report = activate(&root, &declared, None).unwrap();
    assert_eq!(report.copied.len(), 2, "{report:?}");
    assert_eq!(std::fs::read_to_string(root.join("etc/shadow")).unwrap(), "root:$y$new:19001::::::\n");

    // On a running system (a switch), the live file is what programs changed: the
    // volume takes it.
    std::fs::write(root.join("etc/shadow"), "changed before the switch\n").unwrap();
    let report = activate(&root, &declared, Some(&declared)).unwrap();
    assert_eq!(report.written_back, ["/etc/shadow"], "{report:?}");
    assert_eq!(std::fs::read_to_string(root.join("persist/etc/shadow")).unwrap(), "changed before the switch\n");
}

/// A copy declared without a mode (`/etc/shadow` written by shadow-utils as 0600, or
/// 0640 for its group) keeps the stricter of its live and volume modes: a sync, a
/// switch or a boot never makes it readable by others. A declared mode is applied.
#[test]
fn a_copy_without_a_declared_mode_never_gets_a_wider_one() {
    if !root_or_skip("owners need root") {
        return;
    }
    let scratch = scratch_root();
    let root = scratch.root().to_path_buf();
    std::fs::create_dir_all(root.join("persist/etc")).unwrap();
    std::fs::write(root.join("persist/etc/shadow"), "root:!:1::::::\n").unwrap();
    std::fs::set_permissions(root.join("persist/etc/shadow"), std::fs::Permissions::from_mode(0o600)).unwrap();
    let undeclared =
        declaration("version = 1\n[persist.\"/persist\"]\nfiles = [{ file = \"/etc/shadow\", how = \"copy\" }]\n");
    let modes = || (mode_owner(&root.join("etc/shadow")).0, mode_owner(&root.join("persist/etc/shadow")).0);
    // Boot: the root's copy gets the volume's mode, not the default 0644.
    activate(&root, &undeclared, None).unwrap();
    assert_eq!(modes(), (0o600, 0o600));
    // passwd(1) writes a new file 0600; a sync and a switch keep 0600 on both sides.
    std::fs::write(root.join("etc/shadow+"), "root:$y$new:2::::::\n").unwrap();
    std::fs::set_permissions(root.join("etc/shadow+"), std::fs::Permissions::from_mode(0o600)).unwrap();
    std::fs::rename(root.join("etc/shadow+"), root.join("etc/shadow")).unwrap();
    let dir = Dir::open_root(&root).unwrap();
    assert_eq!(blankslate_persist::copy::sync(&dir, &undeclared, &users(), None).written, ["/etc/shadow"]);
    assert_eq!(modes(), (0o600, 0o600));
    activate(&root, &undeclared, Some(&undeclared)).unwrap();
    assert_eq!(modes(), (0o600, 0o600));
    // A tool that leaves it 0644 in the root: the volume stays 0600, and the root's
    // copy is narrowed at the next activation.
    std::fs::set_permissions(root.join("etc/shadow"), std::fs::Permissions::from_mode(0o644)).unwrap();
    std::fs::write(root.join("etc/shadow"), "root:$y$newer:3::::::\n").unwrap();
    assert_eq!(blankslate_persist::copy::sync(&dir, &undeclared, &users(), None).written, ["/etc/shadow"]);
    assert_eq!(modes(), (0o644, 0o600));
    activate(&root, &undeclared, Some(&undeclared)).unwrap();
    assert_eq!(modes(), (0o600, 0o600));
    // A declared mode is what both get.
    let declared = declaration(
        "version = 1\n[persist.\"/persist\"]\nfiles = [{ file = \"/etc/shadow\", how = \"copy\", mode = \"0640\" }]\n",
    );
    activate(&root, &declared, Some(&undeclared)).unwrap();
    assert_eq!(modes(), (0o640, 0o640));
}

#[test]
fn a_bind_mounted_file_becomes_a_copy_at_a_switch() {
    if !root_or_skip("mounting needs root") {
        return;
    }
    let scratch = scratch_root();
    let root = scratch.root().to_path_buf();
    in_namespace(move || {
        let bound = declaration(&COPIES.replace("how = \"copy\", ", "how = \"bind\", "));
        activate(&root, &bound, None).unwrap();
        assert!(same_file(&root.join("etc/shadow"), &root.join("persist/etc/shadow")));
        std::fs::write(root.join("etc/shadow"), "through the mount\n").unwrap();
        let report = activate(&root, &declaration(COPIES), Some(&bound)).unwrap();
        assert_eq!(report.unmounted, ["/etc/shadow"], "{report:?}");
        assert!(!same_file(&root.join("etc/shadow"), &root.join("persist/etc/shadow")));
        assert_eq!(std::fs::read_to_string(root.join("etc/shadow")).unwrap(), "through the mount\n");
        // A rename over it works now (it fails with EBUSY on the mount).
        std::fs::write(root.join("etc/shadow+"), "renamed\n").unwrap();
        std::fs::rename(root.join("etc/shadow+"), root.join("etc/shadow")).unwrap();
    });
}

/// The volume unmounted under its bind mounts: the root's paths are mounts of the
/// real volume, not data of the root. Moving that data into the bare mount point
/// (and emptying the mounts) would lose it at the next reboot.
#[test]
fn a_volume_unmounted_under_its_mounts_is_never_emptied_into_the_root() {
    if !root_or_skip("mounting needs root") {
        return;
    }
    let scratch = scratch_root();
    let root = scratch.root().to_path_buf();
    in_namespace(move || {
        let dir = Dir::open_root(&root).unwrap();
        blankslate_sys::mount::mount_new(&dir, "persist", "tmpfs", &[], rustix::mount::MountAttrFlags::empty())
            .unwrap();
        let text = "version = 1\n[persist.\"/persist\"]\ndirectories = [\"/var/log\"]\n\
                    files = [{ file = \"/etc/data\", how = \"bind\" }, { file = \"/etc/shadow\", how = \"copy\" }]\n";
        let declared = declaration(text);
        activate(&root, &declared, None).unwrap();
        std::fs::write(root.join("var/log/syslog"), "kept\n").unwrap();
        std::fs::write(root.join("etc/data"), "kept too\n").unwrap();
        blankslate_sys::mount::unmount(&dir, "persist").unwrap();

        let report = activate(&root, &declared, Some(&declared)).unwrap();
        let conflicts: Vec<&str> = report.conflicts.iter().map(|(p, _)| p.as_str()).collect();
        assert_eq!(conflicts, ["/etc/data", "/var/log"], "{report:?}");
        assert!(report.conflicts.iter().all(|(_, why)| why.contains("is the volume mounted?")));
        assert!(report.migrated.is_empty(), "{report:?}");
        assert_eq!(std::fs::read_to_string(root.join("var/log/syslog")).unwrap(), "kept\n");
        assert_eq!(std::fs::read_to_string(root.join("etc/data")).unwrap(), "kept too\n");
        assert!(!root.join("persist/var/log/syslog").exists(), "data was moved onto the root's file system");
    });
}

/// A file bind-mounted by name: a symlink swapped in at the name after the caller
/// looked (it could name any file on the host) is refused, never followed.
#[test]
fn a_file_bind_mount_never_follows_a_symlink() {
    if !root_or_skip("needs root (mounts, owners)") {
        return;
    }
    let scratch = scratch_root();
    let root = scratch.root().to_path_buf();
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("shadow"), "secret").unwrap();
    std::os::unix::fs::symlink(outside.path().join("shadow"), root.join("persist/hist")).unwrap();
    std::fs::write(root.join("hist"), "").unwrap();
    in_namespace(move || {
        let dir = Dir::open_root(&root).unwrap();
        let volume = dir.open_dir("persist").unwrap();
        let error =
            blankslate_sys::mount::bind(Source::File(&volume, "hist"), &dir, "hist", MountFlags::empty()).unwrap_err();
        assert!(error.to_string().contains("not a regular file"), "{error}");
        assert_eq!(std::fs::read(root.join("hist")).unwrap(), b"", "nothing was mounted");
    });
}
