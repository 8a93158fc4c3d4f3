//! Boot attempts of a generation on trial (see `blankslate_state::trial_record`): counted on
//! the volume before the generation runs, and a failed attempt reboots, so that an
//! unattended machine gets to the next attempt or to the fallback by itself.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use blankslate_state::generation::{DEFAULT_STATE_DIR, State};
use blankslate_state::trial_record::BootChoice;
use blankslate_sys::fs::Dir;

use super::{Failure, Step};

/// Set once this boot's attempt of a generation on trial is counted: a failure after
/// that reboots instead of stopping at the console.
static ON_TRIAL: AtomicBool = AtomicBool::new(false);

/// How long the console shows a failed attempt's message before the reboot.
const REBOOT_DELAY: Duration = Duration::from_secs(5);

/// Records `choice` on the volume (one attempt more, or the failed trial and the
/// boot default moved back) and says it on the console. `own_init`: boot is `/init`,
/// which reboots when a counted attempt fails (a systemd initrd has its own
/// `OnFailure=`).
pub(super) fn commit(volume: &Dir, choice: BootChoice, own_init: bool) -> Result<(), Failure> {
    let hint = "the volume must be writable for a generation on trial to count its boots; boot another generation \
                with blankslate.generation=N";
    match choice {
        BootChoice::Plain(_) => return Ok(()),
        BootChoice::Attempt { generation, attempt, tries, fallback } => eprintln!(
            "blankslate: generation {generation} is on trial: boot {attempt} of {tries} (if none reaches `blankslate \
             confirm`, boot falls back to generation {fallback})"
        ),
        BootChoice::FallBack { from, attempts, to } => eprintln!(
            "blankslate: generation {from} failed its trial ({attempts} boot(s) without `blankslate confirm`): \
             booting generation {to}, the boot default again"
        ),
    }
    let state =
        State::open_existing(volume, Path::new(DEFAULT_STATE_DIR)).step("count the boot attempt", hint)?.ok_or_else(
            || Failure { step: "count the boot attempt".into(), error: "no state".into(), hint: hint.into() },
        )?;
    state.commit_boot_choice(choice).step("count the boot attempt", hint)?;
    if own_init && matches!(choice, BootChoice::Attempt { .. }) {
        ON_TRIAL.store(true, Ordering::SeqCst);
    }
    Ok(())
}

/// After a failure: if this boot was a counted attempt of a generation on trial,
/// reboot (the next boot tries again or falls back); otherwise return.
pub(super) fn reboot_if_on_trial() {
    if !ON_TRIAL.load(Ordering::SeqCst) {
        return;
    }
    eprintln!(
        "blankslate: this boot was an attempt of a generation on trial: rebooting in {} s to try again or fall back",
        REBOOT_DELAY.as_secs()
    );
    rustix::fs::sync();
    std::thread::sleep(REBOOT_DELAY);
    if let Err(error) = rustix::system::reboot(rustix::system::RebootCommand::Restart) {
        eprintln!("blankslate: cannot reboot: {error}");
    }
}
