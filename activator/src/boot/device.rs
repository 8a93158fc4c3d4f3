//! Finding a persistent device: a `/dev` path, or a file system by label or UUID. In
//! an initramfs there is no udev, so `/dev/disk/by-*` is used only when it exists;
//! otherwise every block device in `/sys/class/block` has its superblock read. ext2/3/4,
//! XFS and btrfs labels and UUIDs are recognised. A LUKS header is recognised too, so
//! that an encrypted device is refused by name instead of never being found.

use std::fmt::Write as _;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::cmdline::Device;

/// A UUID's 16 bytes as `blkid` prints them.
fn uuid_text(u: &[u8]) -> String {
    let hex = |bytes: &[u8]| {
        bytes.iter().fold(String::new(), |mut out, b| {
            let _ = write!(out, "{b:02x}");
            out
        })
    };
    format!("{}-{}-{}-{}-{}", hex(&u[0..4]), hex(&u[4..6]), hex(&u[6..8]), hex(&u[8..10]), hex(&u[10..16]))
}

/// A label field: up to the first NUL.
fn label_text(field: &[u8]) -> String {
    let end = field.iter().position(|&b| b == 0).unwrap_or(field.len());
    String::from_utf8_lossy(&field[..end]).into_owned()
}

/// The label and UUID of an ext2/3/4 superblock (the 1024 bytes at offset 1024).
pub fn ext4_identity(superblock: &[u8]) -> Option<(String, String)> {
    if superblock.len() < 0x88 || superblock[0x38..0x3a] != [0x53, 0xef] {
        return None;
    }
    Some((label_text(&superblock[0x78..0x88]), uuid_text(&superblock[0x68..0x78])))
}

/// The label and UUID of an XFS superblock (at offset 0: `sb_uuid` at 32, `sb_fname`
/// at 108).
pub fn xfs_identity(superblock: &[u8]) -> Option<(String, String)> {
    if superblock.len() < 120 || &superblock[..4] != b"XFSB" {
        return None;
    }
    Some((label_text(&superblock[108..120]), uuid_text(&superblock[32..48])))
}

/// The label and UUID (the fsid) of a btrfs superblock (at offset 64 KiB: fsid at
/// 0x20, magic at 0x40, label at 0x12b).
pub fn btrfs_identity(superblock: &[u8]) -> Option<(String, String)> {
    if superblock.len() < 0x22b || &superblock[0x40..0x48] != b"_BHRfS_M" {
        return None;
    }
    Some((label_text(&superblock[0x12b..0x22b]), uuid_text(&superblock[0x20..0x30])))
}

/// The label and UUID of the file system on `device`, if it is one blankslate knows.
fn identity(device: &Path) -> Option<(String, String)> {
    let mut file = std::fs::File::open(device).ok()?;
    let mut read_at = |offset: u64, len: usize| -> Option<Vec<u8>> {
        file.seek(SeekFrom::Start(offset)).ok()?;
        let mut buffer = vec![0; len];
        file.read_exact(&mut buffer).ok()?;
        Some(buffer)
    };
    read_at(1024, 1024)
        .and_then(|sb| ext4_identity(&sb))
        .or_else(|| read_at(0, 512).and_then(|sb| xfs_identity(&sb)))
        .or_else(|| read_at(65536, 4096).and_then(|sb| btrfs_identity(&sb)))
}

/// A LUKS header (the magic `LUKS\xba\xbe` at offset 0, for LUKS1 and LUKS2 alike):
/// its version, its UUID (text, at 168) and, for LUKS2, its label (at 24).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Luks {
    pub version: u16,
    pub uuid: String,
    pub label: String,
}

/// The LUKS header at the start of `header` (at least 208 bytes), if it is one.
pub fn luks_header(header: &[u8]) -> Option<Luks> {
    if header.len() < 208 || header[..6] != *b"LUKS\xba\xbe" {
        return None;
    }
    let version = u16::from_be_bytes([header[6], header[7]]);
    let label = if version == 2 { label_text(&header[24..72]) } else { String::new() };
    Some(Luks { version, uuid: label_text(&header[168..208]), label })
}

/// The LUKS header of `device`, if it has one.
pub fn luks(device: &Path) -> Option<Luks> {
    let mut header = vec![0; 208];
    std::fs::File::open(device).ok()?.read_exact(&mut header).ok()?;
    luks_header(&header)
}

/// The LUKS device that `device` names (by its path, or by the UUID or LUKS2 label of
/// its header), if there is one: what blankslate cannot mount, but a user may well name.
pub fn encrypted(device: &Device) -> Option<(PathBuf, Luks)> {
    let matches = |luks: &Luks| match device {
        Device::Path(_) => true,
        Device::Label(label) => luks.label == *label,
        Device::Uuid(uuid) => luks.uuid == *uuid,
    };
    let candidates: Vec<PathBuf> = match device {
        Device::Path(path) => vec![PathBuf::from(path)],
        _ => known_devices().into_iter().map(|name| Path::new("/dev").join(name)).collect(),
    };
    candidates.into_iter().find_map(|path| luks(&path).filter(matches).map(|luks| (path, luks)))
}

/// One look for `device`; `None` if it is not there (yet).
fn find_once(device: &Device) -> Option<PathBuf> {
    let (by, wanted) = match device {
        Device::Path(path) => return Path::new(path).exists().then(|| PathBuf::from(path)),
        Device::Label(label) => ("by-label", label),
        Device::Uuid(uuid) => ("by-uuid", uuid),
    };
    let link = Path::new("/dev/disk").join(by).join(wanted);
    if link.exists() {
        return Some(link);
    }
    let mut names: Vec<_> =
        std::fs::read_dir("/sys/class/block").ok()?.filter_map(Result::ok).map(|e| e.file_name()).collect();
    names.sort();
    names.into_iter().map(|name| Path::new("/dev").join(name)).find(|path| {
        identity(path).is_some_and(|(label, uuid)| match device {
            Device::Label(_) => label == *wanted,
            _ => uuid == *wanted,
        })
    })
}

/// Waits up to `timeout` for `device` to appear (devices show up while drivers probe).
pub fn wait_for(device: &Device, timeout: Duration) -> Option<PathBuf> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(found) = find_once(device) {
            return Some(found);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The block devices the kernel knows, for an error message.
pub fn known_devices() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir("/sys/class/block")
        .map(|read| read.filter_map(Result::ok).map(|e| e.file_name().to_string_lossy().into_owned()).collect())
        .unwrap_or_default();
    names.sort();
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_ext4_superblock_gives_label_and_uuid() {
        let mut sb = vec![0u8; 1024];
        sb[0x38] = 0x53;
        sb[0x39] = 0xef;
        sb[0x68..0x78].copy_from_slice(&[
            0x12, 0x34, 0x56, 0x78, 0x9a, 0xbc, 0xde, 0xf0, 0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef,
        ]);
        sb[0x78..0x7d].copy_from_slice(b"bsvol");
        let (label, uuid) = ext4_identity(&sb).unwrap();
        assert_eq!(label, "bsvol");
        assert_eq!(uuid, "12345678-9abc-def0-0123-456789abcdef");
        sb[0x38] = 0;
        assert_eq!(ext4_identity(&sb), None);
    }

    #[test]
    fn a_real_mkfs_image_is_recognised() {
        let dir = tempfile::tempdir().unwrap();
        let image = dir.path().join("disk.img");
        std::fs::File::create(&image).unwrap().set_len(8 << 20).unwrap();
        let made = std::process::Command::new("mkfs.ext4")
            .args(["-q", "-F", "-L", "bslabel", "-U", "0b1c2d3e-0000-4000-8000-00000000abcd"])
            .arg(&image)
            .status();
        if !made.is_ok_and(|s| s.success()) {
            return; // no e2fsprogs here
        }
        let (label, uuid) = identity(&image).unwrap();
        assert_eq!(label, "bslabel");
        assert_eq!(uuid, "0b1c2d3e-0000-4000-8000-00000000abcd");
        let found = wait_for(&Device::Path(image.to_string_lossy().into_owned()), Duration::ZERO);
        assert_eq!(found, Some(image));
    }

    #[test]
    fn xfs_and_btrfs_superblocks_give_label_and_uuid() {
        let uuid = [0x12, 0x34, 0x56, 0x78, 0x9a, 0xbc, 0xde, 0xf0, 0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef];
        let mut xfs = vec![0u8; 512];
        xfs[..4].copy_from_slice(b"XFSB");
        xfs[32..48].copy_from_slice(&uuid);
        xfs[108..113].copy_from_slice(b"bsxfs");
        assert_eq!(xfs_identity(&xfs), Some(("bsxfs".into(), "12345678-9abc-def0-0123-456789abcdef".into())));
        let mut btrfs = vec![0u8; 4096];
        btrfs[0x40..0x48].copy_from_slice(b"_BHRfS_M");
        btrfs[0x20..0x30].copy_from_slice(&uuid);
        btrfs[0x12b..0x130].copy_from_slice(b"bsbtr");
        assert_eq!(btrfs_identity(&btrfs), Some(("bsbtr".into(), "12345678-9abc-def0-0123-456789abcdef".into())));
        assert_eq!(xfs_identity(&btrfs), None);
        assert_eq!(btrfs_identity(&xfs), None);
    }

    fn luks2_header(label: &str, uuid: &str) -> Vec<u8> {
        let mut header = vec![0u8; 4096];
        header[..6].copy_from_slice(b"LUKS\xba\xbe");
        header[6..8].copy_from_slice(&2u16.to_be_bytes());
        header[24..24 + label.len()].copy_from_slice(label.as_bytes());
        header[168..168 + uuid.len()].copy_from_slice(uuid.as_bytes());
        header
    }

    #[test]
    fn a_luks_header_gives_version_uuid_and_label() {
        let uuid = "8a3f0c1e-5b2d-4e6f-9a7b-0c1d2e3f4a5b";
        let header = luks2_header("persist", uuid);
        assert_eq!(luks_header(&header), Some(Luks { version: 2, uuid: uuid.into(), label: "persist".into() }));
        let mut luks1 = header.clone();
        luks1[6..8].copy_from_slice(&1u16.to_be_bytes());
        assert_eq!(luks_header(&luks1), Some(Luks { version: 1, uuid: uuid.into(), label: String::new() }));
        let mut not = header;
        not[4] = 0;
        assert_eq!(luks_header(&not), None);
        assert_eq!(luks_header(b"LUKS\xba\xbe"), None, "too short to be a header");
    }

    /// A device named by its path that holds a LUKS header is found as encrypted; an
    /// ext4 image is not.
    #[test]
    fn an_encrypted_device_named_by_path_is_recognised() {
        let dir = tempfile::tempdir().unwrap();
        let image = dir.path().join("luks.img");
        std::fs::write(&image, luks2_header("persist", "8a3f0c1e-5b2d-4e6f-9a7b-0c1d2e3f4a5b")).unwrap();
        let named = Device::Path(image.to_string_lossy().into_owned());
        let (path, luks) = encrypted(&named).unwrap();
        assert_eq!((path, luks.version), (image.clone(), 2));
        std::fs::write(&image, vec![0u8; 4096]).unwrap();
        assert_eq!(encrypted(&named), None);
    }

    /// Real images made by mkfs.xfs and mkfs.btrfs, where those are installed.
    #[test]
    fn real_xfs_and_btrfs_images_are_recognised() {
        let dir = tempfile::tempdir().unwrap();
        let uuid = "5a1b2c3d-0000-4000-8000-0000000000da";
        for (tool, args) in [
            ("mkfs.xfs", ["-q", "-f", "-L", "bsfs", "-m", &format!("uuid={uuid}")]),
            ("mkfs.btrfs", ["-q", "-f", "-L", "bsfs", "-U", uuid]),
        ] {
            let image = dir.path().join(format!("{tool}.img"));
            std::fs::File::create(&image).unwrap().set_len(320 << 20).unwrap();
            let made =
                std::process::Command::new(tool).args(args).arg(&image).stdout(std::process::Stdio::null()).status();
            if !made.is_ok_and(|s| s.success()) {
                eprintln!("skipped: no {tool} here");
                continue;
            }
            assert_eq!(identity(&image), Some(("bsfs".into(), uuid.into())), "{tool}");
        }
    }
}
