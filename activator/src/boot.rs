//! Boot-time activation: this binary as `/init` of an initramfs.
//!
//! In order: mount `/proc`, `/sys`, `/dev` (devtmpfs); read the `blankslate.*`
//! parameters of the kernel command line ([`cmdline`]); load the modules from the
//! initramfs's `/lib/modules` (`modules`: the listed ones with their dependencies,
//! or all); find the store's persistent device ([`device`]) and mount it read-only,
//! detached (attached nowhere yet); read the generation from the store **on the
//! volume** (`<volume>/var/lib/blankslate`, which is where `blankslate build --root
//! <volume mount point>` puts it); find and mount the generation's other volumes
//! (`volumes`) and make them all writable; mount the tmpfs root with the
//! generation's settings; attach the volumes at their declared mount points inside the
//! new root (parents first) and bind the state read-only from the store's; activate
//! `/etc` and the persisted paths; link `/bin`, `/sbin`, `/lib*` into a persisted merged `/usr`;
//! record the boot under `/run/blankslate` (a tmpfs: `booted` -> the generation
//! object, which `generations` and `gc` protect, and `boot.json`); move `/proc`,
//! `/sys`, `/dev` into the new root; and switch into it (`chdir`, move it onto `/`,
//! `chroot .`, `exec` the init).
//!
//! The initramfs's own files stay in memory after the switch: deleting them (as
//! `switch_root` does) would need the whole tree walked from the old root, which is no
//! longer reachable by path; an initramfs of a few MiB is the price, documented.
//!
//! A failure (or a panic) is printed on the console with what to do, then an emergency shell runs
//! if there is a `/bin/sh`, else the process sleeps: PID 1 never exits (the kernel
//! would panic) and the volume, if mounted, is left as it was.

mod attempt;
pub mod cmdline;
pub mod device;
mod modules;
mod volumes;

use std::fmt::Write as _;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use blankslate_decl::{Declaration, RootSettings};
use blankslate_state::generation::{DEFAULT_STATE_DIR, Generation, State};
use blankslate_state::store::Store;
use blankslate_state::trial_record::{BootChoice, BootRecord};
use blankslate_sys::fs::Dir;
use blankslate_sys::mount;
use rustix::mount::{MountAttrFlags, MoveMountFlags};

use crate::etc::{self, OnConflict};

/// Where the initramfs mounts the volume and the new root before the switch.
const STAGING: &str = "mnt";
const NEW_ROOT: &str = "root";
/// The crash-injection step of boot (`BLANKSLATE_FAILPOINT=boot-step#N` on the kernel
/// command line, which the kernel hands to init as an environment variable): after
/// the volume is mounted (1), after `/etc` (2), after the persisted paths (3).
pub const FAILPOINT: &str = "boot-step";
/// What boot records, inside the new root.
pub const RECORD_DIR: &str = "run/blankslate";

/// A boot step that failed: what, why, and what the person at the console can do.
#[derive(Debug)]
pub struct Failure {
    pub step: String,
    pub error: String,
    pub hint: String,
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "blankslate: boot failed: cannot {}: {}\nblankslate: what to do: {}",
            self.step, self.error, self.hint
        )
    }
}

trait Step<T> {
    fn step(self, step: &str, hint: &str) -> Result<T, Failure>;
}

impl<T, E: std::fmt::Display> Step<T> for Result<T, E> {
    fn step(self, step: &str, hint: &str) -> Result<T, Failure> {
        self.map_err(|e| Failure { step: step.to_owned(), error: e.to_string(), hint: hint.to_owned() })
    }
}

/// Whether this process is the kernel's init in an initramfs: PID 1, started as
/// `/init` (or any `…/init`). Anything else is an ordinary command.
pub fn is_initramfs_init() -> bool {
    let arg0 = std::env::args_os().next().unwrap_or_default();
    std::process::id() == 1 && Path::new(&arg0).file_name().is_some_and(|n| n == "init")
}

/// The boot; never returns. `args` are the words the kernel passed on to init
/// (forwarded to the real init).
pub fn main(args: &[std::ffi::OsString]) -> ! {
    let started = Instant::now();
    // A panic must not end PID 1 (the kernel would panic too): it becomes a failure.
    let failure = match std::panic::catch_unwind(|| run(started, args)) {
        Ok(Ok(never)) => match never {},
        Ok(Err(failure)) => failure,
        Err(panic) => Failure {
            step: "boot".into(),
            error: format!(
                "internal error: {}",
                panic
                    .downcast_ref::<&str>()
                    .copied()
                    .or(panic.downcast_ref::<String>().map(String::as_str))
                    .unwrap_or("a panic")
            ),
            hint: "report a bug with the console output; boot an older generation with blankslate.generation=N".into(),
        },
    };
    eprintln!("{failure}");
    attempt::reboot_if_on_trial();
    emergency()
}

fn say(debug: bool, started: Instant, what: &str) {
    if debug {
        eprintln!("blankslate: [{:>7.1} ms] {what}", started.elapsed().as_secs_f64() * 1000.0);
    }
}

fn run(started: Instant, args: &[std::ffi::OsString]) -> Result<std::convert::Infallible, Failure> {
    let (initramfs, params) = prepare(started)?;
    let activated = bring_up(&initramfs, NewRoot::Mount, &params, started)?;
    let root = &activated.root;
    record(root, &activated, started.elapsed()).step("record the boot under /run/blankslate", "report a bug")?;
    for name in ["proc", "sys", "dev"] {
        rustix::mount::move_mount(&initramfs, name, root, name, MoveMountFlags::empty())
            .step(&format!("move /{name} into the new root"), "report a bug")?;
    }
    eprintln!("{}; starting {}", activated.summary(started), params.init.display());
    if let Some(boot_dir) = &activated.btrfs_boot
        && let Err(error) = crate::root::btrfs::mark_switched(boot_dir)
    {
        // Only the order of the prune depends on it.
        eprintln!("blankslate: could not mark the btrfs root as booted: {error}");
    }
    switch_root(root, &params.init, args)
}

/// Where the new root comes from.
#[derive(Debug, Clone, Copy)]
enum NewRoot<'a> {
    /// blankslate's own initramfs: a tmpfs with the declared size and mode, mounted on
    /// `/mnt/root`.
    Mount,
    /// A systemd initrd's root-to-be (`/sysroot`): taken as it is if it is a tmpfs
    /// (`root=tmpfs` on the command line), given one if nothing is mounted there.
    Existing(&'a Path),
}

/// A generation activated into a new root that is not entered yet.
#[derive(Debug)]
struct Activated {
    root: Dir,
    /// With a btrfs root, its boot's directory on the btrfs, marked once the boot
    /// switches into the root.
    btrfs_boot: Option<Dir>,
    store: Store,
    generation: Generation,
    /// Every volume, the store's among them, by mount point.
    volumes: Vec<volumes::Staged>,
    /// Loading drivers and waiting for the disks: the kernel's time, not ours.
    kernel_wait: Duration,
    choice: BootChoice,
    /// Persisted paths not brought in (or with owners not found), and why: findings of
    /// their own, which do not stop the boot.
    persist_findings: Vec<(String, String)>,
}

impl Activated {
    fn summary(&self, started: Instant) -> String {
        format!(
            "blankslate: generation {} activated in {:.1} ms ({:.1} ms of it loading modules and waiting for the \
             disk)",
            self.generation.number,
            started.elapsed().as_secs_f64() * 1000.0,
            self.kernel_wait.as_secs_f64() * 1000.0,
        )
    }
}

/// Everything between the command line and the switch: find and mount the store's
/// volume, choose the generation, find and mount its other volumes, make the new
/// root, attach the volumes in it and activate `/etc` and the persisted paths.
fn bring_up(
    initramfs: &Dir,
    new_root: NewRoot<'_>,
    params: &cmdline::Params,
    started: Instant,
) -> Result<Activated, Failure> {
    let debug = params.debug;
    let store_spec = params.volume.as_ref().ok_or_else(|| Failure {
        step: "find the persistent volume".into(),
        error: "no blankslate.persist= on the kernel command line".into(),
        hint: "add blankslate.persist=/dev/DISK (or LABEL=… / UUID=…) to the kernel command line".into(),
    })?;
    let drivers = match new_root {
        NewRoot::Mount => "built into the kernel or listed in blankslate.modules=",
        NewRoot::Existing(_) => "in the initrd (dracut's --add-drivers) for udev to load",
    };
    let store_device = volumes::find(store_spec, None, params.timeout, drivers)?;
    say(debug, started, &format!("volume {} is {}", store_spec.device, store_device.display()));
    let mut kernel_wait = started.elapsed();

    // Detached until it has a place in the new root: a systemd initrd's root is a
    // shared mount, and a mount below a shared one cannot be moved.
    let store_volume = volumes::mount_read_only(&store_device, store_spec, None)?;
    say(debug, started, "volume mounted");
    blankslate_sys::failpoint::hit(FAILPOINT);
    let chosen = choose(store_volume.dir(), params)?;
    say(debug, started, &format!("generation {} ({})", chosen.generation.number, chosen.generation.object));
    let plan = volumes::plan(&chosen.declaration, chosen.generation.number, store_spec, &params.volumes)?;
    let waiting = Instant::now();
    let staged = volumes::stage(plan, &store_device, store_volume, params.timeout, drivers)?;
    kernel_wait += waiting.elapsed();
    volumes::make_writable(&staged)?;
    say(debug, started, &format!("{} volumes mounted", staged.len()));
    // The one write before activation: a trial's attempt is counted before it runs.
    let store_volume = staged.iter().find(|v| v.planned.store).expect("the store's volume is among them");
    attempt::commit(store_volume.mount.dir(), chosen.choice, matches!(new_root, NewRoot::Mount))?;

    let mut settings = chosen.declaration.root.clone();
    if let Some(size) = &params.size {
        settings.size.clone_from(size);
    }
    let (root, btrfs_boot) = match new_root {
        NewRoot::Mount => {
            let staging = initramfs.create_dir_all(STAGING, 0o755).step("create /mnt", "rebuild the initramfs")?;
            staging.create_dir(NEW_ROOT, 0o755).step("create /mnt/root", "rebuild the initramfs")?;
            match &settings.btrfs {
                None => (
                    crate::root::mount_tmpfs(&staging, NEW_ROOT, &settings)
                        .step("mount the tmpfs root", "check blankslate.size= and [root] size in the declaration")?,
                    None,
                ),
                Some(spec) => {
                    let (root, boot_dir) = btrfs_root(&staging, spec, &settings, &chosen, params, drivers, started)?;
                    (root, Some(boot_dir))
                }
            }
        }
        NewRoot::Existing(path) => (existing_root(path, &settings)?, None),
    };
    volumes::attach(&root, &staged)?;
    // Cloned from the attached volume: the kernel clones no mount of a detached tree.
    crate::root::bring_in_state(&root, &chosen.state_dir, Path::new(DEFAULT_STATE_DIR))
        .step("bring the store into the new root", "report a bug")?;
    say(debug, started, "root ready, volumes in place");

    let step_done = |what: &str| say(debug, started, what);
    let (store, persist_findings) = activate(&root, &chosen, matches!(new_root, NewRoot::Mount), &step_done)?;
    say(debug, started, "/etc and persisted paths activated");
    Ok(Activated {
        root,
        btrfs_boot,
        store,
        generation: chosen.generation,
        volumes: staged,
        kernel_wait,
        choice: chosen.choice,
        persist_findings,
    })
}

/// The new root as a fresh subvolume of the btrfs `spec` names, on `/mnt/root`, and
/// its boot's directory on the btrfs.
fn btrfs_root(
    staging: &Dir,
    spec: &blankslate_decl::BtrfsRoot,
    settings: &RootSettings,
    chosen: &Chosen,
    params: &cmdline::Params,
    drivers: &str,
    started: Instant,
) -> Result<(Dir, Dir), Failure> {
    let volume = cmdline::Volume { device: spec.device.clone(), fs_type: "btrfs".into(), options: Vec::new() };
    let device = volumes::find(&volume, Some("/"), params.timeout, drivers)?;
    let since_epoch = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    let record = crate::root::btrfs::BootRecord {
        booted: since_epoch.as_secs(),
        generation: Some(chosen.generation.number),
        boot_id: blankslate_sys::boot_id(),
    };
    let made = Instant::now();
    let (root, fresh) = crate::root::mount_btrfs_root(staging, NEW_ROOT, &device, spec, settings.mode.bits(), &record)
        .step(
            &format!("make the btrfs root on {}", device.display()),
            "check [root] device in the declaration: it must hold a btrfs; or boot an older generation",
        )?;
    say(
        params.debug,
        started,
        &format!(
            "btrfs root roots/{} made in {:.1} ms (made read-only: {:?}, deleted: {:?})",
            fresh.name,
            made.elapsed().as_secs_f64() * 1000.0,
            fresh.retired,
            fresh.pruned
        ),
    );
    if !fresh.dropped.is_empty() {
        eprintln!("blankslate: the btrfs root's file system is full: deleted the previous roots {:?}", fresh.dropped);
    }
    for error in &fresh.problems {
        eprintln!("blankslate: btrfs root (the boot goes on; the next one tries again): {error}");
    }
    Ok((root, fresh.boot_dir))
}

/// The root systemd prepared at `path`: a tmpfs is used as it is, an empty mount
/// point gets the declared tmpfs; anything else (a disk root) is refused, since
/// activating into it would make it persistent, and so is a tmpfs that already holds
/// something (an earlier run got that far: nothing is stacked on a half-done one).
fn existing_root(path: &Path, settings: &RootSettings) -> Result<Dir, Failure> {
    let shown = path.display();
    let hint = "boot with root=tmpfs (and rootflags=size=…,mode=755) on the kernel command line, so that systemd \
                mounts a tmpfs there";
    let refuse = |error: &str, hint: &str| Failure {
        step: format!("use {shown} as the root"),
        error: error.to_owned(),
        hint: hint.to_owned(),
    };
    if settings.btrfs.is_some() {
        return Err(refuse(
            "the declaration's root is a btrfs, which only blankslate's own initramfs makes so far",
            "boot with `blankslate initrd`'s initramfs, or declare a tmpfs root",
        ));
    }
    let (Some(parent), Some(name)) = (path.parent(), path.file_name()) else {
        return Err(refuse("not a directory below /", hint));
    };
    let parent = Dir::open_root(parent).step(&format!("open {}", parent.display()), hint)?;
    let name = name.to_string_lossy();
    // The initrd's own root is often a tmpfs too: only a mount of its own counts.
    if !parent.is_mount_point(name.as_ref()).step(&format!("inspect {shown}"), hint)? {
        return crate::root::mount_tmpfs(&parent, &name, settings)
            .step(&format!("mount a tmpfs on {shown}"), "check blankslate.size= and [root] size in the declaration");
    }
    let root = parent.open_dir(name.as_ref()).step(&format!("open {shown}"), hint)?;
    if !crate::root::is_tmpfs(&root).step(&format!("inspect {shown}"), hint)? {
        return Err(refuse(
            "something other than a tmpfs is mounted there, and activating into it would make it persistent",
            hint,
        ));
    }
    if !root.entries().step(&format!("list {shown}"), hint)?.is_empty() {
        return Err(refuse(
            "the tmpfs there is not empty: an earlier run got this far, or something else put files there",
            "reboot to try again; a run is not repeated on top of a half-done one",
        ));
    }
    Ok(root)
}

/// `blankslate boot --root DIR`: the boot as a service of a systemd initrd
/// (`blankslate-initrd.service`). systemd has mounted `/proc`, `/sys`, `/dev` and
/// `/run`, loaded the drivers (udev) and, with `root=tmpfs`, a tmpfs on `DIR`; this
/// activates the generation the `blankslate.*` parameters name into `DIR` and records
/// the boot under the initrd's `/run/blankslate`, which systemd carries into the new
/// root. systemd then switches root (`init=` names the init; `blankslate.init=` and
/// `blankslate.modules=` are for blankslate's own initramfs and are ignored here).
/// Returns the line to print.
pub fn service(root: &Path) -> Result<String, Failure> {
    let started = Instant::now();
    let params = read_cmdline()?;
    let initramfs = Dir::open_root(Path::new("/")).step("open the initrd's root", "report a bug")?;
    // A second run would mount everything again on top of what the first one left
    // (a half-done one is caught by the root not being empty).
    if initramfs.open_dir(RECORD_DIR).is_ok() {
        return Err(Failure {
            step: format!("activate into {}", root.display()),
            error: "an earlier run in this initrd finished (/run/blankslate is there)".into(),
            hint: "reboot to try again; a run is not repeated on top of another".into(),
        });
    }
    let activated = bring_up(&initramfs, NewRoot::Existing(root), &params, started)?;
    record(&initramfs, &activated, started.elapsed()).step("record the boot under /run/blankslate", "report a bug")?;
    Ok(format!("{}; systemd switches into {}", activated.summary(started), root.display()))
}

/// The `blankslate.*` parameters of the kernel command line.
fn read_cmdline() -> Result<cmdline::Params, Failure> {
    let line = std::fs::read_to_string("/proc/cmdline").step("read /proc/cmdline", "check that /proc is mounted")?;
    cmdline::parse(&line)
        .step("understand the kernel command line", "fix the blankslate.* parameters in the boot loader")
}

/// `/proc`, `/sys`, `/dev` mounted in the initramfs, the command line read, the
/// modules loaded.
fn prepare(started: Instant) -> Result<(Dir, cmdline::Params), Failure> {
    let initramfs = Dir::open_root(Path::new("/")).step("open the initramfs root", "rebuild the initramfs")?;
    let kernel_only = MountAttrFlags::MOUNT_ATTR_NOSUID | MountAttrFlags::MOUNT_ATTR_NOEXEC;
    for (name, fs_type) in [("proc", "proc"), ("sys", "sysfs"), ("dev", "devtmpfs")] {
        initramfs.create_dir(name, 0o755).step("create the mount points", "rebuild the initramfs")?;
        let attributes = if name == "dev" { kernel_only } else { kernel_only | MountAttrFlags::MOUNT_ATTR_NODEV };
        mount::mount_new(&initramfs, name, fs_type, &[], attributes)
            .step(&format!("mount /{name}"), "the kernel needs proc, sysfs and devtmpfs built in")?;
    }
    let params = read_cmdline()?;
    say(params.debug, started, &format!("parameters: {params:?}"));
    let loaded = modules::load(&params.modules)?;
    say(params.debug, started, &format!("loaded modules: {}", loaded.join(" ")));
    Ok((initramfs, params))
}

/// The generation to boot, read from the state on the volume.
#[derive(Debug)]
struct Chosen {
    /// The state directory on the volume (store and profiles).
    state_dir: Dir,
    generation: Generation,
    declaration: Declaration,
    etc_object: String,
    /// The boot default, an attempt of it on trial, or the fallback of a failed trial.
    choice: BootChoice,
}

const BROKEN: &str = "the store on the volume is damaged: boot another generation with blankslate.generation=N, \
                      or run `blankslate store verify`";

fn choose(volume: &Dir, params: &cmdline::Params) -> Result<Chosen, Failure> {
    let no_state = "the volume holds no blankslate state: build a generation onto it with \
                    `blankslate build DECL --root /persist` (the volume's mount point) on a running system";
    let state_relative = Path::new(DEFAULT_STATE_DIR).strip_prefix("/").unwrap_or(Path::new(DEFAULT_STATE_DIR));
    let state = State::open_existing(volume, Path::new(DEFAULT_STATE_DIR))
        .step("open the state on the volume", no_state)?
        .ok_or_else(|| Failure {
            step: format!("find {DEFAULT_STATE_DIR} on the volume"),
            error: "no store and profiles there".into(),
            hint: no_state.into(),
        })?;
    let state_dir = volume.open_dir(state_relative).step("open the state on the volume", no_state)?;
    let choice = match params.generation {
        Some(number) => BootChoice::Plain(number),
        None => state.boot_choice().step("read the current generation", no_state)?.ok_or_else(|| Failure {
            step: "find the current generation".into(),
            error: "no generation is current".into(),
            hint: no_state.into(),
        })?,
    };
    match inspect(&state, state_dir, choice) {
        // A generation on trial that cannot even be read has failed its trial.
        Err(failure) if matches!(choice, BootChoice::Attempt { .. }) => {
            let BootChoice::Attempt { generation, attempt, fallback, .. } = choice else { unreachable!() };
            eprintln!(
                "{failure}\nblankslate: generation {generation} is on trial: falling back to generation {fallback}"
            );
            let state_dir = volume.open_dir(state_relative).step("open the state on the volume", no_state)?;
            inspect(&state, state_dir, BootChoice::FallBack { from: generation, attempts: attempt - 1, to: fallback })
        }
        chosen => chosen,
    }
}

/// The generation `choice` names, its store objects checked and its declaration read.
fn inspect(state: &State, state_dir: Dir, choice: BootChoice) -> Result<Chosen, Failure> {
    let number = choice.generation();
    let generation = state.generation(number).step(
        &format!("find generation {number} (blankslate.generation=)"),
        "pick an existing generation (`blankslate generations list`), or drop blankslate.generation= to boot the \
         current one",
    )?;
    // A damaged object must stop the boot before it is read, or anything is linked to it.
    check_object(state, &generation, &generation.object)?;
    // Boot needs the root settings and persisted paths only: the file is read up to
    // where the /etc entries begin.
    let declaration = state.persisted_declaration(&generation).step("read the generation's declaration", BROKEN)?;
    let etc_object =
        state.part(&generation, "etc").step("read the generation's /etc part", BROKEN)?.ok_or_else(|| Failure {
            step: "read the generation's /etc part".into(),
            error: "none".into(),
            hint: BROKEN.into(),
        })?;
    check_object(state, &generation, &etc_object)?;
    Ok(Chosen { state_dir, generation, declaration, etc_object, choice })
}

/// Fails if `object` (of `generation`) does not hash to its name.
fn check_object(state: &State, generation: &Generation, object: &str) -> Result<(), Failure> {
    match state.store().check_object(object) {
        None => Ok(()),
        Some(problem) => Err(Failure {
            step: format!("use generation {}", generation.number),
            error: format!("its store object {object} is damaged: {problem}"),
            hint: "boot another generation with blankslate.generation=N; once up, `blankslate store verify` lists \
                   every damaged object. Nothing on the volume was changed."
                .into(),
        }),
    }
}

/// The root's top directories and (when `mount_run`: systemd brings its own) `/run`,
/// then `/etc` and the persisted paths. Returns the store (as seen inside the new root)
/// and the persisted paths' findings. A persisted path that cannot be brought in (a
/// user's symlink, FIFO or hard link where it goes, an error on that path alone) is a
/// finding, printed and recorded, and the boot goes on with every other path; what
/// fails for all of them (a volume that is not there) stops it.
fn activate(
    root: &Dir,
    chosen: &Chosen,
    mount_run: bool,
    step_done: &dyn Fn(&str),
) -> Result<(Store, Vec<(String, String)>), Failure> {
    for (name, mode) in
        [("proc", 0o555), ("sys", 0o555), ("dev", 0o755), ("run", 0o755), ("tmp", 0o1777), ("root", 0o700)]
    {
        root.create_dir(name, mode).step("create the root's directories", "report a bug")?;
        root.set_mode_of(name, mode).step("create the root's directories", "report a bug")?;
    }
    if mount_run {
        mount::mount_new(
            root,
            "run",
            "tmpfs",
            &[("mode", "755")],
            MountAttrFlags::MOUNT_ATTR_NOSUID | MountAttrFlags::MOUNT_ATTR_NODEV,
        )
        .step("mount /run", "report a bug")?;
    }
    let store = Store::open(root, &Path::new(DEFAULT_STATE_DIR).join("store")).step("open the store", BROKEN)?;
    etc::activate_generation(root, &store, chosen.generation.number, &chosen.etc_object, OnConflict::Backup)
        .step("activate /etc", BROKEN)?;
    step_done("/etc activated");
    blankslate_sys::failpoint::hit(FAILPOINT);
    let users = etc::users_from_object(&store, root, &chosen.etc_object).step("open the /etc tree", BROKEN)?;
    let fix_volume =
        "the volume's data is untouched; boot another generation (blankslate.generation=N) or fix the volume";
    let report = blankslate_persist::bring_in(root, &chosen.declaration, &users, None)
        .step("bring in the persisted paths", fix_volume)?;
    step_done("persisted paths brought in");
    // A path the system failed to bring in (an I/O error, a full volume) is not one
    // user's entry: booting on would let programs write to the tmpfs what they mean
    // to keep, and lose it at the next reboot.
    if !report.failed_by_system.is_empty() {
        let failed = report.conflicts.iter().filter(|(path, _)| report.failed_by_system.contains(path));
        let error = failed.map(|(path, reason)| format!("{path}: {reason}")).collect::<Vec<_>>().join("; ");
        return Err(Failure { step: "bring in the persisted paths".into(), error, hint: fix_volume.into() });
    }
    let findings: Vec<(String, String)> = report.conflicts.into_iter().chain(report.unknown_owners).collect();
    for (path, reason) in &findings {
        eprintln!("blankslate: warning: {path}: {reason}");
    }
    crate::root::link_merged_usr(root).step("link /bin, /sbin and /lib* into the persisted /usr", "report a bug")?;
    blankslate_sys::failpoint::hit(FAILPOINT);
    Ok((store, findings))
}

/// Writes `run/blankslate/booted` (-> the generation object) and `boot.json` below
/// `base` (the new root, or the systemd initrd whose `/run` moves into it).
fn record(base: &Dir, activated: &Activated, elapsed: Duration) -> Result<(), blankslate_sys::fs::FsError> {
    let dir = base.create_dir_all(RECORD_DIR, 0o755)?;
    dir.symlink_atomic("booted", activated.store.live_path(&activated.generation.object))?;
    let store = activated.volumes.iter().find(|v| v.planned.store).expect("the store's volume is among them");
    let mut record = serde_json::json!({
        "generation": activated.generation.number,
        "object": activated.generation.object,
        "volume": store.planned.spec.device.to_string(),
        "device": store.device,
        "volumes": activated.volumes.iter().map(|v| serde_json::json!({
            "mount_point": v.planned.mount_point,
            "volume": v.planned.spec.device.to_string(),
            "device": v.device,
            "fs_type": v.planned.spec.fs_type,
        })).collect::<Vec<_>>(),
        "activation_ms": elapsed.as_secs_f64() * 1000.0,
        "persist_findings": activated.persist_findings.iter()
            .map(|(path, reason)| serde_json::json!({ "path": path, "reason": reason }))
            .collect::<Vec<_>>(),
    });
    // What `generations list`, `confirm` and the audit read: the trial or fallback.
    if let (Some(all), serde_json::Value::Object(trial)) =
        (record.as_object_mut(), serde_json::json!(BootRecord::of(activated.choice)))
    {
        all.extend(trial.into_iter().filter(|(key, _)| key != "generation"));
    }
    let mut json = String::new();
    let _ = write!(json, "{record}");
    json.push('\n');
    dir.write_atomic("boot.json", json.as_bytes(), 0o644)?;
    Ok(())
}

/// `switch_root`: make `root` the root (move it onto `/`, `chroot` into it) and exec
/// `init`. Returns only on failure.
fn switch_root(root: &Dir, init: &Path, args: &[std::ffi::OsString]) -> Result<std::convert::Infallible, Failure> {
    let hint = "the new root is mounted but could not be entered; report a bug";
    rustix::process::fchdir(root).step("enter the new root", hint)?;
    rustix::mount::mount_move(".", "/").step("move the new root onto /", hint)?;
    rustix::process::chroot(".").step("chroot into the new root", hint)?;
    rustix::process::chdir("/").step("enter /", hint)?;
    let missing = format!(
        "{} is not in the new root: persist the programs (e.g. /usr) or point blankslate.init= at an init that is",
        init.display()
    );
    if !init.exists() {
        return Err(Failure { step: format!("start {}", init.display()), error: "not found".into(), hint: missing });
    }
    let error = std::process::Command::new(init).arg0(init).args(args).exec();
    Err(error).step(&format!("start {}", init.display()), &missing)
}

/// After a failure: a shell if there is one, else sleep. PID 1 must never exit.
fn emergency() -> ! {
    rustix::fs::sync();
    let shell = PathBuf::from("/bin/sh");
    if shell.exists() {
        eprintln!("blankslate: starting an emergency shell (/bin/sh); the boot does not continue after it exits");
        let _ = std::process::Command::new(&shell).status();
    } else {
        eprintln!("blankslate: no /bin/sh for an emergency shell; halted (the machine can be reset safely)");
    }
    loop {
        std::thread::sleep(Duration::from_secs(3600));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    /// Builds `text` as the next generation onto the volume directory `volume`.
    fn build(volume: &Dir, text: &str) {
        let checked = blankslate_decl::check(Path::new("test.toml"), text, None);
        let declaration = checked.declaration.unwrap_or_else(|| panic!("{}", checked.diagnostics));
        let state = State::open_locked(volume, Path::new(DEFAULT_STATE_DIR)).unwrap();
        let etc = blankslate_etc_builder::from_declaration(&declaration).unwrap();
        let object = etc.add_to_store(state.store()).unwrap();
        state.build(&declaration, &[("etc", &object)]).unwrap();
    }

    const ONE_ROOT: &str = "version = 1\n[persist.\"/persist\"]\ndirectories = [\"/var/log\"]\n\
                            [etc.\"hosts\"]\ntext = \"one\\n\"\n";
    const TWO_ROOTS: &str = "version = 1\n[persist.\"/persist\"]\ndirectories = [\"/var/log\"]\n\
                             [persist.\"/data\"]\ndirectories = [\"/srv\"]\n";

    fn params(generation: Option<u32>) -> cmdline::Params {
        cmdline::Params { generation, ..cmdline::Params::default() }
    }

    #[test]
    fn the_current_generation_or_the_one_asked_for() {
        let dir = tempfile::tempdir().unwrap();
        let volume = Dir::open_root(dir.path()).unwrap();
        build(&volume, ONE_ROOT);
        build(&volume, &ONE_ROOT.replace("one", "two"));
        let chosen = choose(&volume, &params(None)).unwrap();
        assert_eq!(chosen.generation.number, 2);
        assert_eq!(choose(&volume, &params(Some(1))).unwrap().generation.number, 1);
        let failure = choose(&volume, &params(Some(7))).unwrap_err();
        assert!(failure.to_string().contains("cannot find generation 7"), "{failure}");
        assert!(failure.hint.contains("blankslate generations list"), "{failure}");
    }

    #[test]
    fn a_damaged_store_object_stops_the_boot_before_anything_is_linked() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let volume = Dir::open_root(dir.path()).unwrap();
        build(&volume, ONE_ROOT);
        let state = State::open_existing(&volume, Path::new(DEFAULT_STATE_DIR)).unwrap().unwrap();
        let etc_object = state.part(&state.current().unwrap().unwrap(), "etc").unwrap().unwrap();
        let hosts = dir.path().join("var/lib/blankslate/store").join(&etc_object).join("etc/hosts");
        std::fs::set_permissions(&hosts, std::fs::Permissions::from_mode(0o644)).unwrap();
        std::fs::write(&hosts, "tampered\n").unwrap();
        std::fs::set_permissions(&hosts, std::fs::Permissions::from_mode(0o444)).unwrap();
        let failure = choose(&volume, &params(None)).unwrap_err();
        assert_eq!(failure.step, "use generation 1", "{failure}");
        assert!(
            failure.error.contains(&format!("its store object {etc_object} is damaged: content hashes to")),
            "{failure}"
        );
        assert!(failure.hint.contains("blankslate.generation=N"), "{failure}");
    }

    /// A boot default on trial for two boots: each boot is counted on the volume before
    /// it runs; the third falls back to the good generation, which becomes the boot
    /// default again; a generation named on the command line is never counted.
    #[test]
    fn a_generation_on_trial_is_counted_then_falls_back() {
        let dir = tempfile::tempdir().unwrap();
        let volume = Dir::open_root(dir.path()).unwrap();
        build(&volume, ONE_ROOT);
        build(&volume, &ONE_ROOT.replace("one", "two"));
        let state = State::open_locked(&volume, Path::new(DEFAULT_STATE_DIR)).unwrap();
        state.mark_good(1).unwrap();
        state.start_boot_trial(2, 2).unwrap();
        assert_eq!(choose(&volume, &params(Some(2))).unwrap().choice, BootChoice::Plain(2));
        for attempt in 1..=2 {
            let chosen = choose(&volume, &params(None)).unwrap();
            assert_eq!(chosen.choice, BootChoice::Attempt { generation: 2, attempt, tries: 2, fallback: 1 });
            assert_eq!(chosen.generation.number, 2);
            attempt::commit(&volume, chosen.choice, false).unwrap();
            assert_eq!(state.boot_trial().unwrap().unwrap().attempts, attempt, "counted before it runs");
        }
        let chosen = choose(&volume, &params(None)).unwrap();
        assert_eq!(chosen.choice, BootChoice::FallBack { from: 2, attempts: 2, to: 1 });
        assert_eq!(chosen.generation.number, 1);
        attempt::commit(&volume, chosen.choice, false).unwrap();
        assert_eq!(state.current_number().unwrap(), Some(1), "the boot default is the good one again");
        assert!(state.boot_trial().unwrap().unwrap().failed, "the failure stays on record");
        assert_eq!(choose(&volume, &params(None)).unwrap().choice, BootChoice::Plain(1));
    }

    /// A generation on trial whose store object is damaged fails its trial at once.
    #[test]
    fn a_damaged_generation_on_trial_falls_back_at_once() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let volume = Dir::open_root(dir.path()).unwrap();
        build(&volume, ONE_ROOT);
        build(&volume, &ONE_ROOT.replace("one", "two"));
        let state = State::open_locked(&volume, Path::new(DEFAULT_STATE_DIR)).unwrap();
        state.start_boot_trial(2, 3).unwrap_err();
        state.set_current(1).unwrap();
        state.start_boot_trial(2, 3).unwrap();
        let etc_object = state.part(&state.generation(2).unwrap(), "etc").unwrap().unwrap();
        let hosts = dir.path().join("var/lib/blankslate/store").join(&etc_object).join("etc/hosts");
        std::fs::set_permissions(&hosts, std::fs::Permissions::from_mode(0o644)).unwrap();
        std::fs::write(&hosts, "tampered\n").unwrap();
        let chosen = choose(&volume, &params(None)).unwrap();
        assert_eq!(chosen.choice, BootChoice::FallBack { from: 2, attempts: 0, to: 1 });
        assert_eq!(chosen.generation.number, 1);
    }

    #[test]
    fn an_empty_volume_or_two_roots_without_a_device_are_explained() {
        let dir = tempfile::tempdir().unwrap();
        let volume = Dir::open_root(dir.path()).unwrap();
        let failure = choose(&volume, &params(None)).unwrap_err();
        assert!(failure.hint.contains("blankslate build DECL --root /persist"), "{failure}");
        assert!(!dir.path().join("var").exists(), "choosing wrote to the volume");
        build(&volume, TWO_ROOTS);
        let chosen = choose(&volume, &params(None)).unwrap();
        let store = cmdline::parse("blankslate.persist=LABEL=sys").unwrap().volume.unwrap();
        let failure = volumes::plan(&chosen.declaration, 1, &store, &BTreeMap::new()).unwrap_err();
        assert!(failure.error.contains("roots /data, /persist have no device"), "{failure}");
    }
}
