//! Creating files and replacing them atomically: a new file is filled, owned, given
//! its mode and fsynced before anything names it; a replacement is such a file under a
//! temporary name ([`temp_name`]), renamed over the old one, then the directory
//! fsynced, so that a reader sees the old contents or the new, never a part.

use std::ffi::OsStr;
use std::fs::File;
use std::io::Write;
use std::path::Path;

use rustix::fs::{Mode, OFlags};

use super::{Dir, Result, check_name, temp_name, wrap, wrap_io};

impl Dir {
    /// Creates a new file (it must not exist) with `mode`, writes `contents`, and
    /// fsyncs it. The caller renames it into place and syncs the directory.
    pub fn create_file(&self, name: impl AsRef<OsStr>, contents: &[u8], mode: u32) -> Result<File> {
        self.create_file_owned(name, contents, mode, None)
    }

    /// [`Dir::create_file`], owned by `(uid, gid)` when given. The owner is set before
    /// the mode, since `chown` clears set-id bits. If writing fails (a full file
    /// system), the new file is removed again.
    pub fn create_file_owned(
        &self,
        name: impl AsRef<OsStr>,
        contents: &[u8],
        mode: u32,
        owner: Option<(u32, u32)>,
    ) -> Result<File> {
        let name = name.as_ref();
        self.create_filled(name, mode, owner, |file, path| file.write_all(contents).map_err(wrap_io("write", path)))
    }

    /// Creates the new file `name`, which must not exist, never through a symlink
    /// (`0600` until it is complete, so that nothing is exposed meanwhile), fills it
    /// with `fill`, gives it its owner (when given), then
    /// its mode (`chown` clears set-id bits), and fsyncs it. If any of that fails (a
    /// full file system), the new file is removed again.
    fn create_filled(
        &self,
        name: &OsStr,
        mode: u32,
        owner: Option<(u32, u32)>,
        fill: impl FnOnce(&mut File, &Path) -> Result<()>,
    ) -> Result<File> {
        check_name(name, &self.path)?;
        let flags = OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL;
        let mut created = File::from(self.openat(Path::new(name), flags, Mode::from_raw_mode(0o600), "create file")?);
        let path = self.path.join(name);
        let written = (|| {
            fill(&mut created, &path)?;
            if let Some((uid, gid)) = owner {
                let (uid, gid) = (rustix::fs::Uid::from_raw(uid), rustix::fs::Gid::from_raw(gid));
                rustix::fs::fchown(&created, Some(uid), Some(gid)).map_err(wrap("set owner of", &path))?;
            }
            rustix::fs::fchmod(&created, Mode::from_raw_mode(mode)).map_err(wrap("set mode of", &path))?;
            created.sync_all().map_err(wrap_io("fsync", &path))
        })();
        if let Err(error) = written {
            let _ = self.remove_file(name);
            return Err(error);
        }
        Ok(created)
    }

    /// Replaces (or creates) `name` with a file holding `contents`, atomically and
    /// durably: readers see the old contents or the new, never a part.
    pub fn write_atomic(&self, name: impl AsRef<OsStr>, contents: &[u8], mode: u32) -> Result<()> {
        self.write_atomic_owned(name, contents, mode, None)
    }

    /// [`Dir::write_atomic`], the new file owned by `(uid, gid)` when given: it has its
    /// owner and mode before it takes the name.
    pub fn write_atomic_owned(
        &self,
        name: impl AsRef<OsStr>,
        contents: &[u8],
        mode: u32,
        owner: Option<(u32, u32)>,
    ) -> Result<()> {
        let name = name.as_ref();
        self.replace_filled(name, mode, owner, |file, path| file.write_all(contents).map_err(wrap_io("write", path)))
    }

    /// Fills a new temporary with `fill` ([`Dir::create_filled`], which removes it again
    /// if that fails), then renames it to `name`: what every atomic replacement of a
    /// file does.
    pub(super) fn replace_filled(
        &self,
        name: &OsStr,
        mode: u32,
        owner: Option<(u32, u32)>,
        fill: impl FnOnce(&mut File, &Path) -> Result<()>,
    ) -> Result<()> {
        let temp = temp_name(name);
        self.create_filled(&temp, mode, owner, fill)?;
        self.rename_into_place(&temp, name)
    }

    /// Replaces (or creates) the symlink `name` so that it points at `target`,
    /// atomically: readers see the old target or the new one, never nothing.
    pub fn symlink_atomic(&self, name: impl AsRef<OsStr>, target: impl AsRef<OsStr>) -> Result<()> {
        let name = name.as_ref();
        let temp = temp_name(name);
        self.symlink(&temp, target)?;
        self.rename_into_place(&temp, name)
    }

    fn rename_into_place(&self, temp: &OsStr, name: &OsStr) -> Result<()> {
        if let Err(error) = self.rename(temp, name) {
            let _ = self.remove_file(temp);
            return Err(error);
        }
        self.sync()
    }
}
