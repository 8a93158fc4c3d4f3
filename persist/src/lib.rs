//! Persisted paths: what the declaration keeps, brought from the persistent volumes
//! into the ephemeral root at every activation (boot, switch, sandbox).
//!
//! For every entry, parents first:
//! - the source in the volume and the target in the root are created if missing,
//!   with the declared owner and mode applied *before* the path is exposed, and
//!   re-applied at every activation (not only at creation);
//! - a directory, or a file with `how = "bind"`, is bind-mounted (with its mount
//!   options); a file with `how = "symlink"` becomes a link into the volume;
//! - nothing is hidden silently: data already in the target is moved into the volume
//!   when the source is empty, and otherwise reported and left unmounted;
//! - every path goes through the safe primitives: a symlink planted in a volume is
//!   refused, never followed.
//!
//! Entries the previous generation declared and this one does not are unmounted
//! (their data stays in the volume).

#![forbid(unsafe_code)]

use std::collections::BTreeSet;

use blankslate_core::decl::{Declaration, EntryKind, How, MountOption, Owner, ResolvedEntry, UserDb};
use blankslate_core::fs::{self, Dir, FsError, Kind};
use blankslate_core::mount::{self, MountError, Source};
use rustix::mount::MountFlags;

/// What a persisted `/etc/machine-id` starts as: systemd treats it as a first boot
/// and writes the real id into it, through the bind mount, into the volume.
const MACHINE_ID_FIRST_BOOT: &[u8] = b"uninitialized\n";

#[derive(Debug, thiserror::Error)]
pub enum PersistError {
    #[error(transparent)]
    Fs(#[from] FsError),
    #[error(transparent)]
    Mount(#[from] MountError),
    #[error("persistent root {mount} is not there to persist from (is the volume mounted?): {source}")]
    NoVolume { mount: String, source: FsError },
    #[error("refusing {path}: {reason}")]
    Hostile { path: String, reason: String },
}

pub type Result<T> = std::result::Result<T, PersistError>;

/// What one activation did, path by path.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Report {
    pub mounted: Vec<String>,
    pub linked: Vec<String>,
    /// Already in place; owner and mode re-applied.
    pub unchanged: Vec<String>,
    /// Data found in the ephemeral root and moved into the empty volume path.
    pub migrated: Vec<String>,
    /// Not mounted, and why: data on both sides, a type mismatch, …
    pub conflicts: Vec<(String, String)>,
    /// Owners that could not be resolved (created as root instead).
    pub unknown_owners: Vec<(String, String)>,
    pub unmounted: Vec<String>,
}

/// Numeric owner of an entry, resolved against the root's user database.
struct Ids {
    uid: u32,
    gid: u32,
    mode: u32,
}

fn resolve(owner: &Owner, users: &UserDb, path: &str, report: &mut Report) -> Ids {
    let id = |name: &str, lookup: &dyn Fn(&str) -> Option<u32>| {
        name.strip_prefix('+').and_then(|n| n.parse().ok()).or_else(|| lookup(name)).or((name == "root").then_some(0))
    };
    let uid = id(&owner.user, &|n| users.uid(n)).unwrap_or_else(|| {
        report.unknown_owners.push((path.to_owned(), format!("user `{}`", owner.user)));
        0
    });
    let gid = id(&owner.group, &|n| users.gid(n)).unwrap_or_else(|| {
        report.unknown_owners.push((path.to_owned(), format!("group `{}`", owner.group)));
        0
    });
    Ids { uid, gid, mode: owner.mode.bits() }
}

fn mount_flags(options: &[MountOption]) -> MountFlags {
    options.iter().fold(MountFlags::empty(), |flags, option| match option {
        MountOption::ReadOnly => flags | MountFlags::RDONLY,
        MountOption::NoSuid => flags | MountFlags::NOSUID,
        MountOption::NoDev => flags | MountFlags::NODEV,
        MountOption::NoExec => flags | MountFlags::NOEXEC,
        // A marker for file managers, not a kernel flag.
        MountOption::Hidden => flags,
    })
}

fn relative(path: &str) -> &str {
    path.trim_start_matches('/')
}

fn split(path: &str) -> (&str, &str) {
    let path = relative(path);
    path.rsplit_once('/').unwrap_or(("", path))
}

/// Opens the directory `parent` (relative) below `base`, creating missing components
/// `root:root 0755` — or, inside a home, owned by its user — and enforcing `owner`
/// (the entry's declared parent) on the last one.
fn parent_dir(base: &Dir, parent: &str, home: Option<(&str, &Ids)>, owner: Option<&Ids>) -> Result<Dir> {
    let mut dir = base.try_clone()?;
    let mut walked = String::new();
    for component in parent.split('/').filter(|c| !c.is_empty()) {
        walked.push('/');
        walked.push_str(component);
        if dir.create_dir(component, 0o700)? {
            let (uid, gid, mode) = match home {
                Some((home, ids)) if walked.len() >= home.len() && walked.starts_with(home) => {
                    (ids.uid, ids.gid, if walked == home { 0o700 } else { 0o755 })
                }
                _ => (0, 0, 0o755),
            };
            dir.set_owner_and_mode_of(component, uid, gid, mode)?;
        }
        dir = dir.open_dir(component).map_err(|e| hostile(&walked, e))?;
    }
    if let Some(ids) = owner {
        dir.set_owner(ids.uid, ids.gid)?;
        dir.set_mode(ids.mode)?;
    }
    Ok(dir)
}

/// A failure to open a path without following symlinks is reported as what it
/// usually is: a symlink (or a file) where a directory was expected.
fn hostile(path: &str, error: FsError) -> PersistError {
    let loop_ = error.source.raw_os_error() == Some(rustix::io::Errno::LOOP.raw_os_error());
    if loop_ || error.kind() == std::io::ErrorKind::NotADirectory {
        PersistError::Hostile {
            path: path.to_owned(),
            reason: "a symlink (or non-directory) stands in the way; it is never followed".into(),
        }
    } else {
        PersistError::Fs(error)
    }
}

/// Brings every persisted entry of `declaration` into `root`; `previous` is the
/// declaration activated before (at a switch), whose entries that are gone now get
/// unmounted. Each persistent root's volume must already be mounted at its mount point
/// inside `root`.
pub fn activate(
    root: &Dir,
    declaration: &Declaration,
    users: &UserDb,
    previous: Option<&Declaration>,
) -> Result<Report> {
    let mut report = Report::default();
    if let Some(previous) = previous {
        unmount_removed(root, previous, declaration, &mut report)?;
    }
    let mut entries = declaration.entries();
    entries.sort_by(|a, b| a.path.cmp(&b.path));
    for entry in &entries {
        let volume = root
            .open_dir(relative(entry.root))
            .map_err(|source| PersistError::NoVolume { mount: entry.root.to_owned(), source })?;
        activate_entry(root, &volume, entry, declaration, users, &mut report)?;
    }
    Ok(report)
}

fn activate_entry(
    root: &Dir,
    volume: &Dir,
    entry: &ResolvedEntry<'_>,
    declaration: &Declaration,
    users: &UserDb,
    report: &mut Report,
) -> Result<()> {
    let path = entry.path.as_str();
    let ids = resolve(&entry.entry.owner, users, path, report);
    let parent_ids = entry.entry.parent.as_ref().map(|p| resolve(p, users, path, report));
    let home = entry.user.map(|user| {
        let home = &declaration.persist[entry.root].users[user].home;
        (home.as_str(), ids_of_user(&ids))
    });
    let home_ref = home.as_ref().map(|(h, i)| (*h, i));
    let (parent, name) = split(path);
    let source_parent = parent_dir(volume, parent, home_ref, parent_ids.as_ref())?;
    let target_parent = parent_dir(root, parent, home_ref, parent_ids.as_ref())?;
    match entry.entry.kind {
        EntryKind::Directory => {
            directory(&source_parent, &target_parent, name, path, &ids, &entry.entry.options, report)
        }
        EntryKind::File => {
            let how = entry.entry.how.unwrap_or_default();
            file(&source_parent, &target_parent, name, path, &ids, how, entry, report)
        }
    }
}

/// The user's own ids with the home's mode, for parents created inside a home.
fn ids_of_user(ids: &Ids) -> Ids {
    Ids { uid: ids.uid, gid: ids.gid, mode: 0o755 }
}

fn directory(
    source_parent: &Dir,
    target_parent: &Dir,
    name: &str,
    path: &str,
    ids: &Ids,
    options: &[MountOption],
    report: &mut Report,
) -> Result<()> {
    // The source gets its owner and mode before anything can see it.
    source_parent.create_dir(name, 0o700)?;
    let source = source_parent.open_dir(name).map_err(|e| hostile(&format!("the volume's {path}"), e))?;
    source.set_owner(ids.uid, ids.gid)?;
    source.set_mode(ids.mode)?;
    match target_parent.meta(name) {
        Ok(meta) if meta.kind == Kind::Directory => {
            if target_parent.identity(name)? == source.own_identity()? {
                report.unchanged.push(path.to_owned());
                return Ok(());
            }
            let target = target_parent.open_dir(name)?;
            if !target.entries()?.is_empty() {
                if !source.entries()?.is_empty() {
                    report.conflicts.push((
                        path.to_owned(),
                        "holds data, and so does the volume: left as it is, not mounted".into(),
                    ));
                    return Ok(());
                }
                let skipped = fs::copy_contents(&target, &source)?;
                if !skipped.is_empty() {
                    report.conflicts.push((path.to_owned(), format!("special files not migrated: {skipped:?}")));
                }
                for (child, _) in target.entries()? {
                    target.remove_tree(&child)?;
                }
                report.migrated.push(path.to_owned());
            }
            target.set_owner(ids.uid, ids.gid)?;
            target.set_mode(ids.mode)?;
        }
        Ok(meta) => {
            report.conflicts.push((
                path.to_owned(),
                format!("is a {:?} in the root, not a directory: left as it is", meta.kind).to_lowercase(),
            ));
            return Ok(());
        }
        Err(error) if error.is_not_found() => {
            target_parent.create_dir(name, 0o700)?;
            target_parent.set_owner_and_mode_of(name, ids.uid, ids.gid, ids.mode)?;
        }
        Err(error) => return Err(error.into()),
    }
    mount::bind(Source::Dir(&source), target_parent, name, mount_flags(options))?;
    report.mounted.push(path.to_owned());
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn file(
    source_parent: &Dir,
    target_parent: &Dir,
    name: &str,
    path: &str,
    ids: &Ids,
    how: How,
    entry: &ResolvedEntry<'_>,
    report: &mut Report,
) -> Result<()> {
    let source_missing = match source_parent.meta(name) {
        Ok(meta) if meta.kind == Kind::File => false,
        Ok(_) => {
            return Err(PersistError::Hostile {
                path: format!("the volume's {path}"),
                reason: "not a regular file (a symlink is never followed)".into(),
            });
        }
        Err(error) if error.is_not_found() => true,
        Err(error) => return Err(error.into()),
    };
    let target = match target_parent.meta(name) {
        Ok(meta) => Some(meta),
        Err(error) if error.is_not_found() => None,
        Err(error) => return Err(error.into()),
    };
    // Data already in the root moves into an empty (or missing) volume file.
    let live_data = match target {
        Some(meta) if meta.kind == Kind::File && meta.size > 0 => {
            if how == How::Bind && target_parent.identity(name)? == source_parent.identity(name).unwrap_or_default() {
                None
            } else {
                Some(target_parent.read(name)?)
            }
        }
        _ => None,
    };
    let source_empty = source_missing || source_parent.meta(name)?.size == 0;
    if let Some(data) = &live_data {
        if !source_empty && source_parent.read(name)? != *data {
            report.conflicts.push((path.to_owned(), "holds data, and so does the volume: left as it is".into()));
            return Ok(());
        }
    }
    if source_missing || (source_empty && live_data.is_some()) {
        let initial = match &live_data {
            Some(data) => data.as_slice(),
            None if path == "/etc/machine-id" => MACHINE_ID_FIRST_BOOT,
            None => b"",
        };
        source_parent.write_atomic(name, initial, 0o600)?;
        if live_data.is_some() {
            report.migrated.push(path.to_owned());
        }
    }
    source_parent
        .set_owner_and_mode_of(name, ids.uid, ids.gid, ids.mode)
        .map_err(|e| hostile(&format!("the volume's {path}"), e))?;
    match how {
        How::Bind => {
            if target.is_some_and(|m| m.kind == Kind::File)
                && target_parent.identity(name)? == source_parent.identity(name)?
            {
                report.unchanged.push(path.to_owned());
                return Ok(());
            }
            match target {
                Some(meta) if meta.kind != Kind::File => {
                    report.conflicts.push((path.to_owned(), "is not a regular file in the root: left as it is".into()));
                    return Ok(());
                }
                Some(_) => {}
                None => {
                    target_parent.create_file_owned(name, b"", ids.mode, Some((ids.uid, ids.gid)))?;
                }
            }
            mount::bind(Source::File(source_parent, name), target_parent, name, mount_flags(&entry.entry.options))?;
            report.mounted.push(path.to_owned());
        }
        How::Symlink => {
            let link = format!("{}/{}", entry.root.trim_end_matches('/'), relative(path));
            match target {
                Some(meta) if meta.kind == Kind::Symlink && target_parent.read_link(name)? == *link => {
                    report.unchanged.push(path.to_owned());
                }
                Some(meta) if meta.kind == Kind::Directory || meta.kind == Kind::Other => {
                    report.conflicts.push((path.to_owned(), "is not a file or link in the root: left as it is".into()));
                }
                _ => {
                    target_parent.symlink_atomic(name, &link)?;
                    report.linked.push(path.to_owned());
                }
            }
        }
    }
    Ok(())
}

/// Unmounts (or unlinks) entries of `previous` that `next` no longer declares; their
/// data stays in the volume. Deepest first, so nested mounts go before their parents.
fn unmount_removed(root: &Dir, previous: &Declaration, next: &Declaration, report: &mut Report) -> Result<()> {
    let kept: BTreeSet<String> = next.entries().into_iter().map(|e| e.path).collect();
    let mut gone: Vec<ResolvedEntry<'_>> = previous.entries().into_iter().filter(|e| !kept.contains(&e.path)).collect();
    gone.sort_by(|a, b| b.path.cmp(&a.path));
    for entry in gone {
        let (parent, name) = split(&entry.path);
        let Ok(target_parent) = (if parent.is_empty() { root.try_clone() } else { root.open_dir(parent) }) else {
            continue;
        };
        let Ok(volume) = root.open_dir(relative(entry.root)) else { continue };
        let source_parent = if parent.is_empty() { volume.try_clone() } else { volume.open_dir(parent) };
        let Ok(source_parent) = source_parent else { continue };
        if entry.entry.how == Some(How::Symlink) {
            let link = format!("{}/{}", entry.root.trim_end_matches('/'), relative(&entry.path));
            if target_parent.read_link(name).is_ok_and(|t| t == *link) {
                target_parent.remove_file(name)?;
                report.unmounted.push(entry.path.clone());
            }
            continue;
        }
        let mounted = match (target_parent.identity(name), source_parent.identity(name)) {
            (Ok(target), Ok(source)) => target == source,
            _ => false,
        };
        if mounted {
            mount::unmount(&target_parent, name)?;
            report.unmounted.push(entry.path.clone());
        }
    }
    Ok(())
}
