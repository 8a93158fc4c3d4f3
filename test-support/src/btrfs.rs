//! [`BtrfsImage`]: a fresh btrfs in a sparse file, on a loop device for as long as it
//! lives (for the btrfs root's tests; needs root and `mkfs.btrfs`).

use std::path::{Path, PathBuf};
use std::process::Command;

/// Makes an empty btrfs labelled `label` in `image`, a sparse file of `bytes` (at
/// least about 120 MiB, which mkfs.btrfs wants): for [`BtrfsImage`], and as a VM's
/// disk.
pub fn make_btrfs(image: &Path, label: &str, bytes: u64) -> Result<(), String> {
    let file = std::fs::File::create(image).map_err(|e| format!("{}: {e}", image.display()))?;
    file.set_len(bytes).map_err(|e| format!("{}: {e}", image.display()))?;
    let made = Command::new("mkfs.btrfs").args(["-q", "-f", "-L", label]).arg(image).output();
    let made = made.map_err(|e| format!("mkfs.btrfs (apt-get install btrfs-progs): {e}"))?;
    if !made.status.success() {
        return Err(format!("mkfs.btrfs: {}", String::from_utf8_lossy(&made.stderr)));
    }
    Ok(())
}

/// A btrfs made in `image` and attached to a loop device, detached when dropped.
#[derive(Debug)]
pub struct BtrfsImage {
    device: PathBuf,
}

impl BtrfsImage {
    /// Makes a 256 MiB btrfs (sparse: it takes what is written) in `image`, labelled
    /// `label`, and attaches it to a free loop device.
    pub fn new(image: &Path, label: &str) -> BtrfsImage {
        BtrfsImage::with_size(image, label, 256 << 20)
    }

    /// [`BtrfsImage::new`] with `bytes` (at least about 120 MiB, which mkfs.btrfs
    /// wants).
    pub fn with_size(image: &Path, label: &str, bytes: u64) -> BtrfsImage {
        make_btrfs(image, label, bytes).unwrap();
        let attached = Command::new("losetup").args(["--find", "--show"]).arg(image).output().expect("losetup");
        assert!(attached.status.success(), "losetup: {}", String::from_utf8_lossy(&attached.stderr));
        let device = String::from_utf8(attached.stdout).expect("a device path").trim().into();
        BtrfsImage { device }
    }

    /// The loop device (`/dev/loopN`).
    pub fn device(&self) -> &Path {
        &self.device
    }
}

impl Drop for BtrfsImage {
    fn drop(&mut self) {
        let _ = Command::new("losetup").arg("--detach").arg(&self.device).status();
    }
}
