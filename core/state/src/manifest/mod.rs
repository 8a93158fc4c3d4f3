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

use serde::de::{self, MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};

mod chunks;
mod entries;
mod written;

pub use chunks::{MANIFEST_INDEX_FILE, index};
pub(crate) use entries::Lazy;
pub use entries::{Entries, ManifestReadError};

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
/// Read by a visitor of its own (`EntryVisitor`): the derived reading of a
/// flattened enum buffers every entry first, which made reading a manifest the
/// larger part of a repair.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
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
    #[serde(deserialize_with = "entries_in_order")]
    pub entries: Entries,
}

/// The fields of an entry as written (any other is ignored, as it always was).
#[derive(Deserialize)]
#[serde(field_identifier, rename_all = "lowercase")]
enum Field {
    Kind,
    Target,
    Hash,
    Mode,
    User,
    Group,
    #[serde(other)]
    Other,
}

/// An entry's `kind`.
#[derive(Deserialize)]
#[serde(rename_all = "kebab-case")]
enum Tag {
    Link,
    DirectLink,
    Copy,
    Directory,
}

struct EntryVisitor;

impl<'de> Visitor<'de> for EntryVisitor {
    type Value = ManifestEntry;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("an /etc manifest entry")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<ManifestEntry, A::Error> {
        // `target` is only a direct link's: for another kind, any value was ignored.
        let (mut tag, mut target, mut hash, mut mode, mut user, mut group) =
            (None, None::<serde_json::Value>, None, None::<Option<String>>, None, None);
        while let Some(field) = map.next_key()? {
            match field {
                Field::Kind => once(&mut map, &mut tag, "kind")?,
                Field::Target => once(&mut map, &mut target, "target")?,
                Field::Hash => once(&mut map, &mut hash, "hash")?,
                Field::Mode => once(&mut map, &mut mode, "mode")?,
                Field::User => once(&mut map, &mut user, "user")?,
                Field::Group => once(&mut map, &mut group, "group")?,
                Field::Other => {
                    map.next_value::<de::IgnoredAny>()?;
                }
            }
        }
        let kind = match tag.ok_or_else(|| de::Error::missing_field("kind"))? {
            Tag::Link => EtcKind::Link,
            Tag::DirectLink => {
                let target = target.ok_or_else(|| de::Error::missing_field("target"))?;
                EtcKind::DirectLink { target: serde_json::from_value(target).map_err(de::Error::custom)? }
            }
            Tag::Copy => EtcKind::Copy,
            Tag::Directory => EtcKind::Directory,
        };
        Ok(ManifestEntry {
            kind,
            hash: hash.unwrap_or_default(),
            mode: mode.flatten(),
            user: user.ok_or_else(|| de::Error::missing_field("user"))?,
            group: group.ok_or_else(|| de::Error::missing_field("group"))?,
        })
    }
}

/// Reads the value of a field into `slot`; a field written twice is an error.
fn once<'de, A: MapAccess<'de>, T: Deserialize<'de>>(
    map: &mut A,
    slot: &mut Option<T>,
    name: &'static str,
) -> Result<(), A::Error> {
    if slot.is_some() {
        return Err(de::Error::duplicate_field(name));
    }
    *slot = Some(map.next_value()?);
    Ok(())
}

impl<'de> Deserialize<'de> for ManifestEntry {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(EntryVisitor)
    }
}

/// The entries, gathered in the order written (sorted, as every manifest is) and then
/// built into the map at once, rather than inserted one by one. A key written twice
/// keeps its last entry, as insertion did.
fn entries_in_order<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Entries, D::Error> {
    struct InOrder;
    impl<'de> Visitor<'de> for InOrder {
        type Value = Entries;

        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a map of /etc entries")
        }

        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut entries = Vec::with_capacity(map.size_hint().unwrap_or(0));
            while let Some(entry) = map.next_entry()? {
                entries.push(entry);
            }
            Ok(entries.into_iter().collect())
        }
    }
    deserializer.deserialize_map(InOrder)
}

impl Manifest {
    pub fn new() -> Manifest {
        Manifest { version: MANIFEST_VERSION, entries: Entries::default() }
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("a manifest always serializes")
    }

    /// Reads a manifest. One in the form [`Manifest::to_json`] writes keeps its text,
    /// each entry made when first asked for; any other is read by serde whole.
    /// Given the bytes (not a borrow), the text is kept without a copy.
    pub fn from_json(text: impl Into<Vec<u8>>) -> Result<Manifest, serde_json::Error> {
        let bytes = match String::from_utf8(text.into()) {
            Ok(text) => match Entries::from_written(text) {
                Ok((version, entries)) => return Ok(Manifest { version, entries }),
                Err(text) => text.into_bytes(),
            },
            Err(error) => error.into_bytes(),
        };
        serde_json::from_slice(&bytes)
    }

    /// The manifest `file` (at `path`, for messages; `size` bytes long) as its chunk
    /// index `index` cuts it in runs, none read yet: each is read when first needed,
    /// and a diff reads only the runs that differ ([`Entries::read_unshared`]).
    /// The manifest's head and tail are read here, and must be what the index says.
    pub fn in_runs(file: std::fs::File, path: std::path::PathBuf, size: u64, index: &str) -> Result<Manifest, String> {
        use std::os::unix::fs::FileExt as _;
        let index = chunks::parse(index, size)?;
        for (at, expected) in &index.ends {
            let mut bytes = vec![0; expected.len()];
            file.read_exact_at(&mut bytes, *at).map_err(|error| format!("bytes {at}..: {error}"))?;
            if bytes != expected.as_bytes() {
                return Err(format!("bytes {at}.. are not what its index says"));
            }
        }
        Ok(Manifest { version: index.version, entries: Entries::in_runs(file, path, index) })
    }

    /// Whether the entry at `path` is a secret (`decl::secret`): its contents are
    /// readable by root alone in the store, and reports do not show them.
    pub fn is_secret(&self, path: &str) -> bool {
        blankslate_decl::secret::is_secret(path, |p| self.entries.get(p).map(ManifestEntry::access))
    }
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
    pub fn access(&self) -> blankslate_decl::secret::Access {
        blankslate_decl::secret::Access {
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
pub const DEFAULT_DIR_MODE: u32 = blankslate_decl::layout::DEFAULT_DIR_MODE;

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

    /// The entry's own reader accepts what the derived one did (fields in any order,
    /// unknown ones ignored, `mode: null`, any `target` of a kind without one, a key
    /// written twice keeping its last entry) and refuses what it refused (checked
    /// against serde's derive with `flatten`).
    #[test]
    fn entries_read_as_the_derived_reader_read_them() {
        let text = r#"{"version": 1, "entries": {
            "a": {"user": "root", "extra": [1, {"x": 2}], "group": "wheel", "kind": "copy", "mode": null},
            "b": {"kind": "link", "target": 5, "user": "root", "group": "root"},
            "a": {"kind": "direct-link", "target": "/t", "user": "u", "group": "g", "hash": "h"}
        }}"#;
        let manifest = Manifest::from_json(text.as_bytes()).unwrap();
        let a = &manifest.entries["a"];
        assert_eq!((&a.kind, a.hash.as_str(), &a.mode), (&EtcKind::DirectLink { target: "/t".into() }, "h", &None));
        assert_eq!((manifest.entries["b"].kind.clone(), manifest.entries.len()), (EtcKind::Link, 2));
        for (entry, error) in [
            (r#"{"user": "root", "group": "root"}"#, "missing field `kind`"),
            (r#"{"kind": "direct-link", "user": "root", "group": "root"}"#, "missing field `target`"),
            (r#"{"kind": "copy", "group": "root"}"#, "missing field `user`"),
            (r#"{"kind": "fifo", "user": "root", "group": "root"}"#, "unknown variant `fifo`"),
            (r#"["copy"]"#, "invalid type: sequence"),
            (r#"{"kind": "copy", "user": "root", "group": "root", "user": "x"}"#, "duplicate field `user`"),
            (r#"{"kind": "copy", "mode": null, "mode": "0644", "user": "root", "group": "root"}"#, "duplicate field"),
            (r#"{"kind": "direct-link", "target": 5, "user": "root", "group": "root"}"#, "invalid type: integer"),
        ] {
            let text = format!(r#"{{"version": 1, "entries": {{"a": {entry}}}}}"#);
            let message = Manifest::from_json(text.as_bytes()).unwrap_err().to_string();
            assert!(message.contains(error), "{entry}: {message}");
        }
    }
}
