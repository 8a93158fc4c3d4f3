//! Property tests for the declaration: `check` never panics on any input, valid
//! declarations survive `write::to_toml` unchanged, and rendering diagnostics never
//! panics whatever their spans.

use std::fmt::Write as _;
use std::path::Path;

use blankslate_decl::{self as decl, Diagnostic, Diagnostics, Rule, Span, write};
use proptest::prelude::*;
use proptest::sample::select;

fn config() -> ProptestConfig {
    // 256 cases keep the suite fast in debug builds; PROPTEST_CASES asks for more.
    let cases = std::env::var("PROPTEST_CASES").ok().and_then(|n| n.parse().ok()).unwrap_or(256);
    ProptestConfig { cases, failure_persistence: None, ..ProptestConfig::default() }
}

/// Checks `text`, and when it is valid, insists that writing it back and reading it
/// again gives the same canonical JSON.
fn check_and_round_trip(text: &str) -> Result<(), TestCaseError> {
    // A bare file name: relative sources resolve against the working directory
    // (core/ under cargo test), where `Cargo.toml` exists.
    check_as(Path::new("fuzz.toml"), text)
}

fn check_as(file: &Path, text: &str) -> Result<(), TestCaseError> {
    let checked = decl::check(file, text, None);
    let _ = checked.diagnostics.render(true);
    let _ = checked.diagnostics.to_json();
    prop_assert_eq!(checked.declaration.is_some(), !checked.diagnostics.has_errors());
    if let Some(declaration) = checked.declaration {
        let written = write::to_toml(&declaration);
        let again = decl::check(file, &written, None);
        let rendered = again.diagnostics.render(false);
        prop_assert!(
            again.declaration.is_some(),
            "to_toml output does not check:\n{}\n--- written ---\n{}\n--- from ---\n{}",
            rendered,
            written,
            text
        );
        let again = again.declaration.unwrap();
        prop_assert_eq!(declaration.canonical_json(), again.canonical_json(), "written:\n{}\nfrom:\n{}", written, text);
    }
    Ok(())
}

const EXAMPLES: [(&str, &str); 3] = [
    ("laptop.toml", include_str!("../../../examples/laptop.toml")),
    ("server.toml", include_str!("../../../examples/server.toml")),
    ("desktop.toml", include_str!("../../../examples/desktop.toml")),
];

proptest! {
    #![proptest_config(config())]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let text = String::from_utf8_lossy(&bytes);
        check_and_round_trip(&text)?;
    }

    #[test]
    fn arbitrary_strings_never_panic(text in any::<String>()) {
        check_and_round_trip(&text)?;
    }

    #[test]
    fn toml_looking_strings_never_panic(text in "(version = 1\n)?(\\[[a-z\"/.]{0,20}\\]\n)?([a-z_\"/.]{1,12} = (\"[^\"\n]{0,16}\"|[0-9]{1,4}|true|\\[\"[/a-z.]{0,12}\"\\])\n){0,6}") {
        check_and_round_trip(&text)?;
    }

    /// The examples with a few bytes deleted, replaced or inserted: almost-valid
    /// declarations reach far deeper than random text.
    #[test]
    fn mutated_examples_never_panic(
        which in 0..EXAMPLES.len(),
        edits in proptest::collection::vec((any::<prop::sample::Index>(), 0u8..3, select(vec![
            "", "\"", "[", "]", "{", "}", ",", "=", "/", "..", "//", "é", "日", "\n", "#", "0", "x", "mode = \"0700\"",
        ])), 1..6),
    ) {
        let (name, text) = EXAMPLES[which];
        let mut text = text.to_owned();
        for (at, op, insert) in edits {
            let mut cut = at.index(text.len() + 1);
            while !text.is_char_boundary(cut) {
                cut -= 1;
            }
            match op {
                0 => {
                    let end = text[cut..].char_indices().nth(1).map_or(text.len(), |(i, _)| cut + i);
                    text.replace_range(cut..end, "");
                }
                1 => text.insert_str(cut, insert),
                _ => {
                    let end = text[cut..].char_indices().nth(1).map_or(text.len(), |(i, _)| cut + i);
                    text.replace_range(cut..end, insert);
                }
            }
        }
        // Checked in place, so the server's sources resolve.
        check_as(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples").join(name), &text)?;
    }
}

// Structured declarations: plausible keys and values. Every generator takes `clean`:
// when set it draws only from valid values (so that most declarations check and the
// round trip gets exercised); otherwise mistakes are mixed in.

/// `Some` of `strategy` with probability `p`, which may be 0.
fn maybe<T: std::fmt::Debug + Clone + 'static>(p: f64, strategy: BoxedStrategy<T>) -> BoxedStrategy<Option<T>> {
    if p <= 0.0 { Just(None).boxed() } else { proptest::option::weighted(p, strategy).boxed() }
}

/// True with probability `p`, which may be 0 or 1.
fn chance(p: f64) -> BoxedStrategy<bool> {
    if p <= 0.0 {
        Just(false).boxed()
    } else if p >= 1.0 {
        Just(true).boxed()
    } else {
        prop::bool::weighted(p).boxed()
    }
}

/// A TOML basic string for `text`: JSON string escapes are valid TOML, but JSON
/// leaves DEL raw where TOML wants it escaped.
fn quote(text: &str) -> String {
    serde_json::to_string(text).expect("strings serialize").replace('\u{7f}', "\\u007F")
}

/// Picks from `good`, or (unless `clean`) now and then from `bad`.
fn pick(clean: bool, good: &[&'static str], bad: &[&'static str]) -> BoxedStrategy<String> {
    let good = select(good.to_vec()).prop_map(str::to_owned);
    if clean { good.boxed() } else { prop_oneof![5 => good, 1 => select(bad.to_vec()).prop_map(str::to_owned)].boxed() }
}

const SEGMENTS: &[&str] = &[
    "lib",
    "log",
    "srv",
    "www",
    "nginx",
    "postgresql",
    "ssh",
    "machine-id",
    ".ssh",
    "Documents",
    "nixos",
    "cache",
    "app",
    "data.db",
    "日本語",
    "Ünï cödé",
    "emoji 🎉",
    "a\tb",
    "quote\"d",
    "back\\slash",
    "x",
    "y",
    "z",
];
const BAD_SEGMENTS: &[&str] = &["..", ".", "", "persist", "data", "etc", "static", "home", "alice"];

fn segment(clean: bool) -> BoxedStrategy<String> {
    if clean {
        // Any characters but `/`, NUL and `.` (so never `.` or `..`).
        prop_oneof![8 => pick(true, SEGMENTS, &[]), 1 => "[^/\u{0}.]{1,6}"].boxed()
    } else {
        prop_oneof![8 => pick(false, SEGMENTS, BAD_SEGMENTS), 1 => "[a-zA-Z0-9._ -]{1,8}", 1 => "[^/]{1,6}"].boxed()
    }
}

/// A system path: absolute and clean, or (unless `clean`) anything.
fn system_path(clean: bool) -> BoxedStrategy<String> {
    let good = (select(vec!["/var", "/srv", "/opt", "/var/lib"]), proptest::collection::vec(segment(true), 1..3))
        .prop_map(|(top, rest)| format!("{top}/{}", rest.join("/")));
    if clean { good.boxed() } else { prop_oneof![3 => good, 1 => path(false)].boxed() }
}

/// A path relative to a home, clean or (unless `clean`) anything.
fn home_path(clean: bool) -> BoxedStrategy<String> {
    let good = proptest::collection::vec(segment(true), 1..3).prop_map(|s| s.join("/"));
    if clean { good.boxed() } else { prop_oneof![3 => good, 1 => path(false)].boxed() }
}

/// Any path from segments: absolute or relative, with doubled or trailing slashes
/// now and then.
fn path(clean: bool) -> BoxedStrategy<String> {
    (proptest::collection::vec(segment(clean), 1..4), any::<bool>(), prop::bool::weighted(0.1))
        .prop_map(|(segments, absolute, trailing)| {
            let mut path = segments.join("/");
            if absolute {
                path.insert(0, '/');
            }
            if trailing {
                path.push('/');
            }
            path
        })
        .boxed()
}

/// A mode as TOML: a quoted string, or (unless `clean`) something wrong.
fn mode(clean: bool) -> BoxedStrategy<String> {
    pick(
        clean,
        &["\"0755\"", "\"0700\"", "\"0644\"", "\"0600\"", "\"2775\"", "\"755\"", "\"1777\""],
        &["\"0999\"", "\"17777\"", "\"\"", "755", "\"link\"", "true"],
    )
}

fn name(clean: bool) -> BoxedStrategy<String> {
    pick(
        clean,
        &["root", "alice", "bob", "postgres", "www-data", "users", "_svc"],
        &["Bad Name", "9lives", "", "trailing.", "zoë"],
    )
}

fn options(clean: bool) -> BoxedStrategy<String> {
    proptest::collection::vec(pick(clean, &["ro", "nosuid", "nodev", "noexec", "x-gvfs-hide"], &["nosiud", "rw"]), 0..4)
        .prop_map(|o| format!("[{}]", o.iter().map(|s| quote(s)).collect::<Vec<_>>().join(", ")))
        .boxed()
}

/// One `key = value` of an entry table, the path key aside. Files take `how`; the
/// keys are distinct (a repeated key is a TOML error, not an interesting one).
fn entry_fields(noun: &'static str, clean: bool) -> BoxedStrategy<Vec<String>> {
    let how = if noun == "file" {
        pick(clean, &["\"bind\"", "\"symlink\""], &["\"copy\""])
    } else {
        pick(true, &["\"bind\""], &[])
    };
    (
        proptest::option::weighted(0.3, name(clean)),
        proptest::option::weighted(0.3, name(clean)),
        proptest::option::weighted(0.4, mode(clean)),
        proptest::option::weighted(0.2, (name(clean), mode(clean))),
        maybe(if noun == "file" { 0.3 } else { 0.0 }, how),
        proptest::option::weighted(0.2, options(clean)),
        maybe(
            if clean { 0.0 } else { 0.1 },
            pick(true, &["mdoe = \"0700\"", "owner = \"x\"", "recursive = true"], &[]),
        ),
    )
        .prop_map(|(user, group, mode, parent, how, options, unknown)| {
            let mut fields = Vec::new();
            fields.extend(user.map(|u| format!("user = {}", quote(&u))));
            fields.extend(group.map(|g| format!("group = {}", quote(&g))));
            fields.extend(mode.map(|m| format!("mode = {m}")));
            fields.extend(parent.map(|(n, m)| format!("parent = {{ user = {}, mode = {m} }}", quote(&n))));
            fields.extend(how.map(|h| format!("how = {h}")));
            fields.extend(options.map(|o| format!("options = {o}")));
            fields.extend(unknown);
            fields
        })
        .boxed()
}

/// A list element: a plain string, or an inline table with some fields.
fn entry(noun: &'static str, path: BoxedStrategy<String>, clean: bool) -> BoxedStrategy<String> {
    let plain = path.clone().prop_map(|p| quote(&p));
    let table = (path, entry_fields(noun, clean), chance(if clean { 0.0 } else { 0.05 })).prop_map(
        move |(p, fields, drop_path)| {
            let mut all = Vec::new();
            if !drop_path {
                all.push(format!("{noun} = {}", quote(&p)));
            }
            all.extend(fields);
            format!("{{ {} }}", all.join(", "))
        },
    );
    if clean {
        prop_oneof![3 => plain, 2 => table].boxed()
    } else {
        prop_oneof![3 => plain, 2 => table, 1 => Just("42".to_owned())].boxed()
    }
}

fn entry_list(noun: &'static str, path: BoxedStrategy<String>, clean: bool) -> BoxedStrategy<String> {
    let list = if noun == "directory" { "directories" } else { "files" };
    proptest::collection::vec(entry(noun, path, clean), 0..4)
        .prop_map(move |items| format!("{list} = [{}]\n", items.join(", ")))
        .boxed()
}

/// The body of `[persist."…".users.NAME]`.
fn user_body(clean: bool) -> BoxedStrategy<String> {
    let home = if clean {
        pick(true, &["/home/family/x", "/var/empty"], &[])
    } else {
        prop_oneof![Just("/home/family/x".to_owned()), path(false)].boxed()
    };
    (
        proptest::option::weighted(0.3, home),
        proptest::option::weighted(0.3, name(clean)),
        entry_list("directory", home_path(clean), clean),
        entry_list("file", home_path(clean), clean),
    )
        .prop_map(|(home, group, directories, files)| {
            let mut body = String::new();
            if let Some(home) = home {
                let _ = writeln!(body, "home = {}", quote(&home));
            }
            if let Some(group) = group {
                let _ = writeln!(body, "group = {}", quote(&group));
            }
            body.push_str(&directories);
            body.push_str(&files);
            body
        })
        .boxed()
}

fn persist_root(mount: String, clean: bool) -> BoxedStrategy<String> {
    let users = prop::sample::subsequence(vec!["alice", "bob", "root", "Bad Name"], 0..3).prop_flat_map(move |names| {
        let names: Vec<&str> = names.into_iter().filter(|n| !clean || *n != "Bad Name").collect();
        let bodies: Vec<_> = names.iter().map(|_| user_body(clean)).collect();
        (Just(names), bodies)
    });
    (
        proptest::option::weighted(0.3, any::<bool>()),
        entry_list("directory", system_path(clean), clean),
        entry_list("file", system_path(clean), clean),
        users,
    )
        .prop_map(move |(hide, directories, files, (names, bodies))| {
            let mut text = format!("[persist.{}]\n", quote(&mount));
            if let Some(hide) = hide {
                let _ = writeln!(text, "hide_mounts = {hide}");
            }
            text.push_str(&directories);
            text.push_str(&files);
            for (user, body) in names.iter().zip(bodies) {
                let _ = write!(text, "[persist.{}.users.{}]\n{body}", quote(&mount), quote(user));
            }
            text
        })
        .boxed()
}

fn etc_entry(key: String, clean: bool) -> BoxedStrategy<String> {
    // Any characters at all, control characters included: `quote` and the writer
    // must escape them.
    let text = "(.|\n|\r|\u{0}|\u{7f}){0,20}".prop_map(|t| format!("text = {}", quote(&t)));
    let contents = if clean {
        prop_oneof![4 => text, 1 => pick(true, &["Cargo.toml", "src/*.rs"], &[]).prop_map(|s| format!("source = {}", quote(&s)))].boxed()
    } else {
        prop_oneof![
            4 => text,
            1 => pick(true, &["Cargo.toml", "missing-file", "src/*.rs"], &[]).prop_map(|s| format!("source = {}", quote(&s))),
            1 => Just(String::new()),
        ]
        .boxed()
    };
    let owner = if clean { Just(None).boxed() } else { proptest::option::weighted(0.2, name(false)).boxed() };
    (contents, proptest::option::weighted(0.4, mode(clean)), proptest::option::weighted(0.3, name(clean)), owner)
        .prop_map(move |(contents, mode, copy_owner, owner)| {
            let mut text = format!("[etc.{}]\n{contents}\n", quote(&key));
            if let Some(mode) = &mode {
                let _ = writeln!(text, "mode = {mode}");
            }
            // An owner on a link is an error; a clean entry gives one only to copies.
            let is_copy = mode.as_deref().is_some_and(|m| m != "\"link\"");
            if let Some(user) = owner.or(copy_owner.filter(|_| is_copy)) {
                let _ = writeln!(text, "user = {}", quote(&user));
            }
            text
        })
        .boxed()
}

fn declaration_text(clean: bool) -> BoxedStrategy<String> {
    let mounts: Vec<&str> = if clean {
        vec!["/persist", "/data", "/persist-shared", "/nix/persist"]
    } else {
        vec!["/persist", "/data", "/mnt/persist", "/home/alice/vault", "/var/lib", "persist", "/a//b"]
    };
    let roots = prop::sample::subsequence(mounts, 1..4)
        .prop_flat_map(move |mounts| mounts.into_iter().map(|m| persist_root(m.to_owned(), clean)).collect::<Vec<_>>());
    let etc_keys: Vec<&str> = if clean {
        vec!["hosts", "hostname", "nginx/nginx.conf", "ssh/sshd_config", "sudoers", "日本語.conf"]
    } else {
        vec!["hosts", "nginx/nginx.conf", "machine-id", "/etc/hosts", "static/x", "a/../b", "var/lib"]
    };
    let etc = prop::sample::subsequence(etc_keys, 0..3)
        .prop_flat_map(move |keys| keys.into_iter().map(|k| etc_entry(k.to_owned(), clean)).collect::<Vec<_>>());
    let size = pick(clean, &["\"25%\"", "\"2G\"", "\"512m\"", "\"100%\""], &["\"0%\"", "\"lots\"", "25"]);
    let globs = pick(clean, &["/var/cache/**", "**/*.tmp", "/home/*/.cache/**"], &["tmp/**", "/var/[log"]);
    let unknown = if clean {
        Just(None).boxed()
    } else {
        proptest::option::weighted(
            0.1,
            pick(true, &["persistence = {}\n", "hide_mounts = true\n", "versoin = 1\n"], &[]),
        )
        .boxed()
    };
    (
        chance(if clean { 1.0 } else { 0.95 }),
        proptest::option::weighted(0.3, (size, mode(clean))),
        roots,
        etc,
        proptest::option::weighted(0.3, proptest::collection::vec(globs, 0..4)),
        unknown,
    )
        .prop_map(|(version, root, roots, etc, ignore, unknown)| {
            let mut text = String::new();
            if version {
                text.push_str("version = 1\n");
            }
            if let Some(unknown) = unknown {
                text.push_str(&unknown);
            }
            if let Some((size, mode)) = root {
                let _ = write!(text, "[root]\nsize = {size}\nmode = {mode}\n");
            }
            for root in roots {
                text.push_str(&root);
            }
            for entry in etc {
                text.push_str(&entry);
            }
            if let Some(ignore) = ignore {
                let globs: Vec<String> = ignore.iter().map(|g| quote(g)).collect();
                let _ = writeln!(text, "[audit]\nignore = [{}]", globs.join(", "));
            }
            text
        })
        .boxed()
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn structured_declarations_check_and_round_trip(text in any::<bool>().prop_flat_map(declaration_text)) {
        check_and_round_trip(&text)?;
    }
}

/// The clean generator mostly makes valid declarations (so the round trip above is
/// exercised), and the other one mostly does not.
#[test]
fn structured_generators_reach_valid_and_invalid_declarations() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    let mut runner = TestRunner::deterministic();
    let mut count_valid = |clean: bool| {
        let strategy = declaration_text(clean);
        (0..200)
            .filter(|_| {
                let text = strategy.new_tree(&mut runner).expect("a value").current();
                decl::check(Path::new("fuzz.toml"), &text, None).declaration.is_some()
            })
            .count()
    };
    let clean = count_valid(true);
    let messy = count_valid(false);
    eprintln!("valid: {clean} of 200 clean, {messy} of 200 messy");
    assert!(clean >= 80, "only {clean} of 200 clean declarations are valid");
    assert!(messy <= 100, "{messy} of 200 messy declarations are valid");
}

proptest! {
    #![proptest_config(config())]

    /// Rendering copes with spans anywhere: past the end, reversed, inside a
    /// multi-byte character, across lines, on `\r\n` line ends.
    #[test]
    fn render_never_panics(
        source in "([a-zé日🎉 =\"\\[\\]\t]|\r\n|\n|\r){0,60}",
        spans in proptest::collection::vec((0usize..300, 0usize..300), 0..6),
        with_help in any::<bool>(),
        no_span in any::<bool>(),
    ) {
        let mut diagnostics = Diagnostics::new(Path::new("odd é/path.toml"), &source);
        for (i, &(start, end)) in spans.iter().enumerate() {
            let span = (!(no_span && i == 0)).then_some(Span { start, end });
            let mut diagnostic = if i % 2 == 0 {
                Diagnostic::error(Rule::InvalidPath, span, "message with ✓ unicode")
            } else {
                Diagnostic::warning(Rule::UnknownUser, span, "")
            };
            if with_help {
                diagnostic = diagnostic.with_help("help\nacross lines");
            }
            diagnostics.items.push(diagnostic);
        }
        diagnostics.sort();
        let plain = diagnostics.render(false);
        let colored = diagnostics.render(true);
        prop_assert_eq!(plain.matches("-->").count(), spans.len());
        prop_assert!(colored.len() >= plain.len());
        let _ = diagnostics.to_json();
        let _ = diagnostics.to_string();
        for &(start, _) in &spans {
            let at = diagnostics.locate(start);
            prop_assert!(at.line >= 1 && at.column >= 1);
        }
    }
}
