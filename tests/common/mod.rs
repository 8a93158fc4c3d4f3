//! What the binary's integration tests share: running `blankslate` and reading its
//! output.

use std::process::{Command, Output};

/// Runs the binary with `env` added, never with a failpoint or colour from outside.
pub fn blankslate_env(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_blankslate"));
    command.args(args).env_remove("BLANKSLATE_FAILPOINT").env("NO_COLOR", "1");
    for (key, value) in env {
        command.env(key, value);
    }
    command.output().expect("run blankslate")
}

/// `blankslate generations list --json` of `root`.
pub fn generations(root: &str) -> serde_json::Value {
    let output = blankslate_env(&["generations", "list", "--json", "--root", root], &[]);
    assert!(output.status.success(), "{}", stderr(&output));
    serde_json::from_slice(&output.stdout).unwrap()
}

/// The current generation of `root`, if any.
pub fn current_generation(root: &str) -> Option<u64> {
    let list = generations(root);
    list.as_array()?.iter().find(|g| g["current"] == true).map(|g| g["generation"].as_u64().unwrap())
}

pub fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Whether the tests run as root (mounting and owners need it).
#[allow(dead_code)] // not every test binary that shares this module needs it
pub fn is_root() -> bool {
    std::process::Command::new("id").arg("-u").output().is_ok_and(|o| o.stdout.starts_with(b"0\n"))
}
