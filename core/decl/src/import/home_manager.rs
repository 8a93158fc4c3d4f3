//! `home.persistence` of impermanence's Home Manager module: one user's (a standalone
//! Home Manager configuration), or every user's of a NixOS configuration by name.
//!
//! Read from nix-community/impermanence `home-manager.nix` in its two generations:
//!
//! - Since the Home Manager rework (2025) it is an interface to the NixOS module:
//!   each persistent root has the NixOS root's options (`submodule-options.nix`,
//!   without `users`) and the same removed options, and each entry carries its
//!   user's `user` and `home` but `group = null`, because Home Manager does not know
//!   the user's primary group (the NixOS module looks it up). Storage is laid out as
//!   NixOS does it, and as blankslate does: `<persistentStoragePath><home>/<path>`.
//!   These roots are read by the impermanence importer, as a user's entries.
//! - Before (the `home-manager-v1` branch), Home Manager made the mounts (bindfs) and
//!   links itself. A root has `persistentStoragePath` (its name), `enable`,
//!   `directories` (`{ directory, method }`, `method` being `"bindfs"` or `"symlink"`
//!   and defaulting to `defaultDirectoryMethod`; plain paths on the oldest
//!   versions), `files` (paths, always linked with `home.file`), `allowOther` and
//!   `removePrefixDirectory`. Storage is `<persistentStoragePath>/<path>`: with the
//!   usual name `/persistent/home/alice` that is blankslate's layout in the volume
//!   `/persistent`; any other name is noted, since the data must move.

use serde_json::Value;

use super::{
    Builder, Entry, EntryKind, HomeUser, How, ImportError, Obj, UserCtx, child_path, impermanence, index_path,
    majority, normalize, shape,
};

pub(super) fn import(b: &mut Builder, json: &Value, given: &HomeUser) -> Result<(), ImportError> {
    let Value::Object(top) = json else {
        return Err(shape("(top level)", "an attribute set of users or of persistent roots", json));
    };
    // One user's `home.persistence` is keyed by storage paths, which are absolute;
    // the users of a NixOS configuration by their names, which never are.
    if top.keys().all(|key| key.starts_with('/')) {
        let base = "home.persistence";
        let from_entries = top.values().find_map(|root| {
            ["directories", "files"]
                .into_iter()
                .find_map(|list| root.get(list)?.as_array()?.iter().find_map(|item| item.get("user")?.as_str()))
        });
        let Some(name) = given.name.as_deref().or(from_entries) else {
            return Err(ImportError::NoUser { path: base.into() });
        };
        return user(b, name, json, base, given);
    }
    for (name, persistence) in top {
        let base = format!("{}.home.persistence", child_path("home-manager.users", name));
        user(b, name, persistence, &base, given)?;
    }
    Ok(())
}

/// One user's persistent roots.
fn user(b: &mut Builder, name: &str, persistence: &Value, base: &str, given: &HomeUser) -> Result<(), ImportError> {
    let Value::Object(roots) = persistence else {
        return Err(shape(base, "an attribute set of persistent roots", persistence));
    };
    if roots.is_empty() {
        return Ok(());
    }
    let ctx = user_ctx(b, name, roots.values(), base, given)?;
    for (root_name, value) in roots {
        let o = Obj::new(value, child_path(base, root_name))?;
        // The rework's roots print the NixOS options' defaults; the first module's
        // have none of them.
        if o.map.contains_key("hideMounts") || o.map.contains_key("enableWarnings") {
            impermanence::home_manager_root(b, o, root_name, &ctx)?;
        } else {
            first_module_root(b, o, root_name, &ctx)?;
        }
    }
    Ok(())
}

/// The user's home (from the entries, which carry it since the rework; else as
/// given; else `/home/NAME`) and primary group (as given; else the entries'; else,
/// with a note, a group named like the user).
fn user_ctx<'a>(
    b: &mut Builder,
    name: &str,
    roots: impl Iterator<Item = &'a Value> + Clone,
    base: &str,
    given: &HomeUser,
) -> Result<UserCtx, ImportError> {
    let items = roots.flat_map(|root| {
        ["directories", "files"]
            .into_iter()
            .flat_map(move |list| root.get(list).and_then(Value::as_array).into_iter().flatten())
    });
    let from_entries = items.clone().find_map(|item| item.get("home").and_then(Value::as_str));
    let home = b.home(name, from_entries.or(given.home.as_deref()), base)?;
    let group = given.group.as_deref().or_else(|| majority(items.filter_map(|item| item.get("group")?.as_str())));
    let group = if let Some(group) = group {
        b.name(Some(group), name, base)
    } else {
        b.note(
            base,
            format!(
                "Home Manager does not know the primary group of `{name}`; `{name}` is declared: name the group if it is another one (NixOS's normal users are in `users`)"
            ),
        );
        name.to_owned()
    };
    Ok(UserCtx { name: name.to_owned(), home, group })
}

/// A root of the first Home Manager module (see the module docs).
fn first_module_root(b: &mut Builder, mut o: Obj<'_>, name: &str, user: &UserCtx) -> Result<(), ImportError> {
    if o.bool("enable")? == Some(false) {
        b.note(o.at("enable"), "this persistent root is disabled (enable = false); none of it is imported");
        o.finish(&mut b.notes);
        return Ok(());
    }
    let storage_path = o.at("persistentStoragePath");
    let storage = o.str("persistentStoragePath")?.unwrap_or(name);
    let Some(storage) = b.path(storage, false, &storage_path) else {
        o.finish(&mut b.notes);
        return Ok(());
    };
    // Blankslate keeps `PATH` of the home at `<volume><home>/PATH`.
    let mount = match storage.strip_suffix(user.home.as_str()) {
        Some(volume) if volume.starts_with('/') => volume.to_owned(),
        _ => {
            b.note(
                o.path.clone(),
                format!(
                    "Home Manager kept these entries in `{storage}/PATH`; blankslate keeps them in `{storage}{home}/PATH` (a volume holds paths as they are in the root): move the data there before the first boot, e.g. `mkdir -p {storage}{home}` and move each entry into it",
                    home = user.home
                ),
            );
            storage.clone()
        }
    };
    if o.bool("allowOther")? == Some(false) {
        b.note(
            o.at("allowOther"),
            format!(
                "bindfs's `no-allow-other` (only `{}` could enter the mounts) is not reproduced: blankslate bind-mounts, so the files' modes decide who can",
                user.name
            ),
        );
    }
    let prefix_removed = o.bool("removePrefixDirectory")? == Some(true);
    let default_method = o.str("defaultDirectoryMethod")?.unwrap_or("bindfs");
    for kind in [EntryKind::Directory, EntryKind::File] {
        let list = kind.list_name();
        let list_path = o.at(list);
        for (index, item) in o.list(list)?.iter().enumerate() {
            let path = index_path(&list_path, index);
            let (given, method, noun_path) = match item {
                Value::String(text) => (text.as_str(), default_method, path.clone()),
                Value::Object(_) => {
                    let mut e = Obj::new(item, path.clone())?;
                    let noun_path = e.at(kind.noun());
                    let given = e.required_str(kind.noun())?;
                    let method = e.str("method")?.unwrap_or(default_method);
                    e.finish(&mut b.notes);
                    (given, method, noun_path)
                }
                other => return Err(shape(&path, "a path or an attribute set", other)),
            };
            let how = match (kind, method) {
                // Files were always links (`home.file`).
                (EntryKind::File, _) | (EntryKind::Directory, "symlink") => How::Symlink,
                (EntryKind::Directory, "bindfs") => How::Bind,
                (EntryKind::Directory, other) => {
                    b.note(
                        &path,
                        format!("method `{other}` is not known to blankslate; the directory is bind-mounted"),
                    );
                    How::Bind
                }
            };
            let given = if prefix_removed { without_prefix(b, given, &storage, &noun_path) } else { Some(given) };
            let Some(declared) = given.and_then(|g| b.path(g, true, &noun_path)) else { continue };
            let mut entry = Entry::new(kind, declared, user.owner(kind.default_mode()));
            entry.how = match (kind, how) {
                (EntryKind::Directory, How::Bind) => None,
                _ => Some(how),
            };
            b.push(&mount, Some(user), entry, &path);
        }
    }
    b.note(
        o.path.clone(),
        format!(
            "Home Manager's first module recorded no owner or mode; the entries are declared {}:{} with blankslate's 0755 for directories and 0644 for files, applied at every boot: set `mode` where they must be tighter",
            user.name, user.group
        ),
    );
    o.finish(&mut b.notes);
    Ok(())
}

/// `removePrefixDirectory`: the first component names a dotfiles package, not a place
/// in the home. Noted, since the data stays under it in storage.
fn without_prefix<'a>(b: &mut Builder, given: &'a str, storage: &str, path: &str) -> Option<&'a str> {
    let normal = normalize(given).unwrap_or_default();
    let Some((package, rest)) = given.trim_start_matches('/').split_once('/') else {
        b.note(path, format!("with removePrefixDirectory, `{given}` names no path in the home; not imported"));
        return None;
    };
    b.note(
        path,
        format!(
            "removePrefixDirectory: linked at `~/{rest}` from `{storage}/{normal}`; blankslate keeps it at `~/{rest}` in the volume: move it out of `{package}/`"
        ),
    );
    Some(rest)
}
