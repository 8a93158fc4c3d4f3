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

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use blankslate_core::decl::{Declaration, EntryKind, How, ResolvedEntry, UserDb};
use blankslate_core::fs::{Dir, Kind, Meta};
use blankslate_core::mount;

use crate::{
    Ids, PersistError, Report, Result, Tree, enforce_at, foreign_mount, hostile, meta_of, relative, resolve, split,
};

/// Brings the copy `name` in: from the volume into an empty root, or, when the root
/// holds its own (a running system), the root's contents into the volume. A bind mount
/// or link from a generation that declared the file otherwise is replaced by the copy.
pub(crate) fn activate(
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
    if let Some(meta) = own {
        if write_back(source_parent, target_parent, name, source.as_ref(), ids)? {
            report.written_back.push(path.to_owned());
        } else {
            report.unchanged.push(path.to_owned());
        }
        enforce_at(target_parent, name, &meta, ids, path)?;
    } else {
        let contents = if source.is_some() {
            source_parent.read(name)?
        } else {
            source_parent.create_file_owned(name, b"", ids.mode, Some((ids.uid, ids.gid)))?;
            Vec::new()
        };
        // Replaces a placeholder or a link in one rename.
        target_parent.write_atomic_owned(name, &contents, ids.mode, Some((ids.uid, ids.gid)))?;
        report.copied.push(path.to_owned());
    }
    if let Some(meta) = meta_of(source_parent, name)? {
        enforce_at(source_parent, name, &meta, ids, &shown)?;
    }
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

/// Writes the root's file to the volume if the volume lacks it or holds other bytes;
/// `true` if it wrote.
fn write_back(source_parent: &Dir, target_parent: &Dir, name: &str, source: Option<&Meta>, ids: &Ids) -> Result<bool> {
    let live = target_parent.read(name)?;
    if source.is_some() && source_parent.read(name)? == live {
        return Ok(false);
    }
    source_parent.write_atomic_owned(name, &live, ids.mode, Some((ids.uid, ids.gid)))?;
    Ok(true)
}

/// What a [`sync`] did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Synced {
    /// Written to the volume (it differed, or the volume had none).
    pub written: Vec<String>,
    /// The same on both sides.
    pub unchanged: Vec<String>,
    /// Not in the root (the volume's copy is kept), or not a regular file there.
    pub missing: Vec<(String, String)>,
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

/// Writes every changed copy of `declaration` back to its volume. `only` limits it to
/// some paths (those an event named); `None` does all.
pub fn sync(root: &Dir, declaration: &Declaration, users: &UserDb, only: Option<&[String]>) -> Result<Synced> {
    let mut synced = Synced::default();
    let mut volumes = HashMap::new();
    for entry in copies(declaration) {
        if only.is_some_and(|paths| !paths.contains(&entry.path)) {
            continue;
        }
        if !volumes.contains_key(entry.root) {
            let volume = root
                .open_dir(relative(entry.root))
                .map_err(|source| PersistError::NoVolume { mount: entry.root.to_owned(), source })?;
            volumes.insert(entry.root, volume);
        }
        let mut owners = Report::default();
        let ids = resolve(&entry.entry.owner, users, &entry.path, &mut owners);
        synced.unknown_owners.append(&mut owners.unknown_owners);
        let (parent, name) = split(&entry.path);
        let target_parent = match root.open_dir_or_self(parent) {
            Ok(dir) => dir,
            Err(error) if error.is_not_found() => {
                synced.missing.push((entry.path.clone(), "its directory is not in the root".into()));
                continue;
            }
            Err(error) => return Err(hostile(&entry.path, error)),
        };
        match meta_of(&target_parent, name)? {
            Some(meta) if meta.kind == Kind::File => {}
            Some(_) => {
                synced.missing.push((entry.path.clone(), "is not a regular file in the root".into()));
                continue;
            }
            None => {
                synced.missing.push((entry.path.clone(), "is not in the root".into()));
                continue;
            }
        }
        let mut tree = Tree::new(&volumes[entry.root]);
        let source_parent = tree.dir(parent, None)?;
        let source = regular_source(source_parent, name, &format!("the volume's {}", entry.path))?;
        if write_back(source_parent, &target_parent, name, source.as_ref(), &ids)? {
            synced.written.push(entry.path.clone());
        } else {
            synced.unchanged.push(entry.path.clone());
        }
    }
    Ok(synced)
}

/// Keeps the copies written back: a full [`sync`], then one for each copy that a
/// program closes after writing, or renames into place (an inotify watch on each
/// copy's directory in the root). `report` hears of every sync that wrote or missed
/// something. Returns only on an error; stopping is by signal (each write-back is
/// atomic, so stopping at any point loses nothing already written).
pub fn follow(
    root: &Dir,
    declaration: &Declaration,
    users: &UserDb,
    report: &mut dyn FnMut(&Synced),
) -> Result<std::convert::Infallible> {
    use inotify::{Inotify, WatchMask};
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
    for (parent, names) in &watched {
        let dir = root.open_dir_or_self(parent)?;
        let by_fd = format!("/proc/self/fd/{}", dir.as_fd().as_raw_fd());
        let mask = WatchMask::CLOSE_WRITE | WatchMask::MOVED_TO;
        let watch = inotify.watches().add(Path::new(&by_fd), mask).map_err(inotify_error)?;
        by_watch.insert(watch, names.clone());
    }
    report(&sync(root, declaration, users, None)?);
    let mut buffer = [0; 4096];
    loop {
        let events = inotify.read_events_blocking(&mut buffer).map_err(inotify_error)?;
        let mut changed = Vec::new();
        for event in events {
            let Some(names) = by_watch.get(&event.wd) else { continue };
            let Some(name) = event.name.and_then(|n| n.to_str()) else { continue };
            if let Some((_, path)) = names.iter().find(|(n, _)| n == name) {
                if !changed.contains(path) {
                    changed.push(path.clone());
                }
            }
        }
        if !changed.is_empty() {
            report(&sync(root, declaration, users, Some(&changed))?);
        }
    }
}

fn fs_error(op: &'static str, path: &Path, source: std::io::Error) -> blankslate_core::fs::FsError {
    blankslate_core::fs::FsError { op, path: path.to_path_buf(), source }
}
