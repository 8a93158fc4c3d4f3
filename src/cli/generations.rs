//! `blankslate generations list | delete | gc` and `blankslate store verify`.

use std::process::ExitCode;

use blankslate_core::generation::format_utc;
use clap::Subcommand;
use serde_json::json;

use super::{EXIT_CODES, InputError, Result, Target, named_generation, open_state, plural, read_state};
use crate::report::{self, EXIT_FINDINGS, EXIT_OK};

#[derive(Debug, Subcommand)]
pub(super) enum GenerationsCommand {
    /// Every generation with its date; `*` marks the current one, `B` the booted one.
    List {
        #[command(flatten)]
        target: Target,
        /// Print the list as JSON: number, creation date, current, booted, store path.
        #[arg(long)]
        json: bool,
    },
    /// Remove generations' profile links (never the current or the booted one); their
    /// store objects go at the next `gc`.
    Delete {
        /// The generations to delete, by number (as `generations list` shows them).
        #[arg(required = true, value_name = "N")]
        numbers: Vec<u32>,
        #[command(flatten)]
        target: Target,
    },
    /// Remove store objects that no generation reaches.
    Gc {
        #[command(flatten)]
        target: Target,
        /// Say what would be removed, and remove nothing.
        #[arg(long)]
        dry_run: bool,
        /// Print the objects removed (or that would be) and the number kept as JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub(super) enum StoreCommand {
    /// Re-hash every object and report any whose content no longer matches its name.
    #[command(after_help = EXIT_CODES)]
    Verify {
        #[command(flatten)]
        target: Target,
        /// Print the number of objects checked and the corrupt ones as JSON.
        #[arg(long)]
        json: bool,
    },
}

pub(super) fn run(command: GenerationsCommand) -> Result<ExitCode> {
    match command {
        GenerationsCommand::List { target, json: as_json } => {
            let state = read_state(&target)?;
            let list = match &state {
                Some(state) => state.list()?,
                None => Vec::new(),
            };
            if state.is_none() && !as_json {
                println!("{}", no_state(&target, "no generations"));
            } else if as_json {
                let items: Vec<_> = list
                    .iter()
                    .map(|g| {
                        json!({
                            "generation": g.number, "created": format_utc(g.created), "current": g.current,
                            "booted": g.booted, "path": target.state_dir.join("store").join(&g.object),
                        })
                    })
                    .collect();
                report::json(&serde_json::Value::Array(items));
            } else if list.is_empty() {
                println!("no generations yet: `blankslate build DECL` makes the first");
            } else {
                for g in &list {
                    let marks = format!("{}{}", if g.current { "*" } else { " " }, if g.booted { "B" } else { " " });
                    println!("{marks} {:>4}  {} UTC  {}", g.number, format_utc(g.created), g.object);
                }
            }
        }
        GenerationsCommand::Delete { numbers, target } => {
            if read_state(&target)?.is_none() {
                return Err(InputError::argument(no_state(&target, "no generation to delete")));
            }
            let state = open_state(&target)?;
            for number in numbers {
                named_generation(&state, number)?;
                state.delete(number)?;
                println!("deleted generation {number}");
            }
        }
        GenerationsCommand::Gc { target, dry_run, json: as_json } => {
            // A dry run only reads, and with no state there is nothing to collect: neither
            // creates the state.
            let Some(state) = read_state(&target)? else {
                if as_json {
                    report::json(&json!({ "removed": [], "kept": 0, "dry_run": dry_run, "state": false }));
                } else {
                    println!("{}", no_state(&target, "nothing to collect"));
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
                    "removed": collected.removed, "kept": collected.kept, "dry_run": dry_run, "state": true,
                }));
            } else {
                let verb = if dry_run { "would remove" } else { "removed" };
                for object in &collected.removed {
                    println!("{verb} {object}");
                }
                println!("{verb} {}, kept {}", plural(collected.removed.len(), "object"), collected.kept);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// What a read-only command says about a root where nothing was ever built.
fn no_state(target: &Target, so: &str) -> String {
    format!("no blankslate state in {} (nothing was ever built there): {so}", target.root.display())
}

pub(super) fn verify(target: &Target, as_json: bool) -> Result<ExitCode> {
    let Some(state) = read_state(target)? else {
        if as_json {
            report::json(&json!({ "checked": 0, "corrupt": [], "state": false }));
        } else {
            println!("{}", no_state(target, "no store to verify"));
        }
        return Ok(ExitCode::from(EXIT_OK));
    };
    let (found, checked) = (state.store().verify()?, state.store().objects()?.len());
    if as_json {
        let items: Vec<_> = found.iter().map(|c| json!({ "object": c.object, "problem": c.problem })).collect();
        report::json(&json!({ "checked": checked, "corrupt": items, "state": true }));
    } else {
        for corruption in &found {
            println!("corrupt: {}: {}", corruption.object, corruption.problem);
        }
        println!("{} checked, {} corrupt", plural(checked, "object"), found.len());
    }
    Ok(ExitCode::from(if found.is_empty() { EXIT_OK } else { EXIT_FINDINGS }))
}
