//! `blankslate initrd` (an initramfs with this binary as /init) and `blankslate boot`
//! (the same activation as a service of a systemd initrd).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use blankslate_activator::hostonly;
use blankslate_activator::initrd::Compression;
use blankslate_sys::fs::Dir;

use super::{Result, plural};
use crate::report::{self, errln, outln};

#[derive(Debug, clap::Args)]
pub(super) struct InitrdArgs {
    /// Where to write the archive.
    #[arg(short, long, value_name = "FILE")]
    output: PathBuf,
    /// The blankslate binary to put in as /init (default: this one). Build it static:
    /// RUSTFLAGS="-C target-feature=+crt-static" cargo build --release --target x86_64-unknown-linux-gnu
    #[arg(long, value_name = "FILE")]
    binary: Option<PathBuf>,
    /// Where to find the modules, e.g. /lib/modules/$(uname -r): its modules.dep
    /// brings each module's dependencies; without one, NAME.ko is searched for.
    #[arg(long, value_name = "DIR")]
    modules: Option<PathBuf>,
    /// A module to include with what it needs (repeat); .ko, .ko.xz, .ko.zst or .ko.gz,
    /// put in decompressed.
    #[arg(long = "module", value_name = "NAME")]
    module: Vec<String>,
    /// Also every module the block device holding PATH needs (repeat): its driver
    /// chain from sysfs (a virtio disk: `virtio_blk` and `virtio_pci`; `NVMe`: `nvme`) and its
    /// file system's module, as dracut's host-only mode finds them. Run it on the
    /// machine that boots: `--host-only /persist` (the volume) or a device node.
    #[arg(long, value_name = "PATH", requires = "modules")]
    host_only: Vec<PathBuf>,
    /// A static shell to put in as /bin/sh: boot starts it when it fails (say, the disk
    /// never appears). Debian's busybox-static installs one as /bin/busybox.
    #[arg(long, value_name = "FILE")]
    shell: Option<PathBuf>,
    /// Write a plain cpio archive instead of a gzip-compressed one.
    #[arg(long)]
    uncompressed: bool,
}

#[derive(Debug, clap::Args)]
pub(super) struct BootArgs {
    /// The root-to-be: systemd's /sysroot.
    #[arg(long, value_name = "DIR", default_value = "/sysroot")]
    root: PathBuf,
}

pub(super) fn initrd(args: &InitrdArgs) -> Result<ExitCode> {
    let compression = if args.uncompressed { Compression::None } else { Compression::Gzip };
    let output = &args.output;
    let mut names = args.module.clone();
    for path in &args.host_only {
        let (major, minor) = hostonly::device_of(path)?;
        let drivers = hostonly::block_device_drivers(Path::new("/sys"), major, minor)?;
        let mountinfo = std::fs::read_to_string("/proc/self/mountinfo")?;
        let fs_type = hostonly::fs_type_of(&mountinfo, major, minor);
        for name in &drivers.built_in {
            errln!("{}: driver {name} is built into the kernel", path.display())?;
        }
        for name in drivers.modules.into_iter().chain(fs_type) {
            if !names.contains(&name) {
                errln!("{}: needs module {name}", path.display())?;
                names.push(name);
            }
        }
    }
    let names = &names;
    let binary = match &args.binary {
        Some(path) => path.clone(),
        None => std::env::current_exe()?,
    };
    let mut archive = Vec::new();
    let spec = blankslate_activator::initrd::Spec {
        binary: &binary,
        modules_dir: args.modules.as_deref(),
        modules: names,
        shell: args.shell.as_deref(),
        compression,
    };
    let found = blankslate_activator::initrd::build(&spec, &mut archive)?;
    let parent = output.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let name = output.file_name().ok_or_else(|| format!("{}: not a file name", output.display()))?;
    Dir::open_root(parent)?.write_atomic(name, &archive, 0o644)?;
    for (name, path) in &found.included {
        errln!("module {name} from {}", path.display())?;
    }
    for name in &found.built_in {
        errln!("module {name} is built into the kernel: nothing to add")?;
    }
    let shell = args.shell.as_ref().map(|s| format!(", /bin/sh = {}", s.display())).unwrap_or_default();
    let (modules, bytes) = (plural(found.included.len(), "module"), plural(archive.len(), "byte"));
    outln!("{}: /init = {}{shell}, {modules}, {bytes}", output.display(), binary.display())?;
    Ok(ExitCode::SUCCESS)
}

pub(super) fn boot(args: &BootArgs) -> Result<ExitCode> {
    match blankslate_activator::boot::service(&args.root) {
        Ok(line) => {
            outln!("{line}")?;
            Ok(ExitCode::SUCCESS)
        }
        Err(failure) => {
            errln!("{failure}")?;
            Ok(ExitCode::from(report::EXIT_FAILURE))
        }
    }
}
