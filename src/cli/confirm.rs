//! Switching on trial: `switch --confirm-within`, `switch --tries`, `blankslate
//! confirm`, the watcher's `trial-expire`, and `boot-deadline` (a boot on trial that
//! is not confirmed in time reboots).

use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use blankslate_activator::switch::Live;
use blankslate_activator::trial::{self as watcher, BootAttempt, Settled};
use blankslate_state::generation::format_utc;
use blankslate_state::trial_record::{BootTrial, LiveTrial, TrialAttempt, Watcher, now};

use super::{Result, Target, live, open_state, print_recovered, read_state};
use crate::report::{errln, outln};

// How a switch is put on trial.
#[derive(Debug, clap::Args)]
pub(super) struct TrialArgs {
    /// Fall back by itself unless `blankslate confirm` comes within DURATION (`90`,
    /// `90s`, `5m`, `1h`): the generation active before is activated again, even if
    /// this session is gone by then. The boot default moves (without --test) only once
    /// confirmed, so a reboot meanwhile also falls back.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, conflicts_with = "boot")]
    pub confirm_within: Option<Duration>,
    /// Put the new boot default on trial for N boots: a boot counts before the
    /// generation runs, and `blankslate confirm` in the booted system ends the trial;
    /// after N boots without it, boot falls back to the last generation confirmed
    /// good (or the boot default before) by itself.
    #[arg(long, value_name = "N", conflicts_with = "test", value_parser = clap::value_parser!(u32).range(1..))]
    pub tries: Option<u32>,
}

/// `90`, `90s`, `5m`, `1h`.
fn parse_duration(text: &str) -> std::result::Result<Duration, String> {
    let (number, unit) = text.find(|c: char| !c.is_ascii_digit()).map_or((text, ""), |i| text.split_at(i));
    let scale = match unit {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        _ => return Err(format!("`{text}`: a duration is a number of seconds, or ends in s, m or h (90, 5m, 1h)")),
    };
    let number: u64 = number.parse().map_err(|_| format!("`{text}`: a duration starts with a number (90, 5m, 1h)"))?;
    if number == 0 {
        return Err("a trial needs at least one second to be confirmed in".into());
    }
    Ok(Duration::from_secs(number.saturating_mul(scale)))
}

pub(super) fn print_armed(trial: &LiveTrial) -> Result<()> {
    let watched = match &trial.watcher {
        Some(Watcher::Systemd { unit }) => format!("systemd timer {unit}"),
        Some(Watcher::Process { pid }) => format!("process {pid}, in a session of its own"),
        None => "nothing".into(),
    };
    let then = if trial.make_default { ", and makes it the boot default" } else { "" };
    outln!(
        "generation {} is active on trial: `blankslate confirm` before {} UTC keeps it{then}; otherwise \
         generation {} is activated again by itself (watched by {watched})",
        trial.generation,
        format_utc(trial.deadline),
        trial.previous,
    )?;
    Ok(())
}

pub(super) fn print_boot_trial(trial: &BootTrial) -> Result<()> {
    outln!(
        "generation {} is on trial for {} boot(s): `blankslate confirm` in the booted system ends it; otherwise boot \
         falls back to generation {}",
        trial.generation,
        trial.tries,
        trial.fallback
    )?;
    Ok(())
}

#[derive(Debug, clap::Args)]
pub(super) struct ConfirmArgs {
    #[command(flatten)]
    target: Target,
}

/// `blankslate confirm`.
pub(super) fn confirm(args: &ConfirmArgs) -> Result<ExitCode> {
    let state = open_state(&args.target)?;
    let (recovered, confirmed) = live(&state, &args.target, Live::confirm)?;
    print_recovered(&recovered)?;
    if let Some(Settled { trial, boot_default, boot_trial }) = &confirmed.live {
        match boot_default {
            Some(number) if *number == trial.generation => {
                outln!("generation {number} confirmed: it stays active and the boot default")?;
            }
            Some(number) => outln!(
                "generation {} confirmed: it stays active, as generation {number} (amended since), the boot default",
                trial.generation
            )?,
            None => outln!("generation {} confirmed: it stays active", trial.generation)?,
        }
        if let Some(trial) = boot_trial {
            print_boot_trial(trial)?;
        }
    }
    if let Some(good) = confirmed.good {
        outln!("generation {good} (booted) marked good: boot falls back to it if a later trial fails")?;
    }
    if let Some(amended) = confirmed.amended_good {
        outln!("generation {amended} (the booted one, amended since) marked good: its boot trial ends")?;
    }
    if confirmed.live.is_none() && confirmed.good.is_none() {
        outln!("nothing to confirm: no switch is on trial, and this root was not booted by blankslate")?;
    }
    Ok(ExitCode::SUCCESS)
}

#[derive(Debug, clap::Args)]
pub(super) struct ExpireArgs {
    /// The trial's id.
    #[arg(long)]
    id: String,
    #[command(flatten)]
    target: Target,
    /// Detach into a session of its own, say `armed`, and wait SECONDS first (the
    /// watcher without systemd).
    #[arg(long, value_name = "SECONDS")]
    after: Option<u64>,
}

/// `blankslate trial-expire`: the watcher, run by systemd at the deadline or detached
/// by `switch --confirm-within`.
pub(super) fn expire(args: &ExpireArgs) -> Result<ExitCode> {
    if let Some(seconds) = args.after {
        // Before anything else: out of the switch's session, away from its terminal.
        watcher::detach()?;
        let deadline = now().saturating_add(i64::try_from(seconds).unwrap_or(i64::MAX));
        // The only line on the pipe, whose reader is gone soon after.
        outln!("armed")?;
        watcher::sleep_until(deadline);
    }
    let state = open_state(&args.target)?;
    let expired = live(&state, &args.target, |live| live.expire(&args.id))?;
    let stamp = format_utc(now());
    match expired {
        None => errln!("{stamp} UTC: trial {} was confirmed or replaced: nothing to do", args.id)?,
        Some((trial, _)) => errln!(
            "{stamp} UTC: generation {} was not confirmed in time: generation {} is active again",
            trial.generation,
            trial.previous
        )?,
    }
    Ok(ExitCode::SUCCESS)
}

#[derive(Debug, clap::Args)]
pub(super) struct BootDeadlineArgs {
    /// How long after the kernel started a boot on trial has to reach `blankslate
    /// confirm` (`90s`, `10m`, `1h`), counted on the kernel's boot clock.
    #[arg(value_name = "DURATION", value_parser = parse_duration)]
    within: Duration,
    #[command(flatten)]
    target: Target,
}

/// How often the deadline's watch looks for a confirmation.
const DEADLINE_POLL: Duration = Duration::from_secs(2);
/// How long systemd gets to reboot cleanly before the kernel is asked directly.
const REBOOT_GRACE: Duration = Duration::from_secs(120);

/// `blankslate boot-deadline DURATION` (run by blankslate-boot-deadline.service): if
/// this boot is an attempt of a generation on trial, reboot unless it is confirmed
/// within DURATION of booting; the next boot tries it again or falls back.
pub(super) fn boot_deadline(args: &BootDeadlineArgs) -> Result<ExitCode> {
    let attempt = match read_state(&args.target)? {
        Some(state) => BootAttempt::of_this_boot(&state)?.map(|attempt| (state, attempt)),
        None => None,
    };
    let Some((state, attempt)) = attempt else {
        outln!("this boot is not an attempt of a generation on trial: nothing to watch")?;
        return Ok(ExitCode::SUCCESS);
    };
    let BootAttempt { attempt: TrialAttempt { attempt: number, tries }, trial, .. } = &attempt;
    let within = args.within.as_secs();
    outln!(
        "generation {} is on a boot trial (attempt {number} of {tries}): unless `blankslate confirm` runs within {within} s \
         of booting, this machine reboots",
        trial.generation
    )?;
    // Watching only reads; the decision is made again under the state lock, held until
    // the reboot, so that no `blankslate confirm` lands between the two.
    let locked = match attempt.wait(&state, args.within, DEADLINE_POLL)? {
        Some(_) => Some(open_state(&args.target)?),
        None => None,
    };
    let waited = match &locked {
        Some(locked) => attempt.wait(locked, Duration::ZERO, DEADLINE_POLL)?,
        None => None,
    };
    let Some(trial) = waited else {
        outln!(
            "generation {}'s boot trial ended in time (confirmed, or another boot default): no reboot",
            trial.generation
        )?;
        return Ok(ExitCode::SUCCESS);
    };
    let next = if trial.attempts < trial.tries {
        format!("tries it again (attempt {} of {})", trial.attempts + 1, trial.tries)
    } else {
        format!("falls back to generation {}", trial.fallback)
    };
    let late = format!("generation {} was not confirmed within {within} s of booting", trial.generation);
    if args.target.root != Path::new("/") {
        // Only the live system is rebooted: a root elsewhere (a scratch root, a
        // mounted image) is not what this kernel runs.
        errln!("{late}: the next boot {next}; not rebooting, as {} is not the live root", args.target.root.display())?;
        return Ok(ExitCode::from(1));
    }
    errln!("{late}: rebooting; the next boot {next}")?;
    let error = watcher::reboot(REBOOT_GRACE);
    Err(std::io::Error::other(format!("cannot reboot: {error}")).into())
}
