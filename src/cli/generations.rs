//! `blankslate generations list | diff | delete | gc` and `blankslate store verify`.

use std::fmt::Write as _;
use std::process::ExitCode;

use blankslate_state::generation::{Generation, format_utc};
use blankslate_state::trial_record::{BootRecord, BootTrial, LiveOutcome, LiveTrial};
use clap::Subcommand;
use serde_json::json;

use super::{EXIT_CODES, InputError, Result, Target, diff, named_generation, open_state, plural, read_state};
use crate::report::{self, EXIT_FINDINGS, EXIT_OK, outln};

const LIST_HELP: &str = "\
Marks: A active (what /etc is activated to now), * the boot default, B booted (what this boot
started), G good (the last generation whose boot reached `blankslate confirm`: the fallback of
boot trials). A note follows a generation on trial, one that failed its trial, and one that was
activated again because a switch was not confirmed.";

#[derive(Debug, Subcommand)]
#[command(defer = true)]
pub(super) enum GenerationsCommand {
    /// Every generation with its date, which one is active, the boot default, booted
    /// and good, and how its trials went.
    #[command(after_help = LIST_HELP)]
    List {
        #[command(flatten)]
        target: Target,
        /// Print the list as JSON: number, creation date, the marks (active, boot default,
        /// booted, good), store path and notes.
        #[arg(long)]
        json: bool,
    },
    /// What changes from generation FROM to TO: /etc entries added, removed and
    /// changed (kind, contents, mode, owner), persisted paths added, removed and
    /// changed, the root's settings, the audit's ignore globs. Exits 1 when they
    /// differ, 0 when they do not.
    Diff(diff::DiffArgs),
    /// Remove generations' profile links (never the current or the booted one); their
    /// store objects go at the next `gc`.
    Delete {
        /// The generations to delete, by number (as `generations list` shows them).
        #[arg(required = true, value_name = "N")]
        numbers: Vec<u32>,
        #[command(flatten)]
        target: Target,
    },
    /// Remove store objects that no generation reaches, and debris: what is in the
    /// store but is not an object (temporaries of a writer that died, anything else).
    Gc {
        #[command(flatten)]
        target: Target,
        /// Say what would be removed, and remove nothing.
        #[arg(long)]
        dry_run: bool,
        /// Print the objects and the debris removed (or that would be) and the number
        /// kept as JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
#[command(defer = true)]
pub(super) enum StoreCommand {
    /// Re-hash every object and report any whose content no longer matches its name,
    /// or whose files' modes or owner are not the store's (read-only; root-only for
    /// secrets), and debris: names in the store that are not objects (`generations gc`
    /// removes them).
    #[command(after_help = EXIT_CODES)]
    Verify {
        #[command(flatten)]
        target: Target,
        /// Print the number of objects checked, the corrupt ones and the debris as JSON.
        #[arg(long)]
        json: bool,
    },
}

pub(super) fn run(command: GenerationsCommand) -> Result<ExitCode> {
    match command {
        GenerationsCommand::List { target, json: as_json } => list(&target, as_json)?,
        GenerationsCommand::Diff(args) => return diff::run(&args),
        GenerationsCommand::Delete { numbers, target } => {
            if read_state(&target)?.is_none() {
                return Err(InputError::argument(no_state(&target, "no generation to delete")));
            }
            let state = open_state(&target)?;
            for number in numbers {
                named_generation(&state, number)?;
                state.delete(number)?;
                outln!("deleted generation {number}")?;
            }
        }
        GenerationsCommand::Gc { target, dry_run, json: as_json } => {
            // A dry run only reads, and with no state there is nothing to collect: neither
            // creates the state.
            let Some(state) = read_state(&target)? else {
                if as_json {
                    report::json(
                        &json!({ "removed": [], "kept": 0, "debris": [], "dry_run": dry_run, "state": false }),
                    )?;
                } else {
                    outln!("{}", no_state(&target, "nothing to collect"))?;
                }
                return Ok(ExitCode::SUCCESS);
            };
            let collected = if dry_run {
                state.collect_garbage(true)?
            } else {
                drop(state);
                open_state(&target)?.collect_garbage(false)?
            };
            if as_json {
                report::json(&json!({
                    "removed": collected.removed, "kept": collected.kept, "debris": collected.debris,
                    "dry_run": dry_run, "state": true,
                }))?;
            } else {
                let verb = if dry_run { "would remove" } else { "removed" };
                for object in &collected.removed {
                    outln!("{verb} {object}")?;
                }
                for name in &collected.debris {
                    outln!("{verb} debris {name}")?;
                }
                let debris = if collected.debris.is_empty() {
                    String::new()
                } else {
                    format!(" and {} debris", collected.debris.len())
                };
                outln!("{verb} {}{debris}, kept {}", plural(collected.removed.len(), "object"), collected.kept)?;
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// What the trial records say about generation `g`, in a few words.
fn notes(
    g: &Generation,
    boot: Option<&BootTrial>,
    live: Option<&LiveTrial>,
    booted: Option<&BootRecord>,
) -> Vec<String> {
    let mut notes = Vec::new();
    // A trial that failed stays on record; one pending is only the boot default's.
    if let Some(t) = boot.filter(|t| t.generation == g.number && (t.failed || g.current)) {
        notes.push(if t.failed {
            format!(
                "failed its boot trial: {} boot(s) without `blankslate confirm`; fell back to generation {}",
                t.attempts, t.fallback
            )
        } else {
            format!(
                "on boot trial: {} of {} boot(s) used, then falls back to generation {}",
                t.attempts, t.tries, t.fallback
            )
        });
    }
    if let Some(t) = live.filter(|t| t.generation == g.number) {
        notes.push(match &t.outcome {
            LiveOutcome::Pending => format!(
                "on trial: `blankslate confirm` before {} UTC, else generation {} again",
                format_utc(t.deadline),
                t.previous
            ),
            LiveOutcome::Reverted { at, error: None } => {
                format!("not confirmed in time: generation {} activated again at {} UTC", t.previous, format_utc(*at))
            }
            LiveOutcome::Reverted { error: Some(error), .. } => {
                format!("not confirmed in time; activating generation {} again failed: {error}", t.previous)
            }
            LiveOutcome::Confirmed { at } => {
                format!("confirmed at {} UTC; the confirmation is being finished", format_utc(*at))
            }
        });
    }
    if let Some(record) = booted.filter(|r| r.generation == g.number) {
        if let Some(fallback) = &record.fallback {
            notes.push(format!(
                "booted as the fallback: generation {} failed its trial ({} boot(s) without `blankslate confirm`)",
                fallback.from, fallback.attempts
            ));
        }
        if let Some(trial) = &record.trial {
            notes.push(format!("booted as attempt {} of {} of its trial", trial.attempt, trial.tries));
        }
    }
    notes
}

fn list(target: &Target, as_json: bool) -> Result<()> {
    let state = read_state(target)?;
    let list = match &state {
        Some(state) => state.list()?,
        None => Vec::new(),
    };
    let (boot, live, booted) = match &state {
        Some(state) => (state.boot_trial()?, LiveTrial::read(state.root())?, BootRecord::read(state.root())),
        None => (None, None, None),
    };
    let notes_of = |g: &Generation| notes(g, boot.as_ref(), live.as_ref(), booted.as_ref());
    if as_json {
        let items: Vec<_> = list
            .iter()
            .map(|g| {
                json!({
                    "generation": g.number, "created": format_utc(g.created), "current": g.current,
                    "boot_default": g.current, "active": g.active, "booted": g.booted, "good": g.good,
                    "path": target.state_dir.join("store").join(&g.object), "notes": notes_of(g),
                })
            })
            .collect();
        report::json(&serde_json::Value::Array(items))?;
    } else if state.is_none() {
        outln!("{}", no_state(target, "no generations"))?;
    } else if list.is_empty() {
        outln!("no generations yet: `blankslate build DECL` makes the first")?;
    } else {
        let mut out = format!("{:4} {:>4}  {:<19}  object\n", "", "gen", "created (UTC)");
        for g in &list {
            let mark = |on: bool, c: char| if on { c } else { ' ' };
            let marks: String =
                [mark(g.active, 'A'), mark(g.current, '*'), mark(g.booted, 'B'), mark(g.good, 'G')].iter().collect();
            let _ = writeln!(out, "{marks} {:>4}  {}  {}", g.number, format_utc(g.created), g.object);
            for note in notes_of(g) {
                let _ = writeln!(out, "            {note}");
            }
        }
        report::print(&out)?;
    }
    Ok(())
}

/// What a read-only command says about a root where nothing was ever built.
fn no_state(target: &Target, so: &str) -> String {
    format!("no blankslate state in {} (nothing was ever built there): {so}", target.root.display())
}

pub(super) fn verify(target: &Target, as_json: bool) -> Result<ExitCode> {
    let Some(state) = read_state(target)? else {
        if as_json {
            report::json(&json!({ "checked": 0, "corrupt": [], "debris": [], "state": false }))?;
        } else {
            outln!("{}", no_state(target, "no store to verify"))?;
        }
        return Ok(ExitCode::from(EXIT_OK));
    };
    let (found, checked) = (state.store().verify()?, state.store().objects()?.len());
    let debris = state.store().debris()?;
    if as_json {
        let items: Vec<_> = found.iter().map(|c| json!({ "object": c.object, "problem": c.problem })).collect();
        let debris: Vec<_> =
            debris.iter().map(|d| json!({ "name": d.name.to_string_lossy(), "problem": d.why })).collect();
        report::json(&json!({ "checked": checked, "corrupt": items, "debris": debris, "state": true }))?;
    } else {
        for corruption in &found {
            outln!("corrupt: {}: {}", corruption.object, corruption.problem)?;
        }
        for name in &debris {
            outln!("debris: {}: {} (`blankslate generations gc` removes it)", name.name.to_string_lossy(), name.why)?;
        }
        outln!("{} checked, {} corrupt, {} debris", plural(checked, "object"), found.len(), debris.len())?;
    }
    Ok(ExitCode::from(if found.is_empty() && debris.is_empty() { EXIT_OK } else { EXIT_FINDINGS }))
}
