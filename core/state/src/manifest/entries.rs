//! A manifest's entries, by path. Built in memory (the etc-builder's, a test's) they
//! are a map. Read from a manifest file in the form blankslate writes, they are its
//! text and where each entry is in it, and an entry is made from its text only when
//! asked for: a switch that changes 30 of 10,000 entries compares the others' written
//! forms and never builds them, so that its work follows what changed.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::OnceLock;

use serde::ser::SerializeMap;
use serde::{Serialize, Serializer};

use super::ManifestEntry;
use super::written::{self, Located};

/// Every entry of one generation's `/etc`, keyed by path relative to `/etc`, in path
/// order.
#[derive(Clone, Default)]
pub struct Entries {
    repr: Repr,
}

#[derive(Clone)]
enum Repr {
    Map(BTreeMap<String, ManifestEntry>),
    Written(Written),
}

impl Default for Repr {
    fn default() -> Self {
        Repr::Map(BTreeMap::new())
    }
}

/// A manifest's text, where each entry is in it, and each entry once it was made.
#[derive(Clone)]
struct Written {
    text: String,
    located: Vec<Located>,
    made: Vec<OnceLock<Box<ManifestEntry>>>,
}

impl Written {
    fn path(&self, index: usize) -> &str {
        written::path(&self.text, &self.located[index].path)
    }

    fn entry(&self, index: usize) -> &ManifestEntry {
        self.made[index].get_or_init(|| Box::new(written::entry(&self.text, &self.located[index])))
    }

    fn find(&self, path: &str) -> Result<usize, usize> {
        self.located.binary_search_by(|located| written::path(&self.text, &located.path).cmp(path))
    }
}

/// One entry as [`Entries::each`] gives it: its path, its written form when it was
/// read from one, and the entry itself, made when first asked for.
#[derive(Clone, Copy)]
pub struct Lazy<'a> {
    pub path: &'a str,
    pub form: Option<&'a str>,
    source: Source<'a>,
}

#[derive(Clone, Copy)]
enum Source<'a> {
    Made(&'a ManifestEntry),
    Written(&'a Written, usize),
}

impl fmt::Debug for Lazy<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Lazy").field("path", &self.path).field("form", &self.form).finish_non_exhaustive()
    }
}

impl<'a> Lazy<'a> {
    pub fn entry(self) -> &'a ManifestEntry {
        match self.source {
            Source::Made(entry) => entry,
            Source::Written(written, index) => written.entry(index),
        }
    }

    /// [`ManifestEntry::is_owned`], without making the entry.
    pub fn is_owned(self) -> bool {
        match (self.source, self.form) {
            (Source::Written(..), Some(form)) => written::is_owned(form),
            _ => self.entry().is_owned(),
        }
    }
}

impl Entries {
    /// The entries of `text` if it is a manifest in the form blankslate writes, and
    /// its version; the text back if it is not (then serde reads it).
    pub(super) fn from_written(text: String) -> Result<(u32, Entries), String> {
        let Some((version, located)) = written::locate(&text) else { return Err(text) };
        let made = std::iter::repeat_with(OnceLock::new).take(located.len()).collect();
        Ok((version, Entries { repr: Repr::Written(Written { text, located, made }) }))
    }

    pub fn len(&self) -> usize {
        match &self.repr {
            Repr::Map(map) => map.len(),
            Repr::Written(written) => written.located.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn get(&self, path: &str) -> Option<&ManifestEntry> {
        match &self.repr {
            Repr::Map(map) => map.get(path),
            Repr::Written(written) => written.find(path).ok().map(|index| written.entry(index)),
        }
    }

    pub fn contains_key(&self, path: &str) -> bool {
        match &self.repr {
            Repr::Map(map) => map.contains_key(path),
            Repr::Written(written) => written.find(path).is_ok(),
        }
    }

    /// Whether there is an entry below the directory `dir` (relative to `/etc`).
    pub fn has_below(&self, dir: &str) -> bool {
        let prefix = format!("{dir}/");
        let first = match &self.repr {
            Repr::Map(map) => map.range(prefix.clone()..).next().map(|(path, _)| path.as_str()),
            Repr::Written(written) => {
                let index = written.find(&prefix).unwrap_or_else(|index| index);
                (index < written.located.len()).then(|| written.path(index))
            }
        };
        first.is_some_and(|path| path.starts_with(&prefix))
    }

    /// Adds or replaces the entry at `path`. Entries read from a manifest are made
    /// into a map first (only builders and tests add entries).
    pub fn insert(&mut self, path: String, entry: ManifestEntry) -> Option<ManifestEntry> {
        if let Repr::Written(_) = &self.repr {
            self.repr = Repr::Map(self.iter().map(|(path, entry)| (path.to_owned(), entry.clone())).collect());
        }
        let Repr::Map(map) = &mut self.repr else { unreachable!("made a map above") };
        map.insert(path, entry)
    }

    /// The entries in path order, each made as it is reached.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &ManifestEntry)> {
        self.each().map(|lazy| (lazy.path, lazy.entry()))
    }

    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.each().map(|lazy| lazy.path)
    }

    /// The entries in path order, none made until asked for.
    pub fn each(&self) -> Box<dyn Iterator<Item = Lazy<'_>> + '_> {
        match &self.repr {
            Repr::Map(map) => {
                Box::new(map.iter().map(|(path, entry)| Lazy { path, form: None, source: Source::Made(entry) }))
            }
            Repr::Written(written) => Box::new((0..written.located.len()).map(move |index| Lazy {
                path: written.path(index),
                form: Some(written::form(&written.text, &written.located[index])),
                source: Source::Written(written, index),
            })),
        }
    }
}

impl<'a> IntoIterator for &'a Entries {
    type Item = (&'a str, &'a ManifestEntry);
    type IntoIter = Box<dyn Iterator<Item = (&'a str, &'a ManifestEntry)> + 'a>;

    fn into_iter(self) -> Self::IntoIter {
        Box::new(self.iter())
    }
}

impl FromIterator<(String, ManifestEntry)> for Entries {
    fn from_iter<I: IntoIterator<Item = (String, ManifestEntry)>>(iter: I) -> Self {
        Entries { repr: Repr::Map(iter.into_iter().collect()) }
    }
}

impl std::ops::Index<&str> for Entries {
    type Output = ManifestEntry;

    fn index(&self, path: &str) -> &ManifestEntry {
        self.get(path).unwrap_or_else(|| panic!("no entry {path}"))
    }
}

impl PartialEq for Entries {
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len() && self.iter().eq(other.iter())
    }
}

impl Eq for Entries {}

impl fmt::Debug for Entries {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

impl Serialize for Entries {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.len()))?;
        for (path, entry) in self {
            map.serialize_entry(path, entry)?;
        }
        map.end()
    }
}
