//! Reading a NixOS-built etc tree (`/nix/store/…-etc/etc`): each entry is a symlink
//! to its source, with optional sidecar files `NAME.mode` (`direct-symlink`, or an
//! octal mode for a copy), `NAME.uid` and `NAME.gid` (names, or `+N` for numbers).

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use blankslate_state::manifest::{EtcKind, ManifestEntry, content_hash};
use blankslate_state::store::Tree;

use crate::{BuildError, BuiltEntry, EtcBuild, Result, is_executable, read};

const SIDECARS: [&str; 3] = [".mode", ".uid", ".gid"];

/// Reads every entry of a NixOS etc tree.
pub fn from_nixos_tree(path: &Path) -> Result<EtcBuild> {
    let meta = std::fs::metadata(path).map_err(|source| BuildError::Read { path: path.to_path_buf(), source })?;
    if !meta.is_dir() {
        return Err(BuildError::NotNixosTree { path: path.to_path_buf(), reason: "not a directory".into() });
    }
    let mut build = EtcBuild::default();
    walk(path, "", &mut build)?;
    Ok(build)
}

fn sidecar(dir: &Path, name: &str, suffix: &str) -> Result<Option<String>> {
    let path = dir.join(format!("{name}{suffix}"));
    match std::fs::read(&path) {
        Ok(bytes) => Ok(Some(String::from_utf8_lossy(&bytes).trim().to_owned())),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(BuildError::Read { path, source }),
    }
}

fn walk(dir: &Path, prefix: &str, build: &mut EtcBuild) -> Result<()> {
    let listing = std::fs::read_dir(dir).map_err(|source| BuildError::Read { path: dir.to_path_buf(), source })?;
    let mut names: Vec<String> =
        listing.filter_map(|e| e.ok().and_then(|e| e.file_name().into_string().ok())).collect();
    names.sort();
    for name in &names {
        let is_sidecar =
            SIDECARS.iter().any(|s| name.strip_suffix(s).is_some_and(|base| names.iter().any(|n| n == base)));
        if is_sidecar {
            continue;
        }
        let path = dir.join(name);
        let key = if prefix.is_empty() { name.clone() } else { format!("{prefix}/{name}") };
        let meta =
            std::fs::symlink_metadata(&path).map_err(|source| BuildError::Read { path: path.clone(), source })?;
        if meta.is_dir() {
            walk(&path, &key, build)?;
            continue;
        }
        let user = sidecar(dir, name, ".uid")?.unwrap_or_else(|| "root".into());
        let group = sidecar(dir, name, ".gid")?.unwrap_or_else(|| "root".into());
        let mode = sidecar(dir, name, ".mode")?;
        let entry = if meta.file_type().is_symlink() {
            let target = std::fs::read_link(&path).map_err(|source| BuildError::Read { path: path.clone(), source })?;
            symlink_entry(&path, target.as_os_str(), mode.as_deref(), user, group)?
        } else {
            let bytes = read(&path)?;
            let manifest = ManifestEntry { kind: EtcKind::Link, hash: content_hash(&bytes), mode: None, user, group };
            BuiltEntry {
                manifest,
                node: Tree::File { contents: bytes, executable: is_executable(&meta), secret: false },
            }
        };
        build.insert(key, entry, &format!("in the NixOS tree {}", dir.display()))?;
    }
    Ok(())
}

fn symlink_entry(path: &Path, target: &OsStr, mode: Option<&str>, user: String, group: String) -> Result<BuiltEntry> {
    let link = Tree::Symlink(target.to_os_string());
    Ok(match mode {
        Some("direct-symlink") => {
            let target = target.to_string_lossy().into_owned();
            let hash = content_hash(target.as_bytes());
            BuiltEntry {
                manifest: ManifestEntry { kind: EtcKind::DirectLink { target }, hash, mode: None, user, group },
                node: link,
            }
        }
        Some(mode) if blankslate_decl::Mode::parse_octal(mode).is_some() => {
            // A copy: its bytes must be in hand, so the source is read now.
            let bytes = read(path)?;
            let mode = blankslate_decl::Mode::parse_octal(mode).map(|m| m.to_string());
            let manifest = ManifestEntry { kind: EtcKind::Copy, hash: content_hash(&bytes), mode, user, group };
            BuiltEntry { manifest, node: Tree::File { contents: bytes, executable: false, secret: false } }
        }
        Some(other) => {
            return Err(BuildError::NotNixosTree {
                path: path.to_path_buf(),
                reason: format!("its .mode sidecar says `{other}`, neither an octal mode nor `direct-symlink`"),
            });
        }
        None => {
            // The source may live in a /nix/store this machine does not have: the link
            // target stands for the contents then.
            let hash =
                std::fs::read(path).map_or_else(|_| content_hash(target.as_bytes()), |bytes| content_hash(&bytes));
            BuiltEntry { manifest: ManifestEntry { kind: EtcKind::Link, hash, mode: None, user, group }, node: link }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_links_copies_direct_links_and_owners() {
        let scratch = tempfile::tempdir().unwrap();
        let sources = scratch.path().join("sources");
        std::fs::create_dir(&sources).unwrap();
        std::fs::write(sources.join("sudoers"), "root ALL=(ALL) ALL\n").unwrap();
        std::fs::write(sources.join("hosts"), "127.0.0.1 localhost\n").unwrap();
        let tree = scratch.path().join("etc");
        std::fs::create_dir_all(tree.join("ssh")).unwrap();
        let link = |target: &Path, name: &str| std::os::unix::fs::symlink(target, tree.join(name)).unwrap();
        link(&sources.join("hosts"), "hosts");
        link(&sources.join("sudoers"), "sudoers");
        std::fs::write(tree.join("sudoers.mode"), "0440\n").unwrap();
        std::fs::write(tree.join("sudoers.gid"), "wheel\n").unwrap();
        link(Path::new("/nix/store/abc-resolv/resolv.conf"), "resolv.conf");
        std::fs::write(tree.join("resolv.conf.mode"), "direct-symlink\n").unwrap();
        link(Path::new("/nix/store/def-sshd/sshd_config"), "ssh/sshd_config");
        std::fs::write(tree.join("ssh/sshd_config.uid"), "+0\n").unwrap();

        let build = from_nixos_tree(&tree).unwrap();
        let keys: Vec<&str> = build.entries.keys().map(String::as_str).collect();
        assert_eq!(keys, ["hosts", "resolv.conf", "ssh/sshd_config", "sudoers"]);
        let sudoers = &build.entries["sudoers"].manifest;
        assert_eq!(
            (&sudoers.kind, sudoers.mode.as_deref(), sudoers.group.as_str()),
            (&EtcKind::Copy, Some("0440"), "wheel")
        );
        assert_eq!(
            build.entries["resolv.conf"].manifest.kind,
            EtcKind::DirectLink { target: "/nix/store/abc-resolv/resolv.conf".into() }
        );
        let sshd = &build.entries["ssh/sshd_config"];
        assert_eq!((&sshd.manifest.kind, sshd.manifest.user.as_str()), (&EtcKind::Link, "+0"));
        assert_eq!(sshd.node, Tree::Symlink("/nix/store/def-sshd/sshd_config".into()));
        assert_eq!(build.entries["hosts"].manifest.hash, content_hash(b"127.0.0.1 localhost\n"));
    }

    #[test]
    fn a_bad_mode_sidecar_is_an_error() {
        let scratch = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink("/nix/store/x", scratch.path().join("a")).unwrap();
        std::fs::write(scratch.path().join("a.mode"), "sometimes").unwrap();
        let error = from_nixos_tree(scratch.path()).unwrap_err();
        assert!(error.to_string().contains("neither an octal mode"), "{error}");
    }
}
