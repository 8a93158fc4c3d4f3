//! The declaration's data model: what a user declares, with defaults filled in.
//!
//! Every struct carries the [`Span`] of the text it came from so that validation can
//! point at it; spans never reach the canonical JSON.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The only declaration format version this build understands.
pub const VERSION: i64 = 1;

/// A byte range in the declaration's source text (empty for imported data).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Span {
    pub start: usize,
    pub end: usize,
}

impl From<std::ops::Range<usize>> for Span {
    fn from(range: std::ops::Range<usize>) -> Self {
        Span { start: range.start, end: range.end }
    }
}

/// Unix permission bits (at most `0o7777`), written as a four-digit octal string.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Mode(u32);

impl Mode {
    pub const DIRECTORY: Mode = Mode(0o755);
    pub const FILE: Mode = Mode(0o644);

    /// Accepts permission bits only; file-type bits are not a mode.
    pub fn new(bits: u32) -> Option<Mode> {
        (bits <= 0o7777).then_some(Mode(bits))
    }

    /// Parses an octal string such as `"0755"` or `"755"`.
    pub fn parse_octal(text: &str) -> Option<Mode> {
        if text.is_empty() || text.len() > 5 || !text.bytes().all(|b| (b'0'..=b'7').contains(&b)) {
            return None;
        }
        u32::from_str_radix(text, 8).ok().and_then(Mode::new)
    }

    pub fn bits(self) -> u32 {
        self.0
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04o}", self.0)
    }
}

impl Serialize for Mode {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Mode {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Mode::parse_octal(&text).ok_or_else(|| serde::de::Error::custom(format!("`{text}` is not an octal mode")))
    }
}

/// Who owns a path and with which permissions. Names, not numbers: they are resolved
/// against the target root's own `/etc/passwd` and `/etc/group` at activation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Owner {
    pub user: String,
    pub group: String,
    pub mode: Mode,
}

impl Owner {
    pub fn root(mode: Mode) -> Owner {
        Owner { user: "root".into(), group: "root".into(), mode }
    }
}

/// How a persisted file or directory appears in the ephemeral root.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum How {
    /// A bind mount (the default): programs see a real file or directory.
    #[default]
    Bind,
    /// A symbolic link into the persistent volume.
    Symlink,
    /// Files only: a regular file in the root, copied from the volume at activation
    /// and written back by `blankslate persist sync` when it changes. For files that
    /// programs replace with `rename()` (`passwd`, `shadow`), which fails with EBUSY on
    /// a bind mount and turns a symlink into a file the volume never sees.
    Copy,
}

impl How {
    pub fn as_str(self) -> &'static str {
        match self {
            How::Bind => "bind",
            How::Symlink => "symlink",
            How::Copy => "copy",
        }
    }
}

/// A mount option blankslate knows how to apply to a bind mount.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum MountOption {
    #[serde(rename = "ro")]
    ReadOnly,
    #[serde(rename = "nosuid")]
    NoSuid,
    #[serde(rename = "nodev")]
    NoDev,
    #[serde(rename = "noexec")]
    NoExec,
    /// Hidden from file managers (gvfs/udisks honour this marker).
    #[serde(rename = "x-gvfs-hide")]
    Hidden,
}

impl MountOption {
    pub const ALL: [MountOption; 5] =
        [MountOption::ReadOnly, MountOption::NoSuid, MountOption::NoDev, MountOption::NoExec, MountOption::Hidden];

    pub fn as_str(self) -> &'static str {
        match self {
            MountOption::ReadOnly => "ro",
            MountOption::NoSuid => "nosuid",
            MountOption::NoDev => "nodev",
            MountOption::NoExec => "noexec",
            MountOption::Hidden => "x-gvfs-hide",
        }
    }

    pub fn parse(text: &str) -> Option<MountOption> {
        MountOption::ALL.into_iter().find(|o| o.as_str() == text)
    }
}

/// Whether an entry is a directory or a file; used in messages and conflict checks,
/// and serialized as its [`EntryKind::noun`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EntryKind {
    #[default]
    Directory,
    File,
}

impl EntryKind {
    pub fn noun(self) -> &'static str {
        match self {
            EntryKind::Directory => "directory",
            EntryKind::File => "file",
        }
    }

    /// The list entries of this kind are declared in: `directories` or `files`.
    pub fn list_name(self) -> &'static str {
        match self {
            EntryKind::Directory => "directories",
            EntryKind::File => "files",
        }
    }

    /// The mode an entry of this kind has when it says none.
    pub fn default_mode(self) -> Mode {
        match self {
            EntryKind::Directory => Mode::DIRECTORY,
            EntryKind::File => Mode::FILE,
        }
    }
}

/// One persisted directory or file. For per-user entries `path` is relative to the
/// user's home; everywhere else it is absolute and normalized.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    #[serde(skip)]
    pub span: Span,
    #[serde(skip)]
    pub kind: EntryKind,
    pub path: String,
    #[serde(flatten)]
    pub owner: Owner,
    /// Ownership enforced on the parent directories this entry needs; `None` means
    /// missing parents are created `root:root 0755` (or the user's, under a home) and
    /// existing ones are left as they are.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<Owner>,
    /// Files: always set (`Bind` unless told otherwise). Directories: `Symlink` for a
    /// link into the volume, `None` for a bind mount, so that the canonical JSON of a
    /// bind-mounted directory stays what it was before directories could be links.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub how: Option<How>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub options: Vec<MountOption>,
}

impl Entry {
    /// An entry of `kind` at `path` owned as `owner`, with nothing else said: a bind
    /// mount, no parent enforced, no mount options.
    pub fn new(kind: EntryKind, path: String, owner: Owner) -> Entry {
        Entry {
            span: Span::default(),
            kind,
            path,
            owner,
            parent: None,
            how: (kind == EntryKind::File).then_some(How::Bind),
            options: Vec::new(),
        }
    }

    /// How the entry appears in the root: a bind mount unless it says otherwise.
    pub fn how(&self) -> How {
        self.how.unwrap_or_default()
    }
}

/// The entries of one user, relative to their home directory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserEntries {
    #[serde(skip)]
    pub span: Span,
    pub home: String,
    /// Where `home` is written (the user's table when it is the default).
    #[serde(skip)]
    pub home_span: Span,
    /// The group given to entries that name none.
    pub group: String,
    pub directories: Vec<Entry>,
    pub files: Vec<Entry>,
}

/// Where a volume is: a device path, or a file system's label or UUID, spelled as on
/// the kernel command line and in fstab (`/dev/vdb`, `LABEL=data`, `UUID=…`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Device {
    Path(String),
    Label(String),
    /// Lower case, as `blkid` prints it.
    Uuid(String),
}

impl Device {
    pub fn parse(text: &str) -> Result<Device, &'static str> {
        let device = if let Some(label) = text.strip_prefix("LABEL=") {
            Device::Label(label.to_owned())
        } else if let Some(uuid) = text.strip_prefix("UUID=") {
            Device::Uuid(uuid.to_ascii_lowercase())
        } else if text.starts_with("/dev/") {
            Device::Path(text.to_owned())
        } else {
            return Err("a device is a /dev path, LABEL=… or UUID=…");
        };
        match &device {
            Device::Label(name) | Device::Uuid(name) if name.is_empty() => Err("the label or UUID is empty"),
            _ => Ok(device),
        }
    }
}

impl fmt::Display for Device {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Device::Path(path) => f.write_str(path),
            Device::Label(label) => write!(f, "LABEL={label}"),
            Device::Uuid(uuid) => write!(f, "UUID={uuid}"),
        }
    }
}

impl Serialize for Device {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Device {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Device::parse(&text).map_err(|e| serde::de::Error::custom(format!("`{text}`: {e}")))
    }
}

/// How boot mounts a volume: its device, file system type and options (as for
/// `mount -o`; the generic ones such as `noatime` apply to the mount).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VolumeSpec {
    pub device: Device,
    /// `ext4` unless told otherwise.
    pub fs_type: String,
    pub options: Vec<String>,
}

impl VolumeSpec {
    pub const DEFAULT_FS_TYPE: &str = "ext4";
}

/// A persistent volume, keyed in [`Declaration::persist`] by where it is mounted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PersistRoot {
    #[serde(skip)]
    pub span: Span,
    /// Where boot finds this volume (`device`, `fs_type`, `mount_options`); `None`
    /// for the volume holding the store, which the kernel command line names.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volume: Option<VolumeSpec>,
    pub hide_mounts: bool,
    pub directories: Vec<Entry>,
    pub files: Vec<Entry>,
    pub users: BTreeMap<String, UserEntries>,
}

/// Where an `/etc` entry's contents come from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EtcContents {
    Text(String),
    /// An absolute path (relative sources are resolved against the declaration's
    /// directory when it is parsed). May end in a glob, expanded at build.
    Source(String),
    /// `directory = true`: a directory with the entry's mode (always a
    /// [`EtcMode::Copy`]) and owner, empty unless other entries go below it.
    Directory(bool),
}

/// How an `/etc` entry is installed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EtcMode {
    /// `/etc/<path>` is a symlink through `/etc/static` into the store (the default).
    Link,
    /// `/etc/<path>` is a regular file (or, for a directory entry, the directory) with
    /// this mode and owner.
    Copy(Mode),
}

impl Serialize for EtcMode {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            EtcMode::Link => serializer.serialize_str("link"),
            EtcMode::Copy(mode) => mode.serialize(serializer),
        }
    }
}

impl<'de> Deserialize<'de> for EtcMode {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        if text == "link" {
            return Ok(EtcMode::Link);
        }
        Mode::parse_octal(&text)
            .map(EtcMode::Copy)
            .ok_or_else(|| serde::de::Error::custom(format!("`{text}` is neither `link` nor an octal mode")))
    }
}

/// One managed entry under `/etc`, keyed in [`Declaration::etc`] by its path relative
/// to `/etc`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EtcEntry {
    #[serde(skip)]
    pub span: Span,
    /// Where the `text`, `source` or `directory` value is written.
    #[serde(skip)]
    pub value_span: Span,
    #[serde(flatten)]
    pub contents: EtcContents,
    pub mode: EtcMode,
    pub user: String,
    pub group: String,
}

impl EtcEntry {
    /// What [`super::secret::is_secret`] needs to know of this entry.
    pub fn access(&self) -> super::secret::Access {
        let mode = match self.mode {
            EtcMode::Copy(mode) => Some(mode.bits()),
            EtcMode::Link => None,
        };
        super::secret::Access { directory: matches!(self.contents, EtcContents::Directory(_)), mode }
    }
}

/// A directory shaped like `/etc` (as `blankslate adopt` writes one) whose every file
/// and symlink becomes an `/etc` entry: a file owned by root with an ordinary mode
/// (`0644`, `0755`, `0444`, `0555`) a link into the store, any other file a copy with
/// its own owner and mode, a symlink a link to the same target.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EtcTree {
    #[serde(skip)]
    pub span: Span,
    /// An absolute path (a relative one is resolved against the declaration's
    /// directory when it is parsed).
    pub source: String,
}

/// The ephemeral root itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RootSettings {
    /// tmpfs `size=`: a percentage of RAM (`"25%"`) or a size (`"2G"`, `"512M"`).
    /// Unused by a btrfs root.
    pub size: String,
    pub mode: Mode,
    /// `kind = "btrfs"`: the root is a btrfs subvolume made empty at every boot, the
    /// previous ones kept read-only. `None` (the default) is a tmpfs; absent from the
    /// canonical JSON then, so that generations built before it keep their hash.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub btrfs: Option<BtrfsRoot>,
}

impl Default for RootSettings {
    fn default() -> Self {
        RootSettings { size: "25%".into(), mode: Mode::DIRECTORY, btrfs: None }
    }
}

/// A root on btrfs: the file system holding the roots, and how many previous roots
/// boot keeps.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BtrfsRoot {
    /// The btrfs file system (its top level holds `roots/`).
    pub device: Device,
    /// Previous roots kept read-only; the oldest are deleted at boot beyond this.
    pub keep: u32,
}

impl BtrfsRoot {
    /// Previous roots kept when `keep` is not given.
    pub const DEFAULT_KEEP: u32 = 3;
}

/// Settings for `blankslate audit`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct AuditSettings {
    /// Globs over absolute paths; matches are counted, never listed.
    pub ignore: Vec<String>,
}

/// `[net]`: what a shutdown keeps of the state the next boot erases (what the audit
/// reports as undeclared), so that it can be looked at and brought back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetSettings {
    /// The boots whose catch is kept: the oldest goes first.
    pub keep: u32,
    /// The most the net holds, every boot's catch together, in bytes.
    pub max_size: u64,
}

impl NetSettings {
    /// A conservative net: three boots, at most 1 GiB.
    pub const DEFAULT: NetSettings = NetSettings { keep: 3, max_size: 1 << 30 };
}

/// A whole declaration, as parsed (entry order as written) or normalized.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Declaration {
    pub version: i64,
    pub root: RootSettings,
    pub persist: BTreeMap<String, PersistRoot>,
    pub etc: BTreeMap<String, EtcEntry>,
    /// Absent from the canonical JSON when not given, so that generations built
    /// before it existed keep their hash.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub etc_tree: Option<EtcTree>,
    pub audit: AuditSettings,
    /// Absent (no net) unless `[net]` is given; absent from the canonical JSON then,
    /// so that generations built before it existed keep their hash.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub net: Option<NetSettings>,
    /// The directory of the file the declaration was read from (absolute), when it was
    /// read from one: sources below it may follow symlinks that stay below it, and no
    /// other source follows any (see `decl::source`).
    #[serde(skip)]
    pub base: Option<PathBuf>,
}

impl Default for Declaration {
    fn default() -> Self {
        Declaration {
            version: VERSION,
            root: RootSettings::default(),
            persist: BTreeMap::new(),
            etc: BTreeMap::new(),
            etc_tree: None,
            audit: AuditSettings::default(),
            net: None,
            base: None,
        }
    }
}

/// A persisted entry with its absolute path resolved, as activation and audit see it.
#[derive(Debug, Clone)]
pub struct ResolvedEntry<'a> {
    /// The persistent root's mount point, e.g. `/persist`.
    pub root: &'a str,
    /// The user whose home the entry is relative to, if any.
    pub user: Option<&'a str>,
    pub entry: &'a Entry,
    /// The absolute path in the ephemeral root.
    pub path: String,
}

impl Declaration {
    /// Whether an `/etc` entry's `text` is a secret: then the generation's copy of the
    /// declaration is readable by root alone.
    pub fn has_secret_text(&self) -> bool {
        self.etc.iter().any(|(path, entry)| {
            matches!(entry.contents, EtcContents::Text(_))
                && super::secret::is_secret(path, |p| self.etc.get(p).map(EtcEntry::access))
        })
    }

    /// Every persisted entry of every persistent root, per-user entries resolved
    /// against their home, in declaration order (roots sorted by mount point).
    pub fn entries(&self) -> Vec<ResolvedEntry<'_>> {
        let mut out = Vec::new();
        for (root, persist) in &self.persist {
            for entry in persist.directories.iter().chain(&persist.files) {
                out.push(ResolvedEntry { root, user: None, entry, path: entry.path.clone() });
            }
            for (user, entries) in &persist.users {
                for entry in entries.directories.iter().chain(&entries.files) {
                    let path = join_home(&entries.home, &entry.path);
                    out.push(ResolvedEntry { root, user: Some(user), entry, path });
                }
            }
        }
        out
    }
}

/// The default home of a user: `/root` for root, `/home/NAME` for everyone else.
pub fn default_home(user: &str) -> String {
    if user == "root" { "/root".into() } else { format!("/home/{user}") }
}

fn join_home(home: &str, relative: &str) -> String {
    format!("{}/{relative}", home.trim_end_matches('/'))
}
