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
use blankslate_test_support::{Scratch, in_namespace, root_or_skip};

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

/// A scratch root (`root/`, with `outside/` beside it) with a built and activated
/// generation: /etc linked, persisted paths mounted from the volume at `persist/`.
fn activated() -> Scratch {
    activated_with(DECLARATION, true)
}

/// Activates `text`; with `volume`, a tmpfs is mounted at `persist/` first (as boot
/// mounts the volume), without, the persistent root is a plain directory of the root.
fn activated_with(text: &str, volume: bool) -> Scratch {
    activated_mounting(text, |root| {
        if volume {
            mount::mount_new(root, "persist", "tmpfs", &[], rustix::mount::MountAttrFlags::empty()).unwrap();
        }
    })
}

/// Activates `text` once `volumes` has mounted what it wants in the root (the
/// directory `persist/` is there).
fn activated_mounting(text: &str, volumes: impl FnOnce(&Dir)) -> Scratch {
    let scratch = Scratch::with_root("root").own_mount();
    std::fs::create_dir_all(scratch.path("persist")).unwrap();
    std::fs::create_dir_all(scratch.outside()).unwrap();
    let declaration = declaration(text);
    let root_dir = Dir::open_root(scratch.root()).unwrap();
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
    scratch
}

/// What the scenarios do with an activated scratch root.
trait Activated {
    /// The audit of the root.
    fn audit(&self) -> Report;
    /// A directory beside the root, outside it.
    fn outside(&self) -> PathBuf;
}

impl Activated for Scratch {
    fn audit(&self) -> Report {
        let root = Dir::open_root(self.root()).unwrap();
        let state = State::open_existing(&root, Path::new(STATE_DIR)).unwrap().unwrap();
        let number = etc::active_record(&root).unwrap().unwrap().generation;
        let generation = state.generation(number).unwrap();
        let declaration = Declaration::from_canonical_json(&state.declaration_json(&generation).unwrap()).unwrap();
        let object = state.part(&generation, "etc").unwrap().unwrap();
        let active = EtcGeneration::load(state.store(), number, &object).unwrap();
        let tree = state.store().open_object(&object).unwrap().open_dir("etc").unwrap();
        let users = etc::users_from_contents(&root, |name| tree.read(name).ok());
        let root_path = std::fs::canonicalize(self.root()).unwrap();
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

    fn outside(&self) -> PathBuf {
        self.dir().join("outside")
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

mod clean;
mod drift;
mod findings;
mod packages;
mod volumes;
mod walk;
