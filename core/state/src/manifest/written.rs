//! The manifest as [`Manifest::to_json`](super::Manifest::to_json) writes it, read
//! without building it: where each entry's path and written form are, and an entry
//! made from its written form when it is asked for. Anything written otherwise (by
//! hand, an older writer, a damaged file) is not this form, and is read by serde as
//! JSON instead; so every form this reader accepts reads as serde would read it.

use super::{EtcKind, ManifestEntry};

/// One string of the written form: the bytes between its quotes, and whether they
/// hold an escape (then only serde decodes them).
#[derive(Clone, Copy)]
struct Token<'a> {
    raw: &'a str,
    escaped: bool,
}

impl Token<'_> {
    fn decoded(self) -> String {
        if self.escaped {
            // Checked to decode when the manifest was read (`Cursor::string`).
            serde_json::from_str(&format!("\"{}\"", self.raw)).expect("a checked JSON string")
        } else {
            self.raw.to_owned()
        }
    }
}

/// Where one entry is in the text: its path, and its written form (`{` to `}`).
#[derive(Debug, Clone)]
pub(super) struct Located {
    /// The path as written, or decoded when it holds an escape.
    pub path: Place,
    /// Where the entry's line starts (the indent before its path).
    pub line: u32,
    pub start: u32,
    pub end: u32,
}

#[derive(Debug, Clone)]
pub(super) enum Place {
    InText { start: u32, end: u32 },
    Decoded(Box<str>),
}

/// The entries of a manifest in the written form, in path order, or `None` when the
/// text is not that form (or not in strictly increasing path order, or longer than
/// 4 GiB, which the offsets cannot say). Every entry's form is checked here, so that
/// [`entry`] cannot fail on it later.
pub(super) fn locate(text: &str) -> Option<(u32, Vec<Located>)> {
    u32::try_from(text.len()).ok()?;
    let mut cursor = Cursor { text, at: 0 };
    cursor.literal("{\n  \"version\": ")?;
    let version = cursor.number()?;
    cursor.literal(",\n  \"entries\": {")?;
    let mut entries = Vec::new();
    if cursor.literal("}\n}").is_none() {
        cursor.literal("\n")?;
        loop {
            cursor.entry(&mut entries)?;
            if cursor.literal(",\n").is_none() {
                cursor.literal("\n  }\n}")?;
                break;
            }
        }
    }
    // A final newline (a file someone saved again) is the same manifest.
    let _ = cursor.literal("\n");
    (cursor.at == text.len()).then_some((version, entries))
}

/// The entries of `text`, a run of whole entries cut from a manifest in the written
/// form (from the first one's line to the last one's `}`), checked as [`locate`]
/// checks them; `None` if it is not such a run.
pub(super) fn locate_run(text: &str) -> Option<Vec<Located>> {
    u32::try_from(text.len()).ok()?;
    let mut cursor = Cursor { text, at: 0 };
    let mut entries = Vec::new();
    loop {
        cursor.entry(&mut entries)?;
        if cursor.at == text.len() {
            return Some(entries);
        }
        cursor.literal(",\n")?;
    }
}

/// The path `place` says, in `text`.
pub(super) fn path<'a>(text: &'a str, place: &'a Place) -> &'a str {
    match place {
        Place::InText { start, end } => &text[*start as usize..*end as usize],
        Place::Decoded(decoded) => decoded,
    }
}

/// The written form of `located` in `text`: equal forms are equal entries.
pub(super) fn form<'a>(text: &'a str, located: &Located) -> &'a str {
    &text[located.start as usize..located.end as usize]
}

/// The entry `located` holds; its form was checked by [`locate`].
pub(super) fn entry(text: &str, located: &Located) -> ManifestEntry {
    let mut cursor = Cursor { text, at: located.start as usize };
    let fields = cursor.fields().expect("an entry checked when the manifest was read");
    let owned = |token: Option<Token<'_>>| token.map(Token::decoded);
    let kind = match fields.kind.raw {
        "link" => EtcKind::Link,
        "copy" => EtcKind::Copy,
        "directory" => EtcKind::Directory,
        _ => EtcKind::DirectLink { target: owned(fields.target).unwrap_or_default() },
    };
    ManifestEntry {
        kind,
        hash: owned(fields.hash).unwrap_or_default(),
        mode: owned(fields.mode),
        user: fields.user.decoded(),
        group: fields.group.decoded(),
    }
}

/// Whether the written form `form` is of a copy or a directory ([`ManifestEntry::is_owned`]),
/// read from its kind alone: [`locate`] checked that every form starts with it.
pub(super) fn is_owned(form: &str) -> bool {
    let kind = form.strip_prefix("{\n      \"kind\": \"").expect("an entry checked when the manifest was read");
    kind.starts_with("copy\"") || kind.starts_with("directory\"")
}

fn as_u32(offset: usize) -> u32 {
    u32::try_from(offset).expect("the text was checked to be shorter than 4 GiB")
}

/// The fields of one entry as written.
struct Fields<'a> {
    kind: Token<'a>,
    target: Option<Token<'a>>,
    hash: Option<Token<'a>>,
    mode: Option<Token<'a>>,
    user: Token<'a>,
    group: Token<'a>,
}

/// The names of an entry's fields in the order they are written.
const FIELDS: [&str; 6] = ["kind", "target", "hash", "mode", "user", "group"];

struct Cursor<'a> {
    text: &'a str,
    at: usize,
}

impl<'a> Cursor<'a> {
    /// One entry, `    "path": {…}`, pushed onto `entries` if its path comes after the
    /// last one's.
    fn entry(&mut self, entries: &mut Vec<Located>) -> Option<()> {
        let line = self.at;
        self.literal("    ")?;
        let (start, token) = self.string()?;
        let place = if token.escaped {
            Place::Decoded(token.decoded().into_boxed_str())
        } else {
            Place::InText { start: as_u32(start), end: as_u32(start + token.raw.len()) }
        };
        if entries.last().is_some_and(|last: &Located| path(self.text, &last.path) >= path(self.text, &place)) {
            return None;
        }
        self.literal(": ")?;
        let start = self.at;
        self.fields()?;
        entries.push(Located { path: place, line: as_u32(line), start: as_u32(start), end: as_u32(self.at) });
        Some(())
    }

    /// Steps over `literal` if the text goes on with it.
    fn literal(&mut self, literal: &str) -> Option<()> {
        self.text[self.at..].starts_with(literal).then(|| self.at += literal.len())
    }

    /// A version number: digits, no sign or leading zero.
    fn number(&mut self) -> Option<u32> {
        let digits = self.text[self.at..].bytes().take_while(u8::is_ascii_digit).count();
        let number = &self.text[self.at..self.at + digits];
        if number.is_empty() || (number.len() > 1 && number.starts_with('0')) {
            return None;
        }
        self.at += digits;
        number.parse().ok()
    }

    /// A string: where its contents start, and them. One with an escape is decoded
    /// here once, to be sure it decodes.
    fn string(&mut self) -> Option<(usize, Token<'a>)> {
        self.literal("\"")?;
        let start = self.at;
        let bytes = self.text.as_bytes();
        let mut escaped = false;
        // One pass: the closing quote, escapes, and no control character (JSON has
        // none in a string; serde refuses them).
        let mut at = start;
        loop {
            // Eight bytes at a time while none of them can end the scan: most of a
            // manifest is strings (paths, targets, hashes) with nothing to look at.
            while let Some(word) = bytes.get(at..at + 8).and_then(|eight| <[u8; 8]>::try_from(eight).ok()) {
                if may_stop(u64::from_le_bytes(word)) {
                    break;
                }
                at += 8;
            }
            match *bytes.get(at)? {
                b'"' => break,
                // What follows a backslash is part of the string, even a quote.
                b'\\' => {
                    escaped = true;
                    at += 2;
                }
                byte if byte < 0x20 => return None,
                _ => at += 1,
            }
        }
        self.at = at + 1;
        let raw = self.text.get(start..at)?;
        let token = Token { raw, escaped };
        if escaped && serde_json::from_str::<String>(&self.text[start - 1..self.at]).is_err() {
            return None;
        }
        Some((start, token))
    }

    /// An entry's fields, `{` to `}`, each named once and in the order written.
    fn fields(&mut self) -> Option<Fields<'a>> {
        self.literal("{\n")?;
        let mut found: [Option<Token<'a>>; 6] = [None; 6];
        let mut next = 0;
        loop {
            self.literal("      \"")?;
            let index = next + FIELDS[next..].iter().position(|name| self.literal(name).is_some())?;
            self.literal("\": ")?;
            found[index] = Some(self.string()?.1);
            next = index + 1;
            if self.literal(",\n").is_none() {
                self.literal("\n    }")?;
                break;
            }
            if next == FIELDS.len() {
                return None;
            }
        }
        let [kind, target, hash, mode, user, group] = found;
        let kind = kind?;
        // A target is written for a direct link, and only for one.
        if (kind.raw == "direct-link") != target.is_some()
            || !["link", "direct-link", "copy", "directory"].contains(&kind.raw)
        {
            return None;
        }
        Some(Fields { kind, target, hash, mode, user: user?, group: group? })
    }
}

/// Whether any of the eight bytes of `word` is a quote, a backslash or a control
/// character (below 0x20): what a string's scan must stop at. Never false when one is
/// (the lowest such byte is always caught: no borrow reaches it from below); it may be
/// true when none is, and the scan then looks at the bytes one by one.
fn may_stop(word: u64) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH_BITS: u64 = 0x8080_8080_8080_8080;
    // Bytes below `limit` (at most 0x80), each marked by its high bit.
    let below = |word: u64, limit: u8| word.wrapping_sub(ONES * u64::from(limit)) & !word & HIGH_BITS;
    let zero = |word: u64| below(word, 1);
    (zero(word ^ (ONES * u64::from(b'"'))) | zero(word ^ (ONES * u64::from(b'\\'))) | below(word, 0x20)) != 0
}

#[cfg(test)]
mod tests {
    use super::super::{Entries, EtcKind, Manifest, ManifestEntry};
    use super::may_stop;

    /// The eight-byte test never misses a byte a string's scan stops at: every byte
    /// value at every place among bytes that borrow or sit at the edges, and a million
    /// random words (from a fixed seed), against the test of each byte.
    #[test]
    fn eight_bytes_at_a_time_never_miss_a_stop() {
        let stops = |word: [u8; 8]| word.iter().any(|&b| b == b'"' || b == b'\\' || b < 0x20);
        for filler in [0x00, 0x01, 0x1f, 0x20, 0x21, 0x22, 0x23, 0x5b, 0x5c, 0x5d, 0x7f, 0x80, 0xa2, 0xdc, 0xff] {
            for place in 0..8 {
                for byte in 0..=255u8 {
                    let mut word = [filler; 8];
                    word[place] = byte;
                    if stops(word) {
                        assert!(may_stop(u64::from_le_bytes(word)), "{word:02x?}");
                    }
                }
            }
        }
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        for _ in 0..1_000_000 {
            // xorshift64: bytes of every value; about two words in three hold a stop.
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let word = state.to_le_bytes();
            assert!(may_stop(state) || !stops(word), "{word:02x?}");
        }
        // And it lets plain text through, eight bytes at a time.
        for plain in [b"ssl/cert", b"/etc/sta", b"0123abcd", b"\xc3\xbcn\xc3\xafcod"] {
            assert!(!may_stop(u64::from_le_bytes(*plain)), "{plain:?}");
        }
    }
    use crate::diff::etc_changes;

    fn entry(kind: EtcKind, hash: &str, mode: Option<&str>, user: &str) -> ManifestEntry {
        ManifestEntry { kind, hash: hash.into(), mode: mode.map(Into::into), user: user.into(), group: "root".into() }
    }

    /// Every kind, a directory with no hash, a copy with no mode, and paths and values
    /// that need escapes (a quote, a backslash, a newline, a tab, a control character)
    /// or none (non-ASCII is written as it is).
    fn varied() -> Manifest {
        let mut manifest = Manifest::new();
        for (path, entry) in [
            ("hosts", entry(EtcKind::Link, "ab12", None, "root")),
            (
                "os-release",
                entry(EtcKind::DirectLink { target: "../usr/lib/\"os\"\\release".into() }, "cd", None, "+0"),
            ),
            ("sudoers", entry(EtcKind::Copy, "ef56", Some("0440"), "root")),
            ("ssl/private", ManifestEntry::directory("0710".into(), "root".into(), "+110".into())),
            ("plain", entry(EtcKind::Copy, "01", None, "us\ter")),
            ("quote\"d\\name", entry(EtcKind::Link, "", None, "root")),
            ("new\nline\u{1}", entry(EtcKind::Link, "02", None, "root")),
            ("ünïcode/ファイル", entry(EtcKind::Link, "03", None, "root")),
            // Written `a\"b`, after `a#`; read `a"b`, before it: the order is the read one.
            ("a\"b", entry(EtcKind::Link, "04", None, "root")),
            ("a#", entry(EtcKind::Link, "05", None, "root")),
        ] {
            manifest.entries.insert(path.into(), entry);
        }
        manifest
    }

    fn is_written(entries: &Entries) -> bool {
        entries.each().next().is_some_and(|lazy| lazy.form.is_some())
    }

    #[test]
    fn what_to_json_writes_reads_unbuilt_and_as_serde_reads_it() {
        for manifest in [varied(), Manifest::new()] {
            let text = manifest.to_json();
            let read = Manifest::from_json(text.as_bytes()).unwrap();
            assert!(manifest.entries.is_empty() || is_written(&read.entries), "{text}");
            assert_eq!(read, manifest);
            assert_eq!(read, serde_json::from_str::<Manifest>(&text).unwrap());
            // Each entry asked for alone, and the paths around them.
            for (path, entry) in manifest.entries.iter() {
                assert_eq!(read.entries.get(path), Some(entry), "{path}");
            }
            // Whether it is a copy or a directory, told from its kind before it is made.
            for (lazy, built) in read.entries.each().zip(manifest.entries.each()) {
                assert_eq!((lazy.path, lazy.is_owned()), (built.path, built.entry().is_owned()));
            }
            let below = |dir: &str| read.entries.has_below(dir);
            assert_eq!(
                (below("ssl"), below("ss"), read.entries.contains_key("ssl")),
                (!manifest.entries.is_empty(), false, false)
            );
            assert_eq!(read.to_json(), text);
            // Saved again with a final newline, it is the same manifest.
            assert_eq!(Manifest::from_json(format!("{text}\n")).unwrap(), manifest);
        }
    }

    /// Anything else is read by serde whole, so it reads (or fails) as it did.
    #[test]
    fn other_forms_read_as_serde_reads_them() {
        let text = varied().to_json();
        let compact = serde_json::to_string(&varied()).unwrap();
        let reordered = text.replacen(
            "\"kind\": \"link\",\n      \"hash\": \"ab12\"",
            "\"hash\": \"ab12\",\n      \"kind\": \"link\"",
            1,
        );
        let unsorted = r#"{
  "version": 1,
  "entries": {
    "b": {
      "kind": "link",
      "user": "root",
      "group": "root"
    },
    "a": {
      "kind": "link",
      "user": "root",
      "group": "root"
    }
  }
}"#;
        let twice = unsorted.replace("\"a\"", "\"b\"");
        for other in [compact.as_str(), &reordered, unsorted, &twice] {
            let read = Manifest::from_json(other.as_bytes()).unwrap();
            assert!(!is_written(&read.entries), "{other}");
            assert_eq!(read, serde_json::from_str::<Manifest>(other).unwrap());
        }
        assert_eq!(Manifest::from_json(twice.as_bytes()).unwrap().entries.len(), 1);
        for broken in [
            text.replace("\"kind\": \"copy\"", "\"kind\": \"fifo\""),
            text.replace(
                "      \"user\": \"root\",\n      \"group\": \"root\"\n    },\n    \"ssl",
                "      \"user\": \"root\"\n    },\n    \"ssl",
            ),
            text.replace("\\\"os\\\"", "\\q"),
            format!("{text} x"),
            text[..text.len() - 3].to_owned(),
        ] {
            let ours = Manifest::from_json(broken.as_bytes()).unwrap_err().to_string();
            assert_eq!(ours, serde_json::from_str::<Manifest>(&broken).unwrap_err().to_string(), "{broken}");
        }
    }

    /// The diff of two read manifests is the diff of the same manifests built.
    #[test]
    fn changes_between_read_manifests_are_those_between_built_ones() {
        let old = varied();
        let mut new = varied();
        new.entries.insert("sudoers".into(), entry(EtcKind::Copy, "ef56", Some("0400"), "root"));
        new.entries.insert("added".into(), entry(EtcKind::Link, "aa", None, "root"));
        let mut entries: Vec<_> = new.entries.iter().map(|(p, e)| (p.to_owned(), e.clone())).collect();
        entries.retain(|(path, _)| path != "hosts");
        new.entries = entries.into_iter().collect();
        let (old_read, new_read) =
            (Manifest::from_json(old.to_json()).unwrap(), Manifest::from_json(new.to_json()).unwrap());
        let built: Vec<_> = etc_changes(&old, &new).collect();
        let read: Vec<_> = etc_changes(&old_read, &new_read).collect();
        assert_eq!(read, built);
        let paths: Vec<&str> = read.iter().map(|change| change.path).collect();
        assert_eq!(paths, ["added", "hosts", "sudoers"]);
    }
}
