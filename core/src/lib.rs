//! The shared core of blankslate: the declaration language (`decl`, `import`, `diff`)
//! and the state (the content-addressed `store`, `generation`s, `trial` records, the
//! `activation` record, the `/etc` `manifest`), built on the system layer in
//! `blankslate-sys`. It has no unsafe code.
//!
//! It knows no `/etc` activation, persisted path or boot: those live in the
//! `activator`, `persist` and `etc-builder` crates, which depend on this one.

#![forbid(unsafe_code)]

pub mod activation;
pub mod decl;
pub mod diff;
pub mod generation;
pub mod import;
pub mod manifest;
pub mod store;
pub mod trial_record;
