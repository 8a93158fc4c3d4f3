//! The VM test harness: a real kernel boots the static blankslate binary as `/init`
//! under QEMU (TCG), with an ext4 persistent disk built on the host, and the tests read
//! the results from the serial log, the `isa-debug-exit` status and the disk image.
//!
//! Artifacts are cached and kept under `target/`: the kernel in `target/vm-kernel`,
//! the static binary in `target/vm-static`, each scenario's disk, initramfs and serial
//! log in `target/vm-work/<scenario>` (for a look after a failure).

#![forbid(unsafe_code)]

pub mod debian;
pub mod fleet;
mod kernels;
pub mod lifecycle;
mod running;
pub mod uefi;

pub use kernels::{Kernel, compressed_modules_kernel, kernel, kernel_package, own_apt, trixie_kernel};
pub use running::{Running, free_port};

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

pub type Result<T> = std::result::Result<T, String>;

/// The modules the Debian cloud kernel needs for a virtio disk, in load order.
pub const VIRTIO_MODULES: [&str; 6] =
    ["virtio_ring", "virtio", "virtio_pci_modern_dev", "virtio_pci_legacy_dev", "virtio_pci", "virtio_blk"];

/// The modules btrfs needs on Debian 12's cloud kernel, after [`VIRTIO_MODULES`], in
/// load order: what `modinfo -F depends btrfs` names, then btrfs (the crc32c that
/// `libcrc32c` asks the crypto API for as it loads is built in).
pub const BTRFS_MODULES: [&str; 5] = ["xor", "raid6_pq", "libcrc32c", "zstd_compress", "btrfs"];

/// What the guest script writes to port 0xf4: QEMU exits with `(value << 1) | 1`.
pub const EXIT_PASS: i32 = 3;
pub const EXIT_FAIL: i32 = 5;

pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("vm-tests is in the workspace").to_path_buf()
}

fn target() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| workspace().join("target"), PathBuf::from)
}

/// An exclusive lock on `target/<name>.lock`, held while the returned file is open:
/// the lanes of `vm-tests/run` are separate processes, and two of them may fill the
/// same cache at once. The kernel drops the lock when its holder dies, so a killed
/// run leaves none behind.
pub(crate) fn cache_lock(name: &str) -> Result<std::fs::File> {
    let path = target().join(format!("{name}.lock"));
    std::fs::create_dir_all(path.parent().expect("under target/")).map_err(|e| e.to_string())?;
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    rustix::fs::flock(&file, rustix::fs::FlockOperation::LockExclusive)
        .map_err(|e| format!("cannot lock {}: {e}", path.display()))?;
    Ok(file)
}

/// The name of the test program this process runs (`debian` for
/// `target/debug/deps/debian-<hash>`): what two lanes that prepare the same image
/// tell their work apart by.
pub(crate) fn program() -> String {
    let exe = std::env::current_exe().unwrap_or_default();
    let stem = exe.file_stem().unwrap_or_default().to_string_lossy().into_owned();
    match stem.rsplit_once('-') {
        Some((name, _hash)) => name.to_owned(),
        None => stem,
    }
}

/// Runs `command`, failing with its standard error if it fails.
pub fn run(command: &mut Command) -> Result<String> {
    let shown = format!("{command:?}");
    let output = command.stdin(Stdio::null()).output().map_err(|e| format!("cannot run {shown}: {e}"))?;
    if !output.status.success() {
        return Err(format!(
            "{shown} failed ({}):\n{}{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// Downloads from Debian's mirror try again: a fresh CI machine always downloads, and
/// one dropped connection must not fail the run.
pub const APT_RETRIES: &str = "Acquire::Retries=3";

fn sh(script: &str) -> Result<String> {
    run(Command::new("sh").args(["-ec", script]))
}

/// Builds, with `blankslate initrd`, an initramfs named `name` (under
/// `target/vm-work`) with `kernel`'s modules `modules` (and what they need). Returns
/// it with what the command printed (the modules it put in, one a line).
pub fn initrd_with(name: &str, kernel: &Kernel, modules: &[&str]) -> Result<(PathBuf, String)> {
    let out = target().join("vm-work").join(name);
    std::fs::create_dir_all(out.parent().unwrap()).map_err(|e| e.to_string())?;
    let mut command = Command::new(static_binary()?);
    command.arg("initrd").arg("--output").arg(&out).arg("--modules").arg(&kernel.modules);
    for module in modules {
        command.args(["--module", module]);
    }
    let output = command.stdin(Stdio::null()).output().map_err(|e| e.to_string())?;
    let printed = format!("{}{}", String::from_utf8_lossy(&output.stderr), String::from_utf8_lossy(&output.stdout));
    if !output.status.success() {
        return Err(format!("blankslate initrd failed:\n{printed}"));
    }
    Ok((out, printed))
}

/// The cargo profile of the static binary: `release` (what users boot, so the boot
/// numbers are theirs), or `debug` with `BLANKSLATE_VM_PROFILE=debug` (overflow
/// checks and debug assertions on).
pub fn static_binary_profile() -> &'static str {
    if std::env::var("BLANKSLATE_VM_PROFILE").is_ok_and(|p| p == "debug") { "debug" } else { "release" }
}

/// Builds (once per run; cargo makes it incremental) the static binary:
/// `RUSTFLAGS="-C target-feature=+crt-static" cargo build --release -p blankslate
/// --target x86_64-unknown-linux-gnu --target-dir target/vm-static` (see
/// [`static_binary_profile`]), or takes the one `BLANKSLATE_VM_BINARY` names.
pub fn static_binary() -> Result<PathBuf> {
    static BINARY: OnceLock<std::result::Result<PathBuf, String>> = OnceLock::new();
    BINARY
        .get_or_init(|| {
            if let Some(prebuilt) = std::env::var_os("BLANKSLATE_VM_BINARY") {
                return Ok(PathBuf::from(prebuilt));
            }
            let dir = target().join("vm-static");
            let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
            let profile = static_binary_profile();
            let mut build = Command::new(cargo);
            build.current_dir(workspace()).env("RUSTFLAGS", "-C target-feature=+crt-static");
            build.args(["build", "--quiet", "-p", "blankslate", "--target", "x86_64-unknown-linux-gnu"]);
            if profile == "release" {
                build.arg("--release");
            }
            run(build.arg("--target-dir").arg(&dir))?;
            let binary = dir.join("x86_64-unknown-linux-gnu").join(profile).join("blankslate");
            let file = run(Command::new("file").arg(&binary)).unwrap_or_default();
            if file.contains("dynamically linked") {
                return Err(format!("{} is not static: {file}", binary.display()));
            }
            Ok(binary)
        })
        .clone()
}

/// The initramfs (gzip-compressed): the static binary as /init and the virtio modules
/// (built once).
pub fn initrd() -> Result<PathBuf> {
    static INITRD: OnceLock<std::result::Result<PathBuf, String>> = OnceLock::new();
    INITRD
        .get_or_init(|| {
            let kernel = kernel()?;
            let binary = static_binary()?;
            let out = target().join("vm-work/initrd.cpio.gz");
            std::fs::create_dir_all(out.parent().unwrap()).map_err(|e| e.to_string())?;
            let mut command = Command::new(&binary);
            command.arg("initrd").arg("--output").arg(&out).arg("--modules").arg(&kernel.modules);
            for module in VIRTIO_MODULES {
                command.args(["--module", module]);
            }
            run(&mut command)?;
            Ok(out)
        })
        .clone()
}

/// A scenario's working directory, emptied.
pub fn work_dir(scenario: &str) -> Result<PathBuf> {
    let dir = target().join("vm-work").join(scenario);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    Ok(dir)
}

/// The volume's contents before `mkfs.ext4 -d`: a directory standing for the volume's
/// root (mounted at `/persist` in the guest).
#[derive(Debug)]
pub struct Volume {
    pub dir: PathBuf,
}

impl Volume {
    /// A volume with busybox in `bin/` (every applet linked), blankslate as
    /// `bin/blankslate` and `script` as `bin/vmtest-init`.
    pub fn new(work: &Path, script: &str) -> Result<Volume> {
        let dir = work.join("volume");
        install_busybox(&dir.join("bin"))?;
        exit_helper(&dir.join("bin/vmtest-exit"))?;
        // The same static binary, for `blankslate audit` and `switch` inside the guest.
        std::fs::copy(static_binary()?, dir.join("bin/blankslate")).map_err(|e| e.to_string())?;
        let script_path = dir.join("bin/vmtest-init");
        std::fs::write(&script_path, script).map_err(|e| e.to_string())?;
        sh(&format!("chmod 0755 '{}'", script_path.display()))?;
        Ok(Volume { dir })
    }

    /// `blankslate build` of `declaration` onto the volume (a new generation).
    pub fn build(&self, declaration: &str, name: &str) -> Result<String> {
        let file = self.dir.parent().unwrap().join(format!("{name}.toml"));
        std::fs::write(&file, declaration).map_err(|e| e.to_string())?;
        run(Command::new(static_binary()?).arg("build").arg(&file).arg("--root").arg(&self.dir))
    }

    /// A volume with nothing in it yet, in `work/name`: a second disk.
    pub fn empty(work: &Path, name: &str) -> Result<Volume> {
        let dir = work.join(name);
        std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
        Ok(Volume { dir })
    }

    /// Writes the ext4 image (`mkfs.ext4 -d`: no loop mount) labelled `label`.
    pub fn make_disk(&self, image: &Path, label: &str) -> Result<()> {
        self.make_disk_as(image, "ext4", label, None)
    }

    /// Writes an image of file system `fs_type` (`ext2`, `ext3` or `ext4`, made by
    /// `mkfs.FS_TYPE -d`) labelled `label`, with the UUID `uuid` if given.
    pub fn make_disk_as(&self, image: &Path, fs_type: &str, label: &str, uuid: Option<&str>) -> Result<()> {
        let file = std::fs::File::create(image).map_err(|e| e.to_string())?;
        file.set_len(64 << 20).map_err(|e| e.to_string())?;
        let mut mkfs = Command::new(format!("mkfs.{fs_type}"));
        mkfs.args(["-q", "-F", "-L", label]);
        if let Some(uuid) = uuid {
            mkfs.args(["-U", uuid]);
        }
        run(mkfs.arg("-d").arg(&self.dir).arg(image))?;
        Ok(())
    }
}

/// The static busybox in `bin` (created), with a link for every applet.
fn install_busybox(bin: &Path) -> Result<()> {
    std::fs::create_dir_all(bin).map_err(|e| e.to_string())?;
    let busybox = ["/bin/busybox", "/usr/bin/busybox"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .ok_or("no busybox: apt-get install busybox-static")?;
    std::fs::copy(busybox, bin.join("busybox")).map_err(|e| e.to_string())?;
    let applets = run(Command::new(busybox).arg("--list"))?;
    for applet in applets.lines().filter(|a| !a.is_empty() && *a != "busybox") {
        std::os::unix::fs::symlink("busybox", bin.join(applet)).map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// An initramfs standing in for a systemd initrd, to run `blankslate boot --root
/// /sysroot` as `blankslate-initrd.service` would: a busybox script as `/init` does
/// systemd's part (mounts `/proc`, `/sys`, `/dev`, `/run`; loads the drivers as udev
/// would; mounts a tmpfs on `/sysroot` as `root=tmpfs` does, unless the command line
/// says `vmtest_sysroot=none`), runs the service, then moves the API file systems into
/// `/sysroot` and switches into it as `initrd-switch-root.service` does. Built once.
pub fn service_initrd() -> Result<PathBuf> {
    static INITRD: OnceLock<std::result::Result<PathBuf, String>> = OnceLock::new();
    INITRD
        .get_or_init(|| {
            let kernel = kernel()?;
            let staging = target().join("vm-work/service-initrd");
            let _ = std::fs::remove_dir_all(&staging);
            install_busybox(&staging.join("bin"))?;
            std::fs::copy(static_binary()?, staging.join("bin/blankslate")).map_err(|e| e.to_string())?;
            let modules = staging.join("lib/modules");
            std::fs::create_dir_all(&modules).map_err(|e| e.to_string())?;
            for name in VIRTIO_MODULES {
                let found = sh(&format!("find '{}' -name '{name}.ko' | head -n 1", kernel.modules.display()))?;
                let found = found.trim();
                if found.is_empty() {
                    return Err(format!("no {name}.ko under {}", kernel.modules.display()));
                }
                std::fs::copy(found, modules.join(format!("{name}.ko"))).map_err(|e| e.to_string())?;
            }
            let script = format!(
                r#"#!/bin/busybox sh
export PATH=/bin
mkdir -p /proc /sys /dev /run /sysroot
mount -t proc proc /proc && mount -t sysfs sys /sys && mount -t devtmpfs dev /dev && mount -t tmpfs -o mode=755 run /run
for module in {modules}; do insmod /lib/modules/$module.ko; done
[ "$vmtest_sysroot" = none ] || mount -t tmpfs -o mode=755,size=48M sysroot /sysroot
echo "VMTEST SERVICE START"
if ! blankslate boot --root /sysroot; then
    echo "VMTEST SERVICE FAILED"
    sleep 1; vmtest-exit 2; sleep 10
fi
for fs in proc sys dev run; do mkdir -p /sysroot/$fs && mount --move /$fs /sysroot/$fs; done
exec switch_root /sysroot /bin/vmtest-init
"#,
                modules = VIRTIO_MODULES.join(" ")
            );
            std::fs::write(staging.join("init"), script).map_err(|e| e.to_string())?;
            exit_helper(&staging.join("bin/vmtest-exit"))?;
            sh(&format!("chmod 0755 '{}/init'", staging.display()))?;
            let out = target().join("vm-work/service-initrd.cpio.gz");
            sh(&format!(
                "cd '{}' && find . | cpio -o -H newc --quiet | gzip -1 > '{}'",
                staging.display(),
                out.display()
            ))?;
            Ok(out)
        })
        .clone()
}

/// The guest's way to end QEMU with a status: a tiny static C program writing its
/// argument to I/O port 0xf4 (isa-debug-exit). The Debian cloud kernel has no
/// `/dev/port`, busybox has no `outb`, and port I/O would need unsafe code in
/// blankslate itself, which has no business doing it.
fn exit_helper(out: &Path) -> Result<()> {
    let source = out.with_extension("c");
    std::fs::write(
        &source,
        "#include <stdlib.h>\n#include <sys/io.h>\n\
         int main(int argc, char **argv) {\n\
           if (argc < 2 || ioperm(0xf4, 1, 1) != 0) return 1;\n\
           outb((unsigned char)atoi(argv[1]), 0xf4);\n\
           return 0;\n\
         }\n",
    )
    .map_err(|e| e.to_string())?;
    let cc = std::env::var_os("CC").unwrap_or_else(|| "cc".into());
    run(Command::new(cc).args(["-static", "-O2", "-o"]).arg(out).arg(&source))?;
    std::fs::remove_file(&source).map_err(|e| e.to_string())
}

/// One boot's result.
#[derive(Debug)]
pub struct Boot {
    /// QEMU's exit status; `None` when the harness stopped it (timeout or stop marker).
    pub status: Option<i32>,
    pub log: String,
    pub elapsed: Duration,
    pub timed_out: bool,
}

impl Boot {
    /// The activator's own time, from its console line.
    pub fn activation_ms(&self) -> Option<f64> {
        let line = self.log.lines().find(|l| l.contains("blankslate: generation") && l.contains(" activated in "))?;
        line.split(" activated in ").nth(1)?.split(" ms").next()?.trim().parse().ok()
    }

    /// Of [`Boot::activation_ms`], the time spent loading modules and waiting for the
    /// disk (the kernel's work).
    pub fn kernel_wait_ms(&self) -> Option<f64> {
        let line = self.log.lines().find(|l| l.contains("blankslate: generation") && l.contains(" activated in "))?;
        line.split(" ms (").nth(1)?.split(" ms of it").next()?.trim().parse().ok()
    }

    /// What follows `marker` (such as `VMTEST FACT `) on each line that has it,
    /// wherever it starts: a getty's prompt or a kernel message without a newline may
    /// stand before it on the serial console.
    pub fn marked<'a>(&'a self, marker: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.log.lines().filter_map(move |l| l.split_once(marker).map(|(_, rest)| rest.trim_end()))
    }

    /// Whether the guest printed `VMTEST PASS` (at the end of a line).
    pub fn passed(&self) -> bool {
        self.log.lines().any(|l| l.trim_end().ends_with("VMTEST PASS"))
    }

    /// The kernel's uptime when the test init started, from the script's marker.
    pub fn init_uptime(&self) -> Option<f64> {
        let line = self.marked("VMTEST UPTIME ").next()?;
        line.split_whitespace().next()?.parse().ok()
    }

    /// Whether the guest rebooted itself: with `-no-reboot`, QEMU then exits 0, and
    /// the kernel said so (a panic also reboots, and is not this).
    pub fn rebooted(&self) -> bool {
        self.status == Some(0) && self.log.contains("reboot: Restarting system") && !self.log.contains("Kernel panic")
    }

    pub fn tail(&self, lines: usize) -> String {
        let all: Vec<&str> = self.log.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// Fails, with the failing markers and the log's tail, unless the guest script
    /// passed every check and exited through isa-debug-exit with the pass status.
    pub fn expect_pass(&self, what: &str) -> Result<()> {
        let failed: Vec<&str> = self.log.lines().filter(|l| l.contains("VMTEST FAIL")).collect();
        let passed = self.passed();
        if self.status == Some(EXIT_PASS) && passed && failed.is_empty() {
            return Ok(());
        }
        let why = if self.timed_out {
            "timed out".to_owned()
        } else if self.log.contains("Kernel panic") {
            "the kernel panicked (did /init die?)".to_owned()
        } else if let Some(line) = self.log.lines().find(|l| l.contains("blankslate: boot failed")) {
            format!("boot failed: {line}")
        } else {
            format!("QEMU exit status {:?}, PASS marker {}", self.status, if passed { "seen" } else { "missing" })
        };
        Err(format!("{what}: {why}\nfailed checks: {failed:#?}\n--- serial log tail ---\n{}", self.tail(40)))
    }
}

impl Boot {
    /// Fails, as [`Boot::expect_pass`] does, unless the guest passed every check and
    /// then powered off cleanly (a real init's `systemctl poweroff`: QEMU exits 0 on
    /// the kernel's "Power down", which a panic never prints).
    pub fn expect_powered_off(&self, what: &str) -> Result<()> {
        let failed: Vec<&str> = self.log.lines().filter(|l| l.contains("VMTEST FAIL")).collect();
        let passed = self.passed();
        let powered_off = self.log.contains("reboot: Power down");
        if self.status == Some(0) && passed && powered_off && failed.is_empty() {
            return Ok(());
        }
        let why = if self.timed_out {
            "timed out".to_owned()
        } else if self.log.contains("Kernel panic") {
            "the kernel panicked".to_owned()
        } else {
            format!(
                "QEMU exit status {:?}, PASS marker {}, power-down {}",
                self.status,
                if passed { "seen" } else { "missing" },
                if powered_off { "seen" } else { "missing" }
            )
        };
        Err(format!("{what}: {why}\nfailed checks: {failed:#?}\n--- serial log tail ---\n{}", self.tail(30)))
    }
}

/// QEMU runs one at a time: TCG is CPU-bound and the machine has few cores.
static QEMU: Mutex<()> = Mutex::new(());

/// Boots `disk` with the shared kernel and initramfs and the kernel command line
/// `append` (after the console and module settings). Stops QEMU (by its pid) when
/// `stop_marker` appears in the serial log or after `limit`.
pub fn boot(work: &Path, disk: &Path, append: &str, stop_marker: Option<&str>, limit: Duration) -> Result<Boot> {
    boot_initrd(&initrd()?, work, disk, append, stop_marker, limit)
}

/// [`boot`] with another initramfs.
pub fn boot_initrd(
    initrd: &Path,
    work: &Path,
    disk: &Path,
    append: &str,
    stop_marker: Option<&str>,
    limit: Duration,
) -> Result<Boot> {
    let machine = Machine { kernel: &kernel()?, initrd, disks: &[disk], name_modules: true };
    boot_machine(&machine, work, append, stop_marker, limit)
}

/// What QEMU boots: a kernel, an initramfs, virtio disks (`/dev/vda`, `/dev/vdb`, …
/// in this order).
#[derive(Debug, Clone, Copy)]
pub struct Machine<'a> {
    pub kernel: &'a Kernel,
    pub initrd: &'a Path,
    pub disks: &'a [&'a Path],
    /// Put `blankslate.modules=` with [`VIRTIO_MODULES`] on the command line (without
    /// it, boot loads every module of the initramfs).
    pub name_modules: bool,
}

/// Boots `machine` with the kernel command line `append` (after the console and, if
/// asked, module settings). Stops QEMU (by its pid) when `stop_marker` appears in the
/// serial log or after `limit`.
pub fn boot_machine(
    machine: &Machine<'_>,
    work: &Path,
    append: &str,
    stop_marker: Option<&str>,
    limit: Duration,
) -> Result<Boot> {
    let mut cmdline = String::from("console=ttyS0 panic=-1 loglevel=4");
    if machine.name_modules {
        let _ = write!(cmdline, " blankslate.modules={}", VIRTIO_MODULES.join(","));
    }
    let _ = write!(cmdline, " {append}");
    let qemu = Qemu {
        kernel: &machine.kernel.vmlinuz,
        initrd: machine.initrd,
        disks: machine.disks,
        memory_mb: 512,
        cmdline: &cmdline,
    };
    qemu.boot(work, stop_marker, limit)
}

/// One QEMU run: a kernel and initramfs booted directly, virtio disks, a serial
/// console to a log, `isa-debug-exit` for the guest to end it with a status.
#[derive(Debug, Clone, Copy)]
pub struct Qemu<'a> {
    pub kernel: &'a Path,
    pub initrd: &'a Path,
    pub disks: &'a [&'a Path],
    pub memory_mb: u32,
    /// The whole kernel command line (`console=ttyS0` included).
    pub cmdline: &'a str,
}

impl Qemu<'_> {
    /// Boots, with the serial log in the next `serial-N.log` of `work`. Stops QEMU (by
    /// its pid) when `stop_marker` appears in the log or after `limit`.
    pub fn boot(&self, work: &Path, stop_marker: Option<&str>, limit: Duration) -> Result<Boot> {
        run_qemu(self.command("none"), work, stop_marker, limit)
    }

    /// The QEMU command of this machine, with `-nic NIC` (`none`: no network) and
    /// without its serial console.
    pub(crate) fn command(&self, nic: &str) -> Command {
        let mut cmdline = self.cmdline.to_owned();
        // For a look at a failing boot: BLANKSLATE_VM_APPEND=blankslate.debug.
        if let Ok(extra) = std::env::var("BLANKSLATE_VM_APPEND") {
            let _ = write!(cmdline, " {extra}");
        }
        let mut command = Command::new("qemu-system-x86_64");
        command
            .args(["-accel", "tcg", "-no-reboot", "-display", "none", "-nic", nic, "-monitor", "none"])
            .arg("-m")
            .arg(self.memory_mb.to_string())
            .args(["-device", "isa-debug-exit,iobase=0xf4,iosize=0x04"])
            .arg("-kernel")
            .arg(self.kernel)
            .arg("-initrd")
            .arg(self.initrd)
            .arg("-append")
            .arg(&cmdline);
        for disk in self.disks {
            command.arg("-drive").arg(format!("file={},format=raw,if=virtio", disk.display()));
        }
        command
    }
}

/// The next `serial-N.log` of `work` (N counts what `work` holds), removed if there.
pub(crate) fn next_serial_log(work: &Path) -> PathBuf {
    let log_path = work.join(format!("serial-{}.log", std::fs::read_dir(work).map_or(0, Iterator::count)));
    let _ = std::fs::remove_file(&log_path);
    log_path
}

/// Runs `command` (QEMU without its serial console), with the serial log in the next
/// `serial-N.log` of `work`. Stops QEMU (by its pid) when `stop_marker` appears in the
/// log or after `limit`. One QEMU runs at a time.
fn run_qemu(mut command: Command, work: &Path, stop_marker: Option<&str>, limit: Duration) -> Result<Boot> {
    let log_path = next_serial_log(work);
    command.arg("-serial").arg(format!("file:{}", log_path.display()));
    let _serial = QEMU.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let started = Instant::now();
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot start qemu-system-x86_64: {e} (apt-get install qemu-system-x86)"))?;
    let read_log = || read_serial_log(&log_path);
    let (status, timed_out) = loop {
        if let Some(status) = child.try_wait().map_err(|e| e.to_string())? {
            break (status.code(), false);
        }
        if stop_marker.is_some_and(|marker| read_log().contains(marker)) {
            // Give the console a moment to flush the lines after the marker.
            std::thread::sleep(Duration::from_millis(300));
            let _ = child.kill();
            let _ = child.wait();
            break (None, false);
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            break (None, true);
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let elapsed = started.elapsed();
    let mut errors = String::new();
    if let Some(mut stderr) = child.stderr.take() {
        let _ = std::io::Read::read_to_string(&mut stderr, &mut errors);
    }
    Ok(Boot { status, log: console(&log_path, &errors), elapsed, timed_out })
}

/// The serial log at `path` so far (empty if there is none yet).
pub(crate) fn read_serial_log(path: &Path) -> String {
    std::fs::read(path).map(|b| String::from_utf8_lossy(&b).into_owned()).unwrap_or_default()
}

/// What a run logged: the serial log at `path`, then QEMU's own `errors`, if any.
pub(crate) fn console(path: &Path, errors: &str) -> String {
    let mut log = read_serial_log(path);
    if !errors.trim().is_empty() {
        let _ = write!(log, "\n--- qemu stderr ---\n{errors}");
    }
    log
}

/// Prints a boot's timings: QEMU's run, the kernel's uptime when the test init
/// started, and the activator's share.
pub fn report(name: &str, boot: &Boot) {
    eprintln!(
        "scenario {name}: QEMU ran {:.2} s; kernel uptime at the test init {}; /init to exec {} (of it modules and \
         disk wait {})",
        boot.elapsed.as_secs_f64(),
        boot.init_uptime().map_or_else(|| "?".into(), |s| format!("{s:.2} s")),
        boot.activation_ms().map_or_else(|| "?".into(), |ms| format!("{ms:.1} ms")),
        boot.kernel_wait_ms().map_or_else(|| "?".into(), |ms| format!("{ms:.1} ms")),
    );
}

/// Ends a scenario: panics with the error, if any.
pub fn check(result: Result<()>) {
    if let Err(error) = result {
        panic!("{error}");
    }
}

/// A file's contents in an ext4 image, read with `debugfs` (no mount).
pub fn debugfs_cat(image: &Path, path: &str) -> Result<String> {
    run(Command::new("debugfs").arg("-R").arg(format!("cat {path}")).arg(image).stderr(Stdio::null()))
}

/// The names in a directory of an ext4 image, read with `debugfs` (no mount).
pub fn debugfs_names(image: &Path, dir: &str) -> Result<Vec<String>> {
    // `ls -p`: one `/inode/mode/uid/gid/name/size/` a line.
    let listing = run(Command::new("debugfs").arg("-R").arg(format!("ls -p {dir}")).arg(image).stderr(Stdio::null()))?;
    Ok(listing.lines().filter_map(|l| l.split('/').nth(5)).filter(|n| !n.is_empty()).map(str::to_owned).collect())
}

/// Copies a file out of an ext4 image to `to`, with `debugfs` (no mount), as a boot
/// loader reads a kernel from the disk.
pub fn debugfs_dump(image: &Path, path: &str, to: &Path) -> Result<()> {
    let _ = std::fs::remove_file(to);
    run(Command::new("debugfs").arg("-R").arg(format!("dump {path} {}", to.display())).arg(image))?;
    match std::fs::metadata(to) {
        Ok(m) if m.len() > 0 => Ok(()),
        _ => Err(format!("{path} is not in {} (or is empty)", image.display())),
    }
}

/// Fails unless the ext4 file system in `image` was left clean: its state is
/// `clean` and its journal holds nothing to replay (no `needs_recovery`), as after
/// an unmount or a remount read-only at shutdown.
pub fn ext4_left_clean(image: &Path) -> Result<()> {
    let header = run(Command::new("dumpe2fs").arg("-h").arg(image).stderr(Stdio::null()))?;
    let field =
        |name: &str| header.lines().find_map(|l| l.strip_prefix(name)).map(|v| v.trim().to_owned()).unwrap_or_default();
    let (state, features) = (field("Filesystem state:"), field("Filesystem features:"));
    if state != "clean" || features.split_whitespace().any(|f| f == "needs_recovery") {
        return Err(format!("{} was not left clean: state {state:?}, features {features}", image.display()));
    }
    Ok(())
}

/// The guest script: `checks` is shell code calling `check NAME COMMAND…`; the script
/// prints `VMTEST OK|FAIL NAME` per check, then `VMTEST PASS` or `VMTEST FAILED`, and
/// ends QEMU through isa-debug-exit (port 0xf4, written by `vmtest-exit`) with [`EXIT_PASS`] or
/// [`EXIT_FAIL`].
pub fn guest_script(checks: &str) -> String {
    format!(
        r#"#!/bin/busybox sh
export PATH=/bin
echo "VMTEST UPTIME $(cat /proc/uptime)"
echo "VMTEST INIT pid=$$"
fail=0
check() {{
    name=$1; shift
    if "$@"; then echo "VMTEST OK $name"; else echo "VMTEST FAIL $name"; fail=1; fi
}}
# `exits N NAME COMMAND…`: runs COMMAND (its output goes to /run/NAME.txt and,
# each line led by `NAME: `, to the console) and checks that it exits with N.
exits() {{
    expected=$1; name=$2; shift 2
    "$@" > "/run/$name.txt" 2>&1
    status=$?
    sed "s/^/$name: /" "/run/$name.txt"
    [ "$status" = "$expected" ]
}}
audit_exits() {{ expected=$1; shift; exits "$expected" audit blankslate audit "$@"; }}
{checks}
sync
if [ "$fail" = 0 ]; then echo "VMTEST PASS"; code=1; else echo "VMTEST FAILED"; code=2; fi
vmtest-exit "$code"
sleep 10
echo "VMTEST NO-EXIT: isa-debug-exit did not end QEMU"
"#
    )
}
