//! `[audit] ignore` globs: what their wildcards mean, in one place for the parser
//! (which validates them) and the audit (which matches with them).
//!
//! As in shells and gitignore, a wildcard matches within one path component:
//! - `*` matches any run of characters but `/` (dot files included, as in gitignore);
//! - `?` matches one character but `/`;
//! - `[abc]`, `[a-z]` match one of the characters, `[!abc]` (or `[^abc]`) one character
//!   that is none of them and not `/`; a class that names `/` is an error;
//! - `**` as a whole component crosses directories: `/**/` is zero or more
//!   directories, a leading `**/` any leading directories, a trailing `/**` everything
//!   below (not the directory itself); `**` inside a component is `*`;
//! - `{a,b}` matches either; `\` escapes the next character.
//!
//! A trailing `/**` is treated by the audit as "this directory's contents": the
//! directory itself is accounted for, as with a literal path (see `blankslate_audit`).

use globset::{Glob, GlobBuilder};

/// Compiles an `[audit] ignore` glob with the rules above; the error says what is
/// wrong with it.
pub fn compile(glob: &str) -> Result<Glob, String> {
    let glob = separator_safe_classes(glob)?;
    GlobBuilder::new(&glob).literal_separator(true).backslash_escape(true).build().map_err(|e| e.kind().to_string())
}

/// Rewrites every negated class so that it also excludes `/` (globset's `[!a]` would
/// match it); refuses a class that names `/`. An unclosed class is left to globset,
/// whose error names it.
fn separator_safe_classes(glob: &str) -> Result<String, String> {
    let chars: Vec<char> = glob.chars().collect();
    let mut out = String::with_capacity(glob.len() + 2);
    let mut i = 0;
    while i < chars.len() {
        let class = if chars[i] == '[' { Class::parse(&chars[i + 1..]) } else { None };
        if let Some((class, used)) = class {
            let text: String = chars[i..=i + used].iter().collect();
            if !class.negated && class.contains('/') {
                return Err(format!("the class `{text}` names `/`: a class matches within one path component"));
            }
            out.push_str(&if class.negated { class.excluding_separator() } else { text });
            i += used + 1;
        } else {
            // An escape is copied whole (`\[` is no class).
            let end = if chars[i] == '\\' { (i + 2).min(chars.len()) } else { i + 1 };
            out.extend(&chars[i..end]);
            i = end;
        }
    }
    Ok(out)
}

/// A `[…]` class, parsed as globset parses it: no escapes inside, a `]` first is
/// literal, a `-` first or last is literal, `a-z` a range.
#[derive(Debug, PartialEq, Eq)]
struct Class {
    negated: bool,
    ranges: Vec<(char, char)>,
}

impl Class {
    /// Parses the class after its `[`; returns it and how many characters it took,
    /// its closing `]` included. `None` if it is not closed or has a reversed range.
    fn parse(chars: &[char]) -> Option<(Class, usize)> {
        let negated = matches!(chars.first(), Some('!' | '^'));
        let mut i = usize::from(negated);
        let mut ranges: Vec<(char, char)> = Vec::new();
        let (mut first, mut in_range) = (true, false);
        loop {
            let c = *chars.get(i)?;
            i += 1;
            match c {
                ']' if !first => break,
                '-' if !first && !in_range => in_range = true,
                c if in_range => {
                    let range = ranges.last_mut().expect("a range has its start");
                    if c < range.0 {
                        // globset names the bad range.
                        return None;
                    }
                    range.1 = c;
                    in_range = false;
                }
                c => ranges.push((c, c)),
            }
            first = false;
        }
        if in_range {
            ranges.push(('-', '-'));
        }
        Some((Class { negated, ranges }, i))
    }

    fn contains(&self, c: char) -> bool {
        self.ranges.iter().any(|&(a, b)| a <= c && c <= b)
    }

    /// The negated class written back with `/` added to what it excludes. `]` goes
    /// first and `-` last (where they are literal); ranges that span either (or `/`)
    /// are split around it.
    fn excluding_separator(&self) -> String {
        let mut body = String::new();
        let mut push_run = |(start, end): (char, char)| {
            body.push(start);
            if end != start {
                body.push('-');
                body.push(end);
            }
        };
        for &(a, b) in &self.ranges {
            let mut run: Option<(char, char)> = None;
            for c in a..=b {
                if matches!(c, ']' | '-' | '/') {
                    if let Some(done) = run.take() {
                        push_run(done);
                    }
                } else {
                    run = Some((run.map_or(c, |(start, _)| start), c));
                }
            }
            if let Some(done) = run {
                push_run(done);
            }
        }
        let close = if self.contains(']') { "]" } else { "" };
        let dash = if self.contains('-') { "-" } else { "" };
        format!("[!{close}{body}/{dash}]")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn matches(glob: &str, path: &str) -> bool {
        compile(glob).unwrap().compile_matcher().is_match(path)
    }

    #[test]
    fn star_and_question_mark_stay_within_a_component() {
        assert!(matches("/srv/*.log", "/srv/app.log"));
        assert!(!matches("/srv/*.log", "/srv/sub/app.log"));
        assert!(matches("/home/*/.cache/**", "/home/bob/.cache/thumbs/x"));
        assert!(!matches("/home/*/.cache/**", "/home/bob/project/.cache/x"));
        assert!(matches("/srv/a?c", "/srv/abc"));
        assert!(!matches("/srv/a?c", "/srv/a/c"));
        // `*` matches dot files, as in gitignore.
        assert!(matches("/root/*", "/root/.profile"));
        // `**` inside a component is `*`.
        assert!(!matches("/srv/a**", "/srv/ab/c"));
    }

    #[test]
    fn double_star_crosses_directories() {
        assert!(matches("/**/*.swp", "/a.swp"));
        assert!(matches("/**/*.swp", "/srv/data/deep/x.swp"));
        assert!(matches("**/*.swp", "/srv/x.swp"));
        assert!(matches("/srv/**/cache", "/srv/cache"));
        assert!(matches("/srv/**/cache", "/srv/a/b/cache"));
        assert!(matches("/var/cache/**", "/var/cache/apt/x"));
        // A trailing `/**` is what is below, not the directory itself.
        assert!(!matches("/var/cache/**", "/var/cache"));
    }

    #[test]
    fn classes_never_match_the_separator() {
        assert!(matches("/srv/[ab]x", "/srv/ax"));
        assert!(matches("/srv/a[!x]c", "/srv/abc"));
        assert!(!matches("/srv/a[!x]c", "/srv/a/c"));
        assert!(!matches("/srv/a[^x]c", "/srv/a/c"));
        assert!(!matches("/srv/a[!x]c", "/srv/axc"));
        // Literal `]` and `-`, and a range ending on `-`, keep their meaning.
        assert!(matches("/s[!]]", "/sa") && !matches("/s[!]]", "/s]") && !matches("/s[!]]", "/s/"));
        assert!(matches("/s[!a-]", "/sb") && !matches("/s[!a-]", "/s-") && !matches("/s[!a-]", "/s/"));
        assert!(matches("/s[!+--]", "/s.") && !matches("/s[!+--]", "/s,") && !matches("/s[!+--]", "/s-"));
        assert!(!matches("/s[!+-0]", "/s/") && !matches("/s[!+-0]", "/s0") && matches("/s[!+-0]", "/s1"));
        for bad in ["/srv/a[/]c", "/srv/a[+-0]c"] {
            assert!(compile(bad).unwrap_err().contains("names `/`"), "{bad}");
        }
    }

    /// The README's table of examples: each glob of a row ignores the paths of its
    /// second column and none of its third.
    #[test]
    fn the_readmes_examples_hold() {
        let readme = include_str!("../../../README.md");
        let table = readme.split("<!-- globs").nth(1).expect("the README marks its glob examples");
        let quoted = |cell: &str| -> Vec<String> { cell.split('`').skip(1).step_by(2).map(str::to_owned).collect() };
        let rows: Vec<Vec<&str>> =
            table.lines().filter(|l| l.starts_with("| `")).map(|l| l.split('|').collect()).collect();
        assert!(rows.len() >= 6, "{table}");
        for row in rows {
            for glob in quoted(row[1]) {
                for path in quoted(row[2]) {
                    assert!(matches(&glob, &path), "{glob} should ignore {path}");
                }
                for path in quoted(row[3]) {
                    assert!(!matches(&glob, &path), "{glob} should not ignore {path}");
                }
            }
        }
    }

    #[test]
    fn escapes_and_errors() {
        assert!(matches("/srv/\\*", "/srv/*"));
        assert!(!matches("/srv/\\*", "/srv/x"));
        assert!(matches("/srv/\\[!x]", "/srv/[!x]"));
        assert!(compile("/srv/[ab").is_err());
        assert!(matches("/srv/{a,b}.log", "/srv/b.log"));
    }
}
