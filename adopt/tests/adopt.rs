//! `adopt` on a scratch root shaped like an installed Debian: what it keeps, copies,
//! leaves out and writes, that the declaration builds, and that the root is untouched.

use std::ffi::OsStr;
use std::os::unix::fs::{MetadataExt, PermissionsExt, chown, symlink};
use std::path::Path;

use blankslate_adopt::{AdoptError, Request, adopt};
use blankslate_sys::fs::Dir;
use blankslate_test_support::{in_namespace, root_or_skip};

fn write(root: &Path, path: &str, text: &str, mode: u32, owner: (u32, u32)) {
    let path = root.join(path);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, text).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
    chown(&path, Some(owner.0), Some(owner.1)).unwrap();
}

/// An installed system in miniature.
fn installed(root: &Path) {
    write(root, "etc/passwd", "root:x:0:0::/root:/bin/sh\nalice:x:1000:1000::/home/alice:/bin/sh\n", 0o644, (0, 0));
    write(root, "etc/group", "root:x:0:\nshadow:x:42:\nalice:x:1000:\n", 0o644, (0, 0));
    write(root, "etc/shadow", "root:!:1::::::\nalice:!:1::::::\n", 0o640, (0, 42));
    write(root, "etc/passwd-", "root:x:0:0::/root:/bin/sh\n", 0o644, (0, 0));
    write(root, "etc/.pwd.lock", "", 0o600, (0, 0));
    write(root, "etc/hostname", "debian\n", 0o644, (0, 0));
    write(root, "etc/sudoers", "root ALL=(ALL) ALL\n", 0o440, (0, 0));
    write(root, "etc/machine-id", "", 0o444, (0, 0));
    write(root, "etc/ssh/sshd_config", "Port 22\n", 0o644, (0, 0));
    write(root, "etc/ssh/ssh_host_ed25519_key", "PRIVATE\n", 0o600, (0, 0));
    write(root, "etc/ssh/ssh_host_ed25519_key.pub", "PUBLIC\n", 0o644, (0, 0));
    // Debian's private key directory, and a directory apt and people write into.
    write(root, "etc/ssl/private/ssl-cert-snakeoil.key", "KEY\n", 0o640, (0, 110));
    for (dir, mode, gid) in [("etc/ssl/private", 0o710, 110), ("etc/apt/sources.list.d", 0o755, 0)] {
        std::fs::create_dir_all(root.join(dir)).unwrap();
        std::fs::set_permissions(root.join(dir), std::fs::Permissions::from_mode(mode)).unwrap();
        chown(root.join(dir), Some(0), Some(gid)).unwrap();
    }
    symlink("../usr/lib/os-release", root.join("etc/os-release")).unwrap();
    assert!(std::process::Command::new("mkfifo").arg(root.join("etc/initctl")).status().unwrap().success());
    write(root, "usr/lib/os-release", "ID=debian\n", 0o644, (0, 0));
    write(root, "usr/bin/sh", "#!\n", 0o755, (0, 0));
    symlink("usr/bin", root.join("bin")).unwrap();
    write(root, "var/log/syslog", "booted\n", 0o640, (0, 0));
    write(root, "var/lib/dpkg/status", "Package: sh\n", 0o644, (0, 0));
    write(root, "var/lib/shells.state", "/bin/sh\n", 0o644, (0, 0));
    write(root, "var/cache/apt/pkgcache.bin", "cache\n", 0o644, (0, 0));
    std::fs::create_dir_all(root.join("var/mail")).unwrap();
    symlink("/run", root.join("var/run")).unwrap();
    write(root, "home/alice/notes", "mine\n", 0o600, (1000, 1000));
    write(root, "root/.ssh/authorized_keys", "ssh-ed25519 AAAA admin\n", 0o600, (0, 0));
    write(root, "root/.bashrc", "PS1=#\n", 0o644, (0, 0));
    write(root, "tmp/junk", "x\n", 0o644, (0, 0));
    write(root, "weird/data", "who knows\n", 0o644, (0, 0));
    for empty in ["srv", "proc", "mnt"] {
        std::fs::create_dir_all(root.join(empty)).unwrap();
    }
}

/// A scratch directory with an installed system at `installed/` and an empty volume
/// at `volume/`; the directory goes when the first value is dropped.
fn installed_and_empty_volume() -> (tempfile::TempDir, std::path::PathBuf, std::path::PathBuf) {
    let scratch = tempfile::tempdir().unwrap();
    let (root, volume) = (scratch.path().join("installed"), scratch.path().join("volume"));
    installed(&root);
    std::fs::create_dir_all(&volume).unwrap();
    (scratch, root, volume)
}

fn mode_owner(path: &Path) -> (u32, u32, u32) {
    let meta = std::fs::symlink_metadata(path).unwrap();
    (meta.permissions().mode() & 0o7777, meta.uid(), meta.gid())
}

#[test]
fn an_installed_system_is_adopted_whole_and_left_untouched() {
    if !root_or_skip("owners need root") {
        return;
    }
    let scratch = tempfile::tempdir().unwrap();
    let (root, volume) = (scratch.path().join("installed"), scratch.path().join("volume"));
    installed(&root);
    std::fs::create_dir_all(volume.join("lost+found")).unwrap();
    let fingerprint = || {
        let top = Dir::open_root(scratch.path()).unwrap();
        blankslate_sys::fs::tree::fingerprint(&top, OsStr::new("installed")).unwrap()
    };
    let before = fingerprint();

    let adopted = adopt(&Request { from: &root, to: &volume, mount_point: "/persist" }).unwrap().finish().unwrap();
    assert_eq!(fingerprint(), before, "the installed root changed");

    let text = std::fs::read_to_string(volume.join("etc/blankslate/system.toml")).unwrap();
    insta::assert_snapshot!("declaration", text.replace(root.to_str().unwrap(), "ROOT"));
    let kept: Vec<&str> = adopted.kept.iter().map(|k| k.path.as_str()).collect();
    assert_eq!(
        kept,
        [
            "/etc/group",
            "/etc/machine-id",
            "/etc/passwd",
            "/etc/shadow",
            "/etc/ssh/ssh_host_ed25519_key",
            "/home",
            "/root/.ssh",
            "/usr",
            "/var/lib/dpkg",
            "/var/lib/shells.state",
            "/var/log",
            "/var/mail",
            "/weird",
        ]
    );
    let undecided: Vec<&str> = adopted.kept.iter().filter(|k| k.undecided.is_some()).map(|k| k.path.as_str()).collect();
    assert_eq!(undecided, ["/var/lib/shells.state", "/weird"]);
    let left_out: Vec<(&str, &str)> =
        adopted.left_out.iter().chain(&adopted.etc_left_out).map(|(p, w)| (p.as_str(), w.as_str())).collect();
    for (path, why) in [
        ("/tmp", "made empty at every boot"),
        ("/var/cache", "regenerated"),
        ("/srv", "empty"),
        ("/bin", "a link into /usr"),
        ("/root", "root's home is not kept"),
        ("/etc/.pwd.lock", "regenerated"),
        ("/etc/passwd-", "regenerated"),
        ("/etc/shadow", "persisted"),
        ("/etc/initctl", "not a file, link or directory"),
    ] {
        assert!(left_out.iter().any(|(p, w)| *p == path && w.contains(why)), "{path}: {left_out:#?}");
    }

    // Data in the volume, with owners and modes; the etc tree without what is persisted.
    assert_eq!(mode_owner(&volume.join("etc/shadow")), (0o640, 0, 42));
    assert_eq!(mode_owner(&volume.join("home/alice/notes")), (0o600, 1000, 1000));
    assert_eq!(std::fs::read_to_string(volume.join("root/.ssh/authorized_keys")).unwrap(), "ssh-ed25519 AAAA admin\n");
    assert!(!volume.join("root/.bashrc").exists());
    let tree = volume.join("etc/blankslate/etc");
    assert_eq!(mode_owner(&tree.join("sudoers")), (0o440, 0, 0));
    assert_eq!(std::fs::read_link(tree.join("os-release")).unwrap(), Path::new("../usr/lib/os-release"));
    for gone in ["shadow", "passwd", "machine-id", "ssh/ssh_host_ed25519_key", ".pwd.lock", "passwd-", "initctl"] {
        assert!(std::fs::symlink_metadata(tree.join(gone)).is_err(), "{gone} is in the etc tree");
    }
    assert!(tree.join("ssh/ssh_host_ed25519_key.pub").exists());
    assert_eq!(adopted.etc_entries, 6, "hostname, os-release, sshd_config, the public key, sudoers, the TLS key");
    assert_eq!(mode_owner(&tree.join("ssl/private")), (0o710, 0, 110));
    assert!(tree.join("apt/sources.list.d").is_dir(), "an empty directory stays in the tree");

    // The declaration checks, with the adopted system's owner names, and builds.
    let users = blankslate_decl::UserDb::from_root(&Dir::open_root(&root).unwrap());
    let file = volume.join("etc/blankslate/system.toml");
    let checked = blankslate_decl::check(&file, &text, Some(&users));
    let declaration = checked.declaration.unwrap_or_else(|| panic!("{}", checked.diagnostics));
    let etc = blankslate_etc_builder::from_declaration(&declaration).unwrap();
    let sudoers = &etc.entries["sudoers"].manifest;
    assert_eq!(sudoers.mode.as_deref(), Some("0440"));
    assert!(!etc.entries.contains_key("shadow"));
    // The directories that say something are entries: a generation makes them again.
    let private = &etc.entries["ssl/private"].manifest;
    assert_eq!((private.mode.as_deref(), private.group.as_str()), (Some("0710"), "+110"));
    assert_eq!(etc.entries["apt/sources.list.d"].manifest.kind, blankslate_state::manifest::EtcKind::Directory);
    assert!(!etc.entries.contains_key("ssh") && !etc.entries.contains_key("ssl"), "ordinary directories are not");
}

/// What the installed system keeps in `/etc/blankslate` (the Debian package's
/// `initrd.conf`, read by the kernel hooks) is in the volume's `/etc/blankslate`,
/// which is persisted: the adopted system has it. Adopt's own files there are its own.
#[test]
fn the_installed_etc_blankslate_goes_into_the_persisted_one() {
    if !root_or_skip("owners need root") {
        return;
    }
    let (_scratch, root, volume) = installed_and_empty_volume();
    write(&root, "etc/blankslate/initrd.conf", "ROUTE=a\n", 0o644, (0, 0));
    write(&root, "etc/blankslate/system.toml", "an old declaration\n", 0o600, (0, 0));
    adopt(&Request { from: &root, to: &volume, mount_point: "/persist" }).unwrap().finish().unwrap();
    assert_eq!(std::fs::read_to_string(volume.join("etc/blankslate/initrd.conf")).unwrap(), "ROUTE=a\n");
    assert_eq!(mode_owner(&volume.join("etc/blankslate/initrd.conf")), (0o644, 0, 0));
    let declaration = std::fs::read_to_string(volume.join("etc/blankslate/system.toml")).unwrap();
    assert!(declaration.contains("[etc_tree]"), "adopt's own declaration: {declaration}");
    assert!(!volume.join("etc/blankslate/etc/blankslate").exists(), "not in the etc tree: it is persisted");
}

/// An installed fstab mounts the root (which would fail on the tmpfs) and `/home` on
/// its own partition (which would hide the persisted `/home`): the etc tree's fstab
/// has both commented out with why, the rest as it was, and adopt says so.
#[test]
fn the_adopted_fstab_mounts_nothing_over_the_root_or_persisted_data() {
    if !root_or_skip("owners need root") {
        return;
    }
    let (_scratch, root, volume) = installed_and_empty_volume();
    let fstab = "UUID=1 / ext4 errors=remount-ro 0 1\nUUID=2 /home ext4 defaults 0 2\nUUID=3 none swap sw 0 0\n";
    write(&root, "etc/fstab", fstab, 0o644, (0, 0));
    let adopted = adopt(&Request { from: &root, to: &volume, mount_point: "/persist" }).unwrap().finish().unwrap();
    let text = std::fs::read_to_string(volume.join("etc/blankslate/etc/fstab")).unwrap();
    assert!(text.contains("# UUID=1 / ext4 errors=remount-ro 0 1\n"), "{text}");
    assert!(text.contains("# UUID=2 /home ext4 defaults 0 2\n"), "{text}");
    assert!(text.contains("\nUUID=3 none swap sw 0 0\n"), "{text}");
    let said: Vec<&str> = adopted.etc_left_out.iter().map(|(path, _)| path.as_str()).collect();
    assert!(said.contains(&"/etc/fstab's entry for /home"), "{said:?}");
    assert_eq!(std::fs::read_to_string(root.join("etc/fstab")).unwrap(), fstab, "the installed root is only read");
}

/// Another file system mounted inside a kept directory (the ESP at `/boot/efi`) is
/// not copied into the volume and does not stop adopt: its mount point is kept,
/// empty, and the declaration's comment on the kept directory names it.
#[test]
fn a_file_system_mounted_inside_a_kept_directory_keeps_only_its_mount_point() {
    if !root_or_skip("mounts need root") {
        return;
    }
    let (_scratch, root, volume) = installed_and_empty_volume();
    write(&root, "boot/vmlinuz-6.1", "kernel\n", 0o644, (0, 0));
    std::fs::create_dir_all(root.join("boot/efi")).unwrap();
    let (adopted, volume) = in_namespace(move || {
        let boot = Dir::open_root(&root.join("boot")).unwrap();
        blankslate_sys::mount::mount_new(
            &boot,
            "efi",
            "tmpfs",
            &[("mode", "0700")],
            blankslate_sys::mount::MountAttrFlags::empty(),
        )
        .unwrap();
        std::fs::write(root.join("boot/efi/grubx64.efi"), "loader").unwrap();
        let adopted = adopt(&Request { from: &root, to: &volume, mount_point: "/persist" }).unwrap().finish().unwrap();
        (adopted, volume)
    });
    assert!(adopted.kept.iter().any(|k| k.path == "/boot"), "{:?}", adopted.kept);
    assert_eq!(std::fs::read_to_string(volume.join("boot/vmlinuz-6.1")).unwrap(), "kernel\n");
    assert!(volume.join("boot/efi").is_dir(), "the mount point is kept");
    assert_eq!(std::fs::read_dir(volume.join("boot/efi")).unwrap().count(), 0, "nothing of the ESP copied");
    let declaration = std::fs::read_to_string(volume.join("etc/blankslate/system.toml")).unwrap();
    assert!(declaration.contains("/boot/efi mounted there as before by /etc/fstab"), "{declaration}");
}

/// /boot on a partition of its own (a mount at a kept directory itself) is what the
/// boot loader reads: it is left out of the volume, said in the declaration, and its
/// fstab entry stays, so that the new system mounts it as before.
#[test]
fn a_kept_directory_that_is_its_own_file_system_stays_mounted_as_before() {
    if !root_or_skip("mounts need root") {
        return;
    }
    let (_scratch, root, volume) = installed_and_empty_volume();
    let fstab = "UUID=1 / ext4 errors=remount-ro 0 1\nUUID=2 /boot ext4 defaults 0 2\n";
    write(&root, "etc/fstab", fstab, 0o644, (0, 0));
    std::fs::create_dir_all(root.join("boot")).unwrap();
    let (adopted, volume) = in_namespace(move || {
        let top = Dir::open_root(&root).unwrap();
        let flags = blankslate_sys::mount::MountAttrFlags::empty();
        blankslate_sys::mount::mount_new(&top, "boot", "tmpfs", &[("mode", "0755")], flags).unwrap();
        std::fs::write(root.join("boot/vmlinuz-6.1"), "kernel\n").unwrap();
        let adopted = adopt(&Request { from: &root, to: &volume, mount_point: "/persist" }).unwrap().finish().unwrap();
        (adopted, volume)
    });
    assert!(!adopted.kept.iter().any(|k| k.path == "/boot"), "{:?}", adopted.kept);
    let left_out = adopted.left_out.iter().find(|(path, _)| path == "/boot").expect("/boot is said to be left out");
    assert!(left_out.1.starts_with("a file system of its own, mounted there as before"), "{left_out:?}");
    assert!(!volume.join("boot/vmlinuz-6.1").exists(), "the partition's kernel is not copied");
    let declaration = std::fs::read_to_string(volume.join("etc/blankslate/system.toml")).unwrap();
    assert!(declaration.contains("# Not in the volume: /boot: a file system of its own"), "{declaration}");
    assert!(!declaration.contains("\"/boot\""), "/boot is not persisted: {declaration}");
    let text = std::fs::read_to_string(volume.join("etc/blankslate/etc/fstab")).unwrap();
    assert!(text.contains("\nUUID=2 /boot ext4 defaults 0 2\n"), "the /boot entry stays: {text}");
    assert!(text.contains("# UUID=1 / ext4 errors=remount-ro 0 1\n"), "{text}");
}

#[test]
fn a_volume_with_data_or_a_root_without_etc_is_refused_and_nothing_is_written() {
    let scratch = tempfile::tempdir().unwrap();
    let (root, volume) = (scratch.path().join("installed"), scratch.path().join("volume"));
    std::fs::create_dir_all(root.join("usr")).unwrap();
    std::fs::create_dir_all(&volume).unwrap();
    let request = Request { from: &root, to: &volume, mount_point: "/persist" };
    let error = adopt(&request).unwrap_err();
    assert!(matches!(error, AdoptError::NotASystem { what: "/etc", .. }), "{error}");
    std::fs::create_dir_all(root.join("etc")).unwrap();
    std::fs::write(volume.join("precious"), "data").unwrap();
    let error = adopt(&request).unwrap_err();
    assert!(error.to_string().contains("is not empty (it holds precious)"), "{error}");
    assert_eq!(std::fs::read_dir(&volume).unwrap().count(), 1, "nothing was added to the volume");
    let error = adopt(&Request { from: &scratch.path().join("nowhere"), ..request }).unwrap_err();
    assert!(error.to_string().starts_with("cannot read the root"), "{error}");
}

/// The installed system's secrets stay secret: the etc tree keeps their modes and
/// owners (behind the 0700 declaration directory), and a generation built from it has
/// them readable by root alone in the store: VPN and Wi-Fi keys, TLS keys, and even a
/// file of ordinary mode in a directory others cannot enter (a copy with its own mode,
/// so that the directory's group still reads it).
#[test]
fn adopted_secrets_stay_secret_in_the_tree_and_the_store() {
    if !root_or_skip("owners need root") {
        return;
    }
    let scratch = tempfile::tempdir().unwrap();
    let (root, volume) = (scratch.path().join("installed"), scratch.path().join("volume"));
    installed(&root);
    write(&root, "etc/wireguard/wg0.conf", "[Interface]\nPrivateKey = k\n", 0o600, (0, 0));
    write(&root, "etc/NetworkManager/system-connections/home.nmconnection", "psk=p\n", 0o600, (0, 0));
    write(&root, "etc/ssl/private/readable.pem", "CERT\n", 0o644, (0, 0));
    for dir in ["etc/wireguard", "etc/NetworkManager/system-connections"] {
        std::fs::set_permissions(root.join(dir), std::fs::Permissions::from_mode(0o700)).unwrap();
    }
    std::fs::create_dir_all(&volume).unwrap();
    adopt(&Request { from: &root, to: &volume, mount_point: "/persist" }).unwrap();

    let home = volume.join("etc/blankslate");
    assert_eq!(mode_owner(&home), (0o700, 0, 0));
    let tree = home.join("etc");
    assert_eq!(mode_owner(&tree.join("wireguard")), (0o700, 0, 0));
    assert_eq!(mode_owner(&tree.join("wireguard/wg0.conf")), (0o600, 0, 0));
    assert_eq!(mode_owner(&tree.join("ssl/private/ssl-cert-snakeoil.key")), (0o640, 0, 110));

    let file = home.join("system.toml");
    let checked = blankslate_decl::check(&file, &std::fs::read_to_string(&file).unwrap(), None);
    let declaration = checked.declaration.unwrap_or_else(|| panic!("{}", checked.diagnostics));
    let etc = blankslate_etc_builder::from_declaration(&declaration).unwrap();
    let readable = &etc.entries["ssl/private/readable.pem"].manifest;
    assert_eq!((&readable.kind, readable.mode.as_deref()), (&blankslate_state::manifest::EtcKind::Copy, Some("0644")));
    let state = scratch.path().join("state");
    let store =
        blankslate_state::store::Store::open(&Dir::open_root(scratch.path()).unwrap(), Path::new("/state")).unwrap();
    let object = etc.add_to_store(&store).unwrap();
    let in_store = |path: &str| mode_owner(&state.join(&object).join("etc").join(path)).0;
    for secret in [
        "wireguard/wg0.conf",
        "NetworkManager/system-connections/home.nmconnection",
        "ssl/private/ssl-cert-snakeoil.key",
        "ssl/private/readable.pem",
        "sudoers",
    ] {
        assert_eq!(in_store(secret), 0o400, "{secret}");
    }
    assert_eq!(in_store("hostname"), 0o444);
    assert_eq!(store.check_object(&object), None);
}
