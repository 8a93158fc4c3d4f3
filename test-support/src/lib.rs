//! What the tests of every blankslate crate share, as a dev-dependency: whether they
//! run as root (one meaning: the effective user id, which mounting and changing
//! owners need), the switch that makes a root-only test fail rather than skip, and a
//! private mount namespace to mount in (a thread's, or a shell's:
//! [`shell_in_namespace`]); [`Scratch`], a throwaway directory holding a root; and
//! [`snapshot`], a map of a directory tree for before/after comparisons; [`BtrfsImage`],
//! a btrfs on a loop device.

#![forbid(unsafe_code)]

mod btrfs;
mod scratch;
pub mod snapshot;

pub use btrfs::{BtrfsImage, make_btrfs};
pub use scratch::Scratch;

/// The variable that makes a root-only test run without root fail instead of
/// skipping: `.ci/run` sets it for the suite it runs as root, so that a test
/// cannot pass there without testing anything.
pub const REQUIRE_ROOT: &str = "BLANKSLATE_REQUIRE_ROOT";

/// Whether the tests run as root (effective user id 0).
pub fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// Whether a test that needs root for `why` can run: as root, yes; otherwise it is
/// skipped with a note, or fails when [`REQUIRE_ROOT`] is `1`.
pub fn root_or_skip(why: &str) -> bool {
    if is_root() {
        return true;
    }
    assert!(std::env::var_os(REQUIRE_ROOT).is_none_or(|v| v != "1"), "{why}, and {REQUIRE_ROOT}=1 forbids skipping");
    eprintln!("skipped: {why}");
    false
}

/// Runs `body` in a thread with a mount namespace of its own, made private (which
/// needs root): nothing mounted there, by it or by the commands it runs, reaches the
/// host, and the namespace goes with the thread (`/proc/thread-self/mountinfo` is its
/// mount table). A panic in `body` is the caller's.
pub fn in_namespace<T: Send + 'static>(body: impl FnOnce() -> T + Send + 'static) -> T {
    let namespace = || std::fs::read_link("/proc/thread-self/ns/mnt").expect("the mount namespace");
    let host = namespace();
    std::thread::spawn(move || {
        blankslate_sys::raw::unshare_mount_namespace().expect("unshare (needs root)");
        // Nothing is mounted unless the thread has a namespace of its own.
        assert_ne!(namespace(), host, "not in a private mount namespace");
        blankslate_sys::mount::make_private().expect("make the mounts private");
        body()
    })
    .join()
    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
}

/// The shell line that stops a script (exit 99, with a note) unless it runs in a
/// mount namespace other than its parent's: put before anything that mounts.
pub const CHECK_OWN_NAMESPACE: &str = "[ \"$(readlink /proc/self/ns/mnt)\" != \"$(readlink /proc/$PPID/ns/mnt)\" ] || \
                                       { echo 'not in a private mount namespace' >&2; exit 99; }";

/// `sh -c SCRIPT` in a private mount namespace of its own (`unshare --mount
/// --propagation private`, which needs root), the script checked first to run there
/// ([`CHECK_OWN_NAMESPACE`]): its mounts, and those of what it runs, die with it.
/// Arguments added to the command are the script's `$0`, `$1`, ….
pub fn shell_in_namespace(script: &str) -> std::process::Command {
    let mut command = std::process::Command::new("unshare");
    command.args(["--mount", "--propagation", "private", "sh", "-c", &format!("{CHECK_OWN_NAMESPACE}\n{script}")]);
    command
}
