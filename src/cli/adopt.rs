//! `blankslate adopt`: an installed system onto a new persistent volume.

use std::path::PathBuf;
use std::process::ExitCode;

use blankslate_adopt as adopt;
use serde_json::json;

use super::{Result, Target, Waiting, build_generation, load};
use crate::report::{self, outln};

#[derive(Debug, clap::Args)]
pub(super) struct Args {
    /// The installed system's root: a mounted disk, a chroot, or / for the running one.
    #[arg(long, value_name = "DIR")]
    from: PathBuf,
    /// The new persistent volume, mounted here; it must be empty (lost+found aside).
    #[arg(long, value_name = "DIR")]
    to: PathBuf,
    /// Where the volume will be mounted in the booted system.
    #[arg(long, value_name = "PATH", default_value = "/persist")]
    mount_point: String,
    /// Print what was kept and left out as JSON.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    wait: Waiting,
}

pub(super) fn run(args: &Args) -> Result<ExitCode> {
    let request = adopt::Request { from: &args.from, to: &args.to, mount_point: &args.mount_point };
    let adoption = adopt::adopt(&request)?;
    for note in &adoption.adopted.notes {
        eprintln!("note: {note}");
    }
    let built = if adoption.adopted.finished_before {
        None
    } else {
        let declaration = &adoption.adopted.declaration;
        let file = args.to.join(declaration.strip_prefix("/").unwrap_or(declaration));
        // Owner names are the adopted system's.
        let declaration = match load(&file, &args.from)? {
            Ok(declaration) => declaration,
            Err(code) => return Ok(code),
        };
        let (_, built) = build_generation(&declaration, &Target::at(args.to.clone()), None)?;
        Some(built.generation)
    };
    let adopted = adoption.finish()?;
    if args.json {
        let kept: Vec<_> = adopted
            .kept
            .iter()
            .map(
                |k| json!({ "path": k.path, "files": k.stats.files, "bytes": k.stats.bytes, "undecided": k.undecided }),
            )
            .collect();
        let left_out = |list: &[(String, String)]| -> Vec<_> {
            list.iter().map(|(path, why)| json!({ "path": path, "why": why })).collect()
        };
        report::json(&json!({
            "declaration": adopted.declaration, "generation": built, "kept": kept,
            "left_out": left_out(&adopted.left_out), "etc_entries": adopted.etc_entries,
            "etc_left_out": left_out(&adopted.etc_left_out),
        }))?;
        return Ok(ExitCode::SUCCESS);
    }
    outln!("kept in {} (mounted at {} once booted):", args.to.display(), args.mount_point)?;
    for kept in &adopted.kept {
        let undecided = kept.undecided.as_deref().map(|why| format!("  <- look at it: {why}")).unwrap_or_default();
        outln!("  {:<40} {:>8} files {:>12} bytes{undecided}", kept.path, kept.stats.files, kept.stats.bytes)?;
    }
    outln!("left out of the volume (each with why):")?;
    for (path, why) in adopted.left_out.iter().chain(&adopted.etc_left_out) {
        outln!("  {path:<40} {why}")?;
    }
    outln!("/etc: {} entries in the etc tree {}/{}", adopted.etc_entries, adopt::DECLARATION_DIR, adopt::TREE)?;
    match built {
        Some(generation) => {
            outln!("generation {generation} built; the declaration is {}", adopted.declaration.display())?;
        }
        None => outln!(
            "this volume holds this adoption, finished, already: nothing was done; the declaration is {}",
            adopted.declaration.display()
        )?,
    }
    outln!(
        "next: boot with blankslate (README: \"Adopting an installed system\"); nothing in {} was changed",
        args.from.display()
    )?;
    Ok(ExitCode::SUCCESS)
}
