//! A generation made live on a running root: its `/etc`, then its persisted paths.
//! `switch`, `rollback`, the fallback of an unconfirmed switch and `repair` all come
//! through here; none of them moves the boot default (the caller decides).

use blankslate_core::fs::Dir;
use blankslate_core::generation::{Generation, GenerationError, State};
use blankslate_persist::{PersistError, Report};

use crate::etc::{self, Activated, EtcError, OnConflict, Outcome};

#[derive(Debug, thiserror::Error)]
pub enum LiveError {
    #[error(transparent)]
    Generation(#[from] GenerationError),
    #[error(transparent)]
    Etc(#[from] EtcError),
    #[error(transparent)]
    Persist(#[from] PersistError),
    #[error("generation {0} has no /etc part")]
    NoEtc(u32),
}

pub type Result<T> = std::result::Result<T, LiveError>;

/// What activating a generation did.
#[derive(Debug)]
pub struct Switched {
    pub generation: u32,
    pub etc: Outcome,
    pub persisted: Report,
}

/// Activates generation `number` of `state` on `root`: `/etc` (a no-op reads only the
/// activation marker), then the persisted paths, unmounting those the generation
/// active before declared and this one does not. The boot default stays as it is.
/// The caller holds the state lock.
pub fn activate(state: &State, root: &Dir, number: u32, on_conflict: OnConflict) -> Result<Switched> {
    let generation = state.generation(number)?;
    let object = etc_object(state, &generation)?;
    let outcome = etc::activate_generation(root, state.store(), number, &object, on_conflict)?;
    let declaration = state.persisted_declaration(&generation)?;
    let previous = match outcome.plan().and_then(|plan| plan.from.as_ref()) {
        Some(from) if from.generation != number => {
            state.generation(from.generation).ok().and_then(|g| state.persisted_declaration(&g).ok())
        }
        _ => None,
    };
    let users = etc::users_of(state.store(), root, &object)?;
    let persisted = blankslate_persist::activate(root, &declaration, &users, previous.as_ref())?;
    Ok(Switched { generation: number, etc: outcome, persisted })
}

/// What a repair did (or, for `/etc` in a dry run, would do).
#[derive(Debug)]
pub struct Repaired {
    pub generation: u32,
    pub etc: Activated,
    /// `None` in a dry run.
    pub persisted: Option<Report>,
}

/// Brings `root` back to the generation it was activated to ([`etc::repair`], then
/// [`blankslate_persist::repair`]). With `dry_run`, plans `/etc` only and changes
/// nothing. `None` when nothing is active on `root`.
pub fn repair(state: &State, root: &Dir, dry_run: bool) -> Result<Option<Repaired>> {
    let Some(etc) = etc::repair(root, state.store(), dry_run)? else { return Ok(None) };
    let number = etc.plan.to.generation;
    let persisted = if dry_run {
        None
    } else {
        let generation = state.generation(number)?;
        let declaration = state.persisted_declaration(&generation)?;
        let users = etc::users_of(state.store(), root, &etc.plan.to.object)?;
        Some(blankslate_persist::repair(root, &declaration, &users)?)
    };
    Ok(Some(Repaired { generation: number, etc, persisted }))
}

/// The store object of a generation's `/etc`.
pub fn etc_object(state: &State, generation: &Generation) -> Result<String> {
    state.part(generation, "etc")?.ok_or(LiveError::NoEtc(generation.number))
}
