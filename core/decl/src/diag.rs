//! Diagnostics: what is wrong with a declaration, where, and which rule it breaks.

use std::fmt::{self, Write as _};
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::model::Span;

/// How bad a diagnostic is. Only errors make a declaration invalid.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Warning,
    Error,
}

/// The rule a diagnostic reports, named in messages as `error[rule-name]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Rule {
    /// The file is not UTF-8 text.
    NotUtf8,
    /// The text is not valid TOML.
    Syntax,
    UnknownKey,
    MissingKey,
    WrongType,
    UnsupportedVersion,
    /// A path that must be absolute is not (or one that must be relative is not).
    RelativePath,
    /// A `..` component.
    DotDot,
    /// `//`, a trailing `/`, or a `.` component.
    NotNormalized,
    /// An empty path, a NUL byte, or a name longer than the kernel allows.
    InvalidPath,
    Duplicate,
    DirectoryAndFile,
    /// A file inside a directory that another persistent root persists.
    NestedInOtherRoot,
    /// Anything declared inside a path declared as a file.
    NestedInFile,
    /// Anything declared inside a directory that is a symlink into its volume.
    NestedInSymlink,
    /// A path declared inside another one persisted in the same volume: one more
    /// mount for data the outer one already holds (a warning).
    Nested,
    /// A persisted path that covers a managed `/etc` entry.
    ShadowsEtc,
    /// Two entries ask for different owner or mode on one parent directory.
    ParentConflict,
    /// A persistent root inside a persisted path, or a persisted path inside a
    /// persistent root.
    RootInsidePersisted,
    InvalidMode,
    InvalidSize,
    InvalidNet,
    /// `[root]`: an unknown `kind`, a btrfs root without its `device`, or a setting
    /// the kind does not use.
    InvalidRoot,
    InvalidName,
    /// A user or group that the root's `/etc/passwd` or `/etc/group` does not know.
    UnknownUser,
    EtcContents,
    EtcSourceMissing,
    /// A source that cannot be used: a FIFO, socket or device, a symlink out of the
    /// declaration's directory, a kernel file system, too large, unreadable.
    EtcSource,
    /// A file known to hold secrets (`shadow`, keys) given a mode everyone can read
    /// (a warning).
    SecretMode,
    /// `user`/`group` on an `/etc` entry that is a link, not a copy.
    OwnerOnLink,
    InvalidGlob,
    InvalidMountOption,
    /// A persisted path in an API file system (`/proc`, `/sys`, `/dev`, `/run`), which
    /// the kernel or systemd mounts over whatever the root holds there.
    ApiFilesystem,
    /// `.ssh`, `.gnupg` or `/var/lib/private` with a mode open to group or others, or
    /// a known secret (`/etc/shadow`, keys) persisted as a copy with no mode (a
    /// warning).
    PrivateMode,
    /// So many bind mounts that every reader of the mount table slows down (a
    /// warning).
    ManyMounts,
    /// A file bind-mounted without saying so: programs that replace it by `rename()`
    /// get EBUSY (a warning).
    FileBindRename,
    /// `/etc/machine-id` bind-mounted: systemd's machine-id commit fails on a mount
    /// that is not a tmpfs (a warning).
    MachineIdBind,
    /// A persistent root's `device`, `fs_type` or `mount_options` is wrong, or two
    /// roots name one device; or (a warning) boot cannot tell which root holds the
    /// store.
    Volume,
    /// The etc tree's `fstab` mounts something over the root, a volume's mount point
    /// or a persisted path (a warning).
    FstabConflict,
    /// A user's home that is (or holds, or lies inside) a system or state path,
    /// another user's home, or two homes for one user; or (a warning) a home that
    /// differs from the user's `passwd` entry.
    Home,
}

impl Rule {
    pub fn name(self) -> &'static str {
        match self {
            Rule::NotUtf8 => "not-utf8",
            Rule::Syntax => "syntax",
            Rule::UnknownKey => "unknown-key",
            Rule::MissingKey => "missing-key",
            Rule::WrongType => "wrong-type",
            Rule::UnsupportedVersion => "unsupported-version",
            Rule::RelativePath => "relative-path",
            Rule::DotDot => "dot-dot",
            Rule::NotNormalized => "not-normalized",
            Rule::InvalidPath => "invalid-path",
            Rule::Duplicate => "duplicate",
            Rule::DirectoryAndFile => "directory-and-file",
            Rule::NestedInOtherRoot => "nested-in-other-root",
            Rule::NestedInFile => "nested-in-file",
            Rule::NestedInSymlink => "nested-in-symlink",
            Rule::Nested => "nested",
            Rule::ShadowsEtc => "shadows-etc",
            Rule::ParentConflict => "parent-conflict",
            Rule::RootInsidePersisted => "root-inside-persisted",
            Rule::InvalidMode => "invalid-mode",
            Rule::InvalidSize => "invalid-size",
            Rule::InvalidNet => "invalid-net",
            Rule::InvalidRoot => "invalid-root",
            Rule::InvalidName => "invalid-name",
            Rule::UnknownUser => "unknown-user",
            Rule::EtcContents => "etc-contents",
            Rule::EtcSourceMissing => "etc-source-missing",
            Rule::EtcSource => "etc-source",
            Rule::SecretMode => "secret-mode",
            Rule::OwnerOnLink => "owner-on-link",
            Rule::InvalidGlob => "invalid-glob",
            Rule::InvalidMountOption => "invalid-mount-option",
            Rule::ApiFilesystem => "api-filesystem",
            Rule::PrivateMode => "private-mode",
            Rule::ManyMounts => "many-mounts",
            Rule::FstabConflict => "fstab-conflict",
            Rule::FileBindRename => "file-bind-rename",
            Rule::MachineIdBind => "machine-id-bind",
            Rule::Volume => "volume",
            Rule::Home => "home",
        }
    }
}

/// One finding about a declaration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub severity: Severity,
    pub rule: Rule,
    pub message: String,
    pub span: Option<Span>,
    pub help: Option<String>,
}

impl Diagnostic {
    pub fn error(rule: Rule, span: impl Into<Option<Span>>, message: impl Into<String>) -> Self {
        Diagnostic { severity: Severity::Error, rule, message: message.into(), span: span.into(), help: None }
    }

    pub fn warning(rule: Rule, span: impl Into<Option<Span>>, message: impl Into<String>) -> Self {
        Diagnostic { severity: Severity::Warning, ..Diagnostic::error(rule, span, message) }
    }

    #[must_use]
    pub fn with_help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }
}

/// A 1-based line and column (in characters) in a source text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Location {
    pub line: usize,
    pub column: usize,
}

/// The diagnostics of one declaration file, with the text they point into.
#[derive(Debug, Clone)]
pub struct Diagnostics {
    pub file: PathBuf,
    pub source: String,
    pub items: Vec<Diagnostic>,
}

impl Diagnostics {
    pub fn new(file: &Path, source: &str) -> Self {
        Diagnostics { file: file.to_path_buf(), source: source.to_owned(), items: Vec::new() }
    }

    pub fn has_errors(&self) -> bool {
        self.items.iter().any(|d| d.severity == Severity::Error)
    }

    pub fn error_count(&self) -> usize {
        self.items.iter().filter(|d| d.severity == Severity::Error).count()
    }

    /// Where a byte offset falls. Offsets past the end clamp to the end.
    pub fn locate(&self, offset: usize) -> Location {
        let offset = floor_char_boundary(&self.source, offset);
        let before = &self.source[..offset];
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        Location { line: before.matches('\n').count() + 1, column: before[line_start..].chars().count() + 1 }
    }

    /// Sorts by position so output reads top to bottom.
    pub fn sort(&mut self) {
        self.items.sort_by_key(|d| (d.span.map_or(usize::MAX, |s| s.start), d.severity == Severity::Warning));
    }

    /// Renders every diagnostic the way a compiler would: rule, `file:line:col`, the
    /// offending line and a caret under the span.
    pub fn render(&self, color: bool) -> String {
        let mut out = String::new();
        for diagnostic in &self.items {
            self.render_one(diagnostic, color, &mut out);
        }
        out
    }

    fn render_one(&self, d: &Diagnostic, color: bool, out: &mut String) {
        let paint = |code: &str, text: &str| if color { format!("\x1b[{code}m{text}\x1b[0m") } else { text.to_owned() };
        let (label, code) = match d.severity {
            Severity::Error => ("error", "1;31"),
            Severity::Warning => ("warning", "1;33"),
        };
        let _ = writeln!(out, "{}: {}", paint(code, &format!("{label}[{}]", d.rule.name())), paint("1", &d.message));
        let file = self.file.display();
        let Some(span) = d.span else {
            let _ = writeln!(out, "  --> {file}");
            if let Some(help) = &d.help {
                let _ = writeln!(out, "  = help: {help}");
            }
            return;
        };
        let at = self.locate(span.start);
        let _ = writeln!(out, "  --> {file}:{}:{}", at.line, at.column);
        let line_text = self.source.lines().nth(at.line - 1).unwrap_or("");
        let gutter = at.line.to_string().len();
        let width = {
            let end = floor_char_boundary(&self.source, span.end.max(span.start));
            let in_line = self.source[floor_char_boundary(&self.source, span.start)..end].lines().next().unwrap_or("");
            in_line.chars().count().max(1)
        };
        let pad = " ".repeat(gutter);
        let _ = writeln!(out, "{pad} |");
        let _ = writeln!(out, "{} | {line_text}", at.line);
        let caret = format!("{}{}", " ".repeat(at.column - 1), "^".repeat(width));
        let _ = writeln!(out, "{pad} | {}", paint(code, &caret));
        if let Some(help) = &d.help {
            let _ = writeln!(out, "{pad} = help: {help}");
        }
    }

    /// The diagnostics as JSON values (for `check --json`).
    pub fn to_json(&self) -> serde_json::Value {
        let items: Vec<_> = self
            .items
            .iter()
            .map(|d| {
                let location = d.span.map(|s| self.locate(s.start));
                serde_json::json!({
                    "severity": d.severity,
                    "rule": d.rule,
                    "message": d.message,
                    "file": self.file,
                    "line": location.map(|l| l.line),
                    "column": location.map(|l| l.column),
                    "help": d.help,
                })
            })
            .collect();
        serde_json::Value::Array(items)
    }
}

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.render(false))
    }
}

impl std::error::Error for Diagnostics {}

fn floor_char_boundary(text: &str, mut offset: usize) -> usize {
    offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    offset
}

/// The candidate closest to `word` by edit distance, if it is close enough to be a
/// plausible typo.
pub fn nearest<'a>(word: &str, candidates: &[&'a str]) -> Option<&'a str> {
    let limit = (word.chars().count() / 3).max(2);
    candidates
        .iter()
        .map(|c| (edit_distance(word, c), *c))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut current = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let substitution = previous[j] + usize::from(ca != *cb);
            current.push(substitution.min(previous[j + 1] + 1).min(current[j] + 1));
        }
        previous = current;
    }
    previous[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_finds_typos_and_refuses_strangers() {
        let keys = ["directory", "user", "group", "mode", "parent", "options"];
        assert_eq!(nearest("mdoe", &keys), Some("mode"));
        assert_eq!(nearest("directroy", &keys), Some("directory"));
        assert_eq!(nearest("flavour", &keys), None);
    }

    #[test]
    fn locate_counts_characters_not_bytes() {
        let d = Diagnostics::new(Path::new("x.toml"), "a = 1\nké = 2\n");
        assert_eq!(d.locate(0), Location { line: 1, column: 1 });
        assert_eq!(d.locate(10), Location { line: 2, column: 4 });
    }
}
