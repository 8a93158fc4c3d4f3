//! File contents moved off the thread that walks a tree.
//!
//! Copying or reading a tree is two kinds of work: system calls on each entry's
//! metadata (`statx`, opens, directories, links), which the walk must do in order, and
//! wait. A [`Pipeline`] hands the second to worker threads, one per processor (at
//! most [`MOST_WORKERS`]), while the walk goes on, so that a large tree keeps every
//! core busy. The nodes the jobs complete reach the walk's visitor in the order the
//! walk made them, whichever job ended first. On a machine with one processor, each
//! job runs on the walking thread as it is given.
//!
//! Jobs go to the workers in turn, not to whichever is free: each thread then makes
//! the same system calls in the same order at every run of the same tree, which the
//! crash tests count on (strace counts a kill point's calls per thread).
//!
//! Memory stays bounded: at most [`JOBS_AHEAD`] jobs (each two descriptors at most)
//! wait for each worker, and the walk waits for the workers once [`NODES_AHEAD`]
//! nodes are held for one still being worked on.

use std::collections::VecDeque;
use std::fs::File;
use std::os::fd::{AsFd, OwnedFd};
use std::path::PathBuf;
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::thread::JoinHandle;

use rustix::fs::{Mode, Timestamps};

use super::super::checked::{DataSource, copy_data_checked};
use super::{Node, Result, TreeError, XattrTarget, Xattrs, set_xattrs, wrap};

/// Jobs given to a worker but not yet taken by it.
const JOBS_AHEAD: usize = 16;
/// Beyond this many, more threads only contend for the same memory bandwidth.
const MOST_WORKERS: usize = 4;
/// Nodes held in order behind one whose job is not done, before the walk waits.
const NODES_AHEAD: usize = 256;

/// What is done with one file's bytes.
pub(super) enum Job {
    /// The blake3 of an open file's contents.
    Hash { file: OwnedFd, shown: PathBuf },
    /// A regular file copied into a new one: data extent by extent (read back and
    /// compared as it is written when `check`), then the owner, the mode (after the owner, which drops set-id bits),
    /// the extended attributes (after both: writing and `chown` drop
    /// `security.capability`), the times (after every write), and fsync when `sync`.
    Copy { from: Copied, to: Made, check: bool, sync: bool },
}

/// The source of a copy: an open file, its size as opened, whether it has no holes
/// (as many bytes allocated as it is long), and its path for errors.
pub(super) struct Copied {
    pub file: OwnedFd,
    pub size: u64,
    pub dense: bool,
    pub shown: PathBuf,
}

/// The new file of a copy (opened for reading too when the copy is checked) and
/// what it is given.
pub(super) struct Made {
    pub file: OwnedFd,
    pub shown: PathBuf,
    pub owner: (u32, u32),
    pub mode: u32,
    pub xattrs: Xattrs,
    pub times: Timestamps,
}

/// What a job did: the bytes of data it wrote, or the contents' blake3.
#[derive(Clone, Copy)]
struct Done {
    bytes: u64,
    content: Option<[u8; 32]>,
}

impl Job {
    /// Runs the job; `buffer` is the thread's, reused from one job to the next.
    fn run(self, buffer: &mut Vec<u8>) -> Result<Done> {
        match self {
            Job::Hash { file, shown } => {
                let mut hasher = blake3::Hasher::new();
                hasher.update_reader(File::from(file)).map_err(|source| TreeError::Io {
                    op: "read",
                    path: shown,
                    source,
                })?;
                Ok(Done { bytes: 0, content: Some(*hasher.finalize().as_bytes()) })
            }
            Job::Copy { from, to, check, sync } => {
                let source =
                    DataSource { file: from.file.as_fd(), path: &from.shown, size: from.size, dense: from.dense };
                let bytes = copy_data_checked(&source, &to.file, &to.shown, check, buffer)?;
                let (uid, gid) = (rustix::fs::Uid::from_raw(to.owner.0), rustix::fs::Gid::from_raw(to.owner.1));
                rustix::fs::fchown(&to.file, Some(uid), Some(gid)).map_err(wrap("set owner of", &to.shown))?;
                rustix::fs::fchmod(&to.file, Mode::from_raw_mode(to.mode)).map_err(wrap("set mode of", &to.shown))?;
                set_xattrs(&XattrTarget::Fd(to.file.as_fd()), &to.xattrs, &to.shown)?;
                rustix::fs::futimens(&to.file, &to.times).map_err(wrap("set times of", &to.shown))?;
                if sync {
                    rustix::fs::fsync(&to.file).map_err(wrap("fsync", &to.shown))?;
                }
                Ok(Done { bytes, content: None })
            }
        }
    }
}

/// A node in the walk's order, and whether a job still has to complete it. A node
/// of `None` holds the place of a job whose result only counts (a copy that
/// describes nothing).
struct Held {
    node: Option<Node>,
    waiting: bool,
}

/// A job's place in the walk's order: the number of nodes held before it, ever.
type Place = u64;

/// The worker threads, each with its queue of jobs, and the results of all.
struct Workers {
    jobs: Vec<SyncSender<(Place, Job)>>,
    done: Receiver<(Place, Result<Done>)>,
    threads: Vec<JoinHandle<()>>,
}

impl Workers {
    fn start(count: usize) -> Result<Workers> {
        let (done_sender, done) = mpsc::channel();
        let (mut jobs, mut threads) = (Vec::new(), Vec::new());
        for _ in 0..count {
            let (sender, queue) = mpsc::sync_channel::<(Place, Job)>(JOBS_AHEAD);
            jobs.push(sender);
            let done_sender = done_sender.clone();
            let work = move || {
                let mut buffer = Vec::new();
                for (place, job) in queue {
                    // A job that panics is a failed job: the walk hears of it, never
                    // waits for it.
                    let run = std::panic::AssertUnwindSafe(|| job.run(&mut buffer));
                    let done = std::panic::catch_unwind(run).unwrap_or_else(|_| Err(stopped()));
                    // The walk stopped (an error, or it was dropped): so do the workers.
                    if done_sender.send((place, done)).is_err() {
                        break;
                    }
                }
            };
            let started = std::thread::Builder::new().name("tree data".into()).spawn(work);
            threads.push(started.map_err(|source| TreeError::Io {
                op: "start a thread for",
                path: "file contents".into(),
                source,
            })?);
        }
        Ok(Workers { jobs, done, threads })
    }

    /// Stops the workers and waits for every thread; an error if one of them
    /// panicked. A worker stops when it next fails to send a result, so it may end
    /// its current job and run one more queued one first; the others are dropped.
    fn stop(self) -> Result<()> {
        let Workers { jobs, done, threads } = self;
        drop(done);
        drop(jobs);
        let mut result = Ok(());
        for thread in threads {
            if thread.join().is_err() {
                result = Err(stopped());
            }
        }
        result
    }
}

/// Nodes in the walk's order, completed by jobs run by the worker (see the module
/// docs), handed to `visit` as soon as every node before them is complete.
pub(super) struct Pipeline<'v> {
    visit: &'v mut dyn FnMut(Node),
    held: VecDeque<Held>,
    /// The place of the node at the front of `held`.
    front: Place,
    /// Started at the first job, so that a walk that reads no file starts no thread;
    /// never started with one processor.
    workers: Option<Workers>,
    /// Jobs given to the workers so far.
    given: usize,
    /// For the jobs run on the walking thread.
    buffer: Vec<u8>,
    bytes: u64,
}

impl<'v> Pipeline<'v> {
    pub(super) fn new(visit: &'v mut dyn FnMut(Node)) -> Pipeline<'v> {
        Pipeline { visit, held: VecDeque::new(), front: 0, workers: None, given: 0, buffer: Vec::new(), bytes: 0 }
    }

    /// A node that is complete as it is.
    pub(super) fn node(&mut self, node: Node) -> Result<()> {
        self.held.push_back(Held { node: Some(node), waiting: false });
        let wait = self.held.len() > NODES_AHEAD;
        self.deliver(wait)
    }

    /// A node that `job` completes: its contents' hash, when the job makes one.
    pub(super) fn node_with(&mut self, node: Option<Node>, job: Job) -> Result<()> {
        if self.workers.is_none() {
            let threads = threads();
            if threads > 1 {
                self.workers = Some(Workers::start(threads)?);
            }
        }
        let place = self.front + self.held.len() as Place;
        self.held.push_back(Held { node, waiting: true });
        let Some(workers) = &self.workers else {
            let done = job.run(&mut self.buffer)?;
            return self.complete(place, done);
        };
        // In turn: the same tree gives each worker the same jobs.
        let worker = self.given % workers.jobs.len();
        self.given += 1;
        if workers.jobs[worker].send((place, job)).is_err() {
            // The worker ended early: only a panic there does that.
            return Err(stopped());
        }
        let wait = self.held.len() > NODES_AHEAD;
        self.deliver(wait)
    }

    /// Every job done and every node handed on; the bytes the jobs wrote. On an
    /// error the workers are stopped and waited for (by `drop`) before it returns.
    pub(super) fn finish(mut self) -> Result<u64> {
        while !self.held.is_empty() {
            // Every node left waits for a job still to end (`hand_on` took the rest),
            // which only a worker can end.
            if self.workers.is_none() {
                return Err(stopped());
            }
            self.deliver(true)?;
        }
        if let Some(workers) = self.workers.take() {
            workers.stop()?;
        }
        Ok(self.bytes)
    }

    /// Takes the results that are in (waiting for one when `wait`), then hands on
    /// the complete nodes at the front.
    fn deliver(&mut self, mut wait: bool) -> Result<()> {
        while let Some(workers) = &self.workers {
            let (place, result) = if wait {
                workers.done.recv().map_err(|_| stopped())?
            } else {
                match workers.done.try_recv() {
                    Ok(result) => result,
                    Err(mpsc::TryRecvError::Empty) => break,
                    Err(mpsc::TryRecvError::Disconnected) => return Err(stopped()),
                }
            };
            self.complete(place, result?)?;
            wait = self.held.len() > NODES_AHEAD;
        }
        self.hand_on();
        Ok(())
    }

    /// `done` completes the node at `place`.
    fn complete(&mut self, place: Place, done: Done) -> Result<()> {
        let index = place.checked_sub(self.front).and_then(|ahead| usize::try_from(ahead).ok()).ok_or_else(stopped)?;
        let held = self.held.get_mut(index).filter(|held| held.waiting).ok_or_else(stopped)?;
        held.waiting = false;
        if let Some(node) = &mut held.node {
            node.content = done.content.or(node.content);
        }
        self.bytes += done.bytes;
        self.hand_on();
        Ok(())
    }

    fn hand_on(&mut self) {
        while self.held.front().is_some_and(|held| !held.waiting) {
            self.front += 1;
            if let Some(node) = self.held.pop_front().and_then(|held| held.node) {
                (self.visit)(node);
            }
        }
    }
}

impl Drop for Pipeline<'_> {
    /// A walk that stopped early stops the workers after their current jobs, and
    /// waits for them: no descriptor of the tree stays open, nothing is written after.
    fn drop(&mut self) {
        if let Some(workers) = self.workers.take() {
            let _ = workers.stop();
        }
    }
}

/// How many threads share work that every core can do at once: one per processor, at
/// most [`MOST_WORKERS`].
pub(super) fn threads() -> usize {
    std::thread::available_parallelism().map_or(1, usize::from).min(MOST_WORKERS)
}

fn stopped() -> TreeError {
    TreeError::Io {
        op: "finish",
        path: "file contents".into(),
        source: std::io::Error::other("the thread working on them stopped"),
    }
}

#[cfg(test)]
mod tests {
    use std::os::fd::OwnedFd;

    use super::{JOBS_AHEAD, Job, NODES_AHEAD, Pipeline, Workers};
    use crate::fs::tree::{Node, NodeKind};

    fn node(path: &str) -> Node {
        Node {
            path: path.into(),
            kind: NodeKind::File,
            mode: 0o644,
            uid: 0,
            gid: 0,
            mtime: (0, 0),
            size: 0,
            content: None,
            link_target: None,
            rdev: None,
            xattrs: Vec::new(),
            same_inode_as: None,
        }
    }

    /// Nodes reach the visitor in the order given, each with its own file's hash,
    /// whether the jobs run on the worker or in place; with more nodes held behind
    /// a slow job than the pipeline holds before it waits.
    #[test]
    fn nodes_keep_their_order_and_their_own_contents() {
        let scratch = tempfile::tempdir().unwrap();
        let count = NODES_AHEAD + JOBS_AHEAD + 100;
        let contents = |i: usize| format!("file {i} ").repeat(if i % 97 == 0 { 200_000 } else { i % 13 });
        let open = |i: usize| -> OwnedFd {
            let path = scratch.path().join(i.to_string());
            std::fs::write(&path, contents(i)).unwrap();
            std::fs::File::open(path).unwrap().into()
        };
        for on_worker in [true, false] {
            // With three workers, jobs end out of order: a big file's after the
            // small ones given after it.
            let mut seen = Vec::new();
            let mut visit = |node: Node| seen.push(node);
            let mut pipeline = Pipeline::new(&mut visit);
            if on_worker {
                pipeline.workers = Some(Workers::start(3).unwrap());
            }
            for i in 0..count {
                let name = i.to_string();
                // Every third node has no job: it waits for the ones before it.
                if i % 3 == 1 {
                    pipeline.node(node(&name)).unwrap();
                } else {
                    let job = Job::Hash { file: open(i), shown: name.clone().into() };
                    pipeline.node_with(Some(node(&name)), job).unwrap();
                }
            }
            pipeline.finish().unwrap();
            assert_eq!(seen.len(), count);
            for (i, node) in seen.iter().enumerate() {
                assert_eq!(node.path, i.to_string().as_str(), "in order (worker: {on_worker})");
                let expected = (i % 3 != 1).then(|| *blake3::hash(contents(i).as_bytes()).as_bytes());
                assert_eq!(node.content, expected, "node {i}'s own contents (worker: {on_worker})");
            }
        }
    }

    /// A job's error reaches the walk, and the pipeline can be dropped with jobs
    /// still queued without leaving its thread behind.
    #[test]
    fn an_error_reaches_the_walk() {
        let scratch = tempfile::tempdir().unwrap();
        let mut visit = |_: Node| {};
        let mut pipeline = Pipeline::new(&mut visit);
        pipeline.workers = Some(Workers::start(2).unwrap());
        // A directory cannot be read as a file: the hash fails.
        let directory: OwnedFd = std::fs::File::open(scratch.path()).unwrap().into();
        let failed = pipeline.node_with(None, Job::Hash { file: directory, shown: scratch.path().into() });
        let finished = failed.and_then(|()| pipeline.finish().map(drop));
        let error = finished.unwrap_err().to_string();
        assert!(error.contains("cannot read"), "{error}");
    }
}
