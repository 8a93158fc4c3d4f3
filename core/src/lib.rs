//! The shared core of blankslate: the declaration, the content-addressed store,
//! generations, and the safe file-system primitives every other crate builds on.
//!
//! Nothing here mounts anything or knows about `/etc` activation; those live in the
//! `activator`, `persist` and `etc-builder` crates, which depend on this one.

pub mod activation;
pub mod decl;
pub mod diff;
pub mod failpoint;
pub mod fs;
pub mod generation;
pub mod import;
pub mod manifest;
pub mod mount;
pub mod store;
pub mod sys;
pub mod trial;
