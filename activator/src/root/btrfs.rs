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
//!     switched                there once that boot switched into its root
//! roots/.root.tmp-<pid>-<n>/  a boot's root being made: renamed into place when whole
//! ```
//!
//! The newest numbered directory is the one booted last. A boot ([`fresh_root`])
//! makes every earlier root read-only, deletes those beyond `keep` (renamed to a
//! temporary name first; the roots of boots that never switched into them before the
//! others, oldest first), then makes the new one under a temporary name and renames
//! it into place; on a full btrfs it deletes more earlier roots until the new one
//! fits. Each step can be repeated: a boot killed anywhere leaves the earlier roots
//! (read-only or not yet), perhaps a temporary, which the next boot deletes, and
//! never a root half-made under a real name.

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

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
    NotBtrfs(PathBuf),
    #[error("{} is not in the mount table", .0.display())]
    NotMounted(PathBuf),
    #[error("the btrfs on {} does not hold the running root {} among its roots: its previous roots are not read", .device.display(), .live.display())]
    NotTheRunningRoots { live: PathBuf, device: PathBuf },
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
    /// Its boot's directory (`roots/NNNNNN`), where [`mark_switched`] records that
    /// the boot got as far as switching into it.
    pub boot_dir: Dir,
    pub name: String,
    /// The previous roots made read-only now (normally the one booted last).
    pub retired: Vec<String>,
    /// The previous roots deleted beyond `keep`: those whose boot never switched into
    /// them first, then the oldest.
    pub pruned: Vec<String>,
    /// The previous roots deleted besides, in the same order, to make room for the
    /// new one on a full btrfs.
    pub dropped: Vec<String>,
    /// What went wrong without stopping the boot (a previous root that could not be
    /// made read-only or deleted, say): a boot goes on and says so; the next boot
    /// tries again.
    pub problems: Vec<BtrfsRootError>,
}

/// The marker a boot leaves in its directory once it switches into its root: a boot
/// that never did (an emergency shell, a power cut in the initramfs) left a root that
/// is pruned before any that did.
pub const SWITCHED: &str = "switched";

/// How often, and how long each time, a boot on a full btrfs waits for the space of
/// a deleted root to be freed before it deletes another.
const CLEANER_WAITS: u32 = 10;
const CLEANER_WAIT: std::time::Duration = std::time::Duration::from_millis(200);

/// The options that mount the btrfs on `device` at its top level (subvolume id 5),
/// where `roots/` is.
pub fn top_level_options(device: &str) -> [(&str, &str); 2] {
    [("source", device), ("subvolid", "5")]
}

/// The btrfs on `device` mounted at its top level, detached (no one else sees it, and
/// it goes with the value), with `attributes`.
pub fn mount_top_level(device: &Path, attributes: MountAttrFlags) -> Result<Detached, MountError> {
    let source = device.to_string_lossy();
    let options = top_level_options(&source).map(|(key, value)| FsOption::Value(key, value));
    Detached::new(device, "btrfs", &options, attributes)
}

/// Makes the root of a new boot in `top` (the btrfs's top level): every earlier root
/// made read-only, the earlier roots beyond `keep` deleted (those never switched into
/// first, then the oldest), then a new empty subvolume with `mode` numbered after
/// them; on a btrfs too full for it, more earlier roots are deleted, in the same
/// order, until it fits or none is left. Only failing to make the new root is an
/// error: the rest is in [`Fresh::problems`].
pub fn fresh_root(top: &Dir, record: &BootRecord, keep: u32, mode: u32) -> Result<Fresh, BtrfsRootError> {
    if !btrfs::is_btrfs(top)? {
        return Err(BtrfsRootError::NotBtrfs(top.path().to_path_buf()));
    }
    let roots = roots_dir(top)?;
    let mut problems: Vec<BtrfsRootError> = remove_unfinished(&roots).into_iter().map(Into::into).collect();

    let earlier = numbered(&roots)?;
    let mut retired = Vec::new();
    for (_, name) in &earlier {
        match retire(&roots, name) {
            Ok(true) => retired.push(name.clone()),
            Ok(false) => {}
            Err(error) => problems.push(error.into()),
        }
    }

    let next = earlier.last().map_or(0, |(number, _)| number + 1);
    let name = format!("{next:06}");
    let mut doomed = prune_order(&roots, &earlier).into_iter();
    let mut pruned = Vec::new();
    for oldest in doomed.by_ref().take(earlier.len().saturating_sub(keep as usize)) {
        match remove_root(&roots, &oldest) {
            Ok(()) => pruned.push(oldest),
            Err(error) => problems.push(error.into()),
        }
    }
    let mut dropped = Vec::new();
    let mut waited = 0;
    let (boot_dir, root) = loop {
        let error = match make_root(&roots, &name, record, mode, &mut problems) {
            Ok(new_root) => break new_root,
            Err(error) => error,
        };
        if error.source.raw_os_error() != Some(rustix::io::Errno::NOSPC.raw_os_error()) {
            return Err(error.into());
        }
        // The space of a deleted subvolume is freed in the background by the btrfs's
        // cleaner, which a btrfs sync wakes (else it may be half a minute): waited for
        // a little before more is deleted.
        if !dropped.is_empty() && waited < CLEANER_WAITS {
            waited += 1;
            std::thread::sleep(CLEANER_WAIT);
        } else {
            let Some(oldest) = doomed.next() else { return Err(error.into()) };
            match remove_root(&roots, &oldest) {
                Ok(()) => dropped.push(oldest),
                Err(error) => problems.push(error.into()),
            }
            waited = 0;
        }
        if let Err(error) = btrfs::sync(&roots) {
            problems.push(error.into());
        }
    };
    if let Err(error) = roots.sync() {
        problems.push(error.into());
    }
    Ok(Fresh { root, boot_dir, name, retired, pruned, dropped, problems })
}

/// Records in `boot_dir` ([`Fresh::boot_dir`]) that its boot switched into its root.
pub fn mark_switched(boot_dir: &Dir) -> Result<(), FsError> {
    boot_dir.write_atomic(SWITCHED, b"", 0o600)?;
    boot_dir.sync()
}

/// `roots/` in `top`, made if missing, and owned by root with mode 0700 whatever it
/// was: the roots in it hold every file of the boots before.
fn roots_dir(top: &Dir) -> Result<Dir, FsError> {
    top.create_dir(ROOTS_DIR, 0o700)?;
    let roots = top.open_dir(ROOTS_DIR)?;
    let meta = roots.own_meta()?;
    if (meta.uid, meta.gid) != (0, 0) {
        roots.set_owner(0, 0)?;
    }
    if meta.mode & 0o7777 != 0o700 {
        roots.set_mode(0o700)?;
    }
    Ok(roots)
}

/// Makes the earlier root `name` read-only; whether it was not yet.
fn retire(roots: &Dir, name: &str) -> Result<bool, FsError> {
    let root = match roots.open_dir(Path::new(name).join(SUBVOLUME)) {
        Ok(root) => root,
        // A directory a killed prune or boot left without its subvolume.
        Err(error) if error.is_not_found() => return Ok(false),
        Err(error) => return Err(error),
    };
    if btrfs::is_read_only(&root)? {
        return Ok(false);
    }
    btrfs::set_read_only(&root, true)?;
    Ok(true)
}

/// `earlier` in the order they are deleted in: those whose boot never switched into
/// them (no [`SWITCHED`] beside them) first, then the others, oldest first in each.
fn prune_order(roots: &Dir, earlier: &[(u64, String)]) -> Vec<String> {
    let switched = |name: &str| roots.open_dir(name).is_ok_and(|dir| dir.meta(SWITCHED).is_ok());
    let (good, failed): (Vec<&String>, Vec<&String>) = earlier.iter().map(|(_, name)| name).partition(|n| switched(n));
    failed.into_iter().chain(good).cloned().collect()
}

/// Deletes the earlier root `name`, renamed first: a boot killed while deleting
/// leaves a temporary, which is never mistaken for a root and which the next boot
/// deletes.
fn remove_root(roots: &Dir, name: &str) -> Result<(), FsError> {
    let doomed = temp_name(OsStr::new(name));
    roots.rename(name, &doomed)?;
    remove_boot_dir(roots, &doomed)
}

/// Makes the root `name` under a temporary name and renames it into place when
/// whole: its directory and the subvolume in it, both opened. What a failure left
/// is deleted (or, if that fails too, put in `problems` for the next boot).
fn make_root(
    roots: &Dir,
    name: &str,
    record: &BootRecord,
    mode: u32,
    problems: &mut Vec<BtrfsRootError>,
) -> Result<(Dir, Dir), FsError> {
    let temp = temp_name(OsStr::new(SUBVOLUME));
    if !roots.create_dir(&temp, 0o700)? {
        return Err(FsError {
            op: "make the new root's directory",
            path: roots.path().join(&temp),
            source: std::io::ErrorKind::AlreadyExists.into(),
        });
    }
    let attempt = (|| {
        let boot_dir = roots.open_dir(&temp)?;
        btrfs::create_subvolume(&boot_dir, SUBVOLUME)?;
        let root = boot_dir.open_dir(SUBVOLUME)?;
        root.set_mode(mode)?;
        boot_dir.write_atomic(RECORD, &serde_json::to_vec_pretty(record).expect("a record serializes"), 0o600)?;
        boot_dir.sync()?;
        roots.rename(&temp, name)?;
        Ok((boot_dir, root))
    })();
    if attempt.is_err() {
        if let Err(error) = remove_boot_dir(roots, &temp) {
            problems.push(error.into());
        }
    }
    attempt
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

/// The previous roots of the running root `live`, if it is a btrfs root: the btrfs
/// is the one `live` is mounted from (never one found by its label, which anyone who
/// can plug in a disk can copy), and it is refused unless `live` is one of the roots
/// in it. `None` when `live` is not on a btrfs (a tmpfs root).
pub fn previous_roots(live: &Dir) -> Result<Option<PreviousRoots>, BtrfsRootError> {
    if !btrfs::is_btrfs(live)? {
        return Ok(None);
    }
    let id = live.own_mount_id()?;
    let Some((fs_type, source)) = blankslate_sys::mount::type_and_source(&blankslate_sys::mount::read_mountinfo(), id)
    else {
        return Err(BtrfsRootError::NotMounted(live.path().to_path_buf()));
    };
    if fs_type != b"btrfs" {
        return Ok(None);
    }
    let device = std::path::PathBuf::from(OsStr::from_bytes(&source));
    let top = mount_top_level(&device, MountAttrFlags::MOUNT_ATTR_RDONLY)?;
    let roots = match top.dir().open_dir(ROOTS_DIR) {
        Ok(roots) => kept_roots(&roots)?,
        Err(error) if error.is_not_found() => Vec::new(),
        Err(error) => return Err(error.into()),
    };
    let running = live.own_meta()?.identity();
    let mut previous = Vec::with_capacity(roots.len());
    let mut found = false;
    for kept in roots {
        if kept.root.own_meta()?.identity() == running {
            found = true;
        } else {
            previous.push(kept);
        }
    }
    if !found {
        return Err(BtrfsRootError::NotTheRunningRoots { live: live.path().to_path_buf(), device });
    }
    Ok(Some(PreviousRoots { roots: previous, _top: top }))
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
/// not, subvolumes nested in it too), then the rest.
fn remove_boot_dir(roots: &Dir, name: &OsStr) -> Result<(), FsError> {
    let dir = roots.open_dir(name)?;
    match btrfs::is_subvolume(&dir, SUBVOLUME) {
        Ok(true) => btrfs::delete_subvolume_tree(&dir, SUBVOLUME)?,
        Ok(false) => {}
        Err(error) if error.is_not_found() => {}
        Err(error) => return Err(error),
    }
    roots.remove_tree(name)
}
