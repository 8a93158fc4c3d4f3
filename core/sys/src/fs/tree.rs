//! Faithful copies of a tree, and the proof that a copy is faithful.
//!
//! [`copy`] copies one entry (a directory with everything below it, or a single
//! file) from one open directory into another, never following a symlink and never
//! crossing into another mount:
//! - regular files keep their holes: data is copied extent by extent (`SEEK_DATA` /
//!   `SEEK_HOLE`) and the size set with `ftruncate`;
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
//!   caller that syncs the whole file system once ([`Durable::ByCaller`]).
//!
//! Sources are read with `O_NOATIME` where the kernel allows it, so copying does not
//! change what it copies, and files with `O_NONBLOCK`, checked to be the file that was
//! seen: a FIFO swapped in by someone who can write the tree makes the copy fail, never
//! hang.
//!
//! [`walk`] describes a tree as a list of [`Node`]s: kind, owner, mode, mtime, size,
//! the blake3 of the contents, the link target, the device number, the extended
//! attributes, and which earlier path a hard link shares its inode with. Two trees
//! are the same when their lists are equal ([`compare`]); access times are not
//! compared (reading a copy to verify it may update them). [`copy_described`] makes
//! the same description of the source as it copies it, from what it read to copy.
//! [`fingerprint`] hashes what changes whenever anything in a tree changes, from one
//! `statx` per entry: inode numbers and change times, which any write, `chmod`,
//! `chown`, change of an extended attribute or replacement moves, to notice a live
//! tree being written while it is moved.

use std::collections::HashMap;
use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use super::Dir;
use rustix::fs::{AtFlags, FileType, Mode, OFlags, ResolveFlags, Statx, StatxFlags, Timespec, Timestamps};

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
/// refused, never waited on. Returns it with its size as opened.
fn open_file(dir: &impl AsFd, name: &OsStr, seen: &Statx, context: &Path) -> Result<(OwnedFd, u64)> {
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
    Ok((fd, u64::try_from(opened.st_size).unwrap_or(0)))
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

/// A directory whose owner, mode, attributes and times are applied once the whole
/// copy is done.
struct PendingDir {
    /// Relative to the copy's top; empty for the top itself.
    path: PathBuf,
    stat: Statx,
    xattrs: Xattrs,
}

struct Copier<'a> {
    nested: NestedMounts,
    durable: Durable,
    /// The directory holding the copy's top, and the top's name there.
    dest_parent: &'a Dir,
    dest_name: &'a OsStr,
    /// Inode of a hard-linked source file → the copy's path relative to `dest_parent`,
    /// the source's link count, and how many of its names the copy met.
    linked: HashMap<(u32, u32, u64), (PathBuf, u32, u32)>,
    directories: Vec<PendingDir>,
    mount_id: u64,
    stats: CopyStats,
    /// The source as [`walk`] would describe it, made on the way ([`copy_described`]);
    /// `None` when not asked.
    described: Option<Described>,
}

/// The nodes a copy describes, and where each hard-linked inode's first node is (its
/// other names share its extended attributes).
#[derive(Default)]
struct Described {
    nodes: Vec<Node>,
    first_name: HashMap<(u32, u32, u64), usize>,
}

/// What a copy does with a directory inside the tree that another file system is
/// mounted on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NestedMounts {
    /// Fails: the data would be split across two places (`persist add`).
    Refuse,
    /// Copies the directory alone, empty, with the mounted root's owner and mode: the
    /// place where the system mounts that file system as before (`adopt`, an ESP at
    /// `/boot/efi`).
    LeaveEmpty,
}

/// When a copy's entries reach the disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durable {
    /// Each file and directory is fsynced as it is made (`persist add`, `adopt`: the
    /// next step trusts the copy at once).
    EachEntry,
    /// Nothing is fsynced: the caller syncs the whole file system once, before it
    /// trusts the copy (the net: thousands of small files at shutdown).
    ByCaller,
}

/// Copies entry `name` of `source` (a directory tree or a single non-directory) to
/// `dest_name` in `dest` (which must not exist), as described in the module docs.
pub fn copy(source: &Dir, name: &OsStr, dest: &Dir, dest_name: &OsStr) -> Result<CopyStats> {
    copy_with(source, name, dest, dest_name, NestedMounts::Refuse, Durable::EachEntry)
}

/// [`copy`], which also describes the source as [`walk`] with contents would, from
/// the same `statx` and descriptors the copy used and the bytes it copied (hashed on
/// the way), so that the original need not be walked and read again to be compared
/// with the copy. The description is the original's as long as the original did not
/// change meanwhile: a caller holds it to that with a [`fingerprint`] taken before
/// the copy and one after.
pub fn copy_described(source: &Dir, name: &OsStr, dest: &Dir, dest_name: &OsStr) -> Result<(CopyStats, Vec<Node>)> {
    let how = (NestedMounts::Refuse, Durable::EachEntry);
    let (stats, described) = copy_inner((source, name), (dest, dest_name), how, Some(Described::default()))?;
    Ok((stats, described.map(|d| d.nodes).unwrap_or_default()))
}

/// [`copy`], with what to do with directories another file system is mounted on, and
/// when the copy reaches the disk.
pub fn copy_with(
    source: &Dir,
    name: &OsStr,
    dest: &Dir,
    dest_name: &OsStr,
    nested: NestedMounts,
    durable: Durable,
) -> Result<CopyStats> {
    copy_inner((source, name), (dest, dest_name), (nested, durable), None).map(|(stats, _)| stats)
}

/// [`copy_with`] of entry `from` to `to` (each a directory and a name in it), `how`
/// its nested mounts and durability; filling `described` when given.
fn copy_inner(
    (source, name): (&Dir, &OsStr),
    (dest, dest_name): (&Dir, &OsStr),
    (nested, durable): (NestedMounts, Durable),
    described: Option<Described>,
) -> Result<(CopyStats, Option<Described>)> {
    let top = stat(source, name, source.path())?;
    let mut copier = Copier {
        nested,
        durable,
        dest_parent: dest,
        dest_name,
        linked: HashMap::new(),
        directories: Vec::new(),
        mount_id: top.stx_mnt_id,
        stats: CopyStats::default(),
        described,
    };
    copier.entry(source, name, dest, dest_name, Path::new(""), &top)?;
    copier.stats.linked_outside = copier.linked.values().filter(|(_, links, met)| met < links).count() as u64;
    // Deepest first, so that setting a directory's times is never undone by work
    // inside it.
    let mut pending = std::mem::take(&mut copier.directories);
    pending.sort_by_key(|dir| std::cmp::Reverse(dir.path.components().count()));
    for dir in &pending {
        let open = if dir.path.as_os_str().is_empty() {
            dest.open_dir(dest_name)?
        } else {
            dest.open_dir(Path::new(dest_name).join(&dir.path))?
        };
        let shown = open.path().to_path_buf();
        let (uid, gid) = (rustix::fs::Uid::from_raw(dir.stat.stx_uid), rustix::fs::Gid::from_raw(dir.stat.stx_gid));
        rustix::fs::fchown(&open, Some(uid), Some(gid)).map_err(wrap("set owner of", &shown))?;
        rustix::fs::fchmod(&open, Mode::from_raw_mode(perm(&dir.stat))).map_err(wrap("set mode of", &shown))?;
        set_xattrs(&XattrTarget::Fd(open.as_fd()), &dir.xattrs, &shown)?;
        if durable == Durable::EachEntry {
            open.sync()?;
        }
        rustix::fs::futimens(&open, &timestamps(&dir.stat)).map_err(wrap("set times of", &shown))?;
    }
    if durable == Durable::EachEntry {
        dest.sync()?;
    }
    Ok((copier.stats, copier.described))
}

impl Copier<'_> {
    fn entry(&mut self, from: &Dir, name: &OsStr, to: &Dir, to_name: &OsStr, rel: &Path, st: &Statx) -> Result<()> {
        let shown = from.path().join(name);
        let kind = NodeKind::of(u32::from(st.stx_mode));
        if st.stx_mnt_id != self.mount_id {
            if self.nested == NestedMounts::LeaveEmpty && kind == NodeKind::Directory {
                rustix::fs::mkdirat(to, to_name, Mode::from_raw_mode(0o700))
                    .map_err(wrap("create directory", to.path().join(to_name)))?;
                self.directories.push(PendingDir { path: rel.to_path_buf(), stat: *st, xattrs: Vec::new() });
                self.stats.directories += 1;
                return Ok(());
            }
            return Err(TreeError::MountPoint(shown));
        }
        let mut node = self.described.is_some().then(|| Node::of(rel.as_os_str(), st));
        match kind {
            NodeKind::Directory => {
                rustix::fs::mkdirat(to, to_name, Mode::from_raw_mode(0o700))
                    .map_err(wrap("create directory", to.path().join(to_name)))?;
                let source_fd = open_directory(from, name, from.path())?;
                let source = dir_of(&source_fd, &shown)?;
                let xattrs = list_xattrs(&XattrTarget::Fd(source_fd.as_fd()), &shown)?;
                let target = to.open_dir(to_name)?;
                // Described before what it holds, as a walk does.
                self.describe(node.take(), |node| node.xattrs.clone_from(&xattrs));
                for (child, _) in source.entries()? {
                    let child_stat = stat(&source, &child, &shown)?;
                    self.entry(&source, &child, &target, &child, &rel.join(&child), &child_stat)?;
                }
                self.directories.push(PendingDir { path: rel.to_path_buf(), stat: *st, xattrs });
                self.stats.directories += 1;
            }
            NodeKind::File => {
                let key = (st.stx_dev_major, st.stx_dev_minor, st.stx_ino);
                if st.stx_nlink > 1 {
                    if let Some((first, _, met)) = self.linked.get_mut(&key) {
                        // Only names made by this copy are on the way, in directories
                        // that are still root 0700.
                        rustix::fs::linkat(self.dest_parent, &*first, to, to_name, AtFlags::empty())
                            .map_err(wrap("hard-link", to.path().join(to_name)))?;
                        *met += 1;
                        self.stats.hard_links += 1;
                        if let (Some(mut node), Some(described)) = (node, self.described.as_mut()) {
                            let first = &described.nodes[described.first_name[&key]];
                            node.same_inode_as = Some(first.path.clone());
                            node.xattrs.clone_from(&first.xattrs);
                            described.nodes.push(node);
                        }
                        return Ok(());
                    }
                    self.linked.insert(key, (Path::new(self.dest_name).join(rel), st.stx_nlink, 1));
                    if let Some(described) = self.described.as_mut() {
                        described.first_name.insert(key, described.nodes.len());
                    }
                }
                let (xattrs, content) = self.file(from, name, to, to_name, st)?;
                self.describe(node, |node| (node.xattrs, node.content) = (xattrs, content));
                self.stats.files += 1;
            }
            NodeKind::Symlink => {
                let target = rustix::fs::readlinkat(from, name, Vec::new()).map_err(wrap("read symlink", &shown))?;
                rustix::fs::symlinkat(target.as_bytes(), to, to_name)
                    .map_err(wrap("create symlink", to.path().join(to_name)))?;
                let xattrs = Self::metadata_by_name(from, name, to, to_name, st, false)?;
                let target = OsString::from(OsStr::from_bytes(target.as_bytes()));
                self.describe(node, |node| (node.xattrs, node.link_target) = (xattrs, Some(target)));
                self.stats.symlinks += 1;
            }
            _ => {
                let dev = rustix::fs::makedev(st.stx_rdev_major, st.stx_rdev_minor);
                rustix::fs::mknodat(to, to_name, kind.file_type(), Mode::from_raw_mode(0o600), dev)
                    .map_err(wrap("create special file", to.path().join(to_name)))?;
                let xattrs = Self::metadata_by_name(from, name, to, to_name, st, true)?;
                self.describe(node, |node| node.xattrs = xattrs);
                self.stats.special += 1;
            }
        }
        Ok(())
    }

    /// Completes `node` (made when the copy describes) with what copying it found,
    /// and adds it to the description.
    fn describe(&mut self, node: Option<Node>, complete: impl FnOnce(&mut Node)) {
        if let (Some(mut node), Some(described)) = (node, self.described.as_mut()) {
            complete(&mut node);
            described.nodes.push(node);
        }
    }

    /// Owner, mode, attributes and times of an entry that cannot be opened; returns
    /// the source's extended attributes.
    fn metadata_by_name(
        from: &Dir,
        name: &OsStr,
        to: &Dir,
        to_name: &OsStr,
        st: &Statx,
        set_mode: bool,
    ) -> Result<Xattrs> {
        let shown = to.path().join(to_name);
        let (uid, gid) = (rustix::fs::Uid::from_raw(st.stx_uid), rustix::fs::Gid::from_raw(st.stx_gid));
        rustix::fs::chownat(to, to_name, Some(uid), Some(gid), AtFlags::SYMLINK_NOFOLLOW)
            .map_err(wrap("set owner of", &shown))?;
        if set_mode {
            // Not a symlink (mknodat made it just now, in a directory only root can
            // write), so chmodat's following of a final link does not arise.
            rustix::fs::chmodat(to, to_name, Mode::from_raw_mode(perm(st)), AtFlags::empty())
                .map_err(wrap("set mode of", &shown))?;
        }
        let xattrs = list_xattrs(&XattrTarget::Link(proc_path(from, name)), &from.path().join(name))?;
        set_xattrs(&XattrTarget::Link(proc_path(to, to_name)), &xattrs, &shown)?;
        rustix::fs::utimensat(to, to_name, &timestamps(st), AtFlags::SYMLINK_NOFOLLOW)
            .map_err(wrap("set times of", &shown))?;
        Ok(xattrs)
    }

    /// A regular file: data extent by extent, holes left as holes. Returns the
    /// source's extended attributes, and the blake3 of its contents when the copy
    /// describes.
    fn file(
        &mut self,
        from: &Dir,
        name: &OsStr,
        to: &Dir,
        to_name: &OsStr,
        st: &Statx,
    ) -> Result<(Xattrs, Option<[u8; 32]>)> {
        let shown = from.path().join(name);
        let dest_shown = to.path().join(to_name);
        let (source, size) = open_file(from, name, st, from.path())?;
        let dest = open_at(to, to_name, OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL, 0o600, to.path())?;
        let mut hasher = self.described.is_some().then(blake3::Hasher::new);
        let copied = (&source, shown.as_path(), size);
        self.stats.bytes += super::checked::copy_data_hashed(copied, &dest, &dest_shown, hasher.as_mut())?;
        let (uid, gid) = (rustix::fs::Uid::from_raw(st.stx_uid), rustix::fs::Gid::from_raw(st.stx_gid));
        rustix::fs::fchown(&dest, Some(uid), Some(gid)).map_err(wrap("set owner of", &dest_shown))?;
        rustix::fs::fchmod(&dest, Mode::from_raw_mode(perm(st))).map_err(wrap("set mode of", &dest_shown))?;
        let xattrs = list_xattrs(&XattrTarget::Fd(source.as_fd()), &shown)?;
        set_xattrs(&XattrTarget::Fd(dest.as_fd()), &xattrs, &dest_shown)?;
        if self.durable == Durable::EachEntry {
            rustix::fs::fsync(&dest).map_err(wrap("fsync", &dest_shown))?;
        }
        rustix::fs::futimens(&dest, &timestamps(st)).map_err(wrap("set times of", &dest_shown))?;
        Ok((xattrs, hasher.map(|h| *h.finalize().as_bytes())))
    }
}

/// blake3 of a file's contents, from a descriptor opened without `O_NOATIME` loss.
fn hash_file(fd: OwnedFd, shown: PathBuf) -> Result<[u8; 32]> {
    let mut hasher = blake3::Hasher::new();
    let file = File::from(fd);
    hasher.update_reader(&file).map_err(|source| TreeError::Io { op: "read", path: shown, source })?;
    Ok(*hasher.finalize().as_bytes())
}

/// Describes entry `name` of `dir` and everything below it (see the module docs);
/// with `contents` false, only as `statx` describes each entry (kind, owner, mode,
/// times, size, inode and change time), reading no file, link or attribute: what
/// [`fingerprint`] hashes.
pub fn walk(dir: &Dir, name: &OsStr, contents: bool) -> Result<Vec<Node>> {
    let mut nodes = Vec::new();
    walk_each(dir, name, contents, &mut |node| nodes.push(node))?;
    Ok(nodes)
}

/// [`walk`], handing each node to `visit` in turn instead of holding them all.
fn walk_each(dir: &Dir, name: &OsStr, contents: bool, visit: &mut dyn FnMut(Node)) -> Result<()> {
    let top = stat(dir, name, dir.path())?;
    let mut walker = Walker { contents, visit, inodes: HashMap::new(), mount_id: top.stx_mnt_id };
    walker.node(dir, name, OsStr::new(""), &top)
}

struct Walker<'a> {
    contents: bool,
    visit: &'a mut dyn FnMut(Node),
    inodes: HashMap<(u32, u32, u64), OsString>,
    mount_id: u64,
}

impl Walker<'_> {
    fn node(&mut self, dir: &Dir, name: &OsStr, rel: &OsStr, st: &Statx) -> Result<()> {
        let shown = dir.path().join(name);
        if st.stx_mnt_id != self.mount_id {
            return Err(TreeError::MountPoint(shown));
        }
        let mut node = Node::of(rel, st);
        let mut children = None;
        match node.kind {
            NodeKind::Directory => {
                let fd = open_directory(dir, name, dir.path())?;
                if self.contents {
                    node.xattrs = list_xattrs(&XattrTarget::Fd(fd.as_fd()), &shown)?;
                }
                children = Some(dir_of(&fd, &shown)?);
            }
            NodeKind::File => {
                if st.stx_nlink > 1 {
                    let key = (st.stx_dev_major, st.stx_dev_minor, st.stx_ino);
                    if let Some(first) = self.inodes.get(&key) {
                        node.same_inode_as = Some(first.clone());
                    } else {
                        self.inodes.insert(key, rel.to_os_string());
                    }
                }
                if self.contents {
                    let (fd, _) = open_file(dir, name, st, dir.path())?;
                    node.xattrs = list_xattrs(&XattrTarget::Fd(fd.as_fd()), &shown)?;
                    if node.same_inode_as.is_none() {
                        node.content = Some(hash_file(fd, shown.clone())?);
                    }
                }
            }
            NodeKind::Symlink if self.contents => {
                let target = rustix::fs::readlinkat(dir, name, Vec::new()).map_err(wrap("read symlink", &shown))?;
                node.link_target = Some(OsString::from(OsStr::from_bytes(target.as_bytes())));
                node.xattrs = list_xattrs(&XattrTarget::Link(proc_path(dir, name)), &shown)?;
            }
            _ if self.contents => node.xattrs = list_xattrs(&XattrTarget::Link(proc_path(dir, name)), &shown)?,
            _ => {}
        }
        if !self.contents {
            // What a fingerprint stands on: a new inode or a changed ctime means
            // someone touched the entry (its data, owner, mode, attributes; a symlink
            // is never changed in place).
            let change = format!("ino {} ctime {}.{}", st.stx_ino, st.stx_ctime.tv_sec, st.stx_ctime.tv_nsec);
            node.xattrs.push((OsString::from(CHANGE), change.into_bytes()));
        }
        (self.visit)(node);
        if let Some(child_dir) = children {
            for (child, _) in child_dir.entries()? {
                let child_stat = stat(&child_dir, &child, &shown)?;
                let child_rel = if rel.is_empty() { child.clone() } else { join(rel, &child) };
                self.node(&child_dir, &child, &child_rel, &child_stat)?;
            }
        }
        Ok(())
    }
}

fn join(a: &OsStr, b: &OsStr) -> OsString {
    let mut out = a.to_os_string();
    out.push("/");
    out.push(b);
    out
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

/// The pseudo-attribute by which a walk without contents records a node's inode and
/// change time (no real extended attribute's name starts with a NUL).
const CHANGE: &str = "\0change";

/// A hex blake3 over what [`walk`] without contents sees (one `statx` an entry, and a
/// directory listed): it changes whenever anything in the tree does.
pub fn fingerprint(dir: &Dir, name: &OsStr) -> Result<String> {
    // Hashed as the walk goes: memory does not grow with the tree.
    let mut hasher = blake3::Hasher::new();
    walk_each(dir, name, false, &mut |node| {
        hasher.update(format!("{node:?}\n").as_bytes());
    })?;
    Ok(hasher.finalize().to_hex().to_string())
}

/// Empties a directory through an open handle (the entries, not the directory).
pub fn clear_dir(dir: &Dir) -> Result<()> {
    for (child, _) in dir.entries()? {
        dir.remove_tree(&child)?;
    }
    dir.sync()?;
    Ok(())
}
