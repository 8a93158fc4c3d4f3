//! Fills the VM tests' caches under `target/` ahead of the tests: the static binary,
//! the kernels, OVMF, the Debian images and each suite's second kernel, each as the
//! test that needs it would (the same functions, the same cache keys). CI starts it
//! in the background while it compiles and runs the other tests, so the VM lanes
//! start with nothing left to download or build. Runs as root (mmdebstrap).
//!
//! It goes on after a failure (a test that needs that cache tries again) and exits 1
//! if any step failed.

use std::process::ExitCode;
use std::time::Instant;

use blankslate_vm_tests::debian::{self, Suite};
use blankslate_vm_tests::{Result, compressed_modules_kernel, kernel, static_binary, trixie_kernel, uefi};

/// What a step fills, and the function that fills it.
type Step = (&'static str, fn() -> Result<()>);

fn main() -> ExitCode {
    let steps: [Step; 9] = [
        ("the static binary", || static_binary().map(drop)),
        ("Debian 12's cloud kernel", || kernel().map(drop)),
        ("its modules compressed", || compressed_modules_kernel().map(drop)),
        ("Debian 13's cloud kernel", || trixie_kernel().map(drop)),
        ("OVMF", || uefi::firmware().map(drop)),
        ("the Debian 12 image", || debian::image(Suite::Bookworm).map(drop)),
        ("the Debian 13 image", || debian::image(Suite::Trixie).map(drop)),
        ("the UEFI machine's image", || uefi::image().map(drop)),
        ("the second kernels", || {
            debian::second_kernel(Suite::Bookworm)?;
            debian::second_kernel(Suite::Trixie).map(drop)
        }),
    ];
    let mut failed = false;
    for (what, step) in steps {
        let started = Instant::now();
        match step() {
            Ok(()) => println!("vm-fill-caches: {what}: {:.0} s", started.elapsed().as_secs_f64()),
            Err(error) => {
                println!("vm-fill-caches: {what}: failed after {:.0} s: {error}", started.elapsed().as_secs_f64());
                failed = true;
            }
        }
    }
    if failed { ExitCode::FAILURE } else { ExitCode::SUCCESS }
}
