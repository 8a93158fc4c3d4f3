//! Writing a declaration as native TOML, in the layout a person would write: plain
//! strings where an entry has only defaults, inline tables otherwise.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use super::model::{
    Declaration, Entry, EntryKind, EtcContents, EtcMode, How, Mode, Owner, RootSettings, VolumeSpec, default_home,
};

/// The declaration as TOML text that [`super::check`] reads back to the same
/// declaration.
pub fn to_toml(declaration: &Declaration) -> String {
    to_toml_noted(declaration, &BTreeMap::new())
}

/// [`to_toml`] with a comment after each persisted entry that `notes` has one for
/// (keyed by the entry's path as written: absolute, or relative to a home).
pub fn to_toml_noted(declaration: &Declaration, notes: &BTreeMap<String, String>) -> String {
    let mut out = format!("version = {}\n", declaration.version);
    let root = &declaration.root;
    if *root != RootSettings::default() {
        out.push_str("\n[root]\n");
        match &root.btrfs {
            None => {
                let _ = writeln!(out, "size = {}", quote(&root.size));
            }
            Some(btrfs) => {
                let _ = write!(
                    out,
                    "kind = \"btrfs\"\ndevice = {}\nkeep = {}\n",
                    quote(&btrfs.device.to_string()),
                    btrfs.keep
                );
            }
        }
        let _ = writeln!(out, "mode = {}", quote(&root.mode.to_string()));
    }
    for (mount, root) in &declaration.persist {
        let _ = writeln!(out, "\n[persist.{}]", quote(mount));
        if let Some(volume) = &root.volume {
            let _ = writeln!(out, "device = {}", quote(&volume.device.to_string()));
            if volume.fs_type != VolumeSpec::DEFAULT_FS_TYPE {
                let _ = writeln!(out, "fs_type = {}", quote(&volume.fs_type));
            }
            if !volume.options.is_empty() {
                let options: Vec<String> = volume.options.iter().map(|o| quote(o)).collect();
                let _ = writeln!(out, "mount_options = [{}]", options.join(", "));
            }
        }
        if root.hide_mounts {
            out.push_str("hide_mounts = true\n");
        }
        let system = Owner::root(Mode::DIRECTORY);
        write_entries(&mut out, "directories", &root.directories, &system.user, &system.group, notes);
        write_entries(&mut out, "files", &root.files, &system.user, &system.group, notes);
        for (name, user) in &root.users {
            let _ = writeln!(out, "\n[persist.{}.users.{}]", quote(mount), key(name));
            if user.home != default_home(name) {
                let _ = writeln!(out, "home = {}", quote(&user.home));
            }
            if user.group != *name {
                let _ = writeln!(out, "group = {}", quote(&user.group));
            }
            write_entries(&mut out, "directories", &user.directories, name, &user.group, notes);
            write_entries(&mut out, "files", &user.files, name, &user.group, notes);
        }
    }
    for (path, entry) in &declaration.etc {
        let _ = writeln!(out, "\n[etc.{}]", quote(path));
        match &entry.contents {
            EtcContents::Text(text) => {
                let _ = writeln!(out, "text = {}", quote(text));
            }
            EtcContents::Source(source) => {
                let _ = writeln!(out, "source = {}", quote(source));
            }
            EtcContents::Directory(_) => {
                let _ = writeln!(out, "directory = true");
            }
        }
        if let EtcMode::Copy(mode) = entry.mode {
            let _ = writeln!(out, "mode = {}", quote(&mode.to_string()));
            if entry.user != "root" {
                let _ = writeln!(out, "user = {}", quote(&entry.user));
            }
            if entry.group != "root" {
                let _ = writeln!(out, "group = {}", quote(&entry.group));
            }
        }
    }
    if let Some(tree) = &declaration.etc_tree {
        let _ = write!(out, "\n[etc_tree]\nsource = {}\n", quote(&tree.source));
    }
    if !declaration.audit.ignore.is_empty() {
        out.push_str("\n[audit]\nignore = [\n");
        for glob in &declaration.audit.ignore {
            let _ = writeln!(out, "  {},", quote(glob));
        }
        out.push_str("]\n");
    }
    if let Some(net) = &declaration.net {
        let _ = write!(out, "\n[net]\nkeep = {}\nmax_size = {}\n", net.keep, quote(&size_text(net.max_size)));
    }
    out
}

/// A size as the declaration writes it: the largest power of 1024 that divides it.
fn size_text(bytes: u64) -> String {
    for (shift, unit) in [(40, 'T'), (30, 'G'), (20, 'M'), (10, 'K')] {
        if bytes != 0 && bytes % (1 << shift) == 0 {
            return format!("{}{unit}", bytes >> shift);
        }
    }
    bytes.to_string()
}

fn write_entries(
    out: &mut String,
    list: &str,
    entries: &[Entry],
    user: &str,
    group: &str,
    notes: &BTreeMap<String, String>,
) {
    if entries.is_empty() {
        return;
    }
    let _ = writeln!(out, "{list} = [");
    for entry in entries {
        let _ = write!(out, "  {},", entry_value(entry, user, group));
        match notes.get(&entry.path) {
            Some(note) => {
                let _ = writeln!(out, " # {}", note.replace('\n', " "));
            }
            None => out.push('\n'),
        }
    }
    out.push_str("]\n");
}

/// The TOML value of a persisted entry: its path alone when everything else is the
/// default (the owner `user`/`group`, the kind's mode, a bind mount), otherwise an
/// inline table with only the fields that differ. The one way entries are written,
/// for a whole declaration here and for `persist add`'s edit of a file.
pub fn entry_value(entry: &Entry, user: &str, group: &str) -> String {
    let default_mode = entry.kind.default_mode();
    let mut fields = Vec::new();
    owner_fields(&entry.owner, user, group, default_mode, &mut fields);
    if let Some(parent) = &entry.parent {
        let mut inner = Vec::new();
        owner_fields(parent, user, group, Mode::DIRECTORY, &mut inner);
        if inner.is_empty() {
            // An all-default parent still says "enforce this", so it is written out.
            inner.push(format!("mode = {}", quote(&parent.mode.to_string())));
        }
        fields.push(format!("parent = {{ {} }}", inner.join(", ")));
    }
    // Files always say how: `check` asks for it wherever a bind mount could break a
    // program that saves by rename. Directories say it only when they are links.
    match entry.how {
        Some(How::Symlink) => fields.push("how = \"symlink\"".into()),
        Some(How::Copy) => fields.push("how = \"copy\"".into()),
        Some(How::Bind)
            if entry.kind == EntryKind::File && !super::parse::WRITTEN_IN_PLACE.contains(&entry.path.as_str()) =>
        {
            fields.push("how = \"bind\"".into());
        }
        _ => {}
    }
    if !entry.options.is_empty() {
        let options: Vec<String> = entry.options.iter().map(|o| quote(o.as_str())).collect();
        fields.push(format!("options = [{}]", options.join(", ")));
    }
    if fields.is_empty() {
        return quote(&entry.path);
    }
    format!("{{ {} = {}, {} }}", entry.kind.noun(), quote(&entry.path), fields.join(", "))
}

/// The owner fields that differ from the defaults.
fn owner_fields(owner: &Owner, user: &str, group: &str, default_mode: Mode, fields: &mut Vec<String>) {
    if owner.user != user {
        fields.push(format!("user = {}", quote(&owner.user)));
    }
    if owner.group != group {
        fields.push(format!("group = {}", quote(&owner.group)));
    }
    if owner.mode != default_mode {
        fields.push(format!("mode = {}", quote(&owner.mode.to_string())));
    }
}

/// A TOML string literal for `text`, escaped as needed.
fn quote(text: &str) -> String {
    toml_edit::Value::from(text).to_string().trim().to_owned()
}

/// A TOML key: bare when it can be, quoted otherwise.
fn key(text: &str) -> String {
    toml_edit::Key::new(text).to_string()
}
