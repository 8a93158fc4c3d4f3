//! A `persist add` or `persist remove` carried into the generations: the change the
//! command made to the declaration file becomes part of the generation running and of
//! the next boot's, with no switch.

use std::path::Path;

use blankslate_decl::{self as decl, Declaration, LoadError};
use blankslate_state::activation::ActivationError;
use blankslate_state::generation::{GenerationError, LockedState};
use blankslate_sys::fs::Dir;

use crate::etc::{self, EtcError};

#[derive(Debug, thiserror::Error)]
pub enum CarryError {
    #[error(transparent)]
    Load(#[from] LoadError),
    #[error(transparent)]
    Activation(#[from] ActivationError),
    #[error(transparent)]
    Generation(#[from] GenerationError),
    #[error(transparent)]
    Declaration(#[from] serde_json::Error),
    #[error(transparent)]
    Etc(#[from] EtcError),
}

/// The generations a persist command made: each is an old one with the declaration
/// file's change (see [`carry_into_generations`]).
#[derive(Debug, Default)]
pub struct Carried {
    /// Generation `/etc` is activated to: (before, after).
    pub active: Option<(u32, u32)>,
    /// The current generation, the next boot's: (before, after).
    pub current: Option<(u32, u32)>,
    /// Nothing was ever built in the root: the declaration file alone holds the change.
    pub no_state: bool,
    /// The active generation changed but could not be recorded as such.
    pub not_relabelled: bool,
}

impl Carried {
    /// `self`, then `next`: from the first generation before to the last after.
    pub fn merge(&mut self, next: &Carried) {
        let span = |first: Option<(u32, u32)>, last: Option<(u32, u32)>| match (first, last) {
            (Some((from, _)), Some((_, to))) => Some((from, to)),
            (first, last) => last.or(first),
        };
        self.active = span(self.active, next.active);
        self.current = span(self.current, next.current);
        self.no_state |= next.no_state;
        self.not_relabelled = next.not_relabelled;
    }
}

/// Makes the change a persist command made to the declaration `file` (to `paths`: its
/// own, and those of interrupted commands it finished) part of the generation running
/// on `root`, the one `/etc` is activated to, and of the current one, the next boot's:
/// each gets exactly that change and nothing else of the file. So the audit, the next
/// boot and the file agree with what is mounted, with no further step. `state` is the
/// root's (locked), `None` when nothing was ever built there.
pub fn carry_into_generations(
    root: &Dir,
    state: Option<&LockedState>,
    file: &Path,
    paths: &[&str],
) -> Result<Carried, CarryError> {
    let Some(state) = state else {
        return Ok(Carried { no_state: true, ..Carried::default() });
    };
    let (file, _) = decl::load(file, None)?;
    let active = etc::active_record(root)?;
    let amend = |number: u32| -> Result<(u32, u32), CarryError> {
        let generation = state.generation(number)?;
        let declaration = Declaration::from_canonical_json(&state.declaration_json(&generation)?)?;
        let changed = paths.iter().fold(declaration, |d, path| d.with_path_from(&file, path));
        Ok((number, state.amend(&generation, &changed)?.generation))
    };
    let active_pair = active.as_ref().map(|a| amend(a.generation)).transpose()?;
    // Usually the same generation: amended once.
    let current_pair = match state.current_number()? {
        Some(number) if active_pair.is_some_and(|(from, _)| from == number) => active_pair,
        other => other.map(amend).transpose()?,
    };
    let mut carried = Carried { active: active_pair, current: current_pair, ..Carried::default() };
    if let Some((from, to)) = carried.active {
        // Also when `to` is active already: a relabel killed half-way is finished.
        let relabelled = etc::relabel(root, state.store(), to)?;
        carried.not_relabelled = !relabelled && from != to;
    }
    if let Some((from, to)) = carried.current {
        if from != to {
            // A boot default on trial stays on trial (`blankslate confirm` ends it).
            state.carry_current(from, to)?;
        }
    }
    Ok(carried)
}
