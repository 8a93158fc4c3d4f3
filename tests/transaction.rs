//! A switch is one transaction: killed at any system call that changes something, or
//! given EIO or ENOSPC there, the real binary leaves a root that its natural
//! recovery (the same command again) brings to exactly the generation asked for:
//! the store verifies, no temporaries are left, /etc is that generation's (a repair
//! would change nothing), the mounts below the root are exactly its persisted
//! paths (and the volume), the boot default and the active generation are what the
//! mode says, and no record of the switch is left. An error, unlike a kill, is
//! undone at once: the root is exactly the generation before, or the record of the
//! switch says what the next command finishes.
//!
//! The two generations differ in every way a switch handles: a directory with
//! entries becomes a file, a copy changes owner and contents, a persisted directory
//! is added and one removed (unmounted). Each switch runs under `strace -f` with one
//! injection (`-e inject=SYSCALL:signal=KILL:when=N`, or `error=EIO`/`ENOSPC`) in a
//! test thread with a mount namespace of its own, whose volume is a tmpfs.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use blankslate_state::generation::{DEFAULT_STATE_DIR, State};
use blankslate_sys::fs::Dir;

mod common;
use blankslate_test_support::{in_namespace, root_or_skip};
use common::{output, stderr, stdout};

const BIN: &str = env!("CARGO_BIN_EXE_blankslate");
const STRACE: &str = "/usr/bin/strace";

const ONE: &str = r#"version = 1
[etc."passwd"]
text = "root:x:0:0::/root:/bin/sh\nwww:x:33:33::/var/www:/bin/false\n"
[etc."group"]
text = "root:x:0:\nwww:x:33:\n"
[etc."motd"]
text = "one\n"
[etc."dirswap/a"]
text = "a\n"
[etc."dirswap/b/c"]
text = "c\n"
mode = "0644"
[etc."sudoers"]
text = "root ALL=(ALL) ALL\n"
mode = "0440"
[persist."/persist"]
directories = ["/var/lib/kept", "/var/lib/gone", { directory = "/srv/www", user = "www", mode = "0750" }]
files = [{ file = "/etc/hostid", how = "bind" }]
"#;

const TWO: &str = r#"version = 1
[etc."passwd"]
text = "root:x:0:0::/root:/bin/sh\nwww:x:33:33::/var/www:/bin/false\n"
[etc."group"]
text = "root:x:0:\nwww:x:33:\n"
[etc."motd"]
text = "two\n"
[etc."dirswap"]
text = "now a file\n"
mode = "0644"
[etc."sudoers"]
text = "root ALL=(ALL) ALL\n%www ALL=(ALL) ALL\n"
mode = "0440"
group = "www"
[etc."added.conf"]
text = "added\n"
[persist."/persist"]
directories = ["/var/lib/kept", "/var/lib/new", { directory = "/srv/www", user = "www", mode = "0750" }]
files = [{ file = "/etc/hostid", how = "bind" }]
"#;

/// The persisted paths each generation bind-mounts.
fn bind_targets(generation: u32) -> [&'static str; 4] {
    let changed = if generation == 1 { "/var/lib/gone" } else { "/var/lib/new" };
    ["/etc/hostid", "/srv/www", "/var/lib/kept", changed]
}

/// The system calls that change something, in the classes a switch (or a
/// confirmation) makes: writes and syncs, names made and removed, owners and modes,
/// mounts, signals, and every open (which may create). Each is injected into; the
/// reads between them are not.
const WRITE_CLASS: &[&str] = &[
    "write",
    "openat2",
    "openat",
    "mkdirat",
    "unlinkat",
    "renameat",
    "renameat2",
    "symlinkat",
    "linkat",
    "fchmod",
    "fchmodat",
    "fchown",
    "fchownat",
    "fsync",
    "open_tree",
    "move_mount",
    "umount2",
    "pidfd_send_signal",
];

/// The calls an error is injected into (a kill anywhere above covers the rest).
const ERRORS: &[(&str, &str)] = &[
    ("write", "ENOSPC"),
    ("fsync", "EIO"),
    ("renameat", "EIO"),
    ("unlinkat", "EIO"),
    ("mkdirat", "ENOSPC"),
    ("symlinkat", "ENOSPC"),
    ("fchown", "EIO"),
    ("move_mount", "EIO"),
    ("umount2", "EIO"),
    ("openat2", "ENOSPC"),
];

/// How many kill points a scenario tries at most: beyond it, every k-th occurrence
/// of each call (its first and last always). `BLANKSLATE_SWEEP=all` tries them all.
const KILL_POINTS: usize = 30;
/// The same for the errors.
const ERROR_POINTS: usize = 15;

/// `budget`, or no limit with `BLANKSLATE_SWEEP=all`.
fn budget(budget: usize) -> usize {
    if std::env::var_os("BLANKSLATE_SWEEP").is_some_and(|v| v == "all") { usize::MAX } else { budget }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Switch,
    Test,
    Boot,
}

/// A switch from generation `from` (active and the boot default) to `to`.
#[derive(Debug, Clone, Copy)]
struct Scenario {
    from: u32,
    to: u32,
    mode: Mode,
}

impl Scenario {
    fn args(self) -> Vec<String> {
        let mut args = vec!["switch".to_owned(), self.to.to_string()];
        match self.mode {
            Mode::Switch => {}
            Mode::Test => args.push("--test".into()),
            Mode::Boot => args.push("--boot".into()),
        }
        args
    }

    /// (active, boot default) once the switch is done.
    fn done(self) -> (u32, u32) {
        match self.mode {
            Mode::Switch => (self.to, self.to),
            Mode::Test => (self.to, self.from),
            Mode::Boot => (self.from, self.to),
        }
    }
}

/// A root with generations 1 and 2 built and `from` active (and the boot default),
/// kept unmounted: its root, and its volume's contents beside it.
struct Template {
    dir: tempfile::TempDir,
    from: u32,
}

impl Template {
    /// Made by the binary in the calling thread's mount namespace.
    fn new(from: u32) -> Template {
        let template = Template { dir: tempfile::tempdir().unwrap(), from };
        let root = Root { dir: tempfile::tempdir().unwrap() };
        std::fs::create_dir_all(root.path().join("persist")).unwrap();
        shell(&format!("mount -t tmpfs volume '{}/persist'", root.path().display()));
        for (name, text) in [("one.toml", ONE), ("two.toml", TWO)] {
            std::fs::write(root.dir.path().join(name), text).unwrap();
        }
        root.ok(&["switch", &root.declaration("one.toml")]);
        root.ok(&["build", &root.declaration("two.toml")]);
        root.ok(&["switch", &from.to_string()]);
        let volume = template.dir.path().join("volume");
        shell(&format!("cp -a '{}/persist' '{}'", root.path().display(), volume.display()));
        root.unmount();
        shell(&format!("cp -a '{}' '{}'", root.path().display(), template.dir.path().join("root").display()));
        template
    }

    /// A copy of the root, its volume a tmpfs with a copy of the volume's contents, its
    /// persisted paths bind-mounted from there as activation mounted them.
    fn instance(&self) -> Root {
        let root = Root { dir: tempfile::tempdir().unwrap() };
        let (to, from) = (root.path(), self.dir.path());
        let mut script = format!(
            "set -e; cp -a '{root}' '{to}'; mount -t tmpfs volume '{to}/persist'; cp -a '{volume}/.' '{to}/persist/'",
            root = from.join("root").display(),
            volume = from.join("volume").display(),
            to = to.display(),
        );
        for target in bind_targets(self.from) {
            let _ = write!(script, "; mount --bind '{to}/persist{target}' '{to}{target}'", to = to.display());
        }
        shell(&script);
        root
    }
}

impl Template {
    /// An instance after `args` (which must succeed) ran on it.
    fn instance_after(&self, args: &[&str]) -> Root {
        let root = self.instance();
        root.ok(args);
        root
    }
}

/// Runs a shell script that must succeed.
fn shell(script: &str) {
    let done = output(Command::new("sh").args(["-c", script]));
    assert!(done.status.success(), "{script}: {}", stderr(&done));
}

/// A scratch root whose volume is a tmpfs mounted in the calling thread's namespace.
struct Root {
    dir: tempfile::TempDir,
}

impl Root {
    fn path(&self) -> PathBuf {
        self.dir.path().join("root")
    }

    fn declaration(&self, name: &str) -> String {
        self.dir.path().join(name).to_str().unwrap().to_owned()
    }

    fn command(&self, args: &[String]) -> Command {
        let mut command = Command::new(BIN);
        command.args(args).arg("--root").arg(self.path()).env("NO_COLOR", "1").env_remove("BLANKSLATE_FAILPOINT");
        command
    }

    fn run(&self, args: &[String]) -> Output {
        output(&mut self.command(args))
    }

    fn ok(&self, args: &[&str]) {
        let args: Vec<String> = args.iter().map(|&a| a.to_owned()).collect();
        let output = self.run(&args);
        assert!(output.status.success(), "{args:?}: {}", stderr(&output));
    }

    /// `args` under strace with `inject` (`SYSCALL:signal=KILL:when=N`, …).
    fn traced(&self, args: &[String], syscall: &str, inject: &str) -> Output {
        let mut command = Command::new(STRACE);
        command.args(["-f", "-qq", "-o", "/dev/null", "-e", &format!("trace={syscall}"), "-e"]);
        command.arg(format!("inject={syscall}:{inject}")).arg(BIN).args(args).arg("--root").arg(self.path());
        output(command.env("NO_COLOR", "1").env_remove("BLANKSLATE_FAILPOINT"))
    }

    /// The write-class calls `args` makes, in order.
    fn calls(&self, args: &[String]) -> Vec<String> {
        let log = self.dir.path().join("calls.log");
        let mut command = Command::new(STRACE);
        command.args(["-f", "-qq", "-o"]).arg(&log).args(["-e", &format!("trace={}", WRITE_CLASS.join(","))]);
        let traced = output(command.arg(BIN).args(args).arg("--root").arg(self.path()).env("NO_COLOR", "1"));
        assert!(traced.status.success(), "{}", stderr(&traced));
        let log = std::fs::read_to_string(log).unwrap();
        log.lines()
            .filter_map(|line| {
                let call = line.split_once(' ').map_or(line, |(_, rest)| rest).trim_start();
                let name = call.split('(').next()?;
                WRITE_CLASS.contains(&name).then(|| name.to_owned())
            })
            .collect()
    }

    /// Everything that must hold once a switch is done (or undone): `(active, boot
    /// default)` as given, /etc exactly the active generation's, its mounts exactly
    /// the ones below the root, the store sound, no record and no temporaries left.
    fn check(&self, (active, current): (u32, u32), context: &str) {
        let root = Dir::open_root(&self.path()).unwrap();
        let state = State::open_existing(&root, Path::new(DEFAULT_STATE_DIR)).unwrap().unwrap();
        assert_eq!(state.active_number(), Some(active), "{context}: the active generation");
        assert_eq!(state.current_number().unwrap(), Some(current), "{context}: the boot default");
        assert_eq!(state.store().verify().unwrap(), Vec::new(), "{context}: the store");
        let repair = blankslate_activator::etc::preview_repair(&root, state.store()).unwrap().unwrap();
        assert!(repair.plan.is_noop(), "{context}: /etc is not generation {active}'s:\n{}", repair.plan);
        let records = self.path().join("etc/.blankslate");
        for record in ["transaction.json", "journal.json"] {
            assert!(!records.join(record).exists(), "{context}: {record} is left");
        }
        let expected: BTreeSet<String> =
            bind_targets(active).iter().map(|p| (*p).to_owned()).chain(["/persist".to_owned()]).collect();
        assert_eq!(self.mounts(), expected, "{context}: the mounts");
        assert_eq!(temporaries(&self.path()), Vec::<PathBuf>::new(), "{context}: temporaries");
    }

    /// The mount points below the root, as paths in it.
    fn mounts(&self) -> BTreeSet<String> {
        let root = self.path().to_str().unwrap().to_owned();
        let table = std::fs::read_to_string("/proc/thread-self/mountinfo").unwrap();
        table
            .lines()
            .filter_map(|line| line.split(' ').nth(4))
            .filter_map(|point| point.strip_prefix(&root).map(str::to_owned))
            .filter(|point| point.starts_with('/'))
            .collect()
    }

    /// Whether a record says a switch is under way.
    fn pending(&self) -> bool {
        self.path().join("etc/.blankslate/transaction.json").exists()
    }
}

impl Root {
    /// Unmounts everything below the root, deepest first.
    fn unmount(&self) -> &Self {
        let mut mounts: Vec<String> = self.mounts().into_iter().collect();
        mounts.sort_by_key(|m| std::cmp::Reverse(m.len()));
        for mount in mounts {
            let _ = output(Command::new("umount").arg(format!("{}{mount}", self.path().display())));
        }
        self
    }
}

impl Drop for Root {
    fn drop(&mut self) {
        self.unmount();
    }
}

/// Whether this test can run: as root (for the mount namespace), with strace. Says
/// why not.
fn can_trace() -> bool {
    let can = root_or_skip("needs root") && Path::new(STRACE).exists();
    if !can {
        eprintln!("skipped: needs root and {STRACE}");
    }
    can
}

/// Names a killed writer may leave, anywhere below `dir` (the volume included).
fn temporaries(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        let Ok(listing) = std::fs::read_dir(&dir) else { continue };
        for entry in listing.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.contains(".tmp-") || name.ends_with(".blankslate-new") || name.contains(".blankslate-migrate") {
                found.push(entry.path());
            }
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                pending.push(entry.path());
            }
        }
    }
    found
}

/// The points to try: `(call, occurrence)`, every one up to `budget`, beyond it every
/// k-th of each call, with each call's first and last always in.
fn points(calls: &[String], budget: usize) -> Vec<(String, usize)> {
    let names: BTreeSet<&String> = calls.iter().collect();
    let step = calls.len().div_ceil(budget.max(1)).max(1);
    let mut out = Vec::new();
    for name in names {
        let count = calls.iter().filter(|c| *c == name).count();
        out.extend((1..=count).filter(|n| n % step == 1 % step || *n == count).map(|n| (name.clone(), n)));
    }
    out
}

/// Kills `args` at each of its points, each time on a root `prepare` makes (with
/// what else it returns), and hands the root to `after` to recover and check;
/// returns how many points were tried, of how many write-class calls.
fn kill_everywhere<T>(
    prepare: impl Fn() -> (Root, T),
    args: &[String],
    after: impl Fn(&Root, &T, &str),
) -> (usize, usize) {
    let calls = prepare().0.calls(args);
    let points = points(&calls, budget(KILL_POINTS));
    for (call, n) in &points {
        let context = format!("`{}` killed at {call} #{n}", args.join(" "));
        let (root, extra) = prepare();
        let killed = root.traced(args, call, &format!("signal=KILL:when={n}"));
        // How many processes /proc lists (an open each) is not for the test to say.
        let reached = killed.status.code().is_none() || call == "openat" && killed.status.success();
        assert!(reached, "{context}: not killed: {}", stderr(&killed));
        after(&root, &extra, &context);
    }
    (points.len(), calls.len())
}

/// Runs `args` again on `root`, which must succeed.
fn again(root: &Root, args: &[String], context: &str) -> Output {
    let again = root.run(args);
    assert!(again.status.success(), "{context}, then again: {}", stderr(&again));
    again
}

/// Kills `scenario` at each of its points, then runs it again and checks the root.
fn killed_everywhere(scenario: Scenario) -> (usize, usize) {
    let args = scenario.args();
    let template = Template::new(scenario.from);
    let (tried, calls) = kill_everywhere(
        || (template.instance(), ()),
        &args,
        |root, (), context| {
            again(root, &args, context);
            root.check(scenario.done(), &format!("{scenario:?}: {context}"));
        },
    );
    assert!(calls > 20, "{scenario:?}: only {calls} write-class calls");
    (tried, calls)
}

/// Gives `scenario` an error at each of its points: it fails changing nothing (or
/// leaves its record for the next command), and running it again does it.
fn failed_everywhere(scenario: Scenario) -> usize {
    let args = scenario.args();
    let template = Template::new(scenario.from);
    let calls = template.instance().calls(&args);
    let mut tried = 0;
    for &(call, errno) in ERRORS {
        let only: Vec<String> = calls.iter().filter(|c| *c == call).cloned().collect();
        for (_, n) in points(&only, budget(ERROR_POINTS) / ERRORS.len() + 1) {
            let context = format!("{scenario:?} with {errno} at {call} #{n}");
            let root = template.instance();
            let failed = root.traced(&args, call, &format!("error={errno}:when={n}"));
            if !failed.status.success() {
                assert_eq!(failed.status.code(), Some(3), "{context}: {}", stderr(&failed));
                let message = stderr(&failed);
                if message.contains("cannot write to standard output") || message.contains("is done by the next") {
                    // Once done, in saying so or in syncing the record away: done, or
                    // on record for the next command.
                    if !root.pending() {
                        root.check(scenario.done(), &format!("{context}: done before it failed"));
                    }
                } else if !root.pending() {
                    root.check((scenario.from, scenario.from), &format!("{context}: what failed is undone"));
                }
            }
            let again = again(&root, &args, &context);
            let context = format!("{context} ({}), then again ({})", stderr(&failed).trim(), stdout(&again).trim());
            root.check(scenario.done(), &context);
            tried += 1;
        }
    }
    tried
}

const SCENARIOS: [Scenario; 4] = [
    Scenario { from: 1, to: 2, mode: Mode::Switch },
    Scenario { from: 2, to: 1, mode: Mode::Switch },
    Scenario { from: 1, to: 2, mode: Mode::Test },
    Scenario { from: 1, to: 2, mode: Mode::Boot },
];

#[test]
fn a_switch_killed_at_any_write_is_finished_by_running_it_again() {
    if !can_trace() {
        return;
    }
    for scenario in SCENARIOS {
        let (tried, calls) = in_namespace(move || killed_everywhere(scenario));
        eprintln!(
            "{scenario:?}: killed at {tried} of its {calls} write-class calls, each finished by running it again"
        );
    }
}

#[test]
fn a_switch_given_an_error_at_any_write_changes_nothing_and_succeeds_again() {
    if !can_trace() {
        return;
    }
    for scenario in SCENARIOS {
        let tried = in_namespace(move || failed_everywhere(scenario));
        eprintln!("{scenario:?}: an error at {tried} points, each undone or finished");
    }
}

/// A generation that adds a persistent root `/data` to generation 2's.
const THREE: &str = "[persist.\"/data\"]\ndirectories = [\"/var/lib/data\"]\n";

/// Preflight: a persistent root that is not a mounted volume (a plain directory of
/// the root, or nothing at all) is refused before anything changes, and says which.
#[test]
fn a_switch_to_a_volume_that_is_not_mounted_changes_nothing() {
    if !root_or_skip("needs root") {
        return;
    }
    in_namespace(|| {
        let root = Template::new(1).instance();
        let three = root.dir.path().join("three.toml");
        std::fs::write(&three, format!("{TWO}{THREE}")).unwrap();
        let three = three.to_str().unwrap().to_owned();
        std::fs::create_dir(root.path().join("data")).unwrap();
        for (case, message) in [
            (
                "a plain directory",
                "persistent root /data is a directory of the root's own file system, not a mounted volume",
            ),
            ("nothing", "persistent root /data is not there to persist from (is the volume mounted?)"),
        ] {
            let output = root.run(&["switch".to_owned(), three.clone()]);
            assert_eq!(output.status.code(), Some(3), "{case}: {}", stderr(&output));
            assert!(stderr(&output).contains(message), "{case}: {}", stderr(&output));
            root.check((1, 1), case);
            let _ = std::fs::remove_dir(root.path().join("data"));
        }
    });
}

/// A failure once /etc changed (a bind mount refused) is undone: the generation
/// before is active again, /etc and mounts and all, and the error says what failed
/// and that nothing changed (issue 17, item 4).
#[test]
fn a_switch_that_fails_after_etc_changed_is_undone() {
    if !can_trace() {
        return;
    }
    in_namespace(|| {
        let root = Template::new(1).instance();
        let failed = root.traced(&["switch".into(), "2".into()], "move_mount", "error=EIO:when=1");
        assert_eq!(failed.status.code(), Some(3), "{}", stderr(&failed));
        let message = stderr(&failed);
        assert!(message.contains("/var/lib/new") && message.contains("Input/output error"), "{message}");
        assert!(message.contains("nothing changed: generation 1 is active again"), "{message}");
        assert!(!message.contains("panicked"), "{message}");
        root.check((1, 1), "undone");
    });
}

/// The store object of generation `number` in `root`.
fn generation_object(root: &Path, number: u32) -> PathBuf {
    let profiles = root.join("var/lib/blankslate/profiles");
    profiles.join(std::fs::read_link(profiles.join(format!("system-{number}-link"))).unwrap())
}

/// The store object of the part `name` (`etc`) of generation `number` in `root`.
fn part(root: &Path, number: u32, name: &str) -> PathBuf {
    let generation = generation_object(root, number);
    generation.join(std::fs::read_link(generation.join(name)).unwrap())
}

/// What cannot be trusted is refused before anything changes: an /etc store object
/// that no longer hashes to its name (a flipped byte), and a previous generation
/// whose declaration cannot be read (which would leave its mounts mounted).
#[test]
fn a_damaged_store_object_or_previous_declaration_changes_nothing() {
    if !root_or_skip("needs root") {
        return;
    }
    in_namespace(|| {
        let template = Template::new(1);
        let root = template.instance();
        let motd = part(&root.path(), 2, "etc").join("etc/motd");
        std::fs::write(&motd, "tw0\n").unwrap();
        let output = root.run(&["switch".into(), "2".into()]);
        assert_eq!(output.status.code(), Some(3), "{}", stderr(&output));
        assert!(stderr(&output).contains("the /etc of generation 2 (store object "), "{}", stderr(&output));
        assert!(stderr(&output).contains("is damaged: content hashes to"), "{}", stderr(&output));
        std::fs::write(&motd, "two\n").unwrap();
        root.check((1, 1), "a damaged /etc object");

        let root = template.instance();
        std::fs::write(generation_object(&root.path(), 1).join("declaration.json"), "{").unwrap();
        let output = root.run(&["switch".into(), "2".into()]);
        assert_eq!(output.status.code(), Some(3), "{}", stderr(&output));
        assert!(stderr(&output).contains("generation 1: cannot read its declaration"), "{}", stderr(&output));
        assert!(!stdout(&output).contains("unmounted"), "{}", stdout(&output));
        let active = std::fs::read_to_string(root.path().join("etc/.blankslate/active")).unwrap();
        assert!(active.starts_with("1 "), "{active}");
        let expected: BTreeSet<String> =
            bind_targets(1).iter().map(|p| (*p).to_owned()).chain(["/persist".into()]).collect();
        assert_eq!(root.mounts(), expected);
    });
}

/// A switch re-hashes an `/etc` object once a boot: a second switch to it in the
/// same boot trusts the record the first left in `/run/blankslate/verified`, and a
/// new boot (its `/run` empty) re-hashes it again, and refuses it if it is damaged.
#[test]
fn a_switch_rehashes_an_object_once_a_boot() {
    if !root_or_skip("needs root") {
        return;
    }
    in_namespace(|| {
        let template = Template::new(1);
        let root = template.instance();
        let verified = root.path().join("run/blankslate/verified");
        for number in ["2", "1"] {
            let output = root.run(&["switch".into(), number.into()]);
            assert!(output.status.success(), "{}", stderr(&output));
        }
        let recorded = std::fs::read_dir(&verified).unwrap().count();
        assert_eq!(recorded, 2, "both objects re-hashed, and recorded");
        // Damage that only a re-hash can see: same length, same place.
        std::fs::write(part(&root.path(), 2, "etc").join("etc/motd"), "tw0\n").unwrap();
        let output = root.run(&["switch".into(), "2".into()]);
        assert!(output.status.success(), "trusted within the boot: {}", stderr(&output));
        let output = root.run(&["switch".into(), "1".into()]);
        assert!(output.status.success(), "{}", stderr(&output));
        std::fs::remove_dir_all(&verified).unwrap();
        let output = root.run(&["switch".into(), "2".into()]);
        assert_eq!(output.status.code(), Some(3), "a new boot re-hashes: {}", stderr(&output));
        assert!(stderr(&output).contains("is damaged: content hashes to"), "{}", stderr(&output));
    });
}

/// A full or closed standard output is an error (exit 3, said on standard error),
/// never a panic, and the switch, which prints only once it is done, is done.
#[test]
fn a_switch_whose_output_fails_is_done_and_says_so() {
    if !root_or_skip("needs root") {
        return;
    }
    in_namespace(|| {
        let template = Template::new(1);
        for case in ["/dev/full", "a closed pipe"] {
            let root = template.instance();
            let mut command = root.command(&["switch".into(), "2".into()]);
            command.stdin(std::process::Stdio::null()).stderr(std::process::Stdio::piped());
            let mut child = if case == "/dev/full" {
                let full = std::fs::OpenOptions::new().write(true).open("/dev/full").unwrap();
                common::Running::spawn(command.stdout(full))
            } else {
                let mut child = common::Running::spawn(command.stdout(std::process::Stdio::piped()));
                drop(child.0.stdout.take());
                child
            };
            let status = child.wait(common::DEADLINE);
            let mut message = String::new();
            std::io::Read::read_to_string(&mut child.0.stderr.take().unwrap(), &mut message).unwrap();
            assert_eq!(status.code(), Some(3), "{case}: {message}");
            assert!(message.contains("error: cannot write to standard output: "), "{case}: {message}");
            assert!(!message.contains("panicked"), "{case}: {message}");
            root.check((2, 2), case);
        }
    });
}

/// The `trial-expire` processes watching trial `id`.
fn watchers(id: &str) -> Vec<u32> {
    let mut found = Vec::new();
    for process in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = process.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else { continue };
        let cmdline = std::fs::read(process.path().join("cmdline")).unwrap_or_default();
        let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
        if args.windows(3).any(|w| w == [&b"trial-expire"[..], b"--id", id.as_bytes()]) {
            found.push(pid);
        }
    }
    found
}

/// The id of the live trial on record in `root`.
fn trial_id(root: &Path) -> String {
    let record: serde_json::Value =
        serde_json::from_slice(&std::fs::read(root.join("run/blankslate/trial.json")).unwrap()).unwrap();
    record["id"].as_str().unwrap().to_owned()
}

/// `confirm` killed at any of its system calls that change something (the signal to
/// the watcher too): confirming again confirms (or there is nothing left to), the
/// trial's generation is the boot default, and no watcher is left running (issue 17,
/// item 6).
#[test]
fn a_confirm_killed_anywhere_leaves_no_watcher_and_confirming_again_confirms() {
    if !can_trace() {
        return;
    }
    in_namespace(|| {
        let template = Template::new(1);
        let on_trial = || {
            let root = template.instance_after(&["switch", "2", "--confirm-within", "120"]);
            let id = trial_id(&root.path());
            assert_eq!(watchers(&id).len(), 1, "the trial is watched");
            (root, id)
        };
        let confirm = vec!["confirm".to_owned()];
        let (root, id) = on_trial();
        let calls = root.calls(&confirm);
        assert!(calls.contains(&"pidfd_send_signal".to_owned()), "the watcher is stopped: {calls:?}");
        assert!(watchers(&id).is_empty());
        drop(root);
        kill_everywhere(on_trial, &confirm, |root, id, context| {
            let recorded = root.path().join("run/blankslate/trial.json").exists();
            let again = again(root, &confirm, context);
            if recorded {
                assert!(stdout(&again).contains("generation 2 confirmed"), "{context}: {}", stdout(&again));
            }
            assert_eq!(watchers(id), Vec::<u32>::new(), "{context}: the watcher is left running");
            root.check((2, 2), context);
            assert!(!root.path().join("run/blankslate/trial.json").exists(), "{context}");
        });
    });
}

/// `switch 1 --boot` while generation 2 is the boot default on trial, killed at any
/// point: run again, it leaves generation 1 the boot default with no boot trial on
/// record, and no generation marked "on boot trial" (issue 17, item 6).
#[test]
fn a_boot_default_moved_back_from_a_trial_leaves_no_trial_mark() {
    if !can_trace() {
        return;
    }
    in_namespace(|| {
        let template = Template::new(1);
        let on_trial = || (template.instance_after(&["switch", "2", "--tries", "2"]), ());
        let back: Vec<String> = ["switch", "1", "--boot"].iter().map(|&a| a.to_owned()).collect();
        kill_everywhere(on_trial, &back, |root, (), context| {
            again(root, &back, context);
            root.check((2, 1), context);
            assert!(!root.path().join("var/lib/blankslate/boot-trial.json").exists(), "{context}");
            let list = root.run(&["generations".into(), "list".into(), "--json".into()]);
            assert!(!stdout(&list).contains("boot trial"), "{context}: {}", stdout(&list));
        });
    });
}

/// `repair` unmounts a mount blankslate recorded (an interrupted switch's, say) that
/// the generation no longer declares, and leaves alone one it did not make.
#[test]
fn repair_unmounts_what_is_on_record_and_no_longer_declared() {
    if !root_or_skip("needs root") {
        return;
    }
    in_namespace(|| {
        let root = Template::new(1).instance();
        let r = root.path();
        let mut script = String::from("set -e");
        for extra in ["/var/lib/recorded", "/var/lib/theirs"] {
            let _ = write!(
                script,
                "; mkdir -p '{r}/persist{extra}' '{r}{extra}'; mount --bind '{r}/persist{extra}' '{r}{extra}'",
                r = r.display()
            );
        }
        shell(&script);
        let record_path = r.join("etc/.blankslate/mounts.json");
        let mut record: serde_json::Value = serde_json::from_slice(&std::fs::read(&record_path).unwrap()).unwrap();
        record["/var/lib/recorded"] = "/persist".into();
        std::fs::write(&record_path, record.to_string()).unwrap();

        let repaired = root.run(&["repair".into()]);
        assert!(repaired.status.success(), "{}", stderr(&repaired));
        let report = stdout(&repaired);
        assert!(report.contains("- /var/lib/recorded        unmounted: no longer declared"), "{report}");
        assert!(report.contains("\n1 unmounted, 0 mounted again"), "{report}");
        let mut expected: BTreeSet<String> =
            bind_targets(1).iter().map(|p| (*p).to_owned()).chain(["/persist".into()]).collect();
        expected.insert("/var/lib/theirs".into());
        assert_eq!(root.mounts(), expected);
        let record: serde_json::Value = serde_json::from_slice(&std::fs::read(&record_path).unwrap()).unwrap();
        assert!(record.get("/var/lib/recorded").is_none(), "{record}");
    });
}
