//! The walk: one file system, iteratively, aggregating as it goes.
//!
//! - A [`Tree`] of what is declared (a trie of path components) says, for every
//!   entry met, whether it is declared (skipped, never entered), a directory on the
//!   way to declared things (entered), ignored (counted), or unaccounted for.
//! - Unaccounted entries are grouped by the nearest directory that holds nothing
//!   declared: the first such directory met becomes one finding, and everything
//!   below it only adds to that finding's file count and size. Memory stays flat:
//!   no list of paths is ever built, only one finding per group (and at most
//!   `limit` of those are kept, largest first; totals count them all).
//! - A group counts names (`files`) and data (`bytes`, `st_size`): a file with
//!   several hard links in one group counts its bytes once (as `du` does), so a
//!   group's bytes are what persisting it takes; two findings that share an inode
//!   both count it.
//! - A directory that holds nothing but ignored entries (an `[audit] ignore` glob
//!   such as `/home/*/.cache/**`) is accounted for, as the directories on the way to
//!   a literal ignored path are: it is neither a finding nor part of one. An empty
//!   directory is still reported: it is state a reboot erases.
//! - Directories are read with `getdents` (names and `d_type`); only the entries
//!   whose size a finding needs are `stat`ed.
//! - Nothing on another file system is entered: a directory whose `st_dev` differs,
//!   or which `/proc/thread-self/mountinfo` names as a mount point (bind mounts of
//!   the same file system share its `st_dev`), is skipped.
//! - Iterative, with at most [`MAX_OPEN`] directory descriptors: deeper ancestors
//!   are closed and reopened (by a `RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS |
//!   RESOLVE_NO_XDEV` path from the nearest open one, checked by device and inode)
//!   when the walk comes back to them.
//! - Every open is a `*at` call on a directory descriptor with `O_NOFOLLOW` and
//!   `O_DIRECTORY` (the kernel refuses anything else before opening it, so a FIFO or
//!   device swapped in never blocks the walk), checked by its own `fstat`; an entry
//!   that vanishes mid-walk is skipped, a directory that cannot be read is reported.

use std::collections::{HashMap, HashSet};
use std::ffi::OsStr;
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;

use globset::GlobSet;
use rustix::fs::{AtFlags, FileType, Mode, OFlags, ResolveFlags};
use rustix::io::Errno;

use crate::{Class, Finding, FindingKind, Tally};

/// At most this many directories are held open at once.
pub const MAX_OPEN: usize = 64;

/// What a node of the declared tree is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mark {
    /// A directory on the way to declared paths, or a skeleton directory: the entry
    /// itself is accounted for; its contents are looked up.
    Interior,
    /// Declared, with everything below it: never entered.
    Declared,
    /// Regenerated at every boot (or ignored by the declaration): counted, not listed.
    Ignored,
}

/// What becomes of an entry below a node that the tree does not name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unknown {
    Report(Class),
    Ignore,
}

#[derive(Debug)]
struct Node {
    mark: Mark,
    unknown: Unknown,
    children: HashMap<Box<[u8]>, usize>,
}

/// The declared paths below one walk's start, as a trie of names.
#[derive(Debug)]
pub struct Tree {
    nodes: Vec<Node>,
}

impl Tree {
    /// An empty tree whose unnamed entries are reported as `class`.
    pub fn new(class: Class) -> Tree {
        Tree { nodes: vec![Node { mark: Mark::Interior, unknown: Unknown::Report(class), children: HashMap::new() }] }
    }

    /// Adds `path` (absolute or relative; `/`-separated; empty components ignored)
    /// with `mark`. `Declared` wins over `Ignored`, which wins over `Interior`; new
    /// nodes on the way inherit their parent's treatment of unknown entries.
    pub fn insert(&mut self, path: &[u8], mark: Mark) -> usize {
        let mut at = 0;
        for name in path.split(|&b| b == b'/').filter(|n| !n.is_empty() && *n != b".") {
            at = if let Some(&child) = self.nodes[at].children.get(name) {
                child
            } else {
                let unknown = self.nodes[at].unknown;
                self.nodes.push(Node { mark: Mark::Interior, unknown, children: HashMap::new() });
                let child = self.nodes.len() - 1;
                self.nodes[at].children.insert(name.into(), child);
                child
            };
        }
        let node = &mut self.nodes[at];
        match (node.mark, mark) {
            (Mark::Declared, _) | (Mark::Ignored, Mark::Interior) => {}
            (_, Mark::Ignored) => {
                node.mark = Mark::Ignored;
                node.unknown = Unknown::Ignore;
            }
            (_, new) => node.mark = new,
        }
        at
    }

    /// Sets how unnamed entries below `path` are treated (call before inserting
    /// anything below it).
    pub fn set_unknown(&mut self, path: &[u8], unknown: Unknown) {
        let at = self.insert(path, Mark::Interior);
        self.nodes[at].unknown = unknown;
    }

    fn child(&self, node: usize, name: &[u8]) -> Option<usize> {
        self.nodes[node].children.get(name).copied()
    }

    /// What `name`, an entry of the directory at `node`, is (the start is node 0).
    pub fn lookup(&self, node: usize, name: &[u8]) -> Lookup {
        match self.child(node, name) {
            Some(child) => match self.nodes[child].mark {
                Mark::Declared => Lookup::Declared,
                Mark::Ignored => Lookup::Ignored,
                Mark::Interior => Lookup::Node(child),
            },
            None => match self.nodes[node].unknown {
                Unknown::Ignore => Lookup::Ignored,
                Unknown::Report(class) => Lookup::Unaccounted(class),
            },
        }
    }
}

/// What [`Tree::lookup`] says about one entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lookup {
    Declared,
    Ignored,
    /// Accounted for itself; look at its contents with this node.
    Node(usize),
    /// Nothing declares it: a finding of this class.
    Unaccounted(Class),
}

/// What one walk found, besides its findings.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Stats {
    /// Directory entries read.
    pub entries: u64,
    /// `stat` calls made on entries (sizes, unknown types).
    pub stats: u64,
    /// Declared entries skipped without being entered.
    pub declared: u64,
    /// Mount points (and other file systems) not entered.
    pub mounts_skipped: u64,
    /// Entries that vanished between being listed and being looked at.
    pub vanished: u64,
    /// The most directory descriptors held open at once.
    pub max_open: usize,
}

/// A subtree set aside by a deferring walk, to be walked by [`Walker::run_job`].
#[derive(Debug, Clone)]
pub struct Job {
    /// As shown (`/var/lib/foo`).
    path: Vec<u8>,
    /// Relative to the walk's start.
    relative: Vec<u8>,
    ident: (u64, u64),
    ctx: Ctx,
}

/// Where a directory's contents go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ctx {
    Node(usize),
    /// The first unaccounted directory: a new group of `Class`.
    NewGroup(Class),
    InGroup,
    Ignored,
}

#[derive(Debug)]
struct Level {
    dir: Option<OwnedFd>,
    ident: (u64, u64),
    path_len: usize,
    ctx: Ctx,
    pending: Vec<(Box<[u8]>, Ctx)>,
    group: bool,
    /// Inside a group: something not ignored was found below (a file, an empty or
    /// unreadable directory)…
    found_unaccounted: bool,
    /// …and something ignored. Only the second: the directory is accounted for.
    found_ignored: bool,
}

impl Level {
    fn only_ignored(&self) -> bool {
        self.found_ignored && !self.found_unaccounted
    }
}

/// What `stat` says about one entry.
struct Stat {
    file_type: FileType,
    size: u64,
    /// `(st_dev, st_ino)` of a file with more than one name.
    linked: Option<(u64, u64)>,
}

/// One walk over one file system.
#[derive(Debug)]
pub struct Walker<'a> {
    tree: &'a Tree,
    globs: Option<&'a GlobSet>,
    mounts: &'a HashSet<Vec<u8>>,
    /// Skip `.NAME.blankslate-persist-*` (a persistent volume's temporaries).
    skip_persist_temporaries: bool,
    dev: u64,
    path: Vec<u8>,
    buffer: Vec<MaybeUninit<u8>>,
    stack: Vec<Level>,
    open: usize,
    groups: Vec<Finding>,
    pub findings: Vec<Finding>,
    pub ignored: Tally,
    pub stats: Stats,
    pub limit: usize,
    /// `stat` every unaccounted file for its size (else sizes are 0, and only names
    /// and types are read, as `find` does).
    pub sizes: bool,
    jobs: Option<Vec<Job>>,
    start_len: usize,
    /// The current group's files with several names, to count their bytes once.
    linked: HashSet<(u64, u64)>,
    /// Per class: every group found, kept or not.
    pub totals: HashMap<Class, Tally>,
}

fn kind_of(file_type: FileType) -> FindingKind {
    match file_type {
        FileType::RegularFile => FindingKind::File,
        FileType::Directory => FindingKind::Directory,
        FileType::Symlink => FindingKind::Symlink,
        FileType::Fifo => FindingKind::Fifo,
        FileType::Socket => FindingKind::Socket,
        FileType::CharacterDevice | FileType::BlockDevice => FindingKind::Device,
        FileType::Unknown => FindingKind::Unknown,
    }
}

/// Files and bytes below `start` on its file system (mount points, named as `prefix`
/// followed by the path below, not entered).
pub fn count(start: BorrowedFd<'_>, mounts: &crate::MountPoints, prefix: &[u8]) -> Tally {
    let mut tree = Tree::new(Class::Undeclared);
    tree.set_unknown(b"", Unknown::Ignore);
    let mut walker = Walker::new(&tree, None, mounts, prefix);
    walker.run(start);
    walker.ignored
}

/// The class of a directory that starts a group, whose contents are then lost from
/// sight if it cannot be read.
fn lost_class(ctx: Ctx) -> Option<Class> {
    match ctx {
        Ctx::NewGroup(class) => Some(class),
        _ => None,
    }
}

fn is_persist_temporary(name: &[u8]) -> bool {
    const MARK: &[u8] = b".blankslate-persist-";
    name.first() == Some(&b'.') && name.windows(MARK.len()).any(|w| w == MARK)
}

impl<'a> Walker<'a> {
    /// A walker over the tree; `prefix` is how the start directory is shown (`""` for
    /// the root, `/persist` for a volume), `mounts` the mount points in that notation.
    pub fn new(tree: &'a Tree, globs: Option<&'a GlobSet>, mounts: &'a HashSet<Vec<u8>>, prefix: &[u8]) -> Self {
        Walker {
            tree,
            globs: globs.filter(|g| !g.is_empty()),
            mounts,
            skip_persist_temporaries: false,
            dev: 0,
            path: prefix.to_vec(),
            buffer: vec![MaybeUninit::uninit(); 64 * 1024],
            stack: Vec::new(),
            open: 0,
            groups: Vec::new(),
            findings: Vec::new(),
            ignored: Tally::default(),
            stats: Stats::default(),
            limit: usize::MAX,
            sizes: true,
            jobs: None,
            start_len: 0,
            linked: HashSet::new(),
            totals: HashMap::new(),
        }
    }

    #[must_use]
    pub fn skip_persist_temporaries(mut self) -> Self {
        self.skip_persist_temporaries = true;
        self
    }

    /// Walks everything below `start` (a directory on the file system to stay on).
    pub fn run(&mut self, start: BorrowedFd<'_>) {
        let dup =
            match rustix::fs::openat(start, ".", OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty()) {
                Ok(fd) => fd,
                Err(errno) => return self.error(FindingKind::Unreadable, errno, None),
            };
        let own = match rustix::fs::fstat(&dup) {
            Ok(own) => own,
            Err(errno) => return self.error(FindingKind::Unreadable, errno, None),
        };
        self.dev = own.st_dev;
        self.start_len = self.path.len();
        let path_len = self.path.len();
        self.enter_open(dup, (own.st_dev, own.st_ino), path_len, Ctx::Node(0));
        self.drain();
    }

    /// Walks one subtree set aside by a deferring walk over `start` (the same start,
    /// on the file system `dev`). The subtree is reopened beneath `start` without
    /// crossing a symlink or a mount, and must still be the directory seen then.
    pub fn run_job(&mut self, start: BorrowedFd<'_>, dev: u64, job: &Job) {
        self.dev = dev;
        self.path.clone_from(&job.path);
        let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let resolve =
            ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_MAGICLINKS | ResolveFlags::NO_XDEV;
        let opened = rustix::fs::openat2(start, OsStr::from_bytes(&job.relative), flags, Mode::empty(), resolve)
            .and_then(|fd| rustix::fs::fstat(&fd).map(|s| (fd, (s.st_dev, s.st_ino))));
        match opened {
            Ok((fd, ident)) if ident == job.ident => {
                let path_len = self.path.len();
                self.enter_open(fd, ident, path_len, job.ctx);
                self.drain();
            }
            Ok(_) | Err(Errno::NOENT) => self.stats.vanished += 1,
            Err(errno) => self.error(FindingKind::Unreadable, errno, lost_class(job.ctx)),
        }
    }

    /// Sets aside every unaccounted or ignored directory met at the top levels as a
    /// [`Job`] (see [`Walker::take_jobs`]) instead of walking it: the jobs can then
    /// be walked in parallel, each by one walker, groups whole.
    #[must_use]
    pub fn deferring(mut self) -> Self {
        self.jobs = Some(Vec::new());
        self
    }

    pub fn take_jobs(&mut self) -> Vec<Job> {
        self.jobs.take().unwrap_or_default()
    }

    fn drain(&mut self) {
        while let Some(top) = self.stack.last_mut() {
            if let Some((name, ctx)) = top.pending.pop() {
                self.visit(&name, ctx);
            } else {
                let level = self.stack.pop().expect("the stack is not empty");
                if level.dir.is_some() {
                    self.open -= 1;
                }
                if level.group {
                    let group = self.groups.pop().expect("a group level has its group");
                    if !level.only_ignored() {
                        self.keep(group);
                    }
                } else if level.ctx == Ctx::InGroup {
                    let parent = self.stack.last_mut().expect("a group's directory is below the group");
                    parent.found_ignored |= level.only_ignored();
                    parent.found_unaccounted |= !level.only_ignored();
                }
            }
        }
        self.trim();
    }

    /// Reports what could not be read; `lost` is the class of an unaccounted
    /// directory that could not be opened (so its size is unknown). A group it is in
    /// is marked as counted only in part.
    fn error(&mut self, kind: FindingKind, errno: Errno, lost: Option<Class>) {
        let path = if self.path.is_empty() { b"/".to_vec() } else { self.path.clone() };
        let error = std::io::Error::from(errno);
        let reason = match lost {
            Some(Class::PersistStray) => {
                format!("cannot read ({error}): in a volume, declared by nothing; size unknown")
            }
            Some(_) => format!("cannot read ({error}): declared by nothing, so lost at the next reboot; size unknown"),
            None => format!("cannot read: {error}"),
        };
        if let Some(group) = self.groups.last_mut() {
            "at least: a directory inside could not be read".clone_into(&mut group.reason);
        }
        self.keep(Finding::new(Class::Error, kind, path, reason));
    }

    /// Records a finished group or single finding.
    fn keep(&mut self, finding: Finding) {
        let total = self.totals.entry(finding.class).or_default();
        total.count += 1;
        total.files += finding.files;
        total.bytes += finding.bytes;
        self.findings.push(finding);
        if self.findings.len() >= self.limit.saturating_mul(2).max(64) {
            self.trim();
        }
    }

    /// Keeps the `limit` largest findings (per the report's order).
    fn trim(&mut self) {
        if self.findings.len() > self.limit {
            self.findings.sort_by(crate::Finding::order);
            let mut listed: HashMap<Class, usize> = HashMap::new();
            let limit = self.limit;
            self.findings.retain(|f| {
                let n = listed.entry(f.class).or_default();
                *n += 1;
                *n <= limit
            });
        }
    }

    /// Makes sure the top level has an open descriptor, reopening it from the nearest
    /// open ancestor if it was closed; `false` (and reported) if that fails.
    fn top_fd(&mut self) -> bool {
        let top = self.stack.len() - 1;
        if self.stack[top].dir.is_some() {
            return true;
        }
        let ancestor = (0..top).rev().find(|&i| self.stack[i].dir.is_some()).expect("the start stays open");
        let relative = self.path[self.stack[ancestor].path_len + 1..self.stack[top].path_len].to_vec();
        let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let resolve =
            ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_MAGICLINKS | ResolveFlags::NO_XDEV;
        let parent = self.stack[ancestor].dir.as_ref().expect("found open").as_fd();
        let reopened = rustix::fs::openat2(parent, OsStr::from_bytes(&relative), flags, Mode::empty(), resolve)
            .and_then(|fd| rustix::fs::fstat(&fd).map(|s| (fd, (s.st_dev, s.st_ino))));
        self.path.truncate(self.stack[top].path_len);
        match reopened {
            Ok((dir, ident)) if ident == self.stack[top].ident => {
                self.stack[top].dir = Some(dir);
                self.open += 1;
                self.stats.max_open = self.stats.max_open.max(self.open);
                true
            }
            _ => {
                self.stack[top].pending.clear();
                self.keep(Finding::new(
                    Class::Error,
                    FindingKind::Changed,
                    self.path.clone(),
                    "replaced or moved during the audit; not finished".to_owned(),
                ));
                false
            }
        }
    }

    fn visit(&mut self, name: &[u8], ctx: Ctx) {
        if !self.top_fd() {
            return;
        }
        let top = self.stack.len() - 1;
        self.path.truncate(self.stack[top].path_len);
        self.path.push(b'/');
        self.path.extend_from_slice(name);
        if self.mounts.contains(&self.path) {
            self.stats.mounts_skipped += 1;
            return;
        }
        let parent = self.stack[top].dir.as_ref().expect("opened above").as_fd();
        let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let opened = rustix::fs::openat(parent, OsStr::from_bytes(name), flags, Mode::empty())
            .and_then(|fd| rustix::fs::fstat(&fd).map(|s| (fd, (s.st_dev, s.st_ino))));
        match opened {
            Ok((_, ident))
                if ident.0 == self.dev && self.jobs.is_some() && matches!(ctx, Ctx::NewGroup(_) | Ctx::Ignored) =>
            {
                let relative = self.path[self.start_len + 1..].to_vec();
                let job = Job { path: self.path.clone(), relative, ident, ctx };
                self.jobs.as_mut().expect("deferring").push(job);
            }
            Ok((fd, ident)) if ident.0 == self.dev => {
                let path_len = self.path.len();
                self.enter_open(fd, ident, path_len, ctx);
            }
            Ok(_) => self.stats.mounts_skipped += 1,
            Err(Errno::NOENT | Errno::NOTDIR | Errno::LOOP) => self.stats.vanished += 1,
            Err(errno) => {
                // What cannot be read is an error, not a group of unknown size; inside
                // a group it is something unaccounted.
                if ctx == Ctx::InGroup {
                    self.stack[top].found_unaccounted = true;
                }
                self.error(FindingKind::Unreadable, errno, lost_class(ctx));
            }
        }
        // Deep trees: close the descriptors of old ancestors (never the start's).
        let len = self.stack.len();
        if len > MAX_OPEN && self.stack[len - MAX_OPEN].dir.take().is_some() {
            self.open -= 1;
        }
    }

    fn enter_open(&mut self, fd: OwnedFd, ident: (u64, u64), path_len: usize, ctx: Ctx) {
        let (ctx, group) = match ctx {
            Ctx::NewGroup(class) => {
                self.groups.push(Finding::new(class, FindingKind::Directory, self.path.clone(), String::new()));
                self.linked.clear();
                (Ctx::InGroup, true)
            }
            other => (other, false),
        };
        self.open += 1;
        self.stats.max_open = self.stats.max_open.max(self.open);
        let mut level = Level {
            dir: Some(fd),
            ident,
            path_len,
            ctx,
            pending: Vec::new(),
            group,
            found_unaccounted: false,
            found_ignored: false,
        };
        self.read(&mut level);
        self.stack.push(level);
    }

    /// `lstat` of `name` in `dir`; `None` if it vanished, or if it is on another file
    /// system (a file bind-mounted from elsewhere).
    fn stat(&mut self, dir: BorrowedFd<'_>, name: &[u8]) -> Option<Stat> {
        self.stats.stats += 1;
        match rustix::fs::statat(dir, OsStr::from_bytes(name), AtFlags::SYMLINK_NOFOLLOW) {
            Ok(stat) if stat.st_dev == self.dev || FileType::from_raw_mode(stat.st_mode) == FileType::Directory => {
                let file_type = FileType::from_raw_mode(stat.st_mode);
                let linked =
                    (stat.st_nlink > 1 && file_type != FileType::Directory).then_some((stat.st_dev, stat.st_ino));
                Some(Stat { file_type, size: u64::try_from(stat.st_size).unwrap_or(0), linked })
            }
            Ok(_) => {
                self.stats.mounts_skipped += 1;
                None
            }
            Err(_) => {
                self.stats.vanished += 1;
                None
            }
        }
    }

    fn ignored_by_glob(&self, name: &[u8]) -> bool {
        let Some(globs) = self.globs else { return false };
        let mut path = Vec::with_capacity(self.path.len() + 1 + name.len());
        path.extend_from_slice(&self.path);
        path.push(b'/');
        path.extend_from_slice(name);
        globs.is_match(OsStr::from_bytes(&path))
    }

    fn read(&mut self, level: &mut Level) {
        let Some(fd) = level.dir.as_ref().map(AsFd::as_fd) else { return };
        let mut buffer = std::mem::take(&mut self.buffer);
        let mut dir = rustix::fs::RawDir::new(fd, &mut buffer);
        while let Some(entry) = dir.next() {
            let entry = match entry {
                Ok(entry) => entry,
                Err(errno) => {
                    self.error(FindingKind::Unreadable, errno, None);
                    level.found_unaccounted = true;
                    break;
                }
            };
            let name = entry.file_name().to_bytes();
            if name == b"." || name == b".." {
                continue;
            }
            self.stats.entries += 1;
            if self.skip_persist_temporaries && is_persist_temporary(name) {
                continue;
            }
            let mut file_type = entry.file_type();
            let mut stat = None;
            if file_type == FileType::Unknown {
                let Some(known) = self.stat(fd, name) else { continue };
                file_type = known.file_type;
                stat = Some(known);
            }
            let is_dir = file_type == FileType::Directory;
            // What this entry is, as far as the declaration goes.
            let ctx = match level.ctx {
                Ctx::Node(node) => match self.tree.child(node, name) {
                    Some(child) => match self.tree.nodes[child].mark {
                        Mark::Declared => {
                            self.stats.declared += 1;
                            continue;
                        }
                        Mark::Interior if !is_dir => continue,
                        Mark::Ignored if !is_dir => Ctx::Ignored,
                        Mark::Interior | Mark::Ignored => Ctx::Node(child),
                    },
                    None => match self.tree.nodes[node].unknown {
                        Unknown::Ignore => Ctx::Ignored,
                        Unknown::Report(_) if self.ignored_by_glob(name) => Ctx::Ignored,
                        Unknown::Report(class) => Ctx::NewGroup(class),
                    },
                },
                Ctx::InGroup if self.ignored_by_glob(name) => Ctx::Ignored,
                other => other,
            };
            level.found_ignored |= ctx == Ctx::Ignored;
            if is_dir {
                level.pending.push((name.into(), ctx));
                continue;
            }
            let (size, linked) = match stat {
                Some(stat) => (stat.size, stat.linked),
                None if !self.sizes => (0, None),
                None => match self.stat(fd, name) {
                    Some(stat) => (stat.size, stat.linked),
                    None => continue,
                },
            };
            match ctx {
                Ctx::Ignored => {
                    self.ignored.count += 1;
                    self.ignored.files += 1;
                    self.ignored.bytes += size;
                }
                Ctx::InGroup => {
                    level.found_unaccounted = true;
                    let first_name = linked.is_none_or(|inode| self.linked.insert(inode));
                    let group = self.groups.last_mut().expect("in a group");
                    group.files += 1;
                    if first_name {
                        group.bytes += size;
                    }
                }
                Ctx::NewGroup(class) => {
                    let mut path = self.path.clone();
                    path.push(b'/');
                    path.extend_from_slice(name);
                    let mut finding = Finding::new(class, kind_of(file_type), path, String::new());
                    finding.files = 1;
                    finding.bytes = size;
                    self.keep(finding);
                }
                Ctx::Node(_) => {}
            }
        }
        // Counted once its whole tree is walked (groups) or right away (ignored).
        if matches!(level.ctx, Ctx::Ignored) {
            self.ignored.count += 1;
        }
        self.buffer = buffer;
    }
}
