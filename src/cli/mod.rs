//! The command line: the clap definition, and one module per command (its arguments
//! and the function that runs it). Helpers shared by several commands live here.

mod adopt;
mod audit;
mod boot;
mod build;
mod check;
mod confirm;
mod diff;
mod error;
mod etc;
mod generations;
mod import;
mod net;
mod persist;
mod repair;
mod sandbox;
mod switch;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use blankslate_activator::running::{Running, RunningError, root_users};
use blankslate_activator::switch::{Finished, Live, Recovered, SwitchError};
use blankslate_activator::trial::WatcherSetup;
use blankslate_decl as decl;
use blankslate_etc_builder as etc_builder;
use blankslate_state::generation::{DEFAULT_STATE_DIR, Generation, GenerationError, LockedState, State};
use blankslate_sys::fs::{Dir, LockWait};
use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};

use crate::report::{self, EXIT_FINDINGS, err, errln, outln};
pub use error::CliError;
use error::InputError;

const EXIT_CODES: &str = "\
Exit codes:
  0  success: done, or nothing wrong found
  1  findings: the declaration is invalid, the store is corrupt
  2  the command line is wrong
  3  failure: the work could not be done (I/O, permissions, lock, broken state)";

/// An impermanent Linux root: `/` starts empty at every boot; blankslate links /etc
/// from an immutable store, mounts what you declared persistent, and tells you what
/// a reboot will erase.
#[derive(Debug, Parser)]
#[command(name = "blankslate", version, after_help = EXIT_CODES, max_term_width = 100)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

// Where a command works: a root directory and its state directory.
#[derive(Debug, Clone, clap::Args)]
struct Target {
    /// The root directory of the system to work on (a scratch directory in tests).
    #[arg(long, value_name = "DIR", default_value = "/")]
    root: PathBuf,
    /// Where the store and profiles live, as seen from inside the root.
    #[arg(long, value_name = "DIR", default_value = DEFAULT_STATE_DIR)]
    state_dir: PathBuf,
    #[command(flatten)]
    wait: Waiting,
}

impl Target {
    /// `root` with the default state directory (a volume being adopted, a sandbox's).
    fn at(root: PathBuf) -> Target {
        Target { root, state_dir: PathBuf::from(DEFAULT_STATE_DIR), wait: Waiting::default() }
    }
}

// How a command that changes a root waits for the lock another blankslate command
// holds (one writer at a time): by default until it is free, saying which command
// holds it.
#[derive(Debug, Default, Clone, clap::Args)]
struct Waiting {
    /// If another blankslate command holds the lock, fail at once (exit 3) with its
    /// name and pid instead of waiting.
    #[arg(long, conflicts_with = "lock_timeout")]
    no_wait: bool,
    /// Wait at most SECONDS for the lock another blankslate command holds, then fail
    /// (exit 3) with its name and pid.
    #[arg(long, value_name = "SECONDS")]
    lock_timeout: Option<u64>,
}

/// Parses the command line, and makes every lock the command takes wait as its
/// `--no-wait` or `--lock-timeout` says ([`Waiting`], wherever the command has it).
pub fn parse() -> Cli {
    let matches = Cli::command().get_matches();
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|error| error.exit());
    let mut leaf = &matches;
    while let Some((_, sub)) = leaf.subcommand() {
        leaf = sub;
    }
    let flag = |id: &str| leaf.try_get_one::<bool>(id).ok().flatten().copied().unwrap_or(false);
    let timeout = leaf.try_get_one::<u64>("lock_timeout").ok().flatten().copied();
    let wait = match (flag("no_wait"), timeout) {
        (true, _) => LockWait::No,
        (false, Some(seconds)) => LockWait::AtMost(std::time::Duration::from_secs(seconds)),
        (false, None) => LockWait::Forever,
    };
    blankslate_sys::fs::set_lock_wait(wait);
    cli
}

// Each subcommand's arguments are made only when it is the one run (or for help,
// completions and manual pages): a command does not build the other twenty. Built
// last, an argument struct's doc comment would replace the command's help text, so
// the structs commands share (`Target`, `Waiting`, …) have plain comments.
#[derive(Debug, Subcommand)]
#[command(defer = true)]
enum Command {
    /// Put an installed system onto blankslate: fill an empty persistent volume with
    /// what it keeps (/usr, /var/lib, /home, host keys, accounts, …) and a starting
    /// declaration (/etc as an etc tree, each file and directory with its owner and
    /// mode, empty directories too), and build the first generation there. The
    /// installed root is only read.
    #[command(after_help = EXIT_CODES)]
    Adopt(adopt::Args),
    /// Validate declarations: each error names its file, line, column and the rule broken.
    #[command(after_help = EXIT_CODES)]
    Check(check::Args),
    /// Add a declaration to the store as a new generation and make it current (the
    /// one the next boot uses). An unchanged declaration adds nothing.
    #[command(after_help = EXIT_CODES)]
    Build(build::Args),
    /// Activate a generation on a root and make it the boot default (`--test`: only
    /// activate; `--boot`: only make it the boot default): a generation number, or a
    /// declaration (built first). /etc changes as a diff; a file a person put at a
    /// declared path is backed up and reported, never overwritten. `--confirm-within`
    /// and `--tries` put it on trial: without `blankslate confirm` it falls back by itself.
    #[command(after_help = EXIT_CODES)]
    Switch(switch::SwitchArgs),
    /// Switch to the generation before the active one (the same modes as switch).
    #[command(after_help = EXIT_CODES)]
    Rollback(switch::RollbackArgs),
    /// This system works: keep a switch on trial (`--confirm-within`), and mark the
    /// generation this boot runs good, which ends its boot trial (`--tries`) and makes
    /// it what later trials fall back to. Run it by hand, or from a unit ordered after
    /// what must work (packaging/systemd/blankslate-confirm.service).
    #[command(after_help = EXIT_CODES)]
    Confirm(confirm::ConfirmArgs),
    /// Reboot a boot on trial (`switch --tries`) that is not confirmed within DURATION
    /// of booting, so that a generation which comes up without what it must reach
    /// (the network, say) is tried again or falls back without anyone at the console.
    /// Run by packaging/systemd/blankslate-boot-deadline.service; exits at once when
    /// this boot is not on trial, and as soon as it is confirmed.
    #[command(after_help = EXIT_CODES)]
    BootDeadline(confirm::BootDeadlineArgs),
    /// The watcher of a switch on trial (started by `switch --confirm-within`).
    #[command(hide = true)]
    TrialExpire(confirm::ExpireArgs),
    /// Bring the live root back to the generation it was activated to: every managed
    /// /etc entry checked (a readlink per link) and fixed, every persisted path's
    /// owner, mode and mount re-applied. What stands in the way is moved aside to
    /// NAME.blankslate-backup and reported, never deleted.
    #[command(after_help = EXIT_CODES)]
    Repair(repair::RepairArgs),
    /// Try a declaration in private namespaces: a tmpfs root, /etc from the store, the
    /// host's /usr and /bin read-only. Nothing of the host changes. Without DECL, a
    /// built-in example. Needs root.
    Sandbox(sandbox::SandboxArgs),
    /// The sandbox's first process (started by `sandbox`, not by hand).
    #[command(hide = true)]
    SandboxInit(sandbox::InitArgs),
    /// List, compare, delete and garbage-collect generations.
    #[command(subcommand)]
    Generations(generations::GenerationsCommand),
    /// Inspect the store.
    #[command(subcommand)]
    Store(generations::StoreCommand),
    /// Convert a NixOS impermanence, preservation or Home Manager configuration (the
    /// JSON that `nix eval --json` prints) into a native declaration.
    #[command(subcommand)]
    Import(import::ImportCommand),
    /// Move live paths into a persistent volume and declare them, or back; list the
    /// declared ones with their live state.
    #[command(subcommand)]
    Persist(persist::PersistCommand),
    /// Keep what packages and tools changed in the live /etc: into the declaration's
    /// etc tree, then a switch to it.
    #[command(subcommand)]
    Etc(etc::EtcCommand),
    /// The net: what shutdowns kept of what the next boot erased (with [net] in the
    /// declaration): keep it, list it, bring a path back and declare it.
    #[command(subcommand)]
    Net(net::NetCommand),
    /// Compare the live root with a generation: what a reboot will erase (undeclared
    /// state, /etc strays), /etc drift, broken persistence, strays in the volumes.
    #[command(after_help = audit::AUDIT_HELP)]
    Audit(audit::AuditArgs),
    /// Build an initramfs (cpio newc, gzip-compressed unless --uncompressed): this binary
    /// (or --binary, which must be static) as /init, plus kernel modules boot loads with
    /// blankslate.modules=.
    Initrd(boot::InitrdArgs),
    /// In a systemd initrd (the unit is packaging/dracut/90blankslate/blankslate-initrd.service):
    /// activate the generation the kernel command line names (blankslate.persist=,
    /// blankslate.generation=) into ROOT, which systemd then switches into. Boot with
    /// root=tmpfs so that ROOT is one.
    Boot(boot::BootArgs),
    /// Print shell completions for SHELL to standard output.
    Completions {
        /// The shell to complete for.
        shell: clap_complete::Shell,
    },
    /// Print the manual page blankslate(1) (roff) to standard output, or write it and
    /// one page per subcommand (blankslate-check(1), …) into a directory.
    Man {
        /// Write every page into DIR (e.g. /usr/local/share/man/man1) instead.
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
    },
}

type Result<T> = std::result::Result<T, CliError>;

/// A switch's error: the person's request that cannot be (a generation that does not
/// exist, a trial with nothing to fall back to) is a usage error, not a failure.
fn switch_error(error: SwitchError) -> CliError {
    if !error.is_request() {
        return error.into();
    }
    match error {
        SwitchError::Generation(GenerationError::NoSuchGeneration(_)) => {
            InputError::argument(format!("{error} (`blankslate generations list` shows them)"))
        }
        other => InputError::argument(other.to_string()),
    }
}

/// Runs `work` on the root of `state` (locked) as a live root: what changes it goes
/// through there, starting with what a killed command left
/// ([`Live::finish_pending`]). A trial's watcher runs this program on this root.
fn live<'s, T>(
    state: &'s LockedState,
    target: &Target,
    work: impl FnOnce(&Live<'s>) -> std::result::Result<T, SwitchError>,
) -> Result<T> {
    let exe = std::env::current_exe()?;
    let root = std::path::absolute(&target.root)?;
    let setup = WatcherSetup { exe: &exe, root: &root, state_dir: &target.state_dir };
    work(&Live::new(state, &setup)).map_err(switch_error)
}

/// Says what a command finished (or undid) first that an earlier one left.
fn print_recovered(recovered: &Recovered) -> std::result::Result<(), report::WriteError> {
    report::print(&describe_recovered(recovered))
}

fn describe_recovered(recovered: &Recovered) -> String {
    let mut lines = Vec::new();
    match &recovered.switch {
        Some(Finished { generation, undone: None, .. }) => {
            lines.push(format!("finished the interrupted switch to generation {generation} first"));
        }
        Some(Finished { generation, undone: Some((reason, previous)), .. }) => lines.push(format!(
            "undid the interrupted switch to generation {generation} first ({reason}): generation {previous} is \
             active again"
        )),
        None => {}
    }
    if let Some(generation) = recovered.etc {
        lines.push(format!("finished the interrupted activation of generation {generation} first"));
    }
    if let Some(settled) = &recovered.confirmation {
        lines.push(format!("finished the confirmation of generation {} first", settled.trial.generation));
    }
    lines.iter().flat_map(|line| [line.as_str(), "\n"]).collect()
}

/// Finishes what a switch, an activation or a confirmation that was killed or failed
/// left on the root, for a command that changes the root by other means (`persist
/// add`, `persist remove`); says so on standard error.
fn finish_pending(state: &LockedState, target: &Target) -> Result<()> {
    let recovered = live(state, target, Live::finish_pending)?;
    for line in describe_recovered(&recovered).lines() {
        errln!("note: {line}")?;
    }
    Ok(())
}

/// Generation `number`, which the person named: one that does not exist is a usage
/// error, not a failure.
fn named_generation(state: &State, number: u32) -> Result<Generation> {
    state.generation(number).map_err(|error| match error {
        GenerationError::NoSuchGeneration(_) => {
            InputError::argument(format!("{error} (`blankslate generations list` shows them)"))
        }
        other => other.into(),
    })
}

pub fn run(cli: Cli) -> Result<ExitCode> {
    match cli.command {
        Command::Adopt(args) => adopt::run(&args),
        Command::Check(args) => Ok(check::run(&args)?),
        Command::Build(args) => build::run(&args),
        Command::Switch(args) => switch::switch(&args),
        Command::Rollback(args) => switch::rollback(&args),
        Command::Confirm(args) => confirm::confirm(&args),
        Command::BootDeadline(args) => confirm::boot_deadline(&args),
        Command::TrialExpire(args) => confirm::expire(&args),
        Command::Repair(args) => repair::run(&args),
        Command::Sandbox(args) => sandbox::run(args),
        Command::SandboxInit(args) => sandbox::init(args),
        Command::Generations(command) => generations::run(command),
        Command::Store(generations::StoreCommand::Verify { target, json }) => generations::verify(&target, json),
        Command::Import(command) => import::run(command),
        Command::Persist(command) => persist::run(command),
        Command::Etc(command) => etc::run(command),
        Command::Net(command) => net::run(command),
        Command::Audit(args) => audit::run(&args),
        Command::Initrd(args) => boot::initrd(&args),
        Command::Boot(args) => boot::boot(&args),
        Command::Completions { shell } => {
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut Cli::command(), "blankslate", &mut script);
            report::print(&String::from_utf8_lossy(&script))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Man { dir } => {
            // The pages list the subcommands' pages; there is no `help` page to list.
            let command = Cli::command().disable_help_subcommand(true);
            match dir {
                None => {
                    let mut page = Vec::new();
                    clap_mangen::Man::new(command).render(&mut page)?;
                    report::print(&String::from_utf8_lossy(&page))?;
                }
                Some(dir) => {
                    clap_mangen::generate_to(command, &dir)
                        .map_err(|e| format!("cannot write the pages into {}: {e}", dir.display()))?;
                    outln!("wrote the manual pages into {}", dir.display())?;
                }
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// The generation a live root runs ([`Running::read`]); `None` when the root has no
/// state at all. A generation asked for that does not exist is a usage error.
fn running(target: &Target, wanted: Option<u32>) -> Result<Option<Running>> {
    Running::read(&target.root, &target.state_dir, wanted).map_err(running_error)
}

/// [`running`], where a root without any state is an error: commands that read the
/// running generation have nothing to work on there.
fn built(target: &Target, wanted: Option<u32>) -> Result<Running> {
    Running::read_built(&target.root, &target.state_dir, wanted).map_err(running_error)
}

fn running_error(error: RunningError) -> CliError {
    if error.is_request() {
        InputError::argument(format!("{error} (`blankslate generations list` shows them)"))
    } else {
        error.into()
    }
}

/// Loads a declaration, printing its warnings; an invalid one is printed and ends the
/// command with the findings exit code.
fn load(file: &Path, root: &Path) -> Result<std::result::Result<decl::Declaration, ExitCode>> {
    let color = report::color_for(&std::io::stderr());
    match decl::load(file, root_users(root).as_ref()) {
        Ok((declaration, warnings)) => {
            err!("{}", warnings.render(color))?;
            Ok(Ok(declaration))
        }
        Err(decl::LoadError::Invalid(diagnostics)) => {
            err!("{}", diagnostics.render(color))?;
            errln!("{}: {}; nothing was built", file.display(), plural(diagnostics.error_count(), "error"))?;
            Ok(Err(ExitCode::from(EXIT_FINDINGS)))
        }
        Err(error) => Err(error.into()),
    }
}

/// The state, locked for writing (created if needed).
fn open_state(target: &Target) -> Result<LockedState> {
    let root = Dir::open_root(&target.root)?;
    Ok(State::open_locked(&root, &target.state_dir)?)
}

/// The state for reading, if there is any; creates nothing.
fn read_state(target: &Target) -> Result<Option<State>> {
    let root = Dir::open_root(&target.root)?;
    Ok(State::open_existing(&root, &target.state_dir)?)
}

/// Builds the declaration (its `/etc` into the store, then the generation) on
/// `target` and makes it current.
fn build_generation(
    declaration: &decl::Declaration,
    target: &Target,
    nixos_etc: Option<&Path>,
) -> Result<(LockedState, blankslate_state::generation::Built)> {
    let etc = etc_builder::build(declaration, nixos_etc)?;
    let state = open_state(target)?;
    let built = etc.build_generation(&state, declaration)?;
    Ok((state, built))
}

/// "1 file", "2 files".
fn plural<N: std::fmt::Display + PartialEq + From<u8> + Copy>(count: N, noun: &str) -> String {
    if count == N::from(1) { format!("1 {noun}") } else { format!("{count} {noun}s") }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The `--help` of every command a person can see (and so its manual page) has no
    /// empty entry: every subcommand, flag and argument says what it is.
    #[test]
    fn every_help_entry_says_something() {
        fn visit(command: &clap::Command, path: &str, missing: &mut Vec<String>) {
            for arg in command.get_arguments().filter(|a| !a.is_hide_set()) {
                let id = arg.get_id().as_str();
                let said = arg.get_help().or(arg.get_long_help()).is_some_and(|h| !h.to_string().trim().is_empty());
                if !said && !matches!(id, "help" | "version") {
                    missing.push(format!("{path}: {id}"));
                }
            }
            for sub in command.get_subcommands().filter(|s| !s.is_hide_set()) {
                let path = format!("{path} {}", sub.get_name());
                if sub.get_about().or(sub.get_long_about()).is_none_or(|h| h.to_string().trim().is_empty()) {
                    missing.push(path.clone());
                }
                visit(sub, &path, missing);
            }
        }
        let mut command = Cli::command();
        command.build();
        let mut missing = Vec::new();
        visit(&command, "blankslate", &mut missing);
        assert!(missing.is_empty(), "no help text for:\n{}", missing.join("\n"));
    }

    /// A command's help text is its own once its deferred arguments are built: a doc
    /// comment on an argument struct would replace it, and the commands sharing that
    /// struct would then share one text.
    #[test]
    fn every_command_keeps_its_own_help_text_once_built() {
        fn text(command: &clap::Command) -> String {
            format!("{:?} {:?}", command.get_about(), command.get_long_about())
        }
        fn visit(command: &clap::Command, path: &str, shared: &mut Vec<String>) {
            let mut seen = std::collections::HashSet::new();
            for sub in command.get_subcommands() {
                if !seen.insert(text(sub)) {
                    shared.push(format!("{path} {}", sub.get_name()));
                }
                visit(sub, &format!("{path} {}", sub.get_name()), shared);
            }
        }
        let mut command = Cli::command();
        let unbuilt: Vec<_> = command.get_subcommands().map(|s| (s.get_name().to_owned(), text(s))).collect();
        command.build();
        for (name, before) in unbuilt {
            assert_eq!(text(command.find_subcommand(&name).unwrap()), before, "{name}");
        }
        let mut shared = Vec::new();
        visit(&command, "blankslate", &mut shared);
        assert!(shared.is_empty(), "help text shared with a sibling:\n{}", shared.join("\n"));
    }
}
