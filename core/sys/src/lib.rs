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
