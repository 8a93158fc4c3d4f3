//! The kernels the VM tests boot, fetched from Debian with apt (never installed on
//! the host) and cached under `target/`: Debian 12's cloud kernel, its modules
//! compressed as other distributions ship them, and Debian 13's.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use crate::{APT_RETRIES, Result, run, sh, target};

/// The unpacked kernel: `vmlinuz` and a directory of uncompressed modules (virtio's,
/// and btrfs's with what it needs).
#[derive(Debug, Clone)]
pub struct Kernel {
    pub vmlinuz: PathBuf,
    pub modules: PathBuf,
}

/// Fetches (once, then cached in `target/vm-kernel`) the Debian cloud kernel: the
/// package `linux-image-cloud-amd64` depends on, downloaded with `apt-get download`
/// and unpacked with `dpkg-deb` (never installed), keeping `vmlinuz`, the virtio
/// modules and btrfs's with the modules it depends on (decompressed if
/// the package ships them as `.ko.xz` or `.ko.zst`). The cache's name says what it
/// holds: a cache from before btrfs was added is unpacked again.
pub fn kernel() -> Result<Kernel> {
    static KERNEL: OnceLock<std::result::Result<Kernel, String>> = OnceLock::new();
    KERNEL.get_or_init(fetch_kernel).clone()
}

fn fetch_kernel() -> Result<Kernel> {
    let cache = target().join("vm-kernel");
    let unpacked = cache.join("unpacked-virtio-btrfs");
    let found = |dir: &Path| -> Option<Kernel> {
        let boot = std::fs::read_dir(dir.join("boot")).ok()?;
        let vmlinuz = boot
            .filter_map(std::result::Result::ok)
            .map(|e| e.path())
            .find(|p| p.file_name().is_some_and(|n| n.to_string_lossy().starts_with("vmlinuz-")))?;
        let modules = dir.join("lib/modules");
        Some(Kernel { vmlinuz, modules })
    };
    if let Some(kernel) = found(&unpacked) {
        return Ok(kernel);
    }
    let depends = run(Command::new("apt-cache").args(["depends", "linux-image-cloud-amd64"]))?;
    let package = kernel_package(&depends)
        .ok_or_else(|| format!("no kernel package in `apt-cache depends linux-image-cloud-amd64`:\n{depends}"))?;
    let download = cache.join("download");
    std::fs::create_dir_all(&download).map_err(|e| e.to_string())?;
    // apt-get download drops privileges to _apt, which must be able to write here.
    sh(&format!("chmod 0777 '{}'", download.display()))?;
    run(Command::new("apt-get").args(["-o", APT_RETRIES, "download"]).arg(&package).current_dir(&download))?;
    let staging = cache.join("unpacking");
    let _ = std::fs::remove_dir_all(&staging);
    std::fs::create_dir_all(&staging).map_err(|e| e.to_string())?;
    sh(&format!(
        "cd '{staging}'; dpkg-deb --fsys-tarfile '{download}'/{package}_*.deb | \
         tar -x --wildcards './boot/vmlinuz-*' './lib/modules/*/kernel/drivers/virtio/*' \
         './lib/modules/*/kernel/drivers/block/virtio_blk.ko*' './lib/modules/*/kernel/fs/btrfs/btrfs.ko*' \
         './lib/modules/*/kernel/crypto/xor.ko*' './lib/modules/*/kernel/lib/raid6/raid6_pq.ko*' \
         './lib/modules/*/kernel/lib/libcrc32c.ko*' './lib/modules/*/kernel/lib/zstd/zstd_compress.ko*'; \
         find lib -name '*.ko.xz' -exec xz -d {{}} +; find lib -name '*.ko.zst' -exec zstd -q --rm -d {{}} \\;",
        staging = staging.display(),
        download = download.display(),
    ))?;
    std::fs::rename(&staging, &unpacked).map_err(|e| e.to_string())?;
    found(&unpacked).ok_or_else(|| format!("no boot/vmlinuz-* in {package}"))
}

/// The Debian 12 cloud kernel with its virtio modules compressed as distributions
/// that compress ship them, and the `modules.dep` that `depmod` writes for them: the
/// package ships plain `.ko` files (`CONFIG_MODULE_COMPRESS_NONE`), so the harness
/// compresses them itself, the way Linux's `modules_install` does
/// (`xz --check=crc32 --lzma2=dict=1MiB`) for `virtio`, `virtio_ring`, `virtio_blk`,
/// and with `zstd` for the `virtio_pci` family, then runs `depmod -b` (kmod) on the
/// tree, as the package's installation would. Built once, cached in
/// `target/vm-kernel/compressed`.
pub fn compressed_modules_kernel() -> Result<Kernel> {
    static KERNEL: OnceLock<std::result::Result<Kernel, String>> = OnceLock::new();
    KERNEL
        .get_or_init(|| {
            let plain = kernel()?;
            let cache = target().join("vm-kernel/compressed");
            let modules_of = |dir: &Path| -> Result<PathBuf> {
                let version = only_entry(&dir.join("lib/modules"))?;
                Ok(dir.join("lib/modules").join(version))
            };
            if cache.exists() {
                return Ok(Kernel { vmlinuz: plain.vmlinuz, modules: modules_of(&cache)? });
            }
            let staging = target().join("vm-kernel/compressing");
            let _ = std::fs::remove_dir_all(&staging);
            std::fs::create_dir_all(&staging).map_err(|e| e.to_string())?;
            sh(&format!(
                "cd '{staging}'; dpkg-deb --fsys-tarfile \"$(ls '{download}'/linux-image-*.deb | head -n 1)\" | \
                 tar -x --wildcards './lib/modules/*/kernel/drivers/virtio/*' \
                 './lib/modules/*/kernel/drivers/block/virtio_blk.ko' './lib/modules/*/modules.builtin' \
                 './lib/modules/*/modules.order'; \
                 cd lib/modules/*/kernel/drivers; \
                 zstd -q --rm virtio/virtio_pci*.ko; \
                 xz --check=crc32 --lzma2=dict=1MiB virtio/*.ko block/virtio_blk.ko; \
                 cd ../..; depmod -b '{staging}' \"$(basename \"$PWD\")\"",
                staging = staging.display(),
                download = target().join("vm-kernel/download").display(),
            ))
            .map_err(|e| format!("{e}\n(depmod is in Debian's kmod package)"))?;
            std::fs::rename(&staging, &cache).map_err(|e| e.to_string())?;
            Ok(Kernel { vmlinuz: plain.vmlinuz, modules: modules_of(&cache)? })
        })
        .clone()
}

/// Debian 13's cloud kernel and its modules exactly as the package ships them
/// (`.ko.xz`: `CONFIG_MODULE_COMPRESS_XZ`), with the `modules.dep` that `depmod`
/// writes at installation. Downloaded with `apt-get download` from a sources list of
/// the harness's own (the host's apt configuration is not touched), unpacked with
/// `dpkg-deb`, cached in `target/vm-kernel-trixie`.
pub fn trixie_kernel() -> Result<Kernel> {
    static KERNEL: OnceLock<std::result::Result<Kernel, String>> = OnceLock::new();
    KERNEL.get_or_init(fetch_trixie_kernel).clone()
}

fn fetch_trixie_kernel() -> Result<Kernel> {
    let cache = target().join("vm-kernel-trixie");
    let unpacked = cache.join("unpacked");
    let found = |dir: &Path| -> Result<Kernel> {
        let vmlinuz = dir.join("boot").join(only_entry(&dir.join("boot"))?);
        let version = only_entry(&dir.join("usr/lib/modules"))?;
        Ok(Kernel { vmlinuz, modules: dir.join("usr/lib/modules").join(version) })
    };
    if unpacked.exists() {
        return found(&unpacked);
    }
    let apt = cache.join("apt");
    let apt_command = own_apt(
        &apt,
        "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian trixie main\n",
    )?;
    run(apt_command("apt-get").arg("update"))?;
    let depends = run(apt_command("apt-cache").args(["depends", "linux-image-cloud-amd64"]))?;
    let package = kernel_package(&depends).ok_or_else(|| {
        format!("no kernel package in trixie's `apt-cache depends linux-image-cloud-amd64`:\n{depends}")
    })?;
    let download = apt.join("download");
    run(apt_command("apt-get").arg("download").arg(&package).current_dir(&download))?;
    let staging = cache.join("unpacking");
    let _ = std::fs::remove_dir_all(&staging);
    std::fs::create_dir_all(&staging).map_err(|e| e.to_string())?;
    sh(&format!(
        "cd '{staging}'; dpkg-deb --fsys-tarfile '{download}'/*.deb | \
         tar -x --wildcards './boot/vmlinuz-*' './usr/lib/modules/*/kernel/drivers/virtio/*' \
         './usr/lib/modules/*/kernel/drivers/block/virtio_blk.ko*' './usr/lib/modules/*/modules.builtin' \
         './usr/lib/modules/*/modules.order'; \
         cd usr/lib/modules/*; depmod -b '{staging}/usr' \"$(basename \"$PWD\")\"",
        staging = staging.display(),
        download = download.display(),
    ))
    .map_err(|e| format!("{e}\n(depmod is in Debian's kmod package)"))?;
    std::fs::rename(&staging, &unpacked).map_err(|e| e.to_string())?;
    found(&unpacked)
}

/// The versioned kernel package (`linux-image-6.1.0-…`) that `apt-cache depends
/// linux-image-cloud-amd64` names.
pub fn kernel_package(depends: &str) -> Option<String> {
    depends
        .lines()
        .filter_map(|l| l.trim().strip_prefix("Depends: "))
        .find(|p| p.starts_with("linux-image-") && p.chars().nth(12).is_some_and(|c| c.is_ascii_digit()))
        .map(str::to_owned)
}

/// A maker of `apt-get` and `apt-cache` commands with a sources list and state of
/// their own in `dir` (the host's apt configuration is not touched; nothing is
/// installed: `Dir::State::Status` is empty), downloading into `dir/download`.
pub fn own_apt(dir: &Path, sources: &str) -> Result<impl Fn(&str) -> Command + use<>> {
    for sub in ["lists/partial", "archives/partial", "download"] {
        std::fs::create_dir_all(dir.join(sub)).map_err(|e| e.to_string())?;
    }
    std::fs::write(dir.join("sources.list"), sources).map_err(|e| e.to_string())?;
    // apt-get drops privileges to _apt, which must be able to write here.
    sh(&format!("chmod -R 0777 '{}'", dir.display()))?;
    let options = [
        format!("Dir::Etc::SourceList={}", dir.join("sources.list").display()),
        "Dir::Etc::SourceParts=/dev/null".to_owned(),
        format!("Dir::State::Lists={}", dir.join("lists").display()),
        format!("Dir::Cache={}", dir.display()),
        "Dir::State::Status=/dev/null".to_owned(),
        APT_RETRIES.to_owned(),
    ];
    Ok(move |program: &str| {
        let mut command = Command::new(program);
        for option in &options {
            command.arg("-o").arg(option);
        }
        command
    })
}

/// The name of the one entry in `dir`.
fn only_entry(dir: &Path) -> Result<String> {
    let names: Vec<String> = std::fs::read_dir(dir)
        .map_err(|e| format!("{}: {e}", dir.display()))?
        .filter_map(std::result::Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    match &names[..] {
        [one] => Ok(one.clone()),
        _ => Err(format!("{}: expected one entry, found {names:?}", dir.display())),
    }
}
