//! Planning an activation: the diff of the two manifests, and a look at only the
//! paths that change; and planning a repair, a look at every path (or those asked
//! for). Nothing here changes `/etc`: `apply` carries the plans out.

use std::cell::OnceCell;
use std::collections::HashMap;
use std::fmt::Write as _;

use blankslate_decl::UserDb;
use blankslate_decl::paths::is_inside;
use blankslate_state::diff::etc_changes;
use blankslate_state::manifest::{Entries, EtcKind, Manifest, ManifestEntry, content_hash};
use blankslate_state::store::Store;
use blankslate_sys::fs::{Accept, Dir, Kind, Refusal};

use super::stamps::Stamps;
use super::{
    Action, BACKUP_SUFFIX, EtcError, EtcGeneration, Found, OnConflict, Plan, Result, STATIC, Step, active_record,
    ancestors, done, holds, open_etc, resolve, same, split,
};

/// Open directories below `/etc`, by relative path (`""` is `/etc`); `None` for
/// one that does not exist.
pub(super) struct Dirs<'a> {
    etc: Option<&'a Dir>,
    open: HashMap<String, Option<Dir>>,
    /// The previous generation's entries: a parent that is one of them (a link or a
    /// copy, now to become a directory) is not in the way, it is to be removed.
    old: &'a Entries,
    /// The new generation's entries: a parent that is one of them (a directory that
    /// became a file or link, by an activation that was interrupted after) holds
    /// nothing of the previous generation any more.
    new: &'a Entries,
}

impl<'a> Dirs<'a> {
    pub(super) fn new(etc: Option<&'a Dir>, old: &'a Entries, new: &'a Entries) -> Self {
        Dirs { etc, open: HashMap::new(), old, new }
    }

    pub(super) fn get(&mut self, path: &str, entry: &str) -> Result<Option<&Dir>> {
        if path.is_empty() {
            return Ok(self.etc);
        }
        if !self.open.contains_key(path) {
            let dir = match self.etc.map(|etc| etc.open_dir(path)) {
                None => None,
                Some(Ok(dir)) => Some(dir),
                Some(Err(error)) if error.is_not_found() => None,
                Some(Err(_)) if entry_in(self.old, path)? || entry_in(self.new, path)? => None,
                Some(Err(error)) => {
                    return Err(EtcError::Blocked {
                        path: entry.to_owned(),
                        parent: path.to_owned(),
                        reason: error.source.to_string(),
                    });
                }
            };
            self.open.insert(path.to_owned(), dir);
        }
        Ok(self.open[path].as_ref())
    }

    /// Whether `path` was a directory entry of the previous generation.
    fn old_directory(&self, path: &str) -> Result<bool> {
        Ok(self.old.try_get(path)?.is_some_and(|e| e.kind == EtcKind::Directory))
    }

    /// Whether the previous generation had entries below `path`.
    fn old_below(&self, path: &str) -> Result<bool> {
        Ok(self.old.try_has_below(path)?)
    }

    /// Whether the directory at `path` holds nothing but the previous generation's
    /// entries below it (and directories for them): then it is blankslate's, not a
    /// person's. Some of them may be gone already (a removal a crash interrupted). An
    /// empty one is blankslate's only if the previous generation declared it; a
    /// directory below that is neither declared nor on the way to an entry is a
    /// person's, even empty.
    fn holds_only_old_entries(&mut self, path: &str) -> Result<bool> {
        if !self.old_below(path)? && !self.old_directory(path)? {
            return Ok(false);
        }
        let Some(etc) = self.etc else { return Ok(false) };
        let mut pending = vec![path.to_owned()];
        while let Some(dir_path) = pending.pop() {
            for (name, kind) in etc.open_dir(&dir_path)?.entries()? {
                let child = format!("{dir_path}/{}", name.to_string_lossy());
                let ours = match self.old.try_get(&child)? {
                    Some(entry) => (kind == Kind::Directory) == (entry.kind == EtcKind::Directory),
                    None => kind == Kind::Directory && self.old_below(&child)?,
                };
                if !ours {
                    return Ok(false);
                }
                if kind == Kind::Directory {
                    pending.push(child);
                }
            }
        }
        Ok(true)
    }

    pub(super) fn inspect(&mut self, path: &str, hash: bool) -> Result<Found> {
        let (parent, name) = split(path);
        let Some(dir) = self.get(parent, path)? else { return Ok(Found::Absent) };
        // A copy is opened first: the checked descriptor's `fstat` says all an `lstat`
        // would of the regular file a copy should be, so the `lstat` is made only for
        // what the descriptor refuses (a symlink, a directory, a FIFO, a hard link).
        if hash {
            match dir.open_checked(name, Accept::File) {
                Ok(file) => {
                    let (mode, uid, gid) = (file.meta().mode, file.meta().uid, file.meta().gid);
                    return Ok(Found::File { hash: content_hash(&file.read_to_end()?), mode, uid, gid });
                }
                Err(error) if error.is_not_found() => return Ok(Found::Absent),
                Err(error) if error.refusal().is_some() => {}
                Err(error) => return Err(error.into()),
            }
        }
        let meta = match dir.meta(name) {
            Ok(meta) => meta,
            Err(error) if error.is_not_found() => return Ok(Found::Absent),
            Err(error) => return Err(error.into()),
        };
        Ok(match meta.kind {
            Kind::Symlink => Found::link(dir.read_link(name)?),
            // Read through a checked descriptor: a FIFO swapped in is never waited on,
            // and a file with other names (a link to a file elsewhere) is never read; it
            // is not one of ours either way.
            Kind::File if hash => match dir.open_checked(name, Accept::File) {
                Ok(file) => {
                    let hash = content_hash(&file.read_to_end()?);
                    Found::File { hash, mode: meta.mode, uid: meta.uid, gid: meta.gid }
                }
                Err(error) if matches!(error.refusal(), Some(Refusal::HardLinked(_))) => {
                    Found::File { hash: String::new(), mode: meta.mode, uid: meta.uid, gid: meta.gid }
                }
                Err(error) if error.refusal().is_some() => Found::Other,
                Err(error) if error.is_not_found() => Found::Absent,
                Err(error) => return Err(error.into()),
            },
            Kind::File => Found::File { hash: String::new(), mode: meta.mode, uid: meta.uid, gid: meta.gid },
            Kind::Directory => Found::Directory { mode: meta.mode, uid: meta.uid, gid: meta.gid },
            Kind::Other => Found::Other,
        })
    }

    /// Whether the regular file `found` at `path`, where `entry` puts a link into the
    /// store, holds that entry's very bytes (a package's file, taken into the etc tree
    /// as it is): replacing it by the link loses nothing, so it is not a conflict.
    /// Read only in that case, through the same checked descriptor as a copy.
    pub(super) fn has_contents_of(&mut self, path: &str, found: &Found, entry: &ManifestEntry) -> Result<bool> {
        if entry.kind != EtcKind::Link || entry.hash.is_empty() || !matches!(found, Found::File { .. }) {
            return Ok(false);
        }
        Ok(matches!(self.inspect(path, true)?, Found::File { hash, .. } if hash == entry.hash))
    }

    /// What is at `path`, for an entry that should be a symlink: one `readlink` when
    /// it is one or nothing is there, an `lstat` more only when something else is.
    pub(super) fn probe_link(&mut self, path: &str) -> Result<Found> {
        let (parent, name) = split(path);
        let Some(dir) = self.get(parent, path)? else { return Ok(Found::Absent) };
        match dir.read_link(name) {
            Ok(target) => Ok(Found::link(target)),
            Err(error) if error.is_not_found() => Ok(Found::Absent),
            Err(error) if error.source.raw_os_error() == Some(rustix::io::Errno::INVAL.raw_os_error()) => {
                self.inspect(path, false)
            }
            Err(error) => Err(error.into()),
        }
    }

    /// A free backup name for `path`: `NAME.blankslate-backup`, then `.1`, `.2`, …;
    /// free means the new generation does not declare it and nothing is there (or the
    /// very file at `path`, given that second name by an activation interrupted
    /// before it replaced it).
    pub(super) fn backup_name(&mut self, path: &str, declared: &Manifest) -> Result<String> {
        let (parent, name) = split(path);
        let own = match self.get(parent, path)?.map(|dir| dir.meta(name)) {
            Some(Ok(meta)) if meta.kind != Kind::Directory => Some(meta.identity()),
            _ => None,
        };
        for n in 0.. {
            let candidate =
                if n == 0 { format!("{name}{BACKUP_SUFFIX}") } else { format!("{name}{BACKUP_SUFFIX}.{n}") };
            let full = if parent.is_empty() { candidate.clone() } else { format!("{parent}/{candidate}") };
            if declared.entries.try_contains_key(&full)? {
                continue;
            }
            if self.inspect(&full, false)? == Found::Absent {
                return Ok(candidate);
            }
            let dir = self.get(parent, path)?.expect("a backup was found in it");
            if own.is_some() && dir.meta(&candidate).ok().map(|m| m.identity()) == own {
                return Ok(candidate);
            }
        }
        unreachable!("some backup name is free")
    }
}

/// Whether `path` or one of its ancestors is a file or link entry of `entries` (a
/// directory entry is no reason for a parent not to open).
fn entry_in(entries: &Entries, path: &str) -> Result<bool> {
    for prefix in ancestors(path) {
        if entries.try_get(prefix)?.is_some_and(|e| e.kind != EtcKind::Directory) {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Works out what activating `to` would do, from the last activated state (its
/// manifest read from `store`; none without one); reads only the paths that change.
/// `users` is asked for the owner database only if a copy changes. The plan keeps
/// `to` (taken, not copied: its manifest is the larger part of a switch's memory).
pub fn plan(
    root: &Dir,
    store: Option<&Store>,
    to: EtcGeneration,
    users: &dyn Fn() -> UserDb,
    on_conflict: OnConflict,
) -> Result<Plan> {
    let (from, unread) = previous(root, store, &to)?;
    let mut plan = plan_from(root, from, to, users, on_conflict)?;
    plan.unread_previous = unread;
    Ok(plan)
}

/// A generation the state file names whose manifest cannot be read, and why.
type Unread = (u32, String);

/// The generation `/etc` was last activated to, to plan from, with its manifest read
/// from `store`; or, when the state file names one whose manifest cannot be read (or
/// there is no store), none, and the generation with the reason: a switch is never
/// stuck on the generation it leaves.
/// Its manifest is read in runs, those `to` does not have as well read here, so that
/// one that cannot be read is a manifest that cannot be read, too.
fn previous(root: &Dir, store: Option<&Store>, to: &EtcGeneration) -> Result<(Option<EtcGeneration>, Option<Unread>)> {
    let Some(record) = active_record(root)? else { return Ok((None, None)) };
    let Some(store) = store else { return Ok((None, Some((record.generation, "no store".to_owned())))) };
    let generation = record.generation;
    let read = EtcGeneration::load_in_runs(store, generation, &record.object).map_err(|error| error.to_string());
    let read = read.and_then(|from| {
        from.manifest.entries.read_unshared(&to.manifest.entries).map_err(|error| error.to_string())?;
        Ok(from.recorded(record))
    });
    match read {
        Ok(from) => Ok((Some(from), None)),
        Err(reason) => Ok((None, Some((generation, reason)))),
    }
}

fn plan_from(
    root: &Dir,
    from: Option<EtcGeneration>,
    to: EtcGeneration,
    users: &dyn Fn() -> UserDb,
    on_conflict: OnConflict,
) -> Result<Plan> {
    let owners = std::cell::OnceCell::new();
    let etc = open_etc(root)?;
    let empty = Manifest::new();
    let old = from.as_ref().map_or(&empty, |a| &a.manifest);
    // Read in runs, the manifests are read only where they differ (the previous one's
    // runs were read already: `previous`).
    to.manifest.entries.read_unshared(&old.entries)?;
    let mut dirs = Dirs::new(etc.as_ref(), &old.entries, &to.manifest.entries);
    let mut steps = Vec::new();
    let mut removals = Vec::new();
    let mut unchanged = to.manifest.entries.len();
    for change in etc_changes(old, &to.manifest) {
        let (path, previous) = (change.path, change.old);
        let Some(entry) = change.new else {
            let entry = previous.expect("a change has a side");
            let found = dirs.inspect(path, entry.kind == EtcKind::Copy)?;
            let step = match found {
                Found::Absent => continue,
                Found::Directory { .. } if entry.kind == EtcKind::Directory => {
                    undeclared_directory(&mut dirs, path, &to.manifest)?
                }
                _ if holds(&found, path, entry) => Step::bare(path, Action::Remove),
                other => Step::bare(path, Action::LeaveAlone { found: other.to_string() }),
            };
            removals.push(step);
            continue;
        };
        if previous.is_some_and(|p| same(p, entry)) {
            continue;
        }
        unchanged -= 1;
        let is_copy = |e: &ManifestEntry| e.kind == EtcKind::Copy;
        let found = dirs.inspect(path, is_copy(entry) || previous.is_some_and(is_copy))?;
        let owner = if entry.is_owned() { Some(resolve(path, entry, owners.get_or_init(users))?) } else { None };
        if done(&found, path, entry, owner) {
            continue;
        }
        let is_directory = matches!(found, Found::Directory { .. });
        let action = if found == Found::Absent {
            Action::Create
        } else if entry.kind == EtcKind::Directory && is_directory {
            // Whoever made it, the directory is declared now: it gets the declared
            // owner and mode, and keeps what it holds.
            Action::Replace
        } else if is_directory && previous.is_some_and(|p| p.kind == EtcKind::Directory) {
            // A declared directory that becomes a file or link: only an empty one, or
            // one with nothing but the previous generation's entries, is replaced.
            if dirs.holds_only_old_entries(path)? {
                Action::Replace
            } else {
                Action::BackUp {
                    backup: dirs.backup_name(path, &to.manifest)?,
                    found: "a directory holding a person's files".to_owned(),
                }
            }
        } else if previous.is_some_and(|p| holds(&found, path, p))
            || holds(&found, path, entry)
            || dirs.has_contents_of(path, &found, entry)?
        {
            Action::Replace
        } else if is_directory && dirs.holds_only_old_entries(path)? {
            // The previous generation's entries were below: they go first, then this.
            Action::Replace
        } else {
            Action::BackUp { backup: dirs.backup_name(path, &to.manifest)?, found: found.to_string() }
        };
        steps.push(Step::declared(path, action, owner));
    }
    // What the apply asks the new entries about a removal is asked here, so that a
    // run that cannot be read is the plan's error, before anything changes.
    // (`in_the_way`: below it and its parents; `remove_empty_parents`: its parents.)
    for step in removals.iter().filter(|step| step.action == Action::Remove) {
        to.manifest.entries.try_has_below(&step.path)?;
        for up in ancestors(&step.path).skip(1) {
            to.manifest.entries.try_get(up)?;
            to.manifest.entries.try_has_below(up)?;
        }
    }
    steps.append(&mut removals);
    let switch_static = match dirs.inspect(STATIC, false)? {
        Found::Link(target) if target == to.static_target => None,
        Found::Link(_) | Found::Absent => Some(None),
        _ => Some(Some(dirs.backup_name(STATIC, &to.manifest)?)),
    };
    let plan = Plan {
        from,
        to,
        steps,
        switch_static,
        unchanged,
        links_unread: 0,
        repair: false,
        repair_only: Vec::new(),
        relink: false,
        unread_previous: None,
    };
    if on_conflict == OnConflict::Refuse {
        refuse_conflicts(&plan)?;
    }
    Ok(plan)
}

/// The step for a directory the previous generation declared and the new one does
/// not. Still needed for the new generation's entries below it: it becomes an
/// ordinary `0755 root:root` directory. Otherwise it goes if it holds nothing but the
/// previous generation's entries (they go too), and is left, with what a person put in
/// it, if not.
fn undeclared_directory(dirs: &mut Dirs<'_>, path: &str, new: &Manifest) -> Result<Step> {
    if new.entries.try_has_below(path)? {
        return Ok(Step::plain_directory(path));
    }
    let action = if dirs.holds_only_old_entries(path)? {
        Action::Remove
    } else {
        Action::LeaveAlone { found: "a directory holding a person's files".to_owned() }
    };
    Ok(Step::bare(path, action))
}

/// Fails, listing them, if the plan would move anything aside.
pub(super) fn refuse_conflicts(plan: &Plan) -> Result<()> {
    {
        let mut list = String::new();
        for step in plan.backups() {
            if let Action::BackUp { found, .. } = &step.action {
                let _ = writeln!(list, "  /etc/{}: {found}", step.path);
            }
        }
        if let Some(Some(_)) = &plan.switch_static {
            list.push_str("  /etc/static: not a symlink\n");
        }
        if !list.is_empty() {
            return Err(EtcError::Conflicts { count: list.lines().count(), list });
        }
    }
    Ok(())
}

/// The steps that put every entry of `to` (or only those at or below `only`) back as
/// it was activated, in `etc` (`None`: there is no `/etc`).
///
/// A link whose directory `stamps` vouches for is not read.
pub(super) fn plan_repair(
    etc: Option<&Dir>,
    to: EtcGeneration,
    users: &dyn Fn() -> UserDb,
    only: &[String],
    stamps: &mut Stamps,
) -> Result<Plan> {
    let chosen = |path: &str| only.is_empty() || only.iter().any(|o| path == o || is_inside(path, o));
    let owners = OnceCell::new();
    let (steps, unchanged, links_unread, switch_static) = {
        let mut dirs = Dirs::new(etc, &to.manifest.entries, &to.manifest.entries);
        let mut steps = Vec::new();
        let (mut unchanged, mut links_unread) = (0, 0);
        for lazy in to.manifest.entries.each().filter(|lazy| chosen(lazy.path)) {
            let path = lazy.path;
            // A link is not even made from the manifest when its directory is vouched for.
            if !lazy.is_owned() && vouched(&mut dirs, stamps, path)? {
                unchanged += 1;
                links_unread += 1;
                continue;
            }
            let entry = lazy.entry();
            let (found, owner) = if entry.is_owned() {
                let found = dirs.inspect(path, entry.kind == EtcKind::Copy)?;
                (found, Some(resolve(path, entry, owners.get_or_init(users))?))
            } else {
                (dirs.probe_link(path)?, None)
            };
            if done(&found, path, entry, owner) {
                unchanged += 1;
                continue;
            }
            let action = match &found {
                Found::Absent => Action::Create,
                Found::File { mode, uid, gid, .. } | Found::Directory { mode, uid, gid }
                    if holds(&found, path, entry) =>
                {
                    Action::Fix { found: format!("mode {mode:04o}, owner {uid}:{gid}") }
                }
                // A file with the very bytes of the link that goes there (`etc keep`).
                other if dirs.has_contents_of(path, other, entry)? => Action::Replace,
                Found::File { .. } if entry.kind == EtcKind::Copy => Action::BackUp {
                    backup: dirs.backup_name(path, &to.manifest)?,
                    found: "a copy with other contents".to_owned(),
                },
                other => Action::BackUp { backup: dirs.backup_name(path, &to.manifest)?, found: other.to_string() },
            };
            steps.push(Step::declared(path, action, owner));
        }
        let switch_static = match dirs.probe_link(STATIC)? {
            _ if !only.is_empty() => None,
            Found::Link(target) if target == to.static_target => None,
            Found::Link(_) | Found::Absent => Some(None),
            _ => Some(Some(dirs.backup_name(STATIC, &to.manifest)?)),
        };
        (steps, unchanged, links_unread, switch_static)
    };
    // A repair goes from the generation to itself: `from` would only repeat `to`.
    Ok(Plan {
        from: None,
        to,
        steps,
        switch_static,
        unchanged,
        links_unread,
        repair: true,
        repair_only: only.to_vec(),
        relink: false,
        unread_previous: None,
    })
}

/// Whether `stamps` vouch for the directory holding the link at `path`.
fn vouched(dirs: &mut Dirs<'_>, stamps: &mut Stamps, path: &str) -> Result<bool> {
    let parent = split(path).0;
    Ok(dirs.get(parent, path)?.is_some_and(|dir| stamps.vouch(parent, dir)))
}

/// The repair [`super::relink`] makes: of every entry, only the files that hold their
/// link's bytes become links again (a repair replaces a file by its link only then).
pub(super) fn plan_relink(root: &Dir, to: EtcGeneration, users: &dyn Fn() -> UserDb) -> Result<Plan> {
    let etc = open_etc(root)?;
    let mut stamps = Stamps::load(etc.as_ref(), &to);
    let mut plan = plan_repair(etc.as_ref(), to, users, &[], &mut stamps)?;
    plan.steps.retain(|step| step.action == Action::Replace);
    plan.switch_static = None;
    plan.relink = true;
    Ok(plan)
}
