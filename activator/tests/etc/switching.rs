//! Activating generations one after another: the first activation, no-ops, switching
//! back and forth while readers watch, and entries added, changed, removed or
//! changing kind.

use std::fmt::Write as _;

#[allow(clippy::wildcard_imports)]
use super::*;

/// Loops over `paths` resolving and reading each as a program in `root` would, until
/// `stop`; returns (reads done, failures). A path whose contents are not one of its
/// allowed ones is a failure too.
fn reader(
    root: PathBuf,
    allowed: BTreeMap<String, BTreeSet<String>>,
    stop: Arc<AtomicBool>,
) -> std::thread::JoinHandle<(usize, Vec<String>)> {
    std::thread::spawn(move || {
        let mut reads = 0;
        let mut failures = Vec::new();
        while !stop.load(Ordering::Relaxed) {
            for (path, contents) in &allowed {
                let path = format!("/etc/{path}");
                for (how, read) in [("emulated", read_in as fn(&Path, &str) -> _), ("kernel", read_by_kernel)] {
                    reads += 1;
                    match read(&root, &path) {
                        Ok(text) if contents.contains(&text) => {}
                        Ok(text) => failures.push(format!("{path} ({how}): unexpected contents {text:?}")),
                        Err(error) => failures.push(format!("{path} ({how}): {error}")),
                    }
                }
            }
        }
        (reads, failures)
    })
}

#[test]
fn a_noop_reactivation_plans_nothing_and_never_hides_an_entry() {
    let scratch = EtcRoot::new();
    let text = format!(
        "version = 1\n{}\
[etc.\"hosts\"]\ntext = \"hosts\"\n\
[etc.\"a/b/c.conf\"]\ntext = \"c\"\n\
[etc.\"copy\"]\ntext = \"copy\"\nmode = \"0600\"\nuser = \"www\"\n",
        users()
    );
    let one = scratch.build(1, &text);
    scratch.activate(&one);
    let before = scratch.snapshot();
    let allowed: BTreeMap<String, BTreeSet<String>> =
        declared(&one).into_iter().map(|p| (p.clone(), BTreeSet::from([scratch.read(&p)]))).collect();
    let stop = Arc::new(AtomicBool::new(false));
    let reading = reader(scratch.path().to_path_buf(), allowed, Arc::clone(&stop));
    for _ in 0..200 {
        let activated = scratch.activate(&one);
        assert!(activated.plan.is_noop(), "{}", activated.plan);
        assert_eq!(activated.plan.steps.len(), 0);
        assert_eq!(activated.plan.switch_static, None);
        assert_eq!(activated.plan.unchanged, one.manifest.entries.len());
        let summary = format!(
            "0 added, 0 changed, 0 removed, 0 backed up, 0 left alone, {} unchanged\n",
            one.manifest.entries.len()
        );
        assert!(activated.plan.to_string().ends_with(&summary), "{}", activated.plan);
    }
    stop.store(true, Ordering::Relaxed);
    let (reads, failures) = reading.join().unwrap();
    assert!(reads > 0);
    assert!(
        failures.is_empty(),
        "{} of {reads} reads failed: {:?}",
        failures.len(),
        &failures[..failures.len().min(10)]
    );
    assert_eq!(scratch.snapshot(), before, "a no-op changes nothing, not even an inode");
}

#[test]
fn switching_back_and_forth_never_hides_a_shared_entry() {
    let scratch = EtcRoot::new();
    let generation = |n: u32| {
        format!(
            "version = 1\n{}\
[etc.\"hosts\"]\ntext = \"same hosts\"\n\
[etc.\"motd\"]\ntext = \"motd of {n}\"\n\
[etc.\"deep/dir/file.conf\"]\ntext = \"deep of {n}\"\n\
[etc.\"sudoers\"]\ntext = \"same sudoers\"\nmode = \"0440\"\n\
[etc.\"issue\"]\ntext = \"issue of {n}\"\nmode = \"0644\"\nuser = \"www\"\n\
[etc.\"kind\"]\ntext = \"kind of {n}\"\n{}\
[etc.\"only-{n}\"]\ntext = \"only\"\n",
            users(),
            if n == 1 { "" } else { "mode = \"0600\"\n" }
        )
    };
    let one = scratch.build(1, &generation(1));
    let two = scratch.build(2, &generation(2));
    scratch.activate(&one);
    let shared: Vec<String> = declared(&one).into_iter().filter(|p| two.manifest.entries.contains_key(p)).collect();
    assert_eq!(shared.len(), 8);
    let mut allowed: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for path in &shared {
        allowed.entry(path.clone()).or_default().insert(scratch.read(path));
    }
    scratch.activate(&two);
    for path in &shared {
        allowed.entry(path.clone()).or_default().insert(scratch.read(path));
    }
    assert_eq!(allowed["motd"], BTreeSet::from(["motd of 1".to_owned(), "motd of 2".to_owned()]));
    assert_eq!(allowed["kind"].len(), 2);
    assert_eq!(allowed["hosts"].len(), 1);

    let stop = Arc::new(AtomicBool::new(false));
    let reading = reader(scratch.path().to_path_buf(), allowed, Arc::clone(&stop));
    for round in 0..100 {
        let to = if round % 2 == 0 { &one } else { &two };
        let activated = scratch.activate(to);
        assert!(activated.plan.backups().next().is_none(), "{}", activated.plan);
        assert!(!activated.plan.is_noop());
    }
    stop.store(true, Ordering::Relaxed);
    let (reads, failures) = reading.join().unwrap();
    assert!(reads > 0);
    assert!(
        failures.is_empty(),
        "{} of {reads} reads failed: {:?}",
        failures.len(),
        &failures[..failures.len().min(10)]
    );
    // After an even number of switches from generation 2, generation 2 is active.
    assert_eq!(scratch.read("motd"), "motd of 2");
    assert!(!scratch.etc("only-1").exists());
}

#[test]
fn entries_are_added_changed_and_removed_between_generations() {
    let scratch = EtcRoot::new();
    let one = scratch.build(
        1,
        "version = 1\n\
[etc.\"hosts\"]\ntext = \"hosts\"\n\
[etc.\"motd\"]\ntext = \"motd 1\"\n\
[etc.\"copy\"]\ntext = \"copy 1\"\nmode = \"0600\"\n\
[etc.\"to-copy\"]\ntext = \"was a link\"\n\
[etc.\"to-link\"]\ntext = \"was a copy\"\nmode = \"0644\"\n\
[etc.\"gone/deep/er/link.conf\"]\ntext = \"gone\"\n\
[etc.\"gone-copy/x.conf\"]\ntext = \"gone copy\"\nmode = \"0644\"\n\
[etc.\"keep/a.conf\"]\ntext = \"a\"\n\
[etc.\"keep/b.conf\"]\ntext = \"b\"\n\
[etc.\"held/c.conf\"]\ntext = \"c\"\n",
    );
    scratch.activate(&one);
    // A person's file in a directory that only held a removed entry: the directory stays.
    scratch.write("held/mine", "mine");
    let two = scratch.build(
        2,
        "version = 1\n\
[etc.\"hosts\"]\ntext = \"hosts\"\n\
[etc.\"motd\"]\ntext = \"motd 2\"\n\
[etc.\"copy\"]\ntext = \"copy 2\"\nmode = \"0640\"\n\
[etc.\"to-copy\"]\ntext = \"now a copy\"\nmode = \"0600\"\n\
[etc.\"to-link\"]\ntext = \"now a link\"\n\
[etc.\"keep/a.conf\"]\ntext = \"a\"\n\
[etc.\"new/nested/dir/n.conf\"]\ntext = \"n\"\n\
[etc.\"new-copy\"]\ntext = \"new copy\"\nmode = \"0400\"\n",
    );
    let activated = scratch.activate(&two);
    let plan = &activated.plan;
    assert_eq!(action(&activated, "new/nested/dir/n.conf"), Some(Action::Create));
    assert_eq!(action(&activated, "new-copy"), Some(Action::Create));
    for path in ["copy", "to-copy", "to-link"] {
        assert_eq!(action(&activated, path), Some(Action::Replace), "{path}");
    }
    for path in ["gone/deep/er/link.conf", "gone-copy/x.conf", "keep/b.conf", "held/c.conf"] {
        assert_eq!(action(&activated, path), Some(Action::Remove), "{path}");
    }
    // A link whose contents change costs no step: /etc/static moves under it.
    assert_eq!(action(&activated, "motd"), None);
    assert_eq!(plan.unchanged, 3, "hosts, motd, keep/a.conf");
    assert!(plan.switch_static.is_some());

    assert_eq!(scratch.read("motd"), "motd 2");
    assert_eq!(scratch.read("copy"), "copy 2");
    assert_eq!(file_meta(&scratch.etc("copy")), (0o640, 0, 0, true));
    assert_eq!(file_meta(&scratch.etc("to-copy")), (0o600, 0, 0, true));
    assert_eq!(scratch.read("to-copy"), "now a copy");
    assert_eq!(scratch.link("to-link"), "/etc/static/to-link");
    assert_eq!(scratch.read("to-link"), "now a link");
    assert_eq!(scratch.link("new/nested/dir/n.conf"), "/etc/static/new/nested/dir/n.conf");
    assert_eq!(scratch.read("new/nested/dir/n.conf"), "n");
    assert_eq!(file_meta(&scratch.etc("new-copy")), (0o400, 0, 0, true));
    for gone in ["gone", "gone-copy", "keep/b.conf", "held/c.conf"] {
        assert!(std::fs::symlink_metadata(scratch.etc(gone)).is_err(), "{gone} is removed");
    }
    assert_eq!(scratch.read("keep/a.conf"), "a");
    assert_eq!(scratch.read("held/mine"), "mine", "a directory with a person's file stays");

    // Exactly the declared entries, the state, static and the person's file remain.
    let names: BTreeSet<String> = scratch.snapshot().into_keys().filter(|p| !p.starts_with(".blankslate")).collect();
    let expected: BTreeSet<String> = [
        "static",
        "hosts",
        "motd",
        "copy",
        "to-copy",
        "to-link",
        "keep",
        "keep/a.conf",
        "new",
        "new/nested",
        "new/nested/dir",
        "new/nested/dir/n.conf",
        "new-copy",
        "held",
        "held/mine",
    ]
    .into_iter()
    .map(str::to_owned)
    .collect();
    assert_eq!(names, expected);

    // And back: generation 1 again, exactly as a first activation of it makes it.
    scratch.activate(&one);
    assert_eq!(scratch.read("to-link"), "was a copy");
    assert_eq!(file_meta(&scratch.etc("to-link")), (0o644, 0, 0, true));
    assert_eq!(scratch.link("to-copy"), "/etc/static/to-copy");
    assert_eq!(scratch.read("gone/deep/er/link.conf"), "gone");
    assert!(!scratch.etc("new").exists());
}

/// An entry may change between a file and a directory across generations: the old
/// shape is blankslate's and goes first; a person's file inside it is kept.
#[test]
fn an_entry_changes_between_a_file_and_a_directory() {
    let scratch = EtcRoot::new();
    let one = scratch
        .build(1, "version = 1\n[etc.\"ssh/sshd_config\"]\ntext = \"a\\n\"\n[etc.\"ssh/moduli\"]\ntext = \"m\\n\"\n");
    let two = scratch.build(2, "version = 1\n[etc.\"ssh\"]\ntext = \"now a file\\n\"\n");
    scratch.activate(&one);
    let activated = scratch.activate(&two);
    assert_eq!(action(&activated, "ssh"), Some(Action::Replace), "the directory was blankslate's");
    assert_eq!(scratch.read("ssh"), "now a file\n");
    let activated = scratch.activate(&one);
    assert_eq!(action(&activated, "ssh"), Some(Action::Remove));
    assert_eq!(scratch.read("ssh/sshd_config"), "a\n");

    // Some of the previous generation's entries already gone (a removal a crash
    // interrupted): the directory is still blankslate's, nothing to back up.
    std::fs::remove_file(scratch.etc("ssh/moduli")).unwrap();
    let activated = scratch.activate(&two);
    assert_eq!(action(&activated, "ssh"), Some(Action::Replace), "{}", activated.plan);
    assert!(!scratch.etc("ssh.blankslate-backup").exists());
    scratch.activate(&one);

    std::fs::write(scratch.etc("ssh/mine"), "a person's").unwrap();
    let activated = scratch.activate(&two);
    assert!(matches!(action(&activated, "ssh"), Some(Action::BackUp { .. })), "{activated:?}");
    assert_eq!(scratch.read("ssh"), "now a file\n");
    assert_eq!(std::fs::read_to_string(scratch.etc("ssh.blankslate-backup/mine")).unwrap(), "a person's");
    assert!(!scratch.etc(".blankslate/journal.json").exists(), "nothing left half-done");
}

/// A no-op reads only the marker; a marker that is missing or of the older format
/// (without the entry count) costs one full look, which writes it again.
#[test]
fn a_no_op_reads_only_the_marker_and_rewrites_an_old_one() {
    let scratch = EtcRoot::new();
    let one = scratch.build(1, "version = 1\n[etc.\"hosts\"]\ntext = \"h\\n\"\n[etc.\"motd\"]\ntext = \"m\\n\"\n");
    scratch.activate(&one);
    let noop = |scratch: &EtcRoot| {
        etc::activate_generation(&scratch.root, &scratch.store, 1, &one.object, OnConflict::Backup).unwrap()
    };
    let outcome = noop(&scratch);
    assert!(matches!(&outcome, etc::Outcome::AlreadyActive(marker) if marker.entries == 2), "{outcome:?}");
    assert!(outcome.to_string().ends_with(", 2 unchanged\n"), "{outcome}");
    let marker = scratch.etc(".blankslate/active");
    std::fs::write(&marker, format!("1 {}", one.object)).unwrap();
    assert!(matches!(noop(&scratch), etc::Outcome::Activated(_)));
    assert_eq!(std::fs::read_to_string(&marker).unwrap(), format!("1 {} 2", one.object));
    assert!(matches!(noop(&scratch), etc::Outcome::AlreadyActive(_)));
}

/// The generation `/etc` leaves has lost its manifest (its object damaged or gone):
/// the switch goes on from nothing, as a first activation, and says so; the old
/// copy is moved aside, not lost, and the links point into the new tree.
#[test]
fn a_switch_away_from_a_generation_whose_manifest_is_gone_plans_from_nothing() {
    let scratch = EtcRoot::new();
    let text = |copy: &str| {
        format!("version = 1\n[etc.\"hosts\"]\ntext = \"hosts\"\n[etc.\"copy\"]\ntext = \"{copy}\"\nmode = \"0600\"\n")
    };
    let one = scratch.build(1, &text("one"));
    let two = scratch.build(2, &text("two"));
    scratch.activate(&one);
    // The state file names the generation and its object, not the manifest.
    let state: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(scratch.etc(".blankslate/state.json")).unwrap()).unwrap();
    let keys: Vec<&str> = state.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(
        (keys, state["object"].as_str()),
        (vec!["generation", "object", "static_target"], Some(one.object.as_str()))
    );
    let object = scratch.path().join(STORE.trim_start_matches('/')).join(&one.object);
    std::fs::set_permissions(&object, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::remove_file(object.join("manifest.json")).unwrap();

    let activated = scratch.activate(&two);
    let (generation, reason) = activated.plan.unread_previous.clone().expect("the old manifest is unread");
    assert_eq!((generation, activated.plan.from.as_ref()), (1, None));
    assert!(reason.contains("manifest.json"), "{reason}");
    assert!(activated.plan.to_string().contains("generation 1's manifest cannot be read"), "{}", activated.plan);
    assert_eq!(scratch.read("copy"), "two");
    assert_eq!(std::fs::read_to_string(scratch.etc("copy.blankslate-backup")).unwrap(), "one");
    assert_eq!((scratch.link("hosts"), scratch.read("hosts")), ("/etc/static/hosts".to_owned(), "hosts".to_owned()));
    assert_eq!(etc::active_record(&scratch.root).unwrap().map(|r| r.generation), Some(2));
}

/// A relabel records another generation with the same `/etc`, touching nothing in it;
/// with no marker to count from (one of an older format, or none), the entries are
/// counted from the manifest in the store.
#[test]
fn a_relabel_records_the_generation_and_counts_entries_without_a_marker() {
    let scratch = EtcRoot::new();
    let one = scratch.build(1, &format!("version = 1\n{}[etc.\"hosts\"]\ntext = \"hosts\"\n", users()));
    scratch.activate(&one);
    let before = scratch.snapshot();
    std::fs::remove_file(scratch.etc(".blankslate/active")).unwrap();
    assert!(etc::relabel(&scratch.root, &scratch.store, 7).unwrap());
    let marker = std::fs::read_to_string(scratch.etc(".blankslate/active")).unwrap();
    assert_eq!(marker, format!("7 {} {}", one.object, one.manifest.entries.len()));
    assert_eq!(
        etc::active_record(&scratch.root).unwrap().map(|r| (r.generation, r.object)),
        Some((7, one.object.clone()))
    );
    let mut after = scratch.snapshot();
    let mut before = before;
    for record in [".blankslate/active", ".blankslate/state.json"] {
        before.remove(record);
        after.remove(record);
    }
    assert_eq!(after, before, "nothing else in /etc changed");
}

/// What a test's etc object holds of the chunk index.
#[derive(Clone, Copy, Debug, PartialEq)]
enum IndexAs {
    /// The index as the builder writes it.
    Built,
    /// None, as an older binary built it.
    Missing,
    /// One in a format this binary does not know, as a newer one might write it.
    Newer,
}

/// The store object of `declaration` as generation `number`, its index as `index`
/// says; its manifest read as a switch reads it (in runs when it has an index this
/// binary reads, whole when not).
fn build_indexed(scratch: &EtcRoot, number: u32, declaration: &str, index: IndexAs) -> EtcGeneration {
    let file = scratch.path().join(format!("generation-{number}.toml"));
    let checked = decl::check(&file, declaration, None);
    let declaration = checked.declaration.unwrap_or_else(|| panic!("{}", checked.diagnostics));
    let mut tree = blankslate_etc_builder::from_declaration(&declaration).unwrap().tree().unwrap();
    let blankslate_state::store::Tree::Directory(top) = &mut tree else { unreachable!("an object is a directory") };
    let name = std::ffi::OsString::from(MANIFEST_INDEX_FILE);
    match index {
        IndexAs::Built => {}
        IndexAs::Missing => assert!(top.remove(&name).is_some()),
        IndexAs::Newer => {
            let newer = blankslate_state::store::Tree::file("blankslate-manifest-index 2 1\nruns in another form\n");
            assert!(top.insert(name, newer).is_some());
        }
    }
    let object = scratch.store.add(blankslate_etc_builder::OBJECT_NAME, &tree).unwrap();
    let to = EtcGeneration::load_in_runs(&scratch.store, number, &object).unwrap();
    let in_runs = format!("{:?}", to.manifest.entries).contains("runs_read");
    assert_eq!(in_runs, index == IndexAs::Built, "{index:?}");
    to
}

/// `count` entries, each a link or (one in ten) a copy, each with a text that says
/// `version`'s changes: about one in nine left out and one in eleven changed.
fn varied_declaration(count: usize, version: usize) -> (String, BTreeMap<String, String>) {
    let mut text = String::from("version = 1\n");
    let mut expected = BTreeMap::new();
    for i in (0..count).filter(|i| (i + version) % 9 != 0) {
        let path = format!("d{}/e{i}.conf", i % 5);
        let contents = if (i + version) % 11 == 0 { format!("{i} in {version}") } else { format!("{i}") };
        let _ = write!(text, "[etc.\"{path}\"]\ntext = \"{contents}\"\n");
        if i % 10 == 0 {
            text.push_str("mode = \"0644\"\n");
        }
        expected.insert(path, contents);
    }
    (text, expected)
}

/// A switch reads a manifest in runs where its object has the chunk index and whole
/// where it has none (an object an older binary built) or one of a newer format:
/// switching between two of a kind and from one kind to the other, `/etc` is what the
/// generation declares, nothing more.
#[test]
fn switches_between_objects_with_and_without_an_index_make_what_is_declared() {
    let scratch = EtcRoot::new();
    let all: BTreeSet<String> = (0..400).map(|i| format!("d{}/e{i}.conf", i % 5)).collect();
    let (built, missing, newer) = (IndexAs::Built, IndexAs::Missing, IndexAs::Newer);
    for (number, version, index) in
        [(1, 0, built), (2, 1, missing), (3, 2, built), (4, 3, built), (5, 4, newer), (6, 5, built), (7, 0, missing)]
    {
        let (text, expected) = varied_declaration(400, version);
        let to = build_indexed(&scratch, number, &text, index);
        scratch.activate(&to);
        for (path, contents) in &expected {
            assert_eq!(&scratch.read(path), contents, "generation {number}: {path}");
        }
        for path in all.iter().filter(|path| !expected.contains_key(*path)) {
            assert!(scratch.etc(path).symlink_metadata().is_err(), "generation {number}: {path} is left");
        }
    }
}

/// The manifest of the generation `/etc` leaves is damaged in a run the switch must
/// read: the switch goes on from nothing, as when the manifest is gone, and says why.
#[test]
fn a_previous_manifest_whose_run_does_not_check_is_one_that_cannot_be_read() {
    let scratch = EtcRoot::new();
    let (one, _) = varied_declaration(400, 0);
    let (two, expected) = varied_declaration(400, 1);
    let one = build_indexed(&scratch, 1, &one, IndexAs::Built);
    let two = build_indexed(&scratch, 2, &two, IndexAs::Built);
    scratch.activate(&one);
    let object = scratch.path().join(STORE.trim_start_matches('/')).join(&one.object);
    std::fs::set_permissions(&object, std::fs::Permissions::from_mode(0o755)).unwrap();
    let manifest = object.join("manifest.json");
    std::fs::set_permissions(&manifest, std::fs::Permissions::from_mode(0o644)).unwrap();
    // Same length, another byte: every run differs from the new generation's here.
    let text = std::fs::read_to_string(&manifest).unwrap().replace("\"user\": \"root\"", "\"user\": \"ro0t\"");
    std::fs::write(&manifest, text).unwrap();

    let activated = scratch.activate(&two);
    let (generation, reason) = activated.plan.unread_previous.clone().expect("the old manifest is unread");
    assert_eq!((generation, activated.plan.from.as_ref()), (1, None));
    assert!(reason.contains("not what its index says"), "{reason}");
    for (path, contents) in &expected {
        assert_eq!(&scratch.read(path), contents, "{path}");
    }
}
