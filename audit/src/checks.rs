//! The checks that are not a walk: every managed `/etc` entry against the manifest,
//! every persisted path against its volume. Each looks only at its own paths.

use std::collections::HashMap;

use blankslate_core::activation::{self as etc, Active};
use blankslate_core::decl::{Declaration, EntryKind, How, Owner, ResolvedEntry, UserDb};
use blankslate_core::fs::{Dir, FsError, Kind, Meta};
use blankslate_core::manifest::{EtcKind, content_hash};

use crate::{Class, Finding};

fn split(path: &str) -> (&str, &str) {
    let path = path.trim_start_matches('/');
    path.rsplit_once('/').unwrap_or(("", path))
}

/// Directories below one base, opened once; `None` for one that is not there (or
/// not a directory one can enter without following a symlink).
struct Dirs<'a> {
    base: &'a Dir,
    open: HashMap<String, Option<Dir>>,
}

impl<'a> Dirs<'a> {
    fn new(base: &'a Dir) -> Self {
        Dirs { base, open: HashMap::new() }
    }

    fn get(&mut self, relative: &str) -> Option<&Dir> {
        if relative.is_empty() {
            return Some(self.base);
        }
        self.open.entry(relative.to_owned()).or_insert_with(|| self.base.open_dir(relative).ok()).as_ref()
    }

    /// `lstat` of `path` (relative to the base), `None` if it is not there.
    fn meta(&mut self, path: &str) -> Option<(Meta, &Dir, String)> {
        let (parent, name) = split(path);
        let dir = self.get(parent)?;
        match dir.meta(name) {
            Ok(meta) => Some((meta, dir, name.to_owned())),
            Err(_) => None,
        }
    }
}

fn found(kind: Kind) -> &'static str {
    match kind {
        Kind::File => "a regular file",
        Kind::Directory => "a directory",
        Kind::Symlink => "a symlink",
        Kind::Other => "a special file",
    }
}

/// `/etc/static` and every manifest entry, against what `/etc` holds.
pub fn etc_drift(root: &Dir, active: &Active, users: &UserDb, out: &mut Vec<Finding>) {
    let Ok(etc_dir) = root.open_dir("etc") else {
        out.push(Finding::new(Class::EtcDrift, "missing", b"/etc".to_vec(), "/etc is not there".into()));
        return;
    };
    let mut dirs = Dirs::new(&etc_dir);
    let mut push = |kind: &'static str, path: &str, bytes: u64, reason: String| {
        let mut finding = Finding::new(Class::EtcDrift, kind, format!("/etc/{path}").into_bytes(), reason);
        finding.bytes = bytes;
        finding.files = u64::from(bytes > 0);
        out.push(finding);
    };
    match dirs.meta(etc::STATIC) {
        None => push("missing", etc::STATIC, 0, format!("should link to {}", active.static_target)),
        Some((meta, dir, name)) if meta.kind == Kind::Symlink => {
            let target = dir.read_link(&name).map(|t| t.to_string_lossy().into_owned()).unwrap_or_default();
            if target != active.static_target {
                push("points-elsewhere", etc::STATIC, 0, format!("links to {target}, not {}", active.static_target));
            }
        }
        Some((meta, ..)) => {
            push("replaced", etc::STATIC, 0, format!("{} stands where the link goes", found(meta.kind)));
        }
    }
    for (path, entry) in &active.manifest.entries {
        let wanted = match &entry.kind {
            EtcKind::Link => Some(format!("/etc/static/{path}")),
            EtcKind::DirectLink { target } => Some(target.clone()),
            EtcKind::Copy => None,
        };
        let Some((meta, dir, name)) = dirs.meta(path) else {
            push("missing", path, 0, "declared, but not there".into());
            continue;
        };
        match (wanted, meta.kind) {
            (Some(wanted), Kind::Symlink) => {
                let target = dir.read_link(&name).map(|t| t.to_string_lossy().into_owned()).unwrap_or_default();
                if target != wanted {
                    push("points-elsewhere", path, 0, format!("links to {target}, not {wanted}"));
                }
            }
            (Some(wanted), Kind::File) => push(
                "replaced-by-file",
                path,
                meta.size,
                format!("a regular file replaced the link to {wanted}: edits here are lost at reboot"),
            ),
            (Some(_), kind) => push("replaced", path, 0, format!("{} stands where the link goes", found(kind))),
            (None, Kind::File) => {
                let hash = dir.read(&name).map(|b| content_hash(&b)).unwrap_or_default();
                if hash != entry.hash {
                    push("edited", path, meta.size, "contents differ from the generation's: lost at reboot".into());
                }
                let mode = entry.mode.as_deref().and_then(|m| u32::from_str_radix(m, 8).ok()).unwrap_or(0o644);
                if meta.mode != mode {
                    push("wrong-mode", path, 0, format!("mode {:04o}, declared {mode:04o}", meta.mode));
                }
                if let (Some(uid), Some(gid)) = (users.uid(&entry.user), users.gid(&entry.group)) {
                    if (meta.uid, meta.gid) != (uid, gid) {
                        let reason =
                            format!("owner {}:{}, declared {}:{}", meta.uid, meta.gid, entry.user, entry.group);
                        push("wrong-owner", path, 0, reason);
                    }
                }
            }
            (None, kind) => push("replaced", path, 0, format!("{} stands where the copy goes", found(kind))),
        }
    }
}

fn not_found(error: &FsError) -> bool {
    error.is_not_found()
}

/// Owner and mode of a persisted path's source against the declaration.
fn check_owner(path: &str, meta: &Meta, owner: &Owner, users: &UserDb, out: &mut Vec<Finding>) {
    if meta.mode != owner.mode.bits() {
        let reason = format!("mode {:04o}, declared {}", meta.mode, owner.mode);
        out.push(Finding::new(Class::Persist, "wrong-mode", path.as_bytes().to_vec(), reason));
    }
    if let (Some(uid), Some(gid)) = (users.uid(&owner.user), users.gid(&owner.group)) {
        if (meta.uid, meta.gid) != (uid, gid) {
            let reason = format!("owner {}:{}, declared {}:{}", meta.uid, meta.gid, owner.user, owner.group);
            out.push(Finding::new(Class::Persist, "wrong-owner", path.as_bytes().to_vec(), reason));
        }
    }
}

/// A file declared `how = "copy"`: a regular file of the root's own (not the volume's
/// mounted), with the volume's contents and the declared owner and mode.
#[allow(clippy::too_many_arguments)]
fn check_copy(
    entry: &ResolvedEntry<'_>,
    meta: &Meta,
    source: &Meta,
    dir: &Dir,
    name: &str,
    volume_copy: Option<&[u8]>,
    users: &UserDb,
    out: &mut Vec<Finding>,
) {
    let path = entry.path.as_str();
    let mut push = |kind: &'static str, bytes: u64, reason: String| {
        let mut finding = Finding::new(Class::Persist, kind, path.as_bytes().to_vec(), reason);
        finding.bytes = bytes;
        finding.files = u64::from(bytes > 0);
        out.push(finding);
    };
    if meta.kind != Kind::File {
        push("replaced", 0, format!("{} stands where the copy goes", found(meta.kind)));
    } else if meta.identity() == source.identity() {
        let reason =
            format!("bind-mounted from {}, declared a copy: a program that replaces it gets EBUSY", entry.root);
        push("not-copied", 0, reason);
    } else {
        if dir.read(name).ok().as_deref() != volume_copy {
            let reason = format!(
                "changed since it was last written back to {}: a reboot loses the change unless `blankslate persist \
                 sync` writes it (is blankslate-sync.service running?)",
                entry.root
            );
            push("not-written-back", meta.size, reason);
        }
        check_owner(path, meta, &entry.entry.owner, users, out);
    }
}

/// The directory `parent` (relative, `""` for the top) of a volume.
fn source_in(volume: &Dir, parent: &str) -> Result<Dir, FsError> {
    if parent.is_empty() { volume.try_clone() } else { volume.open_dir(parent) }
}

/// Every persisted path: mounted (or linked) from its volume, with its owner and mode.
pub fn persist_health(root: &Dir, declaration: &Declaration, users: &UserDb, out: &mut Vec<Finding>) {
    let mut entries = declaration.entries();
    entries.sort_by(|a, b| a.path.cmp(&b.path));
    let mut volumes: HashMap<&str, Option<Dir>> = HashMap::new();
    let mut targets = Dirs::new(root);
    let push = |out: &mut Vec<Finding>, kind: &'static str, path: &str, bytes: u64, reason: String| {
        let mut finding = Finding::new(Class::Persist, kind, path.as_bytes().to_vec(), reason);
        finding.bytes = bytes;
        finding.files = u64::from(bytes > 0);
        out.push(finding);
    };
    for entry in &entries {
        let path = entry.path.as_str();
        let volume = volumes.entry(entry.root).or_insert_with(|| {
            let volume = root.open_dir(entry.root.trim_start_matches('/'));
            if let Err(error) = &volume {
                let reason = format!("the persistent volume is not there: {}", error.source);
                out.push(Finding::new(Class::Persist, "volume-missing", entry.root.as_bytes().to_vec(), reason));
            }
            volume.ok()
        });
        let Some(volume) = volume.as_ref() else { continue };
        let (parent, name) = split(path);
        let source = source_in(volume, parent).and_then(|d| d.meta(name));
        let source = match source {
            Ok(meta) => meta,
            Err(error) if not_found(&error) => {
                let reason = format!("declared, but missing in the volume {}", entry.root);
                push(out, "source-missing", path, 0, reason);
                continue;
            }
            Err(error) => {
                push(out, "source-missing", path, 0, format!("cannot look at it in {}: {}", entry.root, error.source));
                continue;
            }
        };
        let wanted_kind = match entry.entry.kind {
            EntryKind::Directory => Kind::Directory,
            EntryKind::File => Kind::File,
        };
        if source.kind != wanted_kind {
            let reason = format!("the volume holds {}, declared a {}", found(source.kind), entry.entry.kind.noun());
            push(out, "wrong-type", path, 0, reason);
            continue;
        }
        let how = entry.entry.how();
        let target = targets.meta(path);
        match (how, target) {
            (_, None) => {
                push(out, "not-mounted", path, 0, "not in the root: nothing brings it from the volume".into());
            }
            (How::Bind, Some((meta, ..))) if meta.identity() == source.identity() => {}
            (How::Bind, Some((meta, dir, name))) => {
                if dir.is_mount_point(&name).unwrap_or(false) {
                    let reason = format!("a mount is there, but not of the volume's {}{path}", entry.root);
                    push(out, "wrong-source", path, 0, reason);
                } else {
                    let size = if meta.kind == Kind::File { meta.size } else { 0 };
                    let reason = format!(
                        "{} on the root, not mounted from {}: writes here are lost at reboot",
                        found(meta.kind),
                        entry.root
                    );
                    push(out, "not-mounted", path, size, reason);
                }
            }
            (How::Copy, Some((meta, dir, name))) => {
                let volume_copy = source_in(volume, parent).and_then(|d| d.read(name.as_str())).ok();
                check_copy(entry, &meta, &source, dir, &name, volume_copy.as_deref(), users, out);
            }
            (How::Symlink, Some((meta, dir, name))) => {
                let link = format!("{}{path}", entry.root.trim_end_matches('/'));
                match meta.kind {
                    Kind::Symlink => {
                        let target = dir.read_link(&name).map(|t| t.to_string_lossy().into_owned()).unwrap_or_default();
                        if target != link {
                            push(out, "points-elsewhere", path, 0, format!("links to {target}, not {link}"));
                        }
                    }
                    Kind::File => push(
                        out,
                        "replaced-by-file",
                        path,
                        meta.size,
                        format!(
                            "a regular file replaced the link to {link}: it is lost at reboot, the volume's copy is stale"
                        ),
                    ),
                    kind => {
                        push(out, "replaced", path, 0, format!("{} stands where the link to {link} goes", found(kind)));
                    }
                }
            }
        }
        check_owner(path, &source, &entry.entry.owner, users, out);
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use blankslate_core::decl::{self, UserDb};
    use blankslate_core::fs::Dir;

    use super::persist_health;

    /// A symlinked directory needs no mount: its link, and what replaces it.
    #[test]
    fn a_symlinked_directory_is_checked_as_a_link() {
        let text = "version = 1\n[persist.\"/persist\"]\ndirectories = [{ directory = \"/srv/trash\", how = \"symlink\", mode = \"0700\" }]\n";
        let declaration = decl::check(Path::new("t.toml"), text, None).declaration.unwrap();
        let scratch = tempfile::tempdir().unwrap();
        let base = scratch.path();
        std::fs::create_dir_all(base.join("persist/srv/trash")).unwrap();
        std::fs::set_permissions(base.join("persist/srv/trash"), std::os::unix::fs::PermissionsExt::from_mode(0o700))
            .unwrap();
        std::fs::create_dir(base.join("srv")).unwrap();
        let findings = |base: &Path| {
            let mut out = Vec::new();
            persist_health(&Dir::open_root(base).unwrap(), &declaration, &UserDb::default(), &mut out);
            out.iter().map(|f| (f.kind, f.reason.clone())).collect::<Vec<_>>()
        };
        std::os::unix::fs::symlink("/persist/srv/trash", base.join("srv/trash")).unwrap();
        assert_eq!(findings(base), []);
        std::fs::remove_file(base.join("srv/trash")).unwrap();
        std::os::unix::fs::symlink("/elsewhere", base.join("srv/trash")).unwrap();
        assert_eq!(findings(base), [("points-elsewhere", "links to /elsewhere, not /persist/srv/trash".to_owned())]);
        std::fs::remove_file(base.join("srv/trash")).unwrap();
        std::fs::create_dir(base.join("srv/trash")).unwrap();
        let found = findings(base);
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].0, "replaced");
        assert!(found[0].1.contains("a directory stands where the link to /persist/srv/trash goes"), "{found:?}");
    }

    /// A copy is a file of the root's own: it must hold what the volume holds.
    #[test]
    fn a_copy_not_written_back_is_reported_with_its_size() {
        use std::os::unix::fs::PermissionsExt as _;
        let text = "version = 1\n[persist.\"/persist\"]\nfiles = [{ file = \"/etc/shadow\", how = \"copy\", mode = \"0640\" }]\n";
        let declaration = decl::check(Path::new("t.toml"), text, None).declaration.unwrap();
        let scratch = tempfile::tempdir().unwrap();
        let base = scratch.path();
        for dir in ["persist/etc", "etc"] {
            std::fs::create_dir_all(base.join(dir)).unwrap();
            std::fs::write(base.join(dir).join("shadow"), "root:!:1::::::\n").unwrap();
            std::fs::set_permissions(base.join(dir).join("shadow"), std::fs::Permissions::from_mode(0o640)).unwrap();
        }
        let findings = |base: &Path| {
            let mut out = Vec::new();
            persist_health(&Dir::open_root(base).unwrap(), &declaration, &UserDb::default(), &mut out);
            out.iter().map(|f| (f.kind, f.bytes)).collect::<Vec<_>>()
        };
        assert_eq!(findings(base), []);
        std::fs::write(base.join("etc/shadow"), "root:$y$changed:2::::::\n").unwrap();
        assert_eq!(findings(base), [("not-written-back", 24)]);
        std::fs::set_permissions(base.join("etc/shadow"), std::fs::Permissions::from_mode(0o644)).unwrap();
        assert_eq!(findings(base), [("not-written-back", 24), ("wrong-mode", 0)]);
        std::fs::remove_file(base.join("etc/shadow")).unwrap();
        std::fs::create_dir(base.join("etc/shadow")).unwrap();
        assert_eq!(findings(base), [("replaced", 0)]);
    }
}
