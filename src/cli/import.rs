//! `blankslate import impermanence | preservation`: NixOS module JSON to a declaration.

use std::path::PathBuf;
use std::process::ExitCode;

use blankslate_core::{decl, import};
use clap::Subcommand;

use super::{Result, plural};
use crate::report::{self, EXIT_FINDINGS};

#[derive(Debug, Subcommand)]
pub(super) enum ImportCommand {
    /// From `config.environment.persistence` (the impermanence module).
    #[command(after_help = import_help(import::IMPERMANENCE_EVAL, ". On current impermanence a plain\n`nix eval --json` fails, because removed options throw when read; this command skips them"))]
    Impermanence(ImportArgs),
    /// From `config.preservation.preserveAt` (the preservation module).
    #[command(after_help = import_help(import::PRESERVATION_EVAL, ""))]
    Preservation(ImportArgs),
}

#[derive(Debug, clap::Args)]
pub(super) struct ImportArgs {
    /// The JSON file, or `-` for standard input.
    file: PathBuf,
    /// Write the declaration here instead of standard output.
    #[arg(short, long, value_name = "FILE")]
    output: Option<PathBuf>,
    /// Replace the output file if it exists.
    #[arg(long)]
    force: bool,
}

/// The help after `import impermanence|preservation`: how to get the JSON.
fn import_help(eval: &str, why: &str) -> String {
    format!(
        "Get the JSON on the NixOS machine's flake (replace HOST){why}:\n\n  {eval} > config.json\n\n\
         Every field blankslate cannot honour is reported as a note on standard error."
    )
}

pub(super) fn run(command: ImportCommand) -> Result<ExitCode> {
    let (args, convert, what): (_, fn(&str) -> _, _) = match command {
        ImportCommand::Impermanence(args) => (args, import::impermanence, "impermanence"),
        ImportCommand::Preservation(args) => (args, import::preservation, "preservation"),
    };
    let json = if args.file.as_os_str() == "-" {
        std::io::read_to_string(std::io::stdin())?
    } else {
        std::fs::read_to_string(&args.file).map_err(|e| format!("cannot read {}: {e}", args.file.display()))?
    };
    let imported = convert(&json).map_err(|e| format!("{}: not {what} JSON: {e}", args.file.display()))?;
    for note in &imported.notes {
        eprintln!("note: {note}");
    }
    let text = imported.to_toml();
    let shown = args.output.clone().unwrap_or_else(|| PathBuf::from("<standard output>"));
    let checked = decl::check(&shown, &text, None);
    match &args.output {
        None => print!("{text}"),
        Some(path) => {
            if path.exists() && !args.force {
                return Err(format!("{} exists; pass --force to replace it", path.display()).into());
            }
            std::fs::write(path, &text).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
            eprintln!("wrote {}", path.display());
        }
    }
    if checked.diagnostics.has_errors() {
        eprint!("{}", checked.diagnostics.render(report::color_for(&std::io::stderr())));
        return Ok(ExitCode::from(EXIT_FINDINGS));
    }
    eprintln!("{}", plural(imported.notes.len(), "note"));
    Ok(ExitCode::SUCCESS)
}
