//! A local user as the attacker. The user owns a home and persisted paths in it, in the
//! root and in the volume, and may plant anything there at any moment: symlinks, FIFOs,
//! hard links to root-only files (which anyone can make where `fs.protected_hardlinks`
//! is 0; made here by root in the scratch tree, which is what the protection would
//! have allowed, since this machine's setting is not the tests' to change).
//!
//! The user is a throwaway id with no account on the host (`setpriv --reuid=N
//! --regid=N --clear-groups`). Everything runs in a private mount namespace
//! (`unshare`), which each script checks before it mounts anything, on a scratch root.

mod common;
use blankslate_test_support::{Scratch, root_or_skip, shell_in_namespace};

use common::{stderr, stdout};

/// The attacker's id: no account on the host has it.
const MALLORY: u32 = 48213;

/// A root with a volume at `persist/`, whose persisted paths include a user's.
fn declaration() -> String {
    format!(
        r#"version = 1
[etc."passwd"]
text = "root:x:0:0::/root:/bin/sh\nmallory:x:{MALLORY}:{MALLORY}::/home/mallory:/bin/sh\n"
[etc."group"]
text = "root:x:0:\nmallory:x:{MALLORY}:\n"

[persist."/persist"]
directories = [{{ directory = "/var/lib/important", mode = "0700" }}]
files = [
  {{ file = "/etc/shadow", how = "copy", mode = "0600" }},
  {{ file = "/var/lib/app.conf", how = "copy" }},
]

[persist."/persist".users.mallory]
directories = ["data", {{ directory = "linked", how = "symlink" }}]
files = [{{ file = "notes", how = "copy" }}, {{ file = "hist", how = "bind" }}]
"#
    )
}

/// A scratch directory others can enter (the user must reach their home), holding the
/// root (`root/`, with its volume directory), the declaration and what the scripts
/// leave for the checks; when the tests run as root, else `None`, with a note.
fn scratch_as_root() -> Option<Scratch> {
    if !root_or_skip("needs root for namespaces and a throwaway user") {
        return None;
    }
    let scratch = Scratch::new().open_to_others();
    std::fs::create_dir_all(scratch.dir().join("root/persist")).unwrap();
    scratch.file("declaration.toml", declaration());
    Some(scratch)
}

/// Runs `script` with `sh` in a private mount namespace, in the scratch directory;
/// `$B` is the binary, `$R` the root, `$D` the declaration, `$U` the user's id and
/// `$SETUP` the shell functions below.
fn run_script(scratch: &Scratch, script: &str) -> std::process::Output {
    common::output(
        shell_in_namespace(&format!("set -e\n{SETUP}\n{script}"))
            .current_dir(scratch.dir())
            .env("B", env!("CARGO_BIN_EXE_blankslate"))
            .env("R", scratch.dir().join("root"))
            .env("D", scratch.dir().join("declaration.toml"))
            .env("U", MALLORY.to_string())
            .env("NO_COLOR", "1")
            .env_remove("BLANKSLATE_FAILPOINT"),
    )
}

/// Shell functions the scripts share: `as_user CMD…` runs a command as the user;
/// `prepare` makes the root-only sentinels (the volume's `important` database and
/// shadow), activates, and puts hard links to the sentinels in the user's
/// `.stash` (shadow in the root, the database in the volume); `snapshot FILE` lists everything outside the user's paths
/// (and blankslate's own state) with its type, owner, mode, inode and contents hash;
/// `wait_for CMD…` retries a check 600 times, 50 ms apart.
const SETUP: &str = r#"
as_user() { setpriv --reuid="$U" --regid="$U" --clear-groups "$@"; }
H="$R/home/mallory"; V="$R/persist/home/mallory"
prepare() {
    # The volume: its own file system (a switch refuses a plain directory of the root).
    mount -t tmpfs -o mode=0755 volume "$R/persist"
    mkdir -p "$R/persist/var/lib/important" "$R/persist/etc"
    printf 'important-secret\n' > "$R/persist/var/lib/important/db"; chmod 600 "$R/persist/var/lib/important/db"
    printf 'root:shadow-secret:1::::::\n' > "$R/persist/etc/shadow"; chmod 600 "$R/persist/etc/shadow"
    "$B" switch "$D" --root "$R" > switch-first.out 2>&1
    # A hard link can only be made within one file system: the root's shadow copy in
    # the user's home in the root, the volume's database in their directory in the volume.
    mkdir "$H/.stash" "$V/.stash"; chown "$U:$U" "$H/.stash" "$V/.stash"
    ln "$R/persist/var/lib/important/db" "$V/.stash/db"
    ln "$R/etc/shadow" "$H/.stash/shadow"
    stat -c %i "$R/persist/var/lib/important/db" "$R/etc/shadow" > sentinels
}
snapshot() {
    out="$PWD/$1"
    (cd "$R" && find . \( -path ./home/mallory -o -path ./persist/home/mallory -o -path ./var/lib/blankslate \
        -o -path ./etc/.blankslate -o -path ./persist/var/lib/blankslate \) -prune \
        -o -printf '%p %y %U:%G %m %i\n' | sort > "$out"
     find . \( -path ./home/mallory -o -path ./persist/home/mallory -o -path ./var/lib/blankslate \
        -o -path ./etc/.blankslate -o -path ./persist/var/lib/blankslate \) -prune \
        -o -type f -exec md5sum {} + | sort >> "$out")
}
wait_for() { n=0; until "$@"; do n=$((n+1)); [ $n -lt 600 ] || { echo "waited in vain: $*"; return 1; }; sleep 0.05; done; }
"#;

/// What the user does in a loop while root's commands run: hard links to the root-only
/// sentinels, symlinks, FIFOs and files swapped in and out of every persisted path of
/// theirs, in the root and in the volume. Every step may fail (a mount point cannot
/// be renamed, root may have replaced something meanwhile): it goes on.
const ATTACK: &str = r#"
H="$1"; V="$2"; stop="$3"; i=0
while [ ! -e "$stop" ]; do
    i=$((i+1))
    # Copies: a hard link to a root-only file, in the root and in the volume.
    mv -f "$H/.stash/shadow" "$H/notes"; mv -f "$H/notes" "$H/.stash/shadow"
    mv -f "$V/.stash/db" "$V/notes"; mv -f "$V/notes" "$V/.stash/db"
    # Copies: a symlink to one, a FIFO, then a file of the user's own again.
    ln -sfn "$V/../../var/lib/important/db" "$V/notes"; rm -f "$V/notes"
    mkfifo "$V/notes"; rm -f "$V/notes"; mkfifo "$H/notes"; rm -f "$H/notes"
    echo "mallory $i" > "$H/notes"; echo "mallory $i" > "$V/notes"
    # The bind-mounted file in the volume: a hard link, a symlink, then back.
    mv -fT "$V/hist" "$V/hist.away"
    mv -f "$V/.stash/db" "$V/hist"; mv -f "$V/hist" "$V/.stash/db"
    ln -sfn /etc/shadow "$V/hist"; rm -f "$V/hist"; mv -fT "$V/hist.away" "$V/hist"
    # The mounted directory in the volume: a symlink, a FIFO, a file, then back.
    mv -T "$V/data" "$V/data.away"
    ln -sfn ../../var/lib/important "$V/data"; rm -f "$V/data"
    mkfifo "$V/data"; rm -f "$V/data"; echo x > "$V/data"; rm -f "$V/data"
    mv -T "$V/data.away" "$V/data"
    # The linked directory in the root: a directory holding a hard link, a FIFO.
    rm -f "$H/linked"; mkdir "$H/linked"
    mv -f "$H/.stash/shadow" "$H/linked/db"; mv -f "$H/linked/db" "$H/.stash/shadow"; rmdir "$H/linked"
    mkfifo "$H/linked"; rm -f "$H/linked"; ln -sfn /persist/home/mallory/linked "$H/linked"
done 2>/dev/null
echo "$i"
"#;

/// The race: while the user swaps symlinks, FIFOs and hard links in and out of their
/// persisted paths, root runs `switch`, `repair` and `persist sync` again and again,
/// and `persist sync --follow` watches throughout. Afterwards nothing outside the
/// user's paths changed owner, mode or contents, no command hung or failed, every
/// finding is about the user's paths, the user can read no secret, the volume's
/// `/var/lib/important` is still what is mounted, and the daemon still runs.
#[test]
fn a_users_race_against_switch_repair_and_sync_changes_nothing_outside_their_paths() {
    let Some(scratch) = scratch_as_root() else { return };
    std::fs::write(scratch.dir().join("attack.sh"), ATTACK).unwrap();
    let script = r#"
prepare
snapshot before
"$B" persist sync --follow --root "$R" > follow.out 2>&1 &
follower=$!
# Whatever happens, nothing started here outlives the script.
trap 'touch "$PWD/stop"; kill "$follower" 2>/dev/null || true' EXIT
as_user sh attack.sh "$H" "$V" "$PWD/stop" > rounds &
attacker=$!
for round in $(seq 40); do
    for command in "switch $D" repair "persist sync"; do
        code=0; timeout 60 "$B" $command --root "$R" >> commands.out 2>&1 || code=$?
        echo "$command $code" >> codes
    done
done
touch stop; wait "$attacker"
kill -0 "$follower" && echo alive > follower || echo dead > follower
kill "$follower" 2>/dev/null || true; wait "$follower" || true
# Put the user's paths back as they were, and let root see them settle.
snapshot after
stat -c %i "$R/var/lib/important" "$R/persist/var/lib/important" > important
as_user grep -rlsD skip -e important-secret -e shadow-secret "$H" "$V" > readable || true
find "$H" "$V" -type f -exec grep -l -e important-secret -e shadow-secret {} + 2>/dev/null \
    | xargs -r stat -c '%i %n' > holding || true
"#;
    let run = run_script(&scratch, script);
    assert!(run.status.success(), "{}{}", stdout(&run), stderr(&run));
    let rounds: u32 = scratch.read("rounds").trim().parse().unwrap();
    assert!(rounds > 0, "the attacker ran");
    // No command hung (timeout: 124) or failed (3); repair and sync may report the
    // user's entries (1).
    for line in scratch.read("codes").lines() {
        let (command, code) = line.rsplit_once(' ').unwrap();
        let allowed: &[&str] = if command.starts_with("switch") { &["0"] } else { &["0", "1"] };
        assert!(allowed.contains(&code), "{line}\n{}", scratch.read("commands.out"));
    }
    // Every finding is about the user's paths.
    let findings = scratch.read("commands.out") + &scratch.read("follow.out");
    for line in findings.lines().filter(|l| l.contains("warning:") || l.trim_start().starts_with("? ")) {
        assert!(line.contains("/home/mallory/"), "a finding about someone else's path: {line}");
    }
    assert_eq!(scratch.read("follower").trim(), "alive", "{}", scratch.read("follow.out"));
    let reported = findings.lines().filter(|l| l.contains("/home/mallory/")).count();
    eprintln!("{rounds} rounds of the user's swaps; {reported} findings about the user's paths");
    // Nothing outside the user's paths changed owner, mode, inode or contents.
    let (before, after) = (scratch.read("before"), scratch.read("after"));
    if before != after {
        let changed: Vec<&str> = after.lines().filter(|l| !before.lines().any(|b| b == *l)).collect();
        let gone: Vec<&str> = before.lines().filter(|l| !after.lines().any(|a| a == *l)).collect();
        panic!("outside the user's paths, now: {changed:#?}\nbefore: {gone:#?}");
    }
    // The user can read no secret; a file in their paths holding one is a sentinel
    // itself (a hard link root made), never a copy.
    assert_eq!(scratch.read("readable"), "", "the user can read a secret");
    let sentinels = scratch.read("sentinels");
    let sentinels: Vec<&str> = sentinels.lines().collect();
    for line in scratch.read("holding").lines() {
        let inode = line.split(' ').next().unwrap();
        assert!(sentinels.contains(&inode), "a copy of a secret in the user's paths: {line}");
    }
    let important = scratch.read("important");
    let inodes: Vec<&str> = important.lines().collect();
    assert_eq!(inodes[0], inodes[1], "/var/lib/important is the volume's");
}

/// `persist sync --follow` meets a symlink (to a root-only file) and then a FIFO at a
/// user's copy in the volume: each is that copy's finding, nothing is followed or
/// waited on, and the daemon keeps writing back the other copies.
#[test]
fn persist_sync_follow_keeps_running_through_a_users_symlink_and_fifo() {
    let Some(scratch) = scratch_as_root() else { return };
    let script = r#"
prepare
"$B" persist sync --follow --root "$R" > follow.out 2>&1 &
follower=$!
trap 'kill "$follower" 2>/dev/null || true' EXIT
findings() { [ "$(grep -cs 'notes: not written back' follow.out)" -ge "$1" ]; }
wait_for grep -qs '^keeping the copies' follow.out
as_user ln -sfn ../../var/lib/important/db "$V/notes"
as_user sh -c "echo 'after the symlink' > '$H/notes'"
wait_for findings 1
as_user sh -c "rm '$V/notes' && mkfifo '$V/notes'"
as_user sh -c "echo 'after the fifo' > '$H/notes'"
wait_for findings 2
echo 'written by root' > "$R/var/lib/app.conf"
wait_for grep -qs 'written back: /var/lib/app.conf' follow.out
kill -0 "$follower" && echo alive > follower || echo dead > follower
cat "$R/persist/var/lib/app.conf" > app.conf
kill "$follower" 2>/dev/null || true; wait "$follower" || true
cat "$R/persist/var/lib/important/db" > db
stat -c '%F %u' "$V/notes" > notes-kind
"#;
    let run = run_script(&scratch, script);
    assert!(run.status.success(), "{}{}{}", stdout(&run), stderr(&run), scratch.read("follow.out"));
    let follow = scratch.read("follow.out");
    assert_eq!(scratch.read("follower").trim(), "alive", "{follow}");
    assert_eq!(scratch.read("app.conf"), "written by root\n", "{follow}");
    let findings: Vec<&str> = follow.lines().filter(|l| l.contains("not written back")).collect();
    assert!(findings[0].contains("symlink"), "{follow}");
    assert!(findings[1].contains("FIFO"), "{follow}");
    assert_eq!(scratch.read("db"), "important-secret\n", "the symlink's target was not written");
    assert_eq!(scratch.read("notes-kind"), "fifo 48213\n");
}

/// A user's persisted paths in the volume replaced, before an activation, by a
/// symlink (the directory), a FIFO (the copy) and a hard link to a root-only file (the
/// bind-mounted file): the activation reports those three, exits 0 and brings in every
/// other path (`/var/lib/important` is mounted); the audit reports them too; nothing
/// planted is followed, opened or chowned.
#[test]
fn a_users_planted_entries_are_their_findings_and_every_other_path_comes_in() {
    let Some(scratch) = scratch_as_root() else { return };
    let script = r#"
# A mounted volume, as the audit wants one.
mount -t tmpfs volume "$R/persist"
mkdir -p "$R/persist/var/lib/important" "$V"
printf 'important-secret\n' > "$R/persist/var/lib/important/db"; chmod 600 "$R/persist/var/lib/important/db"
chown "$U:$U" "$V"
as_user ln -s ../../var/lib/important "$V/data"
as_user mkfifo "$V/notes"
ln "$R/persist/var/lib/important/db" "$V/hist"
code=0; "$B" switch "$D" --root "$R" > switch.out 2> switch.err || code=$?
echo "$code" > switch.code
stat -c %i "$R/var/lib/important" "$R/persist/var/lib/important" > important
stat -c '%U %a' "$R/persist/var/lib/important/db" > db
code=0; "$B" audit --json --root "$R" > audit.json || code=$?
echo "$code" > audit.code
"#;
    let run = run_script(&scratch, script);
    assert!(run.status.success(), "{}{}", stdout(&run), stderr(&run));
    let switched = scratch.read("switch.err");
    assert_eq!(scratch.read("switch.code"), "0\n", "{}{switched}", scratch.read("switch.out"));
    let warned: Vec<&str> = switched.lines().filter_map(|l| l.strip_prefix("warning: ")?.split(':').next()).collect();
    assert_eq!(warned, ["/home/mallory/data", "/home/mallory/hist", "/home/mallory/notes"], "{switched}");
    let important = scratch.read("important");
    let inodes: Vec<&str> = important.lines().collect();
    assert_eq!(inodes[0], inodes[1], "/var/lib/important is mounted from the volume");
    assert_eq!(scratch.read("db"), "root 600\n", "the hard-linked file was not chowned");
    assert_eq!(scratch.read("audit.code"), "2\n", "persisted paths with problems");
    let audit: serde_json::Value = serde_json::from_str(&scratch.read("audit.json")).unwrap();
    let findings: Vec<&str> = audit["findings"].as_array().unwrap().iter().filter_map(|f| f["path"].as_str()).collect();
    for path in ["/home/mallory/data", "/home/mallory/hist", "/home/mallory/notes"] {
        assert!(findings.contains(&path), "the audit does not report {path}: {audit:#}");
    }
    assert!(!findings.contains(&"/var/lib/important"), "{audit:#}");
}

/// The audit against a user who swaps, by rename, a FIFO and a file at their copy in
/// the root and in the volume (and a FIFO and a directory at an undeclared path),
/// again and again while root audits: whatever it finds between its `lstat` and its
/// open, no audit ever waits on a FIFO (each gets 20 s; one that hung was the race
/// of issue 18, 10 in 301 runs).
#[test]
fn a_fifo_swapped_in_never_blocks_the_audit() {
    let Some(scratch) = scratch_as_root() else { return };
    let attack = r#"
H="$1"; V="$2"; stop="$3"; i=0
while [ ! -e "$stop" ]; do
    i=$((i+1))
    for d in "$H" "$V"; do
        mkfifo "$d/.fifo"; mv -f "$d/.fifo" "$d/notes"
        echo "mallory $i" > "$d/.file"; mv -f "$d/.file" "$d/notes"
    done
    mkdir "$H/junk"; rmdir "$H/junk"; mkfifo "$H/junk"; rm -f "$H/junk"
done 2>/dev/null
echo "$i"
"#;
    std::fs::write(scratch.dir().join("attack.sh"), attack).unwrap();
    let script = r#"
prepare
trap 'touch "$PWD/stop"' EXIT
as_user sh attack.sh "$H" "$V" "$PWD/stop" > rounds &
attacker=$!
for round in $(seq 300); do
    code=0; timeout 20 "$B" audit --root "$R" > audit.out 2>&1 || code=$?
    echo "$code" >> codes
    [ "$code" != 124 ] || break
done
touch stop; wait "$attacker"
"#;
    let run = run_script(&scratch, script);
    assert!(run.status.success(), "{}{}", stdout(&run), stderr(&run));
    let rounds: u32 = scratch.read("rounds").trim().parse().unwrap();
    let codes = scratch.read("codes");
    assert!(rounds > 0, "the attacker ran");
    // 1 to 3: findings about the user's paths, or a directory that changed under the walk.
    for code in codes.lines() {
        assert!(["1", "2", "3"].contains(&code), "an audit exited {code}: {}", scratch.read("audit.out"));
    }
    eprintln!("{} audits against {rounds} rounds of the user's swaps", codes.lines().count());
}

/// `audit --prometheus FILE` in a directory the user can write, where they planted
/// symlinks to root's files at FILE and at the temporary name the audit used to
/// write (`FILE.tmp`): both targets keep their contents, FILE becomes the metrics
/// (a regular file), and no temporary is left.
#[test]
fn metrics_are_written_past_a_users_symlinks() {
    let Some(scratch) = scratch_as_root() else { return };
    let script = r#"
prepare
echo 'root-target' > target; echo 'root-temp-target' > temp-target
mkdir textfile; chown "$U:$U" textfile
as_user ln -s "$PWD/target" textfile/blankslate.prom
as_user ln -s "$PWD/temp-target" textfile/blankslate.prom.tmp
code=0; "$B" audit --root "$R" --prometheus textfile/blankslate.prom > audit.out 2>&1 || code=$?
echo "$code" > code
cat target temp-target > targets
stat -c '%F %a' textfile/blankslate.prom > kind
ls -A textfile > names
"#;
    let run = run_script(&scratch, script);
    assert!(run.status.success(), "{}{}", stdout(&run), stderr(&run));
    assert!(["1\n", "2\n"].contains(&scratch.read("code").as_str()), "{}", scratch.read("audit.out"));
    assert_eq!(scratch.read("targets"), "root-target\nroot-temp-target\n", "a symlink was followed");
    assert_eq!(scratch.read("kind"), "regular file 644\n");
    let metrics = std::fs::read_to_string(scratch.dir().join("textfile/blankslate.prom")).unwrap();
    assert!(metrics.contains("blankslate_audit_exit_code "), "{metrics}");
    assert_eq!(scratch.read("names"), "blankslate.prom\nblankslate.prom.tmp\n", "the user's symlink stays");
}

/// A user names files, and points their symlinked entry, with text meant to forge
/// lines of root's report (newlines) or to reorder it (U+202E, right-to-left
/// override): the human report shows every such character escaped, on the line of
/// the user's own path.
#[test]
fn a_users_names_cannot_forge_or_reorder_the_report() {
    let Some(scratch) = scratch_as_root() else { return };
    let script = r#"
prepare
as_user touch "$H/$(printf 'evil\342\200\256hs.txt')" "$H/$(printf 'two\n  persist  forged')"
as_user rm -f "$H/linked"
as_user ln -s "$(printf '/x\n  persist  forged\342\200\256')" "$H/linked"
code=0; "$B" audit --root "$R" > audit.out 2>&1 || code=$?
echo "$code" > code
"#;
    let run = run_script(&scratch, script);
    assert!(run.status.success(), "{}{}", stdout(&run), stderr(&run));
    let report = scratch.read("audit.out");
    assert_eq!(scratch.read("code"), "2\n", "{report}");
    assert!(!report.contains('\u{202e}'), "{report}");
    assert!(report.contains("/home/mallory/evil\\u{202e}hs.txt"), "{report}");
    for line in report.lines().filter(|l| l.contains("forged")) {
        assert!(line.contains("/home/mallory/"), "a line the user wrote: {line}\n{report}");
    }
    assert_eq!(report.lines().filter(|l| l.contains("forged")).count(), 2, "{report}");
}
