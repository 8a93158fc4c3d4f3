//! The chunk index of a manifest in the written form (`manifest.index`, beside
//! `manifest.json` in the etc object): the entries cut into runs, each run with where
//! it is in the manifest, how many entries it holds, its first path and a hash of its
//! bytes. A switch between two generations compares the runs' hashes and reads only
//! the runs that differ, so that its work follows what changed, not the size of
//! `/etc`.
//!
//! A run starts at an entry whose path hashes to a multiple of [`RUN_ENTRIES`], so
//! adding or removing an entry moves no other run's bounds. The diff is exact
//! whatever the bounds are: runs with the same hash hold the same bytes, so a path
//! in such a run on one side is in it, with the same entry, on the other; every
//! other path is in a differing run on both sides or on one only, and those are read.

use std::fmt::Write as _;

use super::written;

/// The index's file name inside an etc store object.
pub const MANIFEST_INDEX_FILE: &str = "manifest.index";
/// The first word of an index, then its format version.
const MAGIC: &str = "blankslate-manifest-index";
const INDEX_VERSION: u32 = 1;
/// About how many entries a run holds.
const RUN_ENTRIES: u8 = 32;

/// One run of entries as the index gives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Run {
    /// The path of its first entry.
    pub key: Box<str>,
    /// Where it is in the manifest: from its first entry's line to its last `}`.
    pub start: u64,
    pub end: u64,
    pub count: u32,
    pub hash: [u8; 16],
}

/// What an index says: the manifest's version, its runs in path order, and the bytes
/// the manifest holds around them (its head and tail, or the whole of an empty one),
/// each with where it is.
#[derive(Debug)]
pub(super) struct Index {
    pub version: u32,
    pub runs: Vec<Run>,
    pub ends: Vec<(u64, String)>,
}

/// The hash a run is compared by: blake3 of its bytes, cut to 128 bits.
pub(super) fn run_hash(bytes: &[u8]) -> [u8; 16] {
    let mut hash = [0; 16];
    hash.copy_from_slice(&blake3::hash(bytes).as_bytes()[..16]);
    hash
}

/// Whether an entry at `path` starts a run.
fn starts_run(path: &str) -> bool {
    blake3::hash(path.as_bytes()).as_bytes()[0] % RUN_ENTRIES == 0
}

/// The index of `text`, a manifest as [`super::Manifest::to_json`] writes it; `None`
/// if it is not in that form.
pub fn index(text: &str) -> Option<String> {
    let (version, located) = written::locate(text)?;
    let mut index = format!("{MAGIC} {INDEX_VERSION} {version}\n");
    let mut first = 0;
    for at in 1..=located.len() {
        if at < located.len() && !starts_run(written::path(text, &located[at].path)) {
            continue;
        }
        let (start, end) = (located[first].line as usize, located[at - 1].end as usize);
        let key = serde_json::to_string(written::path(text, &located[first].path)).expect("a string serializes");
        let _ = write!(index, "{start} {end} {} ", at - first);
        for byte in run_hash(&text.as_bytes()[start..end]) {
            let _ = write!(index, "{byte:02x}");
        }
        let _ = writeln!(index, " {key}");
        first = at;
    }
    Some(index)
}

/// Reads an index of a manifest of `size` bytes: its runs must follow one another
/// (`,\n` between them) in increasing path order and cover its entries, which the
/// head and tail the index gives ([`Index::ends`]) then show. What each run holds is
/// checked when it is read ([`super::entries`]).
pub(super) fn parse(text: &str, size: u64) -> Result<Index, String> {
    let mut lines = text.lines().enumerate();
    let header = lines.next().map_or("", |(_, line)| line);
    let version = match header.split(' ').collect::<Vec<_>>()[..] {
        [MAGIC, format, version] if format == INDEX_VERSION.to_string() => {
            version.parse().map_err(|_| format!("line 1: bad manifest version `{version}`"))?
        }
        _ => return Err(format!("line 1: not a {MAGIC} {INDEX_VERSION}: `{header}`")),
    };
    let mut runs: Vec<Run> = Vec::new();
    for (number, line) in lines {
        let run = parse_run(line).ok_or_else(|| format!("line {}: not a run: `{line}`", number + 1))?;
        let follows = runs.last().is_none_or(|last| last.end + 2 == run.start && last.key < run.key);
        if !follows || run.start >= run.end || run.end > size {
            return Err(format!("line {}: the run is not inside the manifest, after the one before", number + 1));
        }
        runs.push(run);
    }
    let ends = ends(version, &runs, size).ok_or("the runs do not cover the manifest's entries")?;
    Ok(Index { version, runs, ends })
}

/// What the manifest holds outside `runs`, and where: the head before the first run
/// and the tail after the last, or the whole of a manifest without entries; with the
/// final newline a file saved again may have. `None` if `size` leaves no room for
/// them, or more.
fn ends(version: u32, runs: &[Run], size: u64) -> Option<Vec<(u64, String)>> {
    let newline = |text: String, room: u64| match room.checked_sub(text.len() as u64)? {
        0 => Some(text),
        1 => Some(text + "\n"),
        _ => None,
    };
    let (Some(first), Some(last)) = (runs.first(), runs.last()) else {
        let empty = format!("{{\n  \"version\": {version},\n  \"entries\": {{}}\n}}");
        return Some(vec![(0, newline(empty, size)?)]);
    };
    let head = format!("{{\n  \"version\": {version},\n  \"entries\": {{\n");
    (first.start == head.len() as u64).then_some(())?;
    Some(vec![(0, head), (last.end, newline("\n  }\n}".to_owned(), size - last.end)?)])
}

fn parse_run(line: &str) -> Option<Run> {
    let mut fields = line.splitn(5, ' ');
    let mut number = || fields.next()?.parse::<u64>().ok();
    let (start, end, count) = (number()?, number()?, u32::try_from(number()?).ok().filter(|&c| c > 0)?);
    let hex = fields.next()?;
    let mut hash = [0; 16];
    if hex.len() != 32 {
        return None;
    }
    for (byte, pair) in hash.iter_mut().zip(hex.as_bytes().chunks(2)) {
        *byte = u8::from_str_radix(std::str::from_utf8(pair).ok()?, 16).ok()?;
    }
    let key = fields.next()?;
    // Most paths need no escape: taken as they are, and only others decoded by serde.
    let key = match key.strip_prefix('"').and_then(|key| key.strip_suffix('"')) {
        Some(plain) if !plain.contains(['"', '\\']) && !plain.contains(char::is_control) => plain.to_owned(),
        _ => serde_json::from_str(key).ok()?,
    };
    Some(Run { key: key.into_boxed_str(), start, end, count, hash })
}

#[cfg(test)]
#[allow(clippy::cast_possible_truncation)] // offsets into small test manifests
mod tests {
    use super::*;
    use crate::diff::etc_changes;
    use crate::manifest::{EtcKind, Manifest, ManifestEntry};

    fn link(hash: &str) -> ManifestEntry {
        ManifestEntry { kind: EtcKind::Link, hash: hash.into(), mode: None, user: "root".into(), group: "root".into() }
    }

    fn manifest(paths: impl IntoIterator<Item = String>) -> Manifest {
        let mut manifest = Manifest::new();
        for path in paths {
            manifest.entries.insert(path, link("ab"));
        }
        manifest
    }

    /// `manifest` written with its index into `dir` as `name`, and read back in runs.
    fn in_runs(dir: &std::path::Path, name: &str, manifest: &Manifest) -> Manifest {
        let text = manifest.to_json();
        let path = dir.join(name);
        std::fs::write(&path, &text).unwrap();
        let file = std::fs::File::open(&path).unwrap();
        Manifest::in_runs(file, path, text.len() as u64, &index(&text).unwrap()).unwrap()
    }

    /// A small xorshift generator: the same cases on every run.
    struct Random(u64);

    impl Random {
        fn below(&mut self, n: usize) -> usize {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            (self.0 % n as u64) as usize
        }
    }

    /// The diff of two manifests read in runs, which skips the runs both have, is the
    /// diff of the same manifests built, for changes, additions and removals anywhere
    /// (run keys among them, which moves a run's bounds); and it reads only runs that
    /// differ. Lookups of every path and around them answer as the built manifest.
    #[test]
    fn a_diff_of_manifests_read_in_runs_is_exact_and_reads_only_what_differs() {
        let dir = tempfile::tempdir().unwrap();
        let mut random = Random(0x2545_f491_4f6c_dd1d);
        // Some paths need escapes (a quote, a backslash, a newline), run keys among them.
        let escaped = (0..200).map(|i| format!("d{}/\"q\\{i}\n", i % 13));
        let old = manifest((0..3000).map(|i| format!("d{}/e{i}", i % 13)).chain(escaped));
        assert!(old.entries.keys().any(|path| starts_run(path) && path.contains('"')));
        let keys: Vec<String> = old.entries.keys().filter(|path| starts_run(path)).map(str::to_owned).collect();
        for case in 0..40 {
            let mut paths: Vec<(String, ManifestEntry)> =
                old.entries.iter().map(|(path, entry)| (path.to_owned(), entry.clone())).collect();
            let edits = 1 + case % 6;
            for _ in 0..edits {
                match random.below(4) {
                    0 => {
                        let at = random.below(paths.len());
                        paths[at].1 = link("changed");
                    }
                    1 => drop(paths.remove(random.below(paths.len()))),
                    2 => paths.push((format!("d{}/new{}", random.below(14), random.below(1000)), link("new"))),
                    _ => {
                        let key = &keys[random.below(keys.len())];
                        paths.retain(|(path, _)| path != key);
                    }
                }
            }
            let new: Manifest = Manifest { version: 1, entries: paths.into_iter().collect() };
            let (old_runs, new_runs) = (in_runs(dir.path(), "old", &old), in_runs(dir.path(), "new", &new));
            old_runs.entries.read_unshared(&new_runs.entries).unwrap();
            new_runs.entries.read_unshared(&old_runs.entries).unwrap();
            let built: Vec<_> = etc_changes(&old, &new).collect();
            assert_eq!(etc_changes(&old_runs, &new_runs).collect::<Vec<_>>(), built, "case {case}");
            // Each edit touches at most two runs on each side (a key removed joins two).
            for side in [&old_runs, &new_runs] {
                let read = side.entries.runs_read().unwrap();
                assert!((1..=2 * edits).contains(&read), "case {case}: {read} runs read");
            }
            for (path, entry) in new.entries.iter().step_by(7) {
                assert_eq!(new_runs.entries.try_get(path).unwrap(), Some(entry), "{path}");
                for near in [format!("{path}~"), format!("{path}/x"), path[..path.len() - 1].to_owned()] {
                    assert_eq!(new_runs.entries.contains_key(&near), new.entries.contains_key(&near), "{near}");
                }
            }
            for dir in ["d1", "d13", "d", "d0", "e", "a", "z"] {
                assert_eq!(new_runs.entries.try_has_below(dir).unwrap(), new.entries.has_below(dir), "{dir}");
            }
            assert_eq!(new_runs.entries.len(), new.entries.len());
            assert_eq!(new_runs, new);
        }
    }

    /// A run whose bytes are not what the index says is an error when it is read,
    /// never entries taken on trust.
    #[test]
    fn a_run_that_is_not_what_its_index_says_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let old = manifest((0..500).map(|i| format!("e{i}")));
        let mut new = manifest((0..500).map(|i| format!("e{i}")));
        new.entries.insert("e250".into(), link("cd"));
        let text = new.to_json();
        let path = dir.path().join("new");
        // Same length, other bytes: a hash of `ab` where the index says `cd`.
        std::fs::write(&path, text.replace("\"hash\": \"cd\"", "\"hash\": \"ab\"")).unwrap();
        let file = std::fs::File::open(&path).unwrap();
        let tampered = Manifest::in_runs(file, path, text.len() as u64, &index(&text).unwrap()).unwrap();
        let error = tampered.entries.read_unshared(&in_runs(dir.path(), "old", &old).entries).unwrap_err();
        assert!(error.to_string().contains("are not what its index says"), "{error}");
        assert!(tampered.entries.try_get("e250").is_err());
    }

    /// A manifest whose head or tail is not what its index says is not read in runs:
    /// an entry could hide there.
    #[test]
    fn a_manifest_whose_ends_are_not_what_its_index_says_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let text = manifest((0..100).map(|i| format!("e{i}"))).to_json();
        let index = index(&text).unwrap();
        for other in [text.replacen("\"version\": 1", "\"version\": 7", 1), format!("{}]\n}}", &text[..text.len() - 3])]
        {
            assert_eq!(other.len(), text.len());
            let path = dir.path().join("manifest");
            std::fs::write(&path, &other).unwrap();
            let file = std::fs::File::open(&path).unwrap();
            let error = Manifest::in_runs(file, path, other.len() as u64, &index).unwrap_err();
            assert!(error.contains("not what its index says"), "{error}");
        }
    }

    /// The runs tile the entries, start where the paths say, and read back as written.
    #[test]
    fn runs_tile_the_manifest_and_parse_back() {
        let text = manifest((0..2000).map(|i| format!("d{}/e{i}", i % 7))).to_json();
        let index = parse(&index(&text).unwrap(), text.len() as u64).unwrap();
        assert_eq!(index.version, 1);
        assert_eq!(index.runs.iter().map(|run| run.count as usize).sum::<usize>(), 2000);
        let expected = 2000 / usize::from(RUN_ENTRIES);
        assert!((expected / 2..expected * 2).contains(&index.runs.len()), "{} runs", index.runs.len());
        for run in &index.runs[1..] {
            assert!(starts_run(&run.key), "{}", run.key);
        }
        for (at, bytes) in &index.ends {
            assert_eq!(&text[*at as usize..*at as usize + bytes.len()], bytes);
        }
        assert_eq!(index.ends[1].0 as usize + index.ends[1].1.len(), text.len());
        for run in &index.runs {
            assert_eq!(run_hash(&text.as_bytes()[run.start as usize..run.end as usize]), run.hash);
        }
    }

    #[test]
    fn an_index_that_does_not_fit_its_manifest_is_refused() {
        let text = manifest((0..300).map(|i| format!("e{i}"))).to_json();
        let good = index(&text).unwrap();
        assert!(parse(&good, text.len() as u64 - 7).unwrap_err().contains("inside the manifest"));
        assert!(parse(&good, text.len() as u64 + 2).unwrap_err().contains("cover"));
        assert!(parse(&good, text.len() as u64 + 1).is_ok(), "a final newline");
        // An index without runs is one of a manifest without entries, and says so.
        assert!(parse("blankslate-manifest-index 1 1\n", text.len() as u64).unwrap_err().contains("cover"));
        let empty = Manifest::new().to_json();
        let index = parse(&index(&empty).unwrap(), empty.len() as u64).unwrap();
        assert_eq!((index.runs.len(), index.ends), (0, vec![(0, empty)]));
        let lines: Vec<&str> = good.lines().collect();
        let swapped = [lines[0], lines[2], lines[1]].join("\n");
        assert!(parse(&swapped, text.len() as u64).unwrap_err().starts_with("line 3"));
        assert!(parse("blankslate-manifest-index 2 1\n", 9).unwrap_err().starts_with("line 1"));
        assert!(parse(&good.replacen(" 1\n", " 1\n0 9 0 00 \"x\"\n", 1), 99).unwrap_err().contains("not a run"));
    }
}
