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
//! Entries the previous generation declared and this one does not, and mounts on
//! record that it does not declare, are unmounted (their data stays in the volume).

#![forbid(unsafe_code)]

pub mod add;
pub mod copy;
pub mod edit;
pub mod journal;
pub mod mounts;
mod place;

use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;

use blankslate_decl::{Declaration, EntryKind, How, Mode, MountOption, Owner, UserDb};
use blankslate_sys::fs::{Accept, Dir, FsError, Meta, tree};
use blankslate_sys::mount::MountError;
use rustix::mount::MountFlags;

use place::{Place, directory, file, linked_directory};

/// What a persisted `/etc/machine-id` starts as: systemd treats it as a first boot
/// and writes the real id into it, through the bind mount, into the volume.
const MACHINE_ID_FIRST_BOOT: &[u8] = b"uninitialized\n";

/// What a persisted file the volume does not have yet starts as: empty, but
/// `/etc/machine-id` as systemd's first-boot marker (bound or copied alike).
fn first_contents(path: &str) -> &'static [u8] {
    if path == "/etc/machine-id" { MACHINE_ID_FIRST_BOOT } else { b"" }
}

#[derive(Debug, thiserror::Error)]
pub enum PersistError {
    #[error(transparent)]
    Fs(#[from] FsError),
    #[error(transparent)]
    Mount(#[from] MountError),
    #[error("persistent root {mount} is not there to persist from (is the volume mounted?): {source}")]
    NoVolume { mount: String, source: FsError },
    #[error(
        "persistent root {mount} is a directory of the root's own file system, not a mounted volume: what is persisted there would be lost at the next boot (mount the volume first)"
    )]
    NotMounted { mount: String },
    #[error("cannot read {what}: {reason}")]
    BadRecord { what: String, reason: String },
    #[error("refusing {path}: {reason}")]
    Hostile { path: String, reason: String },
    #[error("{path} was copied into the volume but could not be emptied in the root: {reason}")]
    Migration { path: String, reason: String },
}

impl PersistError {
    /// Whether the system failed (an I/O error, no space or memory, a read-only file
    /// system), rather than what a user put at a path: no change of theirs causes it.
    pub fn is_system_failure(&self) -> bool {
        use rustix::io::Errno;
        let source = match self {
            PersistError::Fs(error) => &error.source,
            PersistError::Mount(error) => &error.source,
            _ => return false,
        };
        [Errno::IO, Errno::NOSPC, Errno::DQUOT, Errno::NOMEM, Errno::ROFS]
            .iter()
            .any(|errno| source.raw_os_error() == Some(errno.raw_os_error()))
    }
}

pub type Result<T> = std::result::Result<T, PersistError>;

/// What one activation did, path by path.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Report {
    pub mounted: Vec<String>,
    pub linked: Vec<String>,
    /// `how = "copy"` files copied from the volume into the root.
    pub copied: Vec<String>,
    /// `how = "copy"` files whose live contents were written to the volume.
    pub written_back: Vec<String>,
    /// Already in place; owner and mode re-applied.
    pub unchanged: Vec<String>,
    /// Data found in the ephemeral root and moved into the empty volume path.
    pub migrated: Vec<String>,
    /// Not brought in (or left partly so), and why: data on both sides, a type
    /// mismatch, or an entry of its own that failed: a symlink, FIFO, file or hard link
    /// where the entry's paths go (never followed or acted on), an error from the
    /// system on them. Every other entry is still brought in; only those below a
    /// failed one are not (each is reported).
    pub conflicts: Vec<(String, String)>,
    /// Of `conflicts`, the paths the system failed (an I/O error, no space or memory,
    /// a read-only file system) rather than what stands at them: a boot goes on
    /// without them, a switch is undone.
    pub failed_by_system: Vec<String>,
    /// Owners that could not be resolved (created as root instead).
    pub unknown_owners: Vec<(String, String)>,
    pub unmounted: Vec<String>,
    /// Found with another owner, mode or (at a repair) without a declared mount flag,
    /// and given what the declaration says: the path, and what it was.
    pub fixed: Vec<(String, String)>,
    /// At a repair: what stood in the root where a persisted path goes (data the
    /// volume has too, something of another type) moved aside, and where to.
    pub backed_up: Vec<(String, String)>,
}

/// Numeric owner of an entry, resolved against the root's user database.
#[derive(Clone, Copy)]
struct Ids {
    uid: u32,
    gid: u32,
    mode: u32,
}

fn resolve(owner: &Owner, users: &UserDb, path: &str, report: &mut Report) -> Ids {
    let uid = users.uid(&owner.user).unwrap_or_else(|| {
        report.unknown_owners.push((
            path.to_owned(),
            format!("no user `{}` in the new system's passwd: owned by root (uid 0) instead", owner.user),
        ));
        0
    });
    let gid = users.gid(&owner.group).unwrap_or_else(|| {
        report.unknown_owners.push((
            path.to_owned(),
            format!("no group `{}` in the new system's group: group root (gid 0) instead", owner.group),
        ));
        0
    });
    Ids { uid, gid, mode: owner.mode.bits() }
}

/// Marks bind mounts hidden from file managers the way `mount(8)` records a
/// userspace option: a line in libmount's `/run/mount/utab` (under its lock) naming
/// the mount by id. gvfs and udisks read `x-gvfs-hide` from there; the kernel never
/// sees it.
fn record_hidden(root: &Dir, hidden: &[(u64, String)]) -> Result<()> {
    if hidden.is_empty() {
        return Ok(());
    }
    let run = root.create_dir_all("run/mount", 0o755)?;
    let _lock = run.lock("utab.lock")?;
    let mut lines = String::new();
    for (id, target) in hidden {
        let _ = writeln!(lines, "ID={id} TARGET={} OPTS=x-gvfs-hide", utab_escape(target));
    }
    run.append("utab", lines.as_bytes(), 0o644)?;
    Ok(())
}

/// libmount's escaping of white space and backslashes in utab fields: octal `\NNN`.
fn utab_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_ascii_whitespace() || c == '\\' {
            let _ = write!(out, "\\{:03o}", u32::from(c));
        } else {
            out.push(c);
        }
    }
    out
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

/// Whether the absolute path `inner` lies below `outer`.
fn holds(outer: &str, inner: &str) -> bool {
    inner.strip_prefix(outer).is_some_and(|rest| rest.starts_with('/'))
}

/// (parent relative to the root, name) of an absolute path.
fn split(path: &str) -> (&str, &str) {
    let path = relative(path);
    path.rsplit_once('/').unwrap_or(("", path))
}

/// A user's home, for the directories between it and an entry: they belong to the
/// user (and the user's group), not to root.
struct Home<'h> {
    /// Absolute, as in the root.
    path: &'h str,
    ids: Ids,
}

impl Home<'_> {
    /// Whether `absolute` is the home or lies inside it.
    fn holds(&self, absolute: &str) -> bool {
        absolute == self.path || holds(self.path, absolute)
    }
}

/// Directories below one base (the root, or a volume), opened once and kept: every
/// entry needs its parent, and most share them.
struct Tree<'a> {
    base: &'a Dir,
    open: HashMap<String, Dir>,
    /// Directories inside a home whose owner has been checked in this activation.
    owned: HashSet<String>,
}

impl<'a> Tree<'a> {
    fn new(base: &'a Dir) -> Self {
        Tree { base, open: HashMap::new(), owned: HashSet::new() }
    }

    /// The directory `relative` below the base, creating missing components
    /// `root:root 0755`; inside `home`, every component from the home down belongs
    /// to its user, whether created now (the home 0700, the rest 0755) or found
    /// owned by someone else (the owner is corrected, the mode left as it is).
    fn dir(&mut self, relative: &str, home: Option<&Home<'_>>) -> Result<&Dir> {
        self.open_or_create(relative, home)?;
        if let Some(home) = home {
            let mut end = 0;
            while end < relative.len() {
                end = relative[end + 1..].find('/').map_or(relative.len(), |i| end + 1 + i);
                let prefix = &relative[..end];
                if home.holds(&format!("/{prefix}")) && self.owned.insert(prefix.to_owned()) {
                    let dir = &self.open[prefix];
                    let meta = dir.own_meta()?;
                    if (meta.uid, meta.gid) != (home.ids.uid, home.ids.gid) {
                        dir.set_owner(home.ids.uid, home.ids.gid)?;
                    }
                }
            }
        }
        Ok(if relative.is_empty() { self.base } else { &self.open[relative] })
    }

    fn open_or_create(&mut self, relative: &str, home: Option<&Home<'_>>) -> Result<()> {
        if relative.is_empty() || self.open.contains_key(relative) {
            return Ok(());
        }
        let (up, name) = relative.rsplit_once('/').unwrap_or(("", relative));
        self.open_or_create(up, home)?;
        let parent = if up.is_empty() { self.base } else { &self.open[up] };
        let absolute = format!("/{relative}");
        let dir = match parent.open_dir(name) {
            Ok(dir) => dir,
            Err(error) if error.is_not_found() => {
                let ids = match home {
                    Some(home) if absolute == home.path => Ids { mode: 0o700, ..home.ids },
                    Some(home) if home.holds(&absolute) => Ids { mode: 0o755, ..home.ids },
                    _ => Ids { uid: 0, gid: 0, mode: 0o755 },
                };
                parent.create_dir(name, 0o700)?;
                let dir = parent.open_dir(name).map_err(|e| hostile(&absolute, e))?;
                enforce(&dir, &ids)?;
                dir
            }
            Err(error) => return Err(hostile(&absolute, error)),
        };
        self.open.insert(relative.to_owned(), dir);
        Ok(())
    }
}

/// What was wrong with a path's owner and mode, if anything: `owner 0:0, mode 0755`.
fn mismatch(meta: &Meta, ids: &Ids) -> Option<String> {
    let mut wrong = Vec::new();
    if (meta.uid, meta.gid) != (ids.uid, ids.gid) {
        wrong.push(format!("owner {}:{}", meta.uid, meta.gid));
    }
    if meta.mode != ids.mode {
        wrong.push(format!("mode {:04o}", meta.mode));
    }
    (!wrong.is_empty()).then(|| wrong.join(", "))
}

/// Gives a directory its owner and mode, with no system call when it has them;
/// returns what was wrong.
fn enforce(dir: &Dir, ids: &Ids) -> Result<Option<String>> {
    let meta = dir.own_meta()?;
    if (meta.uid, meta.gid) != (ids.uid, ids.gid) {
        dir.set_owner(ids.uid, ids.gid)?;
    }
    if meta.mode != ids.mode || (meta.uid, meta.gid) != (ids.uid, ids.gid) {
        dir.set_mode(ids.mode)?;
    }
    Ok(mismatch(&meta, ids))
}

/// Gives a file or directory (by name) its owner and mode, if it lacks them, through a
/// checked descriptor (a symlink, FIFO or file with other names is refused, never
/// acted on); returns what was wrong.
fn enforce_at(dir: &Dir, name: &str, meta: &Meta, ids: &Ids) -> Result<Option<String>> {
    if (meta.uid, meta.gid, meta.mode) != (ids.uid, ids.gid, ids.mode) {
        dir.open_checked(name, Accept::FileOrDirectory)?.set_owner_and_mode(ids.uid, ids.gid, ids.mode)?;
    }
    Ok(mismatch(meta, ids))
}

/// Records what a path's owner and mode (or mount flags) were, if they were wrong.
fn record_fixed(report: &mut Report, path: String, wrong: Option<String>) {
    if let Some(wrong) = wrong {
        report.fixed.push((path, wrong));
    }
}

/// A failure to open a path without following symlinks is reported as what it
/// usually is: a symlink or a file where a directory was expected.
fn hostile(path: &str, error: FsError) -> PersistError {
    let reason = if error.source.raw_os_error() == Some(rustix::io::Errno::LOOP.raw_os_error()) {
        "a symlink stands in the way; it is never followed"
    } else if error.kind() == std::io::ErrorKind::NotADirectory {
        // Also what a symlink as the last component gives (O_NOFOLLOW|O_DIRECTORY).
        "a file or a symlink stands in the way (a symlink is never followed)"
    } else {
        return PersistError::Fs(error);
    };
    PersistError::Hostile { path: path.to_owned(), reason: reason.into() }
}

/// Brings every persisted entry of `declaration` into `root`; `previous` is the
/// declaration activated before (at a switch), whose entries that are gone now get
/// unmounted, as do the mounts on record that `declaration` does not declare
/// ([`mounts`]). Each persistent root's volume must already be mounted at its mount
/// point inside `root`.
pub fn bring_in(
    root: &Dir,
    declaration: &Declaration,
    users: &UserDb,
    previous: Option<&Declaration>,
) -> Result<Report> {
    let mut report = Report::default();
    mounts::unmount_undeclared(root, previous, declaration, &mut report)?;
    bring_in_entries(root, declaration, users, false, report)
}

/// [`bring_in`] for a live root that drifted from its declaration: owners, modes and
/// mounts re-applied, the mount flags a mount lost added back, mounts on record that
/// the declaration no longer has unmounted, and what stands where a persisted path
/// goes in the root (data the volume has too, something of another type) moved aside
/// to `NAME.blankslate-backup` and reported, so that the path can be mounted or
/// linked.
pub fn repair(root: &Dir, declaration: &Declaration, users: &UserDb) -> Result<Report> {
    let mut report = Report::default();
    mounts::unmount_undeclared(root, None, declaration, &mut report)?;
    bring_in_entries(root, declaration, users, true, report)
}

/// Every persisted entry of `declaration`, parents first; `repair` moves aside what
/// stands in the way instead of reporting it and leaving it.
fn bring_in_entries(
    root: &Dir,
    declaration: &Declaration,
    users: &UserDb,
    repair: bool,
    mut report: Report,
) -> Result<Report> {
    let users = &with_persisted_accounts(root, declaration, users);
    let mut entries = declaration.entries();
    entries.sort_by(|a, b| a.path.cmp(&b.path));
    let mut volumes = HashMap::new();
    for mount in declaration.persist.keys() {
        let volume =
            root.open_dir(relative(mount)).map_err(|source| PersistError::NoVolume { mount: mount.clone(), source })?;
        volumes.insert(mount.as_str(), volume);
    }
    let mut sources: HashMap<&str, Tree<'_>> = volumes.iter().map(|(mount, dir)| (*mount, Tree::new(dir))).collect();
    let mut targets = Tree::new(root);
    let mut hidden = Vec::new();
    // Entries not brought in: nothing below them is either (it would be mounted where
    // theirs should be, and hidden once it is).
    let mut failed: Vec<&str> = Vec::new();
    for entry in &entries {
        let path = entry.path.as_str();
        if let Some(above) = failed.iter().find(|above| holds(above, path)) {
            report.conflicts.push((path.to_owned(), format!("not brought in: {above}, which holds it, was not")));
            continue;
        }
        let ids = resolve(&entry.entry.owner, users, path, &mut report);
        let parent_ids = entry.entry.parent.as_ref().map(|p| resolve(p, users, path, &mut report));
        let home = entry.user.map(|user| {
            let entries = &declaration.persist[entry.root].users[user];
            let owner = Owner { user: user.to_owned(), group: entries.group.clone(), mode: Mode::DIRECTORY };
            // An unknown name the entry's own owner shares is reported once, above.
            let same = (&owner.user, &owner.group) == (&entry.entry.owner.user, &entry.entry.owner.group);
            let mut once = Report::default();
            let sink = if same { &mut once } else { &mut report };
            Home { path: &entries.home, ids: resolve(&owner, users, path, sink) }
        });
        let sources = sources.get_mut(entry.root).expect("every root's volume is open");
        // Whatever fails here (a symlink, FIFO, file or hard link where this entry's
        // paths go, or an error from the system on them) is this entry's finding.
        let mut one = || -> Result<Option<u64>> {
            let (parent, name) = split(path);
            let source_parent = sources.dir(parent, home.as_ref())?;
            let target_parent = targets.dir(parent, home.as_ref())?;
            if let Some(parent_ids) = &parent_ids {
                let wrong = enforce(source_parent, parent_ids)?;
                record_fixed(&mut report, format!("{}/{parent}", entry.root.trim_end_matches('/')), wrong);
                let wrong = enforce(target_parent, parent_ids)?;
                record_fixed(&mut report, format!("/{parent}"), wrong);
            }
            let mounted_before = report.mounted.len();
            let volume_path = format!("{}{path}", entry.root.trim_end_matches('/'));
            let place = Place { source_parent, target_parent, name, path, volume_path: &volume_path, repair };
            match (entry.entry.kind, entry.entry.how()) {
                (EntryKind::Directory, How::Bind) => directory(&place, &ids, &entry.entry.options, &mut report)?,
                (EntryKind::Directory, How::Symlink) => linked_directory(&place, &ids, &mut report)?,
                (EntryKind::Directory, How::Copy) => unreachable!("validation allows copies of files only"),
                (EntryKind::File, how) => file(&place, &ids, how, entry, &mut report)?,
            }
            let hide =
                declaration.persist[entry.root].hide_mounts || entry.entry.options.contains(&MountOption::Hidden);
            Ok(if hide && report.mounted.len() > mounted_before { Some(target_parent.mount_id(name)?) } else { None })
        };
        match one() {
            Ok(Some(id)) => hidden.push((id, entry.path.clone())),
            Ok(None) => {}
            Err(error) => {
                if error.is_system_failure() {
                    report.failed_by_system.push(path.to_owned());
                }
                report.conflicts.push((path.to_owned(), format!("not brought in: {error}")));
                failed.push(path);
            }
        }
    }
    record_hidden(root, &hidden)?;
    Ok(report)
}

/// `users`, and the names in the volume's copies of a persisted `/etc/passwd` and
/// `/etc/group`: at boot those are not in the root yet when the first owners are
/// resolved (`/etc/shadow` is `root:shadow`, and `shadow` is named only there).
fn with_persisted_accounts(root: &Dir, declaration: &Declaration, users: &UserDb) -> UserDb {
    let entries = declaration.entries();
    let read = |name: &str| -> String {
        let path = format!("/etc/{name}");
        entries
            .iter()
            .find(|e| e.path == path)
            .and_then(|e| root.open_dir(relative(e.root)).ok())
            .and_then(|volume| volume.read(relative(&path)).ok())
            .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
            .unwrap_or_default()
    };
    let mut all = users.clone();
    all.extend_from_texts(&read("passwd"), &read("group"));
    all
}

/// Moves the live directory `name` of `live` into the empty volume directory of the
/// same name in `volume`: a faithful copy beside it (owners, modes, times, xattrs,
/// hard links, special files; never across a mount; refused if a file in it has a
/// link outside it, which may be anyone's), compared with the original,
/// then renamed over the empty one. The original is untouched; the caller empties
/// it once this succeeded. On failure nothing in the volume changed.
fn migrate(live: &Dir, volume: &Dir, name: &str) -> std::result::Result<(), String> {
    let temp = format!(".{name}.blankslate-migrate");
    let name_os = std::ffi::OsStr::new(name);
    let cleanup = |volume: &Dir| {
        let _ = volume.remove_tree(&temp);
    };
    cleanup(volume);
    let stats = tree::copy(live, name_os, volume, std::ffi::OsStr::new(&temp)).map_err(|e| {
        cleanup(volume);
        format!("cannot be moved into the volume ({e})")
    })?;
    if stats.linked_outside > 0 {
        cleanup(volume);
        let files = stats.linked_outside;
        return Err(format!("{files} file(s) in it have hard links outside it: it is not moved into the volume"));
    }
    // The original read again: a write to it since the copy is a difference too.
    let differences = tree::verify((live, name_os), (volume, std::ffi::OsStr::new(&temp)), None)
        .unwrap_or_else(|e| vec![e.to_string()]);
    if !differences.is_empty() {
        cleanup(volume);
        return Err(format!("its copy in the volume differs ({})", differences.join("; ")));
    }
    let swapped = volume.remove_empty_dir(name).map_err(|e| e.to_string())?
        && volume.rename_noreplace(&temp, name).map_err(|e| e.to_string())?;
    if !swapped {
        cleanup(volume);
        return Err("the volume's directory filled up meanwhile".into());
    }
    volume.sync().map_err(|e| e.to_string())
}

/// `lstat` of `name` in `dir`, or `None` if it does not exist.
fn meta_of(dir: &Dir, name: &str) -> Result<Option<Meta>> {
    match dir.meta(name) {
        Ok(meta) => Ok(Some(meta)),
        Err(error) if error.is_not_found() => Ok(None),
        Err(error) => Err(error.into()),
    }
}

/// Whether `name` in the root is a mount point (of something other than its volume
/// path: callers check that first), reported as a conflict: its data is not the
/// root's to move. This is what a volume unmounted under its bind mounts looks like,
/// and moving the data of those mounts into the bare mount point would empty the
/// real volume.
fn foreign_mount(target_parent: &Dir, name: &str, path: &str, report: &mut Report) -> Result<bool> {
    if !target_parent.is_mount_point(name)? {
        return Ok(false);
    }
    let reason = "is a mount of something else than its volume path (is the volume mounted?): left as it is";
    report.conflicts.push((path.to_owned(), reason.into()));
    Ok(true)
}

#[cfg(test)]
mod tests {
    #[test]
    fn utab_fields_escape_white_space_and_keep_unicode() {
        assert_eq!(super::utab_escape("/srv/my data\\x/ünï"), "/srv/my\\040data\\134x/ünï");
    }
}
