//! `blankslate net save | list | restore`: the net's commands. What is kept and how
//! is `blankslate_net`'s; this finds what the audit says the next boot erases, calls
//! and prints. With a btrfs root, the previous roots (`activator::root::btrfs`) are
//! listed and restored from as well, each seen as a catch of what the audit of the
//! running generation calls undeclared in it.

use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use blankslate_activator::root::btrfs::{KeptRoot, PreviousRoots, previous_roots};
use blankslate_activator::running::Running;
use blankslate_audit::render::escape;
use blankslate_net::{self as net, Catch, Erased, Holder};
use blankslate_state::generation::format_utc;
use blankslate_sys::fs::Dir;
use clap::Subcommand;
use serde_json::json;

use super::{EXIT_CODES, InputError, Result, Target, built, open_state, persist, read_state};
use crate::report::{self, outln};

/// How a previous root is named among the catches: `root-NNNNNN`.
const ROOT_PREFIX: &str = "root-";

#[derive(Debug, Subcommand)]
#[command(defer = true)]
pub(super) enum NetCommand {
    /// Keep what the next boot erases (what the audit reports as undeclared or as an
    /// /etc stray) in a new catch in the state directory's net, within the bounds the
    /// declaration's [net] sets, and prune the oldest catches. Does nothing without
    /// [net]. Run at shutdown by blankslate-net.service.
    #[command(after_help = EXIT_CODES)]
    Save {
        #[command(flatten)]
        target: Target,
        /// Print the catch as JSON.
        #[arg(long)]
        json: bool,
    },
    /// The catches in the net, oldest first: when each boot's state was kept, from
    /// which generation, and each path with its size (and why one was left out). With
    /// a btrfs root, then its previous roots (`root-NNNNNN`), each with what in it the
    /// running generation's declaration does not account for.
    #[command(after_help = EXIT_CODES)]
    List {
        #[command(flatten)]
        target: Target,
        /// Print the catches as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Copy a path that an earlier boot erased back into the root (owner, mode, times,
    /// extended attributes kept), from the newest catch (or, with a btrfs root, the
    /// newest previous root) that holds it. Never replaces anything in the root.
    #[command(after_help = EXIT_CODES)]
    Restore {
        /// The path as it was (absolute): a kept path, or one inside it.
        path: PathBuf,
        /// The catch or previous root to take it from (a name `net list` prints;
        /// default: the newest that holds it).
        #[arg(long, value_name = "CATCH")]
        from: Option<String>,
        /// Where to put it (absolute; default: where it was).
        #[arg(long, value_name = "PATH")]
        to: Option<PathBuf>,
        /// Then declare it as persisted, as `persist add` does (moved into the volume,
        /// bind-mounted, added to the declaration, a new generation): kept from now on.
        #[arg(long, requires = "declaration")]
        declare: bool,
        /// The declaration to add it to (with --declare).
        #[arg(long, value_name = "FILE")]
        declaration: Option<PathBuf>,
        /// The persistent root to move it to (with --declare; default: the only one).
        #[arg(long, value_name = "MOUNT", requires = "declare")]
        volume: Option<String>,
        #[command(flatten)]
        target: Target,
    },
}

pub(super) fn run(command: NetCommand) -> Result<ExitCode> {
    match command {
        NetCommand::Save { target, json } => save(&target, json),
        NetCommand::List { target, json } => list(&target, json),
        NetCommand::Restore { path, from, to, declare, declaration, volume, target } => {
            let root = Dir::open_root(&target.root)?;
            let wanted = path.as_os_str().as_bytes();
            // Audited before the state's lock is taken, and no more of them than needed.
            let (_previous, roots) = match from.as_deref() {
                Some(name) if name.starts_with(ROOT_PREFIX) => {
                    previous_root_holders(&target, &root, |n| n == name, |_| true)?
                }
                Some(_) => (None, Vec::new()),
                None => previous_root_holders(&target, &root, |_| true, |holder| holder.catch.holds(wanted))?,
            };
            let state = open_state(&target)?;
            let mut holders = match state.existing_net()? {
                Some(net) => net::holders(&net)?,
                None => Vec::new(),
            };
            holders.extend(roots);
            if holders.is_empty() {
                return Err(InputError::argument("the net is empty: no shutdown kept anything yet"));
            }
            let to_bytes = to.as_ref().map(|to| to.as_os_str().as_bytes());
            let restored = net::restore(&root, &holders, wanted, from.as_deref(), to_bytes).map_err(restore_error)?;
            drop(state);
            let shown = blankslate_audit::render::escape(&restored.to);
            outln!(
                "restored {shown} from {} ({} files, {})",
                restored.catch,
                restored.stats.files,
                blankslate_audit::render::size(restored.stats.bytes)
            )?;
            match declaration.filter(|_| declare) {
                Some(declaration) => {
                    let path = PathBuf::from(std::ffi::OsStr::from_bytes(&restored.to));
                    persist::run(persist::PersistCommand::add(path, declaration, target, volume))
                }
                None => Ok(ExitCode::SUCCESS),
            }
        }
    }
}

fn save(target: &Target, as_json: bool) -> Result<ExitCode> {
    let running = built(target, None)?;
    let Some(bounds) = running.declaration.net else {
        outln!("generation {} declares no [net]: nothing kept", running.number)?;
        return Ok(ExitCode::SUCCESS);
    };
    let root = Dir::open_root(&target.root)?;
    let root_path = std::fs::canonicalize(&target.root)?;
    let report = blankslate_audit::audit(&super::audit::setup(&running, &root, &root_path, &target.state_dir, &[])?)?;
    let erased = Erased::from_report(&report);
    let boot_id = blankslate_sys::boot_id();
    let state = open_state(target)?;
    let saved = net::save(&root, &state.net()?, &boot_id, Some(running.number), &erased, bounds)?;
    if as_json {
        report::json(&json!({ "catch": catch_json(&saved.catch), "pruned": saved.pruned }))?;
    } else {
        let kept = saved.catch.entries.iter().filter(|e| e.left_out.is_none()).count();
        outln!(
            "kept {kept} of {} erased paths ({}) in {}",
            saved.catch.entries.len(),
            blankslate_audit::render::size(saved.catch.kept_bytes()),
            saved.catch.name
        )?;
        for entry in saved.catch.entries.iter().filter(|e| e.left_out.is_some()) {
            outln!("  left out {}: {}", entry.path, entry.left_out.as_deref().unwrap_or_default())?;
        }
        for pruned in &saved.pruned {
            outln!("  pruned {pruned}")?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn list(target: &Target, as_json: bool) -> Result<ExitCode> {
    let catches = match read_state(target)?.map(|state| state.existing_net()).transpose()?.flatten() {
        Some(net) => net::catches(&net)?,
        None => Vec::new(),
    };
    let (_previous, roots) = previous_root_holders(target, &Dir::open_root(&target.root)?, |_| true, |_| false)?;
    let roots: Vec<Catch> = roots.into_iter().map(|holder| holder.catch).collect();
    if as_json {
        report::json(&json!({
            "catches": catches.iter().map(catch_json).collect::<Vec<_>>(),
            "previous_roots": roots.iter().map(catch_json).collect::<Vec<_>>(),
        }))?;
        return Ok(ExitCode::SUCCESS);
    }
    if catches.is_empty() && roots.is_empty() {
        outln!("the net is empty")?;
    }
    let kept = catches.iter().map(|c| (c, "kept at")).chain(roots.iter().map(|c| (c, "a previous root, booted at")));
    for (catch, when) in kept {
        let generation = catch.generation.map_or_else(String::new, |n| format!(", generation {n}"));
        // A previous root without its record (a boot killed before writing it).
        let at = if catch.saved == 0 {
            "unknown".to_owned()
        } else {
            format!("{} UTC", format_utc(i64::try_from(catch.saved).unwrap_or(i64::MAX)))
        };
        outln!("{} ({when} {at}{generation}): {}", catch.name, blankslate_audit::render::size(catch.kept_bytes()))?;
        for entry in &catch.entries {
            let size = blankslate_audit::render::size(entry.bytes);
            let path = escape(entry.path_bytes());
            match &entry.left_out {
                None => outln!("  {:>10}  {} ({}, {} files)", size, path, entry.kind, entry.files)?,
                Some(why) => outln!("  {:>10}  {} (left out: {})", size, path, escape(why.as_bytes()))?,
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// With a btrfs root (the running root on a btrfs), those of its previous roots
/// whose names `wanted` accepts as catches (named `root-NNNNNN`, oldest first), each
/// holding what the audit of the running generation finds undeclared in it; nothing
/// otherwise. They are audited newest first, and no further once one is `enough`. A
/// previous root that cannot be read is a warning, never a reason for the net's own
/// catches not to be listed or restored. The roots stay reachable while the first
/// value lives.
fn previous_root_holders(
    target: &Target,
    live: &Dir,
    wanted: impl Fn(&str) -> bool,
    enough: impl Fn(&Holder) -> bool,
) -> Result<(Option<PreviousRoots>, Vec<Holder>)> {
    let Some((running, mut previous)) = running_previous_roots(target, live)? else { return Ok((None, Vec::new())) };
    let mut holders = Vec::new();
    for kept in std::mem::take(&mut previous.roots).into_iter().rev() {
        if !wanted(&format!("{ROOT_PREFIX}{}", kept.name)) {
            continue;
        }
        if let Some(holder) = as_holder(target, &running, kept) {
            let done = enough(&holder);
            holders.push(holder);
            if done {
                break;
            }
        }
    }
    holders.reverse();
    Ok((Some(previous), holders))
}

/// The running generation and the running root's previous roots, if it has any: a
/// btrfs root's (`None` for a tmpfs root, or a target without blankslate's state).
fn running_previous_roots(target: &Target, live: &Dir) -> Result<Option<(Running, PreviousRoots)>> {
    if read_state(target)?.is_none() {
        return Ok(None);
    }
    let previous = match previous_roots(live) {
        Ok(Some(previous)) => previous,
        Ok(None) => return Ok(None),
        Err(error) => {
            eprintln!("blankslate: warning: the previous roots are left out: {error}");
            return Ok(None);
        }
    };
    Ok(Some((built(target, None)?, previous)))
}

/// `kept` as a catch: what the audit of `running` finds undeclared in it. A root the
/// audit cannot read is left out, with a warning.
fn as_holder(target: &Target, running: &Running, kept: KeptRoot) -> Option<Holder> {
    // No mount is below a previous root: a path no mount table names says so.
    let shown = Path::new("previous-root").join(&kept.name);
    let audited = super::audit::setup(running, &kept.root, &shown, &target.state_dir, &[])
        .and_then(|setup| Ok(blankslate_audit::audit(&setup)?));
    let report = match audited {
        Ok(report) => report,
        Err(error) => {
            eprintln!("blankslate: warning: the previous root {} is left out: {}", kept.name, error.error());
            return None;
        }
    };
    let (boot_id, booted, generation) =
        kept.record.map_or((String::new(), 0, None), |r| (r.boot_id, r.booted, r.generation));
    let name = format!("{ROOT_PREFIX}{}", kept.name);
    let catch = Catch::previous_root(name, boot_id, booted, generation, &Erased::from_report(&report));
    Some(Holder { catch, tree: kept.root })
}

fn catch_json(catch: &Catch) -> serde_json::Value {
    let mut value = serde_json::to_value(catch).expect("a catch serializes");
    value["name"] = json!(catch.name);
    value["kept_bytes"] = json!(catch.kept_bytes());
    value
}

/// A restore that cannot be done as asked is the person's request, not a failure.
fn restore_error(error: net::NetError) -> super::CliError {
    use net::NetError;
    match error {
        NetError::NotCaught { .. } | NetError::NoSuchCatch(_) | NetError::Exists { .. } | NetError::BadPath(_) => {
            InputError::argument(error.to_string())
        }
        other => other.into(),
    }
}
