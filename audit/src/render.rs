//! The report's forms: human text (grouped by class, sized, coloured on request),
//! the versioned JSON document, Prometheus text, and declaration lines to paste.
//!
//! # JSON (`"schema": 1`)
//!
//! ```text
//! {
//!   "schema": 1,
//!   "root": "/",                    the audited root
//!   "generation": 3,                the generation audited against (null: none)
//!   "exit_code": 1,
//!   "summary": {                    per class, every finding (listed or not)
//!     "undeclared":    { "count": groups, "files": n, "bytes": n },
//!     "etc-stray", "persist-stray", "etc-drift", "package-missing", "persist",
//!     "volume", "fallback", "error": the same,
//!     "ignored":       { "count": entries, "files": n, "bytes": n }
//!   },
//!   "findings": [                   by class, largest first, then by path
//!     { "class": "undeclared", "kind": "directory", "path": "/var/lib/foo",
//!       "files": 10, "bytes": 4096, "reason": "" },
//!     { "class": "package-missing", "kind": "missing", "path": "/etc/pam.d/atd",
//!       "files": 0, "bytes": 0, "reason": "a conffile of package atd, …",
//!       "packages": ["atd"] }    only where dpkg names the path's packages
//!   ],
//!   "stats": { "entries", "stats", "declared", "mounts_skipped", "vanished" },
//!   "declaration": "…",             the audited generation's store hash (null: none)
//!   "generations": { "booted": n, "active": n, "default": n },   (null: unknown)
//!   "time": { "started": seconds since the epoch, "duration_seconds": s }
//! }
//! ```
//!
//! `path` is the path as UTF-8; a path that is not valid UTF-8 has it lossily
//! converted and also `path_hex`, its exact bytes in hexadecimal. Classes and kinds
//! are listed in the crate documentation; new fields may be added within schema 1,
//! never removed or changed in meaning.

use std::fmt::Write as _;

use blankslate_decl::Declaration;
use serde_json::{Value, json};

use crate::{Class, Finding, FindingKind, Report, SCHEMA};

/// Whether `c` changes the direction of the text around it (Unicode's `Bidi_Control`:
/// U+061C, U+200E, U+200F, U+202A–U+202E, U+2066–U+2069): a name holding U+202E
/// shows what follows it reversed.
fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{061c}' | '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// A path (or a reason naming one) for people: UTF-8 as is, `\n`, `\t`, `\\`, `\xNN`
/// for the other ASCII controls (DEL too) and for bytes that are not UTF-8, and
/// `\u{NNNN}` for C1 controls and bidi controls. A user's file name can so neither
/// start a line of its own in a report nor reorder the text around it, and no two
/// names print alike.
pub fn escape(path: &[u8]) -> String {
    let mut out = String::with_capacity(path.len());
    for chunk in path.utf8_chunks() {
        for c in chunk.valid().chars() {
            match c {
                '\n' => out.push_str("\\n"),
                '\t' => out.push_str("\\t"),
                '\\' => out.push_str("\\\\"),
                c if c.is_ascii_control() => {
                    let _ = write!(out, "\\x{:02x}", u32::from(c));
                }
                c if c.is_control() || is_bidi_control(c) => {
                    let _ = write!(out, "\\u{{{:04x}}}", u32::from(c));
                }
                c => out.push(c),
            }
        }
        for byte in chunk.invalid() {
            let _ = write!(out, "\\x{byte:02x}");
        }
    }
    out
}

/// `512 B`, `4.0 KiB`, `1.2 GiB`.
pub fn size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    #[allow(clippy::cast_precision_loss)]
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

pub(crate) fn plural(n: u64, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

pub(crate) fn title(class: Class) -> (&'static str, &'static str, &'static str) {
    // (heading, what it means, colour)
    match class {
        Class::Undeclared => ("undeclared", "lost at the next reboot", "1;33"),
        Class::EtcStray => ("/etc strays", "in /etc, managed by nothing: lost at the next reboot", "1;33"),
        Class::PersistStray => ("persist strays", "in a volume, declared by nothing; kept, never deleted", "1;36"),
        Class::EtcDrift => ("/etc drift", "managed entries that are not what the generation put there", "1;31"),
        Class::PackageMissing => {
            ("package files missing", "dpkg says installed, gone from /etc: reinstall, then keep them", "1;31")
        }
        Class::Persist => ("persistence", "persisted paths that are not as declared", "1;31"),
        Class::Volume => ("persistent volumes", "not mounted: what is persisted there is not kept as declared", "1;31"),
        Class::Fallback => ("fallbacks", "another generation runs than the one asked for", "1;31"),
        Class::Error => ("errors", "the audit is incomplete", "1;35"),
    }
}

pub(crate) fn verdict(report: &Report, code: u8) -> &'static str {
    match code {
        0 => "clean: everything on the root is declared",
        1 => "undeclared state",
        2 if report.total(Class::Fallback).count > 0 => "a fallback to another generation, drift or broken persistence",
        2 if report.total(Class::PackageMissing).count > 0 => "packages' files missing, drift or broken persistence",
        2 => "drift or broken persistence",
        _ => "incomplete: parts of the root could not be read",
    }
}

/// The human report. `root` is how the root is named in the heading.
pub fn human(report: &Report, root: &str, color: bool) -> String {
    let paint = |code: &str, text: &str| if color { format!("\x1b[{code}m{text}\x1b[0m") } else { text.to_owned() };
    let mut out = String::new();
    let against = report.generation.map_or_else(|| "no generation".to_owned(), |g| format!("generation {g}"));
    let _ = writeln!(out, "blankslate audit of {root} against {against}");
    for class in Class::ALL {
        let total = report.total(class);
        if total.count == 0 {
            continue;
        }
        let (heading, meaning, paint_code) = title(class);
        let mut counts = plural(total.count, "finding", "findings");
        if total.files > 0 || matches!(class, Class::Undeclared | Class::EtcStray | Class::PersistStray) {
            let _ = write!(counts, ", {}, {}", plural(total.files, "file", "files"), size(total.bytes));
        }
        let _ = writeln!(out, "\n{} ({meaning}): {counts}", paint(paint_code, heading));
        let listed: Vec<&Finding> = report.findings.iter().filter(|f| f.class == class).collect();
        for finding in &listed {
            let path = escape(&finding.path);
            let line = match class {
                Class::Undeclared | Class::EtcStray | Class::PersistStray => {
                    let files = plural(finding.files, "file", "files");
                    let reason = if finding.reason.is_empty() {
                        String::new()
                    } else {
                        format!("  ({})", escape(finding.reason.as_bytes()))
                    };
                    format!("  {:>10}  {files:>10}  {:<9}  {path}{reason}", size(finding.bytes), finding.kind)
                }
                _ => format!("  {:<16}  {path}: {}", finding.kind, escape(finding.reason.as_bytes())),
            };
            let _ = writeln!(out, "{}", line.trim_end());
        }
        let hidden = total.count.saturating_sub(listed.len() as u64);
        if hidden > 0 {
            let _ = writeln!(out, "  … and {hidden} smaller (raise --limit to list them)");
        }
    }
    let ignored = report.ignored;
    if ignored.count > 0 {
        let _ = writeln!(
            out,
            "\nignored (regenerated at boot, or [audit] ignore): {}, {}",
            plural(ignored.files, "file", "files"),
            size(ignored.bytes)
        );
    }
    if let Some(net) = report.net {
        let _ = writeln!(
            out,
            "\nnet (what earlier boots erased, kept on the volume: `blankslate net list`): {}, {}, {}",
            plural(net.count, "boot", "boots"),
            plural(net.files, "file", "files"),
            size(net.bytes)
        );
    }
    if let Some(keep) = report.previous_roots {
        let _ = writeln!(
            out,
            "\nprevious roots (a btrfs root keeps up to {}, on its own file system, not sized here: `blankslate net \
             list`)",
            plural(u64::from(keep), "root", "roots"),
        );
    }
    let code = report.exit_code();
    let verdict = paint(if code == 0 { "1;32" } else { "1" }, verdict(report, code));
    let _ = writeln!(out, "\nresult: {verdict} (exit {code})");
    out
}

fn path_json(path: &[u8]) -> (Value, Option<Value>) {
    if let Ok(text) = std::str::from_utf8(path) {
        return (Value::from(text), None);
    }
    let hex = path.iter().fold(String::new(), |mut hex, b| {
        let _ = write!(hex, "{b:02x}");
        hex
    });
    (Value::from(String::from_utf8_lossy(path).into_owned()), Some(Value::from(hex)))
}

/// The `--json` document (schema 1).
pub fn json(report: &Report, root: &str) -> Value {
    let mut summary = serde_json::Map::new();
    for class in Class::ALL {
        let t = report.total(class);
        summary.insert(class.key().into(), json!({ "count": t.count, "files": t.files, "bytes": t.bytes }));
    }
    let i = report.ignored;
    summary.insert("ignored".into(), json!({ "count": i.count, "files": i.files, "bytes": i.bytes }));
    let findings: Vec<Value> = report
        .findings
        .iter()
        .map(|f| {
            let (path, hex) = path_json(&f.path);
            let mut item = json!({
                "class": f.class.key(), "kind": f.kind.as_str(), "path": path, "files": f.files, "bytes": f.bytes,
                "reason": f.reason,
            });
            if let Some(hex) = hex {
                item["path_hex"] = hex;
            }
            if !f.packages.is_empty() {
                item["packages"] = json!(f.packages);
            }
            item
        })
        .collect();
    let s = report.stats;
    let g = &report.generations;
    let mut document = json!({
        "schema": SCHEMA,
        "root": root,
        "generation": report.generation,
        "exit_code": report.exit_code(),
        "summary": summary,
        "findings": findings,
        "stats": {
            "entries": s.entries, "stats": s.stats, "declared": s.declared, "max_open": s.max_open,
            "mounts_skipped": s.mounts_skipped, "vanished": s.vanished,
        },
        "declaration": g.declaration,
        "generations": { "booted": g.booted, "active": g.active, "default": g.default },
        "time": { "started": report.started.map(unix_seconds), "duration_seconds": report.duration.as_secs_f64() },
    });
    if let Some(net) = report.net {
        document["net"] = json!({ "catches": net.count, "files": net.files, "bytes": net.bytes });
    }
    if let Some(keep) = report.previous_roots {
        document["previous_roots"] = json!({ "keep": keep, "sized": false });
    }
    document
}

fn unix_seconds(time: std::time::SystemTime) -> f64 {
    time.duration_since(std::time::UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64())
}

/// A label value in the exposition format: `\`, `"` and newlines escaped.
fn label(value: &str) -> String {
    value.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

/// A Prometheus metric: name, help, and its value from a tally.
type Metric = (&'static str, &'static str, fn(crate::Tally) -> u64);

/// Prometheus text exposition (for `node_exporter`'s textfile collector; no sample
/// timestamps, which it refuses). The names and labels are a stable interface,
/// listed in the README: metrics may be added, never renamed or changed in meaning.
pub fn prometheus(report: &Report) -> String {
    let mut out = String::new();
    let mut gauge = |name: &str, help: &str, samples: &[(String, String)]| {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge");
        for (labels, value) in samples {
            let _ = writeln!(out, "{name}{labels} {value}");
        }
    };
    let g = &report.generations;
    if let Some(generation) = report.generation {
        let labels = format!(
            "{{generation=\"{generation}\",declaration=\"{}\",version=\"{}\"}}",
            label(g.declaration.as_deref().unwrap_or_default()),
            env!("CARGO_PKG_VERSION")
        );
        gauge(
            "blankslate_info",
            "The generation audited, its declaration's hash and the version (always 1).",
            &[(labels, "1".into())],
        );
    }
    let metrics: [Metric; 3] = [
        ("blankslate_audit_findings", "Findings of the last audit, by class.", |t| t.count),
        ("blankslate_audit_files", "Files in the findings of the last audit, by class.", |t| t.files),
        ("blankslate_audit_bytes", "Bytes in the findings of the last audit, by class.", |t| t.bytes),
    ];
    for (name, help, value) in metrics {
        let mut samples: Vec<(String, String)> = Class::ALL
            .into_iter()
            .map(|class| (format!("{{class=\"{}\"}}", class.key()), value(report.total(class)).to_string()))
            .collect();
        samples.push(("{class=\"ignored\"}".into(), value(report.ignored).to_string()));
        gauge(name, help, &samples);
    }
    let one = |value: String| [(String::new(), value)];
    gauge("blankslate_audit_exit_code", "The exit code of the last audit.", &one(report.exit_code().to_string()));
    if let Some(generation) = report.generation {
        gauge("blankslate_audit_generation", "The generation audited against.", &one(generation.to_string()));
    }
    if let Some(started) = report.started {
        let finished = unix_seconds(started + report.duration);
        gauge(
            "blankslate_audit_timestamp_seconds",
            "When the last audit finished, in seconds since the epoch.",
            &one(format!("{finished:.3}")),
        );
    }
    let duration = format!("{:.6}", report.duration.as_secs_f64());
    gauge("blankslate_audit_duration_seconds", "How long the last audit took.", &one(duration));
    let generations = [
        ("blankslate_generation_booted", "The generation this boot started with.", g.booted),
        ("blankslate_generation_active", "The generation /etc is activated to.", g.active),
        ("blankslate_generation_default", "The generation the next boot uses.", g.default),
    ];
    for (name, help, number) in generations {
        if let Some(number) = number {
            gauge(name, help, &one(number.to_string()));
        }
    }
    let net = report.net.unwrap_or_default();
    gauge(
        "blankslate_net_catches",
        "Boots whose erased state the net keeps (0 without a net).",
        &one(net.count.to_string()),
    );
    gauge("blankslate_net_bytes", "Bytes the net takes on the volume.", &one(net.bytes.to_string()));
    out
}

/// A TOML basic string.
fn toml_string(text: &str) -> String {
    let mut out = String::from("\"");
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() || is_bidi_control(c) => {
                let _ = write!(out, "\\u{:04X}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Ready-to-paste declaration lines for the undeclared groups and `/etc` strays:
/// entries for the store's volume (the root without a `device`; else the first, or
/// `/persist`), and the `[audit] ignore` alternative.
pub fn suggest(report: &Report, declaration: &Declaration) -> String {
    let store = declaration.persist.iter().find(|(_, root)| root.volume.is_none()).map(|(mount, _)| mount);
    let volume = store.or(declaration.persist.keys().next()).map_or("/persist", String::as_str);
    let (mut directories, mut files, mut ignore, mut skipped) =
        (String::new(), String::new(), String::new(), String::new());
    for finding in report.findings.iter().filter(|f| matches!(f.class, Class::Undeclared | Class::EtcStray)) {
        let Ok(path) = std::str::from_utf8(&finding.path) else {
            let _ = writeln!(skipped, "# {}: not UTF-8, cannot be declared (rename it)", escape(&finding.path));
            continue;
        };
        let note = format!("# {}, {}", plural(finding.files, "file", "files"), size(finding.bytes));
        match finding.kind {
            FindingKind::Directory => {
                let _ = writeln!(directories, "  {},  {note}", toml_string(path));
                let _ = writeln!(ignore, "  {},", toml_string(&format!("{path}/**")));
            }
            FindingKind::File | FindingKind::Symlink => {
                let _ = writeln!(files, "  {},  {note}", toml_string(path));
                let _ = writeln!(ignore, "  {},", toml_string(path));
            }
            kind => {
                let _ =
                    writeln!(skipped, "# {}: a {kind}, made at run time: cannot be persisted", escape(&finding.path));
                let _ = writeln!(ignore, "  {},", toml_string(path));
            }
        }
    }
    if directories.is_empty() && files.is_empty() && ignore.is_empty() {
        return "# nothing undeclared: nothing to suggest\n".to_owned();
    }
    let mut out = String::new();
    if declaration.persist.contains_key(volume) {
        let _ = writeln!(out, "# Persist what must survive a reboot: add to [persist.{}]", toml_string(volume));
    } else {
        let _ = writeln!(out, "# Persist what must survive a reboot:\n[persist.{}]", toml_string(volume));
    }
    if !directories.is_empty() {
        let _ = write!(out, "directories = [\n{directories}]\n");
    }
    if !files.is_empty() {
        let _ = write!(out, "files = [\n{files}]\n");
    }
    out.push_str(&skipped);
    if !ignore.is_empty() {
        let _ =
            write!(out, "\n# Or stop reporting what is regenerated anyway: add to [audit]\nignore = [\n{ignore}]\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostile_names_are_escaped() {
        assert_eq!(escape(b"/a\nb/\xff\xfe/c\\d\x01\x7f"), "/a\\nb/\\xff\\xfe/c\\\\d\\x01\\x7f");
        assert_eq!(escape("/ünï".as_bytes()), "/ünï");
        // Reversed text, isolates, marks: shown, never obeyed.
        assert_eq!(escape("/x\u{202e}gpj.exe".as_bytes()), "/x\\u{202e}gpj.exe");
        assert_eq!(escape("\u{2066}\u{2069}\u{200f}\u{061c}".as_bytes()), "\\u{2066}\\u{2069}\\u{200f}\\u{061c}");
        // A C1 control and the byte of the same number are told apart.
        assert_eq!(escape("\u{85}".as_bytes()), "\\u{0085}");
        assert_eq!(escape(b"\x85"), "\\x85");
        assert_eq!(toml_string("a\u{202e}b"), "\"a\\u202Eb\"");
    }

    #[test]
    fn a_reason_cannot_forge_a_line_of_the_report() {
        let mut report = Report::default();
        let reason = "links to /x\nundeclared  /fake\u{202e}, not /persist/x".to_owned();
        report.push(Finding::new(Class::Persist, FindingKind::PointsElsewhere, b"/home/u/x".to_vec(), reason));
        report.push(Finding::new(Class::Undeclared, FindingKind::File, "/srv/a\u{202e}b\nc".into(), "why\n".into()));
        let human = human(&report, "/", false);
        assert!(human.contains("/home/u/x: links to /x\\nundeclared  /fake\\u{202e}, not /persist/x\n"), "{human}");
        assert!(human.contains("/srv/a\\u{202e}b\\nc  (why\\n)\n"), "{human}");
        assert!(!human.contains('\u{202e}'), "{human}");
    }

    #[test]
    fn json_carries_a_name_that_is_not_utf8_exactly() {
        let mut report = Report::default();
        report.push(Finding::new(Class::Undeclared, FindingKind::File, b"/srv/\xff\xfe".to_vec(), String::new()));
        report.push(Finding::new(Class::Undeclared, FindingKind::File, "/srv/\u{fffd}\u{fffd}".into(), String::new()));
        let json = json(&report, "/");
        let findings = json["findings"].as_array().unwrap();
        // The two look alike as lossy text; `path_hex` tells them apart.
        assert_eq!(findings[0]["path"], findings[1]["path"]);
        assert_eq!(findings[0]["path_hex"], "2f7372762ffffe");
        assert!(findings[1].get("path_hex").is_none(), "{json}");
    }

    #[test]
    fn sizes_read_well() {
        assert_eq!(size(0), "0 B");
        assert_eq!(size(1023), "1023 B");
        assert_eq!(size(1536), "1.5 KiB");
        assert_eq!(size(3 << 30), "3.0 GiB");
    }

    #[test]
    fn suggestions_go_to_the_store_volume_not_another_disk() {
        let text = "version = 1\n[persist.\"/persist\"]\n[persist.\"/data\"]\ndevice = \"LABEL=data\"\n";
        let declaration = blankslate_decl::check(std::path::Path::new("t.toml"), text, None).declaration.unwrap();
        let mut report = Report::default();
        report.push(Finding::new(Class::Undeclared, FindingKind::Directory, b"/srv/app".to_vec(), String::new()));
        let suggested = suggest(&report, &declaration);
        assert!(suggested.contains("add to [persist.\"/persist\"]"), "{suggested}");
        assert!(suggested.contains("\"/srv/app\""), "{suggested}");
    }

    #[test]
    fn toml_strings_escape() {
        assert_eq!(toml_string("/a\"b\\c\nd"), "\"/a\\\"b\\\\c\\nd\"");
    }
}
