//! Builds `/etc` into the store: one object holding `manifest.json`, its chunk index
//! (`manifest.index`) and an `etc/` tree that `/etc/static` will point at.
//!
//! Texts and source files are copied into the object, so a generation is
//! self-contained: a source that lives outside the store (in a user's checkout) would
//! not exist at boot. Entries of a NixOS etc tree keep their symlinks into `/nix/store`.
//! Directory sources and glob sources (`source = "dir/*"`) expand to one entry per file;
//! a declared directory (`directory = true`) is one entry, with its mode and owner.
//! Sources and etc trees are opened and read through `decl::source`, the same code
//! `check` opens them with (no symlink out of the declaration's directory, no FIFOs,
//! devices or kernel files, a size limit).
//!
//! Secrets (`decl::secret`: copies others may not read, what lies below a directory
//! others may not enter, known secret files) are root-only files in the store, and so
//! is the manifest of an `/etc` that has any (it holds their content hashes).

#![forbid(unsafe_code)]

pub mod keep;
mod nixos;
mod tree;

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};

use blankslate_decl::source::{SourceError, Sources};
use blankslate_decl::{Declaration, EtcContents, EtcMode, Mode, secret};
use blankslate_state::generation::{Built, GenerationError, LockedState};
use blankslate_state::manifest::{
    self, EtcKind, MANIFEST_FILE, MANIFEST_INDEX_FILE, Manifest, ManifestEntry, TREE_DIR, content_hash,
};
use blankslate_state::store::{Store, StoreError, Tree};

pub use nixos::from_nixos_tree;
pub use tree::from_tree;

/// The name etc objects get in the store.
pub const OBJECT_NAME: &str = "etc";

#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("cannot read {}: {source}", path.display())]
    Read { path: PathBuf, source: std::io::Error },
    #[error("/etc entry `{entry}`: source {error}")]
    Source { entry: String, error: SourceError },
    #[error("etc tree {tree}: {error}")]
    Tree { tree: String, error: SourceError },
    #[error("cannot open the sources: {0}")]
    Sources(SourceError),
    #[error("/etc/{path} is persisted (from {volume}) and also an /etc entry ({origin})")]
    Persisted { path: String, volume: String, origin: String },
    #[error("/etc entry `{path}` ({origin}) is inside `/etc/{top}`, where blankslate {what}")]
    Reserved { path: String, top: &'static str, what: &'static str, origin: String },
    #[error("/etc entry `{path}` is declared twice (the second time {origin})")]
    Duplicate { path: String, origin: String },
    #[error("/etc entry `{inner}` needs `{outer}` to be a directory, but it is an entry of its own")]
    FileAsDirectory { inner: String, outer: String },
    #[error("`{}` is not a NixOS etc tree: {reason}", path.display())]
    NotNixosTree { path: PathBuf, reason: String },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Generation(#[from] GenerationError),
}

pub type Result<T> = std::result::Result<T, BuildError>;

/// One entry ready for the store: its manifest record and what the tree holds.
#[derive(Debug, Clone)]
pub struct BuiltEntry {
    pub manifest: ManifestEntry,
    pub node: Tree,
}

/// A built `/etc`: every entry keyed by its path relative to `/etc`.
#[derive(Debug, Clone, Default)]
pub struct EtcBuild {
    pub entries: BTreeMap<String, BuiltEntry>,
}

impl EtcBuild {
    /// Adds an entry; `origin` says where it came from, for the duplicate error.
    pub fn insert(&mut self, path: String, entry: BuiltEntry, origin: &str) -> Result<()> {
        if let Some((top, what)) = blankslate_decl::layout::reserved(&path) {
            return Err(BuildError::Reserved { path, top, what, origin: origin.to_owned() });
        }
        if self.entries.contains_key(&path) {
            return Err(BuildError::Duplicate { path, origin: origin.to_owned() });
        }
        self.entries.insert(path, entry);
        Ok(())
    }

    /// Adds every entry of `other` (say, a NixOS tree to a declaration's entries).
    pub fn merge(&mut self, other: EtcBuild, origin: &str) -> Result<()> {
        for (path, entry) in other.entries {
            self.insert(path, entry, origin)?;
        }
        Ok(())
    }

    /// The contents of the entry at `path` if it is a file: what `/etc/static/PATH`
    /// will hold.
    pub fn contents(&self, path: &str) -> Option<Vec<u8>> {
        match &self.entries.get(path)?.node {
            Tree::File { contents, .. } => Some(contents.clone()),
            _ => None,
        }
    }

    pub fn manifest(&self) -> Manifest {
        let mut manifest = Manifest::new();
        manifest.entries = self.entries.iter().map(|(path, e)| (path.clone(), e.manifest.clone())).collect();
        manifest
    }

    /// The store tree: `manifest.json`, `manifest.index` and `etc/` with one node per
    /// entry, secrets (and then the manifest and its index) readable by root alone.
    pub fn tree(&self) -> Result<Tree> {
        let mut etc = BTreeMap::new();
        let mut secrets = false;
        for (path, entry) in &self.entries {
            let mut node = entry.node.clone();
            if let Tree::File { secret, .. } = &mut node {
                *secret = secret::is_secret(path, |p| self.entries.get(p).map(|e| e.manifest.access()));
                secrets |= *secret;
            }
            place(&mut etc, path, node)?;
        }
        let manifest = self.manifest().to_json();
        // The index holds hashes of the manifest's runs: as readable as the manifest.
        let index = manifest::index(&manifest).expect("a manifest as to_json writes it");
        let file = |text: String| if secrets { Tree::secret_file(text) } else { Tree::file(text) };
        let mut top = BTreeMap::new();
        top.insert(OsString::from(MANIFEST_FILE), file(manifest));
        top.insert(OsString::from(MANIFEST_INDEX_FILE), file(index));
        top.insert(OsString::from(TREE_DIR), Tree::Directory(etc));
        Ok(Tree::Directory(top))
    }

    /// The name [`EtcBuild::add_to_store`] gives it, without writing anything.
    pub fn object_name(&self) -> Result<String> {
        Ok(Store::object_name(OBJECT_NAME, &self.tree()?)?)
    }

    /// Adds this `/etc` to the store of `state`, then `declaration` as a generation
    /// with it, and makes that generation current (`build`, `adopt`, `sandbox`).
    pub fn build_generation(&self, state: &LockedState, declaration: &Declaration) -> Result<Built> {
        let etc_object = self.add_to_store(state.store())?;
        Ok(state.build(declaration, &[("etc", &etc_object)])?)
    }

    /// Adds the build to the store; returns the object's name.
    pub fn add_to_store(&self, store: &Store) -> Result<String> {
        Ok(store.add(OBJECT_NAME, &self.tree()?)?)
    }
}

/// Puts `node` at `path` (slash-separated) in a directory map, creating directories.
fn place(dir: &mut BTreeMap<OsString, Tree>, path: &str, node: Tree) -> Result<()> {
    let (first, rest) = match path.split_once('/') {
        Some((first, rest)) => (first, Some(rest)),
        None => (path, None),
    };
    let Some(rest) = rest else {
        match (dir.get(std::ffi::OsStr::new(first)), &node) {
            // A directory entry whose own entries were placed first keeps them.
            (Some(Tree::Directory(_)), Tree::Directory(_)) => {}
            _ => {
                dir.insert(first.into(), node);
            }
        }
        return Ok(());
    };
    let child = dir.entry(first.into()).or_insert_with(|| Tree::Directory(BTreeMap::new()));
    match child {
        Tree::Directory(entries) => place(entries, rest, node),
        _ => Err(BuildError::FileAsDirectory { inner: path.to_owned(), outer: first.to_owned() }),
    }
}

/// Builds the declaration's `/etc` in memory, and a NixOS etc tree's (its `etc/`
/// directory) with it if one is given.
pub fn build(declaration: &Declaration, nixos_etc: Option<&Path>) -> Result<EtcBuild> {
    let mut etc = from_declaration(declaration)?;
    if let Some(tree) = nixos_etc {
        etc.merge(from_nixos_tree(tree)?, &format!("in the NixOS tree {}", tree.display()))?;
    }
    Ok(etc)
}

/// Builds the declaration's `[etc]` entries and its `[etc_tree]`. A persisted `/etc`
/// path that the tree also holds is an error: validation cannot see into the tree.
pub fn from_declaration(declaration: &Declaration) -> Result<EtcBuild> {
    // Opened at the first source: a declaration of texts alone costs what it did.
    let sources = std::cell::OnceCell::new();
    let mut build = match &declaration.etc_tree {
        Some(tree) => from_tree(opened(&sources, declaration)?, &tree.source)?,
        None => EtcBuild::default(),
    };
    for persisted in declaration.entries() {
        let Some(path) = persisted.path.strip_prefix("/etc/") else { continue };
        // A directory the tree records at or below a persisted path is the volume's:
        // the persisted path's own owner and mode govern it (`persist add` of a
        // directory the tree still holds must not make the declaration unbuildable).
        let below = format!("{path}/");
        build.entries.retain(|key, entry| {
            entry.manifest.kind != EtcKind::Directory || (key != path && !key.starts_with(&below))
        });
        if build.entries.contains_key(path) {
            let origin = format!("in the etc tree {}", declaration.etc_tree.as_ref().map_or("", |t| &t.source));
            return Err(BuildError::Persisted { path: path.to_owned(), volume: persisted.root.to_owned(), origin });
        }
    }
    for (path, entry) in &declaration.etc {
        let files = match &entry.contents {
            EtcContents::Text(text) => vec![(path.clone(), text.as_bytes().to_vec(), false)],
            EtcContents::Source(source) => {
                let mut files = Vec::new();
                opened(&sources, declaration)?
                    .expand(path, source, &mut |file| {
                        let (key, executable) = (file.key.clone(), file.executable());
                        files.push((key, file.read()?, executable));
                        Ok(())
                    })
                    .map_err(|error| BuildError::Source { entry: path.clone(), error })?;
                files
            }
            EtcContents::Directory(_) => {
                let mode = match entry.mode {
                    EtcMode::Copy(mode) => mode,
                    EtcMode::Link => Mode::DIRECTORY,
                };
                let manifest = ManifestEntry::directory(mode.to_string(), entry.user.clone(), entry.group.clone());
                let node = Tree::Directory(BTreeMap::new());
                build.insert(path.clone(), BuiltEntry { manifest, node }, "as a declared directory")?;
                continue;
            }
        };
        for (key, bytes, executable) in files {
            let (kind, mode) = match entry.mode {
                EtcMode::Link => (EtcKind::Link, None),
                EtcMode::Copy(mode) => (EtcKind::Copy, Some(mode.to_string())),
            };
            let manifest = ManifestEntry {
                kind,
                hash: content_hash(&bytes),
                mode,
                user: entry.user.clone(),
                group: entry.group.clone(),
            };
            let node = Tree::File { contents: bytes, executable, secret: false };
            build.insert(key, BuiltEntry { manifest, node }, &format!("from the source of `{path}`"))?;
        }
    }
    Ok(build)
}

/// The declaration's sources, opened once, when first needed.
fn opened<'c>(cell: &'c std::cell::OnceCell<Sources>, declaration: &Declaration) -> Result<&'c Sources> {
    if let Some(sources) = cell.get() {
        return Ok(sources);
    }
    let sources = Sources::of(declaration).map_err(BuildError::Sources)?;
    Ok(cell.get_or_init(|| sources))
}

fn read(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|source| BuildError::Read { path: path.to_path_buf(), source })
}

fn is_executable(meta: &std::fs::Metadata) -> bool {
    use std::os::unix::fs::PermissionsExt;
    meta.permissions().mode() & 0o111 != 0
}

#[cfg(test)]
mod tests {
    use std::ffi::OsStr;

    use super::*;

    fn declaration(text: &str, dir: &Path) -> Declaration {
        let file = dir.join("decl.toml");
        let checked = blankslate_decl::check(&file, text, None);
        checked.declaration.unwrap_or_else(|| panic!("{}", checked.diagnostics))
    }

    #[test]
    fn texts_files_directories_and_globs_expand_to_entries() {
        let scratch = tempfile::tempdir().unwrap();
        let files = scratch.path().join("files");
        std::fs::create_dir_all(files.join("nginx/sites")).unwrap();
        std::fs::write(files.join("nginx/nginx.conf"), "events {}\n").unwrap();
        std::fs::write(files.join("nginx/sites/default"), "server {}\n").unwrap();
        std::fs::create_dir_all(files.join("profile.d")).unwrap();
        std::fs::write(files.join("profile.d/a.sh"), "A=1\n").unwrap();
        std::fs::write(files.join("profile.d/b.sh"), "B=1\n").unwrap();
        std::fs::write(files.join("profile.d/README"), "not a script\n").unwrap();
        std::fs::write(files.join("sudoers"), "root ALL=(ALL) ALL\n").unwrap();
        let text = r#"
version = 1
[etc."hosts"]
text = "127.0.0.1 localhost\n"
[etc."nginx"]
source = "files/nginx"
[etc."profile.d"]
source = "files/profile.d/*.sh"
[etc."sudoers"]
source = "files/sudoers"
mode = "0440"
"#;
        let build = from_declaration(&declaration(text, scratch.path())).unwrap();
        let paths: Vec<&str> = build.entries.keys().map(String::as_str).collect();
        assert_eq!(
            paths,
            ["hosts", "nginx/nginx.conf", "nginx/sites/default", "profile.d/a.sh", "profile.d/b.sh", "sudoers"]
        );
        let sudoers = &build.entries["sudoers"].manifest;
        assert_eq!((&sudoers.kind, sudoers.mode.as_deref()), (&EtcKind::Copy, Some("0440")));
        assert_eq!(sudoers.hash, content_hash(b"root ALL=(ALL) ALL\n"));
        assert_eq!(build.entries["hosts"].manifest.kind, EtcKind::Link);
    }

    /// What changed between `check` and `build` is judged again: a glob that matches
    /// nothing any more, a file swapped for a FIFO or for a symlink out of the
    /// declaration's directory. Two entries that need one path to be a file and a
    /// directory are refused when the tree is made (check refuses them first).
    #[test]
    fn what_changed_since_the_check_is_refused_at_build() {
        let scratch = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("shadow"), "root:secret:1::::::\n").unwrap();
        std::fs::create_dir(scratch.path().join("d")).unwrap();
        std::fs::write(scratch.path().join("d/a.conf"), "a\n").unwrap();
        std::fs::write(scratch.path().join("sudoers"), "root ALL=(ALL) ALL\n").unwrap();
        let text = "version = 1\n[etc.\"x\"]\nsource = \"d/*.conf\"\n[etc.\"sudoers\"]\nsource = \"sudoers\"\n";
        let checked = declaration(text, scratch.path());
        std::fs::remove_file(scratch.path().join("d/a.conf")).unwrap();
        let error = from_declaration(&checked).unwrap_err();
        assert!(matches!(&error, BuildError::Source { error: SourceError::NoMatch { .. }, .. }), "{error}");
        std::fs::write(scratch.path().join("d/a.conf"), "a\n").unwrap();

        std::fs::remove_file(scratch.path().join("sudoers")).unwrap();
        std::os::unix::fs::symlink(outside.path().join("shadow"), scratch.path().join("sudoers")).unwrap();
        let error = from_declaration(&checked).unwrap_err();
        assert!(matches!(&error, BuildError::Source { error: SourceError::Escapes { .. }, .. }), "{error}");
        std::fs::remove_file(scratch.path().join("sudoers")).unwrap();
        assert!(std::process::Command::new("mkfifo").arg(scratch.path().join("sudoers")).status().unwrap().success());
        let error = from_declaration(&checked).unwrap_err();
        assert!(error.to_string().ends_with("`sudoers` is a FIFO, not a regular file or a directory"), "{error}");

        let mut build = EtcBuild::default();
        let text = |t: &str| BuiltEntry {
            manifest: ManifestEntry {
                kind: EtcKind::Link,
                hash: content_hash(t.as_bytes()),
                mode: None,
                user: "root".into(),
                group: "root".into(),
            },
            node: Tree::file(t),
        };
        build.insert("ssh".into(), text("a"), "here").unwrap();
        build.insert("ssh/config".into(), text("b"), "here").unwrap();
        assert!(matches!(build.tree(), Err(BuildError::FileAsDirectory { .. })));
    }

    /// A source may follow a symlink that stays in the declaration's directory.
    #[test]
    fn a_symlink_inside_the_declarations_directory_is_followed() {
        let scratch = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(scratch.path().join("files/v2")).unwrap();
        std::fs::write(scratch.path().join("files/v2/motd"), "hello\n").unwrap();
        std::os::unix::fs::symlink("v2", scratch.path().join("files/current")).unwrap();
        let text = "version = 1\n[etc.\"motd\"]\nsource = \"files/current/motd\"\n";
        let build = from_declaration(&declaration(text, scratch.path())).unwrap();
        assert_eq!(build.contents("motd").unwrap(), b"hello\n");
    }

    /// Copies others may not read, entries below a directory they may not enter and
    /// known secret files are root-only in the store, and so is the manifest then;
    /// the others keep their modes (and an `/etc` without secrets its object name).
    #[test]
    fn secrets_are_root_only_in_the_store() {
        use std::os::unix::fs::PermissionsExt as _;
        let scratch = tempfile::tempdir().unwrap();
        let root = blankslate_sys::fs::Dir::open_root(scratch.path()).unwrap();
        let store = Store::open(&root, Path::new("/store")).unwrap();
        let text = "version = 1\n[etc.\"hosts\"]\ntext = \"h\"\n[etc.\"sudoers\"]\ntext = \"root ALL\"\nmode = \"0440\"\n\
                    [etc.\"shadow\"]\ntext = \"root:!:1::::::\"\n[etc.\"issue\"]\ntext = \"hi\"\nmode = \"0644\"\n\
                    [etc.\"keys\"]\ndirectory = true\nmode = \"0750\"\n[etc.\"keys/a\"]\ntext = \"k\"\n";
        let object = from_declaration(&declaration(text, scratch.path())).unwrap().add_to_store(&store).unwrap();
        let mode_in = |object: &str, path: &str| {
            let path = scratch.path().join("store").join(object).join(path);
            std::fs::metadata(path).unwrap().permissions().mode() & 0o7777
        };
        let mode = |path: &str| mode_in(&object, path);
        for (path, expected) in [
            ("etc/hosts", 0o444),
            ("etc/issue", 0o444),
            ("etc/sudoers", 0o400),
            ("etc/shadow", 0o400),
            ("etc/keys/a", 0o400),
            ("manifest.json", 0o400),
            ("manifest.index", 0o400),
        ] {
            assert_eq!(mode(path), expected, "{path}");
        }
        assert_eq!(store.check_object(&object), None);
        let public = "version = 1\n[etc.\"hosts\"]\ntext = \"h\"\n[etc.\"issue\"]\ntext = \"hi\"\nmode = \"0644\"\n";
        let object = from_declaration(&declaration(public, scratch.path())).unwrap().add_to_store(&store).unwrap();
        assert_eq!((mode_in(&object, "manifest.json"), mode_in(&object, "manifest.index")), (0o444, 0o444));
        assert_eq!(store.check_object(&object), None);
    }

    /// An etc tree that holds `static` or `.blankslate` (which blankslate keeps for its
    /// link to the tree and its records) is refused, as the same names declared are.
    #[test]
    fn an_etc_tree_cannot_hold_the_names_blankslate_keeps() {
        for name in [".blankslate/journal.json", "static", ".blankslate"] {
            let scratch = tempfile::tempdir().unwrap();
            let tree = scratch.path().join("tree");
            std::fs::create_dir_all(tree.join(name).parent().unwrap()).unwrap();
            std::fs::write(tree.join(name), "{}\n").unwrap();
            std::fs::write(tree.join("hosts"), "127.0.0.1 localhost\n").unwrap();
            let error =
                from_tree(&blankslate_decl::source::Sources::new(None).unwrap(), tree.to_str().unwrap()).unwrap_err();
            assert!(matches!(&error, BuildError::Reserved { path, .. } if path == name), "{name}: {error}");
            assert!(error.to_string().contains("where blankslate"), "{error}");
        }
    }

    /// `directory = true` declares a directory: 0755 root:root unless said otherwise,
    /// in the store object empty or with the entries below it.
    #[test]
    fn a_declared_directory_is_one_entry_with_its_mode_and_owner() {
        let scratch = tempfile::tempdir().unwrap();
        let text = "version = 1\n[etc.\"sudoers.d\"]\ndirectory = true\nmode = \"0750\"\ngroup = \"wheel\"\n\
                    [etc.\"apt/sources.list.d\"]\ndirectory = true\n\
                    [etc.\"sudoers.d/local\"]\ntext = \"root ALL=(ALL) ALL\\n\"\nmode = \"0440\"\n";
        let build = from_declaration(&declaration(text, scratch.path())).unwrap();
        let sudoers = &build.entries["sudoers.d"].manifest;
        assert_eq!(
            (&sudoers.kind, sudoers.mode.as_deref(), sudoers.user.as_str(), sudoers.group.as_str()),
            (&EtcKind::Directory, Some("0750"), "root", "wheel")
        );
        assert_eq!(build.entries["apt/sources.list.d"].manifest.mode.as_deref(), Some("0755"));
        let Tree::Directory(top) = build.tree().unwrap() else { panic!("an object is a directory") };
        let Some(Tree::Directory(etc)) = top.get(OsStr::new("etc")) else { panic!("etc/") };
        let Some(Tree::Directory(sudoers_d)) = etc.get(OsStr::new("sudoers.d")) else { panic!("sudoers.d/") };
        assert!(sudoers_d.contains_key(OsStr::new("local")));
    }

    /// A directory of the etc tree at or below a persisted /etc path is the volume's
    /// (`persist add /etc/wireguard` while the tree still holds the empty 0700
    /// directory); a file there is still an error.
    #[test]
    fn a_persisted_path_takes_over_the_trees_directories_at_and_below_it() {
        use std::os::unix::fs::PermissionsExt as _;
        let scratch = tempfile::tempdir().unwrap();
        let tree = scratch.path().join("tree");
        std::fs::create_dir_all(tree.join("wireguard/peers")).unwrap();
        std::fs::set_permissions(tree.join("wireguard"), std::fs::Permissions::from_mode(0o700)).unwrap();
        std::fs::create_dir(tree.join("ssl")).unwrap();
        std::fs::set_permissions(tree.join("ssl"), std::fs::Permissions::from_mode(0o710)).unwrap();
        std::fs::write(tree.join("hostname"), "h\n").unwrap();
        let text = "version = 1\n[etc_tree]\nsource = \"tree\"\n                    [persist.\"/persist\"]\ndirectories = [\"/etc/wireguard\"]\n";
        let build = from_declaration(&declaration(text, scratch.path())).unwrap();
        let paths: Vec<&str> = build.entries.keys().map(String::as_str).collect();
        assert_eq!(paths, ["hostname", "ssl"]);

        // `check` refuses a file of the tree where a path is persisted; one that appears
        // after the check is refused by the build.
        std::fs::remove_file(tree.join("hostname")).unwrap();
        let text = "version = 1\n[etc_tree]\nsource = \"tree\"\n                    [persist.\"/persist\"]\nfiles = [\"/etc/hostname\"]\n";
        let checked = declaration(text, scratch.path());
        std::fs::write(tree.join("hostname"), "h\n").unwrap();
        assert!(!blankslate_decl::check(&scratch.path().join("decl.toml"), text, None).diagnostics.items.is_empty());
        assert!(matches!(from_declaration(&checked), Err(BuildError::Persisted { .. })));
    }

    #[test]
    fn the_same_etc_builds_the_same_object() {
        let scratch = tempfile::tempdir().unwrap();
        let root = blankslate_sys::fs::Dir::open_root(scratch.path()).unwrap();
        let store = Store::open(&root, Path::new("/store")).unwrap();
        let text = "version = 1\n[etc.\"hosts\"]\ntext = \"h\"\n[etc.\"motd\"]\ntext = \"hi\"\nmode = \"0644\"\n";
        let build = from_declaration(&declaration(text, scratch.path())).unwrap();
        let first = build.add_to_store(&store).unwrap();
        assert_eq!(build.add_to_store(&store).unwrap(), first);
        let object = store.open_object(&first).unwrap();
        let text = object.read(MANIFEST_FILE).unwrap();
        let index = String::from_utf8(object.read(MANIFEST_INDEX_FILE).unwrap()).unwrap();
        assert_eq!(Some(index), manifest::index(std::str::from_utf8(&text).unwrap()), "the index of its manifest");
        let manifest = Manifest::from_json(text).unwrap();
        assert_eq!(manifest, build.manifest());
        assert_eq!(object.read("etc/hosts").unwrap(), b"h");
    }
}
