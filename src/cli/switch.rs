//! `blankslate switch` and `blankslate rollback`: activate a generation on a root now,
//! make it the boot default, or both; on trial if asked.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use blankslate_activator::etc;
use blankslate_activator::live::{self, Switched};
use blankslate_activator::trial::Request;
use blankslate_core::decl::Declaration;
use blankslate_core::fs::Dir;
use blankslate_core::generation::State;
use blankslate_core::manifest::Manifest;
use blankslate_core::trial::LiveTrial;

use super::diff::{self, Side};
use super::{InputError, Result, Target, build_etc, load, named_generation, open_state, read_state, trial};
use crate::report;

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

/// How an activation behaves.
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
    #[command(flatten)]
    pub(super) trial: trial::TrialArgs,
}

/// When the generation takes effect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Now, and at every boot.
    Switch,
    /// Now only.
    Test,
    /// At the next boot only.
    Boot,
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
}

pub(super) fn switch(args: &SwitchArgs) -> Result<ExitCode> {
    let (what, target, activation) = (args.generation.as_str(), &args.target, &args.activation);
    let Ok(number) = what.parse::<u32>() else {
        let file = Path::new(what);
        let declaration = match load(file, &target.root)? {
            Ok(declaration) => declaration,
            Err(code) => return Ok(code),
        };
        let etc = build_etc(&declaration, args.nixos_etc.as_deref())?;
        if activation.dry_run {
            let state = read_state(target)?;
            let root = Dir::open_root(&target.root)?;
            let manifest = etc.manifest();
            let to = Side { generation: None, declaration: &declaration, manifest: &manifest };
            let users = || etc::users_for(&root, |name| etc.contents(name));
            let object = blankslate_core::store::Store::object_name(blankslate_etc_builder::OBJECT_NAME, &etc.tree()?)?;
            let static_target = target.state_dir.join("store").join(&object).join(blankslate_core::manifest::TREE_DIR);
            let number = next_number(state.as_ref(), &declaration)?;
            let to_etc = etc::Active {
                generation: number,
                object,
                static_target: static_target.to_string_lossy().into_owned(),
                manifest: manifest.clone(),
            };
            return dry_run(
                state.as_ref(),
                &root,
                activation,
                Side { generation: Some(number), ..to },
                &to_etc,
                &users,
            );
        }
        let state = open_state(target)?;
        if activation.trial.confirm_within.is_some() {
            // Refused before anything is built.
            fallback(trial::pending(&state)?.as_ref(), state.active_number())?;
        }
        let etc_object = etc.add_to_store(state.store())?;
        // The boot default moves only once the activation succeeded.
        let built = state.add(&declaration, &[("etc", &etc_object)])?;
        return run(&state, target, built.generation, activation);
    };
    let Some(state) = read_state(target)? else {
        return Err(InputError::argument(format!("there is no generation {number}: nothing was ever built here")));
    };
    named_generation(&state, number)?;
    if activation.dry_run {
        return dry_run_generation(&state, target, number, activation);
    }
    drop(state);
    run(&open_state(target)?, target, number, activation)
}

/// The number a declaration not built yet would get (an equal generation's, if any).
fn next_number(state: Option<&State>, declaration: &Declaration) -> Result<u32> {
    let Some(state) = state else { return Ok(1) };
    let list = state.list()?;
    let canonical = declaration.canonical_json();
    let existing = list.iter().find(|g| state.declaration_json(g).is_ok_and(|d| d == canonical));
    Ok(existing.map_or_else(|| list.last().map_or(1, |g| g.number + 1), |g| g.number))
}

/// The dry run of generation `number`, which is in the store.
fn dry_run_generation(state: &State, target: &Target, number: u32, activation: &Activation) -> Result<ExitCode> {
    let root = Dir::open_root(&target.root)?;
    let loaded = diff::Loaded::generation(state, number)?;
    let to_etc = etc::Active::load(state.store(), number, &loaded.etc_object)?;
    let tree = state.store().open_object(&loaded.etc_object)?.open_dir(blankslate_core::manifest::TREE_DIR)?;
    let users = || etc::users_for(&root, |name| tree.read(name).ok());
    dry_run(Some(state), &root, activation, loaded.side(), &to_etc, &users)
}

/// Prints what a switch to `to` would change: the comparison with the generation in
/// effect (the active one; the boot default for `--boot`), as `generations diff`
/// shows it, then what this root adds to the /etc plan.
fn dry_run(
    state: Option<&State>,
    root: &Dir,
    activation: &Activation,
    to: Side<'_>,
    to_etc: &etc::Active,
    users: &dyn Fn() -> blankslate_core::decl::UserDb,
) -> Result<ExitCode> {
    let mode = activation.mode();
    let from_number = match (state, mode) {
        (Some(state), Mode::Boot) => state.current_number()?,
        (Some(state), _) => state.active_number(),
        (None, _) => None,
    };
    let empty_declaration = Declaration::default();
    let empty_manifest = Manifest::new();
    let from = match (state, from_number) {
        (Some(state), Some(number)) => Some(diff::Loaded::generation(state, number)?),
        _ => None,
    };
    let from_side = from.as_ref().map_or(
        Side { generation: None, declaration: &empty_declaration, manifest: &empty_manifest },
        diff::Loaded::side,
    );
    let mut out = format!("dry run, nothing changes: {}\n", describe_mode(mode));
    out.push_str(&blankslate_core::diff::GenerationDiff::between(from_side, to).to_string());
    if mode != Mode::Boot {
        let plan = etc::plan(root, to_etc, users, activation.on_conflict())?;
        out.push_str("on this root:\n");
        out.push_str(&plan.live_notes());
    }
    report::print(&out);
    Ok(ExitCode::SUCCESS)
}

fn describe_mode(mode: Mode) -> &'static str {
    match mode {
        Mode::Switch => "activate now and make it the boot default",
        Mode::Test => "activate now, the boot default stays",
        Mode::Boot => "make it the boot default, activate nothing now",
    }
}

/// Switches to generation `number` as `activation` says.
fn run(state: &State, target: &Target, number: u32, activation: &Activation) -> Result<ExitCode> {
    state.generation(number)?;
    let mode = activation.mode();
    if mode == Mode::Boot {
        trial::set_boot_default(state, number, activation.trial.tries)?;
        let active = state.active_number().map_or_else(|| "nothing".into(), |n| format!("generation {n}"));
        println!("generation {number} is the boot default; {active} stays active until the next boot");
        return Ok(ExitCode::SUCCESS);
    }
    let root = Dir::open_root(&target.root)?;
    let previous = state.active_number();
    let pending = trial::pending(state)?;
    let armed = if let Some(within) = activation.trial.confirm_within {
        let fallback = fallback(pending.as_ref(), previous)?;
        if fallback == number {
            let message = format!("generation {number} is what a fallback would activate: there is nothing to try");
            return Err(InputError::argument(message));
        }
        let request = Request {
            generation: number,
            previous: fallback,
            make_default: mode == Mode::Switch,
            tries: activation.trial.tries,
            within,
        };
        Some(trial::arm(state, target, request)?)
    } else {
        trial::end(state)?;
        None
    };
    let switched = match live::activate(state, &root, number, activation.on_conflict()) {
        Ok(switched) => switched,
        Err(error) => {
            if let Some(armed) = &armed {
                trial::disarm(state, armed)?;
            }
            return Err(error.into());
        }
    };
    print_switched(&switched);
    match (&armed, mode) {
        (Some(armed), _) => trial::print_armed(armed),
        (None, Mode::Switch) => {
            trial::set_boot_default(state, number, activation.trial.tries)?;
            println!("generation {number} is active and the boot default");
        }
        (None, _) => {
            let default = state.current_number()?.map_or_else(|| "nothing".into(), |n| format!("generation {n}"));
            println!("generation {number} is active; the boot default stays {default} (a reboot returns to it)");
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// What a switch on trial falls back to: a pending trial's own fallback, else the
/// generation active now.
fn fallback(pending: Option<&LiveTrial>, active: Option<u32>) -> Result<u32> {
    pending.map(|t| t.previous).or(active).ok_or_else(|| {
        InputError::argument(
            "nothing is active on this root to fall back to: switch without --confirm-within the first time",
        )
    })
}

/// What an activation did: /etc, backups, persisted paths.
pub(super) fn print_switched(switched: &Switched) {
    if let etc::Outcome::Activated(activated) = &switched.etc {
        if let Some(recovered) = activated.recovered {
            println!("finished the interrupted activation of generation {recovered} first");
        }
    }
    report::print(&switched.etc.to_string());
    for step in switched.etc.plan().into_iter().flat_map(etc::Plan::backups) {
        if let etc::Action::BackUp { backup, found } = &step.action {
            eprintln!("warning: /etc/{} held {found}, not blankslate's: moved to {backup}", step.path);
        }
    }
    let persisted = &switched.persisted;
    let counts = [
        (persisted.mounted.len(), "mounted"),
        (persisted.linked.len(), "linked"),
        (persisted.migrated.len(), "migrated into the volume"),
        (persisted.unmounted.len(), "unmounted"),
        (persisted.unchanged.len(), "unchanged"),
    ];
    let summary: Vec<String> = counts.iter().map(|(n, what)| format!("{n} {what}")).collect();
    println!("persisted paths: {}", summary.join(", "));
    for (path, reason) in persisted.conflicts.iter().chain(&persisted.unknown_owners) {
        eprintln!("warning: {path}: {reason}");
    }
}

pub(super) fn rollback(args: &RollbackArgs) -> Result<ExitCode> {
    let (target, activation) = (&args.target, &args.activation);
    let nothing = || "nothing is active yet; nothing to roll back from".to_owned();
    let state = if activation.dry_run { read_state(target)?.ok_or_else(nothing)? } else { open_state(target)? };
    let active = state.active_number().or(state.current_number()?);
    let Some(active) = active else { return Err(nothing().into()) };
    let previous = state.list()?.into_iter().rev().find(|g| g.number < active);
    let Some(previous) = previous else { return Err(format!("there is no generation before {active}").into()) };
    if activation.dry_run {
        return dry_run_generation(&state, target, previous.number, activation);
    }
    run(&state, target, previous.number, activation)
}
