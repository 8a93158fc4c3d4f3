//! The only unsafe code in blankslate: entering new namespaces, the one mount system
//! call rustix does not wrap, a descriptor for the signals that end a command, and
//! the btrfs subvolume ioctls (create, delete, read-only).
//!
//! rustix marks `unshare` unsafe because `CLONE_FILES` can leave other threads with
//! file descriptors that no longer exist in the caller's table. The wrappers here
//! never pass `CLONE_FILES`, which makes them safe to call from any thread.

#![allow(unsafe_code)]

use std::ffi::OsStr;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;

use rustix::thread::UnshareFlags;

/// Gives the calling thread a mount namespace of its own (a copy of the current one).
pub fn unshare_mount_namespace() -> io::Result<()> {
    // SAFETY: no CLONE_FILES, so no file descriptor table is split.
    unsafe { rustix::thread::unshare_unsafe(UnshareFlags::NEWNS) }.map_err(io::Error::from)
}

/// Makes the children this process creates from now on the first processes of a new
/// PID namespace (the caller itself stays where it is).
pub fn unshare_pid_namespace() -> io::Result<()> {
    // SAFETY: no CLONE_FILES, so no file descriptor table is split.
    unsafe { rustix::thread::unshare_unsafe(UnshareFlags::NEWPID) }.map_err(io::Error::from)
}

/// `mount_setattr(mount, "", AT_EMPTY_PATH, {attr_clr: MOUNT_ATTR_RDONLY})`: makes
/// the mount `mount` refers to writable, that mount only (not recursive). Meant for a
/// detached clone from `open_tree(OPEN_TREE_CLONE)`, which nothing else can see.
pub fn clear_mount_read_only(mount: BorrowedFd<'_>) -> io::Result<()> {
    let attributes = libc::mount_attr { attr_set: 0, attr_clr: libc::MOUNT_ATTR_RDONLY, propagation: 0, userns_fd: 0 };
    // SAFETY: the path is a NUL-terminated empty string and `attributes` a live
    // `mount_attr` whose size is passed along; the kernel only reads both during the
    // call, and `mount` is an open descriptor for its whole duration.
    let result = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            mount.as_raw_fd(),
            c"".as_ptr(),
            libc::AT_EMPTY_PATH,
            &raw const attributes,
            std::mem::size_of::<libc::mount_attr>(),
        )
    };
    if result == 0 { Ok(()) } else { Err(io::Error::last_os_error()) }
}

/// Blocks `SIGINT` and `SIGTERM` in the calling thread (and in the threads it starts
/// from now on) and returns a `signalfd` that becomes readable when either arrives: a
/// long-running command polls it and stops cleanly instead of being killed mid-output.
/// A blocked signal is queued even when its disposition is "ignore", as `nohup` or a
/// shell's background job can leave `SIGINT`, so the command stops on it all the same.
/// Call it before starting other threads, or they keep the default disposition.
pub fn stop_signals() -> io::Result<OwnedFd> {
    // SAFETY: `set` is a local sigset_t, initialized by sigemptyset before any other
    // use; pthread_sigmask and signalfd only read it (the old mask is not asked for),
    // and a descriptor signalfd returns is new and owned by nothing else.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&raw mut set);
        libc::sigaddset(&raw mut set, libc::SIGINT);
        libc::sigaddset(&raw mut set, libc::SIGTERM);
        let error = libc::pthread_sigmask(libc::SIG_BLOCK, &raw const set, std::ptr::null_mut());
        if error != 0 {
            return Err(io::Error::from_raw_os_error(error));
        }
        let fd = libc::signalfd(-1, &raw const set, libc::SFD_CLOEXEC | libc::SFD_NONBLOCK);
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(OwnedFd::from_raw_fd(fd))
    }
}

/// `struct btrfs_ioctl_vol_args` (linux/btrfs.h): a descriptor (unused by the calls
/// here) and a NUL-terminated name of at most `BTRFS_PATH_NAME_MAX` (4087) bytes.
#[repr(C)]
struct BtrfsVolArgs {
    fd: i64,
    name: [u8; BTRFS_PATH_NAME_MAX + 1],
}

const BTRFS_PATH_NAME_MAX: usize = 4087;
const BTRFS_IOCTL_MAGIC: u32 = 0x94;
/// `BTRFS_SUBVOL_RDONLY`, the read-only flag of `BTRFS_IOC_SUBVOL_{GET,SET}FLAGS`.
const BTRFS_SUBVOL_RDONLY: u64 = 1 << 1;

/// `_IOC(direction, BTRFS_IOCTL_MAGIC, number, size)` as asm-generic/ioctl.h builds it.
const fn btrfs_ioctl(direction: u32, number: u32, size: usize) -> u32 {
    #[allow(clippy::cast_possible_truncation)] // the structures are at most 4096 bytes
    let size = size as u32;
    (direction << 30) | (size << 16) | (BTRFS_IOCTL_MAGIC << 8) | number
}
const IOC_WRITE: u32 = 1;
const IOC_READ: u32 = 2;
const BTRFS_IOC_SUBVOL_CREATE: u32 = btrfs_ioctl(IOC_WRITE, 14, size_of::<BtrfsVolArgs>());
const BTRFS_IOC_SNAP_DESTROY: u32 = btrfs_ioctl(IOC_WRITE, 15, size_of::<BtrfsVolArgs>());
const BTRFS_IOC_SUBVOL_GETFLAGS: u32 = btrfs_ioctl(IOC_READ, 25, size_of::<u64>());
const BTRFS_IOC_SUBVOL_SETFLAGS: u32 = btrfs_ioctl(IOC_WRITE, 26, size_of::<u64>());
/// `_IO(BTRFS_IOCTL_MAGIC, 8)`: no argument.
const BTRFS_IOC_SYNC: u32 = btrfs_ioctl(0, 8, 0);

/// The arguments naming `name` in a directory; `EINVAL` for a name that is not one
/// component (empty, `.`, `..`, a `/` or a NUL in it) or is too long.
fn vol_args(name: &OsStr) -> io::Result<BtrfsVolArgs> {
    let bytes = name.as_bytes();
    if bytes.is_empty() || bytes == b"." || bytes == b".." || bytes.contains(&b'/') || bytes.contains(&0) {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "not a single name"));
    }
    if bytes.len() > BTRFS_PATH_NAME_MAX {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "name too long for btrfs"));
    }
    let mut args = BtrfsVolArgs { fd: 0, name: [0; BTRFS_PATH_NAME_MAX + 1] };
    args.name[..bytes.len()].copy_from_slice(bytes);
    Ok(args)
}

/// `ioctl(dir, request, argument)` for the btrfs requests above.
///
/// # Safety
/// `argument` must point to a live value of the type `request` reads or writes.
unsafe fn btrfs_call<T>(dir: BorrowedFd<'_>, request: u32, argument: *mut T) -> io::Result<()> {
    // `as`: `Ioctl` is a c_ulong with glibc and a c_int with musl (where a request
    // above 0x7fff_ffff wraps, as musl's own headers make it).
    #[allow(clippy::cast_possible_wrap, clippy::cast_lossless, clippy::unnecessary_cast)]
    let request = request as libc::Ioctl;
    // SAFETY: the caller vouches for `argument`; `dir` is open for the whole call.
    let result = unsafe { libc::ioctl(dir.as_raw_fd(), request, argument) };
    if result == 0 { Ok(()) } else { Err(io::Error::last_os_error()) }
}

/// `BTRFS_IOC_SUBVOL_CREATE`: a new, empty subvolume `name` in the directory `dir`
/// (which must be on btrfs), mode 0755, owned by the caller. `EEXIST` if the name is
/// taken.
pub fn btrfs_create_subvolume(dir: BorrowedFd<'_>, name: &OsStr) -> io::Result<()> {
    let mut args = vol_args(name)?;
    // SAFETY: `args` is a live btrfs_ioctl_vol_args, which this request reads.
    unsafe { btrfs_call(dir, BTRFS_IOC_SUBVOL_CREATE, &raw mut args) }
}

/// `BTRFS_IOC_SNAP_DESTROY`: deletes the subvolume `name` in `dir`, read-only or not,
/// whatever it holds (its space is freed in the background). `ENOTEMPTY` if a
/// subvolume is nested in it; `ENOTDIR`/`EINVAL` if `name` is not a subvolume.
pub fn btrfs_delete_subvolume(dir: BorrowedFd<'_>, name: &OsStr) -> io::Result<()> {
    let mut args = vol_args(name)?;
    // SAFETY: `args` is a live btrfs_ioctl_vol_args, which this request reads.
    unsafe { btrfs_call(dir, BTRFS_IOC_SNAP_DESTROY, &raw mut args) }
}

/// `BTRFS_IOC_SUBVOL_SETFLAGS` with `BTRFS_SUBVOL_RDONLY` set or cleared: makes the
/// subvolume whose top directory `subvolume` is read-only (writes into it fail with
/// `EROFS`) or writable again.
pub fn btrfs_set_read_only(subvolume: BorrowedFd<'_>, read_only: bool) -> io::Result<()> {
    let flags = btrfs_flags(subvolume)?;
    let mut flags = if read_only { flags | BTRFS_SUBVOL_RDONLY } else { flags & !BTRFS_SUBVOL_RDONLY };
    // SAFETY: `flags` is a live u64, which this request reads.
    unsafe { btrfs_call(subvolume, BTRFS_IOC_SUBVOL_SETFLAGS, &raw mut flags) }
}

/// Whether the subvolume whose top directory `subvolume` is is read-only
/// (`BTRFS_IOC_SUBVOL_GETFLAGS`).
pub fn btrfs_is_read_only(subvolume: BorrowedFd<'_>) -> io::Result<bool> {
    Ok(btrfs_flags(subvolume)? & BTRFS_SUBVOL_RDONLY != 0)
}

/// `BTRFS_IOC_SYNC`: commits the btrfs `dir` is on and wakes its cleaner, which frees
/// the space of deleted subvolumes (a plain `syncfs` leaves that for later).
pub fn btrfs_sync(dir: BorrowedFd<'_>) -> io::Result<()> {
    // SAFETY: this request takes no argument; a null pointer is passed and not read.
    unsafe { btrfs_call(dir, BTRFS_IOC_SYNC, std::ptr::null_mut::<u8>()) }
}

fn btrfs_flags(subvolume: BorrowedFd<'_>) -> io::Result<u64> {
    let mut flags = 0u64;
    // SAFETY: `flags` is a live u64, which this request writes.
    unsafe { btrfs_call(subvolume, BTRFS_IOC_SUBVOL_GETFLAGS, &raw mut flags) }?;
    Ok(flags)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn btrfs_requests_are_the_numbers_linux_btrfs_h_gives() {
        // As `printf '%#x' BTRFS_IOC_…` prints them from <linux/btrfs.h>.
        assert_eq!(BTRFS_IOC_SUBVOL_CREATE, 0x5000_940e);
        assert_eq!(BTRFS_IOC_SNAP_DESTROY, 0x5000_940f);
        assert_eq!(BTRFS_IOC_SUBVOL_GETFLAGS, 0x8008_9419);
        assert_eq!(BTRFS_IOC_SUBVOL_SETFLAGS, 0x4008_941a);
        assert_eq!(BTRFS_IOC_SYNC, 0x9408);
        assert_eq!(size_of::<BtrfsVolArgs>(), 4096);
    }

    #[test]
    fn a_subvolume_name_is_one_component_that_fits() {
        for bad in ["", ".", "..", "a/b", "a\0b"] {
            assert!(vol_args(OsStr::new(bad)).is_err(), "{bad:?}");
        }
        assert!(vol_args(OsStr::new(&"x".repeat(BTRFS_PATH_NAME_MAX + 1))).is_err());
        let args = vol_args(OsStr::new("root")).unwrap();
        assert_eq!(&args.name[..5], b"root\0");
    }
}
