//! The kernel command line as boot reads it: `blankslate.*` parameters only.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use blankslate_decl::Span;
use blankslate_decl::paths::{PathKind, check_path};

/// A volume on the command line, `DEVICE[:FSTYPE[:OPTIONS]]`: the same as a persistent
/// root's `device`, `fs_type` and `mount_options` in a declaration.
pub use blankslate_decl::{Device, VolumeSpec as Volume};

/// Everything boot takes from the kernel command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Params {
    /// The volume holding the store: `blankslate.persist=DEVICE[:FSTYPE[:OPTIONS]]`.
    pub volume: Option<Volume>,
    /// Other volumes by mount point, `blankslate.persist=MOUNT=DEVICE[:…]`: they take
    /// the place of what the declaration says for that persistent root.
    pub volumes: BTreeMap<String, Volume>,
    /// The generation to boot; the volume's `current` one when absent.
    pub generation: Option<u32>,
    /// Overrides the declared size of the tmpfs root.
    pub size: Option<String>,
    /// The init to hand over to.
    pub init: PathBuf,
    /// Modules to load (with what they need) from the initramfs; none named: all of them.
    pub modules: Vec<String>,
    pub debug: bool,
    /// How long to wait for the persistent device to appear.
    pub timeout: Duration,
}

pub const DEFAULT_INIT: &str = "/sbin/init";
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

impl Default for Params {
    fn default() -> Params {
        Params {
            volume: None,
            volumes: BTreeMap::new(),
            generation: None,
            size: None,
            init: PathBuf::from(DEFAULT_INIT),
            modules: Vec::new(),
            debug: false,
            timeout: DEFAULT_TIMEOUT,
        }
    }
}

/// Splits a command line into words; double quotes group words (as the kernel does)
/// and are removed.
fn words(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    let mut quoted = false;
    let mut any = false;
    for c in line.chars() {
        match c {
            '"' => {
                quoted = !quoted;
                any = true;
            }
            c if c.is_whitespace() && !quoted => {
                if any {
                    out.push(std::mem::take(&mut current));
                    any = false;
                }
            }
            c => {
                current.push(c);
                any = true;
            }
        }
    }
    if any {
        out.push(current);
    }
    out
}

/// Parses `/proc/cmdline`. Words not starting with `blankslate.` are not ours and are
/// ignored; a malformed or unknown `blankslate.` word is an error naming it.
pub fn parse(line: &str) -> Result<Params, String> {
    let mut params = Params::default();
    for word in words(line) {
        let Some(rest) = word.strip_prefix("blankslate.") else { continue };
        let (key, value) = match rest.split_once('=') {
            Some((key, value)) => (key, Some(value)),
            None => (rest, None),
        };
        let need = |value: Option<&str>| {
            value.filter(|v| !v.is_empty()).map(str::to_owned).ok_or_else(|| format!("`{word}` needs a value"))
        };
        match key {
            "persist" => {
                let value = need(value)?;
                let (mount, spec) = persist(&value).map_err(|e| format!("`{word}`: {e}"))?;
                let again = match mount {
                    None => params.volume.replace(spec).is_some(),
                    Some(mount) => params.volumes.insert(mount, spec).is_some(),
                };
                if again {
                    return Err(format!("`{word}`: that volume is already named earlier on the command line"));
                }
            }
            "generation" => {
                let text = need(value)?;
                params.generation =
                    Some(text.parse().map_err(|_| format!("`{word}`: a generation is a number, like 3"))?);
            }
            "size" => params.size = Some(need(value)?),
            "init" => {
                let init = PathBuf::from(need(value)?);
                if !init.is_absolute() {
                    return Err(format!("`{word}`: the init must be an absolute path"));
                }
                params.init = init;
            }
            "modules" => {
                params.modules = need(value)?.split(',').filter(|m| !m.is_empty()).map(str::to_owned).collect();
            }
            "debug" => params.debug = value.is_none_or(|v| !matches!(v, "0" | "no" | "false")),
            "timeout" => {
                let seconds: u64 = need(value)?
                    .parse()
                    .map_err(|_| format!("`{word}`: the timeout is a number of seconds, like 10"))?;
                params.timeout = Duration::from_secs(seconds);
            }
            _ => {
                return Err(format!(
                    "unknown parameter `{word}` (known: blankslate.persist, .generation, .size, .init, \
                     .modules, .debug, .timeout)"
                ));
            }
        }
    }
    Ok(params)
}

/// `[MOUNT=]DEVICE[:FSTYPE[:OPTIONS]]`: a mount point (an absolute path outside
/// `/dev`) before the first `=` names the persistent root the volume is for.
fn persist(value: &str) -> Result<(Option<String>, Volume), String> {
    let (mount, spec) = match value.split_once('=') {
        Some((mount, spec)) if mount.starts_with('/') && !mount.starts_with("/dev/") => {
            let mut problems = Vec::new();
            let what = "a persistent root";
            if !check_path(mount, PathKind::Absolute, Span::default(), what, &mut problems) {
                return Err(problems.into_iter().next().map_or_else(String::new, |p| p.message));
            }
            (Some(mount.to_owned()), spec)
        }
        _ => (None, value),
    };
    let mut parts = spec.splitn(3, ':');
    let device = Device::parse(parts.next().unwrap_or_default())?;
    let fs_type = parts.next().filter(|t| !t.is_empty()).unwrap_or(Volume::DEFAULT_FS_TYPE).to_owned();
    let options = parts.next().map(|o| o.split(',').filter(|o| !o.is_empty()).map(str::to_owned).collect());
    Ok((mount, Volume { device, fs_type, options: options.unwrap_or_default() }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_command_line() {
        let params = parse(
            "console=ttyS0 blankslate.persist=LABEL=state:ext4:noatime,commit=5 blankslate.generation=3 \
             blankslate.size=50% blankslate.init=/bin/sh blankslate.modules=virtio,virtio_blk blankslate.debug \
             blankslate.timeout=2 quiet",
        )
        .unwrap();
        assert_eq!(
            params.volume,
            Some(Volume {
                device: Device::Label("state".into()),
                fs_type: "ext4".into(),
                options: vec!["noatime".into(), "commit=5".into()],
            })
        );
        assert_eq!(params.generation, Some(3));
        assert_eq!(params.size.as_deref(), Some("50%"));
        assert_eq!(params.init, PathBuf::from("/bin/sh"));
        assert_eq!(params.modules, ["virtio", "virtio_blk"]);
        assert!(params.debug);
        assert_eq!(params.timeout, Duration::from_secs(2));
    }

    #[test]
    fn defaults_and_devices() {
        let params = parse("ro quiet").unwrap();
        assert_eq!(params, Params::default());
        let params = parse("blankslate.persist=/dev/vda").unwrap();
        let volume = params.volume.unwrap();
        assert_eq!(volume.device, Device::Path("/dev/vda".into()));
        assert_eq!(volume.fs_type, "ext4");
        let params = parse("\"blankslate.persist=UUID=ABCD-1\"").unwrap();
        assert_eq!(params.volume.unwrap().device, Device::Uuid("abcd-1".into()));
    }

    #[test]
    fn volumes_for_other_mount_points() {
        let params = parse(
            "blankslate.persist=/persist/big=LABEL=big blankslate.persist=LABEL=sys \
             blankslate.persist=/data=UUID=0B1C-2D:xfs:noatime,logbsize=256k",
        )
        .unwrap();
        assert_eq!(params.volume.unwrap().device, Device::Label("sys".into()));
        let volumes: Vec<(&str, String, &str, Vec<String>)> = params
            .volumes
            .iter()
            .map(|(m, v)| (m.as_str(), v.device.to_string(), v.fs_type.as_str(), v.options.clone()))
            .collect();
        assert_eq!(
            volumes,
            [
                ("/data", "UUID=0b1c-2d".into(), "xfs", vec!["noatime".into(), "logbsize=256k".into()]),
                ("/persist/big", "LABEL=big".into(), "ext4", vec![]),
            ]
        );
    }

    #[test]
    fn mistakes_name_the_word() {
        for (line, says) in [
            ("blankslate.generation=x", "a generation is a number"),
            ("blankslate.persist=vda", "/dev path"),
            ("blankslate.persist=/data=vdb", "/dev path"),
            ("blankslate.persist=/data/=LABEL=x", "is not normalized"),
            ("blankslate.persist=LABEL=", "empty"),
            ("blankslate.persist=/dev/vda blankslate.persist=LABEL=x", "already named earlier"),
            ("blankslate.persist=/d=LABEL=x blankslate.persist=/d=LABEL=y", "already named earlier"),
            ("blankslate.init=sbin/init", "absolute"),
            ("blankslate.persit=/dev/vda", "unknown parameter `blankslate.persit=/dev/vda`"),
            ("blankslate.size=", "needs a value"),
        ] {
            let error = parse(line).unwrap_err();
            assert!(error.contains(says), "{line}: {error}");
        }
    }
}
