//! A real distribution for the VM tests: Debian 12 with systemd, udev, dbus and
//! sshd, built from Debian's packages with `mmdebstrap` (never installed on the host)
//! and put onto blankslate the way the README tells a Debian user to:
//!
//! 1. the image tree gets blankslate's Debian package (`packaging/debian/build-deb`
//!    with the static binary, installed by dpkg in the tree), the sync unit enabled,
//!    and the test's own probe unit;
//! 2. dracut, run *inside the tree* (chroot, in a private mount namespace), builds a
//!    systemd initrd with the blankslate module (route b);
//! 3. `blankslate initrd` builds blankslate's own initramfs from the tree's kernel
//!    modules (route a);
//! 4. `blankslate adopt --from TREE --to VOLUME` fills the volume and writes the
//!    declaration; `mkfs.ext4 -d` makes the disk.
//!
//! The image tree is cached in `target/vm-debian/<key>/tree`, keyed by the suite, the
//! package list and `IMAGE_RECIPE`; everything after it is made once per test run
//! in `target/vm-work/debian-<suite>-for-<test program>`.

use std::fmt::Write as _;
use std::hash::{Hash as _, Hasher as _};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use crate::{Boot, Qemu, Result, VIRTIO_MODULES, kernel_package, own_apt, run, sh, static_binary, target, workspace};

/// The Debian release an image is built from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Suite {
    /// Debian 12.
    Bookworm,
    /// Debian 13.
    Trixie,
}

impl Suite {
    pub fn name(self) -> &'static str {
        match self {
            Suite::Bookworm => "bookworm",
            Suite::Trixie => "trixie",
        }
    }

    /// Whether route a's command line names the virtio modules to load. Debian 13's
    /// cloud kernel has the virtio drivers built in but `virtio_blk`
    /// (`modules.builtin`), so the image's initramfs holds only that one, and the
    /// boot loads all it holds.
    fn names_modules(self) -> bool {
        self == Suite::Bookworm
    }

    /// Which of the per-suite caches of this run.
    fn index(self) -> usize {
        self as usize
    }
}

/// One per [`Suite`]: what is made once per run and suite.
type PerSuite<T> = [OnceLock<std::result::Result<T, String>>; 2];
/// On top of `--variant=minbase` (which brings passwd, login, util-linux, …).
pub const PACKAGES: &[&str] =
    &["systemd-sysv", "udev", "dbus", "openssh-server", "dracut", "linux-image-cloud-amd64", "busybox-static"];
const MIRROR: &str = "http://deb.debian.org/debian";
/// Bumped whenever what is done to the tree after mmdebstrap changes.
const IMAGE_RECIPE: u32 = 1;
/// Where the guest finds day two's packages: a local apt repository (the guest has
/// no network), with the second kernel and a newer `vmtest-daytwo`.
const REPOSITORY: &str = "usr/local/share/vmtest/repo";
/// The volume's label, as the kernel command line names it.
pub const LABEL: &str = "persist";
/// The memory of a Debian machine.
pub const MEMORY_MB: u32 = 1024;

/// The cached image: a Debian root tree and its kernel version.
#[derive(Debug, Clone)]
pub struct Image {
    pub tree: PathBuf,
    pub kernel_version: String,
}

/// Builds (once; then cached under `target/vm-debian`) the Debian image tree of `suite`.
pub fn image(suite: Suite) -> Result<Image> {
    static IMAGE: PerSuite<Image> = [const { OnceLock::new() }; 2];
    IMAGE[suite.index()].get_or_init(|| image_of(suite, PACKAGES)).clone()
}

fn image_key(suite: Suite, packages: &[&str]) -> String {
    let mut hasher = std::hash::DefaultHasher::new();
    (suite.name(), packages, MIRROR, IMAGE_RECIPE).hash(&mut hasher);
    format!("{}-{:016x}", suite.name(), hasher.finish())
}

/// Builds (then cached under `target/vm-debian`, keyed by the suite and the list) a
/// Debian image tree of `suite` with `packages` on top of minbase.
pub fn image_of(suite: Suite, packages: &[&str]) -> Result<Image> {
    let key = image_key(suite, packages);
    let cache = target().join("vm-debian").join(&key);
    let tree = cache.join("tree");
    let _building = crate::cache_lock(&format!("vm-debian/{key}"))?;
    if !tree.join("usr/lib/os-release").exists() {
        let staging = cache.join("staging");
        let _ = std::fs::remove_dir_all(&staging);
        std::fs::create_dir_all(&cache).map_err(|e| e.to_string())?;
        let mut command = Command::new("mmdebstrap");
        command.args(["--variant=minbase", "--quiet"]).arg(format!("--include={}", packages.join(",")));
        for excluded in ["/usr/share/man/*", "/usr/share/doc/*", "/usr/share/locale/*", "/usr/share/info/*"] {
            command.arg(format!("--dpkgopt=path-exclude={excluded}"));
        }
        command.arg(suite.name()).arg(&staging).arg(MIRROR);
        // A fresh CI machine always downloads: one dropped connection must not fail
        // the run. (An --aptopt would stay in the image's apt configuration.)
        let mut built = run(&mut command);
        for _ in 1..3 {
            if built.is_ok() {
                break;
            }
            let _ = std::fs::remove_dir_all(&staging);
            built = run(&mut command);
        }
        built.map_err(|e| format!("{e}\n(mmdebstrap builds the Debian image: apt-get install mmdebstrap)"))?;
        // mmdebstrap copies the host's; the image is a machine of its own.
        std::fs::write(staging.join("etc/hostname"), "debian\n").map_err(|e| e.to_string())?;
        std::fs::write(staging.join("etc/resolv.conf"), "").map_err(|e| e.to_string())?;
        sh(&format!("chmod 0644 '{0}/etc/hostname' '{0}/etc/resolv.conf'", staging.display()))?;
        std::fs::rename(&staging, &tree).map_err(|e| e.to_string())?;
    }
    let modules = std::fs::read_dir(tree.join("usr/lib/modules")).map_err(|e| e.to_string())?;
    let kernel_version = modules
        .filter_map(std::result::Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .next()
        .ok_or("the image has no kernel in /usr/lib/modules")?;
    Ok(Image { tree, kernel_version })
}

/// The test's probe: a unit that waits for the boot to finish, runs the checks of
/// the phase the kernel command line names (`vmtest.phase=NAME`), and powers off.
pub(crate) const PROBE_UNIT: &str = "[Unit]
Description=blankslate VM test probe
After=multi-user.target

[Service]
Type=simple
ExecStart=/usr/local/sbin/vmtest-probe
StandardOutput=tty
StandardError=tty
TTYPath=/dev/console

[Install]
WantedBy=multi-user.target
";

/// A service with state of its own in `/var/lib`, for `persist add` of a running
/// service: every start counts one more in `/var/lib/vmtest-counter/count`.
const COUNTER_UNIT: &str = "[Unit]
Description=blankslate VM test: a service with a state directory

[Service]
Type=simple
StateDirectory=vmtest-counter
ExecStart=/bin/sh -c 'n=$(cat /var/lib/vmtest-counter/count 2>/dev/null || echo 0); echo $((n + 1)) > /var/lib/vmtest-counter/count; exec sleep infinity'
";

/// A package the VM tests build: its files (path below `/`, contents; those in
/// `etc/` are its conffiles) and its postinst (none if empty).
struct LocalPackage {
    name: &'static str,
    version: &'static str,
    files: &'static [(&'static str, &'static str)],
    postinst: &'static str,
}

/// Day two's local packages, built with `dpkg-deb` and put where the guest installs
/// them from (`/usr/local/share/vmtest`; the guest has no network): `vmtest-daytwo`
/// ships a conffile and a unit its postinst enables (as Debian's helpers do, with a
/// link in `/etc`); `vmtest-forgotten` ships a conffile nobody keeps.
const DAY_TWO_PACKAGES: &[LocalPackage] = &[
    LocalPackage {
        name: "vmtest-daytwo",
        version: "1.0",
        files: &[
            ("etc/vmtest-daytwo.conf", "greeting=day two\n"),
            ("usr/lib/systemd/system/vmtest-daytwo.service", DAY_TWO_UNIT),
        ],
        postinst: DAY_TWO_POSTINST,
    },
    LocalPackage {
        name: "vmtest-forgotten",
        version: "1.0",
        files: &[("etc/vmtest-forgotten.conf", "forgotten=yes\n")],
        postinst: "",
    },
];

/// The unit of `vmtest-daytwo`: it shows which conffile it found.
const DAY_TWO_UNIT: &str = "[Unit]\nDescription=blankslate VM test: a packaged service\n\n[Service]\nType=oneshot\n\
                            RemainAfterExit=yes\nExecStart=/bin/cp /etc/vmtest-daytwo.conf /run/vmtest-daytwo\n\n\
                            [Install]\nWantedBy=multi-user.target\n";
const DAY_TWO_POSTINST: &str = "#!/bin/sh\nset -e\nif [ \"$1\" = configure ]; then\n    \
                                mkdir -p /etc/systemd/system/multi-user.target.wants\n    \
                                ln -sf /lib/systemd/system/vmtest-daytwo.service \
                                /etc/systemd/system/multi-user.target.wants/\nfi\n";

/// In the local repository, for `apt upgrade`: `vmtest-daytwo` with a changed
/// conffile (the admin never edited it, so dpkg replaces it).
const UPGRADED_PACKAGE: LocalPackage = LocalPackage {
    name: "vmtest-daytwo",
    version: "2.0",
    files: &[
        ("etc/vmtest-daytwo.conf", "greeting=day two, upgraded\n"),
        ("usr/lib/systemd/system/vmtest-daytwo.service", DAY_TWO_UNIT),
    ],
    postinst: DAY_TWO_POSTINST,
};

/// Builds the day-two packages into `dir`.
fn day_two_packages(work: &Path, dir: &Path) -> Result<()> {
    for package in DAY_TWO_PACKAGES {
        let deb = dir.join(format!("{}.deb", package.name));
        build_package(work, package, &deb)?;
    }
    Ok(())
}

/// Builds `package` (with `dpkg-deb`) as `deb`.
fn build_package(work: &Path, package: &LocalPackage, deb: &Path) -> Result<()> {
    let LocalPackage { name, version, files, postinst } = package;
    {
        let root = work.join("packages").join(format!("{name}_{version}"));
        let mut conffiles = String::new();
        for (path, contents) in *files {
            install(contents.as_bytes(), &root.join(path), 0o644)?;
            if path.starts_with("etc/") {
                let _ = writeln!(conffiles, "/{path}");
            }
        }
        install(conffiles.as_bytes(), &root.join("DEBIAN/conffiles"), 0o644)?;
        let control = format!(
            "Package: {name}\nVersion: {version}\nArchitecture: all\nMaintainer: blankslate VM tests <vmtest@localhost>\n\
             Description: a package of the VM tests' day two\n"
        );
        install(control.as_bytes(), &root.join("DEBIAN/control"), 0o644)?;
        if !postinst.is_empty() {
            install(postinst.as_bytes(), &root.join("DEBIAN/postinst"), 0o755)?;
        }
        std::fs::create_dir_all(deb.parent().unwrap()).map_err(|e| e.to_string())?;
        run(Command::new("dpkg-deb").args(["--root-owner-group", "--build"]).arg(&root).arg(deb))?;
    }
    Ok(())
}

/// The second kernel of `suite`, the one day two installs: the versioned
/// `linux-image-…-cloud-amd64` that `{suite}-backports` has (a newer upstream
/// release than the suite's own), the packages of the same kernel it depends on
/// (Debian 13's are split in several), and the `linux-…` packages it depends on that
/// backports has (a newer `linux-base`). Fetched with an apt of the harness's own
/// (never installed on the host), cached in `target/vm-debian/second-kernel-SUITE`.
/// Returns the `.deb` files and the kernel's version (`uname -r`).
pub fn second_kernel(suite: Suite) -> Result<(Vec<PathBuf>, String)> {
    static KERNEL: PerSuite<(Vec<PathBuf>, String)> = [const { OnceLock::new() }; 2];
    KERNEL[suite.index()].get_or_init(|| fetch_second_kernel(suite)).clone()
}

fn fetch_second_kernel(suite: Suite) -> Result<(Vec<PathBuf>, String)> {
    let name = format!("second-kernel-{}", suite.name());
    let cache = target().join("vm-debian").join(&name);
    let done = cache.join("debs");
    let _fetching = crate::cache_lock(&format!("vm-debian/{name}"))?;
    let listed = |dir: &Path| -> Result<(Vec<PathBuf>, String)> {
        let version = std::fs::read_to_string(cache.join("version")).map_err(|e| e.to_string())?;
        let mut debs: Vec<PathBuf> = std::fs::read_dir(dir)
            .map_err(|e| format!("{}: {e}", dir.display()))?
            .filter_map(std::result::Result::ok)
            .map(|e| e.path())
            .collect();
        debs.sort();
        Ok((debs, version.trim().to_owned()))
    };
    if done.exists() {
        return listed(&done);
    }
    let apt = cache.join("apt");
    let _ = std::fs::remove_dir_all(&apt);
    let apt_command = own_apt(
        &apt,
        &format!(
            "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] {MIRROR} {}-backports main\n",
            suite.name()
        ),
    )?;
    run(apt_command("apt-get").arg("update"))?;
    let depends = run(apt_command("apt-cache").args(["depends", "linux-image-cloud-amd64"]))?;
    let package = kernel_package(&depends)
        .ok_or_else(|| format!("no kernel package in {}-backports:\n{depends}", suite.name()))?;
    let version = package.trim_start_matches("linux-image-").to_owned();
    // The packages of this very kernel (same version in their names) it needs, and
    // the kernel's own helpers that backports has newer (Debian 13's backports kernel
    // pre-depends on a newer linux-base). `<virtual>` packages are left to the suite.
    let mut packages = vec![package];
    let mut next = 0;
    while next < packages.len() {
        let depends = run(apt_command("apt-cache").args(["depends", &packages[next]]))?;
        for line in depends.lines().map(|l| l.trim().trim_start_matches('|')) {
            let Some(depended) = line.strip_prefix("Depends: ").or_else(|| line.strip_prefix("PreDepends: ")) else {
                continue;
            };
            if !depended.starts_with("linux-") || packages.iter().any(|p| p == depended) {
                continue;
            }
            if depended.contains(&version) || run(apt_command("apt-cache").args(["show", depended])).is_ok() {
                packages.push(depended.to_owned());
            }
        }
        next += 1;
    }
    let download = apt.join("download");
    run(apt_command("apt-get").arg("download").args(&packages).current_dir(&download))?;
    std::fs::write(cache.join("version"), &version).map_err(|e| e.to_string())?;
    std::fs::rename(&download, &done).map_err(|e| e.to_string())?;
    let _ = std::fs::remove_dir_all(&apt);
    listed(&done)
}

/// The image's local apt repository (`file:/usr/local/share/vmtest/repo`, trusted:
/// nothing signs it): the second kernel and the upgraded `vmtest-daytwo`, indexed
/// as `dpkg-scanpackages` would; the only source the guest's apt has. Writes the
/// second kernel's package and version for the probe beside it.
fn local_repository(suite: Suite, work: &Path, tree: &Path) -> Result<()> {
    let repository = tree.join(REPOSITORY);
    std::fs::create_dir_all(&repository).map_err(|e| e.to_string())?;
    let (debs, version) = second_kernel(suite)?;
    for deb in &debs {
        std::fs::copy(deb, repository.join(deb.file_name().unwrap())).map_err(|e| format!("{}: {e}", deb.display()))?;
    }
    build_package(work, &UPGRADED_PACKAGE, &repository.join("vmtest-daytwo_2.0_all.deb"))?;
    sh(&format!(
        "cd '{}'; for deb in *.deb; do dpkg-deb -f \"$deb\"; echo \"Filename: ./$deb\"; \
         echo \"Size: $(stat -c %s \"$deb\")\"; echo \"SHA256: $(sha256sum \"$deb\" | cut -d' ' -f1)\"; echo; \
         done > Packages",
        repository.display()
    ))?;
    install(format!("{version}\n").as_bytes(), &tree.join("usr/local/share/vmtest/second-kernel"), 0o644)?;
    // The image's own sources name Debian's mirror, which the guest cannot reach.
    for sources in ["etc/apt/sources.list", "etc/apt/sources.list.d/debian.sources"] {
        let _ = std::fs::remove_file(tree.join(sources));
    }
    install(
        format!("deb [trusted=yes] file:/{REPOSITORY} ./\n").as_bytes(),
        &tree.join("etc/apt/sources.list.d/vmtest.list"),
        0o644,
    )
}

/// Everything a test boots from, made once per run.
#[derive(Debug, Clone)]
pub struct Prepared {
    pub kernel: PathBuf,
    /// blankslate's own initramfs (route a).
    pub own_initrd: PathBuf,
    /// dracut's systemd initrd with the blankslate module (route b).
    pub dracut_initrd: PathBuf,
    /// The adopted volume's disk image (copied for each scenario).
    pub disk: PathBuf,
    /// What `blankslate adopt` printed.
    pub adopt_output: String,
}

/// What a test program adds to the standard machine: packages on top of
/// [`PACKAGES`] (an image of their own, cached by its list) and a change to its tree
/// before dracut and `adopt` see it (so that the adopted declaration has it).
pub struct Flavour<'a> {
    pub packages: &'a [&'a str],
    /// Run on the per-run copy of the tree once blankslate and the probe are in.
    pub adjust: &'a dyn Fn(&Path) -> Result<()>,
}

impl std::fmt::Debug for Flavour<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Flavour").field("packages", &self.packages).finish_non_exhaustive()
    }
}

impl Flavour<'static> {
    /// The machine of the lifecycle and trial tests.
    pub const STANDARD: Flavour<'static> = Flavour { packages: &[], adjust: &|_| Ok(()) };
}

/// Prepares the tree of `suite`, both initramfs images and the adopted volume (once
/// per run and suite).
pub fn prepared(suite: Suite) -> Result<Prepared> {
    static PREPARED: PerSuite<Prepared> = [const { OnceLock::new() }; 2];
    PREPARED[suite.index()].get_or_init(|| prepare(suite, &Flavour::STANDARD)).clone()
}

/// [`prepared`] of `flavour`'s machine: made anew at each call (the caller keeps it).
pub fn prepared_as(suite: Suite, flavour: &Flavour<'_>) -> Result<Prepared> {
    prepare(suite, flavour)
}

pub(crate) fn install(contents: &[u8], to: &Path, mode: u32) -> Result<()> {
    std::fs::create_dir_all(to.parent().unwrap()).map_err(|e| e.to_string())?;
    std::fs::write(to, contents).map_err(|e| format!("{}: {e}", to.display()))?;
    sh(&format!("chmod {mode:o} '{}'", to.display())).map(drop)
}

pub(crate) fn enable(tree: &Path, unit: &str, target: &str, unit_dir: &str) -> Result<()> {
    let wants = tree.join(format!("etc/systemd/system/{target}.wants"));
    std::fs::create_dir_all(&wants).map_err(|e| e.to_string())?;
    std::os::unix::fs::symlink(format!("{unit_dir}/{unit}"), wants.join(unit)).map_err(|e| e.to_string())
}

fn prepare(suite: Suite, flavour: &Flavour<'_>) -> Result<Prepared> {
    let image = if flavour.packages.is_empty() {
        image(suite)?
    } else {
        image_of(suite, &[PACKAGES, flavour.packages].concat())?
    };
    // Per test program: two lanes may prepare the same suite at once.
    let work = target().join("vm-work").join(format!("debian-{}-for-{}", suite.name(), crate::program()));
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work).map_err(|e| e.to_string())?;
    let tree = work.join("tree");
    sh(&format!("cp -a '{}' '{}'", image.tree.display(), tree.display()))?;

    give_machine_id(&tree)?;
    // What a Debian user installs: the package (`packaging/debian/build-deb`, the
    // README's one command, with the static binary), installed by dpkg inside the
    // tree; then the sync unit enabled, as the walkthrough says.
    let deb = blankslate_deb(&work)?;
    let copy = tree.join("var/cache/blankslate.deb");
    std::fs::copy(&deb, &copy).map_err(|e| format!("{}: {e}", deb.display()))?;
    run_in_tree(&tree, "dpkg -i /var/cache/blankslate.deb")?;
    std::fs::remove_file(&copy).map_err(|e| format!("{}: {e}", copy.display()))?;
    enable(&tree, "blankslate-sync.service", "sysinit.target", "/lib/systemd/system")?;
    // The test's own pieces.
    install(PROBE.as_bytes(), &tree.join("usr/local/sbin/vmtest-probe"), 0o755)?;
    install(PROBE_UNIT.as_bytes(), &tree.join("etc/systemd/system/vmtest-probe.service"), 0o644)?;
    enable(&tree, "vmtest-probe.service", "multi-user.target", "/etc/systemd/system")?;
    install(COUNTER_UNIT.as_bytes(), &tree.join("etc/systemd/system/vmtest-counter.service"), 0o644)?;
    day_two_packages(&work, &tree.join("usr/local/share/vmtest"))?;
    local_repository(suite, &work, &tree)?;
    (flavour.adjust)(&tree)?;

    // Route b: dracut inside the tree.
    let dracut_initrd = format!("/boot/initrd-blankslate.img-{}", image.kernel_version);
    run_in_tree(
        &tree,
        &format!(
            "dracut --quiet --no-hostonly --force --add blankslate --kver {0} {dracut_initrd}",
            image.kernel_version
        ),
    )?;
    // Route a: blankslate's own initramfs, from the tree's modules.
    let own_initrd = work.join("initrd-blankslate.cpio.gz");
    let mut command = Command::new(static_binary()?);
    command.arg("initrd").arg("--output").arg(&own_initrd).arg("--shell").arg(tree.join("usr/bin/busybox"));
    command.arg("--modules").arg(tree.join("usr/lib/modules").join(&image.kernel_version));
    for module in VIRTIO_MODULES {
        command.args(["--module", module]);
    }
    run(&mut command)?;
    let kernel = work.join("vmlinuz");
    std::fs::copy(tree.join(format!("boot/vmlinuz-{}", image.kernel_version)), &kernel).map_err(|e| e.to_string())?;
    let dracut_copy = work.join("initrd-dracut.img");
    std::fs::copy(tree.join(dracut_initrd.trim_start_matches('/')), &dracut_copy).map_err(|e| e.to_string())?;

    // Adopt the tree onto the volume, as the walkthrough does.
    let volume = work.join("volume");
    std::fs::create_dir_all(&volume).map_err(|e| e.to_string())?;
    let adopt_output =
        run(Command::new(static_binary()?).arg("adopt").arg("--from").arg(&tree).arg("--to").arg(&volume))?;
    let disk = work.join("volume.img");
    let file = std::fs::File::create(&disk).map_err(|e| e.to_string())?;
    file.set_len(2 << 30).map_err(|e| e.to_string())?;
    run(Command::new("mkfs.ext4").args(["-q", "-F", "-L", LABEL, "-d"]).arg(&volume).arg(&disk))?;
    Ok(Prepared { kernel, own_initrd, dracut_initrd: dracut_copy, disk, adopt_output })
}

/// The Debian package, built as the README says (`packaging/debian/build-deb`) with
/// the static binary, into `work/deb`.
pub(crate) fn blankslate_deb(work: &Path) -> Result<PathBuf> {
    let built = run(Command::new(workspace().join("packaging/debian/build-deb"))
        .arg("--binary")
        .arg(static_binary()?)
        .arg("--out")
        .arg(work.join("deb")))?;
    Ok(PathBuf::from(built.trim()))
}

/// mmdebstrap empties /etc/machine-id, as for an image; an installed system has one
/// (and an empty one makes systemd's first boot enable every preset in /etc).
pub(crate) fn give_machine_id(tree: &Path) -> Result<()> {
    let id = std::fs::read_to_string("/proc/sys/kernel/random/uuid").map_err(|e| e.to_string())?;
    std::fs::write(tree.join("etc/machine-id"), format!("{}\n", id.trim().replace('-', ""))).map_err(|e| e.to_string())
}

/// Runs `command` chrooted into `tree` with `/proc`, `/sys`, `/dev` and a `/tmp` of
/// its own, inside a private mount namespace: the script refuses to mount anything
/// unless its namespace differs from its parent's (the test process's). The host's
/// `TMPDIR` (CI points it under target/) names nothing inside the tree, and dracut
/// refuses to start with a temporary directory it cannot find, so it is not passed on.
pub(crate) fn run_in_tree(tree: &Path, command: &str) -> Result<String> {
    let script = format!(
        r#"set -eu
if [ "$(readlink /proc/self/ns/mnt)" = "$(readlink /proc/$PPID/ns/mnt)" ]; then
    echo "refusing to mount: not in a private mount namespace" >&2; exit 1
fi
mount --make-rprivate /
t='{tree}'
mount -t proc proc "$t/proc"
mount --rbind /sys "$t/sys" && mount --make-rslave "$t/sys"
mount --rbind /dev "$t/dev" && mount --make-rslave "$t/dev"
mount -t tmpfs tmpfs "$t/tmp"
chroot "$t" {command}"#,
        tree = tree.display()
    );
    run(Command::new("unshare").args(["--mount", "--propagation", "private", "sh", "-c", &script]).env_remove("TMPDIR"))
}

/// How the machine boots.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// blankslate's own initramfs: blankslate is `/init` and switches into systemd.
    Own,
    /// dracut's systemd initrd runs `blankslate-initrd.service` with `root=tmpfs`.
    Dracut,
}

impl Route {
    pub fn name(self) -> &'static str {
        match self {
            Route::Own => "own-initramfs",
            Route::Dracut => "dracut",
        }
    }

    /// The kernel command line a user of this route writes in the boot loader. An
    /// initramfs built with only the modules it needs (the kernel hook's, host-only)
    /// loads them all and needs no `blankslate.modules=`.
    pub fn cmdline(self, volume: &str, name_modules: bool) -> String {
        match self {
            Route::Own if !name_modules => format!("console=ttyS0 panic=-1 loglevel=4 blankslate.persist={volume}"),
            Route::Own => format!(
                "console=ttyS0 panic=-1 loglevel=4 blankslate.persist={volume} blankslate.modules={}",
                VIRTIO_MODULES.join(",")
            ),
            Route::Dracut => {
                format!("console=ttyS0 panic=-1 loglevel=4 root=tmpfs rootflags=mode=755 blankslate.persist={volume}")
            }
        }
    }
}

/// A scenario's own copy of the adopted disk of `suite`.
pub fn disk(suite: Suite, work: &Path) -> Result<PathBuf> {
    disk_from(&prepared(suite)?, work)
}

/// A scenario's own copy of `prepared`'s adopted disk, in `work`.
pub fn disk_from(prepared: &Prepared, work: &Path) -> Result<PathBuf> {
    let disk = work.join("volume.img");
    sh(&format!("cp --sparse=always '{}' '{}'", prepared.disk.display(), disk.display()))?;
    Ok(disk)
}

/// What the boot loader starts: a suite's machine by a route, with the image's
/// kernel and initramfs (made on the host), or with a kernel and initramfs that the
/// guest's kernel hooks put in the volume's `/boot` (read out of the disk image).
#[derive(Debug, Clone, Copy)]
pub struct Entry<'a> {
    pub suite: Suite,
    pub route: Route,
    /// The kernel and the initramfs, if not the image's.
    pub from_volume: Option<(&'a Path, &'a Path)>,
}

impl Entry<'_> {
    /// The image's kernel and initramfs of `route`.
    pub fn image(suite: Suite, route: Route) -> Entry<'static> {
        Entry { suite, route, from_volume: None }
    }
}

/// Boots `disk` from `entry`, the volume named as `volume` (`LABEL=persist`), with
/// `append` after the route's command line.
pub fn boot(
    entry: Entry<'_>,
    work: &Path,
    disk: &Path,
    volume: &str,
    append: &str,
    stop: Option<&str>,
    limit: Duration,
) -> Result<Boot> {
    let (kernel, initrd, cmdline) = prepared(entry.suite)?.machine(entry, volume, append);
    let qemu = Qemu { kernel: &kernel, initrd: &initrd, disks: &[disk], memory_mb: MEMORY_MB, cmdline: &cmdline };
    qemu.boot(work, stop, limit)
}

impl Prepared {
    /// What the boot loader starts for `entry` (this preparation's kernel and
    /// initramfs of its route, unless it names its own): the kernel, the initramfs and
    /// the command line, the volume named as `volume`, with `append` after the route's.
    pub fn machine(&self, entry: Entry<'_>, volume: &str, append: &str) -> (PathBuf, PathBuf, String) {
        let mut cmdline = entry.route.cmdline(volume, entry.from_volume.is_none() && entry.suite.names_modules());
        if entry.from_volume.is_some() {
            // Debian 12's backports kernel (6.12.95) double-faults in SLUB's cmpxchg16b
            // under QEMU 7.2's TCG (Debian 12's QEMU) before any driver loads; without
            // the feature it boots.
            cmdline.push_str(" clearcpuid=cx16");
        }
        let _ = write!(cmdline, " {append}");
        let image_initrd = if entry.route == Route::Own { &self.own_initrd } else { &self.dracut_initrd };
        let (kernel, initrd) = entry.from_volume.unwrap_or((&self.kernel, image_initrd));
        (kernel.to_path_buf(), initrd.to_path_buf(), cmdline)
    }
}

/// blankslate's part of a boot beside the whole boot, in ms.
#[derive(Debug, Clone, Copy)]
pub struct Share {
    /// Its activation: from its start to the exec of systemd on route a, to the end
    /// of the initrd service on route b.
    pub activation: f64,
    /// Of that, loading modules and waiting for the disk: the kernel's work.
    pub kernel_wait: f64,
    /// `systemd-analyze time`'s total (kernel, initrd and userspace).
    pub boot: f64,
}

/// The [`Share`] of `boot`, if it printed its activation and its startup time.
pub fn boot_share(boot: &Boot) -> Option<Share> {
    let startup = facts(boot).remove("startup")?;
    let total = startup.rsplit_once("= ")?.1.trim();
    Some(Share {
        activation: boot.activation_ms()?,
        kernel_wait: boot.kernel_wait_ms().unwrap_or(0.0),
        boot: systemd_time_ms(total)?,
    })
}

/// A time as systemd prints it: `1min 2.345s`, `23.807s`, `812ms`.
fn systemd_time_ms(text: &str) -> Option<f64> {
    text.split_whitespace().try_fold(0.0, |sum, part| {
        let (number, factor) = if let Some(n) = part.strip_suffix("min") {
            (n, 60_000.0)
        } else if let Some(n) = part.strip_suffix("ms") {
            (n, 1.0)
        } else {
            (part.strip_suffix('s')?, 1000.0)
        };
        Some(sum + number.parse::<f64>().ok()? * factor)
    })
}

/// Prints a row of the boot-share table: the boots' median activation, median
/// total, and blankslate's share of the boot (median and largest), whole and without
/// the kernel's wait for modules and the disk.
pub fn print_boot_share(suite: Suite, route: Route, shares: &[Share]) {
    let median = |mut values: Vec<f64>| {
        values.sort_by(f64::total_cmp);
        values.get(values.len() / 2).copied().unwrap_or(f64::NAN)
    };
    let percents: Vec<f64> = shares.iter().map(|s| 100.0 * s.activation / s.boot).collect();
    let own: Vec<f64> = shares.iter().map(|s| 100.0 * (s.activation - s.kernel_wait) / s.boot).collect();
    println!(
        "boot share | {} | {} | {} binary | {} boots | blankslate {:.1} ms ({:.1} ms the kernel's) | boot {:.2} s | \
         share {:.2} % (largest {:.2} %) | without the kernel's wait {:.2} % (largest {:.2} %)",
        suite.name(),
        route.name(),
        crate::static_binary_profile(),
        shares.len(),
        median(shares.iter().map(|s| s.activation).collect()),
        median(shares.iter().map(|s| s.kernel_wait).collect()),
        median(shares.iter().map(|s| s.boot).collect()) / 1000.0,
        median(percents.clone()),
        percents.iter().copied().fold(0.0, f64::max),
        median(own.clone()),
        own.iter().copied().fold(0.0, f64::max),
    );
}

/// The `VMTEST FACT key=value` lines of a boot.
pub fn facts(boot: &Boot) -> std::collections::BTreeMap<String, String> {
    boot.marked("VMTEST FACT ")
        .filter_map(|f| f.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.trim().to_owned()))
        .collect()
}

/// The probe (bash, in the guest): prints `VMTEST OK|FAIL name (N s)` per check and
/// `VMTEST FACT key=value` for what the host compares across boots, then `VMTEST PASS`
/// or `VMTEST FAILED`, and powers the machine off.
pub const PROBE: &str = include_str!("vmtest-probe.sh");
