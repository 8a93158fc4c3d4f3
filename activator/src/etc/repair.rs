//! Repair: every entry of the active generation checked against `/etc`, and what is
//! not as it was activated put back through the journaled steps of an activation. A
//! declared directory with the wrong owner or mode gets them back, keeping what it
//! holds.

use std::cell::OnceCell;

use blankslate_core::decl::UserDb;
use blankslate_core::decl::paths::is_inside;
use blankslate_core::fs::Dir;
use blankslate_core::generation::LockedState;
use blankslate_core::manifest::EtcKind;
use blankslate_core::store::Store;

use super::apply::{Activated, apply, open_tree};
use super::plan::Dirs;
use super::{
    Action, Active, Found, Plan, Result, STATIC, Step, active, done, holds, open_etc, recover, resolve, users_for,
};

/// Brings `/etc` back to the generation it was activated to: a missing entry is made
/// again, a copy with the wrong owner or mode is copied again from the store, a
/// directory's owner and mode are set again, and whatever else stands where an entry
/// goes (an edited copy, a file or a link a person put there, a directory) is moved
/// aside to `NAME.blankslate-backup` first, never deleted. Each link costs one
/// `readlink`, each copy an `lstat` and a read, each directory an `lstat`.
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
    let Some(to) = active(root)? else { return Ok(None) };
    let tree = open_tree(store, &to.object)?;
    let users = || users_for(root, |name| tree.read(name).ok());
    let plan = plan_repair(root, to, &users, only)?;
    if !dry_run && !plan.is_noop() {
        apply(root, &plan, &tree)?;
    }
    Ok(Some(Activated { plan, recovered }))
}

/// The steps that put every entry of `to` (or only those at or below `only`) back as
/// it was activated.
pub(super) fn plan_repair(root: &Dir, to: Active, users: &dyn Fn() -> UserDb, only: &[String]) -> Result<Plan> {
    let chosen = |path: &str| only.is_empty() || only.iter().any(|o| path == o || is_inside(path, o));
    let owners = OnceCell::new();
    let etc = open_etc(root)?;
    let (steps, unchanged, switch_static) = {
        let mut dirs = Dirs::new(etc.as_ref(), &to.manifest.entries, &to.manifest.entries);
        let mut steps = Vec::new();
        let mut unchanged = 0;
        for (path, entry) in to.manifest.entries.iter().filter(|(path, _)| chosen(path)) {
            let (found, owner) = if entry.is_owned() {
                let found = dirs.inspect(path, entry.kind == EtcKind::Copy)?;
                (found, Some(resolve(path, entry, owners.get_or_init(users))?))
            } else {
                (dirs.probe_link(path)?, None)
            };
            if done(&found, path, entry, owner) {
                unchanged += 1;
                continue;
            }
            let action = match &found {
                Found::Absent => Action::Create,
                Found::File { mode, uid, gid, .. } | Found::Directory { mode, uid, gid }
                    if holds(&found, path, entry) =>
                {
                    Action::Fix { found: format!("mode {mode:04o}, owner {uid}:{gid}") }
                }
                // A file with the very bytes of the link that goes there (`etc keep`).
                other if dirs.has_contents_of(path, other, entry)? => Action::Replace,
                Found::File { .. } if entry.kind == EtcKind::Copy => Action::BackUp {
                    backup: dirs.backup_name(path, &to.manifest)?,
                    found: "a copy with other contents".to_owned(),
                },
                other => Action::BackUp { backup: dirs.backup_name(path, &to.manifest)?, found: other.to_string() },
            };
            steps.push(Step { path: path.clone(), action, entry: Some(entry.clone()), owner });
        }
        let switch_static = match dirs.probe_link(STATIC)? {
            _ if !only.is_empty() => None,
            Found::Link(target) if target == to.static_target => None,
            Found::Link(_) | Found::Absent => Some(None),
            _ => Some(Some(dirs.backup_name(STATIC, &to.manifest)?)),
        };
        (steps, unchanged, switch_static)
    };
    // A repair goes from the generation to itself: `from` would only repeat `to`.
    Ok(Plan { from: None, to, steps, switch_static, unchanged, repair: true, repair_only: only.to_vec() })
}
