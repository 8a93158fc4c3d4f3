//! The generation a live root runs, read whole: what the audit, `persist sync`, `etc
//! keep` and the net start from.

use std::path::{Path, PathBuf};

use blankslate_decl::{Declaration, UserDb};
use blankslate_state::activation::ActivationError;
use blankslate_state::generation::{Generation, GenerationError, State};
use blankslate_sys::fs::{Dir, FsError};

use crate::etc::{self, EtcError, EtcGeneration};

/// The generation a live root runs: the one its /etc was activated to (or the one
/// asked for, or else the current one), with its declaration, its /etc and the owner
/// names it knows.
#[derive(Debug)]
pub struct Running {
    pub state: State,
    /// The generation /etc was activated to, whichever one was asked for.
    pub active: Option<u32>,
    pub number: u32,
    pub generation: Generation,
    pub declaration: Declaration,
    pub etc: Option<EtcGeneration>,
    pub users: UserDb,
}

/// Why the running generation could not be read.
#[derive(Debug, thiserror::Error)]
pub enum RunningError {
    /// The root has no blankslate state at all ([`Running::read_built`]).
    #[error("no blankslate state in {}: nothing was ever built there", .0.display())]
    NoState(PathBuf),
    /// The state has no generation to run.
    #[error("no generation yet: `blankslate build DECL` makes the first")]
    NoGeneration,
    /// The generation asked for by number cannot be read (it may not exist: the
    /// asker's mistake, see [`RunningError::is_request`]).
    #[error(transparent)]
    Asked(GenerationError),
    #[error(transparent)]
    Fs(#[from] FsError),
    #[error(transparent)]
    Generation(#[from] GenerationError),
    #[error(transparent)]
    Declaration(#[from] serde_json::Error),
    #[error(transparent)]
    Activation(#[from] ActivationError),
    #[error(transparent)]
    Etc(#[from] EtcError),
}

impl RunningError {
    /// Whether the generation asked for does not exist: the asker's mistake, not a
    /// failure.
    pub fn is_request(&self) -> bool {
        matches!(self, RunningError::Asked(GenerationError::NoSuchGeneration(_)))
    }
}

impl Running {
    /// Reads the generation `root` runs (`wanted`, if given); `None` when the root
    /// has no state at all. Its owners are those of its /etc, or else the root's
    /// `/etc/passwd` and `/etc/group`.
    pub fn read(root_path: &Path, state_dir: &Path, wanted: Option<u32>) -> Result<Option<Running>, RunningError> {
        let root = Dir::open_root(root_path)?;
        let Some(state) = State::open_existing(&root, state_dir)? else { return Ok(None) };
        let active = state.active_number();
        let Some(number) = wanted.or(active).or(state.current_number()?) else {
            return Err(RunningError::NoGeneration);
        };
        let generation = match wanted {
            Some(_) => state.generation(number).map_err(RunningError::Asked)?,
            None => state.generation(number)?,
        };
        let declaration = Declaration::from_canonical_json(&state.declaration_json(&generation)?)?;
        let etc = match state.part(&generation, "etc")? {
            Some(object) => Some(EtcGeneration::load(state.store(), number, &object)?),
            None => None,
        };
        let users = match &etc {
            Some(etc) => etc::users_from_object(state.store(), &root, &etc.object)?,
            None => root_users(root_path).unwrap_or_else(|| UserDb::from_texts("", "", "/etc/passwd")),
        };
        Ok(Some(Running { state, active, number, generation, declaration, etc, users }))
    }

    /// [`Running::read`], where a root without any state is an error: for commands
    /// that have nothing to work on there.
    pub fn read_built(root_path: &Path, state_dir: &Path, wanted: Option<u32>) -> Result<Running, RunningError> {
        Running::read(root_path, state_dir, wanted)?.ok_or_else(|| RunningError::NoState(root_path.to_path_buf()))
    }
}

/// The owner names a root knows, if its /etc/passwd can be read.
pub fn root_users(root: &Path) -> Option<UserDb> {
    let users = UserDb::from_root(&Dir::open_root(root).ok()?);
    (!users.is_empty()).then_some(users)
}
