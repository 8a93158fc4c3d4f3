//! Trying a declaration without rebooting: a private mount and PID namespace with a
//! tmpfs root, the store read-only, the host's programs read-only, `/proc`, `/dev`,
//! and `/etc` activated from the generation. Nothing of the host changes: every mount
//! happens in a namespace whose mounts do not propagate back.
//!
//! [`spawn`] runs in the calling process: it makes the next child the first process
//! of a new PID namespace and re-executes this binary as [`init`] there.

use std::ffi::OsString;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use blankslate_decl::Declaration;
use blankslate_state::store::Store;
use blankslate_sys::fs::{Dir, FsError};
use rustix::mount::{MountAttrFlags, MountFlags};

use crate::etc::{self, EtcError, OnConflict};
use crate::root::{self, RootError};
use blankslate_sys::mount::{self, MountError, Source};

/// Inside the sandbox directory: a root holding the state directory (store and
/// profiles) …
pub const STATE: &str = "state";
/// … one directory per persistent root, standing in for its volume (it survives
/// from one run to the next) …
pub const VOLUMES: &str = "volumes";
/// … and the mount point of the tmpfs root.
const MOUNT_POINT: &str = "root";
/// The host directories a command needs to run, brought in read-only (or recreated as
/// the same symlinks, on merged-/usr systems).
const HOST_DIRS: [&str; 7] = ["usr", "bin", "sbin", "lib", "lib32", "lib64", "libx32"];

#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    #[error(transparent)]
    Root(#[from] RootError),
    #[error(transparent)]
    Mount(#[from] MountError),
    #[error(transparent)]
    Fs(#[from] FsError),
    #[error(transparent)]
    Etc(#[from] EtcError),
    #[error(transparent)]
    Persist(#[from] blankslate_persist::PersistError),
    #[error("generation {0}: {1}")]
    Generation(String, String),
    #[error("cannot {what}: {source}")]
    Io { what: String, source: std::io::Error },
}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> SandboxError {
    let what = what.into();
    move |source| SandboxError::Io { what, source }
}

/// What the sandbox's init needs to know, passed on its command line.
#[derive(Debug, Clone)]
pub struct Request {
    /// The sandbox directory (holds [`STATE`], [`VOLUMES`] and the mount point).
    pub dir: PathBuf,
    /// Where the state lives inside [`STATE`] (and inside the sandbox).
    pub state_dir: PathBuf,
    pub generation: u32,
    /// The generation's store object.
    pub object: String,
    /// The command to run; a shell when empty.
    pub command: Vec<OsString>,
}

impl Request {
    /// The arguments `blankslate sandbox-init` takes, in order.
    pub fn to_args(&self) -> Vec<OsString> {
        let mut args: Vec<OsString> = vec![
            "sandbox-init".into(),
            self.dir.clone().into(),
            self.state_dir.clone().into(),
            self.generation.to_string().into(),
            self.object.clone().into(),
            "--".into(),
        ];
        args.extend(self.command.iter().cloned());
        args
    }
}

/// The directory standing in for the volume mounted at `mount`: `/persist` is
/// `persist`, `/mnt/data` is `mnt-data`.
fn volume_name(mount: &str) -> String {
    mount.trim_matches('/').replace('/', "-")
}

/// Runs `request` in a new PID namespace by re-executing `exe` (this binary) as its
/// init; returns the command's exit code.
pub fn spawn(exe: &Path, request: &Request) -> Result<i32, SandboxError> {
    blankslate_sys::raw::unshare_pid_namespace().map_err(io("enter a new PID namespace (this needs root)"))?;
    let status = Command::new(exe)
        .args(request.to_args())
        .arg0("blankslate-sandbox")
        .status()
        .map_err(io("start the sandbox"))?;
    Ok(exit_code(status))
}

fn exit_code(status: std::process::ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    status.code().unwrap_or_else(|| 128 + status.signal().unwrap_or(0))
}

/// The sandbox's first process: builds the root, activates `/etc`, pivots into it and
/// runs the command. Returns the command's exit code.
pub fn init(request: &Request) -> Result<i32, SandboxError> {
    blankslate_sys::raw::unshare_mount_namespace().map_err(io("enter a new mount namespace"))?;
    mount::make_private()?;
    let sandbox = Dir::open_root(&request.dir)?;
    sandbox.create_dir(MOUNT_POINT, 0o755)?;
    let state_relative = request.state_dir.strip_prefix("/").unwrap_or(&request.state_dir);
    let state = sandbox.open_dir(Path::new(STATE).join(state_relative))?;
    let generation = |what: &str| SandboxError::Generation(request.object.clone(), what.to_owned());
    let object = state.open_dir(Path::new("store").join(&request.object))?;
    let text = object.read("declaration.json")?;
    let declaration = Declaration::from_canonical_json(&String::from_utf8_lossy(&text))
        .map_err(|e| generation(&format!("unreadable declaration: {e}")))?;
    let etc_object = object.read_link("etc").map_err(|_| generation("no /etc part"))?;
    let etc_object =
        Path::new(&etc_object).file_name().and_then(|n| n.to_str()).ok_or_else(|| generation("bad /etc part"))?;
    let new_root = root::mount_root(&sandbox, MOUNT_POINT, &declaration.root, &state, &request.state_dir)?;

    for name in HOST_DIRS {
        let host = Path::new("/").join(name);
        match std::fs::symlink_metadata(&host) {
            Ok(meta) if meta.file_type().is_symlink() => {
                let target = std::fs::read_link(&host).map_err(io(format!("read {}", host.display())))?;
                new_root.symlink(name, target)?;
            }
            Ok(meta) if meta.is_dir() => {
                new_root.create_dir(name, 0o755)?;
                mount::bind(Source::HostPath(&host), &new_root, name, MountFlags::RDONLY)?;
            }
            _ => {}
        }
    }
    new_root.create_dir("proc", 0o555)?;
    let kernel_only =
        MountAttrFlags::MOUNT_ATTR_NOSUID | MountAttrFlags::MOUNT_ATTR_NODEV | MountAttrFlags::MOUNT_ATTR_NOEXEC;
    mount::mount_new(&new_root, "proc", "proc", &[], kernel_only)?;
    new_root.create_dir("dev", 0o755)?;
    mount::bind(Source::HostPath(Path::new("/dev")), &new_root, "dev", MountFlags::empty())?;
    for (name, mode) in [("tmp", 0o1777), ("run", 0o755), ("root", 0o700)] {
        new_root.create_dir(name, mode)?;
        new_root.set_mode_of(name, mode)?;
    }
    let volumes = sandbox.create_dir_all(VOLUMES, 0o700)?;
    for mount_point in declaration.persist.keys() {
        let volume = volumes.create_dir_all(volume_name(mount_point), 0o755)?;
        let at = Path::new(mount_point.trim_start_matches('/'));
        let holder = match at.parent().filter(|p| !p.as_os_str().is_empty()) {
            Some(parent) => new_root.create_dir_all(parent, 0o755)?,
            None => new_root.try_clone()?,
        };
        let last = at.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        holder.create_dir(&last, 0o755)?;
        mount::bind(Source::Dir(&volume), &holder, &last, MountFlags::empty())?;
    }

    let store = Store::open(&new_root, &request.state_dir.join("store")).map_err(EtcError::from)?;
    etc::activate_generation(&new_root, &store, request.generation, etc_object, OnConflict::Backup)?;
    let users = etc::users_from_object(&store, &new_root, etc_object)?;
    let report = blankslate_persist::bring_in(&new_root, &declaration, &users, None)?;
    for (path, reason) in report.conflicts.iter().chain(&report.unknown_owners) {
        eprintln!("blankslate sandbox: warning: {path}: {reason}");
    }
    mount::pivot_into(&new_root)?;

    let command: Vec<OsString> = if request.command.is_empty() {
        vec![std::env::var_os("SHELL").filter(|s| Path::new(s).exists()).unwrap_or_else(|| "/bin/sh".into())]
    } else {
        request.command.clone()
    };
    let status = Command::new(&command[0])
        .args(&command[1..])
        .env("PATH", std::env::var_os("PATH").unwrap_or_else(|| "/usr/sbin:/usr/bin:/sbin:/bin".into()))
        .status()
        .map_err(io(format!("run {}", command[0].to_string_lossy())))?;
    Ok(exit_code(status))
}
