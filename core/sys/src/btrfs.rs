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
    let info = rustix::fs::fstatfs(dir).map_err(|e| FsError {
        op: "read the file system type of",
        path: dir.path().to_path_buf(),
        source: e.into(),
    })?;
    Ok(info.f_type == BTRFS_MAGIC)
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

/// Makes the subvolume whose top directory `subvolume` is read-only.
pub fn set_read_only(subvolume: &Dir) -> Result<()> {
    crate::raw::btrfs_set_read_only(subvolume.as_fd()).map_err(failed("make read-only", subvolume, OsStr::new("")))
}

/// Whether the subvolume whose top directory `subvolume` is is read-only.
pub fn is_read_only(subvolume: &Dir) -> Result<bool> {
    crate::raw::btrfs_is_read_only(subvolume.as_fd()).map_err(failed("read the flags of", subvolume, OsStr::new("")))
}
