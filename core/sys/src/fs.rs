//! Safe file-system primitives: every path below a root is reached through a
//! directory descriptor with `openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS)` or a
//! `*at` call on a single name, never by joining strings, so a symlink planted
//! anywhere in a tree can never lead an operation outside it.
//!
//! Writes that must survive a crash go through [`Dir::write_atomic`],
//! [`Dir::copy_atomic`] and [`Dir::symlink_atomic`]: a temporary name, `fsync`,
//! `rename`, `fsync` of the directory. A command killed before the rename leaves the
//! temporary, which [`Dir::remove_stale_temporaries`] removes once its process is gone.
//!
//! Paths that someone other than root can write (homes, persisted paths in the root
//! and in a volume) are acted on only through a *checked* descriptor
//! ([`Dir::open_checked`]): opened without following a symlink and without blocking
//! on a FIFO, then `fstat`ed, and refused ([`Refusal`]) unless it is a regular file
//! (or, where asked for, a directory) with, in a directory someone other than root can
//! write, a single link. A user's hard link to a file elsewhere (`/etc/shadow`) is
//! therefore never read, chowned or chmoded as root: where `fs.protected_hardlinks` is
//! off, anyone can make one. There is no unsafe code here: rustix provides the system
//! calls.

mod atomic;
mod checked;
mod lock;
mod temp;
pub mod tree;

pub use checked::{Accept, Checked, copy_data};
pub use lock::{Lock, LockWait, lock_wait, set_lock_wait};
pub use temp::{is_temp_name, temp_name};

use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use rustix::fs::{AtFlags, FileType, Mode, OFlags, RenameFlags, ResolveFlags};

/// A failed file-system operation: what was attempted, on which path, and why.
#[derive(Debug, thiserror::Error)]
#[error("cannot {op} {}: {source}", path.display())]
pub struct FsError {
    pub op: &'static str,
    pub path: PathBuf,
    #[source]
    pub source: io::Error,
}

impl FsError {
    pub fn kind(&self) -> io::ErrorKind {
        self.source.kind()
    }

    pub fn is_not_found(&self) -> bool {
        self.kind() == io::ErrorKind::NotFound
    }

    /// Why a checked open ([`Dir::open_checked`]) refused what it found, if that is
    /// what failed.
    pub fn refusal(&self) -> Option<Refusal> {
        self.source.get_ref()?.downcast_ref::<Refusal>().copied()
    }
}

/// What a checked open found instead of what may be acted on as root. The entry is
/// left exactly as it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("it is a symlink, which is never followed")]
    Symlink,
    #[error("it is a FIFO, socket or device node, not a regular file")]
    Special,
    #[error("it is a directory, not a regular file")]
    Directory,
    /// More than one name for the file: one of them may be anywhere on the same file
    /// system (a link to `/etc/shadow` in a home).
    #[error("it has {0} hard links; a file with more than one is never read, chowned or chmoded as root")]
    HardLinked(u64),
}

fn refused(op: &'static str, path: impl Into<PathBuf>, refusal: Refusal) -> FsError {
    FsError { op, path: path.into(), source: io::Error::other(refusal) }
}

pub type Result<T> = std::result::Result<T, FsError>;

fn wrap(op: &'static str, path: impl Into<PathBuf>) -> impl FnOnce(rustix::io::Errno) -> FsError {
    let path = path.into();
    move |errno| FsError { op, path, source: errno.into() }
}

fn wrap_io(op: &'static str, path: impl Into<PathBuf>) -> impl FnOnce(io::Error) -> FsError {
    let path = path.into();
    move |source| FsError { op, path, source }
}

/// Stay below the directory, and follow no symlink on the way (nor magic links).
const BENEATH: ResolveFlags = ResolveFlags::BENEATH.union(ResolveFlags::NO_SYMLINKS).union(ResolveFlags::NO_MAGICLINKS);

/// The kind of a directory entry, as `lstat` sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    File,
    Directory,
    Symlink,
    /// Sockets, FIFOs, device nodes.
    Other,
}

impl From<FileType> for Kind {
    fn from(file_type: FileType) -> Self {
        match file_type {
            FileType::RegularFile => Kind::File,
            FileType::Directory => Kind::Directory,
            FileType::Symlink => Kind::Symlink,
            _ => Kind::Other,
        }
    }
}

/// What `lstat` says about one entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Meta {
    pub kind: Kind,
    /// Permission bits only.
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub size: u64,
    /// Seconds since the epoch.
    pub mtime: i64,
    /// Device and inode: two paths with the same pair are the same file (as after a
    /// bind mount).
    pub dev: u64,
    pub ino: u64,
    /// The file type bits of `st_mode`, for [`Meta::what`].
    file_type: u32,
    /// How many names (hard links) the file has.
    pub nlink: u64,
}

/// A directory's device, inode and change time, and the mount it was reached on. On
/// a local file system the kernel sets the change time to the present whenever an
/// entry is added to the directory, removed or renamed, and whenever its owner or
/// mode change; no system call sets it to anything else. A symlink's target cannot be
/// changed in place. So while a directory's stamp stays the same, so do its names and
/// the symlinks they name, unless the system clock was set back. File systems whose
/// times come from elsewhere (overlayfs, a read-only image, a network or FUSE file
/// system) give no such promise.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChangeStamp {
    pub dev: u64,
    pub ino: u64,
    /// Seconds and nanoseconds since the epoch.
    pub ctime: (i64, u32),
    /// The mount's id, as `/proc/self/mountinfo` names it.
    pub mount_id: u64,
}

impl Meta {
    pub fn identity(&self) -> (u64, u64) {
        (self.dev, self.ino)
    }

    /// What the entry is, in words ("a FIFO", "a character device", …).
    pub fn what(&self) -> &'static str {
        match FileType::from_raw_mode(self.file_type) {
            FileType::RegularFile => "a regular file",
            FileType::Directory => "a directory",
            FileType::Symlink => "a symlink",
            FileType::Fifo => "a FIFO",
            FileType::Socket => "a socket",
            FileType::CharacterDevice => "a character device",
            FileType::BlockDevice => "a block device",
            FileType::Unknown => "of an unknown type",
        }
    }
}

/// An open directory; the handle through which everything below it is reached.
#[derive(Debug)]
pub struct Dir {
    fd: OwnedFd,
    /// For messages only: where this directory is, as far as we know.
    path: PathBuf,
}

/// A name inside one directory: a single component, no `/`, not `.` or `..`.
fn check_name(name: &OsStr, context: &Path) -> Result<()> {
    let bytes = name.as_bytes();
    if bytes.is_empty() || bytes.contains(&b'/') || bytes == b"." || bytes == b".." {
        return Err(FsError {
            op: "use the name",
            path: context.join(name),
            source: io::Error::new(io::ErrorKind::InvalidInput, "not a single file name"),
        });
    }
    Ok(())
}

/// A relative path made only of normal components.
fn check_relative(path: &Path, context: &Path) -> Result<()> {
    if path.components().all(|c| matches!(c, Component::Normal(_))) && path.components().next().is_some() {
        return Ok(());
    }
    Err(FsError {
        op: "use the path",
        path: context.join(path),
        source: io::Error::new(io::ErrorKind::InvalidInput, "not a relative path of plain names"),
    })
}

/// Reads a file that a person named by its path (a declaration, an imported JSON),
/// trusted as a path the way [`Dir::open_root`] trusts one, but never blocking and
/// never without end: it is opened with `O_NONBLOCK` (a FIFO does not wait for a
/// writer), refused unless `fstat` says it is a regular file (not a FIFO, a device
/// such as `/dev/zero`, a directory), and refused if it holds more than `limit` bytes.
pub fn read_regular_file(path: &Path, limit: u64) -> Result<Vec<u8>> {
    let flags = OFlags::RDONLY | OFlags::NONBLOCK | OFlags::NOCTTY | OFlags::CLOEXEC;
    let fd = rustix::fs::open(path, flags, Mode::empty()).map_err(wrap("read", path))?;
    let stat = rustix::fs::fstat(&fd).map_err(wrap("read", path))?;
    let kind = match FileType::from_raw_mode(stat.st_mode) {
        FileType::RegularFile => None,
        FileType::Directory => Some("a directory"),
        FileType::Fifo => Some("a FIFO"),
        FileType::CharacterDevice => Some("a character device"),
        FileType::BlockDevice => Some("a block device"),
        FileType::Socket => Some("a socket"),
        FileType::Symlink | FileType::Unknown => Some("not a file"),
    };
    if let Some(kind) = kind {
        let why = format!("it is {kind}, not a regular file");
        return Err(FsError {
            op: "read",
            path: path.to_path_buf(),
            source: io::Error::new(io::ErrorKind::InvalidInput, why),
        });
    }
    read_at_most(&mut File::from(fd), limit, path)
}

/// Reads `reader` to its end, failing if that is more than `limit` bytes; `path`
/// names it in the error.
pub fn read_at_most(reader: &mut impl Read, limit: u64, path: &Path) -> Result<Vec<u8>> {
    let mut contents = Vec::new();
    reader.take(limit.saturating_add(1)).read_to_end(&mut contents).map_err(wrap_io("read", path))?;
    if contents.len() as u64 > limit {
        let why = format!("it holds more than {}, the most blankslate reads of such a file", bytes(limit));
        return Err(FsError {
            op: "read",
            path: path.to_path_buf(),
            source: io::Error::new(io::ErrorKind::InvalidData, why),
        });
    }
    Ok(contents)
}

/// `16 MiB`, `1000 bytes`.
fn bytes(count: u64) -> String {
    if count >= 1 << 20 && count % (1 << 20) == 0 { format!("{} MiB", count >> 20) } else { format!("{count} bytes") }
}

impl Dir {
    /// Opens a directory by an ordinary path: the one place a path string is trusted,
    /// used for the root a command was pointed at.
    pub fn open_root(path: &Path) -> Result<Dir> {
        let fd = rustix::fs::open(path, OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty())
            .map_err(wrap("open directory", path))?;
        Ok(Dir { fd, path: path.to_path_buf() })
    }

    /// A directory already open as `fd` (which must be a directory), known as `path`.
    pub fn from_fd(fd: OwnedFd, path: PathBuf) -> Dir {
        Dir { fd, path }
    }

    /// Whether this directory is on a read-only mount.
    pub fn is_read_only(&self) -> Result<bool> {
        let info = rustix::fs::fstatvfs(&self.fd).map_err(wrap("read the mount flags of", &self.path))?;
        Ok(info.f_flag.contains(rustix::fs::StatVfsMountFlags::RDONLY))
    }

    /// The type of the file system this directory is on: `statfs`'s `f_type`, a
    /// magic number such as `TMPFS_MAGIC`.
    pub fn file_system_type(&self) -> Result<rustix::fs::FsWord> {
        let info = rustix::fs::fstatfs(&self.fd).map_err(wrap("read the file system type of", &self.path))?;
        Ok(info.f_type)
    }

    /// The file system's size and the bytes an unprivileged writer may still use
    /// (`f_blocks` and `f_bavail` times `f_frsize`): `(available, total)`.
    pub fn space(&self) -> Result<(u64, u64)> {
        let info = rustix::fs::fstatvfs(&self.fd).map_err(wrap("read the free space of", &self.path))?;
        Ok((info.f_bavail.saturating_mul(info.f_frsize), info.f_blocks.saturating_mul(info.f_frsize)))
    }

    /// Writes everything of the file system this directory is on to the disk (`syncfs`):
    /// one call for a copy of many files made without fsyncs of their own.
    pub fn sync_file_system(&self) -> Result<()> {
        rustix::fs::syncfs(&self.fd).map_err(wrap("sync the file system of", &self.path))
    }

    /// Where this directory is, for messages.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A new handle on the same directory.
    pub fn try_clone(&self) -> Result<Dir> {
        let fd = self.fd.try_clone().map_err(wrap_io("duplicate handle on", &self.path))?;
        Ok(Dir { fd, path: self.path.clone() })
    }

    /// The error of `op` on `name` below this directory; the path for the message is
    /// joined only when it fails (a repair asks thousands of names that succeed).
    fn failed<'a>(
        &'a self,
        op: &'static str,
        name: impl AsRef<Path> + 'a,
    ) -> impl FnOnce(rustix::io::Errno) -> FsError + 'a {
        move |errno| FsError { op, path: self.path.join(name), source: errno.into() }
    }

    fn openat(&self, path: &Path, flags: OFlags, mode: Mode, op: &'static str) -> Result<OwnedFd> {
        check_relative(path, &self.path)?;
        rustix::fs::openat2(&self.fd, path, flags | OFlags::CLOEXEC | OFlags::NOFOLLOW, mode, BENEATH)
            .map_err(self.failed(op, path))
    }

    /// Opens a directory below this one; no symlink may appear anywhere on the way.
    pub fn open_dir(&self, path: impl AsRef<Path>) -> Result<Dir> {
        let path = path.as_ref();
        let fd = self.openat(path, OFlags::RDONLY | OFlags::DIRECTORY, Mode::empty(), "open directory")?;
        Ok(Dir { fd, path: self.path.join(path) })
    }

    /// `open_dir`, or (for the empty path) a second handle on this directory: what a
    /// path's parent is when the path is at the top.
    pub fn open_dir_or_self(&self, path: &str) -> Result<Dir> {
        if path.is_empty() { self.try_clone() } else { self.open_dir(path) }
    }

    /// Opens a directory below this one, creating each missing component with `mode`.
    /// An existing directory is opened without an attempt to create it, which also
    /// works on a read-only mount.
    pub fn create_dir_all(&self, path: impl AsRef<Path>, mode: u32) -> Result<Dir> {
        let path = path.as_ref();
        check_relative(path, &self.path)?;
        match self.open_dir(path) {
            Err(error) if error.is_not_found() => {}
            opened => return opened,
        }
        let mut dir = self.try_clone()?;
        for component in path.components() {
            let name = component.as_os_str();
            match rustix::fs::mkdirat(&dir.fd, name, Mode::from_raw_mode(mode)) {
                Ok(()) | Err(rustix::io::Errno::EXIST) => {}
                Err(errno) => return Err(wrap("create directory", dir.path.join(name))(errno)),
            }
            dir = dir.open_dir(name)?;
        }
        Ok(dir)
    }

    /// Creates one directory; `Ok(false)` if it already existed (as anything).
    pub fn create_dir(&self, name: impl AsRef<OsStr>, mode: u32) -> Result<bool> {
        let name = name.as_ref();
        check_name(name, &self.path)?;
        match rustix::fs::mkdirat(&self.fd, name, Mode::from_raw_mode(mode)) {
            Ok(()) => Ok(true),
            Err(rustix::io::Errno::EXIST) => Ok(false),
            Err(errno) => Err(self.failed("create directory", name)(errno)),
        }
    }

    /// Opens a regular file below this one for reading.
    pub fn open_file(&self, path: impl AsRef<Path>) -> Result<File> {
        let path = path.as_ref();
        Ok(File::from(self.openat(path, OFlags::RDONLY, Mode::empty(), "open file")?))
    }

    /// Opens `path` below this directory for reading without waiting (`O_NONBLOCK`: a
    /// FIFO cannot stall the caller) and says what it is, from the descriptor
    /// (`fstat`), before anything is read. With `follow`, symlinks on the way are
    /// followed as long as they stay below this directory (`RESOLVE_BENEATH`; never a
    /// magic link); without, none is.
    pub fn open_nonblocking(&self, path: impl AsRef<Path>, follow: bool) -> Result<(File, Meta)> {
        let path = path.as_ref();
        check_relative(path, &self.path)?;
        let flags = OFlags::RDONLY | OFlags::NONBLOCK | OFlags::NOCTTY | OFlags::CLOEXEC;
        let (flags, resolve) = if follow {
            (flags, ResolveFlags::BENEATH | ResolveFlags::NO_MAGICLINKS)
        } else {
            (flags | OFlags::NOFOLLOW, BENEATH)
        };
        let fd = openat2_following(&self.fd, path, flags, resolve).map_err(self.failed("open", path))?;
        let stat = rustix::fs::fstat(&fd).map_err(self.failed("stat", path))?;
        Ok((File::from(fd), meta_of(&stat)))
    }

    /// Reads a whole file below this one.
    pub fn read(&self, path: impl AsRef<Path>) -> Result<Vec<u8>> {
        let path = path.as_ref();
        let file = self.open_file(path)?;
        let size = rustix::fs::fstat(&file).map_err(self.failed("stat", path))?.st_size;
        checked::read_sized(&file, u64::try_from(size).unwrap_or(0)).map_err(wrap_io("read", self.path.join(path)))
    }

    /// Reads a file as a process whose `/` is this directory would: symlinks are
    /// followed, absolute ones from this directory (`RESOLVE_IN_ROOT`), so nothing
    /// outside it is ever reached. For files that are links by design, such as a
    /// managed `/etc/passwd -> /etc/static/passwd`.
    pub fn read_in_root(&self, path: impl AsRef<Path>) -> Result<Vec<u8>> {
        let path = path.as_ref();
        let resolve = ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS;
        let fd = openat2_following(&self.fd, path, OFlags::RDONLY | OFlags::CLOEXEC, resolve)
            .map_err(self.failed("open file", path))?;
        let mut contents = Vec::new();
        File::from(fd).read_to_end(&mut contents).map_err(wrap_io("read", self.path.join(path)))?;
        Ok(contents)
    }

    /// Creates a symlink `name` -> `target` (which is not checked or followed).
    pub fn symlink(&self, name: impl AsRef<OsStr>, target: impl AsRef<OsStr>) -> Result<()> {
        let name = name.as_ref();
        check_name(name, &self.path)?;
        rustix::fs::symlinkat(target.as_ref(), &self.fd, name).map_err(self.failed("create symlink", name))
    }

    /// The target of the symlink `name`.
    pub fn read_link(&self, name: impl AsRef<OsStr>) -> Result<OsString> {
        let name = name.as_ref();
        check_name(name, &self.path)?;
        // The kernel makes no target of PATH_MAX bytes or more: read into the stack,
        // then one allocation of its size (rustix's growing buffer allocates three
        // times). A full buffer would be a target cut short, never taken for one.
        let mut buffer = [std::mem::MaybeUninit::<u8>::uninit(); 4096];
        let (target, rest) =
            rustix::fs::readlinkat_raw(&self.fd, name, &mut buffer[..]).map_err(self.failed("read symlink", name))?;
        if rest.is_empty() {
            return Err(self.failed("read symlink", name)(rustix::io::Errno::NAMETOOLONG));
        }
        Ok(OsStr::from_bytes(target).to_os_string())
    }

    /// `lstat` of one entry.
    pub fn meta(&self, name: impl AsRef<OsStr>) -> Result<Meta> {
        let name = name.as_ref();
        check_name(name, &self.path)?;
        let stat = rustix::fs::statat(&self.fd, name, AtFlags::SYMLINK_NOFOLLOW).map_err(self.failed("stat", name))?;
        Ok(meta_of(&stat))
    }

    /// `fstat` of this directory.
    pub fn own_meta(&self) -> Result<Meta> {
        let stat = rustix::fs::fstat(&self.fd).map_err(wrap("stat", &self.path))?;
        Ok(meta_of(&stat))
    }

    /// What this directory is, which mount it is on, and when it last changed
    /// (`statx`): see [`ChangeStamp`].
    pub fn change_stamp(&self) -> Result<ChangeStamp> {
        let flags = rustix::fs::StatxFlags::BASIC_STATS | rustix::fs::StatxFlags::MNT_ID;
        let statx = rustix::fs::statx(&self.fd, "", AtFlags::EMPTY_PATH, flags).map_err(wrap("stat", &self.path))?;
        Ok(ChangeStamp {
            dev: rustix::fs::makedev(statx.stx_dev_major, statx.stx_dev_minor),
            ino: statx.stx_ino,
            ctime: (statx.stx_ctime.tv_sec, statx.stx_ctime.tv_nsec),
            mount_id: statx.stx_mnt_id,
        })
    }

    /// The entries of this directory (without `.` and `..`), sorted by name.
    pub fn entries(&self) -> Result<Vec<(OsString, Kind)>> {
        let dir = rustix::fs::Dir::read_from(&self.fd).map_err(wrap("list directory", &self.path))?;
        let mut out = Vec::new();
        for entry in dir {
            let entry = entry.map_err(wrap("list directory", &self.path))?;
            let name = OsStr::from_bytes(entry.file_name().to_bytes());
            if name == "." || name == ".." {
                continue;
            }
            let kind = match entry.file_type() {
                FileType::Unknown => self.meta(name)?.kind,
                known => known.into(),
            };
            out.push((name.to_os_string(), kind));
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(out)
    }

    /// Renames `from` to `to` within this directory, replacing `to`.
    pub fn rename(&self, from: impl AsRef<OsStr>, to: impl AsRef<OsStr>) -> Result<()> {
        let (from, to) = (from.as_ref(), to.as_ref());
        check_name(from, &self.path)?;
        check_name(to, &self.path)?;
        rustix::fs::renameat(&self.fd, from, &self.fd, to).map_err(self.failed("rename", from))
    }

    /// Renames `from` to `to` within this directory; `Ok(false)` if `to` exists.
    pub fn rename_noreplace(&self, from: impl AsRef<OsStr>, to: impl AsRef<OsStr>) -> Result<bool> {
        let (from, to) = (from.as_ref(), to.as_ref());
        check_name(from, &self.path)?;
        check_name(to, &self.path)?;
        match rustix::fs::renameat_with(&self.fd, from, &self.fd, to, RenameFlags::NOREPLACE) {
            Ok(()) => Ok(true),
            Err(rustix::io::Errno::EXIST | rustix::io::Errno::NOTEMPTY) => Ok(false),
            Err(errno) => Err(self.failed("rename", from)(errno)),
        }
    }

    /// Makes `to` another name of the file (or symlink, itself) `from` within this
    /// directory; `Ok(false)` if `to` exists.
    pub fn hard_link(&self, from: impl AsRef<OsStr>, to: impl AsRef<OsStr>) -> Result<bool> {
        let (from, to) = (from.as_ref(), to.as_ref());
        check_name(from, &self.path)?;
        check_name(to, &self.path)?;
        match rustix::fs::linkat(&self.fd, from, &self.fd, to, AtFlags::empty()) {
            Ok(()) => Ok(true),
            Err(rustix::io::Errno::EXIST) => Ok(false),
            Err(errno) => Err(self.failed("link", from)(errno)),
        }
    }

    /// Removes a file or symlink.
    pub fn remove_file(&self, name: impl AsRef<OsStr>) -> Result<()> {
        let name = name.as_ref();
        check_name(name, &self.path)?;
        rustix::fs::unlinkat(&self.fd, name, AtFlags::empty()).map_err(self.failed("remove", name))
    }

    /// Removes an empty directory; `Ok(false)` if it is not empty (or not there).
    pub fn remove_empty_dir(&self, name: impl AsRef<OsStr>) -> Result<bool> {
        let name = name.as_ref();
        check_name(name, &self.path)?;
        match rustix::fs::unlinkat(&self.fd, name, AtFlags::REMOVEDIR) {
            Ok(()) => Ok(true),
            Err(rustix::io::Errno::NOTEMPTY | rustix::io::Errno::EXIST | rustix::io::Errno::NOENT) => Ok(false),
            Err(errno) => Err(self.failed("remove directory", name)(errno)),
        }
    }

    /// Removes `name` and everything below it, without following any symlink, making
    /// read-only directories writable first.
    pub fn remove_tree(&self, name: impl AsRef<OsStr>) -> Result<()> {
        let name = name.as_ref();
        if self.meta(name)?.kind != Kind::Directory {
            return self.remove_file(name);
        }
        let child = self.open_dir(name)?;
        child.set_mode(0o700)?;
        for (entry, kind) in child.entries()? {
            if kind == Kind::Directory { child.remove_tree(&entry)? } else { child.remove_file(&entry)? }
        }
        rustix::fs::unlinkat(&self.fd, name, AtFlags::REMOVEDIR).map_err(self.failed("remove directory", name))
    }

    /// Sets this directory's permission bits.
    pub fn set_mode(&self, mode: u32) -> Result<()> {
        rustix::fs::fchmod(&self.fd, Mode::from_raw_mode(mode)).map_err(wrap("set mode of", &self.path))
    }

    /// Sets the permission bits of a regular file or a directory below this one,
    /// through a checked descriptor ([`Dir::open_checked`]): never through a symlink,
    /// and never on a user's hard link to another file.
    pub fn set_mode_of(&self, name: impl AsRef<OsStr>, mode: u32) -> Result<()> {
        self.open_checked(name, Accept::FileOrDirectory)?.set_mode(mode)
    }

    /// Sets this directory's owner.
    pub fn set_owner(&self, uid: u32, gid: u32) -> Result<()> {
        let (uid, gid) = (rustix::fs::Uid::from_raw(uid), rustix::fs::Gid::from_raw(gid));
        rustix::fs::fchown(&self.fd, Some(uid), Some(gid)).map_err(wrap("set owner of", &self.path))
    }

    /// Sets owner then mode of a regular file or a directory below this one, through a
    /// checked descriptor ([`Dir::open_checked`]: never through a symlink, never on a
    /// user's hard link to another file); the mode last, since `chown` clears set-id
    /// bits.
    pub fn set_owner_and_mode_of(&self, name: impl AsRef<OsStr>, uid: u32, gid: u32, mode: u32) -> Result<()> {
        self.open_checked(name, Accept::FileOrDirectory)?.set_owner_and_mode(uid, gid, mode)
    }

    /// The temporaries of `name` ([`temp_name`]) here whose process is gone: what a
    /// process killed before its rename left.
    pub fn stale_temporaries(&self, name: impl AsRef<OsStr>) -> Result<Vec<(OsString, Kind)>> {
        let name = name.as_ref();
        let mut prefix = b".".to_vec();
        prefix.extend_from_slice(name.as_bytes());
        prefix.extend_from_slice(b".tmp-");
        let mut stale = Vec::new();
        for (entry, kind) in self.entries()? {
            let Some(rest) = entry.as_bytes().strip_prefix(prefix.as_slice()) else { continue };
            let Some((pid, counter)) = std::str::from_utf8(rest).ok().and_then(|r| r.split_once('-')) else { continue };
            let pid = pid.parse::<i32>().ok().and_then(rustix::process::Pid::from_raw);
            let Some(pid) = pid.filter(|_| !counter.is_empty() && counter.bytes().all(|b| b.is_ascii_digit())) else {
                continue;
            };
            if rustix::process::test_kill_process(pid) == Err(rustix::io::Errno::SRCH) {
                stale.push((entry, kind));
            }
        }
        Ok(stale)
    }

    /// Removes the [`Dir::stale_temporaries`] of `name` that are not directories.
    /// Returns their names.
    pub fn remove_stale_temporaries(&self, name: impl AsRef<OsStr>) -> Result<Vec<OsString>> {
        let mut removed = Vec::new();
        for (entry, kind) in self.stale_temporaries(name)? {
            if kind != Kind::Directory {
                match self.remove_file(&entry) {
                    Err(error) if !error.is_not_found() => return Err(error),
                    _ => removed.push(entry),
                }
            }
        }
        if !removed.is_empty() {
            self.sync()?;
        }
        Ok(removed)
    }

    /// The id of the mount `name` is on (or, for a mount point, the mount itself), as
    /// `/proc/self/mountinfo` and libmount's utab name it.
    pub fn mount_id(&self, name: impl AsRef<OsStr>) -> Result<u64> {
        let name = name.as_ref();
        check_name(name, &self.path)?;
        let statx = rustix::fs::statx(&self.fd, name, AtFlags::SYMLINK_NOFOLLOW, rustix::fs::StatxFlags::MNT_ID)
            .map_err(self.failed("stat", name))?;
        Ok(statx.stx_mnt_id)
    }

    /// The id of the mount this directory is on, as `/proc/self/mountinfo` names it.
    pub fn own_mount_id(&self) -> Result<u64> {
        let statx = rustix::fs::statx(&self.fd, "", AtFlags::EMPTY_PATH, rustix::fs::StatxFlags::MNT_ID)
            .map_err(wrap("stat", &self.path))?;
        Ok(statx.stx_mnt_id)
    }

    /// Whether `name` is the root of a mount (`STATX_ATTR_MOUNT_ROOT`): a mount point,
    /// also for a bind mount from the same file system.
    pub fn is_mount_point(&self, name: impl AsRef<OsStr>) -> Result<bool> {
        let name = name.as_ref();
        check_name(name, &self.path)?;
        let statx = rustix::fs::statx(&self.fd, name, AtFlags::SYMLINK_NOFOLLOW, rustix::fs::StatxFlags::BASIC_STATS)
            .map_err(self.failed("stat", name))?;
        Ok(statx.stx_attributes.contains(rustix::fs::StatxAttributes::MOUNT_ROOT))
    }

    /// Opens the file `name` for appending (created with `mode` if missing).
    pub fn open_append(&self, name: impl AsRef<OsStr>, mode: u32) -> Result<File> {
        let name = name.as_ref();
        check_name(name, &self.path)?;
        let flags = OFlags::WRONLY | OFlags::CREATE | OFlags::APPEND;
        Ok(File::from(self.openat(Path::new(name), flags, Mode::from_raw_mode(mode), "open")?))
    }

    /// Appends `text` to the file `name` (created with `mode` if missing) and fsyncs it.
    pub fn append(&self, name: impl AsRef<OsStr>, text: &[u8], mode: u32) -> Result<()> {
        let name = name.as_ref();
        let mut file = self.open_append(name, mode)?;
        let path = self.path.join(name);
        file.write_all(text).map_err(wrap_io("write", &path))?;
        file.sync_all().map_err(wrap_io("fsync", &path))
    }

    /// Flushes this directory's entries to disk.
    pub fn sync(&self) -> Result<()> {
        rustix::fs::fsync(&self.fd).map_err(wrap("fsync", &self.path))
    }
}

impl AsFd for Dir {
    fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

/// `openat2` that follows symlinks (beneath, or in a root): a `..` met on the way
/// makes the kernel refuse with EAGAIN when anything was renamed or mounted anywhere
/// meanwhile, so it tries again.
fn openat2_following(dir: &OwnedFd, path: &Path, flags: OFlags, resolve: ResolveFlags) -> rustix::io::Result<OwnedFd> {
    let mut tries = 0;
    loop {
        match rustix::fs::openat2(dir, path, flags, Mode::empty(), resolve) {
            Err(rustix::io::Errno::AGAIN) if tries < 1000 => tries += 1,
            opened => return opened,
        }
    }
}

fn meta_of(stat: &rustix::fs::Stat) -> Meta {
    Meta {
        kind: FileType::from_raw_mode(stat.st_mode).into(),
        mode: stat.st_mode & 0o7777,
        uid: stat.st_uid,
        gid: stat.st_gid,
        size: u64::try_from(stat.st_size).unwrap_or(0),
        mtime: stat.st_mtime,
        dev: stat.st_dev,
        ino: stat.st_ino,
        file_type: FileType::from_raw_mode(stat.st_mode).as_raw_mode(),
        // A u32 on some architectures.
        #[allow(clippy::useless_conversion)]
        nlink: u64::from(stat.st_nlink),
    }
}

#[cfg(test)]
mod tests;
