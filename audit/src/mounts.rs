//! The mount table below a root, as the audit wants it: a set (see
//! [`blankslate_sys::mount::below`]).

use std::path::Path;

use crate::MountPoints;

/// The mount points strictly below `root`, as absolute paths inside it (`/persist`,
/// `/var/log`, …).
pub fn below(root: &Path) -> MountPoints {
    blankslate_sys::mount::below(root).into_iter().collect()
}
