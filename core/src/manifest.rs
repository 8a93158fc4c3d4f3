//! The `/etc` manifest: what a generation's `/etc` holds, entry by entry. Written by
//! the etc-builder into the etc store object, read by activation (to diff
//! generations) and by the audit (to detect drift).
//!
//! Directories are entries too, but only where they say something: a directory whose
//! mode or owner is not the default (`0755 root:root`), or one that is empty (it would
//! not exist otherwise). The others are made as needed for the entries below them.
//! A manifest without directories (every one written before they were recorded) reads
//! as it always did, and the same `/etc` still serializes to the same bytes, so the
//! store object keeps its hash.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The manifest's file name inside an etc store object.
pub const MANIFEST_FILE: &str = "manifest.json";
/// The directory inside an etc store object that `/etc/static` points at.
pub const TREE_DIR: &str = "etc";
/// The format version written into every manifest.
pub const MANIFEST_VERSION: u32 = 1;

/// How an entry appears in `/etc`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "kind")]
pub enum EtcKind {
    /// `/etc/<path>` -> `/etc/static/<path>`: follows `/etc/static` when it switches.
    Link,
    /// `/etc/<path>` -> `target` directly (NixOS `mode = "direct-symlink"`).
    DirectLink { target: String },
    /// `/etc/<path>` is a regular file with the entry's mode and owner.
    Copy,
    /// `/etc/<path>` is a directory with the entry's mode and owner (`hash` is empty).
    Directory,
}

/// One entry. `hash` is the blake3 (hex) of the contents, or of the link target for
/// entries whose contents live outside the store (NixOS trees); none for a directory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestEntry {
    #[serde(flatten)]
    pub kind: EtcKind,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub hash: String,
    /// Octal permission bits, for copies and directories.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
    /// A user name, or `+UID` for a number (as NixOS writes them).
    pub user: String,
    pub group: String,
}

/// Every entry of one generation's `/etc`, keyed by path relative to `/etc`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Manifest {
    pub version: u32,
    pub entries: BTreeMap<String, ManifestEntry>,
}

impl Manifest {
    pub fn new() -> Manifest {
        Manifest { version: MANIFEST_VERSION, entries: BTreeMap::new() }
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("a manifest always serializes")
    }

    pub fn from_json(text: &[u8]) -> Result<Manifest, serde_json::Error> {
        serde_json::from_slice(text)
    }

    /// Whether the entry at `path` is a secret (`decl::secret`): its contents are
    /// readable by root alone in the store, and reports do not show them.
    pub fn is_secret(&self, path: &str) -> bool {
        crate::decl::secret::is_secret(path, |p| self.entries.get(p).map(ManifestEntry::access))
    }
}

/// Whether `entries` has an entry below the directory `dir` (relative to `/etc`).
pub fn has_entries_below(entries: &BTreeMap<String, ManifestEntry>, dir: &str) -> bool {
    let prefix = format!("{dir}/");
    entries.range(prefix.clone()..).next().is_some_and(|(key, _)| key.starts_with(&prefix))
}

impl ManifestEntry {
    /// A directory entry: `mode` and owner as the directory has them.
    pub fn directory(mode: String, user: String, group: String) -> ManifestEntry {
        ManifestEntry { kind: EtcKind::Directory, hash: String::new(), mode: Some(mode), user, group }
    }

    /// The permission bits of a copy or a directory (`0644`, `0755` when not given).
    pub fn mode_bits(&self) -> u32 {
        let default = if self.kind == EtcKind::Directory { DEFAULT_DIR_MODE } else { 0o644 };
        self.mode.as_deref().and_then(|m| u32::from_str_radix(m, 8).ok()).unwrap_or(default)
    }

    /// What `decl::secret` needs to know of this entry.
    pub fn access(&self) -> crate::decl::secret::Access {
        crate::decl::secret::Access {
            directory: self.kind == EtcKind::Directory,
            mode: self.is_owned().then(|| self.mode_bits()),
        }
    }

    /// Whether `/etc/<path>` holds a file or directory with its own owner and mode
    /// (a copy or a directory), rather than a symlink.
    pub fn is_owned(&self) -> bool {
        matches!(self.kind, EtcKind::Copy | EtcKind::Directory)
    }
}

/// The mode of a directory that needs no entry of its own.
pub const DEFAULT_DIR_MODE: u32 = 0o755;

/// The hex blake3 of some bytes, as manifests record contents.
pub fn content_hash(bytes: &[u8]) -> String {
    blake3::hash(bytes).to_hex().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What every generation built before directories were recorded has in its store
    /// object: it must keep reading, so that those generations keep booting.
    const OLD: &str = r#"{
  "version": 1,
  "entries": {
    "hosts": { "kind": "link", "hash": "ab12", "user": "root", "group": "root" },
    "os-release": { "kind": "direct-link", "target": "../usr/lib/os-release", "hash": "cd34", "user": "root", "group": "root" },
    "sudoers": { "kind": "copy", "hash": "ef56", "mode": "0440", "user": "root", "group": "root" }
  }
}"#;

    #[test]
    fn an_old_manifest_reads_and_writes_the_same_bytes() {
        let manifest = Manifest::from_json(OLD.as_bytes()).unwrap();
        assert_eq!(manifest.entries["sudoers"].kind, EtcKind::Copy);
        assert_eq!(manifest.entries["hosts"].hash, "ab12");
        let again = Manifest::from_json(manifest.to_json().as_bytes()).unwrap();
        assert_eq!(again, manifest);
        assert!(!manifest.to_json().contains("directory"));
    }

    #[test]
    fn a_directory_entry_has_a_mode_and_owner_and_no_hash() {
        let mut manifest = Manifest::new();
        manifest
            .entries
            .insert("ssl/private".into(), ManifestEntry::directory("0710".into(), "root".into(), "+110".into()));
        let json = manifest.to_json();
        assert!(json.contains(r#""kind": "directory""#) && !json.contains("hash"), "{json}");
        let read = Manifest::from_json(json.as_bytes()).unwrap();
        assert_eq!(read, manifest);
        assert_eq!(read.entries["ssl/private"].mode_bits(), 0o710);
    }
}
