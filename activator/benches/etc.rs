//! Prints tables: how long `/etc` activation of 3000 entries (mostly links, some
//! copies, in 50 directories) takes on tmpfs, cold and as a no-op, next to the same
//! tree made by a plain shell loop of `ln -s`; how many system calls the
//! `blankslate switch` binary spends per entry (`strace -c -f`); what a no-op
//! `blankslate switch` costs with 10,000 entries against the same with 100; and what
//! `blankslate repair` of 3000 entries with nothing to fix costs against
//! `find ROOT/etc -xdev` over the same tree, in time and in system calls.
//!
//! Run: `cargo build --release && cargo bench -p blankslate-activator --bench etc`
//! (the whole-process rows and the syscall counts need `target/release/blankslate`,
//! and `strace`; without them the tables say "n/a").

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use blankslate_activator::etc::{self, EtcGeneration, OnConflict};
use blankslate_decl as decl;
use blankslate_state::generation::{DEFAULT_STATE_DIR, State};
use blankslate_state::store::Store;
use blankslate_sys::fs::Dir;

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

fn entry_path(i: usize) -> String {
    format!("d{:02}/entry{i}.conf", i % DIRS)
}

fn declaration_text(entries: usize) -> String {
    let mut text = String::from("version = 1\n");
    for i in 0..entries {
        let _ = write!(text, "\n[etc.\"{}\"]\ntext = \"setting = {i}\\n\"\n", entry_path(i));
        if i % COPY_EVERY == 0 {
            text.push_str("mode = \"0644\"\n");
        }
    }
    text
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
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

fn run(binary: &Path, args: &[&str]) {
    let output =
        Command::new(binary).args(args).env_remove("BLANKSLATE_FAILPOINT").env_remove(LOADER_PATH).output().unwrap();
    assert!(output.status.success(), "{args:?}: {}", String::from_utf8_lossy(&output.stderr));
}

/// A root with `DECL` built as generation 1 (not activated) by the binary.
fn built_root(binary: &Path, base: &Path, name: &str, entries: usize) -> String {
    let root = base.join(name);
    std::fs::create_dir(&root).unwrap();
    let declaration = base.join(format!("{name}.toml"));
    std::fs::write(&declaration, declaration_text(entries)).unwrap();
    let root = root.to_str().unwrap().to_owned();
    run(binary, &["build", declaration.to_str().unwrap(), "--root", &root]);
    root
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

/// `strace -c -f` of one run of `program` (`blankslate switch 1`, `find`): total
/// calls and the busiest calls.
fn strace(program: &Path, args: &[&str], out: &Path) -> Option<(u64, Vec<(String, u64)>)> {
    let status = Command::new("strace")
        .env_remove(LOADER_PATH)
        .args(["-f", "-c", "-o"])
        .arg(out)
        .arg(program)
        .args(args)
        .stdout(std::process::Stdio::null())
        .status()
        .ok()?;
    if !status.success() {
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
    repair: u64,
    empty_repair: u64,
    busiest_repair: Vec<(String, u64)>,
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

fn timed(binary: &Path, args: &[&str]) -> Duration {
    let start = Instant::now();
    run(binary, args);
    start.elapsed()
}

/// A no-op `blankslate switch 1` with `SMALL` and with `LARGE` entries (whole process).
fn noop_scaling(binary: &Path, base: &Path) -> (Duration, Duration) {
    let small = built_root(binary, base, "noop-small", SMALL);
    let large = built_root(binary, base, "noop-large", LARGE);
    for root in [&small, &large] {
        run(binary, &["switch", "1", "--root", root]);
    }
    alternate(
        || timed(binary, &["switch", "1", "--root", &small]),
        || timed(binary, &["switch", "1", "--root", &large]),
    )
}

/// `blankslate repair` of a root with nothing to fix; `find ROOT/etc -xdev` of it;
/// and `find` reading every link's target as it goes (`-printf %l`), the least a
/// check of each link does. Medians of alternating runs.
fn repair_times(binary: &Path, base: &Path) -> (Duration, Duration, Duration) {
    let root = built_root(binary, base, "repair", ENTRIES);
    run(binary, &["switch", "1", "--root", &root]);
    let etc = format!("{root}/etc");
    let find = |extra: &[&str]| {
        let start = Instant::now();
        let status = Command::new("find")
            .args([&etc, "-xdev"])
            .args(extra)
            .env_remove(LOADER_PATH)
            .stdout(std::process::Stdio::null())
            .status();
        assert!(status.unwrap().success());
        start.elapsed()
    };
    let (mut repair, mut listed, mut read) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..RUNS * 4 {
        repair.push(timed(binary, &["repair", "--root", &root]));
        listed.push(find(&[]));
        read.push(find(&["-printf", "%l\n"]));
    }
    (median(repair), median(listed), median(read))
}

/// The library's repair of `ENTRIES` entries with nothing to fix.
fn library_repair(base: &Path, build: &blankslate_etc_builder::EtcBuild) -> Duration {
    let (root, store, active) = prepared_root(base, "lib-repair", build);
    etc::activate(&root, &store, &active, OnConflict::Backup).unwrap();
    let state = State::open_locked(&root, Path::new(DEFAULT_STATE_DIR)).unwrap();
    let mut samples = Vec::new();
    for _ in 0..RUNS {
        let start = Instant::now();
        let repaired = etc::repair(&state).unwrap().unwrap();
        samples.push(start.elapsed());
        assert_eq!(repaired.plan.unchanged, ENTRIES);
    }
    median(samples)
}

fn main() {
    let base_dir = tempfile::tempdir_in(scratch_base()).unwrap();
    let base = base_dir.path();
    let text = declaration_text(ENTRIES);
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

    println!("\nsystem calls of `blankslate switch 1`, `repair` and `find -xdev` (strace -c -f), per /etc entry");
    println!(
        "{:<10} {:>8} {:>11} {:>16} {:>14} {:>8}",
        "case", "total", "per entry", "empty decl total", "marginal/entry", "target"
    );
    if let Some(c) = &counts {
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
            "~1"
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
        println!("repair / find -xdev: {ratio:.2}x the system calls (a readlink per link is the floor)");
        let list = |rows: &[(String, u64)]| rows.iter().map(|(n, c)| format!("{n} {c}")).collect::<Vec<_>>().join(", ");
        println!("busiest, cold:   {}", list(&c.busiest_cold));
        println!("busiest, no-op:  {}", list(&c.busiest_noop));
        println!("busiest, repair: {}", list(&c.busiest_repair));
    } else {
        for case in ["cold", "no-op", "repair", "find"] {
            println!("{case:<10} {:>8} {:>11} {:>16} {:>14} {:>8}", "n/a", "n/a", "n/a", "n/a", "");
        }
        if binary.is_none() {
            println!("(no target/release/blankslate: run `cargo build --release` first)");
        } else {
            println!("(strace is not available)");
        }
    }

    print_scaling(scaling);
    print_repair(repair_library, repair);
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

fn print_repair(repair_library: Duration, repair: Option<(Duration, Duration, Duration)>) {
    println!("\nrepair of {ENTRIES} entries with nothing to fix, median of {} alternating runs", RUNS * 4);
    println!("{:<44} {:>10} {:>14}", "case", "median ms", "vs find -xdev");
    println!("{:<44} {:>10.2}", "etc::repair (library call, /etc only)", ms(repair_library));
    match repair {
        Some((repair, find, find_links)) => {
            let ratio = |time: Duration| time.as_secs_f64() / find.as_secs_f64();
            println!("{:<44} {:>10.2} {:>13.2}x", "blankslate repair (whole process)", ms(repair), ratio(repair));
            println!("{:<44} {:>10.2} {:>13.2}x", "baseline: find ROOT/etc -xdev (whole process)", ms(find), 1.0);
            println!(
                "{:<44} {:>10.2} {:>13.2}x",
                "find ROOT/etc -xdev -printf %l (reads links)",
                ms(find_links),
                ratio(find_links)
            );
        }
        None => println!("{:<44} {:>10}", "blankslate repair (whole process)", "n/a"),
    }
}
