//! `blankslate persist add | remove | list | recover | sync`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use blankslate_activator::carry::{Carried, carry_into_generations};
use blankslate_decl as decl;
use blankslate_persist::add as manage;
use blankslate_state::generation::LockedState;
use blankslate_sys::fs::Dir;
use clap::Subcommand;
use serde_json::json;

use super::{EXIT_CODES, Result, Target, finish_pending, load, open_state, plural, read_state, running};
use crate::report::{self, EXIT_FINDINGS, EXIT_OK, errln, outln};

#[derive(Debug, Subcommand)]
#[command(defer = true)]
pub(super) enum PersistCommand {
    /// Move a live path into the persistent volume: copy it (owners, modes, times,
    /// xattrs, hard links, holes), verify the copy (blake3), bind-mount it over the
    /// original, remove the tmpfs copy, and add the entry to the declaration (its
    /// comments and layout kept). A crash at any point loses nothing: the next persist
    /// command finishes or undoes it.
    #[command(after_help = EXIT_CODES)]
    Add {
        /// The live path (absolute), a directory or a regular file.
        path: PathBuf,
        #[command(flatten)]
        common: PersistArgs,
        /// The persistent root to move it to (default: the only one declared).
        #[arg(long, value_name = "MOUNT")]
        volume: Option<String>,
        /// Owner to declare (default: the live path's).
        #[arg(long)]
        user: Option<String>,
        /// Group to declare (default: the live path's).
        #[arg(long)]
        group: Option<String>,
        /// Mode to declare, octal (default: the live path's).
        #[arg(long)]
        mode: Option<String>,
        /// For files: a bind mount (default) or a symlink into the volume.
        #[arg(long, value_parser = ["bind", "symlink"])]
        how: Option<String>,
        /// Print what was done as JSON: the entry declared, what was copied, the
        /// generations made.
        #[arg(long)]
        json: bool,
    },
    /// Stop persisting a path: unmount it and remove it from the declaration. The
    /// volume keeps the data unless --purge.
    #[command(after_help = EXIT_CODES)]
    Remove {
        /// The declared path to stop persisting (absolute, as in the declaration).
        path: PathBuf,
        #[command(flatten)]
        common: PersistArgs,
        /// Copy the data back into the root (verified) after unmounting.
        #[arg(long)]
        copy_back: bool,
        /// Delete the data from the volume at the end.
        #[arg(long)]
        purge: bool,
        /// Print what was done as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Every declared path with its live state: mounted from its volume path, not
    /// mounted, mounted from elsewhere, missing; and owner or mode differing from the
    /// declaration. Exit code 1 if any is not as declared.
    #[command(after_help = EXIT_CODES)]
    List {
        #[command(flatten)]
        common: PersistArgs,
        /// Print the entries (path, volume, kind, owner, mode, state, problems) and the
        /// interrupted operations as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Write the files declared `how = "copy"` (such as /etc/shadow) back to their
    /// volume where they changed in the root: atomically, never deleting the volume's
    /// copy. The generation /etc was activated to says which files.
    #[command(after_help = EXIT_CODES)]
    Sync {
        #[command(flatten)]
        target: Target,
        /// After the first sync, keep watching the copies and write each back as soon
        /// as a program closes or renames it (what blankslate-sync.service runs).
        #[arg(long)]
        follow: bool,
        /// Print what was written as JSON.
        #[arg(long, conflicts_with = "follow")]
        json: bool,
    },
    /// Finish or undo an interrupted `persist add` or `persist remove`.
    #[command(after_help = EXIT_CODES)]
    Recover {
        #[command(flatten)]
        common: PersistArgs,
        /// Only this persistent root (default: every declared one).
        #[arg(long, value_name = "MOUNT")]
        volume: Option<String>,
    },
}

impl PersistCommand {
    /// `persist add PATH --declaration DECLARATION [--volume VOLUME]`, as another
    /// command runs it (`net restore --declare`).
    pub(super) fn add(path: PathBuf, declaration: PathBuf, target: Target, volume: Option<String>) -> PersistCommand {
        let common = PersistArgs { declaration, target };
        PersistCommand::Add { path, common, volume, user: None, group: None, mode: None, how: None, json: false }
    }
}

#[derive(Debug, clap::Args)]
pub(super) struct PersistArgs {
    /// The declaration file to read and edit.
    #[arg(long, value_name = "FILE")]
    declaration: PathBuf,
    #[command(flatten)]
    target: Target,
}

pub(super) fn run(command: PersistCommand) -> Result<ExitCode> {
    let path_arg = |path: &Path| manage::normalize_argument(path);
    match command {
        PersistCommand::Add { path, common, volume, user, group, mode, how, json: as_json } => {
            let path = path_arg(&path)?;
            let mode = match mode {
                Some(text) => {
                    Some(decl::Mode::parse_octal(&text).ok_or_else(|| format!("`{text}` is not an octal mode"))?)
                }
                None => None,
            };
            let how = how.map(|h| if h == "symlink" { decl::How::Symlink } else { decl::How::Bind });
            let state = lock_existing(&common.target)?;
            if let Some(state) = &state {
                finish_pending(state, &common.target)?;
            }
            let root = Dir::open_root(&common.target.root)?;
            let request = manage::AddRequest {
                path: &path,
                declaration: &common.declaration,
                volume: volume.as_deref(),
                user: user.as_deref(),
                group: group.as_deref(),
                mode,
                how,
            };
            let mut generations = Carried::default();
            let added = manage::add(&root, &request, &mut carrier(&common, &root, state.as_ref(), &mut generations))?;
            print_recovered(&added.recovered)?;
            if as_json {
                report::json(&json!({
                    "path": added.path, "volume": added.volume, "entry": added.entry,
                    "files": added.stats.files, "directories": added.stats.directories,
                    "hard_links": added.stats.hard_links, "symlinks": added.stats.symlinks,
                    "special": added.stats.special, "bytes": added.stats.bytes,
                    "generations": generations.to_json(),
                }))?;
            } else {
                outln!(
                    "{} is now persisted in {} ({}, {}, verified), declared as {}",
                    added.path,
                    added.volume,
                    plural(added.stats.files, "file"),
                    plural(added.stats.bytes, "byte"),
                    added.entry
                )?;
                generations.print(&common)?;
            }
            Ok(ExitCode::SUCCESS)
        }
        PersistCommand::Remove { path, common, copy_back, purge, json: as_json } => {
            remove(&path_arg(&path)?, &common, copy_back, purge, as_json)
        }
        PersistCommand::List { common, json: as_json } => persist_list(&common, as_json),
        PersistCommand::Sync { target, follow, json: as_json } => sync(&target, follow, as_json),
        PersistCommand::Recover { common, volume } => {
            let state = lock_existing(&common.target)?;
            if let Some(state) = &state {
                finish_pending(state, &common.target)?;
            }
            let root = Dir::open_root(&common.target.root)?;
            let mut generations = Carried::default();
            let recovered = manage::recover(
                &root,
                &common.declaration,
                volume.as_deref(),
                &mut carrier(&common, &root, state.as_ref(), &mut generations),
            )?;
            print_recovered(&recovered)?;
            if recovered.is_empty() {
                outln!("nothing to recover")?;
            } else {
                generations.print(&common)?;
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Notes on interrupted persist commands that this one finished or undid first.
fn print_recovered(recovered: &[manage::Recovered]) -> Result<()> {
    for r in recovered {
        let what = if r.operation == blankslate_persist::journal::Operation::Add { "add" } else { "remove" };
        let outcome = if r.outcome == manage::Outcome::Finished { "finished" } else { "undone" };
        errln!("note: the interrupted `persist {what} {}` (after step `{}`) was {outcome}", r.path, r.step.as_str())?;
        for note in &r.notes {
            errln!("note: {note}")?;
        }
    }
    Ok(())
}

/// `persist remove`.
fn remove(path: &str, common: &PersistArgs, copy_back: bool, purge: bool, as_json: bool) -> Result<ExitCode> {
    let state = lock_existing(&common.target)?;
    if let Some(state) = &state {
        finish_pending(state, &common.target)?;
    }
    let root = Dir::open_root(&common.target.root)?;
    let request = manage::RemoveRequest { path, declaration: &common.declaration, copy_back, purge };
    let mut generations = Carried::default();
    let removed = manage::remove(&root, &request, &mut carrier(common, &root, state.as_ref(), &mut generations))?;
    print_recovered(&removed.recovered)?;
    if as_json {
        report::json(&json!({
            "path": removed.path, "volume": removed.volume,
            "copied_back": removed.copied_back, "purged": removed.purged,
            "generations": generations.to_json(),
        }))?;
    } else {
        let data = match (removed.copied_back, removed.purged) {
            (true, true) => "copied back into the root; removed from the volume",
            (true, false) => "copied back into the root; the volume keeps its copy",
            (false, true) => "removed from the volume",
            (false, false) => "kept in the volume",
        };
        outln!("{} is no longer persisted ({data})", removed.path)?;
        generations.print(common)?;
        // What the audit says from now on, and why: no longer persisting leaves
        // state that nothing declares.
        let live = if removed.copied_back { "with the data copied back" } else { "empty" };
        outln!(
            "note: {} stays on the root ({live}) until the next reboot erases it; `blankslate audit` \
             lists it as undeclared",
            removed.path
        )?;
        if !removed.purged {
            let kept = format!("{}{}", removed.volume.trim_end_matches('/'), removed.path);
            outln!(
                "note: the volume keeps {kept}, which nothing declares now: `blankslate audit` lists it \
                 as a persist-stray until it is deleted"
            )?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `persist list`: exit code 1 if any declared path is not as declared.
fn persist_list(common: &PersistArgs, as_json: bool) -> Result<ExitCode> {
    let declaration = match load(&common.declaration, &common.target.root)? {
        Ok(declaration) => declaration,
        Err(code) => return Ok(code),
    };
    let root = Dir::open_root(&common.target.root)?;
    for mount in declaration.persist.keys() {
        if root.open_dir(mount.trim_start_matches('/')).is_err_and(|e| e.is_not_found()) {
            errln!(
                "note: the persistent root {mount} is not in {} (is the volume mounted?): nothing of it is there",
                common.target.root.display()
            )?;
        }
    }
    let listing = manage::list(&root, &declaration)?;
    let all_ok = listing.entries.iter().all(|e| e.state.is_ok() && e.problems.is_empty());
    if as_json {
        let entries: Vec<_> = listing
            .entries
            .iter()
            .map(|e| {
                json!({
                    "path": e.path, "volume": e.volume, "kind": e.kind.noun(), "how": e.how.as_str(),
                    "user": e.owner.user, "group": e.owner.group, "mode": e.owner.mode.to_string(),
                    "state": e.state.as_str(), "problems": e.problems,
                })
            })
            .collect();
        report::json(&json!({ "entries": entries, "pending": listing.pending }))?;
    } else {
        for e in &listing.entries {
            let problems = if e.problems.is_empty() { String::new() } else { format!("  ({})", e.problems.join("; ")) };
            outln!("{:<15} {:<9} {}  <- {}{}{problems}", e.state.as_str(), e.kind.noun(), e.path, e.volume, e.path)?;
        }
        for pending in &listing.pending {
            errln!("warning: {pending}")?;
        }
    }
    Ok(ExitCode::from(if all_ok && listing.pending.is_empty() { EXIT_OK } else { EXIT_FINDINGS }))
}

/// `persist sync [--follow]`: exit code 1 if a copy is missing from the root or could
/// not be synced (each copy is synced on its own; `--follow` keeps running).
fn sync(target: &Target, follow: bool, as_json: bool) -> Result<ExitCode> {
    use blankslate_persist::copy;
    // `--follow` runs for good: it must not keep every other writer out.
    let _state = if follow { None } else { lock_existing(target)? };
    let Some(running) = running(target, None)? else {
        outln!("no blankslate state in {}: nothing to sync", target.root.display())?;
        return Ok(ExitCode::SUCCESS);
    };
    let root = Dir::open_root(&target.root)?;
    let print = |synced: &copy::Synced| -> Result<()> {
        for path in &synced.written {
            outln!("written back: {path}")?;
        }
        for (path, why) in synced.missing.iter().chain(&synced.unknown_owners) {
            errln!("warning: {path}: {why}")?;
        }
        for (path, why) in &synced.failed {
            errln!("warning: {path}: not written back: {why}")?;
        }
        Ok(())
    };
    if follow {
        // Said once the first sync is done and every change is watched.
        let mut first = true;
        let never = copy::follow(&root, &running.declaration, &running.users, &mut |synced| {
            // Each copy is written back whole before it is reported: with nowhere to
            // report to, the watch ends as a failure, the copies as they are.
            let reported = print(synced).and_then(|()| {
                if std::mem::take(&mut first) {
                    outln!("keeping the copies of generation {} written back", running.number)?;
                }
                Ok(())
            });
            if let Err(error) = reported {
                report::error(error.error());
                std::process::exit(i32::from(report::EXIT_FAILURE));
            }
        })?;
        match never {}
    }
    let synced = copy::sync(&root, &running.declaration, &running.users, None);
    if as_json {
        let pairs = |list: &[(String, String)]| -> Vec<_> {
            list.iter().map(|(path, why)| json!({ "path": path, "why": why })).collect()
        };
        report::json(&json!({
            "generation": running.number, "written": synced.written, "unchanged": synced.unchanged,
            "missing": pairs(&synced.missing), "failed": pairs(&synced.failed),
        }))?;
    } else {
        print(&synced)?;
        outln!("copies: {} written back, {} unchanged", synced.written.len(), synced.unchanged.len())?;
    }
    Ok(ExitCode::from(if synced.missing.is_empty() && synced.failed.is_empty() { EXIT_OK } else { EXIT_FINDINGS }))
}

/// The state of `target`, locked for writing, if anything was ever built there (none
/// is created): a persist command holds it from before its first change to after its
/// last, like every command that changes a root.
fn lock_existing(target: &Target) -> Result<Option<LockedState>> {
    Ok(match read_state(target)? {
        Some(_) => Some(open_state(target)?),
        None => None,
    })
}

/// The hook a persist operation runs once its declaration edit is done and before its
/// journal goes (for it and for each interrupted one it finishes first): the change
/// is carried into the generations, and what was carried is merged into `carried`.
fn carrier<'a>(
    common: &'a PersistArgs,
    root: &'a Dir,
    state: Option<&'a LockedState>,
    carried: &'a mut Carried,
) -> impl FnMut(&str) -> std::result::Result<(), String> + 'a {
    move |path| {
        let next = carry_into_generations(root, state, &common.declaration, &[path]).map_err(|e| e.to_string())?;
        carried.merge(&next);
        Ok(())
    }
}

/// What a persist command carried into the generations, as the person sees it.
trait CarriedOutput {
    fn to_json(&self) -> serde_json::Value;
    fn print(&self, common: &PersistArgs) -> Result<()>;
}

impl CarriedOutput for Carried {
    fn to_json(&self) -> serde_json::Value {
        let pair = |p: Option<(u32, u32)>| p.map(|(from, to)| json!({ "from": from, "to": to }));
        json!({ "active": pair(self.active), "current": pair(self.current) })
    }

    fn print(&self, common: &PersistArgs) -> Result<()> {
        let decl = common.declaration.display();
        if self.no_state {
            outln!(
                "note: nothing was ever built in {}: the change is in {decl} only (`blankslate build {decl}` \
                 makes it a generation)",
                common.target.root.display()
            )?;
        }
        let changed = |p: Option<(u32, u32)>| p.filter(|(from, to)| from != to);
        match (changed(self.active), changed(self.current)) {
            (Some((from, to)), Some(current)) if (from, to) == current => {
                outln!("generation {from} with this change is generation {to}, now active and current")?;
            }
            (active, current) => {
                if let Some((from, to)) = active {
                    outln!("generation {from} with this change is generation {to}, now active")?;
                }
                if let Some((from, to)) = current {
                    outln!("generation {from} with this change is generation {to}, now current (the next boot's)")?;
                }
            }
        }
        if self.not_relabelled {
            if let Some((_, to)) = self.active {
                outln!("note: /etc is being activated: run `blankslate switch {to}` to make generation {to} active")?;
            }
        }
        Ok(())
    }
}
