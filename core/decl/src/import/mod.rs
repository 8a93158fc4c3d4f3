//! Importing the persistence settings of a NixOS configuration into a native
//! [`Declaration`].
//!
//! Three sources are understood, each as the JSON that `nix eval --json` prints:
//!
//! - [`impermanence`]: `config.environment.persistence` of the
//!   [impermanence](https://github.com/nix-community/impermanence) module;
//! - [`preservation`]: `config.preservation.preserveAt` of the
//!   [preservation](https://github.com/nix-community/preservation) module;
//! - [`home_manager`]: `home.persistence` of impermanence's Home Manager module, for
//!   one user or for every user of a NixOS configuration.
//!
//! [`IMPERMANENCE_EVAL`], [`PRESERVATION_EVAL`], [`HOME_MANAGER_EVAL`] and
//! [`HOME_MANAGER_STANDALONE_EVAL`] are the commands that print them. An [`Importer`]
//! takes several of them into one declaration (a NixOS configuration with its
//! users' Home Manager settings).
//!
//! Nothing is dropped silently. Every field is either mapped onto the declaration,
//! consumed because it is derived from fields that are (and agrees with them), or
//! reported as an [`ImportNote`]: unknown fields, values blankslate cannot express,
//! and settings blankslate interprets differently. Entries are never declared twice.
//! The imported declaration is rendered with [`write::to_toml`] and checked with
//! [`decl::check`] before it is returned; anything that check reports becomes a note
//! too, so a caller that sees no such note can rely on the TOML being valid.
//!
//! Parent directories: both modules print a fully defaulted owner for the parent
//! of every entry. It becomes [`Entry::parent`] only when it differs from what
//! blankslate does for a parent anyway (`root:root 0755`, or the user's own owner
//! and `0755` inside a home); preservation's `configureParent = true` always sets it.

mod home_manager;
mod impermanence;
mod preservation;

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::Path;

use serde_json::{Map, Value};

use crate::{
    self as decl, Declaration, Entry, EntryKind, How, Mode, MountOption, Owner, PersistRoot, Span, UserEntries,
    default_home, write,
};

/// The `--apply` function of the eval commands, a `let` ending in `in`: `clean`
/// replaces every value that throws when read by `null` and keeps the rest.
/// Impermanence declares its removed options with `mkRemovedOptionModule`, whose
/// values throw, so a bare `nix eval --json` of its options fails (impermanence
/// issue #305); on versions where those options are real (Home Manager's `method`
/// and `defaultDirectoryMethod` before the rework) their values are kept.
macro_rules! nix_clean {
    () => {
        "let clean = v: let r = builtins.tryEval v; in if !r.success then null else if builtins.isAttrs r.value then builtins.mapAttrs (_: clean) r.value else if builtins.isList r.value then map clean r.value else r.value; in"
    };
}

/// The `clean` function's definition, as in every eval command (and in the script
/// that generated the test fixtures).
pub const NIX_CLEAN: &str = nix_clean!();

/// Prints `config.environment.persistence` of the NixOS host `HOST` for
/// [`impermanence`].
pub const IMPERMANENCE_EVAL: &str = concat!(
    "nix eval --json '.#nixosConfigurations.HOST.config.environment.persistence' --apply '",
    nix_clean!(),
    " clean'"
);

/// Prints `home.persistence` of every Home Manager user of the NixOS host `HOST`,
/// by user name, for [`home_manager`].
pub const HOME_MANAGER_EVAL: &str = concat!(
    "nix eval --json '.#nixosConfigurations.HOST.config.home-manager.users' --apply '",
    nix_clean!(),
    " builtins.mapAttrs (_: hm: clean (hm.home.persistence or { }))'"
);

/// Prints `home.persistence` of the standalone Home Manager configuration `USER`
/// (one user's: give its name to [`home_manager`]).
pub const HOME_MANAGER_STANDALONE_EVAL: &str =
    concat!("nix eval --json '.#homeConfigurations.USER.config.home.persistence' --apply '", nix_clean!(), " clean'");

/// Prints `config.preservation.preserveAt` of the NixOS host `HOST` for
/// [`preservation`]. Preservation has no removed options, so nothing needs cleaning.
pub const PRESERVATION_EVAL: &str = "nix eval --json '.#nixosConfigurations.HOST.config.preservation.preserveAt'";

/// Something about the imported settings worth a person's attention: a field that
/// was not imported, or one blankslate honours differently.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportNote {
    /// Where in the JSON, such as `"/persist".directories[3].method`.
    pub path: String,
    pub message: String,
}

impl fmt::Display for ImportNote {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

/// The result of an import: the declaration and what to know about it.
#[derive(Debug, Clone)]
pub struct Imported {
    pub declaration: Declaration,
    pub notes: Vec<ImportNote>,
}

impl Imported {
    /// The declaration as native TOML.
    pub fn to_toml(&self) -> String {
        write::to_toml(&self.declaration)
    }
}

/// Why the JSON could not be imported at all.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("the input is not valid JSON (line {line}, column {column}): {message}")]
    Json { line: usize, column: usize, message: String },
    #[error("{path}: expected {expected}, found {found}")]
    Shape { path: String, expected: &'static str, found: String },
    #[error("{path}: the required field `{key}` is missing")]
    Missing { path: String, key: &'static str },
    #[error("{path} does not say whose home it is for")]
    NoUser { path: String },
    #[error("{path}: {problem}; nothing is imported")]
    Home { path: String, problem: String },
}

/// Whose Home Manager settings are imported, where the JSON does not say. Each field
/// is used only when given (the JSON's own values take precedence for the home).
#[derive(Debug, Clone, Default)]
pub struct HomeUser {
    /// The user, for one user's `home.persistence` (a map by user name names them).
    pub name: Option<String>,
    /// The home directory; else the one the entries carry, else `/home/NAME`.
    pub home: Option<String>,
    /// The user's primary group, which Home Manager does not know.
    pub group: Option<String>,
}

/// Several sources into one declaration: each call adds one JSON document; an error
/// names the place in the document that was being read.
#[derive(Debug, Default)]
pub struct Importer {
    builder: Builder,
}

impl Importer {
    pub fn new() -> Importer {
        Importer::default()
    }

    /// Adds the JSON that [`IMPERMANENCE_EVAL`] prints.
    pub fn impermanence(&mut self, json: &str) -> Result<(), ImportError> {
        each_root(&mut self.builder, &parse_json(json)?, impermanence::persistent_root)
    }

    /// Adds the JSON that [`PRESERVATION_EVAL`] prints.
    pub fn preservation(&mut self, json: &str) -> Result<(), ImportError> {
        each_root(&mut self.builder, &parse_json(json)?, preservation::persistent_root)
    }

    /// Adds the JSON that [`HOME_MANAGER_EVAL`] (users by name) or
    /// [`HOME_MANAGER_STANDALONE_EVAL`] (one user's) prints.
    pub fn home_manager(&mut self, json: &str, user: &HomeUser) -> Result<(), ImportError> {
        home_manager::import(&mut self.builder, &parse_json(json)?, user)
    }

    /// The declaration, checked (see [`Imported`]).
    pub fn finish(self) -> Imported {
        self.builder.finish()
    }
}

/// Imports the JSON that [`IMPERMANENCE_EVAL`] prints.
pub fn impermanence(json: &str) -> Result<Imported, ImportError> {
    let mut importer = Importer::new();
    importer.impermanence(json)?;
    Ok(importer.finish())
}

/// Imports the JSON that [`PRESERVATION_EVAL`] prints.
pub fn preservation(json: &str) -> Result<Imported, ImportError> {
    let mut importer = Importer::new();
    importer.preservation(json)?;
    Ok(importer.finish())
}

/// Imports the JSON that [`HOME_MANAGER_EVAL`] or [`HOME_MANAGER_STANDALONE_EVAL`]
/// prints.
pub fn home_manager(json: &str, user: &HomeUser) -> Result<Imported, ImportError> {
    let mut importer = Importer::new();
    importer.home_manager(json, user)?;
    Ok(importer.finish())
}

fn parse_json(json: &str) -> Result<Value, ImportError> {
    serde_json::from_str(json).map_err(|error| {
        let text = error.to_string();
        let suffix = format!(" at line {} column {}", error.line(), error.column());
        let message = text.strip_suffix(&suffix).unwrap_or(&text).to_owned();
        ImportError::Json { line: error.line(), column: error.column(), message }
    })
}

// ---------------------------------------------------------------------------
// JSON paths and values

/// The JSON path of a top-level attribute: always quoted (`"/persist"`).
fn root_path(name: &str) -> String {
    serde_json::to_string(name).expect("a string always serializes")
}

/// `base.key`, quoting the key unless it is a plain identifier.
fn child_path(base: &str, key: &str) -> String {
    let plain = key.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && key.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-'));
    if plain { format!("{base}.{key}") } else { format!("{base}.{}", root_path(key)) }
}

fn index_path(base: &str, index: usize) -> String {
    format!("{base}[{index}]")
}

fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an attribute set",
    }
}

fn shape(path: &str, expected: &'static str, value: &Value) -> ImportError {
    ImportError::Shape { path: path.to_owned(), expected, found: type_name(value).to_owned() }
}

/// A short rendering of a value for messages.
fn brief(value: &Value) -> String {
    let text = value.to_string();
    if text.chars().count() <= 60 {
        return text;
    }
    let cut: String = text.chars().take(57).collect();
    format!("{cut}...")
}

/// An attribute set being read: remembers which keys were looked at, so that
/// [`Obj::finish`] can report every other one.
struct Obj<'a> {
    map: &'a Map<String, Value>,
    path: String,
    seen: Vec<&'a str>,
}

impl<'a> Obj<'a> {
    fn new(value: &'a Value, path: String) -> Result<Obj<'a>, ImportError> {
        match value {
            Value::Object(map) => Ok(Obj { map, path, seen: Vec::new() }),
            other => Err(shape(&path, "an attribute set", other)),
        }
    }

    fn at(&self, key: &str) -> String {
        child_path(&self.path, key)
    }

    /// The value of `key`, marking it read; `null` counts as absent.
    fn get(&mut self, key: &str) -> Option<&'a Value> {
        let (name, value) = self.map.get_key_value(key)?;
        self.seen.push(name);
        (!value.is_null()).then_some(value)
    }

    /// Marks `key` read without looking at it.
    fn skip(&mut self, key: &str) {
        let _ = self.get(key);
    }

    fn str(&mut self, key: &str) -> Result<Option<&'a str>, ImportError> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::String(text)) => Ok(Some(text)),
            Some(other) => Err(shape(&self.at(key), "a string", other)),
        }
    }

    fn required_str(&mut self, key: &'static str) -> Result<&'a str, ImportError> {
        self.str(key)?.ok_or_else(|| ImportError::Missing { path: self.path.clone(), key })
    }

    fn bool(&mut self, key: &str) -> Result<Option<bool>, ImportError> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Bool(value)) => Ok(Some(*value)),
            Some(other) => Err(shape(&self.at(key), "true or false", other)),
        }
    }

    /// A list; absent means empty.
    fn list(&mut self, key: &str) -> Result<&'a [Value], ImportError> {
        match self.get(key) {
            None => Ok(&[]),
            Some(Value::Array(items)) => Ok(items),
            Some(other) => Err(shape(&self.at(key), "a list", other)),
        }
    }

    fn obj(&mut self, key: &str) -> Result<Option<Obj<'a>>, ImportError> {
        let path = self.at(key);
        self.get(key).map(|value| Obj::new(value, path)).transpose()
    }

    /// The attributes of an attribute set under `key`; absent means none.
    fn attrs(&mut self, key: &str) -> Result<Vec<(&'a str, &'a Value)>, ImportError> {
        match self.get(key) {
            None => Ok(Vec::new()),
            Some(Value::Object(map)) => Ok(map.iter().map(|(k, v)| (k.as_str(), v)).collect()),
            Some(other) => Err(shape(&self.at(key), "an attribute set", other)),
        }
    }

    /// Notes every key that was never read.
    fn finish(self, notes: &mut Vec<ImportNote>) {
        for (key, value) in self.map {
            if !self.seen.contains(&key.as_str()) {
                notes.push(ImportNote {
                    path: child_path(&self.path, key),
                    message: format!("unknown field, not imported (value: {})", brief(value)),
                });
            }
        }
    }
}

// ---------------------------------------------------------------------------
// Paths, names and modes

/// A path without empty or `.` components, joined by `/` and without a leading
/// one. `Some("")` is the base itself (`/`, or the home). `None` when the path has a
/// `..` component or a NUL byte, which no declaration may hold.
fn normalize(text: &str) -> Option<String> {
    if text.contains('\0') {
        return None;
    }
    let mut parts = Vec::new();
    for part in text.split('/') {
        match part {
            "" | "." => {}
            ".." => return None,
            other => parts.push(other),
        }
    }
    Some(parts.join("/"))
}

/// `home/relative` for a normalized relative path.
fn join_home(home: &str, relative: &str) -> String {
    if relative.is_empty() { home.to_owned() } else { format!("{}/{relative}", home.trim_end_matches('/')) }
}

/// The parent of a normalized absolute path (`/` for top-level names).
fn parent_of(path: &str) -> &str {
    match path.rfind('/') {
        Some(0) | None => "/",
        Some(cut) => &path[..cut],
    }
}

/// A user or group name blankslate accepts (the declaration parser's rule).
fn valid_name(name: &str) -> bool {
    let first_ok = name.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_');
    first_ok
        && name.len() <= 32
        && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
        && !name.ends_with('.')
}

/// A mode as written for `chmod`/`mkdir --mode`: octal (`"0700"`), or symbolic made
/// of absolute clauses (`"u=rwx,g=rx,o="`), computed from nothing. Symbolic
/// clauses with `+` or `-`, or without a `who`, depend on the existing mode or the
/// umask and are refused.
fn parse_mode(text: &str, kind: EntryKind) -> Result<Mode, String> {
    if let Some(mode) = Mode::parse_octal(text) {
        return Ok(mode);
    }
    if text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("`{text}` is not an octal mode of at most 7777"));
    }
    let mut bits = 0u32;
    for clause in text.split(',') {
        let Some((who, perms)) = clause.split_once('=') else {
            return Err(format!(
                "the symbolic mode `{text}` is relative to an existing mode (only `who=perms` clauses can be imported)"
            ));
        };
        if who.is_empty() || !who.chars().all(|c| "ugoa".contains(c)) || perms.contains(['=', '+', '-']) {
            return Err(format!("`{text}` is not a mode blankslate can import (write it as octal, like \"0750\")"));
        }
        for class in who.chars().flat_map(|c| if c == 'a' { vec!['u', 'g', 'o'] } else { vec![c] }) {
            let (shift, special) = match class {
                'u' => (6, 0o4000),
                'g' => (3, 0o2000),
                _ => (0, 0o1000),
            };
            bits &= !((0o7 << shift) | special);
            for p in perms.chars() {
                bits |= match p {
                    'r' => 0o4 << shift,
                    'w' => 0o2 << shift,
                    'x' => 0o1 << shift,
                    'X' if kind == EntryKind::Directory || bits & 0o111 != 0 => 0o1 << shift,
                    's' if class != 'o' => special,
                    't' if class == 'o' => special,
                    'X' | 's' | 't' => 0,
                    _ => return Err(format!("`{text}` has an unknown permission `{p}`")),
                };
            }
        }
    }
    Mode::new(bits).ok_or_else(|| format!("`{text}` is not a valid mode"))
}

/// The most frequent of `names` (the first of equals), if any.
fn majority<'a>(names: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let mut counts: Vec<(&str, usize)> = Vec::new();
    for name in names {
        match counts.iter_mut().find(|(n, _)| *n == name) {
            Some((_, count)) => *count += 1,
            None => counts.push((name, 1)),
        }
    }
    let best = counts.iter().map(|(_, c)| *c).max()?;
    counts.into_iter().find(|(_, c)| *c == best).map(|(n, _)| n)
}

// ---------------------------------------------------------------------------
// Building the declaration

fn root_mut<'r>(roots: &'r mut BTreeMap<String, PersistRoot>, mount: &str) -> &'r mut PersistRoot {
    roots.entry(mount.to_owned()).or_insert_with(|| PersistRoot {
        volume: None,
        span: Span::default(),
        hide_mounts: false,
        directories: Vec::new(),
        files: Vec::new(),
        users: BTreeMap::new(),
    })
}

/// The user whose home an entry lives in.
#[derive(Debug, Clone, PartialEq, Eq)]
struct UserCtx {
    name: String,
    home: String,
    /// The group entries get when they name none (the user's primary group).
    group: String,
}

impl UserCtx {
    fn owner(&self, mode: Mode) -> Owner {
        Owner { user: self.name.clone(), group: self.group.clone(), mode }
    }
}

/// A fresh entry with blankslate's defaults for its kind.
/// Collects persistent roots and entries, refusing duplicates, and the notes.
#[derive(Debug, Default)]
struct Builder {
    roots: BTreeMap<String, PersistRoot>,
    /// Absolute path of every entry taken, with the JSON path it came from.
    taken: HashMap<String, String>,
    notes: Vec<ImportNote>,
}

impl Builder {
    /// Where a persistent root stores its entries: its `persistentStoragePath`, else
    /// its attribute name; `None` (with a note) when that path cannot be declared.
    /// Notes when the two differ or when another root of the system stores in the
    /// same place (`shared`: a user's roots always share the system's volumes).
    fn storage_mount(&mut self, o: &mut Obj<'_>, name: &str, shared: bool) -> Result<Option<String>, ImportError> {
        let given = o.str("persistentStoragePath")?.unwrap_or(name);
        let Some(mount) = self.path(given, false, &o.at("persistentStoragePath")) else {
            self.note(o.path.clone(), "the persistent storage path cannot be declared; none of this root is imported");
            return Ok(None);
        };
        if normalize(name).map(|n| format!("/{n}")).as_deref() != Some(mount.as_str()) {
            self.note(
                o.at("persistentStoragePath"),
                format!("the entries are persisted in `{mount}`, not `{name}`; they are declared under `{mount}`"),
            );
        }
        if self.roots.contains_key(&mount) && !shared {
            self.note(
                o.path.clone(),
                format!("another persistent root also stores in `{mount}`; their entries are declared together"),
            );
        }
        Ok(Some(mount))
    }
    fn note(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.notes.push(ImportNote { path: path.into(), message: message.into() });
    }

    fn root(&mut self, mount: &str) -> &mut PersistRoot {
        root_mut(&mut self.roots, mount)
    }

    /// A user or group name from the JSON, or `fallback` (with a note) when it is
    /// one blankslate cannot declare.
    fn name(&mut self, given: Option<&str>, fallback: &str, path: &str) -> String {
        match given {
            Some(name) if valid_name(name) => name.to_owned(),
            Some(name) => {
                self.note(
                    path,
                    format!(
                        "`{name}` is not a user or group name blankslate accepts; `{fallback}` is declared instead"
                    ),
                );
                fallback.to_owned()
            }
            None => fallback.to_owned(),
        }
    }

    /// A mode from the JSON, or the default for `kind` (with a note) when it
    /// cannot be read.
    fn mode(&mut self, given: Option<&str>, kind: EntryKind, path: &str) -> Mode {
        let fallback = kind.default_mode();
        let Some(text) = given else { return fallback };
        parse_mode(text, kind).unwrap_or_else(|why| {
            self.note(path, format!("{why}; {fallback} is declared instead"));
            fallback
        })
    }

    /// The home of `name`: `given` (normalized) or else `/home/NAME`. A system or
    /// state path ([`decl::home_problem`]) is an error naming `path`: the JSON may be
    /// the user's own, and that user must not be given `/etc`.
    fn home(&mut self, name: &str, given: Option<&str>, path: &str) -> Result<String, ImportError> {
        let home = given.and_then(|given| self.path(given, false, path)).unwrap_or_else(|| default_home(name));
        match decl::home_problem(name, &home, self.roots.keys().map(String::as_str)) {
            Some(problem) => Err(ImportError::Home { path: path.to_owned(), problem }),
            None => Ok(home),
        }
    }

    /// Normalizes a declared path; notes and returns `None` when it cannot be
    /// declared. For `user` the result is relative to the home, else absolute.
    fn path(&mut self, given: &str, in_home: bool, path: &str) -> Option<String> {
        let Some(normal) = normalize(given) else {
            self.note(path, format!("`{}` has a `..` component or a NUL byte; not imported", given.escape_debug()));
            return None;
        };
        let result = if in_home { normal } else { format!("/{normal}") };
        if result == "/" {
            self.note(path, "the whole root cannot be persisted; not imported");
            return None;
        }
        if given != result && !(in_home && result.is_empty()) {
            self.note(path, format!("`{given}` is declared as `{result}`"));
        }
        Some(result)
    }

    /// Adds `entry` to the persistent root at `mount` (in `user`'s home when given),
    /// unless its path is already declared. An empty relative path (the home
    /// itself) becomes a system entry for the home directory.
    fn push(&mut self, mount: &str, user: Option<&UserCtx>, mut entry: Entry, json_path: &str) {
        let user = match user {
            Some(ctx) if entry.path.is_empty() => {
                entry.path.clone_from(&ctx.home);
                self.note(
                    json_path,
                    format!("the home directory of `{}` itself is declared as the directory `{}`", ctx.name, ctx.home),
                );
                None
            }
            other => other,
        };
        let absolute = user.map_or_else(|| entry.path.clone(), |ctx| join_home(&ctx.home, &entry.path));
        if let Some(first) = self.taken.get(&absolute) {
            let message = format!("`{absolute}` is already declared by {first}; this entry is not imported");
            self.note(json_path, message);
            return;
        }
        if absolute == "/etc/ssh" && entry.kind == EntryKind::Directory {
            self.note(
                json_path,
                format!(
                    "all of /etc/ssh is persisted, but NixOS writes sshd_config, ssh_config and moduli there from the configuration: once /etc comes from blankslate's store (build --nixos-etc), this mount hides them; {}",
                    decl::SSH_KEYS_HELP
                ),
            );
        }
        let root = root_mut(&mut self.roots, mount);
        let Some(ctx) = user else {
            match entry.kind {
                EntryKind::Directory => root.directories.push(entry),
                EntryKind::File => root.files.push(entry),
            }
            self.taken.insert(absolute, json_path.to_owned());
            return;
        };
        let entries = root.users.entry(ctx.name.clone()).or_insert_with(|| UserEntries {
            span: Span::default(),
            home: ctx.home.clone(),
            home_span: Span::default(),
            group: ctx.group.clone(),
            directories: Vec::new(),
            files: Vec::new(),
        });
        if entries.home != ctx.home {
            let message = format!(
                "`{}` already has the home `{}` in `{mount}`; this entry is not imported",
                ctx.name, entries.home
            );
            self.note(json_path, message);
            return;
        }
        match entry.kind {
            EntryKind::Directory => entries.directories.push(entry),
            EntryKind::File => entries.files.push(entry),
        }
        self.taken.insert(absolute, json_path.to_owned());
    }

    /// The declaration, checked: whatever [`decl::check`] reports becomes a note.
    fn finish(mut self) -> Imported {
        // A volume that hides all its mounts needs no entry to say so (an entry of a
        // Home Manager user whose own setting hid its mounts, say).
        for root in self.roots.values_mut().filter(|r| r.hide_mounts) {
            let users = root.users.values_mut().flat_map(|u| u.directories.iter_mut().chain(u.files.iter_mut()));
            for entry in root.directories.iter_mut().chain(root.files.iter_mut()).chain(users) {
                entry.options.retain(|o| *o != MountOption::Hidden);
            }
        }
        let declaration = Declaration { persist: self.roots, ..Declaration::default() };
        let mut notes = self.notes;
        let text = write::to_toml(&declaration);
        let checked = decl::check(Path::new("imported.toml"), &text, None);
        for diagnostic in &checked.diagnostics.items {
            let severity = match diagnostic.severity {
                decl::Severity::Error => "error",
                decl::Severity::Warning => "warning",
            };
            let line = diagnostic.span.map(|s| format!(" on line {}", checked.diagnostics.locate(s.start).line));
            let help = diagnostic.help.as_ref().map(|h| format!(" ({h})"));
            notes.push(ImportNote {
                path: "(declaration)".into(),
                message: format!(
                    "`blankslate check` reports {severity}[{}]{}: {}{}",
                    diagnostic.rule.name(),
                    line.unwrap_or_default(),
                    diagnostic.message,
                    help.unwrap_or_default()
                ),
            });
        }
        Imported { declaration, notes }
    }
}

/// Imports every persistent root of the top-level attribute set with `root`.
fn each_root(
    builder: &mut Builder,
    json: &Value,
    root: impl Fn(&mut Builder, &str, &Value) -> Result<(), ImportError>,
) -> Result<(), ImportError> {
    let Value::Object(top) = json else {
        return Err(shape("(top level)", "an attribute set of persistent roots", json));
    };
    for (name, value) in top {
        root(builder, name, value)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_paths() {
        assert_eq!(root_path("/persist"), "\"/persist\"");
        assert_eq!(child_path("\"/p\"", "directories"), "\"/p\".directories");
        assert_eq!(child_path("\"/p\".users", "alice.b"), "\"/p\".users.\"alice.b\"");
        assert_eq!(index_path("x", 3), "x[3]");
    }

    #[test]
    fn modes() {
        let dir = EntryKind::Directory;
        assert_eq!(parse_mode("0700", dir), Ok(Mode::new(0o700).unwrap()));
        assert_eq!(parse_mode("750", dir), Ok(Mode::new(0o750).unwrap()));
        assert_eq!(parse_mode("u=rwx,g=rx,o=", dir), Ok(Mode::new(0o750).unwrap()));
        assert_eq!(parse_mode("a=rX", dir), Ok(Mode::new(0o555).unwrap()));
        assert_eq!(parse_mode("a=rX", EntryKind::File), Ok(Mode::new(0o444).unwrap()));
        assert_eq!(parse_mode("u=rwxs,o=t", dir), Ok(Mode::new(0o5700).unwrap()));
        assert!(parse_mode("u+rwx", dir).is_err());
        assert!(parse_mode("=rwx", dir).is_err());
        assert!(parse_mode("0999", dir).is_err());
        assert!(parse_mode("u=rwq", dir).is_err());
    }

    #[test]
    fn paths() {
        assert_eq!(normalize("/var//lib/./foo/").as_deref(), Some("var/lib/foo"));
        assert_eq!(normalize(".").as_deref(), Some(""));
        assert_eq!(normalize("/var/../etc"), None);
        assert_eq!(join_home("/home/a/", ".ssh"), "/home/a/.ssh");
        assert_eq!(join_home("/home/a", ""), "/home/a");
        assert_eq!(parent_of("/etc/machine-id"), "/etc");
        assert_eq!(parent_of("/x"), "/");
    }

    #[test]
    fn majorities() {
        assert_eq!(majority(["users", "wheel", "users"]), Some("users"));
        assert_eq!(majority(["a", "b"]), Some("a"));
        assert_eq!(majority([]), None);
    }

    #[test]
    fn bad_json_has_a_location() {
        let error = impermanence("{\n  \"/persist\": [1,\n}").unwrap_err();
        match error {
            ImportError::Json { line, column, message } => {
                assert_eq!(line, 3);
                assert!(column >= 1);
                assert!(!message.contains("at line"), "{message}");
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn the_eval_commands_are_complete() {
        for command in [IMPERMANENCE_EVAL, PRESERVATION_EVAL, HOME_MANAGER_EVAL, HOME_MANAGER_STANDALONE_EVAL] {
            assert!(command.starts_with("nix eval --json '.#"), "{command}");
            assert_eq!(command.matches('\'').count(), 2 + 2 * usize::from(command.contains("--apply")), "{command}");
        }
        for command in [IMPERMANENCE_EVAL, HOME_MANAGER_EVAL, HOME_MANAGER_STANDALONE_EVAL] {
            assert!(
                command.contains(NIX_CLEAN) && command.ends_with(")'") || command.ends_with(" clean'"),
                "{command}"
            );
        }
    }
}
