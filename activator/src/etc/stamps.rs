//! Stamps that let a repair skip reading links it has already checked. After a repair
//! that found every entry as activated, each directory's [`ChangeStamp`] is kept in
//! `etc/.blankslate/stamps.json`. On the next repair of the same generation, a
//! directory whose stamp is the same still holds the very links that were checked. A
//! link cannot be changed in place, and replacing, adding or removing one changes its
//! directory's stamp. Its links are then not read again. Copies and directories are
//! always looked at: a file can be written in place, and on tmpfs a write through
//! `mmap` does not change its times.
//!
//! What a stamp proves rests on the kernel setting the change times, so stamps are
//! trusted only:
//! - on a local file system of a kind known to ([`LOCAL`]), for directories on `/etc`'s
//!   own mount: not overlayfs, a read-only image, a network or FUSE file system;
//! - for a directory with no mount point in it (a mount over a link changes no time),
//!   and only when the mount table can be read and holds `/etc`'s mount;
//! - when the change time was at least [`SETTLE`] in the past as the stamp was taken,
//!   so that a later change cannot get the same time (file systems keep times in ticks
//!   as coarse as a second);
//! - in the boot that kept them, and only while the wall clock has not been set back
//!   by [`SET_BACK`] or more since (a later change could then get a kept time).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use blankslate_sys::fs::{ChangeStamp, Dir};
use serde::{Deserialize, Serialize};

use super::{EtcGeneration, STATE_DIR, split};

/// The file in the state directory.
const FILE: &str = "stamps.json";
/// How far in the past a change time must be for a stamp to be kept: a second of the
/// coarsest file system times, and the rest to spare.
const SETTLE: Duration = Duration::from_secs(2);
/// How far back the wall clock may have been set since stamps were kept, in
/// nanoseconds, for them to be trusted: less than what `SETTLE` spares.
const SET_BACK: i64 = 500_000_000;
/// The file systems (`statfs`'s `f_type`) whose times the kernel sets: tmpfs, ext2-4,
/// btrfs, xfs, f2fs.
const LOCAL: [u32; 5] = [0x0102_1994, 0xef53, 0x9123_683e, 0x5846_5342, 0xf2f5_2010];

/// A directory's stamp as kept: device, inode, seconds and nanoseconds.
type Words = (u64, u64, i64, u32);

/// What the file holds: the generation the stamps were taken for, the boot and the
/// wall clock's lead over the boot clock then, and each directory's stamp (`""` is
/// `/etc`).
#[derive(Serialize, Deserialize, PartialEq)]
struct Record {
    generation: u32,
    object: String,
    boot: String,
    clock_lead: i64,
    dirs: BTreeMap<String, Words>,
}

/// What stamps are trusted on: `/etc`'s mount, and the directories below it with a
/// mount point in them, relative to `/etc`.
struct Trust {
    mount_id: u64,
    mounted_in: HashSet<String>,
}

/// The stamps of one repair: those kept from the last one, and those taken now.
pub(super) struct Stamps {
    kept: Record,
    /// `None` when no stamp is trusted or kept (see the module's list).
    trust: Option<Trust>,
    /// Whether each directory asked about was vouched for, by path.
    vouched: HashMap<String, bool>,
    /// The settled stamps taken during this repair.
    taken: BTreeMap<String, Words>,
    now: SystemTime,
}

impl Stamps {
    /// The stamps kept for `to` in `etc` (none if they were kept for another
    /// generation, in another boot, before the clock was set back, or cannot be read:
    /// then every link is read), and what they are trusted on.
    pub(super) fn load(etc: Option<&Dir>, to: &EtcGeneration) -> Stamps {
        let (boot, clock_lead, now) = (blankslate_sys::boot_id(), blankslate_sys::wall_clock_lead(), SystemTime::now());
        let kept = etc
            .and_then(|etc| etc.open_dir(STATE_DIR).and_then(|state| state.read(FILE)).ok())
            .and_then(|text| serde_json::from_slice::<Record>(&text).ok())
            .filter(|record| {
                (record.generation, &record.object, &record.boot) == (to.generation, &to.object, &boot)
                    && !boot.is_empty()
                    && clock_lead > record.clock_lead.saturating_sub(SET_BACK)
            });
        // Stamps carried over keep the lead they were judged settled by, when larger:
        // small steps back never add up unseen.
        let kept = Record {
            generation: to.generation,
            object: to.object.clone(),
            clock_lead: kept.as_ref().map_or(clock_lead, |record| record.clock_lead.max(clock_lead)),
            dirs: kept.map(|record| record.dirs).unwrap_or_default(),
            boot,
        };
        let trust = etc.and_then(trust_in);
        Stamps { kept, trust, vouched: HashMap::new(), taken: BTreeMap::new(), now }
    }

    /// Whether the links in the directory at `path`, open as `dir`, are those the last
    /// repair checked. The first question about a directory takes its stamp, before
    /// any of its links is read, so a change made while they are read is seen next
    /// time. A stamp that cannot be taken vouches for nothing.
    pub(super) fn vouch(&mut self, path: &str, dir: &Dir) -> bool {
        if let Some(&vouched) = self.vouched.get(path) {
            return vouched;
        }
        let stamp = match &self.trust {
            Some(trust) if !trust.mounted_in.contains(path) => {
                dir.change_stamp().ok().filter(|stamp| stamp.mount_id == trust.mount_id)
            }
            _ => None,
        };
        let vouched = stamp.map(words).is_some_and(|words| {
            let vouched = self.kept.dirs.get(path) == Some(&words);
            if vouched || self.settled(words) {
                self.taken.insert(path.to_owned(), words);
            }
            vouched
        });
        self.vouched.insert(path.to_owned(), vouched);
        vouched
    }

    fn settled(&self, (_, _, seconds, nanos): Words) -> bool {
        let changed = u64::try_from(seconds).ok().and_then(|seconds| {
            UNIX_EPOCH.checked_add(Duration::from_secs(seconds))?.checked_add(Duration::from_nanos(nanos.into()))
        });
        changed.is_some_and(|changed| self.now.duration_since(changed).is_ok_and(|age| age >= SETTLE))
    }

    /// Keeps the stamps taken, after a repair that found every entry as activated
    /// (every link it did not skip was read and right). Nothing is written when they
    /// are the ones kept. Failing to write them costs only the next repair's time, so
    /// it is not an error.
    pub(super) fn save(self, etc: &Dir) {
        // Without a boot id no stamp is ever trusted again: keep none.
        if self.trust.is_none() || self.kept.boot.is_empty() || self.taken == self.kept.dirs {
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

/// What stamps are trusted on in `etc`; `None` when it is on a file system whose
/// times the kernel does not set, or its mount points cannot be told.
fn trust_in(etc: &Dir) -> Option<Trust> {
    // The magic numbers are 32 bits, in a word that is signed on some targets.
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let kind = etc.file_system_type().ok()? as u32;
    if !LOCAL.contains(&kind) {
        return None;
    }
    let (mount_id, points) = blankslate_sys::mount::below_dir(etc)?;
    let mounted_in = points.iter().map(|point| split(&String::from_utf8_lossy(point)).0.to_owned()).collect();
    Some(Trust { mount_id, mounted_in })
}

fn words(stamp: ChangeStamp) -> Words {
    (stamp.dev, stamp.ino, stamp.ctime.0, stamp.ctime.1)
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use blankslate_sys::fs::Dir;

    /// Stamps are trusted on tmpfs, and never on a file system whose times the kernel
    /// does not keep as a local file system's (here `/proc`).
    #[test]
    fn stamps_are_trusted_on_tmpfs_and_not_on_proc() {
        let dir = |path: &str| Dir::open_root(Path::new(path)).unwrap();
        assert!(super::trust_in(&dir("/dev/shm")).is_some());
        assert!(super::trust_in(&dir("/proc")).is_none());
    }
}
