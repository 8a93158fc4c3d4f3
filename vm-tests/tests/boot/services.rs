//! Blankslate among other services: as a systemd initrd service, and the net.

#[allow(clippy::wildcard_imports)]
use super::*;

/// (l) The same binary as a service of a systemd initrd (`blankslate boot --root
/// /sysroot`, as `blankslate-initrd.service` runs it), in an initramfs whose busybox
/// `/init` does systemd's part: with a tmpfs already on /sysroot (`root=tmpfs`), and
/// with nothing there (blankslate mounts the declared tmpfs). The booted system is
/// the same as with blankslate as `/init`, and the boot record crosses the switch in
/// `/run`.
#[test]
#[ignore = "boots QEMU: cargo test -p blankslate-vm-tests -- --ignored (as root)"]
fn as_a_systemd_initrd_service() {
    let script = format!(
        r#"{FIRST_BOOT_CHECKS}
check root-size sh -c 'df -k / | tail -n 1 | grep -Eq " $vmtest_root_kib +[0-9]+ +[0-9]+ "'
"#
    );
    check((|| {
        let s = prepare("systemd-initrd-service", &script, &["generation-one"])?;
        let initrd = vm::service_initrd()?;
        // systemd's tmpfs is used as it is (the stand-in mounts 48 MiB); on an empty
        // /sysroot, blankslate mounts the declared one ([root] size = "64M").
        for (sysroot, kib, what) in [("tmpfs", 49152, "root=tmpfs"), ("none", 65536, "nothing on /sysroot")] {
            let append = format!("{APPEND} vmtest_sysroot={sysroot} vmtest_root_kib={kib}");
            let boot = vm::boot_initrd(&initrd, &s.work, &s.disk, &append, None, LIMIT)?;
            report(&format!("systemd initrd service ({what})"), &boot);
            boot.expect_pass(&format!("as a systemd initrd service ({what})"))?;
            if !boot.log.contains("systemd switches into /sysroot") {
                return Err(format!("{what}: no summary line from the service\n{}", boot.tail(30)));
            }
        }
        Ok(())
    })());
}

/// The net, across real reboots: the first boot writes what nothing declares and
/// saves it as the shutdown unit would (`net save`, with a path over `max_size` left
/// out); the next boot has lost it, lists it, restores it as it was, and restores it
/// once more under a new name with `--declare`, which persists it; the third boot has
/// the declared copy from the volume, and its save prunes the net to `keep = 2`.
#[test]
#[ignore = "boots QEMU: cargo test -p blankslate-vm-tests -- --ignored (as root)"]
fn the_net_brings_back_what_a_reboot_erased() {
    let net = "\n[net]\nkeep = 2\nmax_size = \"64K\"\n";
    let script = r#"
DECL=/var/lib/data/system.toml
case "$vmtest_phase" in
1)
    check write-forgotten sh -c 'mkdir -p /srv/forgot && echo notes > /srv/forgot/notes && chown -R 1000:1000 /srv/forgot && chmod 0600 /srv/forgot/notes'
    check write-big sh -c 'mkdir -p /opt && head -c 200000 /dev/zero > /opt/big'
    check save exits 0 save blankslate net save
    check save-left-out-big grep -q 'left out /opt[/a-z]*: over the net' /run/save.txt
    check net-root-only [ "$(stat -c '%u:%g %a' /var/lib/blankslate/net)" = "0:0 700" ]
    ;;
2)
    check forgotten-gone [ ! -e /srv ]
    check list exits 0 list blankslate net list
    check list-names-it grep -q '/srv/forgot (directory, 1 files)' /run/list.txt
    check restore exits 0 restore blankslate net restore /srv/forgot
    check restored-as-it-was [ "$(stat -c '%u:%g %a' /srv/forgot/notes) $(cat /srv/forgot/notes)" = "1000:1000 600 notes" ]
    check restore-never-replaces exits 2 again blankslate net restore /srv/forgot
    check declare exits 0 declare blankslate net restore /srv/forgot --to /srv/kept --declare --declaration $DECL
    check declared grep -q '"/srv/kept"' $DECL
    check audit-net-size sh -c 'blankslate audit --json > /run/audit.json; grep -q "\"catches\": 1" /run/audit.json'
    check save-again exits 0 save blankslate net save
    ;;
3)
    check kept-from-volume sh -c 'grep -q " /srv/kept " /proc/mounts && [ "$(cat /srv/kept/notes)" = notes ]'
    check save-third exits 0 save blankslate net save
    check pruned-to-two sh -c '[ "$(ls /var/lib/blankslate/net | wc -l)" = 2 ] && grep -q "pruned 000001-" /run/save.txt'
    ;;
*)
    check phase-given false
    ;;
esac
"#;
    check((|| {
        let Scenario { work, disk } = with_declaration_file("net", script, &declaration_with("net", "", net))?;
        for phase in 1..=3 {
            let boot = vm::boot(&work, &disk, &format!("{APPEND} vmtest_phase={phase}"), None, LIMIT)?;
            report(&format!("net (boot {phase})"), &boot);
            boot.expect_pass(&format!("net, boot {phase}"))?;
        }
        Ok(())
    })());
}

/// The btrfs root (`[root] kind = "btrfs"`, `keep = 2`) across four boots, its
/// btrfs on a second disk: each boot's `/` is an empty subvolume; the second lists
/// the first boot's root with what nothing declares in it, restores a directory from
/// it as it was and, under a new name, with `--declare`, which the third boot has from
/// the volume; after the fourth, only the two roots before it are kept (the first
/// is deleted). No `net save` runs: a btrfs root keeps what a power cut would lose.
#[test]
#[ignore = "boots QEMU: cargo test -p blankslate-vm-tests -- --ignored (as root)"]
fn a_btrfs_root_keeps_the_previous_roots() {
    let script = r#"
DECL=/var/lib/data/system.toml
check root-is-btrfs grep -q '^[^ ]* / btrfs ' /proc/mounts
check root-starts-empty sh -c '[ ! -e /srv/forgot ] && [ ! -e /opt ]'
case "$vmtest_phase" in
1)
    check list-empty exits 0 list blankslate net list
    check nothing-yet grep -q 'the net is empty' /run/list.txt
    check write-forgotten sh -c 'mkdir -p /srv/forgot && echo notes > /srv/forgot/notes && chown -R 1000:1000 /srv/forgot && chmod 0600 /srv/forgot/notes'
    check write-other sh -c 'mkdir -p /opt && echo one > /opt/boot-1'
    ;;
2)
    check write-other sh -c 'mkdir -p /opt && echo two > /opt/boot-2'
    check list exits 0 list blankslate net list
    check list-names-the-root grep -q '^root-000000 (a previous root, booted at .* generation 1)' /run/list.txt
    check list-names-it grep -q '/srv/forgot (directory, 1 files)' /run/list.txt
    check list-leaves-declared sh -c '! grep -q "/var/lib/data" /run/list.txt'
    check restore exits 0 restore blankslate net restore /srv/forgot
    check restored-from-root grep -q 'from root-000000' /run/restore.txt
    check restored-as-it-was [ "$(stat -c '%u:%g %a' /srv/forgot/notes) $(cat /srv/forgot/notes)" = "1000:1000 600 notes" ]
    check restore-never-replaces exits 2 again blankslate net restore /srv/forgot
    check declare exits 0 declare blankslate net restore /srv/forgot --to /srv/kept --declare --declaration $DECL
    check declared grep -q '"/srv/kept"' $DECL
    ;;
3)
    check kept-from-volume sh -c 'grep -q " /srv/kept " /proc/mounts && [ "$(cat /srv/kept/notes)" = notes ]'
    check list exits 0 list blankslate net list
    check two-roots sh -c 'grep -q "^root-000000 " /run/list.txt && grep -q "^root-000001 " /run/list.txt'
    check restore-from-named exits 0 named blankslate net restore /opt/boot-1 --from root-000000
    check restored-named [ "$(cat /opt/boot-1)" = one ]
    ;;
4)
    check list exits 0 list blankslate net list
    check oldest-pruned sh -c '! grep -q "^root-000000 " /run/list.txt'
    check keeps-two sh -c 'grep -q "^root-000001 " /run/list.txt && grep -q "^root-000002 " /run/list.txt'
    check the-running-root-is-not-listed sh -c '! grep -q "^root-000003 " /run/list.txt'
    check audit-says-not-sized sh -c 'blankslate audit --json > /run/audit.json; grep -q "\"previous_roots\"" /run/audit.json'
    ;;
*)
    check phase-given false
    ;;
esac
"#;
    check((|| {
        let declaration = declaration_with("btrfs", "", "")
            .replace("size = \"64M\"\n", "kind = \"btrfs\"\ndevice = \"LABEL=bsroots\"\nkeep = 2\n");
        let Scenario { work, disk } = with_declaration_file("btrfs-root", script, &declaration)?;
        let roots = work.join("roots.img");
        blankslate_test_support::make_btrfs(&roots, "bsroots", 256 << 20)?;
        let kernel = vm::kernel()?;
        let modules: Vec<&str> = vm::VIRTIO_MODULES.iter().chain(&vm::BTRFS_MODULES).copied().collect();
        let (initrd, _) = vm::initrd_with("initrd-btrfs.cpio.gz", &kernel, &modules)?;
        let machine = vm::Machine { kernel: &kernel, initrd: &initrd, disks: &[&disk, &roots], name_modules: false };
        for phase in 1..=4 {
            let append = format!("{APPEND} blankslate.debug vmtest_phase={phase}");
            let boot = vm::boot_machine(&machine, &work, &append, None, LIMIT)?;
            report(&format!("btrfs root (boot {phase})"), &boot);
            if let Some(made) = boot.log.lines().find(|l| l.contains("btrfs root roots/")) {
                eprintln!("  {}", made.trim());
            }
            boot.expect_pass(&format!("btrfs root, boot {phase}"))?;
        }
        // Each boot marked its root once it switched into it (the prune takes roots
        // without the mark first): the three roots left.
        let script = format!(
            "m=$(mktemp -d) && mount -o ro,loop,subvolid=5 '{}' \"$m\" || exit 1; cd \"$m/roots\" && ls -d */switched; \
             status=$?; cd /; umount \"$m\"; rmdir \"$m\"; exit $status",
            roots.display()
        );
        let marked = blankslate_test_support::shell_in_namespace(&script).output().map_err(|e| e.to_string())?;
        let listed = String::from_utf8_lossy(&marked.stdout);
        if listed.split_whitespace().collect::<Vec<_>>() != ["000001/switched", "000002/switched", "000003/switched"] {
            return Err(format!("the roots' marks: {listed}{}", String::from_utf8_lossy(&marked.stderr)));
        }
        Ok(())
    })());
}

/// A disk whose generation 1 is `declaration`, with the declaration's file at
/// `/var/lib/data/system.toml` (persisted) for `--declare` to add to.
fn with_declaration_file(name: &str, script: &str, declaration: &str) -> Result<Scenario> {
    let work = vm::work_dir(name)?;
    let volume = Volume::new(&work, &vm::guest_script(script))?;
    volume.build(declaration, "generation-1")?;
    let data = volume.dir.join("var/lib/data");
    std::fs::create_dir_all(&data).map_err(|e| e.to_string())?;
    std::fs::write(data.join("system.toml"), declaration).map_err(|e| e.to_string())?;
    let disk = work.join("disk.img");
    volume.make_disk(&disk, "bsvol")?;
    Ok(Scenario { work, disk })
}
