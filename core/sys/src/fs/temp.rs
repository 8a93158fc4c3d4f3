//! Names for temporaries: `.NAME.tmp-PID-N`, with `N` counted from a random base so
//! that nobody who can write a directory can plant something at a temporary's name
//! before it is made; and telling such names apart from a person's files.

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStrExt;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// Where this process's temporary names start counting: a random number, so that
/// nobody who can write a directory (a metrics directory, a home) can plant
/// something at the name of a temporary before it is made. The create is `O_EXCL |
/// O_NOFOLLOW` and is never led anywhere by it; a guessed name would only make it fail.
fn temp_base() -> u64 {
    static BASE: OnceLock<u64> = OnceLock::new();
    *BASE.get_or_init(|| {
        use rustix::rand::{GetRandomFlags, getrandom};
        let mut random = [0u8; 4];
        // Never waiting for the kernel's random pool: at boot, before it is seeded,
        // a plain getrandom blocks for a second or more (measured in the VM tests),
        // while nobody is there yet to guess a name. GRND_INSECURE (Linux 5.6) never
        // waits; before it, GRND_NONBLOCK; without either, the clock. The names stay
        // unique whatever the base is.
        let filled = getrandom(&mut random, GetRandomFlags::INSECURE)
            .or_else(|_| getrandom(&mut random, GetRandomFlags::NONBLOCK))
            .is_ok_and(|n| n == random.len());
        if filled {
            u64::from(u32::from_ne_bytes(random))
        } else {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |t| u64::from(t.subsec_nanos()))
        }
    })
}

/// A fresh temporary name for a sibling of `name` (`.NAME.tmp-PID-N`), starting with
/// `.` so that tools walking the directory can tell it apart; `N` counts from
/// `temp_base`.
pub fn temp_name(name: &OsStr) -> OsString {
    let n = temp_base() + TEMP_COUNTER.fetch_add(1, Ordering::Relaxed);
    let mut temp = OsString::from(".");
    temp.push(name);
    temp.push(format!(".tmp-{}-{n}", std::process::id()));
    temp
}

/// Whether `name` was made by [`temp_name`].
pub fn is_temp_name(name: &OsStr) -> bool {
    let bytes = name.as_bytes();
    bytes.starts_with(b".") && bytes.windows(5).any(|w| w == b".tmp-")
}
