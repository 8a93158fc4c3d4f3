//! Reading an etc tree: a plain directory shaped like `/etc` (what `blankslate adopt`
//! copies out of an installed system), where each file's owner and mode are its own.
//!
//! - a regular file owned by `root:root` with an ordinary mode (`0644`, `0755`, `0444`,
//!   `0555`) becomes a link into the store (the store keeps the executable bit; the
//!   write bits are the store's to drop);
//! - any other regular file (`shadow` is `0640 root:shadow`, a key `0600`) becomes a
//!   copy with that owner and mode, owners kept as numbers (`+42`) unless root;
//! - a symlink becomes an entry linking to the same target (`os-release ->
//!   ../usr/lib/os-release` keeps working, relative to `/etc`);
//! - a directory is walked, and becomes an entry of its own when it is empty (else it
//!   would not exist: `apt/sources.list.d`) or its mode or owner is not the default
//!   `0755 root:root` (`ssl/private` is `0710 root:ssl-cert`); the others are made as
//!   the entries below them need them;
//! - anything else (a FIFO, a device) is refused.

use std::os::unix::fs::MetadataExt as _;
use std::path::Path;

use blankslate_core::decl::Mode;
use blankslate_core::manifest::{DEFAULT_DIR_MODE, EtcKind, ManifestEntry, content_hash};
use blankslate_core::store::Tree;

use crate::{BuildError, BuiltEntry, EtcBuild, Result, read};

/// Modes a root-owned file may have and still be a link into the read-only store.
const LINKABLE_MODES: [u32; 4] = [0o644, 0o755, 0o444, 0o555];

/// Reads every file and symlink below `path`, and the directories that say something.
pub fn from_tree(path: &Path) -> Result<EtcBuild> {
    let mut build = EtcBuild::default();
    walk(path, path, "", &mut build)?;
    Ok(build)
}

/// Walks `dir`; returns whether it holds anything.
fn walk(top: &Path, dir: &Path, prefix: &str, build: &mut EtcBuild) -> Result<bool> {
    let listing = std::fs::read_dir(dir).map_err(|source| BuildError::Read { path: dir.to_path_buf(), source })?;
    let mut names = Vec::new();
    for entry in listing {
        let entry = entry.map_err(|source| BuildError::Read { path: dir.to_path_buf(), source })?;
        let name = entry.file_name().into_string().map_err(|name| BuildError::Unsupported {
            entry: prefix.to_owned(),
            path: dir.join(name),
            why: "its name is not UTF-8",
        })?;
        names.push(name);
    }
    names.sort();
    let empty = names.is_empty();
    for name in names {
        let path = dir.join(&name);
        let key = if prefix.is_empty() { name } else { format!("{prefix}/{name}") };
        let meta =
            std::fs::symlink_metadata(&path).map_err(|source| BuildError::Read { path: path.clone(), source })?;
        let file_type = meta.file_type();
        let entry = if file_type.is_dir() {
            let has_entries = walk(top, &path, &key, build)?;
            let Some(entry) = directory_entry(&meta, has_entries) else { continue };
            entry
        } else if file_type.is_symlink() {
            let target = std::fs::read_link(&path).map_err(|source| BuildError::Read { path: path.clone(), source })?;
            let target = target.into_os_string().into_string().map_err(|_| BuildError::Unsupported {
                entry: key.clone(),
                path: path.clone(),
                why: "its link target is not UTF-8",
            })?;
            let hash = content_hash(target.as_bytes());
            let manifest = ManifestEntry {
                kind: EtcKind::DirectLink { target: target.clone() },
                hash,
                mode: None,
                user: "root".into(),
                group: "root".into(),
            };
            BuiltEntry { manifest, node: Tree::Symlink(target.into()) }
        } else if file_type.is_file() {
            file_entry(&path, &meta)?
        } else {
            return Err(BuildError::Unsupported {
                entry: key,
                path,
                why: "it is neither a regular file, a symlink nor a directory",
            });
        };
        build.insert(key, entry, &format!("in the etc tree {}", top.display()))?;
    }
    Ok(!empty)
}

/// The entry of a directory that is empty or not `0755 root:root`; `None` for one
/// the entries below it account for.
fn directory_entry(meta: &std::fs::Metadata, has_entries: bool) -> Option<BuiltEntry> {
    let bits = meta.mode() & 0o7777;
    let default = bits == DEFAULT_DIR_MODE && meta.uid() == 0 && meta.gid() == 0;
    if default && has_entries {
        return None;
    }
    let mode = Mode::new(bits).expect("permission bits are a mode").to_string();
    let manifest = ManifestEntry::directory(mode, owner_name(meta.uid()), owner_name(meta.gid()));
    Some(BuiltEntry { manifest, node: Tree::Directory(std::collections::BTreeMap::new()) })
}

fn file_entry(path: &Path, meta: &std::fs::Metadata) -> Result<BuiltEntry> {
    let bytes = read(path)?;
    let hash = content_hash(&bytes);
    let bits = meta.mode() & 0o7777;
    let owned_by_root = meta.uid() == 0 && meta.gid() == 0;
    let node = Tree::File { contents: bytes, executable: bits & 0o111 != 0 };
    let manifest = if owned_by_root && LINKABLE_MODES.contains(&bits) {
        ManifestEntry { kind: EtcKind::Link, hash, mode: None, user: "root".into(), group: "root".into() }
    } else {
        let mode = Mode::new(bits).map(|m| m.to_string());
        ManifestEntry { kind: EtcKind::Copy, hash, mode, user: owner_name(meta.uid()), group: owner_name(meta.gid()) }
    };
    Ok(BuiltEntry { manifest, node })
}

/// `root` for 0, `+N` (a number, as manifests write them) for anyone else: the
/// tree's numbers belong to the adopted system's own `passwd` and `group`.
fn owner_name(id: u32) -> String {
    if id == 0 { "root".into() } else { format!("+{id}") }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt as _;

    use super::*;

    fn set_mode(path: &Path, mode: u32) {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
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
        assert_eq!(build.entries["rc.local"].node, Tree::File { contents: b"#!/bin/sh\n".to_vec(), executable: true });
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
        assert!(error.to_string().contains("initctl") && error.to_string().contains("neither"), "{error}");
    }
}
