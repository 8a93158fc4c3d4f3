//! The initramfs: a cpio archive ("newc" format, gzip-compressed: the one format
//! distribution kernels all decompress (`CONFIG_RD_GZIP`); `--uncompressed` for a
//! kernel without it) holding this
//! binary as `/init`, the kernel modules boot loads, and the few directories and
//! device nodes the kernel and [`crate::boot`] need before anything is mounted.

use std::fmt::Write as _;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// Where the modules are put inside the initramfs (and where boot loads them from).
pub const MODULES_DIR: &str = "lib/modules";

/// One file system entry of the archive.
#[derive(Debug, Clone)]
enum Node {
    Dir { mode: u32 },
    File { mode: u32, contents: Vec<u8> },
    CharDevice { mode: u32, major: u32, minor: u32 },
}

/// An initramfs being put together: entries in the order they are written.
#[derive(Debug, Default)]
pub struct Initrd {
    entries: Vec<(String, Node)>,
}

#[derive(Debug, thiserror::Error)]
pub enum InitrdError {
    #[error("cannot read {}: {source}", path.display())]
    Read { path: PathBuf, source: io::Error },
    #[error(
        "no module {name} under {}: looked for {name}.ko (with - and _ alike); a compressed \
         {name}.ko.xz or .ko.zst must be decompressed first (xz -d / zstd -d)",
        dir.display()
    )]
    NoModule { name: String, dir: PathBuf },
    #[error("--module needs --modules DIR (where to find the .ko files)")]
    NoModulesDir,
    #[error(
        "{} is {what}: /init runs before any library is there. Build a static binary: \
         RUSTFLAGS=\"-C target-feature=+crt-static\" cargo build --release -p blankslate \
         --target x86_64-unknown-linux-gnu, then pass --binary target/x86_64-unknown-linux-gnu/release/blankslate",
        path.display()
    )]
    NotStatic { path: PathBuf, what: &'static str },
}

impl Initrd {
    /// The skeleton every blankslate initramfs has: `/init` is `binary`, and the mount
    /// points and `/dev/console` exist before devtmpfs does.
    pub fn new(binary: Vec<u8>) -> Initrd {
        let mut initrd = Initrd::default();
        for dir in ["dev", "proc", "sys", "run", "lib", MODULES_DIR, "mnt"] {
            initrd.entries.push((dir.to_owned(), Node::Dir { mode: 0o755 }));
        }
        // The kernel opens /dev/console for init's standard streams before init runs:
        // without this node, every message of the boot would go nowhere.
        initrd.entries.push(("dev/console".to_owned(), Node::CharDevice { mode: 0o600, major: 5, minor: 1 }));
        initrd.entries.push(("init".to_owned(), Node::File { mode: 0o755, contents: binary }));
        initrd
    }

    /// Adds a module (uncompressed `.ko` contents) as `lib/modules/NAME.ko`.
    pub fn add_module(&mut self, name: &str, contents: Vec<u8>) {
        self.entries.push((format!("{MODULES_DIR}/{name}.ko"), Node::File { mode: 0o644, contents }));
    }

    /// Writes the archive.
    pub fn write_to(&self, out: &mut impl Write) -> io::Result<()> {
        let mut written = 0;
        for (ino, (name, node)) in (1u32..).zip(&self.entries) {
            let (mode, contents, rdev): (u32, &[u8], (u32, u32)) = match node {
                Node::Dir { mode } => (0o040_000 | mode, &[], (0, 0)),
                Node::File { mode, contents } => (0o100_000 | mode, contents, (0, 0)),
                Node::CharDevice { mode, major, minor } => (0o020_000 | mode, &[], (*major, *minor)),
            };
            let nlink = if matches!(node, Node::Dir { .. }) { 2 } else { 1 };
            written += entry(out, ino, mode, nlink, rdev, name, contents)?;
        }
        written += entry(out, 0, 0, 1, (0, 0), "TRAILER!!!", &[])?;
        // The kernel reads the archive in 512-byte blocks; pad like cpio(1) does.
        out.write_all(&vec![0; (512 - written % 512) % 512])
    }
}

/// Writes one newc entry (header, name, contents, each padded to 4 bytes); returns the
/// bytes written.
fn entry(
    out: &mut impl Write,
    ino: u32,
    mode: u32,
    nlink: u32,
    rdev: (u32, u32),
    name: &str,
    contents: &[u8],
) -> io::Result<usize> {
    let size = u32::try_from(contents.len()).map_err(|_| io::Error::other(format!("{name} is over 4 GiB")))?;
    let name_size = u32::try_from(name.len() + 1).map_err(|_| io::Error::other("name too long"))?;
    let fields = [ino, mode, 0, 0, nlink, 0, size, 0, 0, rdev.0, rdev.1, name_size, 0];
    let mut header = String::from("070701");
    for field in fields {
        let _ = write!(header, "{field:08x}");
    }
    out.write_all(header.as_bytes())?;
    out.write_all(name.as_bytes())?;
    out.write_all(&[0])?;
    let head = header.len() + name.len() + 1;
    out.write_all(&[0; 3][..(4 - head % 4) % 4])?;
    out.write_all(contents)?;
    out.write_all(&[0; 3][..(4 - contents.len() % 4) % 4])?;
    Ok(head.next_multiple_of(4) + contents.len().next_multiple_of(4))
}

/// Finds module `name` below `dir` (recursively): `NAME.ko`, where `-` and `_` in the
/// name are the same (as the kernel treats them).
pub fn find_module(dir: &Path, name: &str) -> Result<PathBuf, InitrdError> {
    let wanted = format!("{}.ko", name.replace('-', "_"));
    let mut pending = vec![dir.to_path_buf()];
    while let Some(current) = pending.pop() {
        let read = std::fs::read_dir(&current).map_err(|source| InitrdError::Read { path: current.clone(), source })?;
        let mut entries: Vec<_> = read.filter_map(Result::ok).collect();
        entries.sort_by_key(std::fs::DirEntry::file_name);
        for item in entries {
            let path = item.path();
            let Ok(kind) = item.file_type() else { continue };
            if kind.is_dir() {
                pending.push(path);
            } else if item.file_name().to_string_lossy().replace('-', "_") == wanted {
                return Ok(path);
            }
        }
    }
    Err(InitrdError::NoModule { name: name.to_owned(), dir: dir.to_path_buf() })
}

/// Why `elf` cannot be `/init`, if it cannot: not a 64-bit little-endian ELF, or
/// dynamically linked (it has a `PT_INTERP` program header naming a loader).
pub fn not_static(elf: &[u8]) -> Option<&'static str> {
    if elf.len() < 64 || &elf[..4] != b"\x7fELF" || elf[4] != 2 || elf[5] != 1 {
        return Some("not a 64-bit little-endian ELF executable");
    }
    let u16_at = |at: usize| u16::from_le_bytes([elf[at], elf[at + 1]]);
    let offset = u64::from_le_bytes(elf[0x20..0x28].try_into().expect("8 bytes"));
    let (size, count) = (usize::from(u16_at(0x36)), usize::from(u16_at(0x38)));
    let Ok(offset) = usize::try_from(offset) else { return Some("a damaged ELF file") };
    for n in 0..count {
        let at = offset + n * size;
        let Some(kind) = elf.get(at..at + 4) else { return Some("a damaged ELF file") };
        if kind == 3u32.to_le_bytes() {
            return Some("dynamically linked");
        }
    }
    None
}

/// How the archive is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    Gzip,
    /// A plain cpio archive, for reading with `cpio -t` (the kernel takes it too).
    None,
}

/// Builds the initramfs for `binary` with `modules` (names, in load order) found
/// below `modules_dir`, and writes it to `out`.
pub fn build(
    binary: &Path,
    modules_dir: Option<&Path>,
    modules: &[String],
    compression: Compression,
    out: &mut impl Write,
) -> Result<Vec<PathBuf>, Box<dyn std::error::Error>> {
    let read = |path: &Path| std::fs::read(path).map_err(|source| InitrdError::Read { path: path.to_owned(), source });
    let contents = read(binary)?;
    if let Some(what) = not_static(&contents) {
        return Err(InitrdError::NotStatic { path: binary.to_owned(), what }.into());
    }
    let mut initrd = Initrd::new(contents);
    let mut found = Vec::new();
    if !modules.is_empty() {
        let dir = modules_dir.ok_or(InitrdError::NoModulesDir)?;
        for name in modules {
            let path = find_module(dir, name)?;
            initrd.add_module(&name.replace('-', "_"), read(&path)?);
            found.push(path);
        }
    }
    match compression {
        Compression::Gzip => {
            let mut gzip = flate2::write::GzEncoder::new(out, flate2::Compression::default());
            initrd.write_to(&mut gzip)?;
            gzip.finish()?;
        }
        Compression::None => initrd.write_to(out)?,
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_archive_is_newc_with_a_trailer_and_aligned_entries() {
        let mut initrd = Initrd::new(b"binary!".to_vec());
        initrd.add_module("virtio_blk", b"\x7fELF".to_vec());
        let mut out = Vec::new();
        initrd.write_to(&mut out).unwrap();
        assert_eq!(out.len() % 512, 0);
        assert!(out.starts_with(b"070701"));
        let text = String::from_utf8_lossy(&out);
        assert!(text.contains("TRAILER!!!"));
        // Every header starts at a multiple of 4.
        for (at, _) in text.match_indices("070701") {
            assert_eq!(at % 4, 0, "header at {at}");
        }
        let init = text.find("init\0").unwrap();
        assert!(text[init..].contains("binary!"));
        assert!(text.contains("lib/modules/virtio_blk.ko\0"));
    }

    #[test]
    fn cpio_lists_what_was_written() {
        let Ok(output) = std::process::Command::new("cpio").arg("--version").output() else { return };
        if !output.status.success() {
            return;
        }
        let mut out = Vec::new();
        Initrd::new(b"x".to_vec()).write_to(&mut out).unwrap();
        let mut child = std::process::Command::new("cpio")
            .args(["-t", "-v"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(&out).unwrap();
        let listed = String::from_utf8(child.wait_with_output().unwrap().stdout).unwrap();
        assert!(listed.contains("init"), "{listed}");
        assert!(listed.lines().any(|l| l.starts_with('c') && l.ends_with("dev/console")), "{listed}");
    }

    /// The archive `build` writes for `binary`, compressed or not.
    fn built(binary: &Path, compression: Compression) -> Vec<u8> {
        let mut out = Vec::new();
        build(binary, None, &[], compression, &mut out).unwrap();
        out
    }

    #[test]
    fn the_archive_is_gzip_compressed_unless_asked_not_to_be() {
        let Some(binary) = ["/bin/busybox", "/usr/bin/busybox"]
            .into_iter()
            .map(Path::new)
            .find(|p| std::fs::read(p).is_ok_and(|b| not_static(&b).is_none()))
        else {
            eprintln!("skipped: no static busybox to stand in for the binary");
            return;
        };
        let plain = built(binary, Compression::None);
        let gzip = built(binary, Compression::Gzip);
        assert!(plain.starts_with(b"070701"));
        assert_eq!(&gzip[..2], b"\x1f\x8b", "not gzip");
        assert!(gzip.len() < plain.len() * 3 / 4, "{} bytes compressed from {}", gzip.len(), plain.len());
        let mut unpacked = Vec::new();
        std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&gzip[..]), &mut unpacked).unwrap();
        assert!(unpacked == plain, "the gzip stream does not hold the plain archive");
    }

    #[test]
    fn a_dynamic_binary_is_refused() {
        // The test binary itself is dynamically linked (no crt-static in tests).
        let me = std::fs::read(std::env::current_exe().unwrap()).unwrap();
        assert_eq!(not_static(&me), Some("dynamically linked"));
        assert_eq!(not_static(b"#!/bin/sh\n"), Some("not a 64-bit little-endian ELF executable"));
        let busybox = std::fs::read("/bin/busybox").ok().filter(|b| not_static(b).is_none());
        if let Some(busybox) = busybox {
            assert_eq!(not_static(&busybox), None);
        }
    }

    #[test]
    fn modules_are_found_with_dashes_and_underscores_alike() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("kernel/drivers")).unwrap();
        std::fs::write(dir.path().join("kernel/drivers/virtio_blk.ko"), b"m").unwrap();
        std::fs::write(dir.path().join("kernel/drivers/virtio.ko.xz"), b"m").unwrap();
        assert!(find_module(dir.path(), "virtio-blk").unwrap().ends_with("virtio_blk.ko"));
        let error = find_module(dir.path(), "virtio").unwrap_err().to_string();
        assert!(error.contains("decompressed"), "{error}");
    }
}
