//! Secrets stay root's, attacked by an unprivileged local user (a throwaway uid through
//! `setpriv`): the content of an /etc entry that others may not read is in no file
//! that user can read, not in the store, not through `/etc/static/NAME`, not in the
//! generation's `declaration.json`, not in the state; a public entry stays readable.
//! And a `source` that a symlink leads out of the declaration's directory (a checkout
//! others can write: `files/sudoers -> /etc/shadow`) is refused by `check`.

use std::fmt::Write as _;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output};

mod common;
use blankslate_test_support::{root_or_skip, shell_in_namespace};
use common::{blankslate_env, output, stderr, stdout};

/// A uid and gid no account has: the attacker.
const ATTACKER: u32 = 64_123;

/// Strings that appear only in secrets.
const SECRETS: [&str; 5] = ["WG-PRIVATE-KEY", "SHADOW-HASH", "API-TOKEN", "SUDO-SECRET", "KNOWN-HASH"];

fn declaration(key: &str) -> String {
    format!(
        r#"version = 1
[etc."hosts"]
source = "files/hosts"
[etc."sudoers"]
source = "files/sudoers"
mode = "0440"
[etc."wireguard/wg0.conf"]
text = "[Interface]\nPrivateKey = {key}\n"
mode = "0600"
[etc."shadow-copy"]
text = "root:SHADOW-HASH:1::::::\n"
mode = "0640"
[etc."keys"]
directory = true
mode = "0700"
[etc."keys/api"]
text = "API-TOKEN\n"
[etc."shadow"]
text = "root:KNOWN-HASH:1::::::\n"
"#
    )
}

fn run(args: &[&str]) -> Output {
    blankslate_env(args, &[])
}

fn ok(args: &[&str]) -> String {
    let output = run(args);
    assert!(output.status.success(), "{args:?}: {}{}", stdout(&output), stderr(&output));
    stdout(&output)
}

/// Runs `script` (sh) in a private mount namespace, after checking it is one, with
/// `$1` the scratch directory.
fn in_namespace(scratch: &Path, script: &str) -> Output {
    output(shell_in_namespace(script).arg("sh").arg(scratch))
}

#[test]
fn an_unprivileged_user_reads_no_secret_anywhere_blankslate_keeps_it() {
    if !root_or_skip("needs root (copies owned by root, a mount namespace, setpriv)") {
        return;
    }
    let scratch = tempfile::tempdir().unwrap();
    let dir = scratch.path();
    // Open to others all the way down, so that only blankslate's modes stand between
    // the attacker and the files (the public entry proves the way is open).
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::create_dir_all(dir.join("decl/files")).unwrap();
    std::fs::create_dir_all(dir.join("root")).unwrap();
    std::fs::write(dir.join("decl/files/hosts"), "127.0.0.1 localhost PUBLIC-HOSTS\n").unwrap();
    std::fs::write(dir.join("decl/files/sudoers"), "root ALL=(ALL) ALL # SUDO-SECRET\n").unwrap();
    let decl = dir.join("decl/system.toml");
    std::fs::write(&decl, declaration("WG-PRIVATE-KEY")).unwrap();
    let (decl, root) = (decl.to_str().unwrap(), dir.join("root"));
    let root_arg = root.to_str().unwrap();
    ok(&["switch", decl, "--root", root_arg]);
    // A second generation, so that a diff of the two has a secret to show.
    let second = dir.join("decl/second.toml");
    std::fs::write(&second, declaration("WG-PRIVATE-KEY-2")).unwrap();
    ok(&["build", second.to_str().unwrap(), "--root", root_arg]);

    let patch = stdout(&run(&["generations", "diff", "1", "2", "--patch", "--root", root_arg]));
    assert!(patch.contains("wireguard/wg0.conf") && !patch.contains("WG-PRIVATE-KEY"), "{patch}");
    assert!(patch.contains("(a secret: its contents are not shown)"), "{patch}");

    let etc_object = std::fs::read_link(root.join("etc/static")).unwrap();
    let etc_object = etc_object.parent().unwrap().file_name().unwrap().to_str().unwrap().to_owned();
    let store = format!("{root_arg}/var/lib/blankslate/store");
    let generation = std::fs::read_dir(&store)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .find(|n| n.ends_with("-generation"))
        .unwrap();
    // /etc/static links to the store by its absolute path: in the namespace, the
    // root's state is mounted where that path leads.
    let reads = [
        ("public store file", format!("{store}/{etc_object}/etc/hosts"), true),
        ("public through /etc/static", format!("{root_arg}/etc/static/hosts"), true),
        ("secret store file", format!("{store}/{etc_object}/etc/wireguard/wg0.conf"), false),
        ("secret copy's store file", format!("{store}/{etc_object}/etc/sudoers"), false),
        ("below a closed directory", format!("{store}/{etc_object}/etc/keys/api"), false),
        ("known secret file", format!("{store}/{etc_object}/etc/shadow"), false),
        ("manifest of a secret /etc", format!("{store}/{etc_object}/manifest.json"), false),
        ("secret through /etc/static", format!("{root_arg}/etc/static/wireguard/wg0.conf"), false),
        ("sudoers through /etc/static", format!("{root_arg}/etc/static/sudoers"), false),
        ("the installed copy", format!("{root_arg}/etc/wireguard/wg0.conf"), false),
        ("declaration.json", format!("{store}/{generation}/declaration.json"), false),
    ];
    let mut script = format!(
        "set -e\nmount -t tmpfs none /var/lib\nmkdir /var/lib/blankslate\n\
         mount --bind '{root_arg}/var/lib/blankslate' /var/lib/blankslate\nset +e\n"
    );
    for (_, path, _) in &reads {
        let _ = writeln!(
            script,
            "if setpriv --reuid={ATTACKER} --regid={ATTACKER} --clear-groups cat '{path}' >/dev/null 2>&1; \
             then echo 'read {path}'; else echo 'denied {path}'; fi"
        );
    }
    // Everything below the root the attacker can read, searched for the secrets, and
    // for the public entry (which the search must find, or it searched nothing).
    let patterns = SECRETS.iter().fold(String::new(), |mut all, s| {
        let _ = write!(all, " -e '{s}'");
        all
    });
    let search = format!("setpriv --reuid={ATTACKER} --regid={ATTACKER} --clear-groups grep -rl");
    let _ = write!(
        script,
        "{search}{patterns} '{root_arg}' /var/lib/blankslate 2>/dev/null | sed 's/^/leak /'\n\
         {search} -e PUBLIC-HOSTS '{root_arg}' 2>/dev/null | sed 's/^/public /'\nexit 0\n"
    );
    let output = in_namespace(dir, &script);
    assert!(output.status.success(), "{}{}", stdout(&output), stderr(&output));
    let lines = stdout(&output);
    for (what, path, readable) in &reads {
        let expected = if *readable { format!("read {path}") } else { format!("denied {path}") };
        assert!(lines.lines().any(|l| l == expected), "{what}: expected `{expected}` in\n{lines}");
    }
    assert!(lines.lines().any(|l| l.starts_with("public ") && l.ends_with("/etc/hosts")), "{lines}");
    let leaks: Vec<&str> = lines.lines().filter(|l| l.starts_with("leak ")).collect();
    assert!(leaks.is_empty(), "files the attacker reads a secret in: {leaks:#?}");
}

/// `files/sudoers -> /etc/shadow` in a checkout others can write: `check` refuses it
/// with its file, line and column, and `build` builds nothing.
#[test]
fn a_source_linked_out_of_the_declarations_directory_is_refused() {
    let scratch = tempfile::tempdir().unwrap();
    std::fs::create_dir(scratch.path().join("files")).unwrap();
    std::os::unix::fs::symlink("/etc/shadow", scratch.path().join("files/sudoers")).unwrap();
    let decl = scratch.path().join("system.toml");
    std::fs::write(&decl, "version = 1\n[etc.\"sudoers\"]\nsource = \"files/sudoers\"\nmode = \"0440\"\n").unwrap();
    let decl = decl.to_str().unwrap();
    let output = run(&["check", decl]);
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    let expected = format!(
        "error[etc-source]: source `files/sudoers` leads out of the declaration's directory through a symlink\n  \
         --> {decl}:3:10"
    );
    assert!(stderr(&output).contains(&expected), "{}", stderr(&output));
    let root = scratch.path().join("root");
    std::fs::create_dir(&root).unwrap();
    let output = run(&["build", decl, "--root", root.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    assert!(!root.join("var/lib/blankslate").exists(), "nothing was built");
}

/// `check` of special files returns at once with an error, never blocking on a FIFO
/// or reading a device without end (the declaration file, or a source).
#[test]
fn check_refuses_special_files_without_blocking() {
    let scratch = tempfile::tempdir().unwrap();
    let fifo = scratch.path().join("fifo");
    assert!(Command::new("mkfifo").arg(&fifo).status().unwrap().success());
    for file in ["/dev/zero", fifo.to_str().unwrap()] {
        let output = run(&["check", file]);
        assert_eq!(output.status.code(), Some(3), "{file}: {}", stderr(&output));
        assert!(stderr(&output).contains("not a regular file"), "{file}: {}", stderr(&output));
    }
    let decl = scratch.path().join("system.toml");
    let text = "version = 1\n[etc.\"a\"]\nsource = \"fifo\"\n[etc.\"b\"]\nsource = \"/dev/null\"\n\
                [etc.\"c\"]\ntext = \"c\"\n[etc.\"c/d\"]\ntext = \"d\"\n";
    std::fs::write(&decl, text).unwrap();
    let output = run(&["check", decl.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(1));
    let errors = stderr(&output);
    for rule in ["etc-source]: source `fifo` is a FIFO", "etc-source]: source `/dev/null` is in /dev", "nested-in-file"]
    {
        assert!(errors.contains(rule), "{rule}: {errors}");
    }
}
