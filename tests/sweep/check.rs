//! The end state: one check, used after every point of every command, that the world
//! is at exactly one generation and nothing is lost or left behind.
//!
//! It looks for itself where it can (the store objects' contents against the
//! manifest, `/etc` entry by entry, `/proc/thread-self/mountinfo`, the names in the
//! state directory, `/etc` and the volumes, the processes), and asks the binary what
//! only it can say (`generations list`, `store verify`, the audit's findings, what
//! `repair --dry-run` would do), so that a bug in the audit does not hide one in a
//! switch.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use blankslate_state::activation::{ACTIVE_FILE, MOUNTS_FILE, STATE_FILE};
use blankslate_state::manifest::{EtcKind, Manifest, content_hash};
use serde_json::Value;

use super::world::{self, Shape, World};
use crate::common;

/// Why a point failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Class {
    /// The natural recovery exited with an error (or never ended).
    Stuck,
    /// A run exited 101: a panic.
    Panic,
    /// A run exited 0 although an error was injected, and the state is wrong.
    Silent,
    /// `store verify` finds a damaged object, or an `/etc` link leads to wrong contents.
    PartialObject,
    /// A temporary or a journal is left in the state directory, `/etc` or a volume.
    Temporary,
    /// `/etc` is not exactly the active generation's.
    Drift,
    /// The mounts below the root are not exactly the active generation's.
    Mounts,
    /// The active generation or the boot default is not what was asked, or a trial is
    /// left pending.
    Generations,
    /// Data in a volume (or moved into one) is missing or changed.
    DataLost,
    /// A process started for the world is still running.
    Process,
}

impl Class {
    pub const ALL: [Class; 10] = [
        Class::Stuck,
        Class::Panic,
        Class::Silent,
        Class::PartialObject,
        Class::Temporary,
        Class::Drift,
        Class::Mounts,
        Class::Generations,
        Class::DataLost,
        Class::Process,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Class::Stuck => "stuck",
            Class::Panic => "panic",
            Class::Silent => "silent",
            Class::PartialObject => "partial",
            Class::Temporary => "temp",
            Class::Drift => "drift",
            Class::Mounts => "mounts",
            Class::Generations => "gens",
            Class::DataLost => "data",
            Class::Process => "proc",
        }
    }

    pub fn meaning(self) -> &'static str {
        match self {
            Class::Stuck => "stuck: the recovery failed or hung",
            Class::Panic => "panic: exit 101",
            Class::Silent => "silent: exit 0 on an injected error, with a wrong state",
            Class::PartialObject => "partial object: the store is damaged, or /etc reads wrong contents from it",
            Class::Temporary => "temporary left: a temporary or journal remains",
            Class::Drift => "drift: /etc is not exactly the active generation's",
            Class::Mounts => {
                "mounts disagree: extra, missing or wrong mounts below the root, or the root shows other data than its volume"
            }
            Class::Generations => "generations wrong: active, boot default or a trial not as asked",
            Class::DataLost => "data lost: a volume's data is missing or changed",
            Class::Process => "leftover process: one started for the world still runs",
        }
    }
}

/// One thing found wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub class: Class,
    pub detail: String,
}

impl Failure {
    pub fn new(class: Class, detail: impl Into<String>) -> Failure {
        Failure { class, detail: detail.into() }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[{}] {}", self.class.name(), self.detail)
    }
}

/// A generation the intent names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gen {
    None,
    Number(u64),
    /// The highest-numbered generation (one a command made, as `persist add` does).
    Newest,
}

/// What the user asked for: the generations that must be active and the boot
/// default once the command (and its recovery) is through.
#[derive(Debug, Clone, Copy)]
pub struct Intent {
    pub active: Gen,
    pub default: Gen,
}

/// Data that must survive: a file's contents or a whole tree, where it is kept (a
/// volume, or the only copy there is) or as the live root shows it.
#[derive(Debug, Clone)]
pub struct Data {
    /// On the host.
    pub path: PathBuf,
    /// Seen through the live root: a path persisted there (through its mount) or a
    /// copy.
    pub seen: bool,
    pub expected: Expected,
}

#[derive(Debug, Clone)]
pub enum Expected {
    Text(String),
    /// The tree `snapshot` was taken of (`skip` left out).
    Tree {
        skip: Vec<&'static str>,
        snapshot: Snapshot,
    },
}

impl Data {
    /// A file kept in a volume (or the only copy there is) that holds `text`.
    pub fn kept(path: PathBuf, text: &str) -> Data {
        Data { path, seen: false, expected: Expected::Text(text.to_owned()) }
    }

    /// A file that the live root shows holding `text`.
    pub fn seen(path: PathBuf, text: &str) -> Data {
        Data { path, seen: true, expected: Expected::Text(text.to_owned()) }
    }

    /// The tree at `path` as it is now (`skip` left out), kept or seen.
    pub fn tree(path: PathBuf, skip: Vec<&'static str>, seen: bool) -> Data {
        let snapshot = snapshot(&path, &skip);
        Data { path, seen, expected: Expected::Tree { skip, snapshot } }
    }

    /// The same data, expected in another world: `from`, the world it was taken in,
    /// replaced by `to` in its path and in a text (which may name the world's paths).
    pub fn rebased(&self, from: &Path, to: &Path) -> Data {
        let path = to.join(self.path.strip_prefix(from).expect("data of the world"));
        let expected = match &self.expected {
            Expected::Text(text) => Expected::Text(text.replace(&*from.to_string_lossy(), &to.to_string_lossy())),
            tree @ Expected::Tree { .. } => tree.clone(),
        };
        Data { path, seen: self.seen, expected }
    }

    /// The same tree, expected at another path.
    pub fn moved_to(&self, path: PathBuf, seen: bool) -> Data {
        Data { path, seen, expected: self.expected.clone() }
    }
}

/// Per relative path: kind, mode, owner, size, contents hash or link target (and a
/// file's mtime). Directories' times are left out: entries come and go in them.
pub type Snapshot = BTreeMap<String, String>;

/// Takes a [`Snapshot`] of `top`, without following symlinks; `skip` names relative
/// paths whose subtrees are left out.
pub fn snapshot(top: &Path, skip: &[&str]) -> Snapshot {
    fn visit(top: &Path, path: &Path, skip: &[&str], out: &mut Snapshot) {
        let Ok(meta) = std::fs::symlink_metadata(path) else { return };
        let relative = path.strip_prefix(top).unwrap().to_string_lossy().into_owned();
        if skip.contains(&relative.as_str()) {
            return;
        }
        let head = format!("{:o} {}:{}", meta.mode(), meta.uid(), meta.gid());
        let line = if meta.is_dir() {
            let mut names: Vec<_> =
                std::fs::read_dir(path).unwrap().filter_map(Result::ok).map(|e| e.file_name()).collect();
            names.sort();
            for name in names {
                visit(top, &path.join(name), skip, out);
            }
            format!("dir {head}")
        } else if meta.file_type().is_symlink() {
            format!("link {head} -> {}", std::fs::read_link(path).unwrap().display())
        } else if meta.is_file() {
            let contents = std::fs::read(path).unwrap_or_default();
            format!("file {head} {} bytes {} mtime {}", meta.len(), content_hash(&contents), meta.mtime())
        } else {
            format!("special {head} rdev {}", meta.rdev())
        };
        out.insert(relative, line);
    }
    let mut out = Snapshot::new();
    visit(top, top, skip, &mut out);
    out
}

/// Names that an interrupted command leaves and a finished one must not: the
/// store's and the atomic writes' temporaries (`.NAME.tmp-PID-N`), staged `/etc`
/// entries, `persist add`'s copies, a migration's temporary, journals.
pub fn is_temporary(name: &str) -> bool {
    blankslate_sys::fs::is_temp_name(std::ffi::OsStr::new(name))
        || name.ends_with(".blankslate-new")
        || name.contains(".blankslate-persist-")
        || name.contains(".blankslate-migrate")
        || name.contains("journal")
}

/// What the state of a world must be.
#[derive(Debug, Clone)]
pub struct Expect {
    pub intent: Intent,
    pub data: Vec<Data>,
}

/// A generation as `generations list --json` shows it.
#[derive(Debug, Clone)]
struct Listed {
    number: u64,
    active: bool,
    default: bool,
    notes: Vec<String>,
}

/// Checks `world` against `expect`; every failure found, by class.
pub fn check(world: &World, expect: &Expect) -> Vec<Failure> {
    let mut failures = Vec::new();
    let state_root = match world.shape {
        Shape::Adopt => world.volume.clone(),
        Shape::Live | Shape::Boot => world.root.clone(),
    };
    let listed = generations(&state_root, &mut failures);
    if let Some(listed) = &listed {
        check_generations(listed, expect.intent, &mut failures);
    }
    check_store(&state_root, &mut failures);
    if world.shape != Shape::Adopt
        && let Some(active) = listed.as_ref().and_then(|l| l.iter().find(|g| g.active))
    {
        let generation = read_generation(&state_root, active.number);
        match &generation {
            Ok(generation) => {
                check_etc(&world.root, generation, &mut failures);
                check_mounts(world, generation, &mut failures);
            }
            Err(error) => failures.push(Failure::new(Class::Drift, error.clone())),
        }
        check_audit(&world.root, &mut failures);
        check_repair(&world.root, &mut failures);
    }
    check_temporaries(world, &state_root, &mut failures);
    check_data(&expect.data, &mut failures);
    for (pid, cmdline) in world::processes_of(&world.top) {
        failures.push(Failure::new(Class::Process, format!("pid {pid} still runs: {cmdline}")));
    }
    failures
}

fn run_json(args: &[&str], root: &Path) -> Result<(Option<i32>, Value), String> {
    let root = root.to_str().unwrap();
    let mut all = args.to_vec();
    all.extend(["--root", root]);
    let output = common::blankslate_env(&all, &[]);
    let value = serde_json::from_slice(&output.stdout).map_err(|e| {
        format!(
            "`{}` printed no JSON ({e}), exit {:?}: {}",
            args.join(" "),
            output.status.code(),
            common::stderr(&output).trim()
        )
    })?;
    Ok((output.status.code(), value))
}

fn generations(state_root: &Path, failures: &mut Vec<Failure>) -> Option<Vec<Listed>> {
    let value = match run_json(&["generations", "list", "--json"], state_root) {
        Ok((Some(0), value)) => value,
        Ok((code, _)) => {
            failures.push(Failure::new(Class::Generations, format!("`generations list` exits {code:?}")));
            return None;
        }
        Err(error) => {
            failures.push(Failure::new(Class::Generations, error));
            return None;
        }
    };
    Some(
        value
            .as_array()
            .map(|all| {
                all.iter()
                    .map(|g| Listed {
                        number: g["generation"].as_u64().unwrap_or(0),
                        active: g["active"] == true,
                        default: g["boot_default"] == true,
                        notes: g["notes"]
                            .as_array()
                            .map(|n| n.iter().filter_map(|s| s.as_str().map(str::to_owned)).collect())
                            .unwrap_or_default(),
                    })
                    .collect()
            })
            .unwrap_or_default(),
    )
}

fn check_generations(listed: &[Listed], intent: Intent, failures: &mut Vec<Failure>) {
    let newest = listed.iter().map(|g| g.number).max();
    let wanted = |asked: Gen| match asked {
        Gen::None => None,
        Gen::Number(n) => Some(n),
        Gen::Newest => newest,
    };
    let found = |pick: fn(&Listed) -> bool| listed.iter().filter(|g| pick(g)).map(|g| g.number).collect::<Vec<_>>();
    for (what, asked, have) in
        [("active", intent.active, found(|g| g.active)), ("the boot default", intent.default, found(|g| g.default))]
    {
        let want: Vec<u64> = wanted(asked).into_iter().collect();
        if have != want {
            failures.push(Failure::new(Class::Generations, format!("{what} is {have:?}, asked for {want:?}")));
        }
    }
    for g in listed {
        for note in &g.notes {
            failures.push(Failure::new(Class::Generations, format!("generation {}: {note}", g.number)));
        }
    }
}

fn check_store(state_root: &Path, failures: &mut Vec<Failure>) {
    match run_json(&["store", "verify", "--json"], state_root) {
        Ok((code, value)) => {
            let corrupt = value["corrupt"].as_array().cloned().unwrap_or_default();
            // Debris (a temporary left in the store) exits 1 too: it is a temporary,
            // which the walk for them reports.
            let debris = value["debris"].as_array().is_some_and(|d| !d.is_empty());
            if !corrupt.is_empty() || !(code == Some(0) || code == Some(1) && debris) {
                let shown: Vec<String> = corrupt.iter().take(3).map(ToString::to_string).collect();
                failures.push(Failure::new(
                    Class::PartialObject,
                    format!("store verify exits {code:?}: {} corrupt {}", corrupt.len(), shown.join(", ")),
                ));
            }
        }
        Err(error) => failures.push(Failure::new(Class::PartialObject, error)),
    }
}

/// The parts of a generation the check needs, read from the store by hand.
#[derive(Debug)]
pub struct Generation {
    pub number: u64,
    /// The store object's directory on the host.
    pub etc_object: String,
    pub manifest: Manifest,
    /// Persisted paths: (persistent root, path, how) with how `directory`, `bind`,
    /// `symlink` or `copy`.
    pub persisted: Vec<(String, String, String)>,
}

pub fn read_generation(state_root: &Path, number: u64) -> Result<Generation, String> {
    let state = state_root.join("var/lib/blankslate");
    let link = state.join(format!("profiles/system-{number}-link"));
    let target = std::fs::read_link(&link).map_err(|e| format!("generation {number}: {}: {e}", link.display()))?;
    let object = state.join("profiles").join(target);
    let declaration = std::fs::read(object.join("declaration.json"))
        .map_err(|e| format!("generation {number}: its declaration.json: {e}"))?;
    let declaration: Value =
        serde_json::from_slice(&declaration).map_err(|e| format!("generation {number}: declaration.json: {e}"))?;
    let etc = std::fs::read_link(object.join("etc")).map_err(|e| format!("generation {number}: its etc part: {e}"))?;
    let etc_object = etc.file_name().unwrap().to_string_lossy().into_owned();
    let manifest = std::fs::read(state.join("store").join(&etc_object).join("manifest.json"))
        .map_err(|e| format!("generation {number}: {etc_object}/manifest.json: {e}"))?;
    let manifest = Manifest::from_json(manifest).map_err(|e| format!("{etc_object}/manifest.json: {e}"))?;
    let mut persisted = Vec::new();
    for (volume, table) in declaration["persist"].as_object().into_iter().flatten() {
        assert!(
            table["users"].as_object().is_none_or(serde_json::Map::is_empty),
            "the sweep's checker does not follow users' homes"
        );
        for entry in table["directories"].as_array().into_iter().flatten() {
            persisted.push((volume.clone(), entry["path"].as_str().unwrap().to_owned(), "directory".to_owned()));
        }
        for entry in table["files"].as_array().into_iter().flatten() {
            let how = entry["how"].as_str().unwrap_or("bind").to_owned();
            persisted.push((volume.clone(), entry["path"].as_str().unwrap().to_owned(), how));
        }
    }
    Ok(Generation { number, etc_object, manifest, persisted })
}

/// User and group names of the generation's own `passwd` and `group`.
fn ids(store_etc: &Path, file: &str) -> BTreeMap<String, u32> {
    let text = std::fs::read_to_string(store_etc.join(file)).unwrap_or_default();
    let mut ids: BTreeMap<String, u32> = text
        .lines()
        .filter_map(|l| Some((l.split(':').next()?.to_owned(), l.split(':').nth(2)?.parse().ok()?)))
        .collect();
    ids.insert("root".into(), 0);
    ids
}

/// `/etc` entry by entry against the generation's manifest, then every name in
/// `/etc` that nothing accounts for.
fn check_etc(root: &Path, generation: &Generation, failures: &mut Vec<Failure>) {
    let etc = root.join("etc");
    let store_etc = root.join("var/lib/blankslate/store").join(&generation.etc_object).join("etc");
    let mut drift = |detail: String| failures.push(Failure::new(Class::Drift, detail));
    let static_target = format!("/var/lib/blankslate/store/{}/etc", generation.etc_object);
    match std::fs::read_link(etc.join("static")) {
        Ok(target) if target == Path::new(&static_target) => {}
        Ok(target) => drift(format!(
            "/etc/static -> {}, not generation {}'s {static_target}",
            target.display(),
            generation.number
        )),
        Err(e) => drift(format!("/etc/static: {e}")),
    }
    let (users, groups) = (ids(&store_etc, "passwd"), ids(&store_etc, "group"));
    let mut wrong_contents = Vec::new();
    for (path, entry) in &generation.manifest.entries {
        let live = etc.join(path);
        let meta = std::fs::symlink_metadata(&live);
        let owner_ok = |meta: &std::fs::Metadata| {
            users.get(&entry.user).is_none_or(|&uid| uid == meta.uid())
                && groups.get(&entry.group).is_none_or(|&gid| gid == meta.gid())
        };
        let problem = match (&entry.kind, &meta) {
            (_, Err(e)) => Some(format!("missing: {e}")),
            (EtcKind::Link, Ok(m)) if m.file_type().is_symlink() => {
                let target = std::fs::read_link(&live).unwrap();
                if target == Path::new("/etc/static").join(path) {
                    match std::fs::read(store_etc.join(path)) {
                        Ok(contents) if content_hash(&contents) == entry.hash => None,
                        Ok(_) => {
                            wrong_contents.push(path.to_owned());
                            None
                        }
                        Err(e) => Some(format!("its store file: {e}")),
                    }
                } else {
                    Some(format!("links to {}", target.display()))
                }
            }
            (EtcKind::DirectLink { target }, Ok(m)) if m.file_type().is_symlink() => {
                let have = std::fs::read_link(&live).unwrap();
                (have != Path::new(target)).then(|| format!("links to {}, not {target}", have.display()))
            }
            (EtcKind::Copy, Ok(m)) if m.is_file() => {
                let contents = std::fs::read(&live).unwrap_or_default();
                if content_hash(&contents) != entry.hash {
                    Some("a copy with other contents".to_owned())
                } else if m.permissions().mode() & 0o7777 != entry.mode_bits() || !owner_ok(m) {
                    Some(format!("a copy {:o} {}:{}", m.permissions().mode() & 0o7777, m.uid(), m.gid()))
                } else {
                    None
                }
            }
            (EtcKind::Directory, Ok(m)) if m.is_dir() => (m.permissions().mode() & 0o7777 != entry.mode_bits()
                || !owner_ok(m))
            .then(|| format!("a directory {:o} {}:{}", m.permissions().mode() & 0o7777, m.uid(), m.gid())),
            (kind, Ok(m)) => Some(format!("a {:?} where the generation has {kind:?}", m.file_type())),
        };
        if let Some(problem) = problem {
            drift(format!("/etc/{path}: {problem}"));
        }
    }
    if !wrong_contents.is_empty() {
        failures.push(Failure::new(
            Class::PartialObject,
            format!(
                "/etc reads other contents than generation {} built: {}",
                generation.number,
                wrong_contents.join(", ")
            ),
        ));
    }
    // Every name in /etc: an entry, a parent of one, a persisted path (or a parent of
    // one), blankslate's own, a backup it made, or a temporary (reported apart).
    let persisted: Vec<String> =
        generation.persisted.iter().filter_map(|(_, path, _)| path.strip_prefix("/etc/").map(str::to_owned)).collect();
    let accounted = |relative: &str| {
        let is_or_holds = |path: &str| path == relative || path.starts_with(&format!("{relative}/"));
        relative == "static"
            || relative == ".blankslate"
            || relative.starts_with(".blankslate/")
            || relative.contains(".blankslate-backup")
            || generation.manifest.entries.keys().any(&is_or_holds)
            || persisted.iter().any(|p| is_or_holds(p))
    };
    let mut strays = Vec::new();
    walk(&etc, &mut |path, _| {
        let relative = path.strip_prefix(&etc).unwrap().to_string_lossy().into_owned();
        let name = path.file_name().unwrap().to_string_lossy();
        if !accounted(&relative) && !is_temporary(&name) {
            strays.push(relative.clone());
        }
        // Not into persisted paths (a volume's data) nor into what is stray already.
        !persisted.contains(&relative) && accounted(&relative)
    });
    for stray in strays {
        failures.push(Failure::new(Class::Drift, format!("/etc/{stray}: not in generation {}", generation.number)));
    }
}

/// Walks `dir` without following symlinks; `visit(path, is_dir)` says whether to
/// descend into a directory.
fn walk(dir: &Path, visit: &mut dyn FnMut(&Path, bool) -> bool) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    let mut entries: Vec<_> = entries.filter_map(Result::ok).collect();
    entries.sort_by_key(std::fs::DirEntry::file_name);
    for entry in entries {
        let path = entry.path();
        let is_dir = entry.file_type().is_ok_and(|t| t.is_dir());
        if visit(&path, is_dir) && is_dir {
            walk(&path, visit);
        }
    }
}

/// One line of `/proc/thread-self/mountinfo`.
#[derive(Debug, Clone)]
pub struct MountLine {
    pub device: String,
    /// The path inside its file system that is mounted.
    pub source_root: String,
    pub mount_point: PathBuf,
    pub fs_type: String,
}

pub fn mounts() -> Vec<MountLine> {
    let text = std::fs::read_to_string("/proc/thread-self/mountinfo").unwrap();
    let unescape =
        |s: &str| s.replace("\\040", " ").replace("\\011", "\t").replace("\\012", "\n").replace("\\134", "\\");
    text.lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split(' ').collect();
            let dash = fields.iter().position(|f| *f == "-")?;
            Some(MountLine {
                device: fields.get(2)?.to_string(),
                source_root: unescape(fields.get(3)?),
                mount_point: PathBuf::from(unescape(fields.get(4)?)),
                fs_type: fields.get(dash + 1)?.to_string(),
            })
        })
        .collect()
}

/// The mounts below the root: exactly the volumes (and, booted, the state's
/// read-only bind) and the generation's bind-mounted paths, each once, each from
/// its place in its volume.
fn check_mounts(world: &World, generation: &Generation, failures: &mut Vec<Failure>) {
    let all = mounts();
    let below: Vec<&MountLine> =
        all.iter().filter(|m| m.mount_point.starts_with(&world.root) && m.mount_point != world.root).collect();
    let volume_device =
        |mount_point: &Path| all.iter().rev().find(|m| m.mount_point == mount_point).map(|m| m.device.clone());
    // (mount point, device, root inside that file system)
    let mut expected: Vec<(PathBuf, Option<String>, String)> = Vec::new();
    let volumes: BTreeSet<&str> = generation.persisted.iter().map(|(v, _, _)| v.as_str()).collect();
    for volume in &volumes {
        let at = world.in_root(volume);
        expected.push((at.clone(), volume_device(&at), "/".into()));
    }
    if world.shape == Shape::Boot {
        let at = world.in_root("/var/lib/blankslate");
        expected.push((at, volume_device(&world.in_root("/persist")), "/var/lib/blankslate".into()));
    }
    for (volume, path, how) in &generation.persisted {
        if how == "directory" || how == "bind" {
            expected.push((world.in_root(path), volume_device(&world.in_root(volume)), path.clone()));
        }
    }
    let mut unmatched: Vec<&MountLine> = below.clone();
    for (at, device, source_root) in &expected {
        match unmatched.iter().position(|m| &m.mount_point == at) {
            Some(index) => {
                let found = unmatched.remove(index);
                if device.as_ref().is_some_and(|d| *d != found.device) || found.source_root != *source_root {
                    failures.push(Failure::new(
                        Class::Mounts,
                        format!(
                            "{} is mounted from {}:{} ({}), not {source_root} of its volume",
                            at.display(),
                            found.device,
                            found.source_root,
                            found.fs_type
                        ),
                    ));
                }
            }
            None => failures.push(Failure::new(Class::Mounts, format!("{} is not mounted", at.display()))),
        }
    }
    for extra in unmatched {
        failures.push(Failure::new(
            Class::Mounts,
            format!(
                "{} is mounted ({} {} {}), and generation {} does not mount it there",
                extra.mount_point.display(),
                extra.fs_type,
                extra.device,
                extra.source_root,
                generation.number
            ),
        ));
    }
}

/// The audit's findings that mean the root is not its generation.
fn check_audit(root: &Path, failures: &mut Vec<Failure>) {
    let (code, value) = match run_json(&["audit", "--json"], root) {
        Ok(found) => found,
        Err(error) => {
            failures.push(Failure::new(Class::Drift, format!("the audit: {error}")));
            return;
        }
    };
    if code == Some(3) {
        failures.push(Failure::new(Class::Drift, "the audit failed (exit 3)"));
    }
    for finding in value["findings"].as_array().into_iter().flatten() {
        let path = finding["path"].as_str().unwrap_or("?");
        let name = path.rsplit('/').next().unwrap_or(path);
        let shown = format!(
            "audit: {} {path} {}",
            finding["class"].as_str().unwrap_or("?"),
            finding["reason"].as_str().unwrap_or("")
        );
        let class = match finding["class"].as_str().unwrap_or("") {
            // Temporaries are counted by the walk; backups are what a switch and repair make.
            "etc-stray" if is_temporary(name) || name.contains(".blankslate-backup") => continue,
            "etc-drift" | "etc-stray" | "error" => Class::Drift,
            "persist" | "volume" => Class::Mounts,
            "fallback" => Class::Generations,
            // Mount points left in the root and data kept in a volume are expected.
            _ => continue,
        };
        failures.push(Failure::new(class, shown.trim_end().to_owned()));
    }
}

/// What `repair --dry-run` would do: nothing.
fn check_repair(root: &Path, failures: &mut Vec<Failure>) {
    let (code, value) = match run_json(&["repair", "--dry-run", "--json"], root) {
        Ok(found) => found,
        Err(error) => {
            failures.push(Failure::new(Class::Drift, format!("repair --dry-run: {error}")));
            return;
        }
    };
    if code != Some(0) {
        failures.push(Failure::new(Class::Drift, format!("repair --dry-run exits {code:?}")));
    }
    let steps = value["etc"]["steps"].as_array().cloned().unwrap_or_default();
    if !steps.is_empty() || value["etc"]["static_fixed"] == true {
        let shown: Vec<String> = steps.iter().take(3).map(ToString::to_string).collect();
        failures.push(Failure::new(Class::Drift, format!("repair --dry-run would change /etc: {}", shown.join(", "))));
    }
    for finding in value["persisted_findings"].as_array().into_iter().flatten().take(3) {
        failures.push(Failure::new(Class::Mounts, format!("repair --dry-run would fix: {finding}")));
    }
}

/// Temporaries and journals in the state directory, `/etc` and the volume(s).
fn check_temporaries(world: &World, state_root: &Path, failures: &mut Vec<Failure>) {
    let mut places = vec![state_root.join("var/lib/blankslate"), world.volume.clone()];
    if world.shape != Shape::Adopt {
        places.push(world.root.join("etc"));
    }
    let mut found = BTreeSet::new();
    for place in &places {
        walk(place, &mut |path, _| {
            let name = path.file_name().unwrap().to_string_lossy();
            let in_blankslate_dir = path.parent().is_some_and(|p| p.ends_with("etc/.blankslate"));
            // The records a finished command keeps (the journal and the transaction
            // record are there only while one is under way).
            let own = in_blankslate_dir && [ACTIVE_FILE, STATE_FILE, MOUNTS_FILE].contains(&name.as_ref());
            if is_temporary(&name) || (in_blankslate_dir && !own) {
                found.insert(path.to_path_buf());
            }
            true
        });
    }
    for path in found {
        failures.push(Failure::new(Class::Temporary, format!("{} is left", path.display())));
    }
}

/// Data kept that is wrong is lost; data seen through the root that is wrong while
/// everything kept is right means the root shows something else than its volume (a
/// mount or a copy), reported with the mounts.
fn check_data(data: &[Data], failures: &mut Vec<Failure>) {
    let (mut lost, mut unseen) = (Vec::new(), Vec::new());
    for item in data {
        let path = item.path.display();
        let wrong = match &item.expected {
            Expected::Text(text) => match std::fs::read_to_string(&item.path) {
                Ok(have) if have == *text => None,
                Ok(have) => Some(format!("{path} holds {have:?}, not {text:?}")),
                Err(e) => Some(format!("{path}: {e}")),
            },
            Expected::Tree { skip, snapshot: before } => {
                let now = snapshot(&item.path, skip);
                let changed: Vec<String> = before
                    .keys()
                    .chain(now.keys())
                    .collect::<BTreeSet<_>>()
                    .into_iter()
                    .filter(|k| before.get(*k) != now.get(*k))
                    .take(3)
                    .map(|k| format!("{k}: {:?} -> {:?}", before.get(k), now.get(k)))
                    .collect();
                (!changed.is_empty()).then(|| format!("{path} is not as it was: {}", changed.join("; ")))
            }
        };
        match wrong {
            Some(wrong) if item.seen => unseen.push(Failure::new(Class::Mounts, format!("the root shows {wrong}"))),
            Some(wrong) => lost.push(Failure::new(Class::DataLost, wrong)),
            None => {}
        }
    }
    failures.extend(if lost.is_empty() { unseen } else { lost });
}
