//! `blankslate`: the command-line front. Argument parsing and output only; the work
//! is done by the library crates.

#![forbid(unsafe_code)]

mod cli;
mod report;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let args = cli::Cli::parse();
    match cli::run(args) {
        Ok(code) => code,
        Err(error) => {
            report::error(error.as_ref());
            ExitCode::from(report::EXIT_FAILURE)
        }
    }
}
