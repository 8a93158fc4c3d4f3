//! `blankslate switch` and `blankslate rollback`: activate a generation on a root.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use blankslate_activator::etc;
use blankslate_core::decl;
use blankslate_core::fs::Dir;
use blankslate_core::generation::State;
use blankslate_etc_builder as etc_builder;

use super::{InputError, Result, Target, build_etc, load, named_generation, open_state, read_state};
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
struct Activation {
    /// Print what would change (entries added, changed, removed, backed up) and
    /// change nothing.
    #[arg(long)]
    dry_run: bool,
    /// Refuse to activate, changing nothing, if a file blankslate did not put there
    /// sits at a declared path (the default moves it to NAME.blankslate-backup).
    #[arg(long)]
    refuse_conflicts: bool,
}

impl Activation {
    fn on_conflict(&self) -> etc::OnConflict {
        if self.refuse_conflicts { etc::OnConflict::Refuse } else { etc::OnConflict::Backup }
    }
}

pub(super) fn switch(args: &SwitchArgs) -> Result<ExitCode> {
    let (what, target, activation, nixos_etc) =
        (args.generation.as_str(), &args.target, &args.activation, args.nixos_etc.as_deref());
    let Ok(number) = what.parse::<u32>() else {
        let file = Path::new(what);
        let declaration = match load(file, &target.root)? {
            Ok(declaration) => declaration,
            Err(code) => return Ok(code),
        };
        let etc = build_etc(&declaration, nixos_etc)?;
        if activation.dry_run {
            return dry_run_declaration(target, &declaration, &etc, activation);
        }
        let state = open_state(target)?;
        let etc_object = etc.add_to_store(state.store())?;
        // `current` moves only once the activation succeeded.
        let built = state.add(&declaration, &[("etc", &etc_object)])?;
        return activate(&state, target, built.generation, activation);
    };
    let Some(state) = read_state(target)? else {
        return Err(InputError::argument(format!("there is no generation {number}: nothing was ever built here")));
    };
    named_generation(&state, number)?;
    let state = if activation.dry_run { state } else { open_state(target)? };
    activate(&state, target, number, activation)
}

/// The plan for a declaration that is not built yet: its /etc is only in memory.
fn dry_run_declaration(
    target: &Target,
    declaration: &decl::Declaration,
    etc: &etc_builder::EtcBuild,
    activation: &Activation,
) -> Result<ExitCode> {
    let state = read_state(target)?;
    let object = blankslate_core::store::Store::object_name(etc_builder::OBJECT_NAME, &etc.tree()?)?;
    let list = match &state {
        Some(state) => state.list()?,
        None => Vec::new(),
    };
    let canonical = declaration.canonical_json();
    let existing =
        list.iter().find(|g| state.as_ref().is_some_and(|s| s.declaration_json(g).is_ok_and(|d| d == canonical)));
    let generation = existing.map_or_else(|| list.last().map_or(1, |g| g.number + 1), |g| g.number);
    let manifest = etc.manifest();
    let static_target = target.state_dir.join("store").join(&object).join(blankslate_core::manifest::TREE_DIR);
    let to = etc::Active { generation, object, static_target: static_target.to_string_lossy().into_owned(), manifest };
    let root = Dir::open_root(&target.root)?;
    let managed = |name: &str| {
        etc.entries.get(name).and_then(|e| match &e.node {
            blankslate_core::store::Tree::File { contents: b, .. } => Some(b.clone()),
            _ => None,
        })
    };
    let users = || etc::users_for(&root, managed, &to.manifest);
    report::print(&etc::plan(&root, &to, &users, activation.on_conflict())?.to_string());
    Ok(ExitCode::SUCCESS)
}

/// Makes generation `number` current and activates its /etc on the root.
fn activate(state: &State, target: &Target, number: u32, activation: &Activation) -> Result<ExitCode> {
    let generation = state.generation(number)?;
    let object = state.part(&generation, "etc")?.ok_or_else(|| format!("generation {number} has no /etc part"))?;
    let to = etc::Active::load(state.store(), number, &object)?;
    let root = Dir::open_root(&target.root)?;
    if activation.dry_run {
        let tree = state.store().open_object(&object)?.open_dir(blankslate_core::manifest::TREE_DIR)?;
        let users = || etc::users_for(&root, |name| tree.read(name).ok(), &to.manifest);
        report::print(&etc::plan(&root, &to, &users, activation.on_conflict())?.to_string());
        return Ok(ExitCode::SUCCESS);
    }
    let activated = etc::activate(&root, state.store(), &to, activation.on_conflict())?;
    let declaration = decl::Declaration::from_canonical_json(&state.declaration_json(&generation)?)?;
    let previous = match &activated.plan.from {
        Some(from) if from.generation != number => state
            .generation(from.generation)
            .and_then(|g| state.declaration_json(&g))
            .ok()
            .and_then(|json| decl::Declaration::from_canonical_json(&json).ok()),
        _ => None,
    };
    let tree = state.store().open_object(&object)?.open_dir(blankslate_core::manifest::TREE_DIR)?;
    let users = etc::users_for(&root, |name| tree.read(name).ok(), &to.manifest);
    let persisted = blankslate_persist::activate(&root, &declaration, &users, previous.as_ref())?;
    state.set_current(number)?;
    if let Some(recovered) = activated.recovered {
        println!("finished the interrupted activation of generation {recovered} first");
    }
    report::print(&activated.plan.to_string());
    for step in activated.plan.backups() {
        if let etc::Action::BackUp { backup, found } = &step.action {
            eprintln!("warning: /etc/{} held {found}, not blankslate's: moved to {backup}", step.path);
        }
    }
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
    println!("generation {number} is active");
    Ok(ExitCode::SUCCESS)
}

pub(super) fn rollback(args: &RollbackArgs) -> Result<ExitCode> {
    let (target, activation) = (&args.target, &args.activation);
    let root = Dir::open_root(&target.root)?;
    let nothing = || "nothing is active yet; nothing to roll back from".to_owned();
    let state = if activation.dry_run { read_state(target)?.ok_or_else(nothing)? } else { open_state(target)? };
    let active = etc::active(&root)?.map(|a| a.generation).or(state.current_number()?);
    let Some(active) = active else { return Err(nothing().into()) };
    let previous = state.list()?.into_iter().rev().find(|g| g.number < active);
    let Some(previous) = previous else { return Err(format!("there is no generation before {active}").into()) };
    activate(&state, target, previous.number, activation)
}
