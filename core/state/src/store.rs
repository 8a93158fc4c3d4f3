//! The content-addressed store: immutable trees named `<hash>-<name>`.
//!
//! The hash is blake3 over a canonical serialization of the tree (see
//! [`Tree`]/ARCHITECTURE.md), so identical content always gets the same name. An object
//! is built under a temporary dot-name in the store directory, fsynced, made read-only
//! and renamed into place; it leaves by the same way (renamed to a temporary, the store
//! directory fsynced, then deleted): a crash leaves at most a temporary, which the next
//! writer removes, never a partial object under a real name. Adding an object that is
//! already there checks it against what would be written, and a damaged one is
//! replaced.
//!
//! Files are `0444` (`0555` executable), or `0400` (`0500`) when secret: the content of
//! a secret file is readable by root alone, in the store as everywhere else.

use std::collections::BTreeMap;
use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io::{self, Read};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use blankslate_sys::fs::{Dir, FsError, Kind, Meta, is_temp_name, temp_name};

/// How many characters of the encoded hash name an object: 32 base-32 characters
/// are 160 bits.
const HASH_CHARS: usize = 32;
/// File-name-safe, lower case, no look-alike ambiguity needed: RFC 4648 base 32.
const ALPHABET: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";

/// A tree to add to the store, described in memory: the bytes hashed are the bytes
/// written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Tree {
    /// A file; a `secret` one is readable by root alone (and hashes differently).
    File {
        contents: Vec<u8>,
        executable: bool,
        secret: bool,
    },
    Symlink(OsString),
    Directory(BTreeMap<OsString, Tree>),
}

impl Tree {
    /// A file everyone may read.
    pub fn file(contents: impl Into<Vec<u8>>) -> Tree {
        Tree::File { contents: contents.into(), executable: false, secret: false }
    }

    /// A file root alone may read.
    pub fn secret_file(contents: impl Into<Vec<u8>>) -> Tree {
        Tree::File { contents: contents.into(), executable: false, secret: true }
    }
}

/// The mode of an object's file: read-only for everyone, or for root alone.
fn file_mode(executable: bool, secret: bool) -> u32 {
    match (executable, secret) {
        (false, false) => 0o444,
        (true, false) => 0o555,
        (false, true) => 0o400,
        (true, true) => 0o500,
    }
}

/// The mode of an object's directories.
const DIRECTORY_MODE: u32 = 0o555;

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

/// A name in the store directory that is not an object: a temporary a writer left
/// (an object being written, or being removed), or something else. `generations gc`
/// removes it; the next writer removes temporaries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Debris {
    pub name: OsString,
    pub why: &'static str,
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
        Ok(format!("{}-{name}", encode(&object_hash(name, &hash_tree(tree)))))
    }

    /// Adds `tree` as `<hash>-<name>`. An object already there is checked as
    /// [`Store::check_object`] checks it (re-hashed against its name, which is `tree`'s
    /// hash; modes, owner): a sound one is kept and nothing is written; a damaged one is
    /// removed and written again.
    pub fn add(&self, name: &str, tree: &Tree) -> Result<String> {
        let object = Store::object_name(name, tree)?;
        if self.contains(&object)? {
            if self.check_object(&object).is_none() {
                return Ok(object);
            }
            self.remove(&object)?;
        }
        let temp = temp_name(OsStr::new(&object));
        write_tree(&self.dir, &temp, tree)?;
        blankslate_sys::failpoint::hit("store-add:written");
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

    /// Every object's name: what is named `<hash>-<name>` (temporaries and other
    /// names are [`Store::debris`]).
    pub fn objects(&self) -> Result<Vec<String>> {
        Ok(self
            .dir
            .entries()?
            .into_iter()
            .filter_map(|(name, _)| name.into_string().ok())
            .filter(|name| is_object_name(name))
            .collect())
    }

    /// Every name in the store directory that is not an object, with why.
    pub fn debris(&self) -> Result<Vec<Debris>> {
        Ok(self
            .dir
            .entries()?
            .into_iter()
            .filter_map(|(name, _)| {
                let why = if is_temp_name(&name) {
                    "a temporary left by a writer that died (an object being written or removed)"
                } else if name.to_str().is_some_and(is_object_name) {
                    return None;
                } else {
                    "not a store object's name"
                };
                Some(Debris { name, why })
            })
            .collect())
    }

    /// Removes an object (for garbage collection, or a damaged one before it is
    /// written again): see [`Store::remove_all`].
    pub fn remove(&self, object: &str) -> Result<()> {
        self.remove_all(&[object])
    }

    /// Removes objects without ever leaving a part of one under its name: each is
    /// renamed to a temporary name, the store directory is fsynced, then the
    /// temporaries are deleted. A crash leaves temporaries, which the next writer
    /// (holding the state lock) removes.
    pub fn remove_all(&self, objects: &[&str]) -> Result<()> {
        if objects.is_empty() {
            return Ok(());
        }
        let mut temporaries = Vec::with_capacity(objects.len());
        for object in objects {
            let temp = temp_name(OsStr::new(object));
            self.dir.rename(object, &temp)?;
            temporaries.push(temp);
        }
        self.dir.sync()?;
        for temp in &temporaries {
            self.dir.remove_tree(temp)?;
        }
        self.dir.sync()?;
        Ok(())
    }

    /// Removes debris (names that are not objects). Only while holding the state
    /// lock: a temporary may be a live writer's otherwise.
    pub fn remove_debris(&self, debris: &[Debris]) -> Result<()> {
        for found in debris {
            self.dir.remove_tree(&found.name)?;
        }
        if !debris.is_empty() {
            self.dir.sync()?;
        }
        Ok(())
    }

    /// Re-hashes every object and reports those whose content no longer matches
    /// their name, or whose modes or owner are not what the store writes.
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
    /// included), or `None` if its content matches its name, every file and directory
    /// has the store's mode for it (read-only; root-only for secrets) and root owns it.
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
        let owner = self.dir.own_meta()?.uid;
        let (root, problem) = read_object(&self.dir, OsStr::new(object), object, owner)?;
        let actual = encode(&object_hash(name, &root));
        if actual != hash {
            return Ok(Some(format!("content hashes to {actual}, not {hash}")));
        }
        Ok(problem)
    }
}

/// Whether `name` is `<hash>-<name>` as [`Store::object_name`] makes it.
fn is_object_name(name: &str) -> bool {
    name.split_once('-').is_some_and(|(hash, rest)| {
        hash.len() == HASH_CHARS && hash.bytes().all(|b| ALPHABET.contains(&b)) && check_object_name(rest).is_ok()
    })
}

fn check_object_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && !name.starts_with('.')
        && name.len() <= 200
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"+-._=".contains(&b));
    if ok { Ok(()) } else { Err(StoreError::BadName(name.to_owned())) }
}

/// The hash of one node of a tree in memory: see [`file_hash`], [`link_hash`] and
/// [`DirHasher`], which an object read back is hashed with too.
fn hash_tree(tree: &Tree) -> blake3::Hash {
    match tree {
        Tree::File { contents, executable, secret } => {
            file_hash(*executable, *secret, contents.len() as u64, &blake3::hash(contents))
        }
        Tree::Symlink(target) => link_hash(target.as_bytes()),
        Tree::Directory(entries) => {
            let mut hasher = DirHasher::new(entries.len());
            for (name, child) in entries {
                hasher.entry(name, &hash_tree(child));
            }
            hasher.finish()
        }
    }
}

/// A file's node: `file`, its flags, its length and the blake3 of its contents.
fn file_hash(executable: bool, secret: bool, length: u64, contents: &blake3::Hash) -> blake3::Hash {
    let mut hasher = blake3::Hasher::new();
    hasher.update(b"file\0");
    // Bit 0: executable; bit 1: secret (so a public file hashes as it always did).
    hasher.update(&[u8::from(executable) | u8::from(secret) << 1]);
    hasher.update(&length.to_le_bytes());
    hasher.update(contents.as_bytes());
    hasher.finalize()
}

/// A symlink's node: `link` and its target.
fn link_hash(target: &[u8]) -> blake3::Hash {
    let mut hasher = blake3::Hasher::new();
    hasher.update(b"link\0");
    push_bytes(&mut hasher, target);
    hasher.finalize()
}

/// A directory's node: `dir`, the entry count, then each entry (fed in name order)
/// as its name and its child's hash. Hashed as the entries come, so that no more
/// than their names is held, however large the tree.
struct DirHasher(blake3::Hasher);

impl DirHasher {
    fn new(entries: usize) -> DirHasher {
        let mut hasher = blake3::Hasher::new();
        hasher.update(b"dir\0");
        hasher.update(&(entries as u64).to_le_bytes());
        DirHasher(hasher)
    }

    fn entry(&mut self, name: &OsStr, child: &blake3::Hash) {
        push_bytes(&mut self.0, name.as_bytes());
        self.0.update(child.as_bytes());
    }

    fn finish(self) -> blake3::Hash {
        self.0.finalize()
    }
}

/// Length-prefixed so that no two different trees serialize alike.
fn push_bytes(hasher: &mut blake3::Hasher, bytes: &[u8]) {
    hasher.update(&(bytes.len() as u64).to_le_bytes());
    hasher.update(bytes);
}

fn object_hash(name: &str, root: &blake3::Hash) -> [u8; 32] {
    let mut hasher = blake3::Hasher::new();
    hasher.update(b"blankslate-store-v1\0");
    push_bytes(&mut hasher, name.as_bytes());
    hasher.update(root.as_bytes());
    *hasher.finalize().as_bytes()
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
        Tree::File { contents, executable, secret } => {
            // Created with its final mode: a secret is never readable by others, not even
            // while it is written.
            dir.create_file(name, contents, file_mode(*executable, *secret))?;
        }
        Tree::Symlink(target) => dir.symlink(name, target)?,
        Tree::Directory(entries) => {
            dir.create_dir(name, 0o755)?;
            let child = dir.open_dir(name)?;
            for (entry, subtree) in entries {
                write_tree(&child, entry, subtree)?;
            }
            child.sync()?;
            child.set_mode(DIRECTORY_MODE)?;
        }
    }
    Ok(())
}

/// Hashes an object as it reads it back, with the first thing found that the store
/// would not have written: a mode other than the store's for that node (a file's read
/// bits say whether it is secret, its owner's execute bit whether it is executable),
/// or an owner other than the store's (`owner`). No file's contents are held: each is
/// hashed through one bounded buffer.
fn read_object(dir: &Dir, name: &OsStr, object: &str, owner: u32) -> Result<(blake3::Hash, Option<String>)> {
    let mut reader = Reader { object, owner, problem: None, buffer: vec![0; READ_CHUNK] };
    let hash = reader.node(dir, name, Path::new(object))?;
    Ok((hash, reader.problem))
}

/// How much of a file is read at a time when an object is hashed.
const READ_CHUNK: usize = 64 << 10;

/// What [`read_object`] carries through the tree.
struct Reader<'a> {
    object: &'a str,
    owner: u32,
    problem: Option<String>,
    buffer: Vec<u8>,
}

impl Reader<'_> {
    fn expect(&mut self, shown: &Path, meta: &Meta, mode: u32) {
        if self.problem.is_some() {
            return;
        }
        if meta.mode != mode {
            self.problem = Some(format!("{} has mode {:04o}, not {mode:04o}", shown.display(), meta.mode));
        } else if meta.uid != self.owner {
            let owner = self.owner;
            self.problem = Some(format!("{} is owned by uid {}, not the store's {owner}", shown.display(), meta.uid));
        }
    }

    fn node(&mut self, dir: &Dir, name: &OsStr, shown: &Path) -> Result<blake3::Hash> {
        let meta = dir.meta(name)?;
        Ok(match meta.kind {
            Kind::File => {
                let (executable, secret) = (meta.mode & 0o100 != 0, meta.mode & 0o004 == 0);
                self.expect(shown, &meta, file_mode(executable, secret));
                let file = dir.open_file(name)?;
                let (contents, length) = self.contents(&file, meta.size).map_err(|source| FsError {
                    op: "read",
                    path: dir.path().join(name),
                    source,
                })?;
                file_hash(executable, secret, length, &contents)
            }
            Kind::Symlink => link_hash(dir.read_link(name)?.as_bytes()),
            Kind::Directory => {
                self.expect(shown, &meta, DIRECTORY_MODE);
                let child = dir.open_dir(name)?;
                let entries = child.entries()?;
                let mut hasher = DirHasher::new(entries.len());
                for (entry, _) in &entries {
                    let hash = self.node(&child, entry, &shown.join(entry))?;
                    hasher.entry(entry, &hash);
                }
                hasher.finish()
            }
            Kind::Other => {
                return Err(StoreError::Unsupported { name: self.object.into(), path: dir.path().join(name) });
            }
        })
    }

    /// The blake3 of a file's contents and their length. Read up to one byte more than
    /// the `lstat` said (no `fstat` of its own per file): enough to see a file that
    /// grew since, which then no longer hashes to its name.
    fn contents(&mut self, file: &File, size: u64) -> io::Result<(blake3::Hash, u64)> {
        let mut hasher = blake3::Hasher::new();
        let mut file = file.take(size.saturating_add(1));
        loop {
            match file.read(&mut self.buffer) {
                Ok(0) => return Ok((hasher.finalize(), hasher.count())),
                Ok(read) => hasher.update(&self.buffer[..read]),
                Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
                Err(error) => return Err(error),
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    /// A file, a link and an executable, all public.
    fn public_entries() -> BTreeMap<OsString, Tree> {
        let mut entries = BTreeMap::new();
        entries.insert(OsString::from("hosts"), Tree::file("127.0.0.1 localhost\n"));
        entries.insert(OsString::from("link"), Tree::Symlink("hosts".into()));
        entries.insert(
            OsString::from("bin"),
            Tree::File { contents: b"#!/bin/sh\n".to_vec(), executable: true, secret: false },
        );
        entries
    }

    /// The public entries and two secrets.
    fn sample() -> Tree {
        let mut entries = public_entries();
        entries.insert(OsString::from("key"), Tree::secret_file("PRIVATE\n"));
        entries.insert(
            OsString::from("sbin"),
            Tree::File { contents: b"#!/bin/sh\n".to_vec(), executable: true, secret: true },
        );
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
            entries.insert("bin".into(), Tree::file("#!/bin/sh\n"));
        }
        assert_ne!(store.add("etc", &other).unwrap(), first, "the executable bit is part of the hash");
        let mut public = sample();
        if let Tree::Directory(entries) = &mut public {
            entries.insert("key".into(), Tree::file("PRIVATE\n"));
        }
        assert_ne!(Store::object_name("etc", &public).unwrap(), first, "so is being secret");
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
        assert_eq!(mode(&dir.join("key")), 0o400, "a secret is root's alone");
        assert_eq!(mode(&dir.join("sbin")), 0o500);
        assert!(store.verify().unwrap().is_empty());
        assert!(store.debris().unwrap().is_empty());
    }

    /// The flag that marks secrets leaves public files' hashes as they were: objects
    /// built before secrets existed keep their names (this one was named by 2ed0730).
    #[test]
    fn public_objects_keep_their_names() {
        assert_eq!(Store::object_name("etc", &Tree::Directory(public_entries())).unwrap(), OLD_NAME);
    }

    const OLD_NAME: &str = "gwadss6jmf5bjvqo5ntrmlpmqoulkzb3-etc";

    /// The length of a file that takes the reader three reads and a part of a fourth.
    const LONG: usize = 3 * 65_536 + 7;
    const _: () = assert!(LONG > 3 * READ_CHUNK && LONG < 4 * READ_CHUNK);

    /// Every kind of node, nested, an empty file and directory, and a long file.
    fn nested() -> Tree {
        let long: Vec<u8> = (0..LONG).map(|i| u8::try_from(i % 251).unwrap()).collect();
        let mut inner = BTreeMap::new();
        inner.insert(OsString::from("long"), Tree::File { contents: long, executable: true, secret: false });
        inner.insert(OsString::from("empty"), Tree::file(""));
        inner.insert(OsString::from("none"), Tree::Directory(BTreeMap::new()));
        inner.insert(OsString::from("up"), Tree::Symlink("../hosts".into()));
        let Tree::Directory(mut entries) = sample() else { unreachable!() };
        entries.insert(OsString::from("inner"), Tree::Directory(inner));
        Tree::Directory(entries)
    }

    /// The object a tree hashes to, in memory and read back from the store, is the one
    /// the in-memory hash of 3f7040f named: reading an object streams it, and its name
    /// stays the same.
    #[test]
    fn an_object_read_back_hashes_to_its_known_name() {
        assert_eq!(Store::object_name("etc", &nested()).unwrap(), NESTED_NAME);
        let (scratch, store) = store();
        assert_eq!(store.add("etc", &nested()).unwrap(), NESTED_NAME);
        assert_eq!(store.check_object(NESTED_NAME), None);
        // A byte changed in the last, partial read, then one byte more: each is seen.
        let long = scratch.path().join("var/lib/blankslate/store").join(NESTED_NAME).join("inner/long");
        let mut contents = std::fs::read(&long).unwrap();
        let rewritten = |contents: &[u8]| {
            std::fs::set_permissions(&long, std::fs::Permissions::from_mode(0o755)).unwrap();
            std::fs::write(&long, contents).unwrap();
            std::fs::set_permissions(&long, std::fs::Permissions::from_mode(0o555)).unwrap();
            store.check_object(NESTED_NAME)
        };
        let damaged = |problem: Option<String>| problem.is_some_and(|p| p.starts_with("content hashes to"));
        contents[LONG - 3] ^= 1;
        assert!(damaged(rewritten(&contents)));
        contents[LONG - 3] ^= 1;
        assert_eq!(rewritten(&contents), None, "as it was written");
        contents.push(0);
        assert!(damaged(rewritten(&contents)));
    }

    const NESTED_NAME: &str = "5qtycqupsbzi6yws4gmugbcu662l5vt3-etc";

    #[test]
    fn verify_reports_edited_and_writable_objects() {
        let (scratch, store) = store();
        let object = store.add("etc", &sample()).unwrap();
        let hosts = scratch.path().join("var/lib/blankslate/store").join(&object).join("hosts");
        std::fs::set_permissions(&hosts, std::fs::Permissions::from_mode(0o644)).unwrap();
        let found = store.verify().unwrap();
        assert_eq!(found.len(), 1);
        assert!(found[0].problem.ends_with("hosts has mode 0644, not 0444"), "{found:?}");
        std::fs::write(&hosts, "tampered").unwrap();
        let found = store.verify().unwrap();
        assert!(found[0].problem.starts_with("content hashes to"), "{found:?}");
        assert_eq!(found[0].problem, store.check_object(&object).unwrap(), "one check, for verify and for boot");
    }

    /// A secret opened to others is no longer the object its name says (the flag is
    /// part of the hash), and neither is one whose mode was widened in place.
    #[test]
    fn a_secret_opened_to_others_is_corrupt() {
        let (scratch, store) = store();
        let object = store.add("etc", &sample()).unwrap();
        let key = scratch.path().join("var/lib/blankslate/store").join(&object).join("key");
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o444)).unwrap();
        let problem = store.check_object(&object).unwrap();
        assert!(problem.starts_with("content hashes to"), "{problem}");
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o440)).unwrap();
        let problem = store.check_object(&object).unwrap();
        assert!(problem.ends_with("key has mode 0440, not 0400"), "{problem}");
    }

    /// Adding an object that is there but damaged (edited, partly deleted, a mode
    /// changed) writes it again; a sound one is left as it is.
    #[test]
    fn adding_a_damaged_object_again_repairs_it() {
        let (scratch, store) = store();
        let object = store.add("etc", &sample()).unwrap();
        let dir = scratch.path().join("var/lib/blankslate/store").join(&object);
        let inode = |p: &Path| std::os::unix::fs::MetadataExt::ino(&std::fs::symlink_metadata(p).unwrap());
        let sound = inode(&dir);
        assert_eq!(store.add("etc", &sample()).unwrap(), object);
        assert_eq!(inode(&dir), sound, "a sound object is not written again");
        let damages: [&dyn Fn(); 3] = [
            &|| {
                std::fs::set_permissions(dir.join("hosts"), std::fs::Permissions::from_mode(0o644)).unwrap();
                std::fs::write(dir.join("hosts"), "tampered").unwrap();
            },
            &|| {
                std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
                std::fs::remove_file(dir.join("link")).unwrap();
            },
            &|| std::fs::set_permissions(dir.join("key"), std::fs::Permissions::from_mode(0o600)).unwrap(),
        ];
        for damage in damages {
            damage();
            assert!(store.check_object(&object).is_some());
            assert_eq!(store.add("etc", &sample()).unwrap(), object);
            assert_eq!(store.check_object(&object), None);
            assert_eq!(std::fs::read(dir.join("hosts")).unwrap(), b"127.0.0.1 localhost\n");
            assert!(store.debris().unwrap().is_empty(), "the damaged copy went: {:?}", store.debris());
        }
    }

    /// Removal renames first: what it leaves behind (here, a removal stopped between
    /// the rename and the delete) is a temporary, never a part of an object.
    #[test]
    fn names_that_are_not_objects_are_debris() {
        let (_scratch, store) = store();
        let object = store.add("etc", &sample()).unwrap();
        let renamed = temp_name(OsStr::new(&object));
        store.dir().rename(&object, &renamed).unwrap();
        store.dir().write_atomic("stray", b"x", 0o644).unwrap();
        store.dir().create_dir_all("UPPER-etc", 0o755).unwrap();
        assert!(store.objects().unwrap().is_empty());
        let debris = store.debris().unwrap();
        let names: Vec<&OsStr> = debris.iter().map(|d| d.name.as_os_str()).collect();
        assert_eq!(names, [renamed.as_os_str(), OsStr::new("UPPER-etc"), OsStr::new("stray")]);
        assert!(debris[0].why.starts_with("a temporary"));
        assert!(store.verify().unwrap().is_empty(), "debris is not an object to verify");
        store.remove_debris(&debris).unwrap();
        assert!(store.dir().entries().unwrap().is_empty());
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
