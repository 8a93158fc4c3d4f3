//! Running the sweep: a clean, recorded run of every command (which must itself end
//! right), then every point on a pool of workers, each in a private mount namespace
//! of its own, and the table.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fmt::Write as _;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::mpsc;
use std::time::Instant;

use super::check::{self, Class, Data, Expect, Failure};
use super::scenarios::Scenario;
use super::trace::{self, Call, Inject, Point, Recording, Sampling};
use super::world::{self, HANG, Worker, World};
use crate::common;

/// What the environment asks of a sweep.
#[derive(Debug, Clone)]
pub struct Config {
    pub sampling: Sampling,
    /// Failing points shown per command and class.
    pub examples: usize,
    /// Only the commands with these names (separated by commas).
    pub only: Option<String>,
    /// Only this point (with `only`), shown in full.
    pub point: Option<Point>,
    pub workers: usize,
}

impl Config {
    /// `BLANKSLATE_SWEEP_FIRST`, `_EVERY`, `_EXAMPLES`, `_ONLY`, `_POINT`, `_WORKERS`.
    pub fn from_env() -> Config {
        let number = |name: &str, default: usize| {
            std::env::var(format!("BLANKSLATE_SWEEP_{name}"))
                .ok()
                .map_or(default, |v| v.parse().unwrap_or_else(|_| panic!("BLANKSLATE_SWEEP_{name}={v}: not a number")))
        };
        let workers = std::thread::available_parallelism().map_or(2, usize::from);
        let point = std::env::var("BLANKSLATE_SWEEP_POINT").ok().map(|p| {
            Point::parse(&p)
                .unwrap_or_else(|| panic!("BLANKSLATE_SWEEP_POINT={p}: not INJECT:SYSCALL:N (kill:renameat:3)"))
        });
        Config {
            sampling: Sampling { first: number("FIRST", DEFAULT_FIRST), every: number("EVERY", DEFAULT_EVERY) },
            examples: number("EXAMPLES", 0),
            only: std::env::var("BLANKSLATE_SWEEP_ONLY").ok(),
            point,
            workers: number("WORKERS", workers).max(1),
        }
    }
}

/// Of each system call the first `DEFAULT_FIRST` points are tried, then every
/// `DEFAULT_EVERY`-th (and the last): chosen so that the whole sweep takes a few
/// minutes on a 2-core machine (README.md, *Crash sweep*, has the numbers).
pub const DEFAULT_FIRST: usize = 40;
pub const DEFAULT_EVERY: usize = 5;

/// A clean run of a command: what it did, and what it left.
#[derive(Debug)]
pub struct Baseline {
    pub recording: Recording,
    /// Data a clean run leaves, which every point must leave too.
    pub reference: Vec<Data>,
    /// The clean run's world (another worker's, maybe), which `reference` names.
    pub top: PathBuf,
    pub failures: Vec<Failure>,
}

/// One point's result.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub scenario: &'static str,
    pub point: Point,
    /// The call the point hits, in the clean run.
    pub call: Call,
    pub failures: Vec<Failure>,
}

/// How a run under injection ended.
#[derive(Debug, Clone)]
pub enum Ran {
    Hung,
    Killed,
    Exited(i32, String),
}

/// What a run under injection comes to: a panic is one whatever follows; a run that
/// says it succeeded despite an injected error must have left the right state as it
/// is (else it is silent about a failure); otherwise the natural recovery runs and
/// the state it leaves is checked.
pub fn verdict(
    inject: Inject,
    ran: &Ran,
    check: &mut dyn FnMut() -> Vec<Failure>,
    recover: &mut dyn FnMut() -> Result<(), Failure>,
) -> Vec<Failure> {
    let mut failures = Vec::new();
    match ran {
        Ran::Hung => failures.push(Failure::new(Class::Stuck, "the command hangs under injection")),
        Ran::Exited(101, stderr) => {
            failures.push(Failure::new(Class::Panic, format!("exit 101: {}", last_line(stderr))));
        }
        Ran::Exited(0, _) if inject != Inject::Kill => {
            let found = check();
            if !found.is_empty() {
                failures.push(Failure::new(Class::Silent, format!("exit 0, then: {}", found[0])));
                failures.extend(found);
            }
            return failures;
        }
        Ran::Killed | Ran::Exited(..) => {}
    }
    if let Err(failure) = recover() {
        failures.push(failure);
    }
    failures.extend(check());
    failures
}

/// A panic's message (the line after `panicked at`), else the last line.
fn last_line(text: &str) -> String {
    let lines: Vec<&str> = text.trim().lines().collect();
    match lines.iter().position(|l| l.contains("panicked at")) {
        Some(at) => lines[at..lines.len().min(at + 2)].join(" "),
        None => lines.last().copied().unwrap_or("").to_owned(),
    }
}

fn expect(scenario: &Scenario, data: Vec<Data>, reference: &[Data]) -> Expect {
    let mut data = data;
    data.extend(reference.iter().cloned());
    Expect { intent: scenario.intent, data }
}

/// The clean, recorded run of `scenario`: it must leave the intended state.
pub fn baseline(worker: &Worker, scenario: &Scenario) -> Baseline {
    let mut world = worker.world(scenario.shape);
    let data = (scenario.setup)(&mut world);
    let trace = world.path("recording.trace");
    let program = scenario.program(&world);
    let output = common::output(&mut trace::recording(&program, &trace));
    let mut failures = Vec::new();
    if !output.status.success() {
        failures.push(Failure::new(
            Class::Stuck,
            format!("the clean run exits {:?}: {}", output.status.code(), common::stderr(&output).trim()),
        ));
    }
    let reference = scenario.reference.map(|make| make(&world)).unwrap_or_default();
    failures.extend(check::check(&world, &expect(scenario, data, &reference)));
    let recording = trace::parse(&std::fs::read_to_string(&trace).expect("the recording"));
    Baseline { recording, reference, top: world.top.clone(), failures }
}

/// Runs one point; with `show`, says everything that happened.
pub fn point(worker: &Worker, scenario: &Scenario, baseline: &Baseline, point: &Point, show: bool) -> Vec<Failure> {
    let mut world = worker.world(scenario.shape);
    let data = (scenario.setup)(&mut world);
    let reference: Vec<Data> = baseline.reference.iter().map(|d| d.rebased(&baseline.top, &world.top)).collect();
    let expect = expect(scenario, data, &reference);
    let program = scenario.program(&world);
    let mut command = point.command(&program);
    if show {
        println!("{}: {command:?}", scenario.name);
    }
    let ran = match common::output_within(&mut command, HANG) {
        None => Ran::Hung,
        Some(output) if output.status.signal() == Some(9) => Ran::Killed,
        Some(output) => Ran::Exited(output.status.code().unwrap_or(-1), common::stderr(&output)),
    };
    if show {
        println!("ran: {ran:?}");
    }
    let world = std::cell::RefCell::new(&mut world);
    verdict(point.inject, &ran, &mut || check::check(&world.borrow(), &expect), &mut || {
        let result = scenario.recover(&mut world.borrow_mut());
        if show {
            println!("recovery: {result:?}");
        }
        result
    })
}

/// Runs `job` for each item on `workers` threads, each in a private mount namespace
/// of its own with a worker directory below `base`; results in any order.
fn pool<T: Sync, R: Send>(base: &Path, workers: usize, items: &[T], job: &(dyn Fn(&Worker, &T) -> R + Sync)) -> Vec<R> {
    let next = Mutex::new(0usize);
    let (send, receive) = mpsc::channel();
    std::thread::scope(|scope| {
        for index in 0..workers.min(items.len()) {
            let (send, next) = (send.clone(), &next);
            let dir: PathBuf = base.join(format!("w{index}"));
            scope.spawn(move || {
                world::enter_private_namespace();
                std::fs::create_dir_all(&dir).unwrap();
                let worker = Worker::new(dir);
                loop {
                    let taken = {
                        let mut next = next.lock().unwrap();
                        let taken = *next;
                        *next += 1;
                        taken
                    };
                    let Some(item) = items.get(taken) else { break };
                    send.send(job(&worker, item)).unwrap();
                }
            });
        }
    });
    drop(send);
    receive.into_iter().collect()
}

/// The sweep: every scenario (or the one `config.only` names), every point; prints
/// the table. Returns the number of failing points (clean runs included).
pub fn sweep(scenarios: &[Scenario], config: &Config) -> usize {
    let started = Instant::now();
    let base = tempfile::Builder::new().prefix("blankslate-sweep-").tempdir().unwrap();
    let chosen: Vec<&Scenario> = scenarios
        .iter()
        .filter(|s| config.only.as_deref().is_none_or(|only| only.split(',').any(|name| s.name == name)))
        .collect();
    assert!(!chosen.is_empty(), "no command is named {:?}", config.only);
    let baselines: BTreeMap<&str, Baseline> =
        pool(base.path(), config.workers, &chosen, &|worker, scenario| (scenario.name, baseline(worker, scenario)))
            .into_iter()
            .collect();
    if let Some(wanted) = &config.point {
        let scenario = chosen[0];
        let baseline = &baselines[scenario.name];
        let call = trace::points(&baseline.recording, wanted.inject, trace::Sampling { first: usize::MAX, every: 1 })
            .into_iter()
            .find(|(p, _)| p == wanted)
            .map_or_else(|| "(not a point the clean run has)".to_owned(), |(_, call)| call.to_string());
        println!("{} at {wanted}: {call}", scenario.name);
        let failures =
            pool(base.path(), 1, std::slice::from_ref(wanted), &|worker, p| point(worker, scenario, baseline, p, true))
                .pop()
                .unwrap();
        for failure in &failures {
            println!("  {failure}");
        }
        return usize::from(!failures.is_empty());
    }
    let mut jobs: Vec<(&Scenario, Point, Call)> = Vec::new();
    for scenario in &chosen {
        for inject in Inject::ALL {
            for (p, call) in trace::points(&baselines[scenario.name].recording, inject, config.sampling) {
                jobs.push((scenario, p, call));
            }
        }
    }
    let outcomes = pool(base.path(), config.workers, &jobs, &|worker, (scenario, p, call)| Outcome {
        scenario: scenario.name,
        point: p.clone(),
        call: call.clone(),
        failures: point(worker, scenario, &baselines[scenario.name], p, false),
    });
    let table = table(&chosen, &baselines, &outcomes, config, started.elapsed().as_secs_f64());
    println!("{table}");
    println!("points tried of those there are, per system call:");
    for scenario in &chosen {
        for inject in Inject::ALL {
            println!(
                "  {:<16} {:<6} {}",
                scenario.name,
                inject.name(),
                coverage(&baselines[scenario.name].recording, inject, config.sampling)
            );
        }
    }
    outcomes.iter().filter(|o| !o.failures.is_empty()).count()
        + baselines.values().filter(|b| !b.failures.is_empty()).count()
}

/// Per system call name: the points tried of those there are (`write 40/130`).
fn coverage(recording: &Recording, inject: Inject, sampling: Sampling) -> String {
    let count = |sampling| {
        let mut per_name: BTreeMap<String, usize> = BTreeMap::new();
        for (p, _) in trace::points(recording, inject, sampling) {
            *per_name.entry(p.syscall).or_default() += 1;
        }
        per_name
    };
    let (tried, all) = (count(sampling), count(Sampling { first: usize::MAX, every: 1 }));
    all.iter().map(|(name, n)| format!("{name} {}/{n}", tried.get(name).unwrap_or(&0))).collect::<Vec<_>>().join(", ")
}

/// The table: per command and injection, points tried, recovered, and failing points
/// by class; then the clean runs that failed, and examples of failing points.
pub fn table(
    scenarios: &[&Scenario],
    baselines: &BTreeMap<&str, Baseline>,
    outcomes: &[Outcome],
    config: &Config,
    seconds: f64,
) -> String {
    let mut out = String::new();
    let Sampling { first, every } = config.sampling;
    let _ = writeln!(
        out,
        "crash sweep: {} commands, {} points (of each system call the first {first}, then every {every}th), {} workers, \
         {seconds:.0} s",
        scenarios.len(),
        outcomes.len(),
        config.workers,
    );
    let _ = write!(out, "{:<18} {:<6} {:>6} {:>9}", "command", "inject", "points", "recovered");
    for class in Class::ALL {
        let _ = write!(out, " {:>7}", class.name());
    }
    out.push('\n');
    let mut examples: BTreeMap<(&str, Class), Vec<&Outcome>> = BTreeMap::new();
    for scenario in scenarios {
        for inject in Inject::ALL {
            let these: Vec<&Outcome> =
                outcomes.iter().filter(|o| o.scenario == scenario.name && o.point.inject == inject).collect();
            let recovered = these.iter().filter(|o| o.failures.is_empty()).count();
            let _ = write!(out, "{:<18} {:<6} {:>6} {:>9}", scenario.name, inject.name(), these.len(), recovered);
            for class in Class::ALL {
                let failing: Vec<&&Outcome> =
                    these.iter().filter(|o| o.failures.iter().any(|f| f.class == class)).collect();
                let shown = if failing.is_empty() { ".".to_owned() } else { failing.len().to_string() };
                let _ = write!(out, " {shown:>7}");
                let list = examples.entry((scenario.name, class)).or_default();
                list.extend(failing.iter().map(|o| **o));
            }
            out.push('\n');
        }
    }
    for (name, baseline) in baselines {
        for failure in &baseline.failures {
            let _ = writeln!(out, "clean run of {name} is wrong: {failure}");
        }
    }
    let _ = writeln!(out, "classes: {}", Class::ALL.map(Class::meaning).join("; "));
    if config.examples > 0 {
        for ((name, class), list) in &examples {
            let mut list = list.clone();
            list.sort_by(|a, b| a.point.cmp(&b.point));
            for outcome in list.iter().take(config.examples) {
                let detail = outcome.failures.iter().find(|f| f.class == *class).unwrap();
                let _ =
                    writeln!(out, "{name} [{}] {} at {}: {}", class.name(), outcome.point, outcome.call, detail.detail);
                let _ = writeln!(
                    out,
                    "    reproduce: BLANKSLATE_SWEEP_ONLY='{name}' BLANKSLATE_SWEEP_POINT={} cargo test --test crash_sweep \
                     -- --ignored --nocapture",
                    outcome.point
                );
            }
        }
    }
    out
}

/// Runs `job` on one worker in a private mount namespace (the self-test's way in).
pub fn on_one_worker<R: Send>(job: &(dyn Fn(&Worker) -> R + Sync)) -> R {
    let base = tempfile::Builder::new().prefix("blankslate-sweep-").tempdir().unwrap();
    pool(base.path(), 1, &[()], &|worker, ()| job(worker)).pop().unwrap()
}

/// A world of `scenario` as its clean command leaves it (for planting failures in).
pub fn after_clean_run(worker: &Worker, scenario: &Scenario) -> (World, Expect) {
    let mut world = worker.world(scenario.shape);
    let data = (scenario.setup)(&mut world);
    let program = scenario.program(&world);
    let args: Vec<OsString> = program[1..].to_vec();
    let output = common::output(std::process::Command::new(&program[0]).args(&args));
    assert!(output.status.success(), "{}: {}", scenario.name, common::stderr(&output));
    (world, expect(scenario, data, &[]))
}
