//! `persist list`: every declared entry with its live state (see [`super`]).

use super::{
    Dir, EntryKind, How, Kind, Operation, Owner, Result, UserDb, decl, journal, mount_id, own_mount_id, relative, split,
};

/// The live state of one declared entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LiveState {
    /// Bind-mounted from its volume path.
    Mounted,
    /// A symlink to its volume path (`how = "symlink"`).
    Linked,
    /// A file of the root's own with the volume's contents (`how = "copy"`).
    Copied,
    /// A copy that changed in the root and is not written back yet.
    NotWrittenBack,
    /// The live path is there but shows something else (nothing mounted on it).
    NotMounted,
    /// Something is mounted on the live path, but not the volume path.
    WrongSource,
    /// The volume path does not exist.
    MissingSource,
    /// The live path does not exist.
    MissingTarget,
}

impl LiveState {
    pub fn as_str(self) -> &'static str {
        match self {
            LiveState::Mounted => "mounted",
            LiveState::Linked => "linked",
            LiveState::Copied => "copied",
            LiveState::NotWrittenBack => "not-written-back",
            LiveState::NotMounted => "not-mounted",
            LiveState::WrongSource => "wrong-source",
            LiveState::MissingSource => "missing-source",
            LiveState::MissingTarget => "missing",
        }
    }

    pub fn is_ok(self) -> bool {
        matches!(self, LiveState::Mounted | LiveState::Linked | LiveState::Copied)
    }
}

/// One line of `persist list`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    pub path: String,
    pub volume: String,
    pub kind: EntryKind,
    pub how: How,
    pub owner: Owner,
    pub state: LiveState,
    /// Owner or mode of the volume path differing from the declaration.
    pub problems: Vec<String>,
}

/// What `persist list` shows.
#[derive(Debug, Clone, Default)]
pub struct Listing {
    pub entries: Vec<Listed>,
    /// Operations interrupted and not yet recovered, one line each.
    pub pending: Vec<String>,
}

/// Every declared entry with its live state (changes nothing).
pub fn list(root: &Dir, declaration: &decl::Declaration) -> Result<Listing> {
    let names = UserDb::from_root(root);
    let mut listing = Listing::default();
    for mount in declaration.persist.keys() {
        if let Ok(volume) = root.open_dir(relative(mount)) {
            if let Ok(state) = volume.open_dir(journal::STATE_DIR) {
                if let Ok(Some(pending)) = journal::read(&state) {
                    listing.pending.push(format!(
                        "persist {} {} stopped after step `{}`: run `blankslate persist recover`",
                        if pending.operation == Operation::Add { "add" } else { "remove" },
                        pending.path,
                        pending.step.as_str()
                    ));
                }
            }
        }
    }
    let mut entries = declaration.entries();
    entries.sort_by(|a, b| a.path.cmp(&b.path));
    for entry in entries {
        let (parent, name) = split(&entry.path);
        let how = entry.entry.how();
        let mut listed = Listed {
            path: entry.path.clone(),
            volume: entry.root.to_owned(),
            kind: entry.entry.kind,
            how,
            owner: entry.entry.owner.clone(),
            state: LiveState::MissingSource,
            problems: Vec::new(),
        };
        let source_parent = root.open_dir(relative(entry.root)).and_then(|v| v.open_dir_or_self(parent)).ok();
        let source = source_parent.as_ref().and_then(|d| d.meta(name).ok().map(|m| (d, m)));
        let target_parent = root.open_dir_or_self(parent).ok();
        let target = target_parent.as_ref().and_then(|d| d.meta(name).ok().map(|m| (d, m)));
        listed.state = match (&source, &target) {
            (None, _) => LiveState::MissingSource,
            (Some(_), None) => LiveState::MissingTarget,
            (Some((sp, smeta)), Some((tp, tmeta))) => {
                if how == How::Symlink {
                    let link = format!("{}/{}", entry.root.trim_end_matches('/'), relative(&entry.path));
                    if tmeta.kind == Kind::Symlink && tp.read_link(name).is_ok_and(|t| t == *link) {
                        LiveState::Linked
                    } else {
                        LiveState::NotMounted
                    }
                } else if how == How::Copy {
                    let mounted = tmeta.identity() == smeta.identity();
                    let same = tp.read(name).ok().is_some_and(|live| sp.read(name).ok() == Some(live));
                    match (tmeta.kind == Kind::File && !mounted, same) {
                        (true, true) => LiveState::Copied,
                        (true, false) => LiveState::NotWrittenBack,
                        (false, _) => LiveState::NotMounted,
                    }
                } else if tmeta.identity() == smeta.identity() {
                    LiveState::Mounted
                } else if mount_id(tp, name).ok() != own_mount_id(tp).ok() {
                    LiveState::WrongSource
                } else {
                    LiveState::NotMounted
                }
            }
        };
        if let Some((_, meta)) = &source {
            let owner = &entry.entry.owner;
            let (uid, gid) = (names.uid(&owner.user), names.gid(&owner.group));
            if uid != Some(meta.uid) || gid != Some(meta.gid) {
                listed.problems.push(format!(
                    "owner is {}:{}, declared {}:{}",
                    names.user_name(meta.uid).unwrap_or_else(|| meta.uid.to_string()),
                    names.group_name(meta.gid).unwrap_or_else(|| meta.gid.to_string()),
                    owner.user,
                    owner.group
                ));
            }
            if meta.mode != owner.mode.bits() {
                listed.problems.push(format!("mode is {:04o}, declared {}", meta.mode, owner.mode));
            }
        }
        listing.entries.push(listed);
    }
    Ok(listing)
}
