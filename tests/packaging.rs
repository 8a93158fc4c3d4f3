//! The Debian package (`packaging/debian/build-deb`) and what it installs for kernel
//! upgrades: the files the package holds, with their modes, and its control fields;
//! the kernel hook building and removing blankslate's initramfs for a kernel; the
//! grub.d script's menu entries. The hooks run on scratch trees
//! (`BLANKSLATE_HOOK_ROOT`), never on this machine's /etc, /boot or /lib/modules.
//!
//! `dpkg-deb`, `grub-script-check` and `shellcheck` are looked up on PATH; without
//! them the tests that need them are skipped with a note, unless
//! `BLANKSLATE_REQUIRE_TOOLS` is set (`.ci/run` installs them and sets it).

mod common;
use common::{output, stderr, stdout, tool};

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_blankslate");
const OLD: &str = "6.1.0-9-amd64";
const NEW: &str = "6.1.0-10-amd64";

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

fn both(output: &Output) -> String {
    format!("{}{}", stdout(output), stderr(output))
}

#[test]
fn the_package_holds_every_file_with_its_mode_and_the_control_fields() {
    let Some(dpkg_deb) = tool("dpkg-deb") else { return };
    let out = tempfile::tempdir().unwrap();
    // The test binary is not static: the script warns and goes on. gzip: quicker than xz.
    let built = output(
        Command::new(repo("packaging/debian/build-deb"))
            .args(["--binary", BIN, "--out"])
            .arg(out.path())
            .env("DPKG_DEB_COMPRESSOR_TYPE", "gzip"),
    );
    assert!(built.status.success(), "{}", both(&built));
    assert!(stderr(&built).contains("dynamically linked"), "{}", stderr(&built));
    let version = format!("{}-1", env!("CARGO_PKG_VERSION"));
    let deb = out.path().join(format!("blankslate_{version}_amd64.deb"));
    assert_eq!(stdout(&built).trim(), deb.to_str().unwrap());
    let leftovers: Vec<_> = std::fs::read_dir(out.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(leftovers.len(), 1, "the staging tree is left behind: {leftovers:?}");

    // Every path with its mode and owner, as `dpkg-deb --contents` lists them.
    let contents = output(Command::new(&dpkg_deb).arg("--contents").arg(&deb));
    assert!(contents.status.success(), "{}", both(&contents));
    let listing = stdout(&contents);
    let files: BTreeMap<&str, (&str, &str)> = listing
        .lines()
        .map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            (fields[5].trim_start_matches('.'), (fields[0], fields[1]))
        })
        .collect();
    let mut expected = vec![
        ("/usr/bin/blankslate", "-rwxr-xr-x"),
        ("/usr/libexec/blankslate/kernel-hook", "-rwxr-xr-x"),
        ("/usr/sbin/update-grub", "-rwxr-xr-x"),
        ("/etc/kernel/postinst.d/zz-blankslate", "-rwxr-xr-x"),
        ("/etc/kernel/postrm.d/zz-blankslate", "-rwxr-xr-x"),
        ("/etc/grub.d/42_blankslate", "-rwxr-xr-x"),
        ("/etc/blankslate/initrd.conf", "-rw-r--r--"),
        ("/etc/apt/apt.conf.d/99blankslate", "-rw-r--r--"),
        ("/usr/lib/dracut/modules.d/90blankslate/module-setup.sh", "-rwxr-xr-x"),
        ("/usr/lib/dracut/modules.d/90blankslate/blankslate-initrd.service", "-rw-r--r--"),
        ("/usr/share/man/man1/blankslate.1.gz", "-rw-r--r--"),
        ("/usr/share/man/man1/blankslate-initrd.1.gz", "-rw-r--r--"),
        ("/usr/share/bash-completion/completions/blankslate", "-rw-r--r--"),
        ("/usr/share/zsh/vendor-completions/_blankslate", "-rw-r--r--"),
        ("/usr/share/fish/vendor_completions.d/blankslate.fish", "-rw-r--r--"),
        ("/usr/share/doc/blankslate/copyright", "-rw-r--r--"),
        ("/usr/share/doc/blankslate/changelog.Debian.gz", "-rw-r--r--"),
        ("/usr/share/lintian/overrides/blankslate", "-rw-r--r--"),
    ];
    let units: Vec<String> = std::fs::read_dir(repo("packaging/systemd"))
        .unwrap()
        .map(|e| format!("/usr/lib/systemd/system/{}", e.unwrap().file_name().to_str().unwrap()))
        .collect();
    assert!(units.len() >= 5, "{units:?}");
    expected.extend(units.iter().map(|unit| (unit.as_str(), "-rw-r--r--")));
    for (path, mode) in expected {
        assert_eq!(files.get(path), Some(&(mode, "root/root")), "{path} in\n{listing}");
    }
    for (path, (mode, owner)) in &files {
        assert_eq!(*owner, "root/root", "{path}");
        if mode.starts_with('d') {
            assert_eq!(*mode, "drwxr-xr-x", "{path}");
        }
        if path.starts_with("/usr/share/man/") && !mode.starts_with('d') {
            assert!(path.starts_with("/usr/share/man/man1/blankslate") && path.ends_with(".1.gz"), "{path}");
        }
    }
    // A page per subcommand, all of them.
    let pages = tempfile::tempdir().unwrap();
    assert!(output(Command::new(BIN).arg("man").arg("--dir").arg(pages.path())).status.success());
    let packed = files.keys().filter(|p| p.starts_with("/usr/share/man/man1/") && !p.ends_with('/')).count();
    assert_eq!(packed, std::fs::read_dir(pages.path()).unwrap().count());

    // The control fields; no Depends, since the binary is static and the hooks need
    // only what is Essential. Every file in /etc is a conffile.
    let info = output(Command::new(&dpkg_deb).arg("--info").arg(&deb));
    assert!(info.status.success(), "{}", both(&info));
    let info = stdout(&info);
    for field in [
        "Package: blankslate\n".to_owned(),
        format!("Version: {version}\n"),
        "Architecture: amd64\n".to_owned(),
        "Recommends: busybox-static\n".to_owned(),
        "Suggests: dracut, grub-common\n".to_owned(),
        "Section: admin\n".to_owned(),
        "Priority: optional\n".to_owned(),
    ] {
        assert!(info.contains(&format!(" {field}")), "{field}in\n{info}");
    }
    for field in [" Maintainer: ", " Installed-Size: ", " Description: "] {
        assert!(info.contains(field), "{field} in\n{info}");
    }
    assert!(!info.contains("Depends:"), "{info}");
    let conffiles = output(Command::new(&dpkg_deb).arg("--info").arg(&deb).arg("conffiles"));
    let mut in_etc: Vec<&str> =
        files.iter().filter(|(p, (m, _))| p.starts_with("/etc/") && m.starts_with('-')).map(|(p, _)| *p).collect();
    in_etc.sort_unstable();
    assert_eq!(stdout(&conffiles).lines().collect::<Vec<_>>(), in_etc);
}

/// A scratch system for the hooks: the kernel `OLD`'s modules (`virtio_blk`, which
/// needs `virtio`), and a stand-in for the installed static binary, which becomes
/// the initramfs's /init.
struct System {
    dir: tempfile::TempDir,
}

impl System {
    fn new() -> System {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        let modules = root.join("lib/modules").join(OLD);
        for module in ["kernel/drivers/block/virtio_blk.ko", "kernel/drivers/virtio/virtio.ko"] {
            let path = modules.join(module);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, module_bytes(&path)).unwrap();
        }
        std::fs::write(
            modules.join("modules.dep"),
            "kernel/drivers/block/virtio_blk.ko: kernel/drivers/virtio/virtio.ko\nkernel/drivers/virtio/virtio.ko:\n",
        )
        .unwrap();
        // Static as far as `blankslate initrd` looks: an ELF header, no program headers.
        let mut init = vec![0u8; 64];
        init[..6].copy_from_slice(b"\x7fELF\x02\x01");
        std::fs::create_dir_all(root.join("usr/bin")).unwrap();
        std::fs::write(root.join("usr/bin/blankslate"), init).unwrap();
        // The hooks as Debian installs them, each a link to the same script.
        for dir_name in ["postinst.d", "postrm.d", "grub.d"] {
            std::fs::create_dir_all(dir.path().join(dir_name)).unwrap();
        }
        let etc_hook = repo("packaging/debian/etc-hook");
        std::os::unix::fs::symlink(&etc_hook, dir.path().join("postinst.d/zz-blankslate")).unwrap();
        std::os::unix::fs::symlink(&etc_hook, dir.path().join("postrm.d/zz-blankslate")).unwrap();
        std::os::unix::fs::symlink(&etc_hook, dir.path().join("grub.d/42_blankslate")).unwrap();
        System { dir }
    }

    fn root(&self) -> PathBuf {
        self.dir.path().join("root")
    }

    fn config(&self, text: &str) {
        let config = self.root().join("etc/blankslate/initrd.conf");
        std::fs::create_dir_all(config.parent().unwrap()).unwrap();
        std::fs::write(config, text).unwrap();
    }

    /// Runs the hook `name` (`postinst.d/zz-blankslate`, …) with `args`, as Debian
    /// does, on this tree; `BLANKSLATE_HOOK_ROOT` keeps it there.
    fn run(&self, name: &str, args: &[&str]) -> Output {
        output(
            Command::new(self.dir.path().join(name))
                .args(args)
                .env("BLANKSLATE_HOOK_ROOT", self.root())
                .env("BLANKSLATE", BIN)
                .env("BLANKSLATE_KERNEL_HOOK", repo("packaging/debian/kernel-hook"))
                .env_remove("GRUB_DEVICE_BOOT")
                .env_remove("pkgdatadir"),
        )
    }

    fn initramfs(&self, version: &str) -> PathBuf {
        self.root().join(format!("boot/blankslate-initrd.img-{version}"))
    }
}

fn module_bytes(path: &Path) -> Vec<u8> {
    format!("\x7fELF module {}", path.file_stem().unwrap().to_str().unwrap()).into_bytes()
}

/// The entries of a cpio (newc) archive: name and contents.
fn cpio_entries(archive: &[u8]) -> Vec<(String, Vec<u8>)> {
    let mut entries = Vec::new();
    let mut at = 0;
    let field = |at: usize, n: usize| {
        let hex = std::str::from_utf8(&archive[at + 6 + n * 8..at + 14 + n * 8]).unwrap();
        usize::from_str_radix(hex, 16).unwrap()
    };
    let pad = |n: usize| n.div_ceil(4) * 4;
    loop {
        assert_eq!(&archive[at..at + 6], b"070701", "not a newc header at {at}");
        let (size, name_size) = (field(at, 6), field(at, 11));
        let name = String::from_utf8(archive[at + 110..at + 110 + name_size - 1].to_vec()).unwrap();
        let data = pad(at + 110 + name_size);
        if name == "TRAILER!!!" {
            return entries;
        }
        entries.push((name, archive[data..data + size].to_vec()));
        at = pad(data + size);
    }
}

#[test]
fn the_kernel_hooks_build_and_remove_blankslates_initramfs_for_a_kernel() {
    let system = System::new();
    let postinst = |version| system.run("postinst.d/zz-blankslate", &[version, &format!("/boot/vmlinuz-{version}")]);
    let postrm = |version| system.run("postrm.d/zz-blankslate", &[version, &format!("/boot/vmlinuz-{version}")]);
    let quiet = |output: &Output| output.status.success() && output.stdout.is_empty() && output.stderr.is_empty();

    // No initrd.conf, or the one the package ships (all comments): nothing to do.
    for config in [None, Some(std::fs::read_to_string(repo("packaging/debian/initrd.conf")).unwrap())] {
        if let Some(text) = config {
            system.config(&text);
        }
        for run in [postinst(OLD), postrm(OLD)] {
            assert!(quiet(&run), "{}", both(&run));
        }
        assert!(!system.root().join("boot").exists());
    }

    system.config("ROUTE=a\nMODULES=virtio_blk\nCMDLINE=\"blankslate.persist=LABEL=persist\"\n");
    let run = postinst(OLD);
    assert!(run.status.success(), "{}", both(&run));
    // Kernel hooks keep stdout free.
    assert!(run.stdout.is_empty(), "{}", stdout(&run));
    let said = stderr(&run);
    assert!(said.contains(&format!("blankslate: wrote /boot/blankslate-initrd.img-{OLD} for kernel {OLD}")), "{said}");
    let written = std::fs::read(system.initramfs(OLD)).unwrap();
    assert_eq!(&written[..2], b"\x1f\x8b", "not gzip-compressed");
    let mut archive = Vec::new();
    flate2::read::GzDecoder::new(&written[..]).read_to_end(&mut archive).unwrap();
    let entries: BTreeMap<String, Vec<u8>> = cpio_entries(&archive).into_iter().collect();
    assert_eq!(entries["init"], std::fs::read(system.root().join("usr/bin/blankslate")).unwrap());
    for module in ["virtio", "virtio_blk"] {
        assert_eq!(entries[&format!("lib/modules/{module}.ko")], module_bytes(Path::new(module)), "{module}");
    }

    // A build that fails (no such module) says why, fails, and keeps the last good one.
    system.config("ROUTE=a\nMODULES=no_such_module\n");
    let run = postinst(OLD);
    assert!(!run.status.success(), "{}", both(&run));
    let said = stderr(&run);
    assert!(said.contains("no module no_such_module") && said.contains("could not build the initramfs"), "{said}");
    assert_eq!(std::fs::read(system.initramfs(OLD)).unwrap(), written);
    assert!(!system.root().join(format!("boot/blankslate-initrd.img-{OLD}.new")).exists());

    // A broken config, an unknown route, a kernel without modules: a message and a failure.
    for (config, message) in [
        ("ROUTE=a\nif then\n", "initrd.conf cannot be read: "),
        ("ROUTE=a\nOUTPUT=/boot/x-$verison\n", "verison: parameter not set"),
        ("ROUTE=c\n", "ROUTE=c: say ROUTE=a"),
    ] {
        system.config(config);
        let run = postinst(OLD);
        assert!(!run.status.success() && stderr(&run).contains(message), "{config}: {}", both(&run));
    }
    system.config("ROUTE=a\nMODULES=virtio_blk\n");
    let run = postinst("9.9.9");
    assert!(!run.status.success() && stderr(&run).contains("kernel 9.9.9 has no "), "{}", both(&run));

    // Route b: dracut's own hooks build and remove its initrd.
    system.config("ROUTE=b\n");
    assert!(quiet(&postrm(OLD)));
    assert!(system.initramfs(OLD).exists());

    system.config("ROUTE=a\nMODULES=virtio_blk\n");
    let run = postrm(OLD);
    assert!(quiet(&run), "{}", both(&run));
    assert!(!system.initramfs(OLD).exists());

    // Removed but not purged: the hooks in /etc stay and do nothing.
    let run = output(
        Command::new(system.dir.path().join("postinst.d/zz-blankslate"))
            .arg(OLD)
            .env("BLANKSLATE_HOOK_ROOT", system.root())
            .env("BLANKSLATE_KERNEL_HOOK", system.dir.path().join("removed")),
    );
    assert!(quiet(&run), "{}", both(&run));
    assert!(!system.initramfs(OLD).exists());
}

#[test]
fn the_grub_script_has_an_entry_per_kernel_with_an_initramfs_newest_first() {
    let system = System::new();
    let boot = system.root().join("boot");
    std::fs::create_dir_all(&boot).unwrap();
    // Three kernels; the oldest has no blankslate initramfs.
    for version in ["6.1.0-8-amd64", OLD, NEW] {
        std::fs::write(boot.join(format!("vmlinuz-{version}")), "kernel").unwrap();
    }
    for version in [OLD, NEW] {
        std::fs::write(system.initramfs(version), "initramfs").unwrap();
    }
    let run = system.run("grub.d/42_blankslate", &[]);
    assert!(run.status.success() && run.stdout.is_empty(), "without initrd.conf: {}", both(&run));

    system.config("ROUTE=a\nCMDLINE=\"blankslate.persist=LABEL=persist console=ttyS0\"\n");
    let run = system.run("grub.d/42_blankslate", &[]);
    assert!(run.status.success(), "{}", both(&run));
    let entry = |version: &str, id: &str| {
        format!(
            "menuentry 'blankslate, with Linux {version}' --class gnu-linux --class os $menuentry_id_option \
             '{id}' {{\n\
             \tlinux\t/boot/vmlinuz-{version} blankslate.persist=LABEL=persist console=ttyS0\n\
             \tinitrd\t/boot/blankslate-initrd.img-{version}\n\
             }}\n"
        )
    };
    let menu = stdout(&run);
    // The newest's id stays the same across kernel upgrades, for GRUB_DEFAULT.
    assert_eq!(menu, entry(NEW, "blankslate") + &entry(OLD, &format!("blankslate-{OLD}")));
    assert!(stderr(&run).contains(&format!("Found blankslate initramfs for Linux {NEW}")), "{}", stderr(&run));

    // A broken config stops update-grub (which then keeps the grub.cfg it had).
    system.config("ROUTE=x\n");
    let run = system.run("grub.d/42_blankslate", &[]);
    assert!(!run.status.success() && stderr(&run).contains("ROUTE=x"), "{}", both(&run));

    let Some(check) = tool("grub-script-check") else { return };
    let file = system.dir.path().join("menu.cfg");
    std::fs::write(&file, &menu).unwrap();
    let checked = output(Command::new(check).arg(&file));
    assert!(checked.status.success(), "{}\n{menu}", both(&checked));
}

#[test]
fn the_packaging_scripts_pass_shellcheck() {
    let Some(shellcheck) = tool("shellcheck") else { return };
    let scripts = ["build-deb", "kernel-hook", "etc-hook", "initrd.conf", "update-grub"]
        .map(|s| repo("packaging/debian").join(s));
    let checked = output(Command::new(shellcheck).args(["--shell", "sh"]).args(scripts));
    assert!(checked.status.success(), "{}", both(&checked));
}

/// `packaging/debian/update-grub` with GRUB's own stood in for by a script that prints
/// what it sees: `BLANKSLATE_HOOK_ROOT` holds the marker and initrd.conf.
struct UpdateGrub {
    dir: tempfile::TempDir,
}

impl UpdateGrub {
    /// `distrib`: the stand-in's body (after `#!/bin/sh`).
    fn new(distrib: &str) -> UpdateGrub {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("root/etc/blankslate")).unwrap();
        let stand_in = dir.path().join("update-grub.distrib");
        std::fs::write(&stand_in, format!("#!/bin/sh\n{distrib}")).unwrap();
        std::fs::set_permissions(&stand_in, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
        UpdateGrub { dir }
    }

    fn on_blankslate(&self) {
        let marker = self.dir.path().join("root/run/blankslate/booted");
        std::fs::create_dir_all(marker.parent().unwrap()).unwrap();
        std::fs::write(marker, "").unwrap();
    }

    fn config(&self, text: &str) -> PathBuf {
        let config = self.dir.path().join("root/etc/blankslate/initrd.conf");
        std::fs::write(&config, text).unwrap();
        config
    }

    fn run(&self, args: &[&str]) -> Output {
        output(
            Command::new(repo("packaging/debian/update-grub"))
                .args(args)
                .env("BLANKSLATE_HOOK_ROOT", self.dir.path().join("root"))
                .env("BLANKSLATE_UPDATE_GRUB", self.dir.path().join("update-grub.distrib"))
                .env("BLANKSLATE_KERNEL_HOOK", repo("packaging/debian/kernel-hook"))
                .env_remove("BLANKSLATE_GRUB_NAMESPACE"),
        )
    }
}

#[test]
fn update_grub_is_grubs_own_off_blankslate_and_needs_the_old_root_on_it() {
    let grub = UpdateGrub::new("echo \"GRUB's own: $*\"\n");
    let run = grub.run(&["--flag", "two words"]);
    assert!(run.status.success(), "{}", both(&run));
    assert_eq!(stdout(&run), "GRUB's own: --flag two words\n");

    // On blankslate, without GRUB_ROOT: refused before anything is mounted, saying
    // what to add and where.
    grub.on_blankslate();
    for text in [None, Some("ROUTE=b\nOUTPUT=/boot/initrd.img-$version\n")] {
        let config = text.map(|text| grub.config(text));
        let run = grub.run(&[]);
        assert_eq!(run.status.code(), Some(1), "{}", both(&run));
        assert!(stdout(&run).is_empty(), "GRUB's own ran: {}", both(&run));
        let said = stderr(&run);
        assert!(said.contains("GRUB_ROOT=") && said.contains("findmnt -n -o SOURCE /"), "{said}");
        if let Some(config) = config {
            assert!(said.contains(config.to_str().unwrap()), "{said}");
        }
    }
    // A broken initrd.conf is reported with its own error.
    grub.config("GRUB_ROOT=$undefined\n");
    let run = grub.run(&[]);
    assert_eq!(run.status.code(), Some(1), "{}", both(&run));
    assert!(stderr(&run).contains("cannot be read") && stderr(&run).contains("undefined"), "{}", stderr(&run));

    // Without GRUB's own, whichever system this is.
    std::fs::remove_file(grub.dir.path().join("update-grub.distrib")).unwrap();
    let run = grub.run(&[]);
    assert_eq!(run.status.code(), Some(1), "{}", both(&run));
    assert!(stderr(&run).contains("is not installed"), "{}", stderr(&run));
}

/// On blankslate, GRUB's own runs with `/` the old root (read-only) and every other
/// directory the running system's. In a mount namespace of the test's own, with a
/// tmpfs on `/run`, `/boot` and `/etc` there standing for the running system's; the old
/// root is an ext4 image (mounted through a loop device, freed with the mount).
#[test]
fn update_grub_on_blankslate_runs_grubs_own_on_the_old_root_with_the_running_systems_directories() {
    if !blankslate_test_support::root_or_skip("update-grub mounts the old root in a namespace") {
        return;
    }
    let Some(mkfs) = tool("mkfs.ext4") else { return };
    let grub = UpdateGrub::new(
        "echo \"ARGS $*\"\n\
         echo \"ROOT $(findmnt -n -o FSTYPE /) $(findmnt -n -o OPTIONS / | cut -d, -f1)\"\n\
         case $(findmnt -n -o SOURCE /) in /dev/loop*) echo \"FROM a loop device\" ;; esac\n\
         echo \"BOOT $(findmnt -n -o SOURCE /boot)\"\n\
         echo \"ETC $(cat /etc/vmtest-etc)\"\n\
         echo \"OLD $(cat /old-root-file)\"\n\
         if touch /written 2>/dev/null; then echo \"WROTE the old root\"; fi\n",
    );
    let scratch = grub.dir.path().to_owned();
    // The old root: the directories a Debian root has, its links into /usr.
    let old = scratch.join("old");
    for dir in ["usr", "etc", "tmp", "proc", "dev", "sys", "run", "boot", "var"] {
        std::fs::create_dir_all(old.join(dir)).unwrap();
    }
    for link in ["bin", "sbin", "lib", "lib64"] {
        std::os::unix::fs::symlink(format!("usr/{link}"), old.join(link)).unwrap();
    }
    std::fs::write(old.join("old-root-file"), "the old root's own").unwrap();
    let image = scratch.join("old.img");
    let made = output(Command::new(mkfs).args(["-q", "-F", "-d"]).arg(&old).arg(&image).arg("8M"));
    assert!(made.status.success(), "{}", both(&made));
    grub.config(&format!("ROUTE=b\nGRUB_ROOT={}\n", image.display()));
    let live_etc = scratch.join("live-etc");
    std::fs::create_dir_all(&live_etc).unwrap();
    std::fs::write(live_etc.join("vmtest-etc"), "the running system's").unwrap();

    let (run, left) = blankslate_test_support::in_namespace(move || {
        let mount = |args: &[&str]| {
            let done = output(Command::new("mount").args(args));
            assert!(done.status.success(), "mount {args:?}: {}", both(&done));
        };
        mount(&["-t", "tmpfs", "run", "/run"]);
        mount(&["-t", "tmpfs", "live-boot", "/boot"]);
        mount(&["--bind", live_etc.to_str().unwrap(), "/etc"]);
        std::fs::create_dir_all("/run/blankslate").unwrap();
        std::fs::write("/run/blankslate/booted", "").unwrap();
        grub.on_blankslate();
        let run = grub.run(&["-o", "/boot/grub/grub.cfg"]);
        let left: Vec<_> = std::fs::read_dir("/run/blankslate").unwrap().map(|e| e.unwrap().file_name()).collect();
        (run, left)
    });
    assert!(run.status.success(), "{}", both(&run));
    assert_eq!(
        stdout(&run),
        "ARGS -o /boot/grub/grub.cfg\nROOT ext4 ro\nFROM a loop device\nBOOT live-boot\nETC the running system's\n\
         OLD the old root's own\n"
    );
    // Its mount point is gone with its namespace.
    assert_eq!(left, ["booted"]);
}
