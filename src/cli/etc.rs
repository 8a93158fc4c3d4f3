//! `blankslate etc keep`: take live `/etc` files into the declaration's etc tree and
//! switch to it. The copying is `etc_builder::keep`'s, the switch `switch`'s; this
//! parses, checks the paths against the declaration, calls and prints.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use blankslate_etc_builder::keep::{self, KeepError};
use blankslate_sys::fs::Dir;
use clap::Subcommand;

use super::{CliError, InputError, Result, Target, audit, built, finish_pending, load, open_state, plural, switch};
use crate::report::{self, outln};

#[derive(Debug, Subcommand)]
#[command(defer = true)]
pub(super) enum EtcCommand {
    /// Keep live /etc files: copy them, with their owner and mode (a directory with
    /// everything below it, a symlink as a symlink), into the declaration's etc tree
    /// (`[etc_tree] source`), then switch to the declaration, so that what a package
    /// or a tool wrote in /etc survives the next boot. The live file is taken over, not
    /// backed up: it holds what is now declared.
    Keep {
        /// Paths below /etc (`/etc/default/atd`, or `default/atd`).
        #[arg(required_unless_present = "packaged", conflicts_with = "packaged", value_name = "PATH")]
        paths: Vec<String>,
        /// Instead of named paths: every /etc path the audit reports (etc-stray,
        /// etc-drift) that a dpkg package installed, as the apt hook does after a
        /// package's install or upgrade when `Blankslate::Keep-Packaged` is on.
        #[arg(long)]
        packaged: bool,
        /// The declaration whose etc tree takes them.
        #[arg(long, value_name = "FILE")]
        declaration: PathBuf,
        /// Only copy them into the etc tree; switch later.
        #[arg(long)]
        no_switch: bool,
        #[command(flatten)]
        target: Target,
    },
    /// Before a package manager's run (apt's `DPkg::Pre-Invoke`): make each /etc link
    /// into the store a plain file with the same bytes. dpkg looks for a conffile's new
    /// version beside the link's target, in the read-only store, and would leave it as
    /// `NAME.dpkg-new`; maintainer scripts that write a file in place would fail.
    Unlink {
        #[command(flatten)]
        target: Target,
    },
    /// After it (`DPkg::Post-Invoke`): make each plain file that still holds its link's
    /// bytes a link again. What the run changed stays a file, for the audit to report
    /// and `etc keep --packaged` to keep.
    Relink {
        #[command(flatten)]
        target: Target,
    },
}

pub(super) fn run(command: EtcCommand) -> Result<ExitCode> {
    let (paths, packaged, file, no_switch, target) = match command {
        EtcCommand::Keep { paths, packaged, declaration, no_switch, target } => {
            (paths, packaged, declaration, no_switch, target)
        }
        EtcCommand::Unlink { target } => return unlink(&target),
        EtcCommand::Relink { target } => return relink(&target),
    };
    let declaration = match load(&file, &target.root)? {
        Ok(declaration) => declaration,
        Err(code) => return Ok(code),
    };
    let Some(tree) = &declaration.etc_tree else {
        return Err(InputError::argument(format!(
            "{} has no etc tree to keep /etc files in: add `[etc_tree]` with `source = \"etc\"` (a directory next \
             to it) first",
            file.display()
        )));
    };
    let paths = if packaged { packaged_paths(&target)? } else { paths };
    if paths.is_empty() {
        outln!("the audit reports no /etc file of a package: nothing to keep")?;
        return Ok(ExitCode::SUCCESS);
    }
    let keys = paths
        .iter()
        .map(|path| keep::undeclared_key(&declaration, path).map_err(keep_error))
        .collect::<Result<Vec<_>>>()?;
    let etc = Dir::open_root(&target.root)?.open_dir("etc")?;
    let tree_dir = Dir::open_root(Path::new(&tree.source))?;
    for key in &keys {
        let keeping = keep::keep(&etc, &tree_dir, key).map_err(keep_error)?;
        for kept in &keeping.kept {
            outln!("kept /etc/{} ({}) in {}/{}", kept.path, kept.what, tree.source, kept.path)?;
        }
        for declared in &keeping.declared {
            outln!("/etc/{declared} is declared already")?;
        }
        for skipped in &keeping.skipped {
            outln!("not kept: /etc/{}: {}", skipped.path, skipped.reason)?;
        }
    }
    if no_switch {
        outln!("the etc tree has them; `blankslate switch {}` makes them declared", file.display())?;
        return Ok(ExitCode::SUCCESS);
    }
    let switched = switch::switch_to_declaration(&file, &target)?;
    if switched != ExitCode::SUCCESS {
        return Ok(switched);
    }
    // A switch leaves alone what both generations declare alike (a drifted file kept
    // as it is stays a file): the kept entries take the place of the live ones.
    let state = open_state(&target)?;
    if let Some(repaired) = blankslate_activator::etc::repair_only(&state, &keys)? {
        if !repaired.plan.is_noop() {
            report::print(&repaired.plan.to_string())?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn unlink(target: &Target) -> Result<ExitCode> {
    let state = open_state(target)?;
    finish_pending(&state, target)?;
    let unlinked = blankslate_activator::etc::unlink(&state)?;
    if !unlinked.is_empty() {
        let links = plural(unlinked.len(), "link");
        outln!("blankslate: made {links} of /etc into the store plain files (until `blankslate etc relink`)")?;
    }
    Ok(ExitCode::SUCCESS)
}

fn relink(target: &Target) -> Result<ExitCode> {
    let state = open_state(target)?;
    finish_pending(&state, target)?;
    let Some(relinked) = blankslate_activator::etc::relink(&state)? else {
        return Ok(ExitCode::SUCCESS);
    };
    if !relinked.plan.steps.is_empty() {
        let files = plural(relinked.plan.steps.len(), "file");
        outln!("blankslate: linked {files} of /etc again (unchanged since `blankslate etc unlink`)")?;
    }
    Ok(ExitCode::SUCCESS)
}

/// The /etc paths of dpkg packages that the audit of `target` reports as etc-stray or
/// etc-drift and that are there to keep (not a declared entry gone missing).
fn packaged_paths(target: &Target) -> Result<Vec<String>> {
    let running = built(target, None)?;
    let root = Dir::open_root(&target.root)?;
    let root_path = std::fs::canonicalize(&target.root)?;
    let mut setup = audit::setup(&running, &root, &root_path, &target.state_dir, &[])?;
    setup.sizes = false;
    Ok(blankslate_audit::audit(&setup)?.packaged_etc_paths(&root)?)
}

/// What the person named wrongly is a usage error (exit 2); the rest a failure.
fn keep_error(error: KeepError) -> CliError {
    match error {
        KeepError::Fs(error) => error.into(),
        other => InputError::argument(other.to_string()),
    }
}
