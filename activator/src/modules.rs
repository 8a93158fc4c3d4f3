//! Kernel modules as distributions ship them: `.ko` files, often compressed (`.ko.xz`
//! in Debian 13 and Fedora, `.ko.zst` in Ubuntu and Arch, `.ko.gz` elsewhere), and
//! `modules.dep`, written by `depmod`: one line per module, `PATH: DEPENDENCY…`, paths
//! relative to the module directory.
//!
//! `blankslate initrd` resolves the names a user gives into every module they need,
//! dependencies first and each once, and decompresses each one: a kernel loads a
//! compressed module only if it was built with in-kernel decompression for that very
//! format (`CONFIG_MODULE_DECOMPRESS`; Debian 12's cloud kernel has none), while the
//! initramfs is compressed as a whole anyway. It writes its own `modules.dep` into the
//! initramfs, in the same format with flat names (`virtio_blk.ko: virtio.ko …`), one
//! line per module in load order; boot reads that one.

use std::collections::HashMap;
use std::io::Read as _;
use std::path::{Path, PathBuf};

/// The dependency file, in a module directory and in the initramfs's `lib/modules`.
pub const DEP_FILE: &str = "modules.dep";
/// What `depmod` lists as built into the kernel (nothing to load).
pub const BUILTIN_FILE: &str = "modules.builtin";

#[derive(Debug, thiserror::Error)]
pub enum ModulesError {
    #[error("{}:{line}: `{text}` is not a modules.dep line (`PATH.ko: DEPENDENCY.ko …`)", file.display())]
    Syntax { file: PathBuf, line: usize, text: String },
    #[error("no module {name} in {}{}", file.display(), suggestion.as_ref().map_or_else(String::new, |s| format!(" (did you mean {s}?)")))]
    Unknown { name: String, file: PathBuf, suggestion: Option<String> },
    #[error("{}: {module} depends on {dependency}, which has no line of its own (run depmod again)", file.display())]
    MissingDependency { module: String, dependency: String, file: PathBuf },
    #[error("{}: the modules depend on each other in a circle: {}", file.display(), chain.join(" -> "))]
    Cycle { file: PathBuf, chain: Vec<String> },
    #[error("{}: cannot decompress ({format}): {reason}", path.display())]
    Decompress { path: PathBuf, format: &'static str, reason: String },
    #[error("{}: not a kernel module: neither an ELF file nor xz, zstd or gzip data", path.display())]
    NotAModule { path: PathBuf },
}

/// The name the kernel knows a module by: its file name without `.ko` and a
/// compression suffix, with `-` read as `_` (the kernel treats them alike).
pub fn name_of(file_name: &str) -> Option<String> {
    let base = file_name.rsplit('/').next().unwrap_or(file_name);
    let stem = [".ko", ".ko.xz", ".ko.zst", ".ko.gz"].iter().find_map(|suffix| base.strip_suffix(suffix))?;
    (!stem.is_empty()).then(|| normalize(stem))
}

/// A module name with `-` read as `_`.
pub fn normalize(name: &str) -> String {
    name.replace('-', "_")
}

/// One module of a `modules.dep` file.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Module {
    name: String,
    /// As written: relative to the module directory.
    path: String,
    /// Names, as listed.
    dependencies: Vec<String>,
}

/// A parsed `modules.dep`: every module with its path and what it needs.
#[derive(Debug)]
pub struct Dependencies {
    file: PathBuf,
    modules: Vec<Module>,
    by_name: HashMap<String, usize>,
}

impl Dependencies {
    /// Parses `text`, the contents of `file` (named in errors).
    pub fn parse(text: &str, file: &Path) -> Result<Dependencies, ModulesError> {
        let mut deps = Dependencies { file: file.to_owned(), modules: Vec::new(), by_name: HashMap::new() };
        for (number, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let syntax = || ModulesError::Syntax { file: file.to_owned(), line: number + 1, text: line.to_owned() };
            let (path, rest) = line.split_once(':').ok_or_else(syntax)?;
            let name = name_of(path.trim()).ok_or_else(syntax)?;
            let dependencies =
                rest.split_whitespace().map(|d| name_of(d).ok_or_else(syntax)).collect::<Result<_, _>>()?;
            // depmod writes one line per module; a repeated one keeps its first line,
            // as modprobe does.
            if !deps.by_name.contains_key(&name) {
                deps.by_name.insert(name.clone(), deps.modules.len());
                deps.modules.push(Module { name, path: path.trim().to_owned(), dependencies });
            }
        }
        Ok(deps)
    }

    /// The path of module `name`, relative to the module directory.
    pub fn path(&self, name: &str) -> Option<&str> {
        self.by_name.get(&normalize(name)).map(|&i| self.modules[i].path.as_str())
    }

    /// Every module, in the order of the file.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.modules.iter().map(|m| m.name.as_str())
    }

    /// What module `name` needs, as listed.
    pub fn dependencies_of(&self, name: &str) -> &[String] {
        self.by_name.get(&normalize(name)).map_or(&[], |&i| &self.modules[i].dependencies)
    }

    /// The modules `wanted` need, in an order the kernel can load them: every module
    /// after all it depends on, each once, otherwise in the order asked for.
    pub fn resolve(&self, wanted: &[String]) -> Result<Vec<&str>, ModulesError> {
        let mut order = Vec::new();
        let mut state = vec![Visit::New; self.modules.len()];
        for name in wanted {
            let name = normalize(name);
            let &index = self.by_name.get(&name).ok_or_else(|| ModulesError::Unknown {
                suggestion: self.suggest(&name),
                name,
                file: self.file.clone(),
            })?;
            self.visit(index, &mut state, &mut Vec::new(), &mut order)?;
        }
        Ok(order.into_iter().map(|i| self.modules[i].name.as_str()).collect())
    }

    /// Depth first, dependencies before the module; `path` is the chain being
    /// visited, to name a cycle.
    fn visit(
        &self,
        index: usize,
        state: &mut [Visit],
        path: &mut Vec<usize>,
        order: &mut Vec<usize>,
    ) -> Result<(), ModulesError> {
        match state[index] {
            Visit::Done => return Ok(()),
            Visit::Open => {
                let start = path.iter().position(|&i| i == index).unwrap_or(0);
                let mut chain: Vec<String> = path[start..].iter().map(|&i| self.modules[i].name.clone()).collect();
                chain.push(self.modules[index].name.clone());
                return Err(ModulesError::Cycle { file: self.file.clone(), chain });
            }
            Visit::New => {}
        }
        state[index] = Visit::Open;
        path.push(index);
        for dependency in &self.modules[index].dependencies {
            let &next = self.by_name.get(dependency).ok_or_else(|| ModulesError::MissingDependency {
                module: self.modules[index].name.clone(),
                dependency: dependency.clone(),
                file: self.file.clone(),
            })?;
            self.visit(next, state, path, order)?;
        }
        path.pop();
        state[index] = Visit::Done;
        order.push(index);
        Ok(())
    }

    /// A known name containing `name` or contained in it, for a typo's message.
    fn suggest(&self, name: &str) -> Option<String> {
        let mut close: Vec<&str> = self.names().filter(|n| n.contains(name) || name.contains(n)).collect();
        close.sort_by_key(|n| n.len().abs_diff(name.len()));
        close.first().map(|n| (*n).to_owned())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Visit {
    New,
    Open,
    Done,
}

/// The names listed in a `modules.builtin` file.
pub fn builtin_names(text: &str) -> Vec<String> {
    text.lines().filter_map(|line| name_of(line.trim())).collect()
}

/// A module's contents as the kernel's `finit_module` takes them: an ELF file as it
/// is, xz, zstd or gzip data decompressed (recognised by their magic numbers, not by
/// the file name). `path` is named in errors.
pub fn decompress(path: &Path, data: Vec<u8>) -> Result<Vec<u8>, ModulesError> {
    const ELF: &[u8] = b"\x7fELF";
    let failed =
        |format: &'static str, reason: String| ModulesError::Decompress { path: path.to_owned(), format, reason };
    let (format, plain) = if data.starts_with(ELF) {
        return Ok(data);
    } else if data.starts_with(b"\xfd7zXZ\0") {
        let mut out = Vec::with_capacity(data.len() * 4);
        lzma_rs::xz_decompress(&mut &data[..], &mut out).map_err(|e| failed("xz", e.to_string()))?;
        ("xz", out)
    } else if data.starts_with(b"\x28\xb5\x2f\xfd") {
        ("zstd", zstd(&data).map_err(|e| failed("zstd", e))?)
    } else if data.starts_with(b"\x1f\x8b") {
        let mut out = Vec::with_capacity(data.len() * 4);
        flate2::read::MultiGzDecoder::new(&data[..])
            .read_to_end(&mut out)
            .map_err(|e| failed("gzip", e.to_string()))?;
        ("gzip", out)
    } else {
        return Err(ModulesError::NotAModule { path: path.to_owned() });
    };
    if !plain.starts_with(ELF) {
        return Err(failed(format, "the decompressed data is not an ELF file".into()));
    }
    Ok(plain)
}

/// Every zstd frame of `data`, decoded one after another (the format allows several).
fn zstd(data: &[u8]) -> Result<Vec<u8>, String> {
    let mut input = data;
    let mut out = Vec::with_capacity(data.len() * 4);
    while !input.is_empty() {
        let mut frame = ruzstd::decoding::StreamingDecoder::new(&mut input).map_err(|e| e.to_string())?;
        frame.read_to_end(&mut out).map_err(|e| e.to_string())?;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Lines of the `modules.dep` that depmod (kmod 30) writes for Debian 12's cloud
    /// kernel (6.1), in its order: the virtio disk and bus, xfs and dm-crypt.
    const FIXTURE: &str = "\
kernel/fs/xfs/xfs.ko: kernel/lib/libcrc32c.ko
kernel/lib/libcrc32c.ko:
kernel/drivers/virtio/virtio.ko: kernel/drivers/virtio/virtio_ring.ko
kernel/drivers/virtio/virtio_ring.ko:
kernel/drivers/virtio/virtio_pci_modern_dev.ko:
kernel/drivers/virtio/virtio_pci_legacy_dev.ko:
kernel/drivers/virtio/virtio_pci.ko: kernel/drivers/virtio/virtio_pci_legacy_dev.ko kernel/drivers/virtio/virtio_pci_modern_dev.ko kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko
kernel/drivers/block/virtio_blk.ko: kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko
kernel/drivers/md/dm-mod.ko:
kernel/drivers/md/dm-crypt.ko: kernel/drivers/md/dm-mod.ko
";

    fn deps(text: &str) -> Dependencies {
        Dependencies::parse(text, Path::new("/lib/modules/6.1/modules.dep")).unwrap()
    }

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    /// Fails unless every module of `order` comes after everything it depends on.
    fn assert_loadable(deps: &Dependencies, order: &[&str]) {
        for (at, name) in order.iter().enumerate() {
            for dependency in deps.dependencies_of(name) {
                let before = order[..at].contains(&dependency.as_str());
                assert!(before, "{name} is loaded before its dependency {dependency}: {order:?}");
            }
        }
    }

    #[test]
    fn a_name_brings_what_it_needs_first_each_once() {
        let deps = deps(FIXTURE);
        let order = deps.resolve(&names(&["virtio_pci", "virtio-blk"])).unwrap();
        assert_eq!(
            order,
            ["virtio_pci_legacy_dev", "virtio_pci_modern_dev", "virtio_ring", "virtio", "virtio_pci", "virtio_blk"]
        );
        assert_loadable(&deps, &order);
        let order = deps.resolve(&names(&["xfs", "dm_crypt", "xfs", "libcrc32c"])).unwrap();
        assert_eq!(order, ["libcrc32c", "xfs", "dm_mod", "dm_crypt"]);
        assert_eq!(deps.path("dm-crypt"), Some("kernel/drivers/md/dm-crypt.ko"));
        // The same file as a distribution that compresses its modules writes it.
        let compressed = FIXTURE.replace(".ko:", ".ko.xz:").replace(".ko ", ".ko.zst ").replace(".ko\n", ".ko.zst\n");
        let compressed = self::deps(&compressed);
        assert_eq!(compressed.resolve(&names(&["virtio_blk"])).unwrap(), ["virtio_ring", "virtio", "virtio_blk"]);
        assert_eq!(compressed.path("xfs"), Some("kernel/fs/xfs/xfs.ko.xz"));
        assert_eq!(deps.resolve(&[]).unwrap(), Vec::<&str>::new());
    }

    #[test]
    fn dependencies_listed_in_any_order_still_load_first() {
        // depmod lists a module's whole closure; a chain three deep, listed backwards.
        let deps = deps("c.ko: a.ko b.ko\nb.ko: a.ko\na.ko:\n");
        assert_eq!(deps.resolve(&names(&["c"])).unwrap(), ["a", "b", "c"]);
        let deps = self::deps("c.ko: b.ko a.ko\na.ko:\nb.ko: a.ko\n");
        assert_eq!(deps.resolve(&names(&["c"])).unwrap(), ["a", "b", "c"]);
    }

    #[test]
    fn mistakes_are_named() {
        let deps = deps(FIXTURE);
        let error = deps.resolve(&names(&["virtio_bl"])).unwrap_err().to_string();
        assert_eq!(error, "no module virtio_bl in /lib/modules/6.1/modules.dep (did you mean virtio_blk?)");
        let error = self::deps("a.ko: b.ko\n").resolve(&names(&["a"])).unwrap_err().to_string();
        assert!(error.contains("a depends on b, which has no line of its own"), "{error}");
        let error = self::deps("a.ko: b.ko\nb.ko: c.ko\nc.ko: b.ko\n").resolve(&names(&["a"])).unwrap_err().to_string();
        assert!(error.ends_with("in a circle: b -> c -> b"), "{error}");
        let error = Dependencies::parse("a.ko: b.ko\nnot a line\n", Path::new("m.dep")).unwrap_err().to_string();
        assert_eq!(error, "m.dep:2: `not a line` is not a modules.dep line (`PATH.ko: DEPENDENCY.ko …`)");
    }

    #[test]
    fn names_and_builtins() {
        assert_eq!(name_of("kernel/drivers/char/hw_random/virtio-rng.ko.zst").as_deref(), Some("virtio_rng"));
        assert_eq!(name_of("virtio.ko").as_deref(), Some("virtio"));
        assert_eq!(name_of("virtio.ko.bz2"), None);
        assert_eq!(name_of(".ko"), None);
        assert_eq!(
            builtin_names("kernel/fs/ext4/ext4.ko\nkernel/drivers/virtio/virtio_pci.ko\n"),
            ["ext4", "virtio_pci"]
        );
    }

    /// `data` compressed by `tool` (xz, zstd or gzip: every machine image here has them)
    /// with `args`, as the distributions run them.
    fn compressed(tool: &str, args: &[&str], data: &[u8]) -> Vec<u8> {
        use std::io::Write as _;
        let mut child = std::process::Command::new(tool)
            .args(args)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {tool}: {e}"));
        let mut stdin = child.stdin.take().unwrap();
        let data = data.to_vec();
        let writer = std::thread::spawn(move || stdin.write_all(&data));
        let output = child.wait_with_output().unwrap();
        writer.join().unwrap().unwrap();
        assert!(output.status.success(), "{tool} {args:?} failed");
        output.stdout
    }

    #[test]
    fn xz_zstd_and_gzip_modules_are_decompressed_to_the_same_elf() {
        let mut module = b"\x7fELF".to_vec();
        module.extend((0..200_000u32).flat_map(|n| (n % 251).to_le_bytes()));
        let path = Path::new("m.ko");
        assert_eq!(decompress(path, module.clone()).unwrap(), module, "an ELF file is taken as it is");
        for (tool, args) in [
            ("xz", &["--check=crc32", "--lzma2=dict=1MiB", "-c"][..]),
            ("xz", &["-c"][..]),
            ("zstd", &["-q", "-c", "-19"][..]),
            ("gzip", &["-c", "-9"][..]),
        ] {
            let packed = compressed(tool, args, &module);
            assert!(packed.len() < module.len(), "{tool} {args:?} did not compress");
            let plain = decompress(path, packed).unwrap_or_else(|e| panic!("{tool} {args:?}: {e}"));
            assert!(plain == module, "{tool} {args:?}: decompressed data differs");
        }
        let mut packed = compressed("zstd", &["-q", "-c"], b"not an elf file");
        let error = decompress(path, packed.clone()).unwrap_err().to_string();
        assert!(error.contains("the decompressed data is not an ELF file"), "{error}");
        let mut module_packed = compressed("xz", &["--check=crc32", "-c"], &module);
        let last = module_packed.len() - 1;
        module_packed[last / 2] ^= 0x55;
        let error = decompress(path, module_packed).unwrap_err().to_string();
        assert!(error.starts_with("m.ko: cannot decompress (xz): "), "{error}");
        packed.truncate(packed.len() - 5);
        assert!(decompress(path, packed).is_err(), "a truncated zstd frame decoded");
        let error = decompress(path, b"PK\x03\x04".to_vec()).unwrap_err().to_string();
        assert_eq!(error, "m.ko: not a kernel module: neither an ELF file nor xz, zstd or gzip data");
    }
}
