//! Rules that span entries: duplicates, nesting, shadowing, parent conflicts, owners
//! unknown to the target's user database, and the safer defaults (API file systems,
//! private directories open to others, too many mounts). The rules about `/etc` are in
//! [`etc`].

use std::collections::{HashMap, HashSet};

use crate::diag::{Diagnostic, Diagnostics, Rule, Severity};
use crate::model::{
    Declaration, Device, EntryKind, EtcMode, How, Mode, Owner, PersistRoot, ResolvedEntry, Span, UserEntries,
    default_home,
};
use crate::paths::{ancestors, is_inside, parent};
use crate::users::UserDb;

mod etc;

pub use etc::SSH_KEYS_HELP;
use etc::{check_etc_files, check_etc_shadow, check_secret_modes};

/// Above this many bind mounts `check` warns. Every read of the mount table costs
/// about 1.7 µs per mount (`cargo bench -p blankslate-state --bench mountinfo`): with
/// 250 added, one read of `/proc/self/mountinfo` takes 0.43 ms, 12 times a table
/// without them, and systemd, which re-reads it after every mount event, spends
/// about 58 ms doing so across 250 events (217 ms across 500).
pub const MANY_MOUNTS: usize = 250;

/// File systems the kernel or systemd mounts at boot over whatever the root holds.
const API_FILESYSTEMS: [(&str, &str); 4] = [
    ("/proc", "the kernel's view of processes"),
    ("/sys", "the kernel's view of devices and drivers"),
    ("/dev", "device nodes, kept by the kernel and udev"),
    ("/run", "runtime state in a tmpfs"),
];

/// Trees a home must not be, lie inside or contain. A user owns what activation
/// makes in their home (the entries, their missing parents, and the home itself when
/// an entry sets its `parent`), so a home here would hand a user what root runs,
/// reads or boots from, what the kernel mounts anew, or what every user shares.
const SYSTEM_TREES: [(&str, &str); 13] = [
    ("/etc", "the system's configuration (accounts, passwords, sudoers)"),
    ("/usr", "the programs and libraries root runs"),
    ("/bin", "programs root runs"),
    ("/sbin", "programs root runs"),
    ("/lib", "libraries root loads"),
    ("/lib32", "libraries root loads"),
    ("/lib64", "libraries root loads"),
    ("/libx32", "libraries root loads"),
    ("/opt", "software installed for the whole system"),
    ("/boot", "the kernel and the initramfs the machine boots"),
    ("/tmp", "the temporary files of every user"),
    ("/var/tmp", "the temporary files of every user"),
    ("/var/log", "the system's logs"),
];

/// Directories that hold everyone's (or every service's) data: a home may lie inside
/// one, but not be it.
const SHARED_DIRS: [(&str, &str); 4] = [
    ("/home", "every user's home"),
    ("/srv", "the data of every service"),
    ("/mnt", "mount points"),
    ("/media", "mount points of removable media"),
];

/// Why `home` cannot be the home of `user`, if it cannot: it is, lies inside or holds
/// a system path (`SYSTEM_TREES`, the API file systems, blankslate's state
/// directory, one of `persistent_roots`), it is a directory shared by everyone
/// (`SHARED_DIRS`), or it is root's home and `user` is not root. Also for imports,
/// whose homes may come from a user's own JSON.
pub fn home_problem<'a>(user: &str, home: &str, persistent_roots: impl IntoIterator<Item = &'a str>) -> Option<String> {
    let state = [(crate::layout::DEFAULT_STATE_DIR, "blankslate's store and generations")];
    let volumes = persistent_roots.into_iter().map(|mount| (mount, "a persistent volume"));
    let trees = SYSTEM_TREES.iter().chain(&API_FILESYSTEMS).chain(&state).copied().chain(volumes);
    for (tree, what) in trees {
        if home == tree {
            return Some(format!("`{home}` cannot be the home of `{user}`: it holds {what}"));
        }
        if is_inside(home, tree) {
            return Some(format!("the home `{home}` of `{user}` lies inside `{tree}`, which holds {what}"));
        }
        if is_inside(tree, home) {
            return Some(format!("the home `{home}` of `{user}` holds `{tree}`, which holds {what}"));
        }
    }
    if let Some((_, what)) = SHARED_DIRS.iter().find(|(dir, _)| *dir == home) {
        return Some(format!("`{home}` cannot be the home of `{user}`: it holds {what}"));
    }
    let root_home = default_home("root");
    if user != "root" && (home == root_home || is_inside(home, &root_home)) {
        return Some(format!("the home `{home}` of `{user}` is root's home, `{root_home}`, or lies inside it"));
    }
    None
}

/// What to do instead of a home [`home_problem`] refuses.
const HOME_HELP: &str = "a home is a directory of the user's own, such as /home/NAME; persist a system path as an absolute entry (with `user = \"NAME\"` if they must own it)";

/// Adds to `diagnostics` every cross-entry problem in `declaration`. `users`, when
/// known, turns unknown owner names into warnings.
pub fn validate(declaration: &Declaration, users: Option<&UserDb>, diagnostics: &mut Diagnostics) {
    let entries = declaration.entries();
    let mut out = Vec::new();
    let by_path = unique_paths(&entries, diagnostics, &mut out);
    for entry in &entries {
        check_nesting(entry, &entries, &by_path, diagnostics, &mut out);
        check_etc_shadow(entry, declaration, &mut out);
        check_persistent_roots(entry, declaration, diagnostics, &mut out);
        check_api_filesystem(entry, &mut out);
    }
    check_parent_owners(&entries, &by_path, diagnostics, &mut out);
    check_private_modes(&entries, &by_path, &mut out);
    check_mount_count(&entries, &mut out);
    check_volumes(declaration, diagnostics, &mut out);
    check_homes(declaration, users, diagnostics, &mut out);
    check_etc_files(declaration, &entries, diagnostics, &mut out);
    check_secret_modes(declaration, &entries, &mut out);
    if let Some(users) = users {
        check_names(declaration, &entries, users, &mut out);
    }
    diagnostics.items.append(&mut out);
}

fn line_of(diagnostics: &Diagnostics, span: Span) -> usize {
    diagnostics.locate(span.start).line
}

/// Reports duplicates and paths declared as both kinds; returns the first entry for
/// each path.
fn unique_paths<'e>(
    entries: &'e [ResolvedEntry<'e>],
    diagnostics: &Diagnostics,
    out: &mut Vec<Diagnostic>,
) -> HashMap<&'e str, usize> {
    let mut by_path: HashMap<&str, usize> = HashMap::new();
    for (index, entry) in entries.iter().enumerate() {
        let Some(&first) = by_path.get(entry.path.as_str()) else {
            by_path.insert(&entry.path, index);
            continue;
        };
        // Report the one written later in the text, pointing back at the earlier
        // one: entries come sorted by persistent root, not in the order written.
        let (earlier, entry) = if entries[first].entry.span.start <= entry.entry.span.start {
            (&entries[first], entry)
        } else {
            (entry, &entries[first])
        };
        let line = line_of(diagnostics, earlier.entry.span);
        let (rule, message) = if earlier.entry.kind == entry.entry.kind {
            (Rule::Duplicate, format!("`{}` is declared twice", entry.path))
        } else {
            (
                Rule::DirectoryAndFile,
                format!(
                    "`{}` is declared as a {} and as a {}",
                    entry.path,
                    earlier.entry.kind.noun(),
                    entry.entry.kind.noun()
                ),
            )
        };
        out.push(
            Diagnostic::error(rule, entry.entry.span, message)
                .with_help(format!("first declared on line {line} (in `{}`)", earlier.root)),
        );
    }
    by_path
}

fn check_nesting(
    entry: &ResolvedEntry<'_>,
    entries: &[ResolvedEntry<'_>],
    by_path: &HashMap<&str, usize>,
    diagnostics: &Diagnostics,
    out: &mut Vec<Diagnostic>,
) {
    for ancestor in ancestors(&entry.path) {
        let Some(&index) = by_path.get(ancestor) else { continue };
        let outer = &entries[index];
        let line = line_of(diagnostics, outer.entry.span);
        if outer.entry.kind == EntryKind::Directory && outer.entry.how() == How::Symlink {
            out.push(
                Diagnostic::error(
                    Rule::NestedInSymlink,
                    entry.entry.span,
                    format!(
                        "`{}` lies inside `{ancestor}`, which is a symlink into `{}` (line {line})",
                        entry.path, outer.root
                    ),
                )
                .with_help(format!(
                    "its data is already in `{}{ancestor}`: drop this entry, or bind-mount `{ancestor}`",
                    outer.root.trim_end_matches('/')
                )),
            );
        } else if outer.entry.kind == EntryKind::File {
            out.push(
                Diagnostic::error(
                    Rule::NestedInFile,
                    entry.entry.span,
                    format!("`{}` lies inside `{ancestor}`, which is declared as a file", entry.path),
                )
                .with_help(format!(
                    "`{ancestor}` is declared on line {line}; declare it as a directory or drop one of them"
                )),
            );
        } else if entry.entry.kind == EntryKind::File && outer.root != entry.root {
            out.push(
                Diagnostic::error(
                    Rule::NestedInOtherRoot,
                    entry.entry.span,
                    format!(
                        "file `{}` (in `{}`) lies inside directory `{ancestor}`, persisted in `{}`",
                        entry.path, entry.root, outer.root
                    ),
                )
                .with_help(format!(
                    "the directory on line {line} already persists it; drop this entry or move it to `{}`",
                    outer.root
                )),
            );
        } else if outer.root == entry.root {
            let inner_line = line_of(diagnostics, entry.entry.span);
            out.push(
                Diagnostic::warning(
                    Rule::Nested,
                    entry.entry.span,
                    format!(
                        "`{}` (line {inner_line}) lies inside `{ancestor}` (line {line}), both persisted in `{}`",
                        entry.path, entry.root
                    ),
                )
                .with_help(format!(
                    "the mount of `{ancestor}` already holds it; drop line {inner_line} unless it needs its own owner, mode or options (it costs one more mount)"
                )),
            );
        }
        return;
    }
}

/// A persisted path in `/proc`, `/sys`, `/dev` or `/run`: the kernel or systemd mounts
/// its own file system there, so the bind mount is hidden, or it hides what the system
/// needs to see.
fn check_api_filesystem(entry: &ResolvedEntry<'_>, out: &mut Vec<Diagnostic>) {
    let path = entry.path.as_str();
    let Some((mount, what)) = API_FILESYSTEMS.iter().find(|(mount, _)| path == *mount || is_inside(path, mount)) else {
        return;
    };
    out.push(
        Diagnostic::error(
            Rule::ApiFilesystem,
            entry.entry.span,
            format!(
                "`{path}` cannot be persisted: `{mount}` holds {what}, a file system mounted anew at every boot over whatever the root has there"
            ),
        )
        .with_help("persist the state where its program keeps it (usually under /var/lib), or let it be made anew each boot"),
    );
}

/// Directories whose programs want them closed to everyone but their owner.
fn is_private_dir(path: &str) -> bool {
    path == "/var/lib/private" || path.ends_with("/.ssh") || path.ends_with("/.gnupg")
}

/// What group and others may do in a directory with `mode`, worst first.
fn openness(mode: Mode) -> Option<&'static str> {
    let bits = mode.bits();
    if bits & 0o022 != 0 {
        Some("change what is in it")
    } else if bits & 0o044 != 0 {
        Some("list it")
    } else if bits & 0o011 != 0 {
        Some("enter it")
    } else {
        None
    }
}

fn private_help(path: &str) -> &'static str {
    if path == "/var/lib/private" {
        "systemd keeps the state of DynamicUser= services there and wants it 0700"
    } else if path.ends_with("/.ssh") {
        "ssh keeps private keys there; sshd's StrictModes refuses keys in a directory others can change"
    } else {
        "gpg keeps private keys there and warns about unsafe permissions on it"
    }
}

/// `.ssh`, `.gnupg` and `/var/lib/private` open to group or others: declared so, or
/// created so as the parent of what is declared inside them.
fn check_private_modes(entries: &[ResolvedEntry<'_>], by_path: &HashMap<&str, usize>, out: &mut Vec<Diagnostic>) {
    for entry in entries {
        if entry.entry.kind == EntryKind::Directory && is_private_dir(&entry.path) {
            if let Some(open) = openness(entry.entry.owner.mode) {
                out.push(
                    Diagnostic::warning(
                        Rule::PrivateMode,
                        entry.entry.span,
                        format!(
                            "`{}` is persisted with mode {}: group and others can {open}",
                            entry.path, entry.entry.owner.mode
                        ),
                    )
                    .with_help(format!("give it mode = \"0700\": {}", private_help(&entry.path))),
                );
            }
        }
    }
    // An undeclared private directory gets the `parent` mode of an entry directly in
    // it (enforced at every activation), else 0755 when it is created. Reported once,
    // at the first entry in the text that needs it.
    let mut undeclared: Vec<(&str, &ResolvedEntry<'_>, Option<Mode>)> = Vec::new();
    for entry in entries {
        let Some(dir) = ancestors(&entry.path).find(|a| is_private_dir(a)) else { continue };
        if by_path.contains_key(dir) {
            continue;
        }
        let asked = entry.entry.parent.as_ref().filter(|_| parent(&entry.path) == dir).map(|p| p.mode);
        match undeclared.iter_mut().find(|(d, ..)| *d == dir) {
            Some((_, first, mode)) => {
                *mode = mode.or(asked);
                if entry.entry.span.start < first.entry.span.start {
                    *first = entry;
                }
            }
            None => undeclared.push((dir, entry, asked)),
        }
    }
    for (dir, entry, asked) in undeclared {
        let mode = asked.unwrap_or(Mode::DIRECTORY);
        let Some(open) = openness(mode) else { continue };
        let fix = if parent(&entry.path) == dir {
            "parent = { mode = \"0700\" } on this entry".to_owned()
        } else {
            format!("a directory entry for `{dir}` with mode = \"0700\"")
        };
        out.push(
            Diagnostic::warning(
                Rule::PrivateMode,
                entry.entry.span,
                format!("`{dir}` is created with mode {mode} to hold `{}`: group and others can {open}", entry.path),
            )
            .with_help(format!("add {fix}: {}", private_help(dir))),
        );
    }
}

/// Warns past [`MANY_MOUNTS`] bind mounts, at the first one past it, naming the
/// directory that would replace the most of them.
fn check_mount_count(entries: &[ResolvedEntry<'_>], out: &mut Vec<Diagnostic>) {
    let mut mounts: Vec<&ResolvedEntry<'_>> = entries.iter().filter(|e| e.entry.how() == How::Bind).collect();
    if mounts.len() <= MANY_MOUNTS {
        return;
    }
    mounts.sort_by_key(|e| e.entry.span.start);
    let mut covered: HashMap<&str, usize> = HashMap::new();
    for entry in &mounts {
        for ancestor in ancestors(&entry.path) {
            *covered.entry(ancestor).or_default() += 1;
        }
    }
    // The directory that covers the most mounts; of equals, the deepest (the
    // smallest change). Places that cannot be persisted whole are never proposed.
    let unsuitable = |dir: &str| {
        dir == "/etc" || is_inside(dir, "/etc") || API_FILESYSTEMS.iter().any(|(m, _)| dir == *m || is_inside(dir, m))
    };
    let best = covered
        .iter()
        .filter(|(dir, count)| **count > 1 && !unsuitable(dir))
        .max_by(|a, b| a.1.cmp(b.1).then(a.0.len().cmp(&b.0.len())).then(b.0.cmp(a.0)));
    let help = match best {
        Some((dir, count)) => format!(
            "persist a parent directory instead of its entries: `{dir}` covers {count} of them (one mount instead of {count})"
        ),
        None => "persist parent directories instead of their entries: one mount each".to_owned(),
    };
    out.push(
        Diagnostic::warning(
            Rule::ManyMounts,
            mounts[MANY_MOUNTS].entry.span,
            format!(
                "{} bind mounts, more than {MANY_MOUNTS}: every program that reads the mount table (systemd re-reads it at every mount event) slows down with each one",
                mounts.len()
            ),
        )
        .with_help(help),
    );
}

fn check_persistent_roots(
    entry: &ResolvedEntry<'_>,
    declaration: &Declaration,
    diagnostics: &Diagnostics,
    out: &mut Vec<Diagnostic>,
) {
    for (mount, root) in &declaration.persist {
        let line = line_of(diagnostics, root.span);
        if *mount == entry.path || is_inside(mount, &entry.path) {
            out.push(
                Diagnostic::error(
                    Rule::RootInsidePersisted,
                    entry.entry.span,
                    if *mount == entry.path {
                        format!("persisted `{mount}` is where a persistent root is mounted")
                    } else {
                        format!("persisted `{}` contains the persistent root `{mount}`", entry.path)
                    },
                )
                .with_help(format!("the volume mounted at `{mount}` (line {line}) must not be persisted into itself")),
            );
        } else if is_inside(&entry.path, mount) {
            out.push(
                Diagnostic::error(
                    Rule::RootInsidePersisted,
                    entry.entry.span,
                    format!("`{}` lies inside the persistent root `{mount}`", entry.path),
                )
                .with_help("declared paths name where data appears in the ephemeral root, not where it is stored"),
            );
        }
    }
}

/// Boot mounts one volume from the kernel command line (the store's) and every other
/// one from its `device`: two roots naming one device, or two without one, cannot boot.
fn check_volumes(declaration: &Declaration, diagnostics: &Diagnostics, out: &mut Vec<Diagnostic>) {
    // In the order written, so that each finding points at the later of two roots.
    let mut roots: Vec<(&String, &PersistRoot)> = declaration.persist.iter().collect();
    roots.sort_by_key(|(_, root)| root.span.start);
    // A `device` already refused leaves its root without one: no second finding.
    let refused = diagnostics.items.iter().any(|d| d.rule == Rule::Volume && d.severity == Severity::Error);
    let mut by_device: HashMap<&Device, (&str, Span)> = HashMap::new();
    let mut without: Option<(&str, Span)> = None;
    for (mount, root) in roots {
        match (&root.volume, without) {
            (None, None) => without = Some((mount, root.span)),
            (None, Some(_)) if refused => {}
            (None, Some((first, span))) => out.push(
                Diagnostic::warning(
                    Rule::Volume,
                    root.span,
                    format!(
                        "persistent roots `{first}` (line {}) and `{mount}` both have no `device`",
                        line_of(diagnostics, span)
                    ),
                )
                .with_help(
                    "boot mounts the store's volume from blankslate.persist= on the kernel command line and every \
                     other one from its `device`: give all roots but the store's a `device`",
                ),
            ),
            (Some(volume), _) => {
                if let Some((first, span)) = by_device.insert(&volume.device, (mount, root.span)) {
                    out.push(
                        Diagnostic::error(
                            Rule::Volume,
                            root.span,
                            format!(
                                "`{mount}` and `{first}` (line {}) name the same device {}",
                                line_of(diagnostics, span),
                                volume.device
                            ),
                        )
                        .with_help("a volume is mounted at one place: declare its paths under one persistent root"),
                    );
                }
            }
        }
    }
}

/// Every user's home: not a system or state path ([`home_problem`]), one home per
/// user, no user's home in another's; and (a warning) the one the target's `passwd`
/// gives, when it knows the user.
fn check_homes(
    declaration: &Declaration,
    users: Option<&UserDb>,
    diagnostics: &Diagnostics,
    out: &mut Vec<Diagnostic>,
) {
    let mounts = || declaration.persist.keys().map(String::as_str);
    let mut homes: Vec<(&str, &UserEntries)> = declaration
        .persist
        .values()
        .flat_map(|root| root.users.iter().map(|(name, user)| (name.as_str(), user)))
        .collect();
    homes.sort_by_key(|(_, user)| user.home_span.start);
    for (index, &(name, user)) in homes.iter().enumerate() {
        let home = user.home.as_str();
        if let Some(problem) = home_problem(name, home, mounts()) {
            out.push(Diagnostic::error(Rule::Home, user.home_span, problem).with_help(HOME_HELP));
            continue;
        }
        let earlier = homes[..index].iter().find(|(other, entries)| {
            let other_home = entries.home.as_str();
            if *other == name {
                other_home != home
            } else {
                other_home == home || is_inside(home, other_home) || is_inside(other_home, home)
            }
        });
        if let Some(&(other, entries)) = earlier {
            let line = line_of(diagnostics, entries.home_span);
            let other_home = entries.home.as_str();
            let message = if other == name {
                format!("`{name}` has the home `{home}` here but `{other_home}` on line {line}")
            } else {
                let relation = if home == other_home {
                    "is"
                } else if is_inside(home, other_home) {
                    "lies inside"
                } else {
                    "holds"
                };
                format!("the home `{home}` of `{name}` {relation} the home `{other_home}` of `{other}` (line {line})")
            };
            out.push(
                Diagnostic::error(Rule::Home, user.home_span, message)
                    .with_help("every user has one home of their own: their entries are theirs, and nobody else's"),
            );
            continue;
        }
        if let Some(known) = users.and_then(|db| db.home(name)).filter(|known| *known != home) {
            out.push(
                Diagnostic::warning(
                    Rule::Home,
                    user.home_span,
                    format!("the home of `{name}` is `{home}` here, but `{known}` in {}", users.map_or("", UserDb::source)),
                )
                .with_help(format!(
                    "entries are made in the home declared here, which `{name}` may never use: write home = \"{known}\" if that is where their data is"
                )),
            );
        }
    }
}

/// One directory may be asked for only one owner and mode: by its own entry, or as
/// the `parent` of entries directly inside it.
fn check_parent_owners(
    entries: &[ResolvedEntry<'_>],
    by_path: &HashMap<&str, usize>,
    diagnostics: &Diagnostics,
    out: &mut Vec<Diagnostic>,
) {
    let mut wanted: HashMap<&str, (&Owner, Span)> = HashMap::new();
    for entry in entries {
        let Some(owner) = &entry.entry.parent else { continue };
        let dir = parent(&entry.path);
        let declared = by_path.get(dir).map(|&i| &entries[i]).filter(|d| d.entry.kind == EntryKind::Directory);
        let earlier = declared.map(|d| (&d.entry.owner, d.entry.span)).or_else(|| wanted.get(dir).copied());
        match earlier {
            Some((first, span)) if first != owner => {
                let line = line_of(diagnostics, span);
                out.push(
                    Diagnostic::error(
                        Rule::ParentConflict,
                        entry.entry.span,
                        format!(
                            "parent `{dir}` is asked to be {}:{} {} here but {}:{} {} on line {line}",
                            owner.user, owner.group, owner.mode, first.user, first.group, first.mode
                        ),
                    )
                    .with_help("give every entry in this directory the same `parent`, or none"),
                );
            }
            Some(_) => {}
            None => {
                wanted.insert(dir, (owner, entry.entry.span));
            }
        }
    }
}

fn check_names(declaration: &Declaration, entries: &[ResolvedEntry<'_>], users: &UserDb, out: &mut Vec<Diagnostic>) {
    let mut owners: Vec<(&Owner, Span)> = Vec::new();
    for entry in entries {
        owners.push((&entry.entry.owner, entry.entry.span));
        owners.extend(entry.entry.parent.as_ref().map(|p| (p, entry.entry.span)));
    }
    let copies = declaration.etc.values().filter(|e| matches!(e.mode, EtcMode::Copy(_)));
    let etc_owners: Vec<(&str, &str, Span)> = copies.map(|e| (e.user.as_str(), e.group.as_str(), e.span)).collect();
    let mut all: Vec<(&str, &str, Span)> =
        owners.iter().map(|(o, s)| (o.user.as_str(), o.group.as_str(), *s)).chain(etc_owners).collect();
    // One warning per unknown name, at its first use in the text: a user with a
    // dozen entries in their home is one finding, not a dozen.
    all.sort_by_key(|(_, _, span)| span.start);
    let use_count = |is_user: bool, name: &str| {
        all.iter().filter(|(u, g, _)| if is_user { *u == name } else { *g == name }).count()
    };
    let help = |count: usize| match count {
        1 => "fine if something creates it before activation; otherwise check the spelling".to_owned(),
        n => format!(
            "used by {n} entries, reported once; fine if something creates it before activation, otherwise check the spelling"
        ),
    };
    let mut warned: HashSet<(bool, &str)> = HashSet::new();
    for &(user, group, span) in &all {
        if !users.has_user(user) && warned.insert((true, user)) {
            out.push(
                Diagnostic::warning(Rule::UnknownUser, span, format!("user `{user}` is not in {}", users.source()))
                    .with_help(help(use_count(true, user))),
            );
        }
        if !users.has_group(group) && warned.insert((false, group)) {
            // The source names the passwd file; groups come from its sibling.
            let groups = users
                .source()
                .strip_suffix("passwd")
                .map_or_else(|| users.source().to_owned(), |dir| format!("{dir}group"));
            out.push(
                Diagnostic::warning(Rule::UnknownUser, span, format!("group `{group}` is not in {groups}"))
                    .with_help(help(use_count(false, group))),
            );
        }
    }
}
