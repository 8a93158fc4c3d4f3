//! A live trial's watcher: what activates the previous generation again when nobody
//! confirms a switch in time, even after the session that started the switch is
//! gone (the network went down with the new generation, the terminal with it).
//!
//! - With systemd as PID 1 (and the live root `/`): a transient timer,
//!   `systemd-run --on-active=SECS`, whose service runs `blankslate trial-expire`.
//!   systemd owns it: no session, no terminal, no process of ours to lose.
//! - Elsewhere (an init without systemd, a scratch root in tests): `blankslate
//!   trial-expire --after SECS`, a child that calls `setsid()` before anything else,
//!   so it leads a session of its own with no controlling terminal: the hangup that
//!   ends the switch's session does not reach it. It says `armed` on a pipe once it
//!   is detached; the switch goes on only then. Its messages go to
//!   `/run/blankslate/trial.log`.
//!
//! Either way the watcher holds nothing but the trial's id: when it fires, it takes
//! the state lock and activates the previous generation only if the record still
//! names a pending trial with that id. A confirmation records itself first (the
//! trial is no longer pending, so the watcher could do nothing), then moves the boot
//! default, stops the watcher (found by the trial's id, so even one whose process id
//! was never recorded) and removes the record; the next command finishes a
//! confirmation that was killed half-way ([`settle`]).

use std::io::{BufRead as _, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use blankslate_state::generation::{GenerationError, LockedState, State};
use blankslate_state::trial_record::{BootRecord, BootTrial, LiveOutcome, LiveTrial, TrialAttempt, Watcher, now};

#[derive(Debug, thiserror::Error)]
pub enum TrialError {
    #[error(transparent)]
    Generation(#[from] GenerationError),
    #[error(transparent)]
    Fs(#[from] blankslate_sys::fs::FsError),
    #[error("cannot start the watcher that falls back if nobody confirms ({0}); nothing was switched")]
    Watcher(String),
    #[error("cannot read how long this boot has run from /proc/uptime: {0}")]
    Uptime(String),
}

pub type Result<T> = std::result::Result<T, TrialError>;

/// The systemd units of a trial are named after it.
pub fn unit_name(id: &str) -> String {
    format!("blankslate-trial-{id}")
}

/// Whether systemd runs this machine (as `sd_booted()` tells: `/run/systemd/system`).
fn systemd_is_init() -> bool {
    Path::new("/run/systemd/system").is_dir()
}

/// Where the watcher runs and how it reaches the state again.
#[derive(Debug, Clone)]
pub struct WatcherSetup<'a> {
    /// This program, which the watcher runs as `trial-expire`.
    pub exe: &'a Path,
    /// The root and state directory, as given on the command line.
    pub root: &'a Path,
    pub state_dir: &'a Path,
}

impl WatcherSetup<'_> {
    /// The `trial-expire` command line for trial `id`.
    fn expire_args(&self, id: &str) -> Vec<std::ffi::OsString> {
        let mut args: Vec<std::ffi::OsString> = vec!["trial-expire".into(), "--id".into(), id.into()];
        args.extend(["--root".into(), self.root.as_os_str().to_owned()]);
        args.extend(["--state-dir".into(), self.state_dir.as_os_str().to_owned()]);
        args
    }

    /// The `systemd-run` command line that fires `trial-expire` after `seconds`.
    pub fn systemd_run_args(&self, id: &str, seconds: u64) -> Vec<std::ffi::OsString> {
        let mut args: Vec<std::ffi::OsString> = vec![
            format!("--unit={}", unit_name(id)).into(),
            format!("--description=blankslate: fall back unless trial {id} is confirmed").into(),
            format!("--on-active={seconds}").into(),
            "--timer-property=AccuracySec=1s".into(),
            "--collect".into(),
            "--quiet".into(),
            self.exe.as_os_str().to_owned(),
        ];
        args.extend(self.expire_args(id));
        args
    }
}

/// A switch to put on trial.
#[derive(Debug, Clone, Copy)]
pub struct Request {
    /// The generation about to be activated.
    pub generation: u32,
    /// What is activated again unless it is confirmed.
    pub previous: u32,
    /// Whether a confirmation makes it the boot default.
    pub make_default: bool,
    /// The boot trial a confirmation starts, if any.
    pub tries: Option<u32>,
    /// How long a confirmation may take.
    pub within: Duration,
}

/// The record of a live trial for `request`, starting now, not armed yet.
pub fn plan(request: Request) -> LiveTrial {
    let Request { generation: number, previous, make_default, tries, within } = request;
    let started = now();
    let seconds = within.as_secs().max(1);
    LiveTrial {
        id: format!("{number}-{started}-{}", std::process::id()),
        generation: number,
        previous,
        make_default,
        tries,
        started,
        deadline: started.saturating_add(i64::try_from(seconds).unwrap_or(i64::MAX)),
        watcher: None,
        outcome: LiveOutcome::Pending,
    }
}

/// Starts the live trial `trial` (of a generation about to be activated, planned by
/// [`plan`]): records it in the root's `/run/blankslate` (replacing any other), then
/// arms the watcher that activates the previous generation again unless confirmed
/// by the deadline. Again for a trial recorded without its watcher (a switch killed
/// while starting it): a watcher it may have left is stopped first.
pub fn arm(state: &LockedState, setup: &WatcherSetup<'_>, mut trial: LiveTrial) -> Result<LiveTrial> {
    state.generation(trial.previous)?;
    stop_watcher(&trial);
    trial.watcher = None;
    trial.write(state.root())?;
    let seconds = u64::try_from(trial.deadline.saturating_sub(now())).unwrap_or(0).max(1);
    let watcher = if setup.root == Path::new("/") && systemd_is_init() {
        start_systemd(setup, &trial.id, seconds)
    } else {
        start_process(state, setup, &trial.id, seconds)
    };
    match watcher {
        Ok(watcher) => {
            trial.watcher = Some(watcher);
            trial.write(state.root())?;
            Ok(trial)
        }
        Err(reason) => {
            LiveTrial::remove(state.root())?;
            Err(TrialError::Watcher(reason))
        }
    }
}

fn start_systemd(setup: &WatcherSetup<'_>, id: &str, seconds: u64) -> std::result::Result<Watcher, String> {
    let output = Command::new("systemd-run")
        .args(setup.systemd_run_args(id, seconds))
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("systemd-run: {e}"))?;
    if !output.status.success() {
        return Err(format!("systemd-run: {}", String::from_utf8_lossy(&output.stderr).trim()));
    }
    Ok(Watcher::Systemd { unit: format!("{}.timer", unit_name(id)) })
}

/// The log of detached watchers, below the root.
pub const LOG: &str = "run/blankslate/trial.log";

fn start_process(
    state: &State,
    setup: &WatcherSetup<'_>,
    id: &str,
    seconds: u64,
) -> std::result::Result<Watcher, String> {
    let (dir, name) = LOG.rsplit_once('/').expect("the log has a directory");
    let log = state
        .root()
        .create_dir_all(dir, 0o755)
        .and_then(|dir| dir.open_append(name, 0o644))
        .map_err(|e| e.to_string())?;
    let mut child = Command::new(setup.exe)
        .args(setup.expire_args(id))
        .args(["--after", &seconds.to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::from(log))
        .spawn()
        .map_err(|e| format!("{}: {e}", setup.exe.display()))?;
    let mut line = String::new();
    let stdout = child.stdout.take().expect("stdout is piped");
    let read = BufReader::new(stdout).read_line(&mut line);
    if read.is_err() || line.trim() != "armed" {
        let _ = child.kill();
        let _ = child.wait();
        return Err(format!("the watcher did not start (see {LOG})"));
    }
    Ok(Watcher::Process { pid: child.id() })
}

/// Stops the watchers of `trial` that still run (their work is moot: the record is
/// gone, confirmed, or names another trial), found by the trial's id: its systemd
/// timer, or any `trial-expire` process of that id (but this one), each waited for
/// until it is gone (10 s at most), so that none runs once this returns. Best effort:
/// a watcher that fires anyway finds nothing to do.
pub fn stop_watcher(trial: &LiveTrial) {
    if let Some(Watcher::Systemd { unit }) = &trial.watcher {
        let _ = Command::new("systemctl").args(["stop", unit]).stdin(Stdio::null()).output();
    }
    let Ok(processes) = std::fs::read_dir("/proc") else { return };
    let me = rustix::process::getpid();
    let watches = |process: &std::fs::DirEntry| {
        let cmdline = std::fs::read(process.path().join("cmdline")).unwrap_or_default();
        let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
        args.windows(3).any(|w| w == [&b"trial-expire"[..], b"--id", trial.id.as_bytes()])
    };
    for process in processes.flatten() {
        let pid = process.file_name().to_str().and_then(|n| n.parse::<i32>().ok());
        let Some(pid) = pid.and_then(rustix::process::Pid::from_raw).filter(|pid| *pid != me) else { continue };
        if !watches(&process) {
            continue;
        }
        // The process this pid names from now on, asked again: a pid reused meanwhile
        // is not taken for the watcher.
        let Ok(process_fd) = rustix::process::pidfd_open(pid, rustix::process::PidfdFlags::empty()) else { continue };
        if watches(&process) && rustix::process::pidfd_send_signal(&process_fd, rustix::process::Signal::TERM).is_ok() {
            let mut gone = [rustix::event::PollFd::new(&process_fd, rustix::event::PollFlags::IN)];
            let _ = rustix::event::poll(&mut gone, Some(&rustix::event::Timespec { tv_sec: 10, tv_nsec: 0 }));
        }
    }
}

/// Ends a pending trial without a verdict (a plain switch replaces it): its record
/// goes and its watcher stops.
pub fn end(state: &LockedState) -> Result<Option<LiveTrial>> {
    let Some(trial) = LiveTrial::read(state.root())?.filter(LiveTrial::is_pending) else { return Ok(None) };
    LiveTrial::remove(state.root())?;
    stop_watcher(&trial);
    Ok(Some(trial))
}

/// This boot, an attempt of a generation whose boot trial waits for `blankslate
/// confirm`: what `blankslate boot-deadline` watches.
#[derive(Debug)]
pub struct BootAttempt {
    /// What boot recorded: the generation and which attempt of how many this is.
    pub record: BootRecord,
    /// Which attempt of how many (the record's).
    pub attempt: TrialAttempt,
    /// The trial, as on record when the watch began.
    pub trial: BootTrial,
}

impl BootAttempt {
    /// This boot's attempt, if boot recorded one (below the state's root) and that
    /// trial is still pending (not a trial started since, which this boot is no
    /// attempt of).
    pub fn of_this_boot(state: &State) -> Result<Option<BootAttempt>> {
        let Some(record) = BootRecord::read(state.root()) else { return Ok(None) };
        let Some(attempt) = record.trial else { return Ok(None) };
        Ok(Self::pending(state, &record)?.map(|trial| BootAttempt { record, attempt, trial }))
    }

    /// The trial `record` is an attempt of, while it waits for a confirmation.
    fn pending(state: &State, record: &BootRecord) -> Result<Option<BootTrial>> {
        if state.good_number()? == Some(record.generation) {
            return Ok(None);
        }
        Ok(state.pending_boot_trial()?.filter(|trial| record.is_attempt_of(trial)))
    }

    /// Waits, checking every `poll`, until this boot's trial is no longer pending
    /// (`None`: confirmed, or replaced by another boot default or another trial) or
    /// the kernel has run for `within` (the trial, still pending). Time is the
    /// kernel's boot clock (`/proc/uptime`), never the wall clock, which NTP may step
    /// forward during the very boot being watched.
    pub fn wait(&self, state: &State, within: Duration, poll: Duration) -> Result<Option<BootTrial>> {
        loop {
            let Some(trial) = Self::pending(state, &self.record)? else { return Ok(None) };
            let Some(left) = within.checked_sub(uptime()?).filter(|left| !left.is_zero()) else {
                return Ok(Some(trial));
            };
            std::thread::sleep(poll.min(left));
        }
    }
}

/// How long the kernel has run, suspended time included (`CLOCK_BOOTTIME`).
fn uptime() -> Result<Duration> {
    let text = std::fs::read_to_string("/proc/uptime").map_err(|e| TrialError::Uptime(e.to_string()))?;
    text.split_whitespace()
        .next()
        .and_then(|seconds| seconds.parse::<f64>().ok())
        .map(Duration::from_secs_f64)
        .ok_or_else(|| TrialError::Uptime(format!("unexpected contents {:?}", text.trim())))
}

/// Reboots the machine. Under systemd, cleanly (`systemctl reboot`: units stop, file
/// systems unmount), and by the kernel after `grace` if that has not happened by
/// then (systemd stops this process long before, if all goes well). Elsewhere the
/// kernel reboots at once, after a sync. Returns only if the kernel refused.
pub fn reboot(grace: Duration) -> std::io::Error {
    if systemd_is_init() {
        let asked = Command::new("systemctl").arg("reboot").stdin(Stdio::null()).status();
        if asked.is_ok_and(|status| status.success()) {
            std::thread::sleep(grace);
        }
    }
    rustix::fs::sync();
    match rustix::system::reboot(rustix::system::RebootCommand::Restart) {
        Ok(()) => std::io::Error::other("the kernel returned from a reboot"),
        Err(error) => error.into(),
    }
}

/// Leaves the session (and the terminal) of whoever started this process: `setsid`.
pub fn detach() -> std::io::Result<()> {
    rustix::process::setsid()?;
    Ok(())
}

/// Sleeps until `deadline` (seconds since the epoch) by the wall clock, so that time
/// spent suspended counts.
pub fn sleep_until(deadline: i64) {
    loop {
        let left = deadline - now();
        if left <= 0 {
            return;
        }
        std::thread::sleep(Duration::from_secs(u64::try_from(left.min(60)).unwrap_or(1)));
    }
}

/// What `blankslate confirm` did.
#[derive(Debug, Default)]
pub struct Confirmed {
    /// The live trial confirmed, if one was pending (or its confirmation under way).
    pub live: Option<Settled>,
    /// The booted generation, now marked good.
    pub good: Option<u32>,
    /// The booted generation amended since, on this boot's trial: marked good too.
    pub amended_good: Option<u32>,
}

/// A live trial's confirmation, carried out.
#[derive(Debug)]
pub struct Settled {
    pub trial: LiveTrial,
    /// The generation it made the boot default, if the switch said so.
    pub boot_default: Option<u32>,
    /// The boot trial its confirmation started (`--tries`).
    pub boot_trial: Option<BootTrial>,
}

/// `blankslate confirm`: this system works. A pending live trial is kept: its
/// confirmation is recorded first, then carried out ([`settle`]); the generation this
/// boot runs is marked good, which ends its boot trial.
pub fn confirm(state: &LockedState) -> Result<Confirmed> {
    let root = state.root();
    let mut confirmed = Confirmed::default();
    if let Some(mut trial) = LiveTrial::read(root)?.filter(LiveTrial::is_pending) {
        trial.outcome = LiveOutcome::Confirmed { at: now() };
        trial.write(root)?;
    }
    confirmed.live = settle(state)?;
    if let Some(booted) = BootRecord::read(root) {
        if state.generation(booted.generation).is_ok() {
            state.mark_good(booted.generation)?;
            confirmed.good = Some(booted.generation);
        }
        // This boot's trial, carried to the booted generation amended since (`persist
        // add`): that is what runs, and what is confirmed.
        if let Some(trial) = state.pending_boot_trial()?.filter(|trial| booted.is_attempt_of(trial)) {
            state.mark_good(trial.generation)?;
            confirmed.amended_good = Some(trial.generation);
        }
    }
    Ok(confirmed)
}

/// Carries out a live trial's recorded confirmation: what is active (the generation
/// tried, or the same amended by `persist add` meanwhile: a switch would have ended
/// or replaced the trial) becomes the boot default if the switch said so, the
/// watcher stops, the record goes. Each step can be done again, so a confirmation
/// killed half-way is finished by the next command. `None` when none is recorded.
pub fn settle(state: &LockedState) -> Result<Option<Settled>> {
    let root = state.root();
    let Some(trial) = LiveTrial::read(root)?.filter(|t| matches!(t.outcome, LiveOutcome::Confirmed { .. })) else {
        return Ok(None);
    };
    let mut settled = Settled { boot_default: None, boot_trial: None, trial };
    if let Some(active) = state.active_number().filter(|_| settled.trial.make_default) {
        settled.boot_trial = state.set_boot_default(active, settled.trial.tries)?;
        settled.boot_default = Some(active);
    }
    stop_watcher(&settled.trial);
    LiveTrial::remove(root)?;
    Ok(Some(settled))
}

#[cfg(test)]
mod tests {
    use blankslate_sys::fs::Dir;

    use super::*;

    /// A boot on trial whose generation `persist add` amended meanwhile: `confirm`
    /// marks the amended generation good too, so that its trial ends and no later boot
    /// (or boot deadline) falls back from what was confirmed.
    #[test]
    fn confirming_ends_this_boots_trial_carried_to_an_amended_generation() {
        let scratch = tempfile::tempdir().unwrap();
        let root = Dir::open_root(scratch.path()).unwrap();
        let state = State::open_locked(&root, Path::new(blankslate_state::generation::DEFAULT_STATE_DIR)).unwrap();
        for n in 0..3 {
            let text = format!("version = 1\n[persist.\"/persist\"]\ndirectories = [\"/d{n}\"]\n");
            let checked = blankslate_decl::check(Path::new("t.toml"), &text, None);
            state.build(&checked.declaration.unwrap(), &[]).unwrap();
        }
        state.set_current(1).unwrap();
        state.start_boot_trial(2, 2).unwrap();
        let attempt = state.boot_choice().unwrap().unwrap();
        state.commit_boot_choice(attempt).unwrap();
        let record = serde_json::to_vec(&BootRecord::of(attempt)).unwrap();
        root.create_dir_all("run/blankslate", 0o755).unwrap().write_atomic("boot.json", &record, 0o644).unwrap();
        state.carry_current(2, 3).unwrap();

        let confirmed = confirm(&state).unwrap();
        assert!(confirmed.live.is_none());
        assert_eq!((confirmed.good, confirmed.amended_good), (Some(2), Some(3)));
        assert_eq!(state.good_number().unwrap(), Some(3));
        assert_eq!(state.pending_boot_trial().unwrap(), None);
    }

    #[test]
    fn the_systemd_timer_runs_trial_expire_for_this_root_after_the_delay() {
        let setup = WatcherSetup {
            exe: Path::new("/usr/bin/blankslate"),
            root: Path::new("/"),
            state_dir: Path::new("/var/lib/blankslate"),
        };
        let args: Vec<String> =
            setup.systemd_run_args("2-100-7", 300).iter().map(|a| a.to_string_lossy().into_owned()).collect();
        assert_eq!(
            args,
            [
                "--unit=blankslate-trial-2-100-7",
                "--description=blankslate: fall back unless trial 2-100-7 is confirmed",
                "--on-active=300",
                "--timer-property=AccuracySec=1s",
                "--collect",
                "--quiet",
                "/usr/bin/blankslate",
                "trial-expire",
                "--id",
                "2-100-7",
                "--root",
                "/",
                "--state-dir",
                "/var/lib/blankslate",
            ]
        );
    }
}
