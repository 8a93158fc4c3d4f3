//! What persisted-path activation bind-mounted into a root, and the volumes it mounts
//! from.
//!
//! The record (`etc/.blankslate/mounts.json`, beside the `/etc` activation's, so it
//! starts empty at every boot like the root) maps each target bind-mounted from a
//! volume to its persistent root. Every bind target of a declaration goes into it
//! before the first of them is mounted, and a target leaves it only once it is
//! unmounted, so the record always holds at least what is mounted. Unmounting at a
//! switch takes what the record holds and what the previous generation declared,
//! less what the new one declares: a switch that was killed or undone half-way, or
//! a repair, unmounts what no generation declares any more, not only what the last
//! one did.

use std::collections::{BTreeMap, BTreeSet};

use blankslate_decl::{Declaration, How};
use blankslate_state::activation::{DIR, MOUNTS_FILE};
use blankslate_sys::fs::{Dir, FsError};
use blankslate_sys::mount;

use crate::{PersistError, Report, Result, relative, split};

/// Target path (absolute, as in the root) → its persistent root.
type Record = BTreeMap<String, String>;

fn read(root: &Dir) -> Result<Record> {
    let bytes = match root.read(format!("{DIR}/{MOUNTS_FILE}")) {
        Ok(bytes) => bytes,
        Err(error) if error.is_not_found() => return Ok(Record::new()),
        Err(error) => return Err(error.into()),
    };
    serde_json::from_slice(&bytes)
        .map_err(|e| PersistError::BadRecord { what: format!("/{DIR}/{MOUNTS_FILE}"), reason: e.to_string() })
}

fn write(root: &Dir, record: &Record) -> Result<()> {
    let json = serde_json::to_vec(record).expect("a map of strings serializes");
    root.create_dir_all(DIR, 0o700)?.write_atomic(MOUNTS_FILE, &json, 0o600)?;
    Ok(())
}

/// The entries of `declaration` that are bind mounts.
fn bind_targets(declaration: &Declaration) -> Record {
    let entries = declaration.entries();
    entries.iter().filter(|e| e.entry.how() == How::Bind).map(|e| (e.path.clone(), e.root.to_owned())).collect()
}

/// Unmounts (or unlinks) what is in the root and `next` does not declare: the mounts
/// on record and the entries of `previous`, deepest first so that nested mounts go
/// before their parents (their data stays in the volume). Then records `next`'s bind
/// targets, before any of them is mounted. Writes the record only if it changes.
pub(crate) fn unmount_undeclared(
    root: &Dir,
    previous: Option<&Declaration>,
    next: &Declaration,
    report: &mut Report,
) -> Result<()> {
    let record = read(root)?;
    let kept: BTreeSet<String> = next.entries().into_iter().map(|e| e.path).collect();
    let mut gone: BTreeMap<String, (String, How)> = record
        .iter()
        .filter(|(path, _)| !kept.contains(*path))
        .map(|(path, volume)| (path.clone(), (volume.clone(), How::Bind)))
        .collect();
    if let Some(previous) = previous {
        for entry in previous.entries().into_iter().filter(|e| !kept.contains(&e.path)) {
            gone.insert(entry.path.clone(), (entry.root.to_owned(), entry.entry.how()));
        }
    }
    for (path, (volume, how)) in gone.iter().rev() {
        if take_out(root, path, volume, *how)? {
            report.unmounted.push(path.clone());
        }
    }
    let mut updated: Record = record.iter().filter(|(path, _)| !gone.contains_key(*path)).map(clone).collect();
    updated.extend(bind_targets(next));
    if updated != record {
        write(root, &updated)?;
    }
    Ok(())
}

fn clone((path, volume): (&String, &String)) -> (String, String) {
    (path.clone(), volume.clone())
}

/// Unmounts the bind mount of `path` from the persistent root `volume`, or removes
/// the link into it (`how = "symlink"`); whether there was one. A mount is taken for
/// the volume's when it is the volume path itself (or, with the volume gone, when it
/// is a mount point at all: the record says blankslate mounted it). Anything else
/// there (a person's file, a mount of something else) stays.
fn take_out(root: &Dir, path: &str, volume: &str, how: How) -> Result<bool> {
    let (parent, name) = split(path);
    let target_parent = match root.open_dir_or_self(parent) {
        Ok(dir) => dir,
        Err(error) if gone(&error) => return Ok(false),
        Err(error) => return Err(error.into()),
    };
    let source_parent = root.open_dir(relative(volume)).and_then(|volume| volume.open_dir_or_self(parent));
    if how == How::Symlink {
        let link = format!("{}/{}", volume.trim_end_matches('/'), relative(path));
        if target_parent.read_link(name).is_ok_and(|t| t == *link) {
            target_parent.remove_file(name)?;
            return Ok(true);
        }
        return Ok(false);
    }
    let target = match target_parent.meta(name) {
        Ok(target) => target,
        Err(error) if gone(&error) => return Ok(false),
        Err(error) => return Err(error.into()),
    };
    let mounted = match source_parent.and_then(|source| source.meta(name)) {
        Ok(source) => target.identity() == source.identity(),
        Err(_) => target_parent.is_mount_point(name)?,
    };
    if mounted {
        mount::unmount(&target_parent, name)?;
    }
    Ok(mounted)
}

/// Whether `error` says there is nothing at a path (or nothing a mount could be on:
/// a file or a symlink where a directory was), rather than that it cannot be read.
fn gone(error: &FsError) -> bool {
    error.is_not_found()
        || error.kind() == std::io::ErrorKind::NotADirectory
        || error.source.raw_os_error() == Some(rustix::io::Errno::LOOP.raw_os_error())
}

/// Checks, before anything changes, that every persistent root `declaration` names
/// is a mounted volume: a directory in the root on another file system than the root
/// (the audit's test). A plain directory of the root would take the data of every
/// persisted path onto the root, where the next boot erases it.
pub fn check_volumes(root: &Dir, declaration: &Declaration) -> Result<()> {
    let root_device = root.own_meta()?.dev;
    for mount in declaration.persist.keys() {
        let volume =
            root.open_dir(relative(mount)).map_err(|source| PersistError::NoVolume { mount: mount.clone(), source })?;
        if volume.own_meta()?.dev == root_device {
            return Err(PersistError::NotMounted { mount: mount.clone() });
        }
    }
    Ok(())
}
