//! The command line: the clap definition and one function per command.

use std::error::Error;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use blankslate_activator::initrd::Compression;
use blankslate_activator::{etc, sandbox};
use blankslate_core::decl::{self, UserDb};
use blankslate_core::fs::Dir;
use blankslate_core::generation::{DEFAULT_STATE_DIR, State, format_utc};
use blankslate_core::import;
use blankslate_etc_builder as etc_builder;
use clap::{CommandFactory, Parser, Subcommand};
use serde_json::json;

use crate::report::{self, EXIT_FINDINGS, EXIT_OK};

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

/// Where a command works: a root directory and its state directory.
#[derive(Debug, clap::Args)]
struct Target {
    /// The root directory of the system to work on (a scratch directory in tests).
    #[arg(long, value_name = "DIR", default_value = "/")]
    root: PathBuf,
    /// Where the store and profiles live, as seen from inside the root.
    #[arg(long, value_name = "DIR", default_value = DEFAULT_STATE_DIR)]
    state_dir: PathBuf,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Validate declarations: each error names its file, line, column and the rule broken.
    #[command(after_help = EXIT_CODES)]
    Check {
        /// Declaration files (TOML).
        #[arg(required = true)]
        declarations: Vec<PathBuf>,
        /// Print diagnostics and the canonical declaration as JSON.
        #[arg(long)]
        json: bool,
        /// Check owner names against this root's /etc/passwd and /etc/group.
        #[arg(long, value_name = "DIR", default_value = "/")]
        root: PathBuf,
    },
    /// Add a declaration to the store as a new generation and make it current (the
    /// one the next boot uses). An unchanged declaration adds nothing.
    #[command(after_help = EXIT_CODES)]
    Build {
        declaration: PathBuf,
        #[command(flatten)]
        target: Target,
        /// Also take /etc entries from a NixOS-built etc tree (its `etc/` directory).
        #[arg(long, value_name = "DIR")]
        nixos_etc: Option<PathBuf>,
        #[arg(long)]
        json: bool,
    },
    /// Activate a generation on a root: a generation number, or a declaration (built
    /// first). /etc changes as a diff; a file a person put at a declared path is
    /// backed up and reported, never overwritten.
    #[command(after_help = EXIT_CODES)]
    Switch {
        /// A generation number, or a declaration file to build and activate.
        generation: String,
        #[command(flatten)]
        target: Target,
        #[command(flatten)]
        activation: Activation,
        /// Also take /etc entries from a NixOS-built etc tree (its `etc/` directory).
        #[arg(long, value_name = "DIR")]
        nixos_etc: Option<PathBuf>,
    },
    /// Activate the generation before the active one.
    #[command(after_help = EXIT_CODES)]
    Rollback {
        #[command(flatten)]
        target: Target,
        #[command(flatten)]
        activation: Activation,
    },
    /// Try a declaration in private namespaces: a tmpfs root, /etc from the store, the
    /// host's /usr and /bin read-only. Nothing of the host changes. Without DECL, a
    /// built-in example. Needs root.
    Sandbox {
        /// The declaration to try (default: the built-in example).
        declaration: Option<PathBuf>,
        /// The sandbox's own directory: its store and its stand-in persistent volume.
        #[arg(long, value_name = "DIR", default_value_os_t = default_sandbox_dir())]
        dir: PathBuf,
        /// The command to run inside (default: a shell).
        #[arg(last = true)]
        command: Vec<std::ffi::OsString>,
    },
    /// The sandbox's first process (started by `sandbox`, not by hand).
    #[command(hide = true)]
    SandboxInit {
        dir: PathBuf,
        state_dir: PathBuf,
        generation: u32,
        object: String,
        #[arg(last = true)]
        command: Vec<std::ffi::OsString>,
    },
    /// List, delete and garbage-collect generations.
    #[command(subcommand)]
    Generations(GenerationsCommand),
    /// Inspect the store.
    #[command(subcommand)]
    Store(StoreCommand),
    /// Convert a NixOS impermanence or preservation configuration (the JSON that
    /// `nix eval --json` prints) into a native declaration.
    #[command(subcommand)]
    Import(ImportCommand),
    // --- persist (persist add / remove / list / recover) ---
    /// Move live paths into a persistent volume and declare them, or back; list the
    /// declared ones with their live state.
    #[command(subcommand)]
    Persist(PersistCommand),
    // --- end persist ---
    // --- audit ---
    /// Compare the live root with a generation: what a reboot will erase (undeclared
    /// state, /etc strays), /etc drift, broken persistence, strays in the volumes.
    #[command(after_help = AUDIT_HELP)]
    Audit(AuditArgs),
    // --- end audit ---
    // --- boot ---
    /// Build an initramfs (cpio, uncompressed): this binary (or --binary, which must be
    /// static) as /init, plus kernel modules boot loads with blankslate.modules=.
    Initrd {
        /// Where to write the archive.
        #[arg(short, long, value_name = "FILE")]
        output: PathBuf,
        /// The blankslate binary to put in as /init (default: this one). Build it static:
        /// RUSTFLAGS="-C target-feature=+crt-static" cargo build --release --target x86_64-unknown-linux-gnu
        #[arg(long, value_name = "FILE")]
        binary: Option<PathBuf>,
        /// Where to find the modules (searched recursively for NAME.ko), e.g.
        /// /lib/modules/$(uname -r).
        #[arg(long, value_name = "DIR")]
        modules: Option<PathBuf>,
        /// A module to include (repeat, in load order); it must be an uncompressed .ko.
        #[arg(long = "module", value_name = "NAME")]
        module: Vec<String>,
        /// Write a plain cpio archive instead of a gzip-compressed one.
        #[arg(long)]
        uncompressed: bool,
    },
    /// In a systemd initrd (packaging/blankslate-initrd.service): activate the generation
    /// the kernel command line names (blankslate.persist=, blankslate.generation=) into
    /// ROOT, which systemd then switches into. Boot with root=tmpfs so that ROOT is one.
    Boot {
        /// The root-to-be: systemd's /sysroot.
        #[arg(long, value_name = "DIR", default_value = "/sysroot")]
        root: PathBuf,
    },
    // --- end boot ---
    /// Print shell completions for SHELL to standard output.
    Completions { shell: clap_complete::Shell },
    /// Print the manual page (roff) to standard output.
    Man,
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

#[derive(Debug, Subcommand)]
enum GenerationsCommand {
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
enum ImportCommand {
    /// From `config.environment.persistence` (the impermanence module).
    #[command(after_help = import_help(import::IMPERMANENCE_EVAL, ". On current impermanence a plain\n`nix eval --json` fails, because removed options throw when read; this command skips them"))]
    Impermanence(ImportArgs),
    /// From `config.preservation.preserveAt` (the preservation module).
    #[command(after_help = import_help(import::PRESERVATION_EVAL, ""))]
    Preservation(ImportArgs),
}

#[derive(Debug, clap::Args)]
struct ImportArgs {
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

#[derive(Debug, Subcommand)]
enum StoreCommand {
    /// Re-hash every object and report any whose content no longer matches its name.
    #[command(after_help = EXIT_CODES)]
    Verify {
        #[command(flatten)]
        target: Target,
        #[arg(long)]
        json: bool,
    },
}

type Result<T> = std::result::Result<T, Box<dyn Error>>;

pub fn run(cli: Cli) -> Result<ExitCode> {
    match cli.command {
        Command::Check { declarations, json, root } => check(&declarations, json, &root),
        Command::Build { declaration, target, nixos_etc, json } => {
            build(&declaration, &target, nixos_etc.as_deref(), json)
        }
        Command::Switch { generation, target, activation, nixos_etc } => {
            switch(&generation, &target, &activation, nixos_etc.as_deref())
        }
        Command::Rollback { target, activation } => rollback(&target, &activation),
        Command::Sandbox { declaration, dir, command } => sandbox(declaration.as_deref(), &dir, command),
        Command::SandboxInit { dir, state_dir, generation, object, command } => {
            let request = sandbox::Request { dir, state_dir, generation, object, command };
            let code = sandbox::init(&request)?;
            Ok(ExitCode::from(u8::try_from(code).unwrap_or(1)))
        }
        Command::Generations(command) => generations(command),
        Command::Store(StoreCommand::Verify { target, json }) => verify(&target, json),
        Command::Import(command) => import(command),
        Command::Persist(command) => persist(command),
        // --- audit ---
        Command::Audit(args) => audit(&args),
        // --- end audit ---
        // --- boot ---
        Command::Initrd { output, binary, modules, module, uncompressed } => {
            let compression = if uncompressed { Compression::None } else { Compression::Gzip };
            initrd(&output, binary.as_deref(), modules.as_deref(), &module, compression)
        }
        Command::Boot { root } => match blankslate_activator::boot::service(&root) {
            Ok(line) => {
                println!("{line}");
                Ok(ExitCode::SUCCESS)
            }
            Err(failure) => {
                eprintln!("{failure}");
                Ok(ExitCode::from(report::EXIT_FAILURE))
            }
        },
        // --- end boot ---
        Command::Completions { shell } => {
            clap_complete::generate(shell, &mut Cli::command(), "blankslate", &mut std::io::stdout());
            Ok(ExitCode::SUCCESS)
        }
        Command::Man => {
            clap_mangen::Man::new(Cli::command()).render(&mut std::io::stdout())?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// The owner names a root knows, if its /etc/passwd can be read.
fn user_db(root: &Path) -> Option<UserDb> {
    let users = UserDb::from_root(&Dir::open_root(root).ok()?);
    (!users.is_empty()).then_some(users)
}

fn check(files: &[PathBuf], as_json: bool, root: &Path) -> Result<ExitCode> {
    let users = user_db(root);
    let color = report::color_for(&std::io::stderr());
    let mut results = Vec::new();
    let mut invalid = false;
    for file in files {
        let source = std::fs::read_to_string(file).map_err(|e| format!("cannot read {}: {e}", file.display()))?;
        let checked = decl::check(file, &source, users.as_ref());
        invalid |= checked.declaration.is_none();
        if as_json {
            results.push(json!({
                "file": file,
                "valid": checked.declaration.is_some(),
                "diagnostics": checked.diagnostics.to_json(),
                "declaration": checked.declaration.map(|d| d.normalized()),
            }));
            continue;
        }
        eprint!("{}", checked.diagnostics.render(color));
        match checked.declaration {
            Some(_) => println!("{}: ok", file.display()),
            None => println!("{}: {}", file.display(), plural(checked.diagnostics.error_count(), "error")),
        }
    }
    if as_json {
        report::json(&serde_json::Value::Array(results));
    }
    Ok(ExitCode::from(if invalid { EXIT_FINDINGS } else { EXIT_OK }))
}

/// Loads a declaration, printing its warnings; an invalid one is printed and ends the
/// command with the findings exit code.
fn load(file: &Path, root: &Path) -> Result<std::result::Result<decl::Declaration, ExitCode>> {
    let color = report::color_for(&std::io::stderr());
    match decl::load(file, user_db(root).as_ref()) {
        Ok((declaration, warnings)) => {
            eprint!("{}", warnings.render(color));
            Ok(Ok(declaration))
        }
        Err(decl::LoadError::Invalid(diagnostics)) => {
            eprint!("{}", diagnostics.render(color));
            eprintln!("{}: {}; nothing was built", file.display(), plural(diagnostics.error_count(), "error"));
            Ok(Err(ExitCode::from(EXIT_FINDINGS)))
        }
        Err(error) => Err(error.into()),
    }
}

/// The state, locked for writing (created if needed).
fn open_state(target: &Target) -> Result<State> {
    let root = Dir::open_root(&target.root)?;
    Ok(State::open_locked(&root, &target.state_dir)?)
}

/// The state for reading, if there is any; creates nothing.
fn read_state(target: &Target) -> Result<Option<State>> {
    let root = Dir::open_root(&target.root)?;
    Ok(State::open_existing(&root, &target.state_dir)?)
}

/// Builds the declaration's `/etc` (plus a NixOS tree's) in memory.
fn build_etc(declaration: &decl::Declaration, nixos_etc: Option<&Path>) -> Result<etc_builder::EtcBuild> {
    let mut etc = etc_builder::from_declaration(declaration)?;
    if let Some(tree) = nixos_etc {
        etc.merge(etc_builder::from_nixos_tree(tree)?, &format!("in the NixOS tree {}", tree.display()))?;
    }
    Ok(etc)
}

fn build(file: &Path, target: &Target, nixos_etc: Option<&Path>, as_json: bool) -> Result<ExitCode> {
    let declaration = match load(file, &target.root)? {
        Ok(declaration) => declaration,
        Err(code) => return Ok(code),
    };
    let etc = build_etc(&declaration, nixos_etc)?;
    let state = open_state(target)?;
    let etc_object = etc.add_to_store(state.store())?;
    let built = state.build(&declaration, &[("etc", &etc_object)])?;
    let path = state.store().live_path(&built.object);
    if as_json {
        report::json(&json!({ "generation": built.generation, "new": built.new, "path": path }));
    } else if built.new {
        println!("generation {} built: {}", built.generation, path.display());
    } else {
        println!("unchanged: generation {} is current ({})", built.generation, path.display());
    }
    Ok(ExitCode::SUCCESS)
}

fn generations(command: GenerationsCommand) -> Result<ExitCode> {
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

fn verify(target: &Target, as_json: bool) -> Result<ExitCode> {
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

fn plural(count: usize, noun: &str) -> String {
    if count == 1 { format!("1 {noun}") } else { format!("{count} {noun}s") }
}

fn import(command: ImportCommand) -> Result<ExitCode> {
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

fn switch(what: &str, target: &Target, activation: &Activation, nixos_etc: Option<&Path>) -> Result<ExitCode> {
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
    let state = if activation.dry_run {
        read_state(target)?.ok_or_else(|| format!("there is no generation {number}"))?
    } else {
        open_state(target)?
    };
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

fn rollback(target: &Target, activation: &Activation) -> Result<ExitCode> {
    let root = Dir::open_root(&target.root)?;
    let nothing = || "nothing is active yet; nothing to roll back from".to_owned();
    let state = if activation.dry_run { read_state(target)?.ok_or_else(nothing)? } else { open_state(target)? };
    let active = etc::active(&root)?.map(|a| a.generation).or(state.current_number()?);
    let Some(active) = active else { return Err(nothing().into()) };
    let previous = state.list()?.into_iter().rev().find(|g| g.number < active);
    let Some(previous) = previous else { return Err(format!("there is no generation before {active}").into()) };
    activate(&state, target, previous.number, activation)
}

/// The built-in example declaration (`examples/sandbox.toml`).
const BUILTIN_EXAMPLE: &str = include_str!("../examples/sandbox.toml");

fn default_sandbox_dir() -> PathBuf {
    std::env::temp_dir().join("blankslate-sandbox")
}

fn sandbox(file: Option<&Path>, dir: &Path, command: Vec<std::ffi::OsString>) -> Result<ExitCode> {
    let declaration = if let Some(file) = file {
        match load(file, Path::new("/"))? {
            Ok(declaration) => declaration,
            Err(code) => return Ok(code),
        }
    } else {
        let checked = decl::check(Path::new("<built-in example>"), BUILTIN_EXAMPLE, None);
        checked.declaration.ok_or_else(|| format!("the built-in example is invalid:\n{}", checked.diagnostics))?
    };
    std::fs::create_dir_all(dir.join(sandbox::STATE)).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let dir = std::fs::canonicalize(dir)?;
    let target = Target { root: dir.join(sandbox::STATE), state_dir: PathBuf::from(DEFAULT_STATE_DIR) };
    let etc = build_etc(&declaration, None)?;
    let state = open_state(&target)?;
    let etc_object = etc.add_to_store(state.store())?;
    let built = state.build(&declaration, &[("etc", &etc_object)])?;
    drop(state);
    let request = sandbox::Request {
        dir,
        state_dir: target.state_dir,
        generation: built.generation,
        object: built.object,
        command,
    };
    let exe = std::env::current_exe()?;
    let code = sandbox::spawn(&exe, &request)?;
    Ok(ExitCode::from(u8::try_from(code).unwrap_or(1)))
}

// --- persist: `blankslate persist add | remove | list | recover` ---

#[derive(Debug, Subcommand)]
enum PersistCommand {
    /// Move a live path into the persistent volume: copy it (owners, modes, times,
    /// xattrs, hard links, holes), verify the copy (blake3), bind-mount it over the
    /// original, remove the tmpfs copy, and add the entry to the declaration (its
    /// comments and layout kept). A crash at any point loses nothing: the next persist
    /// command finishes or undoes it.
    #[command(after_help = EXIT_CODES)]
    Add {
        /// The live path (absolute), a directory or a regular file.
        path: PathBuf,
        #[command(flatten)]
        common: PersistArgs,
        /// The persistent root to move it to (default: the only one declared).
        #[arg(long, value_name = "MOUNT")]
        volume: Option<String>,
        /// Owner to declare (default: the live path's).
        #[arg(long)]
        user: Option<String>,
        /// Group to declare (default: the live path's).
        #[arg(long)]
        group: Option<String>,
        /// Mode to declare, octal (default: the live path's).
        #[arg(long)]
        mode: Option<String>,
        /// For files: a bind mount (default) or a symlink into the volume.
        #[arg(long, value_parser = ["bind", "symlink"])]
        how: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Stop persisting a path: unmount it and remove it from the declaration. The
    /// volume keeps the data unless --purge.
    #[command(after_help = EXIT_CODES)]
    Remove {
        path: PathBuf,
        #[command(flatten)]
        common: PersistArgs,
        /// Copy the data back into the root (verified) after unmounting.
        #[arg(long)]
        copy_back: bool,
        /// Delete the data from the volume at the end.
        #[arg(long)]
        purge: bool,
        #[arg(long)]
        json: bool,
    },
    /// Every declared path with its live state: mounted from its volume path, not
    /// mounted, mounted from elsewhere, missing; and owner or mode differing from the
    /// declaration. Exit code 1 if any is not as declared.
    #[command(after_help = EXIT_CODES)]
    List {
        #[command(flatten)]
        common: PersistArgs,
        #[arg(long)]
        json: bool,
    },
    /// Finish or undo an interrupted `persist add` or `persist remove`.
    #[command(after_help = EXIT_CODES)]
    Recover {
        #[command(flatten)]
        common: PersistArgs,
        /// Only this persistent root (default: every declared one).
        #[arg(long, value_name = "MOUNT")]
        volume: Option<String>,
    },
}

#[derive(Debug, clap::Args)]
struct PersistArgs {
    /// The declaration file to read and edit.
    #[arg(long, value_name = "FILE")]
    declaration: PathBuf,
    /// The root directory of the live system (a scratch directory in tests).
    #[arg(long, value_name = "DIR", default_value = "/")]
    root: PathBuf,
}

fn persist(command: PersistCommand) -> Result<ExitCode> {
    use blankslate_persist::add as manage;
    let path_arg = |path: &Path| manage::normalize_argument(path);
    let print_recovered = |recovered: &[manage::Recovered]| {
        for r in recovered {
            let what = if r.operation == blankslate_persist::journal::Operation::Add { "add" } else { "remove" };
            let outcome = if r.outcome == manage::Outcome::Finished { "finished" } else { "undone" };
            eprintln!(
                "note: the interrupted `persist {what} {}` (after step `{}`) was {outcome}",
                r.path,
                r.step.as_str()
            );
            for note in &r.notes {
                eprintln!("note: {note}");
            }
        }
    };
    match command {
        PersistCommand::Add { path, common, volume, user, group, mode, how, json: as_json } => {
            let path = path_arg(&path)?;
            let mode = match mode {
                Some(text) => {
                    Some(decl::Mode::parse_octal(&text).ok_or_else(|| format!("`{text}` is not an octal mode"))?)
                }
                None => None,
            };
            let how = how.map(|h| if h == "symlink" { decl::How::Symlink } else { decl::How::Bind });
            let root = Dir::open_root(&common.root)?;
            let request = manage::AddRequest {
                path: &path,
                declaration: &common.declaration,
                volume: volume.as_deref(),
                user: user.as_deref(),
                group: group.as_deref(),
                mode,
                how,
            };
            let added = manage::add(&root, &request)?;
            print_recovered(&added.recovered);
            if as_json {
                report::json(&json!({
                    "path": added.path, "volume": added.volume, "entry": added.entry,
                    "files": added.stats.files, "directories": added.stats.directories,
                    "hard_links": added.stats.hard_links, "symlinks": added.stats.symlinks,
                    "special": added.stats.special, "bytes": added.stats.bytes,
                }));
            } else {
                println!(
                    "{} is now persisted in {} ({} files, {} bytes, verified), declared as {}",
                    added.path, added.volume, added.stats.files, added.stats.bytes, added.entry
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        PersistCommand::Remove { path, common, copy_back, purge, json: as_json } => {
            let path = path_arg(&path)?;
            let root = Dir::open_root(&common.root)?;
            let request = manage::RemoveRequest { path: &path, declaration: &common.declaration, copy_back, purge };
            let removed = manage::remove(&root, &request)?;
            print_recovered(&removed.recovered);
            if as_json {
                report::json(&json!({
                    "path": removed.path, "volume": removed.volume,
                    "copied_back": removed.copied_back, "purged": removed.purged,
                }));
            } else {
                let data = match (removed.copied_back, removed.purged) {
                    (true, true) => "copied back into the root; removed from the volume",
                    (true, false) => "copied back into the root; the volume keeps its copy",
                    (false, true) => "removed from the volume",
                    (false, false) => "kept in the volume",
                };
                println!("{} is no longer persisted ({data})", removed.path);
            }
            Ok(ExitCode::SUCCESS)
        }
        PersistCommand::List { common, json: as_json } => persist_list(&common, as_json),
        PersistCommand::Recover { common, volume } => {
            let root = Dir::open_root(&common.root)?;
            let recovered = manage::recover(&root, &common.declaration, volume.as_deref())?;
            print_recovered(&recovered);
            if recovered.is_empty() {
                println!("nothing to recover");
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// `persist list`: exit code 1 if any declared path is not as declared.
fn persist_list(common: &PersistArgs, as_json: bool) -> Result<ExitCode> {
    use blankslate_persist::add as manage;
    let declaration = match load(&common.declaration, &common.root)? {
        Ok(declaration) => declaration,
        Err(code) => return Ok(code),
    };
    let root = Dir::open_root(&common.root)?;
    let listing = manage::list(&root, &declaration)?;
    let all_ok = listing.entries.iter().all(|e| e.state.is_ok() && e.problems.is_empty());
    if as_json {
        let entries: Vec<_> = listing
            .entries
            .iter()
            .map(|e| {
                json!({
                    "path": e.path, "volume": e.volume, "kind": e.kind.noun(), "how": e.how.as_str(),
                    "user": e.owner.user, "group": e.owner.group, "mode": e.owner.mode.to_string(),
                    "state": e.state.as_str(), "problems": e.problems,
                })
            })
            .collect();
        report::json(&json!({ "entries": entries, "pending": listing.pending }));
    } else {
        for e in &listing.entries {
            let problems = if e.problems.is_empty() { String::new() } else { format!("  ({})", e.problems.join("; ")) };
            println!("{:<15} {:<9} {}  <- {}{}{problems}", e.state.as_str(), e.kind.noun(), e.path, e.volume, e.path);
        }
        for pending in &listing.pending {
            eprintln!("warning: {pending}");
        }
    }
    Ok(ExitCode::from(if all_ok && listing.pending.is_empty() { EXIT_OK } else { EXIT_FINDINGS }))
}

// --- boot: `blankslate initrd` ---

fn initrd(
    output: &Path,
    binary: Option<&Path>,
    modules: Option<&Path>,
    names: &[String],
    compression: Compression,
) -> Result<ExitCode> {
    let binary = match binary {
        Some(path) => path.to_path_buf(),
        None => std::env::current_exe()?,
    };
    let mut archive = Vec::new();
    let found = blankslate_activator::initrd::build(&binary, modules, names, compression, &mut archive)?;
    let parent = output.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let name = output.file_name().ok_or_else(|| format!("{}: not a file name", output.display()))?;
    Dir::open_root(parent)?.write_atomic(name, &archive, 0o644)?;
    for path in &found {
        eprintln!("module {}", path.display());
    }
    println!("{}: /init = {}, {} modules, {} bytes", output.display(), binary.display(), found.len(), archive.len());
    Ok(ExitCode::SUCCESS)
}

// --- end boot ---

// --- audit ---
const AUDIT_HELP: &str = "\
Classes of findings: undeclared (on the root, declared by nothing: lost at reboot), etc-stray
(in /etc, managed by nothing), persist-stray (in a volume, declared by nothing; never deleted),
etc-drift, persist (not mounted, wrong source, replaced link, missing source, wrong owner or
mode), error. Ignored (counted, not listed): /tmp, /run, /var/tmp, /var/cache, … and the
declaration's [audit] ignore globs.

Exit codes:
  0  clean: everything on the root is declared
  1  undeclared state (undeclared, etc-stray, persist-stray)
  2  /etc drift or broken persistence
  3  the audit is incomplete (a directory could not be read) or could not run";

/// What `--format` prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum AuditFormat {
    Human,
    Json,
    Prometheus,
}

#[derive(Debug, clap::Args)]
#[allow(clippy::struct_excessive_bools)] // independent command-line switches
struct AuditArgs {
    #[command(flatten)]
    target: Target,
    /// Audit against this generation (default: the one /etc was activated to, else
    /// the current one).
    #[arg(long, value_name = "N")]
    generation: Option<u32>,
    /// Print the report as JSON (schema 1); the same as `--format json`.
    #[arg(long)]
    json: bool,
    /// The report's form.
    #[arg(long, value_enum, value_name = "FORMAT")]
    format: Option<AuditFormat>,
    /// Print ready-to-paste declaration lines for the undeclared findings instead of
    /// the report.
    #[arg(long)]
    suggest: bool,
    /// Also write counts and bytes per class, in Prometheus text format, to FILE
    /// (replaced atomically; for the `node_exporter` textfile collector).
    #[arg(long, value_name = "FILE")]
    prometheus: Option<PathBuf>,
    /// List at most N findings per class and walk (largest first; totals count all).
    #[arg(long, value_name = "N", default_value_t = 200)]
    limit: usize,
    /// Do not `stat` undeclared files for their sizes: read only names and types (as
    /// `find` does), faster on huge roots; sizes are reported as 0.
    #[arg(long)]
    no_sizes: bool,
    /// After the audit, watch the root and report each new undeclared write as it
    /// happens, with the process that holds it where /proc tells.
    #[arg(long)]
    watch: bool,
    /// Stop watching after SECONDS and print the summary (default: until killed).
    #[arg(long, value_name = "SECONDS", requires = "watch")]
    watch_for: Option<u64>,
    /// The watching process itself (started by `--watch`, not by hand).
    #[arg(long, hide = true)]
    watch_child: bool,
}

fn audit(args: &AuditArgs) -> Result<ExitCode> {
    use blankslate_audit as audit;
    if args.watch && !args.watch_child {
        return audit_watch_parent();
    }
    let target = &args.target;
    let root = Dir::open_root(&target.root)?;
    let root_path = std::fs::canonicalize(&target.root)?;
    let Some(state) = State::open_existing(&root, &target.state_dir)? else {
        return Err(format!("no blankslate state in {}: nothing was ever built there", target.root.display()).into());
    };
    let active = etc::active(&root)?.map(|a| a.generation);
    let Some(number) = args.generation.or(active).or(state.current_number()?) else {
        return Err("no generation to audit against: `blankslate build DECL` makes the first".into());
    };
    let generation = state.generation(number)?;
    let declaration = decl::Declaration::from_canonical_json(&state.declaration_json(&generation)?)?;
    let etc_active = match state.part(&generation, "etc")? {
        Some(object) => Some(etc::Active::load(state.store(), number, &object)?),
        None => None,
    };
    let users = match &etc_active {
        Some(active) => {
            let tree = state.store().open_object(&active.object)?.open_dir(blankslate_core::manifest::TREE_DIR)?;
            etc::users_for(&root, |name| tree.read(name).ok(), &active.manifest)
        }
        None => user_db(&target.root).unwrap_or_else(|| UserDb::from_texts("", "", "/etc/passwd")),
    };
    let setup = audit::Setup {
        root: &root,
        root_path: &root_path,
        declaration: &declaration,
        etc: etc_active.as_ref(),
        users: &users,
        state_dir: &target.state_dir,
        generation: Some(number),
        limit: args.limit,
        sizes: !args.no_sizes,
    };
    let report = audit::audit(&setup)?;
    let label = target.root.display().to_string();
    if let Some(file) = &args.prometheus {
        let temp = file.with_extension("prom.tmp");
        std::fs::write(&temp, audit::render::prometheus(&report))
            .and_then(|()| std::fs::rename(&temp, file))
            .map_err(|e| format!("cannot write {}: {e}", file.display()))?;
    }
    let format = if args.json { AuditFormat::Json } else { args.format.unwrap_or(AuditFormat::Human) };
    if args.suggest {
        report::print(&audit::render::suggest(&report, &declaration));
    } else {
        match format {
            AuditFormat::Json => report::json(&audit::render::json(&report, &label)),
            AuditFormat::Prometheus => report::print(&audit::render::prometheus(&report)),
            AuditFormat::Human => {
                report::print(&audit::render::human(&report, &label, report::color_for(&std::io::stdout())));
            }
        }
    }
    if args.watch {
        let (tree, globs) = audit::root_tree(&setup)?;
        let duration = args.watch_for.map(std::time::Duration::from_secs);
        let stdin = std::io::stdin();
        let stop = Some(std::os::fd::AsFd::as_fd(&stdin));
        let summary = audit::watch::watch(&root, &root_path, &tree, &globs, duration, stop, &mut std::io::stdout())?;
        println!("{summary}");
    }
    Ok(ExitCode::from(report.exit_code()))
}

/// `--watch` without unsafe signal handling: the audit and the watch run in a child in
/// a process group of its own (Ctrl-C does not reach it), reading a pipe from this
/// process. Ctrl-C ends this process; the pipe's end tells the child to print its
/// summary and stop.
fn audit_watch_parent() -> Result<ExitCode> {
    use std::os::unix::process::CommandExt;
    let mut child = std::process::Command::new(std::env::current_exe()?)
        .args(std::env::args_os().skip(1))
        .arg("--watch-child")
        .stdin(std::process::Stdio::piped())
        .process_group(0)
        .spawn()?;
    let _pipe = child.stdin.take();
    let status = child.wait()?;
    Ok(ExitCode::from(status.code().and_then(|c| u8::try_from(c).ok()).unwrap_or(report::EXIT_FAILURE)))
}
// --- end audit ---
