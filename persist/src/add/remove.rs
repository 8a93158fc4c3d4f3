//! `persist remove` (see the module docs of [`super`]).

use super::{
    AfterDeclared, Dir, EditError, How, Journal, Kind, ManageError, Operation, OsStr, RemoveRequest, Removed, Result,
    Step, UserDb, Volume, check_edit, conclude, edit, interrupted, is_in_place, journal, live_parent, load, mount,
    open_volume, split, temp_restore, tree,
};

/// Unmounts a declared path and removes it from the declaration (see the module docs).
pub fn remove(root: &Dir, request: &RemoveRequest<'_>, after_declared: &mut AfterDeclared) -> Result<Removed> {
    let path = request.path;
    let names = UserDb::from_root(root);
    let declaration_file = edit::resolve(request.declaration)?;
    let (_, declaration) = load(&declaration_file, &names)?;
    let Some(entry) = declaration.entries().into_iter().find(|e| e.path == path) else {
        return Err(ManageError::NotDeclared { path: path.to_owned(), file: declaration_file.clone(), was: false });
    };
    if let Some(user) = entry.user {
        return Err(EditError::UserEntry {
            path: path.to_owned(),
            volume: entry.root.to_owned(),
            user: user.to_owned(),
        }
        .into());
    }
    let (mount, kind, how) = (entry.root.to_owned(), entry.entry.kind, entry.entry.how.unwrap_or_default());
    let volume = open_volume(root, &mount, &names, after_declared)?;
    let (text, _) = load(&declaration_file, &names)?;
    let Some(edited) = edit::remove(&text, &mount, kind, path)? else {
        return Err(ManageError::NotDeclared { path: path.to_owned(), file: declaration_file.clone(), was: true });
    };
    check_edit(&declaration_file, &edited, &names)?;
    edit::check_writable(&declaration_file, &edited)?;
    let mut journal = Journal {
        operation: Operation::Remove,
        path: path.to_owned(),
        volume: mount.clone(),
        kind,
        how,
        entry: String::new(),
        declaration: declaration_file,
        owner: (0, 0, 0),
        boot_id: blankslate_sys::boot_id(),
        fingerprint: String::new(),
        copy_back: request.copy_back,
        purge: request.purge,
        step: Step::Started,
    };
    journal::write(&volume.state, &journal)?;
    blankslate_sys::failpoint::hit("persist-step");
    forward_remove(root, &volume, &mut journal, &names)
        .and_then(|()| conclude(&volume, &journal, after_declared))
        .map_err(|e| interrupted(root, &volume, e))?;
    Ok(Removed {
        path: path.to_owned(),
        volume: mount,
        copied_back: request.copy_back,
        purged: request.purge,
        recovered: volume.recovered,
    })
}

/// Gives up a `persist remove` whose copy back failed before anything changed: the
/// copy and the journal go, the path stays persisted.
fn abandon_remove(target_parent: &Dir, temp: &str, state: &Dir) -> Result<()> {
    if target_parent.meta(temp).is_ok() {
        target_parent.remove_tree(temp)?;
    }
    journal::finish(state)?;
    Ok(())
}

pub(super) fn forward_remove(root: &Dir, volume: &Volume, journal: &mut Journal, names: &UserDb) -> Result<()> {
    let path = journal.path.clone();
    let (parent, name) = split(&path);
    let temp = temp_restore(name);
    let target_parent = live_parent(root, parent)?;
    let source_parent = match volume.dir.open_dir_or_self(parent) {
        Ok(dir) => Some(dir),
        Err(error) if error.is_not_found() => None,
        Err(error) => return Err(error.into()),
    };
    let source_exists = source_parent.as_ref().is_some_and(|d| d.meta(name).is_ok());
    let copy_back = journal.copy_back && source_exists;
    if copy_back && journal.step < Step::Copied {
        if target_parent.meta(&temp).is_ok() {
            target_parent.remove_tree(&temp)?;
        }
        let source_parent = source_parent.as_ref().expect("checked above");
        if let Err(error) = tree::copy(source_parent, OsStr::new(name), &target_parent, OsStr::new(&temp)) {
            // Nothing has changed yet: give the remove up rather than leave it pending
            // for every later command to trip over.
            abandon_remove(&target_parent, &temp, &volume.state)?;
            return Err(error.into());
        }
        journal::advance(&volume.state, journal, Step::Copied)?;
    }
    if copy_back && journal.step < Step::Verified {
        let source_parent = source_parent.as_ref().expect("checked above");
        // The original read again (not described by the copy): a write to it since
        // the copy is a difference too.
        let differences = tree::verify((source_parent, OsStr::new(name)), (&target_parent, OsStr::new(&temp)), None)?;
        if !differences.is_empty() {
            abandon_remove(&target_parent, &temp, &volume.state)?;
            return Err(ManageError::Verify { path, differences });
        }
        journal::advance(&volume.state, journal, Step::Verified)?;
    }
    if journal.step < Step::Mounted {
        if let Some(source_parent) = &source_parent {
            if is_in_place(journal, &target_parent, name, source_parent) {
                if journal.how == How::Symlink {
                    target_parent.remove_file(name)?;
                    target_parent.sync()?;
                } else {
                    mount::unmount(&target_parent, name)?;
                }
            }
        }
        journal::advance(&volume.state, journal, Step::Mounted)?;
    }
    if copy_back && journal.step < Step::Cleared {
        if target_parent.meta(&temp).is_ok() {
            let empty_dir = target_parent.meta(name).is_ok_and(|m| m.kind == Kind::Directory)
                && target_parent.open_dir(name)?.entries()?.is_empty();
            let empty_file = target_parent.meta(name).is_ok_and(|m| m.kind == Kind::File && m.size == 0);
            let missing = target_parent.meta(name).is_err_and(|e| e.is_not_found());
            if !(empty_dir || empty_file || missing) {
                return Err(ManageError::DataInRoot { path: path.clone(), temp });
            }
            target_parent.rename(&temp, name)?;
            target_parent.sync()?;
        }
        journal::advance(&volume.state, journal, Step::Cleared)?;
    }
    if journal.step < Step::Declared {
        let text = edit::read(&journal.declaration)?;
        if let Some(edited) = edit::remove(&text, &journal.volume, journal.kind, &path)? {
            check_edit(&journal.declaration, &edited, names)?;
            edit::write(&journal.declaration, &edited)?;
        }
        journal::advance(&volume.state, journal, Step::Declared)?;
    }
    if journal.purge && journal.step < Step::Purged {
        if let Some(source_parent) = &source_parent {
            if source_parent.meta(name).is_ok() {
                source_parent.remove_tree(name)?;
                source_parent.sync()?;
            }
        }
        journal::advance(&volume.state, journal, Step::Purged)?;
    }
    Ok(())
}
