//! `config.environment.persistence` of the impermanence NixOS module.
//!
//! Read from nix-community/impermanence: `nixos.nix`, `submodule-options.nix` (the
//! option set every persistent root, user and entry shares since the Home Manager
//! rework), the older `options.nix`, and `lib.nix` (`concatPaths`). What
//! `nix eval --json` prints for one persistent root, all defaults filled in:
//!
//! - `enable`, `persistentStoragePath` (defaults to the attribute name), `hideMounts`,
//!   `enableDebugging`, `enableWarnings`, `assertions` (internal), on some versions
//!   `allowTrash`, and `users.<name>` with `directories` and `files` (and `home` on
//!   versions before the users' homes were read from `users.users`);
//! - the removed options `allowOther`, `removePrefixDirectory` and
//!   `defaultDirectoryMethod` (and `method` on each directory), which throw when
//!   evaluated — [`super::IMPERMANENCE_EVAL`] prints them as `null`; a value is
//!   noted;
//! - directory entries: `directory`, `dirPath` (derived: the absolute path),
//!   `user`, `group`, `mode`, `defaultPerms` (the owner given to missing parents),
//!   `hideMount`, `persistentStoragePath`, `home` (the user's, `null` for system
//!   entries), `enableDebugging`, `assertions`, on some versions `allowTrash`;
//! - file entries: `file`, `filePath` (derived), `parentDirectory` (a directory
//!   entry's fields for the file's parent), on newer versions `method`
//!   (`"auto"` or `"symlink"`), and the shared `persistentStoragePath`, `home`,
//!   `enableDebugging`, `assertions`.
//!
//! The users' entries also appear, folded in with their `home` set, in the
//! persistent root's own `directories` and `files` on every version that folds
//! them (`config.directories = allUsers.directories`); those copies are recognised
//! and declared once, under the user.
//!
//! Differences blankslate notes: a file's `method = "auto"` (bind mount when the file
//! exists in persistent storage, a symlink otherwise) becomes a bind mount; owners
//! and modes that impermanence applies only when it creates a path are declared,
//! so blankslate keeps them; files get default owners and modes because
//! impermanence records none.

use std::collections::HashMap;

use serde_json::Value;

use super::{
    Builder, Entry, EntryKind, How, ImportError, Mode, MountOption, Obj, Owner, UserCtx, brief, child_path, index_path,
    join_home, majority, normalize, parent_of, root_path,
};

/// Options impermanence removed with `mkRemovedOptionModule`, on a persistent root.
const REMOVED_ROOT: [&str; 3] = ["allowOther", "removePrefixDirectory", "defaultDirectoryMethod"];

/// What the entries of one persistent root inherit from it.
struct RootCtx {
    mount: String,
    hide: bool,
    trash: bool,
    debug: bool,
}

/// Entries already declared under `users`, by kind and absolute path, with their JSON.
type UserItems<'a> = HashMap<(Kind, String), (String, &'a Value)>;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Kind {
    Directory,
    File,
}

impl Kind {
    fn entry_kind(self) -> EntryKind {
        match self {
            Kind::Directory => EntryKind::Directory,
            Kind::File => EntryKind::File,
        }
    }

    fn list(self) -> &'static str {
        match self {
            Kind::Directory => "directories",
            Kind::File => "files",
        }
    }

    fn noun(self) -> &'static str {
        match self {
            Kind::Directory => "directory",
            Kind::File => "file",
        }
    }
}

/// One persistent root of `environment.persistence`.
pub(super) fn persistent_root(b: &mut Builder, name: &str, value: &Value) -> Result<(), ImportError> {
    let mut o = Obj::new(value, root_path(name))?;
    let Some(ctx) = root_settings(b, &mut o, name, true)? else { return Ok(()) };
    let users = users(b, &mut o, &ctx)?;
    let mut counts = [0usize; 2];
    for (slot, kind) in [Kind::Directory, Kind::File].into_iter().enumerate() {
        let list_path = o.at(kind.list());
        let items = o.list(kind.list())?;
        counts[slot] += items.len();
        for (index, item) in items.iter().enumerate() {
            top_level_item(b, item, kind, index_path(&list_path, index), &ctx, &users)?;
        }
    }
    counts[0] += users.counts[0];
    counts[1] += users.counts[1];
    semantics_notes(b, &o, counts);
    o.finish(&mut b.notes);
    Ok(())
}

/// One persistent root of a Home Manager user's `home.persistence` (the interface
/// to the NixOS module, which shares its options): every entry is in `user`'s home.
pub(super) fn home_manager_root(
    b: &mut Builder,
    mut o: Obj<'_>,
    name: &str,
    user: &UserCtx,
) -> Result<(), ImportError> {
    let Some(ctx) = root_settings(b, &mut o, name, false)? else { return Ok(()) };
    let mut counts = [0usize; 2];
    for (slot, kind) in [Kind::Directory, Kind::File].into_iter().enumerate() {
        let list_path = o.at(kind.list());
        let items = o.list(kind.list())?;
        counts[slot] = items.len();
        for (index, item) in items.iter().enumerate() {
            let path = index_path(&list_path, index);
            if let Some((entry, mount)) = convert(b, item, kind, &path, &ctx, Some(user))? {
                b.push(&mount, Some(user), entry, &path);
            }
        }
    }
    semantics_notes(b, &o, counts);
    o.finish(&mut b.notes);
    Ok(())
}

/// The settings of a persistent root, noted where blankslate has no equivalent;
/// `None` (with a note) for a disabled root or one whose storage cannot be declared.
/// `volume_wide`: whether `hideMounts` hides every mount of the volume (the NixOS
/// option), or only this root's entries (a Home Manager user's).
fn root_settings(
    b: &mut Builder,
    o: &mut Obj<'_>,
    name: &str,
    volume_wide: bool,
) -> Result<Option<RootCtx>, ImportError> {
    if o.bool("enable")? == Some(false) {
        b.note(o.at("enable"), "this persistent root is disabled (enable = false); none of it is imported");
        return Ok(None);
    }
    let Some(mount) = b.storage_mount(o, name, !volume_wide)? else { return Ok(None) };
    let hide = o.bool("hideMounts")?.unwrap_or(false) && volume_wide;
    b.root(&mount).hide_mounts |= hide;
    let debug = o.bool("enableDebugging")?.unwrap_or(false);
    if debug {
        b.note(
            o.at("enableDebugging"),
            "debug tracing of impermanence's scripts has no blankslate equivalent; not imported",
        );
    }
    if o.bool("enableWarnings")? == Some(false) {
        b.note(
            o.at("enableWarnings"),
            "impermanence's warnings switch is not imported; blankslate's checks always apply",
        );
    }
    let trash = o.bool("allowTrash")?.unwrap_or(false);
    if trash {
        b.note(
            o.at("allowTrash"),
            "the `x-gvfs-trash` mount option is not one blankslate applies; directories are mounted without it",
        );
    }
    assertions(b, o, "assertions")?;
    for key in REMOVED_ROOT {
        removed(b, o, key);
    }
    Ok(Some(RootCtx { mount, hide, trash, debug }))
}

/// One note per persistent root on what blankslate does differently with owners.
fn semantics_notes(b: &mut Builder, o: &Obj<'_>, counts: [usize; 2]) {
    if counts[0] > 0 {
        b.note(
            o.at("directories"),
            "impermanence applies a directory's user, group and mode only when it creates the directory; blankslate declares them, so it keeps them and audits drift",
        );
    }
    if counts[1] > 0 {
        b.note(
            o.at("files"),
            "impermanence records no owner or mode for files; they are declared with blankslate's defaults (root:root 0644, or the user's 0644 in a home): set `mode` on files that need tighter permissions, such as private keys",
        );
    }
}

/// The users' entries, declared, and remembered for recognising their folded copies.
struct Users<'a> {
    items: UserItems<'a>,
    by_home: HashMap<String, UserCtx>,
    counts: [usize; 2],
}

fn users<'a>(b: &mut Builder, o: &mut Obj<'a>, root: &RootCtx) -> Result<Users<'a>, ImportError> {
    let mut out = Users { items: HashMap::new(), by_home: HashMap::new(), counts: [0; 2] };
    let users_path = o.at("users");
    for (name, value) in o.attrs("users")? {
        let mut u = Obj::new(value, child_path(&users_path, name))?;
        assertions(b, &mut u, "assertions")?;
        let dirs = u.list("directories")?;
        let files = u.list("files")?;
        if dirs.is_empty() && files.is_empty() {
            u.skip("home");
            u.finish(&mut b.notes);
            continue;
        }
        let ctx = user_ctx(b, name, &mut u, dirs, files)?;
        out.counts[0] += dirs.len();
        out.counts[1] += files.len();
        for (kind, items) in [(Kind::Directory, dirs), (Kind::File, files)] {
            let list_path = u.at(kind.list());
            for (index, item) in items.iter().enumerate() {
                let path = index_path(&list_path, index);
                if let Some((entry, mount)) = convert(b, item, kind, &path, root, Some(&ctx))? {
                    let absolute = join_home(&ctx.home, &entry.path);
                    out.items.insert((kind, absolute), (path.clone(), item));
                    b.push(&mount, Some(&ctx), entry, &path);
                }
            }
        }
        out.by_home.insert(ctx.home.clone(), ctx);
        u.finish(&mut b.notes);
    }
    Ok(out)
}

/// The user's home and primary group, from the `home` attribute where there is one,
/// else from the entries (which all carry both).
fn user_ctx(
    b: &mut Builder,
    name: &str,
    u: &mut Obj<'_>,
    dirs: &[Value],
    files: &[Value],
) -> Result<UserCtx, ImportError> {
    let from_entries = dirs.iter().chain(files).find_map(|item| item.get("home").and_then(Value::as_str));
    let home_path = u.at("home");
    let home = b.home(name, u.str("home")?.or(from_entries), &home_path)?;
    let dir_groups = dirs.iter().filter_map(|d| d.pointer("/defaultPerms/group").and_then(Value::as_str));
    let file_groups =
        files.iter().filter_map(|f| f.pointer("/parentDirectory/defaultPerms/group").and_then(Value::as_str));
    let group = majority(dir_groups.chain(file_groups))
        .or_else(|| majority(dirs.iter().filter_map(|d| d.get("group").and_then(Value::as_str))));
    let group = b.name(group, name, &u.path);
    if !super::valid_name(name) {
        b.note(
            u.path.clone(),
            format!("`{name}` is not a user name blankslate accepts; its entries will not pass `blankslate check`"),
        );
    }
    Ok(UserCtx { name: name.to_owned(), home, group })
}

/// An entry of the persistent root's own lists: a system entry, or a user's entry
/// folded in (it has a `home`).
fn top_level_item(
    b: &mut Builder,
    item: &Value,
    kind: Kind,
    path: String,
    root: &RootCtx,
    users: &Users<'_>,
) -> Result<(), ImportError> {
    let Some(home) = item.get("home").and_then(Value::as_str) else {
        if let Some((entry, mount)) = convert(b, item, kind, &path, root, None)? {
            b.push(&mount, None, entry, &path);
        }
        return Ok(());
    };
    let relative = item.get(kind.noun()).and_then(Value::as_str).and_then(normalize);
    let home_normal = normalize(home).map(|h| format!("/{h}"));
    if let (Some(relative), Some(home_normal)) = (&relative, &home_normal) {
        let absolute = join_home(home_normal, relative);
        if let Some((user_path, user_item)) = users.items.get(&(kind, absolute)) {
            let differs = ["user", "group", "mode", "method"].into_iter().find(|k| item.get(k) != user_item.get(k));
            if let Some(field) = differs {
                b.note(
                    path,
                    format!("this copy of {user_path} differs in `{field}`; the entry under `users` is imported"),
                );
            }
            return Ok(());
        }
    }
    let ctx = if let Some(ctx) = home_normal.as_ref().and_then(|h| users.by_home.get(h)) {
        ctx.clone()
    } else {
        let name = item.get("user").and_then(Value::as_str).unwrap_or("root");
        let name = b.name(Some(name), "root", &child_path(&path, "user"));
        let group = item.pointer("/defaultPerms/group").or_else(|| item.get("group")).and_then(Value::as_str);
        let group = b.name(group, &name, &child_path(&path, "group"));
        let home = b.home(&name, Some(home), &child_path(&path, "home"))?;
        UserCtx { name, home, group }
    };
    b.note(
        path.clone(),
        format!("listed with the home `{}` but not under `users`; declared as an entry of `{}`", ctx.home, ctx.name),
    );
    if let Some((entry, mount)) = convert(b, item, kind, &path, root, Some(&ctx))? {
        b.push(&mount, Some(&ctx), entry, &path);
    }
    Ok(())
}

/// One directory or file entry, in its string or attribute-set form, with the
/// persistent root it is stored in. `None` (with a note) when it cannot be declared.
fn convert(
    b: &mut Builder,
    item: &Value,
    kind: Kind,
    path: &str,
    root: &RootCtx,
    user: Option<&UserCtx>,
) -> Result<Option<(Entry, String)>, ImportError> {
    let entry_kind = kind.entry_kind();
    let default_owner = |mode| user.map_or_else(|| Owner::root(mode), |u| u.owner(mode));
    if let Value::String(text) = item {
        let Some(declared) = b.path(text, user.is_some(), path) else { return Ok(None) };
        let entry = Entry::new(entry_kind, declared, default_owner(entry_kind.default_mode()));
        if kind == Kind::File {
            auto_method(b, path);
        }
        return Ok(Some((entry, root.mount.clone())));
    }
    let mut o = Obj::new(item, path.to_owned())?;
    let given = o.required_str(kind.noun())?;
    let Some(declared) = b.path(given, user.is_some(), &o.at(kind.noun())) else { return Ok(None) };
    let absolute = user.map_or_else(|| declared.clone(), |u| join_home(&u.home, &declared));
    let derived = match kind {
        Kind::Directory => "dirPath",
        Kind::File => "filePath",
    };
    consistent_path(b, &mut o, derived, &absolute)?;
    let mount = common(b, &mut o, root, user)?;
    let entry = match kind {
        Kind::Directory => directory(b, &mut o, declared, root, user)?,
        Kind::File => file(b, &mut o, declared, &absolute, &mount, user)?,
    };
    o.finish(&mut b.notes);
    Ok(Some((entry, mount)))
}

fn directory(
    b: &mut Builder,
    o: &mut Obj<'_>,
    declared: String,
    root: &RootCtx,
    user: Option<&UserCtx>,
) -> Result<Entry, ImportError> {
    let fallback = user.map_or_else(|| Owner::root(Mode::DIRECTORY), |u| u.owner(Mode::DIRECTORY));
    let owner = Owner {
        user: b.name(o.str("user")?, &fallback.user, &o.at("user")),
        group: b.name(o.str("group")?, &fallback.group, &o.at("group")),
        mode: b.mode(o.str("mode")?, EntryKind::Directory, &o.at("mode")),
    };
    let mut entry = Entry::new(EntryKind::Directory, declared, owner);
    default_perms(b, o, &fallback)?;
    match o.bool("hideMount")? {
        Some(true) if !root.hide => entry.options.push(MountOption::Hidden),
        Some(false) if root.hide => {
            b.note(
                o.at("hideMount"),
                "blankslate hides every mount of a persistent root with `hide_mounts`; this one is hidden too",
            );
        }
        _ => {}
    }
    if o.bool("allowTrash")? == Some(true) && !root.trash {
        b.note(o.at("allowTrash"), "the `x-gvfs-trash` mount option is not one blankslate applies; not imported");
    }
    removed(b, o, "method");
    Ok(entry)
}

fn file(
    b: &mut Builder,
    o: &mut Obj<'_>,
    declared: String,
    absolute: &str,
    mount: &str,
    user: Option<&UserCtx>,
) -> Result<Entry, ImportError> {
    let owner = user.map_or_else(|| Owner::root(Mode::FILE), |u| u.owner(Mode::FILE));
    let mut entry = Entry::new(EntryKind::File, declared, owner);
    let method_path = o.at("method");
    match o.str("method")? {
        // Versions before `method` behave as "auto" does.
        None => auto_method(b, &o.path.clone()),
        Some("auto") => auto_method(b, &method_path),
        Some("symlink") => entry.how = Some(How::Symlink),
        Some("bind") => {}
        Some(other) => {
            b.note(method_path, format!("method `{other}` is not known to blankslate; the file is bind-mounted"));
        }
    }
    if let Some(mut p) = o.obj("parentDirectory")? {
        entry.parent = parent_directory(b, &mut p, absolute, &entry.path, mount, user)?;
        p.finish(&mut b.notes);
    }
    Ok(entry)
}

fn auto_method(b: &mut Builder, path: &str) {
    b.note(
        path,
        "method \"auto\": impermanence bind-mounts the file when it already exists in persistent storage and links it otherwise; blankslate always bind-mounts it (write how = \"symlink\" for a link)",
    );
}

/// The parent directory of a file: its owner when that is not blankslate's default,
/// and checks that the derived fields agree with the file.
fn parent_directory(
    b: &mut Builder,
    p: &mut Obj<'_>,
    absolute: &str,
    declared: &str,
    mount: &str,
    user: Option<&UserCtx>,
) -> Result<Option<crate::Owner>, ImportError> {
    let fallback = user.map_or_else(|| Owner::root(Mode::DIRECTORY), |u| u.owner(Mode::DIRECTORY));
    let owner = Owner {
        user: b.name(p.str("user")?, &fallback.user, &p.at("user")),
        group: b.name(p.str("group")?, &fallback.group, &p.at("group")),
        mode: b.mode(p.str("mode")?, EntryKind::Directory, &p.at("mode")),
    };
    let expected_dir = match user {
        Some(_) => declared.rfind('/').map_or("", |cut| &declared[..cut]).to_owned(),
        None => parent_of(absolute).trim_start_matches('/').to_owned(),
    };
    let dir_path = p.at("directory");
    if let Some(dir) = p.str("directory")? {
        if normalize(dir).as_deref() != Some(expected_dir.as_str()) {
            b.note(
                dir_path,
                format!("`{dir}` is not the directory of the file; blankslate uses the file's own directory"),
            );
        }
    }
    consistent_path(b, p, "dirPath", parent_of(absolute))?;
    let storage_path = p.at("persistentStoragePath");
    if let Some(storage) = p.str("persistentStoragePath")? {
        if normalize(storage).map(|s| format!("/{s}")).as_deref() != Some(mount) {
            b.note(storage_path, format!("the parent is said to be stored in `{storage}`, the file in `{mount}`; blankslate stores both in `{mount}`"));
        }
    }
    consistent_home(b, p, user)?;
    default_perms(b, p, &fallback)?;
    assertions(b, p, "assertions")?;
    for key in ["hideMount", "allowTrash", "enableDebugging"] {
        // Directory options that mean nothing for a file's parent.
        p.skip(key);
    }
    if owner == fallback {
        return Ok(None);
    }
    b.note(
        p.path.clone(),
        format!(
            "impermanence applies {}:{} {} only when it creates `{}`; blankslate declares it as the parent's owner, so it keeps it",
            owner.user,
            owner.group,
            owner.mode,
            parent_of(absolute)
        ),
    );
    Ok(Some(owner))
}

/// The fields every entry has: where it is stored, the home, debugging, assertions.
/// Returns the persistent root the entry is stored in.
fn common(b: &mut Builder, o: &mut Obj<'_>, root: &RootCtx, user: Option<&UserCtx>) -> Result<String, ImportError> {
    let mut mount = root.mount.clone();
    let storage_path = o.at("persistentStoragePath");
    if let Some(storage) = o.str("persistentStoragePath")? {
        match b.path(storage, false, &storage_path) {
            Some(other) if other != root.mount => {
                b.note(
                    storage_path,
                    format!("stored in `{other}` rather than `{}`; declared under `{other}`", root.mount),
                );
                mount = other;
            }
            _ => {}
        }
    }
    consistent_home(b, o, user)?;
    if o.bool("enableDebugging")? == Some(true) && !root.debug {
        b.note(
            o.at("enableDebugging"),
            "debug tracing of impermanence's scripts has no blankslate equivalent; not imported",
        );
    }
    assertions(b, o, "assertions")?;
    Ok(mount)
}

fn consistent_home(b: &mut Builder, o: &mut Obj<'_>, user: Option<&UserCtx>) -> Result<(), ImportError> {
    let home_path = o.at("home");
    let given = o.str("home")?;
    let given_normal = given.and_then(normalize).map(|h| format!("/{h}"));
    // A system file's parent says `home = "/"` on current versions.
    let expected = user.map_or("/", |u| u.home.as_str());
    if given.is_some() && given_normal.as_deref() != Some(expected) {
        let given = given.unwrap_or_default();
        let message = match user {
            Some(_) => format!("`{given}` is not the user's home `{expected}`; the entry is declared in `{expected}`"),
            None => format!("`{given}` is set on a system entry; ignored"),
        };
        b.note(home_path, message);
    }
    Ok(())
}

/// Checks a derived absolute path (`dirPath`, `filePath`) against the declared one.
fn consistent_path(b: &mut Builder, o: &mut Obj<'_>, key: &str, expected: &str) -> Result<(), ImportError> {
    let path = o.at(key);
    if let Some(given) = o.str(key)? {
        if normalize(given).map(|g| format!("/{g}")).as_deref() != Some(expected) {
            b.note(
                path,
                format!("`{given}` disagrees with the declared path `{expected}`; blankslate uses `{expected}`"),
            );
        }
    }
    Ok(())
}

/// `defaultPerms`: the owner impermanence gives to missing parents of an entry.
fn default_perms(b: &mut Builder, o: &mut Obj<'_>, expected: &Owner) -> Result<(), ImportError> {
    let Some(mut perms) = o.obj("defaultPerms")? else { return Ok(()) };
    let owner = Owner {
        user: perms.str("user")?.unwrap_or(&expected.user).to_owned(),
        group: perms.str("group")?.unwrap_or(&expected.group).to_owned(),
        mode: b.mode(perms.str("mode")?, EntryKind::Directory, &perms.at("mode")),
    };
    if owner != *expected {
        b.note(
            perms.path.clone(),
            format!(
                "impermanence creates missing parent directories as {}:{} {}; blankslate creates them as {}:{} {}",
                owner.user, owner.group, owner.mode, expected.user, expected.group, expected.mode
            ),
        );
    }
    perms.finish(&mut b.notes);
    Ok(())
}

/// Internal `assertions` lists: only failing ones are worth a note.
fn assertions(b: &mut Builder, o: &mut Obj<'_>, key: &str) -> Result<(), ImportError> {
    let path = o.at(key);
    for (index, item) in o.list(key)?.iter().enumerate() {
        if item.get("assertion").and_then(Value::as_bool) == Some(false) {
            let message = item.get("message").and_then(Value::as_str).unwrap_or("(no message)").trim();
            b.note(index_path(&path, index), format!("impermanence's assertion fails: {message}"));
        }
    }
    Ok(())
}

/// A removed option: absent or `null` normally; anything else is noted.
fn removed(b: &mut Builder, o: &mut Obj<'_>, key: &str) {
    if let Some(value) = o.get(key) {
        b.note(o.at(key), format!("`{key}` is a removed impermanence option; not imported (value: {})", brief(value)));
    }
}

#[cfg(test)]
mod tests {
    use super::super::impermanence as import;

    #[test]
    fn string_entries_get_defaults() {
        let imported = import(r#"{"/persist": {"directories": ["/var/log"], "files": ["/etc/machine-id"], "users": {"alice": {"home": "/home/alice", "directories": [".ssh"], "files": []}}}}"#).unwrap();
        let root = &imported.declaration.persist["/persist"];
        assert_eq!(root.directories[0].path, "/var/log");
        assert_eq!(root.files[0].path, "/etc/machine-id");
        assert_eq!(root.users["alice"].directories[0].owner.user, "alice");
        assert!(imported.notes.iter().any(|n| n.path == "\"/persist\".files[0]" && n.message.contains("auto")));
    }

    #[test]
    fn wrong_shapes_are_errors_with_paths() {
        let error = import(r#"{"/persist": {"directories": "/var/log"}}"#).unwrap_err();
        assert_eq!(error.to_string(), "\"/persist\".directories: expected a list, found a string");
        let error = import(r#"{"/persist": {"directories": [{"user": "root"}]}}"#).unwrap_err();
        assert_eq!(error.to_string(), "\"/persist\".directories[0]: the required field `directory` is missing");
        let error = import("[]").unwrap_err();
        assert!(error.to_string().starts_with("(top level): expected an attribute set"));
    }

    #[test]
    fn removed_options_present_are_noted() {
        let imported = import(r#"{"/persist": {"allowOther": true, "removePrefixDirectory": null, "directories": [{"directory": "/srv", "method": "bindfs"}]}}"#).unwrap();
        let paths: Vec<&str> = imported.notes.iter().map(|n| n.path.as_str()).collect();
        assert!(paths.contains(&"\"/persist\".allowOther"), "{paths:?}");
        assert!(paths.contains(&"\"/persist\".directories[0].method"), "{paths:?}");
        assert!(!paths.contains(&"\"/persist\".removePrefixDirectory"), "{paths:?}");
    }
}
