//! Which `/etc` entries are secrets: their content is readable by root alone wherever
//! blankslate keeps it (the store, a generation's `declaration.json`, reports).
//!
//! An entry is secret when its own mode keeps others from reading it (a copy without
//! the world-read bit), when a directory entry above it keeps others out (no
//! world-execute bit: `ssl/private` is `0710`), or when it is a file known to hold a
//! secret whatever its mode says (`shadow`, SSH host keys, what lies below
//! `wireguard/`). One rule, for the declaration and for a built manifest alike.

/// What the rule needs to know of one entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Access {
    pub directory: bool,
    /// The permission bits of a copy or a directory; `None` for a link.
    pub mode: Option<u32>,
}

/// Files of `/etc` (relative paths) that hold password hashes or credentials.
const KNOWN_FILES: [&str; 9] = [
    "shadow",
    "gshadow",
    "shadow-",
    "gshadow-",
    "security/opasswd",
    "ppp/chap-secrets",
    "ppp/pap-secrets",
    "ipsec.secrets",
    "krb5.keytab",
];

/// Directories of `/etc` whose every file is a key or holds one.
const KNOWN_DIRECTORIES: [&str; 5] =
    ["ssl/private", "pki/tls/private", "ipsec.d/private", "wireguard", "NetworkManager/system-connections"];

/// Whether `path` (relative to `/etc`) is known to hold a secret whatever its mode:
/// the shadow files, a private key (`*_key`: SSH host keys), anything below a key or
/// VPN directory.
pub fn is_known_secret(path: &str) -> bool {
    let name = path.rsplit('/').next().unwrap_or(path);
    KNOWN_FILES.contains(&path)
        || name.ends_with("_key")
        || KNOWN_DIRECTORIES.iter().any(|dir| path.strip_prefix(dir).is_some_and(|rest| rest.starts_with('/')))
}

/// Whether a file with `mode` may be read by anyone.
pub fn world_readable(mode: u32) -> bool {
    mode & 0o004 != 0
}

/// Whether the contents of the file entry at `path` (relative to `/etc`) are secret;
/// `lookup` gives the access of any entry of the same `/etc`.
pub fn is_secret(path: &str, lookup: impl Fn(&str) -> Option<Access>) -> bool {
    if is_known_secret(path) {
        return true;
    }
    if let Some(Access { directory: false, mode: Some(mode) }) = lookup(path) {
        if !world_readable(mode) {
            return true;
        }
    }
    super::paths::ancestors(path)
        .any(|dir| matches!(lookup(dir), Some(Access { directory: true, mode: Some(mode) }) if mode & 0o001 == 0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_secrets() {
        for path in ["shadow", "gshadow", "ssh/ssh_host_ed25519_key", "ssl/private/a.pem", "wireguard/wg0.conf"] {
            assert!(is_known_secret(path), "{path}");
        }
        for path in ["passwd", "ssh/ssh_host_ed25519_key.pub", "ssl/private", "ssl/certs/a.pem", "wireguardx/a"] {
            assert!(!is_known_secret(path), "{path}");
        }
    }

    #[test]
    fn modes_and_directories_make_secrets() {
        let entries = |path: &str| match path {
            "motd" => Some(Access { directory: false, mode: None }),
            "sudoers" => Some(Access { directory: false, mode: Some(0o440) }),
            "issue" => Some(Access { directory: false, mode: Some(0o644) }),
            "keys" => Some(Access { directory: true, mode: Some(0o710) }),
            "open" => Some(Access { directory: true, mode: Some(0o711) }),
            _ => None,
        };
        assert!(!is_secret("motd", entries));
        assert!(is_secret("sudoers", entries));
        assert!(!is_secret("issue", entries));
        assert!(is_secret("keys/deep/a", entries), "below a directory others cannot enter");
        assert!(!is_secret("open/a", entries), "others may enter, and read what they can name");
        assert!(is_secret("shadow", entries), "known, with no entry of its own here");
    }
}
