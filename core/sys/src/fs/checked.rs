//! Checked descriptors ([`Dir::open_checked`]: no symlink followed, no FIFO waited on,
//! `fstat`ed and refused unless a regular file, or a directory where asked, with one
//! link where a user can write), and what is done through them: comparing contents,
//! and streamed copies that keep holes ([`Dir::copy_atomic`], [`copy_data`]).

use std::ffi::OsStr;
use std::fs::File;
use std::io::{self, Read};
use std::os::fd::{AsFd, BorrowedFd};
use std::path::{Path, PathBuf};

use rustix::fs::{Mode, OFlags};

use super::{Dir, Kind, Meta, Refusal, Result, check_name, meta_of, refused, wrap, wrap_io};

impl Dir {
    /// Opens `name` (a single name) to act on it as root, and checks the descriptor
    /// before returning it: opened with `O_NOFOLLOW` (a symlink is refused), with
    /// `O_NONBLOCK` (a FIFO swapped in is opened without waiting for a writer, then
    /// refused), `fstat`ed, and refused unless it is a regular file (or a directory, if
    /// `accept` says so). Where someone other than root can write this directory (its
    /// owner is not root, or group or others may write it), the name may be a user's
    /// hard link to any file on the file system: a file with more than one link is
    /// refused there. In a directory only root writes (`/etc`), a name is root's own,
    /// whatever links others made to its file elsewhere. A refusal is an error whose
    /// [`FsError::refusal`](super::FsError::refusal) says why; nothing was done to the entry.
    pub fn open_checked(&self, name: impl AsRef<OsStr>, accept: Accept) -> Result<Checked> {
        let name = name.as_ref();
        check_name(name, &self.path)?;
        let path = self.path.join(name);
        let flags = OFlags::RDONLY | OFlags::NONBLOCK | OFlags::NOCTTY;
        let fd = match self.openat(Path::new(name), flags, Mode::empty(), "open") {
            Err(error) if error.source.raw_os_error() == Some(rustix::io::Errno::LOOP.raw_os_error()) => {
                return Err(refused("use", path, Refusal::Symlink));
            }
            // What opening a socket gives.
            Err(error) if error.source.raw_os_error() == Some(rustix::io::Errno::NXIO.raw_os_error()) => {
                return Err(refused("use", path, Refusal::Special));
            }
            opened => opened?,
        };
        let meta = meta_of(&rustix::fs::fstat(&fd).map_err(wrap("stat", &path))?);
        let refusal = match meta.kind {
            Kind::File if meta.nlink > 1 && !self.only_root_writes()? => Some(Refusal::HardLinked(meta.nlink)),
            Kind::File => None,
            Kind::Directory if accept == Accept::FileOrDirectory => None,
            Kind::Directory => Some(Refusal::Directory),
            Kind::Symlink => Some(Refusal::Symlink),
            Kind::Other => Some(Refusal::Special),
        };
        match refusal {
            Some(refusal) => Err(refused("use", path, refusal)),
            None => Ok(Checked { file: File::from(fd), meta, path }),
        }
    }

    /// Whether only root can add names to this directory: owned by root, and neither
    /// group nor others may write it.
    fn only_root_writes(&self) -> Result<bool> {
        let meta = self.own_meta()?;
        Ok(meta.uid == 0 && meta.mode & 0o022 == 0)
    }

    /// Replaces (or creates) `name` with a copy of `from`'s contents, atomically and
    /// durably (a temporary, `fsync`, `rename`, `fsync` of this directory), owned by
    /// `(uid, gid)` when given and with `mode`, both set before it takes the name. The
    /// data is streamed through a bounded buffer, extent by extent: holes stay holes.
    pub fn copy_atomic(
        &self,
        name: impl AsRef<OsStr>,
        from: &Checked,
        mode: u32,
        owner: Option<(u32, u32)>,
    ) -> Result<()> {
        self.replace_filled(name.as_ref(), mode, owner, |file, path| {
            copy_data(&from.file, &from.path, file, path).map(drop)
        })
    }
}

/// What [`Dir::open_checked`] accepts besides refusing everything else.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accept {
    /// A regular file: to read it as root, or to change its owner or mode.
    File,
    /// That, or a directory (which cannot have other names): to change its owner or mode.
    FileOrDirectory,
}

/// An entry opened and checked by [`Dir::open_checked`]: everything done to it goes
/// through this descriptor, so a rename or swap after the check changes nothing.
#[derive(Debug)]
pub struct Checked {
    file: File,
    meta: Meta,
    path: PathBuf,
}

impl Checked {
    /// What `fstat` said of the descriptor.
    pub fn meta(&self) -> &Meta {
        &self.meta
    }

    /// Where the entry was opened, for messages.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Sets the permission bits.
    pub fn set_mode(&self, mode: u32) -> Result<()> {
        rustix::fs::fchmod(&self.file, Mode::from_raw_mode(mode)).map_err(wrap("set mode of", &self.path))
    }

    /// Sets owner, then mode (`chown` clears set-id bits); no system call when the
    /// entry already has both.
    pub fn set_owner_and_mode(&self, uid: u32, gid: u32, mode: u32) -> Result<()> {
        if (self.meta.uid, self.meta.gid, self.meta.mode) == (uid, gid, mode) {
            return Ok(());
        }
        let (u, g) = (rustix::fs::Uid::from_raw(uid), rustix::fs::Gid::from_raw(gid));
        rustix::fs::fchown(&self.file, Some(u), Some(g)).map_err(wrap("set owner of", &self.path))?;
        self.set_mode(mode)
    }

    /// Whether both files hold the same bytes: the sizes first, then the contents
    /// read side by side through two small buffers (a file of any size takes no more
    /// memory), skipping what is a hole in both.
    pub fn same_contents(&self, other: &Checked) -> Result<bool> {
        if self.meta.size != other.meta.size {
            return Ok(false);
        }
        let (mut a, mut b) = (vec![0u8; COMPARE_CHUNK], vec![0u8; COMPARE_CHUNK]);
        let mut offset = 0u64;
        loop {
            let data = (self.next_data(offset)?, other.next_data(offset)?);
            if data.0 > offset && data.1 > offset {
                offset = data.0.min(data.1);
            }
            let read_a = read_full(&self.file, &mut a, offset).map_err(wrap("read", &self.path))?;
            let read_b = read_full(&other.file, &mut b[..read_a.max(1)], offset).map_err(wrap("read", &other.path))?;
            if read_a != read_b || a[..read_a] != b[..read_b] {
                return Ok(false);
            }
            if read_a == 0 {
                return Ok(true);
            }
            offset += read_a as u64;
        }
    }

    /// Where data starts at or after `offset` (`SEEK_DATA`); the size as `fstat` saw
    /// it if none does.
    fn next_data(&self, offset: u64) -> Result<u64> {
        match rustix::fs::seek(&self.file, rustix::fs::SeekFrom::Data(offset)) {
            Ok(start) => Ok(start),
            Err(rustix::io::Errno::NXIO) => Ok(self.meta.size.max(offset)),
            Err(errno) => Err(wrap("find data in", &self.path)(errno)),
        }
    }

    /// The whole contents, for files known to be small (checked copies in `/etc`).
    pub fn read_to_end(&self) -> Result<Vec<u8>> {
        read_sized(&self.file, self.meta.size).map_err(wrap_io("read", &self.path))
    }
}

/// The whole contents of `file`, which `fstat` said is `size` bytes long. Sized by
/// that: `File::read_to_end` would ask the size again (`statx`, `lseek`), and read
/// once more to see the end. Reads go on until `size` bytes are in (a read may return
/// less: at most 2 GiB at a time, or less on FUSE), and then a read that has room for
/// a byte more and comes back short is the end. A file that grew meanwhile is still
/// read whole; one that shrank, as far as it goes.
pub(super) fn read_sized(file: &File, size: u64) -> io::Result<Vec<u8>> {
    let size = usize::try_from(size).unwrap_or(0);
    let mut contents = vec![0; size.saturating_add(1)];
    let mut filled = 0;
    while filled <= size {
        match rustix::io::read(file, &mut contents[filled..]) {
            Ok(0) => break,
            Ok(read) if filled + read == size => {
                filled = size;
                break;
            }
            Ok(read) => filled += read,
            Err(rustix::io::Errno::INTR) => {}
            Err(errno) => return Err(errno.into()),
        }
    }
    contents.truncate(filled);
    if filled > size {
        io::Read::read_to_end(&mut file.take(u64::MAX), &mut contents)?;
    }
    Ok(contents)
}

/// How much is read at a time when two files are compared.
const COMPARE_CHUNK: usize = 64 << 10;

/// How much file data is copied at a time.
const COPY_CHUNK: usize = 1 << 20;

/// How much a checked copy copies at a time: small enough that a piece and its read
/// back stay in a core's cache.
const CHECKED_CHUNK: usize = 256 << 10;

/// `pread` until `buffer` is full or the file ends; the bytes read.
fn read_full(file: &impl AsFd, buffer: &mut [u8], offset: u64) -> rustix::io::Result<usize> {
    let mut done = 0;
    while done < buffer.len() {
        match rustix::io::pread(file, &mut buffer[done..], offset + done as u64) {
            Ok(0) => break,
            Ok(read) => done += read,
            Err(rustix::io::Errno::INTR) => {}
            Err(errno) => return Err(errno),
        }
    }
    Ok(done)
}

/// Copies the data of `source` into the empty file `dest`, extent by extent
/// (`SEEK_DATA`/`SEEK_HOLE`), so holes stay holes, through one bounded buffer; then
/// sets `dest`'s size to the size `source` had when the copy began. Returns the bytes
/// of data written. The paths are for messages.
pub fn copy_data(source: &impl AsFd, source_path: &Path, dest: &impl AsFd, dest_path: &Path) -> Result<u64> {
    let size = u64::try_from(rustix::fs::fstat(source).map_err(wrap("stat", source_path))?.st_size).unwrap_or(0);
    let from = DataSource { file: source.as_fd(), path: source_path, size, dense: false };
    copy_data_checked(&from, dest, dest_path, false, &mut Vec::new())
}

/// The source of [`copy_data_checked`]: its size when it was opened (the caller's
/// `fstat`), and whether it is known to have no holes (as many bytes allocated as it
/// is long), so that looking for them can be skipped.
pub(super) struct DataSource<'a> {
    pub file: BorrowedFd<'a>,
    pub path: &'a Path,
    pub size: u64,
    pub dense: bool,
}

/// [`copy_data`]; with `check`, `dest` (opened for reading too) is verified as it is
/// made: each piece is read back as soon as it is written and compared with the bytes
/// read from the source, while both are still in the processor's cache (reading the
/// copy again later costs a second pass over memory and a hash on each side). What
/// lies between the extents (holes, by `SEEK_HOLE`) is read from the source and must
/// be zeros, as it is in the copy (a new file, holes where nothing was written), not
/// taken to be: data where a hole was reported, or a source that ends before the size
/// it had when opened, is a source that changed while it was copied, and an error, as
/// is a copy that reads back otherwise. Unchecked, a source that shrank leaves a hole.
/// `buffer` is the caller's to reuse from one file to the next (a tree's files are
/// mostly small: zeroing a new buffer for each would cost about as much as copying it).
pub(super) fn copy_data_checked(
    source: &DataSource<'_>,
    dest: &impl AsFd,
    dest_path: &Path,
    check: bool,
    buffer: &mut Vec<u8>,
) -> Result<u64> {
    let (size, source_path) = (source.size, source.path);
    let most = if check { CHECKED_CHUNK } else { COPY_CHUNK };
    let chunk = usize::try_from(size).unwrap_or(most).clamp(1, most);
    let wanted = if check { 2 * chunk } else { chunk };
    if buffer.len() < wanted {
        buffer.resize(wanted, 0);
    }
    let (data, back) = buffer.split_at_mut(chunk);
    let mut written = 0u64;
    let mut offset = 0u64;
    // The end of the last byte written: the copy's size unless holes end the file.
    let mut copied_to = 0u64;
    'extents: while offset < size {
        let (start, end) = if source.dense {
            (offset, size)
        } else {
            let start = match rustix::fs::seek(source.file, rustix::fs::SeekFrom::Data(offset)) {
                Ok(start) if start < size => start,
                // No data after `offset` (NXIO), or only beyond the size copied.
                Ok(_) | Err(rustix::io::Errno::NXIO) => break,
                Err(errno) => return Err(wrap("find data in", source_path)(errno)),
            };
            let end = rustix::fs::seek(source.file, rustix::fs::SeekFrom::Hole(start))
                .map_err(wrap("find holes in", source_path))?
                .min(size);
            (start, end)
        };
        if check {
            hole_in_source(source, data, offset, start)?;
        }
        let mut at = start;
        while at < end {
            let want = usize::try_from(end - at).unwrap_or(chunk).min(chunk);
            let read = rustix::io::pread(source.file, &mut data[..want], at).map_err(wrap("read", source_path))?;
            if read == 0 {
                if check {
                    return Err(changed(source_path));
                }
                // The file shrank meanwhile: what is left is a hole.
                offset = at;
                break 'extents;
            }
            let mut done = 0;
            while done < read {
                done +=
                    rustix::io::pwrite(dest, &data[done..read], at + done as u64).map_err(wrap("write", dest_path))?;
            }
            if check {
                let back = &mut back[..read];
                if read_full(dest, back, at).map_err(wrap("read back", dest_path))? != read || *back != data[..read] {
                    return Err(misread(dest_path));
                }
            }
            at += read as u64;
            written += read as u64;
            copied_to = at;
        }
        offset = end;
    }
    if check {
        // What follows the last extent copied, up to the size set.
        hole_in_source(source, data, offset, size)?;
    }
    // `dest` was empty: it is as long as what was written, unless holes end the file.
    if copied_to < size {
        rustix::fs::ftruncate(dest, size).map_err(wrap("set size of", dest_path))?;
    }
    Ok(written)
}

/// Checks that `source` holds zeros from `start` to `end` (a hole, read as the kernel
/// gives it), through `buffer`: if not, or if it ends first, it changed while it was
/// copied.
fn hole_in_source(source: &DataSource<'_>, buffer: &mut [u8], mut start: u64, end: u64) -> Result<()> {
    while start < end {
        let want = usize::try_from(end - start).unwrap_or(buffer.len()).min(buffer.len());
        let read = read_full(&source.file, &mut buffer[..want], start).map_err(wrap("read", source.path))?;
        if read == 0 || buffer[..read].iter().any(|byte| *byte != 0) {
            return Err(changed(source.path));
        }
        start += read as u64;
    }
    Ok(())
}

/// A source that ended early, or held data where it had a hole, while it was copied.
fn changed(source_path: &Path) -> super::FsError {
    super::FsError {
        op: "copy",
        path: source_path.to_path_buf(),
        source: io::Error::other("it changed while it was copied (it shrank, or has data where it had a hole)"),
    }
}

/// A copy whose data reads back otherwise than it was written.
fn misread(dest_path: &Path) -> super::FsError {
    super::FsError {
        op: "verify",
        path: dest_path.to_path_buf(),
        source: io::Error::other("the copy reads back other bytes than were written to it"),
    }
}
