//! `blankslate generations diff A B`, and the comparison the dry run of a switch prints.

use std::process::ExitCode;

use blankslate_activator::switch::Loaded;
use blankslate_state::diff::{Change, GenerationDiff};
use blankslate_state::generation::State;
use blankslate_state::manifest::{EtcKind, Manifest, TREE_DIR};
use blankslate_sys::fs::Dir;

use super::{InputError, Result, Target, named_generation, read_state};
use crate::report::{self, EXIT_FINDINGS, EXIT_OK};

#[derive(Debug, clap::Args)]
pub(super) struct DiffArgs {
    /// The older generation.
    from: u32,
    /// The newer generation.
    to: u32,
    #[command(flatten)]
    target: Target,
    /// Print the comparison as JSON.
    #[arg(long)]
    json: bool,
    /// Also show what changes inside text files (a unified diff per /etc entry).
    #[arg(short, long)]
    patch: bool,
}

/// The `/etc` tree of a generation loaded from the store.
fn tree(state: &State, loaded: &Loaded) -> Result<Dir> {
    Ok(state.store().open_object(&loaded.etc_object)?.open_dir(TREE_DIR)?)
}

/// A generation the person named, loaded: one that does not exist is a usage error.
fn named(state: &State, number: u32) -> Result<Loaded> {
    named_generation(state, number)?;
    Ok(Loaded::generation(state, number)?)
}

pub(super) fn run(args: &DiffArgs) -> Result<ExitCode> {
    let Some(state) = read_state(&args.target)? else {
        return Err(InputError::argument("there are no generations to compare: nothing was ever built here"));
    };
    let (from, to) = (named(&state, args.from)?, named(&state, args.to)?);
    let mut diff = GenerationDiff::between(from.side(), to.side());
    if args.patch {
        add_patches(&mut diff, &state, &from, &to)?;
    }
    if args.json {
        report::json(&serde_json::to_value(&diff)?)?;
    } else {
        report::print(&diff.to_string())?;
    }
    Ok(ExitCode::from(if diff.is_empty() { EXIT_OK } else { EXIT_FINDINGS }))
}

/// A unified diff for every /etc line whose contents are text on both sides (a side
/// without the entry counts as empty text), but a secret's (`decl::secret`), whose
/// contents are root's alone and stay out of reports.
fn add_patches(diff: &mut GenerationDiff, state: &State, from: &Loaded, to: &Loaded) -> Result<()> {
    let (old_tree, new_tree) = (tree(state, from)?, tree(state, to)?);
    let contents = |tree: &Dir, manifest: &Manifest, path: &str| -> Option<Vec<u8>> {
        match manifest.entries.get(path) {
            None => Some(Vec::new()),
            Some(entry) if matches!(entry.kind, EtcKind::DirectLink { .. } | EtcKind::Directory) => None,
            Some(_) => tree.read(path).ok(),
        }
    };
    for line in &mut diff.etc {
        if line.change == Change::Changed && !line.aspects.iter().any(|a| a.what == "contents") {
            continue;
        }
        if from.manifest.is_secret(&line.path) || to.manifest.is_secret(&line.path) {
            line.patch = Some("    (a secret: its contents are not shown)\n".to_owned());
            continue;
        }
        let old = contents(&old_tree, &from.manifest, &line.path);
        let new = contents(&new_tree, &to.manifest, &line.path);
        line.patch = match (old, new) {
            (Some(old), Some(new)) => Some(match (text(&old), text(&new)) {
                (Some(old), Some(new)) => unified(old, new, &line.path),
                _ => "    (binary contents differ)\n".to_owned(),
            }),
            _ => None,
        };
    }
    Ok(())
}

fn text(bytes: &[u8]) -> Option<&str> {
    std::str::from_utf8(bytes).ok().filter(|t| !t.contains('\0'))
}

/// `--- a/etc/PATH`, `+++ b/etc/PATH` and hunks with three lines of context, each
/// line indented under the entry it belongs to.
fn unified(old: &str, new: &str, path: &str) -> String {
    let diff = similar::TextDiff::from_lines(old, new);
    let text =
        diff.unified_diff().context_radius(3).header(&format!("a/etc/{path}"), &format!("b/etc/{path}")).to_string();
    let mut out = String::new();
    for line in text.lines() {
        out.push_str("    ");
        out.push_str(line);
        out.push('\n');
    }
    out
}
