//! The commands swept: for each, the state it starts from, the command, its natural
//! recovery (the same command again, `rollback`'s intent by number, the next use of
//! the store, a reboot) and what the user asked for.

use std::ffi::OsString;
use std::fmt::Write as _;
use std::os::unix::fs::{PermissionsExt, chown, symlink};
use std::path::Path;
use std::process::Command;

use blankslate_sys::fs::Dir;
use rustix::mount::MountAttrFlags;

use super::check::{Class, Data, Failure, Gen, Intent};
use super::world::{self, BIN, HANG, Shape, World, write_file};
use crate::common;

/// What a scenario runs: blankslate with these arguments (and `--root ROOT`), or a
/// command line made from the world.
#[derive(Debug, Clone, Copy)]
pub enum Run {
    Blankslate(&'static [&'static str]),
    Line(fn(&World) -> Vec<OsString>),
}

/// A recovery: what it did wrong, if anything.
pub type Recovery = fn(&mut World) -> Result<(), Failure>;

/// One command swept.
#[derive(Debug, Clone, Copy)]
pub struct Scenario {
    pub name: &'static str,
    pub shape: Shape,
    /// The generations active and the boot default once it is through.
    pub intent: Intent,
    /// Prepares the state the command starts from; returns the data that must survive.
    pub setup: fn(&mut World) -> Vec<Data>,
    pub command: Run,
    /// What a person (or the next boot) does after the command failed or was killed:
    /// `None` runs the command again.
    pub recover: Option<Recovery>,
    /// Data a clean run leaves, which every point must leave too (adopt's volume).
    pub reference: Option<fn(&World) -> Vec<Data>>,
}

impl Scenario {
    /// The command, as a program and its arguments.
    pub fn program(&self, world: &World) -> Vec<OsString> {
        match self.command {
            Run::Blankslate(args) => blankslate(world, args),
            Run::Line(line) => line(world),
        }
    }

    /// The natural recovery.
    pub fn recover(&self, world: &mut World) -> Result<(), Failure> {
        match self.recover {
            Some(recover) => recover(world),
            None => recovery(&self.program(world), &format!("`{}` again", self.name)),
        }
    }
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
    if which == "net" {
        text.push_str("[net]\nkeep = 2\n");
    }
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
            Data::kept(at, text)
        })
        .collect()
}

/// The same files, read through the live root (for the paths the end state persists).
fn live(world: &World, paths: &[&str]) -> Vec<Data> {
    paths
        .iter()
        .map(|path| {
            let (_, text) = VOLUME_FILES.iter().find(|(p, _)| p == path).expect("a file of the volume");
            Data::seen(world.in_root(path), text)
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
    with(volume, vec![Data::kept(at, "two's data stays\n")])
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
        // One time for every world, so that their copies compare equal.
        let installed_at = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_700_000_000);
        std::fs::File::options().write(true).open(&at).unwrap().set_modified(installed_at).unwrap();
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
    for i in 0..2 {
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
    blankslate_sys::mount::mount_new(&cache, "mnt", "ext4", &[("source", &device)], MountAttrFlags::empty())
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
    let (one, two) = (Gen::Number(1), Gen::Number(2));
    vec![
        on_live_root("switch 1->2", both(two, two), one_to_two, &["switch", "2"]),
        on_live_root("switch 2->1", both(one, one), two_to_one, &["switch", "1"]),
        on_live_root("switch --test 2", both(two, one), one_to_two, &["switch", "--test", "2"]),
        on_live_root("switch --boot 2", both(one, two), boot_two, &["switch", "--boot", "2"]),
        Scenario {
            // The rollback's intent, by number: a second `rollback` would go one further
            // back once the first got through.
            recover: Some(|w| step(w, &["switch", "1"])),
            ..on_live_root("rollback", both(one, one), two_to_one, &["rollback"])
        },
        Scenario {
            // The next use of the store: building again what gc removed.
            recover: Some(|w| step(w, &["switch", w.path("decl/big.toml").to_str().unwrap()])),
            ..on_live_root("generations gc", both(Gen::Newest, Gen::Newest), collectable, &["generations", "gc"])
        },
        Scenario {
            command: Run::Line(|w| persist(w, "add")),
            recover: Some(|w| persist_again(w, "add")),
            ..on_live_root("persist add", both(Gen::Newest, Gen::Newest), live_app_data, &[])
        },
        Scenario {
            command: Run::Line(|w| persist(w, "remove")),
            recover: Some(|w| persist_again(w, "remove")),
            ..on_live_root("persist remove", both(Gen::Newest, Gen::Newest), two_persisted, &[])
        },
        on_live_root("persist sync", both(one, one), copies_changed, &["persist", "sync"]),
        on_live_root("repair", both(one, one), drifted, &["repair"]),
        on_live_root("confirm", both(two, two), on_trial, &["confirm"]),
        Scenario {
            command: Run::Line(package_run),
            recover: Some(|w| step(w, &["etc", "relink"])),
            ..on_live_root("etc unlink+relink", both(one, one), one_active, &[])
        },
        on_live_root("net save", both(one, one), forgotten, &["net", "save"]),
        Scenario {
            // Restored once is done: a second restore refuses to replace it.
            recover: Some(|w| {
                if w.in_root("/srv/forgot").exists() { Ok(()) } else { step(w, &["net", "restore", "/srv/forgot"]) }
            }),
            ..on_live_root("net restore", both(one, one), forgotten_and_erased, &["net", "restore", "/srv/forgot"])
        },
        Scenario {
            shape: Shape::Adopt,
            command: Run::Line(adopt),
            // The volume a clean adopt fills: its state apart (generations carry dates),
            // and its record; the declaration it writes compared by its text alone.
            reference: Some(|w| {
                let declaration = w.volume.join("etc/blankslate/system.toml");
                let text = std::fs::read_to_string(&declaration).expect("adopt writes a declaration");
                let skip = vec!["var/lib/blankslate", ".blankslate", "etc/blankslate/system.toml"];
                vec![Data::tree(w.volume.clone(), skip, false), Data::kept(declaration, &text)]
            }),
            ..on_live_root("adopt", both(Gen::None, one), installed_system, &[])
        },
        Scenario {
            shape: Shape::Boot,
            command: Run::Line(World::boot_command),
            recover: Some(|w| {
                w.reboot();
                recovery(&w.boot_command(), "(the next boot)")
            }),
            ..on_live_root("boot", both(two, two), initrd, &[])
        },
    ]
}

fn both(active: Gen, default: Gen) -> Intent {
    Intent { active, default }
}

/// A command on a live root whose natural recovery is to run it again.
fn on_live_root(
    name: &'static str,
    intent: Intent,
    setup: fn(&mut World) -> Vec<Data>,
    args: &'static [&'static str],
) -> Scenario {
    Scenario { name, shape: Shape::Live, intent, setup, command: Run::Blankslate(args), recover: None, reference: None }
}

fn one_to_two(w: &mut World) -> Vec<Data> {
    let volume = one_active_two_built(w);
    with(volume, live(w, &BOTH))
}

fn two_to_one(w: &mut World) -> Vec<Data> {
    let volume = two_active(w);
    with(volume, live(w, &["/var/lib/one/marker", "/var/log/marker", "/srv/data/marker", "/var/lib/seed"]))
}

fn boot_two(w: &mut World) -> Vec<Data> {
    let volume = one_active_two_built(w);
    with(volume, live(w, &["/var/lib/one/marker", "/var/log/marker", "/var/lib/seed"]))
}

/// Generation 1 (with many /etc entries) deleted, 2 active: gc has objects to remove.
fn collectable(w: &mut World) -> Vec<Data> {
    let volume = fill_volume(&w.volume);
    let (big, one) = (declare(w, "big"), declare(w, "one"));
    w.ok(&["switch", &big]);
    w.ok(&["switch", &one]);
    w.ok(&["generations", "delete", "1"]);
    with(volume, live(w, &BOTH))
}

/// Generation one active, and live data at /var/lib/app that `persist add` moves:
/// it must end in the volume and at the live path as it was.
fn live_app_data(w: &mut World) -> Vec<Data> {
    let volume = fill_volume(&w.volume);
    let declaration = declare(w, "one");
    w.ok(&["switch", &declaration]);
    let live_data = w.in_root("/var/lib/app");
    app_tree(&live_data);
    let tree = Data::tree(live_data, Vec::new(), true);
    let moved = vec![tree.moved_to(w.in_volume("/var/lib/app"), false), tree];
    with(with(volume, moved), live(w, &BOTH))
}

/// Generation two active, with data in /var/lib/two (which `persist remove` keeps).
fn two_persisted(w: &mut World) -> Vec<Data> {
    let volume = fill_volume(&w.volume);
    let declaration = declare(w, "two");
    w.ok(&["switch", &declaration]);
    let at = w.in_volume("/var/lib/two/marker");
    write_file(&at, "two's data stays\n");
    let kept = vec![Data::kept(at, "two's data stays\n")];
    with(with(volume, kept), live(w, &BOTH))
}

/// What `persist add` and `persist remove` work on: the path and the declaration.
fn persisted_path(verb: &str) -> (&'static str, &'static str) {
    if verb == "add" { ("/var/lib/app", "decl/one.toml") } else { ("/var/lib/two", "decl/two.toml") }
}

fn persist(w: &World, verb: &str) -> Vec<OsString> {
    let (path, declaration) = persisted_path(verb);
    blankslate(w, &["persist", verb, path, "--declaration", w.path(declaration).to_str().unwrap()])
}

/// `persist recover`, then the command again if the declaration does not say it
/// happened.
fn persist_again(w: &mut World, verb: &str) -> Result<(), Failure> {
    let (path, declaration) = persisted_path(verb);
    let declaration = w.path(declaration).to_str().unwrap().to_owned();
    step(w, &["persist", "recover", "--declaration", &declaration])?;
    if declares(&declaration, path) != (verb == "add") {
        step(w, &["persist", verb, path, "--declaration", &declaration])?;
    }
    Ok(())
}

/// Generation one active, its copies changed in the root (for `persist sync`).
fn copies_changed(w: &mut World) -> Vec<Data> {
    let changed = [("/etc/machine-id", "a new machine id\n"), ("/var/lib/counter", "2\n")];
    let volume = fill_volume(&w.volume);
    let one = declare(w, "one");
    w.ok(&["switch", &one]);
    let mut data: Vec<Data> =
        volume.into_iter().filter(|d| !changed.iter().any(|(c, _)| d.path.ends_with(&c[1..]))).collect();
    for (path, text) in changed {
        std::fs::write(w.in_root(path), text).unwrap();
        data.push(Data::kept(w.in_volume(path), text));
        data.push(Data::seen(w.in_root(path), text));
    }
    with(data, live(w, &["/var/log/marker", "/srv/data/marker", "/var/lib/seed"]))
}

/// Generation one active, then what people and programs do to a live root.
fn drifted(w: &mut World) -> Vec<Data> {
    let volume = fill_volume(&w.volume);
    let one = declare(w, "one");
    w.ok(&["switch", &one]);
    let etc = w.in_root("/etc");
    std::fs::remove_file(etc.join("motd")).unwrap();
    std::fs::write(etc.join("motd"), "edited by hand\n").unwrap();
    std::fs::remove_file(etc.join("group")).unwrap();
    std::fs::set_permissions(etc.join("sudoers"), std::fs::Permissions::from_mode(0o644)).unwrap();
    world::unmount(&w.in_root("/var/log")).unwrap();
    with(volume, live(w, &BOTH))
}

/// Generation one active, its /etc as activated.
fn one_active(w: &mut World) -> Vec<Data> {
    let volume = fill_volume(&w.volume);
    let one = declare(w, "one");
    w.ok(&["switch", &one]);
    with(volume, live(w, &BOTH))
}

/// A package manager's run that changes nothing in /etc, between apt's hooks: `etc
/// unlink`, then `etc relink`, which must leave /etc exactly as activated.
fn package_run(w: &World) -> Vec<OsString> {
    let line = r#""$0" etc unlink --root "$1" && "$0" etc relink --root "$1""#;
    vec!["sh".into(), "-c".into(), line.into(), BIN.into(), w.root.clone().into_os_string()]
}

/// Generation one active with a net, and what nothing declares in /srv: a tree
/// `net save` keeps, which must stay in the root as it is.
fn forgotten(w: &mut World) -> Vec<Data> {
    let volume = fill_volume(&w.volume);
    let declaration = declare(w, "net");
    w.ok(&["switch", &declaration]);
    app_tree(&w.in_root("/srv/forgot"));
    let srv = Data::tree(w.in_root("/srv"), Vec::new(), true);
    with(with(volume, vec![srv]), live(w, &BOTH))
}

/// [`forgotten`], kept by `net save` and then erased (as by a reboot): `net restore`
/// must put /srv back as it was, with nothing else in it.
fn forgotten_and_erased(w: &mut World) -> Vec<Data> {
    let data = forgotten(w);
    w.ok(&["net", "save"]);
    std::fs::remove_dir_all(w.in_root("/srv/forgot")).unwrap();
    data
}

/// Generation two active on trial (`--confirm-within`), its watcher running.
fn on_trial(w: &mut World) -> Vec<Data> {
    let volume = one_active_two_built(w);
    w.ok(&["switch", "--confirm-within", "1h", "2"]);
    with(volume, live(w, &BOTH))
}

/// An installed system, which adopt must leave as it is.
fn installed_system(w: &mut World) -> Vec<Data> {
    let installed_root = w.path("installed");
    installed(&installed_root);
    vec![Data::tree(installed_root, Vec::new(), false)]
}

/// An initrd and its volume (generation two the boot default), before the boot.
fn initrd(w: &mut World) -> Vec<Data> {
    let image = boot_image(w);
    w.prepare_initrd(&image);
    // The volume is reached through the booted root, once it is up.
    let volume = VOLUME_FILES.iter().map(|(path, text)| Data::kept(w.in_volume(path), text));
    with(volume.collect(), live(w, &BOTH))
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
