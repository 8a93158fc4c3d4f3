//! The record an adopt keeps in its volume: `<volume>/.blankslate/adopt.toml`, beside
//! the volume's lock (`persist.lock`, which adopt holds while it works).
//!
//! It is written (atomically and durably: a temporary, fsync, rename, fsync of the
//! directory) before adopt puts anything else in the volume, and again each time a
//! kept path's copy, or the etc tree, is complete, before that copy takes its name.
//! So every name adopt makes in the volume is either a finished copy the record
//! accounts for, or a temporary (`.NAME.blankslate-adopt`) that the next run removes;
//! and the same `blankslate adopt` run again after a crash or a kill finishes the work
//! instead of finding a volume that is not empty. Once the first generation is built
//! the record says `done` and stays: a later run of the same adopt then knows the
//! volume holds this adoption, finished, and changes nothing.
//!
//! ```toml
//! # blankslate adopt: what this volume was filled from. ...
//! from = "/mnt/debian"
//! mount_point = "/persist"
//! step = "copying"
//! kept = ["/etc/group", "/home", "/usr", "/var/log"]
//!
//! [copied]
//! "/etc/group" = { directories = 0, files = 1, hard_links = 0, symlinks = 0, special = 0, bytes = 42, linked_outside = 0 }
//!
//! [etc]
//! entries = 6
//! left_out = [["/etc/shadow", "persisted: it comes from the volume"]]
//! ```

use std::collections::{BTreeMap, BTreeSet};

use blankslate_sys::fs::Dir;
use blankslate_sys::fs::tree::CopyStats;
use toml_edit::{Array, DocumentMut, InlineTable, Item, Table, Value, value};

use crate::{AdoptError, Result};

/// The record's name in the volume's `.blankslate` directory.
pub const RECORD: &str = "adopt.toml";
/// The suffix of the temporary name a copy has until it is complete.
const TEMPORARY: &str = ".blankslate-adopt";

/// The name `name` has in its directory while its copy is being made.
pub(crate) fn temporary(name: &str) -> String {
    format!(".{name}{TEMPORARY}")
}

/// What an adopt into a volume set out to do, and how far it got.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Record {
    /// The installed root, as the command line named it.
    pub from: String,
    pub mount_point: String,
    /// The first generation is built: the adoption is finished.
    pub done: bool,
    /// The paths of the root kept in the volume, in order: the plan.
    pub kept: Vec<String>,
    /// The kept paths whose copy is complete, with what the copy holds.
    pub copied: BTreeMap<String, CopyStats>,
    /// The etc tree, once complete: how many entries it holds, and what of `/etc` was
    /// left out of it, with why.
    pub etc: Option<(usize, Vec<(String, String)>)>,
}

impl Record {
    /// The names this adoption makes at the top of the volume: the first component of
    /// each kept path, `etc` (the declaration's directory) and `var` (the state).
    pub fn top_names(&self) -> BTreeSet<String> {
        let firsts = self.kept.iter().filter_map(|path| path.trim_start_matches('/').split('/').next());
        firsts.chain(["etc", "var"]).map(str::to_owned).collect()
    }

    /// Whether `name`, at the top of the volume, is one this adoption makes, or the
    /// temporary of one.
    pub fn made(&self, name: &str) -> bool {
        let names = self.top_names();
        let own = |candidate: &str| names.contains(candidate);
        own(name) || name.strip_prefix('.').and_then(|n| n.strip_suffix(TEMPORARY)).is_some_and(own)
    }

    /// Whether this record is of the adopt `other` describes (the same root, mount
    /// point and plan), whatever progress either made.
    pub fn same_adopt(&self, other: &Record) -> bool {
        (&self.from, &self.mount_point, &self.kept) == (&other.from, &other.mount_point, &other.kept)
    }

    fn to_toml(&self) -> String {
        let mut doc = DocumentMut::new();
        doc["from"] = value(self.from.as_str());
        doc["mount_point"] = value(self.mount_point.as_str());
        doc["step"] = value(if self.done { "done" } else { "copying" });
        doc["kept"] = value(self.kept.iter().map(String::as_str).collect::<Array>());
        let mut copied = Table::new();
        for (path, stats) in &self.copied {
            let mut line = InlineTable::new();
            for (key, count) in stats_fields(stats) {
                line.insert(key, Value::from(i64::try_from(count).unwrap_or(i64::MAX)));
            }
            copied.insert(path, Item::Value(Value::InlineTable(line)));
        }
        doc["copied"] = Item::Table(copied);
        if let Some((entries, left_out)) = &self.etc {
            let mut etc = Table::new();
            etc.insert("entries", value(i64::try_from(*entries).unwrap_or(i64::MAX)));
            let pairs: Array = left_out
                .iter()
                .map(|(path, why)| Value::Array([path.as_str(), why.as_str()].into_iter().collect()))
                .collect();
            etc.insert("left_out", value(pairs));
            doc["etc"] = Item::Table(etc);
        }
        format!(
            "# blankslate adopt: what this volume was filled from. While `step` is \"copying\", the same\n\
             # `blankslate adopt` run again finishes it.\n{doc}"
        )
    }

    fn parse(text: &str, shown: &str) -> Result<Record> {
        let damaged = |why: String| AdoptError::Record { path: shown.to_owned(), why };
        let doc: DocumentMut = text.parse().map_err(|e: toml_edit::TomlError| damaged(e.to_string()))?;
        let string = |key: &str| doc.get(key).and_then(Item::as_str).ok_or_else(|| damaged(format!("no `{key}`")));
        let strings = |value: &Value| -> Option<Vec<String>> {
            value.as_array()?.iter().map(|v| v.as_str().map(str::to_owned)).collect()
        };
        let count = |value: Option<&Value>| value.and_then(Value::as_integer).and_then(|n| u64::try_from(n).ok());
        let done = match string("step")? {
            "done" => true,
            "copying" => false,
            other => return Err(damaged(format!("unknown step `{other}`"))),
        };
        let kept =
            doc.get("kept").and_then(Item::as_value).and_then(strings).ok_or_else(|| damaged("no `kept`".into()))?;
        let mut copied = BTreeMap::new();
        if let Some(table) = doc.get("copied").and_then(Item::as_table_like) {
            for (path, item) in table.iter() {
                let line =
                    item.as_inline_table().ok_or_else(|| damaged(format!("`copied.\"{path}\"` is not a table")))?;
                let field = |key: &str| count(line.get(key)).ok_or_else(|| damaged(format!("no `{key}` for {path}")));
                let stats = CopyStats {
                    directories: field("directories")?,
                    files: field("files")?,
                    hard_links: field("hard_links")?,
                    symlinks: field("symlinks")?,
                    special: field("special")?,
                    bytes: field("bytes")?,
                    linked_outside: field("linked_outside")?,
                };
                copied.insert(path.to_owned(), stats);
            }
        }
        let etc = match doc.get("etc").and_then(Item::as_table_like) {
            None => None,
            Some(table) => {
                let entries = count(table.get("entries").and_then(Item::as_value))
                    .and_then(|n| usize::try_from(n).ok())
                    .ok_or_else(|| damaged("no `etc.entries`".into()))?;
                let pairs = table
                    .get("left_out")
                    .and_then(Item::as_array)
                    .ok_or_else(|| damaged("no `etc.left_out`".into()))?;
                let left_out = pairs
                    .iter()
                    .map(|pair| match strings(pair).as_deref() {
                        Some([path, why]) => Ok((path.clone(), why.clone())),
                        _ => Err(damaged("`etc.left_out` holds something other than pairs".into())),
                    })
                    .collect::<Result<Vec<_>>>()?;
                Some((entries, left_out))
            }
        };
        Ok(Record {
            from: string("from")?.to_owned(),
            mount_point: string("mount_point")?.to_owned(),
            done,
            kept,
            copied,
            etc,
        })
    }

    /// The record in the volume's `.blankslate` directory, if there is one.
    pub fn read(state: &Dir) -> Result<Option<Record>> {
        match state.read(RECORD) {
            Ok(bytes) => {
                let shown = state.path().join(RECORD).display().to_string();
                let text = String::from_utf8(bytes)
                    .map_err(|_| AdoptError::Record { path: shown.clone(), why: "not UTF-8".into() })?;
                Record::parse(&text, &shown).map(Some)
            }
            Err(error) if error.is_not_found() => Ok(None),
            Err(error) => Err(error.into()),
        }
    }

    /// Writes the record, atomically and durably.
    pub fn write(&self, state: &Dir) -> Result<()> {
        Ok(state.write_atomic(RECORD, self.to_toml().as_bytes(), 0o600)?)
    }
}

/// A copy's counts by name, as the record spells them.
fn stats_fields(stats: &CopyStats) -> [(&'static str, u64); 7] {
    [
        ("directories", stats.directories),
        ("files", stats.files),
        ("hard_links", stats.hard_links),
        ("symlinks", stats.symlinks),
        ("special", stats.special),
        ("bytes", stats.bytes),
        ("linked_outside", stats.linked_outside),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_read_back_and_name_what_they_make() {
        let stats =
            CopyStats { directories: 2, files: 3, hard_links: 1, symlinks: 4, special: 0, bytes: 5, linked_outside: 0 };
        let record = Record {
            from: "/mnt/root \"x\"".into(),
            mount_point: "/persist".into(),
            done: false,
            kept: vec!["/usr".into(), "/var/lib/dpkg".into(), "/etc/shadow".into()],
            copied: BTreeMap::from([("/usr".to_owned(), stats)]),
            etc: Some((6, vec![("/etc/shadow".into(), "persisted".into())])),
        };
        assert_eq!(Record::parse(&record.to_toml(), "r").unwrap(), record);
        let done = Record { done: true, copied: BTreeMap::new(), etc: None, ..record.clone() };
        assert_eq!(Record::parse(&done.to_toml(), "r").unwrap(), done);
        assert!(record.same_adopt(&done));
        assert!(!record.same_adopt(&Record { from: "/elsewhere".into(), ..record.clone() }));
        for made in ["usr", "var", "etc", ".usr.blankslate-adopt"] {
            assert!(record.made(made), "{made}");
        }
        for foreign in ["home", ".home.blankslate-adopt", "usr.blankslate-adopt", ".usr"] {
            assert!(!record.made(foreign), "{foreign}");
        }
        assert!(Record::parse("step = \"copying\"", "r").is_err());
    }
}
