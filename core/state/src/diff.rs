//! What changes between two generations: their `/etc` manifests entry by entry,
//! their persisted paths, the root's settings and the audit's ignore globs. The
//! activator plans `/etc` from [`etc_changes`]; `generations diff` and the dry run of a
//! switch show a [`GenerationDiff`].

use std::collections::BTreeMap;
use std::fmt::{self, Write as _};

use serde::Serialize;

use crate::manifest::{EtcKind, Lazy, Manifest, ManifestEntry};
use blankslate_decl::{Declaration, EntryKind, Owner, ResolvedEntry};

/// One `/etc` path whose entry differs: added (`old` is `None`), removed (`new` is
/// `None`) or changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EtcChange<'a> {
    pub path: &'a str,
    pub old: Option<&'a ManifestEntry>,
    pub new: Option<&'a ManifestEntry>,
}

/// Every path whose entry differs between `old` and `new`, in path order: one merge
/// of the two sorted manifests. Entries read from manifests whose written forms are
/// the same bytes are the same, and are not made; nothing is allocated for them. Of
/// manifests read in runs, the runs both have are skipped unread: read the others
/// first ([`Entries::read_unshared`](crate::manifest::Entries::read_unshared)), or
/// a run that cannot be read is a panic.
pub fn etc_changes<'a>(old: &'a Manifest, new: &'a Manifest) -> impl Iterator<Item = EtcChange<'a>> {
    let (old, new) = (&old.entries, &new.entries);
    let (mut old, mut new) = (old.each_unshared(new).peekable(), new.each_unshared(old).peekable());
    let removed = |lazy: Lazy<'a>| EtcChange { path: lazy.path, old: Some(lazy.entry()), new: None };
    let added = |lazy: Lazy<'a>| EtcChange { path: lazy.path, old: None, new: Some(lazy.entry()) };
    std::iter::from_fn(move || {
        loop {
            let change = match (old.peek(), new.peek()) {
                (None, None) => return None,
                (Some(_), None) => old.next().map(removed),
                (None, Some(_)) => new.next().map(added),
                (Some(a), Some(b)) => match a.path.cmp(b.path) {
                    std::cmp::Ordering::Less => old.next().map(removed),
                    std::cmp::Ordering::Greater => new.next().map(added),
                    std::cmp::Ordering::Equal => {
                        let (a, b) = (old.next()?, new.next()?);
                        if a.form.is_some() && a.form == b.form {
                            continue;
                        }
                        let (a_entry, b_entry) = (a.entry(), b.entry());
                        if a_entry == b_entry {
                            continue;
                        }
                        Some(EtcChange { path: a.path, old: Some(a_entry), new: Some(b_entry) })
                    }
                },
            };
            return change;
        }
    })
}

/// An `/etc` entry as the diff describes it: `link`, `link to TARGET`, `copy 0440
/// root:www`, `directory 0710 root:ssl-cert`.
pub fn describe_etc_entry(entry: &ManifestEntry) -> String {
    let owned = |noun: &str| format!("{noun} {:04o} {}:{}", entry.mode_bits(), entry.user, entry.group);
    match &entry.kind {
        EtcKind::Link => "link".to_owned(),
        EtcKind::DirectLink { target } => format!("link to {target}"),
        EtcKind::Copy => owned("copy"),
        EtcKind::Directory => owned("directory"),
    }
}

/// One aspect of a change, `what` going from `from` to `to` (both empty for
/// `contents`, whose bytes the patch shows).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Aspect {
    pub what: &'static str,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub from: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub to: String,
}

impl Aspect {
    fn new(what: &'static str, from: impl Into<String>, to: impl Into<String>) -> Aspect {
        Aspect { what, from: from.into(), to: to.into() }
    }
}

impl fmt::Display for Aspect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.from.is_empty() && self.to.is_empty() {
            f.write_str(self.what)
        } else {
            write!(f, "{} {} -> {}", self.what, self.from, self.to)
        }
    }
}

impl EtcChange<'_> {
    /// What differs between the two entries of a changed path (none for an added or
    /// removed one).
    pub fn aspects(&self) -> Vec<Aspect> {
        let (Some(old), Some(new)) = (self.old, self.new) else { return Vec::new() };
        let mut out = Vec::new();
        if std::mem::discriminant(&old.kind) != std::mem::discriminant(&new.kind) {
            out.push(Aspect::new("kind", describe_etc_entry(old), describe_etc_entry(new)));
        }
        match (&old.kind, &new.kind) {
            (EtcKind::DirectLink { target: a }, EtcKind::DirectLink { target: b }) if a != b => {
                out.push(Aspect::new("target", a, b));
            }
            // The target says it all; a directory has no contents of its own.
            (EtcKind::DirectLink { .. }, EtcKind::DirectLink { .. })
            | (EtcKind::Directory, _)
            | (_, EtcKind::Directory) => {}
            _ if old.hash != new.hash => out.push(Aspect::new("contents", "", "")),
            _ => {}
        }
        if old.kind == new.kind && new.is_owned() {
            let mode = |e: &ManifestEntry| format!("{:04o}", e.mode_bits());
            if mode(old) != mode(new) {
                out.push(Aspect::new("mode", mode(old), mode(new)));
            }
            if (&old.user, &old.group) != (&new.user, &new.group) {
                out.push(Aspect::new(
                    "owner",
                    format!("{}:{}", old.user, old.group),
                    format!("{}:{}", new.user, new.group),
                ));
            }
        }
        out
    }
}

/// A persisted entry as the diff describes it: `directory root:root 0755`, `file
/// alice:users 0600 (symlink), ro`, and its volume when there are several.
fn describe_persisted(entry: &ResolvedEntry<'_>, several_volumes: bool) -> String {
    let e = entry.entry;
    let mut text = format!("{} {}:{} {}", e.kind.noun(), e.owner.user, e.owner.group, e.owner.mode);
    if e.kind == EntryKind::File {
        let _ = write!(text, " ({})", e.how.unwrap_or_default().as_str());
    }
    if !e.options.is_empty() {
        let options: Vec<&str> = e.options.iter().map(|o| o.as_str()).collect();
        let _ = write!(text, ", {}", options.join(","));
    }
    if several_volumes {
        let _ = write!(text, ", in {}", entry.root);
    }
    text
}

fn owner_text(owner: &Owner) -> String {
    format!("{}:{} {}", owner.user, owner.group, owner.mode)
}

fn persisted_aspects(old: &ResolvedEntry<'_>, new: &ResolvedEntry<'_>) -> Vec<Aspect> {
    let (a, b) = (old.entry, new.entry);
    let mut out = Vec::new();
    if a.kind != b.kind {
        out.push(Aspect::new("kind", a.kind.noun(), b.kind.noun()));
    }
    if old.root != new.root {
        out.push(Aspect::new("volume", old.root, new.root));
    }
    if (&a.owner.user, &a.owner.group) != (&b.owner.user, &b.owner.group) {
        out.push(Aspect::new(
            "owner",
            format!("{}:{}", a.owner.user, a.owner.group),
            format!("{}:{}", b.owner.user, b.owner.group),
        ));
    }
    if a.owner.mode != b.owner.mode {
        out.push(Aspect::new("mode", a.owner.mode.to_string(), b.owner.mode.to_string()));
    }
    if a.how.unwrap_or_default() != b.how.unwrap_or_default() && a.kind == EntryKind::File && b.kind == EntryKind::File
    {
        out.push(Aspect::new("how", a.how.unwrap_or_default().as_str(), b.how.unwrap_or_default().as_str()));
    }
    if a.options != b.options {
        let list = |e: &blankslate_decl::Entry| {
            let names: Vec<&str> = e.options.iter().map(|o| o.as_str()).collect();
            if names.is_empty() { "none".to_owned() } else { names.join(",") }
        };
        out.push(Aspect::new("options", list(a), list(b)));
    }
    if a.parent != b.parent {
        let parent = |e: &blankslate_decl::Entry| e.parent.as_ref().map_or_else(|| "as found".to_owned(), owner_text);
        out.push(Aspect::new("parent", parent(a), parent(b)));
    }
    out
}

/// One line of a diff: a path added (`+`), removed (`-`) or changed (`~`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Line {
    pub path: String,
    pub change: Change,
    /// What the path holds in the newer generation (added) or the older (removed).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub entry: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub aspects: Vec<Aspect>,
    /// A unified diff of the contents, for text files, when asked for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub patch: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Change {
    Added,
    Removed,
    Changed,
}

impl Change {
    fn sign(self) -> char {
        match self {
            Change::Added => '+',
            Change::Removed => '-',
            Change::Changed => '~',
        }
    }
}

/// One side of a comparison: a generation's number (none for "nothing active"), its
/// declaration and its `/etc` manifest.
#[derive(Debug, Clone, Copy)]
pub struct Side<'a> {
    pub generation: Option<u32>,
    pub declaration: &'a Declaration,
    pub manifest: &'a Manifest,
}

/// Everything that differs between two generations.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GenerationDiff {
    pub from: Option<u32>,
    pub to: Option<u32>,
    pub etc: Vec<Line>,
    pub persist: Vec<Line>,
    /// `[root]` size and mode.
    pub root: Vec<Aspect>,
    /// `[audit] ignore` globs added and removed.
    pub audit_ignore: Vec<Line>,
}

impl GenerationDiff {
    pub fn between(old: Side<'_>, new: Side<'_>) -> GenerationDiff {
        let etc = etc_changes(old.manifest, new.manifest)
            .map(|change| match (change.old, change.new) {
                (None, Some(entry)) => line(change.path, Change::Added, describe_etc_entry(entry), Vec::new()),
                (Some(entry), None) => line(change.path, Change::Removed, describe_etc_entry(entry), Vec::new()),
                _ => line(change.path, Change::Changed, String::new(), change.aspects()),
            })
            .collect();
        let (before, after) = (by_path(old.declaration), by_path(new.declaration));
        let several = old.declaration.persist.len().max(new.declaration.persist.len()) > 1;
        let mut persist = Vec::new();
        for (path, entry) in &after {
            match before.get(path) {
                None => persist.push(line(path, Change::Added, describe_persisted(entry, several), Vec::new())),
                Some(previous) => {
                    let aspects = persisted_aspects(previous, entry);
                    if !aspects.is_empty() {
                        persist.push(line(path, Change::Changed, String::new(), aspects));
                    }
                }
            }
        }
        for (path, entry) in &before {
            if !after.contains_key(path) {
                persist.push(line(path, Change::Removed, describe_persisted(entry, several), Vec::new()));
            }
        }
        persist.sort_by(|a, b| a.path.cmp(&b.path));
        let (a, b) = (&old.declaration.root, &new.declaration.root);
        let mut root = Vec::new();
        if a.size != b.size {
            root.push(Aspect::new("size", &a.size, &b.size));
        }
        if a.mode != b.mode {
            root.push(Aspect::new("mode", a.mode.to_string(), b.mode.to_string()));
        }
        if a.btrfs != b.btrfs {
            let kind = |root: &blankslate_decl::RootSettings| match &root.btrfs {
                None => "tmpfs".to_owned(),
                Some(btrfs) => format!("btrfs on {}, keeping {} previous roots", btrfs.device, btrfs.keep),
            };
            root.push(Aspect::new("kind", kind(a), kind(b)));
        }
        let (a, b) = (&old.declaration.audit.ignore, &new.declaration.audit.ignore);
        let mut audit_ignore: Vec<Line> = b
            .iter()
            .filter(|g| !a.contains(g))
            .map(|g| line(g, Change::Added, String::new(), Vec::new()))
            .chain(a.iter().filter(|g| !b.contains(g)).map(|g| line(g, Change::Removed, String::new(), Vec::new())))
            .collect();
        audit_ignore.sort_by(|x, y| x.path.cmp(&y.path));
        GenerationDiff { from: old.generation, to: new.generation, etc, persist, root, audit_ignore }
    }

    pub fn is_empty(&self) -> bool {
        self.etc.is_empty() && self.persist.is_empty() && self.root.is_empty() && self.audit_ignore.is_empty()
    }

    /// The counts line: `/etc: 2 added, 1 changed, 0 removed; persisted paths: …`.
    pub fn summary(&self) -> String {
        let count = |lines: &[Line], change: Change| lines.iter().filter(|l| l.change == change).count();
        let counts = |lines: &[Line]| {
            format!(
                "{} added, {} changed, {} removed",
                count(lines, Change::Added),
                count(lines, Change::Changed),
                count(lines, Change::Removed)
            )
        };
        format!("/etc: {}; persisted paths: {}", counts(&self.etc), counts(&self.persist))
    }
}

fn by_path(declaration: &Declaration) -> BTreeMap<String, ResolvedEntry<'_>> {
    declaration.entries().into_iter().map(|e| (e.path.clone(), e)).collect()
}

fn line(path: &str, change: Change, entry: String, aspects: Vec<Aspect>) -> Line {
    Line { path: path.to_owned(), change, entry, aspects, patch: None }
}

fn generation_name(generation: Option<u32>) -> String {
    generation.map_or_else(|| "nothing".to_owned(), |n| format!("generation {n}"))
}

/// Writes one section's lines: `  + path  what`, each followed by its patch if any.
fn write_lines(f: &mut impl fmt::Write, lines: &[Line]) -> fmt::Result {
    let width = lines.iter().map(|l| l.path.len()).max().unwrap_or(0).min(40);
    for l in lines {
        let what = if l.aspects.is_empty() {
            l.entry.clone()
        } else {
            l.aspects.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ")
        };
        writeln!(f, "{}", format!("  {} {:<width$}  {what}", l.change.sign(), l.path).trim_end())?;
        if let Some(patch) = &l.patch {
            f.write_str(patch)?;
        }
    }
    Ok(())
}

impl fmt::Display for GenerationDiff {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{} -> {}", generation_name(self.from), generation_name(self.to))?;
        if self.is_empty() {
            return writeln!(f, "no differences");
        }
        if !self.etc.is_empty() {
            writeln!(f, "/etc:")?;
            write_lines(f, &self.etc)?;
        }
        if !self.persist.is_empty() {
            writeln!(f, "persisted paths:")?;
            write_lines(f, &self.persist)?;
        }
        if !self.root.is_empty() {
            let list: Vec<String> = self.root.iter().map(ToString::to_string).collect();
            writeln!(f, "root: {}", list.join("; "))?;
        }
        if !self.audit_ignore.is_empty() {
            writeln!(f, "audit ignore:")?;
            write_lines(f, &self.audit_ignore)?;
        }
        writeln!(f, "{}", self.summary())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::ManifestEntry;

    fn entry(kind: EtcKind, hash: &str, mode: Option<&str>, group: &str) -> ManifestEntry {
        ManifestEntry {
            kind,
            hash: hash.into(),
            mode: mode.map(str::to_owned),
            user: "root".into(),
            group: group.into(),
        }
    }

    fn manifest(entries: &[(&str, ManifestEntry)]) -> Manifest {
        let mut m = Manifest::new();
        m.entries = entries.iter().map(|(p, e)| ((*p).to_owned(), e.clone())).collect();
        m
    }

    #[test]
    fn etc_changes_merge_both_manifests_in_path_order() {
        let link = |h: &str| entry(EtcKind::Link, h, None, "root");
        let old = manifest(&[("a", link("1")), ("b", link("1")), ("d", link("1"))]);
        let new = manifest(&[("b", link("2")), ("c", link("1")), ("d", link("1"))]);
        let changes: Vec<(&str, bool, bool)> =
            etc_changes(&old, &new).map(|c| (c.path, c.old.is_some(), c.new.is_some())).collect();
        assert_eq!(changes, [("a", true, false), ("b", true, true), ("c", false, true)]);
    }

    #[test]
    fn aspects_name_what_changed() {
        let old = entry(EtcKind::Copy, "1", Some("0440"), "root");
        let new = entry(EtcKind::Copy, "2", Some("0400"), "www");
        let change = EtcChange { path: "sudoers", old: Some(&old), new: Some(&new) };
        let shown: Vec<String> = change.aspects().iter().map(ToString::to_string).collect();
        assert_eq!(shown, ["contents", "mode 0440 -> 0400", "owner root:root -> root:www"]);
        let link = entry(EtcKind::Link, "2", None, "root");
        let change = EtcChange { path: "sudoers", old: Some(&old), new: Some(&link) };
        let shown: Vec<String> = change.aspects().iter().map(ToString::to_string).collect();
        assert_eq!(shown, ["kind copy 0440 root:root -> link", "contents"]);
    }

    #[test]
    fn directories_are_added_removed_and_change_mode_or_owner() {
        let dir = |mode: &str, group: &str| ManifestEntry::directory(mode.into(), "root".into(), group.into());
        let old = manifest(&[("ssl/private", dir("0700", "root")), ("sudoers.d", dir("0750", "root"))]);
        let new = manifest(&[("apt/sources.list.d", dir("0755", "root")), ("ssl/private", dir("0710", "+110"))]);
        let changes: Vec<String> = etc_changes(&old, &new)
            .map(|c| match (c.old, c.new) {
                (None, Some(e)) => format!("+ {} {}", c.path, describe_etc_entry(e)),
                (Some(e), None) => format!("- {} {}", c.path, describe_etc_entry(e)),
                _ => format!("~ {} {:?}", c.path, c.aspects().iter().map(ToString::to_string).collect::<Vec<_>>()),
            })
            .collect();
        assert_eq!(
            changes,
            [
                "+ apt/sources.list.d directory 0755 root:root",
                r#"~ ssl/private ["mode 0700 -> 0710", "owner root:root -> root:+110"]"#,
                "- sudoers.d directory 0750 root:root",
            ]
        );
        let copy = entry(EtcKind::Copy, "1", Some("0440"), "root");
        let change = EtcChange { path: "sudoers.d", old: Some(&copy), new: Some(&old.entries["sudoers.d"]) };
        let shown: Vec<String> = change.aspects().iter().map(ToString::to_string).collect();
        assert_eq!(shown, ["kind copy 0440 root:root -> directory 0750 root:root"]);
    }
}
