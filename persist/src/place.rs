//! One persisted entry put in place: a directory bind-mounted or linked, a file
//! bind-mounted, linked or kept as a copy, with what the root already held there
//! taken into the volume, moved aside at a repair, or reported and left.

use std::collections::HashMap;

use blankslate_decl::{How, MountOption, ResolvedEntry};
use blankslate_state::activation::BACKUP_SUFFIX;
use blankslate_sys::fs::{Accept, Dir, Kind, Meta, tree};
use blankslate_sys::mount::{self, Source};
use rustix::mount::MountFlags;

use crate::{
    Ids, MACHINE_ID_FIRST_BOOT, PersistError, Report, Result, copy, enforce, enforce_at, first_contents, foreign_mount,
    hostile, meta_of, migrate, mount_flags, record_fixed,
};

/// Where one entry goes: its parents in the volume and in the root, its name, its
/// path in the root and in the volume, as the live system sees it (also the target of
/// the link `how = "symlink"` makes), and whether this is a repair.
pub(crate) struct Place<'p> {
    pub(crate) source_parent: &'p Dir,
    pub(crate) target_parent: &'p Dir,
    pub(crate) name: &'p str,
    pub(crate) path: &'p str,
    pub(crate) volume_path: &'p str,
    pub(crate) repair: bool,
}

/// What [`Place::take_in`] did with a directory found in the root.
enum TakenIn {
    /// Empty, or emptied into the volume: it can be used.
    Emptied,
    /// At a repair, moved aside (both held data): a fresh one goes in its place.
    MovedAside,
    /// Left as it is, and reported.
    Left,
}

impl Place<'_> {
    fn shown(&self) -> String {
        format!("the volume's {}", self.path)
    }

    /// The directory in the volume if it is there (opened, never created).
    fn existing_source(&self) -> Result<Option<Dir>> {
        match self.source_parent.open_dir(self.name) {
            Ok(source) => Ok(Some(source)),
            Err(error) if error.is_not_found() => Ok(None),
            Err(error) => Err(hostile(&self.shown(), error)),
        }
    }

    /// The directory in the volume (`existing`, or created now), with its owner and
    /// mode before anything can see it.
    fn source_dir(&self, existing: Option<Dir>, ids: &Ids, report: &mut Report) -> Result<Dir> {
        if let Some(source) = existing {
            let wrong = enforce(&source, ids)?;
            record_fixed(report, self.volume_path.to_owned(), wrong);
            return Ok(source);
        }
        self.source_parent.create_dir(self.name, 0o700)?;
        let source = self.source_parent.open_dir(self.name).map_err(|e| hostile(&self.shown(), e))?;
        enforce(&source, ids)?;
        Ok(source)
    }

    /// At a repair, moves what stands at the path in the root aside to a free
    /// `NAME.blankslate-backup` (then `.1`, …). `false` (and a conflict reported)
    /// otherwise, or if it cannot be moved.
    fn set_aside(&self, report: &mut Report, why: &str) -> bool {
        if !self.repair {
            report.conflicts.push((self.path.to_owned(), format!("{why}: left as it is")));
            return false;
        }
        for n in 0.. {
            let backup = if n == 0 {
                format!("{}{BACKUP_SUFFIX}", self.name)
            } else {
                format!("{}{BACKUP_SUFFIX}.{n}", self.name)
            };
            match self.target_parent.rename_noreplace(self.name, &backup) {
                Ok(false) => {}
                Ok(true) => {
                    let moved = format!("{}/{backup}", self.path.rsplit_once('/').map_or("", |(up, _)| up));
                    report.backed_up.push((self.path.to_owned(), moved));
                    return true;
                }
                Err(error) => {
                    report
                        .conflicts
                        .push((self.path.to_owned(), format!("{why}, and it cannot be moved aside: {error}")));
                    return false;
                }
            }
        }
        unreachable!("some backup name is free")
    }

    /// A mount in place: at a repair, the declared flags it lost (say, remounted
    /// read-write) are put back. Recorded as unchanged if nothing was.
    fn keep_mount(&self, options: &[MountOption], report: &mut Report) -> Result<()> {
        let added = if self.repair {
            mount::add_missing_flags(self.target_parent, self.name, mount_flags(options))?
        } else {
            MountFlags::empty()
        };
        if added.is_empty() {
            report.unchanged.push(self.path.to_owned());
        } else {
            let names: Vec<&str> =
                options.iter().filter(|o| mount_flags(&[**o]).intersects(added)).map(|o| o.as_str()).collect();
            report.fixed.push((self.path.to_owned(), format!("mounted without {}", names.join(","))));
        }
        Ok(())
    }

    /// A new directory at the path in the root, with its owner and mode.
    fn new_target_dir(&self, ids: &Ids) -> Result<()> {
        self.target_parent.create_dir(self.name, 0o700)?;
        self.target_parent.set_owner_and_mode_of(self.name, ids.uid, ids.gid, ids.mode)?;
        Ok(())
    }

    /// Whether the root's directory (`target`) is a mount of something other than
    /// this volume path (whose identity is `source`, if it exists), reported as a
    /// conflict; checked before anything is created in the volume.
    fn foreign_mount(&self, target: Option<&Meta>, source: Option<(u64, u64)>, report: &mut Report) -> Result<bool> {
        match target {
            Some(target) if target.kind == Kind::Directory && Some(target.identity()) != source => {
                foreign_mount(self.target_parent, self.name, self.path, report)
            }
            _ => Ok(false),
        }
    }

    /// Makes the path in the root our link to the volume, in one rename (removing
    /// first what a run killed before its rename left).
    fn link(&self) -> Result<()> {
        self.target_parent.remove_stale_temporaries(self.name)?;
        self.target_parent.symlink_atomic(self.name, self.volume_path)?;
        Ok(())
    }

    /// Whether the root holds our link to the volume here.
    fn is_our_link(&self, meta: &Meta) -> Result<bool> {
        Ok(meta.kind == Kind::Symlink && self.target_parent.read_link(self.name)? == *self.volume_path)
    }

    /// Whether everything below the directory in the root is also, the same, below the
    /// volume's: what a migration killed after its copy was in place leaves (with the
    /// root partly emptied, if it was killed while emptying it). The same means the
    /// same contents, owners, modes, times and attributes; directories' own times and
    /// modes (which emptying changes) and which names share an inode aside. Not if
    /// either tree cannot be read whole.
    fn in_volume_already(&self) -> bool {
        let walk = |dir: &Dir| -> Option<Vec<tree::Node>> {
            let mut nodes = tree::walk(dir, std::ffi::OsStr::new(self.name), true).ok()?;
            // A second name of a file is described by its first: its contents too.
            let contents: HashMap<std::ffi::OsString, Option<[u8; 32]>> =
                nodes.iter().map(|n| (n.path.clone(), n.content)).collect();
            for node in &mut nodes {
                if let Some(first) = node.same_inode_as.take() {
                    node.content = contents.get(&first).copied().flatten();
                }
                if node.kind == tree::NodeKind::Directory {
                    (node.mtime, node.mode) = ((0, 0), 0);
                }
            }
            Some(nodes.split_off(1))
        };
        let (Some(root), Some(volume)) = (walk(self.target_parent), walk(self.source_parent)) else { return false };
        let volume: HashMap<&std::ffi::OsStr, &tree::Node> = volume.iter().map(|n| (n.path.as_os_str(), n)).collect();
        root.iter().all(|node| volume.get(node.path.as_os_str()) == Some(&node))
    }

    /// Empties the root's directory `target` into `source`: data found in the root
    /// moves into an empty volume directory. `false` (reported as a conflict) when
    /// both hold data or the move fails; the root is left as it is.
    fn take_in(&self, target: &Dir, source: &mut Dir, ids: &Ids, undone: &str, report: &mut Report) -> Result<TakenIn> {
        if target.entries()?.is_empty() {
            return Ok(TakenIn::Emptied);
        }
        if !source.entries()?.is_empty() {
            // A migration killed after its copy was in place: the root's data is the
            // volume's already, and goes now.
            if !self.in_volume_already() {
                let why = format!("holds data, and so does the volume: {undone}");
                return Ok(if self.set_aside(report, &why) { TakenIn::MovedAside } else { TakenIn::Left });
            }
        } else if let Err(reason) = migrate(self.target_parent, self.source_parent, self.name) {
            report.conflicts.push((self.path.to_owned(), format!("{reason}: left as it is, {undone}")));
            return Ok(TakenIn::Left);
        } else {
            *source = self.source_parent.open_dir(self.name).map_err(|e| hostile(&self.shown(), e))?;
        }
        enforce(source, ids)?;
        tree::clear_dir(target)
            .map_err(|e| PersistError::Migration { path: self.path.to_owned(), reason: e.to_string() })?;
        report.migrated.push(self.path.to_owned());
        Ok(TakenIn::Emptied)
    }
}

pub(crate) fn directory(place: &Place<'_>, ids: &Ids, options: &[MountOption], report: &mut Report) -> Result<()> {
    let Place { target_parent, name, path, .. } = *place;
    let target = meta_of(target_parent, name)?;
    let existing = place.existing_source()?;
    let existing_identity = match &existing {
        Some(source) => Some(source.own_meta()?.identity()),
        None => None,
    };
    if place.foreign_mount(target.as_ref(), existing_identity, report)? {
        return Ok(());
    }
    let mut source = place.source_dir(existing, ids, report)?;
    let source_identity = match existing_identity {
        Some(identity) => identity,
        None => source.own_meta()?.identity(),
    };
    match target {
        Some(meta) if meta.kind == Kind::Directory && meta.identity() == source_identity => {
            return place.keep_mount(options, report);
        }
        Some(meta) if meta.kind == Kind::Directory => {
            let target = target_parent.open_dir(name)?;
            match place.take_in(&target, &mut source, ids, "not mounted", report)? {
                TakenIn::Emptied => {
                    enforce(&target, ids)?;
                }
                TakenIn::MovedAside => place.new_target_dir(ids)?,
                TakenIn::Left => return Ok(()),
            }
        }
        // Linked by a generation that declared it `how = "symlink"`.
        Some(meta) if place.is_our_link(&meta)? => {
            target_parent.remove_file(name)?;
            place.new_target_dir(ids)?;
        }
        Some(meta) => {
            let why = format!("is a {:?} in the root, not a directory", meta.kind).to_lowercase();
            if !place.set_aside(report, &why) {
                return Ok(());
            }
            place.new_target_dir(ids)?;
        }
        None => place.new_target_dir(ids)?,
    }
    mount::bind(Source::Dir(&source), target_parent, name, mount_flags(options))?;
    report.mounted.push(path.to_owned());
    Ok(())
}

/// A directory declared `how = "symlink"`: a link in the root to its directory in
/// the volume. Data in an existing directory in the root moves into an empty volume
/// directory first; a bind mount of it (from a generation that mounted it) goes.
pub(crate) fn linked_directory(place: &Place<'_>, ids: &Ids, report: &mut Report) -> Result<()> {
    let Place { target_parent, name, path, .. } = *place;
    let target = meta_of(target_parent, name)?;
    let existing = place.existing_source()?;
    let existing_identity = match (&target, &existing) {
        // A link (ours or not) is never a mount: no need to know the source's identity.
        (Some(meta), Some(source)) if meta.kind == Kind::Directory => Some(source.own_meta()?.identity()),
        _ => None,
    };
    if place.foreign_mount(target.as_ref(), existing_identity, report)? {
        return Ok(());
    }
    let mut source = place.source_dir(existing, ids, report)?;
    match target {
        Some(meta) if place.is_our_link(&meta)? => {
            report.unchanged.push(path.to_owned());
            return Ok(());
        }
        Some(meta) if meta.kind == Kind::Directory => {
            if meta.identity() == source.own_meta()?.identity() {
                mount::unmount(target_parent, name)?;
                report.unmounted.push(path.to_owned());
            }
            let target = target_parent.open_dir(name)?;
            match place.take_in(&target, &mut source, ids, "not linked", report)? {
                TakenIn::Emptied => {
                    drop(target);
                    if !target_parent.remove_empty_dir(name)? {
                        report.conflicts.push((path.to_owned(), "filled up while being emptied: left as it is".into()));
                        return Ok(());
                    }
                }
                TakenIn::MovedAside => {}
                TakenIn::Left => return Ok(()),
            }
        }
        // A link elsewhere is replaced, as for files.
        Some(meta) if meta.kind == Kind::Symlink => {}
        Some(meta) => {
            let why = format!("is a {:?} in the root, not a directory or link", meta.kind).to_lowercase();
            if !place.set_aside(report, &why) {
                return Ok(());
            }
        }
        None => {}
    }
    place.link()?;
    report.linked.push(path.to_owned());
    Ok(())
}

pub(crate) fn file(
    place: &Place<'_>,
    ids: &Ids,
    how: How,
    entry: &ResolvedEntry<'_>,
    report: &mut Report,
) -> Result<()> {
    let Place { source_parent, target_parent, name, path, volume_path: link, .. } = *place;
    if how == How::Copy {
        return copy::bring_in(source_parent, target_parent, name, path, ids, link, report);
    }
    let shown = format!("the volume's {path}");
    let mut source = copy::regular_source(source_parent, name, &shown)?;
    let mut target = meta_of(target_parent, name)?;
    let mounted = |source: Option<Meta>, target: Option<Meta>| {
        how == How::Bind
            && target.zip(source).is_some_and(|(t, s)| t.kind == Kind::File && t.identity() == s.identity())
    };
    let ours = target.zip(source).is_some_and(|(t, s)| t.identity() == s.identity());
    if target.is_some() && !ours && foreign_mount(target_parent, name, path, report)? {
        return Ok(());
    }
    // Data already in the root moves into an empty (or missing) volume file; both are
    // read through checked descriptors and streamed, never held whole.
    let live = match target {
        Some(meta) if meta.kind == Kind::File && meta.size > 0 && !mounted(source, target) => {
            Some(target_parent.open_checked(name, Accept::File)?)
        }
        _ => None,
    };
    let source_empty = source.is_none_or(|m| m.size == 0);
    if let Some(live) = &live {
        if !source_empty && !source_parent.open_checked(name, Accept::File)?.same_contents(live)? {
            if !place.set_aside(report, "holds data, and so does the volume") {
                return Ok(());
            }
            target = None;
        } else if source_empty {
            source_parent.remove_stale_temporaries(name)?;
            source_parent.copy_atomic(name, live, ids.mode, Some((ids.uid, ids.gid)))?;
            report.migrated.push(path.to_owned());
            source = meta_of(source_parent, name)?;
        }
    }
    if source.is_none() {
        source_parent.create_file_owned(name, first_contents(path), ids.mode, Some((ids.uid, ids.gid)))?;
        source = meta_of(source_parent, name)?;
    } else if path == "/etc/machine-id" && source.is_some_and(|m| m.size == 0) && !mounted(source, target) {
        // Empty is a first boot too, but one whose id systemd writes straight into the
        // mounted file, and then systemd-machine-id-commit.service fails: the file is
        // not on a tmpfs. `uninitialized` makes the id transient until the first boot
        // completes, and the commit writes it through the mount into the volume.
        source_parent.write_atomic_owned(name, MACHINE_ID_FIRST_BOOT, ids.mode, Some((ids.uid, ids.gid)))?;
        source = meta_of(source_parent, name)?;
    }
    let source = source.expect("the source exists by now");
    // Created just now with its owner and mode, a source has nothing to report.
    let wrong = enforce_at(source_parent, name, &source, ids)?;
    record_fixed(report, place.volume_path.to_owned(), wrong);
    match how {
        How::Bind => {
            if mounted(Some(source), target) {
                return place.keep_mount(&entry.entry.options, report);
            }
            if target.is_some_and(|meta| meta.kind != Kind::File) {
                if !place.set_aside(report, "is not a regular file in the root") {
                    return Ok(());
                }
                target = None;
            }
            if target.is_none() {
                target_parent.create_file_owned(name, b"", ids.mode, Some((ids.uid, ids.gid)))?;
            }
            mount::bind(Source::File(source_parent, name), target_parent, name, mount_flags(&entry.entry.options))?;
            report.mounted.push(path.to_owned());
        }
        How::Copy => unreachable!("handled above"),
        How::Symlink => {
            match target {
                Some(meta) if place.is_our_link(&meta)? => {
                    report.unchanged.push(path.to_owned());
                    return Ok(());
                }
                Some(meta)
                    if (meta.kind == Kind::Directory || meta.kind == Kind::Other)
                        && !place.set_aside(report, "is not a file or link in the root") =>
                {
                    return Ok(());
                }
                _ => {}
            }
            place.link()?;
            report.linked.push(path.to_owned());
        }
    }
    Ok(())
}
