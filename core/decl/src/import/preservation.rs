//! `config.preservation.preserveAt` of the preservation NixOS module.
//!
//! Read from nix-community/preservation: `options.nix` (the option types),
//! `lib.nix` (how they become tmpfiles rules and mount units) and `module.nix`. What
//! `nix eval --json` prints for one persistent root, all defaults filled in:
//!
//! - `persistentStoragePath` (defaults to the attribute name), `commonMountOptions`,
//!   `directories`, `files`, and `users.<name>` with `username`, `home`,
//!   `directories`, `files`, `commonMountOptions` and, on newer versions, the
//!   read-only `homeMode` and `homeGroup` (the user's `users.users` settings);
//! - entries: `directory` or `file`, `how` (`"bindmount"` or `"symlink"`; some
//!   versions add `"copy"` and `copyBack`), `user`, `group`, `mode`,
//!   `configureParent`, `parent` (`user`, `group`, `mode`), `mountOptions` (a list of
//!   `{ name, value }`: `bind` and, for directories, `X-fstrim.notrim`, then the
//!   common options), `createLinkTarget`, `inInitrd`;
//! - on newer versions, a user's `directories` end with the directories between the
//!   home and its entries (`.local`, `.local/share` for `.local/share/keyrings`),
//!   added by the module's `apply` with `how = "_intermediate"` and only `directory`,
//!   `how`, `user`, `group`, `mode`, `configureParent` and `inInitrd`.
//!
//! A user's entries are printed with absolute paths: the module's `apply` prefixes
//! them with the home, which is taken off again here.
//!
//! Mapping: `how` becomes [`How`], for directories too; `configureParent = true` makes
//! the entry's `parent` (preservation's tmpfiles `d` rule, like blankslate, enforces
//! it); `x-gvfs-hide` in a root's `commonMountOptions` becomes `hide_mounts`, and
//! elsewhere the entry's `x-gvfs-hide` option; the other options blankslate knows
//! (`ro`, `nosuid`, `nodev`, `noexec`) carry over; `bind` is what blankslate does
//! anyway. Consumed: `inInitrd` (blankslate prepares every path in the initramfs,
//! before `switch_root`), `createLinkTarget` (blankslate always creates a link's
//! target in the volume), the `_intermediate` directories (blankslate makes the
//! directories inside a home its user's; another owner is noted) and `homeGroup`
//! (the users' group). Noted: copies (bind mounts in blankslate), options with
//! values or unknown to blankslate, `X-fstrim.notrim`, tmpfiles mode prefixes (`~`,
//! `:`) and a `homeMode` other than 0700.

use std::cell::Cell;

use serde_json::Value;

use super::{
    Builder, Entry, EntryKind, How, ImportError, Mode, MountOption, Obj, Owner, UserCtx, child_path, index_path,
    majority, root_path,
};
use crate::default_home;

/// What the entries of one persistent root inherit from it.
struct RootCtx {
    mount: String,
    hide: bool,
    /// Whether `X-fstrim.notrim` was seen (noted once per root).
    notrim: Cell<bool>,
}

/// One persistent root of `preservation.preserveAt`.
pub(super) fn persistent_root(b: &mut Builder, name: &str, value: &Value) -> Result<(), ImportError> {
    let mut o = Obj::new(value, root_path(name))?;
    let Some(mount) = b.storage_mount(&mut o, name, false)? else { return Ok(()) };
    let common_path = o.at("commonMountOptions");
    let common = o.list("commonMountOptions")?;
    let mut hide = false;
    for (index, option) in common.iter().enumerate() {
        // The common options reappear in every entry's `mountOptions`, where they
        // are mapped; only the hiding marker is lifted to the root.
        if mount_option(option, &index_path(&common_path, index), &mut Vec::new())? == ("x-gvfs-hide", None) {
            hide = true;
        }
    }
    b.root(&mount).hide_mounts |= hide;
    let ctx = RootCtx { mount, hide, notrim: Cell::new(false) };
    for kind in [EntryKind::Directory, EntryKind::File] {
        let key = kind.list_name();
        let list_path = o.at(key);
        for (index, item) in o.list(key)?.iter().enumerate() {
            let path = index_path(&list_path, index);
            if let Some(entry) = convert(b, item, kind, &path, &ctx, None)? {
                b.push(&ctx.mount, None, entry, &path);
            }
        }
    }
    let users_path = o.at("users");
    for (name, value) in o.attrs("users")? {
        user(b, name, value, &child_path(&users_path, name), &ctx)?;
    }
    if ctx.notrim.get() {
        b.note(
            o.path.clone(),
            "`X-fstrim.notrim` is not applied: blankslate's bind mounts are not fstab entries, and fstrim trimming the volume once more through them is harmless",
        );
    }
    o.finish(&mut b.notes);
    Ok(())
}

fn user(b: &mut Builder, name: &str, value: &Value, path: &str, root: &RootCtx) -> Result<(), ImportError> {
    let mut u = Obj::new(value, path.to_owned())?;
    let username = u.str("username")?.unwrap_or(name);
    if username != name {
        b.note(u.at("username"), format!("the entries belong to `{username}`; they are declared under that name"));
    }
    let username = b.name(Some(username), name, &u.at("username"));
    let home_path = u.at("home");
    let home = match u.str("home")? {
        Some(given) => b.path(given, false, &home_path).unwrap_or_else(|| default_home(&username)),
        None => default_home(&username),
    };
    let dirs = u.list("directories")?;
    let files = u.list("files")?;
    // Each entry carries the user's common options already.
    u.skip("commonMountOptions");
    let items = || dirs.iter().chain(files);
    // `homeGroup` (newer versions) is the user's primary group; else the entries'.
    let group = u.str("homeGroup")?;
    let group = group
        .or_else(|| majority(items().filter_map(|i| i.pointer("/parent/group").and_then(Value::as_str))))
        .or_else(|| majority(items().filter_map(|i| i.get("group").and_then(Value::as_str))));
    let group = b.name(group, &username, path);
    let ctx = UserCtx { name: username, home, group };
    let home_mode_path = u.at("homeMode");
    if let Some(text) = u.str("homeMode")? {
        let mode = b.mode(Some(text), EntryKind::Directory, &home_mode_path);
        if mode.bits() != 0o700 {
            b.note(
                home_mode_path,
                format!("blankslate creates a missing home {} 0700 and leaves an existing one's mode as it is; {mode} is not applied", ctx.home),
            );
        }
    }
    for (kind, list) in [(EntryKind::Directory, dirs), (EntryKind::File, files)] {
        let list_path = u.at(kind.list_name());
        for (index, item) in list.iter().enumerate() {
            let item_path = index_path(&list_path, index);
            if item.get("how").and_then(Value::as_str) == Some(INTERMEDIATE) {
                intermediate(b, item, &item_path, &ctx)?;
                continue;
            }
            let Some(entry) = convert(b, item, kind, &item_path, root, Some(&ctx))? else { continue };
            // A path outside the home comes back absolute: a system entry.
            let in_home = !entry.path.starts_with('/');
            b.push(&root.mount, in_home.then_some(&ctx), entry, &item_path);
        }
    }
    u.finish(&mut b.notes);
    Ok(())
}

/// The `how` preservation gives the directories it adds between a home and the
/// entries in it (newer versions).
const INTERMEDIATE: &str = "_intermediate";

/// A directory preservation adds between a home and the entries in it: blankslate
/// creates those itself, owned by the user, so it is not declared; only an owner or
/// mode other than blankslate's is noted.
fn intermediate(b: &mut Builder, item: &Value, path: &str, ctx: &UserCtx) -> Result<(), ImportError> {
    let mut o = Obj::new(item, path.to_owned())?;
    let directory = o.required_str("directory")?;
    o.skip("how");
    let wanted = ctx.owner(Mode::DIRECTORY);
    let owner = Owner {
        user: o.str("user")?.unwrap_or(&wanted.user).to_owned(),
        group: o.str("group")?.unwrap_or(&wanted.group).to_owned(),
        mode: tmpfiles_mode(b, o.str("mode")?, EntryKind::Directory, &o.at("mode")),
    };
    if owner != wanted {
        b.note(
            path,
            format!(
                "preservation makes `{directory}` {}:{} {}; blankslate makes the directories between a home and its entries {}:{} {} (and corrects their owner at every boot)",
                owner.user, owner.group, owner.mode, wanted.user, wanted.group, wanted.mode
            ),
        );
    }
    // Whether it is made in the initrd, or has its parent configured, is moot for a
    // directory that blankslate makes with the user's owner before anything runs.
    o.skip("inInitrd");
    o.skip("configureParent");
    o.finish(&mut b.notes);
    Ok(())
}

/// The path of a user's entry relative to the home (the module prints it with the
/// home in front), or absolute with a note when it is not inside the home.
fn user_path(b: &mut Builder, given: &str, ctx: &UserCtx, path: &str) -> Option<String> {
    let home = ctx.home.trim_end_matches('/');
    let relative = match given.strip_prefix(home) {
        Some(rest) if rest.is_empty() || rest.starts_with('/') => rest.trim_start_matches('/'),
        _ if !given.starts_with('/') => given,
        _ => {
            b.note(
                path,
                format!("`{given}` is not inside the home `{}`; declared as a system entry owned as written", ctx.home),
            );
            return b.path(given, false, path);
        }
    };
    b.path(relative, true, path)
}

/// One entry, string or attribute set. `None` (with a note) when it cannot be
/// declared.
fn convert(
    b: &mut Builder,
    item: &Value,
    kind: EntryKind,
    path: &str,
    root: &RootCtx,
    user: Option<&UserCtx>,
) -> Result<Option<Entry>, ImportError> {
    let noun = kind.noun();
    let mode = kind.default_mode();
    let fallback = user.map_or_else(|| Owner::root(mode), |u| u.owner(mode));
    let (given, mut o) = if let Value::String(text) = item {
        (text.as_str(), None)
    } else {
        let mut o = Obj::new(item, path.to_owned())?;
        (o.required_str(noun)?, Some(o))
    };
    let noun_path = o.as_ref().map_or_else(|| path.to_owned(), |o| o.at(noun));
    let declared = match user {
        Some(ctx) => user_path(b, given, ctx, &noun_path),
        None => b.path(given, false, &noun_path),
    };
    let Some(declared) = declared else { return Ok(None) };
    let mut entry = Entry::new(kind, declared, fallback.clone());
    if let Some(o) = &mut o {
        attributes(b, o, &mut entry, &fallback, root)?;
    }
    if let Some(o) = o {
        o.finish(&mut b.notes);
    }
    Ok(Some(entry))
}

/// The fields of an entry in attribute-set form.
fn attributes(
    b: &mut Builder,
    o: &mut Obj<'_>,
    entry: &mut Entry,
    fallback: &Owner,
    root: &RootCtx,
) -> Result<(), ImportError> {
    let kind = entry.kind;
    let how_path = o.at("how");
    let how = o.str("how")?.unwrap_or("bindmount");
    match (how, kind) {
        ("bindmount", _) => {}
        ("symlink", _) => entry.how = Some(How::Symlink),
        ("copy", _) => b.note(
            how_path,
            format!(
                "blankslate does not copy a {} in at boot and back at shutdown; this one is bind-mounted",
                kind.noun()
            ),
        ),
        (other, _) => b.note(how_path, format!("`how = \"{other}\"` is not known to blankslate; bind-mounted")),
    }
    entry.owner = Owner {
        user: b.name(o.str("user")?, &fallback.user, &o.at("user")),
        group: b.name(o.str("group")?, &fallback.group, &o.at("group")),
        mode: tmpfiles_mode(b, o.str("mode")?, kind, &o.at("mode")),
    };
    let configure = o.bool("configureParent")?.unwrap_or(how == "symlink" && entry.owner.user != "root");
    if let Some(mut p) = o.obj("parent")? {
        let owner = Owner {
            user: b.name(p.str("user")?, &fallback.user, &p.at("user")),
            group: b.name(p.str("group")?, &fallback.group, &p.at("group")),
            mode: tmpfiles_mode(b, p.str("mode")?, EntryKind::Directory, &p.at("mode")),
        };
        p.finish(&mut b.notes);
        if configure {
            entry.parent = Some(owner);
        }
    } else if configure {
        entry.parent = Some(Owner { mode: Mode::DIRECTORY, ..fallback.clone() });
    }
    let options_path = o.at("mountOptions");
    let options = o.list("mountOptions")?;
    // Preservation uses mount options only for bind mounts.
    if how == "bindmount" {
        for (index, option) in options.iter().enumerate() {
            apply_option(b, option, &index_path(&options_path, index), entry, root)?;
        }
    }
    // Blankslate always creates a link's target in the volume, with the entry's owner
    // and mode (`createLinkTarget = true`); it prepares every path in the initramfs,
    // before switch_root (`inInitrd`); copyBack only matters for `how = "copy"`,
    // noted above.
    o.skip("createLinkTarget");
    o.skip("inInitrd");
    o.skip("copyBack");
    Ok(())
}

/// Reads one mount option, string or `{ name, value }`; unknown keys go to `notes`.
fn mount_option<'a>(
    option: &'a Value,
    path: &str,
    notes: &mut Vec<super::ImportNote>,
) -> Result<(&'a str, Option<&'a str>), ImportError> {
    if let Value::String(name) = option {
        return Ok((name, None));
    }
    let mut o = Obj::new(option, path.to_owned())?;
    let name = o.required_str("name")?;
    let value = o.str("value")?;
    o.finish(notes);
    Ok((name, value))
}

fn apply_option(
    b: &mut Builder,
    option: &Value,
    path: &str,
    entry: &mut Entry,
    root: &RootCtx,
) -> Result<(), ImportError> {
    let (name, value) = mount_option(option, path, &mut b.notes)?;
    if let Some(value) = value {
        b.note(path, format!("`{name}={value}`: blankslate applies no mount options with values; not imported"));
        return Ok(());
    }
    match name {
        "bind" => {}
        "X-fstrim.notrim" => root.notrim.set(true),
        "x-gvfs-hide" if root.hide => {}
        _ => match MountOption::parse(name) {
            Some(known) if !entry.options.contains(&known) => entry.options.push(known),
            Some(_) => {}
            None => b.note(path, format!("`{name}` is not a mount option blankslate applies; not imported")),
        },
    }
    Ok(())
}

/// A tmpfiles.d mode: octal, perhaps with a `~` (masked by the existing mode) or `:`
/// (only on creation) prefix, which blankslate does not have.
fn tmpfiles_mode(b: &mut Builder, given: Option<&str>, kind: EntryKind, path: &str) -> Mode {
    let Some(text) = given else { return kind.default_mode() };
    if text == "-" {
        return kind.default_mode();
    }
    let (prefix, rest) = match text.strip_prefix(['~', ':']) {
        Some(rest) => (text.chars().next(), rest),
        None => (None, text),
    };
    let mode = b.mode(Some(rest), kind, path);
    match prefix {
        Some('~') => b.note(path, format!("`{text}`: tmpfiles masks the mode with the existing one; blankslate declares {mode}")),
        Some(_) => b.note(path, format!("`{text}`: tmpfiles applies the mode only when creating the path; blankslate declares {mode} and keeps it")),
        None => {}
    }
    mode
}

#[cfg(test)]
mod tests {
    use super::super::preservation as import;

    #[test]
    fn user_paths_lose_their_home() {
        let imported = import(
            r#"{"/state": {"users": {"alice": {"username": "alice", "home": "/home/alice", "commonMountOptions": [],
                "directories": [{"directory": "/home/alice/.ssh", "how": "bindmount", "user": "alice", "group": "users", "mode": "0700",
                  "configureParent": false, "parent": {"user": "alice", "group": "users", "mode": "0755"},
                  "mountOptions": [{"name": "bind", "value": null}, {"name": "X-fstrim.notrim", "value": null}],
                  "createLinkTarget": false, "inInitrd": false}],
                "files": []}}}}"#,
        )
        .unwrap();
        let alice = &imported.declaration.persist["/state"].users["alice"];
        assert_eq!(alice.group, "users");
        assert_eq!(alice.directories[0].path, ".ssh");
        assert_eq!(alice.directories[0].owner.mode.to_string(), "0700");
        assert!(alice.directories[0].parent.is_none());
    }

    #[test]
    fn tmpfiles_prefixes_and_values_are_noted() {
        let imported = import(
            r#"{"/state": {"files": [{"file": "/etc/x", "mode": ":0600", "mountOptions": ["bind", {"name": "size", "value": "1"}, "nosuid", "x-gdu.hide"]}]}}"#,
        )
        .unwrap();
        let file = &imported.declaration.persist["/state"].files[0];
        assert_eq!(file.owner.mode.to_string(), "0600");
        assert_eq!(file.options, [crate::MountOption::NoSuid]);
        let paths: Vec<&str> = imported.notes.iter().map(|n| n.path.as_str()).collect();
        assert_eq!(
            paths,
            ["\"/state\".files[0].mode", "\"/state\".files[0].mountOptions[1]", "\"/state\".files[0].mountOptions[3]"]
        );
    }
}
