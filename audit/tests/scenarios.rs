//! The audit on scratch roots: a clean activation audits clean; then every kind of
//! finding is planted (hostile names and file types included) and each is reported
//! as what it is. Everything that mounts runs in a thread with a private mount
//! namespace of its own, which dies with the thread: nothing reaches the host.

use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Path, PathBuf};

use blankslate_activator::etc::{self, EtcGeneration, OnConflict};
use blankslate_audit::{Class, Report, Setup};
use blankslate_decl::{self as decl, Declaration};
use blankslate_state::generation::State;
use blankslate_sys::fs::Dir;
use blankslate_sys::mount::{self, MountFlags, Source};
use blankslate_test_support::{in_namespace, root_or_skip};

const DECLARATION: &str = r#"version = 1

[persist."/persist"]
directories = [
  "/var/log",
  { directory = "/var/lib/app", user = "app", group = "app", mode = "0750" },
]
files = [
  "/etc/machine-id",
  { file = "/root/.bash_history", how = "symlink", mode = "0600" },
]

[etc."passwd"]
text = "root:x:0:0::/root:/bin/sh\napp:x:2000:2000::/:/bin/false\n"

[etc."group"]
text = "root:x:0:\napp:x:2000:\n"

[etc."hosts"]
text = "127.0.0.1 localhost\n"

[etc."sudoers"]
text = "root ALL=(ALL) ALL\n"
mode = "0440"

[etc."ssh/sshd_config"]
text = "PermitRootLogin no\n"

[audit]
ignore = ["/root/.cache/**", "/**/*.swp"]
"#;

const STATE_DIR: &str = "/var/lib/blankslate";

/// Runs `body` as root in a private mount namespace; skipped (with a note) otherwise.
fn as_root_in_namespace(body: impl FnOnce() + Send + 'static) {
    if !root_or_skip("needs root") {
        return;
    }
    in_namespace(body);
}

fn declaration(text: &str) -> Declaration {
    let checked = decl::check(Path::new("t.toml"), text, None);
    checked.declaration.unwrap_or_else(|| panic!("{}", checked.diagnostics))
}

/// A scratch root with a built and activated generation: /etc linked, persisted
/// paths mounted from the volume at `persist/`.
struct Scratch {
    // First, so that it is dropped first: every mount in the scratch tree goes, and
    // the directory can be removed from inside the namespace (else it stays in /tmp).
    _mounts: mount::OwnMount,
    _dir: tempfile::TempDir,
    root: PathBuf,
    outside: PathBuf,
}

impl Scratch {
    fn activated() -> Scratch {
        Scratch::activated_with(DECLARATION, true)
    }

    /// Activates `text`; with `volume`, a tmpfs is mounted at `persist/` first (as boot
    /// mounts the volume), without, the persistent root is a plain directory of the root.
    fn activated_with(text: &str, volume: bool) -> Scratch {
        Scratch::activated_mounting(text, |root| {
            if volume {
                mount::mount_new(root, "persist", "tmpfs", &[], rustix::mount::MountAttrFlags::empty()).unwrap();
            }
        })
    }

    /// Activates `text` once `volumes` has mounted what it wants in the root (the
    /// directory `persist/` is there).
    fn activated_mounting(text: &str, volumes: impl FnOnce(&Dir)) -> Scratch {
        let dir = tempfile::tempdir().unwrap();
        let mounts = mount::OwnMount::new(&Dir::open_root(dir.path()).unwrap()).unwrap();
        let root = dir.path().join("root");
        let outside = dir.path().join("outside");
        std::fs::create_dir_all(root.join("persist")).unwrap();
        std::fs::create_dir_all(&outside).unwrap();
        let declaration = declaration(text);
        let root_dir = Dir::open_root(&root).unwrap();
        volumes(&root_dir);
        let state = State::open_locked(&root_dir, Path::new(STATE_DIR)).unwrap();
        let etc_object =
            blankslate_etc_builder::from_declaration(&declaration).unwrap().add_to_store(state.store()).unwrap();
        let built = state.build(&declaration, &[("etc", &etc_object)]).unwrap();
        let active = EtcGeneration::load(state.store(), built.generation, &etc_object).unwrap();
        etc::activate(&root_dir, state.store(), &active, OnConflict::Backup).unwrap();
        let tree = state.store().open_object(&etc_object).unwrap().open_dir("etc").unwrap();
        let users = etc::users_from_contents(&root_dir, |name| tree.read(name).ok());
        let report = blankslate_persist::bring_in(&root_dir, &declaration, &users, None).unwrap();
        assert!(report.conflicts.is_empty(), "{report:?}");
        Scratch { _mounts: mounts, _dir: dir, root, outside }
    }

    fn audit(&self) -> Report {
        let root = Dir::open_root(&self.root).unwrap();
        let state = State::open_existing(&root, Path::new(STATE_DIR)).unwrap().unwrap();
        let number = etc::active(&root).unwrap().unwrap().generation;
        let generation = state.generation(number).unwrap();
        let declaration = Declaration::from_canonical_json(&state.declaration_json(&generation).unwrap()).unwrap();
        let object = state.part(&generation, "etc").unwrap().unwrap();
        let active = EtcGeneration::load(state.store(), number, &object).unwrap();
        let tree = state.store().open_object(&object).unwrap().open_dir("etc").unwrap();
        let users = etc::users_from_contents(&root, |name| tree.read(name).ok());
        let root_path = std::fs::canonicalize(&self.root).unwrap();
        let setup = Setup {
            root: &root,
            root_path: &root_path,
            declaration: &declaration,
            etc: Some(&active),
            users: &users,
            state_dir: Path::new(STATE_DIR),
            generation: Some(number),
            generations: blankslate_audit::Generations::default(),
            own_outputs: &[],
            limit: 100,
            sizes: true,
        };
        blankslate_audit::audit(&setup).unwrap()
    }

    fn path(&self, relative: &str) -> PathBuf {
        self.root.join(relative)
    }

    fn write(&self, relative: &str, contents: &[u8]) {
        let path = self.path(relative);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, contents).unwrap();
    }
}

fn find<'a>(report: &'a Report, class: Class, path: &[u8]) -> Vec<&'a blankslate_audit::Finding> {
    report.findings.iter().filter(|f| f.class == class && f.path == path).collect()
}

fn summary(report: &Report) -> String {
    report
        .findings
        .iter()
        .map(|f| format!("{} {} {}", f.class.key(), f.kind, blankslate_audit::render::escape(&f.path)))
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn a_clean_activation_audits_clean() {
    as_root_in_namespace(|| {
        let scratch = Scratch::activated();
        // A volume as boot finds it: the state at its own path inside, and the
        // file system's empty lost+found.
        scratch.write("persist/var/lib/blankslate/profiles/current", b"");
        std::fs::create_dir(scratch.path("persist/lost+found")).unwrap();
        let report = scratch.audit();
        assert_eq!(report.exit_code(), 0, "{}", summary(&report));
        assert!(report.findings.is_empty(), "{}", summary(&report));
        // The persisted mounts and the state directory were skipped, not walked.
        assert!(report.stats.declared > 0);
    });
}

/// A volume mounted inside another's mount point (`/persist/big` in `/persist`): its
/// mount point is the volume's business, not a stray; unmounted, its paths are
/// reported missing and nothing of it is taken for stray data of `/persist`.
#[test]
fn a_volume_nested_in_another_audits_clean() {
    if !root_or_skip("needs root") {
        return;
    }
    let text = format!(
        "{DECLARATION}\n[persist.\"/persist/big\"]\ndevice = \"LABEL=big\"\ndirectories = [\"/var/lib/big\"]\n"
    );
    in_namespace(move || {
        let scratch = Scratch::activated_mounting(&text, |root| {
            mount::mount_new(root, "persist", "tmpfs", &[], rustix::mount::MountAttrFlags::empty()).unwrap();
            let persist = root.open_dir("persist").unwrap();
            persist.create_dir("big", 0o755).unwrap();
            mount::mount_new(&persist, "big", "tmpfs", &[("mode", "755")], rustix::mount::MountAttrFlags::empty())
                .unwrap();
        });
        scratch.write("persist/big/var/lib/big/kept", b"big data");
        scratch.write("persist/var/lib/blankslate/profiles/current", b"");
        let report = scratch.audit();
        assert_eq!(report.exit_code(), 0, "{}", summary(&report));
        assert_eq!(std::fs::read(scratch.path("var/lib/big/kept")).unwrap(), b"big data");
        let big = Dir::open_root(&scratch.path("var/lib")).unwrap();
        mount::unmount(&big, "big").unwrap();
        let persist = Dir::open_root(&scratch.path("persist")).unwrap();
        mount::unmount(&persist, "big").unwrap();
        let report = scratch.audit();
        let found = summary(&report);
        assert!(found.contains("persist source-missing /var/lib/big"), "{found}");
        assert!(!found.contains("persist-stray"), "{found}");
    });
}

/// Plants every kind of finding and checks each.
fn plant(scratch: &Scratch) {
    let s = scratch;
    // Undeclared state: a group with hostile names and special files inside.
    s.write("srv/data/a.bin", &[0; 1000]);
    s.write("srv/data/deep/er/b.bin", &[0; 24]);
    s.write("srv/data/editor.swp", b"ignored by glob");
    std::fs::write(s.path("srv/data").join(std::ffi::OsStr::from_bytes(b"bad\xffname")), b"12345").unwrap();
    std::fs::write(s.path("srv/data/new\nline"), b"xy").unwrap();
    // Single entries right in skeleton directories: each its own finding.
    s.write("root/notes.txt", b"remember\n");
    std::fs::write(s.path("srv").join(std::ffi::OsStr::from_bytes(b"\xfe\xff")), b"abc").unwrap();
    std::fs::write(s.path("srv/line\nbreak"), b"").unwrap();
    rustix::fs::mknodat(
        rustix::fs::CWD,
        s.path("var/lib/fifo"),
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::from_raw_mode(0o600),
        0,
    )
    .unwrap();
    // The socket file stays when the listener is dropped.
    drop(std::os::unix::net::UnixListener::bind(s.path("var/lib/sock")).unwrap());
    symlink("/nowhere/at/all", s.path("var/lib/dangling")).unwrap();
    rustix::fs::mknodat(
        rustix::fs::CWD,
        s.path("var/lib/null"),
        rustix::fs::FileType::CharacterDevice,
        rustix::fs::Mode::from_raw_mode(0o600),
        rustix::fs::makedev(1, 3),
    )
    .unwrap();
    s.write("var/lib/newapp/db/state", &[7; 4096]);
    // Ignored: regenerated at boot, or by [audit] ignore.
    s.write("tmp/scratch", b"tmp");
    s.write("var/cache/apt/pkgcache.bin", &[1; 100]);
    s.write("root/.cache/thumbs/x", b"cache");
    // /etc drift.
    std::fs::remove_file(s.path("etc/hosts")).unwrap();
    std::fs::write(s.path("etc/hosts"), b"127.0.0.1 localhost\n10.0.0.1 db\n").unwrap();
    std::fs::remove_file(s.path("etc/ssh/sshd_config")).unwrap();
    symlink("/usr/share/sshd_config", s.path("etc/ssh/sshd_config")).unwrap();
    std::fs::write(s.path("etc/sudoers"), b"ALL ALL=(ALL) NOPASSWD: ALL\n").unwrap();
    std::fs::set_permissions(s.path("etc/sudoers"), std::fs::Permissions::from_mode(0o644)).unwrap();
    std::fs::remove_file(s.path("etc/group")).unwrap();
    // /etc strays.
    s.write("etc/hosts.allow", b"sshd: 10.0.0.0/8\n");
    s.write("etc/ssh/ssh_host_ed25519_key", b"-----BEGIN KEY-----\n");
    // Persistence: /var/log unmounted (and its source's mode wrong), /var/lib/app
    // mounted from elsewhere (and its source's owner wrong), the symlinked history
    // replaced by a file, the machine-id's source gone.
    let root = Dir::open_root(&s.root).unwrap();
    mount::unmount(&root.open_dir("var").unwrap(), "log").unwrap();
    std::fs::set_permissions(s.path("persist/var/log"), std::fs::Permissions::from_mode(0o777)).unwrap();
    let lib = root.open_dir("var/lib").unwrap();
    mount::unmount(&lib, "app").unwrap();
    mount::bind(Source::HostPath(&s.outside), &lib, "app", MountFlags::empty()).unwrap();
    std::os::unix::fs::chown(s.path("persist/var/lib/app"), Some(0), Some(0)).unwrap();
    std::fs::remove_file(s.path("root/.bash_history")).unwrap();
    std::fs::write(s.path("root/.bash_history"), b"ls\n").unwrap();
    std::fs::remove_file(s.path("persist/etc/machine-id")).unwrap();
    // Persist strays, and a persist temporary that must not be reported.
    s.write("persist/var/lib/oldapp/data", &[3; 300]);
    s.write("persist/.app.blankslate-persist-add/x", b"in progress");
    // What fsck recovered is reported; lost+found itself is not.
    s.write("persist/lost+found/#4711", b"recovered");
}

#[test]
fn every_finding_kind_is_reported() {
    if !root_or_skip("needs root") {
        return;
    }
    let (human, json) = in_namespace(|| {
        let scratch = Scratch::activated();
        plant(&scratch);
        let report = scratch.audit();
        let text = summary(&report);
        let one = |class: Class, path: &[u8], kind: &str| {
            let found = find(&report, class, path);
            assert!(found.iter().any(|f| f.kind == kind), "{class:?} {kind} {}\n{text}", String::from_utf8_lossy(path));
        };
        // Undeclared: the group, sized and counted (the .swp is ignored inside it).
        let data = find(&report, Class::Undeclared, b"/srv/data");
        assert_eq!(
            (data[0].files, data[0].bytes, data[0].kind.as_str()),
            (4, 1000 + 24 + 5 + 2, "directory"),
            "{text}"
        );
        one(Class::Undeclared, b"/root/notes.txt", "file");
        one(Class::Undeclared, b"/srv/\xfe\xff", "file");
        one(Class::Undeclared, b"/srv/line\nbreak", "file");
        one(Class::Undeclared, b"/var/lib/fifo", "fifo");
        one(Class::Undeclared, b"/var/lib/sock", "socket");
        one(Class::Undeclared, b"/var/lib/dangling", "symlink");
        one(Class::Undeclared, b"/var/lib/null", "device");
        one(Class::Undeclared, b"/var/lib/newapp", "directory");
        // /etc.
        one(Class::EtcDrift, b"/etc/hosts", "replaced-by-file");
        one(Class::EtcDrift, b"/etc/ssh/sshd_config", "points-elsewhere");
        one(Class::EtcDrift, b"/etc/sudoers", "edited");
        one(Class::EtcDrift, b"/etc/sudoers", "wrong-mode");
        one(Class::EtcDrift, b"/etc/group", "missing");
        one(Class::EtcStray, b"/etc/hosts.allow", "file");
        one(Class::EtcStray, b"/etc/ssh/ssh_host_ed25519_key", "file");
        // Persistence.
        one(Class::Persist, b"/var/log", "not-mounted");
        one(Class::Persist, b"/var/log", "wrong-mode");
        one(Class::Persist, b"/var/lib/app", "wrong-source");
        one(Class::Persist, b"/var/lib/app", "wrong-owner");
        one(Class::Persist, b"/root/.bash_history", "replaced-by-file");
        one(Class::Persist, b"/etc/machine-id", "source-missing");
        // Its bind mount is still there, on the deleted file.
        let machine_id = find(&report, Class::Persist, b"/etc/machine-id");
        assert!(machine_id[0].reason.contains("a deleted copy"), "{}", machine_id[0].reason);
        one(Class::PersistStray, b"/persist/var/lib/oldapp", "directory");
        one(Class::PersistStray, b"/persist/lost+found/#4711", "file");
        assert!(find(&report, Class::PersistStray, b"/persist/lost+found").is_empty(), "{text}");
        assert!(!text.contains("blankslate-persist-add"), "{text}");
        assert!(!text.contains("/tmp") && !text.contains("cache") && !text.contains(".swp"), "{text}");
        // Ignored: tmp, var/cache, root/.cache, the .swp.
        assert_eq!(report.ignored.files, 4, "{:?}", report.ignored);
        assert_eq!(report.exit_code(), 2);
        let mut json = blankslate_audit::render::json(&report, "ROOT");
        json.as_object_mut().unwrap().remove("stats");
        json.as_object_mut().unwrap().remove("time");
        (blankslate_audit::render::human(&report, "ROOT", false), serde_json::to_string_pretty(&json).unwrap())
    });
    insta::assert_snapshot!("human", human);
    insta::assert_snapshot!("json", json);
}

#[test]
fn deep_trees_use_few_descriptors_and_wide_ones_little_memory() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    // 300 levels: deeper than the walker keeps descriptors open for.
    let mut deep = root.join("srv/deep");
    for _ in 0..300 {
        deep.push("d");
    }
    std::fs::create_dir_all(&deep).unwrap();
    std::fs::write(deep.join("leaf"), b"leaf").unwrap();
    std::fs::create_dir_all(root.join("srv/a/b")).unwrap();
    std::fs::write(root.join("srv/a/b/c"), b"c").unwrap();
    let report = audit_plain(&root, "version = 1\n");
    assert!(report.stats.max_open <= blankslate_audit::walk::MAX_OPEN + 1, "{:?}", report.stats);
    let deep = find(&report, Class::Undeclared, b"/srv/deep");
    assert_eq!((deep[0].files, deep[0].bytes), (1, 4), "{}", summary(&report));
    assert_eq!(find(&report, Class::Undeclared, b"/srv/a")[0].files, 1);
    assert_eq!(report.exit_code(), 1);
}

/// Audits `root` (no generation, no /etc) against `text`.
fn audit_plain(root: &Path, text: &str) -> Report {
    let declaration = declaration(text);
    let users = blankslate_decl::UserDb::from_texts("", "", "");
    let root_dir = Dir::open_root(root).unwrap();
    let root_path = std::fs::canonicalize(root).unwrap();
    let setup = Setup {
        root: &root_dir,
        root_path: &root_path,
        declaration: &declaration,
        etc: None,
        users: &users,
        state_dir: Path::new(STATE_DIR),
        generation: None,
        generations: blankslate_audit::Generations::default(),
        own_outputs: &[],
        limit: 100,
        sizes: true,
    };
    blankslate_audit::audit(&setup).unwrap()
}

fn write(root: &Path, relative: &str, contents: &[u8]) {
    let path = root.join(relative);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, contents).unwrap();
}

#[test]
fn ignore_globs_stay_within_one_path_component() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let text = r#"version = 1
[audit]
ignore = ["/home/*/.cache/**", "/srv/*.log", "/srv/*.d/**", "/opt/**/tmp/**", "/var/lib/a?c"]
"#;
    // `*` matches one component: bob's own cache is ignored, a project's is not.
    write(root, "home/bob/.cache/thumbs/x", b"12345");
    write(root, "home/bob/project/.cache/y", b"123");
    // A home holding nothing but an ignored cache is accounted for, as it would be
    // with the literal `/home/carol/.cache/**`.
    write(root, "home/carol/.cache/z", b"1");
    write(root, "srv/app.log", b"ignored");
    write(root, "srv/sub/app.log", b"reported");
    // `DIR/**` with a wildcard in DIR: DIR itself is not an empty undeclared directory.
    write(root, "srv/conf.d/a.conf", b"x");
    std::fs::create_dir_all(root.join("srv/empty.d")).unwrap();
    // `**` crosses directories.
    write(root, "opt/a/b/tmp/t", b"t");
    write(root, "var/lib/abc", b"ignored");
    write(root, "var/lib/a/c", b"reported");
    let report = audit_plain(root, text);
    let text = summary(&report);
    let bob = find(&report, Class::Undeclared, b"/home/bob");
    assert_eq!(bob.len(), 1, "{text}");
    assert_eq!((bob[0].files, bob[0].bytes), (1, 3), "only project/.cache/y: {text}");
    assert!(find(&report, Class::Undeclared, b"/home/carol").is_empty(), "{text}");
    assert!(find(&report, Class::Undeclared, b"/srv/app.log").is_empty(), "{text}");
    assert_eq!(find(&report, Class::Undeclared, b"/srv/sub")[0].files, 1, "{text}");
    assert!(find(&report, Class::Undeclared, b"/srv/conf.d").is_empty(), "{text}");
    assert!(find(&report, Class::Undeclared, b"/srv/empty.d").is_empty(), "{text}");
    assert!(find(&report, Class::Undeclared, b"/opt/a").is_empty(), "{text}");
    assert!(find(&report, Class::Undeclared, b"/var/lib/abc").is_empty(), "{text}");
    assert_eq!(find(&report, Class::Undeclared, b"/var/lib/a")[0].files, 1, "{text}");
    // Everything reported is listed above; an empty directory nothing ignores still is.
    std::fs::create_dir_all(root.join("srv/empty")).unwrap();
    let again = audit_plain(
        root,
        r#"version = 1
[audit]
ignore = ["/home/*/.cache/**", "/srv/*.log", "/srv/*.d/**", "/opt/**/tmp/**", "/var/lib/a?c"]
"#,
    );
    let empty = find(&again, Class::Undeclared, b"/srv/empty");
    assert_eq!((empty.len(), empty[0].files), (1, 0), "{}", summary(&again));
    assert_eq!(again.total(Class::Undeclared).count, 4, "{}", summary(&again));
    // ignored: bob's and carol's caches, /srv/app.log, conf.d's file, opt's tmp, abc.
    assert_eq!(again.ignored.files, 6, "{:?}", again.ignored);
}

#[test]
fn hard_linked_data_counts_once_per_finding() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    write(root, "srv/data/a", &[0; 1000]);
    write(root, "srv/data/sub/x", &[0; 10]);
    std::fs::hard_link(root.join("srv/data/a"), root.join("srv/data/b")).unwrap();
    std::fs::hard_link(root.join("srv/data/a"), root.join("srv/data/sub/c")).unwrap();
    write(root, "srv/other/keep", b"");
    std::fs::hard_link(root.join("srv/data/a"), root.join("srv/other/d")).unwrap();
    let report = audit_plain(root, "version = 1\n");
    let data = find(&report, Class::Undeclared, b"/srv/data");
    // Four names, 1010 bytes of data.
    assert_eq!((data[0].files, data[0].bytes), (4, 1010), "{}", summary(&report));
    // Another finding holding a name of the same file counts it too.
    let other = find(&report, Class::Undeclared, b"/srv/other");
    assert_eq!((other[0].files, other[0].bytes), (2, 1000), "{}", summary(&report));
}

#[test]
fn an_unreadable_directory_is_an_error_not_an_empty_finding() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_path_buf();
    write(&root, "srv/locked/secret", b"hidden");
    write(&root, "srv/data/open", b"12");
    write(&root, "srv/data/inner/secret", b"hidden");
    for locked in ["srv/locked", "srv/data/inner"] {
        std::fs::set_permissions(root.join(locked), std::fs::Permissions::from_mode(0o000)).unwrap();
    }
    // As root, drop the capabilities that read through permissions (in this thread,
    // and so in the walker threads it starts).
    let report = std::thread::spawn(move || {
        use rustix::thread::{CapabilitySet, capabilities, set_capabilities};
        let mut sets = capabilities(None).unwrap();
        sets.effective -= CapabilitySet::DAC_OVERRIDE | CapabilitySet::DAC_READ_SEARCH;
        set_capabilities(None, sets).unwrap();
        audit_plain(&root, "version = 1\n")
    })
    .join()
    .unwrap();
    let text = summary(&report);
    assert!(find(&report, Class::Undeclared, b"/srv/locked").is_empty(), "not a 0-file finding: {text}");
    let error = find(&report, Class::Error, b"/srv/locked");
    assert!(error[0].reason.contains("lost at the next reboot; size unknown"), "{}", error[0].reason);
    let data = find(&report, Class::Undeclared, b"/srv/data");
    assert_eq!(data[0].files, 1, "{text}");
    assert!(data[0].reason.starts_with("at least"), "{}", data[0].reason);
    assert_eq!(
        find(&report, Class::Error, b"/srv/data/inner")[0].reason,
        "cannot read: Permission denied (os error 13)"
    );
    assert_eq!(report.exit_code(), 3);
}

#[test]
fn a_persistent_root_that_is_not_mounted_is_one_finding() {
    as_root_in_namespace(|| {
        // The volume never mounted: activation made everything in a plain directory.
        let scratch = Scratch::activated_with(DECLARATION, false);
        scratch.write("persist/var/log/syslog", &[1; 100]);
        let report = scratch.audit();
        let text = summary(&report);
        let volume = find(&report, Class::Volume, b"/persist");
        assert_eq!(volume.len(), 1, "{text}");
        assert_eq!(volume[0].kind, "not-mounted");
        assert!(volume[0].reason.contains("not a mounted volume"), "{}", volume[0].reason);
        assert!(volume[0].reason.contains("4 paths persisted from it are on the root too"), "{}", volume[0].reason);
        assert!(volume[0].reason.contains("lost at the next reboot"), "{}", volume[0].reason);
        // Its data: the machine-id, the history and the syslog.
        assert_eq!(volume[0].files, 3, "{text}");
        // Nothing per entry, no strays from its contents.
        for class in [Class::Persist, Class::PersistStray] {
            assert_eq!(report.total(class).count, 0, "{text}");
        }
        assert_eq!(report.exit_code(), 2);
    });
}

#[test]
fn a_volume_unmounted_after_activation_is_named_as_the_cause() {
    as_root_in_namespace(|| {
        let scratch = Scratch::activated();
        let root = Dir::open_root(&scratch.root).unwrap();
        mount::unmount(&root, "persist").unwrap();
        let report = scratch.audit();
        let text = summary(&report);
        let volume = find(&report, Class::Volume, b"/persist");
        assert_eq!((volume.len(), volume[0].kind.as_str()), (1, "not-mounted"), "{text}");
        // The two bind mounts still reach the volume; the symlinked history goes
        // through the empty mount point, onto the root; the machine-id is mounted too.
        assert!(
            volume[0].reason.contains("3 paths still mounted from it keep their writes; 1 path is on the root: lost"),
            "{}",
            volume[0].reason
        );
        assert_eq!(report.total(Class::Persist).count, 0, "no source-missing per entry: {text}");
        // Gone altogether: named as such.
        std::fs::remove_dir(scratch.path("persist")).unwrap();
        let report = scratch.audit();
        let volume = find(&report, Class::Volume, b"/persist");
        assert_eq!(volume[0].kind, "volume-missing", "{}", summary(&report));
        assert!(volume[0].reason.starts_with("not there: the volume is not mounted"), "{}", volume[0].reason);
        assert_eq!(report.exit_code(), 2);
        // A switch now would leave every mounted path alone: activation never moves the
        // data a mount shows of the real volume onto the root.
        assert!(volume[0].reason.contains("mount the volume again before any switch"), "{}", volume[0].reason);
        std::fs::create_dir(scratch.path("persist")).unwrap();
        let users = blankslate_decl::UserDb::from_texts(
            "root:x:0:0::/root:/bin/sh\napp:x:2000:2000::/:/bin/false\n",
            "root:x:0:\napp:x:2000:\n",
            "t",
        );
        let activated = blankslate_persist::bring_in(&root, &declaration(DECLARATION), &users, None).unwrap();
        assert!(activated.migrated.is_empty(), "{activated:?}");
        let refused: Vec<&str> = activated.conflicts.iter().map(|(path, _)| path.as_str()).collect();
        assert_eq!(refused, ["/etc/machine-id", "/var/lib/app", "/var/log"], "{activated:?}");
        assert!(!scratch.path("persist/var/log").exists(), "nothing moved onto the root");
    });
}

const PARENT: &str = r#"version = 1
[persist."/persist"]
directories = [{ directory = "/srv/www", parent = { user = "root", group = "root", mode = "0711" } }]
[etc."passwd"]
text = "root:x:0:0::/root:/bin/sh\napp:x:2000:2000::/:/bin/false\n"
[etc."group"]
text = "root:x:0:\napp:x:2000:\n"
"#;

#[test]
fn a_drifted_parent_is_reported_in_the_root_and_in_the_volume() {
    as_root_in_namespace(|| {
        let scratch = Scratch::activated_with(PARENT, true);
        let report = scratch.audit();
        assert_eq!(report.exit_code(), 0, "activation enforced the parent: {}", summary(&report));
        std::fs::set_permissions(scratch.path("srv"), std::fs::Permissions::from_mode(0o755)).unwrap();
        std::os::unix::fs::chown(scratch.path("persist/srv"), Some(2000), Some(2000)).unwrap();
        let report = scratch.audit();
        let text = summary(&report);
        let mode = find(&report, Class::Persist, b"/srv");
        assert_eq!((mode.len(), mode[0].kind.as_str()), (1, "wrong-mode"), "{text}");
        assert_eq!(mode[0].reason, "mode 0755, declared 0711 for the parent of /srv/www");
        let owner = find(&report, Class::Persist, b"/persist/srv");
        assert_eq!((owner.len(), owner[0].kind.as_str()), (1, "wrong-owner"), "{text}");
        assert_eq!(owner[0].reason, "owner 2000:2000, declared root:root for the parent of /srv/www");
        assert_eq!(report.exit_code(), 2);
    });
}

#[test]
fn a_persisted_directory_replaced_by_a_link_into_the_volume_keeps_its_writes() {
    as_root_in_namespace(|| {
        let scratch = Scratch::activated();
        let root = Dir::open_root(&scratch.root).unwrap();
        mount::unmount(&root.open_dir("var").unwrap(), "log").unwrap();
        std::fs::remove_dir(scratch.path("var/log")).unwrap();
        symlink("/persist/var/log", scratch.path("var/log")).unwrap();
        mount::unmount(&root.open_dir("var/lib").unwrap(), "app").unwrap();
        std::fs::remove_dir(scratch.path("var/lib/app")).unwrap();
        symlink("/srv/app", scratch.path("var/lib/app")).unwrap();
        let report = scratch.audit();
        let text = summary(&report);
        let log = find(&report, Class::Persist, b"/var/log");
        assert_eq!(log[0].kind, "replaced", "{text}");
        assert!(log[0].reason.contains("writes are kept"), "{}", log[0].reason);
        assert!(!log[0].reason.contains("lost"), "{}", log[0].reason);
        let app = find(&report, Class::Persist, b"/var/lib/app");
        assert!(app[0].reason.contains("writes go there, not to the volume"), "{}", app[0].reason);
    });
}

/// What a real systemd boot writes on a root where nothing declares it: what every boot
/// regenerates is ignored (the random seed, leases, a resolver configuration, the
/// shadow tools' backups); state is reported (timer stamps).
#[test]
fn what_a_systemd_boot_writes_is_ignored_or_reported_as_what_it_is() {
    as_root_in_namespace(|| {
        let s = Scratch::activated();
        for regenerated in [
            "var/lib/systemd/random-seed",
            "var/lib/dhcp/dhclient.eth0.leases",
            "etc/resolv.conf",
            "etc/shadow-",
            "run/credentials/x",
        ] {
            s.write(regenerated, b"regenerated");
        }
        s.write("var/lib/systemd/timers/stamp-apt-daily.timer", b"");
        let report = s.audit();
        let text = summary(&report);
        assert_eq!(report.ignored.files, 5, "{text}");
        assert_eq!(find(&report, Class::Undeclared, b"/var/lib/systemd/timers").len(), 1, "the stamps: {text}");
        assert!(!text.contains("random-seed") && !text.contains("resolv.conf") && !text.contains("dhcp"), "{text}");
    });
}

/// A directory of the etc tree (`ssl/private`, 0710 root:ssl-cert) is part of what
/// activation made: its mode, owner and presence are checked, what a person puts in it
/// is a stray, and a repair clears the drift.
#[test]
fn a_declared_directory_that_drifted_is_reported_and_repaired() {
    as_root_in_namespace(|| {
        let tree = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(tree.path().join("ssl/private")).unwrap();
        std::fs::create_dir_all(tree.path().join("sudoers.d")).unwrap();
        std::os::unix::fs::chown(tree.path().join("ssl/private"), Some(0), Some(110)).unwrap();
        for (path, mode) in [("ssl", 0o755), ("ssl/private", 0o710), ("sudoers.d", 0o750)] {
            std::fs::set_permissions(tree.path().join(path), std::fs::Permissions::from_mode(mode)).unwrap();
        }
        let text = format!("version = 1\n[etc_tree]\nsource = \"{}\"\n", tree.path().display());
        let scratch = Scratch::activated_with(&text, false);
        let etc_drift = |report: &Report| {
            let mut found: Vec<String> = report
                .findings
                .iter()
                .filter(|f| matches!(f.class, Class::EtcDrift | Class::EtcStray))
                .map(|f| format!("{} {} {}", f.class.key(), f.kind, String::from_utf8_lossy(&f.path)))
                .collect();
            found.sort();
            found
        };
        assert_eq!(etc_drift(&scratch.audit()), Vec::<String>::new());

        std::fs::set_permissions(scratch.path("etc/ssl/private"), std::fs::Permissions::from_mode(0o755)).unwrap();
        std::os::unix::fs::chown(scratch.path("etc/ssl/private"), Some(0), Some(0)).unwrap();
        scratch.write("etc/ssl/private/mine.pem", b"a person's key\n");
        std::fs::remove_dir(scratch.path("etc/sudoers.d")).unwrap();
        let report = scratch.audit();
        assert_eq!(
            etc_drift(&report),
            [
                "etc-drift missing /etc/sudoers.d",
                "etc-drift wrong-mode /etc/ssl/private",
                "etc-drift wrong-owner /etc/ssl/private",
                "etc-stray file /etc/ssl/private/mine.pem",
            ],
            "{}",
            summary(&report)
        );
        let mode = find(&report, Class::EtcDrift, b"/etc/ssl/private");
        assert!(mode.iter().any(|f| f.reason == "mode 0755, declared 0710"), "{}", summary(&report));

        let root = Dir::open_root(&scratch.root).unwrap();
        let state = State::open_locked(&root, Path::new(STATE_DIR)).unwrap();
        etc::repair(&state).unwrap().unwrap();
        drop(state);
        assert_eq!(etc_drift(&scratch.audit()), ["etc-stray file /etc/ssl/private/mine.pem"]);
    });
}

/// A path of the volume still bind-mounted in the root after the declaration stopped
/// declaring it (what a switch killed half-way left, issue 17): one `undeclared-mount`
/// finding (exit 2). A mount of anything else (not a volume) is not one, and neither
/// are the declared bind mounts and the volume itself.
#[test]
fn a_bind_mount_from_the_volume_that_nothing_declares_is_reported() {
    as_root_in_namespace(|| {
        let scratch = Scratch::activated();
        scratch.write("persist/srv/old/data", b"kept in the volume");
        std::fs::create_dir_all(scratch.path("srv/old")).unwrap();
        std::fs::create_dir_all(scratch.path("srv/other")).unwrap();
        let root = Dir::open_root(&scratch.root).unwrap();
        let srv = root.open_dir("srv").unwrap();
        let old = root.open_dir("persist/srv/old").unwrap();
        mount::bind(Source::Dir(&old), &srv, "old", MountFlags::empty()).unwrap();
        mount::bind(Source::HostPath(&scratch.outside), &srv, "other", MountFlags::empty()).unwrap();
        let report = scratch.audit();
        let text = summary(&report);
        let found: Vec<_> = report.findings.iter().filter(|f| f.kind == "undeclared-mount").collect();
        assert_eq!(found.len(), 1, "{text}");
        assert_eq!((found[0].class, found[0].path.as_slice()), (Class::Persist, &b"/srv/old"[..]), "{text}");
        assert!(found[0].reason.contains("mounted from the volume /persist, declared by nothing"), "{text}");
        assert_eq!(report.exit_code(), 2, "{text}");
        // What is below the mount is the volume's, not the root's: not undeclared state.
        assert!(find(&report, Class::Undeclared, b"/srv/old").is_empty(), "{text}");
        mount::unmount(&srv, "old").unwrap();
        mount::unmount(&srv, "other").unwrap();
        let report = scratch.audit();
        assert!(report.findings.iter().all(|f| f.kind != "undeclared-mount"), "{}", summary(&report));
    });
}

/// A Debian root: dpkg's database persisted, one package's conffile lost (as a reboot
/// loses what is not kept), another's stray in /etc, a removed package's
/// configuration left, a package file where the declaration ignores it.
#[test]
fn packages_whose_etc_files_are_lost_or_stray_are_named() {
    if !root_or_skip("needs root") {
        return;
    }
    let text = "version = 1\n[persist.\"/persist\"]\ndirectories = [\"/var/lib/dpkg\"]\n\n\
                [etc.\"hosts\"]\ntext = \"127.0.0.1 localhost\\n\"\n\n[audit]\nignore = [\"/etc/*.local\"]\n";
    let (human, json) = in_namespace(move || {
        let scratch = Scratch::activated_with(text, true);
        scratch.write("persist/var/lib/blankslate/profiles/current", b"");
        let status = "\
Package: anacron
Status: install ok installed
Architecture: amd64
Conffiles:
 /etc/anacrontab 3c8a0d7c1b1e2f9e1f6a9d2e8c7b6a51
 /etc/cron.daily/0anacron 9b1d2c3e4f5a6b7c8d9e0f1a2b3c4d5e

Package: atd
Status: install ok installed
Architecture: amd64
Conffiles:
 /etc/at.deny 1b2c3d4e5f60718293a4b5c6d7e8f901

Package: oldpkg
Status: deinstall ok config-files
Architecture: all
Conffiles:
 /etc/oldpkg.conf 0123456789abcdef0123456789abcdef

Package: resolvconf
Status: install ok installed
Architecture: all
Conffiles:
 /etc/resolvconf.local 0123456789abcdef0123456789abcdef
";
        scratch.write("var/lib/dpkg/status", status.as_bytes());
        let lists = [
            ("anacron", "/.\n/etc\n/etc/anacrontab\n/etc/cron.daily\n/etc/cron.daily/0anacron\n/usr/sbin/anacron\n"),
            ("atd", "/.\n/etc\n/etc/at.deny\n/usr/sbin/atd\n"),
            ("oldpkg", "/etc\n/etc/oldpkg.conf\n"),
            ("resolvconf", "/etc\n/etc/resolv.conf\n/etc/resolvconf.local\n"),
        ];
        for (package, list) in lists {
            scratch.write(&format!("var/lib/dpkg/info/{package}.list"), list.as_bytes());
        }
        // A reboot kept the database (persisted) and lost /etc/anacrontab; the daily
        // job and atd's file are there, kept by nothing.
        scratch.write("etc/cron.daily/0anacron", b"#!/bin/sh\n");
        scratch.write("etc/at.deny", b"nobody\n");
        let report = scratch.audit();
        let text = summary(&report);
        let missing = find(&report, Class::PackageMissing, b"/etc/anacrontab");
        assert_eq!(missing.len(), 1, "{text}");
        assert_eq!(missing[0].packages, ["anacron"]);
        assert!(missing[0].reason.contains("--force-confmiss anacron`"), "{}", missing[0].reason);
        let at_deny = find(&report, Class::EtcStray, b"/etc/at.deny");
        assert_eq!(
            (at_deny[0].packages.as_slice(), at_deny[0].reason.as_str()),
            (&["atd".to_owned()][..], "from package atd")
        );
        let cron = find(&report, Class::EtcStray, b"/etc/cron.daily");
        assert_eq!(cron[0].reason, "holds files of package anacron", "{text}");
        // Not installed, or ignored: nothing expected.
        assert!(!text.contains("oldpkg") && !text.contains("resolv"), "{text}");
        assert_eq!(report.total(Class::PackageMissing).count, 1);
        assert_eq!(report.exit_code(), 2, "{text}");
        // Once it is back, the package is whole: its file is a stray to keep.
        scratch.write("etc/anacrontab", b"1 5 cron.daily run-parts /etc/cron.daily\n");
        let report = scratch.audit();
        assert_eq!(report.exit_code(), 1, "{}", summary(&report));
        assert_eq!(find(&report, Class::EtcStray, b"/etc/anacrontab")[0].reason, "from package anacron");
        std::fs::remove_file(scratch.path("etc/anacrontab")).unwrap();
        // An upgrade of the package that lists a declared file replaced it: drift,
        // with the package named (what `etc keep --packaged` keeps).
        scratch.write("var/lib/dpkg/info/netbase.list", b"/etc\n/etc/hosts\n");
        let status = format!("{status}\nPackage: netbase\nStatus: install ok installed\nArchitecture: all\n");
        scratch.write("var/lib/dpkg/status", status.as_bytes());
        let hosts = scratch.path("etc/hosts");
        let declared = std::fs::read_link(&hosts).unwrap();
        std::fs::remove_file(&hosts).unwrap();
        std::fs::write(&hosts, "127.0.0.1 localhost upgraded\n").unwrap();
        let report = scratch.audit();
        let drift = find(&report, Class::EtcDrift, b"/etc/hosts");
        assert_eq!(drift.len(), 1, "{}", summary(&report));
        assert_eq!(drift[0].packages, ["netbase"], "{}", summary(&report));
        std::fs::remove_file(scratch.path("var/lib/dpkg/info/netbase.list")).unwrap();
        scratch.write("var/lib/dpkg/status", status.split("\nPackage: netbase").next().unwrap().as_bytes());
        let report = scratch.audit();
        assert!(find(&report, Class::EtcDrift, b"/etc/hosts")[0].packages.is_empty());
        std::fs::remove_file(&hosts).unwrap();
        std::os::unix::fs::symlink(declared, &hosts).unwrap();
        let report = scratch.audit();
        let mut json = blankslate_audit::render::json(&report, "ROOT");
        json.as_object_mut().unwrap().remove("stats");
        json.as_object_mut().unwrap().remove("time");
        let json = serde_json::to_string_pretty(&json["findings"]).unwrap();
        (blankslate_audit::render::human(&report, "ROOT", false), json)
    });
    insta::assert_snapshot!("dpkg_human", human);
    insta::assert_snapshot!("dpkg_json", json);
}
