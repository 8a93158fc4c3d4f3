//! The initramfs: a cpio archive ("newc" format, gzip-compressed: the one format
//! distribution kernels all decompress (`CONFIG_RD_GZIP`); `--uncompressed` for a
//! kernel without it) holding this
//! binary as `/init`, the kernel modules boot loads (decompressed, with their
//! dependencies and a `modules.dep` in load order: see [`crate::modules`]), and the
//! few directories and device nodes the kernel and [`crate::boot`] need before
//! anything is mounted.

use std::fmt::Write as _;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use crate::modules::{self, Dependencies, ModulesError};

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
        "no module {name} under {}: looked for {name}.ko, .ko.xz, .ko.zst and .ko.gz (with - and _ alike)",
        dir.display()
    )]
    NoModule { name: String, dir: PathBuf },
    #[error("--module needs --modules DIR (where to find the modules: /lib/modules/VERSION)")]
    NoModulesDir,
    #[error(transparent)]
    Modules(#[from] ModulesError),
    #[error(
        "{} is {what}: /init runs before any library is there. Build a static binary: \
         RUSTFLAGS=\"-C target-feature=+crt-static\" cargo build --release -p blankslate \
         --target x86_64-unknown-linux-gnu, then pass --binary target/x86_64-unknown-linux-gnu/release/blankslate",
        path.display()
    )]
    NotStatic { path: PathBuf, what: &'static str },
    #[error(
        "{} is {what}: the emergency shell runs before any library is there; give a static one \
         (Debian's busybox-static installs /bin/busybox)",
        path.display()
    )]
    ShellNotStatic { path: PathBuf, what: &'static str },
    #[error(transparent)]
    Write(#[from] io::Error),
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
        self.add_file(&format!("{MODULES_DIR}/{name}.ko"), contents);
    }

    /// Adds a regular file (mode 0644) at `path` (relative, its directory already in).
    pub fn add_file(&mut self, path: &str, contents: Vec<u8>) {
        self.entries.push((path.to_owned(), Node::File { mode: 0o644, contents }));
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

/// Finds module `name` below `dir` (recursively) when there is no `modules.dep`:
/// `NAME.ko`, compressed or not, where `-` and `_` in the name are the same (as the
/// kernel treats them).
pub fn find_module(dir: &Path, name: &str) -> Result<PathBuf, InitrdError> {
    let wanted = modules::normalize(name);
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
            } else if modules::name_of(&item.file_name().to_string_lossy()).is_some_and(|n| n == wanted) {
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

/// The modules an initramfs holds.
#[derive(Debug, Default)]
pub struct Modules {
    /// Each module's name and where it came from, in load order.
    pub included: Vec<(String, PathBuf)>,
    /// Names asked for that the kernel has built in (`modules.builtin`): nothing to load.
    pub built_in: Vec<String>,
}

/// The modules `names` need, found below `dir`: with `dir/modules.dep`, every
/// dependency too, in load order, each once, and names the kernel has built in set
/// aside; without it (a directory of loose files), the names as given, in that order.
/// Returns them with the lines of the initramfs's own `modules.dep`.
fn collect_modules(dir: &Path, names: &[String]) -> Result<(Modules, String), InitrdError> {
    let read_text = |path: &Path| match std::fs::read_to_string(path) {
        Ok(text) => Ok(Some(text)),
        Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(InitrdError::Read { path: path.to_owned(), source }),
    };
    let mut found = Modules::default();
    let mut dep_lines = String::new();
    let dep_file = dir.join(modules::DEP_FILE);
    let Some(text) = read_text(&dep_file)? else {
        for name in names {
            let name = modules::normalize(name);
            found.included.push((name.clone(), find_module(dir, &name)?));
            let _ = writeln!(dep_lines, "{name}.ko:");
        }
        return Ok((found, dep_lines));
    };
    let deps = Dependencies::parse(&text, &dep_file)?;
    let built_in = read_text(&dir.join(modules::BUILTIN_FILE))?.map(|t| modules::builtin_names(&t)).unwrap_or_default();
    let (skipped, wanted): (Vec<String>, Vec<String>) =
        names.iter().map(|n| modules::normalize(n)).partition(|n| built_in.contains(n) && deps.path(n).is_none());
    found.built_in = skipped;
    for name in deps.resolve(&wanted)? {
        let path = dir.join(deps.path(name).expect("resolved names are in the file"));
        let needs: Vec<String> = deps.dependencies_of(name).iter().map(|d| format!("{d}.ko")).collect();
        let _ = writeln!(dep_lines, "{name}.ko:{}{}", if needs.is_empty() { "" } else { " " }, needs.join(" "));
        found.included.push((name.to_owned(), path));
    }
    Ok((found, dep_lines))
}

/// What goes into an initramfs.
#[derive(Debug, Clone, Copy)]
pub struct Spec<'a> {
    /// The static blankslate binary, as `/init`.
    pub binary: &'a Path,
    /// Where to find `modules` (with their dependencies when it has a `modules.dep`).
    pub modules_dir: Option<&'a Path>,
    pub modules: &'a [String],
    /// A static shell (busybox) as `/bin/sh`, which boot starts when it fails: an
    /// emergency shell before any disk is there.
    pub shell: Option<&'a Path>,
    pub compression: Compression,
}

/// Builds the initramfs `spec` describes and writes it to `out`.
pub fn build(spec: &Spec<'_>, out: &mut impl Write) -> Result<Modules, InitrdError> {
    let read = |path: &Path| std::fs::read(path).map_err(|source| InitrdError::Read { path: path.to_owned(), source });
    let contents = read(spec.binary)?;
    if let Some(what) = not_static(&contents) {
        return Err(InitrdError::NotStatic { path: spec.binary.to_owned(), what });
    }
    let mut initrd = Initrd::new(contents);
    if let Some(shell) = spec.shell {
        let contents = read(shell)?;
        if let Some(what) = not_static(&contents) {
            return Err(InitrdError::ShellNotStatic { path: shell.to_owned(), what });
        }
        initrd.entries.push(("bin".to_owned(), Node::Dir { mode: 0o755 }));
        initrd.entries.push(("bin/sh".to_owned(), Node::File { mode: 0o755, contents }));
    }
    let mut found = Modules::default();
    if !spec.modules.is_empty() {
        let dir = spec.modules_dir.ok_or(InitrdError::NoModulesDir)?;
        let dep_lines;
        (found, dep_lines) = collect_modules(dir, spec.modules)?;
        for (name, path) in &found.included {
            initrd.add_module(name, modules::decompress(path, read(path)?)?);
        }
        initrd.add_file(&format!("{MODULES_DIR}/{}", modules::DEP_FILE), dep_lines.into_bytes());
    }
    let compression = spec.compression;
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
        build(&Spec { binary, modules_dir: None, modules: &[], shell: None, compression }, &mut out).unwrap();
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
        assert!(find_module(dir.path(), "virtio").unwrap().ends_with("virtio.ko.xz"));
        let error = find_module(dir.path(), "virtio_pci").unwrap_err().to_string();
        assert!(error.contains("looked for virtio_pci.ko, .ko.xz, .ko.zst and .ko.gz"), "{error}");
    }

    /// The entries of a plain newc archive: name and contents.
    fn unpack(mut archive: &[u8]) -> Vec<(String, Vec<u8>)> {
        let mut out = Vec::new();
        let field = |header: &[u8], n: usize| {
            usize::from_str_radix(std::str::from_utf8(&header[6 + 8 * n..14 + 8 * n]).unwrap(), 16).unwrap()
        };
        loop {
            assert_eq!(&archive[..6], b"070701");
            let (size, name_size) = (field(archive, 6), field(archive, 11));
            let name = String::from_utf8(archive[110..110 + name_size - 1].to_vec()).unwrap();
            let start = (110 + name_size).next_multiple_of(4);
            if name == "TRAILER!!!" {
                return out;
            }
            out.push((name, archive[start..start + size].to_vec()));
            archive = &archive[(start + size).next_multiple_of(4)..];
        }
    }

    /// A module directory as a distribution ships it: `modules.dep` (depmod's lines for
    /// the virtio disk), `modules.builtin`, and the modules compressed three ways.
    #[test]
    fn named_modules_come_with_their_dependencies_decompressed_in_load_order() {
        let dir = tempfile::tempdir().unwrap();
        let drivers = dir.path().join("kernel/drivers/virtio");
        std::fs::create_dir_all(&drivers).unwrap();
        let elf = |name: &str| format!("\x7fELF module {name}").into_bytes();
        std::fs::write(drivers.join("virtio_ring.ko"), elf("virtio_ring")).unwrap();
        let mut gzip = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gzip.write_all(&elf("virtio")).unwrap();
        std::fs::write(drivers.join("virtio.ko.gz"), gzip.finish().unwrap()).unwrap();
        for (name, tool) in [("virtio_blk", "xz"), ("virtio_pci", "zstd")] {
            let plain = drivers.join(format!("{name}.ko"));
            std::fs::write(&plain, elf(name)).unwrap();
            let status = std::process::Command::new(tool).arg("-q").arg(&plain).status();
            assert!(status.is_ok_and(|s| s.success()), "{tool} is part of every machine image here");
            std::fs::remove_file(&plain).ok();
        }
        std::fs::write(
            dir.path().join("modules.dep"),
            "kernel/drivers/virtio/virtio_pci.ko.zst: kernel/drivers/virtio/virtio.ko.gz kernel/drivers/virtio/virtio_ring.ko\n\
             kernel/drivers/virtio/virtio.ko.gz: kernel/drivers/virtio/virtio_ring.ko\n\
             kernel/drivers/virtio/virtio_ring.ko:\n\
             kernel/drivers/block/virtio_blk.ko.xz: kernel/drivers/virtio/virtio.ko.gz kernel/drivers/virtio/virtio_ring.ko\n",
        )
        .unwrap();
        std::fs::create_dir_all(dir.path().join("kernel/drivers/block")).unwrap();
        std::fs::rename(drivers.join("virtio_blk.ko.xz"), dir.path().join("kernel/drivers/block/virtio_blk.ko.xz"))
            .unwrap();
        std::fs::write(dir.path().join("modules.builtin"), "kernel/fs/ext4/ext4.ko\n").unwrap();
        // A static ELF executable as far as `not_static` looks: no program headers.
        let mut binary = vec![0u8; 64];
        binary[..6].copy_from_slice(b"\x7fELF\x02\x01");
        let binary_path = dir.path().join("init");
        std::fs::write(&binary_path, &binary).unwrap();

        let names: Vec<String> = ["virtio-blk", "ext4", "virtio_pci"].map(String::from).to_vec();
        let mut archive = Vec::new();
        let spec = Spec {
            binary: &binary_path,
            modules_dir: Some(dir.path()),
            modules: &names,
            shell: None,
            compression: Compression::None,
        };
        let found = build(&spec, &mut archive).unwrap();
        let order: Vec<&str> = found.included.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(order, ["virtio_ring", "virtio", "virtio_blk", "virtio_pci"]);
        assert_eq!(found.built_in, ["ext4"]);
        let entries = unpack(&archive);
        let modules: Vec<&(String, Vec<u8>)> = entries.iter().filter(|(n, _)| n.starts_with("lib/modules/")).collect();
        let listed: Vec<&str> = modules.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            listed,
            [
                "lib/modules/virtio_ring.ko",
                "lib/modules/virtio.ko",
                "lib/modules/virtio_blk.ko",
                "lib/modules/virtio_pci.ko",
                "lib/modules/modules.dep"
            ]
        );
        for (name, contents) in &modules[..4] {
            let module = name.trim_start_matches("lib/modules/").trim_end_matches(".ko");
            assert_eq!(contents, &elf(module), "{name} is not the decompressed module");
        }
        assert_eq!(
            String::from_utf8_lossy(&modules[4].1),
            "virtio_ring.ko:\nvirtio.ko: virtio_ring.ko\nvirtio_blk.ko: virtio.ko virtio_ring.ko\n\
             virtio_pci.ko: virtio.ko virtio_ring.ko\n"
        );
        let error = build(&Spec { modules: &["virtio_net".into()], ..spec }, &mut Vec::new()).unwrap_err().to_string();
        assert!(error.starts_with("no module virtio_net in "), "{error}");
    }

    #[test]
    fn a_static_shell_becomes_bin_sh_and_a_dynamic_one_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        // Static as far as `not_static` looks: no program headers.
        let mut binary = vec![0u8; 64];
        binary[..6].copy_from_slice(b"\x7fELF\x02\x01");
        std::fs::write(dir.path().join("init"), &binary).unwrap();
        binary[10] = 7;
        std::fs::write(dir.path().join("busybox"), &binary).unwrap();
        let (init, busybox) = (dir.path().join("init"), dir.path().join("busybox"));
        let spec = Spec {
            binary: &init,
            modules_dir: None,
            modules: &[],
            shell: Some(&busybox),
            compression: Compression::None,
        };
        let mut archive = Vec::new();
        build(&spec, &mut archive).unwrap();
        let entries = unpack(&archive);
        let shell = entries.iter().find(|(name, _)| name == "bin/sh").expect("bin/sh in the archive");
        assert_eq!(shell.1, binary);
        let dynamic = std::env::current_exe().unwrap();
        let error = build(&Spec { shell: Some(&dynamic), ..spec }, &mut Vec::new()).unwrap_err().to_string();
        assert!(error.contains("is dynamically linked: the emergency shell runs before any library"), "{error}");
    }
}
