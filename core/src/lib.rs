//! The shared core of blankslate: the declaration language (`decl`, `import`), the
//! state (the content-addressed `store`, `generation`s, `trial` records, the
//! `activation` record, the `/etc` `manifest`) and the system layer every other crate
//! builds on (`fs`: the safe file-system primitives; `mount`: the mount calls and the
//! mount table; `sys`: the few unsafe calls).
//!
//! It knows no `/etc` activation, persisted path or boot: those live in the
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
pub mod trial_record;
