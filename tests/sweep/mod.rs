//! The project's own kill-point sweep (`tests/crash_sweep.rs`): every mutating
//! command is killed at every system call that changes something, and given ENOSPC
//! and EIO at every one that writes, under strace; then its natural recovery runs and
//! one check says whether the world is at exactly one generation with nothing lost
//! or left behind.

pub mod check;
pub mod run;
pub mod scenarios;
pub mod trace;
pub mod world;
