//! `blankslate`: the command-line front. Argument parsing and output only; the work
//! is done by the library crates.

#![forbid(unsafe_code)]

mod cli;
mod report;

use std::process::ExitCode;

fn main() -> ExitCode {
    // As the kernel's /init (PID 1 in an initramfs): boot, and never return.
    if blankslate_activator::boot::is_initramfs_init() {
        blankslate_activator::boot::main(&std::env::args_os().skip(1).collect::<Vec<_>>());
    }
    let args = cli::parse();
    match cli::run(args) {
        Ok(code) => code,
        Err(error) => {
            report::error(error.error());
            ExitCode::from(error.exit_code())
        }
    }
}
