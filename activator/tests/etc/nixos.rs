//! Activating a NixOS-style etc tree (links, direct links, copies).

#[allow(clippy::wildcard_imports)]
use super::*;

#[test]
fn a_nixos_etc_tree_activates_links_direct_links_and_copies() {
    let scratch = EtcRoot::new();
    // The sources a NixOS tree links to live in a /nix/store; this machine has none, so
    // they live in a temporary directory, mirrored at the same path inside the root
    // (on NixOS the store is in both places too).
    let sources = tempfile::tempdir().unwrap();
    let files = [
        ("hosts", "127.0.0.1 nixos\n"),
        ("sudoers", "root ALL=(ALL:ALL) SETENV: ALL\n"),
        ("shadow", "root:!:1::::::\n"),
        ("sshd_config", "PermitRootLogin no\n"),
    ];
    let inside = scratch.path().join(sources.path().strip_prefix("/").unwrap());
    std::fs::create_dir_all(&inside).unwrap();
    for (name, text) in files {
        std::fs::write(sources.path().join(name), text).unwrap();
        std::fs::write(inside.join(name), text).unwrap();
    }
    let tree = tempfile::tempdir().unwrap();
    let t = tree.path();
    std::fs::create_dir_all(t.join("ssh")).unwrap();
    let link =
        |source: &str, name: &str| std::os::unix::fs::symlink(sources.path().join(source), t.join(name)).unwrap();
    link("hosts", "hosts");
    link("sudoers", "sudoers");
    std::fs::write(t.join("sudoers.mode"), "0440\n").unwrap();
    std::fs::write(t.join("sudoers.gid"), "+10\n").unwrap();
    link("shadow", "shadow");
    std::fs::write(t.join("shadow.mode"), "0640").unwrap();
    std::fs::write(t.join("shadow.uid"), "+33").unwrap();
    std::fs::write(t.join("shadow.gid"), "+44").unwrap();
    link("sshd_config", "ssh/sshd_config");
    std::os::unix::fs::symlink("/run/resolvconf/resolv.conf", t.join("resolv.conf")).unwrap();
    std::fs::write(t.join("resolv.conf.mode"), "direct-symlink\n").unwrap();
    std::fs::create_dir_all(scratch.path().join("run/resolvconf")).unwrap();
    std::fs::write(scratch.path().join("run/resolvconf/resolv.conf"), "nameserver 10.0.0.1\n").unwrap();

    let build = blankslate_etc_builder::from_nixos_tree(t).unwrap();
    let object = build.add_to_store(&scratch.store).unwrap();
    let one = EtcGeneration::load(&scratch.store, 1, &object).unwrap();
    assert_eq!(declared(&one), ["hosts", "resolv.conf", "shadow", "ssh/sshd_config", "sudoers"]);
    let activated = scratch.activate(&one);
    assert_eq!(activated.plan.steps.len(), 5);

    assert_eq!(scratch.link("hosts"), "/etc/static/hosts");
    assert_eq!(scratch.link("ssh/sshd_config"), "/etc/static/ssh/sshd_config");
    assert_eq!(scratch.read("hosts"), "127.0.0.1 nixos\n");
    assert_eq!(scratch.read("ssh/sshd_config"), "PermitRootLogin no\n");
    assert_eq!(scratch.link("resolv.conf"), "/run/resolvconf/resolv.conf", "a direct link skips /etc/static");
    assert_eq!(scratch.read("resolv.conf"), "nameserver 10.0.0.1\n");
    assert_eq!(file_meta(&scratch.etc("sudoers")), (0o440, 0, 10, true));
    assert_eq!(scratch.read("sudoers"), "root ALL=(ALL:ALL) SETENV: ALL\n");
    assert_eq!(file_meta(&scratch.etc("shadow")), (0o640, 33, 44, true));
    assert_eq!(scratch.read("shadow"), "root:!:1::::::\n");
    // No sidecar becomes an entry.
    assert!(!scratch.etc("sudoers.mode").exists());
    assert!(scratch.activate(&one).plan.is_noop());
}
