//! Prints tables: how long `/etc` activation of 3000 entries (mostly links, some
//! copies, in 50 directories) takes on tmpfs, cold and as a no-op, next to the same
//! tree made by a plain shell loop of `ln -s`; how many system calls the
//! `blankslate switch` binary spends per entry (`strace -c -f`); what a no-op
//! `blankslate switch` costs with 10,000 entries against the same with 100; and what
//! `blankslate repair` of 3000 entries with nothing to fix costs against
//! `find ROOT/etc -xdev` over the same tree, in time and in system calls; the peak
//! memory of a cold `blankslate switch` of 100 and of 10,000 entries, next to `cp -a`
//! of the 10,000-entry `/etc`; and a switch where 30 of 10,000 entries changed
//! against a no-op of the same 10,000, in time, CPU and system calls.
//!
//! Run: `cargo build --release && cargo bench -p blankslate-activator --bench etc`
//! (the whole-process rows and the syscall counts need `target/release/blankslate`,
//! and `strace`, the peak memory GNU time's `/usr/bin/time`; without them the tables
//! say "n/a"). `BINARIES="before=/path/a after=/path/b"` compares binaries in the
//! memory and 30-changed rows, their runs interleaved.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use blankslate_activator::etc::{self, EtcGeneration, OnConflict};
use blankslate_decl as decl;
use blankslate_state::generation::{DEFAULT_STATE_DIR, State};
use blankslate_state::store::Store;
use blankslate_sys::fs::Dir;
use rustix::process::{WaitId, WaitIdOptions};

const ENTRIES: usize = 3000;
const DIRS: usize = 50;
/// Every this-many-th entry is a copy, the rest links.
const COPY_EVERY: usize = 30;
const RUNS: usize = 11;
/// Cargo runs a bench with its own directories in the loader's search path: the
/// programs measured run without it, as from a shell (no failed opens counted).
const LOADER_PATH: &str = "LD_LIBRARY_PATH";
const SHELL_RUNS: usize = 5;
const STORE: &str = "/var/lib/blankslate/store";
/// The two sizes a no-op switch is compared at.
const SMALL: usize = 100;
const LARGE: usize = 10_000;
/// How many of `LARGE`'s copies the second generation of the 30-changed row changes:
/// copies, so that each is a step of the switch (a link's new contents only flow
/// through `/etc/static`).
const CHANGED: usize = 30;
/// Cold switches of `LARGE` entries per binary (each needs a root built afresh).
const COLD_RUNS: usize = 5;

fn entry_path(i: usize) -> String {
    format!("d{:02}/entry{i}.conf", i % DIRS)
}

/// A declaration of `entries` entries (every `COPY_EVERY`-th a copy, the others links);
/// the first `changed` copies hold other contents than with `changed` 0.
fn declaration_text(entries: usize, changed: usize) -> String {
    let mut text = String::from("version = 1\n");
    for i in 0..entries {
        let copy = i % COPY_EVERY == 0;
        let other = if copy && i / COPY_EVERY < changed { " (changed)" } else { "" };
        let _ = write!(text, "\n[etc.\"{}\"]\ntext = \"setting = {i}{other}\\n\"\n", entry_path(i));
        if copy {
            text.push_str("mode = \"0644\"\n");
        }
    }
    text
}

fn median(samples: Vec<Duration>) -> Duration {
    middle(samples, Duration::cmp).expect("at least one sample")
}

/// The middle of `samples` in the order `compare` gives; `None` if there are none.
fn middle<T: Copy>(mut samples: Vec<T>, compare: fn(&T, &T) -> std::cmp::Ordering) -> Option<T> {
    samples.sort_by(compare);
    samples.get(samples.len() / 2).copied()
}

fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

fn scratch_base() -> PathBuf {
    if Path::new("/dev/shm").is_dir() { PathBuf::from("/dev/shm") } else { std::env::temp_dir() }
}

/// A fresh root with the etc object in its store, ready to activate.
fn prepared_root(base: &Path, name: &str, build: &blankslate_etc_builder::EtcBuild) -> (Dir, Store, EtcGeneration) {
    let path = base.join(name);
    std::fs::create_dir(&path).unwrap();
    let root = Dir::open_root(&path).unwrap();
    let store = Store::open(&root, Path::new(STORE)).unwrap();
    let object = build.add_to_store(&store).unwrap();
    let active = EtcGeneration::load(&store, 1, &object).unwrap();
    (root, store, active)
}

fn library_times(base: &Path, build: &blankslate_etc_builder::EtcBuild) -> (Duration, Duration) {
    let mut cold = Vec::new();
    let mut noop = Vec::new();
    for run in 0..RUNS {
        let (root, store, active) = prepared_root(base, &format!("lib{run}"), build);
        let start = Instant::now();
        let activated = etc::activate(&root, &store, &active, OnConflict::Backup).unwrap();
        cold.push(start.elapsed());
        assert_eq!(activated.plan.steps.len(), ENTRIES);
        let start = Instant::now();
        let activated = etc::activate(&root, &store, &active, OnConflict::Backup).unwrap();
        noop.push(start.elapsed());
        assert!(activated.plan.is_noop());
    }
    (median(cold), median(noop))
}

/// The same tree (every entry a link) made by `sh` running one `ln -s` per entry.
fn shell_time(base: &Path) -> Duration {
    let mut samples = Vec::new();
    for run in 0..SHELL_RUNS {
        let dir = base.join(format!("sh{run}/etc"));
        std::fs::create_dir_all(&dir).unwrap();
        let mut script = String::from("set -e\nln -s /var/lib/blankslate/store/x-etc/etc static\n");
        let _ = writeln!(script, "for d in $(seq -w 0 {}); do mkdir -p d$d; done", DIRS - 1);
        script.push_str("while read -r p; do ln -s \"/etc/static/$p\" \"$p\"; done <<'EOF'\n");
        for i in 0..ENTRIES {
            script.push_str(&entry_path(i));
            script.push('\n');
        }
        script.push_str("EOF\n");
        let start = Instant::now();
        let status = Command::new("sh").arg("-c").arg(&script).current_dir(&dir).status().unwrap();
        samples.push(start.elapsed());
        assert!(status.success());
        assert_eq!(std::fs::read_dir(dir.join("d00")).unwrap().count(), ENTRIES / DIRS);
    }
    median(samples)
}

fn binary() -> Option<PathBuf> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/release/blankslate");
    path.is_file().then_some(path)
}

/// `program` as the measured programs run: no failpoint, no loader path of cargo's.
fn command(program: &Path) -> Command {
    let mut command = Command::new(program);
    command.env_remove("BLANKSLATE_FAILPOINT").env_remove(LOADER_PATH);
    command
}

/// Runs the binary; its standard output.
fn run(binary: &Path, args: &[&str]) -> String {
    let output = command(binary).args(args).output().unwrap();
    assert!(output.status.success(), "{args:?}: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// A root with a declaration of `entries` entries built as generation 1 (not
/// activated) by the binary.
fn built_root(binary: &Path, base: &Path, name: &str, entries: usize) -> String {
    let root = base.join(name);
    std::fs::create_dir(&root).unwrap();
    let root = root.to_str().unwrap().to_owned();
    build(binary, base, &root, &format!("{name}-1"), &declaration_text(entries, 0));
    root
}

/// Builds `text` as the next generation of `root` (not activated).
fn build(binary: &Path, base: &Path, root: &str, name: &str, text: &str) {
    let declaration = base.join(format!("{name}.toml"));
    std::fs::write(&declaration, text).unwrap();
    run(binary, &["build", declaration.to_str().unwrap(), "--root", root]);
}

/// Whole-process time of `blankslate switch 1`, cold and as a no-op.
fn binary_times(binary: &Path, base: &Path) -> (Duration, Duration) {
    let mut cold = Vec::new();
    let mut noop = Vec::new();
    for i in 0..RUNS {
        let root = built_root(binary, base, &format!("bin{i}"), ENTRIES);
        let start = Instant::now();
        run(binary, &["switch", "1", "--root", &root]);
        cold.push(start.elapsed());
        let start = Instant::now();
        run(binary, &["switch", "1", "--root", &root]);
        noop.push(start.elapsed());
    }
    (median(cold), median(noop))
}

/// One run of `program` under `tool` (`strace`, GNU time), which writes what it saw to
/// `out` (`-o`); `None` if the tool cannot be run.
fn observed(tool: &str, options: &[&str], out: &Path, program: &Path, args: &[&str]) -> Option<ExitStatus> {
    command(Path::new(tool))
        .args(options)
        .arg("-o")
        .arg(out)
        .arg(program)
        .args(args)
        .stdout(Stdio::null())
        .status()
        .ok()
}

/// `strace -c -f` of one run of `program` (`blankslate switch 1`, `find`): total
/// calls and the busiest calls.
fn strace(program: &Path, args: &[&str], out: &Path) -> Option<(u64, Vec<(String, u64)>)> {
    if !observed("strace", &["-f", "-c"], out, program, args)?.success() {
        return None;
    }
    let text = std::fs::read_to_string(out).ok()?;
    let mut rows = Vec::new();
    let mut total = None;
    for line in text.lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        // % time, seconds, usecs/call, calls, [errors,] syscall
        if fields.len() < 5 || fields[0].parse::<f64>().is_err() {
            continue;
        }
        let calls: u64 = fields[3].parse().ok()?;
        let name = (*fields.last()?).to_owned();
        if name == "total" {
            total = Some(calls);
        } else {
            rows.push((name, calls));
        }
    }
    rows.sort_by_key(|row| std::cmp::Reverse(row.1));
    rows.truncate(6);
    Some((total?, rows))
}

struct Counts {
    cold: u64,
    noop: u64,
    empty_cold: u64,
    empty_noop: u64,
    busiest_cold: Vec<(String, u64)>,
    busiest_noop: Vec<(String, u64)>,
    /// A repair with the stamps of the last one kept, and the first one, which reads
    /// every link.
    repair: u64,
    empty_repair: u64,
    busiest_repair: Vec<(String, u64)>,
    repair_reading: u64,
    /// `find ROOT/etc -xdev`, the baseline a repair is held to.
    find: u64,
    empty_find: u64,
}

fn syscall_counts(binary: &Path, base: &Path) -> Option<Counts> {
    let out = base.join("strace.out");
    let full = built_root(binary, base, "strace-full", ENTRIES);
    let empty = built_root(binary, base, "strace-empty", 0);
    let switch = |root: &str| strace(binary, &["switch", "1", "--root", root], &out);
    let repairing = |root: &str| strace(binary, &["repair", "--root", root], &out);
    let (cold, busiest_cold) = switch(&full)?;
    let (noop, busiest_noop) = switch(&full)?;
    let (empty_cold, _) = switch(&empty)?;
    let (empty_noop, _) = switch(&empty)?;
    let (repair_reading, _) = repairing(&full)?;
    settle_and_repair(binary, &[&full, &empty]);
    let (repair, busiest_repair) = repairing(&full)?;
    let (empty_repair, _) = repairing(&empty)?;
    let (find, _) = strace(Path::new("find"), &[&format!("{full}/etc"), "-xdev"], &out)?;
    let (empty_find, _) = strace(Path::new("find"), &[&format!("{empty}/etc"), "-xdev"], &out)?;
    Some(Counts {
        cold,
        noop,
        empty_cold,
        empty_noop,
        busiest_cold,
        busiest_noop,
        repair,
        empty_repair,
        busiest_repair,
        repair_reading,
        find,
        empty_find,
    })
}

#[allow(clippy::cast_precision_loss)]
fn per_entry(calls: u64) -> f64 {
    calls as f64 / ENTRIES as f64
}

/// Runs `command` `RUNS * 4` times, alternating with `other` so that both see the
/// same load; returns the medians.
fn alternate(mut command: impl FnMut() -> Duration, mut other: impl FnMut() -> Duration) -> (Duration, Duration) {
    let (mut a, mut b) = (Vec::new(), Vec::new());
    for _ in 0..RUNS * 4 {
        a.push(command());
        b.push(other());
    }
    (median(a), median(b))
}

/// One run of `program`: how long it took, and the CPU time it used (its
/// `schedstat`, read while it is a zombie: waited for with `WNOWAIT`, then reaped).
fn measured(program: &Path, args: &[&str]) -> (Duration, Duration) {
    let start = Instant::now();
    let mut child = command(program).args(args).stdout(Stdio::null()).spawn().unwrap();
    let pid = WaitId::Pid(rustix::process::Pid::from_child(&child));
    rustix::process::waitid(pid, WaitIdOptions::EXITED | WaitIdOptions::NOWAIT).unwrap();
    let wall = start.elapsed();
    let schedstat = std::fs::read_to_string(format!("/proc/{}/schedstat", child.id())).unwrap();
    let on_cpu = schedstat.split_whitespace().next().and_then(|ns| ns.parse().ok()).unwrap();
    assert!(child.wait().unwrap().success(), "{args:?}");
    (wall, Duration::from_nanos(on_cpu))
}

/// A no-op `blankslate switch 1` with `SMALL` and with `LARGE` entries (whole process).
fn noop_scaling(binary: &Path, base: &Path) -> (Duration, Duration) {
    let small = built_root(binary, base, "noop-small", SMALL);
    let large = built_root(binary, base, "noop-large", LARGE);
    for root in [&small, &large] {
        run(binary, &["switch", "1", "--root", root]);
    }
    alternate(
        || measured(binary, &["switch", "1", "--root", &small]).0,
        || measured(binary, &["switch", "1", "--root", &large]).0,
    )
}

/// Waits until the directories of `roots`, activated just now, have been unchanged
/// long enough for a repair to keep their stamps (two seconds), and repairs them once
/// so that it does: the state of a system some seconds after a switch.
fn settle_and_repair(binary: &Path, roots: &[&str]) {
    std::thread::sleep(Duration::from_millis(2100));
    for root in roots {
        run(binary, &["repair", "--root", root]);
    }
}

/// Repair times, medians of alternating runs.
struct RepairTimes {
    /// `blankslate repair` of a root with nothing to fix, the last repair's stamps kept.
    repair: Duration,
    /// The same, the stamps removed first: every link is read (and stamps kept again).
    reading: Duration,
    /// `find ROOT/etc -xdev`.
    find: Duration,
    /// `find` reading every link's target as it goes (`-printf %l`).
    find_links: Duration,
}

fn repair_times(binary: &Path, base: &Path) -> RepairTimes {
    let root = built_root(binary, base, "repair", ENTRIES);
    run(binary, &["switch", "1", "--root", &root]);
    settle_and_repair(binary, &[&root]);
    let etc = format!("{root}/etc");
    let stamps = Path::new(&etc).join(".blankslate/stamps.json");
    assert!(stamps.is_file(), "a repair keeps its stamps");
    let find = |extra: &[&str]| measured(Path::new("find"), &[&[etc.as_str(), "-xdev"], extra].concat()).0;
    let (mut repair, mut reading, mut listed, mut read) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for _ in 0..RUNS * 4 {
        repair.push(measured(binary, &["repair", "--root", &root]).0);
        std::fs::remove_file(&stamps).unwrap();
        reading.push(measured(binary, &["repair", "--root", &root]).0);
        listed.push(find(&[]));
        read.push(find(&["-printf", "%l\n"]));
    }
    RepairTimes { repair: median(repair), reading: median(reading), find: median(listed), find_links: median(read) }
}

/// The library's repair of `ENTRIES` entries with nothing to fix, the last repair's
/// stamps kept.
fn library_repair(base: &Path, build: &blankslate_etc_builder::EtcBuild) -> Duration {
    let (root, store, active) = prepared_root(base, "lib-repair", build);
    etc::activate(&root, &store, &active, OnConflict::Backup).unwrap();
    let state = State::open_locked(&root, Path::new(DEFAULT_STATE_DIR)).unwrap();
    // Some seconds after the switch, as `settle_and_repair`.
    std::thread::sleep(Duration::from_millis(2100));
    etc::repair(&state).unwrap();
    let mut samples = Vec::new();
    for _ in 0..RUNS {
        let start = Instant::now();
        let repaired = etc::repair(&state).unwrap().unwrap();
        samples.push(start.elapsed());
        assert_eq!(repaired.plan.unchanged, ENTRIES);
    }
    median(samples)
}

/// The binaries the memory and 30-changed rows compare: `NAME=PATH` pairs from
/// `BINARIES`, or the release build alone.
fn binaries() -> Vec<(String, PathBuf)> {
    match std::env::var("BINARIES") {
        Ok(list) => list
            .split_whitespace()
            .map(|pair| {
                let (name, path) = pair.split_once('=').expect("BINARIES holds NAME=PATH pairs");
                (name.to_owned(), PathBuf::from(path))
            })
            .collect(),
        Err(_) => binary().map(|path| ("blankslate".to_owned(), path)).into_iter().collect(),
    }
}

/// The peak memory of one run of `program` in MiB: GNU time's `%M`, the child's
/// `ru_maxrss`. `None` without `/usr/bin/time`.
fn peak_mib(program: &Path, args: &[&str], out: &Path) -> Option<f64> {
    let status = observed("/usr/bin/time", &["-f", "%M"], out, program, args)?;
    assert!(status.success(), "{} {args:?}", program.display());
    let kib: u32 = std::fs::read_to_string(out).ok()?.trim().parse().ok()?;
    Some(f64::from(kib) / 1024.0)
}

/// `measure` of a cold switch of `entries` entries, on a root the binary built
/// afresh, removed after.
fn cold_switch<T>(binary: &Path, base: &Path, entries: usize, measure: impl FnOnce(&[&str]) -> T) -> T {
    let root = built_root(binary, base, "cold", entries);
    let measured = measure(&["switch", "1", "--root", &root]);
    std::fs::remove_dir_all(&root).unwrap();
    measured
}

/// What one binary's runs measured in the memory and 30-changed rows: peak memory
/// (MiB), and wall and CPU time.
#[derive(Default)]
struct Floor {
    cold_small_mib: Vec<f64>,
    cold_large_mib: Vec<f64>,
    cold_large: Vec<(Duration, Duration)>,
    changed: Vec<(Duration, Duration)>,
    noop: Vec<(Duration, Duration)>,
    changed_mib: Option<f64>,
    noop_mib: Option<f64>,
    changed_calls: Option<(u64, Vec<(String, u64)>)>,
    noop_calls: Option<(u64, Vec<(String, u64)>)>,
}

/// The same `/etc` made by `cp -a`: peak memory and wall and CPU time, per run.
#[derive(Default)]
struct Copied {
    mib: Vec<f64>,
    times: Vec<(Duration, Duration)>,
}

/// Cold switches of `SMALL` and `LARGE` entries, then a switch where `CHANGED` of
/// `LARGE` entries changed against the no-op of the same `LARGE`, each binary's runs
/// interleaved with the others'; and `cp -a` of an activated `LARGE` `/etc`.
fn floor(binaries: &[(String, PathBuf)], base: &Path) -> (Vec<Floor>, Copied) {
    let out = base.join("floor.out");
    let mut floors: Vec<Floor> = binaries.iter().map(|_| Floor::default()).collect();
    let mut copied = Copied::default();
    for _ in 0..COLD_RUNS {
        for ((_, binary), floor) in binaries.iter().zip(&mut floors) {
            floor.cold_large.push(cold_switch(binary, base, LARGE, |args| measured(binary, args)));
            floor.cold_large_mib.extend(cold_switch(binary, base, LARGE, |args| peak_mib(binary, args, &out)));
            floor.cold_small_mib.extend(cold_switch(binary, base, SMALL, |args| peak_mib(binary, args, &out)));
        }
    }
    let roots: Vec<String> = binaries
        .iter()
        .map(|(name, binary)| {
            let root = built_root(binary, base, &format!("changed-{name}"), LARGE);
            build(binary, base, &root, &format!("changed-{name}-2"), &declaration_text(LARGE, CHANGED));
            run(binary, &["switch", "1", "--root", &root]);
            let switched = run(binary, &["switch", "2", "--root", &root]);
            assert!(switched.contains(&format!("0 added, {CHANGED} changed, 0 removed")), "{switched}");
            root
        })
        .collect();
    // Generation 2 is active: every run switches to the other generation, then again
    // to the same one; the last switches to 1 and back to 2, measured by time and strace.
    for round in 0..=RUNS * 2 {
        let (generation, other) = if round % 2 == 0 { ("1", "2") } else { ("2", "1") };
        for (((_, binary), root), floor) in binaries.iter().zip(&roots).zip(&mut floors) {
            let args = ["switch", generation, "--root", root];
            if round < RUNS * 2 {
                floor.changed.push(measured(binary, &args));
                floor.noop.push(measured(binary, &args));
                continue;
            }
            floor.changed_mib = peak_mib(binary, &args, &out);
            floor.noop_mib = peak_mib(binary, &args, &out);
            let back = ["switch", other, "--root", root];
            floor.changed_calls = strace(binary, &back, &out);
            floor.noop_calls = strace(binary, &back, &out);
        }
    }
    if let Some(root) = roots.first() {
        let (etc, copy) = (format!("{root}/etc"), base.join("cp-a").to_str().unwrap().to_owned());
        let cp = Path::new("cp");
        for _ in 0..COLD_RUNS {
            copied.times.push(measured(cp, &["-a", &etc, &copy]));
            std::fs::remove_dir_all(&copy).unwrap();
            copied.mib.extend(peak_mib(cp, &["-a", &etc, &copy], &out));
            std::fs::remove_dir_all(&copy).unwrap();
        }
    }
    (floors, copied)
}

fn main() {
    let base_dir = tempfile::tempdir_in(scratch_base()).unwrap();
    let base = base_dir.path();
    let text = declaration_text(ENTRIES, 0);
    let checked = decl::check(Path::new("bench.toml"), &text, None);
    let declaration = checked.declaration.expect("the benchmark declaration is valid");
    let build = blankslate_etc_builder::from_declaration(&declaration).unwrap();

    let (cold, noop) = library_times(base, &build);
    let shell = shell_time(base);
    let binary = binary();
    let process = binary.as_deref().map(|b| binary_times(b, base));
    let counts = binary.as_deref().and_then(|b| syscall_counts(b, base));
    let scaling = binary.as_deref().map(|b| noop_scaling(b, base));
    let repair = binary.as_deref().map(|b| repair_times(b, base));
    let repair_library = library_repair(base, &build);
    let binaries = binaries();
    let (floors, cp_a) = floor(&binaries, base);

    let copies = ENTRIES.div_ceil(COPY_EVERY);
    println!(
        "/etc activation: {ENTRIES} entries ({} links, {copies} copies) in {DIRS} directories, on {}",
        ENTRIES - copies,
        scratch_base().display()
    );
    println!("median of {RUNS} runs ({SHELL_RUNS} for the shell loop)\n");
    println!("{:<44} {:>10} {:>9} {:>12}", "case", "median ms", "target", "vs ln -s sh");
    let row = |name: &str, time: Option<Duration>, target: &str| match time {
        Some(time) => {
            println!("{name:<44} {:>10.2} {target:>9} {:>11.3}x", ms(time), time.as_secs_f64() / shell.as_secs_f64());
        }
        None => println!("{name:<44} {:>10} {target:>9} {:>12}", "n/a", "n/a"),
    };
    row("activate cold (library call)", Some(cold), "<= 10 ms");
    row("activate no-op (library call)", Some(noop), "<= 2 ms");
    row("blankslate switch cold (whole process)", process.map(|p| p.0), "");
    row("blankslate switch no-op (whole process)", process.map(|p| p.1), "");
    row("baseline: sh loop of `ln -s` (all links)", Some(shell), "");

    print_counts(counts.as_ref(), binary.is_some());
    print_scaling(scaling);
    print_repair(repair_library, repair);
    print_floor(&binaries, &floors, &cp_a);
}

fn print_counts(counts: Option<&Counts>, have_binary: bool) {
    println!("\nsystem calls of `blankslate switch 1`, `repair` and `find -xdev` (strace -c -f), per /etc entry");
    println!(
        "{:<10} {:>8} {:>11} {:>16} {:>14} {:>8}",
        "case", "total", "per entry", "empty decl total", "marginal/entry", "target"
    );
    if let Some(c) = counts {
        let marginal = |full: u64, empty: u64| per_entry(full.saturating_sub(empty));
        println!(
            "{:<10} {:>8} {:>11.2} {:>16} {:>14.2} {:>8}",
            "cold",
            c.cold,
            per_entry(c.cold),
            c.empty_cold,
            marginal(c.cold, c.empty_cold),
            "~2"
        );
        println!(
            "{:<10} {:>8} {:>11.2} {:>16} {:>14.2} {:>8}",
            "no-op",
            c.noop,
            per_entry(c.noop),
            c.empty_noop,
            marginal(c.noop, c.empty_noop),
            "~0"
        );
        println!(
            "{:<10} {:>8} {:>11.2} {:>16} {:>14.2} {:>8}",
            "repair",
            c.repair,
            per_entry(c.repair),
            c.empty_repair,
            marginal(c.repair, c.empty_repair),
            "~0.1"
        );
        println!(
            "{:<10} {:>8} {:>11.2}   (the first repair, every link read)",
            "repair",
            c.repair_reading,
            per_entry(c.repair_reading)
        );
        println!(
            "{:<10} {:>8} {:>11.2} {:>16} {:>14.2} {:>8}",
            "find",
            c.find,
            per_entry(c.find),
            c.empty_find,
            marginal(c.find, c.empty_find),
            ""
        );
        #[allow(clippy::cast_precision_loss)]
        let ratio = c.repair as f64 / c.find as f64;
        println!("repair / find -xdev: {ratio:.2}x the system calls");
        let list = |rows: &[(String, u64)]| rows.iter().map(|(n, c)| format!("{n} {c}")).collect::<Vec<_>>().join(", ");
        println!("busiest, cold:   {}", list(&c.busiest_cold));
        println!("busiest, no-op:  {}", list(&c.busiest_noop));
        println!("busiest, repair: {}", list(&c.busiest_repair));
    } else {
        for case in ["cold", "no-op", "repair", "find"] {
            println!("{case:<10} {:>8} {:>11} {:>16} {:>14} {:>8}", "n/a", "n/a", "n/a", "n/a", "");
        }
        if have_binary {
            println!("(strace is not available)");
        } else {
            println!("(no target/release/blankslate: run `cargo build --release` first)");
        }
    }
}

fn print_scaling(scaling: Option<(Duration, Duration)>) {
    println!("\nno-op `blankslate switch 1` (whole process), median of {} alternating runs", RUNS * 4);
    match scaling {
        Some((small, large)) => {
            println!("{:<28} {:>10}", "entries", "median ms");
            println!("{:<28} {:>10.2}", SMALL, ms(small));
            println!("{:<28} {:>10.2}", LARGE, ms(large));
            println!("{:<28} {:>10.2}   (target: <= 2 ms)", format!("{LARGE} minus {SMALL}"), ms(large) - ms(small));
        }
        None => println!("n/a (no target/release/blankslate)"),
    }
}

fn print_repair(repair_library: Duration, repair: Option<RepairTimes>) {
    println!("\nrepair of {ENTRIES} entries with nothing to fix, median of {} alternating runs", RUNS * 4);
    println!("{:<44} {:>10} {:>14}", "case", "median ms", "vs find -xdev");
    println!("{:<44} {:>10.2}", "etc::repair (library call, /etc only)", ms(repair_library));
    match repair {
        Some(times) => {
            let row = |name: &str, time: Duration| {
                println!("{name:<44} {:>10.2} {:>13.2}x", ms(time), time.as_secs_f64() / times.find.as_secs_f64());
            };
            row("blankslate repair (whole process)", times.repair);
            row("  the same, stamps removed (reads every link)", times.reading);
            row("baseline: find ROOT/etc -xdev (whole process)", times.find);
            row("find ROOT/etc -xdev -printf %l (reads links)", times.find_links);
        }
        None => println!("{:<44} {:>10}", "blankslate repair (whole process)", "n/a"),
    }
}

/// The medians of wall and CPU time.
fn medians(samples: &[(Duration, Duration)]) -> (Duration, Duration) {
    (median(samples.iter().map(|s| s.0).collect()), median(samples.iter().map(|s| s.1).collect()))
}

#[allow(clippy::cast_precision_loss)]
fn ratio(a: f64, b: f64) -> String {
    format!("{:.1}x", a / b)
}

fn print_floor(binaries: &[(String, PathBuf)], floors: &[Floor], copied: &Copied) {
    if binaries.is_empty() {
        println!("\npeak memory and the 30-changed switch: n/a (no target/release/blankslate)");
        return;
    }
    let cell = |value: Option<f64>| value.map_or_else(|| "n/a".to_owned(), |v| format!("{v:.1}"));
    println!("\npeak memory (MiB: /usr/bin/time's %M); cold: median of {COLD_RUNS} runs, each on a root built afresh");
    print!("{:<44}", "case");
    for (name, _) in binaries {
        print!(" {name:>10}");
    }
    println!(" {:>12}", "target");
    let row = |case: &str, values: &dyn Fn(&Floor) -> Option<f64>, target: &str| {
        print!("{case:<44}");
        for floor in floors {
            print!(" {:>10}", cell(values(floor)));
        }
        println!(" {target:>12}");
    };
    let small = |f: &Floor| middle(f.cold_small_mib.clone(), f64::total_cmp);
    let large = |f: &Floor| middle(f.cold_large_mib.clone(), f64::total_cmp);
    row(&format!("cold switch, {SMALL} entries"), &small, "");
    row(&format!("cold switch, {LARGE} entries"), &large, "<= 8");
    row(&format!("  {LARGE} minus {SMALL}"), &|f| Some(large(f)? - small(f)?), "flat in N");
    row(&format!("switch, {CHANGED} of {LARGE} changed (one run)"), &|f| f.changed_mib, "");
    row(&format!("no-op switch, {LARGE} entries (one run)"), &|f| f.noop_mib, "");
    println!(
        "{:<44} {:>10}",
        format!("baseline: cp -a of the {LARGE}-entry /etc"),
        cell(middle(copied.mib.clone(), f64::total_cmp))
    );

    println!("\ncold switch of {LARGE} entries (whole process), median of {COLD_RUNS} runs");
    println!("{:<44} {:>10} {:>10}", "case", "wall ms", "CPU ms");
    for ((name, _), floor) in binaries.iter().zip(floors) {
        let (wall, cpu) = medians(&floor.cold_large);
        println!("{:<44} {:>10.2} {:>10.2}", format!("{name}: blankslate switch, cold"), ms(wall), ms(cpu));
    }
    let (wall, cpu) = medians(&copied.times);
    println!("{:<44} {:>10.2} {:>10.2}", format!("baseline: cp -a of the {LARGE}-entry /etc"), ms(wall), ms(cpu));

    println!(
        "\n{CHANGED} of {LARGE} entries changed (copies) against a no-op of the same {LARGE} (whole process), \
         median of {} interleaved runs; system calls from strace -c -f",
        RUNS * 2
    );
    println!("{:<44} {:>10} {:>10} {:>10}", "case", "wall ms", "CPU ms", "syscalls");
    for ((name, _), floor) in binaries.iter().zip(floors) {
        let (changed, noop) = (medians(&floor.changed), medians(&floor.noop));
        let calls = |c: &Option<(u64, Vec<(String, u64)>)>| c.as_ref().map(|c| c.0);
        let (changed_calls, noop_calls) = (calls(&floor.changed_calls), calls(&floor.noop_calls));
        let count = |c: Option<u64>| c.map_or_else(|| "n/a".to_owned(), |c| c.to_string());
        println!(
            "{:<44} {:>10.2} {:>10.2} {:>10}",
            format!("{name}: {CHANGED} changed"),
            ms(changed.0),
            ms(changed.1),
            count(changed_calls)
        );
        println!(
            "{:<44} {:>10.2} {:>10.2} {:>10}",
            format!("{name}: no-op"),
            ms(noop.0),
            ms(noop.1),
            count(noop_calls)
        );
        #[allow(clippy::cast_precision_loss)]
        let call_ratio = match (changed_calls, noop_calls) {
            (Some(c), Some(n)) => ratio(c as f64, n as f64),
            _ => "n/a".to_owned(),
        };
        println!(
            "{:<44} {:>10} {:>10} {:>10}   (target: <= 2x)",
            format!("{name}: {CHANGED} changed / no-op"),
            ratio(ms(changed.0), ms(noop.0)),
            ratio(ms(changed.1), ms(noop.1)),
            call_ratio
        );
        if let Some((_, busiest)) = &floor.changed_calls {
            let list = busiest.iter().map(|(n, c)| format!("{n} {c}")).collect::<Vec<_>>().join(", ");
            println!("  busiest, {CHANGED} changed: {list}");
        }
    }
}
