//! Editing a declaration file in place, the way a person would: one entry appended
//! to (or removed from) `[persist."<mount>"].directories` or `.files`, every comment,
//! blank line, key order and quoting style left as it was (`toml_edit`).
//!
//! A new entry is a plain string when it has only defaults, an inline table
//! otherwise (the same style as `decl::write`). In a multi-line array it goes on a
//! line of its own with the indentation of the entry before it; a comment that ended
//! the last line stays on that line. In a one-line array it is appended after `, `.
//!
//! The edited text is validated with `decl::check` by the caller before anything is
//! written, and [`write()`] replaces the file atomically (temporary name, fsync,
//! rename, fsync of the directory), keeping its owner and mode.

use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};

use blankslate_decl::{Entry, EntryKind, write};
use blankslate_sys::fs::{Dir, FsError};
use rustix::fs::{AtFlags, StatxAttributes, StatxFlags};
use toml_edit::{Array, DocumentMut, Item, TableLike, Value};

#[derive(Debug, thiserror::Error)]
pub enum EditError {
    #[error("the declaration is not valid TOML: {0}")]
    Toml(String),
    #[error("the declaration has no persistent root {0} (add a [persist.\"{0}\"] table first)")]
    NoVolume(String),
    #[error("`{0}` in the declaration is not an array; cannot add to it")]
    NotAnArray(String),
    #[error("{path} is declared under [persist.\"{volume}\".users.{user}]; edit that entry by hand")]
    UserEntry { path: String, volume: String, user: String },
    #[error(transparent)]
    Fs(#[from] FsError),
    #[error("cannot resolve the declaration's path {}: {source}", path.display())]
    Path { path: PathBuf, source: std::io::Error },
    #[error("the declaration {} cannot be rewritten ({source}); nothing was changed", file.display())]
    NotWritable { file: PathBuf, source: FsError },
}

/// The TOML value for a new root entry (owner defaults `root:root`), as
/// `decl::write` writes every entry: `"/path"` with only defaults, otherwise an
/// inline table with the fields that differ (a file's `how` always).
pub fn entry_value(entry: &Entry) -> String {
    write::entry_value(entry, "root", "root")
}

fn persist_root<'d>(doc: &'d mut DocumentMut, volume: &str) -> Result<&'d mut dyn TableLike, EditError> {
    let root = doc
        .get_mut("persist")
        .and_then(Item::as_table_like_mut)
        .and_then(|persist| persist.get_mut(volume))
        .ok_or_else(|| EditError::NoVolume(volume.to_owned()))?;
    if let Some(table) = root.as_table_mut() {
        // `[persist."/p".users.x]` alone makes `[persist."/p"]` implicit; a key added
        // to it needs the header written out.
        table.set_implicit(false);
    }
    root.as_table_like_mut().ok_or_else(|| EditError::NoVolume(volume.to_owned()))
}

/// Whether a value in an entry list names `path`.
fn names(value: &Value, kind: EntryKind, path: &str) -> bool {
    match value {
        Value::String(s) => s.value() == path,
        Value::InlineTable(t) => t.get(kind.noun()).and_then(Value::as_str) == Some(path),
        _ => false,
    }
}

/// Whether the declaration text already lists `path` under `volume`'s `kind` list.
pub fn contains(text: &str, volume: &str, kind: EntryKind, path: &str) -> Result<bool, EditError> {
    let mut doc: DocumentMut = text.parse().map_err(|e: toml_edit::TomlError| EditError::Toml(e.to_string()))?;
    let root = persist_root(&mut doc, volume)?;
    Ok(root
        .get(kind.list_name())
        .and_then(Item::as_array)
        .is_some_and(|list| list.iter().any(|v| names(v, kind, path))))
}

/// The text with `entry` (a TOML value, see [`entry_value`]) appended to `volume`'s
/// `kind` list (created if missing).
pub fn add(text: &str, volume: &str, kind: EntryKind, entry: &str) -> Result<String, EditError> {
    let mut doc: DocumentMut = text.parse().map_err(|e: toml_edit::TomlError| EditError::Toml(e.to_string()))?;
    let value: Value = entry.parse().map_err(|e: toml_edit::TomlError| EditError::Toml(e.to_string()))?;
    let root = persist_root(&mut doc, volume)?;
    let list = kind.list_name();
    match root.get_mut(list) {
        None => {
            let mut array = Array::new();
            array.push(value);
            root.insert(list, Item::Value(Value::Array(array)));
        }
        Some(item) => {
            let array = item.as_array_mut().ok_or_else(|| EditError::NotAnArray(list.to_owned()))?;
            push_formatted(array, value);
        }
    }
    Ok(doc.to_string())
}

fn prefix_of(value: &Value) -> String {
    value.decor().prefix().and_then(|p| p.as_str()).unwrap_or("").to_owned()
}

/// Appends `value` in the array's own layout (see the module docs).
fn push_formatted(array: &mut Array, mut value: Value) {
    let Some(last) = array.iter().last() else {
        array.push(value);
        return;
    };
    let last_prefix = prefix_of(last);
    let last_suffix = last.decor().suffix().and_then(|s| s.as_str()).unwrap_or("").to_owned();
    let trailing = array.trailing().as_str().unwrap_or("").to_owned();
    let multi_line = last_prefix.contains('\n') || trailing.contains('\n') || last_suffix.contains('\n');
    if !multi_line {
        value.decor_mut().set_prefix(" ");
        value.decor_mut().set_suffix("");
        array.push_formatted(value);
        return;
    }
    let indent = last_prefix.rsplit('\n').next().unwrap_or("").to_owned();
    if array.trailing_comma() {
        // `trailing` runs from the last comma to `]`: what precedes its last newline
        // (a comment on the last entry's line, commented-out lines) stays before the
        // new entry.
        let cut = trailing.rfind('\n').unwrap_or(0);
        let (before, after) = trailing.split_at(cut);
        let after = after.strip_prefix('\n').unwrap_or(after);
        value.decor_mut().set_prefix(format!("{before}\n{indent}"));
        value.decor_mut().set_suffix("");
        array.set_trailing(format!("\n{after}"));
    } else {
        // No trailing comma: the last entry's suffix holds what follows it up to `]`.
        let cut = last_suffix.rfind('\n').unwrap_or(0);
        let (before, after) = last_suffix.split_at(cut);
        let after = after.strip_prefix('\n').unwrap_or(after).to_owned();
        let before = before.to_owned();
        if let Some(last) = array.iter_mut().last() {
            last.decor_mut().set_suffix("");
        }
        value.decor_mut().set_prefix(format!("{before}\n{indent}"));
        value.decor_mut().set_suffix(format!("\n{after}"));
    }
    array.push_formatted(value);
}

/// The text without `path` in `volume`'s `kind` list; `None` if it is not there.
pub fn remove(text: &str, volume: &str, kind: EntryKind, path: &str) -> Result<Option<String>, EditError> {
    let mut doc: DocumentMut = text.parse().map_err(|e: toml_edit::TomlError| EditError::Toml(e.to_string()))?;
    let root = persist_root(&mut doc, volume)?;
    let Some(array) = root.get_mut(kind.list_name()).and_then(Item::as_array_mut) else { return Ok(None) };
    let Some(index) = array.iter().position(|v| names(v, kind, path)) else { return Ok(None) };
    let was_last = index + 1 == array.len();
    let removed_suffix = array.get(index).and_then(|v| v.decor().suffix()).and_then(|s| s.as_str()).map(str::to_owned);
    // What the removed entry's prefix holds before its first newline sits on the
    // line of the entry before it (say, that entry's comment): it stays.
    let removed_prefix = array.get(index).map(prefix_of).unwrap_or_default();
    let keep = match removed_prefix.find('\n') {
        Some(cut) if !removed_prefix[..cut].trim().is_empty() => removed_prefix[..cut].to_owned(),
        _ => String::new(),
    };
    array.remove(index);
    if !keep.is_empty() {
        if let Some(next) = array.get_mut(index) {
            let prefix = prefix_of(next);
            next.decor_mut().set_prefix(format!("{keep}{prefix}"));
        } else if array.trailing_comma() {
            let trailing = array.trailing().as_str().unwrap_or("").to_owned();
            array.set_trailing(format!("{keep}{trailing}"));
        }
    }
    if array.is_empty() {
        array.set_trailing("");
        array.set_trailing_comma(false);
    } else if index == 0 {
        if let Some(first) = array.get_mut(0) {
            let prefix = prefix_of(first);
            if !prefix.contains('\n') {
                first.decor_mut().set_prefix("");
            }
        }
    } else if was_last && !array.trailing_comma() {
        // The removed entry's suffix closed the array (newline before `]`).
        if let (Some(suffix), Some(last)) = (removed_suffix, array.iter_mut().last()) {
            last.decor_mut().set_suffix(suffix);
        }
    }
    Ok(Some(doc.to_string()))
}

/// The declaration file's real location (symlinks resolved, so that the atomic
/// replacement replaces the file, not a link to it).
pub fn resolve(file: &Path) -> Result<PathBuf, EditError> {
    std::fs::canonicalize(file).map_err(|source| EditError::Path { path: file.to_path_buf(), source })
}

/// The declaration file's directory, opened, and its name there.
fn located(file: &Path) -> Result<(Dir, OsString), EditError> {
    let file = resolve(file)?;
    let (Some(parent), Some(name)) = (file.parent(), file.file_name()) else {
        return Err(EditError::Path {
            path: file.clone(),
            source: std::io::Error::new(std::io::ErrorKind::InvalidInput, "not a file"),
        });
    };
    Ok((Dir::open_root(parent)?, name.to_os_string()))
}

/// Writes `text` to a new temporary beside the declaration, with its owner and mode;
/// returns the temporary's name.
fn write_temporary(dir: &Dir, name: &OsStr, text: &str) -> Result<OsString, EditError> {
    let meta = dir.meta(name)?;
    let temp = blankslate_sys::fs::temp_name(name);
    dir.create_file_owned(&temp, text.as_bytes(), meta.mode, Some((meta.uid, meta.gid)))?;
    Ok(temp)
}

/// Replaces the declaration file with `text`, atomically and durably, keeping its
/// owner and mode.
pub fn write(file: &Path, text: &str) -> Result<(), EditError> {
    let (dir, name) = located(file)?;
    let temp = write_temporary(&dir, &name, text)?;
    if let Err(error) = dir.rename(&temp, &name) {
        let _ = dir.remove_file(&temp);
        return Err(error.into());
    }
    dir.sync()?;
    Ok(())
}

/// Checks, before anything else changes, that [`write()`] can replace the file with
/// `text`: the temporary it writes can be made in the file's directory (not a
/// read-only mount, not an immutable directory, room for it), and the file is not
/// immutable or append-only, which `rename` cannot replace. The temporary is removed.
pub fn check_writable(file: &Path, text: &str) -> Result<(), EditError> {
    let (dir, name) = located(file)?;
    let not_writable = |source: FsError| EditError::NotWritable { file: dir.path().join(&name), source };
    let temp = write_temporary(&dir, &name, text).map_err(|error| match error {
        EditError::Fs(source) => not_writable(source),
        other => other,
    })?;
    dir.remove_file(&temp)?;
    let attributes = rustix::fs::statx(&dir, &name, AtFlags::SYMLINK_NOFOLLOW, StatxFlags::BASIC_STATS)
        .map_err(|e| FsError { op: "stat", path: dir.path().join(&name), source: e.into() })?
        .stx_attributes;
    if attributes.intersects(StatxAttributes::IMMUTABLE | StatxAttributes::APPEND) {
        let source =
            std::io::Error::new(std::io::ErrorKind::PermissionDenied, "it is immutable or append-only (chattr)");
        return Err(not_writable(FsError { op: "replace", path: dir.path().join(&name), source }));
    }
    Ok(())
}

/// Reads the declaration file's bytes: a regular file, without blocking or reading
/// without bound ([`blankslate_decl::read_file`]).
pub fn read_bytes(file: &Path) -> Result<Vec<u8>, EditError> {
    Ok(blankslate_decl::read_file(&resolve(file)?)?)
}

/// Reads the declaration file's text.
pub fn read(file: &Path) -> Result<String, EditError> {
    String::from_utf8(read_bytes(file)?).map_err(|_| EditError::Toml("the file is not UTF-8".into()))
}

#[cfg(test)]
mod tests {
    use blankslate_decl::{How, Mode, Owner};

    use super::*;

    const TEXT: &str = r#"version = 1

# The system's own volume.
[persist."/persist"]
directories = [
  "/var/log", # logs
  # the database
  { directory = "/var/lib/postgresql", user = "postgres", mode = "0700" },
]
files = ["/etc/machine-id"]

[audit]
ignore = ["/var/cache/**"] # noisy
"#;

    #[test]
    fn entries_go_in_the_arrays_own_layout() {
        let added = add(TEXT, "/persist", EntryKind::Directory, "\"/srv\"").unwrap();
        assert_eq!(added, TEXT.replace("mode = \"0700\" },\n]", "mode = \"0700\" },\n  \"/srv\",\n]"));
        let added = add(TEXT, "/persist", EntryKind::File, "{ file = \"/etc/x\", mode = \"0600\" }").unwrap();
        assert!(added.contains("files = [\"/etc/machine-id\", { file = \"/etc/x\", mode = \"0600\" }]\n"), "{added}");
        let back = remove(&added, "/persist", EntryKind::File, "/etc/x").unwrap().unwrap();
        assert_eq!(back, TEXT);
        let back = remove(TEXT, "/persist", EntryKind::File, "/etc/machine-id").unwrap().unwrap();
        assert!(back.contains("files = []\n"), "{back}");
        assert!(remove(TEXT, "/persist", EntryKind::File, "/nope").unwrap().is_none());
        assert!(contains(TEXT, "/persist", EntryKind::Directory, "/var/lib/postgresql").unwrap());
    }

    #[test]
    fn a_comment_on_the_last_line_stays_there() {
        let text = "[persist.\"/p\"]\ndirectories = [\n    \"/a\", # first\n]\n";
        let added = add(text, "/p", EntryKind::Directory, "\"/b\"").unwrap();
        assert_eq!(added, "[persist.\"/p\"]\ndirectories = [\n    \"/a\", # first\n    \"/b\",\n]\n");
        assert_eq!(remove(&added, "/p", EntryKind::Directory, "/b").unwrap().unwrap(), text);
        let text = "[persist.\"/p\"]\ndirectories = [\n  \"/a\"\n]\n";
        let added = add(text, "/p", EntryKind::Directory, "\"/b\"").unwrap();
        assert_eq!(added, "[persist.\"/p\"]\ndirectories = [\n  \"/a\",\n  \"/b\"\n]\n");
        assert_eq!(remove(&added, "/p", EntryKind::Directory, "/b").unwrap().unwrap(), text);
    }

    #[test]
    fn missing_lists_and_implicit_roots_are_created() {
        let text = "version = 1\n\n[persist.\"/p\".users.alice]\nfiles = [\".x\"]\n";
        let added = add(text, "/p", EntryKind::Directory, "\"/srv\"").unwrap();
        assert!(added.contains("[persist.\"/p\"]\ndirectories = [\"/srv\"]\n"), "{added}");
        assert!(matches!(add(text, "/q", EntryKind::File, "\"/x\""), Err(EditError::NoVolume(_))));
    }

    #[test]
    fn entry_values_name_only_what_differs() {
        let entry = |kind, path: &str, owner| Entry::new(kind, path.into(), owner);
        let srv = entry(EntryKind::Directory, "/srv", Owner::root(Mode::DIRECTORY));
        assert_eq!(entry_value(&srv), "\"/srv\"");
        let owner = Owner { user: "pg".into(), group: "root".into(), mode: Mode::new(0o700).unwrap() };
        assert_eq!(
            entry_value(&entry(EntryKind::Directory, "/srv", owner)),
            "{ directory = \"/srv\", user = \"pg\", mode = \"0700\" }"
        );
        let mut key = entry(EntryKind::File, "/k", Owner::root(Mode::FILE));
        key.how = Some(How::Symlink);
        assert_eq!(entry_value(&key), "{ file = \"/k\", how = \"symlink\" }");
        // A file says how it is persisted, so `check` does not ask.
        let bound = entry(EntryKind::File, "/k", Owner::root(Mode::FILE));
        assert_eq!(entry_value(&bound), "{ file = \"/k\", how = \"bind\" }");
    }
}
