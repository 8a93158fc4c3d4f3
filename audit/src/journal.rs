//! `audit --journal`: every listed finding, and a summary, as a structured journald
//! record, for log pipelines (Loki, Vector, Elastic) to take from the journal.
//!
//! Records go to journald's native protocol socket ([`SOCKET`]) as one datagram each,
//! written here (the binary is static: no libsystemd). A datagram is a list of
//! fields: `KEY=value\n` when the value holds no newline, else `KEY\n`, the value's
//! length as 64-bit little-endian, the value, `\n`. Values may be any bytes (a path
//! that is not UTF-8 arrives as it is).
//!
//! Each class has its own fixed `MESSAGE_ID` ([`message_id`]), as does the summary
//! ([`SUMMARY_ID`]): select with `journalctl MESSAGE_ID=…`. The fields are a stable
//! interface, listed in the README: fields may be added, never renamed or changed in
//! meaning.

use std::io;
use std::os::unix::net::UnixDatagram;
use std::path::Path;

use crate::render::{escape, plural, size, title, verdict};
use crate::{Class, Finding, Report};

/// Where journald listens for native records.
pub const SOCKET: &str = "/run/systemd/journal/socket";

/// The `MESSAGE_ID` of the summary record every audit sends.
pub const SUMMARY_ID: &str = "e050e86ea2fb41f5849b4201d338aa92";

/// The `MESSAGE_ID` of a class's findings (128-bit ids, fixed forever).
pub fn message_id(class: Class) -> &'static str {
    match class {
        Class::Undeclared => "c5da81f4adb642b1a72cdd6805b2f9f1",
        Class::EtcStray => "9670a7a43a924aebb2d5d459dd9e3dc0",
        Class::PersistStray => "30bdb159dca44b2d977eb3ce0f3a3760",
        Class::EtcDrift => "9a32b0bef94c4d949cbd3ac0a97bc033",
        Class::PackageMissing => "273f49abba717514c243ab4bacb46e9d",
        Class::Persist => "3e4c925849fd44e1aeb91de3a05f3d75",
        Class::Volume => "b87920c101584f5a963bf74719e7781e",
        Class::Fallback => "cdd9f2d896b7461392708d6fd5e39274",
        Class::Error => "97f597ca697d4149878a27ece9671172",
    }
}

/// syslog priority: notice for state nothing declares, warning for drift, a package's
/// lost files and broken persistence, critical for a volume that is not there, error for a fallback to
/// another generation and for an incomplete audit.
fn priority(class: Class) -> u8 {
    match class {
        Class::Undeclared | Class::EtcStray | Class::PersistStray => 5,
        Class::EtcDrift | Class::PackageMissing | Class::Persist => 4,
        Class::Volume => 2,
        Class::Fallback | Class::Error => 3,
    }
}

/// One journal record: its fields, in order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Record {
    pub fields: Vec<(&'static str, Vec<u8>)>,
}

impl Record {
    fn add(&mut self, key: &'static str, value: impl Into<Vec<u8>>) {
        self.fields.push((key, value.into()));
    }

    /// The datagram journald's native protocol takes.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        for (key, value) in &self.fields {
            out.extend_from_slice(key.as_bytes());
            if value.contains(&b'\n') {
                out.push(b'\n');
                out.extend_from_slice(&(value.len() as u64).to_le_bytes());
            } else {
                out.push(b'=');
            }
            out.extend_from_slice(value);
            out.push(b'\n');
        }
        out
    }
}

/// The fields every record of one audit shares.
fn common(record: &mut Record, report: &Report, root: &str) {
    record.add("SYSLOG_IDENTIFIER", "blankslate");
    record.add("BLANKSLATE_ROOT", root);
    if let Some(generation) = report.generation {
        record.add("BLANKSLATE_GENERATION", generation.to_string());
    }
    if let Some(declaration) = &report.generations.declaration {
        record.add("BLANKSLATE_DECLARATION", declaration.as_str());
    }
}

fn finding_record(finding: &Finding, report: &Report, root: &str) -> Record {
    let (heading, meaning, _) = title(finding.class);
    let path = escape(&finding.path);
    let message = match finding.class {
        Class::Undeclared | Class::EtcStray | Class::PersistStray => {
            let counted = format!("{}, {}", plural(finding.files, "file", "files"), size(finding.bytes));
            let why = if finding.reason.is_empty() { meaning.to_owned() } else { escape(finding.reason.as_bytes()) };
            format!("{heading}: {} {path} ({counted}): {why}", finding.kind)
        }
        _ => format!("{heading}: {} {path}: {}", finding.kind, escape(finding.reason.as_bytes())),
    };
    let mut record = Record::default();
    record.add("MESSAGE", message);
    record.add("MESSAGE_ID", message_id(finding.class));
    record.add("PRIORITY", priority(finding.class).to_string());
    common(&mut record, report, root);
    record.add("BLANKSLATE_CLASS", finding.class.key());
    record.add("BLANKSLATE_KIND", finding.kind.as_str());
    record.add("BLANKSLATE_PATH", finding.path.clone());
    record.add("BLANKSLATE_FILES", finding.files.to_string());
    record.add("BLANKSLATE_BYTES", finding.bytes.to_string());
    if !finding.reason.is_empty() {
        record.add("BLANKSLATE_REASON", finding.reason.as_str());
    }
    // One field per package: journald keeps repeated fields.
    for package in &finding.packages {
        record.add("BLANKSLATE_PACKAGE", package.as_str());
    }
    record
}

/// The summary: totals per class (every finding, listed or not) and the exit code.
fn summary_record(report: &Report, root: &str) -> Record {
    let code = report.exit_code();
    let counts: Vec<String> = Class::ALL
        .into_iter()
        .filter(|&c| report.total(c).count > 0)
        .map(|c| format!("{} {}", report.total(c).count, c.key()))
        .collect();
    let against = report.generation.map_or_else(|| "no generation".to_owned(), |g| format!("generation {g}"));
    let found = if counts.is_empty() { "nothing found".to_owned() } else { counts.join(", ") };
    let mut record = Record::default();
    record
        .add("MESSAGE", format!("audit of {root} against {against}: {found}; exit {code} ({})", verdict(report, code)));
    record.add("MESSAGE_ID", SUMMARY_ID);
    let worst = Class::ALL.into_iter().filter(|&c| report.total(c).count > 0).map(priority).min();
    record.add("PRIORITY", worst.unwrap_or(6).to_string());
    common(&mut record, report, root);
    record.add("BLANKSLATE_EXIT_CODE", code.to_string());
    for class in Class::ALL {
        let key = match class {
            Class::Undeclared => "BLANKSLATE_FINDINGS_UNDECLARED",
            Class::EtcStray => "BLANKSLATE_FINDINGS_ETC_STRAY",
            Class::PersistStray => "BLANKSLATE_FINDINGS_PERSIST_STRAY",
            Class::EtcDrift => "BLANKSLATE_FINDINGS_ETC_DRIFT",
            Class::PackageMissing => "BLANKSLATE_FINDINGS_PACKAGE_MISSING",
            Class::Persist => "BLANKSLATE_FINDINGS_PERSIST",
            Class::Volume => "BLANKSLATE_FINDINGS_VOLUME",
            Class::Fallback => "BLANKSLATE_FINDINGS_FALLBACK",
            Class::Error => "BLANKSLATE_FINDINGS_ERROR",
        };
        record.add(key, report.total(class).count.to_string());
    }
    record.add("BLANKSLATE_DURATION_SECONDS", format!("{:.3}", report.duration.as_secs_f64()));
    record
}

/// The records of one audit: each listed finding, then the summary.
pub fn records(report: &Report, root: &str) -> Vec<Record> {
    let mut records: Vec<Record> = report.findings.iter().map(|f| finding_record(f, report, root)).collect();
    records.push(summary_record(report, root));
    records
}

/// Sends `records` to the journal listening at `socket`, one datagram each.
pub fn send(records: &[Record], socket: &Path) -> io::Result<()> {
    let journal = UnixDatagram::unbound()?;
    for record in records {
        journal.send_to(&record.encode(), socket).map_err(|e| {
            io::Error::new(e.kind(), format!("cannot send a record to the journal at {}: {e}", socket.display()))
        })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_ids_are_distinct_128_bit_ids() {
        let mut ids: Vec<&str> = Class::ALL.into_iter().map(message_id).collect();
        ids.push(SUMMARY_ID);
        for id in &ids {
            assert!(id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()), "{id}");
        }
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), Class::ALL.len() + 1);
    }

    #[test]
    fn values_with_newlines_are_length_prefixed() {
        let mut record = Record::default();
        record.add("MESSAGE", "one line");
        record.add("BLANKSLATE_PATH", b"/srv/a\nb\xff".to_vec());
        let mut expected = b"MESSAGE=one line\nBLANKSLATE_PATH\n".to_vec();
        expected.extend_from_slice(&9u64.to_le_bytes());
        expected.extend_from_slice(b"/srv/a\nb\xff\n");
        assert_eq!(record.encode(), expected);
    }
}
