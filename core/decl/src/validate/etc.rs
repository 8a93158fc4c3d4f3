//! The rules about `/etc`: entries that shadow what `/etc` holds or a persisted path,
//! every `source` and the etc tree opened as `build` opens them and the entries they
//! make checked against each other, the etc tree's `fstab`, and secrets given a mode
//! everyone reads.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use super::line_of;
use crate::diag::{Diagnostic, Diagnostics, Rule};
use crate::fstab;
use crate::model::{Declaration, EntryKind, EtcContents, EtcMode, How, Mode, ResolvedEntry, Span};
use crate::paths::{ancestors, is_inside};
use crate::secret::{is_known_secret, world_readable};
use crate::source::{SourceError, Sources, TreeNode};

/// What to persist of `/etc/ssh` when its configuration is managed: the host keys.
pub const SSH_KEYS_HELP: &str = "persist the host keys instead of all of /etc/ssh: files = [{ file = \"/etc/ssh/ssh_host_ed25519_key\", mode = \"0600\", how = \"bind\" }, { file = \"/etc/ssh/ssh_host_ed25519_key.pub\", how = \"bind\" }] (and the same for ssh_host_rsa_key, or each key type the server uses)";

pub(super) fn check_etc_shadow(entry: &ResolvedEntry<'_>, declaration: &Declaration, out: &mut Vec<Diagnostic>) {
    let path = entry.path.as_str();
    if path == "/etc" || path == "/etc/static" || is_inside(path, "/etc/static") {
        out.push(
            Diagnostic::error(
                Rule::ShadowsEtc,
                entry.entry.span,
                format!("`{path}` cannot be persisted: blankslate manages it"),
            )
            .with_help("persist the individual files under /etc you need instead"),
        );
        return;
    }
    let Some(relative) = path.strip_prefix("/etc/") else { return };
    // Inside a managed entry: a file can hold nothing, and a directory source's
    // contents are blankslate's. A declared directory (`directory = true`) has no
    // contents of its own: it may hold persisted paths.
    let is_file = |a: &&str| declaration.etc.get(*a).is_some_and(|e| !matches!(e.contents, EtcContents::Directory(_)));
    let enclosing = ancestors(path).filter_map(|a| a.strip_prefix("/etc/")).find(is_file);
    if let Some(managed) = enclosing {
        out.push(
            Diagnostic::error(
                Rule::ShadowsEtc,
                entry.entry.span,
                format!("persisted `{path}` lies inside the managed /etc entry `{managed}`"),
            )
            .with_help("an /etc entry is either managed (under [etc]) or persisted, not both"),
        );
        return;
    }
    let shadowed = if declaration.etc.contains_key(relative) {
        Some(relative.to_owned())
    } else if entry.entry.kind == EntryKind::Directory {
        let prefix = format!("{relative}/");
        declaration.etc.range(prefix.clone()..).next().map(|(k, _)| k).filter(|k| k.starts_with(&prefix)).cloned()
    } else {
        None
    };
    if let Some(managed) = shadowed {
        let help = if path == "/etc/ssh" {
            SSH_KEYS_HELP.to_owned()
        } else if entry.entry.kind == EntryKind::Directory {
            format!(
                "persist the files of `{path}` that hold state instead of all of it; an /etc entry is either managed or persisted, not both"
            )
        } else {
            "an /etc entry is either managed (under [etc]) or persisted, not both".to_owned()
        };
        out.push(
            Diagnostic::error(
                Rule::ShadowsEtc,
                entry.entry.span,
                format!("persisted `{path}` would hide the managed /etc entry `{managed}`"),
            )
            .with_help(help),
        );
    }
}

/// Where one `/etc` entry (declared, expanded from a source, or in the etc tree)
/// comes from.
struct EtcKey {
    span: Span,
    directory: bool,
    /// "`NAME`" for a declared entry, "the etc tree" for the tree.
    origin: String,
}

/// Every `/etc` entry a declaration makes, opened as `build` opens them.
#[derive(Default)]
struct EtcKeys {
    keys: BTreeMap<String, EtcKey>,
    /// Files and symlinks of the etc tree.
    tree_files: BTreeSet<String>,
}

impl EtcKeys {
    fn add(&mut self, key: String, new: EtcKey, diagnostics: &Diagnostics, out: &mut Vec<Diagnostic>) {
        let Some(first) = self.keys.get(&key) else {
            self.keys.insert(key, new);
            return;
        };
        let from = if first.span == Span::default() {
            first.origin.clone()
        } else {
            format!("{} (line {})", first.origin, line_of(diagnostics, first.span))
        };
        out.push(
            Diagnostic::error(
                Rule::Duplicate,
                new.span,
                format!("/etc entry `{key}` comes from {from} and again from {}", new.origin),
            )
            .with_help("an /etc path is made by one entry: drop one of them"),
        );
    }
}

/// The etc tree's `fstab` (`text`): an entry that mounts over the root, a volume or a
/// persisted path would fail at boot or hide the volume's data (`adopt` comments such
/// entries out; one added later is warned about here).
fn check_fstab(
    text: &str,
    declaration: &Declaration,
    entries: &[ResolvedEntry<'_>],
    span: Span,
    out: &mut Vec<Diagnostic>,
) {
    let persisted: Vec<&str> = entries.iter().map(|e| e.path.as_str()).collect();
    let volumes: Vec<&str> = declaration.persist.keys().map(String::as_str).collect();
    for (number, mount) in fstab::mounts(text) {
        if let Some(why) = fstab::conflict(&mount.mount_point, &persisted, &volumes) {
            out.push(
                Diagnostic::warning(
                    Rule::FstabConflict,
                    span,
                    format!(
                        "the etc tree's fstab, line {number}, mounts at {}: {why}: `{}`",
                        mount.mount_point,
                        mount.line.trim()
                    ),
                )
                .with_help("comment the line out in the etc tree's fstab (as `blankslate adopt` does), then switch"),
            );
        }
    }
}

/// Opens every `source` and the etc tree as `build` does (`decl::source`), so that
/// whatever `build` would refuse (a FIFO, a device, a kernel file, a symlink out of
/// the declaration's directory, a file too large, nothing matched) is refused here
/// first, and checks the entries they make against each other: one path made twice,
/// a file where an entry needs a directory, a file of the tree where a path is
/// persisted.
pub(super) fn check_etc_files(
    declaration: &Declaration,
    entries: &[ResolvedEntry<'_>],
    diagnostics: &Diagnostics,
    out: &mut Vec<Diagnostic>,
) {
    let mut keys = EtcKeys::default();
    let opened = || {
        Sources::of(declaration).map_err(|error| {
            let span = declaration.etc_tree.as_ref().map(|t| t.span).or_else(|| {
                declaration.etc.values().find(|e| matches!(e.contents, EtcContents::Source(_))).map(|e| e.value_span)
            });
            Diagnostic::error(Rule::EtcSource, span, format!("cannot open the sources: {error}"))
        })
    };
    let needs_sources = declaration.etc_tree.is_some()
        || declaration.etc.values().any(|e| matches!(e.contents, EtcContents::Source(_)));
    let sources = match needs_sources.then(opened).transpose() {
        Ok(sources) => sources,
        Err(diagnostic) => return out.push(diagnostic),
    };
    if let (Some(tree), Some(sources)) = (&declaration.etc_tree, &sources) {
        // What the builder drops: the tree's directories at and below persisted paths.
        let persisted: Vec<&str> = entries.iter().filter_map(|e| e.path.strip_prefix("/etc/")).collect();
        let taken =
            |key: &str| persisted.iter().any(|p| key == *p || key.strip_prefix(p).is_some_and(|r| r.starts_with('/')));
        let origin = || EtcKey { span: tree.span, directory: false, origin: "the etc tree".into() };
        let mut fstab = None;
        let walked = sources.walk_tree(&tree.source, &mut |node| {
            match node {
                TreeNode::File(file) => {
                    let key = file.key.clone();
                    keys.tree_files.insert(key.clone());
                    if key == "fstab" {
                        // Unreadable, it is refused when the generation is built.
                        fstab = file.read().ok();
                    }
                    keys.add(key, origin(), diagnostics, out);
                }
                TreeNode::Symlink { key, .. } => {
                    keys.tree_files.insert(key.clone());
                    keys.add(key, origin(), diagnostics, out);
                }
                TreeNode::Directory { key, meta, empty } => {
                    if TreeNode::directory_is_entry(&meta, empty) && !taken(&key) {
                        keys.add(key, EtcKey { directory: true, ..origin() }, diagnostics, out);
                    }
                }
            }
            Ok(())
        });
        if let Err(error) = walked {
            out.push(source_diagnostic(&error, tree.span, "etc tree: "));
        }
        if let Some(text) = fstab {
            check_fstab(&String::from_utf8_lossy(&text), declaration, entries, tree.span, out);
        }
    }
    for (path, entry) in &declaration.etc {
        let key = |directory| EtcKey { span: entry.value_span, directory, origin: format!("`{path}`") };
        match (&entry.contents, &sources) {
            (EtcContents::Source(source), Some(sources)) => {
                let expanded = sources.expand(path, source, &mut |file| {
                    keys.add(file.key, key(false), diagnostics, out);
                    Ok(())
                });
                if let Err(error) = expanded {
                    out.push(source_diagnostic(&error, entry.value_span, "source "));
                }
            }
            (EtcContents::Directory(_), _) => keys.add(path.clone(), key(true), diagnostics, out),
            _ => keys.add(path.clone(), key(false), diagnostics, out),
        }
    }
    let mut reported = HashSet::new();
    for (key, found) in &keys.keys {
        let Some((outer, file)) =
            ancestors(key).find_map(|a| keys.keys.get(a).filter(|k| !k.directory).map(|k| (a, k)))
        else {
            continue;
        };
        if reported.insert((found.span, outer)) {
            out.push(
                Diagnostic::error(
                    Rule::NestedInFile,
                    found.span,
                    format!(
                        "/etc entry `{key}` needs `{outer}` to be a directory, but {} makes it a file",
                        file.origin
                    ),
                )
                .with_help(format!("declare `{outer}` with `directory = true`, or drop one of them")),
            );
        }
    }
    for entry in entries {
        let Some(path) = entry.path.strip_prefix("/etc/") else { continue };
        if keys.tree_files.contains(path) {
            out.push(
                Diagnostic::error(
                    Rule::ShadowsEtc,
                    entry.entry.span,
                    format!("persisted `{}` is also a file of the etc tree", entry.path),
                )
                .with_help("an /etc entry is either managed or persisted, not both: remove it from the tree"),
            );
        }
    }
}

/// A source that cannot be used, as a diagnostic at `span`.
fn source_diagnostic(error: &SourceError, span: Span, what: &str) -> Diagnostic {
    let (rule, message) = match error {
        _ if error.is_not_found() => {
            (Rule::EtcSourceMissing, format!("{what}`{}` does not exist", error.path().display()))
        }
        SourceError::NoMatch { .. } => (Rule::EtcSourceMissing, format!("{what}{error}")),
        SourceError::DotDot { .. } => (Rule::DotDot, format!("{what}{error}")),
        _ => (Rule::EtcSource, format!("{what}{error}")),
    };
    Diagnostic::error(rule, span, message).with_help(error.help())
}

/// Files known to hold secrets (`shadow`, keys; see `decl::secret`) given a mode
/// everyone can read: as an `/etc` copy, or persisted (a declared mode, or the
/// default one).
pub(super) fn check_secret_modes(declaration: &Declaration, entries: &[ResolvedEntry<'_>], out: &mut Vec<Diagnostic>) {
    let help = "give it a mode others cannot read: \"0600\", or \"0640\" with the group that reads it (`shadow` for the shadow files)";
    for (path, entry) in &declaration.etc {
        let EtcMode::Copy(mode) = entry.mode else { continue };
        if is_known_secret(path) && world_readable(mode.bits()) && !matches!(entry.contents, EtcContents::Directory(_))
        {
            out.push(
                Diagnostic::warning(
                    Rule::SecretMode,
                    entry.span,
                    format!("/etc entry `{path}` holds secrets, and mode {mode} lets everyone read it"),
                )
                .with_help(help),
            );
        }
    }
    for entry in entries {
        let Some(path) = entry.path.strip_prefix("/etc/") else { continue };
        let mode = entry.entry.owner.mode;
        if entry.entry.kind == EntryKind::File && is_known_secret(path) && world_readable(mode.bits()) {
            // A copy with no mode keeps the stricter of the live file's and the
            // volume's modes (persist), but a new one is made with this mode.
            let message = if entry.entry.how() == How::Copy && mode == Mode::FILE {
                format!(
                    "`{}` holds secrets and is persisted as a copy with no mode: it keeps the stricter of the live \
                     file's and the volume's modes, but a new one is made {mode}",
                    entry.path
                )
            } else {
                format!(
                    "persisted `{}` holds secrets, and mode {mode} (declared, or the default for a file) lets everyone \
                     read it",
                    entry.path
                )
            };
            out.push(Diagnostic::warning(Rule::SecretMode, entry.entry.span, message).with_help(help));
        }
    }
}
