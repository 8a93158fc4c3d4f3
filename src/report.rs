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
pub fn error(error: &(dyn std::error::Error + 'static)) {
    let color = color_for(&std::io::stderr());
    let label = if color { "\x1b[1;31merror\x1b[0m" } else { "error" };
    let mut shown = vec![error.to_string()];
    eprintln!("{label}: {}", shown[0]);
    let mut source = error.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !shown.iter().any(|line| line.contains(&text)) {
            eprintln!("  caused by: {text}");
            shown.push(text);
        }
        source = cause.source();
    }
}

/// Prints a JSON value, pretty, to standard output.
pub fn json(value: &serde_json::Value) {
    println!("{}", serde_json::to_string_pretty(value).expect("JSON values always serialize"));
}

/// Prints a long text in one write (`print!` of something rendered piecewise would
/// write, and flush, line by line).
pub fn print(text: &str) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes()).and_then(|()| out.flush());
}
