//! `persist add`, `remove` and `list` through the library, on real mounts: every test
//! runs its mounting work in a thread of its own that first enters a new mount
//! namespace and makes every mount private, so nothing reaches the host (the
//! namespace dies with the thread). The scratch root is a fresh tmpfs (the
//! ephemeral root) with a second tmpfs as its persistent volume, so data really
//! moves between file systems.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::fmt::Write as _;
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use blankslate_decl::{How, Mode, Rule};
use blankslate_persist::add::{self, AddRequest, LiveState, ManageError, RemoveRequest};
use blankslate_sys::fs::Dir;
use blankslate_sys::mount;
use blankslate_test_support::Scratch;

const DECLARATION: &str = r#"version = 1

# The machine's one volume.
[persist."/persist"]
directories = [
  "/var/log", # logs
]
files = ["/etc/machine-id"]

[audit]
ignore = ["/var/cache/**"] # noisy
"#;

/// Runs `body` in a thread with a private mount namespace, on a scratch root that
/// is a tmpfs holding `persist/` (another tmpfs), `etc/passwd` and a declaration.
fn in_namespace(body: impl FnOnce(&Path, &Path) + Send + 'static) {
    let scratch = Scratch::with_root("root");
    let (base, root) = (scratch.dir().to_path_buf(), scratch.root().to_path_buf());
    blankslate_test_support::in_namespace(move || {
        let base_dir = Dir::open_root(&base).unwrap();
        mount::mount_new(&base_dir, "root", "tmpfs", &[("mode", "0755")], rustix::mount::MountAttrFlags::empty())
            .unwrap();
        fs::create_dir(root.join("persist")).unwrap();
        let root_dir = Dir::open_root(&root).unwrap();
        mount::mount_new(&root_dir, "persist", "tmpfs", &[("mode", "0755")], rustix::mount::MountAttrFlags::empty())
            .unwrap();
        fs::create_dir_all(root.join("etc")).unwrap();
        fs::write(root.join("etc/passwd"), "root:x:0:0::/root:/bin/sh\nfoo:x:1234:1234::/:/bin/false\n").unwrap();
        fs::write(root.join("etc/group"), "root:x:0:\nfoo:x:1234:\nbar:x:4321:\n").unwrap();
        let declaration = base.join("declaration.toml");
        fs::write(&declaration, DECLARATION).unwrap();
        body(&root, &declaration);
    });
}

/// Everything about a tree that must survive a move, read with std and rustix
/// (independently of the code under test): per path, kind, mode, owner, mtime (ns),
/// size, blake3 of the contents, link target, extended attributes, and the hard-link
/// group (first path with the same inode).
fn snapshot(top: &Path) -> BTreeMap<PathBuf, String> {
    fn visit(top: &Path, path: &Path, inodes: &mut BTreeMap<u64, PathBuf>, out: &mut BTreeMap<PathBuf, String>) {
        let meta = fs::symlink_metadata(path).unwrap();
        let rel = path.strip_prefix(top).unwrap().to_path_buf();
        let kind = meta.file_type();
        let mut line = format!(
            "mode {:o} owner {}:{} mtime {}.{:09}",
            meta.mode(),
            meta.uid(),
            meta.gid(),
            meta.mtime(),
            meta.mtime_nsec()
        );
        if kind.is_file() {
            let first = inodes.entry(meta.ino()).or_insert_with(|| rel.clone());
            let hash = blake3::hash(&fs::read(path).unwrap());
            let _ = write!(line, " size {} blake3 {hash} inode-of {}", meta.len(), first.display());
        } else if kind.is_symlink() {
            let _ = write!(line, " -> {}", fs::read_link(path).unwrap().display());
        } else if !kind.is_dir() {
            let _ = write!(line, " rdev {}", meta.rdev());
        }
        if !kind.is_symlink() {
            let mut names = vec![0u8; 4096];
            let n = rustix::fs::llistxattr(path, &mut names[..]).unwrap_or(0);
            let mut attrs: Vec<String> = names[..n]
                .split(|b| *b == 0)
                .filter(|n| !n.is_empty())
                .map(|name| {
                    let name = OsStr::new(std::str::from_utf8(name).unwrap());
                    let mut value = vec![0u8; 4096];
                    let len = rustix::fs::lgetxattr(path, name, &mut value[..]).unwrap();
                    format!("{}={:?}", name.to_string_lossy(), &value[..len])
                })
                .collect();
            attrs.sort();
            let _ = write!(line, " xattrs {attrs:?}");
        }
        out.insert(rel, line);
        if kind.is_dir() {
            let mut children: Vec<_> = fs::read_dir(path).unwrap().map(|e| e.unwrap().path()).collect();
            children.sort();
            for child in children {
                visit(top, &child, inodes, out);
            }
        }
    }
    let mut out = BTreeMap::new();
    visit(top, top, &mut BTreeMap::new(), &mut out);
    out
}

/// A tree with everything a copy can get wrong.
fn populate(dir: &Path) -> bool {
    fs::create_dir_all(dir.join("nested/deeper/deepest")).unwrap();
    fs::write(dir.join("plain"), "plain contents\n").unwrap();
    fs::write(dir.join("nested/deeper/deepest/leaf"), vec![7u8; 100_000]).unwrap();
    // A sparse file: 64 MiB with two small islands of data.
    let sparse = fs::File::create(dir.join("sparse")).unwrap();
    sparse.set_len(64 << 20).unwrap();
    std::os::unix::fs::FileExt::write_at(&sparse, b"island one", 1 << 20).unwrap();
    std::os::unix::fs::FileExt::write_at(&sparse, b"island two", 40 << 20).unwrap();
    drop(sparse);
    fs::write(dir.join("linked"), "two names, one inode\n").unwrap();
    fs::hard_link(dir.join("linked"), dir.join("nested/also-linked")).unwrap();
    std::os::unix::fs::symlink("../plain", dir.join("nested/to-plain")).unwrap();
    std::os::unix::fs::symlink("/nowhere/at/all", dir.join("dangling")).unwrap();
    rustix::fs::mknodat(rustix::fs::CWD, dir.join("fifo"), rustix::fs::FileType::Fifo, 0o640.into(), 0).unwrap();
    let xattr = rustix::fs::setxattr(
        dir.join("plain").as_path(),
        "user.blankslate.test",
        b"kept",
        rustix::fs::XattrFlags::empty(),
    );
    let has_xattrs = match xattr {
        Ok(()) => true,
        Err(rustix::io::Errno::NOTSUP) => {
            eprintln!("note: user.* xattrs are not supported here; the xattr check is skipped");
            false
        }
        Err(e) => panic!("setxattr: {e}"),
    };
    // Odd owners and modes: set-id bits, sticky directory, unreadable file.
    rustix::fs::chown(dir.join("plain").as_path(), Some(uid(1234)), Some(gid(4321))).unwrap();
    fs::set_permissions(dir.join("plain"), fs::Permissions::from_mode(0o4751)).unwrap();
    fs::set_permissions(dir.join("nested/deeper"), fs::Permissions::from_mode(0o1777)).unwrap();
    fs::write(dir.join("secret"), "no one may read me\n").unwrap();
    fs::set_permissions(dir.join("secret"), fs::Permissions::from_mode(0o000)).unwrap();
    rustix::fs::chownat(
        rustix::fs::CWD,
        dir.join("nested/to-plain").as_path(),
        Some(uid(1234)),
        None,
        rustix::fs::AtFlags::SYMLINK_NOFOLLOW,
    )
    .unwrap();
    // Timestamps with nanoseconds, last (deepest first).
    let times = |path: &Path, sec: i64, nsec: i64| {
        let ts = rustix::fs::Timespec { tv_sec: sec, tv_nsec: nsec };
        let stamps = rustix::fs::Timestamps { last_access: ts, last_modification: ts };
        rustix::fs::utimensat(rustix::fs::CWD, path, &stamps, rustix::fs::AtFlags::SYMLINK_NOFOLLOW).unwrap();
    };
    times(&dir.join("nested/to-plain"), 1_000_000_000, 5);
    times(&dir.join("nested/deeper/deepest"), 1_100_000_000, 123_456_789);
    times(&dir.join("nested/deeper"), 1_200_000_000, 1);
    times(&dir.join("plain"), 1_300_000_000, 999_999_999);
    times(dir, 1_400_000_000, 42);
    has_xattrs
}

fn uid(n: u32) -> rustix::fs::Uid {
    rustix::fs::Uid::from_raw(n)
}

fn gid(n: u32) -> rustix::fs::Gid {
    rustix::fs::Gid::from_raw(n)
}

fn request<'a>(path: &'a str, declaration: &'a Path) -> AddRequest<'a> {
    AddRequest { path, declaration, volume: None, user: None, group: None, mode: None, how: None }
}

fn same_inode(a: &Path, b: &Path) -> bool {
    let (a, b) = (fs::symlink_metadata(a).unwrap(), fs::symlink_metadata(b).unwrap());
    (a.dev(), a.ino()) == (b.dev(), b.ino())
}

#[test]
fn add_moves_a_rich_tree_mounts_it_and_declares_it() {
    in_namespace(|root, declaration| {
        let live = root.join("var/lib/app");
        fs::create_dir_all(&live).unwrap();
        let has_xattrs = populate(&live);
        rustix::fs::chown(live.as_path(), Some(uid(1234)), Some(gid(1234))).unwrap();
        fs::set_permissions(&live, fs::Permissions::from_mode(0o750)).unwrap();
        let before = snapshot(&live);
        if has_xattrs {
            assert!(before[Path::new("plain")].contains("user.blankslate.test"));
        }

        let root_dir = Dir::open_root(root).unwrap();
        let added = add::add(&root_dir, &request("/var/lib/app", declaration), &mut |_| Ok(())).unwrap();
        assert_eq!(added.volume, "/persist");
        assert_eq!(added.entry, r#"{ directory = "/var/lib/app", user = "foo", group = "foo", mode = "0750" }"#);
        assert_eq!(added.stats.hard_links, 1);
        assert_eq!(added.stats.special, 1);

        // The live path is now the volume's directory, and shows the same bytes.
        let in_volume = root.join("persist/var/lib/app");
        assert!(same_inode(&live, &in_volume), "the live path is a mount of the volume path");
        assert_eq!(snapshot(&live), before);
        assert_eq!(snapshot(&in_volume), before);
        assert!(same_inode(&in_volume.join("linked"), &in_volume.join("nested/also-linked")));
        let sparse = fs::metadata(in_volume.join("sparse")).unwrap();
        assert_eq!(sparse.len(), 64 << 20);
        assert!(sparse.blocks() * 512 < 1 << 20, "holes stay holes: {} blocks", sparse.blocks());
        // Parents in the volume mirror the live ones.
        assert_eq!(fs::metadata(root.join("persist/var/lib")).unwrap().mode() & 0o7777, 0o755);

        // The declaration gained exactly this entry; every comment stayed.
        let text = fs::read_to_string(declaration).unwrap();
        assert_eq!(
            text,
            DECLARATION.replace(
                "  \"/var/log\", # logs\n",
                "  \"/var/log\", # logs\n  { directory = \"/var/lib/app\", user = \"foo\", group = \"foo\", mode = \"0750\" },\n"
            )
        );
        // No journal, no temporaries are left.
        assert!(!root.join("persist/.blankslate/persist-journal.toml").exists());
        let names: Vec<_> =
            fs::read_dir(root.join("persist/var/lib")).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, ["app"]);

        // Under the mount, the tmpfs copy is gone: unmounting shows an empty
        // directory with the declared owner and mode.
        let lib = Dir::open_root(&root.join("var/lib")).unwrap();
        mount::unmount(&lib, "app").unwrap();
        assert_eq!(fs::read_dir(&live).unwrap().count(), 0);
        let meta = fs::metadata(&live).unwrap();
        assert_eq!((meta.uid(), meta.gid(), meta.mode() & 0o7777), (1234, 1234, 0o750));
    });
}

#[test]
fn files_are_bound_or_linked_with_their_bytes() {
    in_namespace(|root, declaration| {
        fs::create_dir_all(root.join("etc/ssh")).unwrap();
        fs::write(root.join("etc/ssh/host_key"), "-----KEY-----\n").unwrap();
        fs::set_permissions(root.join("etc/ssh/host_key"), fs::Permissions::from_mode(0o600)).unwrap();
        fs::write(root.join("etc/adjtime"), "0.0 0 0.0\n").unwrap();
        let root_dir = Dir::open_root(root).unwrap();

        let added = add::add(&root_dir, &request("/etc/ssh/host_key", declaration), &mut |_| Ok(())).unwrap();
        assert_eq!(added.entry, r#"{ file = "/etc/ssh/host_key", mode = "0600", how = "bind" }"#);
        assert!(same_inode(&root.join("etc/ssh/host_key"), &root.join("persist/etc/ssh/host_key")));
        assert_eq!(fs::read_to_string(root.join("etc/ssh/host_key")).unwrap(), "-----KEY-----\n");

        let mut symlinked = request("/etc/adjtime", declaration);
        symlinked.how = Some(How::Symlink);
        symlinked.mode = Some(Mode::new(0o640).unwrap());
        let added = add::add(&root_dir, &symlinked, &mut |_| Ok(())).unwrap();
        assert_eq!(added.entry, r#"{ file = "/etc/adjtime", mode = "0640", how = "symlink" }"#);
        assert_eq!(fs::read_link(root.join("etc/adjtime")).unwrap(), Path::new("/persist/etc/adjtime"));
        assert_eq!(fs::read_to_string(root.join("persist/etc/adjtime")).unwrap(), "0.0 0 0.0\n");
        assert_eq!(fs::metadata(root.join("persist/etc/adjtime")).unwrap().mode() & 0o7777, 0o640);

        let text = fs::read_to_string(declaration).unwrap();
        assert!(text.contains(
            "files = [\"/etc/machine-id\", { file = \"/etc/ssh/host_key\", mode = \"0600\", how = \"bind\" }, { file = \"/etc/adjtime\", mode = \"0640\", how = \"symlink\" }]\n"
        ), "{text}");
        // Each file added says how it is persisted: `check` has nothing to ask.
        let checked = blankslate_decl::check(declaration, &text, None);
        let asked: Vec<_> = checked.diagnostics.items.iter().filter(|d| d.rule == Rule::FileBindRename).collect();
        assert!(asked.is_empty(), "{asked:?}");

        let listing = add::list(&root_dir, &load(declaration)).unwrap();
        let states: BTreeMap<_, _> = listing.entries.iter().map(|e| (e.path.as_str(), e.state)).collect();
        assert_eq!(states["/etc/ssh/host_key"], LiveState::Mounted);
        assert_eq!(states["/etc/adjtime"], LiveState::Linked);
        assert_eq!(states["/var/log"], LiveState::MissingSource);
    });
}

fn load(declaration: &Path) -> blankslate_decl::Declaration {
    blankslate_decl::load(declaration, None).unwrap().0
}

/// The caller's hook runs inside the operation: when it fails (a kill, a full state
/// directory), the journal stays at `declared` and names `persist recover`, which
/// runs the hook again for the same path and only then removes the journal.
#[test]
fn a_failed_after_declared_hook_leaves_the_operation_pending_until_recovery_runs_it() {
    in_namespace(|root, declaration| {
        let live = root.join("srv/data");
        fs::create_dir_all(&live).unwrap();
        populate(&live);
        let root_dir = Dir::open_root(root).unwrap();
        let journal = root.join("persist/.blankslate/persist-journal.toml");
        let failed = add::add(&root_dir, &request("/srv/data", declaration), &mut |_| Err("no space".into()));
        let error = failed.unwrap_err().to_string();
        assert!(error.contains("no space") && error.contains("blankslate persist recover"), "{error}");
        assert!(fs::read_to_string(&journal).unwrap().contains("step = \"declared\""));
        assert!(fs::read_to_string(declaration).unwrap().contains("/srv/data"), "declared before the hook");

        let mut seen = Vec::new();
        let recovered = add::recover(&root_dir, declaration, None, &mut |path| {
            seen.push(path.to_owned());
            Ok(())
        })
        .unwrap();
        assert_eq!(seen, ["/srv/data"]);
        assert_eq!(recovered.len(), 1);
        assert_eq!(recovered[0].outcome, add::Outcome::Finished);
        assert!(!journal.exists(), "the journal goes once the hook went through");
        assert!(same_inode(&live, &root.join("persist/srv/data")));
    });
}

#[test]
fn remove_unmounts_copies_back_and_purges() {
    in_namespace(|root, declaration| {
        let live = root.join("srv/data");
        fs::create_dir_all(&live).unwrap();
        populate(&live);
        let before = snapshot(&live);
        let root_dir = Dir::open_root(root).unwrap();
        add::add(&root_dir, &request("/srv/data", declaration), &mut |_| Ok(())).unwrap();

        // Without --copy-back: unmounted, the root's path is empty, the volume keeps it.
        let removed = add::remove(
            &root_dir,
            &RemoveRequest { path: "/srv/data", declaration, copy_back: false, purge: false },
            &mut |_| Ok(()),
        )
        .unwrap();
        assert!(!removed.copied_back);
        assert!(!same_inode(&live, &root.join("persist/srv/data")));
        assert_eq!(fs::read_dir(&live).unwrap().count(), 0);
        assert_eq!(snapshot(&root.join("persist/srv/data")), before);
        assert_eq!(fs::read_to_string(declaration).unwrap(), DECLARATION, "the declaration is as it was");

        // Again, with the data still in the volume: moved back and purged.
        fs::remove_dir(&live).unwrap();
        fs::rename(root.join("persist/srv/data"), root.join("persist/srv/data.kept")).unwrap();
        fs::create_dir(&live).unwrap();
        populate(&live);
        let before = snapshot(&live);
        add::add(&root_dir, &request("/srv/data", declaration), &mut |_| Ok(())).unwrap();
        add::remove(
            &root_dir,
            &RemoveRequest { path: "/srv/data", declaration, copy_back: true, purge: true },
            &mut |_| Ok(()),
        )
        .unwrap();
        assert!(!root.join("persist/srv/data").exists(), "purged");
        assert!(root.join("persist/srv/data.kept").exists(), "other data in the volume is not touched");
        let mut after = snapshot(&live);
        // The top directory was re-created by the copy back: same owner, mode, times.
        assert_eq!(after.remove(Path::new("")), before.get(Path::new("")).cloned());
        let mut expected = before.clone();
        expected.remove(Path::new(""));
        assert_eq!(after, expected);
        assert_eq!(fs::read_to_string(declaration).unwrap(), DECLARATION);
    });
}

#[test]
fn refusals_change_nothing() {
    in_namespace(|root, declaration| {
        fs::create_dir_all(root.join("var/log")).unwrap();
        fs::create_dir_all(root.join("var/lib/taken")).unwrap();
        fs::create_dir_all(root.join("persist/var/lib/taken")).unwrap();
        fs::write(root.join("persist/var/lib/taken/old"), "older data").unwrap();
        fs::create_dir_all(root.join("real")).unwrap();
        std::os::unix::fs::symlink("real", root.join("link")).unwrap();
        fs::create_dir_all(root.join("etc/static")).unwrap();
        let root_dir = Dir::open_root(root).unwrap();
        let refused = |path: &str| match add::add(&root_dir, &request(path, declaration), &mut |_| Ok(())) {
            Err(ManageError::Refused { reason, .. }) => reason,
            other => panic!("{path}: expected a refusal, got {other:?}"),
        };
        assert!(refused("/var/log").contains("already declared"));
        assert!(refused("/var/log/sub").contains("inside /var/log"));
        assert!(refused("/var").contains("holds /var/log"));
        assert!(refused("/var/lib/taken").contains("never overwritten"));
        assert!(refused("/link").contains("symlink"));
        assert!(refused("/missing").contains("does not exist"));
        assert!(refused("/etc/static").contains("store"));
        assert!(refused("/persist/x").contains("persistent root"));
        assert!(refused("var/lib").contains("absolute"));
        assert!(refused("/var//lib").contains("normalized"));
        let mut several = request("/real", declaration);
        several.volume = Some("/elsewhere");
        assert!(matches!(add::add(&root_dir, &several, &mut |_| Ok(())), Err(ManageError::Refused { .. })));
        let mut unknown = request("/real", declaration);
        unknown.user = Some("nobody-here");
        assert!(matches!(add::add(&root_dir, &unknown, &mut |_| Ok(())), Err(ManageError::Refused { .. })));
        assert_eq!(fs::read_to_string(root.join("persist/var/lib/taken/old")).unwrap(), "older data");
        assert_eq!(fs::read_to_string(declaration).unwrap(), DECLARATION);
        assert!(!root.join("persist/.blankslate/persist-journal.toml").exists());
    });
}
