//! `blankslate persist add | remove | list | recover | sync`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use blankslate_core::decl;
use blankslate_core::fs::Dir;
use clap::Subcommand;
use serde_json::json;

use super::{EXIT_CODES, Result, Target, load, running};
use crate::report::{self, EXIT_FINDINGS, EXIT_OK};

#[derive(Debug, Subcommand)]
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
        #[arg(long)]
        json: bool,
    },
    /// Stop persisting a path: unmount it and remove it from the declaration. The
    /// volume keeps the data unless --purge.
    #[command(after_help = EXIT_CODES)]
    Remove {
        path: PathBuf,
        #[command(flatten)]
        common: PersistArgs,
        /// Copy the data back into the root (verified) after unmounting.
        #[arg(long)]
        copy_back: bool,
        /// Delete the data from the volume at the end.
        #[arg(long)]
        purge: bool,
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

#[derive(Debug, clap::Args)]
pub(super) struct PersistArgs {
    /// The declaration file to read and edit.
    #[arg(long, value_name = "FILE")]
    declaration: PathBuf,
    /// The root directory of the live system (a scratch directory in tests).
    #[arg(long, value_name = "DIR", default_value = "/")]
    root: PathBuf,
}

pub(super) fn run(command: PersistCommand) -> Result<ExitCode> {
    use blankslate_persist::add as manage;
    let path_arg = |path: &Path| manage::normalize_argument(path);
    let print_recovered = |recovered: &[manage::Recovered]| {
        for r in recovered {
            let what = if r.operation == blankslate_persist::journal::Operation::Add { "add" } else { "remove" };
            let outcome = if r.outcome == manage::Outcome::Finished { "finished" } else { "undone" };
            eprintln!(
                "note: the interrupted `persist {what} {}` (after step `{}`) was {outcome}",
                r.path,
                r.step.as_str()
            );
            for note in &r.notes {
                eprintln!("note: {note}");
            }
        }
    };
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
            let root = Dir::open_root(&common.root)?;
            let request = manage::AddRequest {
                path: &path,
                declaration: &common.declaration,
                volume: volume.as_deref(),
                user: user.as_deref(),
                group: group.as_deref(),
                mode,
                how,
            };
            let added = manage::add(&root, &request)?;
            print_recovered(&added.recovered);
            if as_json {
                report::json(&json!({
                    "path": added.path, "volume": added.volume, "entry": added.entry,
                    "files": added.stats.files, "directories": added.stats.directories,
                    "hard_links": added.stats.hard_links, "symlinks": added.stats.symlinks,
                    "special": added.stats.special, "bytes": added.stats.bytes,
                }));
            } else {
                println!(
                    "{} is now persisted in {} ({} files, {} bytes, verified), declared as {}",
                    added.path, added.volume, added.stats.files, added.stats.bytes, added.entry
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        PersistCommand::Remove { path, common, copy_back, purge, json: as_json } => {
            let path = path_arg(&path)?;
            let root = Dir::open_root(&common.root)?;
            let request = manage::RemoveRequest { path: &path, declaration: &common.declaration, copy_back, purge };
            let removed = manage::remove(&root, &request)?;
            print_recovered(&removed.recovered);
            if as_json {
                report::json(&json!({
                    "path": removed.path, "volume": removed.volume,
                    "copied_back": removed.copied_back, "purged": removed.purged,
                }));
            } else {
                let data = match (removed.copied_back, removed.purged) {
                    (true, true) => "copied back into the root; removed from the volume",
                    (true, false) => "copied back into the root; the volume keeps its copy",
                    (false, true) => "removed from the volume",
                    (false, false) => "kept in the volume",
                };
                println!("{} is no longer persisted ({data})", removed.path);
            }
            Ok(ExitCode::SUCCESS)
        }
        PersistCommand::List { common, json: as_json } => persist_list(&common, as_json),
        PersistCommand::Sync { target, follow, json: as_json } => sync(&target, follow, as_json),
        PersistCommand::Recover { common, volume } => {
            let root = Dir::open_root(&common.root)?;
            let recovered = manage::recover(&root, &common.declaration, volume.as_deref())?;
            print_recovered(&recovered);
            if recovered.is_empty() {
                println!("nothing to recover");
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// `persist list`: exit code 1 if any declared path is not as declared.
fn persist_list(common: &PersistArgs, as_json: bool) -> Result<ExitCode> {
    use blankslate_persist::add as manage;
    let declaration = match load(&common.declaration, &common.root)? {
        Ok(declaration) => declaration,
        Err(code) => return Ok(code),
    };
    let root = Dir::open_root(&common.root)?;
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
        report::json(&json!({ "entries": entries, "pending": listing.pending }));
    } else {
        for e in &listing.entries {
            let problems = if e.problems.is_empty() { String::new() } else { format!("  ({})", e.problems.join("; ")) };
            println!("{:<15} {:<9} {}  <- {}{}{problems}", e.state.as_str(), e.kind.noun(), e.path, e.volume, e.path);
        }
        for pending in &listing.pending {
            eprintln!("warning: {pending}");
        }
    }
    Ok(ExitCode::from(if all_ok && listing.pending.is_empty() { EXIT_OK } else { EXIT_FINDINGS }))
}

/// `persist sync [--follow]`: exit code 1 if a copy is missing from the root.
fn sync(target: &Target, follow: bool, as_json: bool) -> Result<ExitCode> {
    use blankslate_persist::copy;
    let Some(running) = running(target, None)? else {
        println!("no blankslate state in {}: nothing to sync", target.root.display());
        return Ok(ExitCode::SUCCESS);
    };
    let root = Dir::open_root(&target.root)?;
    let print = |synced: &copy::Synced| {
        for path in &synced.written {
            println!("written back: {path}");
        }
        for (path, why) in synced.missing.iter().chain(&synced.unknown_owners) {
            eprintln!("warning: {path}: {why}");
        }
    };
    if follow {
        println!("keeping the copies of generation {} written back", running.number);
        let never = copy::follow(&root, &running.declaration, &running.users, &mut |synced| print(synced))?;
        match never {}
    }
    let synced = copy::sync(&root, &running.declaration, &running.users, None)?;
    if as_json {
        let missing: Vec<_> = synced.missing.iter().map(|(path, why)| json!({ "path": path, "why": why })).collect();
        report::json(&json!({
            "generation": running.number, "written": synced.written, "unchanged": synced.unchanged, "missing": missing,
        }));
    } else {
        print(&synced);
        println!("copies: {} written back, {} unchanged", synced.written.len(), synced.unchanged.len());
    }
    Ok(ExitCode::from(if synced.missing.is_empty() { EXIT_OK } else { EXIT_FINDINGS }))
}
