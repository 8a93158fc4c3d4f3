//! Activation: making a root match a generation.
//!
//! - [`etc`]: `/etc` from the generation's store tree, as a diff against the previous
//!   generation, journaled so that a crash at any step recovers to exactly the old or
//!   the new generation.

#![forbid(unsafe_code)]

pub mod etc;
