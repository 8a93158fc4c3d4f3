//! What fleets run: the metrics as Prometheus's own tool reads them, the systemd units
//! as systemd reads them (and the service's command under the unit's privileges),
//! the alert rules, and the rollout gate of `packaging/deploy`. Everything that mounts
//! runs inside `unshare --mount --propagation private`, never in the host's namespace.
//!
//! `promtool` and `systemd-analyze` are looked up on PATH; without them these tests
//! are skipped with a note, unless `BLANKSLATE_REQUIRE_TOOLS` is set (`.ci/run` sets it
//! after installing them), which makes a missing tool a failure.

mod common;
use blankslate_test_support::{root_or_skip, shell_in_namespace};
use common::tool;

use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_blankslate");

const V1: &str = r#"version = 1

[persist."/persist"]
directories = ["/var/log"]
files = ["/etc/machine-id"]

[etc."passwd"]
text = "root:x:0:0::/root:/bin/sh\n"

[etc."group"]
text = "root:x:0:\n"

[etc."hosts"]
text = "127.0.0.1 localhost\n"
"#;

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn both(output: &Output) -> String {
    format!("{}{}", text(&output.stdout), text(&output.stderr))
}

/// Runs `script` (sh) in a private mount namespace, in `dir`, after checking it is one.
fn in_namespace(dir: &Path, script: &str) -> Output {
    shell_in_namespace(script).current_dir(dir).env("NO_COLOR", "1").output().expect("run unshare")
}

/// A scratch directory with the declaration `v1.toml` and a root `root/` whose volume
/// directory `root/persist` is there to mount on.
fn scratch() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("root/persist")).unwrap();
    std::fs::write(dir.path().join("v1.toml"), V1).unwrap();
    dir
}

/// The metric names a Prometheus text file declares (its `# TYPE` lines).
fn metric_names(metrics: &str) -> Vec<String> {
    let mut names: Vec<String> =
        metrics.lines().filter_map(|l| l.strip_prefix("# TYPE ")?.split(' ').next().map(str::to_owned)).collect();
    names.sort();
    names
}

#[test]
fn the_metrics_pass_promtool_and_match_the_readme() {
    if !root_or_skip("needs root") {
        return;
    }
    let Some(promtool) = tool("promtool") else { return };
    let dir = scratch();
    // Every class of finding the metrics count, a boot record, and a generation the
    // next boot takes that is not the booted one.
    let script = format!(
        "set -e; mount -t tmpfs volume root/persist; '{BIN}' switch v1.toml --root root >/dev/null
         mkdir -p root/run/blankslate
         ln -s \"$(readlink root/var/lib/blankslate/profiles/system-1-link)\" root/run/blankslate/booted
         sed 's/localhost/localhost box/' v1.toml > v2.toml; '{BIN}' build v2.toml --root root >/dev/null
         mkdir -p root/srv/new && echo x > root/srv/new/file && echo y > root/etc/stray
         '{BIN}' audit --root root --prometheus metrics.prom >/dev/null || true"
    );
    let output = in_namespace(dir.path(), &script);
    assert!(output.status.success(), "{}", both(&output));
    let metrics = std::fs::read_to_string(dir.path().join("metrics.prom")).unwrap();
    let checked = Command::new(&promtool)
        .args(["check", "metrics"])
        .stdin(std::fs::File::open(dir.path().join("metrics.prom")).unwrap())
        .output()
        .unwrap();
    assert!(checked.status.success() && both(&checked).trim().is_empty(), "{}\n{metrics}", both(&checked));
    // What a query needs: the generation and its declaration's hash in one series,
    // the three generations, when the audit ran and how long it took.
    let object = std::fs::read_link(dir.path().join("root/var/lib/blankslate/profiles/system-1-link")).unwrap();
    let hash = object.file_name().unwrap().to_str().unwrap().split('-').next().unwrap().to_owned();
    let info = format!(
        "blankslate_info{{generation=\"1\",declaration=\"{hash}\",version=\"{}\"}} 1\n",
        env!("CARGO_PKG_VERSION")
    );
    assert!(metrics.contains(&info), "{metrics}");
    for line in [
        "blankslate_generation_booted 1\n",
        "blankslate_generation_active 1\n",
        "blankslate_generation_default 2\n",
        "blankslate_audit_findings{class=\"undeclared\"} 1\n",
        "blankslate_audit_findings{class=\"etc-stray\"} 1\n",
        "blankslate_audit_exit_code 1\n",
    ] {
        assert!(metrics.contains(line), "{line}in\n{metrics}");
    }
    let stamp = metrics.lines().find_map(|l| l.strip_prefix("blankslate_audit_timestamp_seconds ")).unwrap();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs_f64();
    assert!((now - stamp.parse::<f64>().unwrap()).abs() < 600.0, "{stamp}");
    assert!(metrics.contains("blankslate_audit_duration_seconds "), "{metrics}");
    // The README's table of metrics is the stable interface: the same names, all.
    let readme = std::fs::read_to_string(repo("README.md")).unwrap();
    let table = readme.split("<!-- metrics -->").nth(1).expect("README marks the metrics table");
    let mut documented: Vec<String> = table
        .lines()
        .filter_map(|l| l.strip_prefix("| `")?.split(['`', '{']).next().map(str::to_owned))
        .filter(|name| name.starts_with("blankslate_"))
        .collect();
    documented.sort();
    assert_eq!(documented, metric_names(&metrics));
}

#[test]
fn the_alert_rules_pass_promtool_and_their_tests() {
    let Some(promtool) = tool("promtool") else { return };
    let rules = repo("packaging/prometheus");
    for args in [["check", "rules", "blankslate-alerts.yml"], ["test", "rules", "blankslate-alerts.test.yml"]] {
        let output = Command::new(&promtool).args(args).current_dir(&rules).output().unwrap();
        assert!(output.status.success(), "promtool {}: {}", args.join(" "), both(&output));
    }
}

/// The unit files' `Key=value` lines for `key`.
fn unit_values(unit: &str, key: &str) -> Vec<String> {
    let prefix = format!("{key}=");
    unit.lines().filter_map(|l| l.strip_prefix(&prefix)).map(str::to_owned).collect()
}

#[test]
fn the_units_pass_systemd_analyze_verify() {
    let Some(analyze) = tool("systemd-analyze") else { return };
    // A root with the distribution's own units (systemd.special and the rest) as
    // `verify --root` resolves them, ours, and a binary where ExecStart= says.
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let system = ["/usr/lib/systemd/system", "/lib/systemd/system"].into_iter().find(|p| Path::new(p).is_dir());
    let system = system.expect("systemd's unit directory");
    std::fs::create_dir_all(root.join("usr/lib/systemd")).unwrap();
    let copied = Command::new("cp").arg("-a").arg(system).arg(root.join("usr/lib/systemd/")).status().unwrap();
    assert!(copied.success());
    std::fs::create_dir_all(root.join("usr/bin")).unwrap();
    std::fs::copy(BIN, root.join("usr/bin/blankslate")).unwrap();
    let units = root.join("etc/systemd/system");
    std::fs::create_dir_all(&units).unwrap();
    // Every unit blankslate ships.
    let mut shipped: Vec<String> = std::fs::read_dir(repo("packaging/systemd"))
        .unwrap()
        .map(|entry| entry.unwrap().file_name().into_string().unwrap())
        .collect();
    shipped.sort();
    assert!(shipped.len() >= 5, "the units: {shipped:?}");
    for unit in &shipped {
        std::fs::copy(repo("packaging/systemd").join(unit), units.join(unit)).unwrap();
    }
    let output = Command::new(analyze)
        .arg(format!("--root={}", root.display()))
        // The man pages are checked below, without depending on man-db here.
        .args(["verify", "--man=no"])
        .args(&shipped)
        .output()
        .unwrap();
    // An unknown key is only a warning to systemd: here it is a failure.
    assert!(output.status.success() && output.stderr.is_empty(), "{}", both(&output));

    // Every service is hardened, never with RestrictSUIDSGID= (under which openat2,
    // blankslate's way to every path below a root, fails with ENOSYS); the audit
    // cannot hang for good nor grow without bound.
    for unit in shipped.iter().filter(|u| u.ends_with(".service")) {
        let text = std::fs::read_to_string(units.join(unit)).unwrap();
        assert_eq!(unit_values(&text, "NoNewPrivileges"), ["yes"], "{unit}");
        assert_eq!(unit_values(&text, "CapabilityBoundingSet").len(), 1, "{unit}");
        assert!(unit_values(&text, "RestrictSUIDSGID").is_empty(), "{unit}");
    }
    let audit = std::fs::read_to_string(units.join("blankslate-audit.service")).unwrap();
    assert_eq!(unit_values(&audit, "TimeoutStartSec"), ["10min"]);
    assert_eq!(unit_values(&audit, "MemoryMax").len(), 1);

    // Every `Documentation=man:PAGE(1)` is a page `blankslate man --dir` writes.
    let pages = dir.path().join("man");
    std::fs::create_dir(&pages).unwrap();
    let generated = Command::new(BIN).arg("man").arg("--dir").arg(&pages).output().unwrap();
    assert!(generated.status.success(), "{}", both(&generated));
    for unit in &shipped {
        let text = std::fs::read_to_string(units.join(unit)).unwrap();
        for documentation in unit_values(&text, "Documentation") {
            for page in documentation.split_whitespace().filter_map(|d| d.strip_prefix("man:")) {
                let file = page.replace("(1)", ".1");
                assert!(
                    pages.join(&file).is_file(),
                    "{unit}: Documentation={page}, but `blankslate man` writes no {file}"
                );
            }
        }
    }
}

/// The `setpriv` command line that gives a command exactly the unit's capabilities
/// (as root, what is left in the bounding set is what an exec gets) and no new
/// privileges, as the unit does.
fn setpriv(unit: &str) -> String {
    let [capabilities] = unit_values(unit, "CapabilityBoundingSet").try_into().expect("one CapabilityBoundingSet=");
    assert_eq!(unit_values(unit, "NoNewPrivileges"), ["yes"]);
    let bounding: Vec<String> =
        capabilities.split(' ').map(|c| format!("+{}", c.strip_prefix("CAP_").unwrap().to_lowercase())).collect();
    format!("setpriv --bounding-set=-all,{} --no-new-privs", bounding.join(","))
}

/// `persist sync`, as `blankslate-sync.service` stops it, with the unit's
/// capabilities: it takes the state lock through a private writable clone of the
/// read-only state mount (as boot leaves it) and writes a copy back to the volume.
#[test]
fn the_sync_command_works_with_its_units_privileges() {
    if !root_or_skip("needs root") {
        return;
    }
    let unit = std::fs::read_to_string(repo("packaging/systemd/blankslate-sync.service")).unwrap();
    let [stop] = unit_values(&unit, "ExecStop").try_into().expect("one ExecStop=");
    let dir = scratch();
    let copy = r#"files = ["/etc/machine-id", { file = "/srv/app.conf", how = "copy" }]"#;
    std::fs::write(dir.path().join("v1.toml"), V1.replace(r#"files = ["/etc/machine-id"]"#, copy)).unwrap();
    let script = format!(
        "set -e
         mount -t tmpfs volume root/persist; mkdir root/persist/srv; echo first > root/persist/srv/app.conf
         '{BIN}' switch v1.toml --root root >/dev/null
         mount --bind root/var/lib/blankslate root/var/lib/blankslate
         mount -o remount,bind,ro root/var/lib/blankslate
         echo changed > root/srv/app.conf
         {setpriv} {command} --root root
         cat root/persist/srv/app.conf > written",
        setpriv = setpriv(&unit),
        command = stop.replacen("/usr/bin/blankslate", BIN, 1),
    );
    let output = in_namespace(dir.path(), &script);
    assert!(output.status.success(), "{}", both(&output));
    assert_eq!(std::fs::read_to_string(dir.path().join("written")).unwrap(), "changed\n", "{}", both(&output));
}

/// The net, as a shutdown keeps it and a person brings it back: `net save` as
/// `blankslate-net.service` stops it, with the unit's capabilities, on a root whose
/// state mount is read-only (as boot leaves it); then the next boot's root has lost
/// the undeclared paths, `net list` names them, `net restore` brings one back as it
/// was (owner and mode), refuses to replace it, and `--declare` persists it.
#[test]
fn the_net_keeps_what_a_shutdown_erases_and_gives_it_back() {
    if !root_or_skip("needs root") {
        return;
    }
    let unit = std::fs::read_to_string(repo("packaging/systemd/blankslate-net.service")).unwrap();
    let [stop] = unit_values(&unit, "ExecStop").try_into().expect("one ExecStop=");
    let dir = scratch();
    std::fs::write(dir.path().join("v1.toml"), format!("{V1}\n[net]\nkeep = 2\nmax_size = \"1M\"\n")).unwrap();
    let script = format!(
        "set -e
         mount -t tmpfs volume root/persist
         '{BIN}' switch v1.toml --root root >/dev/null
         mount --bind root/var/lib/blankslate root/var/lib/blankslate
         mount -o remount,bind,ro root/var/lib/blankslate
         mkdir -p root/srv/notes && echo keep me > root/srv/notes/a && chown -R 1234:5678 root/srv/notes
         chmod 0600 root/srv/notes/a && echo stray > root/etc/stray.conf && echo mine > root/srv/notes/b
         head -c 2000000 /dev/zero > root/srv/big
         {setpriv} {command} --root root > saved
         rm -r root/srv/notes root/etc/stray.conf root/srv/big
         '{BIN}' net list --root root --json > list.json
         '{BIN}' net restore /srv/notes --root root > restored
         stat -c '%u:%g %a' root/srv/notes/a > owner
         code=0; '{BIN}' net restore /srv/notes --root root 2> again || code=$?; echo $code > again.code
         rm -r root/srv/notes
         '{BIN}' net restore /srv/notes/b --to /srv/b --declare --declaration v1.toml --root root > declared
         grep -c '/srv/b' v1.toml > declared.count
         cat root/persist/srv/b > persisted",
        setpriv = setpriv(&unit),
        command = stop.replacen("/usr/bin/blankslate", BIN, 1),
    );
    let output = in_namespace(dir.path(), &script);
    let read = |name: &str| std::fs::read_to_string(dir.path().join(name)).unwrap_or_default();
    assert!(output.status.success(), "{}\nsaved: {}", both(&output), read("saved"));
    assert!(read("saved").contains("kept 2 of 3 erased paths"), "{}", read("saved"));
    let list: serde_json::Value = serde_json::from_str(&read("list.json")).unwrap();
    let entries = list["catches"][0]["entries"].as_array().unwrap().clone();
    let paths: Vec<(&str, bool)> =
        entries.iter().map(|e| (e["path"].as_str().unwrap(), e.get("left_out").is_some())).collect();
    assert_eq!(paths, [("/etc/stray.conf", false), ("/srv/big", true), ("/srv/notes", false)], "{list:#}");
    assert!(read("restored").starts_with("restored /srv/notes from "), "{}", read("restored"));
    assert_eq!(read("owner"), "1234:5678 600\n");
    assert_eq!(read("again.code"), "2\n", "{}", read("again"));
    assert!(read("again").contains("restoring never replaces"), "{}", read("again"));
    assert_eq!(read("declared.count"), "1\n", "{}", read("declared"));
    assert_eq!(read("persisted"), "mine\n");
}

#[test]
fn the_service_command_works_with_the_units_privileges() {
    if !root_or_skip("needs root") {
        return;
    }
    let unit = std::fs::read_to_string(repo("packaging/systemd/blankslate-audit.service")).unwrap();
    let [exec] = unit_values(&unit, "ExecStart").try_into().expect("one ExecStart=");
    let setpriv = setpriv(&unit);
    let success: Vec<i32> = unit_values(&unit, "SuccessExitStatus")
        .iter()
        .flat_map(|v| v.split(' ').map(|c| c.parse().unwrap()).collect::<Vec<_>>())
        .collect();
    let environment = unit_values(&unit, "Environment");
    let textfile = environment.iter().find_map(|e| e.strip_prefix("TEXTFILE_DIR=")).expect("TEXTFILE_DIR");
    let dir = scratch();
    // As a drop-in would, the textfile directory moves into the scratch root.
    let textfile_dir = dir.path().join("root").join(textfile.trim_start_matches('/'));
    std::fs::create_dir_all(&textfile_dir).unwrap();
    let socket = dir.path().join("journal.socket");
    let journal = UnixDatagram::bind(&socket).unwrap();
    let command = exec.replacen("/usr/bin/blankslate", BIN, 1);
    let script = format!(
        "set -e; mount -t tmpfs volume root/persist; '{BIN}' switch v1.toml --root root >/dev/null
         mkdir -p root/srv/new && echo x > root/srv/new/file
         export TEXTFILE_DIR='{textfile_dir}'
         {setpriv} {command} --root root --journal-socket '{socket}'",
        textfile_dir = textfile_dir.display(),
        socket = socket.display(),
    );
    let output = in_namespace(dir.path(), &script);
    let code = output.status.code().unwrap();
    assert!(code == 0 || success.contains(&code), "exit {code}: {}", both(&output));
    assert_eq!(code, 1, "the undeclared /srv/new: {}", both(&output));
    let metrics = std::fs::read_to_string(textfile_dir.join("blankslate.prom")).unwrap();
    assert!(metrics.contains("blankslate_audit_exit_code 1\n"), "{metrics}");
    journal.set_nonblocking(true).unwrap();
    let mut buffer = vec![0; 1 << 16];
    let received: Vec<String> =
        std::iter::from_fn(|| journal.recv(&mut buffer).ok().map(|n| text(&buffer[..n]))).collect();
    assert_eq!(received.len(), 2, "the finding and the summary: {received:?}");
    assert!(received[0].contains("BLANKSLATE_PATH=/srv/new\n"), "{}", received[0]);
}

#[test]
fn a_rollout_stops_at_the_first_host_that_fails_its_audit() {
    if !root_or_skip("needs root") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path();
    std::fs::write(path.join("v1.toml"), V1).unwrap();
    // v2 also persists /srv/data.
    std::fs::write(path.join("v2.toml"), V1.replace("[\"/var/log\"]", "[\"/var/log\", \"/srv/data\"]")).unwrap();
    // A stand-in for ssh: runs the command here, against the host's scratch root.
    std::fs::write(path.join("fake-ssh"), "#!/bin/sh\nhost=$1; shift\nexec sh -c \"$* --root '$ROOTS/$host'\"\n")
        .unwrap();
    std::fs::set_permissions(path.join("fake-ssh"), std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let bin_dir = Path::new(BIN).parent().unwrap();
    let rollout = repo("packaging/deploy/blankslate-rollout");
    let script = format!(
        "set -e; exec 2>&1; mkdir -p roots
         for host in a b c; do
             mkdir -p roots/$host/persist && mount -t tmpfs volume roots/$host/persist
             blankslate switch v1.toml --root roots/$host >/dev/null
         done
         # On b, /srv/data holds data in the root and in the volume: v2 cannot mount it.
         mkdir -p roots/b/srv/data roots/b/persist/srv/data
         echo live > roots/b/srv/data/x && echo kept > roots/b/persist/srv/data/y
         export ROOTS=\"$PWD/roots\" SSH=\"$PWD/fake-ssh\" DEPLOY=\"blankslate switch $PWD/v2.toml\"
         echo '== run 1'; '{rollout}' a b c && exit 9 || true
         # c drifted: the rollout does not even start there.
         rm roots/c/etc/hosts && echo edited > roots/c/etc/hosts
         echo '== run 2'; '{rollout}' c && exit 9 || true",
        rollout = rollout.display(),
    );
    let mut command = Command::new("unshare");
    command.args(["--mount", "--propagation", "private", "sh", "-c", &script]).current_dir(path);
    let path_var = format!("{}:{}", bin_dir.display(), std::env::var("PATH").unwrap_or_default());
    let output = command.env("PATH", path_var).env("NO_COLOR", "1").stdin(Stdio::null()).output().unwrap();
    let log = both(&output);
    assert!(output.status.success(), "{log}");
    let (first, second) = log.split_once("== run 2").unwrap();
    assert!(first.contains("b: the change failed its audit; rolling back"), "{log}");
    assert!(first.contains("stopped at b: the change failed its audit, and was rolled back; not touched: c"), "{log}");
    assert!(second.contains("stopped at c: it was not fit for the change; not touched: none"), "{log}");
    assert!(second.contains("the audit before the change exited 2"), "{log}");
    // a took v2; b is back on v1; c never saw v2 (no second generation there).
    let generations = |host: &str| -> Vec<(u64, bool)> {
        let root = path.join("roots").join(host);
        let output = Command::new(BIN).args(["generations", "list", "--json", "--root"]).arg(&root).output().unwrap();
        let list: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
        list.as_array()
            .unwrap()
            .iter()
            .map(|g| (g["generation"].as_u64().unwrap(), g["current"].as_bool().unwrap()))
            .collect()
    };
    assert_eq!(generations("a"), [(1, false), (2, true)]);
    assert_eq!(generations("b"), [(1, true), (2, false)]);
    assert_eq!(generations("c"), [(1, true)]);
}

/// What would turn the rollout against itself is refused before any host is touched
/// (exit 2): a host name that ssh would take for an option (`-oProxyCommand=…` runs a
/// command here), and a `MAX_EXIT` that is not a number (every `-gt` test with it
/// fails, so every host would pass its audit).
#[test]
fn a_rollout_refuses_option_hosts_and_a_max_exit_that_is_not_a_number() {
    let dir = tempfile::tempdir().unwrap();
    // A stand-in for ssh that only records that it ran.
    let ssh = dir.path().join("fake-ssh");
    std::fs::write(&ssh, "#!/bin/sh\necho \"$*\" >> \"$(dirname \"$0\")/ran\"\n").unwrap();
    std::fs::set_permissions(&ssh, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let rollout = |hosts: &[&str], max_exit: &str| {
        let mut command = Command::new(repo("packaging/deploy/blankslate-rollout"));
        command.args(hosts).env("SSH", &ssh).env("MAX_EXIT", max_exit).stdin(Stdio::null());
        command.output().unwrap()
    };
    let cases: [(&[&str], &str, &str); 6] = [
        (&["a", "-oProxyCommand=touch pwned"], "1", "'-oProxyCommand=touch pwned' is not a host name"),
        (&["-l", "root"], "1", "'-l' is not a host name"),
        (&["a", ""], "1", "'' is not a host name"),
        (&["a"], "two", "MAX_EXIT must be a number from 0 to 255, not 'two'"),
        (&["a"], "1; true", "MAX_EXIT must be a number from 0 to 255, not '1; true'"),
        (&["a"], "256", "MAX_EXIT must be a number from 0 to 255, not '256'"),
    ];
    for (hosts, max_exit, said) in cases {
        let output = rollout(hosts, max_exit);
        assert_eq!(output.status.code(), Some(2), "{hosts:?} MAX_EXIT={max_exit}: {}", both(&output));
        assert!(text(&output.stderr).contains(said), "{hosts:?} MAX_EXIT={max_exit}: {}", both(&output));
        assert!(!dir.path().join("ran").exists(), "{hosts:?} MAX_EXIT={max_exit}: a host was touched");
    }
    // A number is taken: the stand-in runs (its audit exits 0, and so does the change).
    let output = rollout(&["a"], "0");
    assert!(output.status.success(), "{}", both(&output));
    assert!(std::fs::read_to_string(dir.path().join("ran")).unwrap().starts_with("a blankslate audit"));
}

/// The apt hook's `DPkg::Post-Invoke` command that contains `containing`, as apt reads
/// it (`apt-config`): [`apt_hook`] of it.
fn apt_hook_command(containing: &str) -> Option<(tempfile::TempDir, String)> {
    apt_hook("DPkg::Post-Invoke", containing)
}

/// The command of the apt hook's list `list` (`DPkg::Pre-Invoke`, …) that contains
/// `containing`, as apt reads it (`apt-config`), made to run in a scratch directory:
/// a stub `blankslate` (for the test to write) stands in for `/usr/bin/blankslate`,
/// and an existing `etc.blankslate` for `/etc/.blankslate`. `None` without apt-config.
fn apt_hook(list: &str, containing: &str) -> Option<(tempfile::TempDir, String)> {
    let apt_config = tool("apt-config")?;
    let hook = repo("packaging/apt/99blankslate");
    let dump = Command::new(&apt_config).arg("-c").arg(&hook).arg("dump").output().unwrap();
    assert!(dump.status.success(), "{}", both(&dump));
    let dump = text(&dump.stdout);
    let prefix = format!("{list}:: \"");
    let command = dump
        .lines()
        .filter_map(|l| l.strip_prefix(prefix.as_str())?.strip_suffix("\";"))
        .find(|c| c.contains(containing))
        .unwrap_or_else(|| panic!("no {list} with {containing:?} in\n{dump}"));
    let dir = tempfile::tempdir().unwrap();
    let activated = dir.path().join("etc.blankslate");
    std::fs::create_dir(&activated).unwrap();
    let script = command
        .replace("/usr/bin/blankslate", dir.path().join("blankslate").to_str().unwrap())
        .replace("/etc/.blankslate", activated.to_str().unwrap());
    Some((dir, script))
}

/// The apt hook as apt reads it (`apt-config`), and its command: silent where
/// blankslate is not installed, the audit's report where it is, and never a failure
/// that would fail apt (the audit exits 1 to 3 on findings). A stub stands in for
/// the binary: the real one would audit the host.
#[test]
fn the_apt_hook_parses_and_never_fails_apt() {
    let Some((dir, script)) = apt_hook_command("blankslate audit") else { return };
    let stub = dir.path().join("blankslate");
    for exit in [0, 1, 2, 3] {
        std::fs::write(&stub, format!("#!/bin/sh\necho \"audit $*\"\nexit {exit}\n")).unwrap();
        std::fs::set_permissions(&stub, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
        let output = Command::new("sh").args(["-c", &script]).output().unwrap();
        assert!(output.status.success(), "exit {exit}: {}", both(&output));
        let out = text(&output.stdout);
        assert!(out.starts_with("audit audit --no-sizes --limit 20\n"), "{out}");
        assert_eq!(out.contains("the next boot loses"), exit > 0, "{out}");
    }
    std::fs::remove_file(&stub).unwrap();
    let output = Command::new("sh").args(["-c", &script]).output().unwrap();
    assert!(output.status.success() && output.stdout.is_empty(), "{}", both(&output));
}

/// The apt hook's keeping by itself: off unless `Blankslate::Keep-Packaged` is true
/// in apt's configuration, then `etc keep --packaged` with the declaration
/// `Blankslate::Declaration` names (by default the system's); never a failure of apt.
#[test]
fn the_apt_hook_keeps_packages_etc_files_only_when_told_to() {
    let Some((dir, script)) = apt_hook_command("etc keep --packaged") else { return };
    let stub = dir.path().join("blankslate");
    let settings = dir.path().join("apt.conf");
    let run = |settings_text: &str, exit: i32| {
        std::fs::write(&settings, settings_text).unwrap();
        std::fs::write(&stub, format!("#!/bin/sh\necho \"ran $*\"\nexit {exit}\n")).unwrap();
        std::fs::set_permissions(&stub, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
        let output = Command::new("sh").args(["-c", &script]).env("APT_CONFIG", &settings).output().unwrap();
        assert!(output.status.success(), "{settings_text}, exit {exit}: {}", both(&output));
        assert!(output.stderr.is_empty(), "{settings_text}: {}", both(&output));
        text(&output.stdout)
    };
    assert_eq!(run("", 0), "");
    assert_eq!(run("Blankslate::Keep-Packaged \"false\";\n", 0), "");
    let on = "Blankslate::Keep-Packaged \"true\";\n";
    assert_eq!(run(on, 0), "ran etc keep --packaged --declaration /etc/blankslate/system.toml\n");
    let elsewhere = format!("{on}Blankslate::Declaration \"/srv/decl.toml\";\n");
    assert_eq!(run(&elsewhere, 0), "ran etc keep --packaged --declaration /srv/decl.toml\n");
    let failed = run(on, 2);
    assert!(failed.ends_with("blankslate: could not keep the /etc files of packages (why is above)\n"), "{failed}");
}

/// Around each dpkg run, the apt hook hands dpkg plain files (`etc unlink`, before)
/// and links what the run left unchanged again (`etc relink`, the first thing after,
/// before anything keeps or audits); neither ever fails apt.
#[test]
fn the_apt_hook_unlinks_etc_before_dpkg_and_relinks_it_after() {
    for (list, command, said) in [
        ("DPkg::Pre-Invoke", "etc unlink", "left beside them as .dpkg-new"),
        ("DPkg::Post-Invoke", "etc relink", "could not link the unchanged files"),
    ] {
        let Some((dir, script)) = apt_hook(list, command) else { return };
        let stub = dir.path().join("blankslate");
        for exit in [0, 3] {
            std::fs::write(&stub, format!("#!/bin/sh\necho \"ran $*\"\nexit {exit}\n")).unwrap();
            std::fs::set_permissions(&stub, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
            let output = Command::new("sh").args(["-c", &script]).output().unwrap();
            assert!(output.status.success(), "{list}, exit {exit}: {}", both(&output));
            let out = text(&output.stdout);
            assert!(out.starts_with(&format!("ran {command}\n")), "{list}: {out}");
            assert_eq!(out.contains(said), exit > 0, "{list}, exit {exit}: {out}");
        }
    }
    let Some(apt_config) = tool("apt-config") else { return };
    let dump =
        Command::new(&apt_config).arg("-c").arg(repo("packaging/apt/99blankslate")).arg("dump").output().unwrap();
    // The host's own hooks may come first: the first of blankslate's.
    let first = text(&dump.stdout)
        .lines()
        .find(|l| l.starts_with("DPkg::Post-Invoke:: ") && l.contains("blankslate"))
        .map(str::to_owned);
    assert!(first.as_deref().is_some_and(|l| l.contains("etc relink")), "{first:?}");
}
