//! Kernel modules as distributions ship them, in blankslate's own initramfs: named by
//! the disk driver alone, their dependencies come from `modules.dep`, compressed ones
//! are decompressed when the initramfs is built, and boot loads them in order. Run
//! with `cargo test -p blankslate-vm-tests --test modules -- --ignored --nocapture`
//! (as root).

use std::time::Duration;

use blankslate_vm_tests::{self as vm, Kernel, Machine, Result, Volume, check, report};

const LIMIT: Duration = Duration::from_secs(90);

const DECLARATION: &str = r#"version = 1

[root]
size = "64M"

[persist."/persist"]
directories = [{ directory = "/bin", options = ["ro"] }, "/var/lib/data"]

[etc."hosts"]
text = "127.0.0.1 localhost vmtest\n"
"#;

const APPEND: &str = "blankslate.persist=LABEL=bsvol blankslate.init=/bin/vmtest-init";

/// The guest's checks: every module of `$vmtest_modules` (space-separated) is loaded,
/// the volume came up and data written to it is there.
const SCRIPT: &str = r#"
for module in $vmtest_modules; do check "loaded-$module" grep -q "^$module " /proc/modules; done
check volume-mounted grep -q ' /persist ext4 ' /proc/mounts
check data-mounted grep -q ' /var/lib/data ' /proc/mounts
check kernel-release sh -c 'uname -r | grep -q -- "$vmtest_release"'
check audit-clean audit_exits 0
"#;

/// Builds the initramfs of `kernel` with the modules `named`, checks that `blankslate
/// initrd` put in exactly `expected` (in this order, each from a file ending in one of
/// `suffixes`) and said that `built_in` are built into the kernel, then boots it once
/// per command line of `appends`.
#[allow(clippy::too_many_arguments)]
fn boot_with_modules(
    scenario: &str,
    kernel: &Kernel,
    named: &[&str],
    expected: &[&str],
    suffixes: &[&str],
    built_in: &[&str],
    release: &str,
    appends: &[&str],
) -> Result<()> {
    let work = vm::work_dir(scenario)?;
    let volume = Volume::new(&work, &vm::guest_script(SCRIPT))?;
    volume.build(DECLARATION, "modules")?;
    let disk = work.join("disk.img");
    volume.make_disk(&disk, "bsvol")?;
    let (initrd, printed) = vm::initrd_with(&format!("{scenario}.cpio.gz"), kernel, named)?;
    let included: Vec<(&str, &str)> = printed
        .lines()
        .filter_map(|l| l.strip_prefix("module ")?.split_once(" from "))
        .map(|(name, path)| (name, path.rsplit('/').next().unwrap_or(path)))
        .collect();
    let order: Vec<&str> = included.iter().map(|(name, _)| *name).collect();
    if order != expected || !included.iter().all(|(_, file)| suffixes.iter().any(|s| file.ends_with(s))) {
        return Err(format!(
            "blankslate initrd put in {included:?}, expected {expected:?} from {suffixes:?}:\n{printed}"
        ));
    }
    for name in built_in {
        if !printed.contains(&format!("module {name} is built into the kernel: nothing to add")) {
            return Err(format!("blankslate initrd did not say that {name} is built in:\n{printed}"));
        }
    }
    let size = std::fs::metadata(&initrd).map_err(|e| e.to_string())?.len();
    eprintln!("scenario {scenario}: initramfs {size} bytes, modules {}", expected.join(" "));
    let disks = [disk.as_path()];
    let machine = Machine { kernel, initrd: &initrd, disks: &disks, name_modules: false };
    for append in appends {
        let append = format!("{APPEND} {append} vmtest_release={release} vmtest_modules=\"{}\"", expected.join(" "));
        let boot = vm::boot_machine(&machine, &work, &append, None, LIMIT)?;
        report(&format!("{scenario} ({append})"), &boot);
        boot.expect_pass(&format!("{scenario} with {append}"))?;
    }
    Ok(())
}

/// Debian 12's virtio modules compressed with xz and zstd as distributions do, and
/// depmod's `modules.dep`: naming `virtio_pci` and `virtio_blk` brings the four
/// modules they need first. Boot loads every module of the initramfs by default, and
/// with `blankslate.modules=` what the names need, from the initramfs's own list.
#[test]
#[ignore = "boots QEMU: cargo test -p blankslate-vm-tests -- --ignored (as root)"]
fn compressed_modules_load_with_their_dependencies() {
    check((|| {
        let kernel = vm::compressed_modules_kernel()?;
        boot_with_modules(
            "compressed-modules",
            &kernel,
            &["virtio_pci", "virtio_blk"],
            &["virtio_pci_legacy_dev", "virtio_pci_modern_dev", "virtio_ring", "virtio", "virtio_pci", "virtio_blk"],
            &[".ko.xz", ".ko.zst"],
            &[],
            "-cloud-amd64",
            &["", "blankslate.modules=virtio_blk,virtio_pci"],
        )
    })());
}

/// Debian 13's cloud kernel with its modules as the package ships them (`.ko.xz`):
/// `virtio_pci` is built in (modules.builtin) and left out, `virtio_blk` is
/// decompressed into the initramfs and loads.
#[test]
#[ignore = "boots QEMU: cargo test -p blankslate-vm-tests -- --ignored (as root)"]
fn debian_13_modules_load_as_shipped() {
    check((|| {
        let kernel = vm::trixie_kernel()?;
        boot_with_modules(
            "debian-13-modules",
            &kernel,
            &["virtio_pci", "virtio_blk"],
            &["virtio_blk"],
            &[".ko.xz"],
            &["virtio_pci"],
            "+deb13-cloud-amd64",
            &[""],
        )
    })());
}
