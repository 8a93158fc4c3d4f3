//! Lexical rules for the paths a declaration names.

use super::diag::{Diagnostic, Rule};
use super::model::Span;

/// Longest file name Linux accepts (`NAME_MAX`).
const NAME_MAX: usize = 255;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathKind {
    /// Starts with `/`: persisted paths, persistent roots, homes.
    Absolute,
    /// Relative to a base: per-user entries (home), `/etc` entries (`/etc`).
    Relative,
}

/// Checks that `path` is a normalized path of the given kind, reporting every broken
/// rule against `span`. Returns whether it passed.
pub fn check_path(path: &str, kind: PathKind, span: Span, what: &str, out: &mut Vec<Diagnostic>) -> bool {
    let before = out.len();
    if path.is_empty() {
        out.push(Diagnostic::error(Rule::InvalidPath, span, format!("{what} has an empty path")));
        return false;
    }
    if path.contains('\0') {
        out.push(Diagnostic::error(
            Rule::InvalidPath,
            span,
            format!("{what} `{}` contains a NUL byte", path.escape_debug()),
        ));
        return false;
    }
    let absolute = path.starts_with('/');
    match (kind, absolute) {
        (PathKind::Absolute, false) => out.push(
            Diagnostic::error(Rule::RelativePath, span, format!("{what} must be an absolute path, not `{path}`"))
                .with_help(format!("write \"/{path}\"")),
        ),
        (PathKind::Relative, true) => {
            let help = match what {
                "an /etc entry" => format!(
                    "/etc entries are named relative to /etc: write \"{}\"",
                    path.trim_start_matches('/').trim_start_matches("etc/")
                ),
                _ => {
                    format!("paths here are relative to the home directory: write \"{}\"", path.trim_start_matches('/'))
                }
            };
            out.push(
                Diagnostic::error(Rule::RelativePath, span, format!("{what} must be a relative path, not `{path}`"))
                    .with_help(help),
            );
        }
        _ => {}
    }
    if kind == PathKind::Absolute && path == "/" {
        out.push(Diagnostic::error(Rule::InvalidPath, span, format!("{what} cannot be `/` itself")));
    }
    let body = path.strip_prefix('/').unwrap_or(path);
    let components: Vec<&str> = body.split('/').collect();
    if components.contains(&"..") {
        out.push(
            Diagnostic::error(Rule::DotDot, span, format!("{what} `{path}` has a `..` component"))
                .with_help("name the path directly, without `..`"),
        );
    } else if path != "/" && components.iter().any(|c| c.is_empty() || *c == ".") {
        let normal: Vec<&str> = components.iter().copied().filter(|c| !c.is_empty() && *c != ".").collect();
        let lead = if absolute { "/" } else { "" };
        out.push(
            Diagnostic::error(Rule::NotNormalized, span, format!("{what} `{path}` is not normalized"))
                .with_help(format!("write \"{lead}{}\"", normal.join("/"))),
        );
    }
    if let Some(long) = components.iter().find(|c| c.len() > NAME_MAX) {
        out.push(Diagnostic::error(
            Rule::InvalidPath,
            span,
            format!("{what} has a name of {} bytes; Linux allows {NAME_MAX}", long.len()),
        ));
    }
    out.len() == before
}

/// Whether `inner` lies strictly inside `outer` (both normalized and absolute).
pub fn is_inside(inner: &str, outer: &str) -> bool {
    inner.len() > outer.len() && inner.starts_with(outer) && (outer == "/" || inner.as_bytes()[outer.len()] == b'/')
}

/// The ancestors of a normalized absolute path, nearest first, excluding `/`.
pub fn ancestors(path: &str) -> impl Iterator<Item = &str> {
    let mut rest = path;
    std::iter::from_fn(move || {
        let cut = rest.rfind('/')?;
        rest = &rest[..cut];
        (!rest.is_empty()).then_some(rest)
    })
}

/// The parent directory of a normalized absolute path (`/` for top-level names).
pub fn parent(path: &str) -> &str {
    match path.rfind('/') {
        Some(0) | None => "/",
        Some(cut) => &path[..cut],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(path: &str, kind: PathKind) -> Vec<&'static str> {
        let mut out = Vec::new();
        check_path(path, kind, Span::default(), "x", &mut out);
        out.iter().map(|d| d.rule.name()).collect()
    }

    #[test]
    fn path_rules() {
        assert!(rules("/var/lib/foo", PathKind::Absolute).is_empty());
        assert_eq!(rules("var/lib", PathKind::Absolute), ["relative-path"]);
        assert_eq!(rules("/var/../etc", PathKind::Absolute), ["dot-dot"]);
        assert_eq!(rules("/var//lib", PathKind::Absolute), ["not-normalized"]);
        assert_eq!(rules("/var/lib/", PathKind::Absolute), ["not-normalized"]);
        assert_eq!(rules("/var/./lib", PathKind::Absolute), ["not-normalized"]);
        assert_eq!(rules("/", PathKind::Absolute), ["invalid-path"]);
        assert_eq!(rules("/etc/x", PathKind::Relative), ["relative-path"]);
        assert_eq!(rules("", PathKind::Relative), ["invalid-path"]);
        assert!(rules(".ssh", PathKind::Relative).is_empty());
    }

    #[test]
    fn nesting_helpers() {
        assert!(is_inside("/var/lib/foo", "/var/lib"));
        assert!(!is_inside("/var/libfoo", "/var/lib"));
        assert!(!is_inside("/var/lib", "/var/lib"));
        assert!(is_inside("/persist", "/"));
        assert_eq!(ancestors("/a/b/c").collect::<Vec<_>>(), ["/a/b", "/a"]);
        assert_eq!(parent("/a"), "/");
        assert_eq!(parent("/a/b"), "/a");
    }
}
