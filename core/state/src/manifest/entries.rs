//! A manifest's entries, by path. Built in memory (the etc-builder's, a test's) they
//! are a map. Read from a manifest file in the form blankslate writes, they are its
//! text and where each entry is in it, and an entry is made from its text only when
//! asked for: a switch that changes 30 of 10,000 entries compares the others' written
//! forms and never builds them. Read with the manifest's chunk index (`chunks`), they
//! are the runs of entries, each read from the file when first needed: a switch
//! compares the runs' hashes and reads only the runs that differ, so that its work
//! follows what changed.

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::fs::File;
use std::os::unix::fs::FileExt as _;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use serde::ser::SerializeMap;
use serde::{Serialize, Serializer};

use super::ManifestEntry;
use super::chunks::{self, Index, Run};
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
    InRuns(InRuns),
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
    fn new(text: String, located: Vec<Located>) -> Written {
        let made = std::iter::repeat_with(OnceLock::new).take(located.len()).collect();
        Written { text, located, made }
    }

    fn path(&self, index: usize) -> &str {
        written::path(&self.text, &self.located[index].path)
    }

    fn entry(&self, index: usize) -> &ManifestEntry {
        self.made[index].get_or_init(|| Box::new(written::entry(&self.text, &self.located[index])))
    }

    fn find(&self, path: &str) -> Result<usize, usize> {
        self.located.binary_search_by(|located| written::path(&self.text, &located.path).cmp(path))
    }

    /// The entry at `index` as [`Entries::each`] gives it.
    fn lazy(&self, index: usize) -> Lazy<'_> {
        Lazy {
            path: self.path(index),
            form: Some(written::form(&self.text, &self.located[index])),
            source: Source::Written(self, index),
        }
    }

    /// The first path at or after `path`, if any.
    fn first_from(&self, path: &str) -> Option<&str> {
        let index = self.find(path).unwrap_or_else(|index| index);
        (index < self.located.len()).then(|| self.path(index))
    }
}

/// A manifest read run by run: its file, the runs its index gives, each run's
/// entries once read, and how many entries there are in all.
#[derive(Clone)]
struct InRuns {
    file: Arc<ManifestFile>,
    runs: Vec<RunRead>,
    len: usize,
}

struct ManifestFile {
    file: File,
    path: PathBuf,
}

#[derive(Clone)]
struct RunRead {
    run: Run,
    read: OnceLock<Written>,
}

/// A run of a manifest read in runs that cannot be read, or does not hold what its
/// index says.
#[derive(Debug, thiserror::Error)]
#[error("cannot read {}: {reason}", path.display())]
pub struct ManifestReadError {
    path: PathBuf,
    reason: String,
}

impl InRuns {
    /// The entries of run `at`, read from the file the first time.
    fn written(&self, at: usize) -> Result<&Written, ManifestReadError> {
        let slot = &self.runs[at];
        if let Some(written) = slot.read.get() {
            return Ok(written);
        }
        let written = self.read(at)?;
        Ok(slot.read.get_or_init(|| written))
    }

    /// Reads run `at` and checks it: its bytes hash as the index says, and they are
    /// entries in the written form, as many as it says, the first at its key and the
    /// last before the next run's.
    fn read(&self, at: usize) -> Result<Written, ManifestReadError> {
        let run = &self.runs[at].run;
        let fail = |reason: String| ManifestReadError { path: self.file.path.clone(), reason };
        let size = usize::try_from(run.end - run.start).map_err(|_| fail("a run too long".into()))?;
        let mut bytes = vec![0; size];
        self.file
            .file
            .read_exact_at(&mut bytes, run.start)
            .map_err(|error| fail(format!("bytes {}..{}: {error}", run.start, run.end)))?;
        if chunks::run_hash(&bytes) != run.hash {
            return Err(fail(format!("bytes {}..{} are not what its index says", run.start, run.end)));
        }
        let text = String::from_utf8(bytes).map_err(|_| fail(format!("bytes {}.. are not UTF-8", run.start)))?;
        let located = written::locate_run(&text).unwrap_or_default();
        let path = |index: usize| written::path(&text, &located[index].path);
        let next = self.runs.get(at + 1).map(|next| &*next.run.key);
        let fits = located.len() == run.count as usize
            && path(0) == &*run.key
            && next.is_none_or(|next| path(located.len() - 1) < next);
        if !fits {
            return Err(fail(format!("bytes {}..{} are not the entries its index says", run.start, run.end)));
        }
        Ok(Written::new(text, located))
    }

    /// The run that holds `path` if any does: the last one whose key is not after it.
    fn run_of(&self, path: &str) -> Option<usize> {
        self.runs.partition_point(|slot| &*slot.run.key <= path).checked_sub(1)
    }

    fn get(&self, path: &str) -> Result<Option<&ManifestEntry>, ManifestReadError> {
        let Some(at) = self.run_of(path) else { return Ok(None) };
        let written = self.written(at)?;
        Ok(written.find(path).ok().map(|index| written.entry(index)))
    }

    /// The first path at or after `path`; a run is read only if it may hold it.
    fn first_from(&self, path: &str) -> Result<Option<&str>, ManifestReadError> {
        let Some(at) = self.run_of(path) else { return Ok(self.runs.first().map(|slot| &*slot.run.key)) };
        match self.written(at)?.first_from(path) {
            Some(found) => Ok(Some(found)),
            None => Ok(self.runs.get(at + 1).map(|slot| &*slot.run.key)),
        }
    }

    /// How many runs were read.
    fn read_count(&self) -> usize {
        self.runs.iter().filter(|slot| slot.read.get().is_some()).count()
    }

    fn hashes(&self) -> HashSet<[u8; 16]> {
        self.runs.iter().map(|slot| slot.run.hash).collect()
    }
}

/// The value of a lookup that can fail only for entries read in runs. Those are read
/// for a switch, which asks through the `try_` forms (and reads the runs its diff
/// needs first, `Entries::read_unshared`); anywhere else, a run of a store object
/// that cannot be read is a disk failing under the process.
fn read_or_panic<T>(result: Result<T, ManifestReadError>) -> T {
    result.unwrap_or_else(|error| panic!("{error}"))
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
        Ok((version, Entries { repr: Repr::Written(Written::new(text, located)) }))
    }

    /// The entries of the manifest `file` (at `path`, for messages) as `index` cuts
    /// it in runs, none read yet.
    pub(super) fn in_runs(file: File, path: PathBuf, index: Index) -> Entries {
        let len = index.runs.iter().map(|run| run.count as usize).sum();
        let runs = index.runs.into_iter().map(|run| RunRead { run, read: OnceLock::new() }).collect();
        Entries { repr: Repr::InRuns(InRuns { file: Arc::new(ManifestFile { file, path }), runs, len }) }
    }

    pub fn len(&self) -> usize {
        match &self.repr {
            Repr::Map(map) => map.len(),
            Repr::Written(written) => written.located.len(),
            Repr::InRuns(runs) => runs.len,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The entry at `path`. For entries read in runs, as [`Entries::try_get`], and
    /// panics if its run cannot be read.
    pub fn get(&self, path: &str) -> Option<&ManifestEntry> {
        read_or_panic(self.try_get(path))
    }

    /// The entry at `path`; an error only for entries read in runs, if the run that
    /// would hold it cannot be read.
    pub fn try_get(&self, path: &str) -> Result<Option<&ManifestEntry>, ManifestReadError> {
        match &self.repr {
            Repr::Map(map) => Ok(map.get(path)),
            Repr::Written(written) => Ok(written.find(path).ok().map(|index| written.entry(index))),
            Repr::InRuns(runs) => runs.get(path),
        }
    }

    pub fn contains_key(&self, path: &str) -> bool {
        read_or_panic(self.try_contains_key(path))
    }

    pub fn try_contains_key(&self, path: &str) -> Result<bool, ManifestReadError> {
        match &self.repr {
            Repr::Map(map) => Ok(map.contains_key(path)),
            Repr::Written(written) => Ok(written.find(path).is_ok()),
            Repr::InRuns(runs) => runs.get(path).map(|entry| entry.is_some()),
        }
    }

    /// Whether there is an entry below the directory `dir` (relative to `/etc`).
    pub fn has_below(&self, dir: &str) -> bool {
        read_or_panic(self.try_has_below(dir))
    }

    pub fn try_has_below(&self, dir: &str) -> Result<bool, ManifestReadError> {
        let prefix = format!("{dir}/");
        let first = match &self.repr {
            Repr::Map(map) => map.range(prefix.clone()..).next().map(|(path, _)| path.as_str()),
            Repr::Written(written) => written.first_from(&prefix),
            Repr::InRuns(runs) => runs.first_from(&prefix)?,
        };
        Ok(first.is_some_and(|path| path.starts_with(&prefix)))
    }

    /// Adds or replaces the entry at `path`. Entries read from a manifest are made
    /// into a map first (only builders and tests add entries).
    pub fn insert(&mut self, path: String, entry: ManifestEntry) -> Option<ManifestEntry> {
        if !matches!(self.repr, Repr::Map(_)) {
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

    /// The entries in path order, none made until asked for. For entries read in
    /// runs, each run is read as it is reached (a panic if it cannot be: read them
    /// first with [`Entries::read_unshared`] where that must be an error).
    pub fn each(&self) -> Box<dyn Iterator<Item = Lazy<'_>> + '_> {
        match &self.repr {
            Repr::Map(map) => {
                Box::new(map.iter().map(|(path, entry)| Lazy { path, form: None, source: Source::Made(entry) }))
            }
            Repr::Written(written) => Box::new((0..written.located.len()).map(|index| written.lazy(index))),
            Repr::InRuns(runs) => Box::new(Self::runs_each(runs, |_| true)),
        }
    }

    /// The entries of the `wanted` runs, each run read as it is reached.
    fn runs_each<'a>(runs: &'a InRuns, wanted: impl Fn(&Run) -> bool + 'a) -> impl Iterator<Item = Lazy<'a>> + 'a {
        (0..runs.runs.len()).filter(move |&at| wanted(&runs.runs[at].run)).flat_map(move |at| {
            let written = read_or_panic(runs.written(at));
            (0..written.located.len()).map(move |index| written.lazy(index))
        })
    }

    /// How many runs were read, of entries read in runs.
    #[cfg(test)]
    pub(super) fn runs_read(&self) -> Option<usize> {
        match &self.repr {
            Repr::InRuns(runs) => Some(runs.read_count()),
            _ => None,
        }
    }

    /// The hashes of the runs these entries were read in, if they were.
    fn run_hashes(&self) -> Option<HashSet<[u8; 16]>> {
        match &self.repr {
            Repr::InRuns(runs) => Some(runs.hashes()),
            _ => None,
        }
    }

    /// Reads every run of these entries that `other` does not have as well (all of
    /// them unless both were read in runs): the entries a diff of the two looks at.
    pub fn read_unshared(&self, other: &Entries) -> Result<(), ManifestReadError> {
        let (Repr::InRuns(runs), shared) = (&self.repr, other.run_hashes().unwrap_or_default()) else { return Ok(()) };
        for (at, slot) in runs.runs.iter().enumerate() {
            if !shared.contains(&slot.run.hash) {
                runs.written(at)?;
            }
        }
        Ok(())
    }

    /// The entries in path order but those in a run `other` has as well: the same
    /// bytes, so the same entries at the same paths, which a diff need not look at.
    pub(crate) fn each_unshared<'a>(&'a self, other: &Entries) -> Box<dyn Iterator<Item = Lazy<'a>> + 'a> {
        match (&self.repr, other.run_hashes()) {
            (Repr::InRuns(runs), Some(shared)) => {
                Box::new(Self::runs_each(runs, move |run| !shared.contains(&run.hash)))
            }
            _ => self.each(),
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
        match &self.repr {
            // What was read, without reading more (which could fail).
            Repr::InRuns(runs) => f
                .debug_struct("Entries")
                .field("path", &runs.file.path)
                .field("entries", &runs.len)
                .field("runs", &runs.runs.len())
                .field("runs_read", &runs.read_count())
                .finish(),
            _ => f.debug_map().entries(self.iter()).finish(),
        }
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
