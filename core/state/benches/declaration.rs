//! Prints a table: how long parse + validate + store-add take for a declaration with
//! 3000 `/etc` entries and 500 persisted paths, next to a bare TOML parse of the same
//! text (the baseline: the least any TOML-based tool must spend).
//!
//! Run: `cargo bench -p blankslate-state --bench declaration`

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::hint::black_box;
use std::path::Path;
use std::time::{Duration, Instant};

use blankslate_decl as decl;
use blankslate_state::generation::State;
use blankslate_state::store::{Store, Tree};
use blankslate_sys::fs::Dir;

const ETC_ENTRIES: usize = 3000;
const PERSISTED: usize = 500;
const RUNS: usize = 15;

fn declaration_text() -> String {
    let mut text = String::from("version = 1\n\n[persist.\"/persist\"]\ndirectories = [\n");
    for i in 0..PERSISTED - 100 {
        let _ = writeln!(text, "  {{ directory = \"/var/lib/service{i}\", user = \"root\", mode = \"0750\" }},");
    }
    text.push_str("]\nfiles = [\n");
    for i in 0..100 {
        let _ = writeln!(text, "  \"/etc/keys/key{i}\",");
    }
    text.push_str("]\n");
    for i in 0..ETC_ENTRIES {
        let _ = write!(text, "\n[etc.\"conf.d/{:02}/entry{i}.conf\"]\ntext = \"setting = {i}\\n\"\n", i % 50);
    }
    text
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn time<T>(mut f: impl FnMut() -> T) -> Duration {
    median(
        (0..RUNS)
            .map(|_| {
                let start = Instant::now();
                black_box(f());
                start.elapsed()
            })
            .collect(),
    )
}

fn main() {
    let text = declaration_text();
    let file = Path::new("bench.toml");
    let scratch = tempfile::tempdir_in(if Path::new("/dev/shm").is_dir() { "/dev/shm" } else { "/tmp" }).unwrap();
    let root = Dir::open_root(scratch.path()).unwrap();

    let baseline = time(|| toml_edit::Document::parse(text.as_str()).unwrap());
    let check = time(|| decl::check(file, &text, None));
    let declaration = decl::check(file, &text, None).declaration.expect("the benchmark declaration is valid");
    let canonical = time(|| declaration.canonical_json());

    // A fresh state each run, so every run really writes the generation object.
    let mut run = 0;
    let build = time(|| {
        run += 1;
        let state = State::open_locked(&root, Path::new(&format!("/state{run}"))).unwrap();
        state.build(&declaration, &[]).unwrap()
    });
    let texts: BTreeMap<_, _> = declaration
        .etc
        .iter()
        .enumerate()
        .map(|(i, (_, e))| (format!("e{i}").into(), Tree::file(format!("{e:?}"))))
        .collect();
    let tree = Tree::Directory(texts);
    let mut run = 0;
    let add_tree = time(|| {
        run += 1;
        let store = Store::open(&root, Path::new(&format!("/store{run}"))).unwrap();
        store.add("etc-texts", &tree).unwrap()
    });
    let store = Store::open(&root, Path::new("/store1")).unwrap();
    // Adding what is there reads it back and compares it (a damaged object is written
    // again).
    let readd = time(|| store.add("etc-texts", &tree).unwrap());
    // What boot (and the activator's preflight) pays before using an object: reading
    // it back, its modes checked, and re-hashing it.
    let object = store.add("etc-texts", &tree).unwrap();
    let recheck = time(|| assert_eq!(store.check_object(&object), None));
    // The same tree with every file a secret (root-only): as cheap.
    let secrets: BTreeMap<_, _> = declaration
        .etc
        .iter()
        .enumerate()
        .map(|(i, (_, e))| (format!("e{i}").into(), Tree::secret_file(format!("{e:?}"))))
        .collect();
    let secrets = Tree::Directory(secrets);
    let mut run = 0;
    let add_secrets = time(|| {
        run += 1;
        let store = Store::open(&root, Path::new(&format!("/secrets{run}"))).unwrap();
        store.add("etc-secrets", &secrets).unwrap()
    });
    // `store verify` of a store holding that object and the texts' one.
    store.add("etc-secrets", &secrets).unwrap();
    let verify = time(|| assert!(store.verify().unwrap().is_empty()));

    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let ratio = |d: Duration| ms(d) / ms(baseline);
    println!(
        "{ETC_ENTRIES} /etc entries + {PERSISTED} persisted paths ({} KiB of TOML), median of {RUNS} runs",
        text.len() / 1024
    );
    println!("{:<52} {:>10} {:>12}", "step", "ms", "x baseline");
    for (step, d) in [
        ("baseline: toml_edit parse only", baseline),
        ("check: parse + validate", check),
        ("canonical JSON", canonical),
        ("build: store-add generation + link", build),
        ("parse + validate + build (sum)", check + canonical + build),
        ("store-add 3000-file tree (tmpfs)", add_tree),
        ("store-add same tree again (read back, compared)", readd),
        ("re-hash that tree (check_object: boot, preflight)", recheck),
        ("store-add 3000 secret files (tmpfs)", add_secrets),
        ("store verify: both trees (6000 files)", verify),
    ] {
        println!("{step:<52} {:>10.2} {:>12.2}", ms(d), ratio(d));
    }
}
