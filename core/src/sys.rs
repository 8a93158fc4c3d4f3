//! The only unsafe code in blankslate: entering new namespaces.
//!
//! rustix marks `unshare` unsafe because `CLONE_FILES` can leave other threads with
//! file descriptors that no longer exist in the caller's table. The wrappers here
//! never pass `CLONE_FILES`, which makes them safe to call from any thread.

#![allow(unsafe_code)]

use std::io;

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
