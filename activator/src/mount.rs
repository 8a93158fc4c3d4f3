//! Mounting through file descriptors (the new mount API): `fsopen`/`fsmount` for new
//! file systems, `open_tree`/`move_mount` for bind mounts. Targets are named as one
//! entry of an open directory, never as a path string.

use std::ffi::OsStr;
use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use blankslate_core::fs::Dir;
use rustix::mount::{
    FsMountFlags, FsOpenFlags, MountAttrFlags, MountFlags, MountPropagationFlags, MoveMountFlags, OpenTreeFlags,
    UnmountFlags,
};

/// A mount operation that failed: what, where, and why.
#[derive(Debug, thiserror::Error)]
#[error("cannot {op} {}: {source}", at.display())]
pub struct MountError {
    pub op: &'static str,
    pub at: PathBuf,
    #[source]
    pub source: io::Error,
}

pub type Result<T> = std::result::Result<T, MountError>;

fn wrap(op: &'static str, at: impl Into<PathBuf>) -> impl FnOnce(rustix::io::Errno) -> MountError {
    let at = at.into();
    move |errno| MountError { op, at, source: errno.into() }
}

/// Attaches a detached mount (from `fsmount` or `open_tree`) on `name` in `dir`.
fn attach(mount: &OwnedFd, dir: &Dir, name: &OsStr, op: &'static str) -> Result<()> {
    rustix::mount::move_mount(mount, "", dir, name, MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH)
        .map_err(wrap(op, dir.path().join(name)))
}

/// Mounts a fresh file system of type `fs_type` on `name` in `dir`, with string
/// options (`size`, `mode`, …) and mount attributes.
pub fn mount_new(
    dir: &Dir,
    name: &str,
    fs_type: &str,
    options: &[(&str, &str)],
    attributes: MountAttrFlags,
) -> Result<()> {
    let at = dir.path().join(name);
    let fs =
        rustix::mount::fsopen(fs_type, FsOpenFlags::FSOPEN_CLOEXEC).map_err(wrap("open a file system for", &at))?;
    for (key, value) in options {
        rustix::mount::fsconfig_set_string(&fs, *key, *value).map_err(wrap("configure the file system for", &at))?;
    }
    rustix::mount::fsconfig_create(&fs).map_err(wrap("create the file system for", &at))?;
    let mount = rustix::mount::fsmount(&fs, FsMountFlags::FSMOUNT_CLOEXEC, attributes).map_err(wrap("mount", &at))?;
    attach(&mount, dir, OsStr::new(name), "attach a mount on")
}

/// Where a bind mount comes from: an open directory, or (for the host's own `/usr`,
/// `/dev`, …) an absolute path outside any root we manage.
#[derive(Debug, Clone, Copy)]
pub enum Source<'a> {
    Dir(&'a Dir),
    HostPath(&'a Path),
}

/// Bind-mounts `source` on `name` in `dir` (recursively: submounts come along),
/// read-only if asked.
pub fn bind(source: Source<'_>, dir: &Dir, name: &str, read_only: bool) -> Result<()> {
    let at = dir.path().join(name);
    let flags = OpenTreeFlags::OPEN_TREE_CLONE | OpenTreeFlags::OPEN_TREE_CLOEXEC | OpenTreeFlags::AT_RECURSIVE;
    let tree = match source {
        Source::Dir(from) => rustix::mount::open_tree(from, "", flags | OpenTreeFlags::AT_EMPTY_PATH),
        Source::HostPath(path) => rustix::mount::open_tree(rustix::fs::CWD, path, flags),
    }
    .map_err(wrap("clone the mount tree for", &at))?;
    attach(&tree, dir, OsStr::new(name), "bind-mount on")?;
    if read_only {
        remount_read_only(&tree, &at)?;
    }
    Ok(())
}

/// Makes an attached bind mount read-only. The mount is reached through its own
/// descriptor (`/proc/self/fd/N`), not through the path it was attached at.
fn remount_read_only(mount: &impl AsFd, at: &Path) -> Result<()> {
    let by_fd = format!("/proc/self/fd/{}", mount.as_fd().as_raw_fd());
    rustix::mount::mount_remount(by_fd.as_str(), MountFlags::BIND | MountFlags::RDONLY, "")
        .map_err(wrap("make read-only", at))
}

/// Stops mount events from propagating between this namespace and the one it was
/// copied from: nothing mounted here can appear on the host.
pub fn make_private() -> Result<()> {
    rustix::mount::mount_change("/", MountPropagationFlags::PRIVATE | MountPropagationFlags::REC)
        .map_err(wrap("make private the mounts under", "/"))
}

/// Makes `new_root` the root of this mount namespace and detaches the old root, so
/// nothing of the host's file system stays reachable except what was bind-mounted.
pub fn pivot_into(new_root: &Dir) -> Result<()> {
    let at = new_root.path().to_path_buf();
    rustix::process::fchdir(new_root).map_err(wrap("enter", &at))?;
    // pivot_root(".", ".") stacks the old root under the new one at "."; detaching
    // "." then drops it (the trick needs no directory for the old root).
    rustix::process::pivot_root(".", ".").map_err(wrap("pivot_root into", &at))?;
    rustix::mount::unmount(".", UnmountFlags::DETACH).map_err(wrap("detach the old root from", &at))?;
    rustix::process::chdir("/").map_err(wrap("enter", "/"))
}
