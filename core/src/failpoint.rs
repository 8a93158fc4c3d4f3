//! Crash injection for tests: `BLANKSLATE_FAILPOINT=NAME` makes the process abort,
//! as a power cut would stop it, when it reaches the step called NAME. The variable
//! is read once; with it unset every check is a comparison against `None`.

use std::sync::OnceLock;

static FAILPOINT: OnceLock<Option<String>> = OnceLock::new();

/// Aborts the process here if this step was chosen.
pub fn hit(step: &str) {
    let chosen = FAILPOINT.get_or_init(|| std::env::var("BLANKSLATE_FAILPOINT").ok());
    if chosen.as_deref() == Some(step) {
        eprintln!("blankslate: failpoint {step}: aborting");
        std::process::abort();
    }
}
