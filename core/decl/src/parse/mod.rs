//! From TOML text to a [`Declaration`]: strict keys, typed values, per-field checks.
//!
//! Cross-entry rules (duplicates, nesting, conflicts) live in `validate`; this module
//! reports everything that can be judged from one value and its key.

use std::collections::BTreeMap;
use std::path::Path;

use toml_edit::{Item, Key, Table, TableLike, Value};

use super::diag::{Diagnostic, Diagnostics, Rule, nearest};
use super::model::{
    Declaration, Device, Entry, EntryKind, EtcContents, EtcEntry, EtcMode, EtcTree, How, Mode, MountOption, Owner,
    PersistRoot, Span, UserEntries, VERSION, VolumeSpec, default_home,
};
use super::paths::{PathKind, check_path};

mod settings;

const TOP_KEYS: &[&str] = &["version", "root", "persist", "etc", "etc_tree", "audit", "net"];
const ROOT_KEYS: &[&str] = &["kind", "size", "mode", "device", "keep"];
const PERSIST_KEYS: &[&str] = &["directories", "files", "users", "hide_mounts", "device", "fs_type", "mount_options"];
const USER_KEYS: &[&str] = &["home", "group", "directories", "files"];
const DIRECTORY_KEYS: &[&str] = &["directory", "user", "group", "mode", "parent", "how", "options"];
const FILE_KEYS: &[&str] = &["file", "user", "group", "mode", "parent", "how", "options"];
const PARENT_KEYS: &[&str] = &["user", "group", "mode"];
const ETC_KEYS: &[&str] = &["text", "source", "directory", "mode", "user", "group"];
const ETC_TREE_KEYS: &[&str] = &["source"];
const AUDIT_KEYS: &[&str] = &["ignore"];
const NET_KEYS: &[&str] = &["keep", "max_size"];
/// The most boots a net keeps: each is a directory the shutdown writes and lists.
const MAX_NET_BOOTS: i64 = 100;
/// The most previous roots a btrfs root keeps: each is a subvolume `net list` audits.
const MAX_PREVIOUS_ROOTS: i64 = 100;
/// Files their programs write in place (never by rename): no warning about renames
/// (systemd's own trouble with a mounted machine-id has a warning of its own).
pub(super) const WRITTEN_IN_PLACE: &[&str] = &["/etc/machine-id"];

/// Parses `source` (the text of `file`) into a declaration. Relative `/etc` sources
/// resolve against `file`'s directory. Returns `None` only when the text is not TOML;
/// otherwise the declaration holds whatever could be read, and the diagnostics say
/// what could not.
pub fn parse(file: &Path, source: &str, diagnostics: &mut Diagnostics) -> Option<Declaration> {
    let document = match toml_edit::Document::parse(source) {
        Ok(document) => document,
        Err(error) => {
            let span = error.span().map(Span::from);
            diagnostics.items.push(Diagnostic::error(Rule::Syntax, span, error.message().trim_end()));
            return None;
        }
    };
    let base = file.parent().map_or_else(|| Path::new(".").to_path_buf(), Path::to_path_buf);
    let mut parser = Parser { diagnostics, base: &base };
    let mut declaration = parser.declaration(document.as_table());
    declaration.base =
        if base.as_os_str().is_empty() { std::env::current_dir().ok() } else { std::path::absolute(&base).ok() };
    Some(declaration)
}

struct Parser<'d> {
    diagnostics: &'d mut Diagnostics,
    base: &'d Path,
}

/// An element of an array: an inline value, or a `[[table]]`.
#[derive(Clone, Copy)]
enum Element<'a> {
    Value(&'a Value),
    Table(&'a Table),
}

impl<'a> Element<'a> {
    fn span(self) -> Span {
        match self {
            Element::Value(v) => v.span(),
            Element::Table(t) => t.span(),
        }
        .map(Span::from)
        .unwrap_or_default()
    }

    fn as_str(self) -> Option<&'a str> {
        match self {
            Element::Value(v) => v.as_str(),
            Element::Table(_) => None,
        }
    }

    fn as_table_like(self) -> Option<&'a dyn TableLike> {
        match self {
            Element::Value(v) => v.as_inline_table().map(|t| t as &dyn TableLike),
            Element::Table(t) => Some(t),
        }
    }

    fn type_name(self) -> &'static str {
        match self {
            Element::Value(v) => v.type_name(),
            Element::Table(_) => "table",
        }
    }
}

fn span_of(item: &Item) -> Span {
    item.span().map(Span::from).unwrap_or_default()
}

fn key_span(key: &Key) -> Span {
    key.span().map(Span::from).unwrap_or_default()
}

/// A value together with where it was written.
struct Field<'a> {
    key: Span,
    item: &'a Item,
}

impl Field<'_> {
    /// The value's span, or the key's when the value has none (standard tables).
    fn span(&self) -> Span {
        match span_of(self.item) {
            Span { start: 0, end: 0 } => self.key,
            span => span,
        }
    }
}

fn field<'a>(table: &'a dyn TableLike, key: &str) -> Option<Field<'a>> {
    table.get_key_value(key).map(|(k, item)| Field { key: key_span(k), item })
}

impl Parser<'_> {
    fn push(&mut self, diagnostic: Diagnostic) {
        self.diagnostics.items.push(diagnostic);
    }

    /// Reports every key of `table` not in `allowed`, suggesting the nearest one.
    fn check_keys(&mut self, table: &dyn TableLike, allowed: &[&str], what: &str) {
        for (name, _) in table.iter() {
            if allowed.contains(&name) {
                continue;
            }
            let span = table.get_key_value(name).map(|(k, _)| key_span(k));
            let help = match nearest(name, allowed) {
                Some(best) => format!("did you mean `{best}`?"),
                None => format!("valid keys here: {}", allowed.join(", ")),
            };
            self.push(
                Diagnostic::error(Rule::UnknownKey, span, format!("unknown key `{name}` in {what}")).with_help(help),
            );
        }
    }

    fn wrong_type(&mut self, span: Span, what: &str, expected: &str, found: &str) {
        self.push(Diagnostic::error(Rule::WrongType, span, format!("{what} must be {expected}, not {found}")));
    }

    fn table<'a>(&mut self, field: &Field<'a>, what: &str) -> Option<&'a dyn TableLike> {
        let table = field.item.as_table_like();
        if table.is_none() {
            self.wrong_type(field.span(), what, "a table", field.item.type_name());
        }
        table
    }

    fn string(&mut self, field: &Field<'_>, what: &str) -> Option<String> {
        let text = field.item.as_str().map(str::to_owned);
        if text.is_none() {
            self.wrong_type(field.span(), what, "a string", field.item.type_name());
        }
        text
    }

    fn bool(&mut self, field: &Field<'_>, what: &str) -> Option<bool> {
        let value = field.item.as_bool();
        if value.is_none() {
            self.wrong_type(field.span(), what, "true or false", field.item.type_name());
        }
        value
    }

    fn elements<'a>(&mut self, field: &Field<'a>, what: &str) -> Vec<Element<'a>> {
        if let Some(array) = field.item.as_array() {
            array.iter().map(Element::Value).collect()
        } else if let Some(tables) = field.item.as_array_of_tables() {
            tables.iter().map(Element::Table).collect()
        } else {
            self.wrong_type(field.span(), what, "an array", field.item.type_name());
            Vec::new()
        }
    }

    fn mode(&mut self, field: &Field<'_>) -> Option<Mode> {
        let Some(text) = field.item.as_str() else {
            let help =
                field.item.as_integer().map(|n| format!("write the mode as a quoted octal string, like \"0{n}\""));
            self.wrong_type(field.span(), "`mode`", "a quoted octal string such as \"0755\"", field.item.type_name());
            if let (Some(help), Some(last)) = (help, self.diagnostics.items.pop()) {
                self.push(last.with_help(help));
            }
            return None;
        };
        let mode = Mode::parse_octal(text);
        if mode.is_none() {
            self.push(
                Diagnostic::error(Rule::InvalidMode, field.span(), format!("`{text}` is not a valid mode"))
                    .with_help("a mode is up to four octal digits, at most \"7777\", such as \"0755\""),
            );
        }
        mode
    }

    /// A user or group name: what `useradd` would accept, give or take.
    fn name(&mut self, field: &Field<'_>, what: &str) -> Option<String> {
        let text = self.string(field, what)?;
        if valid_name(&text) {
            Some(text)
        } else {
            self.push(
                Diagnostic::error(Rule::InvalidName, field.span(), format!("`{text}` is not a valid {what} name"))
                    .with_help("names start with a letter or `_` and hold letters, digits, `_`, `-`, `.`"),
            );
            None
        }
    }

    fn declaration(&mut self, top: &Table) -> Declaration {
        self.check_keys(top, TOP_KEYS, "the declaration");
        let mut declaration = Declaration::default();
        match field(top, "version") {
            None => self.push(
                Diagnostic::error(Rule::MissingKey, Span::default(), "the declaration does not say its format version")
                    .with_help(format!("add `version = {VERSION}` as the first line")),
            ),
            Some(f) => match f.item.as_integer() {
                Some(VERSION) => {}
                Some(other) => self.push(
                    Diagnostic::error(
                        Rule::UnsupportedVersion,
                        f.span(),
                        format!("format version {other} is not supported"),
                    )
                    .with_help(format!("this blankslate reads version {VERSION}")),
                ),
                None => self.wrong_type(f.span(), "`version`", "an integer", f.item.type_name()),
            },
        }
        if let Some(f) = field(top, "root") {
            if let Some(table) = self.table(&f, "`root`") {
                declaration.root = self.root(table);
            }
        }
        if let Some(f) = field(top, "persist") {
            if let Some(table) = self.table(&f, "`persist`") {
                declaration.persist = self.persist_roots(table);
            }
        }
        if let Some(f) = field(top, "etc") {
            if let Some(table) = self.table(&f, "`etc`") {
                declaration.etc = self.etc_entries(table);
            }
        }
        if let Some(f) = field(top, "etc_tree") {
            if let Some(table) = self.table(&f, "`etc_tree`") {
                declaration.etc_tree = self.etc_tree(f.key, table);
            }
        }
        if let Some(f) = field(top, "audit") {
            if let Some(table) = self.table(&f, "`audit`") {
                declaration.audit = self.audit(table);
            }
        }
        if let Some(f) = field(top, "net") {
            if let Some(table) = self.table(&f, "`net`") {
                declaration.net = Some(self.net(table));
            }
        }
        declaration
    }

    fn persist_roots(&mut self, table: &dyn TableLike) -> BTreeMap<String, PersistRoot> {
        let mut roots = BTreeMap::new();
        for (mount, _) in table.iter() {
            let f = field(table, mount).expect("key just listed");
            check_path(mount, PathKind::Absolute, f.key, "a persistent root", &mut self.diagnostics.items);
            let Some(body) = self.table(&f, "a persistent root") else { continue };
            self.check_keys(body, PERSIST_KEYS, &format!("persistent root `{mount}`"));
            let mut root = PersistRoot {
                span: f.key,
                volume: self.volume(body),
                hide_mounts: field(body, "hide_mounts").and_then(|f| self.bool(&f, "`hide_mounts`")).unwrap_or(false),
                directories: Vec::new(),
                files: Vec::new(),
                users: BTreeMap::new(),
            };
            let system = Defaults { user: "root", group: "root", home: None };
            root.directories = self.entries(body, EntryKind::Directory, &system);
            root.files = self.entries(body, EntryKind::File, &system);
            if let Some(f) = field(body, "users") {
                if let Some(users) = self.table(&f, "`users`") {
                    root.users = self.users(users);
                }
            }
            roots.insert(mount.to_owned(), root);
        }
        roots
    }

    /// `device`, `fs_type` and `mount_options` of a persistent root: how boot mounts a
    /// volume other than the store's.
    fn volume(&mut self, body: &dyn TableLike) -> Option<VolumeSpec> {
        let fs_type = field(body, "fs_type").and_then(|f| {
            let name = self.string(&f, "`fs_type`")?;
            if !valid_fs_type(&name) {
                self.push(
                    Diagnostic::error(Rule::Volume, f.span(), format!("`{name}` is not a file system type"))
                        .with_help("a type as /proc/filesystems names it, such as \"ext4\", \"xfs\", \"btrfs\""),
                );
            }
            Some(name)
        });
        let options = field(body, "mount_options").map(|f| self.volume_options(&f)).unwrap_or_default();
        let Some(f) = field(body, "device") else {
            if let Some(f) = field(body, "fs_type").or_else(|| field(body, "mount_options")) {
                self.push(
                    Diagnostic::error(Rule::Volume, f.key, "`fs_type` and `mount_options` need a `device`").with_help(
                        "the store's volume is mounted before the declaration is read: say its type and options on \
                         the kernel command line, blankslate.persist=DEVICE:FSTYPE:OPTIONS",
                    ),
                );
            }
            return None;
        };
        let device = self.device(&f);
        let fs_type = fs_type.unwrap_or_else(|| VolumeSpec::DEFAULT_FS_TYPE.to_owned());
        Some(VolumeSpec { device: device?, fs_type, options })
    }

    /// A `device`: a `/dev` path, `LABEL=…` or `UUID=…`.
    fn device(&mut self, f: &Field<'_>) -> Option<Device> {
        let text = self.string(f, "`device`")?;
        Device::parse(&text)
            .map_err(|reason| {
                self.push(
                    Diagnostic::error(Rule::Volume, f.span(), format!("`{text}` is not a device: {reason}"))
                        .with_help("write \"LABEL=data\", \"UUID=…\" (as blkid prints them) or \"/dev/vdb\""),
                );
            })
            .ok()
    }

    /// A volume's mount options: one option per string (`noatime`, `compress=zstd`).
    fn volume_options(&mut self, f: &Field<'_>) -> Vec<String> {
        let mut options = Vec::new();
        for element in self.elements(f, "`mount_options`") {
            match element.as_str() {
                Some(text) if !text.is_empty() && !text.contains([',', ' ', '\n', '\t']) => {
                    options.push(text.to_owned());
                }
                Some(text) => self.push(
                    Diagnostic::error(Rule::Volume, element.span(), format!("`{text}` is not one mount option"))
                        .with_help("one option per string: [\"noatime\", \"commit=30\"]"),
                ),
                None => self.wrong_type(element.span(), "a mount option", "a string", element.type_name()),
            }
        }
        options
    }

    fn users(&mut self, table: &dyn TableLike) -> BTreeMap<String, UserEntries> {
        let mut users = BTreeMap::new();
        for (name, _) in table.iter() {
            let f = field(table, name).expect("key just listed");
            if !valid_name(name) {
                self.push(
                    Diagnostic::error(Rule::InvalidName, f.key, format!("`{name}` is not a valid user name"))
                        .with_help("names start with a letter or `_` and hold letters, digits, `_`, `-`, `.`"),
                );
            }
            let Some(body) = self.table(&f, "a user's entries") else { continue };
            self.check_keys(body, USER_KEYS, &format!("the entries of user `{name}`"));
            let home_field = field(body, "home");
            let home_span = home_field.as_ref().map_or(f.key, Field::span);
            let home = match home_field {
                Some(f) => self.string(&f, "`home`").filter(|home| {
                    check_path(home, PathKind::Absolute, f.span(), "a home directory", &mut self.diagnostics.items)
                }),
                None => None,
            }
            .unwrap_or_else(|| default_home(name));
            let group = field(body, "group").and_then(|f| self.name(&f, "group")).unwrap_or_else(|| name.to_owned());
            let defaults = Defaults { user: name, group: &group, home: Some(&home) };
            let directories = self.entries(body, EntryKind::Directory, &defaults);
            let files = self.entries(body, EntryKind::File, &defaults);
            let entries = UserEntries { span: f.key, home: home.clone(), home_span, group, directories, files };
            users.insert(name.to_owned(), entries);
        }
        users
    }

    fn entries(&mut self, body: &dyn TableLike, kind: EntryKind, defaults: &Defaults<'_>) -> Vec<Entry> {
        let list_key = kind.list_name();
        let Some(f) = field(body, list_key) else { return Vec::new() };
        self.elements(&f, &format!("`{list_key}`"))
            .into_iter()
            .filter_map(|element| self.entry(element, kind, defaults))
            .collect()
    }

    fn entry(&mut self, element: Element<'_>, kind: EntryKind, defaults: &Defaults<'_>) -> Option<Entry> {
        let path_kind = if defaults.home.is_some() { PathKind::Relative } else { PathKind::Absolute };
        let noun = kind.noun();
        let default_mode = kind.default_mode();
        let mut entry = Entry {
            span: element.span(),
            kind,
            path: String::new(),
            owner: Owner { user: defaults.user.into(), group: defaults.group.into(), mode: default_mode },
            parent: None,
            how: (kind == EntryKind::File).then_some(How::Bind),
            options: Vec::new(),
        };
        let mut how_given = false;
        if let Some(path) = element.as_str() {
            path.clone_into(&mut entry.path);
        } else if let Some(table) = element.as_table_like() {
            let keys = match kind {
                EntryKind::Directory => DIRECTORY_KEYS,
                EntryKind::File => FILE_KEYS,
            };
            self.check_keys(table, keys, &format!("a {noun} entry"));
            let Some(f) = field(table, noun) else {
                self.push(
                    Diagnostic::error(
                        Rule::MissingKey,
                        element.span(),
                        format!("this {noun} entry has no `{noun}` path"),
                    )
                    .with_help(format!("add `{noun} = \"/some/path\"`")),
                );
                return None;
            };
            entry.path = self.string(&f, &format!("`{noun}`"))?;
            entry.span = f.span();
            self.owner_fields(table, &mut entry.owner);
            if let Some(f) = field(table, "parent") {
                if let Some(parent) = self.table(&f, "`parent`") {
                    self.check_keys(parent, PARENT_KEYS, "`parent`");
                    let mut owner =
                        Owner { user: defaults.user.into(), group: defaults.group.into(), mode: Mode::DIRECTORY };
                    self.owner_fields(parent, &mut owner);
                    entry.parent = Some(owner);
                }
            }
            how_given = self.how_and_options(table, &mut entry);
        } else {
            self.wrong_type(
                element.span(),
                &format!("a {noun} entry"),
                "a path string or a table",
                element.type_name(),
            );
            return None;
        }
        let what = if defaults.home.is_some() {
            format!("a {noun} in a home directory")
        } else {
            format!("a persisted {noun}")
        };
        let before = self.diagnostics.items.len();
        let ok = check_path(&entry.path, path_kind, entry.span, &what, &mut self.diagnostics.items);
        // An absolute path inside the home: say exactly what to write instead.
        let inside_home =
            defaults.home.and_then(|home| entry.path.strip_prefix(home)?.strip_prefix('/').map(|rest| (home, rest)));
        if let Some((home, rest)) = inside_home {
            for diagnostic in &mut self.diagnostics.items[before..] {
                if diagnostic.rule == Rule::RelativePath {
                    diagnostic.help = Some(format!("paths here are relative to {home}: write \"{rest}\""));
                }
            }
        }
        if ok && kind == EntryKind::File && !how_given && !WRITTEN_IN_PLACE.contains(&entry.path.as_str()) {
            self.bind_file_warning(&entry);
        }
        if ok && entry.path == "/etc/machine-id" && entry.how() == How::Bind {
            self.push(
                Diagnostic::warning(
                    Rule::MachineIdBind,
                    entry.span,
                    "`/etc/machine-id` will be bind-mounted: under systemd, systemd-machine-id-commit.service fails \
                     on it (it commits only onto a tmpfs, and systemd 252 tries at every boot)",
                )
                .with_help("say how = \"copy\": a file of the root's own, written back by `blankslate persist sync`"),
            );
        }
        ok.then_some(entry)
    }

    /// An entry's `how` and mount `options`; `true` if it says how.
    fn how_and_options(&mut self, table: &dyn TableLike, entry: &mut Entry) -> bool {
        let (kind, noun) = (entry.kind, entry.kind.noun());
        let how = field(table, "how");
        if let Some(f) = &how {
            match self.string(f, "`how`").as_deref() {
                // A directory's bind mount is `None`, as when nothing is said.
                Some("bind") => entry.how = (kind == EntryKind::File).then_some(How::Bind),
                Some("symlink") => entry.how = Some(How::Symlink),
                Some("copy") if kind == EntryKind::File => entry.how = Some(How::Copy),
                Some(other) => self.push(
                    Diagnostic::error(
                        Rule::WrongType,
                        f.span(),
                        format!("`how = \"{other}\"` is not a way to persist a {noun}"),
                    )
                    .with_help(if kind == EntryKind::File {
                        "use \"bind\" (a bind mount), \"symlink\" or \"copy\" (written back when it changes)"
                    } else {
                        "use \"bind\" (a bind mount) or \"symlink\""
                    }),
                ),
                None => {}
            }
        }
        if let Some(f) = field(table, "options") {
            entry.options = self.mount_options(&f);
            if entry.how == Some(How::Copy) && !entry.options.is_empty() {
                self.push(
                    Diagnostic::error(
                        Rule::WrongType,
                        f.key,
                        format!("`{}` is a copy (how = \"copy\"), not a mount: options do not apply", entry.path),
                    )
                    .with_help("remove `options`, or bind-mount the file"),
                );
            }
        }
        how.is_some()
    }

    /// A file bind-mounted by default: programs that save by writing a new file and
    /// renaming it over the old one get EBUSY on a mount point.
    fn bind_file_warning(&mut self, entry: &Entry) {
        let directory = match entry.path.rsplit_once('/') {
            Some((dir, _)) if !dir.is_empty() => format!("`{dir}`"),
            _ => "its directory".to_owned(),
        };
        self.push(
            Diagnostic::warning(
                Rule::FileBindRename,
                entry.span,
                format!(
                    "`{}` will be bind-mounted: a program that replaces it with rename() fails (EBUSY)",
                    entry.path
                ),
            )
            .with_help(format!(
                "persist {directory} instead, or say how: how = \"bind\" (if it is written in place), \"copy\" (a \
                 file of its own, written back by `blankslate persist sync`) or \"symlink\""
            )),
        );
    }

    fn owner_fields(&mut self, table: &dyn TableLike, owner: &mut Owner) {
        if let Some(user) = field(table, "user").and_then(|f| self.name(&f, "user")) {
            owner.user = user;
        }
        if let Some(group) = field(table, "group").and_then(|f| self.name(&f, "group")) {
            owner.group = group;
        }
        if let Some(mode) = field(table, "mode").and_then(|f| self.mode(&f)) {
            owner.mode = mode;
        }
    }

    fn mount_options(&mut self, f: &Field<'_>) -> Vec<MountOption> {
        let mut options = Vec::new();
        for element in self.elements(f, "`options`") {
            let Some(text) = element.as_str() else {
                self.wrong_type(element.span(), "a mount option", "a string", element.type_name());
                continue;
            };
            if let Some(option) = MountOption::parse(text) {
                options.push(option);
            } else {
                let known: Vec<&str> = MountOption::ALL.iter().map(|o| o.as_str()).collect();
                let help = nearest(text, &known)
                    .map_or_else(|| format!("known options: {}", known.join(", ")), |n| format!("did you mean `{n}`?"));
                self.push(
                    Diagnostic::error(
                        Rule::InvalidMountOption,
                        element.span(),
                        format!("`{text}` is not a mount option blankslate applies"),
                    )
                    .with_help(help),
                );
            }
        }
        options
    }

    fn etc_entries(&mut self, table: &dyn TableLike) -> BTreeMap<String, EtcEntry> {
        let mut entries = BTreeMap::new();
        for (path, _) in table.iter() {
            let f = field(table, path).expect("key just listed");
            let path_ok = check_path(path, PathKind::Relative, f.key, "an /etc entry", &mut self.diagnostics.items);
            if let Some((top, what)) = path_ok.then(|| crate::layout::reserved(path)).flatten() {
                self.push(
                    Diagnostic::error(
                        Rule::InvalidPath,
                        f.key,
                        format!("/etc entry `{path}` is inside `/etc/{top}`, where blankslate {what}"),
                    )
                    .with_help("choose another name"),
                );
            }
            let Some(body) = self.table(&f, "an /etc entry") else { continue };
            if let Some(entry) = self.etc_entry(path, f.key, body) {
                if path_ok {
                    entries.insert(path.to_owned(), entry);
                }
            }
        }
        entries
    }

    fn etc_entry(&mut self, path: &str, span: Span, body: &dyn TableLike) -> Option<EtcEntry> {
        self.check_keys(body, ETC_KEYS, &format!("/etc entry `{path}`"));
        let text = field(body, "text");
        let source = field(body, "source");
        let directory = match field(body, "directory") {
            Some(f) => self.bool(&f, "`directory`")?,
            None => false,
        };
        let value_span = [&source, &text].into_iter().flatten().next().map_or(span, Field::span);
        let (contents, mode) = if directory {
            // A directory has no contents: `text` or `source` beside it is a mistake
            // about what the entry is.
            if let Some((key, given)) = text.map(|t| ("text", t)).or(source.map(|s| ("source", s))) {
                self.push(
                    Diagnostic::error(
                        Rule::EtcContents,
                        given.key,
                        format!("/etc entry `{path}` is a directory (`directory = true`) and has `{key}`"),
                    )
                    .with_help(format!("remove `{key}`, or `directory = true` for a file")),
                );
                return None;
            }
            (EtcContents::Directory(true), EtcMode::Copy(self.etc_directory_mode(path, body)?))
        } else {
            (self.etc_contents(path, span, text, source)?, self.etc_mode(body)?)
        };
        let mut entry = EtcEntry { span, value_span, contents, mode, user: "root".into(), group: "root".into() };
        for key in ["user", "group"] {
            let Some(f) = field(body, key) else { continue };
            if mode == EtcMode::Link {
                self.push(
                    Diagnostic::error(
                        Rule::OwnerOnLink,
                        f.key,
                        format!("`{key}` has no effect on /etc entry `{path}`, which is a link"),
                    )
                    .with_help("give it a `mode` (such as \"0440\") to install a copy with this owner"),
                );
                continue;
            }
            let Some(name) = self.name(&f, key) else { continue };
            if key == "user" { entry.user = name } else { entry.group = name }
        }
        Some(entry)
    }

    /// A file entry's contents: `text` or `source`, exactly one.
    fn etc_contents(
        &mut self,
        path: &str,
        span: Span,
        text: Option<Field<'_>>,
        source: Option<Field<'_>>,
    ) -> Option<EtcContents> {
        match (text, source) {
            (Some(text), None) => Some(EtcContents::Text(self.string(&text, "`text`")?)),
            (None, Some(source)) => {
                let given = self.string(&source, "`source`")?;
                Some(EtcContents::Source(self.etc_source(&given, source.span())?))
            }
            (Some(_), Some(source)) => {
                self.push(
                    Diagnostic::error(
                        Rule::EtcContents,
                        source.key,
                        format!("/etc entry `{path}` has both `text` and `source`"),
                    )
                    .with_help("keep one of them"),
                );
                None
            }
            (None, None) => {
                self.push(
                    Diagnostic::error(
                        Rule::EtcContents,
                        span,
                        format!("/etc entry `{path}` has neither `text` nor `source`"),
                    )
                    .with_help("add `text = \"...\"` or `source = \"file\"` (or `directory = true` for a directory)"),
                );
                None
            }
        }
    }

    /// A file entry's `mode`: `link` (the default) or an octal mode, for a copy.
    fn etc_mode(&mut self, body: &dyn TableLike) -> Option<EtcMode> {
        match field(body, "mode") {
            None => Some(EtcMode::Link),
            Some(f) if f.item.as_str() == Some("link") => Some(EtcMode::Link),
            Some(f) => Some(EtcMode::Copy(self.mode(&f)?)),
        }
    }

    /// A directory entry's `mode`: octal, `0755` when not given; never `link`.
    fn etc_directory_mode(&mut self, path: &str, body: &dyn TableLike) -> Option<Mode> {
        match field(body, "mode") {
            None => Some(Mode::DIRECTORY),
            Some(f) if f.item.as_str() == Some("link") => {
                self.push(
                    Diagnostic::error(
                        Rule::InvalidMode,
                        f.key,
                        format!("/etc entry `{path}` is a directory, which cannot be a link"),
                    )
                    .with_help("give an octal mode such as \"0750\", or leave `mode` out for 0755"),
                );
                None
            }
            Some(f) => self.mode(&f),
        }
    }

    fn etc_tree(&mut self, span: Span, table: &dyn TableLike) -> Option<EtcTree> {
        self.check_keys(table, ETC_TREE_KEYS, "`etc_tree`");
        let Some(f) = field(table, "source") else {
            self.push(
                Diagnostic::error(Rule::MissingKey, span, "`etc_tree` does not say its `source`")
                    .with_help("add `source = \"etc\"`: a directory shaped like /etc, relative to this file"),
            );
            return None;
        };
        let given = self.string(&f, "`source`")?;
        let source = self.etc_source(&given, f.span())?;
        Some(EtcTree { span: f.span(), source })
    }

    /// Resolves a source against the declaration's directory. Whether it can be used
    /// (it exists, it is a file or a directory, no symlink leads it out) is judged by
    /// validation, which opens it as `build` does (`decl::source`).
    fn etc_source(&mut self, given: &str, span: Span) -> Option<String> {
        if given.is_empty() {
            self.push(Diagnostic::error(Rule::InvalidPath, span, "`source` is empty"));
            return None;
        }
        // Stored absolute, as `EtcContents::Source` promises: a declaration named by a
        // relative path must not depend on the working directory of whoever reads it
        // later (and `write::to_toml` must not re-relativize it on the next read).
        let resolved = self.base.join(given);
        let resolved = std::path::absolute(&resolved).unwrap_or(resolved);
        let text = resolved.to_str().map(str::to_owned);
        if text.is_none() {
            self.push(Diagnostic::error(Rule::InvalidPath, span, "the resolved source path is not UTF-8"));
        }
        text
    }
}

/// Who owns an entry unless it says otherwise.
struct Defaults<'a> {
    user: &'a str,
    group: &'a str,
    /// Set for per-user entries, whose paths are relative to it.
    home: Option<&'a str>,
}

fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    let first_ok = chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_');
    first_ok
        && name.len() <= 32
        && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
        && !name.ends_with('.')
}

fn valid_fs_type(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 32
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}
