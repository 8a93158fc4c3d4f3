//! The declaration: what persists, what `/etc` holds, and how the root is made.
//!
//! [`check`] turns TOML text into a validated [`Declaration`] plus [`Diagnostics`];
//! [`Declaration::canonical_json`] gives the stable serialization that generations
//! hash; [`write::to_toml`] writes a declaration back as native TOML (for imports).

pub mod diag;
pub mod model;
mod parse;
pub mod paths;
pub mod users;
mod validate;
pub mod write;

use std::path::{Path, PathBuf};

pub use diag::{Diagnostic, Diagnostics, Rule, Severity};
pub use model::*;
pub use users::UserDb;

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
    let source =
        std::fs::read_to_string(file).map_err(|source| LoadError::Read { path: file.to_path_buf(), source })?;
    let checked = check(file, &source, users);
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

fn sort_entries(entries: &mut [Entry]) {
    for entry in entries.iter_mut() {
        entry.options.sort();
        entry.options.dedup();
    }
    entries.sort_by(|a, b| a.path.cmp(&b.path));
}
