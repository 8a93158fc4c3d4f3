//! The kernel modules a block device needs, found as dracut's host-only mode finds
//! them: from the device's directory in sysfs up through its parents (the partition,
//! the disk, the virtio or SCSI device, the PCI function, …), each one's driver, and
//! the module that driver belongs to (`driver/module`); a driver without one is built
//! into the kernel. So a virtio disk brings `virtio_blk` and `virtio_pci`, an `NVMe` disk
//! `nvme` (and `nvme_core` through `modules.dep`), a SATA disk `sd_mod` and `ahci`.
//!
//! Device-mapper devices (LUKS, LVM) are refused: blankslate's own initramfs does not
//! open them; the dracut route does.

use std::io;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum HostOnlyError {
    #[error("cannot read {}: {source}", path.display())]
    Read { path: PathBuf, source: io::Error },
    #[error(
        "block device {device} is a device-mapper device ({name}, LUKS or LVM): blankslate's own initramfs does not \
         open those; boot through dracut (blankslate-initrd.service) instead"
    )]
    DeviceMapper { device: String, name: String },
}

/// The drivers of a device and of its parents, outermost (the bus) first.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Drivers {
    /// Modules to load, named as `modules.dep` names them.
    pub modules: Vec<String>,
    /// Drivers built into the kernel: nothing to load.
    pub built_in: Vec<String>,
}

/// The drivers block device `major:minor` needs; `sys` is where sysfs is (`/sys`).
pub fn block_device_drivers(sys: &Path, major: u32, minor: u32) -> Result<Drivers, HostOnlyError> {
    let device = format!("{major}:{minor}");
    let link = sys.join("dev/block").join(&device);
    let read = |path: &Path| std::fs::canonicalize(path).map_err(|source| read_error(path, source));
    let mut dir = read(&link)?;
    if let Ok(name) = std::fs::read_to_string(dir.join("dm/name")) {
        return Err(HostOnlyError::DeviceMapper { device, name: name.trim().to_owned() });
    }
    let top = read(sys)?;
    let mut found = Drivers::default();
    while dir.starts_with(&top) && dir != top {
        let driver = dir.join("driver");
        if driver.exists() {
            match std::fs::read_link(driver.join("module")) {
                Ok(module) => push_name(&mut found.modules, &module),
                Err(error) if error.kind() == io::ErrorKind::NotFound => {
                    push_name(&mut found.built_in, &read(&driver)?);
                }
                Err(source) => return Err(read_error(&driver.join("module"), source)),
            }
        }
        dir.pop();
    }
    found.modules.reverse();
    found.built_in.reverse();
    Ok(found)
}

fn read_error(path: &Path, source: io::Error) -> HostOnlyError {
    HostOnlyError::Read { path: path.to_owned(), source }
}

/// Adds the last component of `path` as a module name (`-` as `_`), once.
fn push_name(names: &mut Vec<String>, path: &Path) {
    let name = crate::modules::normalize(&path.file_name().unwrap_or_default().to_string_lossy());
    if !name.is_empty() && !names.contains(&name) {
        names.push(name);
    }
}

/// The block device `path` is (a device node), or the one the file system holding
/// `path` is on (a mount point, a file), as `major:minor`.
pub fn device_of(path: &Path) -> Result<(u32, u32), HostOnlyError> {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let meta = std::fs::metadata(path).map_err(|source| read_error(path, source))?;
    let device = if meta.file_type().is_block_device() { meta.rdev() } else { meta.dev() };
    Ok((rustix::fs::major(device), rustix::fs::minor(device)))
}

/// The file system type `/proc/self/mountinfo` (its text, `mountinfo`) gives for the
/// device `major:minor`, if something of it is mounted.
pub fn fs_type_of(mountinfo: &str, major: u32, minor: u32) -> Option<String> {
    let device = format!("{major}:{minor}");
    mountinfo.lines().find_map(|line| {
        let mut fields = line.split(' ');
        let on_device = fields.nth(2) == Some(device.as_str());
        let (_, after) = line.split_once(" - ")?;
        on_device.then(|| after.split(' ').next().unwrap_or_default().to_owned())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    /// A sysfs with a virtio disk (`vda`, partition `vda1`) on a PCI function whose
    /// driver is a module, a built-in bus above it, and a device-mapper device.
    fn sysfs() -> tempfile::TempDir {
        let sys = tempfile::tempdir().unwrap();
        let at = |p: &str| sys.path().join(p);
        let pci = "devices/pci0000:00/0000:00:04.0";
        std::fs::create_dir_all(at(&format!("{pci}/virtio1/block/vda/vda1"))).unwrap();
        std::fs::create_dir_all(at("devices/virtual/block/dm-0/dm")).unwrap();
        std::fs::write(at("devices/virtual/block/dm-0/dm/name"), "cryptroot\n").unwrap();
        for (driver, module) in [
            ("bus/pci/drivers/virtio-pci", Some("virtio_pci")),
            ("bus/virtio/drivers/virtio_blk", Some("virtio_blk")),
            ("bus/platform/drivers/pcieport", None),
        ] {
            std::fs::create_dir_all(at(driver)).unwrap();
            if let Some(module) = module {
                std::fs::create_dir_all(at(&format!("module/{module}"))).unwrap();
                symlink(format!("../../../../module/{module}"), at(&format!("{driver}/module"))).unwrap();
            }
        }
        symlink("../../../bus/pci/drivers/virtio-pci", at(&format!("{pci}/driver"))).unwrap();
        symlink("../../../../bus/virtio/drivers/virtio_blk", at(&format!("{pci}/virtio1/driver"))).unwrap();
        symlink("../../bus/platform/drivers/pcieport", at("devices/pci0000:00/driver")).unwrap();
        std::fs::create_dir_all(at("dev/block")).unwrap();
        symlink(format!("../../{pci}/virtio1/block/vda/vda1"), at("dev/block/254:1")).unwrap();
        symlink("../../devices/virtual/block/dm-0", at("dev/block/253:0")).unwrap();
        sys
    }

    #[test]
    fn a_partition_needs_its_disks_driver_chain_bus_first() {
        let sys = sysfs();
        let drivers = block_device_drivers(sys.path(), 254, 1).unwrap();
        assert_eq!(drivers.modules, ["virtio_pci", "virtio_blk"]);
        assert_eq!(drivers.built_in, ["pcieport"]);
    }

    #[test]
    fn device_mapper_and_unknown_devices_are_clear_errors() {
        let sys = sysfs();
        let error = block_device_drivers(sys.path(), 253, 0).unwrap_err().to_string();
        assert!(error.contains("cryptroot") && error.contains("dracut"), "{error}");
        let error = block_device_drivers(sys.path(), 8, 0).unwrap_err().to_string();
        assert!(error.contains("dev/block/8:0"), "{error}");
    }

    #[test]
    fn the_file_system_type_comes_from_mountinfo() {
        let mountinfo = "22 27 0:21 / /proc rw,relatime - proc proc rw\n\
                         27 1 254:1 / / rw,relatime - ext4 /dev/vda1 rw\n\
                         40 27 254:1 /persist /persist rw - ext4 /dev/vda1 rw\n";
        assert_eq!(fs_type_of(mountinfo, 254, 1).as_deref(), Some("ext4"));
        assert_eq!(fs_type_of(mountinfo, 8, 0), None);
    }
}
