//! `blankslate etc keep`: what a package or a tool made in the live /etc goes into the
//! declaration's etc tree with its owner and mode, and the switch that follows takes
//! the live files over (no backups), so the audit has nothing to say about them.

mod common;
use blankslate_test_support::Scratch;
use blankslate_test_support::root_or_skip;

use std::os::unix::fs::{MetadataExt, PermissionsExt, symlink};
use std::path::{Path, PathBuf};

use common::{OnRoot, blankslate_env, stderr, stdout};

/// A root (`root/`) switched to a declaration (`system.toml`, beside it) whose etc
/// tree (`tree/`, next to it) holds `hostname`.
fn switched() -> Scratch {
    let scratch = Scratch::with_root("root");
    std::fs::create_dir_all(scratch.tree()).unwrap();
    std::fs::create_dir_all(scratch.path("etc")).unwrap();
    std::fs::write(scratch.tree().join("hostname"), "box\n").unwrap();
    std::fs::write(
        scratch.declaration(),
        "version = 1\n[etc_tree]\nsource = \"tree\"\n[etc.\"motd\"]\ntext = \"hello\\n\"\n",
    )
    .unwrap();
    scratch.ok(&["switch", scratch.declaration().to_str().unwrap()]);
    scratch
}

/// The etc tree, the declaration and `etc keep` of a [`switched`] root.
trait Keep {
    fn tree(&self) -> PathBuf;
    fn declaration(&self) -> PathBuf;
    fn keep(&self, paths: &[&str]) -> std::process::Output;
}

impl Keep for Scratch {
    fn tree(&self) -> PathBuf {
        self.dir().join("tree")
    }

    fn declaration(&self) -> PathBuf {
        self.dir().join("system.toml")
    }

    fn keep(&self, paths: &[&str]) -> std::process::Output {
        let declaration = self.declaration();
        let mut args = vec!["etc", "keep"];
        args.extend(paths);
        args.extend(["--declaration", declaration.to_str().unwrap()]);
        self.run(&args)
    }
}

fn write(path: &Path, contents: &str, mode: u32, owner: (u32, u32)) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, contents).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    std::os::unix::fs::chown(path, Some(owner.0), Some(owner.1)).unwrap();
}

fn owner_and_mode(path: &Path) -> (u32, u32, u32) {
    let meta = std::fs::symlink_metadata(path).unwrap();
    (meta.mode() & 0o7777, meta.uid(), meta.gid())
}

/// Backups anywhere below `dir`.
fn backups(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.to_string_lossy().contains(".blankslate-backup") {
            found.push(path.clone());
        }
        if path.is_dir() && !path.is_symlink() {
            found.extend(backups(&path));
        }
    }
    found
}

#[test]
fn kept_files_go_into_the_tree_as_they_are_and_the_switch_takes_them_over() {
    if !root_or_skip("needs root (owners)") {
        return;
    }
    let scratch = switched();
    // What a package's postinst and a person leave in the live /etc.
    write(&scratch.etc("default/atd"), "OPTS='-l 4'\n", 0o644, (0, 0));
    write(&scratch.etc("atd/secret.key"), "key\n", 0o640, (0, 42));
    std::fs::set_permissions(scratch.etc("atd"), std::fs::Permissions::from_mode(0o710)).unwrap();
    std::os::unix::fs::chown(scratch.etc("atd"), Some(0), Some(42)).unwrap();
    symlink("/lib/systemd/system/atd.service", scratch.etc("atd/atd.service")).unwrap();
    // hostname drifted: the managed link replaced by a file of the tool's own.
    std::fs::remove_file(scratch.etc("hostname")).unwrap();
    write(&scratch.etc("hostname"), "renamed\n", 0o644, (0, 0));

    let output = scratch.keep(&["/etc/default/atd", "atd", "/etc/hostname"]);
    assert!(output.status.success(), "{}{}", stdout(&output), stderr(&output));
    let printed = stdout(&output);
    assert!(printed.contains("kept /etc/atd/secret.key (file 0640 0:42)"), "{printed}");
    assert!(printed.contains("kept /etc/atd/atd.service (symlink -> /lib/systemd/system/atd.service)"), "{printed}");

    // The tree has them with their owners and modes (and the directory's).
    let tree = scratch.tree();
    assert_eq!(std::fs::read_to_string(tree.join("default/atd")).unwrap(), "OPTS='-l 4'\n");
    assert_eq!(owner_and_mode(&tree.join("atd/secret.key")), (0o640, 0, 42));
    assert_eq!(owner_and_mode(&tree.join("atd")), (0o710, 0, 42));
    assert_eq!(std::fs::read_link(tree.join("atd/atd.service")).unwrap(), Path::new("/lib/systemd/system/atd.service"));
    assert_eq!(std::fs::read_to_string(tree.join("hostname")).unwrap(), "renamed\n");

    // The switch made them declared: links into the store (a copy for the secret),
    // nothing backed up, and the audit finds nothing of them.
    assert_eq!(std::fs::read_link(scratch.etc("default/atd")).unwrap(), Path::new("/etc/static/default/atd"));
    assert_eq!(std::fs::read_link(scratch.etc("hostname")).unwrap(), Path::new("/etc/static/hostname"));
    assert_eq!(owner_and_mode(&scratch.etc("atd/secret.key")), (0o640, 0, 42));
    assert_eq!(backups(&scratch.root().join("etc")), Vec::<PathBuf>::new());
    let audit = scratch.run(&["audit", "--json"]);
    let report = stdout(&audit);
    for path in ["/etc/default/atd", "/etc/atd", "/etc/hostname"] {
        assert!(!report.contains(&format!("\"{path}")), "{path} in the audit: {report}");
    }

    // Keeping again changes nothing and succeeds.
    let again =
        scratch.ok(&["etc", "keep", "/etc/default/atd", "--declaration", scratch.declaration().to_str().unwrap()]);
    assert!(again.contains("/etc/default/atd is declared already"), "{again}");
    assert!(again.contains("0 added, 0 changed, 0 removed"), "{again}");
}

#[test]
fn what_is_not_a_keepable_etc_path_is_refused_and_nothing_changes() {
    if !root_or_skip("needs root (owners)") {
        return;
    }
    let scratch = switched();
    let before = std::fs::read_dir(scratch.tree()).unwrap().count();
    for (path, says) in [
        ("/etc/motd", "is an [etc.\"motd\"] entry"),
        ("/etc/static/hostname", "blankslate's own"),
        ("/etc/.blankslate/state.json", "blankslate's own"),
        ("/usr/lib/os-release", "not a path below /etc"),
        ("/etc/../shadow", "not a path below /etc"),
        ("/etc/nothing-here", "does not exist"),
    ] {
        let output = scratch.keep(&[path]);
        assert_eq!(output.status.code(), Some(2), "{path}: {}{}", stdout(&output), stderr(&output));
        assert!(stderr(&output).contains(says), "{path}: {}", stderr(&output));
    }
    make_fifo(&scratch.etc("fifo"));
    let output = scratch.keep(&["/etc/fifo"]);
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    assert!(stderr(&output).contains("/etc/fifo is not kept"), "{}", stderr(&output));
    assert_eq!(std::fs::read_dir(scratch.tree()).unwrap().count(), before, "the tree is as it was");
}

fn make_fifo(path: &Path) {
    let status = std::process::Command::new("mkfifo").arg(path).status().unwrap();
    assert!(status.success());
}

/// `--packaged`: what the audit reports of dpkg's packages in /etc (a new file, a
/// declared file an upgrade replaced) is kept; what no package lists, and a package's
/// file that is gone, are not.
#[test]
fn packaged_keeps_the_etc_files_of_packages_that_the_audit_reports() {
    if !root_or_skip("needs root (owners)") {
        return;
    }
    let scratch = switched();
    let dpkg = scratch.root().join("var/lib/dpkg");
    write(
        &dpkg.join("status"),
        "Package: atd\nStatus: install ok installed\nArchitecture: amd64\n\n\
         Package: netbase\nStatus: install ok installed\nArchitecture: all\n",
        0o644,
        (0, 0),
    );
    write(&dpkg.join("info/atd.list"), "/etc\n/etc/default\n/etc/default/atd\n/etc/at.deny\n", 0o644, (0, 0));
    write(&dpkg.join("info/netbase.list"), "/etc\n/etc/hostname\n", 0o644, (0, 0));
    write(&scratch.etc("default/atd"), "OPTS='-l 4'\n", 0o644, (0, 0));
    std::fs::remove_file(scratch.etc("hostname")).unwrap();
    write(&scratch.etc("hostname"), "upgraded\n", 0o644, (0, 0));
    write(&scratch.etc("local.conf"), "mine\n", 0o644, (0, 0));

    let declaration = scratch.declaration();
    let kept = scratch.ok(&["etc", "keep", "--packaged", "--declaration", declaration.to_str().unwrap()]);
    assert!(kept.contains("kept /etc/default/atd (file 0644 0:0)"), "{kept}");
    assert!(kept.contains("kept /etc/hostname (file 0644 0:0)"), "{kept}");
    assert!(!kept.contains("local.conf") && !kept.contains("at.deny"), "{kept}");
    assert_eq!(std::fs::read_to_string(scratch.tree().join("hostname")).unwrap(), "upgraded\n");
    assert_eq!(std::fs::read_link(scratch.etc("default/atd")).unwrap(), Path::new("/etc/static/default/atd"));
    assert!(!scratch.tree().join("local.conf").exists());
    let audit = stdout(&scratch.run(&["audit", "--json"]));
    assert!(audit.contains("\"/etc/local.conf\"") && !audit.contains("\"/etc/default/atd\""), "{audit}");

    // Nothing more to keep: said so, and nothing switched.
    let again = scratch.ok(&["etc", "keep", "--packaged", "--declaration", declaration.to_str().unwrap()]);
    assert_eq!(again, "the audit reports no /etc file of a package: nothing to keep\n");
    // Paths and --packaged are one or the other.
    let both = scratch.keep(&["--packaged", "/etc/local.conf"]);
    assert_eq!(both.status.code(), Some(2), "{}", stderr(&both));
}

/// A package manager's run (apt's hooks): `etc unlink` makes each link into the store
/// a plain file with its bytes, so that dpkg can put a package's new conffile in place
/// (it looks for it beside a link's target, in the read-only store); `etc relink` makes
/// what the run left unchanged a link again. What it changed stays a file, which the
/// audit reports as drift.
#[test]
fn a_package_managers_run_gets_plain_files_and_what_it_left_is_linked_again() {
    if !root_or_skip("needs root (owners)") {
        return;
    }
    let scratch = switched();
    let (hostname, motd) = (scratch.etc("hostname"), scratch.etc("motd"));
    let is_link = |path: &Path| std::fs::symlink_metadata(path).unwrap().file_type().is_symlink();
    assert!(is_link(&hostname) && is_link(&motd));

    let said = scratch.ok(&["etc", "unlink"]);
    assert!(said.contains("made 2 links of /etc into the store plain files"), "{said}");
    for (path, contents) in [(&hostname, "box\n"), (&motd, "hello\n")] {
        assert!(!is_link(path), "{}", path.display());
        assert_eq!(std::fs::read_to_string(path).unwrap(), contents);
        assert_eq!(owner_and_mode(path).0, 0o644, "{}", path.display());
    }
    assert_eq!(scratch.ok(&["etc", "unlink"]), "", "nothing is left to unlink");

    // The run puts a new version in place, as dpkg does: a new file renamed over it.
    std::fs::write(scratch.etc("motd.dpkg-new"), "hello, upgraded\n").unwrap();
    std::fs::rename(scratch.etc("motd.dpkg-new"), &motd).unwrap();
    // A relink killed after its journal: whatever finishes it relinks, no more (a
    // repair would move the new version aside).
    let root = scratch.root();
    let killed =
        blankslate_env(&["etc", "relink", "--root", root.to_str().unwrap()], &[("BLANKSLATE_FAILPOINT", "etc-step#1")]);
    assert!(!killed.status.success(), "the failpoint stops it");
    let finished = scratch.run(&["etc", "relink"]);
    assert!(finished.status.success());
    assert!(stderr(&finished).contains("finished the interrupted"), "{}", stderr(&finished));
    assert_eq!(std::fs::read_link(&hostname).unwrap(), Path::new("/etc/static/hostname"));
    assert!(!is_link(&motd));
    assert_eq!(std::fs::read_to_string(&motd).unwrap(), "hello, upgraded\n");
    assert!(backups(&scratch.root().join("etc")).is_empty());
    assert_eq!(scratch.ok(&["etc", "relink"]), "", "nothing more to relink");
    // The next run: only the link is made plain, and made a link again.
    assert!(scratch.ok(&["etc", "unlink"]).contains("made 1 link of /etc into the store plain files"));
    let said = scratch.ok(&["etc", "relink"]);
    assert!(said.contains("linked 1 file of /etc again"), "{said}");
    assert!(is_link(&hostname) && !is_link(&motd));

    let audit = scratch.run(&["audit"]);
    let report = stdout(&audit);
    assert_eq!(audit.status.code(), Some(2), "{report}");
    assert!(report.contains("/etc/motd"), "{report}");
    assert!(!report.contains("/etc/hostname"), "{report}");
}
