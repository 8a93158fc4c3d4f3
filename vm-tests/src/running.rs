//! A QEMU that runs in the background while the test talks to the guest over ssh: the
//! guest's port 22 forwarded from a port of the host's loopback address only, on
//! QEMU's user network with `restrict=on` (the guest reaches nothing outside). Several
//! may run at once (a fleet), so these are not under the lock that keeps the other
//! boots one at a time. The handle stops its QEMU, by its pid, when dropped.

use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use crate::{Boot, Qemu, Result, console, next_serial_log, read_serial_log};

/// A port on 127.0.0.1 that nothing listens on now (the kernel's choice), for a
/// forward: the listener is closed before QEMU binds it.
pub fn free_port() -> Result<u16> {
    let listener = std::net::TcpListener::bind(("127.0.0.1", 0)).map_err(|e| format!("no free port: {e}"))?;
    Ok(listener.local_addr().map_err(|e| e.to_string())?.port())
}

/// A QEMU started by [`Qemu::start_with_ssh`].
#[derive(Debug)]
pub struct Running {
    child: Child,
    log: PathBuf,
    stderr: PathBuf,
    started: Instant,
    /// The port of 127.0.0.1 forwarded to the guest's port 22.
    pub port: u16,
}

impl Qemu<'_> {
    /// Starts this machine in the background with a virtio network card on QEMU's
    /// user network (`restrict=on`) and the guest's port 22 forwarded from
    /// `127.0.0.1:port`; the serial console goes to the next `serial-N.log` of `work`,
    /// QEMU's own messages beside it (`.stderr`).
    pub fn start_with_ssh(&self, work: &Path, port: u16) -> Result<Running> {
        let log = next_serial_log(work);
        let stderr = log.with_extension("stderr");
        let nic = format!("user,model=virtio-net-pci,restrict=on,hostfwd=tcp:127.0.0.1:{port}-:22");
        let mut command = self.command(&nic);
        command.arg("-serial").arg(format!("file:{}", log.display()));
        let errors = std::fs::File::create(&stderr).map_err(|e| format!("{}: {e}", stderr.display()))?;
        let child = command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(errors)
            .spawn()
            .map_err(|e| format!("cannot start qemu-system-x86_64: {e} (apt-get install qemu-system-x86)"))?;
        Ok(Running { child, log, stderr, started: Instant::now(), port })
    }
}

impl Running {
    /// The serial log so far.
    pub fn log(&self) -> String {
        read_serial_log(&self.log)
    }

    /// How long since QEMU started.
    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    /// Waits until one of `markers` is in the serial log, and returns it. Fails (with
    /// the log's tail) if QEMU ends first, or after `limit` since it started.
    pub fn wait_for<'m>(&mut self, markers: &[&'m str], limit: Duration) -> Result<&'m str> {
        loop {
            let log = self.log();
            if let Some(found) = markers.iter().find(|m| log.contains(**m)) {
                return Ok(*found);
            }
            let ended = self.child.try_wait().map_err(|e| e.to_string())?;
            if ended.is_some() || self.started.elapsed() > limit {
                let why = ended.map_or_else(|| format!("not within {limit:?}"), |s| format!("QEMU ended ({s})"));
                return Err(format!(
                    "none of {markers:?} on the console: {why}\n{}",
                    self.snapshot(None, false).tail(40)
                ));
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Waits for QEMU to end by itself (the guest powered off); stops it (by its pid)
    /// after `limit` and says so in the result.
    pub fn wait(mut self, limit: Duration) -> Result<Boot> {
        loop {
            if let Some(status) = self.child.try_wait().map_err(|e| e.to_string())? {
                return Ok(self.snapshot(status.code(), false));
            }
            if self.started.elapsed() > limit {
                self.stop();
                return Ok(self.snapshot(None, true));
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    fn stop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }

    /// What the run logged (the serial log, then QEMU's messages), as a [`Boot`].
    fn snapshot(&self, status: Option<i32>, timed_out: bool) -> Boot {
        let errors = std::fs::read_to_string(&self.stderr).unwrap_or_default();
        Boot { status, log: console(&self.log, &errors), elapsed: self.started.elapsed(), timed_out }
    }
}

impl Drop for Running {
    /// A test that fails half-way leaves no QEMU behind: only this one is stopped, by
    /// its pid.
    fn drop(&mut self) {
        self.stop();
    }
}
