//! The persistent volumes of a boot.
//!
//! The store's volume is the one `blankslate.persist=DEVICE[:FSTYPE[:OPTIONS]]` names
//! on the kernel command line: it is mounted first, since the generation to boot (and
//! so the declaration) is read from it. Every other persistent root of that
//! declaration is mounted from its `device`, `fs_type` and `mount_options`, unless
//! `blankslate.persist=MOUNT=DEVICE[:…]` names another volume for it (a replaced disk,
//! a rescue: the command line wins). The store's volume goes to the one root without
//! a device, or, when every root has one, to the root whose device it is.
//!
//! Nothing is written to any volume until all are there: each is mounted read-only
//! and detached (the kernel still replays a journal an unclean shutdown left), every
//! device is found, and only then are they made writable (unless `ro`) and attached in
//! the new root by mount point, so that a volume nested in another's mount point
//! (`/persist/big` inside `/persist`) comes after its parent. Detached mounts, because
//! a systemd initrd's root is a shared mount, below which a mount cannot be moved.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use blankslate_decl::Declaration;
use blankslate_sys::fs::Dir;
use blankslate_sys::mount::{Detached, FsOption};
use rustix::mount::{FsPickFlags, MountAttrFlags};

use super::cmdline::{Device, Volume};
use super::{Failure, Step, device};

/// A persistent root and the volume boot mounts there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Planned {
    pub mount_point: String,
    pub spec: Volume,
    /// The store's volume, already mounted.
    pub store: bool,
}

/// A volume found and mounted (detached until [`attach`]).
#[derive(Debug)]
pub(super) struct Staged {
    pub planned: Planned,
    pub device: PathBuf,
    pub mount: Detached,
}

/// Every persistent root of `declaration` (of generation `generation`) with its
/// volume, by mount point (so parents first): `store` is the command line's store
/// volume, `named` the command line's other ones.
pub(super) fn plan(
    declaration: &Declaration,
    generation: u32,
    store: &Volume,
    named: &BTreeMap<String, Volume>,
) -> Result<Vec<Planned>, Failure> {
    let roots: Vec<&str> = declaration.persist.keys().map(String::as_str).collect();
    let step = format!("choose where generation {generation}'s volumes go");
    if let Some(unknown) = named.keys().find(|mount| !declaration.persist.contains_key(*mount)) {
        return Err(Failure {
            step,
            error: format!(
                "blankslate.persist={unknown}=… names a volume for {unknown}, which is not one of its persistent roots \
                 ({})",
                roots.join(", ")
            ),
            hint: "name volumes by the mount points the declaration keys its [persist.\"…\"] tables by".into(),
        });
    }
    let mut planned: Vec<(&str, Option<Volume>)> = declaration
        .persist
        .iter()
        .map(|(mount, root)| (mount.as_str(), named.get(mount).or(root.volume.as_ref()).cloned()))
        .collect();
    let without: Vec<usize> = (0..planned.len()).filter(|&i| planned[i].1.is_none()).collect();
    let matching: Vec<usize> =
        (0..planned.len()).filter(|&i| planned[i].1.as_ref().is_some_and(|v| v.device == store.device)).collect();
    let mounts = |indices: &[usize]| indices.iter().map(|&i| planned[i].0).collect::<Vec<_>>().join(", ");
    // The root that declares the store's device, else the one root without a device.
    let store_at = match (&matching[..], &without[..]) {
        (&[only], _) | (&[], &[only]) => Ok(only),
        (&[], &[]) => Err(format!("every persistent root has a device, and none is {}", store.device)),
        (&[], _) => {
            Err(format!("its persistent roots {} have no device, and only one holds the store", mounts(&without)))
        }
        (_, _) => {
            Err(format!("its persistent roots {} all name the store's device {}", mounts(&matching), store.device))
        }
    };
    let unplaced: Vec<usize> = without.iter().copied().filter(|&i| store_at != Ok(i)).collect();
    let store_at = store_at.and_then(|at| match unplaced[..] {
        [] => Ok(at),
        _ => Err(format!("its persistent roots {} have no device", mounts(&unplaced))),
    });
    let store_at = store_at.map_err(|error| {
        let example = unplaced.last().map_or("/MOUNT", |&i| planned[i].0);
        let hint = format!(
            "the store's volume (blankslate.persist=DEVICE) goes to the one root without a `device`, or to the root \
             whose `device` it is; give every other root a `device` in the declaration, or name it on the kernel \
             command line: blankslate.persist={example}=DEVICE[:FSTYPE[:OPTIONS]]"
        );
        Failure { step, error, hint }
    })?;
    planned[store_at].1 = Some(store.clone());
    Ok(planned
        .into_iter()
        .enumerate()
        .map(|(i, (mount, spec))| Planned {
            mount_point: mount.to_owned(),
            spec: spec.expect("every root but the store's has a volume"),
            store: i == store_at,
        })
        .collect())
}

/// Waits up to `timeout` for `spec`'s device; `mount_point` is `None` for the store's
/// volume. `drivers` says where this boot's disk drivers come from, for the hint.
pub(super) fn find(
    spec: &Volume,
    mount_point: Option<&str>,
    timeout: Duration,
    drivers: &str,
) -> Result<PathBuf, Failure> {
    let step = match mount_point {
        None => "find the persistent volume".to_owned(),
        Some(mount) => format!("find the persistent volume for {mount}"),
    };
    let found = device::wait_for(&spec.device, timeout);
    // An encrypted device is never found by its label (the file system is inside),
    // and one named by its path cannot be mounted: either way, say so by name.
    let encrypted = match &found {
        Some(path) => device::luks(path).map(|luks| (path.clone(), luks)),
        None => device::encrypted(&spec.device),
    };
    if let Some((path, luks)) = encrypted {
        return Err(encrypted_failure(step, &spec.device, &path, &luks));
    }
    found.ok_or_else(|| Failure {
        step,
        error: format!(
            "{} did not appear within {} s (block devices: {})",
            spec.device,
            timeout.as_secs(),
            device::known_devices().join(" ").chars().take(300).collect::<String>()
        ),
        hint: match mount_point {
            None => format!(
                "check blankslate.persist= and that the disk's driver is {drivers}; raise blankslate.timeout= for slow \
                 disks. Nothing was written to any disk."
            ),
            Some(mount) => format!(
                "attach the disk, or check the `device` of [persist.\"{mount}\"] in the declaration (the kernel command \
                 line can name another: blankslate.persist={mount}=DEVICE[:FSTYPE[:OPTIONS]]), and that the disk's \
                 driver is {drivers}; raise blankslate.timeout= for slow disks. Nothing was written to any disk."
            ),
        },
    })
}

/// `device` is a LUKS device: blankslate opens no encrypted disk itself.
fn encrypted_failure(step: String, device: &Device, path: &Path, luks: &device::Luks) -> Failure {
    Failure {
        step,
        error: format!(
            "{} LUKS{}-encrypted device (UUID {}): blankslate does not open encrypted disks",
            match device {
                Device::Path(_) => format!("{} is a", path.display()),
                _ => format!("{device} is {}, a", path.display()),
            },
            luks.version,
            luks.uuid
        ),
        hint: "boot through dracut (route b: `dracut --add blankslate`; its crypt module unlocks the disk with a \
               passphrase at the console or rd.luks.key=, and its lvm module activates LVM on it), and name the file \
               system inside it in blankslate.persist= (LABEL= or UUID= of that file system, as `blkid` on the opened \
               device shows). Nothing was written to any disk."
            .into(),
    }
}

/// Finds every volume of `plan` but the store's (`store`, mounted already from
/// `store_device`) and mounts each read-only. Returns all of them in the order of
/// `plan`.
pub(super) fn stage(
    plan: Vec<Planned>,
    store_device: &Path,
    store: Detached,
    timeout: Duration,
    drivers: &str,
) -> Result<Vec<Staged>, Failure> {
    // All devices first: a missing one stops the boot before a second mount.
    let mut found = Vec::with_capacity(plan.len());
    for planned in plan {
        let device = if planned.store {
            store_device.to_owned()
        } else {
            find(&planned.spec, Some(&planned.mount_point), timeout, drivers)?
        };
        found.push((planned, device));
    }
    let mut store = Some(store);
    let mut staged = Vec::with_capacity(found.len());
    for (planned, device) in found {
        let mount = match store.take_if(|_| planned.store) {
            Some(store) => store,
            None => mount_read_only(&device, &planned.spec, Some(&planned.mount_point))?,
        };
        staged.push(Staged { planned, device, mount });
    }
    Ok(staged)
}

/// Mounts the volume `spec` on `device` read-only and detached; `mount_point` is
/// `None` for the store's volume. `options` are file system options (`key`,
/// `key=value`), except the generic ones that are mount attributes.
pub(super) fn mount_read_only(device: &Path, spec: &Volume, mount_point: Option<&str>) -> Result<Detached, Failure> {
    let (what, hint) = match mount_point {
        None => (
            format!("mount the persistent volume {} ({})", device.display(), spec.fs_type),
            "check the file system type and options in blankslate.persist=DEV:FSTYPE:OPTIONS (and fsck the disk)"
                .to_owned(),
        ),
        Some(mount) => (
            format!("mount {} ({}) for {mount}", device.display(), spec.fs_type),
            format!(
                "check `fs_type` and `mount_options` of [persist.\"{mount}\"] (and fsck the disk); nothing was written \
                 to any disk"
            ),
        ),
    };
    let source = device.to_string_lossy();
    let mut options = vec![FsOption::Value("source", &source), FsOption::Flag("ro")];
    let mut attributes = MountAttrFlags::empty();
    for option in &spec.options {
        let attribute = match option.as_str() {
            "nosuid" => MountAttrFlags::MOUNT_ATTR_NOSUID,
            "nodev" => MountAttrFlags::MOUNT_ATTR_NODEV,
            "noexec" => MountAttrFlags::MOUNT_ATTR_NOEXEC,
            "noatime" => MountAttrFlags::MOUNT_ATTR_NOATIME,
            "nodiratime" => MountAttrFlags::MOUNT_ATTR_NODIRATIME,
            "relatime" => MountAttrFlags::MOUNT_ATTR_RELATIME,
            "strictatime" => MountAttrFlags::MOUNT_ATTR_STRICTATIME,
            // Read-only or not is the file system's: it is read-only until all are mounted.
            "ro" | "rw" => continue,
            _ => MountAttrFlags::empty(),
        };
        if !attribute.is_empty() {
            attributes |= attribute;
        } else if let Some((key, value)) = option.split_once('=') {
            options.push(FsOption::Value(key, value));
        } else {
            options.push(FsOption::Flag(option));
        }
    }
    Detached::new(device, &spec.fs_type, &options, attributes).step(&what, &hint)
}

/// Every volume found: each one made writable unless its options say `ro`.
pub(super) fn make_writable(volumes: &[Staged]) -> Result<(), Failure> {
    for volume in volumes.iter().filter(|v| !v.planned.spec.options.iter().any(|o| o == "ro")) {
        let reconfigure = || -> std::io::Result<()> {
            let flags = FsPickFlags::FSPICK_EMPTY_PATH | FsPickFlags::FSPICK_CLOEXEC;
            let fs = rustix::mount::fspick(volume.mount.dir(), "", flags)?;
            rustix::mount::fsconfig_set_flag(&fs, "rw")?;
            rustix::mount::fsconfig_reconfigure(&fs)?;
            Ok(())
        };
        reconfigure().step(
            &format!("make {} ({}) writable", volume.device.display(), volume.planned.mount_point),
            "fsck the disk; or add `ro` to its options to boot with it read-only",
        )?;
    }
    Ok(())
}

/// Attaches every volume at its mount point in `root` (parents first: `volumes` is by
/// mount point), creating the mount point (inside a parent volume, if it is nested in
/// one).
pub(super) fn attach(root: &Dir, volumes: &[Staged]) -> Result<(), Failure> {
    for volume in volumes {
        let mount_point = &volume.planned.mount_point;
        let at = Path::new(mount_point.trim_start_matches('/'));
        let step = format!("create {mount_point} in the new root");
        let holder = match at.parent().filter(|p| !p.as_os_str().is_empty()) {
            Some(parent) => root.create_dir_all(parent, 0o755),
            None => root.try_clone(),
        }
        .step(&step, "report a bug")?;
        let last = at.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        holder.create_dir(&last, 0o755).step(&step, "report a bug")?;
        volume
            .mount
            .attach(&holder, &last)
            .step(&format!("attach the volume {} at {mount_point}", volume.device.display()), "report a bug")?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn declaration(text: &str) -> Declaration {
        let checked = blankslate_decl::check(Path::new("t.toml"), text, None);
        checked.declaration.unwrap_or_else(|| panic!("{}", checked.diagnostics))
    }

    fn volume(device: &str) -> Volume {
        Volume { device: Device::parse(device).unwrap(), fs_type: "ext4".into(), options: Vec::new() }
    }

    /// A LUKS2 device named as the volume is refused by name, pointing to dracut's
    /// route, before anything is mounted.
    #[test]
    fn an_encrypted_volume_is_refused_and_route_b_named() {
        let dir = tempfile::tempdir().unwrap();
        let image = dir.path().join("luks.img");
        let mut header = vec![0u8; 4096];
        header[..6].copy_from_slice(b"LUKS\xba\xbe");
        header[6..8].copy_from_slice(&2u16.to_be_bytes());
        header[168..204].copy_from_slice(b"8a3f0c1e-5b2d-4e6f-9a7b-0c1d2e3f4a5b");
        std::fs::write(&image, header).unwrap();
        let spec = Volume {
            device: Device::Path(image.to_string_lossy().into_owned()),
            fs_type: "ext4".into(),
            options: Vec::new(),
        };
        let failure = find(&spec, None, Duration::ZERO, "in the initramfs").unwrap_err();
        assert_eq!(failure.step, "find the persistent volume");
        assert_eq!(
            failure.error,
            format!(
                "{} is a LUKS2-encrypted device (UUID 8a3f0c1e-5b2d-4e6f-9a7b-0c1d2e3f4a5b): blankslate does not open \
                 encrypted disks",
                image.display()
            )
        );
        assert!(failure.hint.contains("route b: `dracut --add blankslate`"), "{}", failure.hint);
        std::fs::write(&image, vec![0u8; 4096]).unwrap();
        assert_eq!(find(&spec, None, Duration::ZERO, "in the initramfs").unwrap(), image);
    }

    fn shown(plan: &[Planned]) -> Vec<String> {
        plan.iter()
            .map(|p| {
                format!("{} {} {}{}", p.mount_point, p.spec.device, p.spec.fs_type, if p.store { " store" } else { "" })
            })
            .collect()
    }

    const NESTED: &str = r#"version = 1
[persist."/persist"]
directories = ["/var/log"]
[persist."/persist/big"]
device = "LABEL=big"
directories = ["/var/lib/big"]
[persist."/data"]
device = "UUID=0b1c2d3e-0000-4000-8000-00000000abcd"
fs_type = "ext2"
mount_options = ["noatime"]
directories = ["/srv"]
"#;

    #[test]
    fn the_store_goes_to_the_root_without_a_device_and_parents_come_first() {
        let planned = plan(&declaration(NESTED), 1, &volume("LABEL=sys"), &BTreeMap::new()).unwrap();
        assert_eq!(
            shown(&planned),
            [
                "/data UUID=0b1c2d3e-0000-4000-8000-00000000abcd ext2",
                "/persist LABEL=sys ext4 store",
                "/persist/big LABEL=big ext4"
            ]
        );
        assert_eq!(planned[0].spec.options, ["noatime"]);
        let one = declaration("version = 1\n[persist.\"/persist\"]\ndirectories = [\"/var/log\"]\n");
        let planned = plan(&one, 1, &volume("/dev/vda"), &BTreeMap::new()).unwrap();
        assert_eq!(shown(&planned), ["/persist /dev/vda ext4 store"]);
    }

    #[test]
    fn the_command_line_names_volumes_and_can_stand_for_a_declared_device() {
        let named = BTreeMap::from([("/data".to_owned(), volume("LABEL=newdata"))]);
        let planned = plan(&declaration(NESTED), 1, &volume("LABEL=sys"), &named).unwrap();
        assert_eq!(shown(&planned)[0], "/data LABEL=newdata ext4");
        // Every root has a device: the store's is the one the command line names.
        let all = NESTED.replace("[persist.\"/persist\"]\n", "[persist.\"/persist\"]\ndevice = \"LABEL=sys\"\n");
        let planned = plan(&declaration(&all), 1, &volume("LABEL=sys"), &BTreeMap::new()).unwrap();
        assert_eq!(shown(&planned)[1], "/persist LABEL=sys ext4 store");
        // Two roots without a device, one of them named on the command line.
        let two = NESTED.replace("device = \"LABEL=big\"\n", "");
        let named = BTreeMap::from([("/persist/big".to_owned(), volume("LABEL=big"))]);
        let planned = plan(&declaration(&two), 1, &volume("LABEL=sys"), &named).unwrap();
        assert_eq!(shown(&planned)[1..], ["/persist LABEL=sys ext4 store", "/persist/big LABEL=big ext4"]);
    }

    #[test]
    fn where_the_store_goes_must_be_clear() {
        let two = NESTED.replace("device = \"LABEL=big\"\n", "");
        let failure = plan(&declaration(&two), 3, &volume("LABEL=sys"), &BTreeMap::new()).unwrap_err();
        assert_eq!(failure.step, "choose where generation 3's volumes go");
        assert!(failure.error.contains("roots /persist, /persist/big have no device, and only one"), "{failure}");
        assert!(failure.hint.contains("blankslate.persist=/persist/big=DEVICE"), "{failure}");
        // The root declaring the store's device takes it; the one left without a
        // device cannot be placed.
        let declared = two.replace("[persist.\"/persist\"]\n", "[persist.\"/persist\"]\ndevice = \"LABEL=sys\"\n");
        let failure = plan(&declaration(&declared), 3, &volume("LABEL=sys"), &BTreeMap::new()).unwrap_err();
        assert!(failure.error.ends_with("roots /persist/big have no device"), "{failure}");
        let all = NESTED.replace("[persist.\"/persist\"]\n", "[persist.\"/persist\"]\ndevice = \"LABEL=sys\"\n");
        let failure = plan(&declaration(&all), 3, &volume("LABEL=other"), &BTreeMap::new()).unwrap_err();
        assert!(failure.error.contains("none is LABEL=other"), "{failure}");
        // Naming the store's device for another root makes that root the store's.
        let elsewhere = NESTED.replace("LABEL=big", "LABEL=sys");
        let failure = plan(&declaration(&elsewhere), 3, &volume("LABEL=sys"), &BTreeMap::new()).unwrap_err();
        assert!(failure.error.ends_with("roots /persist have no device"), "{failure}");
        let named = BTreeMap::from([("/data".to_owned(), volume("LABEL=sys"))]);
        let failure = plan(&declaration(&elsewhere), 3, &volume("LABEL=sys"), &named).unwrap_err();
        assert!(failure.error.contains("roots /data, /persist/big all name the store's device LABEL=sys"), "{failure}");
        let named = BTreeMap::from([("/nowhere".to_owned(), volume("LABEL=x"))]);
        let failure = plan(&declaration(NESTED), 3, &volume("LABEL=sys"), &named).unwrap_err();
        assert!(failure.error.contains("/nowhere, which is not one of its persistent roots"), "{failure}");
    }
}
