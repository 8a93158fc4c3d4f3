//! A switch as one transaction: a generation made live on a running root, and the
//! boot default, as the mode says. `switch`, `rollback`, the fallback of a switch on
//! trial (`trial-expire`) and `repair` come through here; the command line only
//! parses and prints.
//!
//! One straight path, under the state lock:
//!
//! 1. **finish** what a killed or failed command left ([`Live::finish_pending`]);
//! 2. **plan and preflight**, changing nothing: the generation and the one active
//!    before (whose declaration must be readable), every persistent root a mounted
//!    volume, the `/etc` object re-hashing to its name, the `/etc` plan (owners
//!    resolve, conflicts refused if asked), the boot trial's fallback;
//! 3. **record** the transaction, durably, in `etc/.blankslate/transaction.json`:
//!    the generation, the one active before, the mode, the live trial;
//! 4. **trial**: the live trial armed, with its watcher (`--confirm-within`);
//! 5. **/etc** (journaled, see [`crate::etc`]);
//! 6. **persisted paths**: what is on record as mounted or the generation before
//!    declared, and this one does not, unmounted; this one's brought in;
//! 7. **commit**: the boot default moved (`switch`, `--boot`, `--tries`), a pending
//!    trial this switch replaces ended, the record removed.
//!
//! A failure in 4–6 is undone: the generation before is activated again (its /etc,
//! its persisted paths), the trial taken back, the record removed, and the error
//! says that nothing changed. A kill anywhere leaves the record: the next mutating
//! command on the root finishes the transaction, or undoes it if finishing is
//! impossible (a volume gone). The record lives in the root, so a reboot, which
//! starts from the boot default anyway, forgets it.

use std::path::{Path, PathBuf};
use std::time::Duration;

use blankslate_decl::{Declaration, UserDb};
use blankslate_etc_builder::{BuildError, EtcBuild};
use blankslate_persist::{PersistError, Report};
use blankslate_state::activation::{self, EtcGeneration, STATE_DIR, TRANSACTION_FILE};
use blankslate_state::diff::{GenerationDiff, Side};
use blankslate_state::generation::{Generation, GenerationError, LockedState, State};
use blankslate_state::manifest::Manifest;
use blankslate_state::trial_record::{BootTrial, LiveOutcome, LiveTrial, now};
use blankslate_state::verified::{record_verified, verified_this_boot};
use blankslate_sys::fs::{Dir, FsError};
use blankslate_sys::{failpoint, fs};
use serde::{Deserialize, Serialize};

use crate::etc::{self, Activated, EtcError, OnConflict, Outcome, Plan, Prepared};
use crate::trial::{self, Settled, TrialError, WatcherSetup};

/// The step name of a switch's phases, for `BLANKSLATE_FAILPOINT=switch#N`.
pub const FAILPOINT: &str = "switch";

#[derive(Debug, thiserror::Error)]
pub enum SwitchError {
    #[error(transparent)]
    Generation(#[from] GenerationError),
    #[error(transparent)]
    Etc(#[from] EtcError),
    #[error(transparent)]
    Persist(#[from] PersistError),
    #[error(transparent)]
    Trial(#[from] TrialError),
    #[error(transparent)]
    Fs(#[from] FsError),
    #[error(transparent)]
    Build(#[from] BuildError),
    #[error("generation {0} has no /etc part")]
    NoEtc(u32),
    #[error(
        "the /etc of generation {generation} (store object {object}) is damaged: {problem} (`blankslate store verify`)"
    )]
    Damaged { generation: u32, object: String, problem: String },
    #[error("cannot read {what}: {reason}")]
    BadRecord { what: String, reason: String },
    #[error("the system failed a persisted path: {}", .0.iter().map(|(path, why)| format!("{path}: {why}")).collect::<Vec<_>>().join("; "))]
    NotBroughtIn(Vec<(String, String)>),
    #[error("nothing is active yet; nothing to roll back from")]
    NothingActive,
    #[error("there is no generation before {0}")]
    NoneBefore(u32),
    #[error("nothing is active on this root to fall back to: switch without --confirm-within the first time")]
    NoFallback,
    #[error("generation {0} is what a fallback would activate: there is nothing to try")]
    NothingToTry(u32),
    #[error("nothing was active before generation {0}, so there is nothing to go back to")]
    NothingToUndoTo(u32),
    #[error("{failed}\nnothing changed: generation {previous} is active again")]
    Undone { failed: Box<SwitchError>, previous: u32 },
    #[error(
        "{failed}\nundoing the switch to generation {generation} failed too: {undo}\nthe next switch, rollback or repair finishes or undoes it"
    )]
    NotUndone { generation: u32, failed: Box<SwitchError>, undo: Box<SwitchError> },
    #[error(
        "{failed}\ngeneration {generation} is active; the rest of the switch (the boot default) is done by the next switch, rollback or repair"
    )]
    Unfinished { generation: u32, failed: Box<SwitchError> },
}

impl SwitchError {
    /// Whether the person asked for something that cannot be (a generation that does
    /// not exist, a trial with nothing to fall back to), rather than the work failing.
    pub fn is_request(&self) -> bool {
        matches!(
            self,
            SwitchError::NoFallback
                | SwitchError::NothingToTry(_)
                | SwitchError::Generation(GenerationError::NoSuchGeneration(_) | GenerationError::NoFallback(_))
        )
    }
}

pub type Result<T> = std::result::Result<T, SwitchError>;

/// When the generation takes effect.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    /// Now, and at every boot.
    Switch,
    /// Now only.
    Test,
    /// At the next boot only.
    Boot,
}

impl Mode {
    /// The mode as the command line names it (`--test`, `--boot`, or neither).
    pub fn name(self) -> &'static str {
        match self {
            Mode::Switch => "switch",
            Mode::Test => "test",
            Mode::Boot => "boot",
        }
    }

    pub fn describe(self) -> &'static str {
        match self {
            Mode::Switch => "activate now and make it the boot default",
            Mode::Test => "activate now, the boot default stays",
            Mode::Boot => "make it the boot default, activate nothing now",
        }
    }
}

/// The generation a switch goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wanted {
    Generation(u32),
    /// The one before the active one (`rollback`).
    Previous,
}

/// What a person asked a switch to do: the generation, and how.
#[derive(Debug, Clone, Copy)]
pub struct Request {
    pub wanted: Wanted,
    pub how: How,
}

/// How a switch goes, whichever generation it goes to.
#[derive(Debug, Clone, Copy)]
pub struct How {
    pub mode: Mode,
    pub on_conflict: OnConflict,
    /// Put the new boot default on trial for this many boots.
    pub tries: Option<u32>,
    /// Put the switch on trial: unless confirmed within this, it falls back by itself.
    pub confirm_within: Option<Duration>,
}

/// The transaction record: what a switch under way goes to and from.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Record {
    generation: u32,
    /// The generation active before: what an undo activates again.
    previous: Option<u32>,
    mode: Mode,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    tries: Option<u32>,
    /// The live trial the switch puts the generation on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    trial: Option<LiveTrial>,
    /// A pending trial that `trial` replaces: its watcher stops at the commit, and an
    /// undo puts its record back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    replaces: Option<LiveTrial>,
    /// The id of the trial whose fallback this switch is (`trial-expire`): its
    /// outcome is recorded with the commit, or the undo.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    reverts: Option<String>,
}

/// What a switch did.
#[derive(Debug)]
pub struct Switched {
    /// What was finished first.
    pub recovered: Recovered,
    pub generation: u32,
    pub mode: Mode,
    /// `/etc` and the persisted paths (none with `--boot`).
    pub activated: Option<(Outcome, Report)>,
    /// The live trial it is on.
    pub trial: Option<LiveTrial>,
    /// A pending trial it replaced, unconfirmed.
    pub ended: Option<LiveTrial>,
    /// The boot trial it started (`--tries`).
    pub boot_trial: Option<BootTrial>,
    /// The boot default now.
    pub boot_default: Option<u32>,
    /// The generation active now (with `--boot`, still the one before).
    pub active: Option<u32>,
}

/// What [`Live::finish_pending`] did about what an earlier command left.
#[derive(Debug, Default)]
pub struct Recovered {
    /// A switch killed or failed half-way: finished, or undone (and why).
    pub switch: Option<Finished>,
    /// An `/etc` activation (or repair) killed half-way outside a switch: the
    /// generation it was finished to.
    pub etc: Option<u32>,
    /// A confirmation killed half-way, carried out.
    pub confirmation: Option<Settled>,
}

#[derive(Debug)]
pub struct Finished {
    pub generation: u32,
    pub mode: Mode,
    /// `None`: finished. Otherwise it was undone, for this reason, back to `previous`.
    pub undone: Option<(String, u32)>,
}

/// What a repair did.
#[derive(Debug)]
pub struct Repaired {
    pub recovered: Recovered,
    pub generation: u32,
    pub etc: Activated,
    pub persisted: Report,
}

/// The root a command changes, with its state locked.
#[derive(Debug)]
pub struct Live<'a> {
    state: &'a LockedState,
    /// How a watcher of a trial runs this program again ([`WatcherSetup`]).
    exe: PathBuf,
    root: PathBuf,
    state_dir: PathBuf,
}

/// What the plan and preflight of a switch gathered.
struct Planned {
    etc: Prepared,
    declaration: Declaration,
    /// The persisted part of the generation active before, if it is another one.
    previous: Option<Declaration>,
    users: UserDb,
}

impl<'a> Live<'a> {
    pub fn new(state: &'a LockedState, setup: &WatcherSetup<'_>) -> Live<'a> {
        Live { state, exe: setup.exe.to_owned(), root: setup.root.to_owned(), state_dir: setup.state_dir.to_owned() }
    }

    fn setup(&self) -> WatcherSetup<'_> {
        WatcherSetup { exe: &self.exe, root: &self.root, state_dir: &self.state_dir }
    }

    fn root(&self) -> &Dir {
        self.state.root()
    }

    /// Finishes what a command that was killed or failed left on this root, before
    /// anything else changes it: temporaries of its records removed; a switch under
    /// way finished (or undone, if it cannot be); an `/etc` activation or repair
    /// finished; a confirmation carried out. Every command that changes a root calls
    /// it first.
    pub fn finish_pending(&self) -> Result<Recovered> {
        let mut recovered = Recovered { switch: self.finish_switch()?, ..Recovered::default() };
        recovered.etc = etc::recover(self.root(), self.state.store())?;
        recovered.confirmation = trial::settle(self.state)?;
        Ok(recovered)
    }

    fn finish_switch(&self) -> Result<Option<Finished>> {
        let Some(record) = tidy_records(self.root())? else { return Ok(None) };
        let finished = |undone| Finished { generation: record.generation, mode: record.mode, undone };
        if record.mode == Mode::Boot {
            self.commit(&record)?;
            return Ok(Some(finished(None)));
        }
        let done = etc::recover(self.root(), self.state.store())
            .map_err(SwitchError::from)
            .and_then(|_| Ok(self.state.generation(record.generation)?))
            .and_then(|generation| self.plan(&generation, record.previous, OnConflict::Backup))
            .and_then(|planned| self.apply(&record, planned));
        let Err(failed) = done else {
            self.commit(&record)?;
            return Ok(Some(finished(None)));
        };
        let reason = failed.to_string();
        match self.undo(&record, &reason) {
            Ok(previous) => Ok(Some(finished(Some((reason, previous))))),
            Err(undo) => Err(SwitchError::NotUndone {
                generation: record.generation,
                failed: Box::new(failed),
                undo: Box::new(undo),
            }),
        }
    }

    /// Switches as `request` says (see the module's documentation for the steps).
    pub fn switch(&self, request: &Request) -> Result<Switched> {
        let recovered = self.finish_pending()?;
        self.run(recovered, request, None)
    }

    /// `trial-expire`: if trial `id` is still pending, activates its previous
    /// generation again, records that (or why it failed), and returns the trial and
    /// what the switch did. `None` when there was nothing to do (confirmed, or
    /// replaced by another trial).
    /// Adds `declaration`, with its `/etc` built as `etc`, to the store as a generation
    /// (not current: the boot default moves only once the activation succeeded), and
    /// switches to it as `how` says. A switch on trial with nothing to fall back to is
    /// refused before anything is built.
    pub fn switch_to_declaration(&self, declaration: &Declaration, etc: &EtcBuild, how: How) -> Result<Switched> {
        if how.confirm_within.is_some() {
            trial_fallback(self.state)?;
        }
        let etc_object = etc.add_to_store(self.state.store())?;
        let built = self.state.add(declaration, &[("etc", &etc_object)])?;
        self.switch(&Request { wanted: Wanted::Generation(built.generation), how })
    }

    pub fn expire(&self, id: &str) -> Result<Option<(LiveTrial, Switched)>> {
        let recovered = self.finish_pending()?;
        let root = self.root();
        let Some(trial) = LiveTrial::read(root)?.filter(|t| t.id == id && t.is_pending()) else { return Ok(None) };
        let request = Request {
            wanted: Wanted::Generation(trial.previous),
            how: How { mode: Mode::Test, on_conflict: OnConflict::Backup, tries: None, confirm_within: None },
        };
        match self.run(recovered, &request, Some(id.to_owned())) {
            Ok(switched) => Ok(Some((trial, switched))),
            Err(error) => {
                record_reverted(root, id, Some(error.to_string()))?;
                Err(error)
            }
        }
    }

    fn run(&self, recovered: Recovered, request: &Request, reverts: Option<String>) -> Result<Switched> {
        let state = self.state;
        let previous = state.active_number();
        let number = match request.wanted {
            Wanted::Generation(number) => number,
            Wanted::Previous => before(state, previous)?,
        };
        let generation = state.generation(number)?;
        let mut record = Record {
            generation: number,
            previous,
            mode: request.how.mode,
            tries: request.how.tries,
            trial: None,
            replaces: None,
            reverts,
        };
        if let Some(tries) =
            request.how.tries.filter(|_| request.how.mode != Mode::Test && request.how.confirm_within.is_none())
        {
            state.boot_trial_for(number, tries)?;
        }
        let planned = match request.how.mode {
            Mode::Boot => None,
            Mode::Switch | Mode::Test => Some(self.plan(&generation, previous, request.how.on_conflict)?),
        };
        if let Some(within) = request.how.confirm_within {
            let pending = LiveTrial::read(self.root())?.filter(LiveTrial::is_pending);
            let fallback = fallback(pending.as_ref(), previous)?;
            if fallback == number {
                return Err(SwitchError::NothingToTry(number));
            }
            let make_default = request.how.mode == Mode::Switch;
            let trial_request = trial::Request {
                generation: number,
                previous: fallback,
                make_default,
                tries: request.how.tries,
                within,
            };
            record.trial = Some(trial::plan(trial_request));
            record.replaces = pending;
        }
        write_record(self.root(), &record)?;
        failpoint::hit(FAILPOINT);
        let activated = match planned {
            None => None,
            Some(planned) => match self.apply(&record, planned) {
                Ok(activated) => Some(activated),
                Err(failed) => return Err(self.undone(&record, failed)),
            },
        };
        let (trial, activated) = match activated {
            Some((trial, outcome, report)) => (trial, Some((outcome, report))),
            None => (None, None),
        };
        let (boot_trial, ended) = self
            .commit(&record)
            .map_err(|failed| SwitchError::Unfinished { generation: number, failed: Box::new(failed) })?;
        Ok(Switched {
            recovered,
            generation: number,
            mode: request.how.mode,
            activated,
            trial,
            ended,
            boot_trial,
            boot_default: match (request.how.mode, &record.trial) {
                (Mode::Switch | Mode::Boot, None) => Some(number),
                _ => state.current_number()?,
            },
            active: if request.how.mode == Mode::Boot { previous } else { Some(number) },
        })
    }

    /// Step 2: everything that can be known before anything changes. An `/etc`
    /// activation that was interrupted is finished before.
    fn plan(&self, generation: &Generation, previous: Option<u32>, on_conflict: OnConflict) -> Result<Planned> {
        let (state, root) = (self.state, self.root());
        let number = generation.number;
        let object = etc_object(state, generation)?;
        let declaration = state.persisted_declaration(generation)?;
        let previous = match previous.filter(|p| *p != number) {
            Some(previous) => Some(state.persisted_declaration(&state.generation(previous)?)?),
            None => None,
        };
        blankslate_persist::mounts::check_volumes(root, &declaration)?;
        let etc = etc::prepare(root, state.store(), number, &object, on_conflict)?;
        if let Prepared::Planned { plan, .. } = &etc {
            // Re-hashed before `/etc` points at it, once a boot (`verified`).
            if !plan.is_noop() && !verified_this_boot(root, &object) {
                if let Some(problem) = state.store().check_object(&object) {
                    return Err(SwitchError::Damaged { generation: number, object, problem });
                }
                // Without the record the next switch re-hashes it again: no harm.
                let _ = record_verified(root, &object);
            }
        }
        let users = etc::users_from_object(state.store(), root, &object)?;
        Ok(Planned { etc, declaration, previous, users })
    }

    /// Steps 4–6: the trial, `/etc`, the persisted paths. Each can be done again.
    fn apply(&self, record: &Record, planned: Planned) -> Result<(Option<LiveTrial>, Outcome, Report)> {
        let root = self.root();
        let trial = match &record.trial {
            Some(trial) => Some(self.ensure_armed(trial)?),
            None => None,
        };
        failpoint::hit(FAILPOINT);
        let outcome = etc::commit(self.state, planned.etc)?;
        failpoint::hit(FAILPOINT);
        let Planned { declaration, previous, users, .. } = planned;
        let report = blankslate_persist::bring_in(root, &declaration, &users, previous.as_ref())?;
        if !report.failed_by_system.is_empty() {
            let failed = report.conflicts.iter().filter(|(path, _)| report.failed_by_system.contains(path));
            return Err(SwitchError::NotBroughtIn(failed.cloned().collect()));
        }
        failpoint::hit(FAILPOINT);
        Ok((trial, outcome, report))
    }

    /// The live trial of the record, armed: as it is if it already is (a watcher
    /// recorded), else armed (again).
    fn ensure_armed(&self, trial: &LiveTrial) -> Result<LiveTrial> {
        let current = LiveTrial::read(self.root())?;
        if let Some(armed) = current.filter(|t| t.id == trial.id && t.is_pending() && t.watcher.is_some()) {
            return Ok(armed);
        }
        Ok(trial::arm(self.state, &self.setup(), trial.clone())?)
    }

    /// Step 7: the boot default and the trials, then the record goes. Each part can
    /// be done again.
    fn commit(&self, record: &Record) -> Result<(Option<BootTrial>, Option<LiveTrial>)> {
        let (state, root) = (self.state, self.root());
        let mut boot_trial = None;
        let mut ended = None;
        if let Some(id) = &record.reverts {
            record_reverted(root, id, None)?;
        } else if record.trial.is_some() {
            if let Some(replaced) = &record.replaces {
                trial::stop_watcher(replaced);
            }
        } else {
            if record.mode != Mode::Test {
                boot_trial = match record.tries {
                    Some(tries) => Some(state.start_boot_trial(record.generation, tries)?),
                    None => state.set_boot_default(record.generation, None)?,
                };
            }
            if record.mode != Mode::Boot {
                ended = trial::end(state)?;
            }
        }
        failpoint::hit(FAILPOINT);
        remove_record(root)?;
        Ok((boot_trial, ended))
    }

    /// An undo after `failed`, as the error to report.
    fn undone(&self, record: &Record, failed: SwitchError) -> SwitchError {
        match self.undo(record, &failed.to_string()) {
            Ok(previous) => SwitchError::Undone { failed: Box::new(failed), previous },
            Err(undo) => {
                SwitchError::NotUndone { generation: record.generation, failed: Box::new(failed), undo: Box::new(undo) }
            }
        }
    }

    /// Activates the generation active before the switch again (its `/etc`, its
    /// persisted paths, unmounting the switch's), takes back the switch's trial (a
    /// trial it replaced is put back; a fallback it was is recorded as failed, with
    /// `reason`), and removes the record. The boot default never moved: that is the
    /// commit's. Returns the generation active again.
    fn undo(&self, record: &Record, reason: &str) -> Result<u32> {
        let (state, root) = (self.state, self.root());
        let previous = record.previous.ok_or(SwitchError::NothingToUndoTo(record.generation))?;
        let generation = state.generation(previous)?;
        let object = etc_object(state, &generation)?;
        let declaration = state.persisted_declaration(&generation)?;
        let tried = state.persisted_declaration(&state.generation(record.generation)?)?;
        blankslate_persist::mounts::check_volumes(root, &declaration)?;
        etc::activate_generation(root, state.store(), previous, &object, OnConflict::Backup)?;
        let users = etc::users_from_object(state.store(), root, &object)?;
        blankslate_persist::bring_in(root, &declaration, &users, Some(&tried))?;
        if let Some(trial) = &record.trial {
            trial::stop_watcher(trial);
            match &record.replaces {
                Some(replaced) => replaced.write(root)?,
                None if LiveTrial::read(root)?.is_some_and(|t| t.id == trial.id) => LiveTrial::remove(root)?,
                None => {}
            }
        }
        if let Some(id) = &record.reverts {
            record_reverted(root, id, Some(reason.to_owned()))?;
        }
        remove_record(root)?;
        Ok(previous)
    }

    /// `repair`: brings the root back to the generation it was activated to, after
    /// finishing what was pending ([`etc::repair`], then the persisted paths, mounts on
    /// record that it does not declare unmounted). `None` when nothing is active.
    pub fn repair(&self) -> Result<Option<Repaired>> {
        let recovered = self.finish_pending()?;
        let (state, root) = (self.state, self.root());
        let Some(etc) = etc::repair(state)? else { return Ok(None) };
        let number = etc.plan.to.generation;
        let declaration = state.persisted_declaration(&state.generation(number)?)?;
        let users = etc::users_from_object(state.store(), root, &etc.plan.to.object)?;
        let persisted = blankslate_persist::repair(root, &declaration, &users)?;
        Ok(Some(Repaired { recovered, generation: number, etc, persisted }))
    }

    /// `confirm`, after finishing what was pending ([`trial::confirm`]).
    pub fn confirm(&self) -> Result<(Recovered, trial::Confirmed)> {
        let recovered = Recovered {
            switch: self.finish_switch()?,
            etc: etc::recover(self.root(), self.state.store())?,
            confirmation: None,
        };
        Ok((recovered, trial::confirm(self.state)?))
    }
}

/// The generation before `active` (`rollback`).
fn before(state: &State, active: Option<u32>) -> Result<u32> {
    let Some(active) = active.or(state.current_number()?) else { return Err(SwitchError::NothingActive) };
    let previous = state.list()?.into_iter().rev().find(|g| g.number < active);
    previous.map(|g| g.number).ok_or(SwitchError::NoneBefore(active))
}

/// What a switch on trial falls back to: a pending trial's own fallback, else the
/// generation active now.
fn fallback(pending: Option<&LiveTrial>, active: Option<u32>) -> Result<u32> {
    pending.map(|t| t.previous).or(active).ok_or(SwitchError::NoFallback)
}

/// What a switch on trial (`--confirm-within`) of a declaration not built yet would
/// fall back to: asked before it is built, so that nothing is.
fn trial_fallback(state: &State) -> Result<u32> {
    let pending = LiveTrial::read(state.root())?.filter(LiveTrial::is_pending);
    fallback(pending.as_ref(), state.active_number())
}

/// Records that the fallback of trial `id` happened (or failed, with `error`), if
/// the trial is still pending.
fn record_reverted(root: &Dir, id: &str, error: Option<String>) -> Result<()> {
    if let Some(mut trial) = LiveTrial::read(root)?.filter(|t| t.id == id && t.is_pending()) {
        trial.outcome = LiveOutcome::Reverted { at: now(), error };
        trial.write(root)?;
    }
    Ok(())
}

/// The store object of a generation's `/etc`.
pub fn etc_object(state: &State, generation: &Generation) -> Result<String> {
    state.part(generation, "etc")?.ok_or(SwitchError::NoEtc(generation.number))
}

/// Writes the record durably (temporary, fsync, rename, fsync of the directory).
fn write_record(root: &Dir, record: &Record) -> Result<()> {
    let dir = root.create_dir_all("etc", 0o755)?.create_dir_all(STATE_DIR, 0o700)?;
    dir.write_atomic(TRANSACTION_FILE, &serde_json::to_vec(record).expect("a record serializes"), 0o600)?;
    Ok(())
}

fn remove_record(root: &Dir) -> Result<()> {
    let dir = root.open_dir(activation::DIR)?;
    match dir.remove_file(TRANSACTION_FILE) {
        Err(error) if !error.is_not_found() => return Err(error.into()),
        _ => {}
    }
    dir.sync()?;
    Ok(())
}

/// Where blankslate keeps records in the root that an atomic write may have left a
/// temporary of (`.NAME.tmp-PID-N`) when it was killed.
const RECORD_DIRS: [&str; 2] = [activation::DIR, "run/blankslate"];

/// Removes the temporaries killed writers left beside the records (only under the
/// state lock: no writer is alive), and reads the switch on record, if any.
fn tidy_records(root: &Dir) -> Result<Option<Record>> {
    let mut record = None;
    for path in RECORD_DIRS {
        let dir = match root.open_dir(path) {
            Ok(dir) => dir,
            Err(error) if error.is_not_found() => continue,
            Err(error) => return Err(error.into()),
        };
        let mut removed = false;
        for (name, _) in dir.entries()? {
            if fs::is_temp_name(&name) {
                dir.remove_file(&name)?;
                removed = true;
            } else if path == activation::DIR && name == TRANSACTION_FILE {
                let bytes = dir.read(TRANSACTION_FILE)?;
                record = Some(serde_json::from_slice(&bytes).map_err(|e| SwitchError::BadRecord {
                    what: format!("/{}/{TRANSACTION_FILE}", activation::DIR),
                    reason: e.to_string(),
                })?);
            }
        }
        if removed {
            dir.sync()?;
        }
    }
    Ok(record)
}

/// What a switch would do, changing nothing (`--dry-run`).
#[derive(Debug)]
pub struct Preview {
    pub mode: Mode,
    /// The generation in effect (the active one; the boot default for `--boot`)
    /// against the one asked for.
    pub diff: GenerationDiff,
    /// What this root adds to it: the `/etc` plan (none for `--boot`).
    pub plan: Option<Plan>,
}

/// A declaration to preview a switch to before it is built: the declaration, its
/// `/etc` manifest and object name, and the owners its copies would get
/// ([`etc::users_from_contents`] its contents).
#[derive(Debug)]
pub struct Unbuilt<'a> {
    declaration: &'a Declaration,
    manifest: Manifest,
    object: String,
    users: UserDb,
}

impl<'a> Unbuilt<'a> {
    /// `declaration`, with its `/etc` built as `etc`, to be switched to on `root`.
    pub fn new(root: &Dir, declaration: &'a Declaration, etc: &EtcBuild) -> Result<Unbuilt<'a>> {
        let users = etc::users_from_contents(root, |name| etc.contents(name));
        Ok(Unbuilt { declaration, manifest: etc.manifest(), object: etc.object_name()?, users })
    }
}

/// The dry run of a switch (`mode`) on `root`, whose state (if any) is `state`, kept
/// in `state_dir`: to generation `wanted`, or to `unbuilt`. Reads only.
pub fn preview(
    root: &Dir,
    state: Option<&State>,
    state_dir: &Path,
    wanted: std::result::Result<Wanted, Unbuilt<'_>>,
    mode: Mode,
    on_conflict: OnConflict,
) -> Result<Preview> {
    let active = state.and_then(State::active_number);
    let in_effect = match (state, mode) {
        (Some(state), Mode::Boot) => state.current_number()?,
        _ => active,
    };
    let from = match (state, in_effect) {
        (Some(state), Some(number)) => Some(Loaded::generation(state, number)?),
        _ => None,
    };
    let (to, to_etc, users) = match wanted {
        Ok(wanted) => {
            let state = state.ok_or(SwitchError::NothingActive)?;
            let number = match wanted {
                Wanted::Generation(number) => number,
                Wanted::Previous => before(state, active)?,
            };
            let loaded = Loaded::generation(state, number)?;
            let to_etc = EtcGeneration::load(state.store(), number, &loaded.etc_object).map_err(EtcError::from)?;
            let users = etc::users_from_object(state.store(), root, &loaded.etc_object)?;
            (loaded, to_etc, users)
        }
        Err(unbuilt) => {
            let number = match state {
                Some(state) => state.number_for(unbuilt.declaration)?,
                None => 1,
            };
            let store = blankslate_state::generation::store_location(state_dir);
            let to_etc = EtcGeneration::new(&store, number, &unbuilt.object, unbuilt.manifest.clone());
            let users = unbuilt.users;
            let declaration = unbuilt.declaration.clone();
            let loaded = Loaded { number, declaration, manifest: unbuilt.manifest, etc_object: unbuilt.object };
            (loaded, to_etc, users)
        }
    };
    let (empty_declaration, empty_manifest) = (Declaration::default(), Manifest::new());
    let from_side = from
        .as_ref()
        .map_or(Side { generation: None, declaration: &empty_declaration, manifest: &empty_manifest }, Loaded::side);
    let diff = GenerationDiff::between(from_side, to.side());
    let plan = match mode {
        Mode::Boot => None,
        Mode::Switch | Mode::Test => {
            Some(etc::plan(root, state.map(State::store), to_etc, &|| users.clone(), on_conflict)?)
        }
    };
    Ok(Preview { mode, diff, plan })
}

/// A generation's declaration and `/etc` manifest, read from the store.
#[derive(Debug)]
pub struct Loaded {
    pub number: u32,
    pub declaration: Declaration,
    pub manifest: Manifest,
    pub etc_object: String,
}

impl Loaded {
    pub fn generation(state: &State, number: u32) -> Result<Loaded> {
        let generation = state.generation(number)?;
        let bad = |reason: String| GenerationError::BadDeclaration { generation: number, reason };
        let declaration =
            Declaration::from_canonical_json(&state.declaration_json(&generation)?).map_err(|e| bad(e.to_string()))?;
        let etc_object = etc_object(state, &generation)?;
        let manifest = EtcGeneration::load(state.store(), number, &etc_object).map_err(EtcError::from)?.manifest;
        Ok(Loaded { number, declaration, manifest, etc_object })
    }

    pub fn side(&self) -> Side<'_> {
        Side { generation: Some(self.number), declaration: &self.declaration, manifest: &self.manifest }
    }
}
