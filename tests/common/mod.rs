//! What the binary's integration tests share: running `blankslate` and reading its
//! output, and waiting for children with a deadline, so that a test that would hang
//! fails instead.

// Each test crate uses a part of this module.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use blankslate_test_support::Scratch;

/// How long a test waits for a child (a command, a namespace session) before it kills
/// it and fails. Far above what any of them takes, even on a loaded machine.
pub const DEADLINE: Duration = Duration::from_secs(300);

/// Runs the binary with `env` added, never with a failpoint or colour from outside.
pub fn blankslate_env(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_blankslate"));
    command.args(args).env_remove("BLANKSLATE_FAILPOINT").env("NO_COLOR", "1");
    for (key, value) in env {
        command.env(key, value);
    }
    output(&mut command)
}

/// The binary run on a scratch root: `blankslate ARGS --root ROOT`.
pub trait OnRoot {
    /// Runs the binary with `--root` the scratch root.
    fn run(&self, args: &[&str]) -> Output {
        self.run_env(args, &[])
    }

    /// [`OnRoot::run`] with `env` added.
    fn run_env(&self, args: &[&str], env: &[(&str, &str)]) -> Output;

    /// Runs a command that must succeed; returns its standard output.
    fn ok(&self, args: &[&str]) -> String {
        let output = self.run(args);
        assert!(output.status.success(), "{args:?}: {}{}", stdout(&output), stderr(&output));
        stdout(&output)
    }
}

impl OnRoot for Scratch {
    fn run_env(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        let mut all = args.to_vec();
        all.extend(["--root", self.root_str()]);
        blankslate_env(&all, env)
    }
}

/// `blankslate generations list --json` of `root`.
pub fn generations(root: &str) -> serde_json::Value {
    let output = blankslate_env(&["generations", "list", "--json", "--root", root], &[]);
    assert!(output.status.success(), "{}", stderr(&output));
    serde_json::from_slice(&output.stdout).unwrap()
}

/// The current generation of `root`, if any.
pub fn current_generation(root: &str) -> Option<u64> {
    let list = generations(root);
    list.as_array()?.iter().find(|g| g["current"] == true).map(|g| g["generation"].as_u64().unwrap())
}

pub fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// `Command::output` with a deadline: standard input empty, standard output and error
/// captured; a child still running after [`DEADLINE`] is killed and the test fails.
pub fn output(command: &mut Command) -> Output {
    let shown = format!("{command:?}");
    output_within(command, DEADLINE).unwrap_or_else(|| panic!("{shown} still running after {DEADLINE:?}: killed"))
}

/// [`output`] for a child that may hang, as one under test can: `None` once
/// `deadline` passes (the child is killed then; what it printed is dropped, since a
/// process it started may still hold its output open).
pub fn output_within(command: &mut Command, deadline: Duration) -> Option<Output> {
    let mut child = Running::spawn(command.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()));
    let (send, receive) = mpsc::channel();
    for (index, stream) in [
        child.0.stdout.take().map(|s| Box::new(s) as Box<dyn Read + Send>),
        child.0.stderr.take().map(|s| Box::new(s) as Box<dyn Read + Send>),
    ]
    .into_iter()
    .enumerate()
    {
        let send = send.clone();
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            if let Some(mut stream) = stream {
                let _ = stream.read_to_end(&mut bytes);
            }
            let _ = send.send((index, bytes));
        });
    }
    let status = child.wait_within(deadline)?;
    let end = Instant::now() + deadline;
    let mut streams = [Vec::new(), Vec::new()];
    for _ in 0..2 {
        let (index, bytes) = receive.recv_timeout(end.saturating_duration_since(Instant::now())).ok()?;
        streams[index] = bytes;
    }
    let [stdout, stderr] = streams;
    Some(Output { status, stdout, stderr })
}

/// A child that is killed if the test ends (or fails) before it does.
#[derive(Debug)]
pub struct Running(pub Child);

impl Running {
    pub fn spawn(command: &mut Command) -> Running {
        Running(command.spawn().unwrap_or_else(|e| panic!("cannot run {command:?}: {e}")))
    }

    /// Waits for the child's end; kills it and fails the test after `deadline`.
    pub fn wait(&mut self, deadline: Duration) -> ExitStatus {
        let id = self.0.id();
        self.wait_within(deadline).unwrap_or_else(|| panic!("child {id} still running after {deadline:?}: killed"))
    }

    /// Waits for the child's end; `None` after `deadline`, the child killed then.
    pub fn wait_within(&mut self, deadline: Duration) -> Option<ExitStatus> {
        let end = Instant::now() + deadline;
        let mut pause = Duration::from_millis(1);
        loop {
            if let Some(status) = self.0.try_wait().expect("wait for a child") {
                return Some(status);
            }
            if Instant::now() >= end {
                let _ = self.0.kill();
                let _ = self.0.wait();
                return None;
            }
            std::thread::sleep(pause);
            pause = (pause * 2).min(Duration::from_millis(20));
        }
    }

    /// The lines the child prints on its standard output (which must be piped).
    pub fn lines(&mut self) -> Lines {
        Lines::of(self.0.stdout.take().expect("a piped standard output"))
    }

    /// The lines the child prints on its standard error (which must be piped).
    pub fn error_lines(&mut self) -> Lines {
        Lines::of(self.0.stderr.take().expect("a piped standard error"))
    }
}

impl Lines {
    fn of(stream: impl Read + Send + 'static) -> Lines {
        let (send, receive) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stream).lines() {
                let Ok(line) = line else { break };
                if send.send(line).is_err() {
                    break;
                }
            }
        });
        Lines(receive)
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if matches!(self.0.try_wait(), Ok(None)) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// A child's output, line by line, each waited for with a deadline.
#[derive(Debug)]
pub struct Lines(Receiver<String>);

impl Lines {
    /// The lines up to and including the first that `last` accepts; fails the test if
    /// the output ends first or `deadline` passes.
    pub fn until(&self, deadline: Duration, last: impl Fn(&str) -> bool) -> Vec<String> {
        let end = Instant::now() + deadline;
        let mut seen = Vec::new();
        loop {
            match self.0.recv_timeout(end.saturating_duration_since(Instant::now())) {
                Ok(line) => {
                    let done = last(&line);
                    seen.push(line);
                    if done {
                        return seen;
                    }
                }
                Err(RecvTimeoutError::Timeout) => panic!("no such line after {deadline:?}; seen: {seen:#?}"),
                Err(RecvTimeoutError::Disconnected) => panic!("the output ended first; seen: {seen:#?}"),
            }
        }
    }

    /// Every line until the output ends; fails the test after `deadline`.
    pub fn rest(&self, deadline: Duration) -> Vec<String> {
        let end = Instant::now() + deadline;
        let mut seen = Vec::new();
        loop {
            match self.0.recv_timeout(end.saturating_duration_since(Instant::now())) {
                Ok(line) => seen.push(line),
                Err(RecvTimeoutError::Disconnected) => return seen,
                Err(RecvTimeoutError::Timeout) => panic!("the output did not end within {deadline:?}: {seen:#?}"),
            }
        }
    }
}

/// `name` on PATH; `None` (after a note) if it is missing and not required: with
/// `BLANKSLATE_REQUIRE_TOOLS` set (`.ci/run` sets it after installing every tool the
/// tests check with), a missing tool fails the test instead.
pub fn tool(name: &str) -> Option<PathBuf> {
    let found = std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|dir| dir.join(name))
        .find(|path| path.is_file());
    if found.is_none() {
        assert!(std::env::var_os("BLANKSLATE_REQUIRE_TOOLS").is_none(), "{name} is required but not on PATH");
        eprintln!("skipped: {name} is not installed (.ci/run installs it)");
    }
    found
}
