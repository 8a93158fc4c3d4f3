//! A fleet of Debian 12 machines on blankslate, running at once, for a deploy tool to
//! drive over ssh (`tests/fleet_ssh.rs`, where Ansible rolls a declaration out).
//!
//! Each machine is the Debian machine of the other tests (`debian.rs`: adopted, booted
//! by blankslate's own initramfs), flavoured: `python3` on top of the image's packages
//! (Ansible's modules run on it; sshd is in every image), and before the tree is
//! adopted, root's `authorized_keys` with the fleet's key (made once under `target/`)
//! and a static address on QEMU's user network, set up by systemd-networkd. Each runs
//! in the background ([`Qemu::start_with_ssh`]) on a copy of the adopted disk, its
//! port 22 forwarded from a port of 127.0.0.1 (nothing else reaches it, and it reaches
//! nothing: `restrict=on`). The probe's `fleet` phase checks the network, sshd and the
//! audit, then leaves the machine up; the host powers it off over ssh at the end and
//! checks its volume was left clean.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::debian::{self, Entry, Flavour, Prepared, Route, Suite};
use crate::{Boot, Qemu, Result, Running, free_port, run, target};

/// On top of the image's packages (openssh-server among them): what Ansible's
/// modules run on.
pub const PACKAGES: &[&str] = &["python3"];
pub const SUITE: Suite = Suite::Bookworm;
/// The guest's address on QEMU's user network: the one its port forwards go to.
const NETWORK: &str = "[Match]\nType=ether\n\n[Network]\nAddress=10.0.2.15/24\nGateway=10.0.2.2\n";
/// The ssh options of every connection to the fleet: the machines' host keys are the
/// image's and change with it, so none is recorded.
pub const SSH_OPTIONS: [&str; 4] = ["-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null"];

/// The key root accepts on the fleet's machines: ed25519 without a passphrase, made
/// once in `target/vm-fleet/id_ed25519` (and `.pub`).
pub fn key() -> Result<PathBuf> {
    let dir = target().join("vm-fleet");
    let key = dir.join("id_ed25519");
    if !key.exists() || !key.with_extension("pub").exists() {
        std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
        let _ = std::fs::remove_file(&key);
        let _ = std::fs::remove_file(key.with_extension("pub"));
        run(Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-C", "blankslate VM fleet", "-f"])
            .arg(&key))
        .map_err(|e| format!("{e}\n(the fleet needs ssh-keygen and ssh: apt-get install openssh-client)"))?;
    }
    Ok(key)
}

/// Makes the tree a machine the fleet's key reaches as root: `authorized_keys` in
/// `/root/.ssh` (which adopt keeps: how a remote admin gets back in), a static address
/// on the user network, systemd-networkd enabled. sshd is enabled by its package.
fn reachable(tree: &Path, public_key: &str) -> Result<()> {
    let ssh = tree.join("root/.ssh");
    debian::install(public_key.as_bytes(), &ssh.join("authorized_keys"), 0o600)?;
    crate::sh(&format!("chmod 0700 '{}'", ssh.display()))?;
    debian::install(NETWORK.as_bytes(), &tree.join("etc/systemd/network/10-fleet.network"), 0o644)?;
    for (unit, wanted_by) in
        [("systemd-networkd.service", "multi-user.target"), ("systemd-networkd.socket", "sockets.target")]
    {
        let link = tree.join(format!("etc/systemd/system/{wanted_by}.wants/{unit}"));
        if link.symlink_metadata().is_err() {
            debian::enable(tree, unit, wanted_by, "/lib/systemd/system")?;
        }
    }
    Ok(())
}

/// One machine of the fleet, running.
#[derive(Debug)]
pub struct Host {
    pub name: String,
    pub work: PathBuf,
    /// Its copy of the adopted disk.
    pub disk: PathBuf,
    pub machine: Running,
}

/// The fleet's machines, running, and what they were made from.
#[derive(Debug)]
pub struct Fleet {
    pub key: PathBuf,
    pub prepared: Prepared,
    pub hosts: Vec<Host>,
}

impl Fleet {
    /// Prepares the fleet's machine (its image is built once, then cached) and starts
    /// one per name, each on its own copy of the adopted disk, with the probe's
    /// `fleet` phase. They boot at once.
    pub fn start(names: &[&str]) -> Result<Fleet> {
        let key = key()?;
        let public = std::fs::read_to_string(key.with_extension("pub")).map_err(|e| e.to_string())?;
        let flavour = Flavour { packages: PACKAGES, adjust: &|tree| reachable(tree, &public) };
        let prepared = debian::prepared_as(SUITE, &flavour)?;
        let (kernel, initrd, cmdline) = prepared.machine(
            Entry::image(SUITE, Route::Own),
            &format!("LABEL={}", debian::LABEL),
            "vmtest.phase=fleet",
        );
        let mut hosts: Vec<Host> = Vec::new();
        for name in names {
            // Closed before QEMU binds it: the next one asked for may be the same.
            let mut port = free_port()?;
            while hosts.iter().any(|h| h.machine.port == port) {
                port = free_port()?;
            }
            let work = crate::work_dir(&format!("fleet-{name}"))?;
            let disk = debian::disk_from(&prepared, &work)?;
            let qemu = Qemu {
                kernel: &kernel,
                initrd: &initrd,
                disks: &[disk.as_path()],
                memory_mb: debian::MEMORY_MB,
                cmdline: &cmdline,
            };
            let machine = qemu.start_with_ssh(&work, port)?;
            hosts.push(Host { name: (*name).to_owned(), work, disk, machine });
        }
        Ok(Fleet { key, prepared, hosts })
    }

    /// Waits for every machine's probe to pass its checks and for sshd to let root
    /// in with the key, `limit` for each.
    pub fn wait_ready(&mut self, limit: Duration) -> Result<()> {
        for index in 0..self.hosts.len() {
            let host = &mut self.hosts[index];
            let started = Instant::now();
            let marker = host.machine.wait_for(&["VMTEST PASS", "VMTEST FAILED"], limit)?;
            let log = host.machine.log();
            if marker != "VMTEST PASS" {
                let failed: Vec<&str> = log.lines().filter(|l| l.contains("VMTEST FAIL ")).collect();
                let lines: Vec<&str> = log.lines().collect();
                let tail = lines[lines.len().saturating_sub(40)..].join("\n");
                return Err(format!(
                    "{}: the probe's checks failed: {failed:#?}\n--- serial log tail ---\n{tail}",
                    host.name
                ));
            }
            let booted = host.machine.elapsed();
            loop {
                let host = &self.hosts[index];
                match self.ssh(host, "true") {
                    Ok(_) => break,
                    Err(error) if started.elapsed() > limit => {
                        return Err(format!("{}: sshd did not let root in within {limit:?}: {error}", host.name));
                    }
                    Err(_) => std::thread::sleep(Duration::from_secs(2)),
                }
            }
            let host = &self.hosts[index];
            println!(
                "fleet: {} up (probe passed {:.1} s after QEMU started; ssh {:.1} s), 127.0.0.1:{}",
                host.name,
                booted.as_secs_f64(),
                host.machine.elapsed().as_secs_f64(),
                host.machine.port
            );
        }
        Ok(())
    }

    /// The host called `name`.
    pub fn host(&self, name: &str) -> Result<&Host> {
        self.hosts.iter().find(|h| h.name == name).ok_or_else(|| format!("no host {name} in the fleet"))
    }

    /// `ssh`'s arguments up to the command, for root on `host`.
    pub fn ssh_args(&self, host: &Host) -> Vec<String> {
        let mut args: Vec<String> = SSH_OPTIONS.iter().map(|&o| o.to_owned()).collect();
        args.extend(["-o", "BatchMode=yes", "-o", "ConnectTimeout=30", "-o", "LogLevel=ERROR", "-i"].map(String::from));
        args.push(self.key.display().to_string());
        args.extend(["-p".to_owned(), host.machine.port.to_string(), "root@127.0.0.1".to_owned()]);
        args
    }

    /// Runs `command` (a shell command line) as root on `host`: its standard output;
    /// fails with both streams unless it exits 0.
    pub fn ssh(&self, host: &Host, command: &str) -> Result<String> {
        let output = self.ssh_output(host, command)?;
        if output.status.success() {
            return Ok(String::from_utf8_lossy(&output.stdout).into_owned());
        }
        Err(format!("{}: `{command}` failed ({}):\n{}", host.name, output.status, both_streams(&output)))
    }

    /// Runs `command` as root on `host`: its exit status and output (both streams).
    pub fn ssh_status(&self, host: &Host, command: &str) -> Result<(i32, String)> {
        let output = self.ssh_output(host, command)?;
        Ok((output.status.code().unwrap_or(-1), both_streams(&output)))
    }

    fn ssh_output(&self, host: &Host, command: &str) -> Result<std::process::Output> {
        Command::new("ssh")
            .args(self.ssh_args(host))
            .arg(command)
            .stdin(std::process::Stdio::null())
            .output()
            .map_err(|e| format!("cannot run ssh: {e}"))
    }

    /// Powers every machine off (`systemctl poweroff` over ssh) and waits for its
    /// QEMU to end, `limit` each; returns each one's name, console and disk.
    pub fn power_off(self, limit: Duration) -> Result<Vec<(String, Boot, PathBuf)>> {
        for host in &self.hosts {
            // The connection drops as the machine goes down: its status says nothing.
            let _ = self.ssh_status(host, "systemctl poweroff");
        }
        let Fleet { hosts, .. } = self;
        let mut ended = Vec::new();
        for Host { name, disk, machine, .. } in hosts {
            ended.push((name, machine.wait(limit)?, disk));
        }
        Ok(ended)
    }
}

/// A command's standard output, then its standard error.
pub fn both_streams(output: &std::process::Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr))
}
