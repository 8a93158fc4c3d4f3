//! `/etc` activation: make `ROOT/etc` match a generation's etc tree.
//!
//! - `etc/static` points at the generation's tree in the store (one atomic rename);
//!   each linked entry is `etc/<path>` -> `/etc/static/<path>`, each copy a regular
//!   file with its mode and owner (written to a temporary name, fsynced, renamed).
//! - Activation is a diff of the previous generation's manifest (kept in
//!   `etc/.blankslate/state.json`) against the new one: an unchanged entry costs no
//!   system call at all, and `/etc` is never walked.
//! - Nothing is clobbered: whatever sits where a declared entry goes and is not what
//!   blankslate put there is moved aside to `NAME.blankslate-backup` (or activation
//!   refuses, changing nothing); a removed entry is deleted only if it is still
//!   blankslate's.
//! - A journal (`etc/.blankslate/journal.json`) is written before the first change.
//!   If the process dies at any step, the next activation finishes the interrupted
//!   one first: every step checks what is already done, so replaying is safe, and
//!   temporaries have fixed names that the replay reuses, so none is left behind.

use std::collections::{BTreeMap, HashMap};
use std::fmt::{self, Write as _};

use blankslate_core::decl::UserDb;
use blankslate_core::failpoint;
use blankslate_core::fs::{Dir, FsError, Kind};
use blankslate_core::manifest::{EtcKind, Manifest, ManifestEntry, TREE_DIR, content_hash};
use blankslate_core::store::Store;
use serde::{Deserialize, Serialize};

// The activation record is the core's (gc, the audit and the command line read it).
use blankslate_core::activation::{ActivationError, JOURNAL_FILE, STATE_FILE};
pub use blankslate_core::activation::{Active, BACKUP_SUFFIX, STATE_DIR, STATIC, active};
/// The generation and etc object last activated, alone: lets a no-op re-activation
/// stop before reading the state file.
const ACTIVE_FILE: &str = "active";
/// The fixed temporary name of a copy or link about to replace `NAME`: `.NAME` + this.
const STAGED_SUFFIX: &str = ".blankslate-new";
/// The step name of every mutating step, for `BLANKSLATE_FAILPOINT=etc-step#N`.
pub const FAILPOINT: &str = "etc-step";

/// An activation under way: where it is going. Where it comes from is the state
/// file, which is only replaced once everything else is done.
#[derive(Debug, Serialize, Deserialize)]
struct Journal {
    generation: u32,
    object: String,
}

/// What to do about a file blankslate did not put where a declared entry goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OnConflict {
    /// Move it aside to `NAME.blankslate-backup` and report it.
    #[default]
    Backup,
    /// Refuse to activate, changing nothing.
    Refuse,
}

#[derive(Debug, thiserror::Error)]
pub enum EtcError {
    #[error(transparent)]
    Fs(#[from] FsError),
    #[error(transparent)]
    Activation(#[from] ActivationError),
    #[error("store: {0}")]
    Store(String),
    #[error("cannot read {what}: {reason}")]
    BadState { what: String, reason: String },
    #[error("/etc/{path}: unknown {kind} `{name}` (not in the new system's /etc/{file})")]
    UnknownOwner { path: String, kind: &'static str, name: String, file: &'static str },
    #[error("/etc/{path}: its parent `{parent}` is not a directory blankslate can enter: {reason}")]
    Blocked { path: String, parent: String, reason: String },
    #[error("{path}: its backup name `{backup}` was taken meanwhile; nothing was overwritten, run again")]
    BackupTaken { path: String, backup: String },
    #[error("refusing to activate: {} (nothing was changed):\n{list}", holding(*.count))]
    Conflicts { count: usize, list: String },
}

/// "N paths hold", with the noun and verb agreeing with N.
fn holding(count: usize) -> String {
    let (noun, verb) = if count == 1 { ("path", "holds") } else { ("paths", "hold") };
    format!("{count} {noun} {verb} something blankslate did not put there")
}

pub type Result<T> = std::result::Result<T, EtcError>;

/// What is at a path now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Found {
    Absent,
    Link(String),
    File { hash: String, mode: u32, uid: u32, gid: u32 },
    Directory,
    Other,
}

impl fmt::Display for Found {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Found::Absent => f.write_str("nothing"),
            Found::Link(target) => write!(f, "a symlink to {target}"),
            Found::File { .. } => f.write_str("a regular file"),
            Found::Directory => f.write_str("a directory"),
            Found::Other => f.write_str("a special file"),
        }
    }
}

/// What one step does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Nothing is there: create the entry.
    Create,
    /// The previous generation's entry is there: replace it.
    Replace,
    /// Something blankslate did not put there: move it to `backup`, then create.
    BackUp { backup: String, found: String },
    /// Gone from the new generation and still blankslate's: remove.
    Remove,
    /// Gone from the new generation, but changed since: left where it is.
    LeaveAlone { found: String },
}

/// One path's step, with the new entry (none for removals) and its resolved owner.
#[derive(Debug, Clone)]
pub struct Step {
    pub path: String,
    pub action: Action,
    pub entry: Option<ManifestEntry>,
    owner: Option<(u32, u32)>,
}

/// Everything an activation will do.
#[derive(Debug, Clone)]
pub struct Plan {
    pub from: Option<Active>,
    pub to: Active,
    pub steps: Vec<Step>,
    /// `etc/static` must be (re)pointed; with a backup of what blocks it, if any.
    pub switch_static: Option<Option<String>>,
    /// Entries identical in both generations: no system call was spent on them.
    pub unchanged: usize,
}

impl Plan {
    pub fn is_noop(&self) -> bool {
        self.steps.is_empty() && self.switch_static.is_none()
    }

    pub fn backups(&self) -> impl Iterator<Item = &Step> {
        self.steps.iter().filter(|s| matches!(s.action, Action::BackUp { .. }))
    }
}

impl fmt::Display for Plan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let from = self.from.as_ref().map_or_else(|| "nothing".to_owned(), |a| format!("generation {}", a.generation));
        writeln!(f, "/etc: {from} -> generation {}", self.to.generation)?;
        match &self.switch_static {
            Some(Some(backup)) => {
                writeln!(f, "  ! static        back up to {backup}, then link to {}", self.to.static_target)?;
            }
            Some(None) => writeln!(f, "  ~ static        link to {}", self.to.static_target)?,
            None => {}
        }
        for step in &self.steps {
            let what = step.entry.as_ref().map(describe_entry).unwrap_or_default();
            let line = match &step.action {
                Action::Create => format!("  + {:<13} {what}", step.path),
                Action::Replace => format!("  ~ {:<13} {what}", step.path),
                Action::BackUp { backup, found } => {
                    format!("  ! {:<13} {what}; {found} is there: moved to {backup}", step.path)
                }
                Action::Remove => format!("  - {}", step.path),
                Action::LeaveAlone { found } => {
                    format!("  = {:<13} no longer declared, left alone: {found} is there, not blankslate's", step.path)
                }
            };
            writeln!(f, "{}", line.trim_end())?;
        }
        let count = |p: fn(&Action) -> bool| self.steps.iter().filter(|s| p(&s.action)).count();
        writeln!(
            f,
            "{} added, {} changed, {} removed, {} backed up, {} left alone, {} unchanged",
            count(|a| matches!(a, Action::Create)),
            count(|a| matches!(a, Action::Replace)),
            count(|a| matches!(a, Action::Remove)),
            count(|a| matches!(a, Action::BackUp { .. })),
            count(|a| matches!(a, Action::LeaveAlone { .. })),
            self.unchanged,
        )
    }
}

fn describe_entry(entry: &ManifestEntry) -> String {
    match &entry.kind {
        EtcKind::Link => "link".to_owned(),
        EtcKind::DirectLink { target } => format!("link to {target}"),
        EtcKind::Copy => format!("copy {} {}:{}", entry.mode.as_deref().unwrap_or("0644"), entry.user, entry.group),
    }
}

/// Whether two entries put the same thing at a path (a link's contents flow through
/// `/etc/static`, so any two links are the same link).
fn same(a: &ManifestEntry, b: &ManifestEntry) -> bool {
    match (&a.kind, &b.kind) {
        (EtcKind::Link, EtcKind::Link) => true,
        (EtcKind::DirectLink { target: x }, EtcKind::DirectLink { target: y }) => x == y,
        (EtcKind::Copy, EtcKind::Copy) => {
            a.hash == b.hash && a.mode == b.mode && a.user == b.user && a.group == b.group
        }
        _ => false,
    }
}

fn link_target(path: &str, entry: &ManifestEntry) -> Option<String> {
    match &entry.kind {
        EtcKind::Link => Some(format!("/etc/static/{path}")),
        EtcKind::DirectLink { target } => Some(target.clone()),
        EtcKind::Copy => None,
    }
}

/// Whether what is found is this entry's content (a copy's mode and owner aside).
fn holds(found: &Found, path: &str, entry: &ManifestEntry) -> bool {
    match (found, link_target(path, entry)) {
        (Found::Link(target), Some(wanted)) => *target == wanted,
        (Found::File { hash, .. }, None) => *hash == entry.hash,
        _ => false,
    }
}

fn copy_mode(entry: &ManifestEntry) -> u32 {
    entry.mode.as_deref().and_then(|m| u32::from_str_radix(m, 8).ok()).unwrap_or(0o644)
}

/// Whether the entry is completely in place, owner and mode included.
fn done(found: &Found, path: &str, entry: &ManifestEntry, owner: Option<(u32, u32)>) -> bool {
    match found {
        Found::File { mode, uid, gid, .. } => {
            holds(found, path, entry) && *mode == copy_mode(entry) && owner == Some((*uid, *gid))
        }
        _ => holds(found, path, entry),
    }
}

fn split(path: &str) -> (&str, &str) {
    path.rsplit_once('/').unwrap_or(("", path))
}

/// Open directories below `/etc`, by relative path (`""` is `/etc`); `None` for
/// one that does not exist.
struct Dirs<'a> {
    etc: Option<&'a Dir>,
    open: HashMap<String, Option<Dir>>,
    /// The previous generation's entries: a parent that is one of them (a link or a
    /// copy, now to become a directory) is not in the way, it is to be removed.
    old: &'a BTreeMap<String, ManifestEntry>,
}

impl<'a> Dirs<'a> {
    fn new(etc: Option<&'a Dir>, old: &'a BTreeMap<String, ManifestEntry>) -> Self {
        Dirs { etc, open: HashMap::new(), old }
    }

    fn get(&mut self, path: &str, entry: &str) -> Result<Option<&Dir>> {
        if path.is_empty() {
            return Ok(self.etc);
        }
        if !self.open.contains_key(path) {
            let dir = match self.etc.map(|etc| etc.open_dir(path)) {
                None => None,
                Some(Ok(dir)) => Some(dir),
                Some(Err(error)) if error.is_not_found() => None,
                Some(Err(_)) if self.old_entry_in(path) => None,
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

    /// Whether `path` or one of its ancestors is an entry of the previous generation.
    fn old_entry_in(&self, path: &str) -> bool {
        let mut prefix = path;
        loop {
            if self.old.contains_key(prefix) {
                return true;
            }
            match prefix.rsplit_once('/') {
                Some((up, _)) => prefix = up,
                None => return false,
            }
        }
    }

    /// Whether the directory at `path` holds exactly the previous generation's entries
    /// below it (and directories for them): then it is blankslate's, not a person's.
    fn holds_only_old_entries(&mut self, path: &str) -> Result<bool> {
        let prefix = format!("{path}/");
        let expected: Vec<&String> =
            self.old.range(prefix.clone()..).map(|(k, _)| k).take_while(|k| k.starts_with(&prefix)).collect();
        if expected.is_empty() {
            return Ok(false);
        }
        let Some(etc) = self.etc else { return Ok(false) };
        let mut found = Vec::new();
        let mut pending = vec![path.to_owned()];
        while let Some(dir_path) = pending.pop() {
            for (name, kind) in etc.open_dir(&dir_path)?.entries()? {
                let child = format!("{dir_path}/{}", name.to_string_lossy());
                if kind == Kind::Directory && !self.old.contains_key(&child) {
                    pending.push(child);
                } else {
                    found.push(child);
                }
            }
        }
        found.sort();
        Ok(found.iter().eq(expected.iter().copied()))
    }

    fn inspect(&mut self, path: &str, hash: bool) -> Result<Found> {
        let (parent, name) = split(path);
        let Some(dir) = self.get(parent, path)? else { return Ok(Found::Absent) };
        let meta = match dir.meta(name) {
            Ok(meta) => meta,
            Err(error) if error.is_not_found() => return Ok(Found::Absent),
            Err(error) => return Err(error.into()),
        };
        Ok(match meta.kind {
            Kind::Symlink => Found::Link(dir.read_link(name)?.to_string_lossy().into_owned()),
            Kind::File if hash => {
                let hash = content_hash(&dir.read(name)?);
                Found::File { hash, mode: meta.mode, uid: meta.uid, gid: meta.gid }
            }
            Kind::File => Found::File { hash: String::new(), mode: meta.mode, uid: meta.uid, gid: meta.gid },
            Kind::Directory => Found::Directory,
            Kind::Other => Found::Other,
        })
    }

    /// A free backup name for `path`: `NAME.blankslate-backup`, then `.1`, `.2`, …;
    /// free means nothing is there and the new generation does not declare it.
    fn backup_name(&mut self, path: &str, declared: &Manifest) -> Result<String> {
        let (_, name) = split(path);
        for n in 0.. {
            let candidate =
                if n == 0 { format!("{name}{BACKUP_SUFFIX}") } else { format!("{name}{BACKUP_SUFFIX}.{n}") };
            let (parent, _) = split(path);
            let full = if parent.is_empty() { candidate.clone() } else { format!("{parent}/{candidate}") };
            if !declared.entries.contains_key(&full) && self.inspect(&full, false)? == Found::Absent {
                return Ok(candidate);
            }
        }
        unreachable!("some backup name is free")
    }
}

/// Resolves a manifest owner name (`+N` is a number) against the new system's users.
fn resolve(path: &str, entry: &ManifestEntry, users: &UserDb) -> Result<(u32, u32)> {
    let uid = users.uid(&entry.user).ok_or_else(|| EtcError::UnknownOwner {
        path: path.to_owned(),
        kind: "user",
        name: entry.user.clone(),
        file: "passwd",
    })?;
    let gid = users.gid(&entry.group).ok_or_else(|| EtcError::UnknownOwner {
        path: path.to_owned(),
        kind: "group",
        name: entry.group.clone(),
        file: "group",
    })?;
    Ok((uid, gid))
}

fn open_etc(root: &Dir) -> Result<Option<Dir>> {
    match root.open_dir("etc") {
        Ok(dir) => Ok(Some(dir)),
        Err(error) if error.is_not_found() => Ok(None),
        Err(error) => Err(error.into()),
    }
}

/// The users and groups copies are owned by: the new generation's own `passwd` and
/// `group` when it manages them (`managed` reads them from its tree), else the
/// root's regular files.
pub fn users_for(root: &Dir, managed: impl Fn(&str) -> Option<Vec<u8>>, manifest: &Manifest) -> UserDb {
    let read = |name: &str| -> String {
        let bytes = if manifest.entries.contains_key(name) {
            managed(name)
        } else {
            root.read_in_root(format!("etc/{name}")).ok()
        };
        bytes.map(|b| String::from_utf8_lossy(&b).into_owned()).unwrap_or_default()
    };
    UserDb::from_texts(&read("passwd"), &read("group"), "/etc/passwd")
}

/// Works out what activating `to` would do, from the last activated state; reads only
/// the paths that change. `users` is asked for the owner database only if a copy
/// changes.
pub fn plan(root: &Dir, to: &Active, users: &dyn Fn() -> UserDb, on_conflict: OnConflict) -> Result<Plan> {
    let from = active(root)?;
    plan_from(root, from, to.clone(), users, on_conflict)
}

fn plan_from(
    root: &Dir,
    from: Option<Active>,
    to: Active,
    users: &dyn Fn() -> UserDb,
    on_conflict: OnConflict,
) -> Result<Plan> {
    let owners = std::cell::OnceCell::new();
    let etc = open_etc(root)?;
    let empty = BTreeMap::new();
    let old = from.as_ref().map_or(&empty, |a| &a.manifest.entries);
    let mut dirs = Dirs::new(etc.as_ref(), old);
    let mut steps = Vec::new();
    let mut unchanged = 0;
    for (path, entry) in &to.manifest.entries {
        let previous = old.get(path);
        if previous.is_some_and(|p| same(p, entry)) {
            unchanged += 1;
            continue;
        }
        let is_copy = |e: &ManifestEntry| e.kind == EtcKind::Copy;
        let found = dirs.inspect(path, is_copy(entry) || previous.is_some_and(is_copy))?;
        let owner = if is_copy(entry) { Some(resolve(path, entry, owners.get_or_init(users))?) } else { None };
        if done(&found, path, entry, owner) {
            continue;
        }
        let action = if found == Found::Absent {
            Action::Create
        } else if previous.is_some_and(|p| holds(&found, path, p)) || holds(&found, path, entry) {
            Action::Replace
        } else if found == Found::Directory && dirs.holds_only_old_entries(path)? {
            // The previous generation's entries were below: they go first, then this.
            Action::Replace
        } else {
            Action::BackUp { backup: dirs.backup_name(path, &to.manifest)?, found: found.to_string() }
        };
        steps.push(Step { path: path.clone(), action, entry: Some(entry.clone()), owner });
    }
    for (path, entry) in old {
        if to.manifest.entries.contains_key(path) {
            continue;
        }
        let found = dirs.inspect(path, entry.kind == EtcKind::Copy)?;
        let action = match found {
            Found::Absent => continue,
            _ if holds(&found, path, entry) => Action::Remove,
            other => Action::LeaveAlone { found: other.to_string() },
        };
        steps.push(Step { path: path.clone(), action, entry: None, owner: None });
    }
    let switch_static = match dirs.inspect(STATIC, false)? {
        Found::Link(target) if target == to.static_target => None,
        Found::Link(_) | Found::Absent => Some(None),
        _ => Some(Some(dirs.backup_name(STATIC, &to.manifest)?)),
    };
    let plan = Plan { from, to, steps, switch_static, unchanged };
    if on_conflict == OnConflict::Refuse {
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
    Ok(plan)
}

/// What an activation did.
#[derive(Debug)]
pub struct Activated {
    pub plan: Plan,
    /// The generation an interrupted activation was completed to first, if any.
    pub recovered: Option<u32>,
}

/// Activates `to` (an etc object in `store`) on `root`: first finishes an activation
/// that was interrupted, then applies the diff from the last activated generation.
/// The caller holds the state lock.
pub fn activate(root: &Dir, store: &Store, to: &Active, on_conflict: OnConflict) -> Result<Activated> {
    let recovered = recover(root, store)?;
    if recovered.is_none() && already_active(root, to) {
        let plan = Plan {
            from: Some(to.clone()),
            to: to.clone(),
            steps: Vec::new(),
            switch_static: None,
            unchanged: to.manifest.entries.len(),
        };
        return Ok(Activated { plan, recovered });
    }
    let tree = open_tree(store, to)?;
    let users = || users_for(root, |name| tree.read(name).ok(), &to.manifest);
    let plan = plan(root, to, &users, on_conflict)?;
    if !plan.is_noop() {
        apply(root, &plan, &tree)?;
    } else if plan.from.as_ref().map(|f| f.generation) != Some(to.generation) {
        // Another generation with the same /etc: nothing in /etc changes, but the
        // state must say which generation is active.
        let etc = root.create_dir_all("etc", 0o755)?;
        record(&etc.create_dir_all(STATE_DIR, 0o700)?, to)?;
    }
    Ok(Activated { plan, recovered })
}

/// Records `to` as the generation `/etc` is activated to, changing nothing in `/etc`,
/// when `to` has the `/etc` object `/etc` is at already (a generation that differs
/// only outside `/etc`, such as one `persist add` makes). Returns whether it did: not
/// when `/etc` is at another object, or an activation is under way.
pub fn relabel(root: &Dir, to: &Active) -> Result<bool> {
    let Some(etc) = open_etc(root)? else { return Ok(false) };
    let Ok(state) = etc.open_dir(STATE_DIR) else { return Ok(false) };
    let pending = blankslate_core::activation::read_json::<Journal>(&state, JOURNAL_FILE)?.is_some();
    if pending || active(root)?.is_none_or(|from| from.object != to.object) {
        return Ok(false);
    }
    record(&state, to)?;
    Ok(true)
}

/// Writes the state file, then the marker, for a completed activation.
fn record(state: &Dir, active: &Active) -> Result<()> {
    state.write_atomic(STATE_FILE, &serde_json::to_vec(active).expect("state serializes"), 0o600)?;
    failpoint::hit(FAILPOINT);
    state.write_atomic(ACTIVE_FILE, marker(active).as_bytes(), 0o600)?;
    Ok(())
}

fn marker(active: &Active) -> String {
    format!("{} {}", active.generation, active.object)
}

/// Whether `to` is what `/etc` was last activated to and `/etc/static` still points at
/// it: then nothing is to be done, and not even the state file needs reading.
fn already_active(root: &Dir, to: &Active) -> bool {
    let Ok(Some(etc)) = open_etc(root) else { return false };
    let Ok(state) = etc.open_dir(STATE_DIR) else { return false };
    state.read(ACTIVE_FILE).is_ok_and(|found| found == marker(to).as_bytes())
        && etc.read_link(STATIC).is_ok_and(|target| target == to.static_target.as_str())
}

/// Finishes an interrupted activation, if the journal says there was one.
pub fn recover(root: &Dir, store: &Store) -> Result<Option<u32>> {
    let Some(etc) = open_etc(root)? else { return Ok(None) };
    let Ok(state) = etc.open_dir(STATE_DIR) else { return Ok(None) };
    let Some(journal) = blankslate_core::activation::read_json::<Journal>(&state, JOURNAL_FILE)? else {
        return Ok(None);
    };
    let to = Active::load(store, journal.generation, &journal.object)?;
    let tree = open_tree(store, &to)?;
    let manifest = to.manifest.clone();
    let users = || users_for(root, |name| tree.read(name).ok(), &manifest);
    let from = active(root)?;
    let plan = plan_from(root, from, to, &users, OnConflict::Backup)?;
    apply(root, &plan, &tree)?;
    Ok(Some(journal.generation))
}

fn open_tree(store: &Store, active: &Active) -> Result<Dir> {
    let object = store.open_object(&active.object).map_err(|e| EtcError::Store(e.to_string()))?;
    Ok(object.open_dir(TREE_DIR)?)
}

fn staged(name: &str) -> String {
    format!(".{name}{STAGED_SUFFIX}")
}

/// Removes a leftover temporary from an interrupted run.
fn clear(dir: &Dir, name: &str) -> Result<()> {
    match dir.remove_file(name) {
        Err(error) if !error.is_not_found() => Err(error.into()),
        _ => Ok(()),
    }
}

/// Applies a plan in crash-safe order: journal; parents; backups; staged copies;
/// links; the static switch; copies into place; removals; fsync; state; journal gone.
fn apply(root: &Dir, plan: &Plan, tree: &Dir) -> Result<()> {
    let etc = root.create_dir_all("etc", 0o755)?;
    let state = etc.create_dir_all(STATE_DIR, 0o700)?;
    let journal = Journal { generation: plan.to.generation, object: plan.to.object.clone() };
    state.write_atomic(JOURNAL_FILE, &serde_json::to_vec(&journal).expect("journal serializes"), 0o600)?;
    // The marker names the generation only once it is complete.
    clear(&state, ACTIVE_FILE)?;
    failpoint::hit(FAILPOINT);

    let mut parents = Parents { etc: &etc, open: HashMap::new() };
    let creates: Vec<&Step> = plan.steps.iter().filter(|s| s.entry.is_some()).collect();

    if let Some(Some(backup)) = &plan.switch_static {
        move_aside(&etc, STATIC, backup)?;
        failpoint::hit(FAILPOINT);
    }
    for step in &creates {
        if let Action::BackUp { backup, .. } = &step.action {
            let dir = parents.get(&step.path)?;
            move_aside(dir, split(&step.path).1, backup)?;
            failpoint::hit(FAILPOINT);
        }
    }
    // Removals come before creations: an entry that changes between a file and a
    // directory needs the old shape gone first.
    for step in plan.steps.iter().filter(|s| s.action == Action::Remove) {
        remove_entry(&etc, &step.path)?;
        remove_empty_parents(&etc, &step.path, &plan.to.manifest)?;
        failpoint::hit(FAILPOINT);
    }
    for step in &creates {
        let entry = step.entry.as_ref().expect("creates have entries");
        if entry.kind != EtcKind::Copy {
            continue;
        }
        let dir = parents.get(&step.path)?;
        let temp = staged(split(&step.path).1);
        let contents = tree.read(&step.path)?;
        match dir.create_file_owned(&temp, &contents, copy_mode(entry), step.owner) {
            // Left by an interrupted run: made again from the store.
            Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => {
                dir.remove_file(&temp)?;
                dir.create_file_owned(&temp, &contents, copy_mode(entry), step.owner)?;
            }
            other => {
                other?;
            }
        }
        failpoint::hit(FAILPOINT);
    }
    for step in &creates {
        let entry = step.entry.as_ref().expect("creates have entries");
        let Some(target) = link_target(&step.path, entry) else { continue };
        let dir = parents.get(&step.path)?;
        let name = split(&step.path).1;
        if step.action == Action::Replace {
            let temp = staged(name);
            clear(dir, &temp)?;
            dir.symlink(&temp, &target)?;
            dir.rename(&temp, name)?;
        } else {
            dir.symlink(name, &target)?;
        }
        failpoint::hit(FAILPOINT);
    }
    if plan.switch_static.is_some() {
        let temp = staged(STATIC);
        clear(&etc, &temp)?;
        etc.symlink(&temp, &plan.to.static_target)?;
        etc.rename(&temp, STATIC)?;
        failpoint::hit(FAILPOINT);
    }
    for step in &creates {
        if step.entry.as_ref().is_some_and(|e| e.kind == EtcKind::Copy) {
            let dir = parents.get(&step.path)?;
            let name = split(&step.path).1;
            dir.rename(staged(name), name)?;
            failpoint::hit(FAILPOINT);
        }
    }
    for dir in parents.open.values() {
        dir.sync()?;
    }
    etc.sync()?;
    record(&state, &plan.to)?;
    state.remove_file(JOURNAL_FILE)?;
    state.sync()?;
    Ok(())
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

/// Removes an entry blankslate put there (a replayed run may find it gone already).
fn remove_entry(etc: &Dir, path: &str) -> Result<()> {
    let (parent, name) = split(path);
    let holder = if parent.is_empty() { etc.try_clone() } else { etc.open_dir(parent) };
    let holder = match holder {
        Ok(holder) => holder,
        Err(error) if error.is_not_found() => return Ok(()),
        Err(error) => return Err(error.into()),
    };
    match holder.remove_file(name) {
        Err(error) if !error.is_not_found() => return Err(error.into()),
        _ => {}
    }
    holder.sync()?;
    Ok(())
}

/// After a removal, removes the directories it leaves empty, unless the new
/// generation still has entries below them. A directory with anything in it stays.
fn remove_empty_parents(etc: &Dir, path: &str, keep: &Manifest) -> Result<()> {
    let mut dir = split(path).0;
    while !dir.is_empty() {
        let prefix = format!("{dir}/");
        if keep.entries.range(prefix.clone()..).next().is_some_and(|(k, _)| k.starts_with(&prefix)) {
            return Ok(());
        }
        let (parent, name) = split(dir);
        let holder = if parent.is_empty() { etc.try_clone()? } else { etc.open_dir(parent)? };
        if !holder.remove_empty_dir(name)? {
            return Ok(());
        }
        dir = parent;
    }
    Ok(())
}
