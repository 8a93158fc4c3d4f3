//! Integration tests of `/etc` activation, through the library, on scratch roots.
//!
//! Every test builds its generations into a store below a temporary root and activates
//! them there; nothing outside the temporary directory is read or written (except the
//! source files a NixOS tree links to, which the test also creates in a temporary
//! directory).

#![allow(clippy::too_many_lines)]

use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use blankslate_activator::etc::{self, Action, Activated, EtcError, EtcGeneration, OnConflict};
use blankslate_core::decl;
use blankslate_core::fs::Dir;
use blankslate_core::generation::{DEFAULT_STATE_DIR, State};
use blankslate_core::store::Store;
use blankslate_test_support::snapshot::{self, Node};
use rustix::fs::{Mode, OFlags, ResolveFlags};

const STORE: &str = "/var/lib/blankslate/store";

/// A scratch root with a store in it.
struct Scratch {
    dir: tempfile::TempDir,
    root: Dir,
    store: Store,
}

impl Scratch {
    fn new() -> Scratch {
        let dir = tempfile::tempdir().unwrap();
        let root = Dir::open_root(dir.path()).unwrap();
        let store = Store::open(&root, Path::new(STORE)).unwrap();
        Scratch { dir, root, store }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Builds a declaration's `/etc` into the store as generation `number`.
    fn build(&self, number: u32, text: &str) -> EtcGeneration {
        let file = self.path().join(format!("generation-{number}.toml"));
        let checked = decl::check(&file, text, None);
        let declaration = checked.declaration.unwrap_or_else(|| panic!("{}", checked.diagnostics));
        let build = blankslate_etc_builder::from_declaration(&declaration).unwrap();
        let object = build.add_to_store(&self.store).unwrap();
        EtcGeneration::load(&self.store, number, &object).unwrap()
    }

    fn try_activate(&self, to: &EtcGeneration, on_conflict: OnConflict) -> etc::Result<Activated> {
        etc::activate(&self.root, &self.store, to, on_conflict)
    }

    fn activate(&self, to: &EtcGeneration) -> Activated {
        self.try_activate(to, OnConflict::Backup).unwrap()
    }

    /// The host path of `etc/<path>` (no symlink followed).
    fn etc(&self, path: &str) -> PathBuf {
        self.path().join("etc").join(path)
    }

    /// What a program inside the root reads at `/etc/<path>`.
    fn read(&self, path: &str) -> String {
        read_in(self.path(), &format!("/etc/{path}")).unwrap_or_else(|e| panic!("/etc/{path}: {e}"))
    }

    fn link(&self, path: &str) -> String {
        std::fs::read_link(self.etc(path)).unwrap().to_string_lossy().into_owned()
    }

    fn snapshot(&self) -> BTreeMap<String, Node> {
        snapshot::tree(&self.path().join("etc"))
    }

    fn write(&self, path: &str, contents: &str) {
        let path = self.etc(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, contents).unwrap();
    }
}

/// Resolves `path` the way the kernel would for a process whose `/` is `root`: an
/// absolute symlink target starts again at `root`, a relative one at the link's
/// directory, `..` never leaves `root`. Returns the host path of the final file.
fn resolve_in(root: &Path, path: &str) -> std::io::Result<PathBuf> {
    let mut pending: Vec<String> = components(path).into_iter().rev().collect();
    let mut current: Vec<String> = Vec::new();
    let mut hops = 0;
    while let Some(name) = pending.pop() {
        if name == ".." {
            current.pop();
            continue;
        }
        let host = current.iter().fold(root.to_path_buf(), |p, c| p.join(c)).join(&name);
        let meta = std::fs::symlink_metadata(&host)?;
        if !meta.file_type().is_symlink() {
            current.push(name);
            continue;
        }
        hops += 1;
        if hops > 40 {
            return Err(std::io::Error::other(format!("{path}: too many levels of symbolic links")));
        }
        let target = std::fs::read_link(&host)?;
        let target = target.to_string_lossy();
        if target.starts_with('/') {
            current.clear();
        }
        pending.extend(components(&target).into_iter().rev());
    }
    Ok(current.iter().fold(root.to_path_buf(), |p, c| p.join(c)))
}

fn components(path: &str) -> Vec<String> {
    Path::new(path)
        .components()
        .filter_map(|c| match c {
            Component::Normal(name) => Some(name.to_string_lossy().into_owned()),
            Component::ParentDir => Some("..".to_owned()),
            _ => None,
        })
        .collect()
}

/// The contents a program inside `root` reads at `path`. The kernel looks up each
/// component atomically; this emulation does not (an entry can turn from a file into a
/// symlink between its `lstat` and the `open`), so a lookup that saw such a change
/// (`EINVAL` from `readlink`, `ELOOP` from the final `O_NOFOLLOW` open) starts again.
/// A missing path is never retried.
fn read_in(root: &Path, path: &str) -> std::io::Result<String> {
    let changed = |e: &std::io::Error| {
        e.raw_os_error().is_some_and(|n| {
            n == rustix::io::Errno::INVAL.raw_os_error() || n == rustix::io::Errno::LOOP.raw_os_error()
        })
    };
    let mut attempts = 0;
    loop {
        attempts += 1;
        let result = resolve_in(root, path).and_then(|host| {
            let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
            let fd = rustix::fs::open(&host, flags, Mode::empty())?;
            std::io::read_to_string(std::fs::File::from(fd))
        });
        match result {
            Err(error) if changed(&error) && attempts < 100 => {}
            other => return other,
        }
    }
}

/// The kernel's own answer: `openat2` with `RESOLVE_IN_ROOT` resolves exactly as a
/// process chrooted at `root` would.
fn read_by_kernel(root: &Path, path: &str) -> std::io::Result<String> {
    let dir = rustix::fs::open(root, OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty())?;
    let fd = rustix::fs::openat2(&dir, path, OFlags::RDONLY | OFlags::CLOEXEC, Mode::empty(), ResolveFlags::IN_ROOT)?;
    std::io::read_to_string(std::fs::File::from(fd))
}

fn file_meta(path: &Path) -> (u32, u32, u32, bool) {
    let meta = std::fs::symlink_metadata(path).unwrap();
    (meta.permissions().mode() & 0o7777, meta.uid(), meta.gid(), meta.is_file())
}

fn action(activated: &Activated, path: &str) -> Option<Action> {
    activated.plan.steps.iter().find(|s| s.path == path).map(|s| s.action.clone())
}

/// Every declared path of a generation.
fn declared(active: &EtcGeneration) -> Vec<String> {
    active.manifest.entries.keys().cloned().collect()
}

const PASSWD: &str = "root:x:0:0::/root:/bin/sh\\nwww:x:33:33::/var/www:/bin/false\\n";
const GROUP: &str = "root:x:0:\\nwww:x:33:\\nwheel:x:10:\\n";

fn users() -> String {
    format!("[etc.\"passwd\"]\ntext = \"{PASSWD}\"\n[etc.\"group\"]\ntext = \"{GROUP}\"\n")
}

#[test]
fn first_activation_links_copies_and_owns_by_the_new_passwd() {
    let scratch = Scratch::new();
    // The host-side passwd of this scratch root knows `www` by another number: the new
    // generation's own passwd must win.
    scratch.write("passwd", "root:x:0:0::/root:/bin/sh\nwww:x:999:999::/:/bin/false\n");
    scratch.write("group", "root:x:0:\nwww:x:999:\n");
    let text = format!(
        "version = 1\n{}\
[etc.\"hosts\"]\ntext = \"127.0.0.1 localhost\\n\"\n\
[etc.\"ssh/ssh_config.d/10-local.conf\"]\ntext = \"Host *\\n\"\n\
[etc.\"www.conf\"]\ntext = \"listen 80\\n\"\nmode = \"0640\"\nuser = \"www\"\ngroup = \"www\"\n\
[etc.\"sudoers\"]\ntext = \"root ALL=(ALL) ALL\\n\"\nmode = \"0440\"\ngroup = \"wheel\"\n",
        users()
    );
    let one = scratch.build(1, &text);
    let activated = scratch.activate(&one);
    assert_eq!(activated.recovered, None);
    assert_eq!(activated.plan.steps.len(), 6);
    for step in &activated.plan.steps {
        let expected = if ["passwd", "group"].contains(&step.path.as_str()) {
            Action::BackUp { backup: format!("{}.blankslate-backup", step.path), found: "a regular file".into() }
        } else {
            Action::Create
        };
        assert_eq!(step.action, expected, "{}", step.path);
    }

    // etc/static -> the object's tree as the live system sees it.
    let expected_static = format!("{STORE}/{}/etc", one.object);
    assert_eq!(one.static_target, expected_static);
    assert_eq!(scratch.link("static"), expected_static);
    assert!(scratch.path().join(expected_static.trim_start_matches('/')).is_dir());

    for path in declared(&one) {
        assert!(std::fs::symlink_metadata(scratch.etc(&path)).is_ok(), "{path} exists");
    }
    for path in ["hosts", "passwd", "group", "ssh/ssh_config.d/10-local.conf"] {
        assert_eq!(scratch.link(path), format!("/etc/static/{path}"));
    }
    assert_eq!(scratch.read("hosts"), "127.0.0.1 localhost\n");
    assert_eq!(scratch.read("ssh/ssh_config.d/10-local.conf"), "Host *\n");
    assert!(scratch.read("passwd").contains("www:x:33:33:"));
    assert!(scratch.read("passwd.blankslate-backup").contains("www:x:999:999:"));

    // Copies: regular files, declared mode, owners from the generation's own files.
    assert_eq!(file_meta(&scratch.etc("www.conf")), (0o640, 33, 33, true));
    assert_eq!(file_meta(&scratch.etc("sudoers")), (0o440, 0, 10, true));
    assert_eq!(scratch.read("www.conf"), "listen 80\n");
    assert_eq!(scratch.read("sudoers"), "root ALL=(ALL) ALL\n");
    assert_eq!(etc::active(&scratch.root).unwrap(), Some(one));
    assert!(!scratch.etc(".blankslate/journal.json").exists());
}

#[test]
fn resolve_in_follows_links_the_way_the_kernel_does_inside_the_root() {
    let scratch = Scratch::new();
    scratch.write("real/file", "inside");
    std::os::unix::fs::symlink("/etc/real", scratch.etc("absolute")).unwrap();
    std::os::unix::fs::symlink("real/../real/file", scratch.etc("relative")).unwrap();
    std::os::unix::fs::symlink("../../../../../../etc/real/file", scratch.etc("escape")).unwrap();
    assert_eq!(scratch.read("absolute/file"), "inside");
    assert_eq!(scratch.read("relative"), "inside");
    assert_eq!(scratch.read("escape"), "inside", "`..` stops at the root");
    assert!(read_in(scratch.path(), "/etc/missing").is_err());
    std::os::unix::fs::symlink("loop", scratch.etc("loop")).unwrap();
    assert!(read_in(scratch.path(), "/etc/loop").is_err());
    // The emulation agrees with the kernel's RESOLVE_IN_ROOT, on a real activation too.
    let one =
        scratch.build(1, "version = 1\n[etc.\"a/b\"]\ntext = \"b\"\n[etc.\"c\"]\ntext = \"c\"\nmode = \"0600\"\n");
    scratch.activate(&one);
    for path in ["/etc/absolute/file", "/etc/relative", "/etc/escape", "/etc/a/b", "/etc/c", "/etc/static/a/b"] {
        assert_eq!(read_in(scratch.path(), path).unwrap(), read_by_kernel(scratch.path(), path).unwrap(), "{path}");
    }
    assert!(read_by_kernel(scratch.path(), "/etc/missing").is_err());
}

/// Loops over `paths` resolving and reading each as a program in `root` would, until
/// `stop`; returns (reads done, failures). A path whose contents are not one of its
/// allowed ones is a failure too.
fn reader(
    root: PathBuf,
    allowed: BTreeMap<String, BTreeSet<String>>,
    stop: Arc<AtomicBool>,
) -> std::thread::JoinHandle<(usize, Vec<String>)> {
    std::thread::spawn(move || {
        let mut reads = 0;
        let mut failures = Vec::new();
        while !stop.load(Ordering::Relaxed) {
            for (path, contents) in &allowed {
                let path = format!("/etc/{path}");
                for (how, read) in [("emulated", read_in as fn(&Path, &str) -> _), ("kernel", read_by_kernel)] {
                    reads += 1;
                    match read(&root, &path) {
                        Ok(text) if contents.contains(&text) => {}
                        Ok(text) => failures.push(format!("{path} ({how}): unexpected contents {text:?}")),
                        Err(error) => failures.push(format!("{path} ({how}): {error}")),
                    }
                }
            }
        }
        (reads, failures)
    })
}

#[test]
fn a_noop_reactivation_plans_nothing_and_never_hides_an_entry() {
    let scratch = Scratch::new();
    let text = format!(
        "version = 1\n{}\
[etc.\"hosts\"]\ntext = \"hosts\"\n\
[etc.\"a/b/c.conf\"]\ntext = \"c\"\n\
[etc.\"copy\"]\ntext = \"copy\"\nmode = \"0600\"\nuser = \"www\"\n",
        users()
    );
    let one = scratch.build(1, &text);
    scratch.activate(&one);
    let before = scratch.snapshot();
    let allowed: BTreeMap<String, BTreeSet<String>> =
        declared(&one).into_iter().map(|p| (p.clone(), BTreeSet::from([scratch.read(&p)]))).collect();
    let stop = Arc::new(AtomicBool::new(false));
    let reading = reader(scratch.path().to_path_buf(), allowed, Arc::clone(&stop));
    for _ in 0..200 {
        let activated = scratch.activate(&one);
        assert!(activated.plan.is_noop(), "{}", activated.plan);
        assert_eq!(activated.plan.steps.len(), 0);
        assert_eq!(activated.plan.switch_static, None);
        assert_eq!(activated.plan.unchanged, one.manifest.entries.len());
        let summary = format!(
            "0 added, 0 changed, 0 removed, 0 backed up, 0 left alone, {} unchanged\n",
            one.manifest.entries.len()
        );
        assert!(activated.plan.to_string().ends_with(&summary), "{}", activated.plan);
    }
    stop.store(true, Ordering::Relaxed);
    let (reads, failures) = reading.join().unwrap();
    assert!(reads > 0);
    assert!(
        failures.is_empty(),
        "{} of {reads} reads failed: {:?}",
        failures.len(),
        &failures[..failures.len().min(10)]
    );
    assert_eq!(scratch.snapshot(), before, "a no-op changes nothing, not even an inode");
}

#[test]
fn switching_back_and_forth_never_hides_a_shared_entry() {
    let scratch = Scratch::new();
    let generation = |n: u32| {
        format!(
            "version = 1\n{}\
[etc.\"hosts\"]\ntext = \"same hosts\"\n\
[etc.\"motd\"]\ntext = \"motd of {n}\"\n\
[etc.\"deep/dir/file.conf\"]\ntext = \"deep of {n}\"\n\
[etc.\"sudoers\"]\ntext = \"same sudoers\"\nmode = \"0440\"\n\
[etc.\"issue\"]\ntext = \"issue of {n}\"\nmode = \"0644\"\nuser = \"www\"\n\
[etc.\"kind\"]\ntext = \"kind of {n}\"\n{}\
[etc.\"only-{n}\"]\ntext = \"only\"\n",
            users(),
            if n == 1 { "" } else { "mode = \"0600\"\n" }
        )
    };
    let one = scratch.build(1, &generation(1));
    let two = scratch.build(2, &generation(2));
    scratch.activate(&one);
    let shared: Vec<String> = declared(&one).into_iter().filter(|p| two.manifest.entries.contains_key(p)).collect();
    assert_eq!(shared.len(), 8);
    let mut allowed: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for path in &shared {
        allowed.entry(path.clone()).or_default().insert(scratch.read(path));
    }
    scratch.activate(&two);
    for path in &shared {
        allowed.entry(path.clone()).or_default().insert(scratch.read(path));
    }
    assert_eq!(allowed["motd"], BTreeSet::from(["motd of 1".to_owned(), "motd of 2".to_owned()]));
    assert_eq!(allowed["kind"].len(), 2);
    assert_eq!(allowed["hosts"].len(), 1);

    let stop = Arc::new(AtomicBool::new(false));
    let reading = reader(scratch.path().to_path_buf(), allowed, Arc::clone(&stop));
    for round in 0..100 {
        let to = if round % 2 == 0 { &one } else { &two };
        let activated = scratch.activate(to);
        assert!(activated.plan.backups().next().is_none(), "{}", activated.plan);
        assert!(!activated.plan.is_noop());
    }
    stop.store(true, Ordering::Relaxed);
    let (reads, failures) = reading.join().unwrap();
    assert!(reads > 0);
    assert!(
        failures.is_empty(),
        "{} of {reads} reads failed: {:?}",
        failures.len(),
        &failures[..failures.len().min(10)]
    );
    // After an even number of switches from generation 2, generation 2 is active.
    assert_eq!(scratch.read("motd"), "motd of 2");
    assert!(!scratch.etc("only-1").exists());
}

#[test]
fn entries_are_added_changed_and_removed_between_generations() {
    let scratch = Scratch::new();
    let one = scratch.build(
        1,
        "version = 1\n\
[etc.\"hosts\"]\ntext = \"hosts\"\n\
[etc.\"motd\"]\ntext = \"motd 1\"\n\
[etc.\"copy\"]\ntext = \"copy 1\"\nmode = \"0600\"\n\
[etc.\"to-copy\"]\ntext = \"was a link\"\n\
[etc.\"to-link\"]\ntext = \"was a copy\"\nmode = \"0644\"\n\
[etc.\"gone/deep/er/link.conf\"]\ntext = \"gone\"\n\
[etc.\"gone-copy/x.conf\"]\ntext = \"gone copy\"\nmode = \"0644\"\n\
[etc.\"keep/a.conf\"]\ntext = \"a\"\n\
[etc.\"keep/b.conf\"]\ntext = \"b\"\n\
[etc.\"held/c.conf\"]\ntext = \"c\"\n",
    );
    scratch.activate(&one);
    // A person's file in a directory that only held a removed entry: the directory stays.
    scratch.write("held/mine", "mine");
    let two = scratch.build(
        2,
        "version = 1\n\
[etc.\"hosts\"]\ntext = \"hosts\"\n\
[etc.\"motd\"]\ntext = \"motd 2\"\n\
[etc.\"copy\"]\ntext = \"copy 2\"\nmode = \"0640\"\n\
[etc.\"to-copy\"]\ntext = \"now a copy\"\nmode = \"0600\"\n\
[etc.\"to-link\"]\ntext = \"now a link\"\n\
[etc.\"keep/a.conf\"]\ntext = \"a\"\n\
[etc.\"new/nested/dir/n.conf\"]\ntext = \"n\"\n\
[etc.\"new-copy\"]\ntext = \"new copy\"\nmode = \"0400\"\n",
    );
    let activated = scratch.activate(&two);
    let plan = &activated.plan;
    assert_eq!(action(&activated, "new/nested/dir/n.conf"), Some(Action::Create));
    assert_eq!(action(&activated, "new-copy"), Some(Action::Create));
    for path in ["copy", "to-copy", "to-link"] {
        assert_eq!(action(&activated, path), Some(Action::Replace), "{path}");
    }
    for path in ["gone/deep/er/link.conf", "gone-copy/x.conf", "keep/b.conf", "held/c.conf"] {
        assert_eq!(action(&activated, path), Some(Action::Remove), "{path}");
    }
    // A link whose contents change costs no step: /etc/static moves under it.
    assert_eq!(action(&activated, "motd"), None);
    assert_eq!(plan.unchanged, 3, "hosts, motd, keep/a.conf");
    assert!(plan.switch_static.is_some());

    assert_eq!(scratch.read("motd"), "motd 2");
    assert_eq!(scratch.read("copy"), "copy 2");
    assert_eq!(file_meta(&scratch.etc("copy")), (0o640, 0, 0, true));
    assert_eq!(file_meta(&scratch.etc("to-copy")), (0o600, 0, 0, true));
    assert_eq!(scratch.read("to-copy"), "now a copy");
    assert_eq!(scratch.link("to-link"), "/etc/static/to-link");
    assert_eq!(scratch.read("to-link"), "now a link");
    assert_eq!(scratch.link("new/nested/dir/n.conf"), "/etc/static/new/nested/dir/n.conf");
    assert_eq!(scratch.read("new/nested/dir/n.conf"), "n");
    assert_eq!(file_meta(&scratch.etc("new-copy")), (0o400, 0, 0, true));
    for gone in ["gone", "gone-copy", "keep/b.conf", "held/c.conf"] {
        assert!(std::fs::symlink_metadata(scratch.etc(gone)).is_err(), "{gone} is removed");
    }
    assert_eq!(scratch.read("keep/a.conf"), "a");
    assert_eq!(scratch.read("held/mine"), "mine", "a directory with a person's file stays");

    // Exactly the declared entries, the state, static and the person's file remain.
    let names: BTreeSet<String> = scratch.snapshot().into_keys().filter(|p| !p.starts_with(".blankslate")).collect();
    let expected: BTreeSet<String> = [
        "static",
        "hosts",
        "motd",
        "copy",
        "to-copy",
        "to-link",
        "keep",
        "keep/a.conf",
        "new",
        "new/nested",
        "new/nested/dir",
        "new/nested/dir/n.conf",
        "new-copy",
        "held",
        "held/mine",
    ]
    .into_iter()
    .map(str::to_owned)
    .collect();
    assert_eq!(names, expected);

    // And back: generation 1 again, exactly as a first activation of it makes it.
    scratch.activate(&one);
    assert_eq!(scratch.read("to-link"), "was a copy");
    assert_eq!(file_meta(&scratch.etc("to-link")), (0o644, 0, 0, true));
    assert_eq!(scratch.link("to-copy"), "/etc/static/to-copy");
    assert_eq!(scratch.read("gone/deep/er/link.conf"), "gone");
    assert!(!scratch.etc("new").exists());
}

/// A package's file kept by declaring it as it is (copied into the etc tree): the live
/// file holds the declared bytes, so the link replaces it and nothing is backed up. A
/// file that differs by one byte still is.
#[test]
fn a_live_file_with_the_declared_bytes_is_taken_over_not_backed_up() {
    let scratch = Scratch::new();
    scratch.write("atd.conf", "OPTS=-l 4\n");
    scratch.write("other.conf", "OPTS=-l 5\n");
    let one = scratch.build(
        1,
        "version = 1\n[etc.\"atd.conf\"]\ntext = \"OPTS=-l 4\\n\"\n[etc.\"other.conf\"]\ntext = \"OPTS=-l 4\\n\"\n",
    );
    let activated = scratch.activate(&one);
    let backed_up: Vec<&str> = activated.plan.backups().map(|s| s.path.as_str()).collect();
    assert_eq!(backed_up, ["other.conf"]);
    assert_eq!(scratch.link("atd.conf"), "/etc/static/atd.conf");
    assert_eq!(scratch.read("atd.conf"), "OPTS=-l 4\n");
    assert!(!scratch.etc("atd.conf.blankslate-backup").exists());
    assert_eq!(scratch.read("other.conf.blankslate-backup"), "OPTS=-l 5\n");
}

#[test]
fn a_persons_file_or_directory_at_a_declared_path_is_backed_up() {
    let scratch = Scratch::new();
    scratch.write("hosts", "my hosts");
    scratch.write("hosts.blankslate-backup", "an older backup");
    scratch.write("profile.d/mine.sh", "export MINE=1");
    scratch.write("nested/dir/app.conf", "my app.conf");
    std::os::unix::fs::symlink("/somewhere/else", scratch.etc("resolv.conf")).unwrap();
    let one = scratch.build(
        1,
        "version = 1\n\
[etc.\"hosts\"]\ntext = \"managed hosts\"\n\
[etc.\"profile.d\"]\ntext = \"managed profile.d\"\n\
[etc.\"nested/dir/app.conf\"]\ntext = \"managed app\"\nmode = \"0644\"\n\
[etc.\"resolv.conf\"]\ntext = \"nameserver 127.0.0.1\"\n",
    );
    let activated = scratch.activate(&one);
    let backed_up: Vec<(String, String, String)> = activated
        .plan
        .backups()
        .map(|s| match &s.action {
            Action::BackUp { backup, found } => (s.path.clone(), backup.clone(), found.clone()),
            _ => unreachable!(),
        })
        .collect();
    assert_eq!(
        backed_up,
        [
            ("hosts".into(), "hosts.blankslate-backup.1".into(), "a regular file".into()),
            ("nested/dir/app.conf".into(), "app.conf.blankslate-backup".into(), "a regular file".into()),
            ("profile.d".into(), "profile.d.blankslate-backup".into(), "a directory".into()),
            ("resolv.conf".into(), "resolv.conf.blankslate-backup".into(), "a symlink to /somewhere/else".into()),
        ]
    );
    let shown = activated.plan.to_string();
    assert!(shown.contains("a regular file is there: moved to hosts.blankslate-backup.1"), "{shown}");
    assert!(shown.contains("0 added, 0 changed, 0 removed, 4 backed up"), "{shown}");
    // Contents preserved, the older backup untouched, the new entries in place.
    assert_eq!(scratch.read("hosts.blankslate-backup.1"), "my hosts");
    assert_eq!(scratch.read("hosts.blankslate-backup"), "an older backup");
    assert_eq!(scratch.read("profile.d.blankslate-backup/mine.sh"), "export MINE=1");
    assert_eq!(scratch.read("nested/dir/app.conf.blankslate-backup"), "my app.conf");
    assert_eq!(scratch.link("resolv.conf.blankslate-backup"), "/somewhere/else");
    assert_eq!(scratch.read("hosts"), "managed hosts");
    assert_eq!(scratch.read("profile.d"), "managed profile.d");
    assert_eq!(scratch.read("nested/dir/app.conf"), "managed app");
    assert_eq!(scratch.link("resolv.conf"), "/etc/static/resolv.conf");
    // Re-activating finds everything in place: the backups are not touched again.
    assert!(scratch.activate(&one).plan.is_noop());
}

#[test]
fn refusing_conflicts_changes_nothing() {
    let scratch = Scratch::new();
    let one = scratch.build(1, "version = 1\n[etc.\"hosts\"]\ntext = \"hosts 1\"\n[etc.\"motd\"]\ntext = \"m\"\n");
    scratch.activate(&one);
    scratch.write("sudoers", "my sudoers");
    scratch.write("ssh/sshd_config/keep", "a directory where a file goes");
    let two = scratch.build(
        2,
        "version = 1\n[etc.\"hosts\"]\ntext = \"hosts 2\"\n[etc.\"new\"]\ntext = \"new\"\n\
[etc.\"sudoers\"]\ntext = \"s\"\nmode = \"0440\"\n[etc.\"ssh/sshd_config\"]\ntext = \"c\"\n",
    );
    let before = scratch.snapshot();
    let error = scratch.try_activate(&two, OnConflict::Refuse).unwrap_err();
    match &error {
        EtcError::Conflicts { count, list } => {
            assert_eq!(*count, 2, "{list}");
            assert!(list.contains("/etc/sudoers: a regular file"), "{list}");
            assert!(list.contains("/etc/ssh/sshd_config: a directory"), "{list}");
        }
        other => panic!("expected Conflicts, got {other}"),
    }
    assert!(error.to_string().contains("nothing was changed"));
    assert_eq!(scratch.snapshot(), before, "a refused activation changes nothing at all");
    assert_eq!(etc::active(&scratch.root).unwrap().map(|a| a.generation), Some(1));

    // A person's directory at /etc/static blocks too.
    std::fs::remove_file(scratch.etc("sudoers")).unwrap();
    std::fs::remove_dir_all(scratch.etc("ssh")).unwrap();
    std::fs::remove_file(scratch.etc("static")).unwrap();
    scratch.write("static/mine", "x");
    let before = scratch.snapshot();
    let error = scratch.try_activate(&two, OnConflict::Refuse).unwrap_err();
    assert!(error.to_string().contains("/etc/static: not a symlink"), "{error}");
    assert_eq!(scratch.snapshot(), before);
    // Without refusing, it is backed up like any other.
    let activated = scratch.activate(&two);
    assert_eq!(activated.plan.switch_static, Some(Some("static.blankslate-backup".into())));
    assert_eq!(scratch.read("static.blankslate-backup/mine"), "x");
    assert_eq!(scratch.read("hosts"), "hosts 2");
}

#[test]
fn a_second_blocked_static_gets_a_free_backup_name() {
    let scratch = Scratch::new();
    scratch.write("static/mine", "first");
    scratch.write("static.blankslate-backup/older", "older");
    let one = scratch.build(1, "version = 1\n[etc.\"hosts\"]\ntext = \"hosts\"\n");
    let activated = scratch.activate(&one);
    assert_eq!(activated.plan.switch_static, Some(Some("static.blankslate-backup.1".into())));
    assert_eq!(scratch.read("static.blankslate-backup.1/mine"), "first");
    assert_eq!(scratch.read("static.blankslate-backup/older"), "older");
    assert_eq!(scratch.read("hosts"), "hosts");
}

#[test]
fn an_edited_copy_is_backed_up_when_changed_and_left_alone_when_removed() {
    let scratch = Scratch::new();
    let one = scratch.build(
        1,
        "version = 1\n\
[etc.\"sudoers\"]\ntext = \"sudoers 1\"\nmode = \"0440\"\n\
[etc.\"leftover.conf\"]\ntext = \"leftover 1\"\nmode = \"0644\"\n\
[etc.\"clean.conf\"]\ntext = \"clean 1\"\nmode = \"0644\"\n\
[etc.\"linked\"]\ntext = \"linked\"\n",
    );
    scratch.activate(&one);
    scratch.write("sudoers", "sudoers edited by a person");
    scratch.write("leftover.conf", "leftover edited by a person");
    // A person replaced a managed link with a file of their own.
    std::fs::remove_file(scratch.etc("linked")).unwrap();
    scratch.write("linked", "my linked");
    let two = scratch.build(2, "version = 1\n[etc.\"sudoers\"]\ntext = \"sudoers 2\"\nmode = \"0440\"\n");
    let activated = scratch.activate(&two);
    assert_eq!(
        action(&activated, "sudoers"),
        Some(Action::BackUp { backup: "sudoers.blankslate-backup".into(), found: "a regular file".into() })
    );
    assert_eq!(action(&activated, "leftover.conf"), Some(Action::LeaveAlone { found: "a regular file".into() }));
    assert_eq!(action(&activated, "linked"), Some(Action::LeaveAlone { found: "a regular file".into() }));
    assert_eq!(action(&activated, "clean.conf"), Some(Action::Remove));
    let shown = activated.plan.to_string();
    assert!(shown.contains("  = leftover.conf no longer declared, left alone: a regular file is there"), "{shown}");
    assert!(shown.ends_with("0 added, 0 changed, 1 removed, 1 backed up, 2 left alone, 0 unchanged\n"), "{shown}");

    assert_eq!(scratch.read("sudoers.blankslate-backup"), "sudoers edited by a person");
    assert_eq!(scratch.read("sudoers"), "sudoers 2");
    assert_eq!(file_meta(&scratch.etc("sudoers")), (0o440, 0, 0, true));
    assert_eq!(scratch.read("leftover.conf"), "leftover edited by a person");
    assert_eq!(scratch.read("linked"), "my linked");
    assert!(!scratch.etc("clean.conf").exists());
}

#[test]
fn an_unknown_owner_fails_before_anything_changes() {
    let scratch = Scratch::new();
    let one = scratch.build(1, "version = 1\n[etc.\"hosts\"]\ntext = \"hosts\"\n");
    scratch.activate(&one);
    let two = scratch.build(
        2,
        "version = 1\n[etc.\"hosts\"]\ntext = \"hosts\"\n[etc.\"x\"]\ntext = \"x\"\nmode = \"0600\"\nuser = \"nobody-here\"\n",
    );
    let before = scratch.snapshot();
    let error = scratch.try_activate(&two, OnConflict::Backup).unwrap_err();
    assert!(matches!(&error, EtcError::UnknownOwner { name, .. } if name == "nobody-here"), "{error}");
    assert_eq!(scratch.snapshot(), before);
}

#[test]
fn a_nixos_etc_tree_activates_links_direct_links_and_copies() {
    let scratch = Scratch::new();
    // The sources a NixOS tree links to live in a /nix/store; this machine has none, so
    // they live in a temporary directory, mirrored at the same path inside the root
    // (on NixOS the store is in both places too).
    let sources = tempfile::tempdir().unwrap();
    let files = [
        ("hosts", "127.0.0.1 nixos\n"),
        ("sudoers", "root ALL=(ALL:ALL) SETENV: ALL\n"),
        ("shadow", "root:!:1::::::\n"),
        ("sshd_config", "PermitRootLogin no\n"),
    ];
    let inside = scratch.path().join(sources.path().strip_prefix("/").unwrap());
    std::fs::create_dir_all(&inside).unwrap();
    for (name, text) in files {
        std::fs::write(sources.path().join(name), text).unwrap();
        std::fs::write(inside.join(name), text).unwrap();
    }
    let tree = tempfile::tempdir().unwrap();
    let t = tree.path();
    std::fs::create_dir_all(t.join("ssh")).unwrap();
    let link =
        |source: &str, name: &str| std::os::unix::fs::symlink(sources.path().join(source), t.join(name)).unwrap();
    link("hosts", "hosts");
    link("sudoers", "sudoers");
    std::fs::write(t.join("sudoers.mode"), "0440\n").unwrap();
    std::fs::write(t.join("sudoers.gid"), "+10\n").unwrap();
    link("shadow", "shadow");
    std::fs::write(t.join("shadow.mode"), "0640").unwrap();
    std::fs::write(t.join("shadow.uid"), "+33").unwrap();
    std::fs::write(t.join("shadow.gid"), "+44").unwrap();
    link("sshd_config", "ssh/sshd_config");
    std::os::unix::fs::symlink("/run/resolvconf/resolv.conf", t.join("resolv.conf")).unwrap();
    std::fs::write(t.join("resolv.conf.mode"), "direct-symlink\n").unwrap();
    std::fs::create_dir_all(scratch.path().join("run/resolvconf")).unwrap();
    std::fs::write(scratch.path().join("run/resolvconf/resolv.conf"), "nameserver 10.0.0.1\n").unwrap();

    let build = blankslate_etc_builder::from_nixos_tree(t).unwrap();
    let object = build.add_to_store(&scratch.store).unwrap();
    let one = EtcGeneration::load(&scratch.store, 1, &object).unwrap();
    assert_eq!(declared(&one), ["hosts", "resolv.conf", "shadow", "ssh/sshd_config", "sudoers"]);
    let activated = scratch.activate(&one);
    assert_eq!(activated.plan.steps.len(), 5);

    assert_eq!(scratch.link("hosts"), "/etc/static/hosts");
    assert_eq!(scratch.link("ssh/sshd_config"), "/etc/static/ssh/sshd_config");
    assert_eq!(scratch.read("hosts"), "127.0.0.1 nixos\n");
    assert_eq!(scratch.read("ssh/sshd_config"), "PermitRootLogin no\n");
    assert_eq!(scratch.link("resolv.conf"), "/run/resolvconf/resolv.conf", "a direct link skips /etc/static");
    assert_eq!(scratch.read("resolv.conf"), "nameserver 10.0.0.1\n");
    assert_eq!(file_meta(&scratch.etc("sudoers")), (0o440, 0, 10, true));
    assert_eq!(scratch.read("sudoers"), "root ALL=(ALL:ALL) SETENV: ALL\n");
    assert_eq!(file_meta(&scratch.etc("shadow")), (0o640, 33, 44, true));
    assert_eq!(scratch.read("shadow"), "root:!:1::::::\n");
    // No sidecar becomes an entry.
    assert!(!scratch.etc("sudoers.mode").exists());
    assert!(scratch.activate(&one).plan.is_noop());
}

/// A backup name the new generation declares is never used (the person's file would
/// be overwritten by the declared one).
#[test]
fn a_backup_never_takes_a_name_the_generation_declares() {
    let scratch = Scratch::new();
    scratch.write("foo", "USER DATA");
    let text = "version = 1\n[etc.\"foo\"]\ntext = \"managed\\n\"\nmode = \"0644\"\n\
                [etc.\"foo.blankslate-backup\"]\ntext = \"also managed\\n\"\n";
    let activated = scratch.activate(&scratch.build(1, text));
    assert_eq!(
        action(&activated, "foo"),
        Some(Action::BackUp { backup: "foo.blankslate-backup.1".into(), found: "a regular file".into() })
    );
    assert_eq!(std::fs::read_to_string(scratch.etc("foo.blankslate-backup.1")).unwrap(), "USER DATA");
    assert_eq!(scratch.read("foo.blankslate-backup"), "also managed\n");
}

/// An entry may change between a file and a directory across generations: the old
/// shape is blankslate's and goes first; a person's file inside it is kept.
#[test]
fn an_entry_changes_between_a_file_and_a_directory() {
    let scratch = Scratch::new();
    let one = scratch
        .build(1, "version = 1\n[etc.\"ssh/sshd_config\"]\ntext = \"a\\n\"\n[etc.\"ssh/moduli\"]\ntext = \"m\\n\"\n");
    let two = scratch.build(2, "version = 1\n[etc.\"ssh\"]\ntext = \"now a file\\n\"\n");
    scratch.activate(&one);
    let activated = scratch.activate(&two);
    assert_eq!(action(&activated, "ssh"), Some(Action::Replace), "the directory was blankslate's");
    assert_eq!(scratch.read("ssh"), "now a file\n");
    let activated = scratch.activate(&one);
    assert_eq!(action(&activated, "ssh"), Some(Action::Remove));
    assert_eq!(scratch.read("ssh/sshd_config"), "a\n");

    // Some of the previous generation's entries already gone (a removal a crash
    // interrupted): the directory is still blankslate's, nothing to back up.
    std::fs::remove_file(scratch.etc("ssh/moduli")).unwrap();
    let activated = scratch.activate(&two);
    assert_eq!(action(&activated, "ssh"), Some(Action::Replace), "{}", activated.plan);
    assert!(!scratch.etc("ssh.blankslate-backup").exists());
    scratch.activate(&one);

    std::fs::write(scratch.etc("ssh/mine"), "a person's").unwrap();
    let activated = scratch.activate(&two);
    assert!(matches!(action(&activated, "ssh"), Some(Action::BackUp { .. })), "{activated:?}");
    assert_eq!(scratch.read("ssh"), "now a file\n");
    assert_eq!(std::fs::read_to_string(scratch.etc("ssh.blankslate-backup/mine")).unwrap(), "a person's");
    assert!(!scratch.etc(".blankslate/journal.json").exists(), "nothing left half-done");
}

/// A no-op reads only the marker; a marker that is missing or of the older format
/// (without the entry count) costs one full look, which writes it again.
#[test]
fn a_no_op_reads_only_the_marker_and_rewrites_an_old_one() {
    let scratch = Scratch::new();
    let one = scratch.build(1, "version = 1\n[etc.\"hosts\"]\ntext = \"h\\n\"\n[etc.\"motd\"]\ntext = \"m\\n\"\n");
    scratch.activate(&one);
    let noop = |scratch: &Scratch| {
        etc::activate_generation(&scratch.root, &scratch.store, 1, &one.object, OnConflict::Backup).unwrap()
    };
    let outcome = noop(&scratch);
    assert!(matches!(&outcome, etc::Outcome::AlreadyActive(marker) if marker.entries == 2), "{outcome:?}");
    assert!(outcome.to_string().ends_with(", 2 unchanged\n"), "{outcome}");
    let marker = scratch.etc(".blankslate/active");
    std::fs::write(&marker, format!("1 {}", one.object)).unwrap();
    assert!(matches!(noop(&scratch), etc::Outcome::Activated(_)));
    assert_eq!(std::fs::read_to_string(&marker).unwrap(), format!("1 {} 2", one.object));
    assert!(matches!(noop(&scratch), etc::Outcome::AlreadyActive(_)));
}

/// An etc tree in a scratch directory, as `blankslate adopt` writes one: `dirs` are
/// `(path, mode, gid)`, `files` are `(path, contents)` (0644 root:root).
fn etc_tree(dirs: &[(&str, u32, u32)], files: &[(&str, &str)]) -> tempfile::TempDir {
    let tree = tempfile::tempdir().unwrap();
    for (path, contents) in files {
        let path = tree.path().join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, contents).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    }
    for (path, mode, gid) in dirs {
        let path = tree.path().join(path);
        std::fs::create_dir_all(&path).unwrap();
        std::os::unix::fs::chown(&path, Some(0), Some(*gid)).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(*mode)).unwrap();
    }
    tree
}

fn tree_declaration(tree: &Path) -> String {
    format!("version = 1\n[etc_tree]\nsource = \"{}\"\n", tree.display())
}

/// `(mode, uid, gid)` of a directory below the scratch root's `/etc`.
fn dir_meta(scratch: &Scratch, path: &str) -> (u32, u32, u32) {
    let meta = std::fs::symlink_metadata(scratch.etc(path)).unwrap_or_else(|e| panic!("/etc/{path}: {e}"));
    assert!(meta.is_dir(), "/etc/{path} is a directory");
    (meta.mode() & 0o7777, meta.uid(), meta.gid())
}

/// Debian's `ssl/private` (0710 root:ssl-cert) keeps its owner and mode, also where
/// an earlier generation made it an ordinary directory; empty directories exist. A
/// switch that no longer declares them removes the empty one, keeps the one a person
/// wrote into (and says so), and makes a still-needed one ordinary again.
#[test]
fn declared_directories_get_their_owner_and_mode_and_go_only_when_empty() {
    let scratch = Scratch::new();
    // Generation 1 makes ssl/private as an ordinary directory for the key below it.
    let one = scratch.build(1, "version = 1\n[etc.\"ssl/private/key.pem\"]\ntext = \"old key\\n\"\n");
    scratch.activate(&one);
    assert_eq!(dir_meta(&scratch, "ssl/private"), (0o755, 0, 0));

    let debian = etc_tree(
        &[
            ("ssl/private", 0o710, 110),
            ("apt/sources.list.d", 0o755, 0),
            ("sudoers.d", 0o750, 0),
            ("empty/deep", 0o700, 0),
        ],
        &[("ssl/private/key.pem", "key\n")],
    );
    let two = scratch.build(2, &tree_declaration(debian.path()));
    let activated = scratch.activate(&two);
    assert_eq!(action(&activated, "ssl/private"), Some(Action::Replace), "{}", activated.plan);
    assert_eq!(action(&activated, "sudoers.d"), Some(Action::Create), "{}", activated.plan);
    assert!(activated.plan.to_string().contains("+ sudoers.d     directory 0750 root:root"), "{}", activated.plan);
    assert_eq!(dir_meta(&scratch, "ssl/private"), (0o710, 0, 110));
    assert_eq!(dir_meta(&scratch, "apt/sources.list.d"), (0o755, 0, 0));
    assert_eq!(dir_meta(&scratch, "sudoers.d"), (0o750, 0, 0));
    assert_eq!(dir_meta(&scratch, "empty/deep"), (0o700, 0, 0));
    assert_eq!(scratch.read("ssl/private/key.pem"), "key\n");
    // A person's file goes where the directory is.
    scratch.write("apt/sources.list.d/mine.list", "deb http://example.org/ stable main\n");

    let ordinary = etc_tree(&[], &[("ssl/private/key.pem", "key\n")]);
    let three = scratch.build(3, &tree_declaration(ordinary.path()));
    let activated = scratch.activate(&three);
    let plan = activated.plan.to_string();
    assert_eq!(action(&activated, "sudoers.d"), Some(Action::Remove), "{plan}");
    assert_eq!(action(&activated, "empty/deep"), Some(Action::Remove), "{plan}");
    assert!(!scratch.etc("sudoers.d").exists() && !scratch.etc("empty").exists(), "{plan}");
    assert!(matches!(action(&activated, "apt/sources.list.d"), Some(Action::LeaveAlone { .. })), "{plan}");
    assert!(
        plan.contains("= apt/sources.list.d no longer declared, left alone: a directory holding a person's files"),
        "{plan}"
    );
    assert!(scratch.etc("apt/sources.list.d/mine.list").is_file(), "a person's file is never lost");
    // Still the parent of a declared file: an ordinary directory again.
    assert_eq!(action(&activated, "ssl/private"), Some(Action::Replace), "{plan}");
    assert_eq!(dir_meta(&scratch, "ssl/private"), (0o755, 0, 0));
    assert_eq!(scratch.read("ssl/private/key.pem"), "key\n");

    // Back to generation 2: the kept directory is taken as it is, with what it holds.
    scratch.activate(&two);
    assert_eq!(dir_meta(&scratch, "ssl/private"), (0o710, 0, 110));
    assert!(scratch.etc("apt/sources.list.d/mine.list").is_file());
    assert_eq!(dir_meta(&scratch, "sudoers.d"), (0o750, 0, 0));
}

/// A declared directory with the wrong mode or owner, or gone, is put back by a
/// repair, and what is in it stays; a file where it goes is moved aside.
#[test]
fn repair_puts_back_a_declared_directory() {
    let scratch = Scratch::new();
    let tree = etc_tree(&[("ssl/private", 0o710, 110), ("sudoers.d", 0o750, 0)], &[("ssl/private/key.pem", "key\n")]);
    let one = scratch.build(1, &tree_declaration(tree.path()));
    scratch.activate(&one);
    std::fs::set_permissions(scratch.etc("ssl/private"), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::os::unix::fs::chown(scratch.etc("ssl/private"), Some(0), Some(0)).unwrap();
    scratch.write("ssl/private/mine.pem", "a person's key\n");
    std::fs::remove_dir(scratch.etc("sudoers.d")).unwrap();
    std::fs::write(scratch.etc("sudoers.d"), "a file\n").unwrap();

    let state = State::open_locked(&scratch.root, Path::new(DEFAULT_STATE_DIR)).unwrap();
    let repaired = etc::repair(&state).unwrap().unwrap();
    let plan = repaired.plan.to_string();
    assert_eq!(action(&repaired, "ssl/private"), Some(Action::Fix { found: "mode 0755, owner 0:0".into() }), "{plan}");
    assert!(matches!(action(&repaired, "sudoers.d"), Some(Action::BackUp { .. })), "{plan}");
    assert_eq!(dir_meta(&scratch, "ssl/private"), (0o710, 0, 110));
    assert_eq!(dir_meta(&scratch, "sudoers.d"), (0o750, 0, 0));
    assert_eq!(std::fs::read_to_string(scratch.etc("ssl/private/mine.pem")).unwrap(), "a person's key\n");
    assert_eq!(std::fs::read_to_string(scratch.etc("sudoers.d.blankslate-backup")).unwrap(), "a file\n");
    let again = etc::repair(&state).unwrap().unwrap();
    assert!(again.plan.is_noop(), "{}", again.plan);
}

/// A repair finds a managed link replaced by a file: with the declared bytes it is
/// taken over, otherwise moved aside; `repair_only` looks at the paths it is given
/// and at nothing else.
#[test]
fn repair_takes_over_a_file_with_the_declared_bytes_and_repair_only_keeps_to_its_paths() {
    let scratch = Scratch::new();
    let one =
        scratch.build(1, "version = 1\n[etc.\"same\"]\ntext = \"same\\n\"\n[etc.\"edited\"]\ntext = \"declared\\n\"\n");
    scratch.activate(&one);
    for (name, contents) in [("same", "same\n"), ("edited", "a person's\n")] {
        std::fs::remove_file(scratch.etc(name)).unwrap();
        std::fs::write(scratch.etc(name), contents).unwrap();
    }
    let state = State::open_locked(&scratch.root, Path::new(DEFAULT_STATE_DIR)).unwrap();
    let only = etc::repair_only(&state, &["same".to_owned()]).unwrap().unwrap();
    assert_eq!(action(&only, "same"), Some(Action::Replace), "{}", only.plan);
    assert_eq!(action(&only, "edited"), None, "{}", only.plan);
    assert!(only.plan.to_string().contains("1 taken over"), "{}", only.plan);
    assert_eq!(scratch.link("same"), "/etc/static/same");
    assert_eq!(std::fs::read_to_string(scratch.etc("edited")).unwrap(), "a person's\n", "not its path");

    let repaired = etc::repair(&state).unwrap().unwrap();
    assert!(matches!(action(&repaired, "edited"), Some(Action::BackUp { .. })), "{}", repaired.plan);
    assert!(!scratch.etc("same.blankslate-backup").exists());
}

/// A declared directory that becomes a file: an empty one is replaced, one holding a
/// person's files moved aside; and back.
#[test]
fn a_declared_directory_changes_to_a_file_and_back() {
    let scratch = Scratch::new();
    let tree = etc_tree(&[("sudoers.d", 0o750, 0)], &[]);
    let one = scratch.build(1, &tree_declaration(tree.path()));
    let two = scratch.build(2, "version = 1\n[etc.\"sudoers.d\"]\ntext = \"now a file\\n\"\n");
    scratch.activate(&one);
    let activated = scratch.activate(&two);
    assert_eq!(action(&activated, "sudoers.d"), Some(Action::Replace), "{}", activated.plan);
    assert_eq!(scratch.read("sudoers.d"), "now a file\n");
    let activated = scratch.activate(&one);
    assert_eq!(action(&activated, "sudoers.d"), Some(Action::Replace), "{}", activated.plan);
    assert_eq!(dir_meta(&scratch, "sudoers.d"), (0o750, 0, 0));

    scratch.write("sudoers.d/mine", "a person's\n");
    let activated = scratch.activate(&two);
    assert!(matches!(action(&activated, "sudoers.d"), Some(Action::BackUp { .. })), "{}", activated.plan);
    assert_eq!(scratch.read("sudoers.d"), "now a file\n");
    assert_eq!(std::fs::read_to_string(scratch.etc("sudoers.d.blankslate-backup/mine")).unwrap(), "a person's\n");

    // An empty directory a person made inside is a person's too: moved aside with it,
    // never a rename onto a directory that fails half-way.
    std::fs::remove_dir_all(scratch.etc("sudoers.d.blankslate-backup")).unwrap();
    scratch.activate(&one);
    std::fs::create_dir(scratch.etc("sudoers.d/sub")).unwrap();
    let activated = scratch.activate(&two);
    assert!(matches!(action(&activated, "sudoers.d"), Some(Action::BackUp { .. })), "{}", activated.plan);
    assert_eq!(scratch.read("sudoers.d"), "now a file\n");
    assert!(scratch.etc("sudoers.d.blankslate-backup/sub").is_dir());
    assert!(!scratch.etc(".blankslate/journal.json").exists(), "nothing left half-done");
}
