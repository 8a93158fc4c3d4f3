//! Activation: making a root match a generation.
//!
//! - [`etc`]: `/etc` from the generation's store tree, as a diff against the previous
//!   generation, journaled so that a crash at any step recovers to exactly the old or
//!   the new generation.
//! - [`switch`]: a generation made live on a running root, and the boot default, as
//!   one transaction that a crash or a failure leaves to be finished or undone.
//! - [`trial`]: a switch on trial, its watcher and its confirmation; a boot on trial.
//! - [`running`]: the generation a live root runs, read whole (state, declaration,
//!   /etc, owners), for the commands that work on it.
//! - [`root`]: the ephemeral root itself (a tmpfs with the store read-only inside),
//!   for boot and the sandbox.
//! - [`sandbox`]: a declaration tried in private namespaces, without touching the host.
//! - [`boot`]: this binary as `/init` of an initramfs; [`initrd`] builds that initramfs.

#![forbid(unsafe_code)]

pub mod boot;
pub mod carry;
pub mod etc;
pub mod hostonly;
pub mod initrd;
pub mod modules;
pub mod root;
pub mod running;
pub mod sandbox;
pub mod switch;
pub mod trial;
