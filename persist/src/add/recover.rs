//! Recovery: a pending `persist add` or `remove` finished or undone (the module
//! docs of [`super`], *Recovery*, say which and why).

use std::path::Path;

use blankslate_decl::{self as decl, UserDb};
use blankslate_sys::fs::Dir;

use super::remove::forward_remove;
use super::{
    AfterDeclared, ManageError, Outcome, Recovered, Result, Volume, conclude, forward_add, open_volume, temp_add,
};
use crate::edit;
use crate::journal::{self, Journal, Operation, Step};
use crate::split;

/// Finishes or undoes a pending operation (see the module docs).
pub(super) fn resolve_pending(
    root: &Dir,
    volume: &Volume,
    mut journal: Journal,
    names: &UserDb,
    after_declared: &mut AfterDeclared,
) -> Result<Recovered> {
    let step = journal.step;
    let mut recovered = Recovered {
        operation: journal.operation,
        path: journal.path.clone(),
        volume: journal.volume.clone(),
        step,
        outcome: Outcome::Finished,
        notes: Vec::new(),
    };
    if journal.operation == Operation::Remove {
        forward_remove(root, volume, &mut journal, names)?;
    } else {
        let (parent, name) = split(&journal.path);
        let temp = temp_add(name);
        let source_parent = volume.dir.open_dir_or_self(parent).ok();
        let has = |n: &str| source_parent.as_ref().is_some_and(|d| d.meta(n).is_ok());
        let same_boot = journal.same_boot();
        if step < Step::Placed && has(name) && !has(&temp) {
            // Renamed into place, not yet recorded.
            journal.step = Step::Placed;
        }
        if journal.step >= Step::Placed {
            forward_add(root, volume, &mut journal, names, same_boot)?;
        } else if !same_boot && step >= Step::Copied && has(&temp) {
            recovered.notes.push(format!(
                "the machine restarted since {} was copied: the copy in the volume is the only one left, so the add is finished{}",
                journal.path,
                if step < Step::Verified { " (unverified: the original is gone)" } else { "" }
            ));
            forward_add(root, volume, &mut journal, names, false)?;
        } else {
            recovered.outcome = Outcome::Undone;
            recovered.notes.extend(undo_add(volume, &journal)?);
            return Ok(recovered);
        }
    }
    conclude(volume, &journal, after_declared)?;
    Ok(recovered)
}

/// Undoes an add whose copy is not in place: the temporary copy goes (or, if the
/// machine restarted since, is kept aside: the tmpfs original is gone), then the
/// journal. A note on a copy kept aside.
pub(super) fn undo_add(volume: &Volume, journal: &Journal) -> Result<Option<String>> {
    let (parent, name) = split(&journal.path);
    let temp = temp_add(name);
    let mut note = None;
    if let Ok(source_parent) = volume.dir.open_dir_or_self(parent) {
        if source_parent.meta(&temp).is_ok() {
            if journal.same_boot() {
                source_parent.remove_tree(&temp)?;
            } else {
                let partial = format!(".{name}.blankslate-persist-partial");
                source_parent.rename(&temp, &partial)?;
                note = Some(format!(
                    "the machine restarted during the copy of {}: the partial copy is kept as {}{}/{partial}",
                    journal.path,
                    journal.volume.trim_end_matches('/'),
                    if parent.is_empty() { String::new() } else { format!("/{parent}") }
                ));
            }
            source_parent.sync()?;
        }
    }
    journal::finish(&volume.state)?;
    Ok(note)
}

/// Finishes or undoes the pending operation of every persistent root the
/// declaration has (or only of `volume`).
pub fn recover(
    root: &Dir,
    declaration: &Path,
    volume: Option<&str>,
    after_declared: &mut AfterDeclared,
) -> Result<Vec<Recovered>> {
    let names = UserDb::from_root(root);
    let text = edit::read(declaration)?;
    // A declaration broken by hand must not stop recovery: only the roots are needed.
    let checked = decl::check(declaration, &text, Some(&names));
    let mounts: Vec<String> = match (volume, checked.declaration) {
        (Some(volume), _) => vec![volume.to_owned()],
        (None, Some(declaration)) => declaration.persist.keys().cloned().collect(),
        (None, None) => return Err(ManageError::Invalid(checked.diagnostics.render(false))),
    };
    let mut out = Vec::new();
    for mount in mounts {
        let volume = open_volume(root, &mount, &names, after_declared)?;
        out.extend(volume.recovered);
    }
    Ok(out)
}
