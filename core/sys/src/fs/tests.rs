//! Tests of `fs`: paths below a root, atomic writes, temporaries, locks.

use std::time::Duration;

use rustix::fs::FlockOperation;

use super::*;

#[test]
fn symlinks_are_never_followed_out_of_the_root() {
    let scratch = tempfile::tempdir().unwrap();
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("secret"), "x").unwrap();
    std::os::unix::fs::symlink(outside.path(), scratch.path().join("escape")).unwrap();
    std::os::unix::fs::symlink("/", scratch.path().join("slash")).unwrap();
    let root = Dir::open_root(scratch.path()).unwrap();
    assert!(root.open_file("escape/secret").is_err());
    assert!(root.open_dir("slash").is_err());
    assert!(root.open_dir("..").is_err(), "`..` is refused before the kernel sees it");
    assert!(root.create_dir_all("escape/new", 0o755).is_err());
    assert!(!outside.path().join("new").exists());
}

#[test]
fn read_in_root_follows_links_as_if_chrooted() {
    let scratch = tempfile::tempdir().unwrap();
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("passwd"), "outside").unwrap();
    std::fs::create_dir_all(scratch.path().join("etc/static")).unwrap();
    std::fs::write(scratch.path().join("etc/static/passwd"), "inside").unwrap();
    std::os::unix::fs::symlink("/etc/static/passwd", scratch.path().join("etc/passwd")).unwrap();
    std::os::unix::fs::symlink(outside.path().join("passwd"), scratch.path().join("etc/escape")).unwrap();
    let root = Dir::open_root(scratch.path()).unwrap();
    assert_eq!(root.read_in_root("etc/passwd").unwrap(), b"inside");
    assert!(root.read_in_root("etc/escape").is_err(), "an absolute link resolves inside the root");
    assert!(root.read("etc/passwd").is_err(), "read() itself still follows nothing");
}

#[test]
fn atomic_writes_replace_and_leave_no_temporaries() {
    let scratch = tempfile::tempdir().unwrap();
    let root = Dir::open_root(scratch.path()).unwrap();
    root.write_atomic("f", b"one", 0o640).unwrap();
    root.write_atomic("f", b"two", 0o600).unwrap();
    assert_eq!(root.read("f").unwrap(), b"two");
    assert_eq!(root.meta("f").unwrap().mode, 0o600);
    root.symlink_atomic("link", "a").unwrap();
    root.symlink_atomic("link", "b").unwrap();
    assert_eq!(root.read_link("link").unwrap(), "b");
    let names: Vec<_> = root.entries().unwrap().into_iter().map(|(n, _)| n).collect();
    assert_eq!(names, ["f", "link"]);
}

/// The longest target the kernel makes (`PATH_MAX` - 1 bytes) is read whole through
/// the stack buffer, and a checked copy whole through its `fstat`-sized one.
#[test]
fn the_longest_link_target_and_a_checked_file_are_read_whole() {
    let scratch = tempfile::tempdir().unwrap();
    let root = Dir::open_root(scratch.path()).unwrap();
    let target = "t/".repeat(2047) + "x";
    assert_eq!(target.len(), 4095);
    root.symlink("long", &target).unwrap();
    assert_eq!(root.read_link("long").unwrap(), target.as_str());
    assert!(root.symlink("longer", target.clone() + "x").is_err(), "no longer target exists");
    root.write_atomic("f", &[7; 10_000], 0o644).unwrap();
    assert_eq!(root.open_checked("f", Accept::File).unwrap().read_to_end().unwrap(), [7; 10_000]);
}

#[test]
fn remove_tree_handles_read_only_directories() {
    let scratch = tempfile::tempdir().unwrap();
    let root = Dir::open_root(scratch.path()).unwrap();
    let sub = root.create_dir_all("a/b", 0o755).unwrap();
    sub.write_atomic("f", b"x", 0o444).unwrap();
    sub.set_mode(0o555).unwrap();
    root.open_dir("a").unwrap().set_mode(0o555).unwrap();
    root.remove_tree("a").unwrap();
    assert!(root.entries().unwrap().is_empty());
}

#[test]
fn a_writer_lock_names_its_holder_and_a_writer_that_will_not_wait_gives_up() {
    let scratch = tempfile::tempdir().unwrap();
    let dir = Dir::open_root(scratch.path()).unwrap();
    let held = dir.lock_writer_waiting("lock", LockWait::No).unwrap();
    let record = String::from_utf8(dir.read("lock").unwrap()).unwrap();
    assert!(record.starts_with(&format!("{} ", std::process::id())), "{record}");
    // flock is per open file: a second open conflicts, even in this process.
    let refused = dir.lock_writer_waiting("lock", LockWait::No).unwrap_err();
    assert_eq!(refused.kind(), io::ErrorKind::WouldBlock);
    let said = refused.to_string();
    assert!(said.contains(": held by `") && said.contains(&format!("(pid {})", std::process::id())), "{said}");
    let timed = dir.lock_writer_waiting("lock", LockWait::AtMost(Duration::from_millis(20))).unwrap_err();
    assert!(timed.to_string().contains("still held by `"), "{timed}");
    drop(held);
    assert!(dir.read("lock").unwrap().is_empty(), "the record goes with the lock");
    // Held by something that wrote no record, over one of a process that is gone.
    dir.write_atomic("gone", b"4194304999 blankslate switch\n", 0o600).unwrap();
    let gone = File::from(dir.openat(Path::new("gone"), OFlags::RDWR, Mode::empty(), "open").unwrap());
    rustix::fs::flock(&gone, FlockOperation::LockExclusive).unwrap();
    let refused = dir.lock_writer_waiting("gone", LockWait::No).unwrap_err();
    assert!(refused.to_string().contains("held by a process that did not record which"), "{refused}");
}

#[test]
fn regular_files_are_read_up_to_a_bound_and_nothing_else_is_read() {
    let scratch = tempfile::tempdir().unwrap();
    std::fs::write(scratch.path().join("small"), b"12345").unwrap();
    assert_eq!(read_regular_file(&scratch.path().join("small"), 5).unwrap(), b"12345");
    let big = read_regular_file(&scratch.path().join("small"), 4).unwrap_err();
    assert!(big.to_string().contains("it holds more than 4 bytes"), "{big}");
    let dir = read_regular_file(scratch.path(), 5).unwrap_err();
    assert!(dir.to_string().contains("it is a directory, not a regular file"), "{dir}");
    let device = read_regular_file(Path::new("/dev/zero"), 5).unwrap_err();
    assert!(device.to_string().contains("it is a character device"), "{device}");
}

#[test]
fn checked_opens_refuse_links_fifos_and_other_names_without_blocking() {
    use std::os::unix::fs::MetadataExt;
    let scratch = tempfile::tempdir().unwrap();
    let root = Dir::open_root(scratch.path()).unwrap();
    root.write_atomic("secret", b"root only", 0o600).unwrap();
    root.write_atomic("mine", b"a user's", 0o644).unwrap();
    std::fs::hard_link(scratch.path().join("secret"), scratch.path().join("linked")).unwrap();
    // Only root writes here: the name is root's, whatever links its file has.
    assert_eq!(root.open_checked("linked", Accept::File).unwrap().meta().nlink, 2);
    // Anyone may write here (as in a home, where the user could have made it).
    root.set_mode(0o1777).unwrap();
    std::os::unix::fs::symlink("secret", scratch.path().join("symlink")).unwrap();
    rustix::fs::mknodat(&root, "fifo", FileType::Fifo, Mode::from_raw_mode(0o666), 0).unwrap();
    root.create_dir("dir", 0o755).unwrap();
    let refusal = |name: &str, accept| root.open_checked(name, accept).unwrap_err().refusal();
    assert_eq!(refusal("linked", Accept::File), Some(Refusal::HardLinked(2)));
    assert_eq!(refusal("symlink", Accept::FileOrDirectory), Some(Refusal::Symlink));
    // Opened without waiting for a writer (a blocking open would hang this test).
    assert_eq!(refusal("fifo", Accept::FileOrDirectory), Some(Refusal::Special));
    assert_eq!(refusal("dir", Accept::File), Some(Refusal::Directory));
    assert!(root.open_checked("missing", Accept::File).unwrap_err().is_not_found());
    // The by-name setters go through the same checks: the linked file keeps its mode.
    assert_eq!(root.set_mode_of("linked", 0o666).unwrap_err().refusal(), Some(Refusal::HardLinked(2)));
    assert!(root.set_owner_and_mode_of("fifo", 1000, 1000, 0o600).is_err());
    assert_eq!(std::fs::metadata(scratch.path().join("secret")).unwrap().mode() & 0o7777, 0o600);
    root.set_mode_of("dir", 0o700).unwrap();
    let mine = root.open_checked("mine", Accept::File).unwrap();
    assert_eq!((mine.meta().kind, mine.meta().nlink), (Kind::File, 1));
    assert_eq!(mine.read_to_end().unwrap(), b"a user's");
}

#[test]
fn copies_stream_keep_holes_and_compare_by_contents() {
    use std::os::unix::fs::MetadataExt;
    let scratch = tempfile::tempdir().unwrap();
    let root = Dir::open_root(scratch.path()).unwrap();
    let sparse = std::fs::File::create(scratch.path().join("sparse")).unwrap();
    sparse.set_len(256 << 20).unwrap();
    rustix::io::pwrite(&sparse, b"middle", 100 << 20).unwrap();
    rustix::io::pwrite(&sparse, b"end", (256 << 20) - 3).unwrap();
    let from = root.open_checked("sparse", Accept::File).unwrap();
    root.copy_atomic("copy", &from, 0o640, None).unwrap();
    let copy = root.open_checked("copy", Accept::File).unwrap();
    assert_eq!((copy.meta().size, copy.meta().mode), (256 << 20, 0o640));
    let blocks = std::fs::metadata(scratch.path().join("copy")).unwrap().blocks();
    assert!(blocks * 512 < 1 << 20, "the holes stayed holes: {blocks} blocks");
    assert!(copy.same_contents(&from).unwrap());
    rustix::io::pwrite(&sparse, b"MIDDLE", 100 << 20).unwrap();
    assert!(!copy.same_contents(&from).unwrap(), "a change in the middle is seen");
    let names: Vec<_> = root.entries().unwrap().into_iter().map(|(n, _)| n).collect();
    assert_eq!(names, ["copy", "sparse"], "no temporary left");
}

#[test]
fn stale_temporaries_go_once_their_process_is_gone() {
    let scratch = tempfile::tempdir().unwrap();
    let root = Dir::open_root(scratch.path()).unwrap();
    let mut child = std::process::Command::new("true").spawn().unwrap();
    let gone = child.id();
    child.wait().unwrap();
    let ours = temp_name(OsStr::new("shadow"));
    for name in [format!(".shadow.tmp-{gone}-0"), format!(".other.tmp-{gone}-0"), ".shadow.tmp-x-1".into()] {
        root.write_atomic(&name, b"left", 0o600).unwrap();
    }
    root.write_atomic(&ours, b"in use", 0o600).unwrap();
    let removed = root.remove_stale_temporaries("shadow").unwrap();
    assert_eq!(removed, [OsString::from(format!(".shadow.tmp-{gone}-0"))]);
    let mut left: Vec<_> = root.entries().unwrap().into_iter().map(|(n, _)| n).collect();
    left.sort();
    let mut expected = vec![OsString::from(format!(".other.tmp-{gone}-0")), ".shadow.tmp-x-1".into(), ours];
    expected.sort();
    assert_eq!(left, expected, "another name's, a foreign one and a live process's stay");
}

#[test]
fn temp_names_are_recognisable() {
    let temp = temp_name(OsStr::new("system"));
    assert!(is_temp_name(&temp));
    assert!(!is_temp_name(OsStr::new("system-3-link")));
}

#[test]
fn temp_names_cannot_be_guessed_from_the_pid() {
    let pid = std::process::id();
    let names: Vec<OsString> = (0..4).map(|_| temp_name(OsStr::new("metrics"))).collect();
    // What they were before (counting from 0): a user could plant those.
    for n in 0..64 {
        assert!(!names.contains(&OsString::from(format!(".metrics.tmp-{pid}-{n}"))), "{names:?}");
    }
    assert!(names.iter().all(|name| is_temp_name(name)));
}

/// What a copy describes as it copies is what a full walk of the original reads:
/// holes (a sparse file's, and one at its end), a hard-linked pair, a symlink, nested
/// directories; and copying leaves the original's fingerprint as it was.
#[test]
fn a_described_copy_describes_the_original_as_a_full_walk_does() {
    let scratch = tempfile::tempdir().unwrap();
    let top = scratch.path().join("tree");
    std::fs::create_dir_all(top.join("a/b")).unwrap();
    std::fs::write(top.join("a/b/data"), (0..300_000u32).map(|i| (i % 251) as u8).collect::<Vec<_>>()).unwrap();
    std::fs::write(top.join("empty"), "").unwrap();
    let sparse = std::fs::File::create(top.join("sparse")).unwrap();
    std::os::unix::fs::FileExt::write_at(&sparse, b"middle", 3 << 20).unwrap();
    sparse.set_len(8 << 20).unwrap();
    drop(sparse);
    std::fs::hard_link(top.join("empty"), top.join("a/empty.link")).unwrap();
    std::os::unix::fs::symlink("../empty", top.join("a/empty.sym")).unwrap();
    let dir = Dir::open_root(scratch.path()).unwrap();
    let (name, copy) = (std::ffi::OsStr::new("tree"), std::ffi::OsStr::new("copy"));
    let before = tree::fingerprint(&dir, name).unwrap();
    let (stats, described) = tree::copy_described(&dir, name, &dir, copy).unwrap();
    assert_eq!((stats.files, stats.hard_links, stats.symlinks), (3, 1, 1));
    // The sparse file's data is one page (or block) of its 8 MiB.
    assert!((300_006..400_000).contains(&stats.bytes), "data written, holes left out: {}", stats.bytes);
    assert_eq!(tree::fingerprint(&dir, name).unwrap(), before, "copying changed the original's fingerprint");
    let metadata = |top| tree::describe_with(&dir, top, tree::Detail::Metadata).unwrap();
    assert_eq!(described, metadata(name), "as a walk of the original's metadata");
    assert_eq!(described, metadata(copy), "and of the copy's");
    assert!(tree::compare(&tree::walk(&dir, name, true).unwrap(), &tree::walk(&dir, copy, true).unwrap()).is_empty());
    assert_eq!(tree::verify((&dir, name), (&dir, copy), Some(described)).unwrap(), Vec::<String>::new());
}

/// A copy that differs from its original in one byte (same size, same times) fails
/// verification, which names the file, when both are read. With the copy's
/// description, the data was checked as it was copied (see the next test) and is not
/// read again: only another size or time is seen.
#[test]
fn verify_names_the_file_whose_contents_differ() {
    let scratch = tempfile::tempdir().unwrap();
    let top = scratch.path().join("tree");
    std::fs::create_dir_all(top.join("sub")).unwrap();
    for i in 0..50 {
        std::fs::write(top.join(format!("sub/file{i}")), format!("contents {i}").repeat(i * 100)).unwrap();
    }
    let dir = Dir::open_root(scratch.path()).unwrap();
    let (name, copy) = (std::ffi::OsStr::new("tree"), std::ffi::OsStr::new("copy"));
    let (_, described) = tree::copy_described(&dir, name, &dir, copy).unwrap();
    let changed = scratch.path().join("copy/sub/file31");
    let mtime = std::fs::metadata(&changed).unwrap().modified().unwrap();
    let file = std::fs::File::options().write(true).open(&changed).unwrap();
    std::os::unix::fs::FileExt::write_at(&file, b"X", 1000).unwrap();
    file.set_modified(mtime).unwrap();
    let differences = tree::verify((&dir, name), (&dir, copy), None).unwrap();
    assert_eq!(differences.len(), 1, "{differences:?}");
    assert!(differences[0].starts_with("sub/file31: differs"), "{differences:?}");
    assert_eq!(tree::verify((&dir, name), (&dir, copy), Some(described)).unwrap(), Vec::<String>::new());
    file.set_len(1).unwrap();
    file.set_modified(mtime).unwrap();
    let differences = tree::verify((&dir, name), (&dir, copy), Some(described)).unwrap();
    assert!(differences.len() == 1 && differences[0].starts_with("sub/file31: differs"), "{differences:?}");
}

/// A checked copy reads each piece back as it writes it: a write that lands elsewhere
/// (here, `pwrite` on a file opened `O_APPEND` that holds a byte already appends,
/// whatever the offset) fails
/// the copy, which an unchecked copy does not notice. Holes are compared too.
#[test]
fn a_checked_copy_notices_data_that_reads_back_otherwise() {
    let scratch = tempfile::tempdir().unwrap();
    let (source_path, dest_path) = (scratch.path().join("source"), scratch.path().join("dest"));
    let contents: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    let source = std::fs::File::create(&source_path).unwrap();
    std::os::unix::fs::FileExt::write_at(&source, &contents, 1 << 20).unwrap();
    let source = std::fs::File::open(&source_path).unwrap();
    let size = source.metadata().unwrap().len();
    for (check, dense) in [(false, false), (true, false), (true, true)] {
        // One byte there already: every piece lands one byte late, or more.
        std::fs::write(&dest_path, "x").unwrap();
        let appending = std::fs::File::options().read(true).append(true).open(&dest_path).unwrap();
        let from = checked::DataSource { file: source.as_fd(), path: &source_path, size, dense };
        let copied = checked::copy_data_checked(&from, &appending, &dest_path, check, &mut Vec::new());
        if check {
            let error = copied.unwrap_err().to_string();
            assert!(error.contains("reads back other bytes"), "{error}");
        } else {
            copied.unwrap();
        }
        std::fs::write(&dest_path, "").unwrap();
        let right = std::fs::File::options().read(true).write(true).open(&dest_path).unwrap();
        assert_eq!(
            checked::copy_data_checked(&from, &right, &dest_path, check, &mut Vec::new()).unwrap(),
            if dense { size } else { 300_000 }
        );
        let copy = std::fs::read(&dest_path).unwrap();
        assert!(
            copy.len() as u64 == size && copy[1 << 20..] == contents[..] && copy[..1 << 20].iter().all(|b| *b == 0)
        );
        // A source that shrank after it was opened (its size then was larger): a
        // checked copy fails, an unchecked one leaves the rest a hole.
        std::fs::write(&dest_path, "").unwrap();
        let right = std::fs::File::options().read(true).write(true).open(&dest_path).unwrap();
        let shrunk = checked::DataSource { size: size + 4096, ..from };
        let copied = checked::copy_data_checked(&shrunk, &right, &dest_path, check, &mut Vec::new());
        if check {
            let error = copied.unwrap_err().to_string();
            assert!(error.contains("changed while it was copied"), "{error}");
        } else {
            copied.unwrap();
            assert_eq!(std::fs::metadata(&dest_path).unwrap().len(), size + 4096);
        }
    }
}

/// A fingerprint reads no file, yet moves with a change a file's size and times do
/// not show: the same number of bytes rewritten and the old mtime put back, and a
/// symlink replaced by one of the same length.
#[test]
fn a_fingerprint_notices_what_size_and_times_hide() {
    let scratch = tempfile::tempdir().unwrap();
    let top = scratch.path().join("tree");
    std::fs::create_dir(&top).unwrap();
    std::fs::write(top.join("data"), "0123456789").unwrap();
    std::os::unix::fs::symlink("aaaa", top.join("link")).unwrap();
    let dir = Dir::open_root(scratch.path()).unwrap();
    let name = std::ffi::OsStr::new("tree");
    let before = tree::fingerprint(&dir, name).unwrap();
    assert_eq!(tree::fingerprint(&dir, name).unwrap(), before, "a fingerprint is stable");
    let mtime = std::fs::metadata(top.join("data")).unwrap().modified().unwrap();
    std::fs::write(top.join("data"), "9876543210").unwrap();
    std::fs::File::options().write(true).open(top.join("data")).unwrap().set_modified(mtime).unwrap();
    let rewritten = tree::fingerprint(&dir, name).unwrap();
    assert_ne!(rewritten, before, "same size, same mtime, other bytes");
    std::fs::remove_file(top.join("link")).unwrap();
    std::os::unix::fs::symlink("bbbb", top.join("link")).unwrap();
    assert_ne!(tree::fingerprint(&dir, name).unwrap(), rewritten, "a symlink replaced");
}

/// Clearing a directory removes everything below it, shared among threads: entries
/// of every kind, read-only directories, and a tree with a single top (which is
/// entered, so that its entries are shared too); the directory itself stays.
#[test]
fn clearing_a_directory_removes_everything_below_it() {
    let scratch = tempfile::tempdir().unwrap();
    for (top, single) in [("many", false), ("one", true)] {
        let base = if single { scratch.path().join(top).join("data") } else { scratch.path().join(top) };
        for i in 0..40 {
            let dir = base.join(format!("d{i}/sub"));
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(dir.join("file"), "x").unwrap();
            std::os::unix::fs::symlink("/etc/passwd", dir.join("link")).unwrap();
            if i % 7 == 0 {
                std::fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(0o500)).unwrap();
            }
        }
        std::fs::write(base.join("plain"), "y").unwrap();
        let dir = Dir::open_root(&scratch.path().join(top)).unwrap();
        tree::clear_dir(&dir).unwrap();
        let left: Vec<_> = std::fs::read_dir(scratch.path().join(top)).unwrap().collect();
        assert!(left.is_empty(), "{top}: {left:?}");
    }
    assert!(std::fs::read_to_string("/etc/passwd").is_ok_and(|text| !text.is_empty()), "a link's target is kept");
}
