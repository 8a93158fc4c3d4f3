//! The store objects this boot has re-hashed: `run/blankslate/verified/OBJECT`, a
//! file each holding the boot's id, in the root's `/run`.
//!
//! A switch re-hashes the `/etc` object it is about to point `/etc/static` at
//! (`Store::check_object`), unless this boot already did: once an object was found
//! whole, a second re-hash in the same boot reads what the first read (mostly from
//! the page cache) of an object that is read-only and root's, and would cost as much
//! as the whole `/etc` again for a switch that changes three files. A record counts
//! only for the boot that made it: it holds the kernel's boot id (`/run` is a tmpfs
//! on a running system, but `switch --root` may work on a root whose `run/` is not).
//! It counts only where root alone could have made it: `run`, `run/blankslate` and
//! the directory root's and writable by no one else, the record a regular file of
//! root's. `store verify` and boot always re-hash.

use std::path::Path;

use blankslate_sys::fs::{Dir, FsError, Kind};

/// Where the records are, below the root.
pub const VERIFIED_DIR: &str = "run/blankslate/verified";

/// Whether this boot re-hashed `object` and found it whole.
#[must_use]
pub fn verified_this_boot(root: &Dir, object: &str) -> bool {
    let boot = blankslate_sys::boot_id();
    let only_root = |uid: u32, mode: u32| uid == 0 && mode & 0o022 == 0;
    let Ok(mut dir) = root.try_clone() else { return false };
    for component in Path::new(VERIFIED_DIR) {
        let Ok(next) = dir.open_dir(component) else { return false };
        if !next.own_meta().is_ok_and(|meta| only_root(meta.uid, meta.mode)) {
            return false;
        }
        dir = next;
    }
    !boot.is_empty()
        && dir.meta(object).is_ok_and(|meta| meta.kind == Kind::File && only_root(meta.uid, meta.mode))
        && dir.read(object).is_ok_and(|stamped| stamped == boot.as_bytes())
}

/// Records that `object` was just re-hashed and found whole, in this boot. Made as a
/// new file, with no temporary a kill could leave behind: a record cut short holds
/// less than the boot id, and counts for nothing (the next switch re-hashes).
pub fn record_verified(root: &Dir, object: &str) -> Result<(), FsError> {
    let boot = blankslate_sys::boot_id();
    if boot.is_empty() {
        return Ok(());
    }
    let dir = root.create_dir_all(VERIFIED_DIR, 0o700)?;
    match dir.remove_file(object) {
        Err(error) if !error.is_not_found() => return Err(error),
        _ => {}
    }
    dir.create_file(object, boot.as_bytes(), 0o600).map(drop)
}

#[cfg(test)]
mod tests {
    use super::{VERIFIED_DIR, record_verified, verified_this_boot};
    use blankslate_sys::fs::Dir;

    #[test]
    fn a_record_counts_only_where_root_alone_made_it() {
        let scratch = tempfile::tempdir().unwrap();
        let root = Dir::open_root(scratch.path()).unwrap();
        let object = "0123abcd-etc";
        assert!(!verified_this_boot(&root, object), "nothing recorded yet");
        record_verified(&root, object).unwrap();
        let is_root = rustix::process::geteuid().is_root();
        assert_eq!(verified_this_boot(&root, object), is_root, "recorded (by root)");
        assert!(!verified_this_boot(&root, "other-etc"), "another object");
        // A directory others may write: a record there could be anyone's.
        let dir = scratch.path().join(VERIFIED_DIR);
        std::fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(0o777)).unwrap();
        assert!(!verified_this_boot(&root, object), "in a directory others may write");
        std::fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(0o700)).unwrap();
        // Another boot's.
        std::fs::write(dir.join(object), "another boot").unwrap();
        assert!(!verified_this_boot(&root, object), "another boot's record");
        record_verified(&root, object).unwrap();
        assert_eq!(verified_this_boot(&root, object), is_root, "this boot's again");
        // A parent others may write: the directory could have been put there.
        let run = scratch.path().join("run");
        std::fs::set_permissions(&run, std::os::unix::fs::PermissionsExt::from_mode(0o777)).unwrap();
        assert!(!verified_this_boot(&root, object), "below a directory others may write");
        std::fs::set_permissions(&run, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
        // Not a regular file.
        std::fs::remove_file(dir.join(object)).unwrap();
        std::os::unix::fs::symlink("/etc/passwd", dir.join(object)).unwrap();
        assert!(!verified_this_boot(&root, object), "a symlink");
    }
}
