//! `/etc/fstab` entries that a blankslate root cannot take: the root's own (remounting
//! the tmpfs with `errors=remount-ro` fails, and `systemd-remount-fs` with it), a
//! volume's mount point (blankslate mounts it at boot), and anything at or above a
//! persisted path (the partition mounted there would hide the volume's data). `adopt`
//! comments them out; the declaration check warns about those an etc tree still has.

use crate::paths::is_inside;

/// An fstab line that mounts something: its mount point (unescaped) and the line.
#[derive(Debug, PartialEq, Eq)]
pub struct Mount<'a> {
    pub mount_point: String,
    pub line: &'a str,
}

/// Each line of `text` that mounts something (not a comment, at least two fields),
/// with its line number (from 1).
pub fn mounts(text: &str) -> impl Iterator<Item = (usize, Mount<'_>)> {
    text.lines().enumerate().filter_map(|(index, line)| {
        let mut fields = line.split_whitespace();
        fields.next().filter(|spec| !spec.starts_with('#'))?;
        let mount_point = unescape(fields.next()?);
        Some((index + 1, Mount { mount_point, line }))
    })
}

/// Why an entry mounting at `mount_point` cannot stay on a root whose persisted paths
/// are `persisted` (absolute) and whose volumes are mounted at `volumes`, if it cannot.
pub fn conflict(mount_point: &str, persisted: &[&str], volumes: &[&str]) -> Option<String> {
    let at_or_above = |path: &str| mount_point == path || is_inside(path, mount_point);
    if mount_point == "/" {
        return Some("the root is a tmpfs blankslate makes; remounting it with these options fails".into());
    }
    if let Some(volume) = volumes.iter().find(|volume| at_or_above(volume)) {
        return Some(format!("blankslate mounts the volume at {volume} at boot"));
    }
    persisted
        .iter()
        .find(|path| at_or_above(path))
        .map(|path| format!("{path} is persisted: the volume holds its data now, and this would hide it"))
}

/// An fstab field as the path it means (`\040` is a space, as fstab(5) escapes it).
fn unescape(field: &str) -> String {
    field.replace("\\040", " ").replace("\\011", "\t").replace("\\134", "\\")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mounts_skip_comments_and_blank_lines_and_unescape() {
        let text = "# a comment\n\n  #indented\nUUID=1 /srv/my\\040data ext4 defaults 0 2\nnone\n/dev/sdb /boot ext4\n";
        let found: Vec<(usize, String)> = mounts(text).map(|(n, m)| (n, m.mount_point)).collect();
        assert_eq!(found, [(4, "/srv/my data".to_owned()), (6, "/boot".to_owned())]);
    }

    #[test]
    fn conflicts_are_the_root_a_volume_and_what_would_hide_a_persisted_path() {
        let (persisted, volumes) = (["/home", "/var/lib/postgresql"], ["/persist"]);
        assert!(conflict("/", &persisted, &volumes).unwrap().starts_with("the root is a tmpfs"));
        assert!(conflict("/persist", &persisted, &volumes).unwrap().contains("volume at /persist"));
        assert!(conflict("/home", &persisted, &volumes).unwrap().starts_with("/home is persisted"));
        assert!(conflict("/var", &persisted, &volumes).unwrap().starts_with("/var/lib/postgresql is persisted"));
        for fine in ["/boot/efi", "/srv/data", "none", "/home2"] {
            assert_eq!(conflict(fine, &persisted, &volumes), None, "{fine}");
        }
    }
}
