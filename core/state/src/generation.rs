//! Generations: numbered profile links into the store, and the state around them.
//!
//! Layout below the root (the state directory defaults to `/var/lib/blankslate`):
//!
//! ```text
//! var/lib/blankslate/lock                  flock held by every writer
//! var/lib/blankslate/store/<hash>-<name>   immutable objects
//! var/lib/blankslate/profiles/system-N-link -> ../store/<hash>-generation
//! var/lib/blankslate/profiles/current      -> system-N-link   (what boot uses)
//! run/blankslate/booted                    -> the generation object booted
//! ```
//!
//! A generation object holds `declaration.json` (canonical), a link per part it is
//! made of (`etc -> ../<hash>-etc`), and `references` (the store objects it needs, one
//! per line), which is what garbage collection follows.

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsStr;
use std::path::{Path, PathBuf};

use crate::activation;
use crate::store::{Store, StoreError, Tree};
use blankslate_decl::Declaration;
use blankslate_sys::fs::{Dir, FsError, Lock};
use blankslate_sys::mount::{self, MountError};

/// Where the state lives unless told otherwise, as seen from inside the root.
pub const DEFAULT_STATE_DIR: &str = blankslate_decl::layout::DEFAULT_STATE_DIR;
/// The store's directory inside the state directory.
const STORE_DIR: &str = "store";
/// The object name given to generations.
const GENERATION_NAME: &str = "generation";
pub(crate) const CURRENT: &str = "current";
/// Written by boot activation, read to protect the booted generation.
const BOOTED: &str = "run/blankslate/booted";

#[derive(Debug, thiserror::Error)]
pub enum GenerationError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Fs(#[from] FsError),
    #[error("the state is on a read-only mount and cannot be written: {0}")]
    ReadOnly(#[from] MountError),
    #[error("the file system holding {} is read-only (mounted ro, or remounted so after an error); remount it read-write", .0.display())]
    ReadOnlyFileSystem(PathBuf),
    #[error("there is no generation {0}")]
    NoSuchGeneration(u32),
    #[error("generation {generation}: cannot read its declaration: {reason}")]
    BadDeclaration { generation: u32, reason: String },
    #[error("generation {0} is the current one; switch to another first")]
    DeleteCurrent(u32),
    #[error("generation {0} is the booted one; it is kept until the next boot")]
    DeleteBooted(u32),
    #[error("generation {0} is the one /etc is activated to (or being activated to); switch to another first")]
    DeleteActive(u32),
    #[error("generation {0} is the last good one or a trial's fallback; it is kept while a trial may need it")]
    DeleteFallback(u32),
    #[error(
        "generation {0} cannot be tried: there is no other generation to fall back to (none marked good, and it is the boot default already)"
    )]
    NoFallback(u32),
    #[error("profile link {name} points at {target}, which is not a store object")]
    BadLink { name: String, target: String },
}

pub type Result<T> = std::result::Result<T, GenerationError>;

/// One generation, as `generations list` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[allow(clippy::struct_excessive_bools)] // independent marks: one generation can have all four
pub struct Generation {
    pub number: u32,
    /// The store object's name.
    pub object: String,
    /// When the profile link was made, seconds since the epoch.
    pub created: i64,
    /// The boot default.
    pub current: bool,
    pub booted: bool,
    /// The one `/etc` of this root is activated to.
    pub active: bool,
    /// The last generation a boot marked good (`blankslate confirm`).
    pub good: bool,
}

/// What a build did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Built {
    pub generation: u32,
    pub object: String,
    /// False when the declaration matched the current generation and nothing was
    /// added.
    pub new: bool,
}

/// What garbage collection removed (or would remove, in a dry run).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Collected {
    pub removed: Vec<String>,
    pub kept: usize,
    /// Names in the store that are not objects (see [`crate::store::Debris`]).
    pub debris: Vec<String>,
}

/// The store and profiles of one root, opened for reading ([`State::open_existing`])
/// or under the state lock ([`State::open_locked`]).
#[derive(Debug)]
pub struct State {
    root: Dir,
    /// The state directory itself.
    dir: Dir,
    store: Store,
    profiles: Dir,
    location: PathBuf,
}

/// The state of a root opened for writing: whoever holds one holds the state lock
/// (one writer at a time), so the functions that change a root's records, `/etc` or
/// mounts take it rather than trusting their caller. It reads as a [`State`].
#[derive(Debug)]
pub struct LockedState {
    state: State,
    _lock: Lock,
}

impl std::ops::Deref for LockedState {
    type Target = State;

    fn deref(&self) -> &State {
        &self.state
    }
}

fn relative(path: &Path) -> &Path {
    path.strip_prefix("/").unwrap_or(path)
}

/// The net's directory in the state directory.
pub const NET_DIR: &str = "net";

/// Where the store of the state directory `state_dir` is, as the live system sees it.
pub fn store_location(state_dir: &Path) -> PathBuf {
    state_dir.join(STORE_DIR)
}

/// What only a writer does: each takes the lock by being a method of the locked state.
impl LockedState {
    /// Adds `declaration` with its parts (`("etc", object)`, objects already in the
    /// store) as a new generation and makes it current. If it equals the current
    /// generation, nothing changes.
    pub fn build(&self, declaration: &Declaration, parts: &[(&str, &str)]) -> Result<Built> {
        let tree = generation_tree(declaration, parts);
        let object = Store::object_name(GENERATION_NAME, &tree)?;
        if let Some(current) = self.current()? {
            if current.object == object {
                // Checked against what it would be, and written again if damaged.
                self.store.add(GENERATION_NAME, &tree)?;
                return Ok(Built { generation: current.number, object, new: false });
            }
        }
        let built = self.add(declaration, parts)?;
        self.set_current(built.generation)?;
        Ok(Built { new: true, ..built })
    }

    /// Adds `declaration` with its parts as a generation without making it current
    /// (`switch` does that once activation succeeded). The newest generation with the
    /// same content is reused, which also finishes a build that died before moving
    /// `current`.
    pub fn add(&self, declaration: &Declaration, parts: &[(&str, &str)]) -> Result<Built> {
        let tree = generation_tree(declaration, parts);
        let object = Store::object_name(GENERATION_NAME, &tree)?;
        self.store.add(GENERATION_NAME, &tree)?;
        let list = self.list()?;
        if let Some(same) = list.iter().rev().find(|g| g.object == object) {
            return Ok(Built { generation: same.number, object, new: false });
        }
        let number = list.last().map_or(1, |g| g.number + 1);
        self.profiles.symlink_atomic(link_name(number), Path::new("../store").join(&object))?;
        blankslate_sys::failpoint::hit("generation:linked");
        Ok(Built { generation: number, object, new: true })
    }

    /// Adds a generation made of `generation`'s parts (its `/etc`, …) and `declaration`
    /// in place of its own, without making it current: the same system with a changed
    /// declaration (as `persist add` makes). An unchanged declaration gives `generation`
    /// back.
    pub fn amend(&self, generation: &Generation, declaration: &Declaration) -> Result<Built> {
        let dir = self.store.open_object(&generation.object)?;
        let mut parts = Vec::new();
        for (name, kind) in dir.entries()? {
            let Some(name) = name.to_str().filter(|_| kind == blankslate_sys::fs::Kind::Symlink) else { continue };
            if let Some(object) = self.part(generation, name)? {
                parts.push((name.to_owned(), object));
            }
        }
        let parts: Vec<(&str, &str)> = parts.iter().map(|(name, object)| (name.as_str(), object.as_str())).collect();
        self.add(declaration, &parts)
    }

    /// Points `current` at generation `number`, atomically: the next boot uses it, with
    /// no trial (a boot trial on record for it, or pending for another, ends).
    pub fn set_current(&self, number: u32) -> Result<()> {
        self.generation(number)?;
        self.end_boot_trial_for(number)?;
        self.set_link(CURRENT, number)?;
        blankslate_sys::failpoint::hit("generation:current");
        Ok(())
    }

    /// Removes the profile link of generation `number` (its objects stay until `gc`).
    pub fn delete(&self, number: u32) -> Result<()> {
        let generation = self.generation(number)?;
        if generation.current {
            return Err(GenerationError::DeleteCurrent(number));
        }
        if generation.booted {
            return Err(GenerationError::DeleteBooted(number));
        }
        if self.activated().iter().any(|(active, _)| *active == number) || self.switching().contains(&number) {
            return Err(GenerationError::DeleteActive(number));
        }
        if self.protected_by_trials()?.contains(&number) {
            return Err(GenerationError::DeleteFallback(number));
        }
        self.profiles.remove_file(link_name(number))?;
        self.profiles.sync()?;
        Ok(())
    }
}

impl State {
    /// Opens the state of `root` for reading, writing nothing: `None` if there is no
    /// state yet (nothing was ever built there).
    pub fn open_existing(root: &Dir, state_dir: &Path) -> Result<Option<State>> {
        let opened = |path: &Path| match root.open_dir(path) {
            Ok(dir) => Ok(Some(dir)),
            Err(error) if error.is_not_found() => Ok(None),
            Err(error) => Err(error),
        };
        let (Some(store), Some(profiles)) =
            (opened(&relative(state_dir).join(STORE_DIR))?, opened(&relative(state_dir).join("profiles"))?)
        else {
            return Ok(None);
        };
        let dir = root.open_dir(relative(state_dir))?;
        let store = Store::from_dir(store, &store_location(state_dir));
        Ok(Some(State { root: root.try_clone()?, dir, store, profiles, location: state_dir.to_path_buf() }))
    }

    /// Opens the state for writing, creating it if needed: takes the lock (waiting for
    /// any other writer as the process's [`blankslate_sys::fs::lock_wait`] says, and saying
    /// which command holds it) and removes temporaries a crashed writer left.
    ///
    /// On a live system the state is mounted read-only (boot does that, so that nothing
    /// else writes the store): writers then go through a private writable view of that
    /// mount ([`mount::writable_view`]), and the shared mount stays read-only.
    pub fn open_locked(root: &Dir, state_dir: &Path) -> Result<LockedState> {
        let mut dir = root.create_dir_all(relative(state_dir), 0o755)?;
        if dir.is_read_only()? {
            dir = mount::writable_view(&dir)?;
            if dir.is_read_only()? {
                return Err(GenerationError::ReadOnlyFileSystem(dir.path().to_path_buf()));
            }
        }
        let lock = dir.lock_writer("lock")?;
        let store = Store::from_dir(dir.create_dir_all(STORE_DIR, 0o755)?, &store_location(state_dir));
        let profiles = dir.create_dir_all("profiles", 0o755)?;
        store.remove_temporaries()?;
        for (name, _) in profiles.entries()? {
            if blankslate_sys::fs::is_temp_name(&name) {
                profiles.remove_file(&name)?;
            }
        }
        let state = State { root: root.try_clone()?, dir, store, profiles, location: state_dir.to_path_buf() };
        Ok(LockedState { state, _lock: lock })
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    pub fn state_dir(&self) -> &Path {
        &self.location
    }

    /// The state directory, opened.
    pub(crate) fn dir(&self) -> &Dir {
        &self.dir
    }

    /// The net (`net/` beside the store): what shutdowns kept of what the next boot
    /// erased. Made `root 0700` if missing, and put back to that if changed: what is
    /// in it was readable only by whom the original was, and the net is no way around
    /// that. Needs the lock.
    pub fn net(&self) -> Result<Dir> {
        let net = self.dir.create_dir_all(NET_DIR, 0o700)?;
        let meta = net.own_meta()?;
        if (meta.uid, meta.gid) != (0, 0) && rustix::process::geteuid().is_root() {
            net.set_owner(0, 0)?;
        }
        if meta.mode != 0o700 {
            net.set_mode(0o700)?;
        }
        Ok(net)
    }

    /// The net, opened for reading, if a shutdown ever made it.
    pub fn existing_net(&self) -> Result<Option<Dir>> {
        match self.dir.open_dir(NET_DIR) {
            Ok(net) => Ok(Some(net)),
            Err(error) if error.is_not_found() => Ok(None),
            Err(error) => Err(error.into()),
        }
    }

    /// The root the state belongs to.
    pub fn root(&self) -> &Dir {
        &self.root
    }

    /// Every generation, oldest first.
    pub fn list(&self) -> Result<Vec<Generation>> {
        let current = self.current_number()?;
        let good = self.good_number()?;
        let active = self.active_number();
        let booted = self.booted_object();
        let mut out = Vec::new();
        for (name, _) in self.profiles.entries()? {
            let Some(number) = parse_link_name(&name) else { continue };
            let object = self.link_object(&name)?;
            let created = self.profiles.meta(&name)?.mtime;
            let booted = booted.as_deref() == Some(object.as_str());
            out.push(Generation {
                number,
                object,
                created,
                current: current == Some(number),
                booted,
                active: active == Some(number),
                good: good == Some(number),
            });
        }
        out.sort_by_key(|g| g.number);
        Ok(out)
    }

    /// The generation boot uses by default.
    pub fn current_number(&self) -> Result<Option<u32>> {
        self.link_number(CURRENT)
    }

    /// The generation a profile link other than `system-N-link` names.
    pub(crate) fn link_number(&self, name: &str) -> Result<Option<u32>> {
        match self.profiles.read_link(name) {
            Ok(target) => Ok(parse_link_name(&target)),
            Err(error) if error.is_not_found() => Ok(None),
            Err(error) => Err(error.into()),
        }
    }

    /// Points the profile link `name` at generation `number`, atomically.
    pub(crate) fn set_link(&self, name: &str, number: u32) -> Result<()> {
        self.profiles.symlink_atomic(name, link_name(number))?;
        Ok(())
    }

    /// The generation `/etc` of the root is activated to: the activation marker, or
    /// while an activation is under way, the state file it started from.
    pub fn active_number(&self) -> Option<u32> {
        if let Some(marker) = activation::marker(&self.root) {
            return Some(marker.generation);
        }
        let state = self.root.open_dir(activation::DIR).ok()?;
        let record: serde_json::Value = serde_json::from_slice(&state.read(activation::STATE_FILE).ok()?).ok()?;
        u32::try_from(record.get("generation")?.as_u64()?).ok()
    }

    pub fn current(&self) -> Result<Option<Generation>> {
        let number = self.current_number()?;
        Ok(self.list()?.into_iter().find(|g| Some(g.number) == number))
    }

    pub fn generation(&self, number: u32) -> Result<Generation> {
        self.list()?.into_iter().find(|g| g.number == number).ok_or(GenerationError::NoSuchGeneration(number))
    }

    /// The object of the booted generation, if boot recorded one.
    fn booted_object(&self) -> Option<String> {
        let run = self.root.open_dir(Path::new(BOOTED).parent()?).ok()?;
        let target = run.read_link(Path::new(BOOTED).file_name()?).ok()?;
        Path::new(&target).file_name()?.to_str().map(str::to_owned)
    }

    /// The generations and etc objects `/etc` is activated to, or being activated to
    /// (an interrupted activation's journal), or was before it (its state file).
    fn activated(&self) -> Vec<(u32, String)> {
        let Ok(dir) = self.root.open_dir(activation::DIR) else { return Vec::new() };
        [activation::STATE_FILE, activation::JOURNAL_FILE]
            .into_iter()
            .filter_map(|name| dir.read(name).ok())
            .filter_map(|bytes| serde_json::from_slice::<serde_json::Value>(&bytes).ok())
            .filter_map(|record| {
                let generation = u32::try_from(record.get("generation")?.as_u64()?).ok()?;
                Some((generation, record.get("object")?.as_str()?.to_owned()))
            })
            .collect()
    }

    /// The generations a switch under way goes to and would be undone to.
    fn switching(&self) -> Vec<u32> {
        let Ok(dir) = self.root.open_dir(activation::DIR) else { return Vec::new() };
        let Ok(bytes) = dir.read(activation::TRANSACTION_FILE) else { return Vec::new() };
        let Ok(record) = serde_json::from_slice::<serde_json::Value>(&bytes) else { return Vec::new() };
        let number = |key: &str| u32::try_from(record.get(key)?.as_u64()?).ok();
        [number("generation"), number("previous")].into_iter().flatten().collect()
    }

    fn link_object(&self, name: &OsStr) -> Result<String> {
        let target = self.profiles.read_link(name)?;
        let object = Path::new(&target).file_name().and_then(OsStr::to_str).map(str::to_owned);
        match object {
            Some(object) if self.store.contains(&object)? => Ok(object),
            _ => Err(GenerationError::BadLink {
                name: name.to_string_lossy().into_owned(),
                target: target.to_string_lossy().into_owned(),
            }),
        }
    }

    /// The number `declaration` has, or would get if it were added now: that of a
    /// generation with the same declaration, else the next one.
    pub fn number_for(&self, declaration: &Declaration) -> Result<u32> {
        let list = self.list()?;
        let canonical = declaration.canonical_json();
        let existing = list.iter().find(|g| self.declaration_json(g).is_ok_and(|d| d == canonical));
        Ok(existing.map_or_else(|| list.last().map_or(1, |g| g.number + 1), |g| g.number))
    }

    /// The store object of a generation's part (`"etc"`), if it has one.
    pub fn part(&self, generation: &Generation, name: &str) -> Result<Option<String>> {
        let dir = self.store.open_object(&generation.object)?;
        match dir.read_link(name) {
            Ok(target) => Ok(Path::new(&target).file_name().and_then(OsStr::to_str).map(str::to_owned)),
            Err(error) if error.is_not_found() => Ok(None),
            Err(error) => Err(error.into()),
        }
    }

    /// What activating a generation's persisted paths needs of its declaration:
    /// `version`, `root` and `persist` (no `/etc` entries, default audit settings).
    /// The file is read only up to where the `/etc` entries begin, so the cost does
    /// not grow with them.
    pub fn persisted_declaration(&self, generation: &Generation) -> Result<Declaration> {
        use std::io::Read as _;
        let bad = |reason: String| GenerationError::BadDeclaration { generation: generation.number, reason };
        let mut file = self.store.open_object(&generation.object)?.open_file("declaration.json")?;
        let mut finder = blankslate_decl::EtcFinder::default();
        let mut text = Vec::new();
        let mut piece = [0; 16 * 1024];
        loop {
            let read = file.read(&mut piece).map_err(|e| bad(e.to_string()))?;
            if read == 0 {
                let text = String::from_utf8(text).map_err(|e| bad(e.to_string()))?;
                let mut declaration = Declaration::from_canonical_json(&text).map_err(|e| bad(e.to_string()))?;
                declaration.etc.clear();
                declaration.etc_tree = None;
                declaration.audit = blankslate_decl::AuditSettings::default();
                return Ok(declaration);
            }
            text.extend_from_slice(&piece[..read]);
            if let Some(end) = finder.feed(&piece[..read]) {
                text.truncate(end);
                text.push(b'}');
                let text = String::from_utf8(text).map_err(|e| bad(e.to_string()))?;
                return Declaration::from_canonical_json_before_etc(&text).map_err(|e| bad(e.to_string()));
            }
        }
    }

    /// The canonical declaration JSON of a generation.
    pub fn declaration_json(&self, generation: &Generation) -> Result<String> {
        let bytes = self.store.open_object(&generation.object)?.read("declaration.json")?;
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    }

    /// Removes every store object that no generation (and no booted system) reaches,
    /// and the store's debris: names that are not objects.
    pub fn collect_garbage(&self, dry_run: bool) -> Result<Collected> {
        let mut live: BTreeSet<String> = BTreeSet::new();
        let mut pending: Vec<String> = self.list()?.into_iter().map(|g| g.object).collect();
        pending.extend(self.booted_object());
        pending.extend(self.activated().into_iter().map(|(_, etc_object)| etc_object));
        while let Some(object) = pending.pop() {
            if !live.insert(object.clone()) {
                continue;
            }
            pending.extend(self.references(&object)?);
        }
        let mut collected = Collected::default();
        for object in self.store.objects()? {
            if live.contains(&object) {
                collected.kept += 1;
            } else {
                collected.removed.push(object);
            }
        }
        let debris = self.store.debris()?;
        collected.debris = debris.iter().map(|d| d.name.to_string_lossy().into_owned()).collect();
        if !dry_run {
            // Renamed away before deleted: a crash leaves temporaries, never part of
            // an object under its name.
            self.store.remove_all(&collected.removed.iter().map(String::as_str).collect::<Vec<_>>())?;
            self.store.remove_debris(&debris)?;
        }
        Ok(collected)
    }

    /// The objects an object names in its `references` file (none for leaves).
    fn references(&self, object: &str) -> Result<Vec<String>> {
        let Ok(dir) = self.store.open_object(object) else { return Ok(Vec::new()) };
        match dir.read("references") {
            Ok(bytes) => {
                Ok(String::from_utf8_lossy(&bytes).lines().filter(|l| !l.is_empty()).map(str::to_owned).collect())
            }
            Err(error) if error.is_not_found() => Ok(Vec::new()),
            Err(error) => Err(error.into()),
        }
    }
}

fn generation_tree(declaration: &Declaration, parts: &[(&str, &str)]) -> Tree {
    let mut references: Vec<&str> = parts.iter().map(|(_, object)| *object).collect();
    references.sort_unstable();
    references.dedup();
    let mut list = references.join("\n");
    if !list.is_empty() {
        list.push('\n');
    }
    let mut entries = BTreeMap::new();
    // A secret `text` makes the whole declaration readable by root alone.
    let json = declaration.canonical_json();
    let json = if declaration.has_secret_text() { Tree::secret_file(json) } else { Tree::file(json) };
    entries.insert("declaration.json".into(), json);
    entries.insert("references".into(), Tree::file(list));
    for (name, object) in parts {
        entries.insert((*name).into(), Tree::Symlink(format!("../{object}").into()));
    }
    Tree::Directory(entries)
}

fn link_name(number: u32) -> String {
    format!("system-{number}-link")
}

fn parse_link_name(name: &OsStr) -> Option<u32> {
    name.to_str()?.strip_prefix("system-")?.strip_suffix("-link")?.parse().ok()
}

/// Formats seconds since the epoch as `YYYY-MM-DD HH:MM:SS` UTC.
pub fn format_utc(seconds: i64) -> String {
    let days = seconds.div_euclid(86_400);
    let secs = seconds.rem_euclid(86_400);
    // Civil-from-days (proleptic Gregorian), after Howard Hinnant's algorithm.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02}", secs / 3600, secs % 3600 / 60, secs % 60)
}

#[cfg(test)]
mod tests;
