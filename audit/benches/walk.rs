//! Prints a table: the audit walk of a large tmpfs tree against `find -xdev` listing
//! the same tree's names (measured in the same run), the audit's peak memory, and the
//! audit of a smaller tree against Debian's `aide --check` with comparable checks
//! (type, permissions, owner, size; aide is installed with apt-get if missing, else
//! n/a).
//!
//! The tree (on `/dev/shm`): directories of 50 entries at depths 1 to 6, about 5% of
//! them under persisted (declared) directories, the rest undeclared, so nearly every
//! file is `stat`ed for its size. Each measurement runs in a fresh child process
//! (the audit's peak memory is that child's `VmHWM`), best of several runs.
//!
//! A third audit adds `[audit] ignore` globs that match nothing in the tree (so the
//! same work is done), to show what matching every unaccounted entry against them
//! costs.
//!
//! Run: `cargo bench -p blankslate-audit --bench walk`; sizes:
//! `BLANKSLATE_BENCH_ENTRIES=1000000 BLANKSLATE_BENCH_AIDE_ENTRIES=200000` (defaults;
//! `BLANKSLATE_BENCH_AIDE_ENTRIES=0` leaves aide out).

use std::fmt::Write as _;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use blankslate_audit::Setup;
use blankslate_decl::{self as decl, Declaration, UserDb};
use blankslate_sys::fs::Dir;

const PER_DIR: usize = 50;
const RUNS: usize = 5;
/// Globs that match nothing in the bench tree: one with a wildcard directory before
/// `/**` (two globs to match), one crossing directories, one within a component.
const GLOBS: &str = "[audit]\nignore = [\"/srv/*/cache/**\", \"/**/*.swp\", \"/srv/app?/*.log\"]\n";

fn env_count(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// Builds about `entries` entries below `root`; returns the declaration text.
fn build_tree(root: &Path, entries: usize) -> String {
    let mut declared = Vec::new();
    let mut made = 0;
    let mut dir_index = 0usize;
    while made < entries {
        let depth = 1 + dir_index % 6;
        let top = dir_index % 40;
        let mut path = root.join(format!("srv/app{top}"));
        for level in 1..depth {
            path.push(format!("l{level}-{}", (dir_index / 7 + level) % 5));
        }
        path.push(format!("d{dir_index}"));
        // One directory in twenty is persisted: declared, never entered.
        if dir_index % 20 == 0 {
            declared.push(format!("/{}", path.strip_prefix(root).unwrap().display()));
        }
        std::fs::create_dir_all(&path).unwrap();
        for file in 0..PER_DIR.min(entries - made) {
            let name = path.join(format!("f{file}"));
            std::fs::write(&name, if file % 10 == 0 { &b"some content\n"[..] } else { b"" }).unwrap();
        }
        made += PER_DIR + 1;
        dir_index += 1;
    }
    let mut text = String::from("version = 1\n[persist.\"/persist\"]\ndirectories = [\n");
    for path in declared {
        let _ = writeln!(text, "  \"{path}\",");
    }
    text.push_str("]\n");
    text
}

fn peak_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// In the child: one audit of `root`, printing `seconds peak_kib entries stats`.
fn child_audit(root: &Path, declaration: &Path) {
    let mut text = std::fs::read_to_string(declaration).unwrap();
    if std::env::var_os("BLANKSLATE_BENCH_GLOBS").is_some() {
        text.push_str(GLOBS);
    }
    let checked = decl::check(declaration, &text, None);
    let declaration: Declaration = checked.declaration.expect("valid bench declaration");
    let users = UserDb::from_texts("root:x:0:0::/root:/bin/sh\n", "root:x:0:\n", "bench");
    let start = Instant::now();
    let dir = Dir::open_root(root).unwrap();
    let root_path = std::fs::canonicalize(root).unwrap();
    let setup = Setup {
        root: &dir,
        root_path: &root_path,
        declaration: &declaration,
        etc: None,
        users: &users,
        state_dir: Path::new("/var/lib/blankslate"),
        generation: None,
        generations: blankslate_audit::Generations::default(),
        own_outputs: &[],
        limit: 200,
        sizes: std::env::var_os("BLANKSLATE_BENCH_NO_SIZES").is_none(),
    };
    let report = blankslate_audit::audit(&setup).unwrap();
    let elapsed = start.elapsed();
    let _ = dir.as_fd();
    println!(
        "{} {} {} {} {}",
        elapsed.as_secs_f64(),
        peak_kib(),
        report.stats.entries,
        report.stats.stats,
        report.findings.len()
    );
}

struct Audited {
    time: Duration,
    peak_kib: u64,
    entries: u64,
    stats: u64,
}

fn audit_in_child(root: &Path, declaration: &Path, sizes: bool, globs: bool) -> Audited {
    let mut best: Option<Audited> = None;
    for _ in 0..RUNS {
        let mut command = Command::new(std::env::current_exe().unwrap());
        if !sizes {
            command.env("BLANKSLATE_BENCH_NO_SIZES", "1");
        }
        if globs {
            command.env("BLANKSLATE_BENCH_GLOBS", "1");
        }
        let output = command
            .env("BLANKSLATE_BENCH_CHILD", "audit")
            .env("BLANKSLATE_BENCH_ROOT", root)
            .env("BLANKSLATE_BENCH_DECL", declaration)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&output.stdout);
        let fields: Vec<&str> = text.split_whitespace().collect();
        assert!(fields.len() == 5, "child audit failed: {text} {}", String::from_utf8_lossy(&output.stderr));
        let run = Audited {
            time: Duration::from_secs_f64(fields[0].parse().unwrap()),
            peak_kib: fields[1].parse().unwrap(),
            entries: fields[2].parse().unwrap(),
            stats: fields[3].parse().unwrap(),
        };
        if best.as_ref().is_none_or(|b| run.time < b.time) {
            best = Some(run);
        }
    }
    best.unwrap()
}

fn best_of(command: &mut dyn FnMut() -> Command) -> Option<Duration> {
    let mut best: Option<Duration> = None;
    for _ in 0..RUNS {
        let start = Instant::now();
        let status = command().stdout(std::process::Stdio::null()).stderr(std::process::Stdio::null()).status().ok()?;
        let elapsed = start.elapsed();
        // aide --check exits non-zero when it finds changes: a run is a run.
        let _ = status;
        best = Some(best.map_or(elapsed, |b| b.min(elapsed)));
    }
    best
}

fn ensure_aide() -> bool {
    if Command::new("aide").arg("--version").output().is_ok() {
        return true;
    }
    eprintln!("aide missing: installing it with apt-get…");
    let ok = Command::new("apt-get")
        .args(["install", "-y", "--no-install-recommends", "-o", "DPkg::Lock::Timeout=300", "aide"])
        .env("DEBIAN_FRONTEND", "noninteractive")
        .status()
        .is_ok_and(|s| s.success());
    ok && Command::new("aide").arg("--version").output().is_ok()
}

/// `aide --check` of `tree` with type, permissions, owner, group, size, link name.
fn aide_check(scratch: &Path, tree: &Path) -> Option<Duration> {
    if !ensure_aide() {
        return None;
    }
    let db = scratch.join("aide.db");
    let config = scratch.join("aide.conf");
    let text = format!(
        "database_in=file:{db}\ndatabase_out=file:{db}.new\ngzip_dbout=no\nreport_url=stdout\n\
         Audit = ftype+p+u+g+s+l\n{tree} Audit\n",
        db = db.display(),
        tree = tree.display()
    );
    std::fs::write(&config, text).ok()?;
    let init = Command::new("aide").arg("--init").arg("-c").arg(&config).output().ok()?;
    if !db.with_extension("db.new").exists() {
        eprintln!("aide --init failed: {}", String::from_utf8_lossy(&init.stderr));
        return None;
    }
    std::fs::rename(db.with_extension("db.new"), &db).ok()?;
    best_of(&mut || {
        let mut command = Command::new("aide");
        command.arg("--check").arg("-c").arg(&config);
        command
    })
}

fn millis(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

fn ratio(a: Duration, b: Duration) -> String {
    format!("{:.2}x", a.as_secs_f64() / b.as_secs_f64())
}

fn main() {
    if std::env::var_os("BLANKSLATE_BENCH_CHILD").is_some() {
        let root = PathBuf::from(std::env::var_os("BLANKSLATE_BENCH_ROOT").unwrap());
        let declaration = PathBuf::from(std::env::var_os("BLANKSLATE_BENCH_DECL").unwrap());
        return child_audit(&root, &declaration);
    }
    if !std::env::args().any(|a| a == "--bench") {
        // `cargo test --all-targets` runs benches without `--bench`: nothing to test.
        return eprintln!("walk: run with `cargo bench` to measure");
    }
    let entries = env_count("BLANKSLATE_BENCH_ENTRIES", 1_000_000);
    let aide_entries = env_count("BLANKSLATE_BENCH_AIDE_ENTRIES", 200_000);
    let shm = if Path::new("/dev/shm").is_dir() { Path::new("/dev/shm") } else { Path::new("/tmp") };
    let scratch = tempfile::Builder::new().prefix("blankslate-audit-bench").tempdir_in(shm).unwrap();

    let root = scratch.path().join("big");
    let start = Instant::now();
    let declaration = build_tree(&root, entries);
    let declaration_file = scratch.path().join("big.toml");
    std::fs::write(&declaration_file, declaration).unwrap();
    eprintln!("built {entries} entries in {:.1} s", start.elapsed().as_secs_f64());
    let find = best_of(&mut || {
        let mut command = Command::new("find");
        command.arg(&root).arg("-xdev");
        command
    })
    .expect("find runs");
    let names_only = audit_in_child(&root, &declaration_file, false, false);
    let audited = audit_in_child(&root, &declaration_file, true, false);
    let globbed = audit_in_child(&root, &declaration_file, true, true);

    let against_aide = (aide_entries > 0).then(|| {
        let small = scratch.path().join("small");
        let small_declaration = build_tree(&small, aide_entries);
        let small_file = scratch.path().join("small.toml");
        std::fs::write(&small_file, small_declaration).unwrap();
        (audit_in_child(&small, &small_file, true, false), aide_check(scratch.path(), &small))
    });

    println!("audit walk ({} entries read, {} stat calls), best of {RUNS}", audited.entries, audited.stats);
    println!("{:<58} {:>12} {:>10}", "what", "time", "vs");
    println!("{:<58} {:>12} {:>10}", format!("find -xdev (names only), {entries} entries"), millis(find), "1.00x");
    println!(
        "{:<58} {:>12} {:>10}",
        format!("blankslate audit --no-sizes, {entries} entries"),
        millis(names_only.time),
        ratio(names_only.time, find)
    );
    println!(
        "{:<58} {:>12} {:>10}",
        format!("blankslate audit (sizes: {} stats), {entries} entries", audited.stats),
        millis(audited.time),
        ratio(audited.time, find)
    );
    println!(
        "{:<58} {:>12} {:>10}",
        format!("  the same with 3 [audit] ignore globs, {entries} entries"),
        millis(globbed.time),
        ratio(globbed.time, find)
    );
    println!(
        "{:<58} {:>12} {:>10}",
        "  peak memory (VmHWM of the audit process)",
        format!("{} KiB", audited.peak_kib.max(names_only.peak_kib)),
        "≤ 64 MiB"
    );
    match against_aide {
        Some((small_audit, Some(aide))) => {
            println!("{:<58} {:>12} {:>10}", format!("aide --check, {aide_entries} entries"), millis(aide), "1.00x");
            println!(
                "{:<58} {:>12} {:>10}",
                format!("blankslate audit, {aide_entries} entries"),
                millis(small_audit.time),
                ratio(small_audit.time, aide)
            );
        }
        Some((small_audit, None)) => {
            println!("{:<58} {:>12} {:>10}", format!("aide --check, {aide_entries} entries"), "n/a", "");
            let audit = millis(small_audit.time);
            println!("{:<58} {:>12} {:>10}", format!("blankslate audit, {aide_entries} entries"), audit, "");
        }
        None => {}
    }
}
