//! blankslate's system layer, the one place that talks to the kernel: `fs`, the safe
//! file-system primitives (every path below a root reached through a directory
//! descriptor, crash-safe writes, checked descriptors, locks, tree walks); `mount`,
//! the mount calls and the mount table; `raw`, the few unsafe calls (namespaces,
//! `mount_setattr`, a signal descriptor, the btrfs subvolume ioctls), each with its
//! `SAFETY` reason, and the only unsafe code in blankslate; `btrfs`, subvolumes made,
//! deleted and made read-only through those ioctls; `failpoint`, the crash injection tests use. It knows
//! nothing of declarations, the store or generations, and never decides what to
//! mount or write: its callers do.

pub mod btrfs;
pub mod failpoint;
pub mod fs;
pub mod mount;
pub mod raw;

/// The kernel's id of the running boot (`/proc/sys/kernel/random/boot_id`), empty if
/// it cannot be read: what a record that counts for one boot only is stamped with.
#[must_use]
pub fn boot_id() -> String {
    std::fs::read_to_string("/proc/sys/kernel/random/boot_id").map(|id| id.trim().to_owned()).unwrap_or_default()
}

/// The wall clock's lead over the kernel's boot clock (`CLOCK_REALTIME` minus
/// `CLOCK_BOOTTIME`), in nanoseconds. Both run on together (a slew changes both), so
/// it shrinks only when the wall clock is stepped back.
#[must_use]
pub fn wall_clock_lead() -> i64 {
    let nanos = |clock| {
        let time = rustix::time::clock_gettime(clock);
        time.tv_sec.saturating_mul(1_000_000_000).saturating_add(time.tv_nsec)
    };
    nanos(rustix::time::ClockId::Realtime).saturating_sub(nanos(rustix::time::ClockId::Boottime))
}
