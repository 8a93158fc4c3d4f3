//! [`Scratch`]: a throwaway directory holding a root (the directory itself, or a
//! subdirectory of it with the files a test keeps next to the root: declarations,
//! trees, outputs), removed when dropped.

use std::path::{Path, PathBuf};

use blankslate_sys::fs::Dir;
use blankslate_sys::mount::OwnMount;

/// A scratch directory with a root in it. Made with [`Scratch::new`] (the root is the
/// directory) or [`Scratch::with_root`] (the root is a subdirectory), then shaped by
/// its options: [`Scratch::own_mount`], [`Scratch::open_to_others`].
#[derive(Debug)]
pub struct Scratch {
    // First, so that it is dropped first: every mount in the scratch tree goes, and
    // the directory can be removed even from inside the namespace that holds them.
    mounts: Option<OwnMount>,
    dir: tempfile::TempDir,
    root: PathBuf,
}

impl Scratch {
    /// A new scratch directory (in the system's temporary directory) that is itself
    /// the root.
    pub fn new() -> Scratch {
        Scratch::from_dir(tempfile::tempdir().expect("a scratch directory"), None)
    }

    /// A new scratch directory whose root is its subdirectory `name` (made, with its
    /// parents).
    pub fn with_root(name: &str) -> Scratch {
        Scratch::from_dir(tempfile::tempdir().expect("a scratch directory"), Some(name))
    }

    /// [`Scratch::new`] below `parent` (`/dev/shm` for a root on tmpfs).
    pub fn new_in(parent: &Path) -> Scratch {
        Scratch::from_dir(tempfile::tempdir_in(parent).expect("a scratch directory"), None)
    }

    fn from_dir(dir: tempfile::TempDir, root: Option<&str>) -> Scratch {
        let root = root.map_or_else(|| dir.path().to_path_buf(), |name| dir.path().join(name));
        std::fs::create_dir_all(&root).expect("the scratch root");
        Scratch { mounts: None, dir, root }
    }

    /// Makes the scratch directory a mount of its own (which needs root and should
    /// happen in a private mount namespace): every mount made below it goes when the
    /// scratch is dropped, before the directory is removed.
    #[must_use]
    pub fn own_mount(mut self) -> Scratch {
        let dir = Dir::open_root(self.dir.path()).expect("open the scratch directory");
        self.mounts = Some(OwnMount::new(&dir).expect("bind the scratch directory onto itself"));
        self
    }

    /// Opens the scratch directory to others (`0755`; a temporary directory is
    /// `0700`), for a test that runs something as another user in it.
    #[must_use]
    pub fn open_to_others(self) -> Scratch {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(self.dir.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod 0755");
        self
    }

    /// The scratch directory (the root's parent, or the root itself).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The root.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The root as a string, for a command's arguments.
    pub fn root_str(&self) -> &str {
        self.root.to_str().expect("a UTF-8 scratch path")
    }

    /// `relative` in the root.
    pub fn path(&self, relative: impl AsRef<Path>) -> PathBuf {
        self.root.join(relative)
    }

    /// `etc/<relative>` in the root (no symlink followed).
    pub fn etc(&self, relative: impl AsRef<Path>) -> PathBuf {
        self.root.join("etc").join(relative)
    }

    /// Writes `contents` to `relative` in the root, its parents made first.
    pub fn write(&self, relative: impl AsRef<Path>, contents: impl AsRef<[u8]>) {
        let path = self.path(relative);
        std::fs::create_dir_all(path.parent().expect("a parent")).expect("the parents");
        std::fs::write(&path, contents).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    }

    /// Writes `contents` to `name` in the scratch directory (next to a root of its
    /// own, not inside it: a declaration, a tree) and returns its path.
    pub fn file(&self, name: impl AsRef<Path>, contents: impl AsRef<[u8]>) -> PathBuf {
        let path = self.dir.path().join(name);
        std::fs::write(&path, contents).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        path
    }

    /// The text of `name` in the scratch directory.
    pub fn read(&self, name: impl AsRef<Path>) -> String {
        let path = self.dir.path().join(name);
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }
}

impl Default for Scratch {
    fn default() -> Scratch {
        Scratch::new()
    }
}
