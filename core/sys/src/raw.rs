//! The only unsafe code in blankslate: entering new namespaces, the one mount system
//! call rustix does not wrap, and a descriptor for the signals that end a command.
//!
//! rustix marks `unshare` unsafe because `CLONE_FILES` can leave other threads with
//! file descriptors that no longer exist in the caller's table. The wrappers here
//! never pass `CLONE_FILES`, which makes them safe to call from any thread.

#![allow(unsafe_code)]

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

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
