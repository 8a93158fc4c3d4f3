//! Repair: every entry of the active generation checked against `/etc`, and what is
//! not as it was activated put back through the journaled steps of an activation. A
//! declared directory with the wrong owner or mode gets them back, keeping what it
//! holds.

use blankslate_state::generation::LockedState;
use blankslate_state::store::Store;
use blankslate_sys::fs::Dir;

use super::apply::{Activated, apply, open_tree};
use super::inspect::plan_repair;
use super::stamps::Stamps;
use super::{Result, active, open_etc, recover, users_from_contents};

/// Brings `/etc` back to the generation it was activated to: a missing entry is made
/// again, a copy with the wrong owner or mode is copied again from the store, a
/// directory's owner and mode are set again, and whatever else stands where an entry
/// goes (an edited copy, a file or a link a person put there, a directory) is moved
/// aside to `NAME.blankslate-backup` first, never deleted. Each link costs one
/// `readlink`, each copy an open, its `fstat` and a read, each directory an `lstat`.
/// The links of a directory whose stamp is the one the last repair kept cost nothing
/// (`stamps`); a repair that found every entry right keeps the stamps it took.
/// On the root of `state`. `None` when nothing is active.
pub fn repair(state: &LockedState) -> Result<Option<Activated>> {
    repair_in(state.root(), state.store(), false, &[])
}

/// What [`repair`] would do on `root`, whose store is `store`: planned, nothing
/// changed (and so no lock needed).
pub fn preview_repair(root: &Dir, store: &Store) -> Result<Option<Activated>> {
    repair_in(root, store, true, &[])
}

/// [`repair`] of only the entries `paths` (relative to `/etc`) and what lies below
/// them: what `blankslate etc keep` just declared takes the place of the live files
/// it was kept from, and nothing else of `/etc` is touched. On the root of `state`.
pub fn repair_only(state: &LockedState, paths: &[String]) -> Result<Option<Activated>> {
    repair_in(state.root(), state.store(), false, paths)
}

fn repair_in(root: &Dir, store: &Store, dry_run: bool, only: &[String]) -> Result<Option<Activated>> {
    let recovered = if dry_run { None } else { recover(root, store)? };
    let Some(to) = active(root, store)? else { return Ok(None) };
    let tree = open_tree(store, &to.object)?;
    let users = || users_from_contents(root, |name| tree.read(name).ok());
    let etc = open_etc(root)?;
    let mut stamps = Stamps::load(etc.as_ref(), &to);
    let plan = plan_repair(etc.as_ref(), to, &users, only, &mut stamps)?;
    if !dry_run && !plan.is_noop() {
        apply(root, &plan, &tree)?;
    } else if let Some(etc) = etc.filter(|_| !dry_run && only.is_empty()) {
        stamps.save(&etc);
    }
    Ok(Some(Activated { plan, recovered }))
}
