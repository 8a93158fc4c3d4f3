//! Rules that span entries: duplicates, nesting, shadowing, parent conflicts, and
//! owners unknown to the target's user database.

use std::collections::{HashMap, HashSet};

use super::diag::{Diagnostic, Diagnostics, Rule};
use super::model::{Declaration, EntryKind, EtcMode, Owner, ResolvedEntry, Span};
use super::paths::{ancestors, is_inside, parent};
use super::users::UserDb;

/// Adds to `diagnostics` every cross-entry problem in `declaration`. `users`, when
/// known, turns unknown owner names into warnings.
pub fn validate(declaration: &Declaration, users: Option<&UserDb>, diagnostics: &mut Diagnostics) {
    let entries = declaration.entries();
    let mut out = Vec::new();
    let by_path = unique_paths(&entries, diagnostics, &mut out);
    for entry in &entries {
        check_nesting(entry, &entries, &by_path, diagnostics, &mut out);
        check_etc_shadow(entry, declaration, &mut out);
        check_persistent_roots(entry, declaration, diagnostics, &mut out);
    }
    check_parent_owners(&entries, &by_path, diagnostics, &mut out);
    if let Some(users) = users {
        check_names(declaration, &entries, users, &mut out);
    }
    diagnostics.items.append(&mut out);
}

fn line_of(diagnostics: &Diagnostics, span: Span) -> usize {
    diagnostics.locate(span.start).line
}

/// Reports duplicates and paths declared as both kinds; returns the first entry for
/// each path.
fn unique_paths<'e>(
    entries: &'e [ResolvedEntry<'e>],
    diagnostics: &Diagnostics,
    out: &mut Vec<Diagnostic>,
) -> HashMap<&'e str, usize> {
    let mut by_path: HashMap<&str, usize> = HashMap::new();
    for (index, entry) in entries.iter().enumerate() {
        let Some(&first) = by_path.get(entry.path.as_str()) else {
            by_path.insert(&entry.path, index);
            continue;
        };
        // Report the one written later in the text, pointing back at the earlier
        // one: entries come sorted by persistent root, not in the order written.
        let (earlier, entry) = if entries[first].entry.span.start <= entry.entry.span.start {
            (&entries[first], entry)
        } else {
            (entry, &entries[first])
        };
        let line = line_of(diagnostics, earlier.entry.span);
        let (rule, message) = if earlier.entry.kind == entry.entry.kind {
            (Rule::Duplicate, format!("`{}` is declared twice", entry.path))
        } else {
            (
                Rule::DirectoryAndFile,
                format!(
                    "`{}` is declared as a {} and as a {}",
                    entry.path,
                    earlier.entry.kind.noun(),
                    entry.entry.kind.noun()
                ),
            )
        };
        out.push(
            Diagnostic::error(rule, entry.entry.span, message)
                .with_help(format!("first declared on line {line} (in `{}`)", earlier.root)),
        );
    }
    by_path
}

fn check_nesting(
    entry: &ResolvedEntry<'_>,
    entries: &[ResolvedEntry<'_>],
    by_path: &HashMap<&str, usize>,
    diagnostics: &Diagnostics,
    out: &mut Vec<Diagnostic>,
) {
    for ancestor in ancestors(&entry.path) {
        let Some(&index) = by_path.get(ancestor) else { continue };
        let outer = &entries[index];
        let line = line_of(diagnostics, outer.entry.span);
        if outer.entry.kind == EntryKind::File {
            out.push(
                Diagnostic::error(
                    Rule::NestedInFile,
                    entry.entry.span,
                    format!("`{}` lies inside `{ancestor}`, which is declared as a file", entry.path),
                )
                .with_help(format!(
                    "`{ancestor}` is declared on line {line}; declare it as a directory or drop one of them"
                )),
            );
        } else if entry.entry.kind == EntryKind::File && outer.root != entry.root {
            out.push(
                Diagnostic::error(
                    Rule::NestedInOtherRoot,
                    entry.entry.span,
                    format!(
                        "file `{}` (in `{}`) lies inside directory `{ancestor}`, persisted in `{}`",
                        entry.path, entry.root, outer.root
                    ),
                )
                .with_help(format!(
                    "the directory on line {line} already persists it; drop this entry or move it to `{}`",
                    outer.root
                )),
            );
        }
        return;
    }
}

fn check_etc_shadow(entry: &ResolvedEntry<'_>, declaration: &Declaration, out: &mut Vec<Diagnostic>) {
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
    // contents are blankslate's.
    let enclosing = ancestors(path).filter_map(|a| a.strip_prefix("/etc/")).find(|a| declaration.etc.contains_key(*a));
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
        out.push(
            Diagnostic::error(
                Rule::ShadowsEtc,
                entry.entry.span,
                format!("persisted `{path}` would hide the managed /etc entry `{managed}`"),
            )
            .with_help("an /etc entry is either managed (under [etc]) or persisted, not both"),
        );
    }
}

fn check_persistent_roots(
    entry: &ResolvedEntry<'_>,
    declaration: &Declaration,
    diagnostics: &Diagnostics,
    out: &mut Vec<Diagnostic>,
) {
    for (mount, root) in &declaration.persist {
        let line = line_of(diagnostics, root.span);
        if *mount == entry.path || is_inside(mount, &entry.path) {
            out.push(
                Diagnostic::error(
                    Rule::RootInsidePersisted,
                    entry.entry.span,
                    if *mount == entry.path {
                        format!("persisted `{mount}` is where a persistent root is mounted")
                    } else {
                        format!("persisted `{}` contains the persistent root `{mount}`", entry.path)
                    },
                )
                .with_help(format!("the volume mounted at `{mount}` (line {line}) must not be persisted into itself")),
            );
        } else if is_inside(&entry.path, mount) {
            out.push(
                Diagnostic::error(
                    Rule::RootInsidePersisted,
                    entry.entry.span,
                    format!("`{}` lies inside the persistent root `{mount}`", entry.path),
                )
                .with_help("declared paths name where data appears in the ephemeral root, not where it is stored"),
            );
        }
    }
}

/// One directory may be asked for only one owner and mode: by its own entry, or as
/// the `parent` of entries directly inside it.
fn check_parent_owners(
    entries: &[ResolvedEntry<'_>],
    by_path: &HashMap<&str, usize>,
    diagnostics: &Diagnostics,
    out: &mut Vec<Diagnostic>,
) {
    let mut wanted: HashMap<&str, (&Owner, Span)> = HashMap::new();
    for entry in entries {
        let Some(owner) = &entry.entry.parent else { continue };
        let dir = parent(&entry.path);
        let declared = by_path.get(dir).map(|&i| &entries[i]).filter(|d| d.entry.kind == EntryKind::Directory);
        let earlier = declared.map(|d| (&d.entry.owner, d.entry.span)).or_else(|| wanted.get(dir).copied());
        match earlier {
            Some((first, span)) if first != owner => {
                let line = line_of(diagnostics, span);
                out.push(
                    Diagnostic::error(
                        Rule::ParentConflict,
                        entry.entry.span,
                        format!(
                            "parent `{dir}` is asked to be {}:{} {} here but {}:{} {} on line {line}",
                            owner.user, owner.group, owner.mode, first.user, first.group, first.mode
                        ),
                    )
                    .with_help("give every entry in this directory the same `parent`, or none"),
                );
            }
            Some(_) => {}
            None => {
                wanted.insert(dir, (owner, entry.entry.span));
            }
        }
    }
}

fn check_names(declaration: &Declaration, entries: &[ResolvedEntry<'_>], users: &UserDb, out: &mut Vec<Diagnostic>) {
    let mut owners: Vec<(&Owner, Span)> = Vec::new();
    for entry in entries {
        owners.push((&entry.entry.owner, entry.entry.span));
        owners.extend(entry.entry.parent.as_ref().map(|p| (p, entry.entry.span)));
    }
    let copies = declaration.etc.values().filter(|e| matches!(e.mode, EtcMode::Copy(_)));
    let etc_owners: Vec<(&str, &str, Span)> = copies.map(|e| (e.user.as_str(), e.group.as_str(), e.span)).collect();
    let mut all: Vec<(&str, &str, Span)> =
        owners.iter().map(|(o, s)| (o.user.as_str(), o.group.as_str(), *s)).chain(etc_owners).collect();
    // One warning per unknown name, at its first use in the text: a user with a
    // dozen entries in their home is one finding, not a dozen.
    all.sort_by_key(|(_, _, span)| span.start);
    let use_count = |is_user: bool, name: &str| {
        all.iter().filter(|(u, g, _)| if is_user { *u == name } else { *g == name }).count()
    };
    let help = |count: usize| match count {
        1 => "fine if something creates it before activation; otherwise check the spelling".to_owned(),
        n => format!(
            "used by {n} entries, reported once; fine if something creates it before activation, otherwise check the spelling"
        ),
    };
    let mut warned: HashSet<(bool, &str)> = HashSet::new();
    for &(user, group, span) in &all {
        if !users.has_user(user) && warned.insert((true, user)) {
            out.push(
                Diagnostic::warning(Rule::UnknownUser, span, format!("user `{user}` is not in {}", users.source()))
                    .with_help(help(use_count(true, user))),
            );
        }
        if !users.has_group(group) && warned.insert((false, group)) {
            // The source names the passwd file; groups come from its sibling.
            let groups = users
                .source()
                .strip_suffix("passwd")
                .map_or_else(|| users.source().to_owned(), |dir| format!("{dir}group"));
            out.push(
                Diagnostic::warning(Rule::UnknownUser, span, format!("group `{group}` is not in {groups}"))
                    .with_help(help(use_count(false, group))),
            );
        }
    }
}
