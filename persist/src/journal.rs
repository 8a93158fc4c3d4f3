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
use toml_edit::{DocumentMut, value};

/// The directory inside a volume that holds blankslate's own bookkeeping.
pub const STATE_DIR: &str = ".blankslate";
/// The journal's name in [`STATE_DIR`].
pub const JOURNAL: &str = "persist-journal.toml";
/// The lock's name in [`STATE_DIR`].
pub const LOCK: &str = "persist.lock";

/// Which command the journal belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    Add,
    Remove,
}

/// The steps, in order; the journal records the last one completed. Both commands
/// share the numbering of their own steps (see `add` and `remove`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
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

    fn parse(text: &str) -> Option<Step> {
        [
            Step::Started,
            Step::Copied,
            Step::Verified,
            Step::Placed,
            Step::Mounted,
            Step::Cleared,
            Step::Declared,
            Step::Purged,
        ]
        .into_iter()
        .find(|s| s.as_str() == text)
    }
}

/// An operation under way, as recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
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
    pub declaration: PathBuf,
    /// add: numeric owner and mode applied to the copy's top.
    pub owner: (u32, u32, u32),
    /// add: the boot the live data was copied in (it cannot outlive it on a tmpfs).
    pub boot_id: String,
    /// add: [`fs::tree::fingerprint`](blankslate_sys::fs::tree::fingerprint) of the live data when it was copied.
    pub fingerprint: String,
    /// remove: copy the data back into the root.
    pub copy_back: bool,
    /// remove: delete the volume's data at the end.
    pub purge: bool,
    pub step: Step,
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
        !self.boot_id.is_empty() && self.boot_id == boot_id()
    }

    fn to_toml(&self) -> String {
        let mut doc = DocumentMut::new();
        doc["operation"] = value(match self.operation {
            Operation::Add => "add",
            Operation::Remove => "remove",
        });
        doc["path"] = value(self.path.as_str());
        doc["volume"] = value(self.volume.as_str());
        doc["kind"] = value(self.kind.noun());
        doc["how"] = value(self.how.as_str());
        doc["entry"] = value(self.entry.as_str());
        doc["declaration"] = value(self.declaration.to_string_lossy().as_ref());
        let mut owner = toml_edit::Array::new();
        for n in [self.owner.0, self.owner.1, self.owner.2] {
            owner.push(i64::from(n));
        }
        doc["owner"] = value(owner);
        doc["boot_id"] = value(self.boot_id.as_str());
        doc["fingerprint"] = value(self.fingerprint.as_str());
        doc["copy_back"] = value(self.copy_back);
        doc["purge"] = value(self.purge);
        doc["step"] = value(self.step.as_str());
        format!(
            "# blankslate: a `persist {}` under way. The next persist command finishes or undoes it.\n{doc}",
            match self.operation {
                Operation::Add => "add",
                Operation::Remove => "remove",
            }
        )
    }

    fn parse(text: &str, shown: &str) -> Result<Journal, JournalError> {
        let damaged = |why: &str| JournalError::Damaged { path: shown.to_owned(), why: why.to_owned() };
        let doc: DocumentMut = text.parse().map_err(|e: toml_edit::TomlError| damaged(&e.to_string()))?;
        let string = |key: &str| doc.get(key).and_then(|v| v.as_str()).ok_or_else(|| damaged(&format!("no `{key}`")));
        let boolean = |key: &str| doc.get(key).and_then(toml_edit::Item::as_bool).unwrap_or(false);
        let operation = match string("operation")? {
            "add" => Operation::Add,
            "remove" => Operation::Remove,
            other => return Err(damaged(&format!("unknown operation `{other}`"))),
        };
        let kind = match string("kind")? {
            "directory" => EntryKind::Directory,
            "file" => EntryKind::File,
            other => return Err(damaged(&format!("unknown kind `{other}`"))),
        };
        let how = match string("how")? {
            "bind" => How::Bind,
            "symlink" => How::Symlink,
            other => return Err(damaged(&format!("unknown how `{other}`"))),
        };
        let owner: Vec<u32> = doc
            .get("owner")
            .and_then(toml_edit::Item::as_array)
            .map(|a| a.iter().filter_map(|v| v.as_integer().and_then(|n| u32::try_from(n).ok())).collect())
            .unwrap_or_default();
        let [uid, gid, mode] = owner[..] else { return Err(damaged("`owner` is not three numbers")) };
        let step = Step::parse(string("step")?).ok_or_else(|| damaged("unknown step"))?;
        Ok(Journal {
            operation,
            path: string("path")?.to_owned(),
            volume: string("volume")?.to_owned(),
            kind,
            how,
            entry: string("entry")?.to_owned(),
            declaration: PathBuf::from(string("declaration")?),
            owner: (uid, gid, mode),
            boot_id: string("boot_id")?.to_owned(),
            fingerprint: string("fingerprint")?.to_owned(),
            copy_back: boolean("copy_back"),
            purge: boolean("purge"),
            step,
        })
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

/// This boot's id (`/proc/sys/kernel/random/boot_id`), or empty if unknown.
pub fn boot_id() -> String {
    std::fs::read_to_string("/proc/sys/kernel/random/boot_id").map(|s| s.trim().to_owned()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
