//! The checks that are not a walk: every persistent root is a mounted volume, every
//! managed `/etc` entry matches the manifest, every persisted path (and its declared
//! parent) matches its volume. Each looks only at its own paths.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::os::fd::AsFd;

use blankslate_decl::{Declaration, EntryKind, How, Owner, ResolvedEntry, UserDb};
use blankslate_state::activation::{self as etc, EtcGeneration};
use blankslate_state::generation::format_utc;
use blankslate_state::manifest::{EtcKind, content_hash};
use blankslate_state::trial_record::{BOOT_RECORD, BootRecord, LIVE_TRIAL, LiveOutcome, LiveTrial};
use blankslate_sys::fs::{Accept, Checked, Dir, FsError, Kind, Meta};

use crate::render::size;
use crate::{Class, Finding, FindingKind, MountPoints, walk};

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
pub fn etc_drift(root: &Dir, active: &EtcGeneration, users: &UserDb, out: &mut Vec<Finding>) {
    let Ok(etc_dir) = root.open_dir("etc") else {
        out.push(Finding::new(Class::EtcDrift, FindingKind::Missing, b"/etc".to_vec(), "/etc is not there".into()));
        return;
    };
    let mut dirs = Dirs::new(&etc_dir);
    let mut push = |kind: FindingKind, path: &str, bytes: u64, reason: String| {
        let mut finding = Finding::new(Class::EtcDrift, kind, format!("/etc/{path}").into_bytes(), reason);
        finding.bytes = bytes;
        finding.files = u64::from(bytes > 0);
        out.push(finding);
    };
    match dirs.meta(etc::STATIC) {
        None => push(FindingKind::Missing, etc::STATIC, 0, format!("should link to {}", active.static_target)),
        Some((meta, dir, name)) if meta.kind == Kind::Symlink => {
            let target = dir.read_link(&name).map(|t| t.to_string_lossy().into_owned()).unwrap_or_default();
            if target != active.static_target {
                push(
                    FindingKind::PointsElsewhere,
                    etc::STATIC,
                    0,
                    format!("links to {target}, not {}", active.static_target),
                );
            }
        }
        Some((meta, ..)) => {
            push(FindingKind::Replaced, etc::STATIC, 0, format!("{} stands where the link goes", found(meta.kind)));
        }
    }
    for (path, entry) in &active.manifest.entries {
        let wanted = match &entry.kind {
            EtcKind::Link => Some(format!("/etc/static/{path}")),
            EtcKind::DirectLink { target } => Some(target.clone()),
            EtcKind::Copy | EtcKind::Directory => None,
        };
        let Some((meta, dir, name)) = dirs.meta(path) else {
            push(FindingKind::Missing, path, 0, "declared, but not there".into());
            continue;
        };
        // A copy's or a directory's owner and mode are part of what activation made.
        let owner_and_mode = |meta: &Meta, push: &mut dyn FnMut(FindingKind, &str, u64, String)| {
            let mode = entry.mode_bits();
            if meta.mode != mode {
                push(FindingKind::WrongMode, path, 0, format!("mode {:04o}, declared {mode:04o}", meta.mode));
            }
            if let (Some(uid), Some(gid)) = (users.uid(&entry.user), users.gid(&entry.group)) {
                if (meta.uid, meta.gid) != (uid, gid) {
                    let reason = format!("owner {}:{}, declared {}:{}", meta.uid, meta.gid, entry.user, entry.group);
                    push(FindingKind::WrongOwner, path, 0, reason);
                }
            }
        };
        match (wanted, meta.kind) {
            (Some(wanted), Kind::Symlink) => {
                let target = dir.read_link(&name).map(|t| t.to_string_lossy().into_owned()).unwrap_or_default();
                if target != wanted {
                    push(FindingKind::PointsElsewhere, path, 0, format!("links to {target}, not {wanted}"));
                }
            }
            (Some(wanted), Kind::File) => push(
                FindingKind::ReplacedByFile,
                path,
                meta.size,
                format!("a regular file replaced the link to {wanted}: edits here are lost at reboot"),
            ),
            (Some(_), kind) => {
                push(FindingKind::Replaced, path, 0, format!("{} stands where the link goes", found(kind)));
            }
            (None, Kind::File) if entry.kind == EtcKind::Copy => match dir.open_checked(&name, Accept::File) {
                Ok(copy) => {
                    let hash = copy.read_to_end().map(|b| content_hash(&b)).unwrap_or_default();
                    if hash != entry.hash {
                        let reason = "contents differ from the generation's: the edit is lost at reboot";
                        push(FindingKind::Edited, path, copy.meta().size, reason.into());
                    }
                    owner_and_mode(copy.meta(), &mut push);
                }
                Err(error) => push(FindingKind::Replaced, path, 0, format!("where the copy goes: {}", error.source)),
            },
            (None, Kind::Directory) if entry.kind == EtcKind::Directory => owner_and_mode(&meta, &mut push),
            (None, kind) => {
                let what = if entry.kind == EtcKind::Directory { "directory" } else { "copy" };
                push(FindingKind::Replaced, path, 0, format!("{} stands where the {what} goes", found(kind)));
            }
        }
    }
}

fn not_found(error: &FsError) -> bool {
    error.is_not_found()
}

/// "the path … is" / "the 3 paths … are", and the like: `(the N paths, singular
/// verb, plural verb)` picks the right words for `n`.
fn paths(n: usize, singular: &str, plural: &str) -> String {
    if n == 1 { format!("1 path {singular}") } else { format!("{n} paths {plural}") }
}

/// Every persistent root that is a mounted volume (a file system other than the
/// root's), open. One that is not is reported once, as a whole, saying what it means
/// for the paths persisted from it; its entries are then not checked one by one.
pub fn volumes<'d>(
    root: &Dir,
    declaration: &'d Declaration,
    mounts: &MountPoints,
    out: &mut Vec<Finding>,
) -> BTreeMap<&'d str, Dir> {
    let Ok(root_dev) = root.own_meta().map(|m| m.dev) else { return BTreeMap::new() };
    let mut open = BTreeMap::new();
    for mount in declaration.persist.keys() {
        let consequence = || {
            let entries = declaration.entries();
            let persisted: Vec<&ResolvedEntry<'_>> = entries.iter().filter(|e| e.root == mount).collect();
            consequence(where_writes_go(root, &persisted, root_dev))
        };
        let finding = match root.open_dir(mount.trim_start_matches('/')) {
            Ok(volume) if volume.own_meta().is_ok_and(|m| m.dev != root_dev) => {
                open.insert(mount.as_str(), volume);
                continue;
            }
            Ok(plain) => {
                let held = walk::count(plain.as_fd(), mounts, mount.as_bytes());
                let data = if held.files > 0 {
                    let files = crate::render::plural(held.files, "file", "files");
                    format!(", and what it holds ({files}, {}) with them", size(held.bytes))
                } else {
                    String::new()
                };
                let reason =
                    format!("a directory of the root's own file system, not a mounted volume: {}{data}", consequence());
                let mut finding =
                    Finding::new(Class::Volume, FindingKind::NotMounted, mount.as_bytes().to_vec(), reason);
                (finding.files, finding.bytes) = (held.files, held.bytes);
                finding
            }
            Err(error) => {
                let what = if error.is_not_found() {
                    "not there: the volume is not mounted".to_owned()
                } else {
                    format!("cannot be opened ({}): the volume cannot be checked", error.source)
                };
                let reason = format!("{what}; {}", consequence());
                Finding::new(Class::Volume, FindingKind::VolumeMissing, mount.as_bytes().to_vec(), reason)
            }
        };
        out.push(finding);
    }
    open
}

/// What a volume that is not mounted means for its persisted paths, from how many
/// still reach it (`kept`) and how many are on the root (`lost`).
fn consequence((kept, lost): (usize, usize)) -> String {
    let mounted = paths(kept, "still mounted from it keeps its writes", "still mounted from it keep their writes");
    // A switch now would find empty sources on the root and move into them what the
    // mounts still show of the volume (persist's migration into an empty source).
    let before_switch = "mount the volume again before any switch (an activation now would move their data onto \
                         the root)";
    match (kept, lost) {
        (0, 0) => "nothing persisted from it is in place".to_owned(),
        (_, 0) => format!("{mounted}, but cannot be checked; {before_switch}"),
        (0, _) => format!(
            "{}: lost at the next reboot",
            paths(lost, "persisted from it is on the root too", "persisted from it are on the root too")
        ),
        (_, _) => format!(
            "{mounted}; {} lost at the next reboot; {before_switch}",
            paths(lost, "is on the root:", "are on the root:")
        ),
    }
}

/// How many of a volume's persisted paths are in place on another file system (a
/// bind mount from the volume: writes kept), and how many are on the root's own (a
/// plain directory or file, or a link through a mount point that is not mounted:
/// writes lost at reboot).
fn where_writes_go(root: &Dir, entries: &[&ResolvedEntry<'_>], root_dev: u64) -> (usize, usize) {
    let mut targets = Dirs::new(root);
    entries.iter().filter_map(|e| targets.meta(&e.path).map(|(meta, ..)| meta)).fold((0, 0), |(kept, lost), meta| {
        if meta.kind != Kind::Symlink && meta.dev != root_dev { (kept + 1, lost) } else { (kept, lost + 1) }
    })
}

/// Whose owner and mode [`check_owner`] looks at, as its reasons say.
#[derive(Clone, Copy)]
enum Whose<'a> {
    /// A persisted path's source in its volume (what a bind mount shows).
    Source,
    /// A `how = "copy"` file: the root's own copy.
    Copy,
    /// The declared parent of this entry.
    ParentOf(&'a str),
}

/// Owner and mode of `path` (`meta`) against the declaration.
fn check_owner(path: &str, meta: &Meta, owner: &Owner, users: &UserDb, whose: Whose<'_>, out: &mut Vec<Finding>) {
    let (at, parent) = match whose {
        Whose::Source => (" in the volume".to_owned(), String::new()),
        Whose::Copy => (String::new(), String::new()),
        Whose::ParentOf(entry) => (String::new(), format!(" for the parent of {entry}")),
    };
    if meta.mode != owner.mode.bits() {
        let reason = format!("mode {:04o}{at}, declared {}{parent}", meta.mode, owner.mode);
        out.push(Finding::new(Class::Persist, FindingKind::WrongMode, path.as_bytes().to_vec(), reason));
    }
    if let (Some(uid), Some(gid)) = (users.uid(&owner.user), users.gid(&owner.group)) {
        if (meta.uid, meta.gid) != (uid, gid) {
            let (user, group) = (&owner.user, &owner.group);
            let reason = format!("owner {}:{}{at}, declared {user}:{group}{parent}", meta.uid, meta.gid);
            out.push(Finding::new(Class::Persist, FindingKind::WrongOwner, path.as_bytes().to_vec(), reason));
        }
    }
}

/// A file declared `how = "copy"`: a regular file of the root's own (not the volume's
/// mounted), with the volume's contents and the declared owner and mode. Both files
/// are a user's to swap at any moment (in a home): each is compared through a checked
/// descriptor, so a FIFO or a link swapped in after the `lstat` is refused, as
/// `persist sync` refuses it, and never waited on or followed.
#[allow(clippy::too_many_arguments)]
fn check_copy(
    entry: &ResolvedEntry<'_>,
    meta: &Meta,
    source: &Meta,
    dir: &Dir,
    name: &str,
    volume_copy: Result<Checked, FsError>,
    users: &UserDb,
    out: &mut Vec<Finding>,
) {
    let path = entry.path.as_str();
    let mut push = |kind: FindingKind, bytes: u64, reason: String| {
        let mut finding = Finding::new(Class::Persist, kind, path.as_bytes().to_vec(), reason);
        finding.bytes = bytes;
        finding.files = u64::from(bytes > 0);
        out.push(finding);
    };
    if meta.kind != Kind::File {
        push(FindingKind::Replaced, 0, format!("{} stands where the copy goes", found(meta.kind)));
    } else if meta.identity() == source.identity() {
        let reason =
            format!("bind-mounted from {}, declared a copy: a program that replaces it gets EBUSY", entry.root);
        push(FindingKind::NotCopied, 0, reason);
    } else {
        let live = match dir.open_checked(name, Accept::File) {
            Ok(live) => live,
            Err(error) => return push(FindingKind::Refused, 0, format!("the copy in the root: {}", error.source)),
        };
        let copy = match volume_copy {
            Ok(copy) => copy,
            Err(error) => {
                return push(FindingKind::Refused, 0, format!("the copy in {}: {}", entry.root, error.source));
            }
        };
        if !live.same_contents(&copy).unwrap_or(false) {
            let reason = format!(
                "changed since it was last written back to {}: a reboot loses the change unless `blankslate persist \
                 sync` writes it (is blankslate-sync.service running?)",
                entry.root
            );
            push(FindingKind::NotWrittenBack, live.meta().size, reason);
        }
        check_owner(path, live.meta(), &entry.entry.owner, users, Whose::Copy, out);
    }
}

/// What stands where the bind mount of the volume's `copy` should be (`meta`, `name`
/// in `dir`), and what that means: a finding's kind, bytes and reason.
fn instead_of_bind_mount(meta: &Meta, dir: &Dir, name: &str, copy: &str) -> (FindingKind, u64, String) {
    if dir.is_mount_point(name).unwrap_or(false) {
        return (FindingKind::WrongSource, 0, format!("a mount is there, but not of the volume's {copy}"));
    }
    if meta.kind == Kind::Symlink {
        let target = dir.read_link(name).map(|t| t.to_string_lossy().into_owned()).unwrap_or_default();
        let reason = if target == copy {
            format!(
                "a symlink to {copy}, not its bind mount: writes are kept, but programs see a link, mount options \
                 do not apply, and activation leaves it (remove it and switch, or declare it how = \"symlink\")"
            )
        } else {
            format!("a symlink to {target}, not the bind mount of {copy}: writes go there, not to the volume")
        };
        return (FindingKind::Replaced, 0, reason);
    }
    let size = if meta.kind == Kind::File { meta.size } else { 0 };
    let reason =
        format!("{} on the root, not the bind mount of {copy}: writes here are lost at reboot", found(meta.kind));
    (FindingKind::NotMounted, size, reason)
}

/// The declared parents of persisted paths, checked once each.
struct Parents<'r, 'v> {
    root: &'r mut Dirs<'v>,
    volume: &'r Dir,
    volume_path: &'r str,
    checked: &'r mut HashSet<String>,
}

impl Parents<'_, '_> {
    /// `parent` (relative) in the root and in the volume against `owner`, declared
    /// by the entry `of`.
    fn check(self, parent: &str, owner: &Owner, users: &UserDb, of: &str, out: &mut Vec<Finding>) {
        let in_root = format!("/{parent}");
        if self.checked.insert(in_root.clone()) {
            if let Some(meta) = self.root.get(parent).and_then(|d| d.own_meta().ok()) {
                check_owner(&in_root, &meta, owner, users, Whose::ParentOf(of), out);
            }
        }
        let in_volume = format!("{}/{parent}", self.volume_path.trim_end_matches('/'));
        if self.checked.insert(in_volume.clone()) {
            if let Ok(meta) = self.volume.open_dir_or_self(parent).and_then(|d| d.own_meta()) {
                check_owner(in_volume.trim_end_matches('/'), &meta, owner, users, Whose::ParentOf(of), out);
            }
        }
    }
}

/// Every persisted path of a mounted volume: mounted (or linked) from it, with its
/// owner and mode, and its declared parent's (activation enforces both, in the root
/// and in the volume).
pub fn persist_health(
    root: &Dir,
    declaration: &Declaration,
    volumes: &BTreeMap<&str, Dir>,
    users: &UserDb,
    out: &mut Vec<Finding>,
) {
    let mut entries = declaration.entries();
    entries.sort_by(|a, b| a.path.cmp(&b.path));
    let mut targets = Dirs::new(root);
    let mut parents_checked = HashSet::new();
    let push = |out: &mut Vec<Finding>, kind: FindingKind, path: &str, bytes: u64, reason: String| {
        let mut finding = Finding::new(Class::Persist, kind, path.as_bytes().to_vec(), reason);
        finding.bytes = bytes;
        finding.files = u64::from(bytes > 0);
        out.push(finding);
    };
    for entry in &entries {
        let path = entry.path.as_str();
        let Some(volume) = volumes.get(entry.root) else { continue };
        let (parent, name) = split(path);
        if let Some(owner) = &entry.entry.parent {
            let parents =
                Parents { root: &mut targets, volume, volume_path: entry.root, checked: &mut parents_checked };
            parents.check(parent, owner, users, path, out);
        }
        let source = volume.open_dir_or_self(parent).and_then(|d| d.meta(name));
        let source = match source {
            Ok(meta) => meta,
            Err(error) if not_found(&error) => {
                // A source deleted under its bind mount leaves the mount on an unlinked copy.
                let mounted =
                    targets.meta(path).is_some_and(|(_, dir, name)| dir.is_mount_point(name).unwrap_or(false));
                let reason = if mounted {
                    format!(
                        "missing in the volume {}: what is mounted here is a deleted copy, whose writes are lost at \
                         the next reboot",
                        entry.root
                    )
                } else {
                    format!("declared, but missing in the volume {}", entry.root)
                };
                push(out, FindingKind::SourceMissing, path, 0, reason);
                continue;
            }
            Err(error) => {
                let reason = format!("cannot look at it in {}: {}", entry.root, error.source);
                push(out, FindingKind::SourceMissing, path, 0, reason);
                continue;
            }
        };
        let wanted_kind = match entry.entry.kind {
            EntryKind::Directory => Kind::Directory,
            EntryKind::File => Kind::File,
        };
        if source.kind != wanted_kind {
            let reason = format!("the volume holds {}, declared a {}", found(source.kind), entry.entry.kind.noun());
            push(out, FindingKind::WrongType, path, 0, reason);
            continue;
        }
        let how = entry.entry.how();
        let target = targets.meta(path);
        match (how, target) {
            (_, None) => {
                let reason = "not in the root: the volume's copy is not mounted (what a program makes here is lost at \
                              reboot)";
                push(out, FindingKind::NotMounted, path, 0, reason.into());
            }
            (How::Bind, Some((meta, ..))) if meta.identity() == source.identity() => {}
            (How::Bind, Some((meta, dir, name))) => {
                let copy = format!("{}{path}", entry.root.trim_end_matches('/'));
                let (kind, bytes, reason) = instead_of_bind_mount(&meta, dir, &name, &copy);
                push(out, kind, path, bytes, reason);
            }
            (How::Copy, Some((meta, dir, name))) => {
                let volume_copy = volume.open_dir_or_self(parent).and_then(|d| d.open_checked(&name, Accept::File));
                check_copy(entry, &meta, &source, dir, &name, volume_copy, users, out);
            }
            (How::Symlink, Some((meta, dir, name))) => {
                let link = format!("{}{path}", entry.root.trim_end_matches('/'));
                match meta.kind {
                    Kind::Symlink => {
                        let target = dir.read_link(&name).map(|t| t.to_string_lossy().into_owned()).unwrap_or_default();
                        if target != link {
                            let reason = format!("links to {target}, not {link}: writes go there, not to the volume");
                            push(out, FindingKind::PointsElsewhere, path, 0, reason);
                        }
                    }
                    Kind::File => push(
                        out,
                        FindingKind::ReplacedByFile,
                        path,
                        meta.size,
                        format!(
                            "a regular file replaced the link to {link}: it is lost at reboot, the volume's copy is stale"
                        ),
                    ),
                    kind => {
                        let reason = format!("{} stands where the link to {link} goes", found(kind));
                        push(out, FindingKind::Replaced, path, 0, reason);
                    }
                }
            }
        }
        check_owner(path, &source, &entry.entry.owner, users, Whose::Source, out);
    }
}

/// Whether `path` is `dir` or below it (both absolute, as in the root).
fn within(path: &[u8], dir: &[u8]) -> bool {
    path.strip_prefix(dir).is_some_and(|rest| rest.is_empty() || rest[0] == b'/' || dir == b"/")
}

/// Mounts in the root of one of the mounted volumes (a bind mount from it has its
/// `st_dev`) that nothing declares: a persisted path a switch left mounted after the
/// generation stopped declaring it, or one mounted by hand. Its writes go to the
/// volume now, but no boot mounts it again. Mounts inside a volume, a declared path
/// or the state directory are theirs; mounts of anything else (a disk of its own,
/// the kernel's) are not persistence and are left alone.
pub fn undeclared_mounts(
    root: &Dir,
    declaration: &Declaration,
    state_dir: &[u8],
    volumes: &BTreeMap<&str, Dir>,
    mounts: &MountPoints,
    out: &mut Vec<Finding>,
) {
    let devices: HashMap<u64, &str> =
        volumes.iter().filter_map(|(mount, dir)| Some((dir.own_meta().ok()?.dev, *mount))).collect();
    let entries = declaration.entries();
    let accounted: Vec<&[u8]> = (entries.iter().map(|e| e.path.as_bytes()))
        .chain(declaration.persist.keys().map(String::as_bytes))
        .chain([state_dir])
        .collect();
    let mut points: Vec<&Vec<u8>> = mounts.iter().filter(|p| !accounted.iter().any(|a| within(p, a))).collect();
    points.sort();
    let mut targets = Dirs::new(root);
    for point in points {
        let Ok(path) = std::str::from_utf8(point) else { continue };
        let Some(volume) = targets.meta(path).and_then(|(meta, ..)| devices.get(&meta.dev)) else { continue };
        let reason = format!(
            "mounted from the volume {volume}, declared by nothing: writes there go to the volume now, but no boot \
             mounts it again (`blankslate repair` unmounts what blankslate mounted and no longer declares)"
        );
        out.push(Finding::new(Class::Persist, FindingKind::UndeclaredMount, point.clone(), reason));
    }
}

/// What the trial records of this boot say went back by itself: a boot that fell back
/// from a generation whose trial failed, a switch not confirmed in time.
pub fn fallbacks(root: &Dir, out: &mut Vec<Finding>) {
    let mut push = |kind: FindingKind, path: &str, reason: String| {
        out.push(Finding::new(Class::Fallback, kind, format!("/{path}").into_bytes(), reason));
    };
    if let Some(BootRecord { generation, fallback: Some(fallback), .. }) = BootRecord::read(root) {
        push(
            FindingKind::BootFallback,
            BOOT_RECORD,
            format!(
                "generation {} was tried {} time(s) without reaching `blankslate confirm`: this boot fell back to \
                 generation {generation}, the boot default again",
                fallback.from, fallback.attempts
            ),
        );
    }
    if let Ok(Some(trial)) = LiveTrial::read(root) {
        if let LiveOutcome::Reverted { at, error } = &trial.outcome {
            let what = match error {
                None => format!("generation {} was activated again at {} UTC", trial.previous, format_utc(*at)),
                Some(error) => format!("activating generation {} again failed: {error}", trial.previous),
            };
            let within = trial.deadline - trial.started;
            push(
                FindingKind::NotConfirmed,
                LIVE_TRIAL,
                format!("generation {} was switched to and not confirmed within {within} s: {what}", trial.generation),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use blankslate_decl::{self as decl, UserDb};
    use blankslate_sys::fs::Dir;

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
            let root = Dir::open_root(base).unwrap();
            let volumes = [("/persist", root.open_dir("persist").unwrap())].into();
            persist_health(&root, &declaration, &volumes, &UserDb::default(), &mut out);
            out.iter().map(|f| (f.kind.as_str(), f.reason.clone())).collect::<Vec<_>>()
        };
        std::os::unix::fs::symlink("/persist/srv/trash", base.join("srv/trash")).unwrap();
        assert_eq!(findings(base), []);
        std::fs::remove_file(base.join("srv/trash")).unwrap();
        std::os::unix::fs::symlink("/elsewhere", base.join("srv/trash")).unwrap();
        let elsewhere = "links to /elsewhere, not /persist/srv/trash: writes go there, not to the volume";
        assert_eq!(findings(base), [("points-elsewhere", elsewhere.to_owned())]);
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
            let root = Dir::open_root(base).unwrap();
            let volumes = [("/persist", root.open_dir("persist").unwrap())].into();
            persist_health(&root, &declaration, &volumes, &UserDb::default(), &mut out);
            out.iter().map(|f| (f.kind.as_str(), f.bytes)).collect::<Vec<_>>()
        };
        assert_eq!(findings(base), []);
        std::fs::write(base.join("etc/shadow"), "root:$y$changed:2::::::\n").unwrap();
        assert_eq!(findings(base), [("not-written-back", 24)]);
        std::fs::set_permissions(base.join("etc/shadow"), std::fs::Permissions::from_mode(0o644)).unwrap();
        assert_eq!(findings(base), [("not-written-back", 24), ("wrong-mode", 0)]);
        // The root's copy is what has the wrong mode, not the volume's.
        let mut out = Vec::new();
        let root = Dir::open_root(base).unwrap();
        persist_health(
            &root,
            &declaration,
            &[("/persist", root.open_dir("persist").unwrap())].into(),
            &UserDb::default(),
            &mut out,
        );
        assert_eq!(out[1].reason, "mode 0644, declared 0640");
        std::fs::remove_file(base.join("etc/shadow")).unwrap();
        std::fs::create_dir(base.join("etc/shadow")).unwrap();
        assert_eq!(findings(base), [("replaced", 0)]);
    }
}
