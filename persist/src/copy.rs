//! Files declared `how = "copy"`: a regular file of the root's own, copied from the
//! volume at activation and written back to it when it changes.
//!
//! This is for files that programs replace by writing a new file and renaming it over
//! the old one: `passwd`, `useradd` and `vipw` do so with `/etc/shadow` and its
//! siblings. A bind mount makes that `rename()` fail (EBUSY); a symlink is replaced
//! by the program's new regular file, which the volume never sees. A copy takes the
//! rename like any file, and [`sync`] (run by `blankslate persist sync`, or kept
//! running with `--follow` by `blankslate-sync.service`) writes the new contents to
//! the volume, atomically (a temporary, fsync, rename, fsync of the directory).
//!
//! Which side wins: at boot the root is empty and the volume's copy comes in; on a
//! running system (a switch, a sync) the live file is what programs changed, and it
//! is written to the volume. A live file that is missing is reported, and the volume's
//! copy is never deleted.
//!
//! Both files may belong to a user (a copy in a home), who can swap anything in at
//! any moment: each is read only through a checked descriptor (a regular file, with
//! a single link where a user can write its directory, opened without following a
//! symlink or blocking on a FIFO), and
//! streamed extent by extent through a small buffer, so a huge sparse file costs
//! neither memory nor disk. Whatever is wrong with one copy is that copy's finding.
//!
//! Modes: a copy declared with a mode gets it on both sides. One declared without a
//! mode (the default `0644`) keeps the stricter of the live file's and the volume's
//! modes, so that `/etc/shadow` (`0600`) is never made readable by others because its
//! entry left the mode out.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use blankslate_decl::{Declaration, EntryKind, How, Mode, ResolvedEntry, UserDb};
use blankslate_sys::fs::{Accept, Checked, Dir, Kind, Meta};
use blankslate_sys::mount;

use crate::{Ids, PersistError, Report, Result, Tree, foreign_mount, hostile, meta_of, relative, resolve, split};

/// Brings the copy `name` in: from the volume into an empty root, or, when the root
/// holds its own (a running system), the root's contents into the volume. A bind mount
/// or link from a generation that declared the file otherwise is replaced by the copy.
pub(crate) fn bring_in(
    source_parent: &Dir,
    target_parent: &Dir,
    name: &str,
    path: &str,
    ids: &Ids,
    link: &str,
    report: &mut Report,
) -> Result<()> {
    let shown = format!("the volume's {path}");
    let source = regular_source(source_parent, name, &shown)?;
    let target = meta_of(target_parent, name)?;
    // What the root holds is its own (and wins over the volume) only if it is a
    // regular file that is neither the volume's file mounted (all writes went to the
    // volume; the file under the mount is a stale placeholder) nor our link.
    let own = match target {
        Some(meta) if meta.kind == Kind::File && source.is_some_and(|s| s.identity() == meta.identity()) => {
            mount::unmount(target_parent, name)?;
            report.unmounted.push(path.to_owned());
            None
        }
        Some(meta) if meta.kind == Kind::File && foreign_mount(target_parent, name, path, report)? => {
            return Ok(());
        }
        Some(meta) if meta.kind == Kind::Symlink && target_parent.read_link(name)? == *link => None,
        Some(meta) if meta.kind != Kind::File => {
            report.conflicts.push((path.to_owned(), "is not a regular file in the root: left as it is".into()));
            return Ok(());
        }
        other => other,
    };
    let volume = match source {
        Some(_) => Some(source_parent.open_checked(name, Accept::File)?),
        None => None,
    };
    if own.is_some() {
        let live = target_parent.open_checked(name, Accept::File)?;
        let mode = copy_mode(ids.mode, Some(&live), volume.as_ref());
        if write_back(source_parent, name, &live, volume.as_ref(), ids, mode)? {
            report.written_back.push(path.to_owned());
        } else {
            report.unchanged.push(path.to_owned());
        }
        live.set_owner_and_mode(ids.uid, ids.gid, mode)?;
        return Ok(());
    }
    // Replaces a placeholder or a link in one rename.
    target_parent.remove_stale_temporaries(name)?;
    if let Some(volume) = &volume {
        let mode = copy_mode(ids.mode, None, Some(volume));
        target_parent.copy_atomic(name, volume, mode, Some((ids.uid, ids.gid)))?;
        volume.set_owner_and_mode(ids.uid, ids.gid, mode)?;
    } else {
        let first = crate::first_contents(path);
        source_parent.create_file_owned(name, first, ids.mode, Some((ids.uid, ids.gid)))?;
        target_parent.write_atomic_owned(name, first, ids.mode, Some((ids.uid, ids.gid)))?;
    }
    report.copied.push(path.to_owned());
    Ok(())
}

/// The volume's file, which must be a regular file if it is there.
pub(crate) fn regular_source(source_parent: &Dir, name: &str, shown: &str) -> Result<Option<Meta>> {
    let source = meta_of(source_parent, name)?;
    if source.is_some_and(|m| m.kind != Kind::File) {
        return Err(PersistError::Hostile {
            path: shown.to_owned(),
            reason: "not a regular file (a symlink is never followed)".into(),
        });
    }
    Ok(source)
}

/// The mode a copy gets: the declared one; or, declared without one (the default
/// `0644`), the stricter of the live file's and the volume's (the bits both allow).
fn copy_mode(declared: u32, live: Option<&Checked>, volume: Option<&Checked>) -> u32 {
    if declared != Mode::FILE.bits() {
        return declared;
    }
    match (live.map(|f| f.meta().mode), volume.map(|f| f.meta().mode)) {
        (Some(live), Some(volume)) => live & volume,
        (Some(one), None) | (None, Some(one)) => one,
        (None, None) => declared,
    }
}

/// Writes the live file to the volume (streamed, holes kept; a temporary, fsync,
/// rename) if the volume lacks it or holds other bytes, with the entry's owner and
/// `mode`; a volume file with the same bytes just gets those. `true` if it wrote.
fn write_back(
    source_parent: &Dir,
    name: &str,
    live: &Checked,
    volume: Option<&Checked>,
    ids: &Ids,
    mode: u32,
) -> Result<bool> {
    if let Some(volume) = volume {
        if volume.same_contents(live)? {
            volume.set_owner_and_mode(ids.uid, ids.gid, mode)?;
            return Ok(false);
        }
    }
    source_parent.remove_stale_temporaries(name)?;
    source_parent.copy_atomic(name, live, mode, Some((ids.uid, ids.gid)))?;
    Ok(true)
}

/// What a [`sync`] did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Synced {
    /// Written to the volume (it differed, or the volume had none).
    pub written: Vec<String>,
    /// The same on both sides.
    pub unchanged: Vec<String>,
    /// Not in the root (the volume's copy is kept).
    pub missing: Vec<(String, String)>,
    /// Not written back, and why: a symlink, FIFO or hard link at the live file or
    /// the volume's (never followed or acted on), a volume that is not there, an error
    /// from the system. The other copies were synced.
    pub failed: Vec<(String, String)>,
    pub unknown_owners: Vec<(String, String)>,
}

/// The copies of `declaration`, with the volume each comes from.
fn copies(declaration: &Declaration) -> Vec<ResolvedEntry<'_>> {
    declaration
        .entries()
        .into_iter()
        .filter(|e| e.entry.kind == EntryKind::File && e.entry.how() == How::Copy)
        .collect()
}

/// Writes every changed copy of `declaration` back to its volume, each on its own: one
/// that cannot be is reported in [`Synced::failed`] and the rest go on. `only` limits
/// it to some paths (those an event named); `None` does all, and first removes the
/// temporaries a sync killed before its rename left beside each copy in the volume.
pub fn sync(root: &Dir, declaration: &Declaration, users: &UserDb, only: Option<&[String]>) -> Synced {
    let mut synced = Synced::default();
    let mut volumes = HashMap::new();
    for entry in copies(declaration) {
        if only.is_some_and(|paths| !paths.contains(&entry.path)) {
            continue;
        }
        let mut owners = Report::default();
        let ids = resolve(&entry.entry.owner, users, &entry.path, &mut owners);
        synced.unknown_owners.append(&mut owners.unknown_owners);
        let volume = volumes.entry(entry.root).or_insert_with(|| {
            root.open_dir(relative(entry.root))
                .map_err(|source| PersistError::NoVolume { mount: entry.root.to_owned(), source }.to_string())
        });
        let outcome = match volume {
            Ok(volume) => sync_one(root, volume, &entry.path, &ids, only.is_none()),
            Err(why) => Err(why.clone()),
        };
        match outcome {
            Ok(Outcome::Written) => synced.written.push(entry.path.clone()),
            Ok(Outcome::Unchanged) => synced.unchanged.push(entry.path.clone()),
            Ok(Outcome::Missing(why)) => synced.missing.push((entry.path.clone(), why.into())),
            Err(why) => synced.failed.push((entry.path.clone(), why)),
        }
    }
    synced
}

/// What [`sync_one`] did with one copy.
enum Outcome {
    Written,
    Unchanged,
    Missing(&'static str),
}

/// Syncs the copy at `path` into `volume`; an error is the copy's finding.
fn sync_one(root: &Dir, volume: &Dir, path: &str, ids: &Ids, first: bool) -> std::result::Result<Outcome, String> {
    let (parent, name) = split(path);
    let target_parent = match root.open_dir_or_self(parent) {
        Ok(dir) => dir,
        Err(error) if error.is_not_found() => return Ok(Outcome::Missing("its directory is not in the root")),
        Err(error) => return Err(hostile(path, error).to_string()),
    };
    let live = match target_parent.open_checked(name, Accept::File) {
        Ok(live) => live,
        Err(error) if error.is_not_found() => return Ok(Outcome::Missing("is not in the root")),
        Err(error) => return Err(format!("the live file: {error}")),
    };
    let in_volume = |error: PersistError| format!("the volume's copy: {error}");
    let mut tree = Tree::new(volume);
    let source_parent = tree.dir(parent, None).map_err(in_volume)?;
    if first {
        source_parent.remove_stale_temporaries(name).map_err(|e| in_volume(e.into()))?;
    }
    let copy = match source_parent.open_checked(name, Accept::File) {
        Ok(copy) => Some(copy),
        Err(error) if error.is_not_found() => None,
        Err(error) => return Err(in_volume(error.into())),
    };
    let mode = copy_mode(ids.mode, Some(&live), copy.as_ref());
    match write_back(source_parent, name, &live, copy.as_ref(), ids, mode) {
        Ok(true) => Ok(Outcome::Written),
        Ok(false) => Ok(Outcome::Unchanged),
        Err(error) => Err(in_volume(error)),
    }
}

/// Keeps the copies written back: a full [`sync`], then one for each copy that a
/// program closes after writing, or renames into place (an inotify watch on each
/// copy's directory in the root), and a full one again if the kernel's event queue
/// overflowed. `report` hears of every sync; a copy that cannot be synced (or whose
/// directory cannot be watched) is a finding in it, and the rest go on. Returns only
/// if inotify itself fails; stopping is by signal (each write-back is atomic, so
/// stopping at any point loses nothing already written).
pub fn follow(
    root: &Dir,
    declaration: &Declaration,
    users: &UserDb,
    report: &mut dyn FnMut(&Synced),
) -> Result<std::convert::Infallible> {
    use inotify::{EventMask, Inotify, WatchMask};
    use std::os::fd::{AsFd as _, AsRawFd as _};

    let inotify_error = |error: std::io::Error| PersistError::Fs(fs_error("watch", root.path(), error));
    let mut inotify = Inotify::init().map_err(inotify_error)?;
    // Directory in the root -> the names in it that are copies, with their paths.
    let mut watched: BTreeMap<String, Vec<(String, String)>> = BTreeMap::new();
    for entry in copies(declaration) {
        let (parent, name) = split(&entry.path);
        watched.entry(parent.to_owned()).or_default().push((name.to_owned(), entry.path.clone()));
    }
    let mut by_watch = HashMap::new();
    let mut unwatched = Vec::new();
    for (parent, names) in &watched {
        let watch = root.open_dir_or_self(parent).map_err(|e| hostile(&format!("/{parent}"), e)).and_then(|dir| {
            let by_fd = format!("/proc/self/fd/{}", dir.as_fd().as_raw_fd());
            let mask = WatchMask::CLOSE_WRITE | WatchMask::MOVED_TO;
            inotify.watches().add(Path::new(&by_fd), mask).map_err(inotify_error)
        });
        match watch {
            Ok(watch) => {
                by_watch.insert(watch, names.clone());
            }
            Err(error) => {
                unwatched.extend(names.iter().map(|(_, path)| (path.clone(), format!("not followed: {error}"))));
            }
        }
    }
    let mut first = sync(root, declaration, users, None);
    first.failed.extend(unwatched);
    report(&first);
    let mut buffer = [0; 4096];
    loop {
        let events = inotify.read_events_blocking(&mut buffer).map_err(inotify_error)?;
        let mut changed = Vec::new();
        let mut overflowed = false;
        for event in events {
            overflowed |= event.mask.contains(EventMask::Q_OVERFLOW);
            let Some(names) = by_watch.get(&event.wd) else { continue };
            let Some(name) = event.name.and_then(|n| n.to_str()) else { continue };
            if let Some((_, path)) = names.iter().find(|(n, _)| n == name) {
                if !changed.contains(path) {
                    changed.push(path.clone());
                }
            }
        }
        if overflowed {
            report(&sync(root, declaration, users, None));
        } else if !changed.is_empty() {
            report(&sync(root, declaration, users, Some(&changed)));
        }
    }
}

fn fs_error(op: &'static str, path: &Path, source: std::io::Error) -> blankslate_sys::fs::FsError {
    blankslate_sys::fs::FsError { op, path: path.to_path_buf(), source }
}
