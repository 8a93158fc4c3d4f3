//! `blankslate import impermanence | preservation | home-manager`: NixOS module JSON to
//! a declaration.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use blankslate_decl::{self as decl, import};
use blankslate_sys::fs;
use clap::Subcommand;

use super::{InputError, Result, plural};
use crate::report::{self, EXIT_FINDINGS, err, errln};

#[derive(Debug, Subcommand)]
#[command(defer = true)]
pub(super) enum ImportCommand {
    /// From `config.environment.persistence` (the impermanence module), with the
    /// users' Home Manager `home.persistence` if given.
    #[command(after_help = import_help(
        &[(import::IMPERMANENCE_EVAL, "config.json"), (import::HOME_MANAGER_EVAL, "home.json")],
        IMPERMANENCE_WHY,
        "\nWith Home Manager, pass the second with --home-manager home.json.\n",
    ))]
    Impermanence(SystemArgs),
    /// From `config.preservation.preserveAt` (the preservation module).
    #[command(after_help = import_help(&[(import::PRESERVATION_EVAL, "config.json")], "", ""))]
    Preservation(SystemArgs),
    /// From impermanence's Home Manager module (`home.persistence`): every user's of a
    /// NixOS configuration, or one user's standalone configuration (with --user).
    #[command(after_help = import_help(
        &[(import::HOME_MANAGER_EVAL, "home.json"), (import::HOME_MANAGER_STANDALONE_EVAL, "home.json")],
        IMPERMANENCE_WHY,
        "\nThe first prints every user's of a NixOS configuration; the second one user's\n\
         standalone configuration (say whose with --user).\n",
    ))]
    HomeManager(HomeManagerArgs),
}

const IMPERMANENCE_WHY: &str = ". A plain `nix eval --json` fails on current impermanence, whose removed options throw when read: the --apply function prints them as null";

#[derive(Debug, clap::Args)]
pub(super) struct SystemArgs {
    /// The JSON file, or `-` for standard input.
    file: PathBuf,
    /// The users' `home.persistence` (the JSON `import home-manager` reads), declared
    /// with the rest in one declaration.
    #[arg(long, value_name = "FILE")]
    home_manager: Option<PathBuf>,
    #[command(flatten)]
    home: HomeArgs,
    #[command(flatten)]
    output: OutputArgs,
}

#[derive(Debug, clap::Args)]
pub(super) struct HomeManagerArgs {
    /// The JSON file, or `-` for standard input.
    file: PathBuf,
    #[command(flatten)]
    home: HomeArgs,
    #[command(flatten)]
    output: OutputArgs,
}

#[derive(Debug, clap::Args)]
struct HomeArgs {
    /// Whose `home.persistence` it is, when the JSON is one user's (impermanence's
    /// current module names the user in every entry).
    #[arg(long, value_name = "NAME")]
    user: Option<String>,
    /// The home directory, where the JSON does not carry it (Home Manager's first
    /// module). Default: /home/NAME (/root for root).
    #[arg(long, value_name = "DIR")]
    home: Option<String>,
    /// The users' primary group, which Home Manager does not know (`id -gn NAME`;
    /// NixOS's normal users: `users`). Default: a group named like the user.
    #[arg(long, value_name = "GROUP")]
    group: Option<String>,
}

#[derive(Debug, clap::Args)]
struct OutputArgs {
    /// Write the declaration here instead of standard output.
    #[arg(short, long, value_name = "FILE")]
    output: Option<PathBuf>,
    /// Replace the output file if it exists.
    #[arg(long)]
    force: bool,
}

/// The help after an import command: how to get the JSON.
fn import_help(commands: &[(&str, &str)], why: &str, after: &str) -> String {
    let lines: Vec<String> = commands.iter().map(|(command, file)| format!("  {command} > {file}")).collect();
    format!(
        "Get the JSON from the NixOS configuration's flake (replace HOST, USER){why}:\n\n{}\n{after}\n\
         Every field blankslate cannot honour is reported as a note on standard error.",
        lines.join("\n")
    )
}

/// The text of `file` (`-`: standard input). Text that is not UTF-8 is the person's
/// input error, not a failure.
fn read_json(file: &Path, what: &str) -> Result<String> {
    let bytes = if file.as_os_str() == "-" {
        fs::read_at_most(&mut std::io::stdin(), decl::MAX_FILE_BYTES, Path::new("<standard input>"))?
    } else {
        decl::read_file(file)?
    };
    String::from_utf8(bytes)
        .map_err(|e| InputError::contents(format!("{}: not {what} JSON: not UTF-8 text ({e})", file.display())))
}

pub(super) fn run(command: ImportCommand) -> Result<ExitCode> {
    let mut importer = import::Importer::new();
    let (home, output) = match command {
        ImportCommand::Impermanence(args) | ImportCommand::Preservation(args)
            if args.home_manager.is_none()
                && (args.home.user.is_some() || args.home.home.is_some() || args.home.group.is_some()) =>
        {
            return Err(InputError::argument("--user, --home and --group describe the users of --home-manager"));
        }
        ImportCommand::Impermanence(args) => {
            add(&mut importer, &args.file, "impermanence", import::Importer::impermanence)?;
            (Some((args.home_manager, args.home)), args.output)
        }
        ImportCommand::Preservation(args) => {
            add(&mut importer, &args.file, "preservation", import::Importer::preservation)?;
            (Some((args.home_manager, args.home)), args.output)
        }
        ImportCommand::HomeManager(args) => (Some((Some(args.file), args.home)), args.output),
    };
    if let Some((Some(file), home)) = home {
        let user = import::HomeUser { name: home.user, home: home.home, group: home.group };
        add(&mut importer, &file, "Home Manager home.persistence", |i, json| i.home_manager(json, &user))?;
    }
    write(&importer.finish(), &output)
}

/// Reads `file` and adds it to the import; an error names the file and the place in it.
/// What the file holds is the person's input: a bad one is a finding (a missing
/// `--user`, a usage error), not a failure.
fn add(
    importer: &mut import::Importer,
    file: &Path,
    what: &str,
    add: impl FnOnce(&mut import::Importer, &str) -> std::result::Result<(), import::ImportError>,
) -> Result<()> {
    let json = read_json(file, what)?;
    add(importer, &json).map_err(|e| {
        let message = format!("{}: not {what} JSON: {e}", file.display());
        if matches!(e, import::ImportError::NoUser { .. }) {
            InputError::argument(format!("{message}; pass --user NAME"))
        } else {
            InputError::contents(message)
        }
    })
}

fn write(imported: &import::Imported, args: &OutputArgs) -> Result<ExitCode> {
    for note in &imported.notes {
        errln!("note: {note}")?;
    }
    let text = imported.to_toml();
    let shown = args.output.clone().unwrap_or_else(|| PathBuf::from("<standard output>"));
    let checked = decl::check(&shown, &text, None);
    match &args.output {
        None => report::print(&text)?,
        Some(path) => {
            if path.exists() && !args.force {
                return Err(format!("{} exists; pass --force to replace it", path.display()).into());
            }
            std::fs::write(path, &text).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
            errln!("wrote {}", path.display())?;
        }
    }
    if checked.diagnostics.has_errors() {
        err!("{}", checked.diagnostics.render(report::color_for(&std::io::stderr())))?;
        return Ok(ExitCode::from(EXIT_FINDINGS));
    }
    errln!("{}", plural(imported.notes.len(), "note"))?;
    Ok(ExitCode::SUCCESS)
}
