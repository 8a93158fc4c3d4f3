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
use blankslate_decl as decl;
use blankslate_state::generation::{DEFAULT_STATE_DIR, State};
use blankslate_state::manifest::MANIFEST_INDEX_FILE;
use blankslate_state::store::Store;
use blankslate_sys::fs::Dir;
use blankslate_test_support::Scratch;
use blankslate_test_support::snapshot::{self, Node};
use rustix::fs::{Mode, OFlags, ResolveFlags};

const STORE: &str = "/var/lib/blankslate/store";

/// A scratch root with a store in it, both open.
struct EtcRoot {
    scratch: Scratch,
    root: Dir,
    store: Store,
}

impl EtcRoot {
    fn new() -> EtcRoot {
        EtcRoot::in_scratch(Scratch::new())
    }

    fn in_scratch(scratch: Scratch) -> EtcRoot {
        let root = Dir::open_root(scratch.root()).unwrap();
        let store = Store::open(&root, Path::new(STORE)).unwrap();
        EtcRoot { scratch, root, store }
    }

    fn path(&self) -> &Path {
        self.scratch.root()
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
        self.scratch.etc(path)
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
        self.scratch.write(Path::new("etc").join(path), contents);
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
    active.manifest.entries.keys().map(str::to_owned).collect()
}

const PASSWD: &str = "root:x:0:0::/root:/bin/sh\\nwww:x:33:33::/var/www:/bin/false\\n";
const GROUP: &str = "root:x:0:\\nwww:x:33:\\nwheel:x:10:\\n";

fn users() -> String {
    format!("[etc.\"passwd\"]\ntext = \"{PASSWD}\"\n[etc.\"group\"]\ntext = \"{GROUP}\"\n")
}

mod conflicts;
mod directories;
mod nixos;
mod resolve;
mod stamps;
mod switching;

#[test]
fn first_activation_links_copies_and_owns_by_the_new_passwd() {
    let scratch = EtcRoot::new();
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
    assert_eq!(etc::active(&scratch.root, &scratch.store).unwrap(), Some(one));
    assert!(!scratch.etc(".blankslate/journal.json").exists());
}
