//! Persisted paths killed at every system call that changes something: the binary
//! runs under `strace -e inject=SYSCALL:signal=KILL:when=N` for each such call and
//! each N until it completes, then the natural recovery (the same command again) runs
//! and the end state is checked: everything in place, every byte where it belongs,
//! no temporary or half-made directory left in the root or the volume.
//!
//! Each run mounts in a private mount namespace (`unshare`), which the script checks
//! first, on a fresh copy of a scratch root.

use std::process::Command;

mod common;
use blankslate_test_support::root_or_skip;

use common::{stderr, stdout};

/// The calls that change a file system, a mount or a file's metadata (opens that
/// create are covered by the call after them: the file is there, empty).
const CHANGING: &[&str] = &[
    "mkdirat",
    "unlinkat",
    "renameat",
    "renameat2",
    "symlinkat",
    "linkat",
    "write",
    "pwrite64",
    "ftruncate",
    "fsync",
    "fchown",
    "fchmod",
    "utimensat",
    "fsetxattr",
    "open_tree",
    "move_mount",
    "mount_setattr",
];

/// Runs `script` (sh, which calls `sweep`) in a private mount namespace in a scratch
/// directory, with `$B` the binary and `$CALLS` the calls to kill at, and fails on any
/// point whose recovery did not end as the check wants. `what` names it in the
/// summary.
fn sweep(what: &str, script: &str) {
    let dir = tempfile::tempdir().unwrap();
    let full = format!(
        "set -e\n[ \"$(readlink /proc/self/ns/mnt)\" != \"$(readlink /proc/$PPID/ns/mnt)\" ] || \
         {{ echo 'not in a private mount namespace'; exit 99; }}\n\
         # A tmpfs: fsync costs nothing, and the points are the same.\n\
         mkdir work && mount -t tmpfs work work && cd work\n{SWEEP}\n{script}"
    );
    let output = common::output(
        Command::new("unshare")
            .args(["--mount", "--propagation", "private", "sh", "-c", &full])
            .current_dir(dir.path())
            .env("B", env!("CARGO_BIN_EXE_blankslate"))
            .env("CALLS", CHANGING.join(" "))
            .env("NO_COLOR", "1")
            .env_remove("BLANKSLATE_FAILPOINT"),
    );
    let out = stdout(&output);
    assert!(output.status.success(), "{out}{}", stderr(&output));
    let failures: Vec<&str> = out.lines().filter(|l| l.starts_with("FAIL")).collect();
    assert!(failures.is_empty(), "{what}: {failures:#?}");
    let points: usize = out.lines().find_map(|l| l.strip_prefix("points ")).unwrap().parse().unwrap();
    eprintln!("{what}: {points} kill points, all recovered");
    assert!(points > CHANGING.len(), "{out}");
}

/// `sweep SETUP COMMAND CHECK`: for every call in `$CALLS` and N = 1, 2, … until
/// COMMAND completes, makes a fresh root with SETUP (in `$R`), runs COMMAND killed at
/// the N-th such call, "reboots" (unmounts everything under the root and mounts the
/// volume again), runs COMMAND again, and runs CHECK, which prints what is wrong.
/// Prints a line per failure, and `points N` at the end.
///
/// The volume is its own tmpfs (`$PWD/volume`, outside the root, so that it outlives
/// the reboot), filled from `$TEMPLATE/persist` and bind-mounted at `$R/persist`: a
/// switch refuses a persistent root on the root's own file system.
const SWEEP: &str = r#"
unmount_all() {
    awk -v r="$R/" 'index($5, r) == 1 { print $5 }' /proc/self/mountinfo | sort -r | while read -r m; do umount "$m"; done
}
mount_volume() { mount --bind "$PWD/volume" "$R/persist"; }
fresh_volume() {
    ! mountpoint -q "$PWD/volume" || umount "$PWD/volume"
    mkdir -p "$PWD/volume" && mount -t tmpfs volume "$PWD/volume"
    cp -a "$TEMPLATE/persist/." "$PWD/volume/"
}
fresh_root() { rm -rf "$R"; cp -a "$TEMPLATE" "$R"; fresh_volume; mount_volume; }
sweep() {
    setup=$1; command=$2; check=$3; points=0
    for call in $CALLS; do
        n=1
        while :; do
            R="$PWD/root"; $setup
            code=0; strace -f -qq -o /dev/null -e trace="$call" -e inject="$call":signal=KILL:when=$n \
                $command > /dev/null 2>&1 || code=$?
            unmount_all; mount_volume
            recovered=0; $command > recovery.out 2>&1 || recovered=$?
            wrong=$($check)
            [ "$recovered" = 0 ] || wrong="$wrong recovery exited $recovered: $(tail -n 3 recovery.out)"
            [ -z "$wrong" ] || echo "FAIL $call#$n (exit $code): $wrong"
            unmount_all
            points=$((points+1))
            [ "$code" = 137 ] || break
            n=$((n+1))
        done
    done
    echo "points $points"
}
"#;

/// A switch that moves data found in the root into the volume (a mounted directory and
/// a linked one), killed anywhere: the next switch finishes the move, with nothing
/// left over. A move killed after its copy is in place, but before the root is
/// emptied, leaves the same data on both sides; the next switch sees that it is the
/// volume's already instead of reporting both as holding data.
#[test]
fn a_migration_killed_at_any_call_is_finished_by_the_next_switch() {
    if !root_or_skip("needs root for a mount namespace") {
        return;
    }
    let script = r#"
printf 'version = 1\n[persist."/persist"]\ndirectories = ["/srv/data", { directory = "/srv/linked", how = "symlink" }]\n' > decl.toml
# Built once: the sweep is about the activation.
mkdir -p template/persist template/srv/data/sub template/srv/linked
echo kept > template/srv/data/sub/file; ln template/srv/data/sub/file template/srv/data/same
echo also > template/srv/linked/file
"$B" build decl.toml --root "$PWD/template" > /dev/null
TEMPLATE="$PWD/template"
setup() { fresh_root; }
check() {
    [ "$(stat -c %d:%i "$R/srv/data")" = "$(stat -c %d:%i "$R/persist/srv/data")" ] || echo "/srv/data is not mounted"
    [ "$(awk -v m="$R/srv/data" '$5 == m' /proc/self/mountinfo | wc -l)" = 1 ] || echo "/srv/data mounted twice"
    [ "$(readlink "$R/srv/linked")" = /persist/srv/linked ] || echo "/srv/linked is not linked"
    [ "$(cat "$R/persist/srv/data/sub/file" 2>&1)" = kept ] || echo "data lost"
    [ "$(stat -c %i "$R/persist/srv/data/same" 2>&1)" = "$(stat -c %i "$R/persist/srv/data/sub/file")" ] \
        || echo "hard link lost"
    [ "$(cat "$R/persist/srv/linked/file" 2>&1)" = also ] || echo "linked data lost"
    left=$(find "$R/srv" "$R/persist/srv" -name '.*' 2>/dev/null); [ -z "$left" ] || echo "left over: $left"
}
sweep setup "$B switch decl.toml --root $PWD/root" check
"#;
    sweep("switch with migrations", script);
}

/// `persist sync` killed anywhere while it writes copies back (a secret with its mode,
/// and a large sparse file): the next sync removes the temporaries the killed one left
/// in the volume, and writes what is missing, with the mode kept.
#[test]
fn persist_sync_killed_at_any_call_leaves_nothing_after_the_next() {
    if !root_or_skip("needs root for a mount namespace") {
        return;
    }
    let script = r#"
printf 'version = 1\n[persist."/persist"]\nfiles = [{ file = "/etc/shadow", how = "copy" }, { file = "/srv/big", how = "copy" }]\n' > decl.toml
mkdir -p seed/persist/etc seed/persist/srv
printf 'root:old:1::::::\n' > seed/persist/etc/shadow; chmod 600 seed/persist/etc/shadow
# The template is a root the first switch made, its volume's contents in its /persist.
TEMPLATE="$PWD/seed"; R="$PWD/template"; fresh_root
"$B" switch decl.toml --root "$R" > /dev/null
printf 'root:new:2::::::\n' > "$R/etc/shadow"
truncate -s 64M "$R/srv/big"; printf 'middle' | dd of="$R/srv/big" bs=1 seek=33554432 conv=notrunc 2>/dev/null
unmount_all; cp -a volume/. "$R/persist/"; TEMPLATE="$R"
setup() { fresh_root; }
check() {
    cmp -s "$R/etc/shadow" "$R/persist/etc/shadow" || echo "shadow not written back"
    [ "$(stat -c %a "$R/persist/etc/shadow")" = 600 ] || echo "shadow's mode is $(stat -c %a "$R/persist/etc/shadow")"
    cmp -s "$R/srv/big" "$R/persist/srv/big" || echo "big not written back"
    [ "$(stat -c %b "$R/persist/srv/big")" -lt 1024 ] || echo "big's holes were filled"
    left=$(find "$R/persist/etc" "$R/persist/srv" -name '.*'); [ -z "$left" ] || echo "left over: $left"
}
sweep setup "$B persist sync --root $PWD/root" check
"#;
    sweep("persist sync", script);
}
