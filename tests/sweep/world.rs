//! Scratch worlds. Each worker thread enters a private mount namespace of its own
//! (every process it starts inherits it), and every point of the sweep starts from a
//! fresh tmpfs on the worker's directory: the root, its volume, an installed system
//! for `adopt`, an initrd with a loop-mounted volume for `boot`. Nothing is mounted
//! before the namespace is checked to be the thread's own, so the host's mounts,
//! `/etc` and files are never touched.

use std::ffi::OsString;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use blankslate_sys::fs::Dir;
use blankslate_sys::mount::{self, MountFlags, Source};
use rustix::mount::MountAttrFlags;

use crate::common;

pub const BIN: &str = env!("CARGO_BIN_EXE_blankslate");

/// How long a swept command or a recovery may take before it counts as hung. Far
/// above what any of them takes here (tens of milliseconds).
pub const HANG: Duration = Duration::from_secs(60);

/// Makes this thread's mount namespace its own and private, and refuses to go on
/// unless it now differs from the process's (the main thread's, which stays the
/// host's).
pub fn enter_private_namespace() {
    blankslate_sys::raw::unshare_mount_namespace().expect("unshare the mount namespace (needs root)");
    mount::make_private().expect("make the mounts private");
    let ours = std::fs::read_link("/proc/thread-self/ns/mnt").expect("read this thread's mount namespace");
    let host = std::fs::read_link("/proc/self/ns/mnt").expect("read the process's mount namespace");
    assert_ne!(ours, host, "refusing to mount anything: this thread is still in the host's mount namespace");
}

/// What a point's world holds, besides the plain tmpfs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// A live system: `root/` (a tmpfs) with its volume at `root/persist` (a tmpfs).
    Live,
    /// An installed system at `installed/` and an empty volume (a tmpfs) at `volume/`.
    Adopt,
    /// A systemd initrd at `initrd/` (`/proc` with its own command line, `/dev`, `/run`,
    /// `/sysroot`, the host's `/usr` read-only, the binary as `/blankslate`) and an ext4
    /// volume on a loop device.
    Boot,
}

/// One worker's scratch directory: `cache/` keeps what is made once per worker (the
/// boot volume's image), `p/` is a fresh tmpfs for every point.
#[derive(Debug)]
pub struct Worker {
    pub dir: PathBuf,
}

impl Worker {
    /// Takes `dir` (an empty directory) as the worker's; mounts a tmpfs on it.
    pub fn new(dir: PathBuf) -> Worker {
        mount_tmpfs(&dir);
        std::fs::create_dir(dir.join("cache")).unwrap();
        std::fs::create_dir(dir.join("p")).unwrap();
        Worker { dir }
    }

    pub fn cache(&self) -> PathBuf {
        self.dir.join("cache")
    }

    /// A fresh world of `shape`: whatever the last point left (mounts, processes
    /// started with its paths, a loop device) is ended first.
    pub fn world(&self, shape: Shape) -> World {
        World::new(self.dir.join("p"), self.cache(), shape)
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = unmount(&self.dir);
    }
}

/// A point's scratch world.
#[derive(Debug)]
pub struct World {
    /// The point's tmpfs.
    pub top: PathBuf,
    /// The worker's cache.
    pub cache: PathBuf,
    pub shape: Shape,
    /// The root the commands work on (`--root`): `top/root`, or the initrd's sysroot.
    pub root: PathBuf,
    /// The persistent volume: `root/persist`, or adopt's `top/volume`.
    pub volume: PathBuf,
    /// The loop device of a boot world's volume.
    pub loop_device: Option<String>,
}

impl World {
    fn new(top: PathBuf, cache: PathBuf, shape: Shape) -> World {
        end_processes_of(&top);
        // Whatever was mounted below goes with it (a lazy unmount detaches the subtree).
        while is_mount_point(&top) {
            unmount(&top).expect("unmount the last point's world");
        }
        mount_tmpfs(&top);
        let (root, volume) = match shape {
            Shape::Live => (top.join("root"), top.join("root/persist")),
            Shape::Adopt => (top.join("root"), top.join("volume")),
            Shape::Boot => (top.join("initrd/sysroot"), top.join("initrd/sysroot/persist")),
        };
        let world = World { top, cache, shape, root, volume, loop_device: None };
        match shape {
            Shape::Live => {
                std::fs::create_dir(&world.root).unwrap();
                mount_tmpfs(&world.root);
                std::fs::create_dir(&world.volume).unwrap();
                mount_tmpfs(&world.volume);
            }
            Shape::Adopt => {
                std::fs::create_dir(world.top.join("installed")).unwrap();
                std::fs::create_dir(&world.volume).unwrap();
                mount_tmpfs(&world.volume);
            }
            Shape::Boot => {}
        }
        world
    }

    pub fn path(&self, relative: &str) -> PathBuf {
        self.top.join(relative)
    }

    /// `ROOT/path` for an absolute `path` inside the root.
    pub fn in_root(&self, path: &str) -> PathBuf {
        self.root.join(path.trim_start_matches('/'))
    }

    /// `VOLUME/path` for an absolute `path` as declared.
    pub fn in_volume(&self, path: &str) -> PathBuf {
        self.volume.join(path.trim_start_matches('/'))
    }

    pub fn root_arg(&self) -> String {
        self.root.to_str().unwrap().to_owned()
    }

    /// Writes a file below the world (parents made); returns its path as a string.
    pub fn write(&self, relative: &str, text: &str) -> String {
        let path = self.top.join(relative);
        write_file(&path, text);
        path.to_str().unwrap().to_owned()
    }

    /// Runs the binary with `args` and `--root ROOT`.
    pub fn run(&self, args: &[&str]) -> Output {
        let mut all: Vec<&str> = args.to_vec();
        let root = self.root_arg();
        all.extend(["--root", &root]);
        common::blankslate_env(&all, &[])
    }

    /// Runs the binary with `--root ROOT`; fails the test unless it succeeds (setups).
    pub fn ok(&self, args: &[&str]) -> String {
        let output = self.run(args);
        assert!(
            output.status.success(),
            "setup: blankslate {args:?} failed: {}{}",
            common::stdout(&output),
            common::stderr(&output)
        );
        common::stdout(&output)
    }

    /// The boot world: an initrd whose `/proc/cmdline` names the volume `image`
    /// (attached to a loop device), `/run` a tmpfs, `/sysroot` an empty directory.
    pub fn prepare_initrd(&mut self, image: &Path) {
        assert_eq!(self.shape, Shape::Boot);
        let initrd = self.top.join("initrd");
        for dir in ["proc", "dev", "run", "sysroot", "usr", "lib", "lib64", "bin"] {
            std::fs::create_dir_all(initrd.join(dir)).unwrap();
        }
        let volume_image = self.top.join("volume.img");
        std::fs::copy(image, &volume_image).unwrap();
        let device = attach_loop(&volume_image);
        let initrd_dir = Dir::open_root(&initrd).unwrap();
        mount::mount_new(&initrd_dir, "proc", "proc", &[], MountAttrFlags::empty()).expect("mount proc in the initrd");
        mount::mount_new(&initrd_dir, "run", "tmpfs", &[("mode", "0755")], MountAttrFlags::empty()).unwrap();
        let read_only = MountFlags::RDONLY;
        for dir in ["dev", "usr", "lib", "lib64", "bin"] {
            let host = Path::new("/").join(dir);
            let host = std::fs::canonicalize(&host).unwrap_or(host);
            if host.is_dir() {
                let flags = if dir == "dev" { MountFlags::empty() } else { read_only };
                mount::bind(Source::HostPath(&host), &initrd_dir, dir, flags).expect("bind a host directory");
            }
        }
        write_file(
            &self.top.join("cmdline"),
            &format!("quiet blankslate.persist={device}:ext4 blankslate.timeout=2\n"),
        );
        let top = Dir::open_root(&self.top).unwrap();
        let proc = initrd_dir.open_dir("proc").unwrap();
        mount::bind(Source::File(&top, "cmdline"), &proc, "cmdline", read_only).expect("bind the initrd's cmdline");
        write_file(&initrd.join("blankslate"), "");
        let bin = Path::new(BIN);
        let bin_dir = Dir::open_root(bin.parent().unwrap()).unwrap();
        let name = bin.file_name().unwrap().to_str().unwrap();
        mount::bind(Source::File(&bin_dir, name), &initrd_dir, "blankslate", read_only).expect("bind the binary");
        self.loop_device = Some(device);
    }

    /// What a reboot does to a boot world: the new root and `/run` are gone (the
    /// volume keeps what was written to it).
    pub fn reboot(&self) {
        let initrd = self.top.join("initrd");
        for dir in ["sysroot", "run"] {
            while is_mount_point(&initrd.join(dir)) {
                unmount(&initrd.join(dir)).unwrap();
            }
        }
        let initrd_dir = Dir::open_root(&initrd).unwrap();
        mount::mount_new(&initrd_dir, "run", "tmpfs", &[("mode", "0755")], MountAttrFlags::empty()).unwrap();
    }

    /// The command line of the boot as a systemd initrd runs it, in the initrd.
    pub fn boot_command(&self) -> Vec<OsString> {
        let initrd = self.top.join("initrd");
        [
            "chroot".into(),
            initrd.into_os_string(),
            "/blankslate".into(),
            "boot".into(),
            "--root".into(),
            "/sysroot".into(),
        ]
        .into()
    }
}

impl Drop for World {
    fn drop(&mut self) {
        end_processes_of(&self.top);
        while is_mount_point(&self.top) {
            let _ = unmount(&self.top);
        }
        if let Some(device) = &self.loop_device {
            // The kernel lets go of it once the lazily unmounted volume is released.
            let _ = common::output(Command::new("losetup").args(["--detach", device]));
        }
    }
}

pub fn write_file(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

/// Mounts a fresh tmpfs on the directory `at`.
pub fn mount_tmpfs(at: &Path) {
    let parent = Dir::open_root(at.parent().unwrap()).unwrap();
    let name = at.file_name().unwrap().to_str().unwrap();
    mount::mount_new(&parent, name, "tmpfs", &[("mode", "0755")], MountAttrFlags::empty())
        .unwrap_or_else(|e| panic!("mount a tmpfs on {}: {e}", at.display()));
}

/// Detaches what is mounted on `at`, and everything below it.
pub fn unmount(at: &Path) -> Result<(), String> {
    let parent = Dir::open_root(at.parent().unwrap()).map_err(|e| e.to_string())?;
    let name = at.file_name().unwrap().to_str().unwrap();
    mount::unmount(&parent, name).map_err(|e| e.to_string())
}

pub fn is_mount_point(at: &Path) -> bool {
    let parent = Dir::open_root(at.parent().unwrap()).unwrap();
    parent.is_mount_point(at.file_name().unwrap()).unwrap_or(false)
}

/// The processes whose command line names something below `top` (a watcher, a
/// command that outlived its tracer): pid and command line. This process is not one.
pub fn processes_of(top: &Path) -> Vec<(u32, String)> {
    let needle = top.as_os_str().as_bytes();
    let own = std::process::id();
    let Ok(entries) = std::fs::read_dir("/proc") else { return Vec::new() };
    let mut found = Vec::new();
    for entry in entries.filter_map(Result::ok) {
        let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else { continue };
        if pid == own {
            continue;
        }
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else { continue };
        if cmdline.windows(needle.len()).any(|w| w == needle) {
            let shown = String::from_utf8_lossy(&cmdline).replace('\0', " ").trim().to_owned();
            found.push((pid, shown));
        }
    }
    found
}

/// Kills the processes [`processes_of`] finds (each started, directly or not, by
/// this sweep for this world), and waits until they are gone.
pub fn end_processes_of(top: &Path) {
    for _ in 0..100 {
        let found = processes_of(top);
        if found.is_empty() {
            return;
        }
        for (pid, _) in found {
            if let Some(pid) = rustix::process::Pid::from_raw(i32::try_from(pid).unwrap()) {
                let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
            }
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    panic!("processes of {} do not end: {:?}", top.display(), processes_of(top));
}

/// Attaches `image` to a free loop device; returns the device's path.
fn attach_loop(image: &Path) -> String {
    let output = common::output(Command::new("losetup").args(["--find", "--show"]).arg(image));
    assert!(output.status.success(), "losetup: {}", common::stderr(&output));
    common::stdout(&output).trim().to_owned()
}
