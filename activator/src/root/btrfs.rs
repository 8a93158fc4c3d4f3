//! A root on btrfs, as "erase your darlings" keeps one: `/` is a subvolume made empty
//! at every boot, and the roots of the boots before are kept read-only, so that what
//! a boot erased (even after a power cut, when no shutdown ran) can be looked at and
//! brought back. On the btrfs's top level:
//!
//! ```text
//! roots/                      root 0700
//! roots/000008/               one boot: a directory, numbered in boot order
//!     root/                   the subvolume that boot ran as `/` (read-only once retired)
//!     boot.json               when it booted, which generation, its boot id
//! roots/.root.tmp-<pid>-<n>/  a boot's root being made: renamed into place when whole
//! ```
//!
//! The newest numbered directory is the one booted last. A boot ([`fresh_root`])
//! makes every earlier root read-only, makes the new one under a temporary name and
//! renames it into place, then deletes the oldest beyond `keep` (renamed to a
//! temporary name first). Each step can be repeated: a boot killed anywhere leaves
//! the earlier roots (read-only or not yet), perhaps a temporary, which the next
//! boot deletes, and never a root half-made under a real name.

use std::ffi::{OsStr, OsString};

use blankslate_decl::BtrfsRoot;
use blankslate_sys::btrfs;
use blankslate_sys::fs::{Dir, FsError, Kind, is_temp_name, temp_name};
use blankslate_sys::mount::{Detached, FsOption, MountAttrFlags, MountError};
use serde::{Deserialize, Serialize};

/// The directory on the btrfs's top level that holds the roots.
pub const ROOTS_DIR: &str = "roots";
/// The subvolume in each boot's directory.
const SUBVOLUME: &str = "root";
/// The boot's record beside it.
const RECORD: &str = "boot.json";

#[derive(Debug, thiserror::Error)]
pub enum BtrfsRootError {
    #[error(transparent)]
    Fs(#[from] FsError),
    #[error(transparent)]
    Mount(#[from] MountError),
    #[error("{} is not on a btrfs: a btrfs root's `device` must hold a btrfs", .0.display())]
    NotBtrfs(std::path::PathBuf),
    #[error("the btrfs root's device {0} is not there")]
    NoDevice(blankslate_decl::Device),
}

/// What boot records of itself beside its root.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BootRecord {
    /// Seconds since the epoch, as the clock said at boot.
    pub booted: u64,
    pub generation: Option<u32>,
    /// The kernel's boot id, as `/proc/sys/kernel/random/boot_id` has it.
    pub boot_id: String,
}

/// One boot's root in `roots/`.
#[derive(Debug)]
pub struct KeptRoot {
    /// Its directory's name (`000008`).
    pub name: String,
    /// `None` when `boot.json` is missing or unreadable (a boot killed between the
    /// two, or an older layout): the root is listed all the same.
    pub record: Option<BootRecord>,
    /// The subvolume, opened.
    pub root: Dir,
}

/// What [`fresh_root`] did.
#[derive(Debug)]
pub struct Fresh {
    /// The new, empty root, opened.
    pub root: Dir,
    pub name: String,
    /// The previous roots made read-only now (normally the one booted last).
    pub retired: Vec<String>,
    /// The previous roots deleted, oldest first.
    pub pruned: Vec<String>,
    /// What could not be deleted (a subvolume nested in it, say): a boot goes on and
    /// says so; the next boot tries again.
    pub left: Vec<FsError>,
}

/// Makes the root of a new boot in `top` (the btrfs's top level): every earlier root
/// made read-only, a new empty subvolume with `mode` numbered after them, then the
/// oldest earlier roots deleted until `keep` are left.
pub fn fresh_root(top: &Dir, record: &BootRecord, keep: u32, mode: u32) -> Result<Fresh, BtrfsRootError> {
    if !btrfs::is_btrfs(top)? {
        return Err(BtrfsRootError::NotBtrfs(top.path().to_path_buf()));
    }
    top.create_dir(ROOTS_DIR, 0o700)?;
    let roots = top.open_dir(ROOTS_DIR)?;
    let mut left = remove_unfinished(&roots);

    let earlier = numbered(&roots)?;
    let mut retired = Vec::new();
    for (_, name) in &earlier {
        let root = roots.open_dir(std::path::Path::new(name).join(SUBVOLUME));
        match root {
            Ok(root) if !btrfs::is_read_only(&root)? => {
                btrfs::set_read_only(&root)?;
                retired.push(name.clone());
            }
            Ok(_) => {}
            // A directory a killed prune or boot left without its subvolume.
            Err(error) if error.is_not_found() => {}
            Err(error) => return Err(error.into()),
        }
    }

    let next = earlier.last().map_or(0, |(number, _)| number + 1);
    let name = format!("{next:06}");
    let temp = temp_name(OsStr::new(SUBVOLUME));
    roots.create_dir(&temp, 0o700)?;
    let boot_dir = roots.open_dir(&temp)?;
    btrfs::create_subvolume(&boot_dir, SUBVOLUME)?;
    let root = boot_dir.open_dir(SUBVOLUME)?;
    root.set_mode(mode)?;
    boot_dir.write_atomic(RECORD, &serde_json::to_vec_pretty(record).expect("a record serializes"), 0o600)?;
    boot_dir.sync()?;
    roots.rename(&temp, &name)?;
    roots.sync()?;

    let surplus = earlier.len().saturating_sub(keep as usize);
    let mut pruned = Vec::new();
    for (_, oldest) in &earlier[..surplus] {
        // Renamed first: a boot killed while deleting leaves a temporary, which is
        // never mistaken for a root and which the next boot deletes.
        let doomed = temp_name(OsStr::new(oldest));
        roots.rename(oldest, &doomed)?;
        match remove_boot_dir(&roots, &doomed) {
            Ok(()) => pruned.push(oldest.clone()),
            Err(error) => left.push(error),
        }
    }
    roots.sync()?;
    Ok(Fresh { root, name, retired, pruned, left })
}

/// The roots in `roots/`, oldest first, each opened.
pub fn kept_roots(roots: &Dir) -> Result<Vec<KeptRoot>, FsError> {
    let mut found = Vec::new();
    for (_, name) in numbered(roots)? {
        let dir = roots.open_dir(&name)?;
        let root = match dir.open_dir(SUBVOLUME) {
            Ok(root) => root,
            Err(error) if error.is_not_found() => continue,
            Err(error) => return Err(error),
        };
        let record = dir.read(RECORD).ok().and_then(|text| serde_json::from_slice(&text).ok());
        found.push(KeptRoot { name, record, root });
    }
    Ok(found)
}

/// The previous roots of a running btrfs root, read-only: the btrfs's top level
/// mounted (detached: no one else sees it, and it goes with this value) read-only.
#[derive(Debug)]
pub struct PreviousRoots {
    /// Oldest first; the running root is not among them.
    pub roots: Vec<KeptRoot>,
    _top: Detached,
}

/// The previous roots of the btrfs root `spec` declares, `live` being the running
/// root (left out of them, as the same subvolume).
pub fn previous_roots(spec: &BtrfsRoot, live: &Dir) -> Result<PreviousRoots, BtrfsRootError> {
    let device = crate::boot::device::wait_for(&spec.device, std::time::Duration::ZERO)
        .ok_or_else(|| BtrfsRootError::NoDevice(spec.device.clone()))?;
    let source = device.to_string_lossy();
    let options = [FsOption::Value("source", source.as_ref()), FsOption::Value("subvolid", "5")];
    let top = Detached::new(&device, "btrfs", &options, MountAttrFlags::MOUNT_ATTR_RDONLY)?;
    let roots = match top.dir().open_dir(ROOTS_DIR) {
        Ok(roots) => kept_roots(&roots)?,
        Err(error) if error.is_not_found() => Vec::new(),
        Err(error) => return Err(error.into()),
    };
    let running = live.own_meta()?;
    let mut previous = Vec::with_capacity(roots.len());
    for kept in roots {
        let meta = kept.root.own_meta()?;
        if (meta.dev, meta.ino) != (running.dev, running.ino) {
            previous.push(kept);
        }
    }
    Ok(PreviousRoots { roots: previous, _top: top })
}

/// The numbered directories of `roots/`, by number.
fn numbered(roots: &Dir) -> Result<Vec<(u64, String)>, FsError> {
    let mut found: Vec<(u64, String)> = roots
        .entries()?
        .into_iter()
        .filter(|(_, kind)| *kind == Kind::Directory)
        .filter_map(|(name, _)| {
            let name = name.into_string().ok()?;
            let number = name.parse().ok().filter(|_| name.bytes().all(|b| b.is_ascii_digit()))?;
            Some((number, name))
        })
        .collect();
    found.sort();
    Ok(found)
}

/// Deletes what killed boots left under temporary names; what cannot be deleted is
/// returned, never a reason not to boot.
fn remove_unfinished(roots: &Dir) -> Vec<FsError> {
    let names: Vec<OsString> = match roots.entries() {
        Ok(entries) => entries.into_iter().map(|(name, _)| name).filter(|name| is_temp_name(name)).collect(),
        Err(error) => return vec![error],
    };
    names.iter().filter_map(|name| remove_boot_dir(roots, name).err()).collect()
}

/// Deletes one boot's directory: its subvolume (whatever it holds, read-only or
/// not), then the rest.
fn remove_boot_dir(roots: &Dir, name: &OsStr) -> Result<(), FsError> {
    let dir = roots.open_dir(name)?;
    match btrfs::is_subvolume(&dir, SUBVOLUME) {
        Ok(true) => btrfs::delete_subvolume(&dir, SUBVOLUME)?,
        Ok(false) => {}
        Err(error) if error.is_not_found() => {}
        Err(error) => return Err(error),
    }
    roots.remove_tree(name)
}
