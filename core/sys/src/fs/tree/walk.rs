//! Describing a tree: [`walk`], its digest ([`describe`]) and [`fingerprint`].

use std::collections::HashMap;
use std::ffi::{OsStr, OsString};
use std::os::fd::AsFd;
use std::os::unix::ffi::OsStrExt;

use rustix::fs::Statx;

use super::data::{Job, Pipeline};
use super::{Digest, Dir, Node, NodeKind, dir_of, list_xattrs, open_directory, open_file, proc_path, stat, wrap};
use super::{Result, XattrTarget};

/// Describes entry `name` of `dir` and everything below it (see the module docs);
/// with `contents` false, only as `statx` describes each entry (kind, owner, mode,
/// times, size, inode and change time), reading no file, link or attribute: what
/// [`fingerprint`] hashes.
pub fn walk(dir: &Dir, name: &OsStr, contents: bool) -> Result<Vec<Node>> {
    let mut nodes = Vec::new();
    walk_each(dir, name, contents, &mut |node| nodes.push(node))?;
    Ok(nodes)
}

/// The [`Digest`] of [`walk`] with contents, made as the walk goes: memory does not
/// grow with the tree.
pub fn describe(dir: &Dir, name: &OsStr) -> Result<Digest> {
    let mut digest = Digest::hasher();
    walk_each(dir, name, true, &mut |node| node.hash_into(&mut digest))?;
    Ok(Digest::of(&digest))
}

/// A hex blake3 over what [`walk`] without contents sees (one `statx` an entry, and a
/// directory listed): it changes whenever anything in the tree does.
pub fn fingerprint(dir: &Dir, name: &OsStr) -> Result<String> {
    // Hashed as the walk goes: memory does not grow with the tree.
    let mut hasher = blake3::Hasher::new();
    walk_each(dir, name, false, &mut |node| {
        hasher.update(format!("{node:?}\n").as_bytes());
    })?;
    Ok(hasher.finalize().to_hex().to_string())
}

/// [`walk`], handing each node to `visit` in turn instead of holding them all.
fn walk_each(dir: &Dir, name: &OsStr, contents: bool, visit: &mut dyn FnMut(Node)) -> Result<()> {
    let top = stat(dir, name, dir.path())?;
    let mut walker = Walker { contents, nodes: Pipeline::new(visit), inodes: HashMap::new(), mount_id: top.stx_mnt_id };
    walker.node(dir, name, OsStr::new(""), &top)?;
    walker.nodes.finish().map(drop)
}

struct Walker<'a> {
    contents: bool,
    /// Where the nodes go, in order; files' contents hashed by its worker.
    nodes: Pipeline<'a>,
    inodes: HashMap<(u32, u32, u64), OsString>,
    mount_id: u64,
}

impl Walker<'_> {
    fn node(&mut self, dir: &Dir, name: &OsStr, rel: &OsStr, st: &Statx) -> Result<()> {
        let shown = dir.path().join(name);
        if st.stx_mnt_id != self.mount_id {
            return Err(super::TreeError::MountPoint(shown));
        }
        let mut node = Node::of(rel, st);
        let mut children = None;
        let mut hash = None;
        match node.kind {
            NodeKind::Directory => {
                let fd = open_directory(dir, name, dir.path())?;
                if self.contents {
                    node.xattrs = list_xattrs(&XattrTarget::Fd(fd.as_fd()), &shown)?;
                }
                children = Some(dir_of(&fd, &shown)?);
            }
            NodeKind::File => {
                if st.stx_nlink > 1 {
                    let key = (st.stx_dev_major, st.stx_dev_minor, st.stx_ino);
                    if let Some(first) = self.inodes.get(&key) {
                        node.same_inode_as = Some(first.clone());
                    } else {
                        self.inodes.insert(key, rel.to_os_string());
                    }
                }
                if self.contents {
                    let (fd, _, _) = open_file(dir, name, st, dir.path())?;
                    node.xattrs = list_xattrs(&XattrTarget::Fd(fd.as_fd()), &shown)?;
                    if node.same_inode_as.is_none() {
                        hash = Some(Job::Hash { file: fd, shown: shown.clone() });
                    }
                }
            }
            NodeKind::Symlink if self.contents => {
                let target = rustix::fs::readlinkat(dir, name, Vec::new()).map_err(wrap("read symlink", &shown))?;
                node.link_target = Some(OsString::from(OsStr::from_bytes(target.as_bytes())));
                node.xattrs = list_xattrs(&XattrTarget::Link(proc_path(dir, name)), &shown)?;
            }
            _ if self.contents => node.xattrs = list_xattrs(&XattrTarget::Link(proc_path(dir, name)), &shown)?,
            _ => {}
        }
        if !self.contents {
            // What a fingerprint stands on: a new inode or a changed ctime means
            // someone touched the entry (its data, owner, mode, attributes; a symlink
            // is never changed in place).
            let change = format!("ino {} ctime {}.{}", st.stx_ino, st.stx_ctime.tv_sec, st.stx_ctime.tv_nsec);
            node.xattrs.push((OsString::from(super::CHANGE), change.into_bytes()));
        }
        match hash {
            Some(job) => self.nodes.node_with(Some(node), job)?,
            None => self.nodes.node(node)?,
        }
        if let Some(child_dir) = children {
            for (child, _) in child_dir.entries()? {
                let child_stat = stat(&child_dir, &child, &shown)?;
                let child_rel = if rel.is_empty() { child.clone() } else { join(rel, &child) };
                self.node(&child_dir, &child, &child_rel, &child_stat)?;
            }
        }
        Ok(())
    }
}

fn join(a: &OsStr, b: &OsStr) -> OsString {
    let mut out = a.to_os_string();
    out.push("/");
    out.push(b);
    out
}
