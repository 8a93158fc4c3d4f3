//! The adopted system's `/etc/fstab`, rewritten for a root that blankslate makes.
//!
//! An installed system's fstab mounts its root (`/ ext4 errors=remount-ro`: remounting
//! the tmpfs root with that fails, and so does `systemd-remount-fs`), and may mount
//! partitions where the volume now holds the data (`/home` on its own partition would
//! hide the persisted `/home`). Those entries are commented out, each with why; every
//! other entry (swap, the ESP at `/boot/efi`, a data disk elsewhere) stays as it was,
//! and a header says what was done.

use std::fmt::Write as _;

use blankslate_decl::fstab::{conflict, mounts};

/// What the rewrite did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Rewritten {
    pub text: String,
    /// Each entry taken out: (its mount point, why).
    pub taken_out: Vec<(String, String)>,
}

/// Rewrites `text` for a root whose persisted paths are `persisted` (absolute) and
/// whose volumes are mounted at `volumes` (each entry that conflicts is commented out,
/// as [`conflict`] says why). `None` if nothing in it needs to change.
pub fn rewrite(text: &str, persisted: &[&str], volumes: &[&str]) -> Option<Rewritten> {
    let mut out = Rewritten::default();
    let mut why_by_line = std::collections::BTreeMap::new();
    for (number, mount) in mounts(text) {
        if let Some(why) = conflict(&mount.mount_point, persisted, volumes) {
            out.taken_out.push((mount.mount_point, why.clone()));
            why_by_line.insert(number, why);
        }
    }
    if out.taken_out.is_empty() {
        return None;
    }
    let mut body = String::new();
    for (index, line) in text.lines().enumerate() {
        if let Some(why) = why_by_line.get(&(index + 1)) {
            let _ = writeln!(body, "# blankslate: {why}:\n# {line}");
        } else {
            let _ = writeln!(body, "{line}");
        }
    }
    out.text = format!(
        "# Rewritten by `blankslate adopt`: / is a tmpfs that blankslate makes at every boot, and the\n\
         # persisted paths come from its volume; the entries that would mount over either are\n\
         # commented out below, each with why. The others are as they were.\n{body}"
    );
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const INSTALLED: &str = "\
# /etc/fstab: static file system information.
UUID=1111 /               ext4    errors=remount-ro 0       1
UUID=2222 /boot/efi       vfat    umask=0077      0       1
UUID=3333 /home           ext4    defaults        0       2
UUID=4444 none            swap    sw              0       0
UUID=5555 /srv/data       xfs     defaults        0       2
/dev/sdb  /persist        ext4    defaults        0       2
";

    #[test]
    fn the_root_the_volume_and_what_hides_persisted_data_are_taken_out_with_why() {
        let rewritten = rewrite(INSTALLED, &["/home", "/var/lib", "/boot"], &["/persist"]).unwrap();
        let taken: Vec<&str> = rewritten.taken_out.iter().map(|(path, _)| path.as_str()).collect();
        assert_eq!(taken, ["/", "/home", "/persist"]);
        let text = &rewritten.text;
        assert!(text.contains("# blankslate: the root is a tmpfs blankslate makes"), "{text}");
        assert!(text.contains("# UUID=1111 /               ext4    errors=remount-ro 0       1\n"), "{text}");
        assert!(text.contains("# blankslate: /home is persisted"), "{text}");
        // Kept as they were: the ESP (inside the persisted /boot, mounted on top as
        // before), swap, a data disk elsewhere.
        for kept in ["\nUUID=2222 /boot/efi", "\nUUID=4444 none", "\nUUID=5555 /srv/data"] {
            assert!(text.contains(kept), "{kept} in {text}");
        }
        assert!(text.starts_with("# Rewritten by `blankslate adopt`"), "{text}");
    }

    #[test]
    fn an_fstab_with_nothing_to_take_out_is_left_alone() {
        assert_eq!(rewrite("# empty\nUUID=4444 none swap sw 0 0\n", &["/home"], &["/persist"]), None);
        assert_eq!(rewrite("", &[], &["/persist"]), None);
    }

    #[test]
    fn a_mount_point_above_a_persisted_path_would_hide_it() {
        let rewritten = rewrite("/dev/sdc /var ext4 defaults 0 2\n", &["/var/lib/postgresql"], &["/persist"]).unwrap();
        assert_eq!(rewritten.taken_out[0].0, "/var");
        let spaced =
            rewrite("/dev/sdd /srv/my\\040data ext4 defaults 0 2\n", &["/srv/my data"], &["/persist"]).unwrap();
        assert_eq!(spaced.taken_out[0].0, "/srv/my data");
    }
}
