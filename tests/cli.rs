//! The binary's integration tests: each runs `blankslate` against a scratch root.

use std::path::{Path, PathBuf};
use std::process::Output;

mod common;
use blankslate_test_support::{Scratch, root_or_skip};
use common::{blankslate_env, current_generation, stderr, stdout};

fn blankslate(args: &[&str]) -> Output {
    blankslate_env(args, &[])
}

fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples")
}

/// What these tests do on a scratch root (the scratch directory itself) with
/// declaration files in it.
trait Cli {
    fn declaration(&self, name: &str, directories: &[&str]) -> String;
    fn build(&self, declaration: &str, env: &[(&str, &str)]) -> Output;
    fn generations(&self) -> serde_json::Value;
    fn current(&self) -> Option<u64>;
    fn state(&self, sub: &str) -> PathBuf;
    /// Names in a state subdirectory that start with a dot other than the lock.
    fn temporaries(&self, sub: &str) -> Vec<String>;
}

impl Cli for Scratch {
    fn declaration(&self, name: &str, directories: &[&str]) -> String {
        let list: Vec<String> = directories.iter().map(|d| format!("\"{d}\"")).collect();
        let text = format!("version = 1\n[persist.\"/persist\"]\ndirectories = [{}]\n", list.join(", "));
        self.file(name, text).to_str().unwrap().to_owned()
    }

    fn build(&self, declaration: &str, env: &[(&str, &str)]) -> Output {
        blankslate_env(&["build", declaration, "--root", self.root_str()], env)
    }

    fn generations(&self) -> serde_json::Value {
        common::generations(self.root_str())
    }

    fn current(&self) -> Option<u64> {
        current_generation(self.root_str())
    }

    fn state(&self, sub: &str) -> PathBuf {
        self.path("var/lib/blankslate").join(sub)
    }

    fn temporaries(&self, sub: &str) -> Vec<String> {
        std::fs::read_dir(self.state(sub))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with('.'))
            .collect()
    }
}

#[test]
fn check_accepts_every_example() {
    let mut files: Vec<PathBuf> = std::fs::read_dir(examples())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    files.sort();
    assert!(files.len() >= 3, "examples/ holds the laptop, server and desktop declarations");
    for file in files {
        let output = blankslate(&["check", file.to_str().unwrap()]);
        assert!(output.status.success(), "{}: {}", file.display(), stderr(&output));
        assert!(stdout(&output).ends_with(": ok\n"));
    }
}

#[test]
fn check_reports_file_line_column_and_rule() {
    let scratch = Scratch::new();
    let path = scratch.dir().join("bad.toml");
    std::fs::write(&path, "version = 1\n[persist.\"/persist\"]\ndirectories = [\"var/log\"]\n").unwrap();
    let output = blankslate(&["check", path.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(1));
    let message = stderr(&output);
    assert!(message.contains("error[relative-path]"), "{message}");
    assert!(message.contains(&format!("{}:3:16", path.display())), "{message}");
    assert!(message.contains("help: write \"/var/log\""), "{message}");

    let output = blankslate(&["check", "--json", path.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(1));
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(report[0]["valid"], false);
    assert_eq!(report[0]["diagnostics"][0]["rule"], "relative-path");
    assert_eq!(report[0]["diagnostics"][0]["line"], 3);
}

#[test]
fn build_adds_generations_and_skips_unchanged_declarations() {
    let scratch = Scratch::new();
    let first = scratch.declaration("one.toml", &["/var/log"]);
    let output = scratch.build(&first, &[]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(stdout(&output).starts_with("generation 1 built: /var/lib/blankslate/store/"), "{}", stdout(&output));
    let output = scratch.build(&first, &[]);
    assert!(stdout(&output).starts_with("unchanged: generation 1 is current"), "{}", stdout(&output));
    let second = scratch.declaration("two.toml", &["/var/log", "/srv"]);
    assert!(scratch.build(&second, &[]).status.success());
    let list = scratch.generations();
    assert_eq!(list.as_array().unwrap().len(), 2);
    assert_eq!(scratch.current(), Some(2));
    // The same intent written differently is the same generation.
    let reordered = scratch.declaration("three.toml", &["/srv", "/var/log"]);
    assert!(stdout(&scratch.build(&reordered, &[])).starts_with("unchanged: generation 2"));
}

#[test]
fn an_invalid_declaration_builds_nothing() {
    let scratch = Scratch::new();
    let bad = scratch.declaration("bad.toml", &["/var/../etc"]);
    let output = scratch.build(&bad, &[]);
    assert_eq!(output.status.code(), Some(1));
    assert!(stderr(&output).contains("error[dot-dot]"));
    assert!(scratch.generations().as_array().unwrap().is_empty());
}

#[test]
fn gc_never_removes_a_live_generation() {
    let scratch = Scratch::new();
    assert!(scratch.build(&scratch.declaration("a.toml", &["/a"]), &[]).status.success());
    assert!(scratch.build(&scratch.declaration("b.toml", &["/b"]), &[]).status.success());
    let output = blankslate(&["generations", "gc", "--root", scratch.root_str()]);
    // Two generation objects and the etc object they share (neither declares /etc).
    assert!(stdout(&output).contains("removed 0 objects, kept 3"), "{}", stdout(&output));
    let output = blankslate(&["generations", "delete", "7", "--root", scratch.root_str()]);
    assert_eq!(output.status.code(), Some(2), "an unknown generation is a usage error: {}", stderr(&output));
    assert!(stderr(&output).contains("there is no generation 7"), "{}", stderr(&output));
    let output = blankslate(&["generations", "delete", "2", "--root", scratch.root_str()]);
    assert_eq!(output.status.code(), Some(3), "the current generation is refused");
    assert!(stderr(&output).contains("generation 2 is the current one"));
    assert!(blankslate(&["generations", "delete", "1", "--root", scratch.root_str()]).status.success());
    let output = blankslate(&["generations", "gc", "--root", scratch.root_str()]);
    assert!(stdout(&output).contains("removed 1 object, kept 2"), "{}", stdout(&output));
    let output = blankslate(&["store", "verify", "--root", scratch.root_str()]);
    assert!(output.status.success(), "{}", stdout(&output));
}

#[test]
fn store_verify_finds_a_tampered_object() {
    let scratch = Scratch::new();
    assert!(scratch.build(&scratch.declaration("a.toml", &["/a"]), &[]).status.success());
    let object = std::fs::read_dir(scratch.state("store"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.file_name().unwrap().to_str().unwrap().ends_with("-generation"));
    let file = object.unwrap().join("declaration.json");
    std::fs::write(&file, "{}").unwrap();
    let output = blankslate(&["store", "verify", "--root", scratch.root_str()]);
    assert_eq!(output.status.code(), Some(1));
    assert!(stdout(&output).contains("corrupt: "), "{}", stdout(&output));
}

/// A build killed at each step leaves the old generation current or the new one,
/// never a partial object or a half-made link; the next build completes cleanly.
#[test]
fn a_killed_build_leaves_no_partial_object_and_no_half_switched_profile() {
    for step in ["store-add:written", "generation:linked", "generation:current"] {
        let scratch = Scratch::new();
        assert!(scratch.build(&scratch.declaration("a.toml", &["/a"]), &[]).status.success());
        let next = scratch.declaration("b.toml", &["/b"]);
        let output = scratch.build(&next, &[("BLANKSLATE_FAILPOINT", step)]);
        assert!(!output.status.success(), "{step}: the failpoint aborts the build");
        assert!(stderr(&output).contains(&format!("failpoint {step}")), "{step}: {}", stderr(&output));

        let current = scratch.current();
        assert!(matches!(current, Some(1 | 2)), "{step}: current is the old or the new generation");
        // A temporary may be left (debris, which the next writer removes), never a
        // partial object.
        let verify = blankslate(&["store", "verify", "--root", scratch.root_str()]);
        assert!(stdout(&verify).contains(" checked, 0 corrupt, "), "{step}: {}", stdout(&verify));

        let output = scratch.build(&next, &[]);
        assert!(output.status.success(), "{step}: {}", stderr(&output));
        let verify = blankslate(&["store", "verify", "--root", scratch.root_str()]);
        assert!(verify.status.success(), "{step}: {}", stdout(&verify));
        assert_eq!(scratch.current(), Some(2), "{step}: the rerun completes the build");
        assert_eq!(scratch.generations().as_array().unwrap().len(), 2, "{step}: no duplicate generation");
        assert!(scratch.temporaries("store").is_empty(), "{step}: {:?}", scratch.temporaries("store"));
        assert!(scratch.temporaries("profiles").is_empty(), "{step}: {:?}", scratch.temporaries("profiles"));
    }
}

#[test]
fn completions_and_man_page_come_from_the_cli_definition() {
    let output = blankslate(&["completions", "bash"]);
    assert!(output.status.success());
    assert!(stdout(&output).contains("generations"));
    let output = blankslate(&["man"]);
    assert!(output.status.success());
    assert!(stdout(&output).contains(".TH blankslate"));
}

/// The pages the manual names exist: `man --dir` writes one per subcommand, and
/// every `blankslate-…(1)` a page refers to is among them.
#[test]
fn the_manual_refers_only_to_pages_that_exist() {
    let scratch = Scratch::new();
    let dir = scratch.dir().join("man1");
    std::fs::create_dir(&dir).unwrap();
    let output = blankslate(&["man", "--dir", dir.to_str().unwrap()]);
    assert!(output.status.success(), "{}", stderr(&output));
    let pages: Vec<String> =
        std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    for expected in ["blankslate.1", "blankslate-check.1", "blankslate-generations-list.1", "blankslate-persist-add.1"]
    {
        assert!(pages.iter().any(|p| p == expected), "{expected} not in {pages:?}");
    }
    assert!(!pages.iter().any(|p| p.contains("sandbox-init") || p.contains("help")), "{pages:?}");
    let mut printed = stdout(&blankslate(&["man"]));
    for page in &pages {
        printed.push_str(&std::fs::read_to_string(dir.join(page)).unwrap());
    }
    // A reference is `blankslate\-NAME(1)` in roff, NAME of letters and `\-`.
    let mut referred = 0;
    for after in printed.split("blankslate\\-").skip(1) {
        let name: String = after.chars().take_while(|c| c.is_ascii_lowercase() || matches!(c, '\\' | '-')).collect();
        if !after[name.len()..].starts_with("(1)") {
            continue;
        }
        let name = name.replace("\\-", "-");
        referred += 1;
        assert!(pages.contains(&format!("blankslate-{name}.1")), "blankslate-{name}(1) is referred to, not written");
    }
    assert!(referred > 20, "the pages list their subcommands' pages ({referred})");
}

/// What the help says agrees with what the commands do.
#[test]
fn help_texts_name_the_real_defaults_and_paths() {
    let help = stdout(&blankslate(&["initrd", "--help"]));
    assert!(help.contains("gzip-compressed unless --uncompressed"), "{help}");
    let help = stdout(&blankslate(&["boot", "--help"]));
    let unit = help.split_whitespace().find(|w| w.contains("blankslate-initrd.service")).unwrap();
    let unit = unit.trim_start_matches('(').trim_end_matches([')', ':', ',', '.']).trim_start_matches("the unit is ");
    assert!(Path::new(env!("CARGO_MANIFEST_DIR")).join(unit).is_file(), "boot --help names {unit}");
}

#[test]
fn import_writes_a_declaration_that_checks_and_never_overwrites_by_accident() {
    let scratch = Scratch::new();
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("core/decl/tests/fixtures/import/preservation.json");
    let out = scratch.dir().join("imported.toml");
    let args = ["import", "preservation", fixture.to_str().unwrap(), "-o", out.to_str().unwrap()];
    let output = blankslate(&args);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(stderr(&output).contains("note: "), "notes name what is not honoured: {}", stderr(&output));
    let check = blankslate(&["check", out.to_str().unwrap()]);
    assert!(check.status.success(), "{}", stderr(&check));
    let again = blankslate(&args);
    assert_eq!(again.status.code(), Some(3));
    assert!(stderr(&again).contains("exists; pass --force"), "{}", stderr(&again));
    let help = blankslate(&["import", "impermanence", "--help"]);
    assert!(stdout(&help).contains("--apply"), "the help shows the nix eval command that works");
}

#[test]
fn import_takes_home_manager_alone_or_with_its_nixos_configuration() {
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("core/decl/tests/fixtures/import");
    let file = |name: &str| fixtures.join(name).to_str().unwrap().to_owned();
    let (nixos, users, v1) = (file("home-manager-nixos.json"), file("home-manager.json"), file("home-manager-v1.json"));
    let both = blankslate(&["import", "impermanence", &nixos, "--home-manager", &users, "--group", "users"]);
    assert!(both.status.success(), "{}", stderr(&both));
    let text = stdout(&both);
    assert_eq!(text.matches("[persist.\"/persist\"]").count(), 1, "one volume, one table: {text}");
    assert!(text.contains("[persist.\"/persist\".users.alice]\ngroup = \"users\""), "{text}");
    let alone = blankslate(&["import", "home-manager", &v1, "--user", "alice"]);
    assert!(alone.status.success(), "{}", stderr(&alone));
    assert!(stdout(&alone).contains("{ directory = \".local/share/Trash\", how = \"symlink\" }"), "{}", stdout(&alone));
    // What the command line lacks or has too much of is a usage error, not a failure.
    let nameless = blankslate(&["import", "home-manager", &v1]);
    assert_eq!(nameless.status.code(), Some(2));
    assert!(stderr(&nameless).contains("pass --user NAME"), "{}", stderr(&nameless));
    let stray = blankslate(&["import", "impermanence", &nixos, "--group", "users"]);
    assert_eq!(stray.status.code(), Some(2));
    assert!(stderr(&stray).contains("describe the users of --home-manager"), "{}", stderr(&stray));
}

#[test]
fn read_only_commands_on_a_fresh_root_create_nothing() {
    let scratch = Scratch::new();
    let root = scratch.dir().join("root");
    std::fs::create_dir(&root).unwrap();
    let declaration = scratch.declaration("a.toml", &["/var/log"]);
    let root_arg = root.to_str().unwrap();
    let dry = blankslate(&["switch", &declaration, "--dry-run", "--root", root_arg]);
    assert!(dry.status.success(), "{}", stderr(&dry));
    assert!(stdout(&dry).contains("\nnothing -> generation 1\n"), "{}", stdout(&dry));
    let no_state = format!("no blankslate state in {root_arg} (nothing was ever built there)");
    for (args, says) in [
        (&["generations", "list"][..], "no generations"),
        (&["store", "verify"], "no store to verify"),
        (&["generations", "gc", "--dry-run"], "nothing to collect"),
        (&["generations", "gc"], "nothing to collect"),
    ] {
        let output = blankslate(&[args, &["--root", root_arg]].concat());
        assert_eq!(output.status.code(), Some(0), "{args:?}: {}", stderr(&output));
        assert_eq!(stdout(&output), format!("{no_state}: {says}\n"), "{args:?}");
    }
    let verify = blankslate(&["store", "verify", "--json", "--root", root_arg]);
    let verify: serde_json::Value = serde_json::from_slice(&verify.stdout).unwrap();
    assert_eq!(verify["state"], false);
    let audit = blankslate(&["audit", "--root", root_arg]);
    assert_eq!(audit.status.code(), Some(3), "the audit cannot run, as documented");
    assert!(stderr(&audit).contains("no blankslate state in"), "{}", stderr(&audit));
    let list = blankslate(&["persist", "list", "--declaration", &declaration, "--root", root_arg]);
    assert_eq!(list.status.code(), Some(1), "{}", stderr(&list));
    assert!(stdout(&list).contains("missing-source  directory /var/log"), "{}", stdout(&list));
    assert!(stderr(&list).contains("the persistent root /persist is not in"), "{}", stderr(&list));
    let rollback = blankslate(&["rollback", "--dry-run", "--root", root_arg]);
    assert!(stderr(&rollback).contains("nothing is active yet"), "{}", stderr(&rollback));
    let delete = blankslate(&["generations", "delete", "1", "--root", root_arg]);
    assert_eq!(delete.status.code(), Some(2), "{}", stderr(&delete));
    let switch = blankslate(&["switch", "1", "--root", root_arg]);
    assert_eq!(switch.status.code(), Some(2), "{}", stderr(&switch));
    assert_eq!(std::fs::read_dir(&root).unwrap().count(), 0, "the root is as empty as before");
}

#[test]
fn a_generation_that_does_not_exist_is_a_usage_error() {
    let scratch = Scratch::new();
    assert!(scratch.build(&scratch.declaration("a.toml", &["/a"]), &[]).status.success());
    for args in [&["switch", "9"][..], &["switch", "9", "--dry-run"], &["audit", "--generation", "9"]] {
        let output = blankslate(&[args, &["--root", scratch.root_str()]].concat());
        assert_eq!(output.status.code(), Some(2), "{args:?}: {}", stderr(&output));
        assert_eq!(
            stderr(&output),
            "error: there is no generation 9 (`blankslate generations list` shows them)\n",
            "{args:?}"
        );
    }
}

#[test]
fn a_declaration_that_is_not_utf8_is_a_finding_with_its_line_and_column() {
    let scratch = Scratch::new();
    let bad = scratch.dir().join("latin1.toml");
    std::fs::write(&bad, b"version = 1\n# caf\xe9\n").unwrap();
    let bad = bad.to_str().unwrap();
    let output = blankslate(&["check", bad]);
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    assert!(stderr(&output).contains("error[not-utf8]: the file is not UTF-8 text: invalid byte sequence 0xe9"));
    assert!(stderr(&output).contains(&format!("--> {bad}:2:6")), "{}", stderr(&output));
    let output = blankslate(&["check", "--json", bad]);
    assert_eq!(output.status.code(), Some(1));
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let diagnostic = &report[0]["diagnostics"][0];
    assert_eq!(
        (&diagnostic["rule"], &diagnostic["line"], &diagnostic["column"]),
        (&"not-utf8".into(), &2.into(), &6.into())
    );
    // Every command that reads a declaration says the same, and builds nothing.
    let output = scratch.build(bad, &[]);
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    assert!(stderr(&output).contains("error[not-utf8]"), "{}", stderr(&output));
    assert!(!scratch.state("").exists());
}

#[test]
fn check_checks_every_file_even_after_a_missing_one() {
    let scratch = Scratch::new();
    let good = scratch.declaration("good.toml", &["/var/log"]);
    let bad = scratch.declaration("bad.toml", &["var/log"]);
    let missing = scratch.dir().join("missing.toml");
    let missing = missing.to_str().unwrap();
    let output = blankslate(&["check", missing, &good, &bad]);
    assert_eq!(output.status.code(), Some(3), "a file that cannot be read is a failure: {}", stderr(&output));
    assert_eq!(stdout(&output), format!("{good}: ok\n{bad}: 1 error\n"));
    assert!(stderr(&output).starts_with(&format!("error: cannot read {missing}: No such file")), "{}", stderr(&output));
    let output = blankslate(&["check", "--json", missing, &good]);
    assert_eq!(output.status.code(), Some(3));
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(report.as_array().unwrap().len(), 2);
    assert!(report[0]["error"].as_str().unwrap().starts_with("cannot read"), "{report}");
    assert_eq!(report[1]["valid"], true);
}

/// An error's causes are printed under it, each once: one the line above already
/// quotes is not repeated.
#[test]
fn caused_by_never_repeats_the_line_above() {
    let scratch = Scratch::new();
    let missing = scratch.dir().join("missing.toml");
    let output = blankslate(&["build", missing.to_str().unwrap(), "--root", scratch.root_str()]);
    assert_eq!(output.status.code(), Some(3));
    let message = stderr(&output);
    assert!(message.starts_with("error: cannot read declaration"), "{message}");
    assert!(!message.contains("caused by"), "{message}");
}

#[test]
fn malformed_import_json_is_a_finding_not_a_failure() {
    let scratch = Scratch::new();
    let bad = scratch.dir().join("bad.json");
    std::fs::write(&bad, "{ \"/persist\": ").unwrap();
    let output = blankslate(&["import", "impermanence", bad.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("not impermanence JSON: the input is not valid JSON (line 1"),
        "{}",
        stderr(&output)
    );
    let output = blankslate(&["import", "preservation", scratch.dir().join("none.json").to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(3), "a file that cannot be read is still a failure");
}

/// The shipped systemd unit runs a command the CLI knows; off an initrd (no
/// blankslate.persist= on this machine's command line) it fails as a boot step,
/// naming what is missing, before it mounts anything.
#[test]
fn the_initrd_unit_runs_the_boot_service_command() {
    let unit = Path::new(env!("CARGO_MANIFEST_DIR")).join("packaging/dracut/90blankslate/blankslate-initrd.service");
    let unit = std::fs::read_to_string(unit).unwrap();
    let command = unit.lines().find_map(|l| l.strip_prefix("ExecStart=")).expect("an ExecStart= line");
    let words: Vec<&str> = command.split_whitespace().collect();
    assert_eq!(words[..2], ["/usr/bin/blankslate", "boot"], "{command}");
    if std::fs::read_to_string("/proc/cmdline").unwrap_or_default().contains("blankslate.persist=") {
        return;
    }
    let output = blankslate(&words[1..]);
    assert_eq!(output.status.code(), Some(3), "{}", stderr(&output));
    assert!(
        stderr(&output).contains(
            "blankslate: boot failed: cannot find the persistent volume: no blankslate.persist= on the kernel command line"
        ),
        "{}",
        stderr(&output)
    );
}

/// `switch`, `audit` and `persist sync` with a file declared `how = "copy"`: a
/// change the volume has not seen is a finding until `persist sync` writes it back.
#[test]
fn persist_sync_writes_a_changed_copy_back_and_the_audit_sees_it() {
    if !root_or_skip("owners need root") {
        return;
    }
    let scratch = Scratch::new();
    let dir = scratch.dir();
    std::fs::create_dir_all(dir.join("root/persist")).unwrap();
    let text =
        "version = 1\n[persist.\"/persist\"]\nfiles = [{ file = \"/etc/shadow\", how = \"copy\", mode = \"0640\" }]\n";
    std::fs::write(dir.join("copy.toml"), text).unwrap();
    // The volume is a tmpfs in a private namespace (nothing is mounted for a copy, but
    // the audit wants a mounted volume); each step leaves its output beside the root.
    // The change is made as passwd(1) makes it: a new file with the old one's mode,
    // renamed over it.
    let script = format!(
        "set -e; cd root; mount -t tmpfs volume persist
         mkdir persist/etc && printf 'root:!:1::::::\\n' > persist/etc/shadow
         '{bin}' switch ../copy.toml --root . >/dev/null
         cp etc/shadow ../after-switch
         printf 'root:$y$new:2::::::\\n' > etc/shadow+ && chmod 640 etc/shadow+ && mv etc/shadow+ etc/shadow
         code=0; '{bin}' audit --json --root . > ../audit.json || code=$?; echo $code > ../audit.code
         '{bin}' persist sync --root . > ../sync.out
         cp persist/etc/shadow ../synced
         code=0; '{bin}' audit --root . > ../audit-after.txt || code=$?; echo $code > ../audit-after.code",
        bin = env!("CARGO_BIN_EXE_blankslate"),
    );
    let run = common::output(
        std::process::Command::new("unshare")
            .args(["--mount", "--propagation", "private", "sh", "-c", &script])
            .current_dir(dir)
            .env("NO_COLOR", "1"),
    );
    assert!(run.status.success(), "{}{}", stdout(&run), stderr(&run));
    let read = |name: &str| std::fs::read_to_string(dir.join(name)).unwrap();
    assert_eq!(read("after-switch"), "root:!:1::::::\n");
    assert_eq!(read("audit.code"), "2\n");
    let report: serde_json::Value = serde_json::from_str(&read("audit.json")).unwrap();
    let kinds: Vec<_> = report["findings"].as_array().unwrap().iter().map(|f| (&f["kind"], &f["path"])).collect();
    assert_eq!(kinds, [(&"not-written-back".into(), &"/etc/shadow".into())], "{report}");
    assert!(read("sync.out").contains("written back: /etc/shadow"), "{}", read("sync.out"));
    assert_eq!(read("synced"), "root:$y$new:2::::::\n");
    assert_eq!(read("audit-after.code"), "0\n", "{}", read("audit-after.txt"));
}

/// examples/README.md lists every example, counts them right, and calls the one the
/// binary has built in (the sandbox's) the built-in example.
#[test]
fn the_examples_readme_names_every_example_and_the_built_in_one() {
    let readme = std::fs::read_to_string(examples().join("README.md")).unwrap();
    let mut files: Vec<String> = std::fs::read_dir(examples())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    files.sort();
    let count = ["No", "One", "Two", "Three", "Four", "Five", "Six", "Seven"][files.len()];
    assert!(readme.contains(&format!("{count} native blankslate declarations")), "{files:?}");
    for file in &files {
        assert!(readme.contains(&format!("| [`{file}`]({file}) |")), "{file} is not listed");
    }
    let source = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("src/cli/sandbox.rs")).unwrap();
    let built_in = source.split("include_str!(\"../../examples/").nth(1).unwrap().split('"').next().unwrap();
    let rows: Vec<&str> = readme.lines().filter(|l| l.contains("built-in example")).collect();
    assert!(!rows.is_empty() && rows.iter().all(|row| row.contains(&format!("[`{built_in}`]"))), "{rows:#?}");
}

/// `switch --json` and `rollback --json`: one JSON object on standard output, for a
/// dry run (the generations compared and the /etc plan counted) and for a switch in
/// each mode (the marks after it, what the activation did).
#[test]
fn switch_and_rollback_report_in_json() {
    if !root_or_skip("/etc's entries are owned by root") {
        return;
    }
    let scratch = Scratch::new();
    let root = scratch.dir().join("root");
    std::fs::create_dir(&root).unwrap();
    let declaration = scratch.dir().join("etc.toml");
    let write = |motd: &str| {
        let text = format!(
            "version = 1\n[etc.\"passwd\"]\ntext = \"root:x:0:0::/root:/bin/sh\\n\"\n[etc.\"group\"]\n\
             text = \"root:x:0:\\n\"\n[etc.\"motd\"]\ntext = \"{motd}\\n\"\n"
        );
        std::fs::write(&declaration, text).unwrap();
    };
    let run = |args: &[&str]| -> serde_json::Value {
        let mut all = args.to_vec();
        all.extend(["--json", "--root", root.to_str().unwrap()]);
        let output = blankslate_env(&all, &[]);
        assert!(output.status.success(), "{args:?}: {}", stderr(&output));
        serde_json::from_slice(&output.stdout).unwrap_or_else(|e| panic!("{args:?}: {e}: {}", stdout(&output)))
    };
    let file = declaration.to_str().unwrap();
    write("hi");

    let dry = run(&["switch", file, "--dry-run"]);
    assert_eq!((dry["dry_run"].clone(), dry["mode"].clone()), (true.into(), "switch".into()));
    assert_eq!((dry["from"].clone(), dry["to"].clone()), (serde_json::Value::Null, 1.into()));
    assert_eq!(dry["differences"], true);
    assert_eq!(dry["diff"]["etc"].as_array().unwrap().len(), 3, "{dry}");
    assert_eq!((dry["etc"]["added"].clone(), dry["etc"]["static_link"].clone()), (3.into(), true.into()));
    assert!(!root.join("etc").exists(), "a dry run changes nothing");

    let done = run(&["switch", file]);
    assert_eq!((done["dry_run"].clone(), done["generation"].clone()), (false.into(), 1.into()));
    assert_eq!((done["active"].clone(), done["boot_default"].clone()), (1.into(), 1.into()));
    assert_eq!(done["etc"]["added"], 3);
    assert_eq!(done["persisted"]["mounted"], serde_json::json!([]));
    assert_eq!((done["trial"].clone(), done["recovered"].clone()), (serde_json::Value::Null, serde_json::json!([])));

    // The same declaration again: nothing to change.
    let again = run(&["switch", file, "--dry-run"]);
    assert_eq!(
        (again["from"].clone(), again["to"].clone(), again["differences"].clone()),
        (1.into(), 1.into(), false.into())
    );
    let counts = &again["etc"];
    assert_eq!(
        (counts["added"].clone(), counts["unchanged"].clone(), counts["static_link"].clone()),
        (0.into(), 3.into(), false.into())
    );

    // A changed declaration on test, then back, then as the next boot's.
    write("hello");
    let test = run(&["switch", file, "--test"]);
    assert_eq!((test["mode"].clone(), test["generation"].clone()), ("test".into(), 2.into()));
    assert_eq!((test["active"].clone(), test["boot_default"].clone()), (2.into(), 1.into()));
    assert_eq!(test["etc"]["static_link"], true, "the links stay, /etc/static moves: {test}");
    let back = run(&["rollback"]);
    assert_eq!((back["generation"].clone(), back["active"].clone()), (1.into(), 1.into()));
    let boot = run(&["switch", "2", "--boot"]);
    assert_eq!(
        (boot["mode"].clone(), boot["active"].clone(), boot["boot_default"].clone()),
        ("boot".into(), 1.into(), 2.into())
    );
    assert_eq!((boot["etc"].clone(), boot["persisted"].clone()), (serde_json::Value::Null, serde_json::Value::Null));
}
