//! The declaration's settings sections: `[root]` (a tmpfs or a btrfs), `[audit]` (ignore
//! globs) and `[net]` (what a shutdown keeps), and the sizes they are given in.

use toml_edit::TableLike;

use super::super::diag::{Diagnostic, Rule};
use super::super::model::{AuditSettings, BtrfsRoot, NetSettings, RootSettings, Span};
use super::{AUDIT_KEYS, MAX_NET_BOOTS, MAX_PREVIOUS_ROOTS, NET_KEYS, Parser, ROOT_KEYS, field};

impl Parser<'_> {
    pub(super) fn root(&mut self, table: &dyn TableLike) -> RootSettings {
        self.check_keys(table, ROOT_KEYS, "`root`");
        let mut root = RootSettings::default();
        if let Some(f) = field(table, "size") {
            if let Some(size) = self.string(&f, "`size`") {
                if valid_size(&size) {
                    root.size = size;
                } else {
                    self.push(
                        Diagnostic::error(Rule::InvalidSize, f.span(), format!("`{size}` is not a tmpfs size"))
                            .with_help("use a share of memory such as \"25%\" or a size such as \"2G\", \"512M\""),
                    );
                }
            }
        }
        if let Some(mode) = field(table, "mode").and_then(|f| self.mode(&f)) {
            root.mode = mode;
        }
        match field(table, "kind") {
            None => self.not_for_tmpfs(table),
            Some(f) => match self.string(&f, "`kind`").as_deref() {
                Some("tmpfs") => self.not_for_tmpfs(table),
                Some("btrfs") => root.btrfs = self.btrfs(table, f.span()),
                Some(other) => self.push(
                    Diagnostic::error(Rule::InvalidRoot, f.span(), format!("`{other}` is not a kind of root"))
                        .with_help("\"tmpfs\" (the default) or \"btrfs\""),
                ),
                // Not a string: said already; the other keys are not judged by it.
                None => {}
            },
        }
        root
    }

    /// The keys a tmpfs root does not take.
    fn not_for_tmpfs(&mut self, table: &dyn TableLike) {
        for key in ["device", "keep"] {
            if let Some(f) = field(table, key) {
                self.push(
                    Diagnostic::error(Rule::InvalidRoot, f.key, format!("`{key}` is a btrfs root's setting"))
                        .with_help("add kind = \"btrfs\", or leave it out for a tmpfs root"),
                );
            }
        }
    }

    /// `kind = "btrfs"`: its `device` (required) and `keep`; `size` is a tmpfs's.
    fn btrfs(&mut self, table: &dyn TableLike, kind: Span) -> Option<BtrfsRoot> {
        if let Some(f) = field(table, "size") {
            self.push(
                Diagnostic::error(Rule::InvalidRoot, f.key, "`size` is a tmpfs root's setting")
                    .with_help("a btrfs root has the room its file system has: leave `size` out"),
            );
        }
        let mut keep = BtrfsRoot::DEFAULT_KEEP;
        if let Some(f) = field(table, "keep") {
            match f.item.as_integer() {
                Some(roots @ 0..=MAX_PREVIOUS_ROOTS) => {
                    keep = u32::try_from(roots).expect("at most MAX_PREVIOUS_ROOTS");
                }
                Some(roots) => self.push(
                    Diagnostic::error(
                        Rule::InvalidRoot,
                        f.span(),
                        format!("`keep = {roots}` is not a number of previous roots"),
                    )
                    .with_help(format!("keep from 0 to {MAX_PREVIOUS_ROOTS} previous roots")),
                ),
                None => self.wrong_type(f.span(), "`keep`", "an integer (previous roots)", f.item.type_name()),
            }
        }
        let Some(f) = field(table, "device") else {
            self.push(
                Diagnostic::error(Rule::InvalidRoot, kind, "a btrfs root needs the `device` of its file system")
                    .with_help("add device = \"LABEL=roots\" (or \"UUID=…\", \"/dev/vdb\")"),
            );
            return None;
        };
        Some(BtrfsRoot { device: self.device(&f)?, keep })
    }

    pub(super) fn audit(&mut self, table: &dyn TableLike) -> AuditSettings {
        self.check_keys(table, AUDIT_KEYS, "`audit`");
        let mut audit = AuditSettings::default();
        let Some(f) = field(table, "ignore") else { return audit };
        for element in self.elements(&f, "`ignore`") {
            let Some(glob) = element.as_str() else {
                self.wrong_type(element.span(), "an ignore glob", "a string", element.type_name());
                continue;
            };
            if !glob.starts_with('/') && !glob.starts_with("**") {
                self.push(
                    Diagnostic::error(
                        Rule::InvalidGlob,
                        element.span(),
                        format!("ignore glob `{glob}` is not anchored"),
                    )
                    .with_help(format!("globs match absolute paths: write \"/{glob}\" or \"**/{glob}\"")),
                );
            } else if let Err(error) = super::super::glob::compile(glob) {
                self.push(Diagnostic::error(
                    Rule::InvalidGlob,
                    element.span(),
                    format!("ignore glob `{glob}`: {error}"),
                ));
            } else {
                audit.ignore.push(glob.to_owned());
            }
        }
        audit
    }

    /// `[net]`: each key left out keeps its conservative default.
    pub(super) fn net(&mut self, table: &dyn TableLike) -> NetSettings {
        self.check_keys(table, NET_KEYS, "`net`");
        let mut net = NetSettings::DEFAULT;
        if let Some(f) = field(table, "keep") {
            match f.item.as_integer() {
                Some(boots @ 1..=MAX_NET_BOOTS) => net.keep = u32::try_from(boots).expect("at most MAX_NET_BOOTS"),
                Some(boots) => self.push(
                    Diagnostic::error(Rule::InvalidNet, f.span(), format!("`keep = {boots}` is not a number of boots"))
                        .with_help(format!("keep from 1 to {MAX_NET_BOOTS} boots; leave out [net] to keep none")),
                ),
                None => self.wrong_type(f.span(), "`keep`", "an integer (boots)", f.item.type_name()),
            }
        }
        if let Some(f) = field(table, "max_size") {
            if let Some(size) = self.string(&f, "`max_size`") {
                match bytes(&size) {
                    Some(max_size) if max_size > 0 => net.max_size = max_size,
                    _ => self.push(
                        Diagnostic::error(Rule::InvalidSize, f.span(), format!("`{size}` is not a size"))
                            .with_help("use a size such as \"2G\", \"512M\" (powers of 1024) or a number of bytes"),
                    ),
                }
            }
        }
        net
    }
}

fn valid_size(size: &str) -> bool {
    if let Some(percent) = size.strip_suffix('%') {
        return percent.parse::<u8>().is_ok_and(|p| (1..=100).contains(&p));
    }
    bytes(size).is_some_and(|n| n > 0)
}

/// A size in bytes: digits, optionally followed by `K`, `M`, `G` or `T` (either case;
/// powers of 1024, as tmpfs reads them).
fn bytes(size: &str) -> Option<u64> {
    let (digits, shift) = match size.as_bytes().last() {
        Some(b'k' | b'K') => (&size[..size.len() - 1], 10),
        Some(b'm' | b'M') => (&size[..size.len() - 1], 20),
        Some(b'g' | b'G') => (&size[..size.len() - 1], 30),
        Some(b't' | b'T') => (&size[..size.len() - 1], 40),
        _ => (size, 0),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse::<u64>().ok()?.checked_mul(1 << shift)
}
