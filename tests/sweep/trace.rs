//! strace: recording what a command does, choosing the points to break it at, and
//! breaking it there.
//!
//! `strace -e inject=SET:…:when=N` counts **per system call and per process**: the
//! N-th `renameat` of each traced process (a child counts from 1 again; a thread is a
//! process of its own to strace; an `execve` keeps the count), whatever else is in
//! SET. Measured with strace 6.1 here (`inject=fsync,renameat:error=EIO:when=2` fails
//! the second `fsync`, not the second call of the set; a forked child fails its own
//! second `write`, and so does its parent). So a point is one system call name and
//! one N, injected with `-e trace=NAME` alone, and the recording of a clean run tells
//! which call that is: the first, in time, of every process's N-th call of that name.
//! `signal=KILL` is delivered at the call's entry, before it runs (the kernel skips
//! a call when a fatal signal is pending at its entry), and only without
//! `--seccomp-bpf`: with it, strace 6.1 injects errors but never the signal.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fmt;
use std::path::Path;
use std::process::Command;

pub const STRACE: &str = "/usr/bin/strace";

/// What is injected at a point.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Inject {
    Kill,
    Enospc,
    Eio,
}

impl Inject {
    pub const ALL: [Inject; 3] = [Inject::Kill, Inject::Enospc, Inject::Eio];

    fn spec(self) -> &'static str {
        match self {
            Inject::Kill => "signal=KILL",
            Inject::Enospc => "error=ENOSPC",
            Inject::Eio => "error=EIO",
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Inject::Kill => "kill",
            Inject::Enospc => "ENOSPC",
            Inject::Eio => "EIO",
        }
    }

    pub fn parse(text: &str) -> Option<Inject> {
        Inject::ALL.into_iter().find(|i| i.name().eq_ignore_ascii_case(text))
    }
}

/// What a system call does to the state, as far as the sweep cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Effect {
    /// Reads, or changes only the process itself.
    None,
    /// Changes something: a name, a mode or owner, a mount, a process.
    Change,
    /// Writes data or makes something new: a write, a sync, a creation. These get
    /// ENOSPC and EIO as well as a kill.
    Write,
}

/// One system call of a recorded run.
#[derive(Debug, Clone)]
pub struct Call {
    pub pid: u32,
    pub name: String,
    /// The rest of strace's line: arguments and result.
    pub text: String,
}

impl Call {
    pub fn effect(&self) -> Effect {
        let has = |flag: &str| self.text.contains(flag);
        match self.name.as_str() {
            "write" | "writev" | "pwrite64" | "pwritev" | "pwritev2" | "ftruncate" | "truncate" | "fallocate"
            | "copy_file_range" | "sendfile" | "splice" | "fsync" | "fdatasync" | "sync_file_range" | "syncfs"
            | "sync" | "mkdir" | "mkdirat" | "mknod" | "mknodat" | "symlink" | "symlinkat" | "link" | "linkat"
            | "creat" => Effect::Write,
            "open" | "openat" | "openat2" if has("O_CREAT") || has("O_TRUNC") || has("O_TMPFILE") => Effect::Write,
            "rename" | "renameat" | "renameat2" | "unlink" | "unlinkat" | "rmdir" | "chmod" | "fchmod" | "fchmodat"
            | "fchmodat2" | "chown" | "fchown" | "lchown" | "fchownat" | "utimensat" | "utimes" | "futimesat"
            | "setxattr" | "lsetxattr" | "fsetxattr" | "removexattr" | "lremovexattr" | "fremovexattr" | "mount"
            | "umount2" | "move_mount" | "fsmount" | "mount_setattr" | "pivot_root" | "clone" | "clone3" | "fork"
            | "vfork" => Effect::Change,
            "open_tree" if has("OPEN_TREE_CLONE") => Effect::Change,
            "fsconfig" if has("FSCONFIG_CMD_CREATE") || has("FSCONFIG_CMD_RECONFIGURE") => Effect::Change,
            // kill(PID, 0) only asks whether PID exists.
            "kill" | "tkill" | "tgkill" if !has(", 0)") => Effect::Change,
            _ => Effect::None,
        }
    }
}

impl fmt::Display for Call {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = if self.text.len() > 160 { format!("{}…", &self.text[..160]) } else { self.text.clone() };
        write!(f, "{}{text}", self.name)
    }
}

/// The system calls of a clean run, in the order strace saw them enter.
#[derive(Debug, Clone, Default)]
pub struct Recording {
    pub calls: Vec<Call>,
}

/// `strace -f` recording everything `program` does into `trace`.
pub fn recording(program: &[OsString], trace: &Path) -> Command {
    let mut command = Command::new(STRACE);
    command.args(["-f", "-qq", "-o"]).arg(trace).arg("--").args(program);
    command.env_remove("BLANKSLATE_FAILPOINT").env("NO_COLOR", "1");
    command
}

/// Reads strace's `-f -o FILE` output: a line per call entry (`PID name(…`), resumed
/// halves, signals and exits skipped.
pub fn parse(text: &str) -> Recording {
    let mut calls = Vec::new();
    for line in text.lines() {
        let Some((pid, rest)) = line.split_once(' ') else { continue };
        let Ok(pid) = pid.parse() else { continue };
        let rest = rest.trim_start();
        let Some(open) = rest.find('(') else { continue };
        let name = &rest[..open];
        if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
            continue;
        }
        calls.push(Call { pid, name: name.to_owned(), text: rest[open..].to_owned() });
    }
    Recording { calls }
}

/// One place to break a run: inject `inject` at the `n`-th `syscall` of a process.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Point {
    pub inject: Inject,
    pub syscall: String,
    pub n: usize,
}

impl Point {
    /// `kill:renameat:3`, as `BLANKSLATE_SWEEP_POINT` takes it.
    pub fn parse(text: &str) -> Option<Point> {
        let mut parts = text.split(':');
        let inject = Inject::parse(parts.next()?)?;
        let syscall = parts.next()?.to_owned();
        let n = parts.next()?.parse().ok()?;
        parts.next().is_none().then_some(Point { inject, syscall, n })
    }

    /// `strace` running `program` with this point's injection.
    pub fn command(&self, program: &[OsString]) -> Command {
        let mut command = Command::new(STRACE);
        command.args(["-f", "-qq", "-o", "/dev/null"]);
        // Stopping only at the traced call halves the time, but strace 6.1 then never
        // delivers an injected signal (errors it does inject).
        if self.inject != Inject::Kill {
            command.arg("--seccomp-bpf");
        }
        command
            .arg("-e")
            .arg(format!("trace={}", self.syscall))
            .arg("-e")
            .arg(format!("inject={}:{}:when={}", self.syscall, self.inject.spec(), self.n))
            .arg("--")
            .args(program);
        command.env_remove("BLANKSLATE_FAILPOINT").env("NO_COLOR", "1");
        command
    }
}

impl fmt::Display for Point {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.inject.name(), self.syscall, self.n)
    }
}

/// How many points of one kind and system call are tried: all of the first `first`,
/// then every `every`-th, and the last one.
#[derive(Debug, Clone, Copy)]
pub struct Sampling {
    pub first: usize,
    pub every: usize,
}

/// Every point of `recording` where `inject` hits a call that matters (a change for a
/// kill, a write for an error), with the call it hits; sampled per system call name,
/// so that no name is ever left out.
pub fn points(recording: &Recording, inject: Inject, sampling: Sampling) -> Vec<(Point, Call)> {
    let wanted = if inject == Inject::Kill { Effect::Change } else { Effect::Write };
    // Per name, per process: the calls in order (their index in the recording).
    let mut by_name: BTreeMap<&str, BTreeMap<u32, Vec<usize>>> = BTreeMap::new();
    for (index, call) in recording.calls.iter().enumerate() {
        by_name.entry(&call.name).or_default().entry(call.pid).or_default().push(index);
    }
    let mut out = Vec::new();
    for (name, per_process) in by_name {
        let most = per_process.values().map(Vec::len).max().unwrap_or(0);
        let eligible: Vec<(usize, usize)> = (1..=most)
            .filter_map(|n| {
                // The first process, in time, to reach its n-th call of this name.
                let hit = per_process.values().filter_map(|calls| calls.get(n - 1)).min().copied()?;
                (recording.calls[hit].effect() >= wanted).then_some((n, hit))
            })
            .collect();
        let last = eligible.len().saturating_sub(1);
        for (position, (n, hit)) in eligible.into_iter().enumerate() {
            let sampled = position < sampling.first
                || (position - sampling.first) % sampling.every.max(1) == 0
                || position == last;
            if sampled {
                out.push((Point { inject, syscall: name.to_owned(), n }, recording.calls[hit].clone()));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use std::fmt::Write as _;

    use super::*;

    const TRACE: &str = r#"100 openat(AT_FDCWD, "/a", O_RDONLY|O_CLOEXEC) = 3
100 openat(AT_FDCWD, "/b", O_WRONLY|O_CREAT|O_EXCL|O_CLOEXEC, 0600) = 4
100 write(4, "x", 1 <unfinished ...>
101 write(1, "y", 1)                 = 1
100 <... write resumed>)            = 1
100 clone3({flags=CLONE_VM|CLONE_VFORK, exit_signal=SIGCHLD, stack=0x7f, stack_size=0x9000}, 88) = 102
102 write(2, "z", 1)                 = 1
100 renameat(4, ".b.tmp-100-0", 4, "b") = 0
100 kill(102, 0)                    = 0
100 kill(102, SIGTERM)              = 0
100 --- SIGCHLD {si_signo=SIGCHLD} ---
100 +++ exited with 0 +++
"#;

    #[test]
    fn a_recording_gives_one_point_per_name_and_count_at_the_first_process_to_reach_it() {
        let recording = parse(TRACE);
        assert_eq!(recording.calls.len(), 9, "{recording:?}");
        let all = Sampling { first: 100, every: 1 };
        let kills: Vec<String> =
            points(&recording, Inject::Kill, all).iter().map(|(p, c)| format!("{p} {}", c.name)).collect();
        assert_eq!(
            kills,
            [
                "kill:clone3:1 clone3",
                "kill:kill:2 kill",
                "kill:openat:2 openat",
                "kill:renameat:1 renameat",
                "kill:write:1 write"
            ]
        );
        // The first write of every process is hit at once: the one in time is pid 100's.
        let errors = points(&recording, Inject::Eio, all);
        assert_eq!(errors.len(), 2);
        assert_eq!(errors[1].1.text, "(4, \"x\", 1 <unfinished ...>");
    }

    #[test]
    fn sampling_keeps_the_first_then_every_kth_and_the_last_of_each_name() {
        let mut text = String::new();
        for i in 0..10 {
            let _ = write!(text, "7 unlinkat(3, \"f{i}\", 0) = 0\n7 fsync(3) = 0\n");
        }
        let recording = parse(&text);
        let sampled = points(&recording, Inject::Kill, Sampling { first: 3, every: 4 });
        let ns = |name: &str| sampled.iter().filter(|(p, _)| p.syscall == name).map(|(p, _)| p.n).collect::<Vec<_>>();
        assert_eq!(ns("unlinkat"), [1, 2, 3, 4, 8, 10]);
        assert_eq!(ns("fsync"), [1, 2, 3, 4, 8, 10], "a name with its own count is sampled on its own");
        assert_eq!(Point::parse("EIO:fsync:8"), Some(Point { inject: Inject::Eio, syscall: "fsync".into(), n: 8 }));
    }
}
