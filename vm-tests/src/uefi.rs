//! A machine as people have them: UEFI firmware (OVMF), GRUB installed on the disk,
//! an ESP at `/boot/efi`, `/boot` on its own partition, and the rest LUKS2-encrypted
//! with LVM on top, holding the root and, once adopted, blankslate's volume.
//!
//! Nothing privileged touches the host's devices: the disk is laid out *inside a VM*.
//! The Debian image tree (with GRUB, cryptsetup, LVM and dosfstools) becomes an ext4
//! image (`mkfs.ext4 -d`, no loop device), booted directly with its own kernel and a
//! generic dracut initrd, and its init is the installer script (`uefi-install.sh`),
//! which partitions `/dev/vda`, encrypts, copies itself there and installs GRUB
//! (`grub-install --removable`) and the initrd. From then on the machine boots only
//! through OVMF (from Debian's `ovmf` package, fetched with `apt-get download` and
//! unpacked into `target/vm-ovmf`, never installed) and the GRUB on its disk.
//!
//! The probe (`uefi-probe.sh`) runs on every boot; which checks it runs is named by
//! the host on a small read-only disk of its own, so that which system GRUB booted is
//! never decided by the host.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use crate::debian::{self, Image};
use crate::{APT_RETRIES, Boot, Qemu, Result, run, run_qemu, sh, target};

/// The installed system's packages, on top of minbase: Debian 12 as its installer
/// puts it on a UEFI machine with an encrypted disk, plus busybox for blankslate.
pub const PACKAGES: &[&str] = &[
    "systemd-sysv",
    "udev",
    "dbus",
    "dracut",
    "linux-image-cloud-amd64",
    "busybox-static",
    "grub-efi-amd64",
    "cryptsetup",
    "lvm2",
    "dosfstools",
    "fdisk",
    "e2fsprogs",
];
const MEMORY_MB: u32 = 1024;
/// The installed disk: 64 MiB ESP, 256 MiB /boot, the rest for LUKS (root 1.5 GiB,
/// blankslate's volume 1 GiB).
const DISK_BYTES: u64 = 4 << 30;

/// The image tree with [`PACKAGES`] (cached in `target/vm-debian`).
pub fn image() -> Result<Image> {
    static IMAGE: OnceLock<std::result::Result<Image, String>> = OnceLock::new();
    IMAGE.get_or_init(|| debian::image_of(debian::Suite::Bookworm, PACKAGES)).clone()
}

/// OVMF's firmware: the code (read-only) and the template of its variables.
#[derive(Debug, Clone)]
pub struct Firmware {
    pub code: PathBuf,
    pub vars: PathBuf,
}

/// Fetches (once, then cached in `target/vm-ovmf`) Debian's `ovmf` package with
/// `apt-get download` and unpacks its 4 MiB firmware with `dpkg-deb` (never installed).
pub fn firmware() -> Result<Firmware> {
    static FIRMWARE: OnceLock<std::result::Result<Firmware, String>> = OnceLock::new();
    FIRMWARE
        .get_or_init(|| {
            let cache = target().join("vm-ovmf");
            let dir = cache.join("unpacked/usr/share/OVMF");
            let firmware = Firmware { code: dir.join("OVMF_CODE_4M.fd"), vars: dir.join("OVMF_VARS_4M.fd") };
            if firmware.code.exists() && firmware.vars.exists() {
                return Ok(firmware);
            }
            let download = cache.join("download");
            std::fs::create_dir_all(&download).map_err(|e| e.to_string())?;
            // apt-get download drops privileges to _apt, which must be able to write here.
            sh(&format!("chmod 0777 '{}'", download.display()))?;
            if !sh(&format!("ls '{}'/ovmf_*.deb", download.display())).is_ok_and(|l| !l.is_empty()) {
                run(Command::new("apt-get").args(["-o", APT_RETRIES, "download", "ovmf"]).current_dir(&download))?;
            }
            let staging = cache.join("unpacking");
            let _ = std::fs::remove_dir_all(&staging);
            std::fs::create_dir_all(&staging).map_err(|e| e.to_string())?;
            sh(&format!(
                "cd '{staging}'; dpkg-deb --fsys-tarfile \"$(ls '{download}'/ovmf_*.deb | head -n 1)\" | \
                 tar -x ./usr/share/OVMF/OVMF_CODE_4M.fd ./usr/share/OVMF/OVMF_VARS_4M.fd",
                staging = staging.display(),
                download = download.display(),
            ))?;
            let _ = std::fs::remove_dir_all(cache.join("unpacked"));
            std::fs::rename(&staging, cache.join("unpacked")).map_err(|e| e.to_string())?;
            Ok(firmware)
        })
        .clone()
}

/// The probe and its unit (the Debian tests' unit, another script).
const PROBE: &str = include_str!("uefi-probe.sh");
/// dracut's configuration on the installed system.
const DRACUT_CONF: &str = "# The test's: what opens the encrypted root, in every initrd dracut builds.\n\
                           hostonly=\"yes\"\n\
                           # The kernel command line of each entry says what to open (a\n\
                           # host-only one baked in would activate the root's LV alone).\n\
                           hostonly_cmdline=\"no\"\nadd_dracutmodules+=\" crypt lvm \"\n\
                           install_items+=\" /etc/keys/root.key \"\n";
/// The installer, run as init by the installer boot.
const INSTALLER: &str = include_str!("uefi-install.sh");

/// How the installer lays out the encrypted disk (`vmtest_layout` of uefi-install.sh).
#[derive(Debug, Clone, Copy)]
pub enum Layout {
    /// Debian's "guided, encrypted LVM": LUKS2 holding LVM, the root an LV and
    /// blankslate's volume another.
    LvmOnLuks,
    /// Encryption without LVM: the root on a LUKS2 partition, blankslate's volume on
    /// another.
    Luks,
}

impl Layout {
    fn word(self) -> &'static str {
        match self {
            Layout::LvmOnLuks => "lvm",
            Layout::Luks => "luks",
        }
    }
}

/// An installed machine: its disk, its firmware variables, and what the installer said.
#[derive(Debug, Clone)]
pub struct Installed {
    pub work: PathBuf,
    pub disk: PathBuf,
    pub vars: PathBuf,
    /// How long the installer boot took.
    pub installer_elapsed: Duration,
}

/// Installs the machine in `target/vm-work/<scenario>`: prepares the installer's disk
/// from the image tree (the probe, the package to install, a machine id), and boots
/// the installer onto a fresh 4 GiB disk, laid out as `layout` says.
pub fn install(scenario: &str, layout: Layout, limit: Duration) -> Result<Installed> {
    let image = image()?;
    let firmware = firmware()?;
    let work = crate::work_dir(scenario)?;
    let tree = work.join("tree");
    sh(&format!("cp -a '{}' '{}'", image.tree.display(), tree.display()))?;
    debian::give_machine_id(&tree)?;
    // The package, installed by dpkg in the tree, and its dracut module put into
    // every initrd (README, step 2): done here, not in the guest, where dracut takes
    // about eight minutes under TCG. Its service runs only on blankslate's entry.
    let deb = debian::blankslate_deb(&work)?;
    let copy = tree.join("var/cache/blankslate.deb");
    std::fs::copy(&deb, &copy).map_err(|e| format!("{}: {e}", deb.display()))?;
    debian::run_in_tree(&tree, "dpkg -i /var/cache/blankslate.deb")?;
    std::fs::remove_file(&copy).map_err(|e| format!("{}: {e}", copy.display()))?;
    debian::install(b"add_dracutmodules+=\" blankslate \"\n", &tree.join("etc/dracut.conf.d/blankslate.conf"), 0o644)?;
    debian::install(PROBE.as_bytes(), &tree.join("usr/local/sbin/vmtest-probe"), 0o755)?;
    debian::install(debian::PROBE_UNIT.as_bytes(), &tree.join("etc/systemd/system/vmtest-probe.service"), 0o644)?;
    debian::enable(&tree, "vmtest-probe.service", "multi-user.target", "/etc/systemd/system")?;
    debian::install(INSTALLER.as_bytes(), &tree.join("usr/local/sbin/vmtest-install"), 0o755)?;
    // The LUKS key file (see uefi-install.sh for why a key file), and dracut's
    // configuration of the installed system: its crypt and lvm modules and the key in
    // every initrd; host-only, as Debian's default, where it runs on the machine.
    sh(&format!(
        "mkdir -m 0700 '{tree}/etc/keys' && head -c 64 /dev/urandom > '{tree}/etc/keys/root.key' && \
         chmod 0400 '{tree}/etc/keys/root.key'",
        tree = tree.display()
    ))?;
    debian::install(DRACUT_CONF.as_bytes(), &tree.join("etc/dracut.conf.d/10-vmtest.conf"), 0o644)?;
    // The initrd, built here in the tree: generic, as the host is not the machine; it
    // boots the installer from its ext4 disk, then the installed system from its
    // encrypted one, and blankslate's entry.
    let kver = &image.kernel_version;
    debian::run_in_tree(&tree, &format!("dracut --quiet --no-hostonly --force --kver {kver} /boot/initrd.img-{kver}"))?;
    let kernel = work.join("vmlinuz");
    let initrd = work.join("initrd.img");
    std::fs::copy(tree.join(format!("boot/vmlinuz-{kver}")), &kernel).map_err(|e| e.to_string())?;
    std::fs::copy(tree.join(format!("boot/initrd.img-{kver}")), &initrd).map_err(|e| e.to_string())?;

    let installer_disk = work.join("installer.img");
    sparse_file(&installer_disk, 2 << 30)?;
    run(Command::new("mkfs.ext4").args(["-q", "-F", "-L", "installer", "-d"]).arg(&tree).arg(&installer_disk))?;
    sh(&format!("rm -rf '{}'", tree.display()))?;
    let disk = work.join("disk.img");
    sparse_file(&disk, DISK_BYTES)?;
    let cmdline = format!(
        "console=ttyS0 panic=-1 no_timer_check loglevel=4 root=LABEL=installer rw init=/usr/local/sbin/vmtest-install \
         vmtest_layout={}",
        layout.word()
    );
    let qemu = Qemu {
        kernel: &kernel,
        initrd: &initrd,
        disks: &[&disk, &installer_disk],
        memory_mb: MEMORY_MB,
        cmdline: &cmdline,
    };
    let boot = qemu.boot(&work, None, limit)?;
    std::fs::remove_file(&installer_disk).map_err(|e| e.to_string())?;
    if boot.status != Some(0) || !boot.log.contains("VMTEST INSTALLED") || !boot.log.contains("reboot: Power down") {
        return Err(format!(
            "the installer did not finish (QEMU status {:?}{}):\n{}",
            boot.status,
            if boot.timed_out { ", timed out" } else { "" },
            boot.tail(40)
        ));
    }
    let vars = work.join("ovmf-vars.fd");
    std::fs::copy(&firmware.vars, &vars).map_err(|e| e.to_string())?;
    Ok(Installed { work, disk, vars, installer_elapsed: boot.elapsed })
}

fn sparse_file(path: &Path, bytes: u64) -> Result<()> {
    let file = std::fs::File::create(path).map_err(|e| format!("{}: {e}", path.display()))?;
    file.set_len(bytes).map_err(|e| format!("{}: {e}", path.display()))
}

impl Installed {
    /// Powers the machine on: OVMF, then whatever GRUB on the disk chooses. `phase`
    /// goes to the probe on a read-only disk of its own (serial `vmtest-phase`). With
    /// `-no-reboot`, a reboot ends QEMU as a power-off does; the next call is the
    /// next power-on (or the reset after a hang, when `stop` ended this one).
    pub fn power_on(&self, phase: &str, stop: Option<&str>, limit: Duration) -> Result<Boot> {
        let firmware = firmware()?;
        let phase_disk = self.work.join("phase.img");
        let mut contents = format!("{phase}\n").into_bytes();
        contents.resize(4096, 0);
        std::fs::write(&phase_disk, contents).map_err(|e| e.to_string())?;
        let mut command = Command::new("qemu-system-x86_64");
        command
            .args(["-accel", "tcg", "-no-reboot", "-display", "none", "-nic", "none", "-monitor", "none"])
            .arg("-m")
            .arg(MEMORY_MB.to_string())
            .arg("-drive")
            .arg(format!("if=pflash,format=raw,unit=0,readonly=on,file={}", firmware.code.display()))
            .arg("-drive")
            .arg(format!("if=pflash,format=raw,unit=1,file={}", self.vars.display()))
            .arg("-drive")
            .arg(format!("if=none,id=disk,format=raw,file={}", self.disk.display()))
            .args(["-device", "virtio-blk-pci,drive=disk,bootindex=0"])
            .arg("-drive")
            .arg(format!("if=none,id=phase,format=raw,readonly=on,file={}", phase_disk.display()))
            .args(["-device", "virtio-blk-pci,drive=phase,serial=vmtest-phase"]);
        run_qemu(command, &self.work, stop, limit)
    }
}
