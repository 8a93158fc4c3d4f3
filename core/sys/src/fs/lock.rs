//! Locks: `flock` on a file, and the writer lock (its holder recorded in the file,
//! waits reported, how long to wait set once per process: [`LockWait`]).

use std::ffi::OsStr;
use std::io;
use std::os::fd::OwnedFd;
use std::path::Path;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use rustix::fs::{FlockOperation, Mode, OFlags};

use super::{Dir, FsError, Result, check_name, wrap};

impl Dir {
    /// Takes an exclusive lock on the file `name` (created if missing), blocking until
    /// it is free. The lock lasts as long as the returned value. For a file shared with
    /// other programs (libmount's `utab.lock`); blankslate's own writers use
    /// [`Dir::lock_writer`].
    pub fn lock(&self, name: impl AsRef<OsStr>) -> Result<Lock> {
        let name = name.as_ref();
        check_name(name, &self.path)?;
        let fd =
            self.openat(Path::new(name), OFlags::RDWR | OFlags::CREATE, Mode::from_raw_mode(0o600), "open lock file")?;
        rustix::fs::flock(&fd, FlockOperation::LockExclusive).map_err(self.failed("lock", name))?;
        Ok(Lock { fd, recorded: false })
    }

    /// Takes blankslate's writer lock `name` (created if missing): the state's, a
    /// volume's. How long it waits for another holder is the process's [`lock_wait`].
    pub fn lock_writer(&self, name: impl AsRef<OsStr>) -> Result<Lock> {
        self.lock_writer_waiting(name, lock_wait())
    }

    /// [`Dir::lock_writer`] with its own `wait`. A writer that has to wait says once,
    /// on standard error, which command and process hold the lock (the holder's record
    /// in the file); one that gives up fails with an error that names them. Once held,
    /// the file records this process (its pid and command line) until the lock is
    /// released.
    pub(super) fn lock_writer_waiting(&self, name: impl AsRef<OsStr>, wait: LockWait) -> Result<Lock> {
        let name = name.as_ref();
        check_name(name, &self.path)?;
        let path = self.path.join(name);
        let fd =
            self.openat(Path::new(name), OFlags::RDWR | OFlags::CREATE, Mode::from_raw_mode(0o600), "open lock file")?;
        let try_lock = || match rustix::fs::flock(&fd, FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => Ok(true),
            Err(rustix::io::Errno::WOULDBLOCK) => Ok(false),
            Err(errno) => Err(wrap("lock", &path)(errno)),
        };
        if !try_lock()? {
            let holder = Holder::of(&fd);
            let busy = |message: String| FsError {
                op: "lock",
                path: path.clone(),
                source: io::Error::new(io::ErrorKind::WouldBlock, message),
            };
            match wait {
                LockWait::No => return Err(busy(format!("held by {holder}"))),
                LockWait::Forever => {
                    eprintln!("note: waiting for the lock {}, held by {holder}", path.display());
                    rustix::fs::flock(&fd, FlockOperation::LockExclusive).map_err(wrap("lock", &path))?;
                }
                LockWait::AtMost(limit) => {
                    eprintln!(
                        "note: waiting at most {} for the lock {}, held by {holder}",
                        seconds(limit),
                        path.display()
                    );
                    let deadline = Instant::now() + limit;
                    while !try_lock()? {
                        let left = deadline.saturating_duration_since(Instant::now());
                        if left.is_zero() {
                            let holder = Holder::of(&fd);
                            return Err(busy(format!("still held by {holder} after {}", seconds(limit))));
                        }
                        std::thread::sleep(left.min(LOCK_POLL));
                    }
                }
            }
        }
        Holder::record(&fd);
        Ok(Lock { fd, recorded: true })
    }
}

/// How often a writer with a time limit tries the lock again.
const LOCK_POLL: Duration = Duration::from_millis(50);

/// How a writer waits for a lock that another process holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LockWait {
    /// Until it is free.
    #[default]
    Forever,
    /// Not at all: fail at once.
    No,
    /// At most this long, then fail.
    AtMost(Duration),
}

static LOCK_WAIT: OnceLock<LockWait> = OnceLock::new();

/// Sets how every writer lock this process takes waits (the command line's
/// `--no-wait` and `--lock-timeout`); only the first call counts.
pub fn set_lock_wait(wait: LockWait) {
    let _ = LOCK_WAIT.set(wait);
}

/// How this process's writer locks wait: [`LockWait::Forever`] unless set.
pub fn lock_wait() -> LockWait {
    LOCK_WAIT.get().copied().unwrap_or_default()
}

/// `5 s`, `1.5 s`.
fn seconds(duration: Duration) -> String {
    format!("{} s", duration.as_secs_f64())
}

/// The holder of a writer lock, as its record in the lock file says: `PID COMMAND`.
struct Holder(Option<(u32, String)>);

/// The most of a holder's record that is written or read.
const HOLDER_MAX: usize = 512;

impl Holder {
    /// What the lock file says, if the process it names is still there.
    fn of(fd: &OwnedFd) -> Holder {
        let mut buffer = [0u8; HOLDER_MAX];
        let read = rustix::io::pread(fd, &mut buffer, 0).unwrap_or(0);
        let text = String::from_utf8_lossy(&buffer[..read]);
        let parsed = text.lines().next().and_then(|line| {
            let (pid, command) = line.split_once(' ')?;
            let pid: u32 = pid.parse().ok()?;
            Path::new(&format!("/proc/{pid}")).exists().then(|| (pid, command.to_owned()))
        });
        Holder(parsed)
    }

    /// Writes this process's record over the file's contents (best effort: the lock
    /// holds without it).
    fn record(fd: &OwnedFd) {
        let command: Vec<String> = std::env::args_os().map(|a| a.to_string_lossy().into_owned()).collect();
        let mut line = format!("{} {}", std::process::id(), command.join(" "));
        line.retain(|c| !c.is_control());
        let mut end = line.len().min(HOLDER_MAX - 1);
        while !line.is_char_boundary(end) {
            end -= 1;
        }
        line.truncate(end);
        line.push('\n');
        if rustix::io::pwrite(fd, line.as_bytes(), 0).is_ok() {
            let _ = rustix::fs::ftruncate(fd, line.len() as u64);
        }
    }
}

impl std::fmt::Display for Holder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.0 {
            Some((pid, command)) => write!(f, "`{}` (pid {pid})", command.escape_debug()),
            None => f.write_str("a process that did not record which"),
        }
    }
}

/// An exclusive `flock`, released when dropped (or when the process dies).
#[derive(Debug)]
pub struct Lock {
    fd: OwnedFd,
    /// The file holds this process's record, cleared on release.
    recorded: bool,
}

impl Drop for Lock {
    fn drop(&mut self) {
        if self.recorded {
            let _ = rustix::fs::ftruncate(&self.fd, 0);
        }
    }
}
