//! The sandbox: a declaration tried in private namespaces. These tests need root
//! (they create mount and PID namespaces); they change nothing on the host, which
//! one of them checks.

use std::path::Path;
use std::process::{Command, Output};

mod common;
use blankslate_test_support::root_or_skip;
use common::output;

fn sandbox(dir: &Path, declaration: Option<&Path>, command: &[&str]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_blankslate"));
    cmd.arg("sandbox").arg("--dir").arg(dir);
    if let Some(declaration) = declaration {
        cmd.arg(declaration);
    }
    output(cmd.arg("--").args(command).env_remove("BLANKSLATE_FAILPOINT"))
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The host's mount table, without the fields that change on their own.
fn host_mounts() -> Vec<String> {
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .map(|l| l.split_whitespace().skip(3).take(2).collect::<Vec<_>>().join(" "))
        .collect()
}

#[test]
fn the_built_in_example_runs_with_a_working_etc_and_the_host_is_untouched() {
    if !root_or_skip("the sandbox needs root") {
        return;
    }
    let scratch = tempfile::tempdir().unwrap();
    let before = host_mounts();
    let script = "cat /etc/hostname; readlink /etc/static; stat -c '%a %U' /etc/shadow; \
                  stat -f -c %T /; \
                  touch /var/lib/blankslate/x 2>/dev/null && echo store-writable || echo store-read-only; echo pid $$";
    let output = sandbox(scratch.path(), None, &["sh", "-c", script]);
    assert!(output.status.success(), "{}", text(&output.stderr));
    let lines: Vec<String> = text(&output.stdout).lines().map(str::to_owned).collect();
    assert_eq!(lines[0], "blankslate-sandbox", "/etc/hostname comes from the example");
    assert!(lines[1].starts_with("/var/lib/blankslate/store/") && lines[1].ends_with("-etc/etc"), "{lines:?}");
    assert_eq!(lines[2], "640 root", "a copy with its declared mode");
    assert_eq!(lines[3], "tmpfs", "/ is a tmpfs");
    assert_eq!(lines[4], "store-read-only");
    assert_eq!(lines[5], "pid 2", "a PID namespace of its own (its init is pid 1)");
    assert_eq!(host_mounts(), before, "no mount leaked to the host");
}

#[test]
fn a_declaration_is_tried_and_the_exit_code_comes_back() {
    if !root_or_skip("the sandbox needs root") {
        return;
    }
    let scratch = tempfile::tempdir().unwrap();
    let declaration = scratch.path().join("try.toml");
    std::fs::write(&declaration, "version = 1\n[etc.\"greeting\"]\ntext = \"hello from the store\\n\"\n").unwrap();
    let output = sandbox(&scratch.path().join("box"), Some(&declaration), &["sh", "-c", "cat /etc/greeting; exit 7"]);
    assert_eq!(output.status.code(), Some(7), "{}", text(&output.stderr));
    assert_eq!(text(&output.stdout), "hello from the store\n");
    // A file written in the sandbox's root is gone the next time.
    let output = sandbox(&scratch.path().join("box"), Some(&declaration), &["sh", "-c", "echo x > /tmp/f"]);
    assert!(output.status.success());
    let output = sandbox(&scratch.path().join("box"), Some(&declaration), &["sh", "-c", "test -e /tmp/f; echo $?"]);
    assert_eq!(text(&output.stdout), "1\n");
}

#[test]
fn persisted_data_survives_a_reboot_and_undeclared_data_does_not() {
    if !root_or_skip("the sandbox needs root") {
        return;
    }
    let scratch = tempfile::tempdir().unwrap();
    let declaration = scratch.path().join("keep.toml");
    std::fs::write(
        &declaration,
        "version = 1\n[persist.\"/persist\"]\ndirectories = [{ directory = \"/var/lib/app\", mode = \"0700\" }]\n\
         files = [\"/etc/app.conf\", { file = \"/root/.history\", how = \"symlink\" }]\n",
    )
    .unwrap();
    let dir = scratch.path().join("box");
    let first = "echo kept > /var/lib/app/state && echo conf > /etc/app.conf && echo cmd > /root/.history \
                 && echo lost > /var/lib/undeclared && echo lost > /root/scratch";
    let output = sandbox(&dir, Some(&declaration), &["sh", "-c", first]);
    assert!(output.status.success(), "{}", text(&output.stderr));
    // The namespace is gone (the "reboot"); a new one activates from the same volume.
    let second = "cat /var/lib/app/state /etc/app.conf /root/.history; stat -c %a /var/lib/app; \
                  ls /var/lib/undeclared /root/scratch 2>&1 | wc -l";
    let output = sandbox(&dir, Some(&declaration), &["sh", "-c", second]);
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert_eq!(text(&output.stdout), "kept\nconf\ncmd\n700\n2\n");
    assert_eq!(std::fs::read_to_string(dir.join("volumes/persist/var/lib/app/state")).unwrap(), "kept\n");
}

/// `switch` on a live root mounts newly declared paths and unmounts dropped ones,
/// without a reboot. Runs the binary in a mount namespace of its own (util-linux
/// `unshare`), so its mounts die with it; the checks run in the same namespace.
#[test]
fn switch_mounts_new_paths_and_unmounts_dropped_ones() {
    if !root_or_skip("mounting needs root") {
        return;
    }
    let scratch = tempfile::tempdir().unwrap();
    let root = scratch.path().join("root");
    std::fs::create_dir_all(root.join("persist")).unwrap();
    let one = scratch.path().join("one.toml");
    let two = scratch.path().join("two.toml");
    std::fs::write(&one, "version = 1\n[persist.\"/persist\"]\ndirectories = [\"/srv/old\", \"/var/log\"]\n").unwrap();
    std::fs::write(&two, "version = 1\n[persist.\"/persist\"]\ndirectories = [\"/srv/new\", \"/var/log\"]\n").unwrap();
    let bin = env!("CARGO_BIN_EXE_blankslate");
    let (r, o, t) = (root.display(), one.display(), two.display());
    let script = format!(
        "set -e
         [ \"$(readlink /proc/self/ns/mnt)\" != \"$(readlink /proc/$PPID/ns/mnt)\" ] || exit 99
         mount -t tmpfs volume {r}/persist
         mkdir -p {r}/persist/srv/old && echo kept > {r}/persist/srv/old/data
         {bin} switch {o} --root {r}
         cat {r}/srv/old/data
         {bin} switch {t} --root {r}
         test -e {r}/srv/old/data && echo old-still-visible || echo old-unmounted
         touch {r}/srv/new/x && test -e {r}/persist/srv/new/x && echo new-mounted
         grep -c ' {r}/' /proc/self/mountinfo
         cat {r}/persist/srv/old/data"
    );
    let output = output(Command::new("unshare").args(["--mount", "--propagation", "private", "sh", "-c", &script]));
    let stdout = text(&output.stdout);
    assert!(output.status.success(), "{stdout}{}", text(&output.stderr));
    assert!(stdout.contains("persisted paths: 2 mounted"), "{stdout}");
    assert!(stdout.contains("kept\n"), "{stdout}");
    assert!(
        stdout.contains("persisted paths: 1 mounted, 0 linked, 0 migrated into the volume, 1 unmounted, 1 unchanged"),
        "{stdout}"
    );
    // The volume, /var/log and /srv/new; the volume keeps the data of /srv/old.
    assert!(stdout.ends_with("old-unmounted\nnew-mounted\n3\nkept\n"), "{stdout}");
}
