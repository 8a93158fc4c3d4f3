//! Reading an etc tree: a plain directory shaped like `/etc` (what `blankslate adopt`
//! copies out of an installed system), where each file's owner and mode are its own.
//!
//! - a regular file owned by `root:root` with an ordinary mode (`0644`, `0755`, `0444`,
//!   `0555`) becomes a link into the store (the store keeps the executable bit; the
//!   write bits are the store's to drop), unless a directory above it keeps others
//!   out (`ssl/private` is `0710`): then it is a copy, as any other regular file;
//! - any other regular file (`shadow` is `0640 root:shadow`, a key `0600`) becomes a
//!   copy with that owner and mode, owners kept as numbers (`+42`) unless root;
//! - a symlink becomes an entry linking to the same target (`os-release ->
//!   ../usr/lib/os-release` keeps working, relative to `/etc`);
//! - a directory is walked, and becomes an entry of its own when it is empty (else it
//!   would not exist: `apt/sources.list.d`) or its mode or owner is not the default
//!   `0755 root:root` (`ssl/private` is `0710 root:ssl-cert`); the others are made as
//!   the entries below them need them;
//! - anything else (a FIFO, a device) is refused.
//!
//! The tree is walked by `decl::source`, as `check` walks it: no symlink is followed,
//! every file is judged by its descriptor before it is read. A copy others may not
//! read, and anything below a directory they may not enter, is a secret: root-only in
//! the store (see [`crate::EtcBuild::tree`]).

use std::collections::BTreeMap;

use blankslate_decl::Mode;
use blankslate_decl::source::{Sources, TreeNode};
use blankslate_state::manifest::{EtcKind, ManifestEntry, content_hash};
use blankslate_state::store::Tree;
use blankslate_sys::fs::Meta;

use crate::{BuildError, BuiltEntry, EtcBuild, Result};

/// Modes a root-owned file may have and still be a link into the read-only store.
const LINKABLE_MODES: [u32; 4] = [0o644, 0o755, 0o444, 0o555];

/// Reads every file and symlink of the tree at `source` (absolute), and the
/// directories that say something.
pub fn from_tree(sources: &Sources, source: &str) -> Result<EtcBuild> {
    let mut build = EtcBuild::default();
    // Files that would be links, with their owner and mode, until it is known whether
    // a directory above them keeps others out.
    let mut linkable: BTreeMap<String, Meta> = BTreeMap::new();
    sources
        .walk_tree(source, &mut |node| {
            // A walk meets each path once: no duplicates to refuse.
            let (key, entry) = match node {
                TreeNode::File(file) => {
                    let (key, meta) = (file.key.clone(), file.meta);
                    let contents = file.read()?;
                    if meta.uid == 0 && meta.gid == 0 && LINKABLE_MODES.contains(&meta.mode) {
                        linkable.insert(key.clone(), meta);
                    }
                    (key, file_entry(contents, &meta))
                }
                TreeNode::Symlink { key, target } => {
                    let manifest = ManifestEntry {
                        kind: EtcKind::DirectLink { target: target.clone() },
                        hash: content_hash(target.as_bytes()),
                        mode: None,
                        user: "root".into(),
                        group: "root".into(),
                    };
                    (key, BuiltEntry { manifest, node: Tree::Symlink(target.into()) })
                }
                TreeNode::Directory { key, meta, empty } => {
                    if !TreeNode::directory_is_entry(&meta, empty) {
                        return Ok(());
                    }
                    let mode = mode_of(&meta);
                    let manifest = ManifestEntry::directory(mode, owner_name(meta.uid), owner_name(meta.gid));
                    (key, BuiltEntry { manifest, node: Tree::Directory(BTreeMap::new()) })
                }
            };
            build.entries.insert(key, entry);
            Ok(())
        })
        .map_err(|error| BuildError::Tree { tree: source.to_owned(), error })?;
    // What blankslate keeps in `/etc` for itself is no tree's to fill.
    if let Some((path, (top, what))) =
        build.entries.keys().find_map(|key| blankslate_decl::layout::reserved(key).map(|r| (key.clone(), r)))
    {
        return Err(BuildError::Reserved { path, top, what, origin: format!("from the etc tree {source}") });
    }
    // A file below a directory others may not enter keeps its own owner and mode: a
    // link would take the directory's group's access away (the store file is root's).
    let closed = |key: &str| {
        blankslate_decl::paths::ancestors(key).any(|dir| {
            build
                .entries
                .get(dir)
                .is_some_and(|e| e.manifest.kind == EtcKind::Directory && e.manifest.mode_bits() & 0o001 == 0)
        })
    };
    let copies: Vec<String> = linkable.keys().filter(|key| closed(key)).cloned().collect();
    for key in copies {
        let meta = linkable[&key];
        if let Some(entry) = build.entries.get_mut(&key) {
            entry.manifest = copy_manifest(entry.manifest.hash.clone(), &meta);
        }
    }
    Ok(build)
}

fn mode_of(meta: &Meta) -> String {
    Mode::new(meta.mode).expect("permission bits are a mode").to_string()
}

fn file_entry(contents: Vec<u8>, meta: &Meta) -> BuiltEntry {
    let hash = content_hash(&contents);
    let owned_by_root = meta.uid == 0 && meta.gid == 0;
    let node = Tree::File { contents, executable: meta.mode & 0o111 != 0, secret: false };
    let manifest = if owned_by_root && LINKABLE_MODES.contains(&meta.mode) {
        ManifestEntry { kind: EtcKind::Link, hash, mode: None, user: "root".into(), group: "root".into() }
    } else {
        copy_manifest(hash, meta)
    };
    BuiltEntry { manifest, node }
}

fn copy_manifest(hash: String, meta: &Meta) -> ManifestEntry {
    ManifestEntry {
        kind: EtcKind::Copy,
        hash,
        mode: Some(mode_of(meta)),
        user: owner_name(meta.uid),
        group: owner_name(meta.gid),
    }
}

/// `root` for 0, `+N` (a number, as manifests write them) for anyone else: the
/// tree's numbers belong to the adopted system's own `passwd` and `group`.
fn owner_name(id: u32) -> String {
    if id == 0 { "root".into() } else { format!("+{id}") }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt as _;
    use std::path::Path;

    use super::*;

    fn set_mode(path: &Path, mode: u32) {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    }

    /// The tree at `path`, read as a declaration outside it would read it.
    fn from_tree(path: &Path) -> Result<EtcBuild> {
        super::from_tree(&Sources::new(None).unwrap(), path.to_str().unwrap())
    }

    /// The node at `path` of a store tree's `etc/`.
    fn node<'t>(tree: &'t Tree, path: &str) -> &'t Tree {
        path.split('/').fold(tree, |node, name| match node {
            Tree::Directory(entries) => &entries[std::ffi::OsStr::new(name)],
            other => panic!("{name} is below {other:?}"),
        })
    }

    #[test]
    fn files_links_copies_and_symlinks_keep_what_they_are() {
        let scratch = tempfile::tempdir().unwrap();
        let etc = scratch.path();
        std::fs::create_dir_all(etc.join("ssh/sshd_config.d")).unwrap();
        set_mode(&etc.join("ssh"), 0o755);
        std::fs::write(etc.join("hostname"), "debian\n").unwrap();
        set_mode(&etc.join("hostname"), 0o644);
        std::fs::write(etc.join("ssh/sshd_config"), "Port 22\n").unwrap();
        set_mode(&etc.join("ssh/sshd_config"), 0o644);
        std::fs::write(etc.join("rc.local"), "#!/bin/sh\n").unwrap();
        set_mode(&etc.join("rc.local"), 0o755);
        std::fs::write(etc.join("gshadow"), "root:*::\n").unwrap();
        set_mode(&etc.join("gshadow"), 0o640);
        std::os::unix::fs::chown(etc.join("gshadow"), Some(0), Some(42)).unwrap();
        std::fs::write(etc.join("sudoers"), "root ALL=(ALL) ALL\n").unwrap();
        set_mode(&etc.join("sudoers"), 0o440);
        std::os::unix::fs::symlink("../usr/lib/os-release", etc.join("os-release")).unwrap();

        let build = from_tree(etc).unwrap();
        let keys: Vec<&str> = build.entries.keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            ["gshadow", "hostname", "os-release", "rc.local", "ssh/sshd_config", "ssh/sshd_config.d", "sudoers"]
        );
        let manifest = |key: &str| &build.entries[key].manifest;
        assert_eq!(manifest("hostname").kind, EtcKind::Link);
        assert_eq!(
            build.entries["rc.local"].node,
            Tree::File { contents: b"#!/bin/sh\n".to_vec(), executable: true, secret: false }
        );
        let gshadow = manifest("gshadow");
        assert_eq!(
            (&gshadow.kind, gshadow.mode.as_deref(), gshadow.user.as_str(), gshadow.group.as_str()),
            (&EtcKind::Copy, Some("0640"), "root", "+42")
        );
        assert_eq!((&manifest("sudoers").kind, manifest("sudoers").mode.as_deref()), (&EtcKind::Copy, Some("0440")));
        assert_eq!(manifest("os-release").kind, EtcKind::DirectLink { target: "../usr/lib/os-release".into() });
        assert_eq!(build.entries["os-release"].node, Tree::Symlink("../usr/lib/os-release".into()));
    }

    /// Debian's `ssl/private` is `0710 root:ssl-cert`, and a minimal system has empty
    /// directories (`apt/sources.list.d`) that programs and people write into: both are
    /// entries; a `0755 root:root` directory with something in it is not.
    #[test]
    fn directories_with_their_own_mode_or_owner_and_empty_ones_are_entries() {
        let scratch = tempfile::tempdir().unwrap();
        let etc = scratch.path();
        std::fs::create_dir_all(etc.join("ssl/private")).unwrap();
        std::fs::write(etc.join("ssl/private/key.pem"), "key\n").unwrap();
        set_mode(&etc.join("ssl/private/key.pem"), 0o640);
        set_mode(&etc.join("ssl/private"), 0o710);
        std::os::unix::fs::chown(etc.join("ssl/private"), Some(0), Some(110)).unwrap();
        set_mode(&etc.join("ssl"), 0o755);
        std::fs::create_dir_all(etc.join("apt/sources.list.d")).unwrap();
        set_mode(&etc.join("apt/sources.list.d"), 0o755);
        set_mode(&etc.join("apt"), 0o755);
        std::fs::create_dir(etc.join("sudoers.d")).unwrap();
        set_mode(&etc.join("sudoers.d"), 0o750);

        let build = from_tree(etc).unwrap();
        let keys: Vec<&str> = build.entries.keys().map(String::as_str).collect();
        assert_eq!(keys, ["apt/sources.list.d", "ssl/private", "ssl/private/key.pem", "sudoers.d"]);
        let directory = |key: &str| {
            let m = &build.entries[key].manifest;
            (m.kind.clone(), m.mode.clone().unwrap_or_default(), format!("{}:{}", m.user, m.group), m.hash.clone())
        };
        assert_eq!(directory("ssl/private"), (EtcKind::Directory, "0710".into(), "root:+110".into(), String::new()));
        assert_eq!(
            directory("apt/sources.list.d"),
            (EtcKind::Directory, "0755".into(), "root:root".into(), String::new())
        );
        assert_eq!(directory("sudoers.d"), (EtcKind::Directory, "0750".into(), "root:root".into(), String::new()));
        assert_eq!(build.entries["sudoers.d"].node, Tree::Directory(std::collections::BTreeMap::new()));
        // The store object holds the directories, the empty ones too.
        let Tree::Directory(top) = build.tree().unwrap() else { panic!("an object is a directory") };
        let Some(Tree::Directory(tree)) = top.get(std::ffi::OsStr::new("etc")) else { panic!("etc/") };
        let Some(Tree::Directory(ssl)) = tree.get(std::ffi::OsStr::new("ssl")) else { panic!("ssl/") };
        let Some(Tree::Directory(private)) = ssl.get(std::ffi::OsStr::new("private")) else { panic!("ssl/private") };
        assert!(private.contains_key(std::ffi::OsStr::new("key.pem")));
        assert_eq!(
            tree.get(std::ffi::OsStr::new("sudoers.d")),
            Some(&Tree::Directory(std::collections::BTreeMap::new()))
        );
    }

    #[test]
    fn a_fifo_is_refused_with_its_path() {
        let scratch = tempfile::tempdir().unwrap();
        let fifo = scratch.path().join("initctl");
        assert!(std::process::Command::new("mkfifo").arg(&fifo).status().unwrap().success());
        let error = from_tree(scratch.path()).unwrap_err();
        assert!(error.to_string().ends_with("initctl` is a FIFO, not a regular file or a directory"), "{error}");
    }

    /// What only root (or a group) may read in the installed system stays so: copies
    /// others may not read, and everything below a directory they may not enter, are
    /// root-only in the store, and a file there that would have been a link keeps its
    /// owner and mode as a copy; what everyone may read is as cheap as before.
    #[test]
    fn secrets_stay_secret_in_the_store() {
        let scratch = tempfile::tempdir().unwrap();
        let etc = scratch.path();
        let write = |path: &str, text: &str, mode: u32| {
            std::fs::create_dir_all(etc.join(path).parent().unwrap()).unwrap();
            std::fs::write(etc.join(path), text).unwrap();
            set_mode(&etc.join(path), mode);
        };
        write("hostname", "debian\n", 0o644);
        write("wireguard/wg0.conf", "[Interface]\nPrivateKey = k\n", 0o600);
        write("NetworkManager/system-connections/home.nmconnection", "psk=secret\n", 0o600);
        write("ssl/private/key.pem", "KEY\n", 0o640);
        write("ssl/private/readable.pem", "CERT\n", 0o644);
        write("ssh/ssh_host_ed25519_key", "PRIVATE\n", 0o644);
        set_mode(&etc.join("ssl/private"), 0o710);
        set_mode(&etc.join("wireguard"), 0o700);
        std::os::unix::fs::chown(etc.join("ssl/private"), Some(0), Some(110)).unwrap();

        let build = from_tree(etc).unwrap();
        let readable = &build.entries["ssl/private/readable.pem"].manifest;
        assert_eq!(
            (&readable.kind, readable.mode.as_deref(), readable.user.as_str()),
            (&EtcKind::Copy, Some("0644"), "root"),
            "below 0710 root:+110, a copy with its own mode: the group still reads it"
        );
        assert_eq!(build.entries["hostname"].manifest.kind, EtcKind::Link);
        let tree = build.tree().unwrap();
        let secret = |path: &str| match node(&tree, path) {
            Tree::File { secret, .. } => *secret,
            other => panic!("{path} is {other:?}"),
        };
        for path in [
            "etc/wireguard/wg0.conf",
            "etc/NetworkManager/system-connections/home.nmconnection",
            "etc/ssl/private/key.pem",
            "etc/ssl/private/readable.pem",
            "etc/ssh/ssh_host_ed25519_key",
            "manifest.json",
            "manifest.index",
        ] {
            assert!(secret(path), "{path} is root's alone");
        }
        assert!(!secret("etc/hostname"));
    }
}
