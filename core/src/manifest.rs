//! The `/etc` manifest: what a generation's `/etc` holds, entry by entry. Written by
//! the etc-builder into the etc store object, read by activation (to diff
//! generations) and by the audit (to detect drift).

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
}

/// One entry. `hash` is the blake3 (hex) of the contents, or of the link target for
/// entries whose contents live outside the store (NixOS trees).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestEntry {
    #[serde(flatten)]
    pub kind: EtcKind,
    pub hash: String,
    /// Octal permission bits, for copies.
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
}

/// The hex blake3 of some bytes, as manifests record contents.
pub fn content_hash(bytes: &[u8]) -> String {
    blake3::hash(bytes).to_hex().to_string()
}
