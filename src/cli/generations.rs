//! `blankslate generations list | delete | gc` and `blankslate store verify`.

use std::process::ExitCode;

use blankslate_core::generation::format_utc;
use clap::Subcommand;
use serde_json::json;

use super::{EXIT_CODES, Result, Target, open_state, read_state};
use crate::report::{self, EXIT_FINDINGS, EXIT_OK};

#[derive(Debug, Subcommand)]
pub(super) enum GenerationsCommand {
    /// Every generation with its date; `*` marks the current one, `B` the booted one.
    List {
        #[command(flatten)]
        target: Target,
        #[arg(long)]
        json: bool,
    },
    /// Remove generations' profile links (never the current or the booted one); their
    /// store objects go at the next `gc`.
    Delete {
        #[arg(required = true)]
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
            if as_json {
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
            let state = open_state(&target)?;
            for number in numbers {
                state.delete(number)?;
                println!("deleted generation {number}");
            }
        }
        GenerationsCommand::Gc { target, dry_run, json: as_json } => {
            let state = open_state(&target)?;
            let collected = state.collect_garbage(dry_run)?;
            if as_json {
                report::json(&json!({ "removed": collected.removed, "kept": collected.kept, "dry_run": dry_run }));
            } else {
                let verb = if dry_run { "would remove" } else { "removed" };
                for object in &collected.removed {
                    println!("{verb} {object}");
                }
                println!("{verb} {} objects, kept {}", collected.removed.len(), collected.kept);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub(super) fn verify(target: &Target, as_json: bool) -> Result<ExitCode> {
    let (found, checked) = match read_state(target)? {
        Some(state) => (state.store().verify()?, state.store().objects()?.len()),
        None => (Vec::new(), 0),
    };
    if as_json {
        let items: Vec<_> = found.iter().map(|c| json!({ "object": c.object, "problem": c.problem })).collect();
        report::json(&json!({ "checked": checked, "corrupt": items }));
    } else {
        for corruption in &found {
            println!("corrupt: {}: {}", corruption.object, corruption.problem);
        }
        println!("{checked} objects checked, {} corrupt", found.len());
    }
    Ok(ExitCode::from(if found.is_empty() { EXIT_OK } else { EXIT_FINDINGS }))
}
