//! The ephemeral root: a fresh tmpfs with the declared size and mode, with the
//! blankslate state (store and profiles) mounted read-only inside it. Boot and the
//! sandbox both start here.

use std::path::Path;

use blankslate_core::decl::RootSettings;
use blankslate_core::fs::{Dir, FsError};
use rustix::mount::{MountAttrFlags, MountFlags};

use blankslate_core::mount::{self, MountError, Source};

#[derive(Debug, thiserror::Error)]
pub enum RootError {
    #[error(transparent)]
    Mount(#[from] MountError),
    #[error(transparent)]
    Fs(#[from] FsError),
}

/// Mounts the ephemeral root on `name` in `parent` and brings `state` (the
/// directory holding `store/` and `profiles/`) in read-only at `state_dir` (as seen
/// from inside the new root). Returns the new root, opened.
pub fn mount_root(
    parent: &Dir,
    name: &str,
    settings: &RootSettings,
    state: &Dir,
    state_dir: &Path,
) -> Result<Dir, RootError> {
    let mode = format!("{:o}", settings.mode.bits());
    let options = [("size", settings.size.as_str()), ("mode", mode.as_str())];
    mount::mount_new(parent, name, "tmpfs", &options, MountAttrFlags::MOUNT_ATTR_NODEV)?;
    let root = parent.open_dir(name)?;
    bring_in_state(&root, state, state_dir)?;
    Ok(root)
}

/// Whether `dir` is the root of a tmpfs (as systemd's `root=tmpfs` mounts `/sysroot`).
pub fn is_tmpfs(dir: &Dir) -> Result<bool, RootError> {
    const TMPFS_MAGIC: rustix::fs::FsWord = 0x0102_1994;
    let info = rustix::fs::fstatfs(dir).map_err(|e| FsError {
        op: "read the file system type of",
        path: dir.path().to_path_buf(),
        source: e.into(),
    })?;
    Ok(info.f_type == TMPFS_MAGIC)
}

/// Binds `state` (the directory holding `store/` and `profiles/`) read-only at
/// `state_dir` inside `root`.
pub fn bring_in_state(root: &Dir, state: &Dir, state_dir: &Path) -> Result<(), RootError> {
    let relative = state_dir.strip_prefix("/").unwrap_or(state_dir);
    let (holder, last) = match (relative.parent(), relative.file_name()) {
        (Some(up), Some(last)) if !up.as_os_str().is_empty() => (root.create_dir_all(up, 0o755)?, last),
        (_, Some(last)) => (root.try_clone()?, last),
        _ => return Ok(()),
    };
    holder.create_dir(last, 0o755)?;
    mount::bind(Source::Dir(state), &holder, &last.to_string_lossy(), MountFlags::RDONLY)?;
    Ok(())
}
