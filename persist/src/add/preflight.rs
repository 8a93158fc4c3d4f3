//! What `persist add` checks before anything is written: the live path and the
//! volume's entry, and room in the volume (see [`super`]).

use rustix::fs::Statx;

use super::{
    AddRequest, Dir, EntryKind, FsError, How, Kind, OsStr, Result, Volume, decl, mount_id, own_mount_id, refused,
    split, tree,
};

/// Room a copy of `name` (in `parent`) takes in a volume, as the faithful copy makes
/// it: the data blocks of each file once (holes stay holes; a hard-linked file is
/// copied once), a block per directory, an inode per entry.
#[derive(Debug, Default)]
struct Footprint {
    bytes: u64,
    entries: u64,
    linked: std::collections::HashSet<(u32, u32, u64)>,
}

/// A block of the volume's file system, as most make directories.
const BLOCK: u64 = 4096;
/// Room kept free beyond a copy's footprint: for the journal, directories that grow,
/// and blocks that round up differently on the volume (a 32nd of the footprint more).
const ROOM_MARGIN: u64 = 1 << 20;

impl Footprint {
    /// Counts one entry of the tree, as its `statx` describes it.
    fn count(&mut self, st: &Statx) {
        self.entries += 1;
        match rustix::fs::FileType::from_raw_mode(u32::from(st.stx_mode)) {
            rustix::fs::FileType::Directory => self.bytes += BLOCK,
            rustix::fs::FileType::RegularFile
                if st.stx_nlink > 1 && !self.linked.insert((st.stx_dev_major, st.stx_dev_minor, st.stx_ino)) => {}
            _ => self.bytes += st.stx_blocks * 512,
        }
    }
}

/// Refuses, before anything is written, a copy of `name` (in the live `parent`) that
/// the volume has no room for: its [`Footprint`] and a margin against the space and
/// inodes left to unprivileged users (the file system's reserve stays for root's
/// daemons). Returns the tree's [`tree::fingerprint`], taken by the same walk: the
/// one the copy is held to (a tree holding another mount is refused here too).
pub(super) fn check_room(parent: &Dir, name: &str, volume: &Dir, mount: &str, path: &str) -> Result<String> {
    let mut footprint = Footprint::default();
    let fingerprint = tree::fingerprint_with(parent, OsStr::new(name), &mut |st| footprint.count(st))?;
    let needed = footprint.bytes + footprint.bytes / 32 + ROOM_MARGIN;
    let stat = rustix::fs::fstatvfs(volume).map_err(|e| FsError {
        op: "read the free space of",
        path: volume.path().to_path_buf(),
        source: e.into(),
    })?;
    let available = stat.f_bavail.saturating_mul(stat.f_frsize);
    let mib = |bytes: u64| bytes.div_ceil(1 << 20);
    if needed > available {
        return Err(refused(
            path,
            format!(
                "its copy needs about {} MiB in {mount}, which has {} MiB free: make room there, or choose another --volume; nothing was changed",
                mib(needed),
                mib(available)
            ),
        ));
    }
    // File systems that allocate inodes as they go report none at all.
    if stat.f_files > 0 && footprint.entries > stat.f_favail {
        return Err(refused(
            path,
            format!(
                "it has {} entries, and {mount} has room for {} more files: make room there, or choose another --volume; nothing was changed",
                footprint.entries, stat.f_favail
            ),
        ));
    }
    Ok(fingerprint)
}

/// The checks of the live path and the volume before an add (see the module docs):
/// the entry's kind and `how`, and the live path's metadata.
pub(super) fn check_target(
    root: &Dir,
    volume: &Volume,
    declaration: &decl::Declaration,
    request: &AddRequest<'_>,
) -> Result<(EntryKind, How, blankslate_sys::fs::Meta)> {
    let (path, mount) = (request.path, volume.mount.as_str());
    for other in declaration.persist.keys() {
        if decl::paths::is_inside(other, path) {
            return Err(refused(path, format!("it holds the persistent root {other}")));
        }
    }
    for entry in declaration.entries() {
        if entry.path == path {
            return Err(refused(path, format!("it is already declared (in {})", entry.root)));
        }
        if decl::paths::is_inside(path, &entry.path) {
            return Err(refused(path, format!("it is inside {}, which is already persisted", entry.path)));
        }
        if decl::paths::is_inside(&entry.path, path) {
            return Err(refused(path, format!("it holds {}, which is persisted on its own", entry.path)));
        }
    }
    let (parent, name) = split(path);
    let target_parent =
        root.open_dir_or_self(parent).map_err(|e| refused(path, format!("its parent cannot be opened: {e}")))?;
    let meta = match target_parent.meta(name) {
        Ok(meta) => meta,
        Err(error) if error.is_not_found() => return Err(refused(path, "it does not exist")),
        Err(error) => return Err(error.into()),
    };
    let kind = match meta.kind {
        Kind::Directory => EntryKind::Directory,
        Kind::File => EntryKind::File,
        Kind::Symlink => return Err(refused(path, "it is a symlink; persist what it points to")),
        Kind::Other => return Err(refused(path, "only directories and regular files can be persisted")),
    };
    let how = match (kind, request.how) {
        (EntryKind::Directory, Some(How::Symlink)) => {
            return Err(refused(
                path,
                "`persist add` links only files; for a directory, declare it with how = \"symlink\" and switch: activation moves its data into the volume and links it",
            ));
        }
        (_, how) => how.unwrap_or_default(),
    };
    if mount_id(&target_parent, name)? != own_mount_id(&target_parent)? {
        return Err(refused(path, "it is a mount point already"));
    }
    match volume.dir.open_dir_or_self(parent) {
        Ok(source_parent) => match source_parent.meta(name) {
            Err(error) if error.is_not_found() => {}
            Ok(_) => {
                return Err(refused(
                    path,
                    format!(
                        "the volume already has data at {mount}{path}; it is never overwritten (move it away first)"
                    ),
                ));
            }
            Err(error) => return Err(error.into()),
        },
        Err(error) if error.is_not_found() => {}
        Err(error) => return Err(refused(path, format!("its parent in the volume cannot be opened: {error}"))),
    }
    Ok((kind, how, meta))
}
