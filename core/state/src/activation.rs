//! The activation record: which generation `/etc` is activated to, kept inside the
//! root by the activator (`etc/.blankslate/`) and read by garbage collection, the
//! audit and the command line. It lives with the root, so it starts empty at boot
//! like everything else on the tmpfs.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::manifest::{MANIFEST_FILE, Manifest, TREE_DIR};
use crate::store::{Store, StoreError};
use blankslate_sys::fs::{Dir, FsError};

/// The record's directory inside `/etc`.
pub const STATE_DIR: &str = blankslate_decl::layout::ETC_STATE_DIR;
/// The record's directory inside the root.
pub const DIR: &str = "etc/.blankslate";
/// The generation `/etc` was last activated to, with its manifest.
pub const STATE_FILE: &str = "state.json";
/// Present only while an activation is under way: the generation it goes to.
pub const JOURNAL_FILE: &str = "journal.json";
/// The generation `/etc` was completely activated to, alone (see [`Marker`]): lets a
/// no-op re-activation stop before reading the state file, and anyone name the
/// active generation cheaply. Absent while an activation is under way.
pub const ACTIVE_FILE: &str = "active";
/// Present only while a switch is under way (written before its first change): what
/// it goes to and from, and how (see `blankslate_activator::switch`).
pub const TRANSACTION_FILE: &str = "transaction.json";
/// The persisted paths bind-mounted into the root, as persisted-path activation
/// recorded them (before mounting), so that a later switch or repair unmounts those no
/// generation declares any more.
pub const MOUNTS_FILE: &str = "mounts.json";
/// The link inside `/etc` to the generation's tree.
pub const STATIC: &str = blankslate_decl::layout::ETC_STATIC;

/// What a person's file at a declared `/etc` path is renamed to (then `.1`, `.2`, …).
pub const BACKUP_SUFFIX: &str = ".blankslate-backup";

#[derive(Debug, thiserror::Error)]
pub enum ActivationError {
    #[error(transparent)]
    Fs(#[from] FsError),
    #[error("store: {0}")]
    Store(#[from] StoreError),
    #[error("cannot read {what}: {reason}")]
    BadState { what: String, reason: String },
}

/// The generation `/etc` is (or is to be) made of.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EtcGeneration {
    pub generation: u32,
    /// The etc store object.
    pub object: String,
    /// Where `/etc/static` points: the object's tree as the live system sees it.
    pub static_target: String,
    pub manifest: Manifest,
}

impl EtcGeneration {
    /// Reads the manifest of the etc object `object` in `store`.
    pub fn load(store: &Store, generation: u32, object: &str) -> Result<EtcGeneration, ActivationError> {
        let dir = store.open_object(object)?;
        let text = dir.read(MANIFEST_FILE)?;
        let manifest = Manifest::from_json(&text).map_err(|e| ActivationError::BadState {
            what: format!("the manifest of {object}"),
            reason: e.to_string(),
        })?;
        Ok(EtcGeneration::new(store.location(), generation, object, manifest))
    }

    /// The record of a generation whose etc object `object` (with `manifest`) is, or
    /// will be, in the store at `store_location` (as the live system sees it).
    pub fn new(store_location: &Path, generation: u32, object: &str, manifest: Manifest) -> EtcGeneration {
        let static_target = store_location.join(object).join(TREE_DIR).to_string_lossy().into_owned();
        EtcGeneration { generation, object: object.to_owned(), static_target, manifest }
    }
}

/// The contents of [`ACTIVE_FILE`]: `"<generation> <etc object> <entries>"`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Marker {
    pub generation: u32,
    pub object: String,
    /// How many entries the manifest has, so that a no-op can say so unread.
    pub entries: usize,
}

impl Marker {
    pub fn of(active: &EtcGeneration) -> Marker {
        Marker { generation: active.generation, object: active.object.clone(), entries: active.manifest.entries.len() }
    }

    pub fn render(&self) -> String {
        format!("{} {} {}", self.generation, self.object, self.entries)
    }

    pub fn parse(bytes: &[u8]) -> Option<Marker> {
        let text = std::str::from_utf8(bytes).ok()?;
        let mut words = text.split(' ');
        let generation = words.next()?.parse().ok()?;
        let object = words.next()?.to_owned();
        let entries = words.next()?.parse().ok()?;
        words.next().is_none().then_some(Marker { generation, object, entries })
    }
}

/// The marker of `root`: the generation `/etc` was completely activated to, if any.
pub fn marker(root: &Dir) -> Option<Marker> {
    let state = root.open_dir(DIR).ok()?;
    Marker::parse(&state.read(ACTIVE_FILE).ok()?)
}

/// Reads a JSON file of the record, `None` if it is not there.
pub fn read_json<T: for<'de> Deserialize<'de>>(dir: &Dir, name: &str) -> Result<Option<T>, ActivationError> {
    match dir.read(name) {
        Ok(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(|e| ActivationError::BadState {
            what: dir.path().join(name).display().to_string(),
            reason: e.to_string(),
        }),
        Err(error) if error.is_not_found() => Ok(None),
        Err(error) => Err(error.into()),
    }
}

/// The generation `/etc` of `root` was last activated to, if any.
pub fn active(root: &Dir) -> Result<Option<EtcGeneration>, ActivationError> {
    match root.open_dir(DIR) {
        Ok(state) => read_json(&state, STATE_FILE),
        Err(error) if error.is_not_found() => Ok(None),
        Err(error) => Err(error.into()),
    }
}
