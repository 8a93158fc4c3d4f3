//! The mount table: which directories below a root are mount points (and so are
//! never entered), read from `/proc/thread-self/mountinfo` — the calling thread's
//! own mount namespace, which is what a test in a per-thread namespace needs.

use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use crate::MountPoints;

/// Undoes the mount table's octal escapes (`\040` for a space, `\012` for a newline…).
pub fn unescape(field: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(field.len());
    let mut i = 0;
    while i < field.len() {
        if field[i] == b'\\' && i + 3 < field.len() && field[i + 1..i + 4].iter().all(|b| (b'0'..=b'7').contains(b)) {
            let value = field[i + 1..i + 4].iter().fold(0u32, |n, b| n * 8 + u32::from(b - b'0'));
            out.push(u8::try_from(value & 0xff).unwrap_or(0));
            i += 4;
        } else {
            out.push(field[i]);
            i += 1;
        }
    }
    out
}

/// Every mount point in a mountinfo text (field 5), unescaped.
pub fn mount_points(text: &[u8]) -> Vec<Vec<u8>> {
    text.split(|&b| b == b'\n').filter_map(|line| line.split(|&b| b == b' ').nth(4)).map(unescape).collect()
}

/// The mount points strictly below `root`, as absolute paths inside it (`/persist`,
/// `/var/log`, …).
pub fn below(root: &Path) -> MountPoints {
    let text = std::fs::read("/proc/thread-self/mountinfo")
        .or_else(|_| std::fs::read("/proc/self/mountinfo"))
        .unwrap_or_default();
    let root = root.as_os_str().as_bytes();
    let root = if root == b"/" { &b""[..] } else { root.strip_suffix(b"/").unwrap_or(root) };
    mount_points(&text)
        .into_iter()
        .filter_map(|point| {
            let rest = point.strip_prefix(root)?;
            (rest.len() > 1 && rest[0] == b'/').then(|| rest.to_vec())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mountinfo_fields_are_unescaped() {
        let text = b"36 35 98:0 /mnt1 /a\\040b rw - ext3 /dev/root rw\n37 35 0:5 / /x\\012y rw - tmpfs t rw\n";
        assert_eq!(mount_points(text), vec![b"/a b".to_vec(), b"/x\ny".to_vec()]);
        assert_eq!(unescape(b"\\134"), b"\\");
    }
}
