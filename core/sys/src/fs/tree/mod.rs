//! Faithful copies of a tree, and the proof that a copy is faithful.
//!
//! [`copy`] copies one entry (a directory with everything below it, or a single
//! file) from one open directory into another, never following a symlink and never
//! crossing into another mount:
//! - regular files keep their holes: data is copied extent by extent (`SEEK_DATA` /
//!   `SEEK_HOLE`), and the size set with `ftruncate` where holes end the file. A
//!   file with as many bytes allocated as it is long is copied whole without looking
//!   for holes: it has none, unless blocks beyond its end (preallocated) hide one,
//!   which the copy then holds as written zeros (the same contents, less sparse);
//! - files hard-linked to each other inside the tree stay hard-linked (the second name
//!   becomes a `linkat` of the first copy);
//! - symlinks are copied as links; FIFOs, sockets and device nodes are re-created
//!   with `mknodat`;
//! - owner, permission bits (set-id bits included: the mode is set after the owner),
//!   extended attributes (after both, since `chown` drops `security.capability`),
//!   and access and modification times (last) are kept for every entry. Directories
//!   get theirs after the whole copy, deepest first: until then every new directory
//!   is `root 0700`, so nobody else can reach into the copy while it is made;
//! - every file and directory is fsynced ([`Durable::EachEntry`]), or nothing, for a
//!   caller that syncs the whole file system once ([`Durable::ByCaller`]);
//! - the files' bytes are moved by worker threads (`tree::data`) while the walk goes on.
//!
//! Sources are read with `O_NOATIME` where the kernel allows it, so copying does not
//! change what it copies, and files with `O_NONBLOCK`, checked to be the file that was
//! seen: a FIFO swapped in by someone who can write the tree makes the copy fail, never
//! hang.
//!
//! [`walk`] describes a tree as a list of [`Node`]s: kind, owner, mode, mtime, size,
//! the blake3 of the contents, the link target, the device number, the extended
//! attributes, and which earlier path a hard link shares its inode with. Two trees
//! are the same when their lists are equal ([`compare`]), or, without holding either
//! list, their digests ([`describe`], [`Digest`]); access times are not compared
//! (reading a copy to verify it may update them). [`copy_described`] reads each
//! piece of data back as it writes it and compares it with what it read, and makes
//! the digest of the source's walk without the files' contents as it copies it, from
//! what it saw; [`verify`] compares the copy's such walk with it.
//! [`fingerprint`] hashes what changes whenever anything in a tree changes, from one
//! `statx` per entry: inode numbers and change times, which any write, `chmod`,
//! `chown`, change of an extended attribute or replacement moves, to notice a live
//! tree being written while it is moved.

use std::collections::HashMap;
use std::ffi::{OsStr, OsString};
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use super::Dir;

mod copy;
mod data;
mod walk;

pub use copy::{Durable, NestedMounts, copy, copy_described, copy_with};
use rustix::fs::{AtFlags, FileType, Mode, OFlags, ResolveFlags, Statx, StatxFlags, Timespec, Timestamps};
pub(crate) use walk::{Detail, describe_with};
pub use walk::{describe, fingerprint, fingerprint_with, walk};

/// Stay below the directory, and follow no symlink on the way (as `core::fs` does).
const BENEATH: ResolveFlags = ResolveFlags::BENEATH.union(ResolveFlags::NO_SYMLINKS).union(ResolveFlags::NO_MAGICLINKS);

/// A failed operation on a tree: what, where, why.
#[derive(Debug, thiserror::Error)]
pub enum TreeError {
    #[error("cannot {op} {}: {source}", path.display())]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{} is a mount point inside the tree; it is not copied across (persist it separately)", .0.display())]
    MountPoint(PathBuf),
    #[error(transparent)]
    Fs(#[from] super::FsError),
}

pub type Result<T> = std::result::Result<T, TreeError>;

fn wrap(op: &'static str, path: impl Into<PathBuf>) -> impl FnOnce(rustix::io::Errno) -> TreeError {
    let path = path.into();
    move |errno| TreeError::Io { op, path, source: errno.into() }
}

/// What kind of entry a node is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NodeKind {
    File,
    Directory,
    Symlink,
    Fifo,
    Socket,
    CharDevice,
    BlockDevice,
}

impl NodeKind {
    fn of(mode: u32) -> NodeKind {
        match FileType::from_raw_mode(mode) {
            FileType::Directory => NodeKind::Directory,
            FileType::Symlink => NodeKind::Symlink,
            FileType::Fifo => NodeKind::Fifo,
            FileType::Socket => NodeKind::Socket,
            FileType::CharacterDevice => NodeKind::CharDevice,
            FileType::BlockDevice => NodeKind::BlockDevice,
            _ => NodeKind::File,
        }
    }

    fn file_type(self) -> FileType {
        match self {
            NodeKind::File => FileType::RegularFile,
            NodeKind::Directory => FileType::Directory,
            NodeKind::Symlink => FileType::Symlink,
            NodeKind::Fifo => FileType::Fifo,
            NodeKind::Socket => FileType::Socket,
            NodeKind::CharDevice => FileType::CharacterDevice,
            NodeKind::BlockDevice => FileType::BlockDevice,
        }
    }
}

/// Extended attributes, names with values, sorted by name.
pub type Xattrs = Vec<(OsString, Vec<u8>)>;

/// One entry of a tree, as [`walk`] describes it. `path` is relative to the tree's
/// top (empty for the top itself).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    pub path: OsString,
    pub kind: NodeKind,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub mtime: (i64, u32),
    pub size: u64,
    /// blake3 of a regular file's contents (holes read as zeros).
    pub content: Option<[u8; 32]>,
    pub link_target: Option<OsString>,
    /// Device nodes only.
    pub rdev: Option<(u32, u32)>,
    /// Sorted by name.
    pub xattrs: Xattrs,
    /// For a hard link: the path of the first entry in the walk with the same inode.
    pub same_inode_as: Option<OsString>,
}

impl Node {
    /// What `statx` alone says of the entry at `path`: nothing read, no attributes.
    fn of(path: &OsStr, st: &Statx) -> Node {
        let kind = NodeKind::of(u32::from(st.stx_mode));
        Node {
            path: path.to_os_string(),
            kind,
            mode: perm(st),
            uid: st.stx_uid,
            gid: st.stx_gid,
            mtime: (st.stx_mtime.tv_sec, st.stx_mtime.tv_nsec),
            size: if kind == NodeKind::Directory { 0 } else { st.stx_size },
            content: None,
            link_target: None,
            rdev: matches!(kind, NodeKind::CharDevice | NodeKind::BlockDevice)
                .then_some((st.stx_rdev_major, st.stx_rdev_minor)),
            xattrs: Vec::new(),
            same_inode_as: None,
        }
    }
}

/// What a copy did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CopyStats {
    pub directories: u64,
    pub files: u64,
    pub hard_links: u64,
    pub symlinks: u64,
    pub special: u64,
    /// Bytes of file data written (holes excluded).
    pub bytes: u64,
    /// Files with hard links outside the tree (as many links as the source had were
    /// not all inside it): the copy has only the inside ones, so it is not faithful,
    /// and the file may be anyone's (a link to `/etc/shadow` in a user's directory).
    pub linked_outside: u64,
}

/// `statx` of one entry, never following a final symlink.
fn stat(dir: &impl AsFd, name: &OsStr, context: &Path) -> Result<Statx> {
    rustix::fs::statx(dir, name, AtFlags::SYMLINK_NOFOLLOW, StatxFlags::BASIC_STATS | StatxFlags::MNT_ID)
        .map_err(wrap("stat", context.join(name)))
}

/// Opens `name` in `dir` (a single name) without following any symlink.
fn open_at(dir: &impl AsFd, name: &OsStr, flags: OFlags, mode: u32, context: &Path) -> Result<OwnedFd> {
    rustix::fs::openat2(dir, name, flags | OFlags::CLOEXEC | OFlags::NOFOLLOW, Mode::from_raw_mode(mode), BENEATH)
        .map_err(wrap("open", context.join(name)))
}

/// Opens `name` for reading without touching its access time (falling back to a
/// plain open where `O_NOATIME` is not allowed).
fn open_noatime(dir: &impl AsFd, name: &OsStr, flags: OFlags, context: &Path) -> Result<OwnedFd> {
    match open_at(dir, name, flags | OFlags::NOATIME, 0, context) {
        Err(TreeError::Io { source, .. }) if source.raw_os_error() == Some(rustix::io::Errno::PERM.raw_os_error()) => {
            open_at(dir, name, flags, 0, context)
        }
        other => other,
    }
}

/// Opens a directory for reading (see [`open_noatime`]).
fn open_directory(dir: &impl AsFd, name: &OsStr, context: &Path) -> Result<OwnedFd> {
    open_noatime(dir, name, OFlags::RDONLY | OFlags::DIRECTORY, context)
}

/// Opens the regular file `statx` saw as `seen` for reading (see [`open_noatime`]),
/// with `O_NONBLOCK`; it must still be that file: a FIFO swapped in meanwhile is
/// refused, never waited on. Returns it with its size as opened, and whether it has
/// as many bytes allocated as it is long (then it has no holes).
fn open_file(dir: &impl AsFd, name: &OsStr, seen: &Statx, context: &Path) -> Result<(OwnedFd, u64, bool)> {
    let fd = open_noatime(dir, name, OFlags::RDONLY | OFlags::NONBLOCK | OFlags::NOCTTY, context)?;
    let opened = rustix::fs::fstat(&fd).map_err(wrap("stat", context.join(name)))?;
    let same = FileType::from_raw_mode(opened.st_mode) == FileType::RegularFile
        && opened.st_ino == seen.stx_ino
        && opened.st_dev == rustix::fs::makedev(seen.stx_dev_major, seen.stx_dev_minor);
    if !same {
        return Err(TreeError::Io {
            op: "read",
            path: context.join(name),
            source: io::Error::other("it was replaced while being read"),
        });
    }
    let size = u64::try_from(opened.st_size).unwrap_or(0);
    let allocated = u64::try_from(opened.st_blocks).unwrap_or(0).saturating_mul(512);
    Ok((fd, size, allocated >= size))
}

/// A `Dir` for an open directory descriptor (through its `/proc/self/fd` link, which
/// names exactly that directory).
pub fn dir_of(fd: &OwnedFd, shown: &Path) -> Result<Dir> {
    let by_fd = PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd()));
    Dir::open_root(&by_fd).map_err(|e| TreeError::Io {
        op: "open directory",
        path: shown.to_path_buf(),
        source: e.source,
    })
}

/// The procfs path naming entry `name` of `dir` without following it: the directory
/// is reached through its descriptor, and the `l*xattr` calls never follow the last
/// component. Used for entries that cannot be opened (symlinks, FIFOs, devices).
fn proc_path(dir: &impl AsFd, name: &OsStr) -> PathBuf {
    let mut path = PathBuf::from(format!("/proc/self/fd/{}", dir.as_fd().as_raw_fd()));
    path.push(name);
    path
}

/// Where extended attributes are read from and written to.
enum XattrTarget<'a> {
    Fd(BorrowedFd<'a>),
    /// Through [`proc_path`], not following the entry.
    Link(PathBuf),
}

fn list_xattrs(target: &XattrTarget<'_>, shown: &Path) -> Result<Xattrs> {
    let names = loop {
        let size = match target {
            XattrTarget::Fd(fd) => rustix::fs::flistxattr_query(fd),
            XattrTarget::Link(path) => rustix::fs::llistxattr_query(path),
        };
        let size = match size {
            Ok(size) => size,
            Err(rustix::io::Errno::NOTSUP) => return Ok(Vec::new()),
            Err(errno) => return Err(wrap("list extended attributes of", shown)(errno)),
        };
        if size == 0 {
            return Ok(Vec::new());
        }
        let mut buffer = vec![0u8; size];
        let read = match target {
            XattrTarget::Fd(fd) => rustix::fs::flistxattr(fd, &mut buffer[..]),
            XattrTarget::Link(path) => rustix::fs::llistxattr(path, &mut buffer[..]),
        };
        match read {
            Ok(len) => {
                buffer.truncate(len);
                break buffer;
            }
            Err(rustix::io::Errno::RANGE) => {}
            Err(errno) => return Err(wrap("list extended attributes of", shown)(errno)),
        }
    };
    let mut out = Vec::new();
    for name in names.split(|b| *b == 0).filter(|n| !n.is_empty()) {
        let name = OsStr::from_bytes(name);
        let value = loop {
            let size = match target {
                XattrTarget::Fd(fd) => rustix::fs::fgetxattr_query(fd, name),
                XattrTarget::Link(path) => rustix::fs::lgetxattr_query(path, name),
            };
            let size = match size {
                Ok(size) => size,
                // Removed between the list and the read.
                Err(rustix::io::Errno::NODATA) => break None,
                Err(errno) => return Err(wrap("read extended attributes of", shown)(errno)),
            };
            if size == 0 {
                break Some(Vec::new());
            }
            let mut buffer = vec![0u8; size];
            let read = match target {
                XattrTarget::Fd(fd) => rustix::fs::fgetxattr(fd, name, &mut buffer[..]),
                XattrTarget::Link(path) => rustix::fs::lgetxattr(path, name, &mut buffer[..]),
            };
            match read {
                Ok(len) => {
                    buffer.truncate(len);
                    break Some(buffer);
                }
                Err(rustix::io::Errno::RANGE) => {}
                Err(rustix::io::Errno::NODATA) => break None,
                Err(errno) => return Err(wrap("read extended attributes of", shown)(errno)),
            }
        };
        if let Some(value) = value {
            out.push((name.to_os_string(), value));
        }
    }
    out.sort();
    Ok(out)
}

fn set_xattrs(target: &XattrTarget<'_>, xattrs: &Xattrs, shown: &Path) -> Result<()> {
    for (name, value) in xattrs {
        let flags = rustix::fs::XattrFlags::empty();
        match target {
            XattrTarget::Fd(fd) => rustix::fs::fsetxattr(fd, name.as_os_str(), value, flags),
            XattrTarget::Link(path) => rustix::fs::lsetxattr(path, name.as_os_str(), value, flags),
        }
        .map_err(|errno| TreeError::Io {
            op: "set extended attribute",
            path: shown.join(format!("[{}]", name.to_string_lossy())),
            source: errno.into(),
        })?;
    }
    Ok(())
}

fn timestamps(st: &Statx) -> Timestamps {
    let ts = |t: rustix::fs::StatxTimestamp| Timespec { tv_sec: t.tv_sec, tv_nsec: i64::from(t.tv_nsec) };
    Timestamps { last_access: ts(st.stx_atime), last_modification: ts(st.stx_mtime) }
}

fn perm(st: &Statx) -> u32 {
    u32::from(st.stx_mode) & 0o7777
}

/// The differences between two walks, as human-readable lines (empty when equal).
pub fn compare(expected: &[Node], found: &[Node]) -> Vec<String> {
    let mut out = Vec::new();
    let by_path: HashMap<&OsStr, &Node> = found.iter().map(|n| (n.path.as_os_str(), n)).collect();
    for node in expected {
        let shown = if node.path.is_empty() { ".".into() } else { node.path.to_string_lossy() };
        match by_path.get(node.path.as_os_str()) {
            None => out.push(format!("{shown}: missing from the copy")),
            Some(other) if *other != node => out.push(format!("{shown}: differs ({node:?} vs {other:?})")),
            Some(_) => {}
        }
    }
    let known: std::collections::HashSet<&OsStr> = expected.iter().map(|n| n.path.as_os_str()).collect();
    for node in found.iter().filter(|n| !known.contains(n.path.as_os_str())) {
        out.push(format!("{}: not in the original", node.path.to_string_lossy()));
    }
    out
}

/// Whether the tree at `copy` is a faithful copy of the one at `original`: the
/// differences, as [`compare`] says them (empty when faithful). `described` is the
/// original's digest as [`copy_described`] made it while copying, if the caller has
/// it: of everything but the files' contents, which that copy compared as it wrote
/// them, so the copy's are not read again either. Without it, both trees are read
/// whole. They are read whole (again) only when the digests differ, to say where.
pub fn verify(original: (&Dir, &OsStr), copy: (&Dir, &OsStr), described: Option<Digest>) -> Result<Vec<String>> {
    let expected = match described {
        Some(digest) => digest,
        None => describe(original.0, original.1)?,
    };
    if describe_with(copy.0, copy.1, expected.detail)? == expected {
        return Ok(Vec::new());
    }
    let differences = compare(&walk(original.0, original.1, true)?, &walk(copy.0, copy.1, true)?);
    if differences.is_empty() {
        // The original now matches the copy: it changed after it was copied.
        return Ok(vec!["the original changed while it was copied".into()]);
    }
    Ok(differences)
}

/// The pseudo-attribute by which a walk without contents records a node's inode and
/// change time (no real extended attribute's name starts with a NUL).
const CHANGE: &str = "\0change";

/// A blake3 of a whole walk, node by node in the walk's order, and how much the walk
/// read of each: two trees with the same digest have the same walk. It lets a copy be
/// checked against its original without either description held in memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Digest {
    hash: [u8; 32],
    detail: Detail,
}

impl Digest {
    fn hasher() -> blake3::Hasher {
        blake3::Hasher::new()
    }

    fn of(hasher: &blake3::Hasher, detail: Detail) -> Digest {
        Digest { hash: *hasher.finalize().as_bytes(), detail }
    }
}

impl Node {
    /// Feeds every field of the node to `hasher`, each one delimited (lengths and
    /// presence written out), so that different nodes never feed the same bytes.
    fn hash_into(&self, hasher: &mut blake3::Hasher) {
        fn bytes(hasher: &mut blake3::Hasher, bytes: &[u8]) {
            hasher.update(&(bytes.len() as u64).to_le_bytes());
            hasher.update(bytes);
        }
        fn optional(hasher: &mut blake3::Hasher, value: Option<&[u8]>) {
            hasher.update(&[u8::from(value.is_some())]);
            if let Some(value) = value {
                bytes(hasher, value);
            }
        }
        bytes(hasher, self.path.as_bytes());
        hasher.update(&[self.kind as u8]);
        for number in [self.mode, self.uid, self.gid, self.mtime.1] {
            hasher.update(&number.to_le_bytes());
        }
        hasher.update(&self.mtime.0.to_le_bytes());
        hasher.update(&self.size.to_le_bytes());
        optional(hasher, self.content.as_ref().map(<[u8; 32]>::as_slice));
        optional(hasher, self.link_target.as_ref().map(|target| target.as_bytes()));
        let rdev = self.rdev.map(|(major, minor)| [major.to_le_bytes(), minor.to_le_bytes()].concat());
        optional(hasher, rdev.as_deref());
        hasher.update(&(self.xattrs.len() as u64).to_le_bytes());
        for (name, value) in &self.xattrs {
            bytes(hasher, name.as_bytes());
            bytes(hasher, value);
        }
        optional(hasher, self.same_inode_as.as_ref().map(|first| first.as_bytes()));
    }
}

/// Empties a directory through an open handle (the entries, not the directory). The
/// entries are shared in turn among one thread per processor: freeing a large tree
/// is the kernel's work, file by file, and it scales with the cores (a thread that
/// cannot be started leaves its share to this one). A directory that holds a single
/// directory is entered, so that a tree with one top (`data/…`) is shared too. Each
/// thread removes the same entries at every run of the same tree, as the crash tests
/// need (see `tree::data`).
pub fn clear_dir(dir: &Dir) -> Result<()> {
    use std::sync::atomic::{AtomicBool, Ordering};

    let entries = dir.entries()?;
    if let [(only, super::Kind::Directory)] = entries.as_slice() {
        let inner = dir.open_dir(only)?;
        inner.set_mode(0o700)?;
        clear_dir(&inner)?;
        dir.remove_tree(only)?;
    } else {
        let shares = data::threads().clamp(1, entries.len().max(1));
        let failed = AtomicBool::new(false);
        let share = |first: usize| -> Result<()> {
            for (child, _) in entries.iter().skip(first).step_by(shares) {
                if failed.load(Ordering::Relaxed) {
                    break;
                }
                dir.remove_tree(child).inspect_err(|_| failed.store(true, Ordering::Relaxed))?;
            }
            Ok(())
        };
        std::thread::scope(|scope| {
            let started: Vec<_> = (1..shares)
                .map(|first| {
                    (first, std::thread::Builder::new().name("clear".into()).spawn_scoped(scope, move || share(first)))
                })
                .collect();
            let mut result = share(0);
            for (first, thread) in started {
                let outcome = match thread {
                    Ok(thread) => thread.join().unwrap_or_else(|_| {
                        Err(TreeError::Io {
                            op: "remove the entries of",
                            path: dir.path().to_path_buf(),
                            source: io::Error::other("the thread removing them stopped"),
                        })
                    }),
                    Err(_) => share(first),
                };
                result = result.and(outcome);
            }
            result
        })?;
    }
    dir.sync()?;
    Ok(())
}
