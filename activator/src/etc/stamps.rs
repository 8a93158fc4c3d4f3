//! Stamps that let a repair skip reading links it has already checked. After a repair
//! that found every entry as activated, each directory's [`ChangeStamp`] is kept in
//! `etc/.blankslate/stamps.json`. On the next repair of the same generation, a
//! directory whose stamp is the same still holds the very links that were checked. A
//! link cannot be changed in place, and replacing, adding or removing one changes its
//! directory's stamp. Its links are then not read again. Copies and directories are
//! always looked at: a file can be written in place, and on tmpfs a write through
//! `mmap` does not change its times.
//!
//! A stamp is kept only if the directory's change time was at least [`SETTLE`] in the
//! past when it was taken, so that a later change cannot get the same time. File
//! systems keep times in ticks as coarse as two seconds. A directory with a mount point
//! in it is always read: a mount over a link changes no time.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use blankslate_sys::fs::{ChangeStamp, Dir};
use serde::{Deserialize, Serialize};

use super::{EtcGeneration, Result, STATE_DIR};

/// The file in the state directory.
const FILE: &str = "stamps.json";
/// How far in the past a change time must be for a stamp to be kept.
const SETTLE: Duration = Duration::from_secs(2);

/// What the file holds: the generation the stamps were taken for, and each
/// directory's stamp (`""` is `/etc`) as device, inode, seconds and nanoseconds.
#[derive(Serialize, Deserialize, PartialEq)]
struct Record {
    generation: u32,
    object: String,
    dirs: BTreeMap<String, (u64, u64, i64, u32)>,
}

/// The stamps of one repair: those kept from the last one, and those taken now.
pub(super) struct Stamps {
    kept: Record,
    /// Directories with a mount point in them, relative to `/etc`; `None` without
    /// `/etc`, or when where it is cannot be read: then no stamp is trusted or kept.
    mounted_in: Option<HashSet<String>>,
    /// Whether each directory asked about was vouched for, by path.
    vouched: HashMap<String, bool>,
    /// The settled stamps taken during this repair.
    taken: BTreeMap<String, (u64, u64, i64, u32)>,
    now: SystemTime,
}

impl Stamps {
    /// The stamps kept for `to` in `etc` (none if they were kept for another
    /// generation or cannot be read: then every link is read), and the mount points
    /// below it.
    pub(super) fn load(etc: Option<&Dir>, to: &EtcGeneration) -> Stamps {
        let kept = etc
            .and_then(|etc| etc.open_dir(STATE_DIR).and_then(|state| state.read(FILE)).ok())
            .and_then(|text| serde_json::from_slice::<Record>(&text).ok())
            .filter(|record| record.generation == to.generation && record.object == to.object)
            .unwrap_or_else(|| Record { generation: to.generation, object: to.object.clone(), dirs: BTreeMap::new() });
        let mounted_in = etc
            .and_then(blankslate_sys::mount::below_dir)
            .map(|points| points.iter().map(|point| parent_of(&String::from_utf8_lossy(point))).collect());
        Stamps { kept, mounted_in, vouched: HashMap::new(), taken: BTreeMap::new(), now: SystemTime::now() }
    }

    /// Whether the links in the directory at `path`, open as `dir`, are those the last
    /// repair checked. The first question about a directory takes its stamp, before
    /// any of its links is read, so a change made while they are read is seen next time.
    pub(super) fn vouch(&mut self, path: &str, dir: &Dir) -> Result<bool> {
        if let Some(&vouched) = self.vouched.get(path) {
            return Ok(vouched);
        }
        let words = words(dir.change_stamp()?);
        let Some(mounted_in) = &self.mounted_in else { return Ok(false) };
        if mounted_in.contains(path) {
            self.vouched.insert(path.to_owned(), false);
            return Ok(false);
        }
        let vouched = self.kept.dirs.get(path) == Some(&words);
        if vouched || self.settled(words) {
            self.taken.insert(path.to_owned(), words);
        }
        self.vouched.insert(path.to_owned(), vouched);
        Ok(vouched)
    }

    fn settled(&self, (_, _, seconds, nanos): (u64, u64, i64, u32)) -> bool {
        let Ok(seconds) = u64::try_from(seconds) else { return false };
        let changed = UNIX_EPOCH + Duration::new(seconds, nanos);
        self.now.duration_since(changed).is_ok_and(|age| age >= SETTLE)
    }

    /// Keeps the stamps taken, after a repair that found every entry as activated
    /// (every link it did not skip was read and right). Nothing is written when they
    /// are the ones kept. Failing to write them costs only the next repair's time, so
    /// it is not an error.
    pub(super) fn save(self, etc: &Dir) {
        if self.mounted_in.is_none() || self.taken == self.kept.dirs {
            return;
        }
        let record = Record { dirs: self.taken, ..self.kept };
        if let (Ok(state), Ok(text)) = (etc.open_dir(STATE_DIR), serde_json::to_vec(&record)) {
            // What a repair killed while writing them left.
            let _ = state.remove_stale_temporaries(FILE);
            let _ = state.write_atomic(FILE, &text, 0o600);
        }
    }
}

fn words(stamp: ChangeStamp) -> (u64, u64, i64, u32) {
    (stamp.dev, stamp.ino, stamp.ctime.0, stamp.ctime.1)
}

/// The directory that holds `path` (`""` for an entry of `/etc` itself).
fn parent_of(path: &str) -> String {
    path.rsplit_once('/').map_or("", |(parent, _)| parent).to_owned()
}
