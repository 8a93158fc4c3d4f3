//! Keeping live `/etc` files: copying what a package, a tool or a person made in the
//! running `/etc` into the declaration's etc tree, as it is, so that the next
//! generation declares it (the counterpart of `persist add` for `/etc`).
//!
//! A file is copied with its owner and mode (an etc tree says both by its files'
//! own: see `tree`), a symlink as a symlink to the same target, a directory
//! with its owner and mode and everything below it. Directories the tree lacks on the
//! way are made with the live directories' owner and mode, so a file below
//! `ssl/private` (`0710 root:ssl-cert`) stays out of others' reach in the tree too.
//! Each file takes its name in the tree atomically (a temporary, `fsync`, `rename`):
//! a kill leaves every file either as it was or kept, and keeping again is harmless.
//!
//! The live `/etc` is read through descriptors only: no symlink is followed, every
//! file is judged by its descriptor before a byte is read. What blankslate manages
//! itself is never kept: `/etc/static` and `/etc/.blankslate` are refused, a link
//! into `/etc/static` is declared already (keeping it again is a no-op). FIFOs,
//! sockets and devices are refused.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;

use blankslate_decl::Declaration;
use blankslate_decl::paths::is_inside;
use blankslate_sys::fs::{Accept, Dir, FsError, Kind, Meta};

/// Where the live `/etc` links what the store holds.
const STATIC_PREFIX: &str = "/etc/static/";

/// Names at the top of `/etc` that are blankslate's own.
const RESERVED: [&str; 2] = ["static", ".blankslate"];

#[derive(Debug, thiserror::Error)]
pub enum KeepError {
    #[error("/etc/{path} is blankslate's own, not configuration to keep")]
    Reserved { path: String },
    #[error("/etc/{path} is not kept: {reason}")]
    Refused { path: String, reason: String },
    #[error("/etc/{path} does not exist")]
    Missing { path: String },
    #[error("`{path}` is not a path below /etc")]
    NotInEtc { path: String },
    #[error("/etc/{key} is an [etc.\"{key}\"] entry of the declaration: change that entry instead")]
    DeclaredEntry { key: String },
    #[error("/etc/{key} is persisted ({path} from {volume}): the volume keeps it already")]
    Persisted { key: String, path: String, volume: String },
    #[error(transparent)]
    Fs(#[from] FsError),
}

pub type Result<T> = std::result::Result<T, KeepError>;

/// What one live entry became in the tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Kept {
    /// Relative to `/etc` (and to the tree).
    pub path: String,
    /// `file 0640 0:42`, `symlink -> target`, `directory 0755 0:0`.
    pub what: String,
}

/// Something below a kept directory that was not kept, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    pub path: String,
    pub reason: String,
}

/// What [`keep`] did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Keeping {
    pub kept: Vec<Kept>,
    pub skipped: Vec<Skipped>,
    /// Links into `/etc/static`: declared already, nothing to keep.
    pub declared: Vec<String>,
}

/// `path` (absolute below `/etc`, or relative to it) as a key relative to `/etc`:
/// normalized, no `.` or `..`, not blankslate's own.
pub fn etc_key(path: &str) -> Result<String> {
    let not_in_etc = || KeepError::NotInEtc { path: path.to_owned() };
    let relative = match path.strip_prefix("/etc/") {
        Some(rest) => rest,
        None if path.starts_with('/') => return Err(not_in_etc()),
        None => path,
    };
    let parts: Vec<&str> = relative.split('/').filter(|p| !p.is_empty() && *p != ".").collect();
    if parts.is_empty() || parts.contains(&"..") {
        return Err(not_in_etc());
    }
    if RESERVED.contains(&parts[0]) {
        return Err(KeepError::Reserved { path: parts.join("/") });
    }
    Ok(parts.join("/"))
}

/// [`etc_key`] of `path`, refused when `declaration` names it otherwise: an
/// `[etc."…"]` entry (it would be declared twice) or a persisted path (or one around
/// or inside it).
pub fn undeclared_key(declaration: &Declaration, path: &str) -> Result<String> {
    let key = etc_key(path)?;
    if declaration.etc.contains_key(&key) {
        return Err(KeepError::DeclaredEntry { key });
    }
    let absolute = format!("/etc/{key}");
    let overlaps = |path: &str| path == absolute || is_inside(path, &absolute) || is_inside(&absolute, path);
    if let Some(entry) = declaration.entries().iter().find(|e| overlaps(&e.path)) {
        return Err(KeepError::Persisted { key, path: entry.path.clone(), volume: entry.root.to_owned() });
    }
    Ok(key)
}

/// Copies the live `/etc/<key>` (`etc` is the live `/etc`) into the etc tree `tree`.
pub fn keep(etc: &Dir, tree: &Dir, key: &str) -> Result<Keeping> {
    let (parent, name) = key.rsplit_once('/').unwrap_or(("", key));
    let missing = |e: FsError| if e.is_not_found() { KeepError::Missing { path: key.to_owned() } } else { e.into() };
    let live_parent = etc.open_dir_or_self(parent).map_err(missing)?;
    let meta = live_parent.meta(name).map_err(missing)?;
    let mut keeping = Keeping::default();
    if meta.kind == Kind::Symlink && is_managed_link(&live_parent, name)? {
        keeping.declared.push(key.to_owned());
        return Ok(keeping);
    }
    let tree_parent = tree_dirs(etc, tree, parent)?;
    copy_entry(&live_parent, &tree_parent, name, key, meta, &mut keeping)?;
    // A single entry that was not kept is an error; below a directory, a finding.
    if let (true, Some(skipped)) = (keeping.kept.is_empty(), keeping.skipped.pop()) {
        return Err(KeepError::Refused { path: skipped.path, reason: skipped.reason });
    }
    Ok(keeping)
}

/// Whether `name` is a link blankslate made: one into `/etc/static`.
fn is_managed_link(dir: &Dir, name: &str) -> Result<bool> {
    Ok(dir.read_link(name)?.as_bytes().starts_with(STATIC_PREFIX.as_bytes()))
}

/// The tree's directory for `parent` (relative to `/etc`), made where missing with the
/// live directory's owner and mode.
fn tree_dirs(etc: &Dir, tree: &Dir, parent: &str) -> Result<Dir> {
    let (mut live, mut kept) = (etc.try_clone()?, tree.try_clone()?);
    for part in parent.split('/').filter(|p| !p.is_empty()) {
        let meta = live.meta(part)?;
        if kept.create_dir(part, 0o700)? {
            kept.set_owner_and_mode_of(part, meta.uid, meta.gid, meta.mode)?;
            kept.sync()?;
        }
        live = live.open_dir(part)?;
        kept = kept.open_dir(part)?;
    }
    Ok(kept)
}

/// Copies one live entry (and what is below a directory) into `to`.
fn copy_entry(from: &Dir, to: &Dir, name: &str, key: &str, meta: Meta, keeping: &mut Keeping) -> Result<()> {
    let skip = |keeping: &mut Keeping, reason: String| keeping.skipped.push(Skipped { path: key.to_owned(), reason });
    match meta.kind {
        Kind::File => match from.open_checked(name, Accept::File) {
            Ok(file) => {
                let meta = *file.meta();
                to.copy_atomic(name, &file, meta.mode, Some((meta.uid, meta.gid)))?;
                keeping.kept.push(Kept { path: key.to_owned(), what: described("file", &meta) });
            }
            Err(error) if error.refusal().is_some() => skip(keeping, error.to_string()),
            Err(error) => return Err(error.into()),
        },
        Kind::Symlink if is_managed_link(from, name)? => {
            keeping.declared.push(key.to_owned());
        }
        Kind::Symlink => {
            let target = from.read_link(name)?;
            to.symlink_atomic(name, &target)?;
            let what = format!("symlink -> {}", target.to_string_lossy());
            keeping.kept.push(Kept { path: key.to_owned(), what });
        }
        Kind::Directory => {
            to.create_dir(name, 0o700)?;
            to.set_owner_and_mode_of(name, meta.uid, meta.gid, meta.mode)?;
            let (live, kept) = (from.open_dir(name)?, to.open_dir(name)?);
            keeping.kept.push(Kept { path: key.to_owned(), what: described("directory", &meta) });
            let mut entries = live.entries()?;
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            for (entry, _) in entries {
                let child_key = format!("{key}/{}", entry.to_string_lossy());
                let Some(child) = entry.to_str() else {
                    skip(keeping, "its name is not UTF-8".into());
                    continue;
                };
                let child_meta = live.meta(OsStr::new(child))?;
                copy_entry(&live, &kept, child, &child_key, child_meta, keeping)?;
            }
            kept.sync()?;
        }
        Kind::Other => skip(keeping, format!("{}: only files, symlinks and directories are kept", meta.what())),
    }
    Ok(())
}

fn described(kind: &str, meta: &Meta) -> String {
    format!("{kind} {:04o} {}:{}", meta.mode, meta.uid, meta.gid)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_below_etc_and_not_blankslates() {
        assert_eq!(etc_key("/etc/atd.conf").unwrap(), "atd.conf");
        assert_eq!(etc_key("/etc//ssl/./private/key.pem").unwrap(), "ssl/private/key.pem");
        assert_eq!(etc_key("default/atd").unwrap(), "default/atd");
        for bad in ["/etc", "/etc/", "/usr/lib/os-release", "/etc/../shadow", "a/../../b", "/etcetera/x"] {
            assert!(matches!(etc_key(bad), Err(KeepError::NotInEtc { .. })), "{bad}");
        }
        for own in ["/etc/static/x", "/etc/.blankslate/state.json", "static"] {
            assert!(matches!(etc_key(own), Err(KeepError::Reserved { .. })), "{own}");
        }
    }
}
