//! How results reach the person: colours when a terminal wants them, errors with
//! their chain of causes, JSON when asked.

use std::io::IsTerminal;

/// The command did what was asked and found nothing wrong.
pub const EXIT_OK: u8 = 0;
/// The command ran, and its answer is "no": an invalid declaration, a corrupt store.
pub const EXIT_FINDINGS: u8 = 1;
/// The command line was wrong (clap's code for its own errors), or named something that
/// does not exist (a generation).
pub const EXIT_USAGE: u8 = 2;
/// The command could not do its work: I/O, permissions, a lock, a broken state.
pub const EXIT_FAILURE: u8 = 3;

/// Colour only on a terminal, and never when `NO_COLOR` is set (to anything).
pub fn color_for(stream: &impl IsTerminal) -> bool {
    std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()) && stream.is_terminal()
}

/// Prints an error and every cause under it that adds something: a cause whose text
/// is already part of a line above (many errors quote their source) is not repeated.
/// Standard error failing too, there is nowhere left to say so: the exit code does.
pub fn error(error: &(dyn std::error::Error + 'static)) {
    let color = color_for(&std::io::stderr());
    let label = if color { "\x1b[1;31merror\x1b[0m" } else { "error" };
    let mut shown = vec![error.to_string()];
    let mut text = format!("{label}: {}\n", shown[0]);
    let mut source = error.source();
    while let Some(cause) = source {
        let line = cause.to_string();
        if !shown.iter().any(|above| above.contains(&line)) {
            text.extend(["  caused by: ", &line, "\n"]);
            shown.push(line);
        }
        source = cause.source();
    }
    let _ = write(Stream::Err, &text);
}

/// Standard output or standard error.
#[derive(Debug, Clone, Copy)]
pub enum Stream {
    Out,
    Err,
}

/// A write to standard output or error that failed (a closed pipe, a full disk): an
/// error of the command like any other (exit 3), never a panic.
#[derive(Debug)]
pub struct WriteError {
    stream: Stream,
    source: std::io::Error,
}

impl std::fmt::Display for WriteError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let stream = match self.stream {
            Stream::Out => "standard output",
            Stream::Err => "standard error",
        };
        write!(f, "cannot write to {stream}: {}", self.source)
    }
}

impl std::error::Error for WriteError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.source)
    }
}

/// Writes `text` to `stream` in one write, and flushes it.
pub fn write(stream: Stream, text: &str) -> Result<(), WriteError> {
    use std::io::Write;
    let written = match stream {
        Stream::Out => {
            let mut out = std::io::stdout().lock();
            out.write_all(text.as_bytes()).and_then(|()| out.flush())
        }
        Stream::Err => {
            let mut err = std::io::stderr().lock();
            err.write_all(text.as_bytes()).and_then(|()| err.flush())
        }
    };
    written.map_err(|source| WriteError { stream, source })
}

/// Prints a long text in one write (`print!` of something rendered piecewise would
/// write, and flush, line by line).
pub fn print(text: &str) -> Result<(), WriteError> {
    write(Stream::Out, text)
}

/// Prints a JSON value, pretty, to standard output.
pub fn json(value: &serde_json::Value) -> Result<(), WriteError> {
    print(&format!("{}\n", serde_json::to_string_pretty(value).expect("JSON values always serialize")))
}

/// `println!` that returns the failure to write instead of panicking.
macro_rules! outln {
    ($($arg:tt)*) => {
        $crate::report::write($crate::report::Stream::Out, &format!("{}\n", format_args!($($arg)*)))
    };
}

/// `eprintln!` that returns the failure to write instead of panicking.
macro_rules! errln {
    ($($arg:tt)*) => {
        $crate::report::write($crate::report::Stream::Err, &format!("{}\n", format_args!($($arg)*)))
    };
}

/// `eprint!` that returns the failure to write instead of panicking.
macro_rules! err {
    ($($arg:tt)*) => {
        $crate::report::write($crate::report::Stream::Err, &format!("{}", format_args!($($arg)*)))
    };
}

pub(crate) use {err, errln, outln};
