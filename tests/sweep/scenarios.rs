//! The commands swept: for each, the state it starts from, the command, its natural
//! recovery (the same command again, `rollback`'s intent by number, the next use of
//! the store, a reboot) and what the user asked for.

use std::ffi::OsString;
use std::fmt::Write as _;
use std::os::unix::fs::{PermissionsExt, chown, symlink};
use std::path::Path;
use std::process::Command;

use blankslate_core::fs::Dir;
use rustix::mount::MountAttrFlags;

use super::check::{Class, Data, Failure, Gen, Intent, snapshot};
use super::world::{self, BIN, HANG, Shape, World, write_file};
use crate::common;

/// One command swept.
#[derive(Debug, Clone, Copy)]
pub struct Scenario {
    pub name: &'static str,
    pub shape: Shape,
    /// The generations active and the boot default once it is through.
    pub intent: Intent,
    /// Prepares the state the command starts from; returns the data that must survive.
    pub setup: fn(&mut World) -> Vec<Data>,
    /// The command, as a program and its arguments.
    pub command: fn(&World) -> Vec<OsString>,
    /// What a person (or the next boot) does after the command failed or was killed.
    pub recover: fn(&mut World) -> Result<(), Failure>,
    /// Data a clean run leaves, which every point must leave too (adopt's volume).
    pub reference: Option<fn(&World) -> Vec<Data>>,
}

const PASSWD: &str = r"root:x:0:0::/root:/bin/sh\napp:x:2000:2000::/var/lib/app:/bin/false\n";
const GROUP: &str = r"root:x:0:\napp:x:2000:\n";

/// The declarations: `one` and `two` differ in every way a switch handles (an entry
/// that is a file in one and a directory in the other, a copy whose contents and
/// mode change, an entry each has alone, a persisted path each has alone); `big` is
/// `one` with many more entries, for `gc` to remove.
fn declaration(which: &str) -> String {
    let (motd, dirswap, sudoers, mode, only, lib) = match which {
        "two" => ("two", "dirswap/inner", "root ALL=(ALL) NOPASSWD: ALL", "0400", "only-two.conf", "/var/lib/two"),
        _ => ("one", "dirswap", "root ALL=(ALL) ALL", "0440", "only-one.conf", "/var/lib/one"),
    };
    let mut text = format!(
        r#"version = 1
[etc."passwd"]
text = "{PASSWD}"
[etc."group"]
text = "{GROUP}"
[etc."motd"]
text = "generation {motd}\n"
[etc."{dirswap}"]
text = "the dirswap of {motd}\n"
[etc."sudoers"]
text = "{sudoers}\n"
mode = "{mode}"
[etc."ssh/sshd_config"]
text = "Port 22\n"
[etc."{only}"]
text = "{motd} alone\n"
[persist."/persist"]
directories = ["/var/log", "{lib}", {{ directory = "/srv/data", user = "app", group = "app", mode = "0750" }}]
files = [
  {{ file = "/etc/machine-id", how = "copy" }},
  {{ file = "/var/lib/counter", how = "copy" }},
  {{ file = "/var/lib/seed", how = "bind" }},
]
"#
    );
    if which == "big" {
        for i in 0..24 {
            let _ = write!(text, "[etc.\"big/entry-{i}.conf\"]\ntext = \"entry {i} of many\\n\"\n");
        }
    }
    text
}

/// Writes declaration `which` as `decl/NAME.toml` (or as the file `name`); returns its path.
fn declare(world: &World, which: &str) -> String {
    world.write(&format!("decl/{which}.toml"), &declaration(which))
}

/// What the volume holds before anything is activated: each persisted path of
/// generation one with a file of known contents, and the copies' volume files.
const VOLUME_FILES: [(&str, &str); 6] = [
    ("/var/log/marker", "the log stays\n"),
    ("/var/lib/one/marker", "one's data stays\n"),
    ("/srv/data/marker", "app data stays\n"),
    ("/var/lib/seed", "seed\n"),
    ("/etc/machine-id", "0123456789abcdef0123456789abcdef\n"),
    ("/var/lib/counter", "1\n"),
];

/// Writes [`VOLUME_FILES`] into `volume`; returns them, to be found unchanged at the end.
fn fill_volume(volume: &Path) -> Vec<Data> {
    VOLUME_FILES
        .iter()
        .map(|(path, text)| {
            let at = volume.join(&path[1..]);
            write_file(&at, text);
            Data::File { path: at, text: (*text).to_owned() }
        })
        .collect()
}

/// The same files, read through the live root (for the paths the end state persists).
fn live(world: &World, paths: &[&str]) -> Vec<Data> {
    paths
        .iter()
        .map(|path| {
            let (_, text) = VOLUME_FILES.iter().find(|(p, _)| p == path).expect("a file of the volume");
            Data::File { path: world.in_root(path), text: (*text).to_owned() }
        })
        .collect()
}

const BOTH: [&str; 5] = ["/var/log/marker", "/srv/data/marker", "/var/lib/seed", "/etc/machine-id", "/var/lib/counter"];

fn with(mut data: Vec<Data>, more: Vec<Data>) -> Vec<Data> {
    data.extend(more);
    data
}

/// Generation 1 active and the boot default, generation 2 built (a build makes it
/// the boot default: `switch --boot 1` moves that back).
fn one_active_two_built(world: &mut World) -> Vec<Data> {
    let volume = fill_volume(&world.volume);
    let (one, two) = (declare(world, "one"), declare(world, "two"));
    world.ok(&["switch", &one]);
    world.ok(&["build", &two]);
    world.ok(&["switch", "--boot", "1"]);
    volume
}

/// Generation 2 active and the boot default (1 before it), with data in its own path.
fn two_active(world: &mut World) -> Vec<Data> {
    let volume = one_active_two_built(world);
    world.ok(&["switch", "2"]);
    let at = world.in_volume("/var/lib/two/marker");
    write_file(&at, "two's data stays\n");
    with(volume, vec![Data::File { path: at, text: "two's data stays\n".into() }])
}

fn blankslate(world: &World, args: &[&str]) -> Vec<OsString> {
    let mut all: Vec<OsString> = vec![BIN.into()];
    all.extend(args.iter().map(OsString::from));
    all.extend(["--root".into(), world.root.clone().into_os_string()]);
    all
}

/// Runs a step of a recovery: a hang or an error is the point's failure.
fn step(world: &World, args: &[&str]) -> Result<(), Failure> {
    recovery(&blankslate(world, args), &format!("`{}`", args.join(" ")))
}

/// Runs `program` as (a step of) a recovery.
fn recovery(program: &[OsString], what: &str) -> Result<(), Failure> {
    let output = common::output_within(Command::new(&program[0]).args(&program[1..]).env("NO_COLOR", "1"), HANG)
        .ok_or_else(|| Failure::new(Class::Stuck, format!("recovery {what} hangs")))?;
    match output.status.code() {
        Some(0) => Ok(()),
        code => Err(Failure::new(
            if code == Some(101) { Class::Panic } else { Class::Stuck },
            format!("recovery {what} exits {code:?}: {}", common::stderr(&output).trim()),
        )),
    }
}

/// A small installed system for `adopt`: accounts, host keys, a config tree, data
/// in /var/lib and a home, a program in /usr.
fn installed(root: &Path) {
    let write = |path: &str, text: &str, mode: u32, owner: (u32, u32)| {
        let at = root.join(path);
        write_file(&at, text);
        std::fs::set_permissions(&at, std::fs::Permissions::from_mode(mode)).unwrap();
        chown(&at, Some(owner.0), Some(owner.1)).unwrap();
    };
    write("etc/passwd", "root:x:0:0::/root:/bin/sh\nalice:x:1000:1000::/home/alice:/bin/sh\n", 0o644, (0, 0));
    write("etc/group", "root:x:0:\nshadow:x:42:\nalice:x:1000:\n", 0o644, (0, 0));
    write("etc/shadow", "root:!:1::::::\nalice:!:1::::::\n", 0o640, (0, 42));
    write("etc/hostname", "adopted\n", 0o644, (0, 0));
    write("etc/sudoers", "root ALL=(ALL) ALL\n", 0o440, (0, 0));
    write("etc/machine-id", "fedcba9876543210fedcba9876543210\n", 0o444, (0, 0));
    write("etc/ssh/sshd_config", "Port 22\n", 0o644, (0, 0));
    write("etc/ssh/ssh_host_ed25519_key", "PRIVATE\n", 0o600, (0, 0));
    write("etc/ssh/ssh_host_ed25519_key.pub", "PUBLIC\n", 0o644, (0, 0));
    for i in 0..6 {
        write(&format!("etc/app.d/{i}.conf"), &format!("setting {i}\n"), 0o644, (0, 0));
    }
    write("usr/lib/os-release", "ID=debian\n", 0o644, (0, 0));
    write("usr/bin/tool", "#!/bin/sh\necho tool\n", 0o755, (0, 0));
    symlink("../usr/lib/os-release", root.join("etc/os-release")).unwrap();
    write("var/log/syslog", "booted\n", 0o640, (0, 0));
    write("var/lib/dpkg/status", "Package: tool\n", 0o644, (0, 0));
    write("var/lib/db/data", &"0123456789".repeat(3000), 0o600, (0, 0));
    write("home/alice/notes", "mine\n", 0o600, (1000, 1000));
    write("root/.ssh/authorized_keys", "ssh-ed25519 AAAA admin\n", 0o600, (0, 0));
}

/// Live data for `persist add`: a small tree with a subdirectory, a symlink, a hard
/// link and a larger file, owned by `app`.
fn app_tree(dir: &Path) {
    write_file(&dir.join("state/db"), &"row\n".repeat(20_000));
    write_file(&dir.join("config"), "key = value\n");
    write_file(&dir.join("state/small"), "small\n");
    std::fs::hard_link(dir.join("config"), dir.join("config.link")).unwrap();
    symlink("state/db", dir.join("db.sym")).unwrap();
    for path in ["state/db", "config", "state/small", "state", ""] {
        chown(dir.join(path), Some(2000), Some(2000)).unwrap();
    }
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o750)).unwrap();
}

/// Whether the declaration file at `path` names `entry`.
fn declares(path: &str, entry: &str) -> bool {
    std::fs::read_to_string(path).unwrap_or_default().contains(&format!("\"{entry}\""))
}

/// The boot volume's image (made once per worker): generations one and two built
/// onto an ext4 volume, two current, the volume's files in place.
fn boot_image(world: &World) -> std::path::PathBuf {
    let image = world.cache.join("boot-volume.img");
    if image.exists() {
        return image;
    }
    let making = world.cache.join("making.img");
    let file = std::fs::File::create(&making).unwrap();
    file.set_len(48 << 20).unwrap();
    drop(file);
    let mkfs = common::output(Command::new("mkfs.ext4").args(["-q", "-F", "-L", "sweep"]).arg(&making));
    assert!(mkfs.status.success(), "mkfs.ext4: {}", common::stderr(&mkfs));
    let attach = common::output(Command::new("losetup").args(["--find", "--show"]).arg(&making));
    assert!(attach.status.success(), "losetup: {}", common::stderr(&attach));
    let device = common::stdout(&attach).trim().to_owned();
    let mount_point = world.cache.join("mnt");
    std::fs::create_dir_all(&mount_point).unwrap();
    let cache = Dir::open_root(&world.cache).unwrap();
    blankslate_core::mount::mount_new(&cache, "mnt", "ext4", &[("source", &device)], MountAttrFlags::empty())
        .expect("mount the boot volume");
    fill_volume(&mount_point);
    let root = mount_point.to_str().unwrap();
    for which in ["one", "two"] {
        let path = world.write(&format!("decl/{which}.toml"), &declaration(which));
        let output = common::blankslate_env(&["build", &path, "--root", root], &[]);
        assert!(output.status.success(), "build onto the boot volume: {}", common::stderr(&output));
    }
    world::unmount(&mount_point).unwrap();
    let _ = common::output(Command::new("losetup").args(["--detach", &device]));
    std::fs::rename(&making, &image).unwrap();
    image
}
/// Every command swept.
pub fn all() -> Vec<Scenario> {
    [switches(), store_and_persistence(), repair_confirm_adopt_boot()].concat()
}

fn both(active: Gen, default: Gen) -> Intent {
    Intent { active, default }
}

/// `switch` both ways, with `--test` and `--boot`, and `rollback`.
fn switches() -> Vec<Scenario> {
    vec![
        Scenario {
            name: "switch 1->2",
            shape: Shape::Live,
            intent: both(Gen::Number(2), Gen::Number(2)),
            setup: |w| {
                let volume = one_active_two_built(w);
                with(volume, live(w, &BOTH))
            },
            command: |w| blankslate(w, &["switch", "2"]),
            recover: |w| step(w, &["switch", "2"]),
            reference: None,
        },
        Scenario {
            name: "switch 2->1",
            shape: Shape::Live,
            intent: both(Gen::Number(1), Gen::Number(1)),
            setup: |w| {
                let volume = two_active(w);
                with(volume, live(w, &["/var/lib/one/marker", "/var/log/marker", "/srv/data/marker", "/var/lib/seed"]))
            },
            command: |w| blankslate(w, &["switch", "1"]),
            recover: |w| step(w, &["switch", "1"]),
            reference: None,
        },
        Scenario {
            name: "switch --test 2",
            shape: Shape::Live,
            intent: both(Gen::Number(2), Gen::Number(1)),
            setup: |w| {
                let volume = one_active_two_built(w);
                with(volume, live(w, &BOTH))
            },
            command: |w| blankslate(w, &["switch", "--test", "2"]),
            recover: |w| step(w, &["switch", "--test", "2"]),
            reference: None,
        },
        Scenario {
            name: "switch --boot 2",
            shape: Shape::Live,
            intent: both(Gen::Number(1), Gen::Number(2)),
            setup: |w| {
                let volume = one_active_two_built(w);
                with(volume, live(w, &["/var/lib/one/marker", "/var/log/marker", "/var/lib/seed"]))
            },
            command: |w| blankslate(w, &["switch", "--boot", "2"]),
            recover: |w| step(w, &["switch", "--boot", "2"]),
            reference: None,
        },
        Scenario {
            name: "rollback",
            shape: Shape::Live,
            intent: both(Gen::Number(1), Gen::Number(1)),
            setup: |w| {
                let volume = two_active(w);
                with(volume, live(w, &["/var/lib/one/marker", "/var/log/marker", "/srv/data/marker"]))
            },
            command: |w| blankslate(w, &["rollback"]),
            // The rollback's intent, by number: a second `rollback` would go one further
            // back once the first got through.
            recover: |w| step(w, &["switch", "1"]),
            reference: None,
        },
    ]
}

/// `generations gc`, `persist add` and `persist remove`.
fn store_and_persistence() -> Vec<Scenario> {
    vec![
        Scenario {
            name: "generations gc",
            shape: Shape::Live,
            intent: both(Gen::Newest, Gen::Newest),
            setup: |w| {
                let volume = fill_volume(&w.volume);
                let (big, one) = (declare(w, "big"), declare(w, "one"));
                w.ok(&["switch", &big]);
                w.ok(&["switch", &one]);
                w.ok(&["generations", "delete", "1"]);
                with(volume, live(w, &BOTH))
            },
            command: |w| blankslate(w, &["generations", "gc"]),
            // The next use of the store: building what gc removed again.
            recover: |w| step(w, &["switch", w.path("decl/big.toml").to_str().unwrap()]),
            reference: None,
        },
        Scenario {
            name: "persist add",
            shape: Shape::Live,
            intent: both(Gen::Newest, Gen::Newest),
            setup: |w| {
                let volume = fill_volume(&w.volume);
                let declaration = declare(w, "one");
                w.ok(&["switch", &declaration]);
                let live_data = w.in_root("/var/lib/app");
                app_tree(&live_data);
                let tree = snapshot(&live_data, &[]);
                let moved = vec![
                    Data::Tree { path: live_data, skip: Vec::new(), snapshot: tree.clone() },
                    Data::Tree { path: w.in_volume("/var/lib/app"), skip: Vec::new(), snapshot: tree },
                ];
                with(with(volume, moved), live(w, &BOTH))
            },
            command: |w| {
                let declaration = w.path("decl/one.toml");
                blankslate(w, &["persist", "add", "/var/lib/app", "--declaration", declaration.to_str().unwrap()])
            },
            recover: |w| {
                let declaration = w.path("decl/one.toml").to_str().unwrap().to_owned();
                step(w, &["persist", "recover", "--declaration", &declaration])?;
                if !declares(&declaration, "/var/lib/app") {
                    step(w, &["persist", "add", "/var/lib/app", "--declaration", &declaration])?;
                }
                Ok(())
            },
            reference: None,
        },
        Scenario {
            name: "persist remove",
            shape: Shape::Live,
            intent: both(Gen::Newest, Gen::Newest),
            setup: |w| {
                let volume = fill_volume(&w.volume);
                let declaration = declare(w, "two");
                w.ok(&["switch", &declaration]);
                let at = w.in_volume("/var/lib/two/marker");
                write_file(&at, "two's data stays\n");
                let kept = vec![Data::File { path: at, text: "two's data stays\n".into() }];
                with(with(volume, kept), live(w, &BOTH))
            },
            command: |w| {
                let declaration = w.path("decl/two.toml");
                blankslate(w, &["persist", "remove", "/var/lib/two", "--declaration", declaration.to_str().unwrap()])
            },
            recover: |w| {
                let declaration = w.path("decl/two.toml").to_str().unwrap().to_owned();
                step(w, &["persist", "recover", "--declaration", &declaration])?;
                if declares(&declaration, "/var/lib/two") {
                    step(w, &["persist", "remove", "/var/lib/two", "--declaration", &declaration])?;
                }
                Ok(())
            },
            reference: None,
        },
    ]
}

/// `persist sync`, `repair`, `confirm`, `adopt` and boot.
fn repair_confirm_adopt_boot() -> Vec<Scenario> {
    vec![
        Scenario {
            name: "persist sync",
            shape: Shape::Live,
            intent: both(Gen::Number(1), Gen::Number(1)),
            setup: |w| {
                let volume = fill_volume(&w.volume);
                let one = declare(w, "one");
                w.ok(&["switch", &one]);
                let changed = [("/etc/machine-id", "a new machine id\n"), ("/var/lib/counter", "2\n")];
                let mut data: Vec<Data> =
                    volume.into_iter().filter(|d| !matches!(d, Data::File { path, .. } if changed.iter().any(|(c, _)| path.ends_with(&c[1..])))).collect();
                for (path, text) in changed {
                    std::fs::write(w.in_root(path), text).unwrap();
                    data.push(Data::File { path: w.in_volume(path), text: text.into() });
                    data.push(Data::File { path: w.in_root(path), text: text.into() });
                }
                with(data, live(w, &["/var/log/marker", "/srv/data/marker", "/var/lib/seed"]))
            },
            command: |w| blankslate(w, &["persist", "sync"]),
            recover: |w| step(w, &["persist", "sync"]),
            reference: None,
        },
        Scenario {
            name: "repair",
            shape: Shape::Live,
            intent: both(Gen::Number(1), Gen::Number(1)),
            setup: |w| {
                let volume = fill_volume(&w.volume);
                let one = declare(w, "one");
                w.ok(&["switch", &one]);
                // What people and programs do to a live root.
                let etc = w.in_root("/etc");
                std::fs::remove_file(etc.join("motd")).unwrap();
                std::fs::write(etc.join("motd"), "edited by hand\n").unwrap();
                std::fs::remove_file(etc.join("group")).unwrap();
                std::fs::set_permissions(etc.join("sudoers"), std::fs::Permissions::from_mode(0o644)).unwrap();
                world::unmount(&w.in_root("/var/log")).unwrap();
                with(volume, live(w, &BOTH))
            },
            command: |w| blankslate(w, &["repair"]),
            recover: |w| step(w, &["repair"]),
            reference: None,
        },
        Scenario {
            name: "confirm",
            shape: Shape::Live,
            intent: both(Gen::Number(2), Gen::Number(2)),
            setup: |w| {
                let volume = one_active_two_built(w);
                w.ok(&["switch", "--confirm-within", "1h", "2"]);
                with(volume, live(w, &BOTH))
            },
            command: |w| blankslate(w, &["confirm"]),
            recover: |w| step(w, &["confirm"]),
            reference: None,
        },
        Scenario {
            name: "adopt",
            shape: Shape::Adopt,
            intent: both(Gen::None, Gen::Number(1)),
            setup: |w| {
                let installed_root = w.path("installed");
                installed(&installed_root);
                vec![Data::Tree { snapshot: snapshot(&installed_root, &[]), skip: Vec::new(), path: installed_root }]
            },
            command: |w| adopt(w),
            recover: |w| recovery(&adopt(w), "`adopt`"),
            // The volume a clean adopt fills (its state apart: generations carry dates).
            reference: Some(|w| {
                let skip = vec!["var/lib/blankslate"];
                vec![Data::Tree { path: w.volume.clone(), snapshot: snapshot(&w.volume, &skip), skip }]
            }),
        },
        Scenario {
            name: "boot",
            shape: Shape::Boot,
            intent: both(Gen::Number(2), Gen::Number(2)),
            setup: |w| {
                let image = boot_image(w);
                w.prepare_initrd(&image);
                // The volume is reached through the booted root, once it is up.
                let volume = VOLUME_FILES
                    .iter()
                    .map(|(path, text)| Data::File { path: w.in_volume(path), text: (*text).into() });
                with(volume.collect(), live(w, &BOTH))
            },
            command: World::boot_command,
            recover: |w| {
                w.reboot();
                recovery(&w.boot_command(), "(the next boot)")
            },
            reference: None,
        },
    ]
}

fn adopt(world: &World) -> Vec<OsString> {
    vec![
        BIN.into(),
        "adopt".into(),
        "--from".into(),
        world.path("installed").into_os_string(),
        "--to".into(),
        world.volume.clone().into_os_string(),
    ]
}
