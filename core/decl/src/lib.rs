//! The declaration language: what persists, what `/etc` holds, and how the root is
//! made, written in TOML and checked here; and `import`, which turns the
//! configurations of impermanence, preservation and Home Manager into declarations.
//!
//! [`check`] turns TOML text into a validated [`Declaration`] plus [`Diagnostics`];
//! [`Declaration::canonical_json`] gives the stable serialization that generations
//! hash; [`write::to_toml`] writes a declaration back as native TOML (for imports).
//! It reads files (a declaration's `source`s, the user database) through
//! `blankslate-sys` but never writes, mounts or keeps state: the store and generations
//! live in `blankslate-state`, which depends on this crate.

#![forbid(unsafe_code)]

pub mod diag;
pub mod fstab;
pub mod glob;
pub mod import;
pub mod layout;
pub mod model;
mod parse;
pub mod paths;
pub mod secret;
pub mod source;
pub mod users;
mod validate;
pub mod write;

use std::path::{Path, PathBuf};

use serde::Deserialize;

pub use diag::{Diagnostic, Diagnostics, Rule, Severity};
pub use model::*;
pub use users::UserDb;
pub use validate::{MANY_MOUNTS, SSH_KEYS_HELP, home_problem};

/// A declaration text, checked.
#[derive(Debug)]
pub struct Checked {
    /// Present only when there are no errors (warnings allowed).
    pub declaration: Option<Declaration>,
    pub diagnostics: Diagnostics,
}

/// Parses and validates `source`, the text of `file`. `users`, when given, makes
/// unknown owner names warnings.
pub fn check(file: &Path, source: &str, users: Option<&UserDb>) -> Checked {
    let mut diagnostics = Diagnostics::new(file, source);
    let declaration = parse::parse(file, source, &mut diagnostics);
    if let Some(declaration) = &declaration {
        validate::validate(declaration, users, &mut diagnostics);
    }
    diagnostics.sort();
    let declaration = declaration.filter(|_| !diagnostics.has_errors());
    Checked { declaration, diagnostics }
}

/// Checks a declaration file's raw bytes: a text that is not UTF-8 is an error at its
/// first bad byte (the rest is not parsed: every later position would be a guess).
pub fn check_bytes(file: &Path, bytes: &[u8], users: Option<&UserDb>) -> Checked {
    let error = match std::str::from_utf8(bytes) {
        Ok(source) => return check(file, source, users),
        Err(error) => error,
    };
    // The text shown is the file with each bad sequence as U+FFFD; up to the first one
    // it is the file itself, so the offset is the same in both.
    let shown = String::from_utf8_lossy(bytes);
    let start = error.valid_up_to();
    let bad = &bytes[start..start + error.error_len().unwrap_or(bytes.len() - start)];
    let hex: Vec<String> = bad.iter().map(|b| format!("0x{b:02x}")).collect();
    let mut diagnostics = Diagnostics::new(file, &shown);
    diagnostics.items.push(
        Diagnostic::error(
            Rule::NotUtf8,
            Span { start, end: start + char::REPLACEMENT_CHARACTER.len_utf8() },
            format!("the file is not UTF-8 text: invalid byte sequence {}", hex.join(" ")),
        )
        .with_help("declarations are UTF-8 text; convert the file (e.g. `iconv -f latin1 -t utf-8`)"),
    );
    Checked { declaration: None, diagnostics }
}

/// The most a declaration file, or a JSON file to import, may hold: far more than any
/// real one, and a bound on what a command reads when it is pointed at something else.
pub const MAX_FILE_BYTES: u64 = 16 << 20;

/// Reads a declaration file (or a JSON file to import) without blocking on a FIFO or
/// reading a device without end: a regular file of at most [`MAX_FILE_BYTES`]
/// ([`blankslate_sys::fs::read_regular_file`]).
pub fn read_file(file: &Path) -> Result<Vec<u8>, blankslate_sys::fs::FsError> {
    blankslate_sys::fs::read_regular_file(file, MAX_FILE_BYTES)
}

/// Why a declaration file could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("cannot read declaration {}: {source}", path.display())]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{file} is not a valid declaration:\n{diagnostics}", file = .0.file.display(), diagnostics = .0)]
    Invalid(Diagnostics),
}

/// Reads and checks a declaration file; the diagnostics returned with it hold only
/// warnings.
pub fn load(file: &Path, users: Option<&UserDb>) -> Result<(Declaration, Diagnostics), LoadError> {
    let bytes = read_file(file).map_err(|error| LoadError::Read { path: file.to_path_buf(), source: error.source })?;
    let checked = check_bytes(file, &bytes, users);
    match checked.declaration {
        Some(declaration) => Ok((declaration, checked.diagnostics)),
        None => Err(LoadError::Invalid(checked.diagnostics)),
    }
}

impl Declaration {
    /// The same intent in one canonical order: entries sorted by path, options and
    /// ignore globs sorted and deduplicated.
    #[must_use]
    pub fn normalized(&self) -> Declaration {
        let mut normal = self.clone();
        for root in normal.persist.values_mut() {
            sort_entries(&mut root.directories);
            sort_entries(&mut root.files);
            for user in root.users.values_mut() {
                sort_entries(&mut user.directories);
                sort_entries(&mut user.files);
            }
        }
        normal.audit.ignore.sort();
        normal.audit.ignore.dedup();
        normal
    }

    /// Canonical JSON of the normalized declaration: stable key order, no spans, no
    /// whitespace. The same intent always gives the same bytes.
    pub fn canonical_json(&self) -> String {
        serde_json::to_string(&self.normalized()).expect("a declaration always serializes")
    }
}

impl Declaration {
    /// This declaration, with `path` declared as `other` declares it (a top-level entry
    /// of one of its persistent roots), or not at all if `other` does not declare it:
    /// one change carried from `other`, nothing else. A persistent root this one lacks
    /// comes with `other`'s settings.
    #[must_use]
    pub fn with_path_from(&self, other: &Declaration, path: &str) -> Declaration {
        let mut out = self.clone();
        for root in out.persist.values_mut() {
            root.directories.retain(|e| e.path != path);
            root.files.retain(|e| e.path != path);
        }
        let Some(found) = other.entries().into_iter().find(|e| e.user.is_none() && e.path == path) else {
            return out;
        };
        let root = out.persist.entry(found.root.to_owned()).or_insert_with(|| PersistRoot {
            directories: Vec::new(),
            files: Vec::new(),
            users: std::collections::BTreeMap::new(),
            ..other.persist[found.root].clone()
        });
        match found.entry.kind {
            EntryKind::Directory => root.directories.push(found.entry.clone()),
            EntryKind::File => root.files.push(found.entry.clone()),
        }
        out
    }

    /// Reads a declaration back from its canonical JSON (as a generation stores it).
    pub fn from_canonical_json(text: &str) -> Result<Declaration, serde_json::Error> {
        Ok(serde_json::from_str::<Declaration>(text)?.with_entry_kinds())
    }

    /// What comes before the `/etc` entries in a canonical JSON text (`version`,
    /// `root`, `persist`: all that activating the persisted paths needs), read as a
    /// declaration with no `/etc` entries or tree and default audit settings.
    pub fn from_canonical_json_before_etc(prefix: &str) -> Result<Declaration, serde_json::Error> {
        /// The fields canonical JSON writes before `etc`.
        #[derive(Deserialize)]
        struct BeforeEtc {
            version: i64,
            root: RootSettings,
            persist: std::collections::BTreeMap<String, PersistRoot>,
        }
        let BeforeEtc { version, root, persist } = serde_json::from_str(prefix)?;
        let etc = std::collections::BTreeMap::new();
        let declaration = Declaration {
            version,
            root,
            persist,
            etc,
            etc_tree: None,
            audit: AuditSettings::default(),
            net: None,
            base: None,
        };
        Ok(declaration.with_entry_kinds())
    }

    /// The entry kinds, which the JSON holds by list (`directories`, `files`).
    fn with_entry_kinds(mut self) -> Declaration {
        let set_kinds = |directories: &mut [Entry], files: &mut [Entry]| {
            for entry in directories {
                entry.kind = EntryKind::Directory;
            }
            for entry in files {
                entry.kind = EntryKind::File;
            }
        };
        for root in self.persist.values_mut() {
            set_kinds(&mut root.directories, &mut root.files);
            for user in root.users.values_mut() {
                set_kinds(&mut user.directories, &mut user.files);
            }
        }
        self
    }
}

/// Finds where the `/etc` entries begin in a canonical JSON text read piece by piece,
/// so that what precedes them can be read without the rest, which holds every entry's
/// text. Canonical JSON writes the fields in a fixed order: version, root, persist,
/// etc, audit.
#[derive(Debug, Default)]
pub struct EtcFinder {
    depth: u32,
    in_string: bool,
    escaped: bool,
    seen: usize,
    /// The top level's last byte outside strings was a comma: a key follows.
    after_comma: Option<usize>,
}

impl EtcFinder {
    const KEY: &'static [u8] = b"\"etc\":";

    /// Looks at the next piece of the text; once the top-level `"etc":` key is found,
    /// returns the length of what precedes it (up to the comma before it), which,
    /// closed with `}`, is a JSON object of its own.
    pub fn feed(&mut self, piece: &[u8]) -> Option<usize> {
        for &byte in piece {
            let at = self.seen;
            self.seen += 1;
            if let Some(comma) = self.after_comma {
                let offset = at - comma - 1;
                if offset < Self::KEY.len() && byte == Self::KEY[offset] {
                    if offset + 1 == Self::KEY.len() {
                        return Some(comma);
                    }
                } else {
                    self.after_comma = None;
                }
            }
            if self.in_string {
                match (self.escaped, byte) {
                    (true, _) => self.escaped = false,
                    (false, b'\\') => self.escaped = true,
                    (false, b'"') => self.in_string = false,
                    _ => {}
                }
                continue;
            }
            match byte {
                b'"' => self.in_string = true,
                b'{' | b'[' => self.depth += 1,
                b'}' | b']' => self.depth = self.depth.saturating_sub(1),
                b',' if self.depth == 1 => self.after_comma = Some(at),
                _ => {}
            }
        }
        None
    }
}

fn sort_entries(entries: &mut [Entry]) {
    for entry in entries.iter_mut() {
        entry.options.sort();
        entry.options.dedup();
    }
    entries.sort_by(|a, b| a.path.cmp(&b.path));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_path_is_carried_from_another_declaration_and_nothing_else() {
        let base = "version = 1\n[persist.\"/persist\"]\ndirectories = [\"/var/log\"]\n[etc.\"motd\"]\ntext = \"a\"\n";
        let file = "version = 1\n[persist.\"/persist\"]\ndirectories = [\"/var/log\", \"/srv\", \"/opt\"]\n\
                    files = [{ file = \"/etc/key\", mode = \"0600\" }]\n[persist.\"/data\"]\nhide_mounts = true\n\
                    directories = [\"/db\"]\n";
        let base = check(Path::new("base.toml"), base, None).declaration.unwrap();
        let file = check(Path::new("file.toml"), file, None).declaration.unwrap();
        let added = base.with_path_from(&file, "/etc/key");
        let expected = "version = 1\n[persist.\"/persist\"]\ndirectories = [\"/var/log\"]\n\
                        files = [{ file = \"/etc/key\", mode = \"0600\" }]\n[etc.\"motd\"]\ntext = \"a\"\n";
        let expected = check(Path::new("e.toml"), expected, None).declaration.unwrap();
        assert_eq!(added.canonical_json(), expected.canonical_json(), "only /etc/key came over, not /srv or /opt");
        let other_root = base.with_path_from(&file, "/db");
        assert!(other_root.persist["/data"].hide_mounts, "a new root comes with its settings");
        assert_eq!(other_root.persist["/data"].directories.len(), 1);
        let removed = added.with_path_from(&base, "/etc/key");
        assert_eq!(removed.canonical_json(), base.canonical_json());
    }

    #[test]
    fn canonical_json_reads_back_to_the_same_declaration() {
        let text = r#"
version = 1
[root]
size = "2G"
[persist."/persist"]
hide_mounts = true
directories = ["/var/log", { directory = "/srv", user = "www", group = "www", mode = "0750", parent = { mode = "0711" }, options = ["nodev", "ro"] }]
files = [{ file = "/etc/machine-id", how = "symlink" }]
[persist."/persist".users.alice]
group = "users"
directories = [".ssh"]
files = [".bash_history"]
[etc."motd"]
text = "hi\n"
mode = "0640"
group = "adm"
[etc."hosts"]
text = "127.0.0.1 localhost\n"
[audit]
ignore = ["/var/cache/**"]
"#;
        let declaration = check(Path::new("t.toml"), text, None).declaration.unwrap();
        let json = declaration.canonical_json();
        let back = Declaration::from_canonical_json(&json).unwrap();
        assert_eq!(back.canonical_json(), json);
        let entries = back.entries();
        assert_eq!(entries.iter().filter(|e| e.entry.kind == EntryKind::File).count(), 2);
        assert_eq!(
            back.normalized().persist,
            declaration
                .normalized()
                .persist
                .clone()
                .into_iter()
                .map(|(k, mut v)| {
                    for e in v.directories.iter_mut().chain(v.files.iter_mut()) {
                        e.span = Span::default();
                    }
                    for u in v.users.values_mut() {
                        u.span = Span::default();
                        u.home_span = Span::default();
                        for e in u.directories.iter_mut().chain(u.files.iter_mut()) {
                            e.span = Span::default();
                        }
                    }
                    v.span = Span::default();
                    (k, v)
                })
                .collect()
        );
    }
}
