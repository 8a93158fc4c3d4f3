//! blankslate's state: the content-addressed `store`, `generation`s, `trial`
//! records, the `activation` record, the `/etc` `manifest`, and `diff`, what changed
//! between two generations. It keeps state on disk through `blankslate-sys` and
//! records declarations checked by `blankslate-decl`; it has no unsafe code.
//!
//! It knows no `/etc` activation, persisted path or boot: those live in the
//! `activator`, `persist` and `etc-builder` crates, which depend on this one.

#![forbid(unsafe_code)]

pub mod activation;
pub mod diff;
pub mod generation;
pub mod manifest;
pub mod store;
pub mod trial_record;
pub mod verified;
