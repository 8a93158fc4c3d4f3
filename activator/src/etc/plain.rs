//! Plain files for the length of a package manager's run.
//!
//! dpkg follows a conffile's symlink and looks for the package's new version beside
//! the link's *target*. With `/etc` linked into the read-only store, an upgrade then
//! leaves the new version beside the link as `NAME.dpkg-new` and keeps the old one,
//! without a word; and a maintainer script that writes a file in place fails on the
//! read-only store. [`unlink`] (apt's `DPkg::Pre-Invoke`) makes every link into the
//! store a plain file holding the same bytes, so that dpkg treats conffiles as on any
//! Debian system; [`relink`] (`DPkg::Post-Invoke`) makes each file that still holds
//! its link's bytes a link again. What dpkg changed stays a file: the audit reports it
//! as drift naming its package, and `blankslate etc keep --packaged` keeps it.

use std::collections::HashMap;
use std::os::unix::fs::PermissionsExt as _;

use blankslate_state::generation::LockedState;
use blankslate_state::manifest::EtcKind;
use blankslate_sys::fs::Dir;

use super::apply::{Activated, apply, clear, open_tree, staged};
use super::inspect::plan_relink;
use super::{EtcGeneration, Result, active, link_target, open_etc, recover, split, users_from_contents};

/// Replaces each link that activation made from `/etc/PATH` into the store
/// (`/etc/static/PATH`) by a plain file with the store file's bytes, owned by root,
/// with the store file's mode plus the owner's write bit (`0644`, or `0600` for a
/// secret). Each file is written under its fixed temporary name (`.NAME.blankslate-new`,
/// which the next `unlink` or `relink` clears if a kill left it) and renamed over its
/// link, so a reader sees the link or the whole file, never neither. Anything else at
/// a path (a file, a link elsewhere) is left alone. On the root of `state`; returns
/// the paths made plain, relative to `/etc`.
pub fn unlink(state: &LockedState) -> Result<Vec<String>> {
    let root = state.root();
    // An interrupted activation is finished first: its steps assume what it left.
    recover(root, state.store())?;
    let (Some(active), Some(etc)) = (active(root, state.store())?, open_etc(root)?) else { return Ok(Vec::new()) };
    let tree = open_tree(state.store(), &active.object)?;
    let mut unlinked = Vec::new();
    for_each_link(&etc, &active, |dir, path, target| {
        let name = split(path).1;
        if !dir.read_link(name).is_ok_and(|found| found == target) {
            return Ok(());
        }
        let stored = tree.open_file(path)?;
        let mode = stored.metadata().map_or(0o444, |meta| meta.permissions().mode() & 0o777) | 0o200;
        let temp = staged(name);
        dir.create_file_owned(&temp, &tree.read(path)?, mode, Some((0, 0)))?;
        dir.rename(&temp, name)?;
        unlinked.push(path.to_owned());
        Ok(())
    })?;
    Ok(unlinked)
}

/// Calls `each` with the directory, the path and the link target of every link entry
/// of `active` whose directory is there, once the temporary a killed [`unlink`] may
/// have left beside it is gone.
fn for_each_link(
    etc: &Dir,
    active: &EtcGeneration,
    mut each: impl FnMut(&Dir, &str, &str) -> Result<()>,
) -> Result<()> {
    let mut dirs: HashMap<&str, Option<Dir>> = HashMap::new();
    for (path, entry) in &active.manifest.entries {
        let Some(target) = link_target(path, entry).filter(|_| entry.kind == EtcKind::Link) else { continue };
        let (parent, name) = split(path);
        if !dirs.contains_key(parent) {
            let opened = match etc.open_dir_or_self(parent) {
                Ok(dir) => Some(dir),
                Err(error) if error.is_not_found() => None,
                Err(error) => return Err(error.into()),
            };
            dirs.insert(parent, opened);
        }
        let Some(dir) = &dirs[parent] else { continue };
        clear(dir, &staged(name))?;
        each(dir, path, &target)?;
    }
    Ok(())
}
/// Makes each plain file at a linked path of the active generation that holds exactly
/// its link's bytes a link again (what [`unlink`] made and nothing changed since),
/// through the journaled steps of a repair. Nothing else is touched: a file with other
/// bytes stays as it is, for the audit to report and `etc keep` to keep. On the root
/// of `state`; `None` when nothing is active.
pub fn relink(state: &LockedState) -> Result<Option<Activated>> {
    let (root, store) = (state.root(), state.store());
    let recovered = recover(root, store)?;
    let (Some(to), Some(etc)) = (active(root, store)?, open_etc(root)?) else { return Ok(None) };
    for_each_link(&etc, &to, |_, _, _| Ok(()))?;
    let tree = open_tree(store, &to.object)?;
    let users = || users_from_contents(root, |name| tree.read(name).ok());
    let plan = plan_relink(root, to, &users)?;
    if !plan.is_noop() {
        apply(root, &plan, &tree)?;
    }
    Ok(Some(Activated { plan, recovered }))
}
