//! Prints a table: what reading dpkg's database adds to an audit. The same root is
//! audited with its database and with `var/lib/dpkg/info` renamed away (then the
//! check does not run): best time of several runs in this process, and the system
//! calls of one run in a child under `strace -f -c` (n/a without strace).
//!
//! The root (on `/dev/shm`): a database of 300 installed packages with descriptions
//! in `status`, each with a file list of 100 paths (30,000 in all; 5 in `/etc`, 2 of
//! them conffiles), an `md5sums` and a `postinst` beside it; their `/etc` files in
//! `/etc` (strays: there is no generation), those of one package in ten missing.
//!
//! Run: `cargo bench -p blankslate-audit --bench dpkg`; size:
//! `BLANKSLATE_BENCH_PACKAGES=300`.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use blankslate_audit::{Class, Report, Setup};
use blankslate_decl::{self as decl, UserDb};
use blankslate_sys::fs::Dir;

const LIST_LINES: usize = 100;
const ETC_LINES: usize = 5;
const RUNS: usize = 30;
const DECLARATION: &str = "version = 1\n[audit]\nignore = [\"/usr/**\", \"/var/lib/dpkg/**\"]\n";

/// Writes the database and `/etc` of `packages` packages below `root`.
fn build(root: &Path, packages: usize) {
    let info = root.join("var/lib/dpkg/info");
    std::fs::create_dir_all(&info).unwrap();
    let mut status = String::new();
    for k in 0..packages {
        let name = format!("package{k}");
        let _ = write!(
            status,
            "Package: {name}\nStatus: install ok installed\nPriority: optional\nSection: misc\n\
             Installed-Size: 1234\nMaintainer: Someone <someone@example.org>\nArchitecture: amd64\n\
             Version: 1.{k}-1\nDepends: libc6 (>= 2.34), package{}\nConffiles:\n /etc/{name}.conf \
             0123456789abcdef0123456789abcdef\n /etc/{name}/main.conf 0123456789abcdef0123456789abcdef\n\
             Description: the package number {k}\n A longer description of what the package does, over\n \
             a few lines, as most packages have.\n\n",
            (k + 1) % packages
        );
        let mut list = format!("/.\n/etc\n/etc/{name}.conf\n/etc/{name}\n/etc/{name}/main.conf\n");
        for extra in 0..ETC_LINES - 3 {
            let _ = writeln!(list, "/etc/{name}/extra{extra}.conf");
        }
        let mut sums = String::new();
        for file in 0..LIST_LINES - ETC_LINES {
            let path = format!("usr/share/{name}/some/deeper/directory/file-{file}.data");
            let _ = writeln!(list, "/{path}");
            let _ = writeln!(sums, "0123456789abcdef0123456789abcdef  {path}");
        }
        std::fs::write(info.join(format!("{name}.list")), list).unwrap();
        std::fs::write(info.join(format!("{name}.md5sums")), sums).unwrap();
        std::fs::write(info.join(format!("{name}.postinst")), "#!/bin/sh\nset -e\n").unwrap();
        if k % 10 != 0 {
            std::fs::create_dir_all(root.join(format!("etc/{name}"))).unwrap();
            std::fs::write(root.join(format!("etc/{name}.conf")), "key = value\n").unwrap();
            std::fs::write(root.join(format!("etc/{name}/main.conf")), "key = value\n").unwrap();
            for extra in 0..ETC_LINES - 3 {
                std::fs::write(root.join(format!("etc/{name}/extra{extra}.conf")), "").unwrap();
            }
        }
    }
    std::fs::write(root.join("var/lib/dpkg/status"), status).unwrap();
}

fn audit(root: &Path) -> Report {
    let declaration = decl::check(Path::new("bench.toml"), DECLARATION, None).declaration.unwrap();
    let users = UserDb::from_texts("root:x:0:0::/root:/bin/sh\n", "root:x:0:\n", "bench");
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
        sizes: true,
    };
    blankslate_audit::audit(&setup).unwrap()
}

/// The best time of [`RUNS`] audits, and the last report.
fn best(root: &Path) -> (Duration, Report) {
    let mut best = Duration::MAX;
    let mut report = Report::default();
    for _ in 0..RUNS {
        let start = Instant::now();
        report = audit(root);
        best = best.min(start.elapsed());
    }
    (best, report)
}

/// The system calls of one audit in a child under `strace -f -c`.
fn syscalls(root: &Path, scratch: &Path) -> Option<u64> {
    let out = scratch.join("strace.txt");
    let status = Command::new("strace")
        .args(["-f", "-c", "-o"])
        .arg(&out)
        .arg(std::env::current_exe().ok()?)
        .env("BLANKSLATE_BENCH_CHILD", root)
        .status()
        .ok()?;
    let summary = std::fs::read_to_string(&out).ok().filter(|_| status.success())?;
    let total = summary.lines().find(|l| l.trim_end().ends_with(" total"))?;
    total.split_whitespace().nth(3)?.parse().ok()
}

fn main() {
    if let Some(root) = std::env::var_os("BLANKSLATE_BENCH_CHILD") {
        audit(Path::new(&root));
        return;
    }
    if !std::env::args().any(|a| a == "--bench") {
        // `cargo test --all-targets` runs benches without `--bench`: nothing to test.
        return eprintln!("dpkg: run with `cargo bench` to measure");
    }
    let packages: usize =
        std::env::var("BLANKSLATE_BENCH_PACKAGES").ok().and_then(|v| v.parse().ok()).unwrap_or(300).max(2);
    let shm = if Path::new("/dev/shm").is_dir() { Path::new("/dev/shm") } else { Path::new("/tmp") };
    let scratch = tempfile::Builder::new().prefix("blankslate-dpkg-bench").tempdir_in(shm).unwrap();
    let root = scratch.path().join("root");
    build(&root, packages);

    let (with, report) = best(&root);
    let mut read = Duration::MAX;
    for _ in 0..RUNS {
        let start = Instant::now();
        blankslate_audit::dpkg::Packages::read(&Dir::open_root(&root).unwrap()).unwrap();
        read = read.min(start.elapsed());
    }
    let calls_with = syscalls(&root, scratch.path());
    let info: PathBuf = root.join("var/lib/dpkg/info");
    std::fs::rename(&info, info.with_extension("off")).unwrap();
    let (without, plain) = best(&root);
    let calls_without = syscalls(&root, scratch.path());
    let lost = packages.div_ceil(10) * (ETC_LINES - 1);
    assert_eq!(report.total(Class::PackageMissing).count, u64::try_from(lost).unwrap());
    assert_eq!(plain.total(Class::PackageMissing).count, 0);

    let calls = |c: Option<u64>| c.map_or_else(|| "n/a".to_owned(), |c| c.to_string());
    let ratio = |a: f64, b: f64| format!("{:.2}x", a / b);
    println!(
        "audit of a root with {packages} packages ({} listed paths, {} in /etc), best of {RUNS}",
        packages * LIST_LINES,
        packages * ETC_LINES
    );
    println!("{:<44} {:>10} {:>10}", "what", "time", "syscalls");
    let ms = |d: Duration| format!("{:.2} ms", d.as_secs_f64() * 1000.0);
    println!("{:<44} {:>10} {:>10}", "without the dpkg check (info renamed)", ms(without), calls(calls_without));
    println!("{:<44} {:>10} {:>10}", "with the dpkg check", ms(with), calls(calls_with));
    println!("{:<44} {:>10} {:>10}", "  of which reading the database", ms(read), "");
    let call_ratio = match (calls_with, calls_without) {
        #[allow(clippy::cast_precision_loss)]
        (Some(a), Some(b)) => ratio(a as f64, b as f64),
        _ => "n/a".to_owned(),
    };
    println!("{:<44} {:>10} {:>10}", "ratio", ratio(with.as_secs_f64(), without.as_secs_f64()), call_ratio);
}
