//! Several persistent volumes at boot: the store's volume (named on the kernel
//! command line), a second disk for `/data` (ext2, by UUID, `noatime`, declared in
//! the declaration) and a third one mounted inside the store volume's mount point
//! (`/persist/big`, by label). Run with
//! `cargo test -p blankslate-vm-tests --test volumes -- --ignored --nocapture` (as root).

use std::path::{Path, PathBuf};
use std::time::Duration;

use blankslate_vm_tests::{self as vm, Machine, Result, Volume, check, report};

const LIMIT: Duration = Duration::from_secs(90);
const DATA_UUID: &str = "5a1b2c3d-0000-4000-8000-0000000000da";

const DECLARATION: &str = r#"version = 1

[root]
size = "64M"

# The store's volume: blankslate.persist= on the kernel command line.
[persist."/persist"]
directories = [
  { directory = "/bin", options = ["ro"] },
  { directory = "/var/lib/declarations", options = ["ro"] },
  "/var/lib/system",
]

# A third disk, mounted inside the store volume's mount point.
[persist."/persist/big"]
device = "LABEL=bsbig"
directories = ["/var/lib/big"]

# A second disk, of another file system type, with its own options.
[persist."/data"]
device = "UUID=5A1B2C3D-0000-4000-8000-0000000000DA"
fs_type = "ext2"
mount_options = ["noatime"]
directories = [{ directory = "/srv/data", mode = "0750" }]

[etc."hosts"]
text = "127.0.0.1 localhost vmtest\n"

[etc."passwd"]
text = "root:x:0:0:root:/root:/bin/sh\n"

[etc."group"]
text = "root:x:0:\n"
"#;

/// The three disk images of a scenario: the store's, `/data`'s, `/persist/big`'s.
struct Disks {
    work: PathBuf,
    store: PathBuf,
    data: PathBuf,
    big: PathBuf,
}

fn prepare(name: &str, script: &str) -> Result<Disks> {
    let work = vm::work_dir(name)?;
    let store = Volume::new(&work, &vm::guest_script(script))?;
    store.build(DECLARATION, "volumes")?;
    let declarations = store.dir.join("var/lib/declarations");
    std::fs::create_dir_all(&declarations).map_err(|e| e.to_string())?;
    std::fs::write(declarations.join("volumes.toml"), DECLARATION).map_err(|e| e.to_string())?;
    let data = Volume::empty(&work, "data")?;
    std::fs::create_dir_all(data.dir.join("srv/data")).map_err(|e| e.to_string())?;
    std::fs::write(data.dir.join("srv/data/before"), "made-with-mkfs\n").map_err(|e| e.to_string())?;
    let big = Volume::empty(&work, "big")?;
    let disks = Disks { store: work.join("store.img"), data: work.join("data.img"), big: work.join("big.img"), work };
    store.make_disk(&disks.store, "bsvol")?;
    data.make_disk_as(&disks.data, "ext2", "bsdata", Some(DATA_UUID))?;
    big.make_disk_as(&disks.big, "ext4", "bsbig", None)?;
    Ok(disks)
}

const APPEND: &str = "blankslate.persist=LABEL=bsvol blankslate.init=/bin/vmtest-init";

/// What every boot of the three volumes checks in the guest.
const MOUNTED: &str = r#"
check store-mounted grep -Eq '^/dev/vd. /persist ext4 ' /proc/mounts
check data-mounted-ext2-noatime grep -Eq '^/dev/vd. /data ext2 [^ ]*noatime' /proc/mounts
check big-mounted-inside-persist grep -Eq '^/dev/vd. /persist/big ext4 ' /proc/mounts
check data-bound grep -q ' /srv/data ' /proc/mounts
check big-bound grep -q ' /var/lib/big ' /proc/mounts
check data-mode [ "$(stat -c %a /srv/data)" = 750 ]
check data-from-mkfs [ "$(cat /srv/data/before)" = made-with-mkfs ]
check boot-json-lists-three sh -c 'grep -o "\"mount_point\":\"[^\"]*\"" /run/blankslate/boot.json | tr "\n" " " | grep -qx "\"mount_point\":\"/data\" \"mount_point\":\"/persist\" \"mount_point\":\"/persist/big\" "'
check audit-clean audit_exits 0
check persist-list exits 0 list blankslate persist list --declaration /var/lib/declarations/volumes.toml
check list-data grep -Eq '^mounted +directory /srv/data  <- /data/srv/data$' /run/list.txt
check list-big grep -Eq '^mounted +directory /var/lib/big  <- /persist/big/var/lib/big$' /run/list.txt
check list-system grep -Eq '^mounted +directory /var/lib/system  <- /persist/var/lib/system$' /run/list.txt
"#;

/// Two disks besides the store's, one nested in the store volume's mount point: data
/// written to each survives a reboot (in the guest, and on each disk with debugfs).
/// The first boot has blankslate as `/init`; the second runs it as the systemd-initrd
/// service (`blankslate boot --root /sysroot`), with `/data` named on the kernel
/// command line by its label instead of the declared UUID.
#[test]
#[ignore = "boots QEMU: cargo test -p blankslate-vm-tests -- --ignored (as root)"]
fn two_disks_and_a_nested_volume_keep_their_data() {
    let script = format!(
        r#"{MOUNTED}
case "$vmtest_phase" in
1)
    check write-data sh -c 'echo on-the-data-disk > /srv/data/kept'
    check write-big sh -c 'echo on-the-big-disk > /var/lib/big/kept'
    check write-system sh -c 'echo on-the-store-disk > /var/lib/system/kept'
    check write-undeclared sh -c 'echo lost > /srv/lost'
    ;;
2)
    check data-kept [ "$(cat /srv/data/kept)" = on-the-data-disk ]
    check big-kept [ "$(cat /var/lib/big/kept)" = on-the-big-disk ]
    check system-kept [ "$(cat /var/lib/system/kept)" = on-the-store-disk ]
    check undeclared-gone [ ! -e /srv/lost ]
    check data-by-label grep -q '"volume":"LABEL=bsdata"' /run/blankslate/boot.json
    ;;
*)
    check phase-given false
    ;;
esac
"#
    );
    check((|| {
        let s = prepare("two-disks-and-a-nested-volume", &script)?;
        let disks = [s.store.as_path(), s.data.as_path(), s.big.as_path()];
        let kernel = vm::kernel()?;
        let own = vm::initrd()?;
        let first = Machine { kernel: &kernel, initrd: &own, disks: &disks, name_modules: true };
        let boot = vm::boot_machine(&first, &s.work, &format!("{APPEND} vmtest_phase=1"), None, LIMIT)?;
        report("three volumes (first boot, /init)", &boot);
        boot.expect_pass("three volumes, first boot")?;
        for (image, path, expected) in [
            (&s.data, "/srv/data/kept", "on-the-data-disk"),
            (&s.big, "/var/lib/big/kept", "on-the-big-disk"),
            (&s.store, "/var/lib/system/kept", "on-the-store-disk"),
        ] {
            let found = vm::debugfs_cat(image, path)?;
            if found.trim() != expected {
                return Err(format!("{}: {path} holds {found:?} after the first boot", image.display()));
            }
        }
        let service = vm::service_initrd()?;
        let second = Machine { initrd: &service, ..first };
        let append = format!("{APPEND} blankslate.persist=/data=LABEL=bsdata:ext2:noatime vmtest_phase=2");
        let boot = vm::boot_machine(&second, &s.work, &append, None, LIMIT)?;
        report("three volumes (reboot, systemd-initrd service)", &boot);
        boot.expect_pass("three volumes, reboot through the systemd-initrd service")
    })());
}

/// The disk of the nested volume is missing: the boot stops naming it and what to do,
/// before anything is written to the volumes that are there (their images are byte
/// for byte the same), and the machine halts without a kernel panic.
#[test]
#[ignore = "boots QEMU: cargo test -p blankslate-vm-tests -- --ignored (as root)"]
fn a_missing_volume_stops_the_boot_before_anything_is_written() {
    check((|| {
        let s = prepare("missing-volume", "check should-not-run false")?;
        let read = |image: &Path| std::fs::read(image).map_err(|e| e.to_string());
        let (store_before, data_before) = (read(&s.store)?, read(&s.data)?);
        let kernel = vm::kernel()?;
        let initrd = vm::initrd()?;
        let disks = [s.store.as_path(), s.data.as_path()];
        let machine = Machine { kernel: &kernel, initrd: &initrd, disks: &disks, name_modules: true };
        let append = format!("{APPEND} blankslate.timeout=2");
        let boot = vm::boot_machine(&machine, &s.work, &append, Some("halted"), LIMIT)?;
        report("missing volume", &boot);
        let expected = [
            "blankslate: boot failed: cannot find the persistent volume for /persist/big: LABEL=bsbig did not appear \
             within 2 s (block devices: vda vdb)",
            "blankslate: what to do: attach the disk, or check the `device` of [persist.\"/persist/big\"]",
            "Nothing was written to any disk.",
        ];
        let missing: Vec<&str> = expected.iter().copied().filter(|line| !boot.log.contains(line)).collect();
        if boot.timed_out || !missing.is_empty() || boot.log.contains("Kernel panic") || boot.log.contains("VMTEST") {
            return Err(format!("expected {missing:?} and a halt\n--- serial log tail ---\n{}", boot.tail(30)));
        }
        if read(&s.store)? != store_before || read(&s.data)? != data_before {
            return Err("a disk image changed although the boot stopped before writing".into());
        }
        Ok(())
    })());
}
