//! What dpkg says installed packages put in `/etc`: a package's file gone from `/etc`
//! (after a reboot that did not keep it, dpkg still says "installed" and `apt install`
//! does nothing), and the package an `/etc` stray came from.
//!
//! Read from `<root>/var/lib/dpkg`, when its `info` directory is there: `status` (which
//! packages are installed, and their conffiles, obsolete ones marked) and each
//! installed package's `info/PKG.list` (every path it installed; `PKG:ARCH.list` for a
//! `Multi-Arch: same` package, as dpkg names them), streamed, keeping only the lines in
//! `/etc`. Every file is opened beneath the root without following a symlink and
//! without waiting on a FIFO, judged by its `fstat` (a regular file of at most
//! [`MAX_FILE`] bytes) and read through a bounded reader: what is refused is reported,
//! never waited on.
//!
//! A package counts when its status is `ok` and `installed` (or awaiting triggers,
//! which comes after configuring): while it is unpacked or half-configured its new
//! conffiles are still at `NAME.dpkg-new`, and a removed one (`config-files`) keeps a
//! list of what it left, none of it expected.
//!
//! Diversions (`dpkg-divert`) are not read: a diverted file is expected at the path
//! its package lists. A package's diversion puts its own file there, so that path is
//! there or lost with it; only a local diversion (`--local`) that leaves the path
//! empty would be reported missing.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::os::unix::ffi::OsStrExt;

use blankslate_sys::fs::{Dir, FsError, Kind};

use crate::{Class, Finding, FindingKind};

/// The most read of one file of the database (a `status` of thousands of packages is
/// a few MiB, the longest file lists some).
pub const MAX_FILE: u64 = 64 << 20;

/// Where the database is, below the root.
const DPKG: &str = "var/lib/dpkg";

/// A file of the database that could not be read.
#[derive(Debug)]
pub struct Unread {
    /// Absolute, inside the root.
    pub path: String,
    pub error: FsError,
}

impl Unread {
    pub(crate) fn finding(&self) -> Finding {
        let reason = format!("cannot read: {}; packages' /etc files not checked in full", self.error.source);
        Finding::new(Class::Error, FindingKind::Unreadable, self.path.clone().into_bytes(), reason)
    }
}

/// One installed package, as `status` describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Installed {
    /// `atd`, or `libc6:amd64` for a `Multi-Arch: same` package: how dpkg names it and
    /// its files in `info`.
    name: String,
    /// Its conffiles in `/etc`, with whether each is obsolete (no longer shipped; dpkg
    /// leaves it, nothing expects it).
    conffiles: Vec<(Vec<u8>, bool)>,
}

/// One `/etc` path a package's file list names.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Owned {
    path: Box<[u8]>,
    package: usize,
    conffile: bool,
}

/// What the installed packages put in `/etc`.
#[derive(Debug, Default)]
pub struct Packages {
    names: Vec<String>,
    /// Sorted by path; a path several packages list (a shared directory) once each.
    owned: Vec<Owned>,
    /// Files that could not be read: the picture is incomplete.
    pub unread: Vec<Unread>,
}

/// Whether `name` is a package name as dpkg allows it (`[a-z0-9][a-z0-9+.-]+`), with
/// an architecture (`[a-z0-9-]+`) after a `:`: so it can be pasted into a command and
/// be used as a file name in `info`.
fn valid_name(name: &str) -> bool {
    let (package, arch) = name.split_once(':').unwrap_or((name, "x"));
    let lower_digit = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    package.len() >= 2
        && package.bytes().next().is_some_and(lower_digit)
        && package.bytes().all(|b| lower_digit(b) || b"+.-".contains(&b))
        && !arch.is_empty()
        && arch.bytes().all(|b| lower_digit(b) || b == b'-')
}

/// A conffile line of `status` (` PATH HASH [obsolete|remove-on-upgrade]`, the path
/// possibly with spaces): the path, and whether it is obsolete.
fn conffile(line: &[u8]) -> Option<(Vec<u8>, bool)> {
    let mut words: Vec<&[u8]> = line.trim_ascii().split(|&b| b == b' ').collect();
    let obsolete = match words.last() {
        Some(&b"obsolete") => true,
        Some(&b"remove-on-upgrade") => false,
        _ => {
            words.push(b"");
            false
        }
    };
    words.pop();
    words.pop()?; // the hash
    let path = words.join(&b' ');
    path.starts_with(b"/etc/").then_some((path, obsolete))
}

/// Calls `each` with every line of `reader` (without its newline), through one
/// buffer.
fn for_lines(mut reader: impl BufRead, mut each: impl FnMut(&[u8])) -> io::Result<()> {
    let mut line = Vec::new();
    loop {
        line.clear();
        if reader.read_until(b'\n', &mut line)? == 0 {
            return Ok(());
        }
        each(line.strip_suffix(b"\n").unwrap_or(&line));
    }
}

/// The installed packages `status` lists, read line by line.
fn parse_status(reader: impl BufRead) -> io::Result<Vec<Installed>> {
    #[derive(Default)]
    struct Stanza {
        package: String,
        arch: String,
        same: bool,
        installed: bool,
        conffiles: Vec<(Vec<u8>, bool)>,
    }
    fn finish(stanza: Stanza, out: &mut Vec<Installed>) {
        let name = if stanza.same { format!("{}:{}", stanza.package, stanza.arch) } else { stanza.package };
        if stanza.installed && valid_name(&name) {
            out.push(Installed { name, conffiles: stanza.conffiles });
        }
    }
    let mut out = Vec::new();
    let mut stanza = Stanza::default();
    let mut in_conffiles = false;
    for_lines(reader, |line| {
        if line.trim_ascii().is_empty() {
            finish(std::mem::take(&mut stanza), &mut out);
            in_conffiles = false;
            return;
        }
        if line[0] == b' ' || line[0] == b'\t' {
            if in_conffiles {
                stanza.conffiles.extend(conffile(line));
            }
            return;
        }
        let Some(colon) = line.iter().position(|&b| b == b':') else { return };
        let value = &line[colon + 1..];
        let text = || String::from_utf8_lossy(value.trim_ascii()).into_owned();
        in_conffiles = false;
        match &line[..colon] {
            b"Package" => stanza.package = text(),
            b"Architecture" => stanza.arch = text(),
            b"Multi-Arch" => stanza.same = value.trim_ascii() == b"same",
            b"Status" => {
                let words: Vec<&[u8]> = value.split(|&b| b == b' ').filter(|w| !w.is_empty()).collect();
                stanza.installed =
                    matches!(words[..], [_, b"ok", b"installed" | b"triggers-awaited" | b"triggers-pending"]);
            }
            b"Conffiles" => in_conffiles = true,
            _ => {}
        }
    })?;
    finish(stanza, &mut out);
    Ok(out)
}

/// The `/etc` lines of a file list (`/etc` itself left out), read line by line.
fn etc_lines(reader: impl BufRead) -> io::Result<Vec<Vec<u8>>> {
    let mut out = Vec::new();
    for_lines(reader, |line| {
        if line.starts_with(b"/etc/") {
            out.push(line.to_vec());
        }
    })?;
    Ok(out)
}

/// Opens `name` in `dir` for a bounded read: no symlink followed, no wait on a FIFO,
/// only a regular file of at most [`MAX_FILE`] bytes.
fn open_bounded(dir: &Dir, name: &str) -> Result<BufReader<io::Take<File>>, FsError> {
    let (file, meta) = dir.open_nonblocking(name, false)?;
    let why = if meta.kind != Kind::File {
        format!("it is {}, not a regular file", meta.what())
    } else if meta.size > MAX_FILE {
        format!("it holds {} bytes, more than the {MAX_FILE} read of a file of the dpkg database", meta.size)
    } else {
        // Up to the size `fstat` saw: no read is spent on finding the end.
        let capacity = usize::try_from(meta.size.clamp(1, 64 << 10)).unwrap_or(64 << 10);
        return Ok(BufReader::with_capacity(capacity, file.take(meta.size)));
    };
    Err(FsError { op: "read", path: dir.path().join(name), source: io::Error::new(io::ErrorKind::InvalidData, why) })
}

/// Reads `name` in `dir` with `parse`; `None` if it is not there.
fn read_file<T>(
    dir: &Dir,
    name: &str,
    parse: impl FnOnce(BufReader<io::Take<File>>) -> io::Result<T>,
) -> Result<Option<T>, Unread> {
    let unread = |error| Unread { path: format!("/{DPKG}/{name}"), error };
    match open_bounded(dir, name) {
        Ok(reader) => {
            parse(reader).map(Some).map_err(|e| unread(FsError { op: "read", path: dir.path().join(name), source: e }))
        }
        Err(error) if error.is_not_found() => Ok(None),
        Err(error) => Err(unread(error)),
    }
}

impl Packages {
    /// The database below `root`; `Ok(None)` where there is none (not a dpkg system).
    /// What could not be read is in [`Packages::unread`], or the error if that is
    /// `status` or the directories.
    pub fn read(root: &Dir) -> Result<Option<Packages>, Unread> {
        let unread = |path: &str, error| Unread { path: format!("/{path}"), error };
        let dpkg = match root.open_dir(DPKG).and_then(|dpkg| dpkg.open_dir("info").map(|_| dpkg)) {
            Ok(dpkg) => dpkg,
            Err(error) if error.is_not_found() => return Ok(None),
            Err(error) => return Err(unread(DPKG, error)),
        };
        let installed = read_file(&dpkg, "status", parse_status)?.unwrap_or_default();
        let mut packages = Packages::default();
        for package in installed {
            let list = format!("info/{}.list", package.name);
            // dpkg too takes a missing list for a package with no files.
            let lines = match read_file(&dpkg, &list, etc_lines) {
                Ok(lines) => lines.unwrap_or_default(),
                Err(error) => {
                    packages.unread.push(error);
                    continue;
                }
            };
            let index = packages.names.len();
            for path in lines {
                let conffile = package.conffiles.iter().find(|(c, _)| *c == path).map(|&(_, obsolete)| obsolete);
                if conffile != Some(true) {
                    packages.owned.push(Owned { path: path.into(), package: index, conffile: conffile.is_some() });
                }
            }
            packages.names.push(package.name);
        }
        packages.owned.sort_unstable_by(|a, b| (&a.path, a.package).cmp(&(&b.path, b.package)));
        packages.owned.dedup_by(|a, b| a.path == b.path && a.package == b.package);
        Ok(Some(packages))
    }

    /// The index of the first entry at or after `path`.
    fn from(&self, path: &[u8]) -> usize {
        self.owned.partition_point(|o| &*o.path < path)
    }

    /// Whether some listed path lies below `path`: then it is a directory.
    fn has_below(&self, path: &[u8]) -> bool {
        let below = [path, b"/"].concat();
        self.owned.get(self.from(&below)).is_some_and(|o| o.path.starts_with(&below))
    }

    /// The packages that installed `path` or anything below it, sorted, each once.
    pub fn owners(&self, path: &[u8]) -> Vec<&str> {
        let below = [path, b"/"].concat();
        let exact = self.owned[self.from(path)..].iter().take_while(|o| &*o.path == path);
        let inside = self.owned[self.from(&below)..].iter().take_while(|o| o.path.starts_with(&below));
        let mut names: Vec<&str> = exact.chain(inside).map(|o| self.names[o.package].as_str()).collect();
        names.sort_unstable();
        names.dedup();
        names
    }

    /// Each `/etc` path the packages expect, once, with its packages and whether it is
    /// a conffile (always a file); the directories (a path something else lies below)
    /// left out. The rest are symlinks, or directories shipped empty: the list does
    /// not say which.
    fn expected(&self) -> impl Iterator<Item = (&[u8], Vec<&str>, bool)> {
        self.owned.chunk_by(|a, b| a.path == b.path).filter(|same| !self.has_below(&same[0].path)).map(|same| {
            let names = same.iter().map(|o| self.names[o.package].as_str()).collect();
            (&*same[0].path, names, same.iter().any(|o| o.conffile))
        })
    }

    /// A finding for each expected path that is not in the live root and that
    /// `accounted` (the declaration: declared, persisted, ignored) does not cover. A
    /// path whose parent cannot be entered without following a symlink is left alone:
    /// it may well be there.
    pub fn missing(&self, root: &Dir, accounted: impl Fn(&[u8]) -> bool, out: &mut Vec<Finding>) {
        enum Parent {
            Open(Dir),
            Missing,
            Unknown,
        }
        let mut parents: HashMap<&[u8], Parent> = HashMap::new();
        for (path, names, conffile) in self.expected() {
            if accounted(path) {
                continue;
            }
            let cut = path.iter().rposition(|&b| b == b'/').unwrap_or(0);
            let (parent, name) = (&path[1..cut], OsStr::from_bytes(&path[cut + 1..]));
            let state = parents.entry(parent).or_insert_with(|| match root.open_dir(OsStr::from_bytes(parent)) {
                Ok(dir) => Parent::Open(dir),
                Err(error) if error.is_not_found() => Parent::Missing,
                // Through a symlink, or unreadable: not known to be missing.
                Err(_) => Parent::Unknown,
            });
            let gone = match state {
                Parent::Open(dir) => dir.meta(name).is_err_and(|e| e.is_not_found()),
                Parent::Missing => true,
                Parent::Unknown => false,
            };
            if gone {
                out.push(Finding::missing_package_file(path, &names, conffile));
            }
        }
    }
}

/// `word` as the shell reads it back: as it is when it holds nothing the shell
/// treats specially, else in single quotes.
fn shell_word(word: &str) -> String {
    let plain = |c: char| c.is_ascii_alphanumeric() || "/._+-@:,=".contains(c);
    if word.chars().all(plain) { word.to_owned() } else { format!("'{}'", word.replace('\'', "'\\''")) }
}

impl Finding {
    /// A package's `/etc` file that is gone, with the command that brings it back.
    fn missing_package_file(path: &[u8], names: &[&str], conffile: bool) -> Finding {
        let what = match (conffile, names) {
            (true, [name]) => format!("a conffile of package {name}"),
            (false, [name]) => format!("installed by package {name} (a symlink, or a directory shipped empty)"),
            (true, _) => format!("a conffile of packages {}", names.join(", ")),
            (false, _) => format!("installed by packages {}", names.join(", ")),
        };
        let reason = format!(
            "{what}, not kept: dpkg says it is installed, but the file is gone. Bring it back with \
             `apt-get install --reinstall -o Dpkg::Options::=--force-confmiss {}`, then keep it with \
             `blankslate etc keep {}`",
            names.join(" "),
            shell_word(&String::from_utf8_lossy(path))
        );
        let mut finding = Finding::new(Class::PackageMissing, FindingKind::Missing, path.to_vec(), reason);
        finding.packages = names.iter().map(|&n| n.to_owned()).collect();
        finding
    }

    /// Names the packages an `/etc` stray (a file, or a group below a directory) came
    /// from, in its reason and its `packages`.
    pub(crate) fn name_packages(&mut self, packages: &Packages) {
        let names = packages.owners(&self.path);
        if names.is_empty() {
            return;
        }
        let from = match (&names[..], self.kind) {
            ([name], FindingKind::Directory) => format!("holds files of package {name}"),
            ([name], _) => format!("from package {name}"),
            (_, FindingKind::Directory) => format!("holds files of packages {}", names.join(", ")),
            (_, _) => format!("from packages {}", names.join(", ")),
        };
        self.reason = if self.reason.is_empty() { from } else { format!("{}; {from}", self.reason) };
        self.packages = names.into_iter().map(str::to_owned).collect();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_path_in_a_suggested_command_reads_back_as_itself() {
        assert_eq!(shell_word("/etc/anacrontab"), "/etc/anacrontab");
        assert_eq!(shell_word("/etc/a b"), "'/etc/a b'");
        assert_eq!(shell_word("/etc/it's;rm"), "'/etc/it'\\''s;rm'");
    }

    const STATUS: &str = "\
Package: atd
Status: install ok installed
Architecture: amd64
Conffiles:
 /etc/init.d/atd 6b1c3b4b8a3f0b7e3d1a5c7c1e0d9f21
 /etc/pam.d/atd 1b2c3d4e5f60718293a4b5c6d7e8f901
 /etc/atd.old 0f0e0d0c0b0a09080706050403020100 obsolete
 /etc/with space.conf 00112233445566778899aabbccddeeff remove-on-upgrade
 /usr/share/elsewhere 00112233445566778899aabbccddeeff
Description: deferred execution
 at and batch
 /etc/not-a-conffile 00

Package: libfoo1
Status: hold ok installed
Multi-Arch: same
Architecture: i386

Package: oldpkg
Status: deinstall ok config-files
Architecture: all
Conffiles:
 /etc/oldpkg.conf 0123456789abcdef0123456789abcdef

Package: halfway
Status: install ok unpacked
Architecture: all

Package: triggered
Status: install ok triggers-pending
Architecture: all

Package: Bad/Name
Status: install ok installed
Architecture: all
";

    fn installed(text: &str) -> Vec<Installed> {
        parse_status(text.as_bytes()).unwrap()
    }

    #[test]
    fn only_installed_packages_count_with_their_conffiles() {
        let found = installed(STATUS);
        let names: Vec<&str> = found.iter().map(|p| p.name.as_str()).collect();
        // Held is installed; removed (config left), unpacked and a name dpkg would
        // refuse are not; a `Multi-Arch: same` package is named with its architecture.
        assert_eq!(names, ["atd", "libfoo1:i386", "triggered"]);
        let conffiles: Vec<(&str, bool)> =
            found[0].conffiles.iter().map(|(p, o)| (std::str::from_utf8(p).unwrap(), *o)).collect();
        // Outside /etc and the description's continuation lines are not conffiles.
        assert_eq!(
            conffiles,
            [
                ("/etc/init.d/atd", false),
                ("/etc/pam.d/atd", false),
                ("/etc/atd.old", true),
                ("/etc/with space.conf", false)
            ]
        );
    }

    #[test]
    fn a_status_without_a_final_blank_line_ends_its_last_package() {
        let found = installed("Package: x1\nStatus: install ok installed");
        assert_eq!(found[0].name, "x1");
    }

    #[test]
    fn file_lists_keep_only_etc() {
        let lines = etc_lines(&b"/.\n/etc\n/etc/atd\n/etc/atd/x\n/usr/bin/at\n/etcetera\n"[..]).unwrap();
        assert_eq!(lines, [b"/etc/atd".to_vec(), b"/etc/atd/x".to_vec()]);
    }

    #[test]
    fn package_names_are_what_dpkg_allows() {
        for good in ["atd", "libc6:amd64", "g++-12", "libstdc++6:i386", "x.y"] {
            assert!(valid_name(good), "{good}");
        }
        for bad in ["a", "Atd", "../x", "a b", "x:", "x:AMD64", "-x", ""] {
            assert!(!valid_name(bad), "{bad}");
        }
    }

    /// A root with a dpkg database: `status` and each `(list name, lines)`.
    fn root_with(status: &str, lists: &[(&str, &str)]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let info = dir.path().join("var/lib/dpkg/info");
        std::fs::create_dir_all(&info).unwrap();
        std::fs::write(dir.path().join("var/lib/dpkg/status"), status).unwrap();
        for (name, lines) in lists {
            std::fs::write(info.join(name), lines).unwrap();
        }
        dir
    }

    fn read(dir: &tempfile::TempDir) -> Packages {
        Packages::read(&Dir::open_root(dir.path()).unwrap()).unwrap().unwrap()
    }

    #[test]
    fn lists_are_read_by_dpkg_names_and_obsolete_conffiles_not_expected() {
        let dir = root_with(
            STATUS,
            &[
                ("atd.list", "/.\n/etc\n/etc/init.d\n/etc/init.d/atd\n/etc/pam.d\n/etc/pam.d/atd\n/etc/atd.old\n"),
                ("libfoo1:i386.list", "/etc/foo\n/etc/foo/i386.conf\n"),
                // Not installed: a removed package's list of what it left.
                ("oldpkg.list", "/etc/oldpkg.conf\n"),
                ("halfway.list", "/etc/halfway.conf\n"),
            ],
        );
        let packages = read(&dir);
        assert!(packages.unread.is_empty(), "{:?}", packages.unread);
        let expected: Vec<(String, Vec<&str>, bool)> = packages
            .expected()
            .map(|(path, names, conffile)| (String::from_utf8_lossy(path).into_owned(), names, conffile))
            .collect();
        // Directories (something listed below them) are not expected as files.
        assert_eq!(
            expected,
            [
                ("/etc/foo/i386.conf".to_owned(), vec!["libfoo1:i386"], false),
                ("/etc/init.d/atd".to_owned(), vec!["atd"], true),
                ("/etc/pam.d/atd".to_owned(), vec!["atd"], true),
            ]
        );
        assert_eq!(packages.owners(b"/etc/init.d"), ["atd"]);
        assert_eq!(packages.owners(b"/etc/foo"), ["libfoo1:i386"]);
        assert!(packages.owners(b"/etc/oldpkg.conf").is_empty());
        assert!(packages.owners(b"/etc/fo").is_empty());
    }

    #[test]
    fn diversions_are_not_read() {
        // The diverted file is expected where its package lists it (see the module's
        // documentation for why that is safe).
        let status = "Package: ab\nStatus: install ok installed\n";
        let dir = root_with(status, &[("ab.list", "/etc/ab.conf\n")]);
        std::fs::write(dir.path().join("var/lib/dpkg/diversions"), "/etc/ab.conf\n/etc/ab.conf.orig\n:\n").unwrap();
        let packages = read(&dir);
        assert_eq!(packages.expected().map(|e| e.0.to_vec()).collect::<Vec<_>>(), [b"/etc/ab.conf".to_vec()]);
    }

    #[test]
    fn no_database_is_no_check_and_a_fifo_or_symlink_is_never_read() {
        let dir = tempfile::tempdir().unwrap();
        assert!(Packages::read(&Dir::open_root(dir.path()).unwrap()).unwrap().is_none());
        let status = "Package: ab\nStatus: install ok installed\n\nPackage: cd\nStatus: install ok installed\n";
        let dir = root_with(status, &[]);
        let info = dir.path().join("var/lib/dpkg/info");
        rustix::fs::mknodat(
            rustix::fs::CWD,
            info.join("ab.list"),
            rustix::fs::FileType::Fifo,
            rustix::fs::Mode::from_raw_mode(0o600),
            0,
        )
        .unwrap();
        std::os::unix::fs::symlink("/etc/passwd", info.join("cd.list")).unwrap();
        let packages = read(&dir);
        let unread: Vec<&str> = packages.unread.iter().map(|u| u.path.as_str()).collect();
        assert_eq!(unread, ["/var/lib/dpkg/info/ab.list", "/var/lib/dpkg/info/cd.list"]);
        assert!(packages.unread[0].error.to_string().contains("a FIFO"), "{}", packages.unread[0].error);
        // A status that is a FIFO: the check cannot run, and says so.
        let status = dir.path().join("var/lib/dpkg/status");
        std::fs::remove_file(&status).unwrap();
        rustix::fs::mknodat(rustix::fs::CWD, &status, rustix::fs::FileType::Fifo, rustix::fs::Mode::RUSR, 0).unwrap();
        let error = Packages::read(&Dir::open_root(dir.path()).unwrap()).unwrap_err();
        assert_eq!(error.path, "/var/lib/dpkg/status");
    }

    #[test]
    fn missing_files_are_found_through_their_parents() {
        let status = "Package: ab\nStatus: install ok installed\nConffiles:\n /etc/ab/ab.conf 00\n";
        let list = "/etc/ab\n/etc/ab/ab.conf\n/etc/ab/link\n/etc/gone/x.conf\n/etc/declared.conf\n/etc/here\n";
        let dir = root_with(status, &[("ab.list", list)]);
        std::fs::create_dir_all(dir.path().join("etc/ab")).unwrap();
        std::fs::write(dir.path().join("etc/here"), "").unwrap();
        let packages = read(&dir);
        let mut out = Vec::new();
        let root = Dir::open_root(dir.path()).unwrap();
        packages.missing(&root, |path| path == b"/etc/declared.conf", &mut out);
        let found: Vec<(String, bool)> = out
            .iter()
            .map(|f| (String::from_utf8_lossy(&f.path).into_owned(), f.reason.starts_with("a conffile of package ab")))
            .collect();
        assert_eq!(
            found,
            [
                ("/etc/ab/ab.conf".to_owned(), true),
                ("/etc/ab/link".to_owned(), false),
                ("/etc/gone/x.conf".to_owned(), false)
            ]
        );
        assert!(out.iter().all(|f| f.class == Class::PackageMissing && f.packages == ["ab"]));
        assert!(out[0].reason.contains("apt-get install --reinstall -o Dpkg::Options::=--force-confmiss ab`"));
        // A parent reached only through a symlink: not known to be missing.
        std::fs::remove_dir_all(dir.path().join("etc/ab")).unwrap();
        std::os::unix::fs::symlink("/somewhere", dir.path().join("etc/ab")).unwrap();
        out.clear();
        packages.missing(&root, |_| false, &mut out);
        let paths: Vec<&[u8]> = out.iter().map(|f| f.path.as_slice()).collect();
        assert_eq!(paths, [b"/etc/declared.conf".as_slice(), b"/etc/gone/x.conf"]);
    }
}
