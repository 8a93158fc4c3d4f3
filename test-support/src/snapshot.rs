//! A map of a directory tree's entries, for comparing a tree before and after an
//! operation: per relative path, what a program could tell apart (kind, mode, owner,
//! link target, contents). Read with std only, independently of the code under test.

use std::collections::BTreeMap;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

/// One entry of a tree; `C` is how a file's contents are kept (bytes, or text when a
/// test compares them with strings).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Node<C = Vec<u8>> {
    /// A directory: permission bits and owner.
    Directory {
        /// The permission bits (`mode & 0o7777`).
        mode: u32,
        /// The owning user.
        uid: u32,
        /// The owning group.
        gid: u32,
    },
    /// A symbolic link, by target.
    Link(String),
    /// Anything else, read as a file: contents, permission bits and owner.
    File {
        /// What reading it gives.
        contents: C,
        /// The permission bits (`mode & 0o7777`).
        mode: u32,
        /// The owning user.
        uid: u32,
        /// The owning group.
        gid: u32,
    },
}

/// Every entry below `dir` (not `dir` itself), by path relative to it with `/`
/// between names; a missing `dir` is an empty tree.
pub fn tree(dir: &Path) -> BTreeMap<String, Node> {
    tree_with(dir, |bytes| bytes)
}

/// [`tree`] with file contents as text (invalid UTF-8 replaced).
pub fn text_tree(dir: &Path) -> BTreeMap<String, Node<String>> {
    tree_with(dir, |bytes| String::from_utf8_lossy(&bytes).into_owned())
}

fn tree_with<C>(dir: &Path, contents: fn(Vec<u8>) -> C) -> BTreeMap<String, Node<C>> {
    fn walk<C>(dir: &Path, prefix: &str, contents: fn(Vec<u8>) -> C, out: &mut BTreeMap<String, Node<C>>) {
        let Ok(listing) = std::fs::read_dir(dir) else { return };
        for entry in listing {
            let entry = entry.unwrap();
            let name = entry.file_name().to_string_lossy().into_owned();
            let key = if prefix.is_empty() { name } else { format!("{prefix}/{name}") };
            let meta = std::fs::symlink_metadata(entry.path()).unwrap();
            let mode = meta.permissions().mode() & 0o7777;
            let node = if meta.file_type().is_symlink() {
                Node::Link(std::fs::read_link(entry.path()).unwrap().to_string_lossy().into_owned())
            } else if meta.is_dir() {
                walk(&entry.path(), &key, contents, out);
                Node::Directory { mode, uid: meta.uid(), gid: meta.gid() }
            } else {
                let read = contents(std::fs::read(entry.path()).unwrap());
                Node::File { contents: read, mode, uid: meta.uid(), gid: meta.gid() }
            };
            out.insert(key, node);
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, "", contents, &mut out);
    out
}
