//! The content-addressed store: immutable trees named `<hash>-<name>`.
//!
//! The hash is blake3 over a canonical serialization of the tree (see
//! [`Tree`]/ARCHITECTURE.md), so identical content always gets the same name and adding
//! it again does nothing. An object is built under a temporary dot-name in the store
//! directory, fsynced, made read-only and renamed into place: a crash leaves at most a
//! temporary, which the next writer removes, never a partial object.

use std::collections::BTreeMap;
use std::ffi::{OsStr, OsString};
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use crate::fs::{Dir, FsError, Kind, is_temp_name, temp_name};

/// How many characters of the encoded hash name an object: 32 base-32 characters
/// are 160 bits.
const HASH_CHARS: usize = 32;
/// File-name-safe, lower case, no look-alike ambiguity needed: RFC 4648 base 32.
const ALPHABET: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";

/// A tree to add to the store, described in memory: the bytes hashed are the bytes
/// written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Tree {
    File { contents: Vec<u8>, executable: bool },
    Symlink(OsString),
    Directory(BTreeMap<OsString, Tree>),
}

impl Tree {
    pub fn file(contents: impl Into<Vec<u8>>) -> Tree {
        Tree::File { contents: contents.into(), executable: false }
    }
}

/// Errors from the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(transparent)]
    Fs(#[from] FsError),
    #[error("`{0}` is not a valid store object name (letters, digits, `+-._=`, not starting with `.`)")]
    BadName(String),
    #[error("store object {name} contains {}, which is neither a file, a directory nor a symlink", path.display())]
    Unsupported { name: String, path: PathBuf },
}

pub type Result<T> = std::result::Result<T, StoreError>;

/// Something wrong with an object, found by [`Store::verify`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Corruption {
    pub object: String,
    pub problem: String,
}

/// A store directory, opened.
#[derive(Debug)]
pub struct Store {
    dir: Dir,
    /// Where the store appears in the live system, e.g. `/var/lib/blankslate/store`.
    location: PathBuf,
}

impl Store {
    /// Opens (creating it if needed) the store at `location` below `root`.
    /// `location` is absolute as seen from inside the root.
    pub fn open(root: &Dir, location: &Path) -> Result<Store> {
        let relative = location.strip_prefix("/").unwrap_or(location);
        let dir = root.create_dir_all(relative, 0o755)?;
        Ok(Store::from_dir(dir, location))
    }

    /// A store already opened as `dir`, which the live system sees at `location`.
    pub fn from_dir(dir: Dir, location: &Path) -> Store {
        Store { dir, location: location.to_path_buf() }
    }

    /// Where an object appears in the live system.
    pub fn live_path(&self, object: &str) -> PathBuf {
        self.location.join(object)
    }

    /// Where the store appears in the live system.
    pub fn location(&self) -> &Path {
        &self.location
    }

    pub fn dir(&self) -> &Dir {
        &self.dir
    }

    /// Opens an object's top directory (objects added from a file tree are
    /// directories; a single file or link object is opened by [`Store::dir`]).
    pub fn open_object(&self, object: &str) -> Result<Dir> {
        Ok(self.dir.open_dir(object)?)
    }

    /// Removes leftovers of writers that died. Call only while holding the state
    /// lock, so that no live writer's temporary is taken.
    pub fn remove_temporaries(&self) -> Result<Vec<OsString>> {
        let mut removed = Vec::new();
        for (name, _) in self.dir.entries()? {
            if is_temp_name(&name) {
                self.dir.remove_tree(&name)?;
                removed.push(name);
            }
        }
        if !removed.is_empty() {
            self.dir.sync()?;
        }
        Ok(removed)
    }

    /// The name `tree` gets under `name`, without writing anything.
    pub fn object_name(name: &str, tree: &Tree) -> Result<String> {
        check_object_name(name)?;
        let root = hash_tree(tree)?;
        Ok(format!("{}-{name}", encode(&object_hash(name, &root))))
    }

    /// Adds `tree` as `<hash>-<name>`. If the object exists, nothing is written.
    pub fn add(&self, name: &str, tree: &Tree) -> Result<String> {
        let object = Store::object_name(name, tree)?;
        if self.contains(&object)? {
            return Ok(object);
        }
        let temp = temp_name(OsStr::new(&object));
        write_tree(&self.dir, &temp, tree)?;
        crate::failpoint::hit("store-add:written");
        if !self.dir.rename_noreplace(&temp, &object)? {
            // Someone added the same content meanwhile: theirs is as good as ours.
            self.dir.remove_tree(&temp)?;
        }
        self.dir.sync()?;
        Ok(object)
    }

    pub fn contains(&self, object: &str) -> Result<bool> {
        match self.dir.meta(object) {
            Ok(_) => Ok(true),
            Err(error) if error.is_not_found() => Ok(false),
            Err(error) => Err(error.into()),
        }
    }

    /// Every object's name (temporaries and other dot-names excluded).
    pub fn objects(&self) -> Result<Vec<String>> {
        Ok(self
            .dir
            .entries()?
            .into_iter()
            .filter_map(|(name, _)| name.into_string().ok())
            .filter(|name| !name.starts_with('.'))
            .collect())
    }

    /// Removes an object (for garbage collection).
    pub fn remove(&self, object: &str) -> Result<()> {
        self.dir.remove_tree(object)?;
        Ok(())
    }

    /// Re-hashes every object and reports those whose content no longer matches
    /// their name, or that are writable.
    pub fn verify(&self) -> Result<Vec<Corruption>> {
        let mut found = Vec::new();
        for object in self.objects()? {
            if let Some(problem) = self.check_object(&object) {
                found.push(Corruption { object, problem });
            }
        }
        Ok(found)
    }

    /// Re-hashes one object: what is wrong with it (an object that cannot be read
    /// included), or `None` if its content matches its name and nothing in it is
    /// writable.
    pub fn check_object(&self, object: &str) -> Option<String> {
        match self.hash_check(object) {
            Ok(problem) => problem,
            Err(StoreError::Fs(error)) => Some(format!("unreadable: {error}")),
            Err(error) => Some(error.to_string()),
        }
    }

    fn hash_check(&self, object: &str) -> Result<Option<String>> {
        let Some((hash, name)) = object.split_once('-') else {
            return Ok(Some("the name has no `<hash>-` prefix".into()));
        };
        let tree = read_tree(&self.dir, OsStr::new(object), object)?;
        let actual = encode(&object_hash(name, &hash_tree(&tree)?));
        if actual != hash {
            return Ok(Some(format!("content hashes to {actual}, not {hash}")));
        }
        if let Some(path) = writable_path(&self.dir, OsStr::new(object), Path::new(object))? {
            return Ok(Some(format!("{} is writable", path.display())));
        }
        Ok(None)
    }
}

fn check_object_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && !name.starts_with('.')
        && name.len() <= 200
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"+-._=".contains(&b));
    if ok { Ok(()) } else { Err(StoreError::BadName(name.to_owned())) }
}

/// Length-prefixed so that no two different trees serialize alike.
fn push_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(&(bytes.len() as u64).to_le_bytes());
    out.extend_from_slice(bytes);
}

/// The hash of one node: blake3 of `file`/`link`/`dir` followed by its content, with
/// a directory's entries sorted by name, each as the name and the child's hash.
fn hash_tree(tree: &Tree) -> Result<blake3::Hash> {
    let mut out = Vec::new();
    match tree {
        Tree::File { contents, executable } => {
            out.extend_from_slice(b"file\0");
            out.push(u8::from(*executable));
            out.extend_from_slice(&(contents.len() as u64).to_le_bytes());
            out.extend_from_slice(blake3::hash(contents).as_bytes());
        }
        Tree::Symlink(target) => {
            out.extend_from_slice(b"link\0");
            push_bytes(&mut out, target.as_bytes());
        }
        Tree::Directory(entries) => {
            out.extend_from_slice(b"dir\0");
            out.extend_from_slice(&(entries.len() as u64).to_le_bytes());
            for (name, child) in entries {
                push_bytes(&mut out, name.as_bytes());
                out.extend_from_slice(hash_tree(child)?.as_bytes());
            }
        }
    }
    Ok(blake3::hash(&out))
}

fn object_hash(name: &str, root: &blake3::Hash) -> [u8; 32] {
    let mut hasher = blake3::Hasher::new();
    hasher.update(b"blankslate-store-v1\0");
    push_name(&mut hasher, name);
    hasher.update(root.as_bytes());
    *hasher.finalize().as_bytes()
}

fn push_name(hasher: &mut blake3::Hasher, name: &str) {
    hasher.update(&(name.len() as u64).to_le_bytes());
    hasher.update(name.as_bytes());
}

/// Base 32 of the first 160 bits of `hash`.
fn encode(hash: &[u8; 32]) -> String {
    let mut out = String::with_capacity(HASH_CHARS);
    let mut buffer: u32 = 0;
    let mut bits = 0;
    for &byte in hash {
        buffer = (buffer << 8) | u32::from(byte);
        bits += 8;
        while bits >= 5 && out.len() < HASH_CHARS {
            bits -= 5;
            out.push(char::from(ALPHABET[((buffer >> bits) & 31) as usize]));
        }
        if out.len() == HASH_CHARS {
            break;
        }
    }
    out
}

/// Writes `tree` as `name` in `dir`: contents fsynced, everything read-only.
fn write_tree(dir: &Dir, name: &OsStr, tree: &Tree) -> Result<()> {
    match tree {
        Tree::File { contents, executable } => {
            let mode = if *executable { 0o555 } else { 0o444 };
            dir.create_file(name, contents, mode)?;
        }
        Tree::Symlink(target) => dir.symlink(name, target)?,
        Tree::Directory(entries) => {
            dir.create_dir(name, 0o755)?;
            let child = dir.open_dir(name)?;
            for (entry, subtree) in entries {
                write_tree(&child, entry, subtree)?;
            }
            child.sync()?;
            child.set_mode(0o555)?;
        }
    }
    Ok(())
}

/// Reads an object back into a [`Tree`] (contents in memory) for re-hashing.
fn read_tree(dir: &Dir, name: &OsStr, object: &str) -> Result<Tree> {
    let meta = dir.meta(name)?;
    Ok(match meta.kind {
        Kind::File => {
            let mut bytes = Vec::new();
            dir.open_file(name)?.read_to_end(&mut bytes).map_err(|source| FsError {
                op: "read",
                path: dir.path().join(name),
                source,
            })?;
            Tree::File { contents: bytes, executable: meta.mode & 0o111 != 0 }
        }
        Kind::Symlink => Tree::Symlink(dir.read_link(name)?),
        Kind::Directory => {
            let child = dir.open_dir(name)?;
            let mut entries = BTreeMap::new();
            for (entry, _) in child.entries()? {
                let subtree = read_tree(&child, &entry, object)?;
                entries.insert(entry, subtree);
            }
            Tree::Directory(entries)
        }
        Kind::Other => return Err(StoreError::Unsupported { name: object.into(), path: dir.path().join(name) }),
    })
}

/// The first file or directory of an object that has a write bit set.
fn writable_path(dir: &Dir, name: &OsStr, shown: &Path) -> Result<Option<PathBuf>> {
    let meta = dir.meta(name)?;
    if meta.kind != Kind::Symlink && meta.mode & 0o222 != 0 {
        return Ok(Some(shown.to_path_buf()));
    }
    if meta.kind == Kind::Directory {
        let child = dir.open_dir(name)?;
        for (entry, _) in child.entries()? {
            if let Some(path) = writable_path(&child, &entry, &shown.join(&entry))? {
                return Ok(Some(path));
            }
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    fn sample() -> Tree {
        let mut entries = BTreeMap::new();
        entries.insert(OsString::from("hosts"), Tree::file("127.0.0.1 localhost\n"));
        entries.insert(OsString::from("link"), Tree::Symlink("hosts".into()));
        entries.insert(OsString::from("bin"), Tree::File { contents: b"#!/bin/sh\n".to_vec(), executable: true });
        Tree::Directory(entries)
    }

    fn store() -> (tempfile::TempDir, Store) {
        let scratch = tempfile::tempdir().unwrap();
        let root = Dir::open_root(scratch.path()).unwrap();
        let store = Store::open(&root, Path::new("/var/lib/blankslate/store")).unwrap();
        (scratch, store)
    }

    #[test]
    fn identical_content_dedups_and_differences_do_not() {
        let (_scratch, store) = store();
        let first = store.add("etc", &sample()).unwrap();
        let second = store.add("etc", &sample()).unwrap();
        assert_eq!(first, second);
        assert_eq!(store.objects().unwrap(), std::slice::from_ref(&first));
        assert_eq!(first.len(), HASH_CHARS + "-etc".len());
        let mut other = sample();
        if let Tree::Directory(entries) = &mut other {
            entries.insert("bin".into(), Tree::File { contents: b"#!/bin/sh\n".to_vec(), executable: false });
        }
        assert_ne!(store.add("etc", &other).unwrap(), first, "the executable bit is part of the hash");
        assert_ne!(Store::object_name("etc2", &sample()).unwrap(), first, "so is the name");
    }

    #[test]
    fn objects_are_read_only_and_verify_clean() {
        let (scratch, store) = store();
        let object = store.add("etc", &sample()).unwrap();
        let dir = scratch.path().join("var/lib/blankslate/store").join(&object);
        let mode = |p: &Path| std::fs::symlink_metadata(p).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode(&dir), 0o555);
        assert_eq!(mode(&dir.join("hosts")), 0o444);
        assert_eq!(mode(&dir.join("bin")), 0o555);
        assert!(store.verify().unwrap().is_empty());
    }

    #[test]
    fn verify_reports_edited_and_writable_objects() {
        let (scratch, store) = store();
        let object = store.add("etc", &sample()).unwrap();
        let hosts = scratch.path().join("var/lib/blankslate/store").join(&object).join("hosts");
        std::fs::set_permissions(&hosts, std::fs::Permissions::from_mode(0o644)).unwrap();
        let found = store.verify().unwrap();
        assert_eq!(found.len(), 1);
        assert!(found[0].problem.contains("writable"), "{found:?}");
        std::fs::write(&hosts, "tampered").unwrap();
        let found = store.verify().unwrap();
        assert!(found[0].problem.starts_with("content hashes to"), "{found:?}");
    }

    #[test]
    fn temporaries_are_not_objects_and_are_cleaned() {
        let (_scratch, store) = store();
        store.dir().create_dir_all(".x.tmp-1-0/deep", 0o755).unwrap();
        assert!(store.objects().unwrap().is_empty());
        assert_eq!(store.remove_temporaries().unwrap().len(), 1);
        assert!(store.dir().entries().unwrap().is_empty());
    }

    #[test]
    fn encoding_is_file_name_safe() {
        let name = encode(blake3::hash(b"x").as_bytes());
        assert_eq!(name.len(), HASH_CHARS);
        assert!(name.bytes().all(|b| ALPHABET.contains(&b)));
        assert!(check_object_name("../x").is_err());
        assert!(check_object_name(".hidden").is_err());
    }
}
