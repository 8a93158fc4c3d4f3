//! `blankslate generations diff A B`, and the comparison the dry run of a switch prints.

use std::process::ExitCode;

use blankslate_core::decl::Declaration;
pub(super) use blankslate_core::diff::Side;
use blankslate_core::diff::{Change, GenerationDiff};
use blankslate_core::fs::Dir;
use blankslate_core::generation::State;
use blankslate_core::manifest::{EtcKind, MANIFEST_FILE, Manifest, TREE_DIR};

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

/// A generation's declaration and `/etc` manifest, read from the store.
#[derive(Debug)]
pub(super) struct Loaded {
    pub number: u32,
    pub declaration: Declaration,
    pub manifest: Manifest,
    pub etc_object: String,
}

impl Loaded {
    pub fn generation(state: &State, number: u32) -> Result<Loaded> {
        let generation = named_generation(state, number)?;
        let declaration = Declaration::from_canonical_json(&state.declaration_json(&generation)?)?;
        let etc_object = blankslate_activator::live::etc_object(state, &generation)?;
        let manifest = Manifest::from_json(&state.store().open_object(&etc_object)?.read(MANIFEST_FILE)?)?;
        Ok(Loaded { number, declaration, manifest, etc_object })
    }

    pub fn side(&self) -> Side<'_> {
        Side { generation: Some(self.number), declaration: &self.declaration, manifest: &self.manifest }
    }

    fn tree(&self, state: &State) -> Result<Dir> {
        Ok(state.store().open_object(&self.etc_object)?.open_dir(TREE_DIR)?)
    }
}

pub(super) fn run(args: &DiffArgs) -> Result<ExitCode> {
    let Some(state) = read_state(&args.target)? else {
        return Err(InputError::argument("there are no generations to compare: nothing was ever built here"));
    };
    let (from, to) = (Loaded::generation(&state, args.from)?, Loaded::generation(&state, args.to)?);
    let mut diff = GenerationDiff::between(from.side(), to.side());
    if args.patch {
        add_patches(&mut diff, &state, &from, &to)?;
    }
    if args.json {
        report::json(&serde_json::to_value(&diff)?);
    } else {
        report::print(&diff.to_string());
    }
    Ok(ExitCode::from(if diff.is_empty() { EXIT_OK } else { EXIT_FINDINGS }))
}

/// A unified diff for every /etc line whose contents are text on both sides (a side
/// without the entry counts as empty text), but a secret's (`decl::secret`), whose
/// contents are root's alone and stay out of reports.
fn add_patches(diff: &mut GenerationDiff, state: &State, from: &Loaded, to: &Loaded) -> Result<()> {
    let (old_tree, new_tree) = (from.tree(state)?, to.tree(state)?);
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
