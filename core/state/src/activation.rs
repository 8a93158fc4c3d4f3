//! The activation record: which generation `/etc` is activated to, kept inside the
//! root by the activator (`etc/.blankslate/`) and read by garbage collection, the
//! audit and the command line. It lives with the root, so it starts empty at boot
//! like everything else on the tmpfs.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::manifest::{MANIFEST_FILE, MANIFEST_INDEX_FILE, Manifest, TREE_DIR};
use crate::store::{Store, StoreError};
use blankslate_sys::fs::{Dir, FsError};

/// The record's directory inside `/etc`.
pub const STATE_DIR: &str = blankslate_decl::layout::ETC_STATE_DIR;
/// The record's directory inside the root.
pub const DIR: &str = "etc/.blankslate";
/// The generation `/etc` was last activated to ([`Record`]); its manifest is the
/// store's, read from the object it names.
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

/// What the state file holds: the generation `/etc` was last activated to and its
/// etc object, not the object's manifest (a switch would otherwise write every
/// entry again). A state file of an older binary, with the manifest in it, reads
/// as this; the manifest in it is not used.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    pub generation: u32,
    pub object: String,
    pub static_target: String,
}

/// The generation `/etc` is (or is to be) made of.
#[derive(Debug, Clone, PartialEq, Eq)]
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
        Self::read_whole(store, &store.open_object(object)?, generation, object)
    }

    fn read_whole(store: &Store, dir: &Dir, generation: u32, object: &str) -> Result<EtcGeneration, ActivationError> {
        let manifest = Manifest::from_json(dir.read(MANIFEST_FILE)?).map_err(|e| bad_manifest(object, e))?;
        Ok(EtcGeneration::new(store.location(), generation, object, manifest))
    }

    /// As [`EtcGeneration::load`], but for an object with a chunk index
    /// (`manifest.index`), the manifest is read in runs, each when first needed: for
    /// a switch, which reads only the runs that differ from the generation it leaves.
    /// An object without an index (an older binary's), or with one this binary cannot
    /// read (a newer one's) or that does not fit the manifest, is read whole.
    pub fn load_in_runs(store: &Store, generation: u32, object: &str) -> Result<EtcGeneration, ActivationError> {
        let dir = store.open_object(object)?;
        let index = match dir.read(MANIFEST_INDEX_FILE) {
            Ok(index) => String::from_utf8(index).unwrap_or_default(),
            Err(error) if error.is_not_found() => return Self::read_whole(store, &dir, generation, object),
            Err(error) => return Err(error.into()),
        };
        let file = dir.open_file(MANIFEST_FILE)?;
        let size = file.metadata().map_err(|e| bad_manifest(object, e))?.len();
        match Manifest::in_runs(file, dir.path().join(MANIFEST_FILE), size, &index) {
            Ok(manifest) => Ok(EtcGeneration::new(store.location(), generation, object, manifest)),
            Err(_) => Self::read_whole(store, &dir, generation, object),
        }
    }

    /// The generation `record` names, its manifest read from `store`, `/etc/static`'s
    /// target as recorded.
    pub fn of_record(store: &Store, record: Record) -> Result<EtcGeneration, ActivationError> {
        Ok(EtcGeneration::load(store, record.generation, &record.object)?.recorded(record))
    }

    /// This generation with `/etc/static`'s target as `record` (of the same
    /// generation) has it.
    #[must_use]
    pub fn recorded(self, record: Record) -> EtcGeneration {
        EtcGeneration { static_target: record.static_target, ..self }
    }

    /// What the state file records of this generation.
    pub fn record(&self) -> Record {
        Record { generation: self.generation, object: self.object.clone(), static_target: self.static_target.clone() }
    }

    /// The record of a generation whose etc object `object` (with `manifest`) is, or
    /// will be, in the store at `store_location` (as the live system sees it).
    pub fn new(store_location: &Path, generation: u32, object: &str, manifest: Manifest) -> EtcGeneration {
        let static_target = store_location.join(object).join(TREE_DIR).to_string_lossy().into_owned();
        EtcGeneration { generation, object: object.to_owned(), static_target, manifest }
    }
}

fn bad_manifest(object: &str, reason: impl std::fmt::Display) -> ActivationError {
    ActivationError::BadState { what: format!("the manifest of {object}"), reason: reason.to_string() }
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

/// The record of the generation `/etc` of `root` was last activated to, if any.
pub fn active_record(root: &Dir) -> Result<Option<Record>, ActivationError> {
    match root.open_dir(DIR) {
        Ok(state) => read_json(&state, STATE_FILE),
        Err(error) if error.is_not_found() => Ok(None),
        Err(error) => Err(error.into()),
    }
}

/// The generation `/etc` of `root` was last activated to, if any, with its manifest
/// read from `store`.
pub fn active(root: &Dir, store: &Store) -> Result<Option<EtcGeneration>, ActivationError> {
    active_record(root)?.map(|record| EtcGeneration::of_record(store, record)).transpose()
}

#[cfg(test)]
mod tests {
    use super::Record;

    /// The state file an older binary wrote carries the manifest too: it reads as
    /// the record, and the manifest in it is not needed.
    #[test]
    fn an_older_state_file_reads_as_the_record() {
        let old = r#"{"generation":2,"object":"abc-etc","static_target":"/s/abc-etc/etc",
            "manifest":{"version":1,"entries":{"hosts":{"kind":"link","hash":"ab","user":"root","group":"root"}}}}"#;
        let record: Record = serde_json::from_str(old).unwrap();
        let expected = Record { generation: 2, object: "abc-etc".into(), static_target: "/s/abc-etc/etc".into() };
        assert_eq!(record, expected);
        assert_eq!(serde_json::from_slice::<Record>(&serde_json::to_vec(&record).unwrap()).unwrap(), record);
    }
}
