//! `persist add`, `persist remove`, `persist recover` and `persist list`: moving a
//! live path into a persistent volume (and back) on a running system, crash-safely.
//!
//! # `add PATH`
//!
//! `ROOT/PATH` is the live data (on the tmpfs root); the volume is the persistent
//! root mounted at `ROOT/<mount>` (say `ROOT/persist`), already mounted. Before
//! anything changes, everything is checked: PATH is absolute and normalized, not
//! `/etc/static` or inside it, not the volume or inside it, exists as a directory or
//! regular file (never a symlink), is not itself a mount point, is not declared, is
//! neither inside nor around a declared path; the volume holds nothing at PATH;
//! the declaration with the new entry passes `decl::check`, and it can be rewritten
//! ([`edit::check_writable`]: not a read-only directory or an immutable file); the
//! volume has room for the copy (its footprint: each file's allocated blocks, holes
//! excluded and hard links once, a block per directory, an inode per entry, plus a
//! 32nd and 1 MiB, against the space and inodes `statvfs` leaves to unprivileged
//! users). The owner and mode declared are those given (`--user`, `--group`,
//! `--mode`) or else the live path's own (so that activation, which re-applies them
//! at every boot, keeps them). The command line holds the state lock throughout.
//!
//! Then, each step recorded in the journal ([`crate::journal`]) once done, and each
//! followed by the crash-test point `persist-step` (so `BLANKSLATE_FAILPOINT=
//! persist-step#N` stops after step N):
//!
//! 1. `started` — the journal is written.
//! 2. `copied` — the live data is copied ([`tree::copy`]: owners, modes,
//!    times, xattrs, hard links, holes, special files) to the fixed temporary name
//!    `.NAME.blankslate-persist-add` in the volume's copy of PATH's parent (parents
//!    created with the live parents' owner and mode), fsynced. A fingerprint of the
//!    live data (one `statx` an entry, [`tree::fingerprint`]) was taken before the
//!    journal, by the walk that measured the room the copy needs; the copy describes the live data as it reads it
//!    ([`tree::copy_described`]: a digest of what a walk would say of everything but
//!    the files' contents), and reads back each piece of data as it writes it,
//!    comparing it with the bytes read (holes read on both sides too).
//! 3. `verified` — the copy is walked ([`tree::verify`]) and its digest compared
//!    with that description: kind, owner, mode, mtime, size, link targets, device
//!    numbers, xattrs, hard-link structure (where they differ, both are walked again
//!    to name the paths). Each file's data was verified as it was copied: read back
//!    and compared with the bytes read from the live file (a live file that shrank,
//!    or has data where it had a hole, fails the copy). The live data's fingerprint
//!    must not have changed since before the copy, so that the description is the
//!    live data's. Then the declared owner and mode are set on the copy. (Only the
//!    run that copied verifies: recovery undoes an add killed before `verified` on
//!    the same boot, and after a reboot finishes it unverified, the original gone.)
//! 4. `placed` — the copy is renamed into place (`rename` without replace) and the
//!    directory fsynced.
//! 5. `mounted` — the volume path is bind-mounted over the live path (a file with
//!    `how = "symlink"`: the live file is replaced by a link, atomically). Once
//!    mounted, the live data (now hidden) is checked against the fingerprint once
//!    more: if a program wrote to it after the copy, the mount is undone, the copy
//!    removed, and the command fails with the live data untouched.
//! 6. `cleared` — the live data under the mount is removed. It is reached through a
//!    non-recursive clone of the parent's mount (`open_tree` without
//!    `AT_RECURSIVE`), which shows the parent without the new mount on top: the
//!    directory's entries are removed (the directory itself stays, as the mount
//!    point, with the declared owner and mode); a file is truncated.
//! 7. `declared` — the entry is appended to the declaration ([`crate::edit`]), checked
//!    again, written atomically.
//! 8. the caller's generations take the declaration's change (the `after_declared`
//!    hook: `blankslate persist` carries it into the active and the current
//!    generation), then the journal is removed. A kill before the journal goes leaves
//!    it at `declared`, and recovery runs the hook again (it is idempotent).
//!
//! A step that fails (ENOSPC, EIO, a mount refused) is resolved before the command
//! returns where it can be: an add whose copy is not in place yet is undone at once
//! (the partial copy and the journal removed), and its error says nothing changed;
//! any other failure leaves the journal, and its error names the `blankslate persist
//! recover` that finishes or undoes it.
//!
//! # Recovery
//!
//! Every persist command that changes anything first finishes or undoes the pending
//! journal of its volume (`persist recover` does only that). Nothing is lost at any
//! point:
//! - before the copy is in place (`started`, `copied`, `verified`, unless the rename
//!   happened and was not recorded yet) the live data has not been touched: the
//!   temporary copy is removed and the add is undone. If the machine rebooted since
//!   (the boot id differs, so the tmpfs original is gone), a complete copy (`copied`
//!   or later) is the only copy left: it is finished instead; a partial one is kept
//!   as `.NAME.blankslate-persist-partial` and reported.
//! - from `placed` on, the volume holds a verified copy: the add is finished (mounted
//!   again if the mount went with the crashed process's namespace, the live data
//!   cleared, the declaration edited). The one exception is a live tree that changed
//!   after it was copied (same boot, before `mounted`): it is newer than the copy, so
//!   the copy is removed and the add undone.
//!
//! # `remove PATH`
//!
//! Steps: `started`; with `--copy-back`, the volume's data is copied to
//! `.NAME.blankslate-persist-restore` next to the live path (`copied`) and verified
//! (`verified`); the live path is unmounted or unlinked (`mounted`); with
//! `--copy-back`, the copy is renamed over the (now empty) live path (`cleared`); the
//! entry leaves the declaration (`declared`); with `--purge`, the volume's data is
//! deleted (`purged`, only after everything else); the journal is removed. A pending
//! remove is always finished (every step checks whether it is already done). Without
//! `--copy-back` the live path is left empty: the data stays in the volume.
//!
//! # `list`
//!
//! Every declared entry with its live state: mounted from its volume path (same
//! device and inode, [`Meta::identity`](blankslate_sys::fs::Meta::identity)), linked, not mounted, mounted from something
//! else, missing source or target, and the volume path's owner and mode against the
//! declaration.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};

use blankslate_decl::{self as decl, EntryKind, How, Mode, Owner, UserDb};
use blankslate_sys::fs::{Dir, FsError, Kind};
use blankslate_sys::mount::{self, MountError, Source};
use rustix::fs::{AtFlags, OFlags, StatxFlags};
use rustix::mount::{MountFlags, OpenTreeFlags};

use crate::edit::{self, EditError};
use crate::journal::{self, Journal, JournalError, Operation, Step};
use crate::{relative, split};
use blankslate_sys::fs::tree::{self, CopyStats, TreeError};

mod list;
mod preflight;
mod recover;
mod remove;

pub use list::{Listed, Listing, LiveState, list};
use preflight::{check_room, check_target};
pub use recover::recover;
use recover::{resolve_pending, undo_add};
pub use remove::remove;

#[derive(Debug, thiserror::Error)]
pub enum ManageError {
    #[error(transparent)]
    Fs(#[from] FsError),
    #[error(transparent)]
    Mount(#[from] MountError),
    #[error(transparent)]
    Tree(#[from] TreeError),
    #[error(transparent)]
    Journal(#[from] JournalError),
    #[error(transparent)]
    Edit(#[from] EditError),
    #[error("refusing to persist {path}: {reason}")]
    Refused { path: String, reason: String },
    #[error("the declaration would not be valid with this change; nothing was changed:\n{0}")]
    Invalid(String),
    #[error("the copy of {path} differs from the original; the copy was removed, nothing changed:\n  {}", differences.join("\n  "))]
    Verify { path: String, differences: Vec<String> },
    #[error(
        "{path} changed while it was being moved (a program is writing to it?); the copy was removed and the live data is untouched: stop what writes there and try again"
    )]
    Changed { path: String },
    #[error("{path} is {} declared in {}", if *.was { "no longer" } else { "not" }, file.display())]
    NotDeclared { path: String, file: PathBuf, was: bool },
    #[error("the persistent root {mount} cannot be opened below the root (is it mounted?): {source}")]
    VolumeUnreachable { mount: String, source: FsError },
    #[error("{path} holds data in the root: the volume's copy is kept next to it as {temp}")]
    DataInRoot { path: String, temp: String },
    #[error("{path} appeared in the volume during the add; the copy is kept as {temp} next to it")]
    AppearedInVolume { path: String, temp: String },
    #[error("{path} does not show the volume's copy after mounting")]
    NotShown { path: String },
    #[error("{} is not UTF-8", .0.display())]
    NotUtf8(PathBuf),
    #[error("{path} is in place and declared, but the generations could not take the change: {reason}")]
    Carry { path: String, reason: String },
    #[error("{source}\nthe partial copy of {path} was removed: nothing changed")]
    Undone { path: String, source: Box<ManageError> },
    #[error(
        "{source}\n`persist {operation} {path}` stopped after step `{step}`, and nothing is lost: `{recover}` finishes or undoes it"
    )]
    Pending { operation: &'static str, path: String, step: &'static str, recover: String, source: Box<ManageError> },
}

impl ManageError {
    /// Whether the declaration the change would make is invalid (a finding, not a
    /// failure of the work), also beneath an undo or an interruption.
    pub fn is_invalid(&self) -> bool {
        match self {
            ManageError::Invalid(_) => true,
            ManageError::Undone { source, .. } | ManageError::Pending { source, .. } => source.is_invalid(),
            _ => false,
        }
    }
}

pub type Result<T> = std::result::Result<T, ManageError>;

/// What the caller does once an operation's declaration edit is done and before its
/// journal goes, with the operation's path: so that a crash between the edit and the
/// caller's own follow-up (carrying the change into generations) is recovered too. It
/// runs again for an operation recovery finishes, so it must be idempotent; its error
/// leaves the journal pending.
pub type AfterDeclared<'a> = dyn FnMut(&str) -> std::result::Result<(), String> + 'a;

fn refused(path: &str, reason: impl Into<String>) -> ManageError {
    ManageError::Refused { path: path.to_owned(), reason: reason.into() }
}

/// What `persist add` is asked to do.
#[derive(Debug, Clone)]
pub struct AddRequest<'a> {
    /// The live path, absolute.
    pub path: &'a str,
    /// The declaration file to add the entry to.
    pub declaration: &'a Path,
    /// The persistent root's mount point; the only one declared if `None`.
    pub volume: Option<&'a str>,
    pub user: Option<&'a str>,
    pub group: Option<&'a str>,
    pub mode: Option<Mode>,
    /// Files only.
    pub how: Option<How>,
}

/// What `persist remove` is asked to do.
#[derive(Debug, Clone)]
pub struct RemoveRequest<'a> {
    pub path: &'a str,
    pub declaration: &'a Path,
    /// Copy the volume's data back into the root after unmounting.
    pub copy_back: bool,
    /// Delete the volume's data at the end.
    pub purge: bool,
}

/// How a pending operation was resolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Finished,
    Undone,
}

/// A pending operation found and resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recovered {
    pub operation: Operation,
    pub path: String,
    pub volume: String,
    /// The last step it had completed.
    pub step: Step,
    pub outcome: Outcome,
    /// Anything a person should know (a partial copy kept, a skipped check).
    pub notes: Vec<String>,
}

/// What `persist add` did.
#[derive(Debug, Clone)]
pub struct Added {
    pub path: String,
    pub volume: String,
    /// The declaration entry, as TOML.
    pub entry: String,
    pub stats: CopyStats,
    pub recovered: Vec<Recovered>,
}

/// What `persist remove` did.
#[derive(Debug, Clone)]
pub struct Removed {
    pub path: String,
    pub volume: String,
    pub copied_back: bool,
    pub purged: bool,
    pub recovered: Vec<Recovered>,
}

fn temp_add(name: &str) -> String {
    format!(".{name}.blankslate-persist-add")
}

fn temp_restore(name: &str) -> String {
    format!(".{name}.blankslate-persist-restore")
}

/// Reads and checks the declaration: it must be valid before it is edited.
fn load(file: &Path, names: &UserDb) -> Result<(String, decl::Declaration)> {
    let bytes = edit::read_bytes(file)?;
    let checked = decl::check_bytes(file, &bytes, Some(names));
    match checked.declaration {
        Some(declaration) => Ok((String::from_utf8(bytes).expect("a valid declaration is UTF-8"), declaration)),
        None => Err(ManageError::Invalid(format!("{}(fix the declaration first)", checked.diagnostics.render(false)))),
    }
}

/// Checks an edited declaration text; its errors, rendered, if any.
fn check_edit(file: &Path, text: &str, names: &UserDb) -> Result<()> {
    let checked = decl::check(file, text, Some(names));
    if checked.declaration.is_none() {
        return Err(ManageError::Invalid(checked.diagnostics.render(false)));
    }
    Ok(())
}

/// A volume, opened and locked, its pending journal resolved.
struct Volume {
    mount: String,
    dir: Dir,
    state: Dir,
    _lock: blankslate_sys::fs::Lock,
    recovered: Vec<Recovered>,
}

fn open_volume(root: &Dir, mount: &str, names: &UserDb, after_declared: &mut AfterDeclared) -> Result<Volume> {
    let dir = root
        .open_dir(relative(mount))
        .map_err(|source| ManageError::VolumeUnreachable { mount: mount.to_owned(), source })?;
    let state = journal::state_dir(&dir)?;
    let lock = state.lock_writer(journal::LOCK)?;
    // A journal write killed before its rename (no writer is alive under the lock).
    state.remove_stale_temporaries(journal::JOURNAL)?;
    let mut volume = Volume { mount: mount.to_owned(), dir, state, _lock: lock, recovered: Vec::new() };
    if let Some(pending) = journal::read(&volume.state)? {
        let recovered = resolve_pending(root, &volume, pending, names, after_declared)?;
        volume.recovered.push(recovered);
    }
    Ok(volume)
}

/// The volume `requested`, or the only one the declaration has.
fn pick_volume(declaration: &decl::Declaration, requested: Option<&str>, path: &str) -> Result<String> {
    if let Some(volume) = requested {
        if !declaration.persist.contains_key(volume) {
            return Err(refused(path, format!("the declaration has no persistent root {volume}")));
        }
        return Ok(volume.to_owned());
    }
    let mut roots = declaration.persist.keys();
    match (roots.next(), roots.next()) {
        (Some(only), None) => Ok(only.clone()),
        (None, _) => Err(refused(path, "the declaration has no persistent root ([persist.\"/persist\"])")),
        (Some(_), Some(_)) => {
            Err(refused(path, "the declaration has several persistent roots: choose one with --volume"))
        }
    }
}

/// The mount id of an entry (not following it).
fn mount_id(dir: &Dir, name: &str) -> Result<u64> {
    let st = rustix::fs::statx(dir, name, AtFlags::SYMLINK_NOFOLLOW, StatxFlags::MNT_ID).map_err(|e| FsError {
        op: "stat",
        path: dir.path().join(name),
        source: e.into(),
    })?;
    Ok(st.stx_mnt_id)
}

fn own_mount_id(dir: &Dir) -> Result<u64> {
    let st = rustix::fs::statx(dir, "", AtFlags::EMPTY_PATH, StatxFlags::MNT_ID).map_err(|e| FsError {
        op: "stat",
        path: dir.path().to_path_buf(),
        source: e.into(),
    })?;
    Ok(st.stx_mnt_id)
}

/// Moves the live `request.path` into the volume and declares it (see the module docs).
pub fn add(root: &Dir, request: &AddRequest<'_>, after_declared: &mut AfterDeclared) -> Result<Added> {
    let path = request.path;
    let mut diagnostics = Vec::new();
    if !decl::paths::check_path(
        path,
        decl::paths::PathKind::Absolute,
        decl::Span::default(),
        "the path",
        &mut diagnostics,
    ) {
        let why: Vec<String> = diagnostics.iter().map(|d| d.message.clone()).collect();
        return Err(refused(path, why.join("; ")));
    }
    if path == "/etc/static" || decl::paths::is_inside(path, "/etc/static") {
        return Err(refused(path, "/etc/static is the store's, managed by blankslate"));
    }
    let names = UserDb::from_root(root);
    let declaration_file = edit::resolve(request.declaration)?;
    let (_, declaration) = load(&declaration_file, &names)?;
    let mount = pick_volume(&declaration, request.volume, path)?;
    let volume = open_volume(root, &mount, &names, after_declared)?;
    // The same add, interrupted and now finished by recovery: done.
    if volume
        .recovered
        .iter()
        .any(|r| r.operation == Operation::Add && r.path == path && r.outcome == Outcome::Finished)
    {
        let entry = declaration_entry(&declaration_file, &mount, path)?;
        return Ok(Added {
            path: path.to_owned(),
            volume: mount,
            entry,
            stats: CopyStats::default(),
            recovered: volume.recovered,
        });
    }
    // Recovery may have edited the declaration.
    let (text, declaration) = load(&declaration_file, &names)?;
    if path == mount || decl::paths::is_inside(path, &mount) || decl::paths::is_inside(&mount, path) {
        return Err(refused(path, format!("it is, holds or lies inside the persistent root {mount}")));
    }
    let (kind, how, meta) = check_target(root, &volume, &declaration, request)?;
    let user = match request.user {
        Some(user) => user.to_owned(),
        None => names.user_name(meta.uid).ok_or_else(|| {
            refused(
                path,
                format!("it is owned by uid {}, which the root's /etc/passwd does not name: pass --user", meta.uid),
            )
        })?,
    };
    let group = match request.group {
        Some(group) => group.to_owned(),
        None => names.group_name(meta.gid).ok_or_else(|| {
            refused(
                path,
                format!("its group is gid {}, which the root's /etc/group does not name: pass --group", meta.gid),
            )
        })?,
    };
    let mode = request.mode.unwrap_or_else(|| Mode::new(meta.mode).unwrap_or(Mode::DIRECTORY));
    let uid =
        names.uid(&user).ok_or_else(|| refused(path, format!("user `{user}` is not in the root's /etc/passwd")))?;
    let gid =
        names.gid(&group).ok_or_else(|| refused(path, format!("group `{group}` is not in the root's /etc/group")))?;
    let owner = Owner { user, group, mode };
    let mut declared = decl::Entry::new(kind, path.to_owned(), owner.clone());
    if how == How::Symlink {
        declared.how = Some(How::Symlink);
    }
    let entry = edit::entry_value(&declared);
    let edited = edit::add(&text, &mount, kind, &entry)?;
    check_edit(&declaration_file, &edited, &names)?;
    // What can be known before the first change: the declaration can be rewritten, and
    // the volume has room for the copy.
    edit::check_writable(&declaration_file, &edited)?;
    let (parent, name) = split(path);
    let fingerprint = check_room(&root.open_dir_or_self(parent)?, name, &volume.dir, &mount, path)?;

    let mut journal = Journal {
        operation: Operation::Add,
        path: path.to_owned(),
        volume: mount.clone(),
        kind,
        how,
        entry: entry.clone(),
        declaration: declaration_file,
        owner: (uid, gid, mode.bits()),
        boot_id: blankslate_sys::boot_id(),
        fingerprint,
        copy_back: false,
        purge: false,
        step: Step::Started,
    };
    journal::write(&volume.state, &journal)?;
    blankslate_sys::failpoint::hit("persist-step");
    let stats = forward_add(root, &volume, &mut journal, &names, true)
        .and_then(|stats| conclude(&volume, &journal, after_declared).map(|()| stats))
        .map_err(|e| interrupted(root, &volume, e))?;
    Ok(Added { path: path.to_owned(), volume: mount, entry, stats, recovered: volume.recovered })
}

/// A journaled add or remove that failed part-way (ENOSPC, EIO, a mount refused), with
/// what became of it in its error. An add whose copy was not in place yet is undone at
/// once (the partial copy and the journal go: nothing changed); anything else stays
/// pending, and the error names the `persist recover` that finishes or undoes it.
fn interrupted(root: &Dir, volume: &Volume, error: ManageError) -> ManageError {
    // None: undone already (a copy that differed, a live path that changed); an error:
    // a journal that cannot be read, which the next command reports.
    let Ok(Some(pending)) = journal::read(&volume.state) else { return error };
    let (parent, name) = split(&pending.path);
    let placed = volume.dir.open_dir_or_self(parent).is_ok_and(|d| d.meta(name).is_ok());
    if pending.operation == Operation::Add
        && pending.step < Step::Placed
        && !placed
        && undo_add(volume, &pending).is_ok()
    {
        return ManageError::Undone { path: pending.path, source: Box::new(error) };
    }
    let at = root.path().to_string_lossy();
    let root_arg = if at == "/" { String::new() } else { format!(" --root {at}") };
    ManageError::Pending {
        operation: if pending.operation == Operation::Add { "add" } else { "remove" },
        path: pending.path,
        step: pending.step.as_str(),
        recover: format!("blankslate persist recover --declaration {}{root_arg}", pending.declaration.display()),
        source: Box::new(error),
    }
}

/// How `path` is declared now (for the report of an add finished by recovery).
fn declaration_entry(file: &Path, mount: &str, path: &str) -> Result<String> {
    let text = edit::read(file)?;
    let checked = decl::check(file, &text, None);
    let entry = checked.declaration.and_then(|d| {
        d.entries().into_iter().find(|e| e.root == mount && e.path == path).map(|e| edit::entry_value(e.entry))
    });
    Ok(entry.unwrap_or_default())
}

/// Opens (creating if missing) the volume's copy of `parent`, each new component
/// with the owner and mode of the live one (or `root 0755`).
fn volume_parent(root: &Dir, volume: &Dir, parent: &str) -> Result<Dir> {
    let mut live = Some(root.try_clone()?);
    let mut dir = volume.try_clone()?;
    for component in parent.split('/').filter(|c| !c.is_empty()) {
        let live_meta = live.as_ref().and_then(|l| l.meta(component).ok()).filter(|m| m.kind == Kind::Directory);
        if dir.create_dir(component, 0o700)? {
            let (uid, gid, mode) = live_meta.map_or((0, 0, 0o755), |m| (m.uid, m.gid, m.mode));
            dir.set_owner_and_mode_of(component, uid, gid, mode)?;
            dir.sync()?;
        }
        dir = dir.open_dir(component)?;
        live = live.and_then(|l| l.open_dir(component).ok());
    }
    Ok(dir)
}

/// Opens (creating if missing, `root 0755`) the live path's parent: after a reboot
/// the tmpfs root may not have it yet.
fn live_parent(root: &Dir, parent: &str) -> Result<Dir> {
    if parent.is_empty() {
        return Ok(root.try_clone()?);
    }
    match root.open_dir(parent) {
        Ok(dir) => Ok(dir),
        Err(error) if error.is_not_found() => Ok(root.create_dir_all(parent, 0o755)?),
        Err(error) => Err(error.into()),
    }
}

/// The parent directory as it is under any mount on its entries: a clone of its
/// mount without submounts.
fn hidden_parent(target_parent: &Dir) -> Result<Dir> {
    let flags = OpenTreeFlags::OPEN_TREE_CLONE | OpenTreeFlags::OPEN_TREE_CLOEXEC | OpenTreeFlags::AT_EMPTY_PATH;
    let clone = rustix::mount::open_tree(target_parent, "", flags).map_err(|e| MountError {
        op: "clone (without submounts) the mount of",
        at: target_parent.path().to_path_buf(),
        source: e.into(),
    })?;
    Ok(tree::dir_of(&clone, target_parent.path())?)
}

/// Whether `name` in `target_parent` is the volume's entry (mounted or linked).
fn is_in_place(journal: &Journal, target_parent: &Dir, name: &str, source_parent: &Dir) -> bool {
    if journal.how == How::Symlink {
        let link = format!("{}/{}", journal.volume.trim_end_matches('/'), relative(&journal.path));
        return target_parent.read_link(name).is_ok_and(|t| t == *link);
    }
    match (target_parent.meta(name), source_parent.meta(name)) {
        (Ok(target), Ok(source)) => target.identity() == source.identity(),
        _ => false,
    }
}

/// Runs an add from the step after `journal.step` to the end. `verify` is false when
/// the original is gone (another boot) and cannot be compared with.
fn forward_add(root: &Dir, volume: &Volume, journal: &mut Journal, names: &UserDb, verify: bool) -> Result<CopyStats> {
    let path = journal.path.clone();
    let (parent, name) = split(&path);
    let temp = temp_add(name);
    let mut stats = CopyStats::default();
    // The original's digest as the copy described it; none when another run copied,
    // and then nothing is verified here (see the module docs).
    let mut described = None;
    let same_boot = journal.same_boot();
    let target_parent = live_parent(root, parent)?;
    let source_parent = volume_parent(root, &volume.dir, parent)?;
    if journal.step < Step::Copied {
        if source_parent.meta(&temp).is_ok() {
            source_parent.remove_tree(&temp)?;
        }
        // The fingerprint is the one the preflight took: an add is copied only by
        // the run that started it (recovery undoes one killed before it was copied).
        let (copied, digest) =
            tree::copy_described(&target_parent, OsStr::new(name), &source_parent, OsStr::new(&temp))?;
        (stats, described) = (copied, Some(digest));
        source_parent.sync()?;
        journal::advance(&volume.state, journal, Step::Copied)?;
    }
    if journal.step < Step::Verified {
        if verify {
            // The original as the copy described it (no second read), which is the
            // original's as long as its fingerprint is still the one taken before the
            // copy. Checked here, before anything is shown, so that a tree written
            // during the copy fails cleanly; the check after the mount only covers
            // the moment between.
            let original = (&target_parent, OsStr::new(name));
            let mut differences = tree::verify(original, (&source_parent, OsStr::new(&temp)), described.take())?;
            if differences.is_empty() && tree::fingerprint(&target_parent, OsStr::new(name))? != journal.fingerprint {
                differences.push("the original changed during the copy".into());
            }
            if !differences.is_empty() {
                source_parent.remove_tree(&temp)?;
                journal::finish(&volume.state)?;
                return Err(ManageError::Verify { path, differences });
            }
        }
        let (uid, gid, mode) = journal.owner;
        source_parent.set_owner_and_mode_of(&temp, uid, gid, mode)?;
        source_parent.sync()?;
        journal::advance(&volume.state, journal, Step::Verified)?;
    }
    if journal.step < Step::Placed {
        if !source_parent.rename_noreplace(&temp, name)? {
            return Err(ManageError::AppearedInVolume { path: format!("{}{path}", volume.mount), temp });
        }
        source_parent.sync()?;
        journal::advance(&volume.state, journal, Step::Placed)?;
    }
    if journal.step < Step::Mounted {
        match mount_over(&target_parent, name, &source_parent, journal, same_boot) {
            // A file to become a link changed since it was copied: nothing was linked,
            // the live file is newer, and the copy goes (as a bind mount's does below).
            Err(ManageError::Changed { .. }) => {
                source_parent.remove_tree(name)?;
                source_parent.sync()?;
                journal::finish(&volume.state)?;
                return Err(ManageError::Changed { path });
            }
            other => other?,
        }
        if !is_in_place(journal, &target_parent, name, &source_parent) {
            // Defensive: the mount must show the volume's entry.
            return Err(ManageError::NotShown { path: path.clone() });
        }
        // The live data must still be what was copied; if not, it is newer: undo.
        if same_boot && journal.how == How::Bind {
            let hidden = hidden_parent(&target_parent)?;
            if tree::fingerprint(&hidden, OsStr::new(name))? != journal.fingerprint {
                mount::unmount(&target_parent, name)?;
                source_parent.remove_tree(name)?;
                source_parent.sync()?;
                journal::finish(&volume.state)?;
                return Err(ManageError::Changed { path });
            }
        }
        journal::advance(&volume.state, journal, Step::Mounted)?;
    } else if !is_in_place(journal, &target_parent, name, &source_parent) {
        // Recovery: the mount went with the crashed process's namespace (or a
        // reboot); the live data is (being) cleared, the volume's copy is the data.
        mount_over(&target_parent, name, &source_parent, journal, false)?;
    }
    if journal.step < Step::Cleared {
        if journal.how == How::Bind {
            clear_original(&target_parent, name, journal)?;
        }
        journal::advance(&volume.state, journal, Step::Cleared)?;
    }
    if journal.step < Step::Declared {
        let text = edit::read(&journal.declaration)?;
        if !edit::contains(&text, &journal.volume, journal.kind, &path)? {
            let edited = edit::add(&text, &journal.volume, journal.kind, &journal.entry)?;
            check_edit(&journal.declaration, &edited, names)?;
            edit::write(&journal.declaration, &edited)?;
        }
        journal::advance(&volume.state, journal, Step::Declared)?;
    }
    Ok(stats)
}

/// An operation's last step (the module docs' 8): the caller's hook, then the journal
/// goes.
fn conclude(volume: &Volume, journal: &Journal, after_declared: &mut AfterDeclared) -> Result<()> {
    after_declared(&journal.path).map_err(|reason| ManageError::Carry { path: journal.path.clone(), reason })?;
    journal::finish(&volume.state)?;
    Ok(())
}

/// Removes the live data hidden under the new mount (see the module docs): a
/// directory's entries (the directory stays, as the mount point, with the declared
/// owner and mode), or a file's contents.
fn clear_original(target_parent: &Dir, name: &str, journal: &Journal) -> Result<()> {
    let hidden = hidden_parent(target_parent)?;
    let (uid, gid, mode) = journal.owner;
    match journal.kind {
        EntryKind::Directory => {
            let original = hidden.open_dir(name)?;
            tree::clear_dir(&original)?;
            original.set_owner(uid, gid)?;
            original.set_mode(mode)?;
        }
        EntryKind::File => {
            let fd = rustix::fs::openat2(
                &hidden,
                name,
                OFlags::WRONLY | OFlags::TRUNC | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                rustix::fs::Mode::empty(),
                rustix::fs::ResolveFlags::BENEATH | rustix::fs::ResolveFlags::NO_SYMLINKS,
            )
            .map_err(|e| FsError {
                op: "truncate",
                path: target_parent.path().join(name),
                source: e.into(),
            })?;
            rustix::fs::fsync(&fd).map_err(|e| FsError {
                op: "fsync",
                path: target_parent.path().join(name),
                source: e.into(),
            })?;
            hidden.set_owner_and_mode_of(name, uid, gid, mode)?;
        }
    }
    Ok(())
}

/// Puts the volume's entry over the live path: a bind mount, or a symlink for files
/// so declared. The live path is created first if it is missing (after a reboot).
fn mount_over(target_parent: &Dir, name: &str, source_parent: &Dir, journal: &Journal, same_boot: bool) -> Result<()> {
    if is_in_place(journal, target_parent, name, source_parent) {
        return Ok(());
    }
    let (uid, gid, mode) = journal.owner;
    let exists = match target_parent.meta(name) {
        Ok(_) => true,
        Err(error) if error.is_not_found() => false,
        Err(error) => return Err(error.into()),
    };
    if journal.how == How::Symlink {
        if same_boot && exists && tree::fingerprint(target_parent, OsStr::new(name))? != journal.fingerprint {
            return Err(ManageError::Changed { path: journal.path.clone() });
        }
        let link = format!("{}/{}", journal.volume.trim_end_matches('/'), relative(&journal.path));
        target_parent.symlink_atomic(name, link)?;
        return Ok(());
    }
    if !exists {
        match journal.kind {
            EntryKind::Directory => {
                target_parent.create_dir(name, 0o700)?;
                target_parent.set_owner_and_mode_of(name, uid, gid, mode)?;
            }
            EntryKind::File => {
                target_parent.create_file_owned(name, b"", mode, Some((uid, gid)))?;
            }
        }
    }
    match journal.kind {
        EntryKind::Directory => {
            let source = source_parent.open_dir(name)?;
            mount::bind(Source::Dir(&source), target_parent, name, MountFlags::empty())?;
        }
        EntryKind::File => mount::bind(Source::File(source_parent, name), target_parent, name, MountFlags::empty())?,
    }
    Ok(())
}

/// A path given on the command line made absolute against `/` (as seen in the root)
/// and checked to be normalized; relative paths are refused rather than guessed.
pub fn normalize_argument(path: &Path) -> Result<String> {
    let text = path.to_str().ok_or_else(|| ManageError::NotUtf8(path.to_path_buf()))?;
    let trimmed = if text.len() > 1 { text.trim_end_matches('/') } else { text };
    Ok(trimmed.to_owned())
}
