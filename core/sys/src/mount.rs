//! Mounting through file descriptors (the new mount API): `fsopen`/`fsmount` for new
//! file systems, `open_tree`/`move_mount` for bind mounts. Targets are named as one
//! entry of an open directory, never as a path string.

use std::ffi::OsStr;
use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use rustix::fs::{Mode, OFlags, StatVfsMountFlags};

use crate::fs::Dir;
use rustix::mount::{FsMountFlags, FsOpenFlags, MountPropagationFlags, MoveMountFlags, OpenTreeFlags, UnmountFlags};
/// The flags [`bind`] and [`mount_new`] apply; re-exported so callers need no rustix
/// of their own.
pub use rustix::mount::{MountAttrFlags, MountFlags};

/// A mount operation that failed: what, where, and why.
#[derive(Debug, thiserror::Error)]
#[error("cannot {op} {}: {source}", at.display())]
pub struct MountError {
    pub op: &'static str,
    pub at: PathBuf,
    #[source]
    pub source: io::Error,
}

pub type Result<T> = std::result::Result<T, MountError>;

fn wrap(op: &'static str, at: impl Into<PathBuf>) -> impl FnOnce(rustix::io::Errno) -> MountError {
    let at = at.into();
    move |errno| MountError { op, at, source: errno.into() }
}

/// Attaches a detached mount (from `fsmount` or `open_tree`) on `name` in `dir`.
fn attach(mount: &OwnedFd, dir: &Dir, name: &OsStr, op: &'static str) -> Result<()> {
    rustix::mount::move_mount(mount, "", dir, name, MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH)
        .map_err(wrap(op, dir.path().join(name)))
}

/// Mounts a fresh file system of type `fs_type` on `name` in `dir`, with string
/// options (`size`, `mode`, …) and mount attributes.
pub fn mount_new(
    dir: &Dir,
    name: &str,
    fs_type: &str,
    options: &[(&str, &str)],
    attributes: MountAttrFlags,
) -> Result<()> {
    let at = dir.path().join(name);
    let options: Vec<FsOption<'_>> = options.iter().map(|&(key, value)| FsOption::Value(key, value)).collect();
    let mount = fs_mount(&at, fs_type, &options, attributes)?;
    attach(&mount, dir, OsStr::new(name), "attach a mount on")
}

/// One option of a new file system, as `fsconfig` takes it.
#[derive(Debug, Clone, Copy)]
pub enum FsOption<'a> {
    /// `key=value` (`size=2G`, `source=/dev/vda`).
    Value(&'a str, &'a str),
    /// A flag (`discard`).
    Flag(&'a str),
}

/// A mount that is not attached anywhere yet (fresh from `fsmount`): its files are
/// reached through [`Detached::dir`], and [`Detached::attach`] puts it in place. Nothing
/// about it is visible to other processes until then, and attaching a detached mount
/// is allowed below a shared mount, where moving an attached one is not (`EINVAL`:
/// a systemd initrd makes its root shared).
#[derive(Debug)]
pub struct Detached {
    mount: OwnedFd,
    dir: Dir,
}

impl Detached {
    /// Mounts a fresh file system (its device, if any, as the `source` option).
    pub fn new(shown: &Path, fs_type: &str, options: &[FsOption<'_>], attributes: MountAttrFlags) -> Result<Detached> {
        let mount = fs_mount(shown, fs_type, options, attributes)?;
        let opened =
            rustix::fs::openat(&mount, ".", OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty())
                .map_err(wrap("open the new mount of", shown))?;
        Ok(Detached { mount, dir: Dir::from_fd(opened, shown.to_path_buf()) })
    }

    /// The mount's root directory.
    pub fn dir(&self) -> &Dir {
        &self.dir
    }

    /// Attaches the mount on `name` in `dir`; the directory handle stays valid.
    pub fn attach(&self, dir: &Dir, name: &str) -> Result<()> {
        attach(&self.mount, dir, OsStr::new(name), "attach a mount on")
    }
}

fn fs_mount(at: &Path, fs_type: &str, options: &[FsOption<'_>], attributes: MountAttrFlags) -> Result<OwnedFd> {
    let fs = rustix::mount::fsopen(fs_type, FsOpenFlags::FSOPEN_CLOEXEC).map_err(wrap("open a file system for", at))?;
    for option in options {
        match *option {
            FsOption::Value(key, value) => rustix::mount::fsconfig_set_string(&fs, key, value),
            FsOption::Flag(key) => rustix::mount::fsconfig_set_flag(&fs, key),
        }
        .map_err(wrap("configure the file system for", at))?;
    }
    rustix::mount::fsconfig_create(&fs).map_err(wrap("create the file system for", at))?;
    rustix::mount::fsmount(&fs, FsMountFlags::FSMOUNT_CLOEXEC, attributes).map_err(wrap("mount", at))
}

/// Where a bind mount comes from: an open directory, a file in one, or (for the
/// host's own `/usr`, `/dev`, …) an absolute path outside any root we manage.
#[derive(Debug, Clone, Copy)]
pub enum Source<'a> {
    Dir(&'a Dir),
    /// A regular file, by its name in an open directory.
    File(&'a Dir, &'a str),
    HostPath(&'a Path),
}

/// Bind-mounts `source` on `name` in `dir` (recursively: submounts come along),
/// then applies `flags` (any of `RDONLY`, `NOSUID`, `NODEV`, `NOEXEC`).
pub fn bind(source: Source<'_>, dir: &Dir, name: &str, flags: MountFlags) -> Result<()> {
    let at = dir.path().join(name);
    let clone = OpenTreeFlags::OPEN_TREE_CLONE | OpenTreeFlags::OPEN_TREE_CLOEXEC | OpenTreeFlags::AT_RECURSIVE;
    let tree = match source {
        Source::Dir(from) => rustix::mount::open_tree(from, "", clone | OpenTreeFlags::AT_EMPTY_PATH),
        // Never through a symlink swapped in after the caller looked (it could name
        // any file on the host).
        Source::File(from, file) => rustix::mount::open_tree(from, file, clone | OpenTreeFlags::AT_SYMLINK_NOFOLLOW),
        Source::HostPath(path) => rustix::mount::open_tree(rustix::fs::CWD, path, clone),
    }
    .map_err(wrap("clone the mount tree for", &at))?;
    if let Source::File(from, file) = source {
        let stat = rustix::fs::fstat(&tree).map_err(wrap("stat", from.path().join(file)))?;
        if rustix::fs::FileType::from_raw_mode(stat.st_mode) != rustix::fs::FileType::RegularFile {
            return Err(MountError {
                op: "bind-mount",
                at: from.path().join(file),
                source: io::Error::other("it is not a regular file (a symlink is never followed)"),
            });
        }
    }
    attach(&tree, dir, OsStr::new(name), "bind-mount on")?;
    if !flags.is_empty() {
        // A bind remount sets the mount's flags, it does not add to them: keep the
        // restrictions the clone already has (a volume mounted nosuid stays nosuid).
        let kept = mount_flags_of(rustix::fs::fstatvfs(&tree).map_err(wrap("read the flags of", &at))?.f_flag);
        // The attached mount is reached through its own descriptor (/proc/self/fd/N),
        // not through the path it was attached at.
        let by_fd = format!("/proc/self/fd/{}", tree.as_fd().as_raw_fd());
        rustix::mount::mount_remount(by_fd.as_str(), MountFlags::BIND | kept | flags, "")
            .map_err(wrap("set flags of", &at))?;
    }
    Ok(())
}

/// Adds to the mount on `name` in `dir` whichever of `declared` (`RDONLY`, `NOSUID`,
/// `NODEV`, `NOEXEC`) it lacks, keeping the flags it has; returns the flags added
/// (none: nothing was done).
pub fn add_missing_flags(dir: &Dir, name: &str, declared: MountFlags) -> Result<MountFlags> {
    let at = dir.path().join(name);
    let target = open_path(dir, name)?;
    let has = rustix::fs::fstatvfs(&target).map_err(wrap("read the flags of", &at))?.f_flag;
    let flags = mount_flags_of(has);
    let missing = declared.difference(flags);
    if !missing.is_empty() {
        let by_fd = format!("/proc/self/fd/{}", target.as_raw_fd());
        rustix::mount::mount_remount(by_fd.as_str(), MountFlags::BIND | flags | missing, "")
            .map_err(wrap("set flags of", &at))?;
    }
    Ok(missing)
}

/// The remount flags that keep what `statvfs` says a mount has.
fn mount_flags_of(has: StatVfsMountFlags) -> MountFlags {
    [
        (StatVfsMountFlags::RDONLY, MountFlags::RDONLY),
        (StatVfsMountFlags::NOSUID, MountFlags::NOSUID),
        (StatVfsMountFlags::NODEV, MountFlags::NODEV),
        (StatVfsMountFlags::NOEXEC, MountFlags::NOEXEC),
        (StatVfsMountFlags::NOATIME, MountFlags::NOATIME),
        (StatVfsMountFlags::NODIRATIME, MountFlags::NODIRATIME),
        (StatVfsMountFlags::RELATIME, MountFlags::RELATIME),
    ]
    .into_iter()
    .filter(|(statvfs, _)| has.contains(*statvfs))
    .fold(MountFlags::empty(), |all, (_, flag)| all | flag)
}

/// An `O_PATH` descriptor of `name` in `dir` (no symlink followed), to name a mount
/// point to the old mount calls through `/proc/self/fd/N`.
fn open_path(dir: &Dir, name: &str) -> Result<OwnedFd> {
    let resolve = rustix::fs::ResolveFlags::BENEATH | rustix::fs::ResolveFlags::NO_SYMLINKS;
    let flags = rustix::fs::OFlags::PATH | rustix::fs::OFlags::NOFOLLOW | rustix::fs::OFlags::CLOEXEC;
    rustix::fs::openat2(dir, name, flags, rustix::fs::Mode::empty(), resolve)
        .map_err(wrap("open", dir.path().join(name)))
}

/// A writable view of `dir`, which sits on a read-only mount: a private clone of that
/// mount (`open_tree`, never attached anywhere, so no other process can see it) with
/// its read-only flag cleared. The shared mount stays read-only for everyone else;
/// the clone goes away with the last descriptor on it. Needs `CAP_SYS_ADMIN`, and
/// fails with `EROFS` on writes if the file system itself is read-only.
pub fn writable_view(dir: &Dir) -> Result<Dir> {
    let at = dir.path().to_path_buf();
    let clone = OpenTreeFlags::OPEN_TREE_CLONE | OpenTreeFlags::OPEN_TREE_CLOEXEC | OpenTreeFlags::AT_EMPTY_PATH;
    let tree = rustix::mount::open_tree(dir, "", clone).map_err(wrap("clone the mount of", &at))?;
    crate::raw::clear_mount_read_only(tree.as_fd()).map_err(|source| MountError {
        op: "make a writable view of",
        at: at.clone(),
        source,
    })?;
    // open_tree gives an O_PATH handle: open the directory for real through it.
    let opened = rustix::fs::openat(&tree, ".", OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty())
        .map_err(wrap("open the writable view of", &at))?;
    Ok(Dir::from_fd(opened, at))
}

/// Detaches whatever is mounted on `name` in `dir` (lazily: open files keep working).
pub fn unmount(dir: &Dir, name: &str) -> Result<()> {
    let at = dir.path().join(name);
    let target = open_path(dir, name)?;
    let by_fd = format!("/proc/self/fd/{}", target.as_raw_fd());
    rustix::mount::unmount(by_fd.as_str(), UnmountFlags::DETACH).map_err(wrap("unmount", &at))
}

/// A directory bound onto itself, so that it is a mount of its own and every mount
/// made below it hangs under that one: dropping this detaches them all at once. A
/// scratch tree that has mounts in it can then be removed even from inside the mount
/// namespace that holds them (tests and benchmarks).
#[derive(Debug)]
pub struct OwnMount {
    parent: Dir,
    name: String,
}

impl OwnMount {
    /// Binds `dir` (an open directory with a parent and a UTF-8 name) onto itself.
    pub fn new(dir: &Dir) -> Result<OwnMount> {
        let at = dir.path();
        let not_named =
            || MountError { op: "bind onto itself", at: at.to_path_buf(), source: io::ErrorKind::InvalidInput.into() };
        let name = at.file_name().and_then(OsStr::to_str).ok_or_else(not_named)?.to_owned();
        let parent = Dir::open_root(at.parent().ok_or_else(not_named)?).map_err(|e| MountError {
            op: "open the parent of",
            at: at.to_path_buf(),
            source: e.source,
        })?;
        bind(Source::Dir(dir), &parent, &name, MountFlags::empty())?;
        Ok(OwnMount { parent, name })
    }
}

impl Drop for OwnMount {
    fn drop(&mut self) {
        // Lazily: open descriptors below keep working; nothing is left attached.
        let _ = unmount(&self.parent, &self.name);
    }
}

/// Stops mount events from propagating between this namespace and the one it was
/// copied from: nothing mounted here can appear on the host.
pub fn make_private() -> Result<()> {
    rustix::mount::mount_change("/", MountPropagationFlags::PRIVATE | MountPropagationFlags::REC)
        .map_err(wrap("make private the mounts under", "/"))
}

/// Makes `new_root` the root of this mount namespace and detaches the old root, so
/// nothing of the host's file system stays reachable except what was bind-mounted.
pub fn pivot_into(new_root: &Dir) -> Result<()> {
    let at = new_root.path().to_path_buf();
    rustix::process::fchdir(new_root).map_err(wrap("enter", &at))?;
    // pivot_root(".", ".") stacks the old root under the new one at "."; detaching
    // "." then drops it (the trick needs no directory for the old root).
    rustix::process::pivot_root(".", ".").map_err(wrap("pivot_root into", &at))?;
    rustix::mount::unmount(".", UnmountFlags::DETACH).map_err(wrap("detach the old root from", &at))?;
    rustix::process::chdir("/").map_err(wrap("enter", "/"))
}

// --- The mount table ---
// Which directories below a root are mount points, read from
// `/proc/thread-self/mountinfo`: the calling thread's own mount namespace, which is
// what a test in a per-thread namespace needs.

/// Undoes the mount table's octal escapes (`\040` for a space, `\012` for a newline…).
pub fn unescape(field: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(field.len());
    let mut i = 0;
    while i < field.len() {
        if field[i] == b'\\' && i + 3 < field.len() && field[i + 1..i + 4].iter().all(|b| (b'0'..=b'7').contains(b)) {
            let value = field[i + 1..i + 4].iter().fold(0u32, |n, b| n * 8 + u32::from(b - b'0'));
            out.push(u8::try_from(value & 0xff).unwrap_or(0));
            i += 4;
        } else {
            out.push(field[i]);
            i += 1;
        }
    }
    out
}

/// Every mount point in a mountinfo text (field 5), unescaped.
pub fn mount_points(text: &[u8]) -> Vec<Vec<u8>> {
    text.split(|&b| b == b'\n').filter_map(|line| line.split(|&b| b == b' ').nth(4)).map(unescape).collect()
}

/// The file system type and the source (unescaped) of the mount `id` in a mountinfo
/// text, if it is there.
pub fn type_and_source(text: &[u8], id: u64) -> Option<(Vec<u8>, Vec<u8>)> {
    let id = id.to_string();
    text.split(|&b| b == b'\n').find_map(|line| {
        let mut fields = line.split(|&b| b == b' ');
        if fields.next()? != id.as_bytes() {
            return None;
        }
        let mut after = fields.skip_while(|&field| field != b"-").skip(1);
        Some((unescape(after.next()?), unescape(after.next()?)))
    })
}

/// The running mount table: the calling thread's namespace's.
pub fn read_mountinfo() -> Vec<u8> {
    try_read_mountinfo().unwrap_or_default()
}

/// [`read_mountinfo`], failing when it cannot be read.
fn try_read_mountinfo() -> io::Result<Vec<u8>> {
    // A proc file's size is 0: read into room for a typical table at once, not in
    // doubling steps from 32 bytes.
    let read = |path: &str| -> io::Result<Vec<u8>> {
        let mut text = Vec::with_capacity(16 << 10);
        std::io::Read::read_to_end(&mut std::fs::File::open(path)?, &mut text)?;
        Ok(text)
    };
    read("/proc/thread-self/mountinfo").or_else(|_| read("/proc/self/mountinfo"))
}

/// The mount points strictly below `root`, as absolute paths inside it (`/persist`,
/// `/var/log`, …).
pub fn below(root: &Path) -> Vec<Vec<u8>> {
    points_below(&read_mountinfo(), root.as_os_str().as_bytes())
}

/// The mount points of the mountinfo `text` strictly below `root`, as `/`-led paths
/// inside it.
fn points_below(text: &[u8], root: &[u8]) -> Vec<Vec<u8>> {
    let root = if root == b"/" { &b""[..] } else { root.strip_suffix(b"/").unwrap_or(root) };
    mount_points(text)
        .into_iter()
        .filter_map(|point| {
            let rest = point.strip_prefix(root)?;
            (rest.len() > 1 && rest[0] == b'/').then(|| rest.to_vec())
        })
        .collect()
}

/// The id of the mount the open directory `dir` is on, and the mount points strictly
/// below it, relative to it (`ssh/ssh_host_ed25519_key`). The directory's path is the
/// kernel's, read from `/proc/self/fd`, so it matches the mount table whatever path
/// `dir` was opened by. `None` when they cannot be told: the table cannot be read, or
/// does not hold the directory's mount (it is in another mount namespace), or the
/// directory has no path there (removed, or out of this process's reach).
pub fn below_dir(dir: &Dir) -> Option<(u64, Vec<Vec<u8>>)> {
    let text = try_read_mountinfo().ok()?;
    let id = dir.own_mount_id().ok()?;
    let path = std::fs::read_link(format!("/proc/self/fd/{}", dir.as_fd().as_raw_fd())).ok()?;
    let bytes = path.as_os_str().as_bytes();
    if type_and_source(&text, id).is_none() || !bytes.starts_with(b"/") || bytes.ends_with(b" (deleted)") {
        return None;
    }
    Some((id, points_below(&text, bytes).into_iter().map(|point| point[1..].to_vec()).collect()))
}

#[cfg(test)]
mod mountinfo_tests {
    use super::*;

    #[test]
    fn mountinfo_fields_are_unescaped() {
        let text = b"36 35 98:0 /mnt1 /a\\040b rw - ext3 /dev/root rw\n37 35 0:5 / /x\\012y rw - tmpfs t rw\n";
        assert_eq!(mount_points(text), vec![b"/a b".to_vec(), b"/x\ny".to_vec()]);
        assert_eq!(unescape(b"\\134"), b"\\");
    }

    #[test]
    fn a_mount_s_type_and_source_by_its_id() {
        let text = b"36 35 98:0 /mnt1 / rw shared:1 - btrfs /dev/vd\\040b rw\n37 35 0:5 / /x rw - tmpfs t rw\n";
        assert_eq!(type_and_source(text, 36), Some((b"btrfs".to_vec(), b"/dev/vd b".to_vec())));
        assert_eq!(type_and_source(text, 37), Some((b"tmpfs".to_vec(), b"t".to_vec())));
        assert_eq!(type_and_source(text, 3), None);
    }
}
