//! [`BtrfsImage`]: a fresh btrfs in a sparse file, on a loop device for as long as it
//! lives (for the btrfs root's tests; needs root and `mkfs.btrfs`).

use std::path::{Path, PathBuf};
use std::process::Command;

/// A btrfs made in `image` and attached to a loop device, detached when dropped.
#[derive(Debug)]
pub struct BtrfsImage {
    device: PathBuf,
}

impl BtrfsImage {
    /// Makes a 256 MiB btrfs (sparse: it takes what is written) in `image`, labelled
    /// `label`, and attaches it to a free loop device.
    pub fn new(image: &Path, label: &str) -> BtrfsImage {
        std::fs::File::create(image).and_then(|f| f.set_len(256 << 20)).expect("the image file");
        let made = Command::new("mkfs.btrfs").args(["-q", "-f", "-L", label]).arg(image).output();
        let made = made.expect("mkfs.btrfs (apt-get install btrfs-progs)");
        assert!(made.status.success(), "mkfs.btrfs: {}", String::from_utf8_lossy(&made.stderr));
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
