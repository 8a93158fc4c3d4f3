//! Opening what a declaration's `/etc` sources and its `etc_tree` name: the one place
//! their files are opened, by `check` (which opens and inspects them) and `build`
//! (which also reads them), so that whatever `build` refuses, `check` refuses first.
//!
//! - A source below the declaration's directory is opened beneath it: a symlink may
//!   lead elsewhere below it, never out, and never through a magic link
//!   (`RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS`). A checkout others can write cannot
//!   turn `files/sudoers` into `/etc/shadow`.
//! - Any other source (an absolute path outside that directory) follows no symlink.
//! - A `..` component, and sources in `/proc`, `/sys` and `/dev`, are refused.
//! - Every file is opened `O_NONBLOCK` and judged by its descriptor (`fstat`) before
//!   a byte is read: FIFOs, sockets and devices are refused, and so is a file larger
//!   than [`MAX_FILE_SIZE`] (a read stops there too, should the file grow).
//! - An etc tree is walked without following any symlink: a symlink in it is an
//!   entry of its own.

use std::ffi::OsString;
use std::fs::File;
use std::io::Read;
use std::path::{Component, Path, PathBuf};

use blankslate_sys::fs::{Dir, FsError, Kind, Meta};

/// The largest source file blankslate reads: far above any configuration file, far
/// below what would exhaust memory.
pub const MAX_FILE_SIZE: u64 = 64 << 20;

/// The most files and directories one source may stand for: far above any `/etc`
/// directory, far below what symlinks in a hostile checkout could multiply into.
pub const MAX_NODES: usize = 20_000;

/// File systems the kernel makes: their files are state, not configuration, and
/// some never end (`/dev/zero`) or block (`/dev/tty`).
const KERNEL_DIRS: [&str; 3] = ["/proc", "/sys", "/dev"];

/// Why a source cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("`{}` has a `..` component", path.display())]
    DotDot { path: PathBuf },
    #[error("`{}` is in {dir}, a file system the kernel makes: its files are not configuration", path.display())]
    KernelFs { path: PathBuf, dir: &'static str },
    #[error("`{}` leads out of the declaration's directory through a symlink", path.display())]
    Escapes { path: PathBuf },
    #[error("`{}` leads through a symlink loop (or a magic link)", path.display())]
    Loop { path: PathBuf },
    #[error("`{}` has a symlink on its way, and a source outside the declaration's directory follows none", path.display())]
    Symlink { path: PathBuf },
    #[error("`{}` is {what}, not a regular file or a directory", path.display())]
    Special { path: PathBuf, what: &'static str },
    #[error("`{}` is larger than {MAX_FILE_SIZE} bytes, the most a source file may hold", path.display())]
    TooLarge { path: PathBuf },
    #[error("`{}` stands for more than {MAX_NODES} files and directories", path.display())]
    TooMany { path: PathBuf },
    #[error("`{}` has a name that is not UTF-8", path.display())]
    NotUtf8 { path: PathBuf },
    #[error("the link `{}` has a target that is not UTF-8", path.display())]
    TargetNotUtf8 { path: PathBuf },
    #[error("`{}` matches nothing", path.display())]
    NoMatch { path: PathBuf },
    #[error("`{}` is not a valid glob: {reason}", path.display())]
    BadGlob { path: PathBuf, reason: String },
    #[error("`{}` is not a directory", path.display())]
    NotADirectory { path: PathBuf },
    #[error("cannot {op} `{}`: {source}", path.display())]
    Io { op: &'static str, path: PathBuf, source: std::io::Error },
}

impl SourceError {
    /// The path the error is about, as messages name it.
    pub fn path(&self) -> &Path {
        match self {
            SourceError::DotDot { path }
            | SourceError::KernelFs { path, .. }
            | SourceError::Escapes { path }
            | SourceError::Loop { path }
            | SourceError::Symlink { path }
            | SourceError::Special { path, .. }
            | SourceError::TooLarge { path }
            | SourceError::TooMany { path }
            | SourceError::NotUtf8 { path }
            | SourceError::TargetNotUtf8 { path }
            | SourceError::NoMatch { path }
            | SourceError::BadGlob { path, .. }
            | SourceError::NotADirectory { path }
            | SourceError::Io { path, .. } => path,
        }
    }

    /// Whether the source (or the directory a glob lists) does not exist.
    pub fn is_not_found(&self) -> bool {
        matches!(self, SourceError::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound)
    }

    /// What a person can do about it.
    pub fn help(&self) -> &'static str {
        match self {
            SourceError::DotDot { .. } => "name the file by a path without `..`",
            SourceError::KernelFs { .. } => "copy what you need into a file next to the declaration",
            SourceError::Escapes { .. } => {
                "a source below the declaration's directory may follow symlinks only while they stay below it: copy the file in, or name it by its own absolute path"
            }
            SourceError::Symlink { .. } | SourceError::Loop { .. } => "name the file the symlink leads to",
            SourceError::Special { .. } => "a source is a regular file or a directory of them",
            SourceError::TooLarge { .. } | SourceError::TooMany { .. } => {
                "/etc entries are configuration: keep large data elsewhere and persist it"
            }
            SourceError::NotUtf8 { .. } | SourceError::TargetNotUtf8 { .. } => "rename it with a UTF-8 name",
            SourceError::NoMatch { .. }
            | SourceError::NotADirectory { .. }
            | SourceError::BadGlob { .. }
            | SourceError::Io { .. } => "relative sources are read from the declaration's directory",
        }
    }
}

type Result<T> = std::result::Result<T, SourceError>;

/// A regular file a source stands for, open and checked.
#[derive(Debug)]
pub struct SourceFile {
    /// The `/etc` entry it becomes (relative to `/etc`).
    pub key: String,
    /// Where it is, for messages.
    pub path: PathBuf,
    pub meta: Meta,
    file: File,
}

impl SourceFile {
    pub fn executable(&self) -> bool {
        self.meta.mode & 0o111 != 0
    }

    /// Its contents, read through the descriptor that was checked, at most
    /// [`MAX_FILE_SIZE`] bytes.
    pub fn read(mut self) -> Result<Vec<u8>> {
        let mut contents = Vec::new();
        (&mut self.file).take(MAX_FILE_SIZE + 1).read_to_end(&mut contents).map_err(|source| SourceError::Io {
            op: "read",
            path: self.path.clone(),
            source,
        })?;
        if contents.len() as u64 > MAX_FILE_SIZE {
            return Err(SourceError::TooLarge { path: self.path });
        }
        Ok(contents)
    }
}

/// One node of an etc tree, children before their directory.
#[derive(Debug)]
pub enum TreeNode {
    File(SourceFile),
    Symlink {
        key: String,
        target: String,
    },
    /// `empty`: nothing below it (it would not exist unless it is an entry).
    Directory {
        key: String,
        meta: Meta,
        empty: bool,
    },
}

impl TreeNode {
    /// Whether a directory of an etc tree is an `/etc` entry of its own: when it is
    /// empty (it would not exist otherwise) or not `0755 root:root`; the others are
    /// made as the entries below them need them.
    pub fn directory_is_entry(meta: &Meta, empty: bool) -> bool {
        let default = meta.mode == crate::layout::DEFAULT_DIR_MODE && meta.uid == 0 && meta.gid == 0;
        empty || !default
    }
}

/// Where sources are opened from: the declaration's directory (when the declaration
/// was read from a file), and `/`.
#[derive(Debug)]
pub struct Sources {
    base: Option<(PathBuf, Dir)>,
    slash: Dir,
}

/// The way down a directory source: the directories on it (a symlink back to one of
/// them is a cycle), and how many nodes were met.
#[derive(Default)]
struct Walked {
    directories: Vec<(u64, u64)>,
    nodes: usize,
}

/// Where one source is: the directory it is opened from, its path below that, and
/// whether symlinks on the way may be followed (below the base only).
struct Located<'s> {
    dir: &'s Dir,
    relative: PathBuf,
    follow: bool,
}

impl Sources {
    /// `base`: the declaration's directory, if it was read from a file. One that
    /// cannot be opened is no base: its sources are then held to the stricter rule of
    /// the others (no symlink at all), and fail as they would have.
    pub fn new(base: Option<&Path>) -> Result<Sources> {
        let base = base.and_then(|path| Some((path.to_path_buf(), Dir::open_root(path).ok()?)));
        let slash = Path::new("/");
        Ok(Sources { base, slash: Dir::open_root(slash).map_err(|e| io_error(e, slash))? })
    }

    /// The sources of a declaration read from a file in `base` (or from none).
    pub fn of(declaration: &super::Declaration) -> Result<Sources> {
        Sources::new(declaration.base.as_deref())
    }

    /// How messages name `path`: relative to the declaration's directory when it is
    /// below it (as the declaration names it), else as it is.
    fn shown(&self, path: &Path) -> PathBuf {
        match &self.base {
            Some((base, _)) => match path.strip_prefix(base) {
                Ok(relative) if relative.components().next().is_some() => relative.to_path_buf(),
                _ => path.to_path_buf(),
            },
            None => path.to_path_buf(),
        }
    }

    fn locate(&self, path: &Path) -> Result<Located<'_>> {
        let shown = || self.shown(path);
        // Only what the declaration adds to its own directory's path is looked at: that
        // directory may itself have been named with `..`.
        let below = self.base.as_ref().and_then(|(base, dir)| {
            let relative = path.strip_prefix(base).ok()?;
            relative.components().next().is_some().then_some((dir, relative))
        });
        let relative = below.map_or(path, |(_, relative)| relative);
        if relative.components().any(|c| c == Component::ParentDir) {
            return Err(SourceError::DotDot { path: shown() });
        }
        if let Some((dir, relative)) = below {
            return Ok(Located { dir, relative: relative.to_path_buf(), follow: true });
        }
        if let Some(dir) = KERNEL_DIRS.iter().find(|dir| path.starts_with(dir)) {
            return Err(SourceError::KernelFs { path: shown(), dir });
        }
        let relative = path.strip_prefix("/").map_err(|_| SourceError::Io {
            op: "open",
            path: shown(),
            source: std::io::Error::new(std::io::ErrorKind::InvalidInput, "not an absolute path"),
        })?;
        Ok(Located { dir: &self.slash, relative: relative.to_path_buf(), follow: false })
    }

    /// Opens `path` (absolute) and says what it is.
    fn open(&self, path: &Path) -> Result<(File, Meta)> {
        let located = self.locate(path)?;
        located.dir.open_nonblocking(&located.relative, located.follow).map_err(|error| {
            let path = self.shown(path);
            match error.source.raw_os_error().map(rustix::io::Errno::from_raw_os_error) {
                // Out of the base (`..` or an absolute target), or through a magic link.
                Some(rustix::io::Errno::XDEV) => SourceError::Escapes { path },
                Some(rustix::io::Errno::LOOP) if located.follow => SourceError::Loop { path },
                Some(rustix::io::Errno::LOOP) => SourceError::Symlink { path },
                Some(rustix::io::Errno::NXIO) => SourceError::Special { path, what: "a socket" },
                _ => io_error(error, &path),
            }
        })
    }

    /// Opens the directory `path` as a [`Dir`].
    fn open_dir(&self, path: &Path) -> Result<Dir> {
        let (file, meta) = self.open(path)?;
        if meta.kind != Kind::Directory {
            return Err(SourceError::NotADirectory { path: self.shown(path) });
        }
        Ok(Dir::from_fd(file.into(), self.shown(path)))
    }

    /// Calls `visit` for every regular file the `source` of `/etc` entry `entry`
    /// stands for: the file itself, every file below a directory (as `entry/…`), or
    /// every match of a glob in the last component (as `entry/NAME…`), in name order.
    pub fn expand(&self, entry: &str, source: &str, visit: &mut dyn FnMut(SourceFile) -> Result<()>) -> Result<()> {
        let path = Path::new(source);
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if !name.contains(['*', '?', '[']) {
            return self.collect(path, entry, visit);
        }
        let glob = globset::Glob::new(name)
            .map_err(|e| SourceError::BadGlob { path: self.shown(path), reason: e.kind().to_string() })?
            .compile_matcher();
        let parent = path.parent().unwrap_or(Path::new("/"));
        let listing = names(&self.open_dir(parent)?)?;
        let matches: Vec<&String> = listing.iter().filter(|name| glob.is_match(name)).collect();
        if matches.is_empty() {
            return Err(SourceError::NoMatch { path: self.shown(path) });
        }
        for name in matches {
            self.collect(&parent.join(name), &format!("{entry}/{name}"), visit)?;
        }
        Ok(())
    }

    /// A file becomes one entry; a directory, one entry per file below it (each
    /// opened from the declaration's directory again, so that a symlink in it is
    /// held to the same rule). Symlinks below the declaration's directory may make a
    /// directory its own descendant, or a few names stand for a great many: a cycle is
    /// refused, and so is a source of more than [`MAX_NODES`] files and directories.
    fn collect(&self, path: &Path, key: &str, visit: &mut dyn FnMut(SourceFile) -> Result<()>) -> Result<()> {
        self.collect_below(path, key, &mut Walked::default(), visit)
    }

    fn collect_below(
        &self,
        path: &Path,
        key: &str,
        walked: &mut Walked,
        visit: &mut dyn FnMut(SourceFile) -> Result<()>,
    ) -> Result<()> {
        walked.nodes += 1;
        if walked.nodes > MAX_NODES {
            return Err(SourceError::TooMany { path: self.shown(path) });
        }
        let (file, meta) = self.open(path)?;
        match meta.kind {
            Kind::File => visit(checked_file(key.to_owned(), self.shown(path), file, meta)?),
            Kind::Directory => {
                if walked.directories.contains(&meta.identity()) {
                    return Err(SourceError::Loop { path: self.shown(path) });
                }
                walked.directories.push(meta.identity());
                for name in names(&Dir::from_fd(file.into(), self.shown(path)))? {
                    self.collect_below(&path.join(&name), &format!("{key}/{name}"), walked, visit)?;
                }
                walked.directories.pop();
                Ok(())
            }
            _ => Err(special(&self.shown(path), &meta)),
        }
    }

    /// Walks the etc tree at `source` (absolute): every file, symlink and directory
    /// below it, children before their directory, none followed.
    pub fn walk_tree(&self, source: &str, visit: &mut dyn FnMut(TreeNode) -> Result<()>) -> Result<()> {
        walk(&self.open_dir(Path::new(source))?, "", visit)?;
        Ok(())
    }
}

/// Walks `dir`, its entries keyed below `prefix`; returns whether it holds anything.
fn walk(dir: &Dir, prefix: &str, visit: &mut dyn FnMut(TreeNode) -> Result<()>) -> Result<bool> {
    let names = names(dir)?;
    for name in &names {
        let shown = dir.path().join(name);
        let key = if prefix.is_empty() { name.clone() } else { format!("{prefix}/{name}") };
        let meta = dir.meta(name).map_err(|e| io_error(e, &shown))?;
        match meta.kind {
            Kind::Directory => {
                let child = dir.open_dir(name).map_err(|e| io_error(e, &shown))?;
                let has_entries = walk(&child, &key, visit)?;
                let meta = child.own_meta().map_err(|e| io_error(e, &shown))?;
                visit(TreeNode::Directory { key, meta, empty: !has_entries })?;
            }
            Kind::Symlink => {
                let target = dir.read_link(name).map_err(|e| io_error(e, &shown))?;
                let target = target.into_string().map_err(|_| SourceError::TargetNotUtf8 { path: shown.clone() })?;
                visit(TreeNode::Symlink { key, target })?;
            }
            Kind::File => {
                // Judged again by the descriptor: what was a file at the `lstat` may have
                // been swapped for something else since.
                let (file, meta) = dir.open_nonblocking(name, false).map_err(|e| io_error(e, &shown))?;
                if meta.kind != Kind::File {
                    return Err(special(&shown, &meta));
                }
                visit(TreeNode::File(checked_file(key, shown, file, meta)?))?;
            }
            Kind::Other => return Err(special(&shown, &meta)),
        }
    }
    Ok(!names.is_empty())
}

/// The names in `dir` (shown as its path), sorted; one that is not UTF-8 is an error.
fn names(dir: &Dir) -> Result<Vec<String>> {
    let entries = dir.entries().map_err(|e| io_error(e, dir.path()))?;
    entries
        .into_iter()
        .map(|(name, _): (OsString, Kind)| {
            name.into_string().map_err(|name| SourceError::NotUtf8 { path: dir.path().join(name) })
        })
        .collect()
}

fn checked_file(key: String, path: PathBuf, file: File, meta: Meta) -> Result<SourceFile> {
    if meta.size > MAX_FILE_SIZE {
        return Err(SourceError::TooLarge { path });
    }
    Ok(SourceFile { key, path, meta, file })
}

fn special(path: &Path, meta: &Meta) -> SourceError {
    SourceError::Special { path: path.to_path_buf(), what: meta.what() }
}

fn io_error(error: FsError, path: &Path) -> SourceError {
    SourceError::Io { op: error.op, path: path.to_path_buf(), source: error.source }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::{Rule, Severity, check};

    /// The rules of the errors `check` reports for `text`, written in `dir`.
    fn errors(dir: &Path, text: &str) -> Vec<(Rule, String)> {
        let checked = check(&dir.join("decl.toml"), text, None);
        assert!(checked.declaration.is_none() || !checked.diagnostics.has_errors());
        checked
            .diagnostics
            .items
            .iter()
            .filter(|d| d.severity == Severity::Error)
            .map(|d| (d.rule, d.message.clone()))
            .collect()
    }

    fn source(path: &str) -> String {
        format!("version = 1\n[etc.\"x\"]\nsource = \"{path}\"\n")
    }

    fn mkfifo(path: &Path) {
        assert!(std::process::Command::new("mkfifo").arg(path).status().unwrap().success());
    }

    /// FIFOs, devices and sockets are refused by `check` from their descriptor (a FIFO
    /// opened `O_NONBLOCK`, so the check cannot hang), and so is a file too large to
    /// read, without a byte of it read.
    #[test]
    fn special_and_huge_files_are_refused_without_blocking() {
        let scratch = tempfile::tempdir().unwrap();
        let dir = scratch.path();
        mkfifo(&dir.join("fifo"));
        std::fs::create_dir(dir.join("d")).unwrap();
        mkfifo(&dir.join("d/inside"));
        let huge = std::fs::File::create(dir.join("huge")).unwrap();
        huge.set_len(super::MAX_FILE_SIZE + 1).unwrap();
        let _socket = std::os::unix::net::UnixListener::bind(dir.join("socket")).unwrap();
        let mut cases = vec![
            ("fifo", "`fifo` is a FIFO, not a regular file or a directory"),
            ("d", "`d/inside` is a FIFO, not a regular file or a directory"),
            ("huge", "`huge` is larger than 67108864 bytes, the most a source file may hold"),
            ("socket", "`socket` is a socket, not a regular file or a directory"),
        ];
        let made = rustix::fs::mknodat(
            rustix::fs::CWD,
            dir.join("null"),
            rustix::fs::FileType::CharacterDevice,
            rustix::fs::Mode::from_raw_mode(0o666),
            rustix::fs::makedev(1, 3),
        );
        if made.is_ok() {
            cases.push(("null", "`null` is a character device, not a regular file or a directory"));
        }
        for (name, message) in cases {
            let found = errors(dir, &source(name));
            assert_eq!(found, [(Rule::EtcSource, format!("source {message}"))], "{name}");
        }
        for path in ["/dev/zero", "/proc/self/environ", "/sys/kernel/notes"] {
            let found = errors(dir, &source(path));
            assert_eq!(found.len(), 1, "{path}: {found:?}");
            assert!(found[0].1.ends_with("a file system the kernel makes: its files are not configuration"));
        }
    }

    /// A symlink may lead elsewhere in the declaration's directory, never out of it
    /// (`files/sudoers -> /etc/shadow`, or up with `..`); an absolute source outside
    /// it follows no symlink at all.
    #[test]
    fn symlinks_never_lead_a_source_out() {
        let scratch = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        let dir = scratch.path();
        std::fs::write(outside.path().join("secret"), "s\n").unwrap();
        std::fs::create_dir(dir.join("files")).unwrap();
        std::fs::write(dir.join("files/real"), "r\n").unwrap();
        std::os::unix::fs::symlink("real", dir.join("files/inside")).unwrap();
        std::os::unix::fs::symlink("/etc/shadow", dir.join("files/sudoers")).unwrap();
        std::os::unix::fs::symlink("../../escape", dir.join("files/up")).unwrap();
        std::os::unix::fs::symlink(outside.path(), dir.join("files/dir")).unwrap();
        std::os::unix::fs::symlink("/proc/self/environ", dir.join("files/magic")).unwrap();
        std::os::unix::fs::symlink(outside.path().join("secret"), outside.path().join("link")).unwrap();
        assert!(errors(dir, &source("files/inside")).is_empty());
        for name in ["files/sudoers", "files/up", "files/dir/secret", "files/magic"] {
            let found = errors(dir, &source(name));
            assert_eq!(
                found,
                [(
                    Rule::EtcSource,
                    format!("source `{name}` leads out of the declaration's directory through a symlink")
                )]
            );
        }
        assert_eq!(errors(dir, &source("../x"))[0].0, Rule::DotDot);
        // A directory that is its own descendant, through a link that stays inside.
        std::fs::create_dir_all(dir.join("cycle/sub")).unwrap();
        std::os::unix::fs::symlink("..", dir.join("cycle/sub/up")).unwrap();
        let found = errors(dir, &source("cycle"));
        assert_eq!(
            found,
            [(Rule::EtcSource, "source `cycle/sub/up` leads through a symlink loop (or a magic link)".into())]
        );
        let absolute = outside.path().join("secret");
        assert!(errors(dir, &source(absolute.to_str().unwrap())).is_empty(), "named directly, it is the author's");
        let link = outside.path().join("link");
        let found = errors(dir, &source(link.to_str().unwrap()));
        assert!(found[0].1.ends_with("a source outside the declaration's directory follows none"), "{found:?}");
    }

    /// Symlinks that stay inside but multiply (each level twenty names for the next)
    /// stop at [`super::MAX_NODES`] instead of walking a million paths.
    #[test]
    fn a_source_that_multiplies_through_symlinks_is_refused() {
        let scratch = tempfile::tempdir().unwrap();
        let dir = scratch.path();
        for level in 0..4 {
            std::fs::create_dir_all(dir.join(format!("l{level}"))).unwrap();
            for n in 0..20 {
                std::os::unix::fs::symlink(format!("../l{}", level + 1), dir.join(format!("l{level}/{n}"))).unwrap();
            }
        }
        std::fs::create_dir_all(dir.join("l4")).unwrap();
        std::fs::write(dir.join("l4/leaf"), "x\n").unwrap();
        let found = errors(dir, &source("l0"));
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(found[0].1.ends_with("stands for more than 20000 files and directories"), "{found:?}");
    }

    /// A symlink with `..` makes the kernel refuse an `openat2` beneath with EAGAIN
    /// whenever something was renamed meanwhile, anywhere: opening tries again, so a
    /// busy system never fails a check (renames in a loop beside it here).
    #[test]
    fn renames_elsewhere_never_fail_a_source_that_climbs_with_dot_dot() {
        let scratch = tempfile::tempdir().unwrap();
        let dir = scratch.path();
        std::fs::create_dir_all(dir.join("conf/real")).unwrap();
        std::fs::create_dir_all(dir.join("conf/links")).unwrap();
        for n in 0..20 {
            std::fs::write(dir.join(format!("conf/real/{n}.conf")), "x\n").unwrap();
            std::os::unix::fs::symlink(format!("../real/{n}.conf"), dir.join(format!("conf/links/{n}.conf"))).unwrap();
        }
        let busy = tempfile::tempdir().unwrap();
        std::fs::write(busy.path().join("a"), "").unwrap();
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let renamer = {
            let (stop, busy) = (stop.clone(), busy.path().to_path_buf());
            std::thread::spawn(move || {
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    std::fs::rename(busy.join("a"), busy.join("b")).unwrap();
                    std::fs::rename(busy.join("b"), busy.join("a")).unwrap();
                }
            })
        };
        let found: Vec<_> = (0..300).flat_map(|_| errors(dir, &source("conf/links"))).collect();
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        renamer.join().unwrap();
        assert!(found.is_empty(), "{found:?}");
    }

    /// The etc tree's fstab is read: an entry mounting over the root, the volume or a
    /// persisted path is a warning naming its line; the ESP and swap are not.
    #[test]
    fn an_fstab_entry_over_persisted_data_is_warned_about() {
        let scratch = tempfile::tempdir().unwrap();
        let dir = scratch.path();
        std::fs::create_dir_all(dir.join("tree")).unwrap();
        let fstab = "# static\nUUID=1 / ext4 errors=remount-ro 0 1\nUUID=2 /boot/efi vfat umask=0077 0 1\n\
                     UUID=3 /home ext4 defaults 0 2\nUUID=4 none swap sw 0 0\n/dev/sdb /persist ext4 defaults 0 2\n";
        std::fs::write(dir.join("tree/fstab"), fstab).unwrap();
        let text = "version = 1\n[etc_tree]\nsource = \"tree\"\n[persist.\"/persist\"]\ndirectories = [\"/home\"]\n";
        let checked = check(&dir.join("decl.toml"), text, None);
        assert!(!checked.diagnostics.has_errors(), "{}", checked.diagnostics);
        let warnings: Vec<&str> = checked
            .diagnostics
            .items
            .iter()
            .filter(|d| d.rule == Rule::FstabConflict && d.severity == Severity::Warning)
            .map(|d| d.message.as_str())
            .collect();
        assert_eq!(
            warnings,
            [
                "the etc tree's fstab, line 2, mounts at /: the root is a tmpfs blankslate makes; remounting it with \
                 these options fails: `UUID=1 / ext4 errors=remount-ro 0 1`",
                "the etc tree's fstab, line 4, mounts at /home: /home is persisted: the volume holds its data now, and \
                 this would hide it: `UUID=3 /home ext4 defaults 0 2`",
                "the etc tree's fstab, line 6, mounts at /persist: blankslate mounts the volume at /persist at boot: \
                 `/dev/sdb /persist ext4 defaults 0 2`",
            ]
        );
        std::fs::write(dir.join("tree/fstab"), "UUID=2 /boot/efi vfat umask=0077 0 1\n").unwrap();
        let checked = check(&dir.join("decl.toml"), text, None);
        assert!(!checked.diagnostics.items.iter().any(|d| d.rule == Rule::FstabConflict), "{}", checked.diagnostics);
    }

    /// An etc tree is walked as build walks it: a FIFO in it, or a file of it where a
    /// path is persisted, is refused by `check`.
    #[test]
    fn an_etc_tree_is_checked_as_it_is_built() {
        let scratch = tempfile::tempdir().unwrap();
        let dir = scratch.path();
        std::fs::create_dir_all(dir.join("tree/ssh")).unwrap();
        std::fs::write(dir.join("tree/hostname"), "h\n").unwrap();
        std::fs::write(dir.join("tree/ssh/sshd_config"), "Port 22\n").unwrap();
        let tree = "version = 1\n[etc_tree]\nsource = \"tree\"\n";
        assert!(errors(dir, tree).is_empty());
        let persisted = format!("{tree}[persist.\"/persist\"]\nfiles = [\"/etc/hostname\"]\n");
        assert_eq!(errors(dir, &persisted)[0].0, Rule::ShadowsEtc);
        let over = format!("{tree}[etc.\"ssh/sshd_config\"]\ntext = \"Port 2222\"\n");
        assert_eq!(errors(dir, &over)[0].0, Rule::Duplicate);
        mkfifo(&dir.join("tree/initctl"));
        let found = errors(dir, tree);
        assert_eq!(
            found,
            [(Rule::EtcSource, "etc tree: `tree/initctl` is a FIFO, not a regular file or a directory".into())]
        );
    }
}
