//! Switching with confidence, through the binary on scratch roots: the three ways to
//! switch, a switch that falls back by itself unless confirmed (even after its
//! session is killed), boot trials as `generations list` and `confirm` see them, the
//! comparison of two generations, and the repair of a drifted root.

use std::fmt::Write as _;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

mod common;
use blankslate_test_support::Scratch;
use blankslate_test_support::root_or_skip;
use common::{OnRoot, current_generation, generations, stderr, stdout};

const PASSWD: &str = r"root:x:0:0::/root:/bin/sh\nwww:x:33:33::/var/www:/bin/false\n";
const GROUP: &str = r"root:x:0:\nwww:x:33:\n";

fn declaration(motd: &str, extra: &str) -> String {
    format!(
        r#"version = 1
[etc."passwd"]
text = "{PASSWD}"
[etc."group"]
text = "{GROUP}"
[etc."motd"]
text = "{motd}\n"
[etc."ssh/sshd_config"]
text = "Port 22\n"
[etc."sudoers"]
text = "root ALL=(ALL) ALL\n"
mode = "0440"
{extra}"#
    )
}

/// A scratch root (`root/`, a plain directory: nothing here mounts) and declarations
/// beside it.
fn scratch_root() -> Scratch {
    Scratch::with_root("root")
}

/// What these tests read and do on a scratch root.
trait Confidence {
    /// Writes a declaration beside the root; returns its path.
    fn declaration(&self, name: &str, text: &str) -> String;
    /// `/etc/motd` as the root would see it: through `/etc/static` into its store.
    fn motd(&self) -> String;
    /// (active, boot default, good) generations, from `generations list --json`.
    fn marks(&self) -> (Option<u64>, Option<u64>, Option<u64>);
    fn notes(&self, generation: u64) -> String;
    /// Generation 1 active and the boot default, generation 2 built.
    fn two_generations(&self) -> String;
}

impl Confidence for Scratch {
    fn declaration(&self, name: &str, text: &str) -> String {
        self.file(name, text).to_str().unwrap().to_owned()
    }

    fn motd(&self) -> String {
        let Ok(tree) = std::fs::read_link(self.etc("static")) else { return String::new() };
        let tree = self.root().join(tree.strip_prefix("/").unwrap());
        std::fs::read_to_string(tree.join("motd")).unwrap_or_default()
    }

    fn marks(&self) -> (Option<u64>, Option<u64>, Option<u64>) {
        let list = generations(self.root_str());
        let find = |key: &str| {
            list.as_array().unwrap().iter().find(|g| g[key] == true).map(|g| g["generation"].as_u64().unwrap())
        };
        (find("active"), find("boot_default"), find("good"))
    }

    fn notes(&self, generation: u64) -> String {
        let list = generations(self.root_str());
        let g = list.as_array().unwrap().iter().find(|g| g["generation"] == generation).unwrap().clone();
        g["notes"].as_array().unwrap().iter().map(|n| n.as_str().unwrap().to_owned()).collect::<Vec<_>>().join("\n")
    }

    fn two_generations(&self) -> String {
        let one = self.declaration("one.toml", &declaration("one", ""));
        self.ok(&["switch", &one]);
        let two = self.declaration("two.toml", &declaration("two", "[etc.\"added.conf\"]\ntext = \"added\\n\"\n"));
        self.ok(&["build", &two]);
        self.ok(&["switch", "--boot", "1"]);
        two
    }
}

#[test]
fn switch_test_and_boot_move_what_they_say_and_list_shows_it() {
    let scratch = scratch_root();
    scratch.two_generations();
    assert_eq!(scratch.marks(), (Some(1), Some(1), None));

    let out = scratch.ok(&["switch", "--test", "2"]);
    assert!(out.ends_with("generation 2 is active; the boot default stays generation 1 (a reboot returns to it)\n"));
    assert_eq!(scratch.motd(), "two\n");
    assert_eq!(scratch.marks(), (Some(2), Some(1), None));

    let out = scratch.ok(&["switch", "--boot", "1"]);
    assert!(out.contains("generation 1 is the boot default; generation 2 stays active until the next boot"), "{out}");
    assert_eq!(scratch.marks(), (Some(2), Some(1), None));
    let out = scratch.ok(&["switch", "--boot", "2"]);
    assert!(out.contains("generation 2 is the boot default"), "{out}");
    assert_eq!(scratch.motd(), "two\n", "--boot activates nothing");
    assert_eq!(scratch.marks(), (Some(2), Some(2), None));

    scratch.ok(&["switch", "1"]);
    assert_eq!(scratch.marks(), (Some(1), Some(1), None));
    let list = scratch.ok(&["generations", "list"]);
    let line = list.lines().find(|l| l.contains("  1  ")).unwrap();
    assert!(line.starts_with("A*  "), "{list}");
    assert!(list.starts_with("      gen  created (UTC)        object\n"), "{list}");
    assert!(list.lines().nth(2).unwrap().starts_with("        2  "), "{list}");

    let conflict = scratch.run(&["switch", "--test", "--boot", "2"]);
    assert_eq!(conflict.status.code(), Some(2), "{}", stderr(&conflict));
    let conflict = scratch.run(&["switch", "--boot", "--confirm-within", "5m", "2"]);
    assert_eq!(conflict.status.code(), Some(2), "{}", stderr(&conflict));
}

/// The dry run of each mode compares with what that mode replaces.
#[test]
fn the_dry_run_of_each_mode_shows_the_comparison() {
    let scratch = scratch_root();
    scratch.two_generations();
    scratch.ok(&["switch", "--test", "2"]);
    let out = scratch.ok(&["switch", "--dry-run", "--boot", "2"]);
    assert!(out.starts_with("dry run, nothing changes: make it the boot default, activate nothing now\n"), "{out}");
    assert!(out.contains("\ngeneration 1 -> generation 2\n"), "against the boot default: {out}");
    assert!(!out.contains("on this root:"), "{out}");
    let out = scratch.ok(&["switch", "--dry-run", "1"]);
    assert!(out.contains("\ngeneration 2 -> generation 1\n/etc:\n  - added.conf"), "against the active one: {out}");
    assert!(out.contains("on this root:\n"), "{out}");
    assert_eq!(scratch.marks(), (Some(2), Some(1), None));
}

/// Runs `blankslate switch ARGS` the way a person's remote shell would, then ends that
/// whole session the way a dropped connection does: every process of the shell's
/// process group is killed once the switch has returned.
fn switch_then_lose_the_session(scratch: &Scratch, args: &[&str]) -> String {
    let mut command = format!("'{}' switch --root '{}'", env!("CARGO_BIN_EXE_blankslate"), scratch.root_str());
    for arg in args {
        let _ = write!(command, " '{arg}'");
    }
    let mut shell = Command::new("sh")
        .arg("-c")
        .arg(format!("{command} > switch.out 2>&1; echo switched > switched; sleep 60"))
        .current_dir(scratch.dir())
        .env("NO_COLOR", "1")
        .env_remove("BLANKSLATE_FAILPOINT")
        .process_group(0)
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    let done = scratch.dir().join("switched");
    let started = Instant::now();
    while !done.exists() {
        assert!(started.elapsed() < Duration::from_secs(30), "the switch did not return");
        std::thread::sleep(Duration::from_millis(20));
    }
    let group = kill_group(shell.id());
    assert!(group, "the session's process group was there to kill");
    let _ = shell.wait();
    std::fs::read_to_string(scratch.dir().join("switch.out")).unwrap()
}

/// `kill -KILL -PGID`: the whole process group, as a hangup of its terminal would.
fn kill_group(group: u32) -> bool {
    Command::new("kill").args(["-KILL", "--", &format!("-{group}")]).status().unwrap().success()
}

fn wait_for(what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
    let started = Instant::now();
    while !done() {
        assert!(started.elapsed() < limit, "{what} did not happen within {limit:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A switch on trial whose session dies is undone by itself at the deadline: the
/// watcher lives in a session of its own. The boot default never moved; the audit
/// and `generations list` say what happened.
#[test]
fn an_unconfirmed_switch_falls_back_by_itself_after_its_session_is_gone() {
    let scratch = scratch_root();
    let two = scratch.two_generations();
    let out = switch_then_lose_the_session(&scratch, &[&two, "--confirm-within", "2"]);
    assert!(out.contains("generation 2 is active on trial: `blankslate confirm` before "), "{out}");
    assert!(out.contains("otherwise generation 1 is activated again by itself (watched by process "), "{out}");
    assert_eq!(scratch.motd(), "two\n");
    assert_eq!(scratch.marks(), (Some(2), Some(1), None), "the boot default moves only once confirmed");
    assert_eq!(current_generation(scratch.root_str()), Some(1));
    assert!(scratch.notes(2).contains("on trial: `blankslate confirm` before"), "{}", scratch.notes(2));

    wait_for("the fallback", Duration::from_secs(20), || scratch.motd() == "one\n");
    wait_for("the record of it", Duration::from_secs(5), || scratch.notes(2).contains("not confirmed in time"));
    assert_eq!(scratch.marks(), (Some(1), Some(1), None));
    assert!(!scratch.etc("added.conf").exists());
    assert!(
        scratch.notes(2).contains("not confirmed in time: generation 1 activated again at "),
        "{}",
        scratch.notes(2)
    );
    // The watcher says so after it recorded the fallback: under load, a moment later.
    let log = || std::fs::read_to_string(scratch.root().join("run/blankslate/trial.log")).unwrap_or_default();
    let said = "generation 2 was not confirmed in time: generation 1 is active again";
    wait_for("the watcher's log line", Duration::from_secs(5), || log().contains(said));
    let log = log();
    assert!(log.contains(said), "{log}");

    let audit = scratch.run(&["audit", "--json"]);
    assert_eq!(audit.status.code(), Some(2), "{}", stdout(&audit));
    let report: serde_json::Value = serde_json::from_slice(&audit.stdout).unwrap();
    let finding = report["findings"].as_array().unwrap().iter().find(|f| f["class"] == "fallback").unwrap().clone();
    assert_eq!(finding["kind"], "not-confirmed");
    assert!(finding["reason"].as_str().unwrap().contains("generation 2 was switched to and not confirmed within 2 s"));

    // A confirmation now has nothing to keep; the next switch clears the record.
    scratch.ok(&["switch", "1"]);
    let out = scratch.ok(&["confirm"]);
    assert!(out.contains("nothing to confirm"), "{out}");
}

/// Confirmed in time: the generation stays, becomes the boot default (the switch did
/// not say --test), and the watcher is gone.
#[test]
fn a_confirmed_switch_stays_and_becomes_the_boot_default() {
    let scratch = scratch_root();
    scratch.two_generations();
    scratch.ok(&["switch", "2", "--confirm-within", "3"]);
    let record: serde_json::Value =
        serde_json::from_slice(&std::fs::read(scratch.root().join("run/blankslate/trial.json")).unwrap()).unwrap();
    let pid = record["watcher"]["pid"].as_u64().unwrap();
    assert!(Path::new(&format!("/proc/{pid}")).exists(), "the watcher waits");
    let session = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let fields: Vec<&str> = session.rsplit(") ").next().unwrap().split(' ').collect();
    assert_eq!(fields[3], pid.to_string(), "the watcher leads a session of its own: {session}");

    let out = scratch.ok(&["confirm"]);
    assert!(out.contains("generation 2 confirmed: it stays active and the boot default"), "{out}");
    assert_eq!(scratch.marks(), (Some(2), Some(2), None));
    wait_for("the watcher's end", Duration::from_secs(5), || {
        std::fs::read_to_string(format!("/proc/{pid}/stat")).map_or(true, |s| s.contains(") Z "))
    });
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(scratch.motd(), "two\n", "nothing fell back after the deadline");
    assert!(!scratch.root().join("run/blankslate/trial.json").exists());
}

/// `--test --confirm-within`: confirmed, it stays active and the boot default does
/// not move; a plain switch during a trial replaces it.
#[test]
fn a_test_switch_on_trial_keeps_the_boot_default_and_a_plain_switch_ends_a_trial() {
    let scratch = scratch_root();
    scratch.two_generations();
    scratch.ok(&["switch", "--test", "2", "--confirm-within", "60"]);
    let out = scratch.ok(&["confirm"]);
    assert!(out.contains("generation 2 confirmed: it stays active\n"), "{out}");
    assert_eq!(scratch.marks(), (Some(2), Some(1), None));

    let same = scratch.run(&["switch", "2", "--confirm-within", "60"]);
    assert_eq!(same.status.code(), Some(2));
    assert!(stderr(&same).contains("generation 2 is what a fallback would activate"), "{}", stderr(&same));
    scratch.ok(&["switch", "1", "--confirm-within", "60"]);
    let out = scratch.ok(&["switch", "1"]);
    assert!(out.contains("the trial of generation 1 ends unconfirmed: this switch replaces it"), "{out}");
    assert!(!scratch.root().join("run/blankslate/trial.json").exists());

    let nothing = scratch_root();
    let one = nothing.declaration("one.toml", &declaration("one", ""));
    let output = nothing.run(&["switch", &one, "--confirm-within", "60"]);
    assert_eq!(output.status.code(), Some(2), "the person's request: {}", stderr(&output));
    assert!(stderr(&output).contains("nothing is active on this root to fall back to"), "{}", stderr(&output));
    assert_eq!(generations(nothing.root_str()), serde_json::json!([]), "nothing was built");
}

/// `--tries`: the boot default on trial as `generations list` shows it; `confirm` in
/// the booted generation (boot's record stands in for a boot here) marks it good and
/// ends the trial; a good generation and a trial's fallback cannot be deleted.
#[test]
fn a_boot_trial_is_listed_and_a_confirmation_marks_the_booted_generation_good() {
    let scratch = scratch_root();
    scratch.two_generations();
    let refused = scratch.run(&["switch", "--boot", "1", "--tries", "2"]);
    assert_eq!(refused.status.code(), Some(2));
    assert!(stderr(&refused).contains("no other generation to fall back to"), "{}", stderr(&refused));

    scratch.ok(&["switch", "--test", "2"]);
    let out = scratch.ok(&["switch", "--boot", "2", "--tries", "2"]);
    assert!(out.contains("generation 2 is on trial for 2 boot(s)"), "{out}");
    assert!(out.contains("otherwise boot falls back to generation 1"), "{out}");
    assert!(scratch.notes(2).contains("on boot trial: 0 of 2 boot(s) used, then falls back to generation 1"));
    let refused = scratch.run(&["generations", "delete", "1"]);
    assert!(stderr(&refused).contains("trial's fallback"), "{}", stderr(&refused));

    // What boot writes when it starts attempt 1 of generation 2.
    let run = scratch.root().join("run/blankslate");
    std::fs::create_dir_all(&run).unwrap();
    std::fs::write(run.join("boot.json"), r#"{"generation":2,"trial":{"attempt":1,"tries":2}}"#).unwrap();
    assert!(scratch.notes(2).contains("booted as attempt 1 of 2 of its trial"), "{}", scratch.notes(2));
    let out = scratch.ok(&["confirm"]);
    assert!(out.contains("generation 2 (booted) marked good"), "{out}");
    assert_eq!(scratch.marks(), (Some(2), Some(2), Some(2)));
    assert!(!scratch.notes(2).contains("on boot trial"), "the trial ended: {}", scratch.notes(2));
    let list = scratch.ok(&["generations", "list"]);
    assert!(list.lines().any(|l| l.starts_with("A* G    2")), "{list}");
    let refused = scratch.run(&["generations", "delete", "2"]);
    assert_eq!(refused.status.code(), Some(3));
}

/// `boot-deadline`: nothing to watch without a boot on trial; a confirmation ends
/// the watch at once; a trial still pending at the deadline is reported, and (this
/// not being the live root) no reboot is attempted.
#[test]
fn the_boot_deadline_watches_a_boot_on_trial_until_it_is_confirmed() {
    let scratch = scratch_root();
    scratch.two_generations();
    scratch.ok(&["switch", "--test", "2"]);
    let out = scratch.ok(&["boot-deadline", "1s"]);
    assert!(out.contains("this boot is not an attempt of a generation on trial: nothing to watch"), "{out}");

    // What boot writes when it starts attempt 1 of generation 2 on a trial of 2 tries:
    // the count on the volume, the record in /run.
    let trial_file = scratch.root().join("var/lib/blankslate/boot-trial.json");
    let start_attempt_one = || {
        scratch.ok(&["switch", "--boot", "1"]);
        scratch.ok(&["switch", "--boot", "2", "--tries", "2"]);
        let mut trial: serde_json::Value = serde_json::from_slice(&std::fs::read(&trial_file).unwrap()).unwrap();
        trial["attempts"] = 1.into();
        std::fs::write(&trial_file, serde_json::to_vec(&trial).unwrap()).unwrap();
    };
    start_attempt_one();
    let run = scratch.root().join("run/blankslate");
    std::fs::create_dir_all(&run).unwrap();
    std::fs::write(run.join("boot.json"), r#"{"generation":2,"trial":{"attempt":1,"tries":2}}"#).unwrap();
    // The kernel has run for more than a second: the deadline has passed.
    let late = scratch.run(&["boot-deadline", "1s"]);
    assert_eq!(late.status.code(), Some(1), "{}{}", stdout(&late), stderr(&late));
    assert!(stdout(&late).contains("generation 2 is on a boot trial (attempt 1 of 2): unless `blankslate confirm`"));
    let said = stderr(&late);
    assert!(
        said.contains("generation 2 was not confirmed within 1 s of booting: the next boot tries it again"),
        "{said}"
    );
    assert!(said.contains("not rebooting, as ") && said.contains("is not the live root"), "{said}");

    // A trial started since this boot (the next boot is its first attempt) is not this
    // boot's to reboot for.
    scratch.ok(&["switch", "--boot", "1"]);
    scratch.ok(&["switch", "--boot", "2", "--tries", "3"]);
    let out = scratch.ok(&["boot-deadline", "1s"]);
    assert!(out.contains("nothing to watch"), "a trial of the next boot: {out}");

    // A watch far from its deadline ends as soon as the boot is confirmed.
    start_attempt_one();
    let root = scratch.root_str();
    let mut watch = common::Running::spawn(
        Command::new(env!("CARGO_BIN_EXE_blankslate"))
            .args(["boot-deadline", "100000h", "--root", root])
            .stdin(Stdio::null())
            .stdout(Stdio::piped()),
    );
    let lines = watch.lines();
    lines.until(common::DEADLINE, |l| l.contains("is on a boot trial"));
    scratch.ok(&["confirm"]);
    let rest = lines.rest(Duration::from_secs(30));
    assert!(rest.iter().any(|l| l.contains("generation 2's boot trial ended in time")), "{rest:?}");
    assert!(watch.wait(Duration::from_secs(30)).success());
    let out = scratch.ok(&["boot-deadline", "1s"]);
    assert!(out.contains("nothing to watch"), "confirmed: {out}");
}

const PERSISTED_ONE: &str = r#"
[persist."/persist"]
directories = ["/var/log", { directory = "/srv/www", user = "www", mode = "0750" }]
files = [{ file = "/etc/machine-id", how = "bind" }]
"#;

const PERSISTED_TWO: &str = r#"
[persist."/persist"]
directories = ["/var/log", { directory = "/srv/www", user = "www", group = "www", mode = "0700", options = ["ro"] }, "/var/lib/new"]
[audit]
ignore = ["/var/cache/**"]
[root]
size = "50%"
"#;

#[test]
fn generations_diff_lists_what_changes_as_text_json_and_patch() {
    let scratch = scratch_root();
    let one = scratch.declaration("one.toml", &declaration("one\\nsame line", PERSISTED_ONE));
    let mut two_text = declaration("two\\nsame line", PERSISTED_TWO).replace("Port 22", "Port 2222");
    two_text = two_text.replace("mode = \"0440\"", "mode = \"0400\"\ngroup = \"www\"");
    let two = scratch.declaration("two.toml", &(two_text + "[etc.\"issue\"]\ntext = \"hello\\n\"\n"));
    scratch.ok(&["build", &one]);
    scratch.ok(&["build", &two]);

    let output = scratch.run(&["generations", "diff", "1", "2"]);
    assert_eq!(output.status.code(), Some(1), "differences exit 1");
    insta::assert_snapshot!("diff_1_2", stdout(&output));
    let same = scratch.run(&["generations", "diff", "2", "2"]);
    assert_eq!(same.status.code(), Some(0));
    assert_eq!(stdout(&same), "generation 2 -> generation 2\nno differences\n");

    let patch = stdout(&scratch.run(&["generations", "diff", "-p", "1", "2"]));
    insta::assert_snapshot!("diff_1_2_patch", patch);

    let json: serde_json::Value =
        serde_json::from_slice(&scratch.run(&["generations", "diff", "--json", "1", "2"]).stdout).unwrap();
    let etc = json["etc"].as_array().unwrap();
    let sudoers = etc.iter().find(|l| l["path"] == "sudoers").unwrap();
    assert_eq!(sudoers["change"], "changed");
    let aspects: Vec<(&str, &str, &str)> = sudoers["aspects"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| (a["what"].as_str().unwrap(), a["from"].as_str().unwrap_or(""), a["to"].as_str().unwrap_or("")))
        .collect();
    assert_eq!(aspects, [("mode", "0440", "0400"), ("owner", "root:root", "root:www")]);
    let persist = json["persist"].as_array().unwrap();
    let removed: Vec<&str> =
        persist.iter().filter(|l| l["change"] == "removed").map(|l| l["path"].as_str().unwrap()).collect();
    assert_eq!(removed, ["/etc/machine-id"]);
    assert_eq!(json["root"][0]["what"], "size");
    assert_eq!(json["audit_ignore"][0]["path"], "/var/cache/**");
}

/// The no-op switch stays fast and trusts its record; `repair` checks every entry and
/// puts back what people changed, moving their files aside, never deleting them.
#[test]
fn repair_puts_back_what_drifted_and_moves_aside_what_a_person_put_there() {
    let scratch = scratch_root();
    let one = scratch.declaration("one.toml", &declaration("one", ""));
    scratch.ok(&["switch", &one]);
    let clean = scratch.ok(&["repair"]);
    assert!(clean.contains("0 missing, 0 with the wrong owner or mode, 0 replaced"), "{clean}");

    std::fs::remove_file(scratch.etc("motd")).unwrap();
    std::fs::write(scratch.etc("motd"), "a person's motd\n").unwrap();
    std::fs::remove_file(scratch.etc("group")).unwrap();
    std::fs::remove_file(scratch.etc("ssh/sshd_config")).unwrap();
    std::os::unix::fs::symlink("/tmp/elsewhere", scratch.etc("ssh/sshd_config")).unwrap();
    std::fs::set_permissions(scratch.etc("sudoers"), std::fs::Permissions::from_mode(0o644)).unwrap();
    std::os::unix::fs::chown(scratch.etc("sudoers"), Some(33), None).unwrap();

    let noop = scratch.ok(&["switch", "1"]);
    assert!(noop.contains(" 0 added, 0 changed, 0 removed") || noop.contains("\n0 added"), "{noop}");
    assert_eq!(std::fs::read_to_string(scratch.etc("motd")).unwrap(), "a person's motd\n", "a no-op looks at nothing");

    let dry = scratch.run(&["repair", "--dry-run"]);
    let (said, warned) = (stdout(&dry), stderr(&dry));
    assert!(said.ends_with("dry run: nothing was changed\n"), "{said}");
    assert!(said.contains("is there: would be moved to motd.blankslate-backup"), "{said}");
    assert!(!said.contains(": moved to") && !warned.contains("moved to"), "nothing moved: {said}{warned}");
    assert_eq!(std::fs::read_to_string(scratch.etc("motd")).unwrap(), "a person's motd\n");

    let output = scratch.run(&["repair"]);
    assert!(output.status.success(), "{}", stderr(&output));
    insta::assert_snapshot!("repair", stdout(&output));
    assert_eq!(std::fs::read_link(scratch.etc("motd")).unwrap(), Path::new("/etc/static/motd"));
    assert_eq!(std::fs::read_to_string(scratch.etc("motd.blankslate-backup")).unwrap(), "a person's motd\n");
    assert_eq!(std::fs::read_link(scratch.etc("group")).unwrap(), Path::new("/etc/static/group"));
    assert_eq!(
        std::fs::read_link(scratch.etc("ssh/sshd_config.blankslate-backup")).unwrap(),
        Path::new("/tmp/elsewhere")
    );
    let sudoers = std::fs::metadata(scratch.etc("sudoers")).unwrap();
    assert_eq!((sudoers.mode() & 0o7777, sudoers.uid()), (0o440, 0));
    assert!(stderr(&output).contains("warning: /etc/motd held a regular file: moved to motd.blankslate-backup"));

    let again = scratch.ok(&["repair", "--json"]);
    let json: serde_json::Value = serde_json::from_str(&again).unwrap();
    assert_eq!(json["etc"]["steps"].as_array().unwrap().len(), 0, "{again}");
    assert_eq!(json["etc"]["as_activated"], 5);
}

/// Persisted paths: an unmounted directory with a person's files in the root, a
/// wrong owner and mode in the volume, a mount that lost `ro`. Run in a private mount
/// namespace (`unshare`), which the script checks before it mounts anything.
#[test]
fn repair_re_applies_owners_modes_and_mounts_of_persisted_paths() {
    if !root_or_skip("needs root for a mount namespace") {
        return;
    }
    let scratch = scratch_root();
    let root = scratch.root();
    std::fs::create_dir_all(root.join("persist")).unwrap();
    let text = declaration(
        "one",
        "[persist.\"/persist\"]\ndirectories = [{ directory = \"/srv/www\", user = \"www\", mode = \"0750\" }, \
         { directory = \"/var/lib/ro\", options = [\"ro\"] }]\n",
    );
    let one = scratch.declaration("one.toml", &text);
    let script = format!(
        r#"set -e
[ "$(readlink /proc/self/ns/mnt)" != "$(readlink /proc/$PPID/ns/mnt)" ] || {{ echo "not in a private mount namespace"; exit 99; }}
R='{root}'
mount -t tmpfs volume "$R/persist"
mkdir -p "$R/persist/srv/www" && echo "from the volume" > "$R/persist/srv/www/index.html"
"$B" switch '{one}' --root "$R" > /dev/null
umount "$R/srv/www"
echo "a person's page" > "$R/srv/www/page.html"
chmod 0777 "$R/persist/srv/www"
mount -o remount,bind,rw "$R/var/lib/ro"
"$B" repair --root "$R"
echo "--- after"
cat "$R/srv/www/index.html"
cat "$R/srv/www.blankslate-backup/page.html"
stat -c '%a %u' "$R/persist/srv/www"
touch "$R/var/lib/ro/probe" 2>/dev/null && echo "ro lost" || echo "ro kept"
"$B" repair --root "$R" | tail -n 1
"#,
        root = root.display()
    );
    let output = Command::new("unshare")
        .args(["--mount", "--propagation", "private", "sh", "-c", &script])
        .env("B", env!("CARGO_BIN_EXE_blankslate"))
        .env("NO_COLOR", "1")
        .env_remove("BLANKSLATE_FAILPOINT")
        .output()
        .unwrap();
    let out = stdout(&output);
    assert!(output.status.success(), "{out}{}", stderr(&output));
    let (report, after) = out.split_once("--- after\n").unwrap();
    let report = report.replace(&root.display().to_string(), "ROOT");
    insta::assert_snapshot!("repair_persisted", report);
    assert_eq!(
        after,
        "from the volume\na person's page\n750 33\nro kept\n\
         0 unmounted, 0 mounted again, 0 linked again, 0 fixed, 0 moved aside, 0 not repaired, 2 as activated\n"
    );
}

/// The shipped unit that marks a boot good runs a command the CLI knows; off a
/// blankslate boot it says there is nothing to confirm and succeeds.
#[test]
fn the_good_mark_unit_runs_confirm() {
    let unit = Path::new(env!("CARGO_MANIFEST_DIR")).join("packaging/systemd/blankslate-confirm.service");
    let unit = std::fs::read_to_string(unit).unwrap();
    let command = unit.lines().find_map(|l| l.strip_prefix("ExecStart=")).expect("an ExecStart= line");
    let words: Vec<&str> = command.split_whitespace().collect();
    assert_eq!(words, ["/usr/bin/blankslate", "confirm"], "{command}");
    let scratch = scratch_root();
    scratch.two_generations();
    let out = scratch.ok(&words[1..]);
    assert!(out.contains("nothing to confirm"), "{out}");
}
