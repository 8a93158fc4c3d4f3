//! `blankslate repair`: bring the live root back to the generation it was activated to.

use std::fmt::Write as _;
use std::process::ExitCode;

use blankslate_activator::etc::{self, Action};
use blankslate_activator::switch::Live;
use blankslate_persist::Report;
use blankslate_sys::fs::Dir;
use serde_json::json;

use super::{Result, Target, live, open_state, print_recovered, read_state};
use crate::report::{self, EXIT_FINDINGS, EXIT_OK, errln};

#[derive(Debug, clap::Args)]
pub(super) struct RepairArgs {
    #[command(flatten)]
    target: Target,
    /// Say what is not as activated (the /etc steps, and the audit's findings about
    /// persisted paths) and change nothing.
    #[arg(long)]
    dry_run: bool,
    /// Print what was repaired as JSON.
    #[arg(long)]
    json: bool,
}

pub(super) fn run(args: &RepairArgs) -> Result<ExitCode> {
    let target = &args.target;
    let nothing =
        || format!("nothing is active on {}: nothing to repair (switch to a generation first)", target.root.display());
    let root = Dir::open_root(&target.root)?;
    // The lock, when repairing, is held until the command ends.
    let (repaired, persist_findings, _lock) = if args.dry_run {
        let state = read_state(target)?.ok_or_else(nothing)?;
        let repaired = etc::preview_repair(&root, state.store())?.map(|etc| Repaired {
            generation: etc.plan.to.generation,
            etc,
            persisted: None,
        });
        let Some(repaired) = repaired else { return Err(nothing().into()) };
        let findings = persisted_findings(&state, &root, &target.root, &repaired)?;
        (repaired, findings, None)
    } else {
        let state = open_state(target)?;
        let repaired = live(&state, target, Live::repair)?;
        if let Some(repaired) = &repaired {
            print_recovered(&repaired.recovered)?;
        }
        let repaired =
            repaired.map(|r| Repaired { generation: r.generation, etc: r.etc, persisted: Some(r.persisted) });
        let Some(repaired) = repaired else { return Err(nothing().into()) };
        (repaired, Vec::new(), Some(state))
    };
    let left = repaired.persisted.as_ref().map_or(0, |p| p.conflicts.len());
    if args.json {
        report::json(&to_json(&repaired, &persist_findings, args.dry_run))?;
    } else {
        let plan = &repaired.etc.plan;
        let mut out = if args.dry_run { plan.preview() } else { plan.to_string() };
        if let Some(persisted) = &repaired.persisted {
            out.push_str(&describe_persisted(repaired.generation, persisted));
        } else {
            let _ = writeln!(out, "persisted paths: what a repair would re-apply (from the audit's checks):");
            for (kind, path, reason) in &persist_findings {
                let _ = writeln!(out, "  {kind:<16}  {path}: {reason}");
            }
            let _ = writeln!(out, "{} finding(s)", persist_findings.len());
        }
        if args.dry_run {
            out.push_str("dry run: nothing was changed\n");
        }
        report::print(&out)?;
        for step in plan.backups().filter(|_| !args.dry_run) {
            if let Action::BackUp { backup, found } = &step.action {
                errln!("warning: /etc/{} held {found}: moved to {backup}", step.path)?;
            }
        }
    }
    Ok(ExitCode::from(if left == 0 { EXIT_OK } else { EXIT_FINDINGS }))
}

/// What a repair did (or, for `/etc` in a dry run, would do).
struct Repaired {
    generation: u32,
    etc: etc::Activated,
    /// `None` in a dry run.
    persisted: Option<Report>,
}

/// In a dry run: what the audit finds wrong with the persisted paths, which is what a
/// repair re-applies.
fn persisted_findings(
    state: &blankslate_state::generation::State,
    root: &Dir,
    root_path: &std::path::Path,
    repaired: &Repaired,
) -> Result<Vec<(&'static str, String, String)>> {
    let generation = state.generation(repaired.generation)?;
    let declaration = state.persisted_declaration(&generation)?;
    let users = etc::users_from_object(state.store(), root, &repaired.etc.plan.to.object)?;
    let mut findings = Vec::new();
    let mount_points = blankslate_audit::mounts::below(&std::fs::canonicalize(root_path)?);
    let volumes = blankslate_audit::checks::volumes(root, &declaration, &mount_points, &mut findings);
    blankslate_audit::checks::persist_health(root, &declaration, &volumes, &users, &mut findings);
    Ok(findings
        .into_iter()
        .map(|f| (f.kind.as_str(), String::from_utf8_lossy(&f.path).into_owned(), f.reason))
        .collect())
}

fn describe_persisted(generation: u32, persisted: &Report) -> String {
    let mut out = format!("persisted paths: repair of generation {generation}\n");
    let mut line = |sign: char, path: &str, what: &str| {
        let _ = writeln!(out, "  {sign} {path:<24} {what}");
    };
    for (path, backup) in &persisted.backed_up {
        line('!', path, &format!("what stood in the root moved to {backup}"));
    }
    for path in &persisted.unmounted {
        line('-', path, "unmounted: no longer declared (its data stays in the volume)");
    }
    for path in &persisted.mounted {
        line('+', path, "mounted again");
    }
    for path in &persisted.linked {
        line('+', path, "linked again");
    }
    for (path, was) in &persisted.fixed {
        line('~', path, &format!("re-applied; was {was}"));
    }
    for (path, reason) in persisted.conflicts.iter().chain(&persisted.unknown_owners) {
        line('?', path, &format!("not repaired: {reason}"));
    }
    let _ = writeln!(
        out,
        "{} unmounted, {} mounted again, {} linked again, {} fixed, {} moved aside, {} not repaired, {} as activated",
        persisted.unmounted.len(),
        persisted.mounted.len(),
        persisted.linked.len(),
        persisted.fixed.len(),
        persisted.backed_up.len(),
        persisted.conflicts.len(),
        persisted.unchanged.len(),
    );
    out
}

fn to_json(
    repaired: &Repaired,
    persist_findings: &[(&'static str, String, String)],
    dry_run: bool,
) -> serde_json::Value {
    let plan = &repaired.etc.plan;
    let steps: Vec<_> = plan
        .steps
        .iter()
        .map(|step| {
            let (action, found, backup) = match &step.action {
                Action::Create => ("missing", None, None),
                Action::Fix { found } => ("fixed", Some(found), None),
                Action::BackUp { backup, found } => ("replaced", Some(found), Some(backup)),
                Action::Replace | Action::Remove | Action::LeaveAlone { .. } => ("other", None, None),
            };
            json!({
                "path": format!("/etc/{}", step.path), "action": action, "found": found, "moved_to": backup,
                "entry": plan.entry(step).map(blankslate_state::diff::describe_etc_entry),
            })
        })
        .collect();
    let pairs = |list: &[(String, String)], key: &str| -> Vec<serde_json::Value> {
        list.iter().map(|(path, what)| json!({ "path": path, key: what })).collect()
    };
    let persisted = repaired.persisted.as_ref().map(|p| {
        json!({
            "unmounted": p.unmounted, "mounted": p.mounted, "linked": p.linked, "fixed": pairs(&p.fixed, "was"),
            "moved_aside": pairs(&p.backed_up, "moved_to"), "not_repaired": pairs(&p.conflicts, "reason"),
            "as_activated": p.unchanged.len(),
        })
    });
    let findings: Vec<_> = persist_findings
        .iter()
        .map(|(kind, path, reason)| json!({ "kind": kind, "path": path, "reason": reason }))
        .collect();
    json!({
        "generation": repaired.generation,
        "dry_run": dry_run,
        "etc": { "steps": steps, "static_fixed": plan.switch_static.is_some(), "as_activated": plan.unchanged },
        "persisted": persisted,
        "persisted_findings": findings,
    })
}
