//! Boot scenarios: each builds a persistent disk, boots the static binary as `/init`
//! under QEMU, and checks the guest's markers, QEMU's isa-debug-exit status and the
//! disk afterwards. They are `#[ignore]`d so that `cargo test --workspace` (`./test`)
//! does not boot VMs; run them with
//! `cargo test -p blankslate-vm-tests -- --ignored --nocapture` (as root; `--nocapture`
//! shows the timings).

use std::path::{Path, PathBuf};
use std::time::Duration;

use blankslate_vm_tests::{self as vm, Boot, Result, Volume, check, report};

const LIMIT: Duration = Duration::from_secs(90);

/// The declaration every scenario boots: a tmpfs root, /etc from the store (with a
/// user for the owner checks), busybox and blankslate from the volume read-only, one
/// private directory, and the declarations the guest switches to. `motd` tells
/// generations apart.
fn declaration(motd: &str) -> String {
    declaration_with(motd, "", "")
}

/// The second generation of the switch scenarios: one more /etc entry and one more
/// persisted directory.
fn declaration_two() -> String {
    declaration_with(
        "generation-two",
        "\n  { directory = \"/var/lib/added\", mode = \"0750\" },",
        "\n[etc.\"added.conf\"]\ntext = \"added\\n\"\n",
    )
}

fn declaration_with(motd: &str, extra_directories: &str, extra_etc: &str) -> String {
    format!(
        r#"version = 1

[root]
size = "64M"
mode = "0755"

[persist."/persist"]
directories = [
  {{ directory = "/bin", options = ["ro"] }},
  {{ directory = "/var/lib/data", user = "tester", group = "tester", mode = "0700" }},
  {{ directory = "/var/lib/declarations", options = ["ro"] }},{extra_directories}
]

[etc."hosts"]
text = "127.0.0.1 localhost vmtest\n"

[etc."motd"]
text = "{motd}\n"

[etc."passwd"]
text = "root:x:0:0:root:/root:/bin/sh\ntester:x:1000:1000::/home/tester:/bin/sh\n"

[etc."group"]
text = "root:x:0:\ntester:x:1000:\n"
{extra_etc}"#
    )
}

/// The guest's checks of a first boot (scenario a), shared by the others.
const FIRST_BOOT_CHECKS: &str = r#"
check root-is-tmpfs grep -q '^[^ ]* / tmpfs ' /proc/mounts
check etc-hosts-is-a-link [ "$(readlink /etc/hosts)" = /etc/static/hosts ]
check etc-hosts-content grep -q vmtest /etc/hosts
check etc-static-in-store sh -c 'readlink /etc/static | grep -q "^/var/lib/blankslate/store/.*-etc/etc$"'
check data-mounted grep -q ' /var/lib/data ' /proc/mounts
check data-owner-mode [ "$(stat -c '%u:%g %a' /var/lib/data)" = "1000:1000 700" ]
check bin-read-only sh -c '! touch /bin/probe 2>/dev/null'
check volume-mounted grep -q ' /persist ext4 ' /proc/mounts
check store-read-only sh -c '! touch /var/lib/blankslate/probe 2>/dev/null'
check booted-recorded sh -c 'readlink /run/blankslate/booted | grep -q "^/var/lib/blankslate/store/.*-generation$"'
check boot-json grep -q '"generation":' /run/blankslate/boot.json
check proc-sys-dev-moved sh -c '[ -e /proc/self ] && [ -d /sys/kernel ] && [ -c /dev/null ]'
check init-is-pid-1 [ "$$" = 1 ]
check audit-clean audit_exits 0
"#;

struct Scenario {
    work: PathBuf,
    disk: PathBuf,
}

/// A disk holding busybox, `script` as the init and generation(s) of the declaration.
fn prepare(name: &str, script: &str, generations: &[&str]) -> Result<Scenario> {
    prepare_with(name, script, generations, |_| Ok(()))
}

/// [`prepare`], with `change` applied to the volume's directory before the disk is
/// made. The second generation's declaration is always at
/// `/var/lib/declarations/two.toml` for the guest to switch to.
fn prepare_with(
    name: &str,
    script: &str,
    generations: &[&str],
    change: impl FnOnce(&Path) -> Result<()>,
) -> Result<Scenario> {
    let work = vm::work_dir(name)?;
    let volume = Volume::new(&work, &vm::guest_script(script))?;
    for (n, motd) in generations.iter().enumerate() {
        volume.build(&declaration(motd), &format!("generation-{}", n + 1))?;
    }
    let declarations = volume.dir.join("var/lib/declarations");
    std::fs::create_dir_all(&declarations).map_err(|e| e.to_string())?;
    std::fs::write(declarations.join("two.toml"), declaration_two()).map_err(|e| e.to_string())?;
    change(&volume.dir)?;
    let disk = work.join("disk.img");
    volume.make_disk(&disk, "bsvol")?;
    Ok(Scenario { work, disk })
}

const APPEND: &str = "blankslate.persist=LABEL=bsvol blankslate.init=/bin/vmtest-init";

mod basics;
mod failures;
mod generations;
mod services;
