//! Loading the initramfs's kernel modules: `lib/modules/NAME.ko`, decompressed by
//! `blankslate initrd`, with the `modules.dep` it wrote in load order.

use std::path::Path;

use super::{Failure, Step};
use crate::initrd::MODULES_DIR;
use crate::modules::{self, Dependencies};

const HINT: &str = "build the initramfs with `blankslate initrd --modules /lib/modules/VERSION --module NAME` for \
                    every module in blankslate.modules= (their dependencies come along)";

/// Loads what `names` need (the named modules and their dependencies, each once), or
/// with no names every module of the initramfs, in the order it lists them. Returns
/// the names loaded; one already loaded (or built in) is fine.
pub(super) fn load(names: &[String]) -> Result<Vec<String>, Failure> {
    let dir = Path::new("/").join(MODULES_DIR);
    let dep_file = dir.join(modules::DEP_FILE);
    let text = match std::fs::read_to_string(&dep_file) {
        Ok(text) => text,
        // An initramfs without modules: fine unless some were asked for.
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(error) => return Err(error).step(&format!("read {}", dep_file.display()), "rebuild the initramfs"),
    };
    let deps =
        Dependencies::parse(&text, &dep_file).step("read the initramfs's module list", "rebuild the initramfs")?;
    let order: Vec<&str> = if names.is_empty() {
        deps.names().collect()
    } else {
        deps.resolve(names).step("choose the modules in blankslate.modules=", HINT)?
    };
    for name in &order {
        let path = dir.join(format!("{name}.ko"));
        let file = std::fs::File::open(&path).step(&format!("open the module {}", path.display()), HINT)?;
        match rustix::system::finit_module(&file, c"", 0) {
            Ok(()) | Err(rustix::io::Errno::EXIST) => {}
            Err(errno) => {
                return Err(errno).step(
                    &format!("load the module {name}"),
                    "the modules must come from the running kernel's own /lib/modules/VERSION",
                );
            }
        }
    }
    Ok(order.into_iter().map(str::to_owned).collect())
}
