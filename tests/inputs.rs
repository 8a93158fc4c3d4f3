//! What a person points blankslate at: a declaration, or a JSON file to import, is
//! read as a regular file, never waiting on a FIFO or reading a device without end;
//! and a user's home is never a system path, whether a declaration or a user's own
//! Home Manager JSON says so.

use std::ffi::OsStr;
use std::path::Path;
use std::process::{Command, Output};

use blankslate_sys::fs::Dir;
use blankslate_sys::fs::tree;

mod common;
use common::{output, stderr, stdout};

const BIN: &str = env!("CARGO_BIN_EXE_blankslate");

/// Runs the binary with at most 1 GiB of address space, so that one that reads a
/// device without end fails instead of taking the machine's memory; its standard
/// input is `stdin` (else nothing).
fn bounded(args: &[&OsStr], stdin: &str) -> Output {
    let script = format!("ulimit -v 1048576 && exec \"$0\" \"$@\" < {stdin}");
    let mut command = Command::new("sh");
    output(command.arg("-c").arg(script).arg(BIN).args(args).env("NO_COLOR", "1"))
}

#[test]
fn a_fifo_a_device_a_directory_or_a_huge_file_is_refused_at_once_by_every_reader() {
    let scratch = tempfile::tempdir().unwrap();
    let fifo = scratch.path().join("declaration.toml");
    assert!(output(Command::new("mkfifo").arg(&fifo)).status.success());
    let huge = scratch.path().join("huge.toml");
    std::fs::File::create(&huge).unwrap().set_len((16 << 20) + 1).unwrap();
    let root = scratch.path().join("root");
    std::fs::create_dir(&root).unwrap();
    let cases: [(&Path, &str); 4] = [
        (&fifo, "it is a FIFO, not a regular file"),
        (Path::new("/dev/zero"), "it is a character device, not a regular file"),
        (scratch.path(), "it is a directory, not a regular file"),
        (&huge, "it holds more than 16 MiB"),
    ];
    for (file, why) in cases {
        let file = file.as_os_str();
        let commands: [&[&OsStr]; 6] = [
            &["check".as_ref(), file],
            &["build".as_ref(), file, "--root".as_ref(), root.as_os_str()],
            &["switch".as_ref(), file, "--root".as_ref(), root.as_os_str(), "--dry-run".as_ref()],
            &["import".as_ref(), "impermanence".as_ref(), file],
            &["import".as_ref(), "home-manager".as_ref(), file, "--user".as_ref(), "alice".as_ref()],
            &["persist".as_ref(), "list".as_ref(), "--declaration".as_ref(), file, "--root".as_ref(), root.as_os_str()],
        ];
        for args in commands {
            let ran = bounded(args, "/dev/null");
            assert_eq!(ran.status.code(), Some(3), "{args:?}: {}", stderr(&ran));
            assert!(stderr(&ran).contains(why), "{args:?}: {}", stderr(&ran));
            assert!(stderr(&ran).contains(&*file.to_string_lossy()), "the error names the file: {}", stderr(&ran));
        }
    }
    assert!(std::fs::read_dir(&root).unwrap().next().is_none(), "nothing was built");
    // Standard input is read with the same bound.
    let ran = bounded(&["import".as_ref(), "impermanence".as_ref(), "-".as_ref()], "/dev/zero");
    assert_eq!(ran.status.code(), Some(3), "{}", stderr(&ran));
    assert!(stderr(&ran).contains("<standard input>: it holds more than 16 MiB"), "{}", stderr(&ran));
}

/// `home = "/etc"` as `import home-manager` would have written it from a user's own
/// JSON before homes were checked: the user would own `/etc` and the volume's copy of it.
const HOME_AT_ETC: &str = r#"version = 1

[persist."/persist".users.mallory]
home = "/etc"
directories = ["ssh"]
files = [{ file = "shadow", how = "copy" }]
"#;

#[test]
fn a_home_at_etc_from_a_users_json_is_refused_by_import_check_and_switch() {
    let scratch = tempfile::tempdir().unwrap();
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("core/decl/tests/fixtures/import/home-manager.json");
    let json = scratch.path().join("home.json");
    std::fs::write(&json, std::fs::read_to_string(fixture).unwrap().replace("\"/home/alice\"", "\"/etc\"")).unwrap();
    let written = scratch.path().join("imported.toml");
    let import = common::blankslate_env(
        &["import", "home-manager", json.to_str().unwrap(), "-o", written.to_str().unwrap()],
        &[],
    );
    assert_eq!(import.status.code(), Some(1), "{}", stderr(&import));
    assert!(
        stderr(&import).contains("home-manager.users.alice.home.persistence: `/etc` cannot be the home of `alice`"),
        "the error says where in the JSON: {}",
        stderr(&import)
    );
    assert!(!written.exists(), "nothing is written");

    let bad = scratch.path().join("bad.toml");
    std::fs::write(&bad, HOME_AT_ETC).unwrap();
    let check = common::blankslate_env(&["check", bad.to_str().unwrap()], &[]);
    assert_eq!(check.status.code(), Some(1));
    let shown = format!("--> {}:4:8", bad.display());
    assert!(stderr(&check).contains("error[home]") && stderr(&check).contains(&shown), "{}", stderr(&check));
    assert!(stdout(&check).contains("1 error"), "{}", stdout(&check));

    // A root on generation 1; switching to the bad declaration changes nothing at all.
    let root = scratch.path().join("root");
    std::fs::create_dir(&root).unwrap();
    let good = scratch.path().join("good.toml");
    std::fs::write(&good, "version = 1\n[etc.\"motd\"]\ntext = \"hello\\n\"\n").unwrap();
    // In a private mount namespace: were the home taken, the switch would mount there.
    let switch = |declaration: &Path| {
        let mut command = Command::new("unshare");
        command.args(["--mount", "--propagation", "private", BIN, "switch"]).arg(declaration);
        output(command.arg("--root").arg(&root).env("NO_COLOR", "1"))
    };
    assert!(switch(&good).status.success());
    let snapshot = || tree::walk(&Dir::open_root(scratch.path()).unwrap(), OsStr::new("root"), true).unwrap();
    let before = snapshot();
    let refused = switch(&bad);
    assert_eq!(refused.status.code(), Some(1), "{}", stderr(&refused));
    assert!(stderr(&refused).contains("`/etc` cannot be the home of `mallory`"), "{}", stderr(&refused));
    assert_eq!(snapshot(), before, "the root, its /etc and its state are as they were");
}
