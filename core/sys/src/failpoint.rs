//! Crash injection for tests: `BLANKSLATE_FAILPOINT=NAME` makes the process abort,
//! as a power cut would stop it, when it reaches the step called NAME;
//! `BLANKSLATE_FAILPOINT=NAME#N` aborts at the N-th time it reaches it (from 1), so a
//! test can stop a loop of steps at each one in turn. With a `hang:` prefix the
//! process stops there instead (says so and sleeps forever): a VM test then cuts the
//! power, which also loses what the kernel had not yet written to the disk, as an
//! abort does not. The variable is read once; with it unset every check is a
//! comparison against `None`.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};

struct Chosen {
    step: String,
    nth: u32,
    hang: bool,
}

static CHOSEN: OnceLock<Option<Chosen>> = OnceLock::new();
static HITS: AtomicU32 = AtomicU32::new(0);

fn chosen() -> Option<&'static Chosen> {
    CHOSEN
        .get_or_init(|| {
            let value = std::env::var("BLANKSLATE_FAILPOINT").ok()?;
            let (hang, value) = match value.strip_prefix("hang:") {
                Some(rest) => (true, rest.to_owned()),
                None => (false, value),
            };
            let (step, nth) = match value.split_once('#') {
                Some((step, nth)) => (step.to_owned(), nth.parse().ok()?),
                None => (value, 1),
            };
            Some(Chosen { step, nth, hang })
        })
        .as_ref()
}

/// Aborts (or hangs) the process here if this step (this time) was chosen.
pub fn hit(step: &str) {
    let Some(chosen) = chosen() else { return };
    if chosen.step == step && HITS.fetch_add(1, Ordering::Relaxed) + 1 == chosen.nth {
        if chosen.hang {
            eprintln!("blankslate: failpoint {step}#{}: hanging", chosen.nth);
            loop {
                std::thread::sleep(std::time::Duration::from_secs(3600));
            }
        }
        eprintln!("blankslate: failpoint {step}#{}: aborting", chosen.nth);
        std::process::abort();
    }
}
