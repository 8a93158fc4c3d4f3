//! `blankslate build`: a declaration into the store as a new generation.

use std::path::PathBuf;
use std::process::ExitCode;

use serde_json::json;

use super::{Result, Target, build_generation, load};
use crate::report::{self, outln};

#[derive(Debug, clap::Args)]
pub(super) struct Args {
    /// The declaration file (TOML).
    declaration: PathBuf,
    #[command(flatten)]
    target: Target,
    /// Also take /etc entries from a NixOS-built etc tree (its `etc/` directory).
    #[arg(long, value_name = "DIR")]
    nixos_etc: Option<PathBuf>,
    /// Print the generation's number and path as JSON.
    #[arg(long)]
    json: bool,
}

pub(super) fn run(args: &Args) -> Result<ExitCode> {
    let (file, target, nixos_etc, as_json) = (&args.declaration, &args.target, args.nixos_etc.as_deref(), args.json);
    let declaration = match load(file, &target.root)? {
        Ok(declaration) => declaration,
        Err(code) => return Ok(code),
    };
    let (state, built) = build_generation(&declaration, target, nixos_etc)?;
    let path = state.store().live_path(&built.object);
    if as_json {
        report::json(&json!({ "generation": built.generation, "new": built.new, "path": path }))?;
    } else if built.new {
        outln!("generation {} built: {}", built.generation, path.display())?;
    } else {
        outln!("unchanged: generation {} is current ({})", built.generation, path.display())?;
    }
    Ok(ExitCode::SUCCESS)
}
