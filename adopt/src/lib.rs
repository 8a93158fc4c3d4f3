//! Getting an installed system onto blankslate: `blankslate adopt --from ROOT --to VOLUME`.
//!
//! Reads an installed root (a mounted disk, a chroot, the running system) and fills an
//! empty persistent volume with what that system must keep, plus a starting
//! declaration that says so:
//!
//! - `/usr` (read-only), `/var/log`, every directory of `/var/lib`, the non-empty ones
//!   of `/var` (`backups`, `mail`, `spool`, …), `/home`, `/srv`, `/opt`, `/boot` and
//!   root's `.ssh` (its `authorized_keys` is how a remote admin gets back in) are
//!   persisted directories, each with the owner and mode it has;
//! - the SSH host keys are bind-mounted files; the account files (`passwd`, `group`,
//!   `shadow`, `gshadow`, `subuid`, `subgid`) and `adjtime` are persisted
//!   `how = "copy"`, since `passwd` and `useradd` replace them by rename, and so is
//!   `/etc/machine-id`, since systemd's commit of a first boot's id fails on a mount;
//! - the rest of `/etc` becomes the declaration's etc tree, every file and directory
//!   with its owner and mode (`sudoers` stays 0440, `ssl/private` 0710 root:ssl-cert),
//!   symlinks as they are, empty directories kept (`apt/sources.list.d` is where apt
//!   and people write): a generation built from it makes them all again;
//! - the declaration and its tree live in the persisted `/etc/blankslate`, where the
//!   admin edits them and `blankslate switch /etc/blankslate/system.toml` reads them.
//!
//! What is left out is said, with why (regenerated at boot, a mount point, an empty
//! directory outside `/etc`, a link made again at boot); what it could not decide is kept, with a
//! comment on its line. The root is only read: the copies are made with the faithful
//! copier of `persist add` (owners, modes, times, extended attributes, hard links,
//! holes), and the volume must be empty (`lost+found` aside), so nothing there is
//! overwritten.
//!
//! A crash, a kill or a power cut loses nothing and needs no one to empty the volume:
//! adopt holds the volume's lock and keeps a `record` in it, written before anything
//! else, of what it is filling the volume from and which copies are complete; each copy
//! is made under a temporary name and takes its own only once complete and recorded.
//! The same `adopt` run again finishes the work (a partial copy is made again, a
//! complete one kept); a different one (another root, mount point, or a root that
//! changed what it keeps) removes what the interrupted one made and starts over. A
//! volume holding anything the record does not account for is refused as before.

#![forbid(unsafe_code)]

pub mod fstab;
mod record;

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use blankslate_decl::paths::is_inside;
use blankslate_decl::{
    self as decl, Declaration, Entry, EntryKind, EtcTree, How, Mode, MountOption, Owner, PersistRoot,
};
use blankslate_persist::journal::{self as volume_state, LOCK, STATE_DIR};
use blankslate_sys::fs::tree::{self, CopyStats, Durable, NestedMounts, TreeError};
use blankslate_sys::fs::{Dir, FsError, Kind, Lock, Meta};

pub use record::RECORD;
use record::{Record, temporary};

/// Where the declaration and its etc tree go, in the root (persisted).
pub const DECLARATION_DIR: &str = "/etc/blankslate";
/// The declaration's file name in [`DECLARATION_DIR`].
pub const DECLARATION_FILE: &str = "system.toml";
/// The etc tree's directory name in [`DECLARATION_DIR`].
pub const TREE: &str = "etc";

/// Files of `/etc` that programs replace by rename, persisted as copies.
const COPIED_ETC: [&str; 7] = ["passwd", "group", "shadow", "gshadow", "subuid", "subgid", "adjtime"];
/// Files of `/etc` left out of the tree: regenerated, or backups the shadow tools
/// write at every change.
const REGENERATED_ETC: [&str; 9] =
    [".pwd.lock", "ld.so.cache", "passwd-", "group-", "shadow-", "gshadow-", "subuid-", "subgid-", "machine-id.old"];

#[derive(Debug, thiserror::Error)]
pub enum AdoptError {
    #[error("cannot read the root {}: {source}", path.display())]
    Root { path: PathBuf, source: FsError },
    #[error("{} does not look like an installed system: it has no {what}", path.display())]
    NotASystem { path: PathBuf, what: &'static str },
    #[error("cannot use {} as the new volume: {source}", path.display())]
    Volume { path: PathBuf, source: FsError },
    #[error("the volume {} is not empty (it holds {found}): adopt fills an empty volume and never overwrites", path.display())]
    NotEmpty { path: PathBuf, found: String },
    #[error("the volume {} holds a system adopted from {from} already: adopt fills an empty volume and never overwrites", path.display())]
    Adopted { path: PathBuf, from: String },
    #[error("the adopt record {path} is damaged ({why}); look at it, then remove it by hand")]
    Record { path: String, why: String },
    #[error("cannot copy {path} into the volume: {source}")]
    Copy { path: String, source: TreeError },
    #[error(transparent)]
    Fs(#[from] FsError),
}

pub type Result<T> = std::result::Result<T, AdoptError>;

/// What to adopt, and where to.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    /// The installed system's root.
    pub from: &'a Path,
    /// The new persistent volume, mounted here (empty).
    pub to: &'a Path,
    /// Where the volume will be mounted in the booted system (`/persist`).
    pub mount_point: &'a str,
}

/// One persisted path, copied into the volume.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Kept {
    pub path: String,
    pub stats: CopyStats,
    /// Why it is kept, when adopt could not tell for sure (also a comment on its line).
    pub undecided: Option<String>,
}

/// What adopting did.
#[derive(Debug, Clone, Default)]
pub struct Adopted {
    /// The declaration written, as a path below the volume.
    pub declaration: PathBuf,
    pub kept: Vec<Kept>,
    /// Paths of the root not kept, and why.
    pub left_out: Vec<(String, String)>,
    /// Entries of `/etc` in the etc tree.
    pub etc_entries: usize,
    /// Entries of `/etc` neither in the tree nor persisted, and why.
    pub etc_left_out: Vec<(String, String)>,
    /// An interrupted adopt this one finished, or removed before starting over.
    pub notes: Vec<String>,
    /// The volume held this adoption, finished, already: nothing was done.
    pub finished_before: bool,
}

/// An adoption under way: the volume locked, its record kept. [`Adoption::finish`]
/// records it finished, once the first generation is built.
#[derive(Debug)]
pub struct Adoption {
    pub adopted: Adopted,
    /// The volume's `.blankslate` directory, which holds the record.
    records: Dir,
    record: Record,
    _lock: Lock,
}

impl Adoption {
    /// Records the adoption as finished (the same adopt run again changes nothing),
    /// and gives back what it did.
    pub fn finish(mut self) -> Result<Adopted> {
        if !self.record.done {
            self.record.done = true;
            self.record.write(&self.records)?;
        }
        Ok(self.adopted)
    }
}

/// A decision about one path of the root.
enum Decision {
    Keep { entry: Entry, note: Option<String>, undecided: bool },
    LeaveOut(String),
}

/// The record in `volume`, if any, once the volume is checked to hold nothing else
/// than `lost+found`, the record's own directory (holding nothing but the record, the
/// lock and temporaries of the record), and what the unfinished adoption of the record
/// makes; a finished adoption's volume is not checked. Read before anything is
/// written, and again under the lock.
fn check_volume(volume: &Dir, path: &Path) -> Result<Option<Record>> {
    let unusable = |source| AdoptError::Volume { path: path.into(), source };
    let state = match volume.open_dir(STATE_DIR) {
        Ok(state) => Some(state),
        Err(error) if error.is_not_found() => None,
        Err(error) => return Err(unusable(error)),
    };
    let record = state.as_ref().map(Record::read).transpose()?.flatten();
    if record.as_ref().is_some_and(|r| r.done) {
        // A finished adoption: the volume is in use, and what it holds is its own.
        return Ok(record);
    }
    let mut found = Vec::new();
    for (name, _) in volume.entries().map_err(unusable)? {
        let name = name.to_string_lossy().into_owned();
        let own = match name.as_str() {
            "lost+found" => true,
            STATE_DIR => state.as_ref().is_some_and(|state| {
                state.entries().is_ok_and(|entries| {
                    entries.iter().all(|(n, _)| n == RECORD || n == LOCK || blankslate_sys::fs::is_temp_name(n))
                })
            }),
            _ => record.as_ref().is_some_and(|r| r.made(&name)),
        };
        if !own {
            found.push(name);
        }
    }
    if !found.is_empty() {
        return Err(AdoptError::NotEmpty { path: path.into(), found: found.join(", ") });
    }
    Ok(record)
}

/// Reads `request.from` and fills `request.to`; see the module docs. The caller builds
/// the first generation in the volume, then [`Adoption::finish`]es.
pub fn adopt(request: &Request<'_>) -> Result<Adoption> {
    let root = Dir::open_root(request.from).map_err(|source| AdoptError::Root { path: request.from.into(), source })?;
    for (name, what) in [("etc", "/etc"), ("usr", "/usr")] {
        if !root.meta(name).is_ok_and(|m| m.kind == Kind::Directory) {
            return Err(AdoptError::NotASystem { path: request.from.into(), what });
        }
    }
    let volume = Dir::open_root(request.to).map_err(|source| AdoptError::Volume { path: request.to.into(), source })?;
    let users = decl::UserDb::from_root(&root);
    let mounts = nested_mounts(request.from);
    // A kept directory that is a file system of its own (/boot on its partition, where
    // the boot loader reads the kernels) stays where it is, mounted as before by
    // /etc/fstab: the volume's copy would be what the boot loader never reads.
    let decisions = decide(&root, &users)?;
    let own_file_systems: Vec<String> = decisions
        .iter()
        .filter(|(path, decision)| matches!(decision, Decision::Keep { .. }) && mounts.contains(path))
        .map(|(path, _)| path.clone())
        .collect();
    let decisions: Vec<(String, Decision)> = decisions
        .into_iter()
        .map(|(path, decision)| match decision {
            Decision::Keep { .. } if own_file_systems.contains(&path) => {
                (path, Decision::LeaveOut(OWN_FILE_SYSTEM.into()))
            }
            decision => (path, decision),
        })
        .collect();
    let kept = decisions.iter().filter(|(_, d)| matches!(d, Decision::Keep { .. })).map(|(p, _)| p.clone()).collect();
    let record = Record {
        from: request.from.display().to_string(),
        mount_point: request.mount_point.to_owned(),
        done: false,
        kept,
        copied: BTreeMap::new(),
        etc: None,
    };
    let mut adoption = take_volume(&volume, request.to, record)?;
    let (adopted, record, records) = (&mut adoption.adopted, &mut adoption.record, &adoption.records);
    let mut declaration = Declaration::default();
    let mut persisted = PersistRoot {
        span: decl::Span::default(),
        // The store's volume: the kernel command line names it.
        volume: None,
        hide_mounts: false,
        directories: Vec::new(),
        files: Vec::new(),
        users: BTreeMap::new(),
    };
    let mut notes = BTreeMap::new();
    for (path, decision) in decisions {
        match decision {
            Decision::LeaveOut(why) => adopted.left_out.push((path, why)),
            Decision::Keep { entry, mut note, undecided } => {
                let inside: Vec<&str> = mounts.iter().map(String::as_str).filter(|m| is_inside(m, &path)).collect();
                if !inside.is_empty() {
                    let said = format!(
                        "{} mounted there as before by /etc/fstab: a file system of its own, not copied (its \
                         mount point is kept, empty)",
                        inside.join(", ")
                    );
                    note = Some(note.map_or_else(|| said.clone(), |n| format!("{n}; {said}")));
                }
                let stats = match record.copied.get(&path) {
                    Some(stats) if adopted.finished_before => *stats,
                    _ => copy_into(&root, &volume, &path, record, records)?,
                };
                if let Some(note) = &note {
                    notes.insert(path.clone(), note.clone());
                }
                adopted.kept.push(Kept { path: path.clone(), stats, undecided: note.filter(|_| undecided) });
                match entry.kind {
                    EntryKind::Directory => persisted.directories.push(entry),
                    EntryKind::File => persisted.files.push(entry),
                }
            }
        }
    }
    // The declaration's own directory, persisted so that edits to it survive.
    let own = directory(DECLARATION_DIR, &Owner::root(Mode::new(0o700).expect("a mode")), &[]);
    notes.insert(DECLARATION_DIR.into(), "this declaration and its etc tree: edit, then `blankslate switch`".into());
    persisted.directories.push(own);
    persisted.directories.sort_by(|a, b| a.path.cmp(&b.path));
    declaration.persist.insert(request.mount_point.to_owned(), persisted);

    adopted.declaration = Path::new(DECLARATION_DIR).join(DECLARATION_FILE);
    if adopted.finished_before {
        (adopted.etc_entries, adopted.etc_left_out) = record.etc.clone().unwrap_or_default();
        return Ok(adoption);
    }
    let home = volume.create_dir_all(DECLARATION_DIR.trim_start_matches('/'), 0o700)?;
    home.set_mode(0o700)?;
    remove_temporaries(&home)?;
    carry_declaration_dir(&root, &home)?;
    (adopted.etc_entries, adopted.etc_left_out) = place_etc_tree(&root, &home, &declaration, record, records)?;
    declaration.etc_tree = Some(EtcTree { span: decl::Span::default(), source: TREE.into() });
    let mut text = header(request);
    if !own_file_systems.is_empty() {
        let _ = writeln!(text, "# Not in the volume: {}: {OWN_FILE_SYSTEM}.\n", own_file_systems.join(", "));
    }
    text.push_str(&decl::write::to_toml_noted(&declaration, &notes));
    home.write_atomic(DECLARATION_FILE, text.as_bytes(), 0o600)?;
    volume.sync()?;
    Ok(adoption)
}

/// Why a kept directory that is a file system of its own is left out.
const OWN_FILE_SYSTEM: &str = "a file system of its own, mounted there as before by /etc/fstab (for /boot: what the \
                               boot loader reads), not copied";

/// The mount points inside the root being adopted, as paths in it (`/boot/efi`).
fn nested_mounts(from: &Path) -> Vec<String> {
    let Ok(from) = std::fs::canonicalize(from) else { return Vec::new() };
    blankslate_sys::mount::below(&from).into_iter().map(|m| String::from_utf8_lossy(&m).into_owned()).collect()
}

/// The tree's `fstab`, rewritten for a blankslate root ([`fstab::rewrite`]), with its
/// owner and mode; each entry taken out is said with why.
fn rewrite_fstab(tree: &Dir, declaration: &Declaration, left_out: &mut Vec<(String, String)>) -> Result<()> {
    let meta = match tree.meta("fstab") {
        Ok(meta) if meta.kind == Kind::File => meta,
        Ok(_) => return Ok(()),
        Err(error) if error.is_not_found() => return Ok(()),
        Err(error) => return Err(error.into()),
    };
    let text = String::from_utf8_lossy(&tree.read("fstab")?).into_owned();
    let entries = declaration.entries();
    let persisted: Vec<&str> = entries.iter().map(|e| e.path.as_str()).collect();
    let volumes: Vec<&str> = declaration.persist.keys().map(String::as_str).collect();
    if let Some(rewritten) = fstab::rewrite(&text, &persisted, &volumes) {
        tree.write_atomic_owned("fstab", rewritten.text.as_bytes(), meta.mode, Some((meta.uid, meta.gid)))?;
        for (mount_point, why) in rewritten.taken_out {
            left_out.push((format!("/etc/fstab's entry for {mount_point}"), format!("commented out: {why}")));
        }
    }
    Ok(())
}

/// What the installed system has in `/etc/blankslate` (the package's `initrd.conf`,
/// which the kernel hooks read) goes into the volume's: that directory is persisted,
/// so its entries come from the volume and nowhere else. The declaration and the etc
/// tree are adopt's own to write. Copied again whole on a resumed run (a killed copy
/// may be partial).
fn carry_declaration_dir(root: &Dir, home: &Dir) -> Result<()> {
    let installed = match root.open_dir(DECLARATION_DIR.trim_start_matches('/')) {
        Ok(dir) => dir,
        Err(error) if error.is_not_found() => return Ok(()),
        Err(error) => return Err(error.into()),
    };
    for (name, _) in installed.entries()? {
        if name == DECLARATION_FILE || name == TREE {
            continue;
        }
        if home.meta(&name).is_ok() {
            home.remove_tree(&name)?;
        }
        let path = format!("{DECLARATION_DIR}/{}", name.to_string_lossy());
        tree::copy(&installed, &name, home, &name).map_err(|source| AdoptError::Copy { path, source })?;
    }
    Ok(())
}

/// Takes the volume for `record`'s adoption: checked, locked, and its record read.
/// The same adoption finished already is left as it is (`finished_before`); another
/// finished one is refused; the same one interrupted is resumed; another interrupted
/// one is removed. Then `record` is written, before any other change.
fn take_volume(volume: &Dir, path: &Path, mut record: Record) -> Result<Adoption> {
    // Nothing is written into a volume that holds what adopt did not put there.
    check_volume(volume, path)?;
    let records = volume_state::state_dir(volume)?;
    let lock = records.lock_writer(LOCK)?;
    let mut adopted = Adopted::default();
    match check_volume(volume, path)? {
        Some(found) if found.done && found.same_adopt(&record) => {
            adopted.finished_before = true;
            record = found;
        }
        Some(found) if found.done => return Err(AdoptError::Adopted { path: path.into(), from: found.from }),
        Some(found) if found.same_adopt(&record) => {
            adopted.notes.push(format!(
                "an interrupted adopt into this volume is resumed: {} of its {} copies were complete",
                found.copied.len(),
                found.kept.len()
            ));
            record = found;
        }
        Some(found) => {
            for (name, _) in volume.entries()? {
                if found.made(&name.to_string_lossy()) {
                    volume.remove_tree(&name)?;
                }
            }
            volume.sync()?;
            adopted.notes.push(format!(
                "an interrupted adopt from {} (mounted at {}) was removed from this volume: adopting from the start",
                found.from, found.mount_point
            ));
        }
        None => {}
    }
    remove_temporaries(&records)?;
    if !adopted.finished_before {
        record.write(&records)?;
    }
    Ok(Adoption { adopted, records, record, _lock: lock })
}

/// Removes what a crashed atomic write left in `dir` ([`blankslate_sys::fs::temp_name`]).
fn remove_temporaries(dir: &Dir) -> Result<()> {
    for (name, _) in dir.entries()? {
        if blankslate_sys::fs::is_temp_name(&name) {
            dir.remove_file(&name)?;
        }
    }
    Ok(())
}

fn header(request: &Request<'_>) -> String {
    format!(
        "# Written by `blankslate adopt --from {}`: what this system keeps across reboots.\n\
         # Everything else on / is gone at the next boot; `blankslate audit` lists what that would be.\n\
         # Lines ending in a comment are worth a look. The volume is mounted at {}.\n\n",
        request.from.display(),
        request.mount_point
    )
}

/// The owner and mode of `meta`, by name where the root's `passwd` and `group` know it.
fn owner_of(meta: &Meta, users: &decl::UserDb) -> Option<Owner> {
    let mode = Mode::new(meta.mode)?;
    Some(Owner { user: users.user_name(meta.uid)?, group: users.group_name(meta.gid)?, mode })
}

fn directory(path: &str, owner: &Owner, options: &[MountOption]) -> Entry {
    Entry {
        span: decl::Span::default(),
        kind: EntryKind::Directory,
        path: path.to_owned(),
        owner: owner.clone(),
        parent: None,
        how: None,
        options: options.to_vec(),
    }
}

fn file(path: &str, owner: &Owner, how: How) -> Entry {
    Entry {
        span: decl::Span::default(),
        kind: EntryKind::File,
        path: path.to_owned(),
        owner: owner.clone(),
        parent: None,
        how: Some(how),
        options: Vec::new(),
    }
}

/// The meta of `path` (absolute) in the root, not following links.
fn meta_at(root: &Dir, path: &str) -> Option<Meta> {
    let (parent, name) = path.trim_start_matches('/').rsplit_once('/').unwrap_or(("", path.trim_start_matches('/')));
    let dir = root.open_dir_or_self(parent).ok()?;
    dir.meta(name).ok()
}

fn is_empty_dir(root: &Dir, path: &str) -> bool {
    root.open_dir(path.trim_start_matches('/')).and_then(|d| d.entries()).is_ok_and(|e| e.is_empty())
}

/// The decisions being made, with the root's owner names.
struct Decider<'u> {
    users: &'u decl::UserDb,
    decisions: BTreeMap<String, Decision>,
}

impl Decider<'_> {
    fn leave(&mut self, path: String, why: &str) {
        self.decisions.insert(path, Decision::LeaveOut(why.to_owned()));
    }

    /// Keeps `path` as it is: a directory (with `options`), or a file as a copy (a
    /// bind-mounted file could break whatever replaces it by rename).
    fn keep(&mut self, path: String, meta: &Meta, options: &[MountOption], note: Option<&str>, undecided: bool) {
        let Some(owner) = owner_of(meta, self.users) else {
            let why = format!("its owner {}:{} is not in the root's passwd and group", meta.uid, meta.gid);
            self.leave(path, &why);
            return;
        };
        let entry = if meta.kind == Kind::Directory {
            directory(&path, &owner, options)
        } else {
            file(&path, &owner, How::Copy)
        };
        self.decisions.insert(path, Decision::Keep { entry, note: note.map(str::to_owned), undecided });
    }

    /// Every top-level path of the root.
    fn top(&mut self, root: &Dir) -> Result<()> {
        for (name, kind) in root.entries()? {
            let name = name.to_string_lossy().into_owned();
            let path = format!("/{name}");
            let meta = root.meta(&name)?;
            match (name.as_str(), kind) {
                ("etc" | "var", Kind::Directory) => {}
                ("usr", Kind::Directory) => {
                    let note = "the installed programs, read-only: remount it read-write to install packages";
                    self.keep(path, &meta, &[MountOption::ReadOnly], Some(note), false);
                }
                ("tmp" | "run", _) => self.leave(path, "made empty at every boot"),
                ("proc" | "sys" | "dev", _) => self.leave(path, "a kernel file system"),
                ("lost+found" | "media" | "mnt", _) => self.leave(path, "a mount point or fsck's directory"),
                ("root", Kind::Directory) => {
                    self.leave(path, "root's home is not kept (its .ssh is): add \"/root\" to keep all of it");
                    if let Some(ssh) = meta_at(root, "/root/.ssh").filter(|m| m.kind == Kind::Directory) {
                        let note = "root's authorized_keys: how a remote admin gets back in";
                        self.keep("/root/.ssh".into(), &ssh, &[], Some(note), false);
                    }
                }
                ("bin" | "sbin" | "lib" | "lib32" | "lib64" | "libx32", Kind::Symlink) => {
                    self.leave(path, "a link into /usr, made again at every boot");
                }
                (_, Kind::Symlink) => self.leave(path, "a link (kernel packages make the ones into /boot again)"),
                // Where accounts made later put their data: kept even while empty.
                ("home", Kind::Directory) => self.keep(path, &meta, &[], None, false),
                (_, Kind::Directory) if is_empty_dir(root, &path) => self.leave(path, "empty"),
                ("srv" | "opt" | "boot", Kind::Directory) => self.keep(path, &meta, &[], None, false),
                (_, Kind::Directory) => {
                    self.keep(path, &meta, &[], Some("not a standard directory: kept so that nothing is lost"), true);
                }
                _ => self.leave(path, "a file at the top of the root"),
            }
        }
        Ok(())
    }

    /// `/var`: logs and the non-empty standard directories kept; every directory of
    /// `/var/lib` (a package's state) kept; caches and temporaries left out.
    fn var(&mut self, root: &Dir) -> Result<()> {
        let Ok(var) = root.open_dir("var") else { return Ok(()) };
        for (name, kind) in var.entries()? {
            let name = name.to_string_lossy().into_owned();
            let path = format!("/var/{name}");
            let meta = var.meta(&name)?;
            match (name.as_str(), kind) {
                ("lib", Kind::Directory) => {}
                ("cache" | "tmp", _) => self.leave(path, "regenerated: a cache, or temporary files"),
                (_, Kind::Symlink) => self.leave(path, "a link (/var/run and /var/lock point into /run)"),
                // Logs and mail spools are written by what runs later: kept even while empty.
                (_, Kind::Directory) if !matches!(name.as_str(), "log" | "mail") && is_empty_dir(root, &path) => {
                    self.leave(path, "empty");
                }
                ("log" | "backups" | "mail" | "spool" | "local" | "opt", Kind::Directory) => {
                    self.keep(path, &meta, &[], None, false);
                }
                (_, Kind::Directory) => self.keep(path, &meta, &[], Some("not a standard directory of /var"), true),
                _ => self.leave(path, "a file directly in /var"),
            }
        }
        let Ok(lib) = var.open_dir("lib") else { return Ok(()) };
        for (name, kind) in lib.entries()? {
            let name = name.to_string_lossy().into_owned();
            let path = format!("/var/lib/{name}");
            let meta = lib.meta(&name)?;
            match kind {
                _ if name == "blankslate" => self.leave(path, "blankslate's own state: the volume gets a new one"),
                Kind::Directory => self.keep(path, &meta, &[], None, false),
                Kind::File => {
                    let note = "a file of /var/lib: kept as a copy, in case it is replaced by rename";
                    self.keep(path, &meta, &[], Some(note), true);
                }
                _ => self.leave(path, "not a directory or a regular file"),
            }
        }
        Ok(())
    }

    /// The files of `/etc` that are persisted rather than put in the etc tree.
    fn etc(&mut self, root: &Dir) {
        for name in COPIED_ETC {
            let path = format!("/etc/{name}");
            if let Some(meta) = meta_at(root, &path).filter(|m| m.kind == Kind::File) {
                let note = "replaced by rename (passwd, useradd): a copy, written back when it changes";
                self.keep(path, &meta, &[], Some(note), false);
            }
        }
        for (path, meta) in bound_etc_files(root) {
            let Some(owner) = owner_of(&meta, self.users) else { continue };
            let entry = file(&path, &owner, How::Bind);
            self.decisions.insert(path, Decision::Keep { entry, note: None, undecided: false });
        }
        // systemd-machine-id-commit.service (systemd 252) commits only onto a tmpfs and
        // fails on a bind mount; a copy is a regular file of the tmpfs root.
        if let Some(meta) = meta_at(root, "/etc/machine-id").filter(|m| m.kind == Kind::File) {
            let note = "a copy: systemd-machine-id-commit.service fails on a bind-mounted machine-id";
            self.keep("/etc/machine-id".into(), &meta, &[], Some(note), false);
        }
    }
}

/// What becomes of every top-level path of the root, of `/var` and `/var/lib`, and of
/// the files of `/etc` that are persisted, sorted by path.
fn decide(root: &Dir, users: &decl::UserDb) -> Result<BTreeMap<String, Decision>> {
    let mut decider = Decider { users, decisions: BTreeMap::new() };
    decider.top(root)?;
    decider.var(root)?;
    decider.etc(root);
    Ok(decider.decisions)
}

/// The SSH host keys: bind-mounted (written once, by ssh-keygen, in place).
fn bound_etc_files(root: &Dir) -> Vec<(String, Meta)> {
    let mut out = Vec::new();
    if let Ok(ssh) = root.open_dir("etc/ssh") {
        for (name, kind) in ssh.entries().unwrap_or_default() {
            let name = name.to_string_lossy();
            if kind == Kind::File && name.starts_with("ssh_host_") && name.ends_with("_key") {
                if let Ok(meta) = ssh.meta(name.as_ref()) {
                    out.push((format!("/etc/ssh/{name}"), meta));
                }
            }
        }
    }
    out
}

/// Puts a complete copy under `name` in `dest` (unless it is there already): the
/// copy `write` makes under a temporary name, recorded by `record` once complete, then
/// renamed. A temporary the record accounts for is complete and only renamed; any
/// other is a crashed run's partial copy, and is made again.
fn place<T>(
    dest: &Dir,
    name: &str,
    recorded: Option<T>,
    write: impl FnOnce(&str) -> Result<T>,
    record: impl FnOnce(&T) -> Result<()>,
) -> Result<T> {
    let temp = temporary(name);
    let exists = |n: &str| match dest.meta(n) {
        Ok(_) => Ok(true),
        Err(error) if error.is_not_found() => Ok(false),
        Err(error) => Err(error),
    };
    let copy = match recorded {
        Some(copy) if exists(name)? => return Ok(copy),
        Some(copy) if exists(&temp)? => copy,
        _ => {
            if exists(&temp)? {
                dest.remove_tree(&temp)?;
            }
            let copy = write(&temp)?;
            record(&copy)?;
            copy
        }
    };
    dest.rename(&temp, name)?;
    dest.sync()?;
    Ok(copy)
}

/// Copies `path` (absolute) of the root to the same place in the volume, creating
/// its parents there with the owner and mode they have in the root; the copy's
/// counts go into the record before it takes its name ([`place`]).
fn copy_into(root: &Dir, volume: &Dir, path: &str, record: &mut Record, state: &Dir) -> Result<CopyStats> {
    let relative = path.trim_start_matches('/');
    let (parent, name) = relative.rsplit_once('/').unwrap_or(("", relative));
    let source_parent = root.open_dir_or_self(parent)?;
    let dest_parent = mirror_parents(root, volume, parent)?;
    let recorded = record.copied.get(path).copied();
    let copy = |temp: &str| {
        tree::copy_with(
            &source_parent,
            OsStr::new(name),
            &dest_parent,
            OsStr::new(temp),
            NestedMounts::LeaveEmpty,
            Durable::EachEntry,
        )
        .map_err(|source| AdoptError::Copy { path: path.to_owned(), source })
    };
    place(&dest_parent, name, recorded, copy, |stats| {
        record.copied.insert(path.to_owned(), *stats);
        record.write(state)
    })
}

/// The directory `relative` in the volume, each component with the owner and mode
/// the root's has (given again to one that exists: a crashed run may have made it
/// without them).
fn mirror_parents(root: &Dir, volume: &Dir, relative: &str) -> Result<Dir> {
    let mut dest = volume.try_clone()?;
    let mut source = root.try_clone()?;
    for name in relative.split('/').filter(|n| !n.is_empty()) {
        let meta = source.meta(name)?;
        dest.create_dir(name, 0o700)?;
        dest.set_owner_and_mode_of(name, meta.uid, meta.gid, meta.mode)?;
        dest = dest.open_dir(name)?;
        source = source.open_dir(name)?;
    }
    Ok(dest)
}

/// The etc tree in `home/etc`, put there as a whole ([`place`]): see
/// [`copy_etc_tree`].
fn place_etc_tree(
    root: &Dir,
    home: &Dir,
    declaration: &Declaration,
    record: &mut Record,
    state: &Dir,
) -> Result<(usize, Vec<(String, String)>)> {
    let recorded = record.etc.clone();
    place(
        home,
        TREE,
        recorded,
        |temp| copy_etc_tree(root, home, temp, declaration),
        |etc| {
            record.etc = Some(etc.clone());
            record.write(state)
        },
    )
}

/// The etc tree: a faithful copy of the root's `/etc` in `home/NAME`, without what is
/// persisted (it comes from the volume) or regenerated. Returns how many entries it
/// holds and what was taken out, with why.
fn copy_etc_tree(
    root: &Dir,
    home: &Dir,
    name: &str,
    declaration: &Declaration,
) -> Result<(usize, Vec<(String, String)>)> {
    tree::copy(root, OsStr::new("etc"), home, OsStr::new(name))
        .map_err(|source| AdoptError::Copy { path: "/etc".into(), source })?;
    let tree_dir = home.open_dir(name)?;
    let mut left_out = Vec::new();
    let mut remove = |path: &str, why: &str| -> Result<()> {
        let (parent, name) = path.rsplit_once('/').unwrap_or(("", path));
        let dir = tree_dir.open_dir_or_self(parent)?;
        match dir.remove_tree(name) {
            Ok(()) => {}
            Err(error) if error.is_not_found() => return Ok(()),
            Err(error) => return Err(error.into()),
        }
        left_out.push((format!("/etc/{path}"), why.to_owned()));
        Ok(())
    };
    for entry in declaration.entries() {
        if let Some(path) = entry.path.strip_prefix("/etc/") {
            remove(path, "persisted: it comes from the volume")?;
        }
    }
    for name in REGENERATED_ETC {
        remove(name, "regenerated (a cache, a lock, or a backup the shadow tools write)")?;
    }
    let nodes =
        tree::walk(home, OsStr::new(name), false).map_err(|source| AdoptError::Copy { path: "/etc".into(), source })?;
    for node in &nodes {
        use tree::NodeKind::{BlockDevice, CharDevice, Fifo, Socket};
        if matches!(node.kind, Fifo | Socket | CharDevice | BlockDevice) {
            let path = node.path.to_string_lossy().into_owned();
            remove(&path, "not a file, link or directory: an etc tree holds none")?;
        }
    }
    rewrite_fstab(&tree_dir, declaration, &mut left_out)?;
    let entries = nodes.iter().filter(|n| matches!(n.kind, tree::NodeKind::File | tree::NodeKind::Symlink)).count();
    Ok((entries, left_out))
}
