//! The ephemeral root: a fresh tmpfs with the declared size and mode (or, with
//! `kind = "btrfs"`, a fresh btrfs subvolume: `btrfs`), with the blankslate state
//! (store and profiles) mounted read-only inside it. Boot and the sandbox both start
//! here.

pub mod btrfs;

use std::path::Path;

use blankslate_decl::RootSettings;
use blankslate_sys::fs::{Dir, FsError};
use rustix::mount::{MountAttrFlags, MountFlags};

use blankslate_sys::mount::{self, MountError, Source};

#[derive(Debug, thiserror::Error)]
pub enum RootError {
    #[error(transparent)]
    Mount(#[from] MountError),
    #[error(transparent)]
    Fs(#[from] FsError),
    #[error(transparent)]
    Btrfs(#[from] btrfs::BtrfsRootError),
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
    let root = mount_tmpfs(parent, name, settings)?;
    bring_in_state(&root, state, state_dir)?;
    Ok(root)
}

/// Mounts the ephemeral root's tmpfs on `name` in `parent`, and opens it.
pub fn mount_tmpfs(parent: &Dir, name: &str, settings: &RootSettings) -> Result<Dir, RootError> {
    let mode = format!("{:o}", settings.mode.bits());
    let options = [("size", settings.size.as_str()), ("mode", mode.as_str())];
    mount::mount_new(parent, name, "tmpfs", &options, MountAttrFlags::MOUNT_ATTR_NODEV)?;
    Ok(parent.open_dir(name)?)
}

/// Where [`mount_btrfs_root`] mounts the btrfs's top level for the moment it works
/// on it, beside the new root.
const BTRFS_TOP: &str = "btrfs-top";

/// Mounts the ephemeral root on `name` in `parent` from the btrfs on `device`: its
/// top level mounted on `btrfs-top` in `parent` only while [`btrfs::fresh_root`]
/// makes the new subvolume (and retires and prunes the earlier ones), which is then
/// bound on `name` (nodev, as the tmpfs is). Returns the new root, opened, and what
/// was done.
pub fn mount_btrfs_root(
    parent: &Dir,
    name: &str,
    device: &Path,
    spec: &blankslate_decl::BtrfsRoot,
    mode: u32,
    record: &btrfs::BootRecord,
) -> Result<(Dir, btrfs::Fresh), RootError> {
    parent.create_dir(BTRFS_TOP, 0o700)?;
    let source = device.to_string_lossy();
    let options = btrfs::top_level_options(&source);
    mount::mount_new(parent, BTRFS_TOP, "btrfs", &options, MountAttrFlags::MOUNT_ATTR_NODEV)?;
    let fresh = parent.open_dir(BTRFS_TOP).map_err(RootError::from).and_then(|top| {
        let fresh = btrfs::fresh_root(&top, record, spec.keep, mode)?;
        mount::bind(Source::Dir(&fresh.root), parent, name, MountFlags::NODEV)?;
        Ok(fresh)
    });
    // The top level is not left mounted, whatever happened: nothing in the new root
    // sees it, and the previous roots are reached again by mounting it afresh. Left
    // mounted, it is in no one's way: said, not a reason not to boot.
    let unmounted = mount::unmount(parent, BTRFS_TOP);
    let mut fresh = fresh?;
    if let Err(error) = unmounted {
        fresh.problems.push(error.into());
    }
    Ok((parent.open_dir(name)?, fresh))
}

/// Whether `dir` is the root of a tmpfs (as systemd's `root=tmpfs` mounts `/sysroot`).
pub fn is_tmpfs(dir: &Dir) -> Result<bool, RootError> {
    const TMPFS_MAGIC: rustix::fs::FsWord = 0x0102_1994;
    Ok(dir.file_system_type()? == TMPFS_MAGIC)
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

/// The top-level names a merged-`/usr` system keeps only as links into `/usr`.
const MERGED_USR: [&str; 6] = ["bin", "sbin", "lib", "lib32", "lib64", "libx32"];

/// Links `/bin -> usr/bin` (and `sbin`, `lib*`) for each such directory `/usr` has and
/// the root lacks, as systemd does when it switches into a root: a distribution with
/// a merged `/usr` (Debian, Fedora, Arch) finds its init and its loader through them,
/// and a persisted `/usr` brings only `/usr`. A name the root already holds (declared,
/// or a directory a test put there) is left alone. Returns the links made.
pub fn link_merged_usr(root: &Dir) -> Result<Vec<&'static str>, RootError> {
    let usr = match root.open_dir("usr") {
        Ok(usr) => usr,
        Err(error) if error.is_not_found() => return Ok(Vec::new()),
        Err(error) => return Err(error.into()),
    };
    let mut linked = Vec::new();
    for name in MERGED_USR {
        let in_usr = usr.meta(name).is_ok_and(|m| m.kind == blankslate_sys::fs::Kind::Directory);
        if in_usr && root.meta(name).is_err_and(|e| e.is_not_found()) {
            root.symlink(name, format!("usr/{name}"))?;
            linked.push(name);
        }
    }
    Ok(linked)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merged_usr_links_only_what_usr_has_and_the_root_lacks() {
        let scratch = tempfile::tempdir().unwrap();
        for dir in ["usr/bin", "usr/sbin", "usr/lib", "usr/lib64", "lib"] {
            std::fs::create_dir_all(scratch.path().join(dir)).unwrap();
        }
        let root = Dir::open_root(scratch.path()).unwrap();
        assert_eq!(link_merged_usr(&root).unwrap(), ["bin", "sbin", "lib64"]);
        assert_eq!(std::fs::read_link(scratch.path().join("bin")).unwrap(), Path::new("usr/bin"));
        assert!(std::fs::symlink_metadata(scratch.path().join("lib")).unwrap().is_dir(), "an existing /lib stays");
        assert!(!scratch.path().join("lib32").exists());
        assert_eq!(link_merged_usr(&root).unwrap(), Vec::<&str>::new(), "a second run changes nothing");
    }

    #[test]
    fn no_usr_no_links() {
        let scratch = tempfile::tempdir().unwrap();
        assert!(link_merged_usr(&Dir::open_root(scratch.path()).unwrap()).unwrap().is_empty());
    }
}
