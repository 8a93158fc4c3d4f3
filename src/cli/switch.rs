//! `blankslate switch` and `blankslate rollback`: activate a generation on a root now,
//! make it the boot default, or both; on trial if asked. The switch itself is
//! `blankslate_activator::switch`'s; this parses, calls and prints.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use blankslate_activator::etc;
use blankslate_activator::switch::{self, How, Mode, Preview, Request, Switched, Unbuilt, Wanted};
use blankslate_etc_builder as etc_builder;
use blankslate_persist::Report;
use blankslate_state::generation::LockedState;
use blankslate_state::trial_record::BootRecord;
use blankslate_sys::fs::Dir;

use super::{
    InputError, Result, Target, confirm, live, load, named_generation, open_state, print_recovered, read_state,
};
use crate::report::{self, errln, outln};

#[derive(Debug, clap::Args)]
pub(super) struct SwitchArgs {
    /// A generation number, or a declaration file to build and activate.
    generation: String,
    #[command(flatten)]
    target: Target,
    #[command(flatten)]
    activation: Activation,
    /// Also take /etc entries from a NixOS-built etc tree (its `etc/` directory).
    #[arg(long, value_name = "DIR")]
    nixos_etc: Option<PathBuf>,
}

#[derive(Debug, clap::Args)]
pub(super) struct RollbackArgs {
    #[command(flatten)]
    target: Target,
    #[command(flatten)]
    activation: Activation,
}

// How an activation behaves.
#[derive(Debug, clap::Args)]
#[allow(clippy::struct_excessive_bools)] // independent command-line switches
pub(super) struct Activation {
    /// Print what would change (the generations' differences, and what this root adds:
    /// entries moved aside or left alone) and change nothing.
    #[arg(long)]
    dry_run: bool,
    /// Refuse to activate, changing nothing, if a file blankslate did not put there
    /// sits at a declared path (the default moves it to NAME.blankslate-backup).
    #[arg(long)]
    refuse_conflicts: bool,
    /// Activate now, but leave the boot default alone: a reboot returns to it.
    #[arg(long, conflicts_with = "boot")]
    test: bool,
    /// Make it the boot default without activating it: the next boot uses it.
    #[arg(long)]
    boot: bool,
    /// Print what was done (with --dry-run, what would change) as one JSON object;
    /// messages and warnings stay on standard error.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    pub(super) trial: confirm::TrialArgs,
}

impl Activation {
    fn on_conflict(&self) -> etc::OnConflict {
        if self.refuse_conflicts { etc::OnConflict::Refuse } else { etc::OnConflict::Backup }
    }

    fn mode(&self) -> Mode {
        match (self.test, self.boot) {
            (true, _) => Mode::Test,
            (_, true) => Mode::Boot,
            _ => Mode::Switch,
        }
    }

    fn how(&self) -> How {
        How {
            mode: self.mode(),
            on_conflict: self.on_conflict(),
            tries: self.trial.tries,
            confirm_within: self.trial.confirm_within,
        }
    }
}

/// Builds the declaration `file` and switches `target` to it, as `blankslate switch
/// FILE` does with no other option.
pub(super) fn switch_to_declaration(file: &Path, target: &Target) -> Result<ExitCode> {
    let activation = Activation {
        dry_run: false,
        refuse_conflicts: false,
        test: false,
        boot: false,
        json: false,
        trial: confirm::TrialArgs { confirm_within: None, tries: None },
    };
    let generation = file.to_str().ok_or_else(|| InputError::argument("the declaration's path is not UTF-8"))?;
    switch(&SwitchArgs { generation: generation.to_owned(), target: target.clone(), activation, nixos_etc: None })
}

pub(super) fn switch(args: &SwitchArgs) -> Result<ExitCode> {
    let (what, target, activation) = (args.generation.as_str(), &args.target, &args.activation);
    let Ok(number) = what.parse::<u32>() else {
        let file = Path::new(what);
        let declaration = match load(file, &target.root)? {
            Ok(declaration) => declaration,
            Err(code) => return Ok(code),
        };
        let etc = etc_builder::build(&declaration, args.nixos_etc.as_deref())?;
        if activation.dry_run {
            let root = Dir::open_root(&target.root)?;
            let unbuilt = Unbuilt::new(&root, &declaration, &etc).map_err(super::switch_error)?;
            return dry_run(target, activation, Err(unbuilt));
        }
        let state = open_state(target)?;
        let switched = live(&state, target, |live| live.switch_to_declaration(&declaration, &etc, activation.how()))?;
        return print_run(target, &switched, activation.json);
    };
    let Some(state) = read_state(target)? else {
        return Err(InputError::argument(format!("there is no generation {number}: nothing was ever built here")));
    };
    named_generation(&state, number)?;
    if activation.dry_run {
        return dry_run(target, activation, Ok(Wanted::Generation(number)));
    }
    drop(state);
    run(&open_state(target)?, target, Wanted::Generation(number), activation)
}

pub(super) fn rollback(args: &RollbackArgs) -> Result<ExitCode> {
    let (target, activation) = (&args.target, &args.activation);
    if activation.dry_run {
        return dry_run(target, activation, Ok(Wanted::Previous));
    }
    run(&open_state(target)?, target, Wanted::Previous, activation)
}

/// Prints what a switch to `wanted` would change: the comparison with the generation
/// in effect (the active one; the boot default for `--boot`), as `generations diff`
/// shows it, then what this root adds to the /etc plan.
fn dry_run(
    target: &Target,
    activation: &Activation,
    wanted: std::result::Result<Wanted, Unbuilt<'_>>,
) -> Result<ExitCode> {
    let root = Dir::open_root(&target.root)?;
    let state = read_state(target)?;
    let preview =
        switch::preview(&root, state.as_ref(), &target.state_dir, wanted, activation.mode(), activation.on_conflict())
            .map_err(super::switch_error)?;
    if activation.json {
        report::json(&preview_json(&preview))?;
    } else {
        print_preview(&preview)?;
    }
    Ok(ExitCode::SUCCESS)
}

/// A dry run as `--json` prints it: the generations compared (`to` is the number a
/// declaration would be built as), whether they differ, the differences, and what the
/// `/etc` plan on this root would do, counted (null with `--boot`, which plans none).
fn preview_json(preview: &Preview) -> serde_json::Value {
    serde_json::json!({
        "dry_run": true,
        "mode": preview.mode.name(),
        "from": preview.diff.from,
        "to": preview.diff.to,
        "differences": !preview.diff.is_empty(),
        "diff": preview.diff,
        "etc": preview.plan.as_ref().map(etc::Plan::counts),
    })
}

fn print_preview(preview: &Preview) -> Result<()> {
    let mut out = format!("dry run, nothing changes: {}\n", preview.mode.describe());
    out.push_str(&preview.diff.to_string());
    if let Some(plan) = &preview.plan {
        out.push_str("on this root:\n");
        out.push_str(&plan.live_notes());
    }
    report::print(&out)?;
    Ok(())
}

/// Switches to `wanted` as `activation` says; prints what was done once it is.
fn run(state: &LockedState, target: &Target, wanted: Wanted, activation: &Activation) -> Result<ExitCode> {
    let switched = live(state, target, |live| live.switch(&Request { wanted, how: activation.how() }))?;
    print_run(target, &switched, activation.json)
}

/// Prints what a switch did (as JSON with `json`, what it finished first and the
/// warnings then on standard error), and a warning if the blankslate that booted the
/// root is another version.
fn print_run(target: &Target, switched: &Switched, json: bool) -> Result<ExitCode> {
    if json {
        for line in super::describe_recovered(&switched.recovered).lines() {
            errln!("{line}")?;
        }
        if let Some((outcome, persisted)) = &switched.activated {
            print_backups(outcome)?;
            print_persist_warnings(persisted)?;
        }
        report::json(&switched_json(switched))?;
    } else {
        print_switched(switched)?;
    }
    let booted = BootRecord::read(&Dir::open_root(&target.root)?);
    if let Some(warning) = booted.and_then(|record| record.version_warning()) {
        errln!("warning: {warning}")?;
    }
    Ok(ExitCode::SUCCESS)
}

/// What a switch did: what it finished first, /etc, backups, persisted paths, the
/// trials and the boot default.
fn print_switched(switched: &Switched) -> Result<()> {
    print_recovered(&switched.recovered)?;
    let number = switched.generation;
    let Some((outcome, persisted)) = &switched.activated else {
        if let Some(trial) = &switched.boot_trial {
            confirm::print_boot_trial(trial)?;
        }
        let active = switched.active.map_or_else(|| "nothing".into(), |n| format!("generation {n}"));
        outln!("generation {number} is the boot default; {active} stays active until the next boot")?;
        return Ok(());
    };
    if let Some(ended) = &switched.ended {
        outln!("the trial of generation {} ends unconfirmed: this switch replaces it", ended.generation)?;
    }
    print_activated(outcome, persisted)?;
    match (&switched.trial, switched.mode) {
        (Some(armed), _) => confirm::print_armed(armed)?,
        (None, Mode::Switch | Mode::Boot) => {
            if let Some(trial) = &switched.boot_trial {
                confirm::print_boot_trial(trial)?;
            }
            outln!("generation {number} is active and the boot default")?;
        }
        (None, Mode::Test) => {
            let default = switched.boot_default.map_or_else(|| "nothing".into(), |n| format!("generation {n}"));
            outln!("generation {number} is active; the boot default stays {default} (a reboot returns to it)")?;
        }
    }
    Ok(())
}

/// A switch as `--json` prints it: the generation, the marks after it, what it
/// finished first, the trials, and what the activation did (null with `--boot`): `/etc`
/// counted, and the persisted paths by what was done to them.
fn switched_json(switched: &Switched) -> serde_json::Value {
    let (etc, persisted) = match &switched.activated {
        Some((outcome, persisted)) => (Some(outcome.counts()), Some(persisted_json(persisted))),
        None => (None, None),
    };
    serde_json::json!({
        "dry_run": false,
        "mode": switched.mode.name(),
        "generation": switched.generation,
        "active": switched.active,
        "boot_default": switched.boot_default,
        "recovered": super::describe_recovered(&switched.recovered).lines().collect::<Vec<_>>(),
        "ended_trial": switched.ended.as_ref().map(|trial| trial.generation),
        "trial": switched.trial,
        "boot_trial": switched.boot_trial,
        "etc": etc,
        "persisted": persisted,
    })
}

fn persisted_json(persisted: &Report) -> serde_json::Value {
    let conflicts: Vec<_> = persisted
        .conflicts
        .iter()
        .chain(&persisted.unknown_owners)
        .map(|(path, reason)| serde_json::json!({ "path": path, "reason": reason }))
        .collect();
    serde_json::json!({
        "mounted": persisted.mounted,
        "linked": persisted.linked,
        "migrated": persisted.migrated,
        "unmounted": persisted.unmounted,
        "copied": persisted.copied,
        "written_back": persisted.written_back,
        "unchanged": persisted.unchanged.len(),
        "warnings": conflicts,
    })
}

/// What an activation did: /etc, backups, persisted paths.
pub(super) fn print_activated(outcome: &etc::Outcome, persisted: &Report) -> Result<()> {
    report::print(&outcome.to_string())?;
    print_backups(outcome)?;
    let counts = [
        (persisted.mounted.len(), "mounted"),
        (persisted.linked.len(), "linked"),
        (persisted.migrated.len(), "migrated into the volume"),
        (persisted.unmounted.len(), "unmounted"),
        (persisted.unchanged.len(), "unchanged"),
    ];
    let summary: Vec<String> = counts.iter().map(|(n, what)| format!("{n} {what}")).collect();
    outln!("persisted paths: {}", summary.join(", "))?;
    print_persist_warnings(persisted)
}

/// What the activation moved aside in /etc, as warnings.
fn print_backups(outcome: &etc::Outcome) -> Result<()> {
    for step in outcome.plan().into_iter().flat_map(etc::Plan::backups) {
        if let etc::Action::BackUp { backup, found } = &step.action {
            errln!("warning: /etc/{} held {found}, not blankslate's: moved to {backup}", step.path)?;
        }
    }
    Ok(())
}

/// The persisted paths not brought in, and owners not found, as warnings.
fn print_persist_warnings(persisted: &Report) -> Result<()> {
    for (path, reason) in persisted.conflicts.iter().chain(&persisted.unknown_owners) {
        errln!("warning: {path}: {reason}")?;
    }
    Ok(())
}
