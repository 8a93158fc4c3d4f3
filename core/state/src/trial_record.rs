//! Switching with confidence: a generation on trial must prove itself, or the system
//! goes back by itself.
//!
//! - **A boot trial** (`switch --tries N`): the boot default is tried at most N
//!   boots. Its record, `boot-trial.json`, lives in the state directory on the
//!   persistent volume, next to `profiles/current`, because boot must count an
//!   attempt *before* the generation runs (a boot that hangs or loses power still
//!   counts) and nothing else survives a reboot. Boot writes it, atomically and
//!   durably, only after the chosen generation's store objects checked out. A boot
//!   that reaches the mark the person chose (`blankslate confirm`, say from a unit
//!   ordered after what must work) marks its generation good (`profiles/good`) and
//!   ends the trial. After N attempts, boot marks the trial failed, moves the boot
//!   default back to the fallback (the last good generation) and boots that.
//! - **A live trial** (`switch --confirm-within T`): the generation is activated at
//!   once, and unless `blankslate confirm` comes within T, a watcher that outlives the
//!   command's session activates the generation that was active before. Its record,
//!   `/run/blankslate/trial.json`, lives in the root's `/run`: a reboot ends it, and
//!   boots the boot default, which a live trial moves only once confirmed.

use serde::{Deserialize, Serialize};

use crate::generation::{GenerationError, LockedState, Result, State};
use blankslate_sys::fs::{Dir, FsError};

/// The boot trial's record, in the state directory.
pub const BOOT_TRIAL_FILE: &str = "boot-trial.json";
/// The live trial's record, below the root.
pub const LIVE_TRIAL: &str = "run/blankslate/trial.json";
/// The boot's record (written by boot, below the root).
pub const BOOT_RECORD: &str = "run/blankslate/boot.json";

/// This blankslate's version.
const VERSION: &str = env!("CARGO_PKG_VERSION");

/// A boot default on trial.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BootTrial {
    pub generation: u32,
    /// How many boots it gets.
    pub tries: u32,
    /// How many boots started it so far (counted before it ran).
    pub attempts: u32,
    /// What boot falls back to: the last good generation when the trial began.
    pub fallback: u32,
    /// The attempts ran out (or its store objects were damaged), and boot fell back.
    #[serde(default)]
    pub failed: bool,
}

/// What boot does about the boot default.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BootChoice {
    /// No trial: boot it.
    Plain(u32),
    /// Attempt `attempt` of `tries` of a generation on trial, which falls back to
    /// `fallback`.
    Attempt { generation: u32, attempt: u32, tries: u32, fallback: u32 },
    /// The trial of `from` failed after `attempts` boots (or now): boot `to`.
    FallBack { from: u32, attempts: u32, to: u32 },
}

impl BootChoice {
    /// The generation this boot runs.
    pub fn generation(self) -> u32 {
        match self {
            BootChoice::Plain(generation) | BootChoice::Attempt { generation, .. } => generation,
            BootChoice::FallBack { to, .. } => to,
        }
    }
}

/// What the boot record (`/run/blankslate/boot.json`) says about trials.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct BootRecord {
    pub generation: u32,
    /// This boot was attempt `attempt` of `tries` of its generation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trial: Option<TrialAttempt>,
    /// This boot fell back from a generation whose trial failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fallback: Option<FallBack>,
    /// The version of the blankslate that booted (the initramfs's copy); none from one
    /// older than this field.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blankslate_version: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrialAttempt {
    pub attempt: u32,
    pub tries: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct FallBack {
    pub from: u32,
    pub attempts: u32,
}

impl BootRecord {
    /// Reads the boot record of `root`, if boot wrote one.
    pub fn read(root: &Dir) -> Option<BootRecord> {
        serde_json::from_slice(&root.read(BOOT_RECORD).ok()?).ok()
    }

    /// Whether this boot is the attempt `trial` counted last: the same attempt of the
    /// same number of tries (a trial carried to an amended generation keeps its count;
    /// one started since this boot has counted none).
    pub fn is_attempt_of(&self, trial: &BootTrial) -> bool {
        self.trial.is_some_and(|a| a.attempt == trial.attempts && a.tries == trial.tries)
    }

    /// The record of a boot by this blankslate.
    pub fn of(choice: BootChoice) -> BootRecord {
        let blankslate_version = Some(VERSION.to_owned());
        match choice {
            BootChoice::Plain(generation) => BootRecord { generation, blankslate_version, ..BootRecord::default() },
            BootChoice::Attempt { generation, attempt, tries, .. } => BootRecord {
                generation,
                trial: Some(TrialAttempt { attempt, tries }),
                fallback: None,
                blankslate_version,
            },
            BootChoice::FallBack { from, attempts, to } => BootRecord {
                generation: to,
                trial: None,
                fallback: Some(FallBack { from, attempts }),
                blankslate_version,
            },
        }
    }

    /// What to tell whoever switches this booted system with this blankslate, when the
    /// blankslate that booted it (the copy in the initramfs, which reads generations
    /// at the next boot) is another version.
    pub fn version_warning(&self) -> Option<String> {
        let booted = self.blankslate_version.as_deref();
        (booted != Some(VERSION)).then(|| {
            format!(
                "this system was booted by blankslate {} (the copy in its initramfs) and this is {VERSION}: \
                 rebuild the initramfs before the next boot (`/etc/kernel/postinst.d/zz-blankslate $(uname -r)`, \
                 or `dracut -f`), as an older one may not read what this one wrote",
                booted.unwrap_or("older than 0.1.0")
            )
        })
    }
}

/// Who waits for a live trial's deadline.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "kind")]
pub enum Watcher {
    /// A transient systemd timer (`systemd-run --on-active`), when systemd is PID 1.
    Systemd { unit: String },
    /// A process of its own session (`setsid`), elsewhere.
    Process { pid: u32 },
}

/// How a live trial ended, if it did without a confirmation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "state")]
pub enum LiveOutcome {
    Pending,
    /// `blankslate confirm` kept it at `at`, and is moving the boot default and
    /// stopping the watcher (the record goes once that is done): a confirmation whose
    /// command was killed, which the next command finishes.
    Confirmed {
        at: i64,
    },
    /// Not confirmed in time: `previous` was activated again at `at` (or that
    /// failed, with `error`).
    Reverted {
        at: i64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        error: Option<String>,
    },
}

/// A generation activated on trial, waiting for `blankslate confirm`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LiveTrial {
    /// Tells this trial apart from a later one (the watcher checks it).
    pub id: String,
    pub generation: u32,
    /// The generation activated again without a confirmation.
    pub previous: u32,
    /// Whether confirming makes it the boot default (`switch`, not `switch --test`).
    pub make_default: bool,
    /// The boot trial a confirmation starts (`--tries`), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tries: Option<u32>,
    /// Seconds since the epoch.
    pub started: i64,
    pub deadline: i64,
    pub watcher: Option<Watcher>,
    pub outcome: LiveOutcome,
}

impl LiveTrial {
    pub fn is_pending(&self) -> bool {
        self.outcome == LiveOutcome::Pending
    }

    /// The live trial recorded in `root`, if any.
    pub fn read(root: &Dir) -> std::result::Result<Option<LiveTrial>, FsError> {
        read_json(root, LIVE_TRIAL)
    }

    /// Records the trial in `root` (atomically).
    pub fn write(&self, root: &Dir) -> std::result::Result<(), FsError> {
        let (dir, name) = parent_and_name(LIVE_TRIAL);
        let json = serde_json::to_vec_pretty(self).expect("a trial serializes");
        root.create_dir_all(dir, 0o755)?.write_atomic(name, &json, 0o644)
    }

    /// Removes the record from `root` (a confirmation).
    pub fn remove(root: &Dir) -> std::result::Result<(), FsError> {
        let (dir, name) = parent_and_name(LIVE_TRIAL);
        match root.open_dir(dir).and_then(|dir| dir.remove_file(name)) {
            Err(error) if !error.is_not_found() => Err(error),
            _ => Ok(()),
        }
    }
}

fn parent_and_name(path: &str) -> (&str, &str) {
    path.rsplit_once('/').expect("record paths have a directory")
}

fn read_json<T: for<'de> Deserialize<'de>>(dir: &Dir, path: &str) -> std::result::Result<Option<T>, FsError> {
    match dir.read(path) {
        Ok(bytes) => Ok(serde_json::from_slice(&bytes).ok()),
        Err(error) if error.is_not_found() => Ok(None),
        Err(error) => Err(error),
    }
}

/// Seconds since the epoch, now.
pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

const GOOD: &str = "good";

/// The boot default and its trials, moved only by a writer.
impl LockedState {
    /// Marks generation `number` good: a boot into it reached the mark. Ends its boot
    /// trial, if it was on one.
    pub fn mark_good(&self, number: u32) -> Result<()> {
        self.generation(number)?;
        if self.good_number()? != Some(number) {
            self.set_link(GOOD, number)?;
        }
        if self.boot_trial()?.is_some_and(|t| t.generation == number && !t.failed) {
            self.dir().remove_file(BOOT_TRIAL_FILE)?;
            self.dir().sync()?;
        }
        Ok(())
    }

    /// Makes generation `number` the boot default on trial for `tries` boots, falling
    /// back to the last good generation (or, if none was ever marked good, to the
    /// boot default before). Done again (no boot since), it changes nothing: a command
    /// killed after it is finished by running it again.
    pub fn start_boot_trial(&self, number: u32, tries: u32) -> Result<BootTrial> {
        let (trial, started) = self.boot_trial_for(number, tries)?;
        if !started {
            self.set_current(number)?;
            self.write_boot_trial(&trial)?;
        }
        Ok(trial)
    }

    /// Makes generation `number` the boot default: on trial for `tries` boots if
    /// given ([`LockedState::start_boot_trial`]), else plainly ([`LockedState::set_current`]).
    pub fn set_boot_default(&self, number: u32, tries: Option<u32>) -> Result<Option<BootTrial>> {
        match tries {
            Some(tries) => self.start_boot_trial(number, tries).map(Some),
            // Already so: nothing to write (a no-op switch stays one).
            None if self.current_number()? == Some(number) && self.boot_trial()?.is_none() => Ok(None),
            None => self.set_current(number).map(|()| None),
        }
    }

    /// Moves the boot default from generation `from` to `to`, the same system with an
    /// amended declaration (as `persist add` makes): a boot trial of `from` goes on as
    /// a trial of `to`, with the attempts it used.
    pub fn carry_current(&self, from: u32, to: u32) -> Result<()> {
        let trial = self.boot_trial()?.filter(|t| t.generation == from && !t.failed);
        self.set_current(to)?;
        if let Some(trial) = trial {
            self.write_boot_trial(&BootTrial { generation: to, ..trial })?;
        }
        Ok(())
    }
}

impl State {
    /// The boot trial on record, if any (for any generation: one that failed stays on
    /// record until another trial begins).
    pub fn boot_trial(&self) -> Result<Option<BootTrial>> {
        Ok(read_json(self.dir(), BOOT_TRIAL_FILE)?)
    }

    fn write_boot_trial(&self, trial: &BootTrial) -> Result<()> {
        let json = serde_json::to_vec_pretty(trial).expect("a trial serializes");
        self.dir().write_atomic(BOOT_TRIAL_FILE, &json, 0o644)?;
        Ok(())
    }

    /// Forgets the boot trial on record unless it failed for another generation than
    /// `number` (kept, so that the failure can still be seen).
    pub(crate) fn end_boot_trial_for(&self, number: u32) -> Result<()> {
        match self.boot_trial()? {
            Some(trial) if trial.failed && trial.generation != number => Ok(()),
            Some(_) => {
                self.dir().remove_file(BOOT_TRIAL_FILE)?;
                self.dir().sync()?;
                Ok(())
            }
            None => Ok(()),
        }
    }

    /// The generation last marked good (`blankslate confirm` after a boot into it).
    pub fn good_number(&self) -> Result<Option<u32>> {
        self.link_number(GOOD)
    }

    /// The boot trial still waiting for `blankslate confirm`: not failed, its
    /// generation the boot default (a trial carried to an amended generation goes on;
    /// a switch to another one ends it) and not marked good yet.
    pub fn pending_boot_trial(&self) -> Result<Option<BootTrial>> {
        let Some(trial) = self.boot_trial()?.filter(|t| !t.failed) else { return Ok(None) };
        if self.current_number()? != Some(trial.generation) || self.good_number()? == Some(trial.generation) {
            return Ok(None);
        }
        Ok(Some(trial))
    }

    /// The boot trial [`LockedState::start_boot_trial`] would start, and whether it is
    /// started already; an error if there is nothing to fall back to (the fallback
    /// would be `number` itself). Changes nothing: a switch asks before it does.
    pub fn boot_trial_for(&self, number: u32, tries: u32) -> Result<(BootTrial, bool)> {
        let tries = tries.max(1);
        let same = |t: &BootTrial| t.generation == number && t.tries == tries && t.attempts == 0;
        if let Some(started) = self.pending_boot_trial()?.filter(same) {
            return Ok((started, true));
        }
        let fallback = match self.good_number()? {
            Some(good) => good,
            None => self.current_number()?.ok_or(GenerationError::NoFallback(number))?,
        };
        if fallback == number {
            return Err(GenerationError::NoFallback(number));
        }
        self.generation(fallback)?;
        Ok((BootTrial { generation: number, tries, attempts: 0, fallback, failed: false }, false))
    }

    /// What boot does: the boot default, or an attempt of it on trial, or the
    /// fallback once its attempts ran out. Reads only; [`State::commit_boot_choice`]
    /// records the choice.
    pub fn boot_choice(&self) -> Result<Option<BootChoice>> {
        let Some(current) = self.current_number()? else { return Ok(None) };
        Ok(Some(match self.boot_trial()? {
            Some(t) if t.generation == current && (t.failed || t.attempts >= t.tries) => {
                BootChoice::FallBack { from: current, attempts: t.attempts, to: t.fallback }
            }
            Some(t) if t.generation == current => BootChoice::Attempt {
                generation: current,
                attempt: t.attempts + 1,
                tries: t.tries,
                fallback: t.fallback,
            },
            _ => BootChoice::Plain(current),
        }))
    }

    /// Records, durably, what boot chose, before the generation runs: one attempt
    /// more; or the trial failed and the boot default back on the fallback (in that
    /// order, so that a crash between the two falls back again at the next boot).
    pub fn commit_boot_choice(&self, choice: BootChoice) -> Result<()> {
        let Some(mut trial) = self.boot_trial()? else { return Ok(()) };
        match choice {
            BootChoice::Plain(_) => {}
            BootChoice::Attempt { attempt, .. } => {
                trial.attempts = attempt;
                self.write_boot_trial(&trial)?;
            }
            BootChoice::FallBack { to, .. } => {
                if !trial.failed {
                    trial.failed = true;
                    self.write_boot_trial(&trial)?;
                }
                self.set_link(crate::generation::CURRENT, to)?;
            }
        }
        Ok(())
    }

    /// The generation a trial's fallback protects, and the good one: neither may be
    /// deleted.
    pub(crate) fn protected_by_trials(&self) -> Result<Vec<u32>> {
        let mut out: Vec<u32> = self.good_number()?.into_iter().collect();
        if let Some(trial) = self.boot_trial()? {
            if !trial.failed {
                out.push(trial.fallback);
            }
        }
        if let Some(live) = LiveTrial::read(self.root())? {
            if live.is_pending() {
                out.push(live.previous);
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::generation::DEFAULT_STATE_DIR;

    fn state_with(generations: u32) -> (tempfile::TempDir, LockedState) {
        let scratch = tempfile::tempdir().unwrap();
        let root = Dir::open_root(scratch.path()).unwrap();
        let state = State::open_locked(&root, Path::new(DEFAULT_STATE_DIR)).unwrap();
        for n in 0..generations {
            let text = format!("version = 1\n[persist.\"/persist\"]\ndirectories = [\"/d{n}\"]\n");
            let declaration = blankslate_decl::check(Path::new("t.toml"), &text, None).declaration.unwrap();
            state.build(&declaration, &[]).unwrap();
        }
        (scratch, state)
    }

    /// A new boot default ends a pending trial of another; one that failed stays on
    /// record, to be seen, and does not apply to what is booted next.
    #[test]
    fn moving_the_boot_default_ends_a_pending_trial_and_keeps_a_failed_one() {
        let (_scratch, state) = state_with(3);
        state.set_current(1).unwrap();
        let trial = state.start_boot_trial(2, 2).unwrap();
        assert_eq!((trial.fallback, state.current_number().unwrap()), (1, Some(2)));
        state.set_current(3).unwrap();
        assert_eq!(state.boot_trial().unwrap(), None, "a pending trial of 2 ends");
        assert_eq!(state.boot_choice().unwrap(), Some(BootChoice::Plain(3)));

        state.mark_good(3).unwrap();
        state.start_boot_trial(2, 1).unwrap();
        let attempt = state.boot_choice().unwrap().unwrap();
        assert_eq!(attempt, BootChoice::Attempt { generation: 2, attempt: 1, tries: 1, fallback: 3 });
        state.commit_boot_choice(attempt).unwrap();
        let fall_back = state.boot_choice().unwrap().unwrap();
        assert_eq!(fall_back, BootChoice::FallBack { from: 2, attempts: 1, to: 3 });
        state.commit_boot_choice(fall_back).unwrap();
        state.set_current(1).unwrap();
        assert!(state.boot_trial().unwrap().is_some_and(|t| t.failed && t.generation == 2), "kept");
        assert_eq!(state.boot_choice().unwrap(), Some(BootChoice::Plain(1)));
        state.set_current(2).unwrap();
        assert_eq!(state.boot_trial().unwrap(), None, "choosing 2 again by hand forgets its failure");
        assert_eq!(state.boot_choice().unwrap(), Some(BootChoice::Plain(2)));
    }

    /// A boot default amended (by `persist add`) keeps its trial, attempts and all.
    #[test]
    fn an_amended_boot_default_stays_on_trial() {
        let (_scratch, state) = state_with(3);
        state.set_current(1).unwrap();
        state.start_boot_trial(2, 3).unwrap();
        state.commit_boot_choice(state.boot_choice().unwrap().unwrap()).unwrap();
        state.carry_current(2, 3).unwrap();
        assert_eq!(state.current_number().unwrap(), Some(3));
        let trial = state.boot_trial().unwrap().unwrap();
        assert_eq!((trial.generation, trial.attempts, trial.tries, trial.fallback), (3, 1, 3, 1));
    }

    /// What the boot deadline waits for: pending until confirmed, carried along with an
    /// amended boot default, over once failed or once the boot default moved elsewhere.
    #[test]
    fn a_boot_trial_is_pending_until_confirmed_failed_or_replaced() {
        let (_scratch, state) = state_with(3);
        state.set_current(1).unwrap();
        assert_eq!(state.pending_boot_trial().unwrap(), None, "no trial");
        state.start_boot_trial(2, 2).unwrap();
        assert!(state.pending_boot_trial().unwrap().is_some_and(|t| t.generation == 2));
        state.mark_good(2).unwrap();
        assert_eq!(state.pending_boot_trial().unwrap(), None, "confirmed");

        state.start_boot_trial(3, 1).unwrap();
        state.carry_current(3, 1).unwrap();
        assert!(state.pending_boot_trial().unwrap().is_some_and(|t| t.generation == 1), "carried");
        let attempt = state.boot_choice().unwrap().unwrap();
        state.commit_boot_choice(attempt).unwrap();
        state.commit_boot_choice(state.boot_choice().unwrap().unwrap()).unwrap();
        assert_eq!(state.pending_boot_trial().unwrap(), None, "failed: boot fell back");

        state.start_boot_trial(3, 1).unwrap();
        state.set_current(1).unwrap();
        assert_eq!(state.pending_boot_trial().unwrap(), None, "the boot default moved elsewhere");
    }

    /// The good generation and a pending trial's fallback are kept.
    #[test]
    fn a_fallback_cannot_be_deleted() {
        let (_scratch, state) = state_with(3);
        state.mark_good(1).unwrap();
        assert!(matches!(state.delete(1), Err(GenerationError::DeleteFallback(1))));
        state.set_current(2).unwrap();
        state.start_boot_trial(3, 2).unwrap();
        state.delete(2).unwrap();
        assert_eq!(state.good_number().unwrap(), Some(1));
    }
}
