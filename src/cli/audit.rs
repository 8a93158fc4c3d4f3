//! `blankslate audit`: the live root against its generation.

use std::path::PathBuf;
use std::process::ExitCode;

use blankslate_audit::journal as audit_journal;
use blankslate_sys::fs::Dir;

use super::{Result, Running, Target, built};
use crate::report::{self, outln};

pub(super) const AUDIT_HELP: &str = "\
Classes of findings: undeclared (on the root, declared by nothing: lost at reboot), etc-stray
(in /etc, managed by nothing; with the dpkg package it came from), persist-stray (in a volume,
declared by nothing; never deleted), etc-drift, package-missing (a file dpkg says an installed
package put in /etc, gone and not declared), persist (not mounted, wrong source, replaced link, missing source, wrong owner or
mode of a path or its declared parent, a mount from a volume that nothing declares), volume (a persistent root that is not a mounted
volume), fallback (a boot trial failed, or a switch was not confirmed in time), error. Ignored
(counted, not listed): /tmp, /run, /var/tmp, /var/cache, … and the declaration's [audit]
ignore globs (`*` and `?` stay within a path component, `**` crosses directories).

Exit codes:
  0  clean: everything on the root is declared
  1  undeclared state (undeclared, etc-stray, persist-stray)
  2  /etc drift or broken persistence (a volume not mounted included), a package's lost
     /etc files, a fallback to another generation; or, as for every command, a wrong
     command line
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
pub(super) struct AuditArgs {
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
    /// Also write the metrics (counts and bytes per class, generations, time taken),
    /// in Prometheus text format, to FILE (replaced atomically; for the
    /// `node_exporter` textfile collector). The audit does not report FILE itself.
    #[arg(long, value_name = "FILE")]
    prometheus: Option<PathBuf>,
    /// Also send each listed finding, and a summary, to the systemd journal as a
    /// structured record with a fixed message id per class.
    #[arg(long)]
    journal: bool,
    /// The journal's native socket.
    #[arg(long, value_name = "PATH", default_value = audit_journal::SOCKET, requires = "journal")]
    journal_socket: PathBuf,
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
    /// Stop watching after SECONDS and print the summary (default: until SIGINT, as from
    /// Ctrl-C, or SIGTERM).
    #[arg(long, value_name = "SECONDS", requires = "watch")]
    watch_for: Option<u64>,
}

pub(super) fn run(args: &AuditArgs) -> Result<ExitCode> {
    use blankslate_audit as audit;
    let target = &args.target;
    let root = Dir::open_root(&target.root)?;
    let root_path = std::fs::canonicalize(&target.root)?;
    let running = built(target, args.generation)?;
    let own_outputs: Vec<Vec<u8>> = args.prometheus.iter().filter_map(|file| inside(&root_path, file)).collect();
    let mut setup = setup(&running, &root, &root_path, &target.state_dir, &own_outputs)?;
    setup.limit = args.limit;
    setup.sizes = !args.no_sizes;
    let declaration = &running.declaration;
    let report = audit::audit(&setup)?;
    let label = target.root.display().to_string();
    if let Some(file) = &args.prometheus {
        write_metrics(file, &audit::render::prometheus(&report))?;
    }
    if args.journal {
        audit_journal::send(&audit_journal::records(&report, &label), &args.journal_socket)?;
    }
    let format = if args.json { AuditFormat::Json } else { args.format.unwrap_or(AuditFormat::Human) };
    if args.suggest {
        report::print(&audit::render::suggest(&report, declaration))?;
    } else {
        match format {
            AuditFormat::Json => report::json(&audit::render::json(&report, &label))?,
            AuditFormat::Prometheus => report::print(&audit::render::prometheus(&report))?,
            AuditFormat::Human => {
                report::print(&audit::render::human(&report, &label, report::color_for(&std::io::stdout())))?;
            }
        }
    }
    if args.watch {
        let (tree, globs) = audit::root_tree(&setup)?;
        let duration = args.watch_for.map(std::time::Duration::from_secs);
        // SIGINT and SIGTERM end the watch with its summary, even when SIGINT was
        // ignored at start (`nohup`, a script's background job).
        let signals = blankslate_sys::raw::stop_signals().map_err(|e| format!("cannot watch for signals: {e}"))?;
        let stop = Some(std::os::fd::AsFd::as_fd(&signals));
        let summary = audit::watch::watch(&root, &root_path, &tree, &globs, duration, stop, &mut std::io::stdout())?;
        outln!("{summary}")?;
    }
    Ok(ExitCode::from(report.exit_code()))
}

/// The audit of the generation `running` runs on `root`: every finding listed, with
/// sizes, unless the caller says otherwise.
pub(super) fn setup<'a>(
    running: &'a Running,
    root: &'a Dir,
    root_path: &'a std::path::Path,
    state_dir: &'a std::path::Path,
    own_outputs: &'a [Vec<u8>],
) -> Result<blankslate_audit::Setup<'a>> {
    let Running { state, active, number, generation, declaration, etc, users } = running;
    let generations = blankslate_audit::Generations::read(state, generation, *active)?;
    Ok(blankslate_audit::Setup {
        root,
        root_path,
        declaration,
        etc: etc.as_ref(),
        users,
        state_dir,
        generation: Some(*number),
        generations,
        own_outputs,
        limit: usize::MAX,
        sizes: true,
    })
}

/// Replaces `file` with `metrics` (mode 0644, for `node_exporter`) through the
/// descriptor of its directory: a temporary with a name nobody can guess, created
/// `O_EXCL | O_NOFOLLOW`, fsynced, renamed over `file`. The directory may be writable
/// by others: whatever they plant at either name is replaced, never followed.
fn write_metrics(file: &std::path::Path, metrics: &str) -> Result<()> {
    let Some(name) = file.file_name() else {
        return Err(format!("--prometheus {}: not a file name", file.display()).into());
    };
    let parent = file.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(std::path::Path::new("."));
    Dir::open_root(parent)?.write_atomic(name, metrics.as_bytes(), 0o644)?;
    Ok(())
}

/// `file` as an absolute path inside the root at `root_path` (canonical), if it is
/// there: the audit does not report what it writes itself.
fn inside(root_path: &std::path::Path, file: &std::path::Path) -> Option<Vec<u8>> {
    use std::os::unix::ffi::OsStrExt;
    let file = std::path::absolute(file).ok()?;
    let parent = std::fs::canonicalize(file.parent()?).ok()?;
    let below = parent.join(file.file_name()?);
    let below = below.strip_prefix(root_path).ok()?;
    Some([b"/", below.as_os_str().as_bytes()].concat())
}
