//! The binary's `audit` against scratch roots: exit codes, `--json`, `--suggest`,
//! `--prometheus`, and `--watch` naming the process that writes. Everything that
//! mounts (a `switch` with persisted paths, and the audit that must see those
//! mounts) runs inside `unshare --mount --propagation private`, never in the
//! host's namespace.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

mod common;
use blankslate_test_support::{Scratch, root_or_skip, shell_in_namespace};
use common::{Running, output};

const BIN: &str = env!("CARGO_BIN_EXE_blankslate");

const DECLARATION: &str = r#"version = 1

[persist."/persist"]
directories = ["/var/log", { directory = "/var/lib/app", mode = "0750" }]
files = ["/etc/machine-id"]

[etc."passwd"]
text = "root:x:0:0::/root:/bin/sh\n"

[etc."group"]
text = "root:x:0:\n"

[etc."hosts"]
text = "127.0.0.1 localhost\n"

[audit]
ignore = ["/srv/scratch/**"]
"#;

/// A scratch root (`root/`, with its volume directory) and `declaration` beside it.
fn scratch_with(declaration: &str) -> Scratch {
    let scratch = Scratch::with_root("root");
    std::fs::create_dir_all(scratch.path("persist")).unwrap();
    scratch.file("declaration.toml", declaration);
    scratch
}

trait Audit {
    /// Mount a tmpfs as the volume, `switch` to the declaration, plant with `setup`
    /// (shell), then `audit ARGS`, all in one private mount namespace. Returns the
    /// audit's output.
    fn switch_and_audit(&self, setup: &str, args: &str) -> Output;
}

impl Audit for Scratch {
    fn switch_and_audit(&self, setup: &str, args: &str) -> Output {
        let script = format!(
            "set -e; cd '{root}'; mount -t tmpfs volume persist; '{BIN}' switch '{decl}' --root '{root}' >/dev/null; \
             {setup}; exec '{BIN}' audit --root '{root}' {args}",
            decl = self.dir().join("declaration.toml").display(),
            root = self.root().display(),
        );
        output(shell_in_namespace(&script).env("NO_COLOR", "1"))
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn a_clean_activation_exits_0() {
    if !root_or_skip("needs root") {
        return;
    }
    let scratch = scratch_with(DECLARATION);
    let output = scratch.switch_and_audit("mkdir -p srv/scratch && echo x > srv/scratch/ignored", "");
    assert_eq!(output.status.code(), Some(0), "{}{}", text(&output.stdout), text(&output.stderr));
    let report = text(&output.stdout);
    assert!(report.contains("result: clean"), "{report}");
    assert!(!report.contains('\x1b'), "NO_COLOR and a pipe: no colour");
}

#[test]
fn undeclared_state_exits_1_with_json_suggestions_and_metrics() {
    if !root_or_skip("needs root") {
        return;
    }
    let scratch = scratch_with(DECLARATION);
    let setup =
        "mkdir -p var/lib/newapp && head -c 2048 /dev/zero > var/lib/newapp/db && mkdir -p root && echo n > root/notes";
    let output = scratch.switch_and_audit(setup, "--json");
    assert_eq!(output.status.code(), Some(1), "{}", text(&output.stderr));
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(json["schema"], 1);
    assert_eq!(json["exit_code"], 1);
    assert_eq!(json["summary"]["undeclared"]["count"], 2);
    assert_eq!(json["summary"]["undeclared"]["bytes"], 2050);
    assert_eq!(json["findings"][0]["path"], "/var/lib/newapp");
    assert_eq!(json["findings"][0]["kind"], "directory");

    let output = scratch.switch_and_audit(setup, "--suggest");
    assert_eq!(output.status.code(), Some(1));
    let suggested = text(&output.stdout);
    assert!(suggested.contains("add to [persist.\"/persist\"]"), "{suggested}");
    assert!(suggested.contains("directories = [\n  \"/var/lib/newapp\",  # 1 file, 2.0 KiB\n]"), "{suggested}");
    assert!(suggested.contains("files = [\n  \"/root/notes\",  # 1 file, 2 B\n]"), "{suggested}");
    assert!(suggested.contains("\"/var/lib/newapp/**\","), "{suggested}");

    let metrics = scratch.dir().join("audit.prom");
    let output = scratch.switch_and_audit(setup, &format!("--prometheus '{}'", metrics.display()));
    assert_eq!(output.status.code(), Some(1));
    let metrics = std::fs::read_to_string(metrics).unwrap();
    assert!(metrics.contains("blankslate_audit_findings{class=\"undeclared\"} 2\n"), "{metrics}");
    assert!(metrics.contains("blankslate_audit_bytes{class=\"undeclared\"} 2050\n"), "{metrics}");
    assert!(metrics.contains("blankslate_audit_exit_code 1\n"), "{metrics}");
}

#[test]
fn drift_and_broken_persistence_exit_2() {
    if !root_or_skip("needs root") {
        return;
    }
    let scratch = scratch_with(DECLARATION);
    let setup = "rm etc/hosts && echo edited > etc/hosts && umount var/log";
    let output = scratch.switch_and_audit(setup, "--format prometheus");
    assert_eq!(output.status.code(), Some(2), "{}", text(&output.stderr));
    let metrics = text(&output.stdout);
    assert!(metrics.contains("blankslate_audit_findings{class=\"etc-drift\"} 1\n"), "{metrics}");
    assert!(metrics.contains("blankslate_audit_findings{class=\"persist\"} 1\n"), "{metrics}");
}

#[test]
fn no_state_is_an_error_exit_3() {
    let dir = tempfile::tempdir().unwrap();
    let output = output(Command::new(BIN).args(["audit", "--root"]).arg(dir.path()));
    assert_eq!(output.status.code(), Some(3));
    assert!(text(&output.stderr).contains("no blankslate state"), "{}", text(&output.stderr));
}

#[test]
fn help_documents_the_exit_codes() {
    let output = output(Command::new(BIN).args(["audit", "--help"]));
    let help = text(&output.stdout);
    for line in ["0  clean", "1  undeclared state", "2  /etc drift or broken persistence", "3  the audit is incomplete"]
    {
        assert!(help.contains(line), "{help}");
    }
}

/// A scratch root switched to a declaration with no persisted paths: nothing is
/// mounted, so no namespace is needed, and the writers' /proc/PID/fd paths are the
/// watcher's.
fn switched_without_mounts() -> (Scratch, PathBuf) {
    let scratch = scratch_with(
        "version = 1\n[etc.\"passwd\"]\ntext = \"root:x:0:0::/root:/bin/sh\\n\"\n[etc.\"group\"]\ntext = \"root:x:0:\\n\"\n",
    );
    let decl = scratch.dir().join("declaration.toml");
    let root = scratch.root().to_path_buf();
    let switched = output(Command::new(BIN).arg("switch").arg(&decl).arg("--root").arg(&root));
    assert!(switched.status.success(), "{}", text(&switched.stderr));
    (scratch, root)
}

/// How long the watch tests wait for a line of the watcher.
const LINE_DEADLINE: Duration = Duration::from_secs(60);

#[test]
fn watch_names_the_process_that_writes() {
    if !root_or_skip("needs root") {
        return;
    }
    let (_scratch, root) = switched_without_mounts();
    std::fs::create_dir_all(root.join("srv")).unwrap();
    let mut watcher = Running::spawn(
        Command::new(BIN)
            .args(["audit", "--watch", "--watch-for", "6", "--root"])
            .arg(&root)
            .env("NO_COLOR", "1")
            .stdout(Stdio::piped()),
    );
    let lines = watcher.lines();
    lines.until(LINE_DEADLINE, |l| l.starts_with("watching "));
    // A writer that keeps its file open for a while.
    let target: &Path = &root.join("srv/new-state.db");
    let mut writer = Running::spawn(Command::new("sh").arg("-c").arg(format!(
        "mkdir '{dir}'; echo x > '{dir}/inner'; exec 3>'{}'; echo data >&3; sleep 3",
        target.display(),
        dir = root.join("srv/newdir").display()
    )));
    let pid = writer.0.id();
    let seen = lines.until(LINE_DEADLINE, |l| l.starts_with("watch: "));
    writer.wait(LINE_DEADLINE);
    watcher.wait(LINE_DEADLINE);
    let created =
        seen.iter().find(|l| l.contains("created: file /srv/new-state.db")).unwrap_or_else(|| panic!("{seen:#?}"));
    assert!(created.contains(&format!("{pid} (sh)")), "{created}");
    // A new directory is watched, and a file made in it at once is not missed.
    assert!(seen.iter().any(|l| l.contains("created: directory /srv/newdir ")), "{seen:#?}");
    assert!(seen.iter().any(|l| l.contains("file /srv/newdir/inner ")), "{seen:#?}");
}

/// Ctrl-C (SIGINT) and `kill` (SIGTERM) end the watch with its summary and the
/// audit's exit code, also when the watcher was started with SIGINT ignored, as under
/// `nohup` or as a background job of a script.
#[test]
fn watch_stops_with_its_summary_on_sigint_and_sigterm() {
    if !root_or_skip("needs root") {
        return;
    }
    for (signal, ignore_sigint) in [("INT", false), ("INT", true), ("TERM", true)] {
        let case = format!("SIG{signal}, SIGINT ignored at start: {ignore_sigint}");
        let (_scratch, root) = switched_without_mounts();
        let audited = output(Command::new(BIN).arg("audit").arg("--root").arg(&root)).status.code();
        // Set either way: the suite itself may run with SIGINT ignored (CI runs it so).
        let disposition = if ignore_sigint { "--ignore-signal=INT" } else { "--default-signal=INT" };
        let mut watcher = Running::spawn(
            Command::new("env")
                .args([disposition, BIN, "audit", "--watch", "--root"])
                .arg(&root)
                .env("NO_COLOR", "1")
                .stdout(Stdio::piped()),
        );
        let lines = watcher.lines();
        lines.until(LINE_DEADLINE, |l| l.starts_with("watching "));
        let pid = watcher.0.id().to_string();
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
        let ignored = status.lines().find_map(|l| l.strip_prefix("SigIgn:")).unwrap().trim();
        let sigint_ignored = u64::from_str_radix(ignored, 16).unwrap() & 2 != 0;
        assert_eq!(sigint_ignored, ignore_sigint, "{case}: the watcher starts as the case says");
        std::fs::write(root.join("srv-file"), b"x").unwrap();
        lines.until(LINE_DEADLINE, |l| l.starts_with("undeclared created: file /srv-file"));
        let killed = output(Command::new("kill").args([&format!("-{signal}"), &pid]));
        assert!(killed.status.success(), "{case}");
        let rest = lines.rest(LINE_DEADLINE);
        let exit = watcher.wait(LINE_DEADLINE);
        let summary = rest.iter().find(|l| l.starts_with("watch: ")).unwrap_or_else(|| panic!("{case}: {rest:#?}"));
        assert!(summary.contains(" to 1 path;"), "{case}: {summary}");
        assert_eq!(exit.code(), audited, "{case}: the exit code is the audit's, as without --watch");
    }
}

#[test]
fn a_volume_that_is_not_mounted_is_one_finding_exit_2() {
    if !root_or_skip("needs root") {
        return;
    }
    let scratch = scratch_with(DECLARATION);
    // Activated, then the volume and its bind mounts gone: what is written now stays
    // in the root's plain directories. (A switch refuses a volume that is not there.)
    let gone = "umount var/log var/lib/app etc/machine-id persist";
    let output = scratch.switch_and_audit(gone, "--json");
    assert_eq!(output.status.code(), Some(2), "{}", text(&output.stderr));
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(json["summary"]["volume"]["count"], 1, "{json:#}");
    assert_eq!(json["summary"]["persist"]["count"], 0, "{json:#}");
    assert_eq!(json["summary"]["persist-stray"]["count"], 0, "{json:#}");
    let finding = &json["findings"][0];
    assert_eq!((finding["class"].as_str(), finding["path"].as_str()), (Some("volume"), Some("/persist")));
    assert!(finding["reason"].as_str().unwrap().contains("lost at the next reboot"), "{finding}");
}

#[test]
fn the_metrics_file_the_audit_writes_is_not_a_finding() {
    if !root_or_skip("needs root") {
        return;
    }
    let scratch = scratch_with(DECLARATION);
    let metrics = "var/lib/prometheus/node-exporter/blankslate.prom";
    let first = format!("mkdir -p var/lib/prometheus/node-exporter && '{BIN}' audit --root . --prometheus {metrics}");
    let output = scratch.switch_and_audit(&first, &format!("--prometheus {metrics}"));
    assert_eq!(output.status.code(), Some(0), "{}{}", text(&output.stdout), text(&output.stderr));
    assert!(std::fs::read_to_string(scratch.root().join(metrics)).unwrap().contains("blankslate_audit_exit_code 0\n"));
}

/// The fields of each datagram a journal at `socket` received: journald's native
/// protocol, decoded independently of the sender.
fn journal_records(socket: &std::os::unix::net::UnixDatagram) -> Vec<Vec<(String, Vec<u8>)>> {
    socket.set_nonblocking(true).unwrap();
    let mut records = Vec::new();
    let mut buffer = vec![0; 1 << 16];
    while let Ok(n) = socket.recv(&mut buffer) {
        let mut data = &buffer[..n];
        let mut fields = Vec::new();
        while !data.is_empty() {
            let line = data.iter().position(|&b| b == b'\n').expect("every field ends in a newline");
            let (head, rest) = (&data[..line], &data[line + 1..]);
            if let Some(eq) = head.iter().position(|&b| b == b'=') {
                fields.push((text(&head[..eq]), head[eq + 1..].to_vec()));
                data = rest;
            } else {
                let length = usize::try_from(u64::from_le_bytes(rest[..8].try_into().unwrap())).unwrap();
                fields.push((text(head), rest[8..8 + length].to_vec()));
                assert_eq!(rest[8 + length], b'\n');
                data = &rest[9 + length..];
            }
        }
        records.push(fields);
    }
    records
}

fn field<'a>(record: &'a [(String, Vec<u8>)], key: &str) -> Option<&'a str> {
    record.iter().find(|(k, _)| k == key).map(|(_, v)| std::str::from_utf8(v).unwrap())
}

/// A package whose conffile a reboot lost, and another's stray: named in the report,
/// the JSON and the journal records, and the audit exits 2.
#[test]
fn packages_are_named_in_every_output() {
    if !root_or_skip("needs root") {
        return;
    }
    let scratch = scratch_with(DECLARATION);
    let socket_path = scratch.dir().join("journal.socket");
    let journal = std::os::unix::net::UnixDatagram::bind(&socket_path).unwrap();
    let setup = "mkdir -p var/lib/dpkg/info && cd var/lib/dpkg \
        && printf 'Package: anacron\\nStatus: install ok installed\\nConffiles:\\n /etc/anacrontab 00\\n\\n' > status \
        && printf 'Package: atd\\nStatus: install ok installed\\n' >> status \
        && printf '/etc\\n/etc/anacrontab\\n' > info/anacron.list && printf '/etc/at.deny\\n' > info/atd.list \
        && cd ../../.. && echo nobody > etc/at.deny";
    let args = format!("--json --journal --journal-socket '{}'", socket_path.display());
    let output = scratch.switch_and_audit(setup, &args);
    assert_eq!(output.status.code(), Some(2), "{}{}", text(&output.stdout), text(&output.stderr));
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(json["summary"]["package-missing"]["count"], 1, "{json}");
    let findings = json["findings"].as_array().unwrap();
    let named = |path: &str| findings.iter().find(|f| f["path"] == path).unwrap_or_else(|| panic!("{json}")).clone();
    assert_eq!(
        (named("/etc/anacrontab")["class"].as_str(), named("/etc/anacrontab")["packages"][0].as_str()),
        (Some("package-missing"), Some("anacron"))
    );
    assert_eq!(
        (named("/etc/at.deny")["reason"].as_str(), named("/etc/at.deny")["packages"][0].as_str()),
        (Some("from package atd"), Some("atd"))
    );
    let records = journal_records(&journal);
    let missing = records.iter().find(|r| field(r, "BLANKSLATE_CLASS") == Some("package-missing")).unwrap();
    assert_eq!(field(missing, "MESSAGE_ID"), Some("273f49abba717514c243ab4bacb46e9d"));
    assert_eq!(field(missing, "PRIORITY"), Some("4"));
    assert_eq!(field(missing, "BLANKSLATE_PACKAGE"), Some("anacron"));
    let summary = records.last().unwrap();
    assert_eq!(field(summary, "BLANKSLATE_FINDINGS_PACKAGE_MISSING"), Some("1"));
}

#[test]
fn journal_records_carry_a_fixed_message_id_per_class() {
    if !root_or_skip("needs root") {
        return;
    }
    let scratch = scratch_with(DECLARATION);
    let socket_path = scratch.dir().join("journal.socket");
    let journal = std::os::unix::net::UnixDatagram::bind(&socket_path).unwrap();
    let setup = "mkdir -p srv/new && printf 'a\\nb' > 'srv/new/two\nlines' && rm etc/hosts && echo x > etc/hosts";
    let output = scratch.switch_and_audit(setup, &format!("--journal --journal-socket '{}'", socket_path.display()));
    assert_eq!(output.status.code(), Some(2), "{}", text(&output.stderr));
    let records = journal_records(&journal);
    assert_eq!(records.len(), 3, "two findings and the summary: {records:?}");
    for record in &records {
        for (key, _) in record {
            let valid = key.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_');
            assert!(valid && !key.starts_with('_') && key.len() <= 64, "not a journal field name: {key}");
        }
        assert_eq!(field(record, "SYSLOG_IDENTIFIER"), Some("blankslate"));
        assert_eq!(field(record, "BLANKSLATE_GENERATION"), Some("1"));
    }
    let undeclared = &records[0];
    assert_eq!(field(undeclared, "MESSAGE_ID"), Some("c5da81f4adb642b1a72cdd6805b2f9f1"));
    assert_eq!(field(undeclared, "PRIORITY"), Some("5"));
    assert_eq!(field(undeclared, "BLANKSLATE_CLASS"), Some("undeclared"));
    assert_eq!(field(undeclared, "BLANKSLATE_PATH"), Some("/srv/new"));
    assert_eq!((field(undeclared, "BLANKSLATE_FILES"), field(undeclared, "BLANKSLATE_BYTES")), (Some("1"), Some("3")));
    let message = field(undeclared, "MESSAGE").unwrap();
    assert_eq!(message, "undeclared: directory /srv/new (1 file, 3 B): lost at the next reboot");
    let drift = &records[1];
    assert_eq!(field(drift, "MESSAGE_ID"), Some("9a32b0bef94c4d949cbd3ac0a97bc033"));
    assert_eq!(
        (field(drift, "BLANKSLATE_KIND"), field(drift, "BLANKSLATE_PATH")),
        (Some("replaced-by-file"), Some("/etc/hosts"))
    );
    assert!(field(drift, "BLANKSLATE_REASON").unwrap().contains("lost at reboot"));
    let summary = &records[2];
    assert_eq!(field(summary, "MESSAGE_ID"), Some("e050e86ea2fb41f5849b4201d338aa92"));
    assert_eq!(field(summary, "BLANKSLATE_EXIT_CODE"), Some("2"));
    assert_eq!(field(summary, "BLANKSLATE_FINDINGS_UNDECLARED"), Some("1"));
    assert_eq!(field(summary, "BLANKSLATE_FINDINGS_ETC_DRIFT"), Some("1"));
    assert_eq!(field(summary, "PRIORITY"), Some("4"));
    let declaration = field(summary, "BLANKSLATE_DECLARATION").unwrap();
    assert!(declaration.len() == 32 && declaration.bytes().all(|b| b.is_ascii_alphanumeric()), "{declaration}");
}

#[test]
fn a_btrfs_declaration_on_a_root_that_is_no_btrfs_has_no_previous_roots() {
    if !root_or_skip("needs root") {
        return;
    }
    // Switched to, not booted yet: the running root is still what it was.
    let declaration = format!("{DECLARATION}\n[root]\nkind = \"btrfs\"\ndevice = \"LABEL=roots\"\n");
    let scratch = scratch_with(&declaration);
    let (out, err) = (scratch.dir().join("net.out"), scratch.dir().join("net.err"));
    let list = format!("'{BIN}' net list --root . >'{}' 2>'{}'", out.display(), err.display());
    let audited = scratch.switch_and_audit(&list, "--json");
    assert_eq!(audited.status.code(), Some(0), "{}", text(&audited.stderr));
    let json: serde_json::Value = serde_json::from_slice(&audited.stdout).unwrap();
    assert!(json.get("previous_roots").is_none(), "{json}");
    let (listed, warned) = (std::fs::read_to_string(out).unwrap(), std::fs::read_to_string(err).unwrap());
    assert_eq!((listed.as_str(), warned.as_str()), ("the net is empty\n", ""), "no previous roots, no warning");

    let checked = output(Command::new(BIN).arg("check").arg(scratch.dir().join("declaration.toml")));
    assert_eq!(checked.status.code(), Some(0), "{}", text(&checked.stderr));
    assert!(text(&checked.stderr).contains("only by blankslate's own initramfs"), "{}", text(&checked.stderr));
}
