//! Carrying out a plan in crash-safe order, and finishing one that was interrupted.

use std::collections::HashMap;
use std::fmt;

use blankslate_state::activation::{JOURNAL_FILE, Marker, Record, STATE_FILE, active_record};
use blankslate_state::generation::LockedState;
use blankslate_state::manifest::{Entries, EtcKind, Manifest, ManifestEntry, TREE_DIR};
use blankslate_state::store::Store;
use blankslate_sys::failpoint;
use blankslate_sys::fs::{Dir, Kind};
use serde::{Deserialize, Serialize};

use super::{
    ACTIVE_FILE, Action, Counts, EtcError, EtcGeneration, FAILPOINT, OnConflict, Plan, Result, STAGED_SUFFIX,
    STATE_DIR, STATIC, Step, ancestors, link_target, open_etc, plan, split, users_from_contents,
};

/// An activation under way: where it is going. Where it comes from is the state
/// file, which is only replaced once everything else is done.
#[derive(Debug, Serialize, Deserialize)]
struct Journal {
    generation: u32,
    object: String,
    /// A repair of the generation, which recovery finishes as a repair.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    repair: bool,
    /// The entries a repair was limited to (none: every entry).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    only: Vec<String>,
    /// A repair limited to files holding their link's bytes ([`super::relink`]).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    relink: bool,
}

/// What an activation did.
#[derive(Debug)]
pub struct Activated {
    pub plan: Plan,
    /// The generation an interrupted activation was completed to first, if any.
    pub recovered: Option<u32>,
}

/// What [`activate_generation`] did.
#[derive(Debug)]
pub enum Outcome {
    /// The generation was active already, as the marker says: nothing was read but
    /// the marker and `/etc/static`.
    AlreadyActive(Marker),
    Activated(Box<Activated>),
}

impl Outcome {
    /// The plan carried out, if anything was planned.
    pub fn plan(&self) -> Option<&Plan> {
        match self {
            Outcome::AlreadyActive(_) => None,
            Outcome::Activated(activated) => Some(&activated.plan),
        }
    }

    /// What it did, counted.
    pub fn counts(&self) -> Counts {
        match self {
            Outcome::AlreadyActive(marker) => Counts { unchanged: marker.entries, ..Counts::default() },
            Outcome::Activated(activated) => activated.plan.counts(),
        }
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Outcome::AlreadyActive(marker) => writeln!(
                f,
                "/etc: generation {0} -> generation {0}\n0 added, 0 changed, 0 removed, 0 backed up, 0 left alone, {1} \
                 unchanged",
                marker.generation, marker.entries
            ),
            Outcome::Activated(activated) => activated.plan.fmt(f),
        }
    }
}

/// Activates generation `generation`, whose etc object is `object`, on `root`. When
/// it is already active (the marker says so and `/etc/static` points at it), that is
/// all this reads: a no-op costs the same for 10 entries or 10,000. Otherwise as
/// [`activate`]. For a root nothing else writes (boot, a sandbox); on a running root
/// a switch goes through [`commit`], which takes the state lock.
pub fn activate_generation(
    root: &Dir,
    store: &Store,
    generation: u32,
    object: &str,
    on_conflict: OnConflict,
) -> Result<Outcome> {
    if !has_journal(root) {
        let prepared = prepare(root, store, generation, object, on_conflict)?;
        return commit_on(root, prepared);
    }
    let to = EtcGeneration::load(store, generation, object)?;
    Ok(Outcome::Activated(Box::new(activate(root, store, &to, on_conflict)?)))
}

/// An activation worked out, and checked as far as it can be without changing
/// anything: the owners of copies resolve, conflicts are refused if asked. Nothing
/// changed yet; [`commit`] carries it out.
#[derive(Debug)]
pub enum Prepared {
    /// Active already, as the marker says (nothing else was read).
    AlreadyActive(Marker),
    /// The plan, and the generation's tree to copy from.
    Planned { plan: Box<Plan>, tree: Dir },
}

/// Works out the activation of generation `generation` (etc object `object`) on
/// `root`, changing nothing. An activation that was interrupted must be finished
/// first ([`recover`]).
pub fn prepare(root: &Dir, store: &Store, generation: u32, object: &str, on_conflict: OnConflict) -> Result<Prepared> {
    let static_target = store.live_path(object).join(TREE_DIR);
    if let Some(marker) = already_active(root, generation, object, static_target.as_os_str()) {
        return Ok(Prepared::AlreadyActive(marker));
    }
    let to = EtcGeneration::load_in_runs(store, generation, object)?;
    let tree = open_tree(store, &to.object)?;
    let users = || users_from_contents(root, |name| tree.read(name).ok());
    let plan = plan(root, Some(store), to, &users, on_conflict)?;
    Ok(Prepared::Planned { plan: Box::new(plan), tree })
}

/// Carries out what [`prepare`] worked out on the root of `state`.
pub fn commit(state: &LockedState, prepared: Prepared) -> Result<Outcome> {
    commit_on(state.root(), prepared)
}

fn commit_on(root: &Dir, prepared: Prepared) -> Result<Outcome> {
    let (plan, tree) = match prepared {
        Prepared::AlreadyActive(marker) => return Ok(Outcome::AlreadyActive(marker)),
        Prepared::Planned { plan, tree } => (plan, tree),
    };
    carry_out(root, &plan, &tree)?;
    Ok(Outcome::Activated(Box::new(Activated { plan: *plan, recovered: None })))
}

/// Activates `to` (an etc object in `store`) on `root`: first finishes an activation
/// that was interrupted, then applies the diff from the last activated generation.
/// For a root nothing else writes, as [`activate_generation`].
pub fn activate(root: &Dir, store: &Store, to: &EtcGeneration, on_conflict: OnConflict) -> Result<Activated> {
    let recovered = recover(root, store)?;
    let static_target = std::ffi::OsStr::new(&to.static_target);
    if recovered.is_none() && already_active(root, to.generation, &to.object, static_target).is_some() {
        let plan = Plan {
            from: Some(to.clone()),
            to: to.clone(),
            steps: Vec::new(),
            switch_static: None,
            unchanged: to.manifest.entries.len(),
            links_unread: 0,
            repair: false,
            repair_only: Vec::new(),
            relink: false,
            unread_previous: None,
        };
        return Ok(Activated { plan, recovered });
    }
    let tree = open_tree(store, &to.object)?;
    let users = || users_from_contents(root, |name| tree.read(name).ok());
    let plan = plan(root, Some(store), to.clone(), &users, on_conflict)?;
    carry_out(root, &plan, &tree)?;
    Ok(Activated { plan, recovered })
}

/// Applies `plan`, or when there is nothing to change in `/etc` but the record names
/// another generation (one with the same `/etc`, or a marker missing or of an older
/// format), records `plan.to` as active.
fn carry_out(root: &Dir, plan: &Plan, tree: &Dir) -> Result<()> {
    let to = &plan.to;
    if !plan.is_noop() {
        apply(root, plan, tree)?;
    } else if plan.from.as_ref().map(|f| f.generation) != Some(to.generation)
        || blankslate_state::activation::marker(root) != Some(Marker::of(to))
    {
        let etc = root.create_dir_all("etc", 0o755)?;
        record(&etc.create_dir_all(STATE_DIR, 0o700)?, &to.record(), &Marker::of(to))?;
    }
    Ok(())
}

/// Records `generation` as the generation `/etc` is activated to, changing nothing in
/// `/etc`. The caller's promise: `generation` has the `/etc` object `/etc` is at
/// already (it differs only outside `/etc`, as the one `persist add` makes from the
/// active one does). Returns whether it is so recorded: not when nothing is active, or
/// an activation is under way.
/// Idempotent: what is recorded already is not written again.
pub fn relabel(root: &Dir, store: &Store, generation: u32) -> Result<bool> {
    let Some(etc) = open_etc(root)? else { return Ok(false) };
    let Ok(state) = etc.open_dir(STATE_DIR) else { return Ok(false) };
    let pending = blankslate_state::activation::read_json::<Journal>(&state, JOURNAL_FILE)?.is_some();
    let Some(from) = active_record(root)?.filter(|_| !pending) else { return Ok(false) };
    // The marker counts the object's entries; only when it names another object (a
    // marker of an older format) is the manifest read to count them.
    let present = blankslate_state::activation::marker(root);
    let entries = match &present {
        Some(present) if present.object == from.object => present.entries,
        // Read in runs, only its index is read to count them.
        _ => EtcGeneration::load_in_runs(store, from.generation, &from.object)?.manifest.entries.len(),
    };
    let wanted = Marker { generation, object: from.object.clone(), entries };
    // Recorded already, state file and marker alike (a relabel killed between the two
    // leaves the state file ahead): nothing to write.
    if from.generation != generation || present.as_ref() != Some(&wanted) {
        record(&state, &Record { generation, ..from }, &wanted)?;
    }
    Ok(true)
}

/// Writes the state file, then the marker, for a completed activation.
fn record(state: &Dir, active: &Record, marker: &Marker) -> Result<()> {
    state.write_atomic(STATE_FILE, &serde_json::to_vec(active).expect("the record serializes"), 0o600)?;
    failpoint::hit(FAILPOINT);
    state.write_atomic(ACTIVE_FILE, marker.render().as_bytes(), 0o600)?;
    Ok(())
}

/// The marker, if it names `generation` and `object` and `/etc/static` still points
/// at `static_target`: then nothing is to be done, and not even the state file needs
/// reading.
fn already_active(root: &Dir, generation: u32, object: &str, static_target: &std::ffi::OsStr) -> Option<Marker> {
    let etc = open_etc(root).ok()??;
    let marker = Marker::parse(&etc.open_dir(STATE_DIR).ok()?.read(ACTIVE_FILE).ok()?)?;
    let same = marker.generation == generation && marker.object == object;
    (same && etc.read_link(STATIC).is_ok_and(|target| target == static_target)).then_some(marker)
}

fn has_journal(root: &Dir) -> bool {
    root.open_dir(blankslate_state::activation::DIR).is_ok_and(|state| state.meta(JOURNAL_FILE).is_ok())
}

/// Finishes an interrupted activation (or repair), if the journal says there was one.
pub fn recover(root: &Dir, store: &Store) -> Result<Option<u32>> {
    let Some(etc) = open_etc(root)? else { return Ok(None) };
    let Ok(state) = etc.open_dir(STATE_DIR) else { return Ok(None) };
    let Some(journal) = blankslate_state::activation::read_json::<Journal>(&state, JOURNAL_FILE)? else {
        return Ok(None);
    };
    let to = EtcGeneration::load(store, journal.generation, &journal.object)?;
    let tree = open_tree(store, &to.object)?;
    let users = || users_from_contents(root, |name| tree.read(name).ok());
    let plan = if journal.relink {
        super::inspect::plan_relink(root, to, &users)?
    } else if journal.repair {
        let mut stamps = super::stamps::Stamps::load(Some(&etc), &to);
        super::inspect::plan_repair(Some(&etc), to, &users, &journal.only, &mut stamps)?
    } else {
        plan(root, Some(store), to, &users, OnConflict::Backup)?
    };
    apply(root, &plan, &tree)?;
    Ok(Some(journal.generation))
}

/// The `/etc` tree of the etc store object `object`.
pub(super) fn open_tree(store: &Store, object: &str) -> Result<Dir> {
    let object = store.open_object(object)?;
    Ok(object.open_dir(TREE_DIR)?)
}

pub(super) fn staged(name: &str) -> String {
    format!(".{name}{STAGED_SUFFIX}")
}

/// Removes a leftover temporary from an interrupted run.
pub(super) fn clear(dir: &Dir, name: &str) -> Result<()> {
    match dir.remove_file(name) {
        Err(error) if !error.is_not_found() => Err(error.into()),
        _ => Ok(()),
    }
}

/// Applies a plan in an order that is crash-safe and keeps every entry readable
/// (invariant 8), so that a reader sees the old generation or the new one: journal;
/// what stands in the way moved aside (a file or link kept in place under a second
/// name until the new entry replaces it); the removals a change of kind needs first
/// (entries below what becomes a file, what stands where a directory goes);
/// directories; staged copies; links; copies into place; the static switch; then the
/// removals of entries only the old generation declared (directories last, deepest
/// first); fsync; state; journal gone.
pub(super) fn apply(root: &Dir, plan: &Plan, tree: &Dir) -> Result<()> {
    let etc = root.create_dir_all("etc", 0o755)?;
    let state = etc.create_dir_all(STATE_DIR, 0o700)?;
    // Finishing a run that was killed: its staged entries may be left (below).
    let recovering = state.meta(JOURNAL_FILE).is_ok();
    let journal = Journal {
        generation: plan.to.generation,
        object: plan.to.object.clone(),
        repair: plan.repair,
        only: plan.repair_only.clone(),
        relink: plan.relink,
    };
    state.write_atomic(JOURNAL_FILE, &serde_json::to_vec(&journal).expect("journal serializes"), 0o600)?;
    // The marker names the generation only once it is complete.
    clear(&state, ACTIVE_FILE)?;
    failpoint::hit(FAILPOINT);

    let mut parents = Parents { etc: &etc, open: HashMap::new() };
    // Each step that makes something, with its entry, looked up once.
    let creates: Vec<(&Step, &ManifestEntry)> =
        plan.steps.iter().filter_map(|step| Some((step, plan.entry(step)?))).collect();
    let (mut first, mut last) = (Vec::new(), Vec::new());
    for step in plan.steps.iter().filter(|s| s.action == Action::Remove) {
        let before = if in_the_way(&step.path, &plan.to.manifest.entries)? { &mut first } else { &mut last };
        before.push(step);
    }

    if let Some(Some(backup)) = &plan.switch_static {
        move_aside(&etc, STATIC, backup)?;
        failpoint::hit(FAILPOINT);
    }
    for (step, entry) in &creates {
        if let Action::BackUp { backup, .. } = &step.action {
            let dir = parents.get(&step.path)?;
            let name = split(&step.path).1;
            let directory = entry.kind == EtcKind::Directory || dir.meta(name).is_ok_and(|m| m.kind == Kind::Directory);
            let aside = if directory { move_aside } else { link_aside };
            aside(dir, name, backup)?;
            failpoint::hit(FAILPOINT);
        }
    }
    remove_all(&etc, plan, first)?;
    make_directories(&mut parents, &creates)?;
    for (step, entry) in &creates {
        if entry.kind != EtcKind::Copy {
            continue;
        }
        let dir = parents.get(&step.path)?;
        let temp = staged(split(&step.path).1);
        let contents = tree.read(&step.path)?;
        match dir.create_file_owned(&temp, &contents, entry.mode_bits(), step.owner) {
            // Left by an interrupted run: made again from the store.
            Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => {
                dir.remove_file(&temp)?;
                dir.create_file_owned(&temp, &contents, entry.mode_bits(), step.owner)?;
            }
            other => {
                other?;
            }
        }
        failpoint::hit(FAILPOINT);
    }
    for (step, entry) in &creates {
        let Some(target) = link_target(&step.path, entry) else { continue };
        let dir = parents.get(&step.path)?;
        let name = split(&step.path).1;
        if step.action == Action::Create {
            if recovering {
                // Staged by the killed run, whose rename never came (the old entry
                // was removed first: it was in the way).
                clear(dir, &staged(name))?;
            }
            dir.symlink(name, &target)?;
        } else {
            let temp = staged(name);
            clear(dir, &temp)?;
            dir.symlink(&temp, &target)?;
            dir.rename(&temp, name)?;
        }
        failpoint::hit(FAILPOINT);
    }
    for (step, entry) in &creates {
        if entry.kind == EtcKind::Copy {
            let dir = parents.get(&step.path)?;
            let name = split(&step.path).1;
            dir.rename(staged(name), name)?;
            failpoint::hit(FAILPOINT);
        }
    }
    if plan.switch_static.is_some() {
        let temp = staged(STATIC);
        clear(&etc, &temp)?;
        etc.symlink(&temp, &plan.to.static_target)?;
        etc.rename(&temp, STATIC)?;
        failpoint::hit(FAILPOINT);
    }
    remove_all(&etc, plan, last)?;
    for dir in parents.open.values() {
        dir.sync()?;
    }
    etc.sync()?;
    record(&state, &plan.to.record(), &Marker::of(&plan.to))?;
    state.remove_file(JOURNAL_FILE)?;
    state.sync()?;
    Ok(())
}

/// Whether the removal of `path` must come before the new generation's entries are
/// made: something of the new generation goes below it (it was a file), or one of its
/// parents becomes a file or link.
fn in_the_way(path: &str, new: &Entries) -> Result<bool> {
    if new.try_has_below(path)? {
        return Ok(true);
    }
    for up in ancestors(path).skip(1) {
        if new.try_get(up)?.is_some_and(|e| e.kind != EtcKind::Directory) {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Removes `steps`, removals of the plan; a directory once what the previous
/// generation put in it is gone (the directories last, deepest first).
fn remove_all(etc: &Dir, plan: &Plan, steps: Vec<&Step>) -> Result<()> {
    let (mut directories, mut files) = (Vec::new(), Vec::new());
    for step in steps {
        let old = match &plan.from {
            Some(from) => from.manifest.entries.try_get(&step.path)?,
            None => None,
        };
        let was_directory = old.is_some_and(|e| e.kind == EtcKind::Directory);
        if was_directory { &mut directories } else { &mut files }.push(step);
    }
    for step in files.into_iter().chain(directories.into_iter().rev()) {
        remove_entry(etc, &step.path)?;
        remove_empty_parents(etc, &step.path, &plan.to.manifest)?;
        failpoint::hit(FAILPOINT);
    }
    Ok(())
}

/// Makes the declared directories, parents first, before anything goes into them; and
/// removes an empty directory where a file or link replaces it, since `rename` cannot.
fn make_directories(parents: &mut Parents<'_>, creates: &[(&Step, &ManifestEntry)]) -> Result<()> {
    for (step, entry) in creates {
        let dir = parents.get(&step.path)?;
        let name = split(&step.path).1;
        match entry.kind {
            EtcKind::Directory => {
                let (uid, gid) = step.owner.expect("a directory's owner is resolved");
                make_directory(dir, name, step.action == Action::Replace, uid, gid, entry.mode_bits())?;
            }
            // Emptied by the removals (a declared directory, or one the previous
            // generation's entries were in), or by an interrupted run that left only
            // the empty directories they were in.
            _ if step.action == Action::Replace && dir.meta(name).is_ok_and(|m| m.kind == Kind::Directory) => {
                remove_empty_tree(dir, name.as_ref())?;
            }
            _ => continue,
        }
        failpoint::hit(FAILPOINT);
    }
    Ok(())
}

/// Removes the directory `name` and the directories below it if none of them holds
/// anything but directories; whether it did. Anything else in it stays, and so does
/// it (a later step then fails, saying where).
fn remove_empty_tree(dir: &Dir, name: &std::ffi::OsStr) -> Result<bool> {
    let inner = dir.open_dir(name)?;
    let mut empty = true;
    for (child, kind) in inner.entries()? {
        empty &= kind == Kind::Directory && remove_empty_tree(&inner, &child)?;
    }
    Ok(empty && dir.remove_empty_dir(name)?)
}

/// The directories below `/etc` that steps touch, opened (and created) once each.
struct Parents<'a> {
    etc: &'a Dir,
    open: HashMap<String, Dir>,
}

impl Parents<'_> {
    /// The directory holding `path` (relative to `/etc`).
    fn get(&mut self, path: &str) -> Result<&Dir> {
        let (dir, _) = split(path);
        if dir.is_empty() {
            return Ok(self.etc);
        }
        if !self.open.contains_key(dir) {
            let opened = self.etc.create_dir_all(dir, 0o755)?;
            self.open.insert(dir.to_owned(), opened);
        }
        Ok(&self.open[dir])
    }
}

/// Renames `name` to `backup`, which must be free: a backup never replaces anything.
fn move_aside(dir: &Dir, name: &str, backup: &str) -> Result<()> {
    if dir.rename_noreplace(name, backup)? {
        return Ok(());
    }
    Err(EtcError::BackupTaken { path: dir.path().join(name).display().to_string(), backup: backup.to_owned() })
}

/// Gives the file or link `name` the second name `backup` (which must be free, or be
/// that very file already: a replayed run), so that it stays where it is until the
/// new entry replaces it by `rename`.
fn link_aside(dir: &Dir, name: &str, backup: &str) -> Result<()> {
    if dir.hard_link(name, backup)? || dir.meta(name)?.identity() == dir.meta(backup)?.identity() {
        return Ok(());
    }
    Err(EtcError::BackupTaken { path: dir.path().join(name).display().to_string(), backup: backup.to_owned() })
}

/// Makes the directory `name` (`0700` until it has its owner, so that nothing is
/// exposed meanwhile), or takes the one there; then sets its owner and mode through its
/// own descriptor, the mode last since `chown` clears set-id bits. `replace`: a file or
/// link there is the previous generation's entry, removed first.
fn make_directory(dir: &Dir, name: &str, replace: bool, uid: u32, gid: u32, mode: u32) -> Result<()> {
    if replace && dir.meta(name).is_ok_and(|m| m.kind != Kind::Directory) {
        dir.remove_file(name)?;
    }
    dir.create_dir(name, 0o700)?;
    let directory = dir.open_dir(name)?;
    directory.set_owner(uid, gid)?;
    directory.set_mode(mode)?;
    Ok(())
}

/// Removes an entry blankslate put there (a replayed run may find it gone already);
/// a directory only if it is empty.
fn remove_entry(etc: &Dir, path: &str) -> Result<()> {
    let (parent, name) = split(path);
    let holder = etc.open_dir_or_self(parent);
    let holder = match holder {
        Ok(holder) => holder,
        Err(error) if error.is_not_found() => return Ok(()),
        Err(error) => return Err(error.into()),
    };
    match holder.meta(name) {
        Ok(meta) if meta.kind == Kind::Directory => {
            holder.remove_empty_dir(name)?;
        }
        Ok(_) => holder.remove_file(name)?,
        Err(error) if error.is_not_found() => {}
        Err(error) => return Err(error.into()),
    }
    holder.sync()?;
    Ok(())
}

/// After a removal, removes the directories it leaves empty, unless the new
/// generation still has entries below them. A directory with anything in it stays.
fn remove_empty_parents(etc: &Dir, path: &str, keep: &Manifest) -> Result<()> {
    let mut dir = split(path).0;
    while !dir.is_empty() {
        let declared = keep.entries.try_get(dir)?.is_some_and(|e| e.kind == EtcKind::Directory);
        if declared || keep.entries.try_has_below(dir)? {
            return Ok(());
        }
        let (parent, name) = split(dir);
        let holder = etc.open_dir_or_self(parent)?;
        if !holder.remove_empty_dir(name)? {
            return Ok(());
        }
        dir = parent;
    }
    Ok(())
}
