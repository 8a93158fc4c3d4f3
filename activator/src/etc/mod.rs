//! `/etc` activation: make `ROOT/etc` match a generation's etc tree.
//!
//! - `etc/static` points at the generation's tree in the store (one atomic rename);
//!   each linked entry is `etc/<path>` -> `/etc/static/<path>`, each copy a regular
//!   file with its mode and owner (written to a temporary name, fsynced, renamed),
//!   each directory entry a directory with its mode and owner (made `0700`, then
//!   owned, then given its mode, through its own descriptor; an existing one is only
//!   given its owner and mode). A directory no longer declared is removed only if it
//!   is empty (what the previous generation put in it aside); one that holds anything
//!   else is left, and the plan says so.
//! - Activation is a diff of the previous generation's manifest (read from the store
//!   object `etc/.blankslate/state.json` names) against the new one: an unchanged
//!   entry costs no system call at all, and `/etc` is never walked.
//! - Nothing is clobbered: whatever sits where a declared entry goes and is not what
//!   blankslate put there is moved aside to `NAME.blankslate-backup` (or activation
//!   refuses, changing nothing); a removed entry is deleted only if it is still
//!   blankslate's.
//! - A journal (`etc/.blankslate/journal.json`) is written before the first change.
//!   If the process dies at any step, the next activation finishes the interrupted
//!   one first: every step checks what is already done, so replaying is safe, and
//!   temporaries have fixed names that the replay reuses, so none is left behind.
//! - A repair ([`repair`]) checks every entry of the active generation (one
//!   `readlink` per link, none for the links of a directory whose stamp shows it
//!   unchanged since a repair found them right: `stamps`) and puts back what is not as
//!   it was activated, moving aside
//!   whatever stands in the way, through the same journaled steps.
//!
//! - For a package manager's run, [`unlink`] makes the links into the store plain
//!   files and [`relink`] makes those nothing changed links again (`plain`).
//!
//! [`plan`] works out the steps, [`commit`] and [`activate`] carry them out, [`recover`] finishes what a kill left.

mod apply;
mod inspect;
mod plain;
mod restore;
mod stamps;

use std::fmt;
use std::sync::LazyLock;

use blankslate_decl::UserDb;
use blankslate_state::diff::describe_etc_entry;
use blankslate_state::manifest::{DEFAULT_DIR_MODE, EtcKind, ManifestEntry, ManifestReadError};
use blankslate_state::store::StoreError;
use blankslate_sys::fs::{Dir, FsError};

// The activation record is the core's (gc, the audit and the command line read it).
use blankslate_state::activation::ActivationError;
pub use blankslate_state::activation::{
    ACTIVE_FILE, BACKUP_SUFFIX, EtcGeneration, STATE_DIR, STATIC, active, active_record,
};

pub use apply::{Activated, Outcome, Prepared, activate, activate_generation, commit, prepare, recover, relabel};
pub use inspect::plan;
pub use plain::{relink, unlink};
pub use restore::{preview_repair, repair, repair_only};

/// The fixed temporary name of a copy or link about to replace `NAME`: `.NAME` + this.
const STAGED_SUFFIX: &str = ".blankslate-new";
/// The step name of every mutating step, for `BLANKSLATE_FAILPOINT=etc-step#N`.
pub const FAILPOINT: &str = "etc-step";

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
    Store(#[from] StoreError),
    #[error(transparent)]
    Manifest(#[from] ManifestReadError),
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
    Directory { mode: u32, uid: u32, gid: u32 },
    Other,
}

impl Found {
    /// A symlink to `target` (kept as it is when it is UTF-8, as targets are).
    fn link(target: std::ffi::OsString) -> Found {
        Found::Link(target.into_string().unwrap_or_else(|target| target.to_string_lossy().into_owned()))
    }
}

impl fmt::Display for Found {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Found::Absent => f.write_str("nothing"),
            Found::Link(target) => write!(f, "a symlink to {target}"),
            Found::File { .. } => f.write_str("a regular file"),
            Found::Directory { .. } => f.write_str("a directory"),
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
    /// A repair: the copy's contents are right but not its owner or mode (`found`):
    /// copied again from the store.
    Fix { found: String },
    /// Gone from the new generation and still blankslate's: remove.
    Remove,
    /// Gone from the new generation, but changed since: left where it is.
    LeaveAlone { found: String },
}

/// One path's step and its resolved owner; the entry it makes is [`Plan::entry`].
#[derive(Debug, Clone)]
pub struct Step {
    pub path: String,
    pub action: Action,
    makes: Makes,
    owner: Option<(u32, u32)>,
}

/// What a step makes. The new generation's entry is looked up in the plan's manifest
/// rather than copied into its step: a cold switch has a step per entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Makes {
    /// Nothing: a removal, or a path left alone.
    Nothing,
    /// The new generation's entry at the step's path.
    Declared,
    /// A plain `0755 root:root` directory, which the new generation's entries below
    /// it need although it declares none there.
    PlainDirectory,
}

/// What [`Makes::PlainDirectory`] makes.
static PLAIN_DIRECTORY: LazyLock<ManifestEntry> =
    LazyLock::new(|| ManifestEntry::directory(format!("{DEFAULT_DIR_MODE:04o}"), "root".into(), "root".into()));

impl Step {
    /// A step without an entry: a removal, or a path left alone.
    fn bare(path: &str, action: Action) -> Step {
        Step { path: path.to_owned(), action, makes: Makes::Nothing, owner: None }
    }

    /// A step that makes the new generation's entry at `path`.
    fn declared(path: &str, action: Action, owner: Option<(u32, u32)>) -> Step {
        Step { path: path.to_owned(), action, makes: Makes::Declared, owner }
    }

    /// A step that replaces what is at `path` by a plain directory, root's.
    fn plain_directory(path: &str) -> Step {
        Step { path: path.to_owned(), action: Action::Replace, makes: Makes::PlainDirectory, owner: Some((0, 0)) }
    }
}

/// Everything an activation will do.
#[derive(Debug, Clone)]
pub struct Plan {
    /// What `/etc` was activated to before (`None` for the first activation, and for
    /// a repair, which goes from `to` to itself).
    pub from: Option<EtcGeneration>,
    pub to: EtcGeneration,
    pub steps: Vec<Step>,
    /// `etc/static` must be (re)pointed; with a backup of what blocks it, if any.
    pub switch_static: Option<Option<String>>,
    /// Entries identical in both generations: no system call was spent on them (for
    /// a repair: entries found as they were activated).
    pub unchanged: usize,
    /// For a repair: how many of the unchanged entries are links that were not read,
    /// their directory's stamp showing it unchanged since a repair found them right.
    pub links_unread: usize,
    /// A repair of the active generation, not a switch.
    pub repair: bool,
    /// A repair of only these entries (relative to `/etc`) and what lies below them;
    /// empty: of every entry.
    pub repair_only: Vec<String>,
    /// A repair that only makes files holding their link's bytes links again
    /// ([`relink`]).
    pub relink: bool,
    /// The generation the state file names, and why its manifest could not be read
    /// (its object gone from the store, damaged, or no store): then the plan starts
    /// from nothing, as a first activation does, so entries only it had are left
    /// where they are and whatever is in the way is moved aside.
    pub unread_previous: Option<(u32, String)>,
}

/// What an `/etc` plan does, entry by entry, counted: what `--json` reports.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Counts {
    pub added: usize,
    /// Replaced with the declared contents.
    pub changed: usize,
    /// Given back their declared owner or mode.
    pub fixed: usize,
    pub removed: usize,
    /// Something not blankslate's moved aside to make room.
    pub backed_up: usize,
    /// No longer declared but not blankslate's, so kept.
    pub left_alone: usize,
    pub unchanged: usize,
    /// Whether `/etc/static` itself is linked anew.
    pub static_link: bool,
}

impl Counts {
    /// Whether anything in `/etc` changes.
    pub fn changes(&self) -> bool {
        self.added + self.changed + self.fixed + self.removed + self.backed_up > 0 || self.static_link
    }
}

impl Plan {
    pub fn is_noop(&self) -> bool {
        self.steps.is_empty() && self.switch_static.is_none()
    }

    pub fn backups(&self) -> impl Iterator<Item = &Step> {
        self.steps.iter().filter(|s| matches!(s.action, Action::BackUp { .. }))
    }

    /// The entry `step` makes (none for a removal or a path left alone).
    pub fn entry(&self, step: &Step) -> Option<&ManifestEntry> {
        match step.makes {
            Makes::Nothing => None,
            Makes::Declared => self.to.manifest.entries.get(&step.path),
            Makes::PlainDirectory => Some(&PLAIN_DIRECTORY),
        }
    }
}

impl Plan {
    fn write_static(&self, f: &mut impl fmt::Write) -> fmt::Result {
        match &self.switch_static {
            Some(Some(backup)) => {
                writeln!(f, "  ! static        back up to {backup}, then link to {}", self.to.static_target)
            }
            Some(None) => writeln!(f, "  ~ static        link to {}", self.to.static_target),
            None => Ok(()),
        }
    }

    fn write_step(&self, f: &mut impl fmt::Write, step: &Step, preview: bool) -> fmt::Result {
        let moved = if preview { "would be moved to" } else { "moved to" };
        let what = self.entry(step).map(describe_etc_entry).unwrap_or_default();
        let line = match &step.action {
            Action::Create => format!("  + {:<13} {what}", step.path),
            Action::Replace => format!("  ~ {:<13} {what}", step.path),
            Action::Fix { found } => format!("  ~ {:<13} {what}; was {found}", step.path),
            Action::BackUp { backup, found } => {
                format!("  ! {:<13} {what}; {found} is there: {moved} {backup}", step.path)
            }
            Action::Remove => format!("  - {}", step.path),
            Action::LeaveAlone { found } => {
                format!("  = {:<13} no longer declared, left alone: {found} is there, not blankslate's", step.path)
            }
        };
        writeln!(f, "{}", line.trim_end())
    }

    /// How many entries the plan touches, by what it does to them.
    pub fn counts(&self) -> Counts {
        let mut counts =
            Counts { unchanged: self.unchanged, static_link: self.switch_static.is_some(), ..Counts::default() };
        for step in &self.steps {
            *match step.action {
                Action::Create => &mut counts.added,
                Action::Replace => &mut counts.changed,
                Action::Fix { .. } => &mut counts.fixed,
                Action::Remove => &mut counts.removed,
                Action::BackUp { .. } => &mut counts.backed_up,
                Action::LeaveAlone { .. } => &mut counts.left_alone,
            } += 1;
        }
        counts
    }

    fn write_summary(&self, f: &mut impl fmt::Write) -> fmt::Result {
        let counts = self.counts();
        if self.repair {
            let taken_over = match counts.changed {
                0 => String::new(),
                n => format!(", {n} taken over (the file there had the declared contents)"),
            };
            return writeln!(
                f,
                "{} missing, {} with the wrong owner or mode, {} replaced (what stood there moved aside), {} as \
                 activated{taken_over}",
                counts.added,
                counts.fixed,
                counts.backed_up + usize::from(counts.static_link),
                counts.unchanged,
            );
        }
        writeln!(
            f,
            "{} added, {} changed, {} removed, {} backed up, {} left alone, {} unchanged",
            counts.added, counts.changed, counts.removed, counts.backed_up, counts.left_alone, counts.unchanged,
        )
    }

    /// What the live root adds to the comparison of the two generations: the entries
    /// that will be moved aside or left alone, `/etc/static` if it must be fixed, and
    /// the counts. A dry run prints this under the generations' diff.
    pub fn live_notes(&self) -> String {
        let mut out = String::new();
        let _ = self.write_static(&mut out);
        for step in self.steps.iter().filter(|s| matches!(s.action, Action::BackUp { .. } | Action::LeaveAlone { .. }))
        {
            let _ = self.write_step(&mut out, step, true);
        }
        let _ = self.write_summary(&mut out);
        out
    }
}

impl Plan {
    /// The plan as a dry run shows it: what would be moved aside, nothing said done.
    pub fn preview(&self) -> String {
        let mut out = String::new();
        let _ = self.write(&mut out, true);
        out
    }

    fn write(&self, f: &mut impl fmt::Write, preview: bool) -> fmt::Result {
        if self.repair {
            writeln!(f, "/etc: repair of generation {}", self.to.generation)?;
        } else {
            let from =
                self.from.as_ref().map_or_else(|| "nothing".to_owned(), |a| format!("generation {}", a.generation));
            writeln!(f, "/etc: {from} -> generation {}", self.to.generation)?;
            if let Some((generation, reason)) = &self.unread_previous {
                writeln!(
                    f,
                    "  ! generation {generation}'s manifest cannot be read ({reason}): planned from nothing, its own entries left in place"
                )?;
            }
        }
        self.write_static(f)?;
        for step in &self.steps {
            self.write_step(f, step, preview)?;
        }
        self.write_summary(f)
    }
}

impl fmt::Display for Plan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.write(f, false)
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
        (EtcKind::Directory, EtcKind::Directory) => a.mode == b.mode && a.user == b.user && a.group == b.group,
        _ => false,
    }
}

fn link_target(path: &str, entry: &ManifestEntry) -> Option<String> {
    match &entry.kind {
        EtcKind::Link => Some(format!("/etc/static/{path}")),
        EtcKind::DirectLink { target } => Some(target.clone()),
        EtcKind::Copy | EtcKind::Directory => None,
    }
}

/// Whether what is found is this entry's content (a copy's mode and owner aside).
/// Compares without building the link's target: a repair asks this of every entry.
fn holds(found: &Found, path: &str, entry: &ManifestEntry) -> bool {
    match (found, &entry.kind) {
        (Found::Link(target), EtcKind::Link) => target.strip_prefix("/etc/static/") == Some(path),
        (Found::Link(target), EtcKind::DirectLink { target: wanted }) => target == wanted,
        (Found::File { hash, .. }, EtcKind::Copy) => *hash == entry.hash,
        (Found::Directory { .. }, EtcKind::Directory) => true,
        _ => false,
    }
}

/// Whether the entry is completely in place, owner and mode included.
fn done(found: &Found, path: &str, entry: &ManifestEntry, owner: Option<(u32, u32)>) -> bool {
    match found {
        Found::File { mode, uid, gid, .. } | Found::Directory { mode, uid, gid } => {
            holds(found, path, entry) && *mode == entry.mode_bits() && owner == Some((*uid, *gid))
        }
        _ => holds(found, path, entry),
    }
}

/// `path` and each directory above it (relative to `/etc`), nearest first.
fn ancestors(path: &str) -> impl Iterator<Item = &str> {
    std::iter::successors(Some(path), |p| p.rsplit_once('/').map(|(up, _)| up))
}

fn split(path: &str) -> (&str, &str) {
    path.rsplit_once('/').unwrap_or(("", path))
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
/// `group` when it manages them (`managed` returns their contents from its tree, and
/// `None` for a name it does not manage), else the root's files.
pub fn users_from_contents(root: &Dir, managed: impl Fn(&str) -> Option<Vec<u8>>) -> UserDb {
    let read = |name: &str| -> String {
        let bytes = managed(name).or_else(|| root.read_in_root(format!("etc/{name}")).ok());
        bytes.map(|b| String::from_utf8_lossy(&b).into_owned()).unwrap_or_default()
    };
    UserDb::from_texts(&read("passwd"), &read("group"), "/etc/passwd")
}

/// [`users_from_contents`] the generation whose etc store object is `object`.
pub fn users_from_object(store: &blankslate_state::store::Store, root: &Dir, object: &str) -> Result<UserDb> {
    let tree = apply::open_tree(store, object)?;
    Ok(users_from_contents(root, |name| tree.read(name).ok()))
}
