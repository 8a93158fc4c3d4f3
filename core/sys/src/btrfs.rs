//! btrfs subvolumes through the directory that holds them: made, deleted, made
//! read-only. The ioctls themselves are in [`crate::raw`]; these give their errors
//! the path they were about.

use std::ffi::OsStr;
use std::os::fd::AsFd;

use crate::fs::{Dir, FsError};

/// `BTRFS_SUPER_MAGIC`, the `f_type` `statfs` gives for a btrfs.
const BTRFS_MAGIC: rustix::fs::FsWord = 0x9123_683e;
/// The inode number of every subvolume's top directory (`BTRFS_FIRST_FREE_OBJECTID`).
const SUBVOLUME_INODE: u64 = 256;

type Result<T> = std::result::Result<T, FsError>;

fn failed(op: &'static str, dir: &Dir, name: &OsStr) -> impl FnOnce(std::io::Error) -> FsError {
    let path = dir.path().join(name);
    move |source| FsError { op, path, source }
}

/// Whether `dir` is on a btrfs.
pub fn is_btrfs(dir: &Dir) -> Result<bool> {
    Ok(dir.file_system_type()? == BTRFS_MAGIC)
}

/// Makes the empty subvolume `name` in `dir` (mode 0755, owned by root).
pub fn create_subvolume(dir: &Dir, name: impl AsRef<OsStr>) -> Result<()> {
    let name = name.as_ref();
    crate::raw::btrfs_create_subvolume(dir.as_fd(), name).map_err(failed("create the btrfs subvolume", dir, name))
}

/// Deletes the subvolume `name` in `dir` with everything in it, read-only or not.
pub fn delete_subvolume(dir: &Dir, name: impl AsRef<OsStr>) -> Result<()> {
    let name = name.as_ref();
    crate::raw::btrfs_delete_subvolume(dir.as_fd(), name).map_err(failed("delete the btrfs subvolume", dir, name))
}

/// Whether `name` in `dir` is the top directory of a subvolume (on btrfs).
pub fn is_subvolume(dir: &Dir, name: impl AsRef<OsStr>) -> Result<bool> {
    let meta = dir.meta(name)?;
    Ok(meta.kind == crate::fs::Kind::Directory && meta.ino == SUBVOLUME_INODE)
}

/// Makes the subvolume whose top directory `subvolume` is read-only, or writable again.
pub fn set_read_only(subvolume: &Dir, read_only: bool) -> Result<()> {
    let op = if read_only { "make read-only" } else { "make writable" };
    crate::raw::btrfs_set_read_only(subvolume.as_fd(), read_only).map_err(failed(op, subvolume, OsStr::new("")))
}

/// Commits the btrfs `dir` is on and starts freeing the space of the subvolumes
/// deleted (which a plain sync leaves for later).
pub fn sync(dir: &Dir) -> Result<()> {
    crate::raw::btrfs_sync(dir.as_fd()).map_err(failed("sync the btrfs of", dir, OsStr::new("")))
}

/// Deletes the subvolume `name` in `dir` and every subvolume nested in it, however
/// deep (anyone may make one in a directory they can write, and a subvolume with
/// another in it cannot be deleted: `ENOTEMPTY`). The read-only flags are cleared
/// first, the nested subvolumes (directories with the subvolume inode number on a
/// device of their own) found without following a link, and deleted deepest first.
pub fn delete_subvolume_tree(dir: &Dir, name: impl AsRef<OsStr>) -> Result<()> {
    let name = name.as_ref();
    match delete_subvolume(dir, name) {
        Err(error) if error.source.raw_os_error() == Some(rustix::io::Errno::NOTEMPTY.raw_os_error()) => {}
        done => return done,
    }
    let top = dir.open_dir(name)?;
    set_read_only(&top, false)?;
    for nested in nested_subvolumes(&top)? {
        let (parent, last) = match (nested.parent(), nested.file_name()) {
            (Some(up), Some(last)) if !up.as_os_str().is_empty() => (top.open_dir(up)?, last),
            (_, Some(last)) => (top.try_clone()?, last),
            _ => continue,
        };
        delete_subvolume(&parent, last)?;
    }
    delete_subvolume(dir, name)
}

/// The subvolumes nested in the subvolume `top`, as paths relative to it, deepest
/// first (a parent's read-only flag is cleared before its children are found, so
/// that deleting them can change it).
fn nested_subvolumes(top: &Dir) -> Result<Vec<std::path::PathBuf>> {
    let mut found = Vec::new();
    let mut pending = vec![(std::path::PathBuf::new(), top.own_meta()?.dev)];
    while let Some((path, dev)) = pending.pop() {
        let dir = if path.as_os_str().is_empty() { top.try_clone()? } else { top.open_dir(&path)? };
        for (entry, kind) in dir.entries()? {
            if kind != crate::fs::Kind::Directory {
                continue;
            }
            let meta = dir.meta(&entry)?;
            let inner = path.join(&entry);
            if meta.dev == dev {
                pending.push((inner, dev));
            } else if meta.ino == SUBVOLUME_INODE {
                set_read_only(&dir.open_dir(&entry)?, false)?;
                found.push(inner.clone());
                pending.push((inner, meta.dev));
            }
        }
    }
    found.sort_by_key(|path| std::cmp::Reverse(path.components().count()));
    Ok(found)
}

/// Whether the subvolume whose top directory `subvolume` is is read-only.
pub fn is_read_only(subvolume: &Dir) -> Result<bool> {
    crate::raw::btrfs_is_read_only(subvolume.as_fd()).map_err(failed("read the flags of", subvolume, OsStr::new("")))
}
