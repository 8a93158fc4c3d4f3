//! Resolving a path inside the root the way the kernel does, the helper the other
//! tests read `/etc` through.

#[allow(clippy::wildcard_imports)]
use super::*;

#[test]
fn resolve_in_follows_links_the_way_the_kernel_does_inside_the_root() {
    let scratch = EtcRoot::new();
    scratch.write("real/file", "inside");
    std::os::unix::fs::symlink("/etc/real", scratch.etc("absolute")).unwrap();
    std::os::unix::fs::symlink("real/../real/file", scratch.etc("relative")).unwrap();
    std::os::unix::fs::symlink("../../../../../../etc/real/file", scratch.etc("escape")).unwrap();
    assert_eq!(scratch.read("absolute/file"), "inside");
    assert_eq!(scratch.read("relative"), "inside");
    assert_eq!(scratch.read("escape"), "inside", "`..` stops at the root");
    assert!(read_in(scratch.path(), "/etc/missing").is_err());
    std::os::unix::fs::symlink("loop", scratch.etc("loop")).unwrap();
    assert!(read_in(scratch.path(), "/etc/loop").is_err());
    // The emulation agrees with the kernel's RESOLVE_IN_ROOT, on a real activation too.
    let one =
        scratch.build(1, "version = 1\n[etc.\"a/b\"]\ntext = \"b\"\n[etc.\"c\"]\ntext = \"c\"\nmode = \"0600\"\n");
    scratch.activate(&one);
    for path in ["/etc/absolute/file", "/etc/relative", "/etc/escape", "/etc/a/b", "/etc/c", "/etc/static/a/b"] {
        assert_eq!(read_in(scratch.path(), path).unwrap(), read_by_kernel(scratch.path(), path).unwrap(), "{path}");
    }
    assert!(read_by_kernel(scratch.path(), "/etc/missing").is_err());
}
