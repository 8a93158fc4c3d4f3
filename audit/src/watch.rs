//! `blankslate audit --watch`: new undeclared writes as they happen.
//!
//! Every directory of the root's own file system that is not declared or ignored
//! gets an inotify watch (through `/proc/self/fd/N` of a descriptor opened beneath
//! the root, never a path string); directories that appear later are added as they
//! appear. Each creation, move-in or completed write of an undeclared path is
//! printed with the processes holding it open (from `/proc/PID/fd`), or, failing
//! that, those whose working directory is the file's directory.
//!
//! The watch ends after a set time, or when `stop` becomes readable: the command line
//! passes a `signalfd` for SIGINT and SIGTERM (`blankslate_sys::raw::stop_signals`), so Ctrl-C or
//! a `kill` ends it with its summary, with no signal handler.

use std::collections::{HashMap, HashSet};
use std::ffi::OsStr;
use std::io::{self, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::time::{Duration, Instant};

use blankslate_sys::fs::Dir;
use globset::GlobSet;
use inotify::{EventMask, Inotify, WatchMask};
use rustix::fs::{Mode, OFlags, ResolveFlags};

use crate::Class;
use crate::render::{escape, plural};
use crate::walk::{Lookup, Tree};

/// What was seen while watching.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Summary {
    pub watched: usize,
    pub events: u64,
    pub paths: u64,
    /// Directories not watched because the inotify watch limit was reached.
    pub unwatched: u64,
}

impl std::fmt::Display for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "watch: {} to {}; {} watched",
            plural(self.events, "undeclared write", "undeclared writes"),
            plural(self.paths, "path", "paths"),
            plural(self.watched as u64, "directory", "directories"),
        )?;
        if self.unwatched > 0 {
            write!(f, ", {} not watched (inotify watch limit)", self.unwatched)?;
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Copy)]
enum Ctx {
    Node(usize),
    Group(Class),
}

const MASK: WatchMask =
    WatchMask::CREATE.union(WatchMask::MOVED_TO).union(WatchMask::CLOSE_WRITE).union(WatchMask::ONLYDIR);

struct Watcher<'a> {
    inotify: Inotify,
    root: &'a Dir,
    tree: &'a Tree,
    globs: &'a GlobSet,
    dev: u64,
    watches: HashMap<i32, (Vec<u8>, Ctx)>,
    summary: Summary,
    limit_warned: bool,
}

fn open_beneath(root: &Dir, relative: &[u8], flags: OFlags) -> io::Result<OwnedFd> {
    let resolve = ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_MAGICLINKS;
    let path = if relative.is_empty() { OsStr::new(".") } else { OsStr::from_bytes(relative) };
    Ok(rustix::fs::openat2(root, path, flags | OFlags::NOFOLLOW | OFlags::CLOEXEC, Mode::empty(), resolve)?)
}

impl Watcher<'_> {
    /// Watches the directory `relative` (empty: the root) and, below it, every
    /// directory that is neither declared nor ignored nor on another file system.
    /// Returns the undeclared files already inside (made before the watch was there).
    fn add_tree(&mut self, relative: Vec<u8>, ctx: Ctx, out: &mut dyn Write) -> Vec<(Vec<u8>, Class)> {
        let mut found = Vec::new();
        let mut stack = vec![(relative, ctx)];
        while let Some((relative, ctx)) = stack.pop() {
            let Ok(fd) = open_beneath(self.root, &relative, OFlags::RDONLY | OFlags::DIRECTORY) else { continue };
            if rustix::fs::fstat(&fd).map(|s| s.st_dev).ok() != Some(self.dev) {
                continue;
            }
            let by_fd = format!("/proc/self/fd/{}", fd.as_raw_fd());
            match self.inotify.watches().add(&by_fd, MASK) {
                Ok(wd) => {
                    self.watches.insert(wd.get_watch_descriptor_id(), (relative.clone(), ctx));
                    self.summary.watched += 1;
                }
                Err(error) if error.raw_os_error() == Some(rustix::io::Errno::NOSPC.raw_os_error()) => {
                    self.summary.unwatched += 1;
                    if !self.limit_warned {
                        self.limit_warned = true;
                        let limit =
                            std::fs::read_to_string("/proc/sys/fs/inotify/max_user_watches").unwrap_or_default();
                        let _ = writeln!(
                            out,
                            "warning: the inotify watch limit is reached (fs.inotify.max_user_watches = {}): \
                             some directories are not watched; raise it with sysctl",
                            limit.trim()
                        );
                    }
                    continue;
                }
                Err(_) => continue,
            }
            let Ok(dir) = rustix::fs::Dir::read_from(&fd) else { continue };
            for entry in dir.flatten() {
                let name = entry.file_name().to_bytes();
                if name == b"." || name == b".." {
                    continue;
                }
                match self.classify(&relative, ctx, name) {
                    Some(child) if entry.file_type() == rustix::fs::FileType::Directory => {
                        stack.push((join(&relative, name), child));
                    }
                    Some(Ctx::Group(class)) => found.push((join(&relative, name), class)),
                    _ => {}
                }
            }
        }
        found
    }

    /// Where an entry's contents go; `None` for declared or ignored entries.
    fn classify(&self, relative: &[u8], ctx: Ctx, name: &[u8]) -> Option<Ctx> {
        let lookup = match ctx {
            Ctx::Node(node) => self.tree.lookup(node, name),
            Ctx::Group(class) => Lookup::Unaccounted(class),
        };
        match lookup {
            Lookup::Declared | Lookup::Ignored => None,
            Lookup::Node(node) => Some(Ctx::Node(node)),
            Lookup::Unaccounted(class) => {
                let mut absolute = b"/".to_vec();
                absolute.extend_from_slice(&join(relative, name));
                (!self.globs.is_match(OsStr::from_bytes(&absolute))).then_some(Ctx::Group(class))
            }
        }
    }
}

fn join(relative: &[u8], name: &[u8]) -> Vec<u8> {
    let mut path = relative.to_vec();
    if !path.is_empty() {
        path.push(b'/');
    }
    path.extend_from_slice(name);
    path
}

/// The processes holding `target` open, or else those working in `dir`: `PID (comm)`.
pub fn writers(target: &Path, dir: &Path) -> Vec<String> {
    let Ok(procs) = std::fs::read_dir("/proc") else { return Vec::new() };
    let mut holders = Vec::new();
    let mut in_dir = Vec::new();
    let mut pids: Vec<u32> = procs.flatten().filter_map(|e| e.file_name().to_str()?.parse().ok()).collect();
    pids.sort_unstable();
    let me = std::process::id();
    for pid in pids.into_iter().filter(|&p| p != me) {
        let base = Path::new("/proc").join(pid.to_string());
        // A process names itself (PR_SET_NAME): its name is escaped as a path is.
        let comm = || std::fs::read(base.join("comm")).map(|c| escape(c.trim_ascii_end())).unwrap_or_default();
        let holds = std::fs::read_dir(base.join("fd")).is_ok_and(|mut fds| {
            fds.any(|fd| fd.is_ok_and(|fd| std::fs::read_link(fd.path()).is_ok_and(|t| t == target)))
        });
        if holds {
            holders.push(format!("{pid} ({})", comm()));
        } else if std::fs::read_link(base.join("cwd")).is_ok_and(|cwd| cwd == dir) {
            in_dir.push(format!("{pid} ({})", comm()));
        }
    }
    if holders.is_empty() { in_dir } else { holders }
}

/// Watches `root` until `duration` has passed, or `stop` becomes readable (a signalfd,
/// or a pipe's reading end at its end), or forever; prints each new undeclared write
/// to `out`.
pub fn watch(
    root: &Dir,
    root_path: &Path,
    tree: &Tree,
    globs: &GlobSet,
    duration: Option<Duration>,
    stop: Option<BorrowedFd<'_>>,
    out: &mut dyn Write,
) -> io::Result<Summary> {
    let dev = root.own_meta().map_err(|e| e.source)?.dev;
    let mut watcher = Watcher {
        inotify: Inotify::init()?,
        root,
        tree,
        globs,
        dev,
        watches: HashMap::new(),
        summary: Summary::default(),
        limit_warned: false,
    };
    let _ = watcher.add_tree(Vec::new(), Ctx::Node(0), out);
    writeln!(
        out,
        "watching {} of {}",
        plural(watcher.summary.watched as u64, "directory", "directories"),
        root_path.display()
    )?;
    out.flush()?;
    let deadline = duration.map(|d| Instant::now() + d);
    let mut buffer = vec![0u8; 64 * 1024];
    let mut seen: HashSet<Vec<u8>> = HashSet::new();
    loop {
        let left = match deadline {
            Some(deadline) => match deadline.checked_duration_since(Instant::now()) {
                Some(left) if !left.is_zero() => Some(left),
                _ => break,
            },
            None => None,
        };
        let timeout = left.map(|l| rustix::event::Timespec {
            tv_sec: i64::try_from(l.as_secs()).unwrap_or(i64::MAX),
            tv_nsec: i64::from(l.subsec_nanos()),
        });
        let (ready, stopped) = {
            let fd = watcher.inotify.as_fd();
            let stop = stop.unwrap_or(fd);
            let mut fds = [
                rustix::event::PollFd::new(&fd, rustix::event::PollFlags::IN),
                rustix::event::PollFd::new(&stop, rustix::event::PollFlags::IN),
            ];
            let ready = rustix::event::poll(&mut fds, timeout.as_ref());
            (ready, stop.as_raw_fd() != fd.as_raw_fd() && !fds[1].revents().is_empty())
        };
        match ready {
            Ok(0) | Err(rustix::io::Errno::INTR) => continue,
            Ok(_) => {}
            Err(errno) => return Err(errno.into()),
        }
        let events: Vec<(i32, EventMask, Vec<u8>)> = match watcher.inotify.read_events(&mut buffer) {
            Ok(events) => events
                .filter_map(|e| Some((e.wd.get_watch_descriptor_id(), e.mask, e.name?.as_bytes().to_vec())))
                .collect(),
            Err(error) if error.kind() == io::ErrorKind::WouldBlock && stopped => break,
            Err(error) if error.kind() == io::ErrorKind::WouldBlock => continue,
            Err(error) => return Err(error),
        };
        for (wd, mask, name) in events {
            let Some((relative, ctx)) = watcher.watches.get(&wd).cloned() else { continue };
            let Some(child) = watcher.classify(&relative, ctx, &name) else { continue };
            let is_dir = mask.contains(EventMask::ISDIR);
            // A new directory is watched, and what was made inside it before the
            // watch was in place is reported too.
            let inside = if is_dir { watcher.add_tree(join(&relative, &name), child, out) } else { Vec::new() };
            let Ctx::Group(class) = child else { continue };
            let what = if mask.contains(EventMask::CLOSE_WRITE) {
                "written"
            } else if mask.contains(EventMask::MOVED_TO) {
                "moved in"
            } else {
                "created"
            };
            let kind = if is_dir { "directory" } else { "file" };
            let mut report = vec![(join(&relative, &name), class, what, kind)];
            report.extend(inside.into_iter().map(|(path, class)| (path, class, "created", "file")));
            for (path, class, what, kind) in report {
                watcher.summary.events += 1;
                if seen.len() > 100_000 {
                    seen.clear();
                }
                if seen.insert(path.clone()) {
                    watcher.summary.paths += 1;
                }
                let absolute = root_path.join(OsStr::from_bytes(&path));
                let parent = absolute.parent().unwrap_or(root_path).to_path_buf();
                let by = writers(&absolute, &parent);
                let by =
                    if by.is_empty() { "by an unknown process".to_owned() } else { format!("by {}", by.join(", ")) };
                writeln!(out, "{} {what}: {kind} /{} {by}", class.key(), escape(&path))?;
            }
            out.flush()?;
        }
        if stopped {
            break;
        }
    }
    Ok(watcher.summary)
}
