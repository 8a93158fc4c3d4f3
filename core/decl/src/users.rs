//! Names from a root's `/etc/passwd` and `/etc/group`, read as files (never NSS):
//! the target system's own database, not the machine running blankslate.

use std::collections::HashMap;

/// The users and groups a system knows, with their numeric ids.
#[derive(Debug, Clone, Default)]
pub struct UserDb {
    users: HashMap<String, u32>,
    groups: HashMap<String, u32>,
    /// Each user's home directory (`passwd`'s sixth field).
    homes: HashMap<String, String>,
    source: String,
}

impl UserDb {
    /// Reads `passwd` and `group` file contents. Malformed lines are skipped: they
    /// are the system's business, and a partial database only weakens warnings.
    pub fn from_texts(passwd: &str, group: &str, source: impl Into<String>) -> UserDb {
        UserDb { users: ids(passwd, 2), groups: ids(group, 2), homes: homes(passwd), source: source.into() }
    }

    /// Reads `etc/passwd` and `etc/group` of `root` as programs inside it would see
    /// them, following a managed link through `/etc/static` without ever leaving the
    /// root. Missing files make an empty database.
    pub fn from_root(root: &blankslate_sys::fs::Dir) -> UserDb {
        let read = |name: &str| {
            root.read_in_root(format!("etc/{name}"))
                .map(|b| String::from_utf8_lossy(&b).into_owned())
                .unwrap_or_default()
        };
        UserDb::from_texts(&read("passwd"), &read("group"), root.path().join("etc/passwd").display().to_string())
    }

    /// Whether any user is known at all (a root without /etc/passwd knows none).
    pub fn is_empty(&self) -> bool {
        self.users.is_empty()
    }

    /// Adds the entries of another pair of files (say, the declaration's own
    /// `/etc/passwd`), keeping existing ids.
    pub fn extend_from_texts(&mut self, passwd: &str, group: &str) {
        for (name, id) in ids(passwd, 2) {
            self.users.entry(name).or_insert(id);
        }
        for (name, id) in ids(group, 2) {
            self.groups.entry(name).or_insert(id);
        }
        for (name, home) in homes(passwd) {
            self.homes.entry(name).or_insert(home);
        }
    }

    pub fn has_user(&self, name: &str) -> bool {
        self.users.contains_key(name)
    }

    pub fn has_group(&self, name: &str) -> bool {
        self.groups.contains_key(name)
    }

    /// The id of a user name; `+N` is the number N (as NixOS writes owners), and
    /// `root` is 0 even where no passwd says so.
    pub fn uid(&self, name: &str) -> Option<u32> {
        id(name, &self.users)
    }

    /// The id of a group name, read like [`UserDb::uid`].
    pub fn gid(&self, name: &str) -> Option<u32> {
        id(name, &self.groups)
    }

    /// A user's home directory, as `passwd` gives it.
    pub fn home(&self, name: &str) -> Option<&str> {
        self.homes.get(name).map(String::as_str)
    }

    /// The first user name with this id (`root` for 0 even without a passwd).
    pub fn user_name(&self, uid: u32) -> Option<String> {
        name_of(uid, &self.users)
    }

    /// The first group name with this id.
    pub fn group_name(&self, gid: u32) -> Option<String> {
        name_of(gid, &self.groups)
    }

    /// Where the names came from, for messages.
    pub fn source(&self) -> &str {
        &self.source
    }
}

fn name_of(id: u32, known: &HashMap<String, u32>) -> Option<String> {
    let mut names: Vec<&String> = known.iter().filter(|(_, i)| **i == id).map(|(n, _)| n).collect();
    names.sort();
    names.first().map(|n| (*n).clone()).or((id == 0).then(|| "root".to_owned()))
}

fn id(name: &str, known: &HashMap<String, u32>) -> Option<u32> {
    let number = name.strip_prefix('+').and_then(|n| n.parse().ok());
    number.or_else(|| known.get(name).copied()).or((name == "root").then_some(0))
}

/// `name:x:ID:...` lines into a map, the id in column `column`.
fn ids(text: &str, column: usize) -> HashMap<String, u32> {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| {
            let fields: Vec<&str> = line.split(':').collect();
            let id = fields.get(column)?.parse().ok()?;
            let name = fields.first().filter(|n| !n.is_empty())?;
            Some(((*name).to_owned(), id))
        })
        .collect()
}

/// `name:x:uid:gid:gecos:home:shell` lines into a map of names to homes.
fn homes(passwd: &str) -> HashMap<String, String> {
    passwd
        .lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| {
            let fields: Vec<&str> = line.split(':').collect();
            let (name, home) = (fields.first().filter(|n| !n.is_empty())?, fields.get(5).filter(|h| !h.is_empty())?);
            Some(((*name).to_owned(), (*home).to_owned()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_passwd_and_group() {
        let db = UserDb::from_texts(
            "root:x:0:0::/root:/bin/sh\nbroken\npostgres:x:105:110::/var/lib/postgresql:/bin/false\n",
            "root:x:0:\nusers:x:100:alice\n",
            "test",
        );
        assert_eq!(db.uid("postgres"), Some(105));
        assert_eq!(db.home("postgres"), Some("/var/lib/postgresql"));
        assert_eq!(db.home("broken"), None);
        assert_eq!(db.gid("users"), Some(100));
        assert!(!db.has_user("broken"));
        assert_eq!((db.uid("+42"), db.uid("root"), db.uid("nobody")), (Some(42), Some(0), None));
        assert_eq!(UserDb::default().gid("root"), Some(0), "root is 0 without any group file");
    }
}
