//! Copying a tree: [`copy`], [`copy_with`] and [`copy_described`].

use std::collections::HashMap;
use std::ffi::{OsStr, OsString};
use std::os::fd::AsFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use rustix::fs::{AtFlags, Mode, OFlags, Statx};

use super::data::{Copied, Job, Made, Pipeline};
use super::{CopyStats, Detail, Digest, Dir, Node, NodeKind, Result, TreeError, XattrTarget, Xattrs, wrap};
use super::{dir_of, list_xattrs, open_at, open_directory, open_file, perm, proc_path, set_xattrs, stat, timestamps};

/// A directory whose owner, mode, attributes and times are applied once the whole
/// copy is done.
struct PendingDir {
    /// Relative to the copy's top; empty for the top itself.
    path: PathBuf,
    stat: Statx,
    xattrs: Xattrs,
}

struct Copier<'a> {
    /// Where the nodes go, in order (to the digest when the copy describes), and
    /// whose worker copies the files' data.
    nodes: Pipeline<'a>,
    nested: NestedMounts,
    durable: Durable,
    /// The directory holding the copy's top, and the top's name there.
    dest_parent: &'a Dir,
    dest_name: &'a OsStr,
    /// Inode of a hard-linked source file → the copy's path relative to `dest_parent`,
    /// the source's link count, how many of its names the copy met, and the first
    /// name's node (when the copy describes: the others share its attributes).
    linked: HashMap<(u32, u32, u64), Linked>,
    directories: Vec<PendingDir>,
    mount_id: u64,
    stats: CopyStats,
    /// Whether the source is described as a walk of its metadata would describe it,
    /// on the way, and each file's data read back and compared as it is written
    /// ([`copy_described`]).
    describes: bool,
}

/// A hard-linked source file met by the copy.
struct Linked {
    copy: PathBuf,
    links: u32,
    met: u32,
    first: Option<(OsString, Xattrs)>,
}

/// What a copy does with a directory inside the tree that another file system is
/// mounted on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NestedMounts {
    /// Fails: the data would be split across two places (`persist add`).
    Refuse,
    /// Copies the directory alone, empty, with the mounted root's owner and mode: the
    /// place where the system mounts that file system as before (`adopt`, an ESP at
    /// `/boot/efi`).
    LeaveEmpty,
}

/// When a copy's entries reach the disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durable {
    /// Each file and directory is fsynced as it is made (`persist add`, `adopt`: the
    /// next step trusts the copy at once).
    EachEntry,
    /// Nothing is fsynced: the caller syncs the whole file system once, before it
    /// trusts the copy (the net: thousands of small files at shutdown).
    ByCaller,
}

/// Copies entry `name` of `source` (a directory tree or a single non-directory) to
/// `dest_name` in `dest` (which must not exist), as described in the module docs.
pub fn copy(source: &Dir, name: &OsStr, dest: &Dir, dest_name: &OsStr) -> Result<CopyStats> {
    copy_with(source, name, dest, dest_name, NestedMounts::Refuse, Durable::EachEntry)
}

/// [`copy`], which also verifies the data and describes the rest: each file's data is
/// read back as it is written and compared with what was read from the source (a
/// difference is an error), and the source is described as a walk of everything but
/// the files' contents would describe it, from the same `statx` and descriptors the
/// copy used, so that [`verify`](super::verify) need read neither tree's data again
/// to compare the copy with it. The description is the original's as long as the
/// original did not change meanwhile: a caller holds it to that with a
/// [`fingerprint`](super::fingerprint) taken before the copy and one after.
pub fn copy_described(source: &Dir, name: &OsStr, dest: &Dir, dest_name: &OsStr) -> Result<(CopyStats, Digest)> {
    let mut digest = Digest::hasher();
    let how = (NestedMounts::Refuse, Durable::EachEntry);
    let stats =
        copy_inner((source, name), (dest, dest_name), how, Some(&mut |node: Node| node.hash_into(&mut digest)))?;
    Ok((stats, Digest::of(&digest, Detail::Metadata)))
}

/// [`copy`], with what to do with directories another file system is mounted on, and
/// when the copy reaches the disk.
pub fn copy_with(
    source: &Dir,
    name: &OsStr,
    dest: &Dir,
    dest_name: &OsStr,
    nested: NestedMounts,
    durable: Durable,
) -> Result<CopyStats> {
    copy_inner((source, name), (dest, dest_name), (nested, durable), None)
}

/// [`copy_with`] of entry `from` to `to` (each a directory and a name in it), `how`
/// its nested mounts and durability; the source's nodes handed to `describe` in the
/// order a walk makes them, when given.
fn copy_inner(
    (source, name): (&Dir, &OsStr),
    (dest, dest_name): (&Dir, &OsStr),
    (nested, durable): (NestedMounts, Durable),
    describe: Option<&mut dyn FnMut(Node)>,
) -> Result<CopyStats> {
    let top = stat(source, name, source.path())?;
    let mut ignore = |_: Node| {};
    let describes = describe.is_some();
    let mut copier = Copier {
        nodes: Pipeline::new(describe.unwrap_or(&mut ignore)),
        nested,
        durable,
        dest_parent: dest,
        dest_name,
        linked: HashMap::new(),
        directories: Vec::new(),
        mount_id: top.stx_mnt_id,
        stats: CopyStats::default(),
        describes,
    };
    copier.entry(source, name, dest, dest_name, Path::new(""), &top)?;
    let Copier { nodes, linked, directories, mut stats, .. } = copier;
    stats.bytes = nodes.finish()?;
    stats.linked_outside = linked.values().filter(|linked| linked.met < linked.links).count() as u64;
    // Deepest first, so that setting a directory's times is never undone by work
    // inside it.
    let mut pending = directories;
    pending.sort_by_key(|dir| std::cmp::Reverse(dir.path.components().count()));
    for dir in &pending {
        let open = if dir.path.as_os_str().is_empty() {
            dest.open_dir(dest_name)?
        } else {
            dest.open_dir(Path::new(dest_name).join(&dir.path))?
        };
        let shown = open.path().to_path_buf();
        let (uid, gid) = (rustix::fs::Uid::from_raw(dir.stat.stx_uid), rustix::fs::Gid::from_raw(dir.stat.stx_gid));
        rustix::fs::fchown(&open, Some(uid), Some(gid)).map_err(wrap("set owner of", &shown))?;
        rustix::fs::fchmod(&open, Mode::from_raw_mode(perm(&dir.stat))).map_err(wrap("set mode of", &shown))?;
        set_xattrs(&XattrTarget::Fd(open.as_fd()), &dir.xattrs, &shown)?;
        if durable == Durable::EachEntry {
            open.sync()?;
        }
        rustix::fs::futimens(&open, &timestamps(&dir.stat)).map_err(wrap("set times of", &shown))?;
    }
    if durable == Durable::EachEntry {
        dest.sync()?;
    }
    Ok(stats)
}

impl Copier<'_> {
    fn entry(&mut self, from: &Dir, name: &OsStr, to: &Dir, to_name: &OsStr, rel: &Path, st: &Statx) -> Result<()> {
        let shown = from.path().join(name);
        let kind = NodeKind::of(u32::from(st.stx_mode));
        if st.stx_mnt_id != self.mount_id {
            if self.nested == NestedMounts::LeaveEmpty && kind == NodeKind::Directory {
                rustix::fs::mkdirat(to, to_name, Mode::from_raw_mode(0o700))
                    .map_err(wrap("create directory", to.path().join(to_name)))?;
                self.directories.push(PendingDir { path: rel.to_path_buf(), stat: *st, xattrs: Vec::new() });
                self.stats.directories += 1;
                return Ok(());
            }
            return Err(TreeError::MountPoint(shown));
        }
        let mut node = self.describes.then(|| Node::of(rel.as_os_str(), st));
        match kind {
            NodeKind::Directory => {
                rustix::fs::mkdirat(to, to_name, Mode::from_raw_mode(0o700))
                    .map_err(wrap("create directory", to.path().join(to_name)))?;
                let source_fd = open_directory(from, name, from.path())?;
                let source = dir_of(&source_fd, &shown)?;
                let xattrs = list_xattrs(&XattrTarget::Fd(source_fd.as_fd()), &shown)?;
                let target = to.open_dir(to_name)?;
                // Described before what it holds, as a walk does.
                self.describe(node.take(), |node| node.xattrs.clone_from(&xattrs))?;
                for (child, _) in source.entries()? {
                    let child_stat = stat(&source, &child, &shown)?;
                    self.entry(&source, &child, &target, &child, &rel.join(&child), &child_stat)?;
                }
                self.directories.push(PendingDir { path: rel.to_path_buf(), stat: *st, xattrs });
                self.stats.directories += 1;
            }
            NodeKind::File => {
                let key = (st.stx_dev_major, st.stx_dev_minor, st.stx_ino);
                if st.stx_nlink > 1 {
                    if let Some(linked) = self.linked.get_mut(&key) {
                        // Only names made by this copy are on the way, in directories
                        // that are still root 0700.
                        rustix::fs::linkat(self.dest_parent, &linked.copy, to, to_name, AtFlags::empty())
                            .map_err(wrap("hard-link", to.path().join(to_name)))?;
                        linked.met += 1;
                        self.stats.hard_links += 1;
                        if let (Some(mut node), Some((first, xattrs))) = (node, &linked.first) {
                            node.same_inode_as = Some(first.clone());
                            node.xattrs.clone_from(xattrs);
                            self.nodes.node(node)?;
                        }
                        return Ok(());
                    }
                }
                let (xattrs, job) = self.file(from, name, to, to_name, st)?;
                if st.stx_nlink > 1 {
                    let first = node.as_ref().map(|node| (node.path.clone(), xattrs.clone()));
                    let copy = Path::new(self.dest_name).join(rel);
                    self.linked.insert(key, Linked { copy, links: st.stx_nlink, met: 1, first });
                }
                if let Some(node) = &mut node {
                    node.xattrs = xattrs;
                }
                self.nodes.node_with(node, job)?;
                self.stats.files += 1;
            }
            NodeKind::Symlink => {
                let target = rustix::fs::readlinkat(from, name, Vec::new()).map_err(wrap("read symlink", &shown))?;
                rustix::fs::symlinkat(target.as_bytes(), to, to_name)
                    .map_err(wrap("create symlink", to.path().join(to_name)))?;
                let xattrs = Self::metadata_by_name(from, name, to, to_name, st, false)?;
                let target = OsString::from(OsStr::from_bytes(target.as_bytes()));
                self.describe(node, |node| (node.xattrs, node.link_target) = (xattrs, Some(target)))?;
                self.stats.symlinks += 1;
            }
            _ => {
                let dev = rustix::fs::makedev(st.stx_rdev_major, st.stx_rdev_minor);
                rustix::fs::mknodat(to, to_name, kind.file_type(), Mode::from_raw_mode(0o600), dev)
                    .map_err(wrap("create special file", to.path().join(to_name)))?;
                let xattrs = Self::metadata_by_name(from, name, to, to_name, st, true)?;
                self.describe(node, |node| node.xattrs = xattrs)?;
                self.stats.special += 1;
            }
        }
        Ok(())
    }

    /// Completes `node` (made when the copy describes) with what copying it found,
    /// and adds it to the description.
    fn describe(&mut self, node: Option<Node>, complete: impl FnOnce(&mut Node)) -> Result<()> {
        match node {
            Some(mut node) => {
                complete(&mut node);
                self.nodes.node(node)
            }
            None => Ok(()),
        }
    }

    /// Owner, mode, attributes and times of an entry that cannot be opened; returns
    /// the source's extended attributes.
    fn metadata_by_name(
        from: &Dir,
        name: &OsStr,
        to: &Dir,
        to_name: &OsStr,
        st: &Statx,
        set_mode: bool,
    ) -> Result<Xattrs> {
        let shown = to.path().join(to_name);
        let (uid, gid) = (rustix::fs::Uid::from_raw(st.stx_uid), rustix::fs::Gid::from_raw(st.stx_gid));
        rustix::fs::chownat(to, to_name, Some(uid), Some(gid), AtFlags::SYMLINK_NOFOLLOW)
            .map_err(wrap("set owner of", &shown))?;
        if set_mode {
            // Not a symlink (mknodat made it just now, in a directory only root can
            // write), so chmodat's following of a final link does not arise.
            rustix::fs::chmodat(to, to_name, Mode::from_raw_mode(perm(st)), AtFlags::empty())
                .map_err(wrap("set mode of", &shown))?;
        }
        let xattrs = list_xattrs(&XattrTarget::Link(proc_path(from, name)), &from.path().join(name))?;
        set_xattrs(&XattrTarget::Link(proc_path(to, to_name)), &xattrs, &shown)?;
        rustix::fs::utimensat(to, to_name, &timestamps(st), AtFlags::SYMLINK_NOFOLLOW)
            .map_err(wrap("set times of", &shown))?;
        Ok(xattrs)
    }

    /// A regular file, opened on both sides: returns the source's extended
    /// attributes, and the job that copies the rest (data extent by extent, holes
    /// left as holes; owner, mode, attributes, fsync, times: [`Job::Copy`]), the data
    /// read back and compared as it is written when the copy describes.
    fn file(&self, from: &Dir, name: &OsStr, to: &Dir, to_name: &OsStr, st: &Statx) -> Result<(Xattrs, Job)> {
        let shown = from.path().join(name);
        let (source, size, dense) = open_file(from, name, st, from.path())?;
        let access = if self.describes { OFlags::RDWR } else { OFlags::WRONLY };
        let dest = open_at(to, to_name, access | OFlags::CREATE | OFlags::EXCL, 0o600, to.path())?;
        let xattrs = list_xattrs(&XattrTarget::Fd(source.as_fd()), &shown)?;
        let made = Made {
            file: dest,
            shown: to.path().join(to_name),
            owner: (st.stx_uid, st.stx_gid),
            mode: perm(st),
            xattrs: xattrs.clone(),
            times: timestamps(st),
        };
        let from = Copied { file: source, size, dense, shown };
        let job = Job::Copy { from, to: made, check: self.describes, sync: self.durable == Durable::EachEntry };
        Ok((xattrs, job))
    }
}
