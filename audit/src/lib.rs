//! `blankslate audit`: the live root against the declaration of a generation.
//!
//! What the audit reports, by class (see [`Class`]):
//! - **undeclared**: state on the root's own file system that nothing declares, and
//!   that the next reboot erases; grouped by the nearest directory that holds nothing
//!   declared, with the group's file count and size, largest first;
//! - **etc-drift**: a managed `/etc` entry that is not what the generation put there
//!   (a link replaced by a file or pointing elsewhere, an edited copy, a missing
//!   entry, a copy with the wrong owner or mode, `/etc/static` pointing elsewhere);
//! - **etc-stray**: a file in `/etc` that nothing manages (it too is lost at reboot),
//!   with the packages it came from where dpkg lists it ([`dpkg`]);
//! - **package-missing**: a file dpkg says an installed package put in `/etc` that is
//!   gone and not declared (a reboot erased it): the package is broken until
//!   reinstalled;
//! - **persist**: a persisted path that is not mounted, mounted from the wrong source,
//!   a symlink entry replaced by a regular file, a source missing in its volume, a
//!   copy refused when opened (a symlink, FIFO or hard link: read only through a
//!   checked descriptor, never waited on), or a wrong owner or mode (of the path, or
//!   of a declared `parent`); or a mount from a volume that nothing declares (a
//!   persisted path left mounted after the declaration dropped it);
//! - **volume**: a persistent root that is not a mounted volume (a plain directory of
//!   the root, or nothing): reported once, at its mount point, instead of one finding
//!   per path persisted from it;
//! - **persist-stray**: data in a persistent volume that no declaration reaches any
//!   more (reported, never deleted);
//! - **fallback**: the system runs another generation than it was asked to, because
//!   a boot trial failed or a switch was not confirmed in time;
//! - **error**: a directory that could not be read, or changed under the walk.
//!
//! Ignored paths (regenerated at every boot, matched by `[audit] ignore` — see
//! [`blankslate_decl::glob`] for the wildcards — or written by the audit itself)
//! are counted, never listed. What counts as declared: persisted paths and everything
//! under them, the persistent roots' mount points, managed `/etc` entries,
//! `/etc/static`, `/etc/.blankslate`, the state directory, the kernel's mount points
//! ([`KERNEL`]), and the skeleton directories themselves ([`SKELETON`], not their
//! contents).

#![forbid(unsafe_code)]

pub mod checks;
pub mod dpkg;
pub mod journal;
pub mod mounts;
pub mod render;
pub mod walk;
pub mod watch;

use std::cmp::Ordering;
use std::collections::{BTreeMap, HashSet};
use std::ffi::OsStr;
use std::os::fd::AsFd;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering as AtomicOrdering};
use std::time::{Duration, Instant, SystemTime};

use blankslate_decl::{Declaration, UserDb, glob};
use blankslate_state::activation::{self as etc, EtcGeneration};
use blankslate_state::generation::{DEFAULT_STATE_DIR, Generation, GenerationError, NET_DIR, State};
use blankslate_state::manifest::EtcKind;
use blankslate_sys::fs::{Dir, FsError};
use globset::{GlobSet, GlobSetBuilder};

use crate::walk::{Lookup, Mark, Stats, Tree, Unknown, Walker};

/// The version of the `--json` document (its `"schema"` field).
pub const SCHEMA: u32 = 1;

/// Directories the activator, the sandbox or the OS create at every boot: the
/// directory itself is accounted for, what it holds is looked at.
pub const SKELETON: &[&str] = &[
    "/bin", "/boot", "/etc", "/home", "/lib", "/lib32", "/lib64", "/libx32", "/media", "/mnt", "/opt", "/root",
    "/sbin", "/srv", "/usr", "/var", "/var/lib", "/var/log",
];

/// Mount points of kernel file systems: never entered, even when (in a scratch root)
/// they are plain directories.
pub const KERNEL: &[&str] = &["/proc", "/sys", "/dev"];

/// Regenerated at every boot: counted as ignored, never listed.
pub const DEFAULT_IGNORE: &[&str] = &[
    "/tmp",
    "/run",
    "/var/run",
    "/var/lock",
    "/var/tmp",
    "/var/cache",
    "/var/lib/systemd/catalog",
    "/var/.updated",
    "/etc/.updated",
    "/etc/mtab",
    "/etc/.pwd.lock",
    "/etc/ld.so.cache",
    // What systemd and the network write at every boot, when nothing declares it:
    // a fresh random seed, DHCP leases, a resolver configuration.
    "/var/lib/systemd/random-seed",
    "/var/lib/dhcp",
    "/var/lib/dhcpcd",
    "/etc/resolv.conf",
    // The backups passwd, useradd and vipw write at every change.
    "/etc/passwd-",
    "/etc/group-",
    "/etc/shadow-",
    "/etc/gshadow-",
    "/etc/subuid-",
    "/etc/subgid-",
];

/// What kind of problem a finding is; each class has its own exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Class {
    Undeclared,
    EtcStray,
    PersistStray,
    EtcDrift,
    PackageMissing,
    Persist,
    Volume,
    Fallback,
    Error,
}

impl Class {
    pub const ALL: [Class; 9] = [
        Class::Undeclared,
        Class::EtcStray,
        Class::PersistStray,
        Class::EtcDrift,
        Class::PackageMissing,
        Class::Persist,
        Class::Volume,
        Class::Fallback,
        Class::Error,
    ];

    /// The class's name in JSON and Prometheus output.
    pub fn key(self) -> &'static str {
        match self {
            Class::Undeclared => "undeclared",
            Class::EtcStray => "etc-stray",
            Class::PersistStray => "persist-stray",
            Class::EtcDrift => "etc-drift",
            Class::PackageMissing => "package-missing",
            Class::Persist => "persist",
            Class::Volume => "volume",
            Class::Fallback => "fallback",
            Class::Error => "error",
        }
    }

    /// The exit code this class of finding gives: 1 state a reboot erases (or that
    /// nothing declares), 2 drift, a package's lost files, broken persistence or a
    /// fallback, 3 an incomplete audit.
    pub fn exit_code(self) -> u8 {
        match self {
            Class::Undeclared | Class::EtcStray | Class::PersistStray => 1,
            Class::EtcDrift | Class::PackageMissing | Class::Persist | Class::Volume | Class::Fallback => 2,
            Class::Error => 3,
        }
    }
}

/// What a finding is: the type of state found on disk (`directory`, `file`, …), or
/// the problem a check found (`missing`, `edited`, `not-mounted`, …). Its name is what
/// the reports print, JSON and the journal included.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FindingKind {
    Directory,
    File,
    Symlink,
    Fifo,
    Socket,
    Device,
    Unknown,
    Unreadable,
    Changed,
    Missing,
    Edited,
    Replaced,
    ReplacedByFile,
    Refused,
    NotCopied,
    NotWrittenBack,
    NotMounted,
    PointsElsewhere,
    SourceMissing,
    UndeclaredMount,
    VolumeMissing,
    WrongMode,
    WrongOwner,
    WrongType,
    WrongSource,
    BootFallback,
    NotConfirmed,
}

impl FindingKind {
    pub fn as_str(self) -> &'static str {
        match self {
            FindingKind::Directory => "directory",
            FindingKind::File => "file",
            FindingKind::Symlink => "symlink",
            FindingKind::Fifo => "fifo",
            FindingKind::Socket => "socket",
            FindingKind::Device => "device",
            FindingKind::Unknown => "unknown",
            FindingKind::Unreadable => "unreadable",
            FindingKind::Changed => "changed",
            FindingKind::Missing => "missing",
            FindingKind::Edited => "edited",
            FindingKind::Replaced => "replaced",
            FindingKind::ReplacedByFile => "replaced-by-file",
            FindingKind::Refused => "refused",
            FindingKind::NotCopied => "not-copied",
            FindingKind::NotWrittenBack => "not-written-back",
            FindingKind::NotMounted => "not-mounted",
            FindingKind::PointsElsewhere => "points-elsewhere",
            FindingKind::SourceMissing => "source-missing",
            FindingKind::UndeclaredMount => "undeclared-mount",
            FindingKind::VolumeMissing => "volume-missing",
            FindingKind::WrongMode => "wrong-mode",
            FindingKind::WrongOwner => "wrong-owner",
            FindingKind::WrongType => "wrong-type",
            FindingKind::WrongSource => "wrong-source",
            FindingKind::BootFallback => "boot-fallback",
            FindingKind::NotConfirmed => "not-confirmed",
        }
    }
}

impl PartialEq<&str> for FindingKind {
    fn eq(&self, name: &&str) -> bool {
        self.as_str() == *name
    }
}

/// By name, as the reports have always sorted findings of one path.
impl Ord for FindingKind {
    fn cmp(&self, other: &Self) -> Ordering {
        self.as_str().cmp(other.as_str())
    }
}

impl PartialOrd for FindingKind {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl std::fmt::Display for FindingKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(self.as_str())
    }
}

/// One finding: a group of undeclared state, or one drifted or broken path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub class: Class,
    pub kind: FindingKind,
    /// The absolute path in the live root, as bytes (names need not be UTF-8).
    pub path: Vec<u8>,
    /// Total size (`st_size`) of the non-directories in the group.
    pub bytes: u64,
    /// Number of non-directories in the group.
    pub files: u64,
    pub reason: String,
    /// The dpkg packages the path came from (`package-missing`, `etc-stray`,
    /// `etc-drift`: a package's upgrade replaces its conffile).
    pub packages: Vec<String>,
}

impl Finding {
    pub fn new(class: Class, kind: FindingKind, path: Vec<u8>, reason: String) -> Finding {
        Finding { class, kind, path, bytes: 0, files: 0, reason, packages: Vec::new() }
    }

    /// The report's order: by class; state found on disk largest first, problems by
    /// path; then by path and kind.
    pub fn order(a: &Finding, b: &Finding) -> Ordering {
        let sized = |f: &Finding| {
            if matches!(f.class, Class::Undeclared | Class::EtcStray | Class::PersistStray) {
                (std::cmp::Reverse(f.bytes), std::cmp::Reverse(f.files))
            } else {
                (std::cmp::Reverse(0), std::cmp::Reverse(0))
            }
        };
        (a.class, sized(a), &a.path, a.kind).cmp(&(b.class, sized(b), &b.path, b.kind))
    }
}

/// Counts: findings (or entries, for ignored), files, bytes.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Tally {
    pub count: u64,
    pub files: u64,
    pub bytes: u64,
}

impl Tally {
    fn add(&mut self, other: Tally) {
        self.count += other.count;
        self.files += other.files;
        self.bytes += other.bytes;
    }
}

/// Where the machine stands among its generations, as fleet metrics show it.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Generations {
    /// The hash of the audited generation's store object (`<hash>` of
    /// `<hash>-generation`): it covers the canonical declaration and the `/etc` built
    /// from it, so the same declaration has the same hash on every machine.
    pub declaration: Option<String>,
    /// The generation this boot started with (`/run/blankslate/booted`).
    pub booted: Option<u32>,
    /// The generation `/etc` is activated to.
    pub active: Option<u32>,
    /// The generation the next boot uses (`current`).
    pub default: Option<u32>,
}

impl Generations {
    /// Where `generation` stands in `state`, `/etc` being activated to `active`.
    pub fn read(state: &State, generation: &Generation, active: Option<u32>) -> Result<Generations, GenerationError> {
        Ok(Generations {
            declaration: generation.object.split_once('-').map(|(hash, _)| hash.to_owned()),
            booted: state.list()?.iter().find(|g| g.booted).map(|g| g.number),
            active,
            default: state.current_number()?,
        })
    }
}

/// Everything one audit found.
#[derive(Debug, Default, Clone)]
pub struct Report {
    pub generation: Option<u32>,
    pub generations: Generations,
    /// When the audit started, and how long it took.
    pub started: Option<SystemTime>,
    pub duration: Duration,
    /// In report order; at most `limit` per walk for the grouped classes.
    pub findings: Vec<Finding>,
    /// Per class, every finding, listed or not.
    pub totals: BTreeMap<Class, Tally>,
    pub ignored: Tally,
    pub stats: Stats,
    /// The net in the state directory (what shutdowns kept of what boots erased):
    /// `count` catches, their files and bytes; `None` when there is no net.
    pub net: Option<Tally>,
    /// With a btrfs root, how many previous roots it keeps: they hold what earlier
    /// boots erased too, but on the root's own btrfs, which the audit does not mount,
    /// so they are not in `net` (`blankslate net list` shows them).
    pub previous_roots: Option<u32>,
}

impl Report {
    /// 0 clean, else the highest exit code of any finding's class.
    pub fn exit_code(&self) -> u8 {
        self.totals.iter().filter(|(_, t)| t.count > 0).map(|(c, _)| c.exit_code()).max().unwrap_or(0)
    }

    pub fn total(&self, class: Class) -> Tally {
        self.totals.get(&class).copied().unwrap_or_default()
    }

    /// The `/etc` paths of dpkg packages this report finds `etc-stray` or `etc-drift`
    /// that are there in `root` to keep (not a declared entry gone missing): what
    /// `etc keep --packaged` keeps.
    pub fn packaged_etc_paths(&self, root: &Dir) -> Result<Vec<String>, PackagedError> {
        let mut paths = Vec::new();
        for finding in &self.findings {
            if !matches!(finding.class, Class::EtcStray | Class::EtcDrift) || finding.packages.is_empty() {
                continue;
            }
            let path =
                String::from_utf8(finding.path.clone()).map_err(|_| PackagedError::NotUtf8(finding.path.clone()))?;
            let (parent, name) = path.trim_start_matches('/').rsplit_once('/').unwrap_or(("", &path));
            match root.open_dir_or_self(parent).and_then(|dir| dir.meta(name)) {
                Ok(_) => paths.push(path),
                Err(error) if error.is_not_found() => {}
                Err(error) => return Err(PackagedError::Fs(error)),
            }
        }
        Ok(paths)
    }

    fn merge(&mut self, walker: Walker<'_>) {
        for (class, tally) in walker.totals {
            self.totals.entry(class).or_default().add(tally);
        }
        self.ignored.add(walker.ignored);
        let s = walker.stats;
        self.stats.entries += s.entries;
        self.stats.stats += s.stats;
        self.stats.declared += s.declared;
        self.stats.mounts_skipped += s.mounts_skipped;
        self.stats.vanished += s.vanished;
        self.stats.max_open = self.stats.max_open.max(s.max_open);
        self.findings.extend(walker.findings);
    }

    fn push(&mut self, finding: Finding) {
        let total = self.totals.entry(finding.class).or_default();
        total.count += 1;
        total.files += finding.files;
        total.bytes += finding.bytes;
        self.findings.push(finding);
    }
}

#[derive(Debug)]
pub enum AuditError {
    /// An `[audit] ignore` glob that does not compile (the parser refuses these; a
    /// generation built by an older version could still hold one).
    Glob { glob: String, error: String },
}

impl std::fmt::Display for AuditError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AuditError::Glob { glob, error } => write!(f, "bad [audit] ignore glob `{glob}`: {error}"),
        }
    }
}

impl std::error::Error for AuditError {}

/// Why [`Report::packaged_etc_paths`] could not say which paths to keep.
#[derive(Debug)]
pub enum PackagedError {
    /// A path that is not UTF-8 (an `/etc` key must be).
    NotUtf8(Vec<u8>),
    Fs(FsError),
}

impl std::fmt::Display for PackagedError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PackagedError::NotUtf8(path) => write!(f, "{}: not UTF-8", String::from_utf8_lossy(path)),
            PackagedError::Fs(error) => error.fmt(f),
        }
    }
}

impl std::error::Error for PackagedError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            PackagedError::NotUtf8(_) => None,
            PackagedError::Fs(error) => error.source(),
        }
    }
}

/// What an audit looks at.
#[derive(Debug)]
pub struct Setup<'a> {
    pub root: &'a Dir,
    /// The root as the kernel's mount table names it (canonical), to find the mount
    /// points below it.
    pub root_path: &'a Path,
    pub declaration: &'a Declaration,
    /// The generation's `/etc` (manifest and `/etc/static` target), if it has one.
    pub etc: Option<&'a EtcGeneration>,
    /// Owner names for the owner checks.
    pub users: &'a UserDb,
    /// The state directory, as seen from inside the root.
    pub state_dir: &'a Path,
    pub generation: Option<u32>,
    /// For the report: where the machine stands among its generations.
    pub generations: Generations,
    /// Paths (absolute, inside the root) this run writes itself, such as its metrics
    /// file: ignored.
    pub own_outputs: &'a [Vec<u8>],
    /// Findings kept per walk (largest first); totals count all.
    pub limit: usize,
    /// Sizes of undeclared files (one `stat` each); without, only names and types are
    /// read, and sizes are reported as 0.
    pub sizes: bool,
}

/// The declared tree of the root, and the globs that are not plain `DIR/**`.
pub fn root_tree(setup: &Setup<'_>) -> Result<(Tree, GlobSet), AuditError> {
    let mut tree = Tree::new(Class::Undeclared);
    tree.set_unknown(b"/etc", Unknown::Report(Class::EtcStray));
    for path in SKELETON {
        tree.insert(path.as_bytes(), Mark::Interior);
    }
    for path in DEFAULT_IGNORE.iter().map(|p| p.as_bytes()).chain(setup.own_outputs.iter().map(Vec::as_slice)) {
        tree.insert(path, Mark::Ignored);
    }
    let mut globs = GlobSetBuilder::new();
    let mut add = |text: &str| {
        let compiled = glob::compile(text).map_err(|error| AuditError::Glob { glob: text.to_owned(), error })?;
        globs.add(compiled);
        Ok(())
    };
    for glob in &setup.declaration.audit.ignore {
        // `DIR/**` ignores DIR's contents and accounts for DIR itself: a literal DIR
        // is a tree node; one with wildcards also ignores what matches DIR.
        match glob.strip_suffix("/**") {
            Some(dir) if !dir.contains(['*', '?', '[', ']', '{', '}', '\\']) => {
                tree.set_unknown(dir.as_bytes(), Unknown::Ignore);
            }
            Some(dir) if !dir.is_empty() && !dir.ends_with("/**") => {
                add(dir)?;
                add(glob)?;
            }
            _ => add(glob)?,
        }
    }
    for path in KERNEL {
        tree.insert(path.as_bytes(), Mark::Declared);
    }
    tree.insert(setup.state_dir.as_os_str().as_encoded_bytes(), Mark::Declared);
    for mount in setup.declaration.persist.keys() {
        tree.insert(mount.as_bytes(), Mark::Declared);
    }
    for entry in setup.declaration.entries() {
        tree.insert(entry.path.as_bytes(), Mark::Declared);
    }
    tree.insert(b"/etc/static", Mark::Declared);
    tree.insert(format!("/etc/{}", etc::STATE_DIR).as_bytes(), Mark::Declared);
    if let Some(active) = setup.etc {
        for (path, entry) in &active.manifest.entries {
            // A declared directory is accounted for, not what is put in it later.
            let mark = if entry.kind == EtcKind::Directory { Mark::Interior } else { Mark::Declared };
            tree.insert(format!("/etc/{path}").as_bytes(), mark);
        }
    }
    let all = || setup.declaration.audit.ignore.join(", ");
    let globs = globs.build().map_err(|e| AuditError::Glob { glob: all(), error: e.to_string() })?;
    Ok((tree, globs))
}

/// Whether the declaration accounts for `path` (absolute) as the walk would judge it
/// there: declared, ignored (by the tree, or by a glob from the first name the tree
/// does not know on), or a directory on the way to declared paths.
fn accounted(tree: &Tree, globs: &GlobSet, path: &[u8]) -> bool {
    let mut node = 0;
    let ends = path.iter().enumerate().skip(1).filter(|&(_, &b)| b == b'/').map(|(i, _)| i).chain([path.len()]);
    let mut start = 1;
    for end in ends {
        match tree.lookup(node, &path[start..end]) {
            Lookup::Node(child) => node = child,
            Lookup::Declared | Lookup::Ignored => return true,
            Lookup::Unaccounted(_) => {
                let below = path[end..].iter().enumerate().filter(|&(_, &b)| b == b'/').map(|(i, _)| end + i);
                return below.chain([path.len()]).any(|cut| globs.is_match(OsStr::from_bytes(&path[..cut])));
            }
        }
        start = end + 1;
    }
    true
}

/// dpkg's packages in `/etc` (none where the root has no database), and the findings:
/// their lost files, what could not be read.
fn dpkg_check(root: &Dir, tree: &Tree, globs: &GlobSet) -> (Option<dpkg::Packages>, Vec<Finding>) {
    let mut findings = Vec::new();
    let packages = match dpkg::Packages::read(root) {
        Ok(packages) => packages,
        Err(unread) => {
            findings.push(unread.finding());
            None
        }
    };
    if let Some(packages) = &packages {
        findings.extend(packages.unread.iter().map(dpkg::Unread::finding));
        packages.missing(root, |path| accounted(tree, globs, path), &mut findings);
    }
    (packages, findings)
}

/// The declared tree of one persistent volume (paths as in the root).
fn volume_tree(declaration: &Declaration, mount: &str) -> Tree {
    let mut tree = Tree::new(Class::PersistStray);
    tree.insert(b".blankslate", Mark::Declared);
    // Boot reads the store and profiles from the default state directory's path inside
    // the volume (`blankslate build --root <volume>` puts them there).
    tree.insert(DEFAULT_STATE_DIR.as_bytes(), Mark::Declared);
    // mkfs makes it and fsck fills it: the directory is expected, what fsck recovered
    // into it is reported.
    tree.insert(b"/lost+found", Mark::Interior);
    // Another volume's mount point inside this one (`/persist/big` in `/persist`).
    for nested in declaration.persist.keys().filter_map(|other| other.strip_prefix(mount)) {
        if nested.starts_with('/') {
            tree.insert(nested.as_bytes(), Mark::Declared);
        }
    }
    for entry in declaration.entries().into_iter().filter(|e| e.root == mount) {
        tree.insert(entry.path.as_bytes(), Mark::Declared);
    }
    tree
}

/// Runs the whole audit: the root walk, each volume's walk, the `/etc` and
/// persistence checks.
pub fn audit(setup: &Setup<'_>) -> Result<Report, AuditError> {
    let (started, clock) = (SystemTime::now(), Instant::now());
    let (tree, globs) = root_tree(setup)?;
    let mount_points = mounts::below(setup.root_path);
    let mut report = Report {
        generation: setup.generation,
        generations: setup.generations.clone(),
        started: Some(started),
        ..Report::default()
    };
    let mut checked = Vec::new();
    let volumes = checks::volumes(setup.root, setup.declaration, &mount_points, &mut checked);

    // The top levels first, setting aside each unaccounted or ignored directory as a
    // job; then the jobs, on every core (each group is walked by one thread).
    let mut walker = Walker::new(&tree, Some(&globs), &mount_points, b"").deferring();
    walker.limit = setup.limit;
    walker.sizes = setup.sizes;
    walker.run(setup.root.as_fd());
    let jobs = walker.take_jobs();
    report.merge(walker);
    let dev = setup.root.own_meta().map_or(0, |m| m.dev);
    let threads = std::thread::available_parallelism().map_or(1, std::num::NonZero::get).min(8).min(jobs.len());
    let next = AtomicUsize::new(0);
    // dpkg's database is read while the walkers walk: it is mostly waiting on reads.
    let (walkers, (packages, dpkg_findings)) = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                scope.spawn(|| {
                    let mut walker = Walker::new(&tree, Some(&globs), &mount_points, b"");
                    walker.limit = setup.limit;
                    walker.sizes = setup.sizes;
                    while let Some(job) = jobs.get(next.fetch_add(1, AtomicOrdering::Relaxed)) {
                        walker.run_job(setup.root.as_fd(), dev, job);
                    }
                    walker
                })
            })
            .collect::<Vec<_>>();
        let dpkg = dpkg_check(setup.root, &tree, &globs);
        let walkers: Vec<Walker<'_>> =
            handles.into_iter().map(|h| h.join().expect("a walker thread panicked")).collect();
        (walkers, dpkg)
    });
    for walker in walkers {
        report.merge(walker);
    }

    // Only mounted volumes: a broken one was reported once, as a whole.
    for (mount, volume) in &volumes {
        let tree = volume_tree(setup.declaration, mount);
        let mut walker = Walker::new(&tree, None, &mount_points, mount.as_bytes()).skip_persist_temporaries();
        walker.limit = setup.limit;
        walker.sizes = setup.sizes;
        walker.run(volume.as_fd());
        report.merge(walker);
    }

    if let Some(active) = setup.etc {
        checks::etc_drift(setup.root, active, setup.users, &mut checked);
    }
    checks::persist_health(setup.root, setup.declaration, &volumes, setup.users, &mut checked);
    let state_dir = setup.state_dir.as_os_str().as_encoded_bytes();
    checks::undeclared_mounts(setup.root, setup.declaration, state_dir, &volumes, &mount_points, &mut checked);
    checks::fallbacks(setup.root, &mut checked);
    report.net = net_size(setup, &mount_points);
    // Only a root that is a btrfs has previous roots: a btrfs declaration switched to
    // but not booted yet still runs on a tmpfs.
    let on_btrfs = blankslate_sys::btrfs::is_btrfs(setup.root).unwrap_or(false);
    report.previous_roots = setup.declaration.root.btrfs.as_ref().filter(|_| on_btrfs).map(|btrfs| btrfs.keep);
    checked.extend(dpkg_findings);
    for finding in checked {
        report.push(finding);
    }
    for finding in &mut report.findings {
        if finding.class == Class::EtcStray
            && finding.reason.is_empty()
            && finding.path.windows(etc::BACKUP_SUFFIX.len()).any(|w| w == etc::BACKUP_SUFFIX.as_bytes())
        {
            "moved aside by activation: it stood where a declared entry goes".clone_into(&mut finding.reason);
        }
    }
    report.findings.sort_by(Finding::order);
    // At most `limit` per class (the largest): the totals still count them all.
    let mut listed: BTreeMap<Class, usize> = BTreeMap::new();
    report.findings.retain(|f| {
        let n = listed.entry(f.class).or_default();
        *n += 1;
        *n <= setup.limit
    });
    if let Some(packages) = &packages {
        for finding in report.findings.iter_mut().filter(|f| matches!(f.class, Class::EtcStray | Class::EtcDrift)) {
            finding.name_packages(packages);
        }
    }
    report.duration = clock.elapsed();
    Ok(report)
}

/// What the net in the state directory holds, if there is one: it counts against the
/// volume's space.
fn net_size(setup: &Setup<'_>, mount_points: &MountPoints) -> Option<Tally> {
    let state_dir = setup.state_dir.strip_prefix("/").unwrap_or(setup.state_dir);
    let net = setup.root.open_dir(state_dir.join(NET_DIR)).ok()?;
    let catches = net.entries().ok()?.iter().filter(|(name, _)| !blankslate_sys::fs::is_temp_name(name)).count();
    let prefix = Path::new("/").join(state_dir).join(NET_DIR);
    let tally = walk::count(net.as_fd(), mount_points, prefix.as_os_str().as_encoded_bytes());
    Some(Tally { count: catches as u64, ..tally })
}

/// Mount points below a root, as absolute paths inside it (`/persist`, `/var/log`).
pub type MountPoints = HashSet<Vec<u8>>;
