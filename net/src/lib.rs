//! The net: what a shutdown keeps of the state the next boot erases, so that a person
//! can still get back what they forgot to declare.
//!
//! At shutdown (`blankslate net save`, from `blankslate-net.service`), every path the
//! audit reports as lost at the next boot (`undeclared` and `etc-stray`) is copied
//! faithfully (owner, mode, times, extended attributes, holes, hard links inside it)
//! into a *catch* in the state directory's `net/`:
//!
//! ```text
//! net/                       root 0700: nobody else can reach into it
//! net/000007-<boot id>/      one boot's catch, numbered in the order they were made
//!     catch.json             which paths, their sizes, which were not kept and why
//!     root/                  the paths, where they were in the root (`root/home/ann/notes`)
//! net/.catch.tmp-<pid>-<n>   a catch being made: renamed into place when complete
//! ```
//!
//! A catch appears whole or not at all; a killed save leaves only a temporary, which
//! the next writer of the net removes. The declaration's `[net]` bounds it: at most
//! `keep` boots, at most `max_size` bytes in all (the smallest paths are kept first,
//! so that a forgotten configuration file is not crowded out by a cache), the oldest
//! catches pruned first; and a save never takes the volume's last [`RESERVE_PERCENT`]
//! percent. `restore` copies a caught path back into the running root, never over
//! anything there.

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};

use blankslate_audit::{Class, Report};
use blankslate_decl::NetSettings;
use blankslate_sys::fs::tree::{self, Durable, NestedMounts, TreeError};
use blankslate_sys::fs::{Dir, FsError, Kind, is_temp_name, temp_name};
use serde::{Deserialize, Serialize};

/// A save leaves at least this share of the volume free.
pub const RESERVE_PERCENT: u64 = 5;
/// The index of a catch.
const CATCH_FILE: &str = "catch.json";
/// The directory in a catch that stands for the root.
const TREE_DIR: &str = "root";
/// The name the temporaries of catches are made from.
const TEMP_BASE: &str = "catch";

#[derive(Debug, thiserror::Error)]
pub enum NetError {
    #[error(transparent)]
    Fs(#[from] FsError),
    #[error(transparent)]
    Tree(#[from] TreeError),
    #[error("{}: {error}", .file.display())]
    Index { file: PathBuf, error: String },
    #[error("no catch in the net holds {path}{}", .boot.as_ref().map(|b| format!(" (looked in {b})")).unwrap_or_default())]
    NotCaught { path: String, boot: Option<String> },
    #[error("no catch `{0}` in the net (`blankslate net list` names them)")]
    NoSuchCatch(String),
    #[error(
        "{path} exists in the root: restoring never replaces what is there; move it away first, or restore with --to"
    )]
    Exists { path: String },
    #[error("cannot restore {path}: its parent {parent} is not a directory in the root ({error})")]
    NoParent { path: String, parent: String, error: FsError },
    #[error("`{0}` is not an absolute path below / without `.` or `..`")]
    BadPath(String),
}

pub type Result<T> = std::result::Result<T, NetError>;

/// A path the next boot erases, as the audit found it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Erased {
    /// Absolute, in the root; names need not be UTF-8.
    pub path: Vec<u8>,
    /// `directory`, `file`, `symlink`, …
    pub kind: String,
    /// Bytes and non-directories in it (`st_size`).
    pub bytes: u64,
    pub files: u64,
}

impl Erased {
    /// What a report (made with no limit) says the next boot erases.
    pub fn from_report(report: &Report) -> Vec<Erased> {
        report
            .findings
            .iter()
            .filter(|f| matches!(f.class, Class::Undeclared | Class::EtcStray))
            .map(|f| Erased { path: f.path.clone(), kind: f.kind.as_str().to_owned(), bytes: f.bytes, files: f.files })
            .collect()
    }
}

/// One boot's catch, as `catch.json` records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Catch {
    /// Its directory's name in the net: `<number>-<boot id>`.
    #[serde(skip)]
    pub name: String,
    pub boot_id: String,
    /// When the save ran (seconds since the epoch).
    pub saved: u64,
    /// The generation the boot ran.
    pub generation: Option<u32>,
    pub entries: Vec<CatchEntry>,
}

impl Catch {
    /// A previous root of a btrfs root, seen as a catch named `name`: the paths in it
    /// the declaration does not account for (`erased`, as the audit finds them in it),
    /// every one kept, since the whole root is.
    pub fn previous_root(
        name: String,
        boot_id: String,
        booted: u64,
        generation: Option<u32>,
        erased: &[Erased],
    ) -> Catch {
        let mut entries: Vec<CatchEntry> = erased.iter().map(|e| CatchEntry::new(e, None)).collect();
        entries.sort_by(|a, b| a.path.cmp(&b.path));
        Catch { name, boot_id, saved: booted, generation, entries }
    }

    /// Whether it holds `path` (absolute): a path it kept, or one inside it.
    pub fn holds(&self, path: &[u8]) -> bool {
        self.entries.iter().any(|e| e.left_out.is_none() && is_within(path, e.path_bytes()))
    }

    /// Bytes kept (what the catch takes on the volume, roughly).
    pub fn kept_bytes(&self) -> u64 {
        self.entries.iter().filter(|e| e.left_out.is_none()).map(|e| e.bytes).sum()
    }

    fn number(&self) -> u64 {
        catch_number(&self.name).unwrap_or(0)
    }
}

/// One erased path in a catch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CatchEntry {
    /// The path, as UTF-8; names that are not are escaped (`\xNN`) and `raw` holds them.
    pub path: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub raw: Option<Vec<u8>>,
    pub kind: String,
    pub bytes: u64,
    pub files: u64,
    /// Why it was not kept; `None` when it was.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub left_out: Option<String>,
}

impl CatchEntry {
    fn new(erased: &Erased, left_out: Option<String>) -> CatchEntry {
        let (path, raw) = match std::str::from_utf8(&erased.path) {
            Ok(text) => (text.to_owned(), None),
            Err(_) => (blankslate_audit::render::escape(&erased.path), Some(erased.path.clone())),
        };
        CatchEntry { path, raw, kind: erased.kind.clone(), bytes: erased.bytes, files: erased.files, left_out }
    }

    /// The path as bytes.
    pub fn path_bytes(&self) -> &[u8] {
        self.raw.as_deref().unwrap_or(self.path.as_bytes())
    }
}

/// What a save did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Saved {
    pub catch: Catch,
    /// Catches removed to stay within the bounds, oldest first.
    pub pruned: Vec<String>,
}

/// Saves what the next boot erases from `root` into a new catch in `net` (the state's
/// [`blankslate_state::generation::State::net`], under the state lock), then prunes the
/// net to `bounds`. A path that cannot be copied (gone meanwhile, unreadable, the
/// volume full) is left out with the reason, never a failure of the whole save.
pub fn save(
    root: &Dir,
    net: &Dir,
    boot_id: &str,
    generation: Option<u32>,
    erased: &[Erased],
    bounds: NetSettings,
) -> Result<Saved> {
    remove_unfinished(net)?;
    let number = catches(net)?.last().map_or(0, Catch::number) + 1;
    let temp = temp_name(OsStr::new(TEMP_BASE));
    net.create_dir(&temp, 0o700)?;
    let made = net.open_dir(&temp)?;
    made.create_dir(TREE_DIR, 0o700)?;
    let tree = made.open_dir(TREE_DIR)?;

    // The smallest first: a forgotten configuration file before a cache.
    let mut order: Vec<&Erased> = erased.iter().collect();
    order.sort_by(|a, b| (a.bytes, &a.path).cmp(&(b.bytes, &b.path)));
    let mut budget = bounds.max_size;
    let mut entries = Vec::with_capacity(order.len());
    for erased in order {
        let left_out = if erased.bytes > budget {
            Some(format!("over the net's max_size ({} left of {})", size(budget), size(bounds.max_size)))
        } else {
            match keep(root, &tree, erased) {
                Ok(()) => {
                    budget -= erased.bytes;
                    None
                }
                Err(why) => Some(why),
            }
        };
        entries.push(CatchEntry::new(erased, left_out));
    }
    entries.sort_by(|a, b| a.path.cmp(&b.path));
    // One sync for every file kept, before the catch is named: it appears whole.
    made.sync_file_system()?;
    let since_epoch = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    let mut catch =
        Catch { name: String::new(), boot_id: boot_id.to_owned(), saved: since_epoch.as_secs(), generation, entries };
    let index = serde_json::to_vec_pretty(&catch).expect("a catch serializes");
    made.write_atomic(CATCH_FILE, &index, 0o600)?;
    made.sync()?;
    catch.name = format!("{number:06}-{}", safe_name(boot_id));
    net.rename(&temp, &catch.name)?;
    net.sync()?;
    let pruned = prune(net, bounds)?;
    Ok(Saved { catch, pruned })
}

/// Copies one erased path into the catch's tree; on failure removes what it copied
/// and says why.
fn keep(root: &Dir, tree: &Dir, erased: &Erased) -> std::result::Result<(), String> {
    let (parent, name) = split(&erased.path).ok_or_else(|| "not a path below /".to_owned())?;
    let (available, total) = tree.space().map_err(|e| e.to_string())?;
    let reserve = total / 100 * RESERVE_PERCENT;
    if available.saturating_sub(erased.bytes) < reserve {
        return Err(format!("the volume would have less than {RESERVE_PERCENT}% free ({} available)", size(available)));
    }
    let live = open_below(root, parent).map_err(|e| e.to_string())?;
    let dest = if parent.is_empty() { tree.try_clone() } else { tree.create_dir_all(relative(parent), 0o700) }
        .map_err(|e| e.to_string())?;
    let name = OsStr::from_bytes(name);
    tree::copy_with(&live, name, &dest, name, NestedMounts::LeaveEmpty, Durable::ByCaller).map(drop).map_err(|error| {
        let _ = dest.remove_tree(name);
        error.to_string()
    })
}

/// Removes what killed saves left: the lock is held, so every temporary is one.
fn remove_unfinished(net: &Dir) -> Result<()> {
    for (name, _) in net.entries()? {
        if is_temp_name(&name) {
            net.remove_tree(&name)?;
        }
    }
    Ok(())
}

/// Removes the oldest catches until at most `bounds.keep` are left and they hold at
/// most `bounds.max_size` bytes; the newest is never removed. Returns their names.
pub fn prune(net: &Dir, bounds: NetSettings) -> Result<Vec<String>> {
    let mut all = catches(net)?;
    let mut total: u64 = all.iter().map(Catch::kept_bytes).sum();
    let mut pruned = Vec::new();
    while all.len() > 1 && (all.len() > bounds.keep as usize || total > bounds.max_size) {
        let oldest = all.remove(0);
        net.remove_tree(&oldest.name)?;
        total -= oldest.kept_bytes();
        pruned.push(oldest.name);
    }
    if !pruned.is_empty() {
        net.sync()?;
    }
    Ok(pruned)
}

/// Every catch in the net, oldest first. A directory that is not a catch, or whose
/// index cannot be read, is an error that names it.
pub fn catches(net: &Dir) -> Result<Vec<Catch>> {
    let mut found = Vec::new();
    for (name, kind) in net.entries()? {
        if is_temp_name(&name) {
            continue;
        }
        let shown = net.path().join(&name);
        let Some(name) = name.to_str().filter(|n| kind == Kind::Directory && catch_number(n).is_some()) else {
            return Err(NetError::Index { file: shown, error: "not a catch of the net".into() });
        };
        let file = shown.join(CATCH_FILE);
        let text = net.read(Path::new(name).join(CATCH_FILE))?;
        let mut catch: Catch =
            serde_json::from_slice(&text).map_err(|e| NetError::Index { file: file.clone(), error: e.to_string() })?;
        name.clone_into(&mut catch.name);
        found.push(catch);
    }
    found.sort_by_key(Catch::number);
    Ok(found)
}

/// What a restore takes from: a catch (of the net, or a previous root seen as one)
/// and the directory that stands for the root it was caught from.
#[derive(Debug)]
pub struct Holder {
    pub catch: Catch,
    pub tree: Dir,
}

/// Every catch in the net with its tree, oldest first.
pub fn holders(net: &Dir) -> Result<Vec<Holder>> {
    catches(net)?
        .into_iter()
        .map(|catch| Ok(Holder { tree: net.open_dir(Path::new(&catch.name).join(TREE_DIR))?, catch }))
        .collect()
}

/// What a restore did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Restored {
    /// The catch it came from.
    pub catch: String,
    pub from: Vec<u8>,
    pub to: Vec<u8>,
    pub stats: tree::CopyStats,
}

/// Copies `path` (absolute; a caught path or one inside it) from the newest of
/// `holders` (by when each was caught) that holds it, or from the one named `from`, to `to`
/// (default: where it was) in `root`. The copy is made under a temporary name and
/// renamed into place only if nothing took that name meanwhile: nothing in the root
/// is ever replaced.
pub fn restore(root: &Dir, holders: &[Holder], path: &[u8], from: Option<&str>, to: Option<&[u8]>) -> Result<Restored> {
    let shown = |p: &[u8]| blankslate_audit::render::escape(p);
    let (parent, name) = split(path).ok_or_else(|| NetError::BadPath(shown(path)))?;
    let candidates: Vec<&Holder> = if let Some(wanted) = from {
        vec![holders.iter().find(|h| h.catch.name == wanted).ok_or_else(|| NetError::NoSuchCatch(wanted.to_owned()))?]
    } else {
        // Newest first, by when each was caught (a previous root: when it booted),
        // the later-listed first among equals.
        let mut newest: Vec<&Holder> = holders.iter().rev().collect();
        newest.sort_by_key(|h| std::cmp::Reverse(h.catch.saved));
        newest
    };
    let Holder { catch, tree: caught_tree } = candidates
        .into_iter()
        .find(|h| h.catch.holds(path))
        .ok_or_else(|| NetError::NotCaught { path: shown(path), boot: from.map(str::to_owned) })?;
    let caught_parent = open_below(caught_tree, parent)?;

    let to = to.unwrap_or(path);
    let (to_parent, to_name) = split(to).ok_or_else(|| NetError::BadPath(shown(to)))?;
    let no_parent = |error| NetError::NoParent {
        path: shown(to),
        parent: shown(if to_parent.is_empty() { b"/" } else { to_parent }),
        error,
    };
    // Put back where it was, the directories the boot erased on the way are made
    // again as the catch has them; anywhere else, the way must be there.
    let live = if to == path {
        parents_as_caught(root, caught_tree, to_parent).map_err(no_parent)?
    } else {
        open_below(root, to_parent).map_err(no_parent)?
    };
    let to_name = OsStr::from_bytes(to_name);
    match live.meta(to_name) {
        Ok(_) => return Err(NetError::Exists { path: shown(to) }),
        Err(error) if error.is_not_found() => {}
        Err(error) => return Err(error.into()),
    }
    // What a restore killed before its rename left.
    for (stale, _) in live.stale_temporaries(to_name)? {
        live.remove_tree(&stale)?;
    }
    let temp = temp_name(to_name);
    let stats = tree::copy(&caught_parent, OsStr::from_bytes(name), &live, &temp).inspect_err(|_| {
        let _ = live.remove_tree(&temp);
    })?;
    if !live.rename_noreplace(&temp, to_name)? {
        live.remove_tree(&temp)?;
        return Err(NetError::Exists { path: shown(to) });
    }
    live.sync()?;
    Ok(Restored { catch: catch.name.clone(), from: path.to_vec(), to: to.to_vec(), stats })
}

/// The directory `parent` (absolute) in `root`, with each missing directory on the
/// way made with the owner and mode it has in `caught` (the catch's tree).
fn parents_as_caught(root: &Dir, caught: &Dir, parent: &[u8]) -> std::result::Result<Dir, FsError> {
    let (mut live, mut kept) = (root.try_clone()?, caught.try_clone()?);
    for name in parent.split(|&b| b == b'/').filter(|c| !c.is_empty()).map(OsStr::from_bytes) {
        kept = kept.open_dir(name)?;
        live = match live.open_dir(name) {
            Ok(dir) => dir,
            Err(error) if error.is_not_found() => {
                let meta = kept.own_meta()?;
                live.create_dir(name, 0o700)?;
                let made = live.open_dir(name)?;
                made.set_owner(meta.uid, meta.gid)?;
                made.set_mode(meta.mode)?;
                made
            }
            Err(error) => return Err(error),
        };
    }
    Ok(live)
}

/// Whether `path` is `top` or below it.
fn is_within(path: &[u8], top: &[u8]) -> bool {
    path.strip_prefix(top).is_some_and(|rest| rest.is_empty() || rest.starts_with(b"/"))
}

/// `/a/b/c` → (`/a/b`, `c`); `/a` → (the empty path, `a`). `None` for `/`, relative paths, and
/// paths with empty, `.` or `..` components.
fn split(path: &[u8]) -> Option<(&[u8], &[u8])> {
    let rest = path.strip_prefix(b"/")?;
    if rest.split(|&b| b == b'/').any(|c| c.is_empty() || c == b"." || c == b"..") {
        return None;
    }
    let at = path.iter().rposition(|&b| b == b'/')?;
    Some((&path[..at], &path[at + 1..]))
}

/// An absolute path (the empty path for `/`) as a path relative to the root.
fn relative(path: &[u8]) -> PathBuf {
    PathBuf::from(OsString::from_vec(path.strip_prefix(b"/").unwrap_or(path).to_vec()))
}

/// The directory at `path` (absolute; empty for `dir` itself) below `dir`.
fn open_below(dir: &Dir, path: &[u8]) -> std::result::Result<Dir, FsError> {
    if path.is_empty() { dir.try_clone() } else { dir.open_dir(relative(path)) }
}

/// The number a catch's name starts with.
fn catch_number(name: &str) -> Option<u64> {
    let (number, _) = name.split_once('-')?;
    number.parse().ok()
}

/// The boot id as a name: what `/proc/sys/kernel/random/boot_id` holds (hex digits
/// and dashes); anything else is dropped.
fn safe_name(boot_id: &str) -> String {
    boot_id.chars().filter(|c| c.is_ascii_alphanumeric() || *c == '-').take(64).collect()
}

fn size(bytes: u64) -> String {
    blankslate_audit::render::size(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_split_into_parent_and_name_and_bad_ones_are_refused() {
        assert_eq!(split(b"/a/b/c"), Some((&b"/a/b"[..], &b"c"[..])));
        assert_eq!(split(b"/a"), Some((&b""[..], &b"a"[..])));
        for bad in [&b"/"[..], b"a/b", b"/a//b", b"/a/./b", b"/a/../b", b"/a/"] {
            assert_eq!(split(bad), None, "{}", String::from_utf8_lossy(bad));
        }
        assert!(is_within(b"/home/ann/notes/x", b"/home/ann/notes"));
        assert!(is_within(b"/home/ann/notes", b"/home/ann/notes"));
        assert!(!is_within(b"/home/ann/notes2", b"/home/ann/notes"));
    }

    #[test]
    fn a_boot_id_becomes_a_name_with_nothing_but_hex_digits_and_dashes() {
        assert_eq!(safe_name("0f1e-2d3c\n"), "0f1e-2d3c");
        assert_eq!(safe_name("../../x"), "x");
    }
}
