//! `blankslate sandbox`: a declaration tried in private namespaces.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use blankslate_activator::sandbox;
use blankslate_decl as decl;

use super::{Result, Target, build_generation, load};

#[derive(Debug, clap::Args)]
pub(super) struct SandboxArgs {
    /// The declaration to try (default: the built-in example).
    declaration: Option<PathBuf>,
    /// The sandbox's own directory: its store and its stand-in persistent volume.
    #[arg(long, value_name = "DIR", default_value_os_t = default_sandbox_dir())]
    dir: PathBuf,
    /// The command to run inside (default: a shell).
    #[arg(last = true)]
    command: Vec<OsString>,
}

// The sandbox's first process, as `sandbox` starts it.
#[derive(Debug, clap::Args)]
pub(super) struct InitArgs {
    dir: PathBuf,
    state_dir: PathBuf,
    generation: u32,
    object: String,
    #[arg(last = true)]
    command: Vec<OsString>,
}

pub(super) fn init(args: InitArgs) -> Result<ExitCode> {
    let InitArgs { dir, state_dir, generation, object, command } = args;
    let code = sandbox::init(&sandbox::Request { dir, state_dir, generation, object, command })?;
    Ok(ExitCode::from(u8::try_from(code).unwrap_or(1)))
}

/// The built-in example declaration (`examples/sandbox.toml`).
const BUILTIN_EXAMPLE: &str = include_str!("../../examples/sandbox.toml");

pub(super) fn default_sandbox_dir() -> PathBuf {
    std::env::temp_dir().join("blankslate-sandbox")
}

pub(super) fn run(args: SandboxArgs) -> Result<ExitCode> {
    let (file, dir, command) = (args.declaration.as_deref(), &args.dir, args.command);
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
    let target = Target::at(dir.join(sandbox::STATE));
    let (state, built) = build_generation(&declaration, &target, None)?;
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
