//! The journal of a `persist add` or `persist remove` under way.
//!
//! It lives in the persistent volume, so that it survives what the operation is
//! protecting against (a crash, a power cut, a reboot that empties the tmpfs root):
//! `<volume>/.blankslate/persist-journal.toml`, next to the lock every persist
//! command holds (`<volume>/.blankslate/persist.lock`). It is written atomically
//! (temporary name, fsync, rename, fsync of the directory) before the first change,
//! rewritten after every step with the step just completed, and removed last. One
//! operation per volume at a time: a pending journal is finished (or undone) before
//! anything else happens in that volume.
//!
//! The format is a small TOML table, readable by a person who finds it:
//!
//! ```toml
//! operation = "add"
//! path = "/var/lib/foo"
//! volume = "/persist"
//! kind = "directory"
//! how = "bind"
//! entry = '{ directory = "/var/lib/foo", user = "foo" }'
//! declaration = "/etc/blankslate/system.toml"
//! owner = [123, 456, 448]
//! boot_id = "…"
//! fingerprint = "…"
//! step = "placed"
//! ```

use std::path::PathBuf;

use blankslate_decl::{EntryKind, How};
use blankslate_sys::fs::{Dir, FsError};
use serde::{Deserialize, Serialize};

/// The directory inside a volume that holds blankslate's own bookkeeping.
pub const STATE_DIR: &str = ".blankslate";
/// The journal's name in [`STATE_DIR`].
pub const JOURNAL: &str = "persist-journal.toml";
/// The lock's name in [`STATE_DIR`].
pub const LOCK: &str = "persist.lock";

/// Which command the journal belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Operation {
    Add,
    Remove,
}

/// The steps, in order; the journal records the last one completed. Both commands
/// share the numbering of their own steps (see `add` and `remove`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Step {
    /// The journal itself is written; nothing else has changed.
    Started,
    /// add: the live data is copied to the temporary name in the volume.
    /// remove: the volume's data is copied back to a temporary name in the root.
    Copied,
    /// The copy is verified (and, for add, the declared owner and mode applied).
    Verified,
    /// add: the copy is renamed into place in the volume.
    Placed,
    /// add: the volume path is bind-mounted (or linked) over the live path.
    /// remove: the live path is unmounted (or unlinked).
    Mounted,
    /// add: the live data under the mount is removed.
    /// remove: the copied-back data is renamed into place.
    Cleared,
    /// The declaration file is edited.
    Declared,
    /// remove --purge: the volume's data is removed.
    Purged,
}

impl Step {
    pub fn as_str(self) -> &'static str {
        match self {
            Step::Started => "started",
            Step::Copied => "copied",
            Step::Verified => "verified",
            Step::Placed => "placed",
            Step::Mounted => "mounted",
            Step::Cleared => "cleared",
            Step::Declared => "declared",
            Step::Purged => "purged",
        }
    }
}

/// An operation under way, as recorded: its fields in this order are the journal's
/// keys (`copy_back` and `purge` may be missing, and are then false).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Journal {
    pub operation: Operation,
    /// The absolute path in the ephemeral root.
    pub path: String,
    /// The persistent root's mount point.
    pub volume: String,
    pub kind: EntryKind,
    pub how: How,
    /// add: the declaration entry to append, as a TOML value.
    pub entry: String,
    /// The declaration file to edit (absolute).
    #[serde(serialize_with = "lossy")]
    pub declaration: PathBuf,
    /// add: numeric owner and mode applied to the copy's top.
    pub owner: (u32, u32, u32),
    /// add: the boot the live data was copied in (it cannot outlive it on a tmpfs).
    pub boot_id: String,
    /// add: [`fs::tree::fingerprint`](blankslate_sys::fs::tree::fingerprint) of the live data before it was copied (taken by the preflight).
    pub fingerprint: String,
    /// remove: copy the data back into the root.
    #[serde(default)]
    pub copy_back: bool,
    /// remove: delete the volume's data at the end.
    #[serde(default)]
    pub purge: bool,
    pub step: Step,
}

/// A path as the journal shows it: its bytes that are not UTF-8 replaced.
fn lossy<S: serde::Serializer>(path: &std::path::Path, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&path.to_string_lossy())
}

/// A journal that cannot be read: reported, never guessed at.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error(transparent)]
    Fs(#[from] FsError),
    #[error("the persist journal {path} is damaged ({why}); look at it, then remove it by hand")]
    Damaged { path: String, why: String },
}

impl Journal {
    /// Whether it was written in this boot (so a tmpfs original it names is still there).
    pub fn same_boot(&self) -> bool {
        !self.boot_id.is_empty() && self.boot_id == blankslate_sys::boot_id()
    }

    fn to_toml(&self) -> String {
        let operation = match self.operation {
            Operation::Add => "add",
            Operation::Remove => "remove",
        };
        // Nothing in a journal can fail to serialize: strings, numbers, booleans.
        let table = toml_edit::ser::to_string(self).expect("a journal serializes");
        format!(
            "# blankslate: a `persist {operation}` under way. The next persist command finishes or undoes it.\n{table}"
        )
    }

    fn parse(text: &str, shown: &str) -> Result<Journal, JournalError> {
        toml_edit::de::from_str(text)
            .map_err(|e| JournalError::Damaged { path: shown.to_owned(), why: e.to_string().trim_end().to_owned() })
    }
}

/// The volume's state directory, created `root 0700` if missing.
pub fn state_dir(volume: &Dir) -> Result<Dir, FsError> {
    if volume.create_dir(STATE_DIR, 0o700)? {
        volume.sync()?;
    }
    volume.open_dir(STATE_DIR)
}

/// The pending journal of a volume, if any.
pub fn read(state: &Dir) -> Result<Option<Journal>, JournalError> {
    match state.read(JOURNAL) {
        Ok(bytes) => {
            let shown = state.path().join(JOURNAL).display().to_string();
            let text = String::from_utf8(bytes)
                .map_err(|_| JournalError::Damaged { path: shown.clone(), why: "not UTF-8".into() })?;
            Journal::parse(&text, &shown).map(Some)
        }
        Err(error) if error.is_not_found() => Ok(None),
        Err(error) => Err(error.into()),
    }
}

/// Records `journal` (atomically and durably).
pub fn write(state: &Dir, journal: &Journal) -> Result<(), FsError> {
    state.write_atomic(JOURNAL, journal.to_toml().as_bytes(), 0o600)
}

/// Records that `step` is done: the journal is rewritten, then the crash-test point
/// `persist-step` is passed.
pub fn advance(state: &Dir, journal: &mut Journal, step: Step) -> Result<(), FsError> {
    journal.step = step;
    write(state, journal)?;
    blankslate_sys::failpoint::hit("persist-step");
    Ok(())
}

/// Removes the journal: the operation is over. Its removal is synced, but need not
/// be durable: a journal that comes back after a power cut names an operation already
/// finished (whose every step recovery finds done) or undone (with no copy left to
/// finish, so recovery undoes it again). So a failed sync (a full file system) does
/// not make a finished operation fail.
pub fn finish(state: &Dir) -> Result<(), FsError> {
    match state.remove_file(JOURNAL) {
        Ok(()) => {}
        Err(error) if error.is_not_found() => {}
        Err(error) => return Err(error),
    }
    let _ = state.sync();
    blankslate_sys::failpoint::hit("persist-step");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn journal(operation: Operation, step: Step) -> Journal {
        Journal {
            operation,
            path: "/var/lib/app \"x\"".into(),
            volume: "/persist".into(),
            kind: EntryKind::Directory,
            how: How::Bind,
            entry: "{ directory = \"/var/lib/app\", user = \"app\", mode = \"0750\" }".into(),
            declaration: PathBuf::from("/etc/blankslate/system.toml"),
            owner: (2000, 2000, 0o40750),
            boot_id: "0f3b6c2e-6a4e-4c1b-9a57-3f1d2e8b9c10".into(),
            fingerprint: "3a7bd3e2360a3d29eea436fcfb7e44c735d117c42d1c1835420b6b9942dd4f1b".into(),
            copy_back: false,
            purge: false,
            step,
        }
    }

    /// A journal exactly as the hand-written TOML of the previous version wrote it,
    /// `STEP` and the operation to be filled in.
    const PREVIOUS_FORMAT: &str = r#"# blankslate: a `persist OPERATION` under way. The next persist command finishes or undoes it.
operation = "OPERATION"
path = '/var/lib/app "x"'
volume = "/persist"
kind = "directory"
how = "bind"
entry = '{ directory = "/var/lib/app", user = "app", mode = "0750" }'
declaration = "/etc/blankslate/system.toml"
owner = [2000, 2000, 16872]
boot_id = "0f3b6c2e-6a4e-4c1b-9a57-3f1d2e8b9c10"
fingerprint = "3a7bd3e2360a3d29eea436fcfb7e44c735d117c42d1c1835420b6b9942dd4f1b"
copy_back = false
purge = false
step = "STEP"
"#;

    /// A pending journal the previous version wrote is read, every step of both
    /// operations, and written again byte for byte the same.
    #[test]
    fn a_journal_in_the_previous_format_reads_and_writes_the_same() {
        let steps = [
            Step::Started,
            Step::Copied,
            Step::Verified,
            Step::Placed,
            Step::Mounted,
            Step::Cleared,
            Step::Declared,
            Step::Purged,
        ];
        for (operation, name) in [(Operation::Add, "add"), (Operation::Remove, "remove")] {
            for step in steps {
                let text = PREVIOUS_FORMAT.replace("OPERATION", name).replace("STEP", step.as_str());
                let read = Journal::parse(&text, "j").unwrap_or_else(|e| panic!("{name} {step:?}: {e}"));
                assert_eq!(read, journal(operation, step));
                assert_eq!(read.to_toml(), text, "{name} {step:?}");
            }
        }
    }

    /// A remove's journal, with a file, a symlink and both of its flags.
    #[test]
    fn a_remove_journal_keeps_its_flags() {
        let text = PREVIOUS_FORMAT
            .replace("OPERATION", "remove")
            .replace("STEP", "purged")
            .replace("\"directory\"\nhow = \"bind\"", "\"file\"\nhow = \"symlink\"")
            .replace("copy_back = false\npurge = false", "copy_back = true\npurge = true");
        let read = Journal::parse(&text, "j").unwrap();
        let expected = Journal {
            kind: EntryKind::File,
            how: How::Symlink,
            copy_back: true,
            purge: true,
            ..journal(Operation::Remove, Step::Purged)
        };
        assert_eq!(read, expected);
        assert_eq!(read.to_toml(), text);
        // Without the flags (as an add's journal may be written by hand), both are off.
        let without = text.replace("copy_back = true\npurge = true\n", "");
        assert_eq!(Journal::parse(&without, "j").unwrap(), Journal { copy_back: false, purge: false, ..expected });
    }

    #[test]
    fn journals_read_back() {
        let journal = Journal {
            operation: Operation::Add,
            path: "/var/lib/x \"y\"".into(),
            volume: "/persist".into(),
            kind: EntryKind::File,
            how: How::Symlink,
            entry: "{ file = \"/var/lib/x\", how = \"symlink\" }".into(),
            declaration: PathBuf::from("/etc/decl.toml"),
            owner: (1, 2, 0o4755),
            boot_id: "b".into(),
            fingerprint: "f".into(),
            copy_back: true,
            purge: false,
            step: Step::Placed,
        };
        assert_eq!(Journal::parse(&journal.to_toml(), "j").unwrap(), journal);
        assert!(Journal::parse("operation = 1", "j").is_err());
    }

    #[test]
    fn a_damaged_journal_is_reported() {
        let text = PREVIOUS_FORMAT.replace("OPERATION", "add").replace("STEP", "halfway");
        let error = Journal::parse(&text, "/persist/.blankslate/persist-journal.toml").unwrap_err();
        assert!(
            error.to_string().starts_with("the persist journal /persist/.blankslate/persist-journal.toml is damaged ("),
            "{error}"
        );
        let text = PREVIOUS_FORMAT
            .replace("OPERATION", "add")
            .replace("STEP", "placed")
            .replace("owner = [2000, 2000, 16872]", "owner = [2000, 2000]");
        assert!(Journal::parse(&text, "j").is_err());
    }
}
