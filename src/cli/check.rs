//! `blankslate check`: validate declarations.

use std::path::PathBuf;
use std::process::ExitCode;

use blankslate_activator::running::root_users;
use blankslate_decl as decl;
use serde_json::json;

use super::plural;
use crate::report::{self, EXIT_FAILURE, EXIT_FINDINGS, EXIT_OK, err, outln};

#[derive(Debug, clap::Args)]
pub(super) struct Args {
    /// Declaration files (TOML).
    #[arg(required = true)]
    declarations: Vec<PathBuf>,
    /// Print diagnostics and the canonical declaration as JSON.
    #[arg(long)]
    json: bool,
    /// Check owner names against this root's /etc/passwd and /etc/group.
    #[arg(long, value_name = "DIR", default_value = "/")]
    root: PathBuf,
}

/// What a btrfs root needs that the declaration cannot say.
const BTRFS_ROOT_NOTE: &str = "a btrfs root is made only by blankslate's own initramfs (`blankslate initrd`): booted \
                               through a systemd initrd (dracut, `blankslate boot --root`), the boot stops";

pub(super) fn run(args: &Args) -> Result<ExitCode, report::WriteError> {
    let (files, as_json) = (&args.declarations, args.json);
    let users = root_users(&args.root);
    let color = report::color_for(&std::io::stderr());
    let mut results = Vec::new();
    let (mut invalid, mut unreadable) = (false, false);
    // Every file is checked, even after one that cannot be read.
    for file in files {
        let bytes = match decl::read_file(file) {
            Ok(bytes) => bytes,
            Err(error) => {
                unreadable = true;
                if as_json {
                    results.push(json!({ "file": file, "valid": false, "error": error.to_string() }));
                } else {
                    report::error(&error);
                }
                continue;
            }
        };
        let checked = decl::check_bytes(file, &bytes, users.as_ref());
        invalid |= checked.declaration.is_none();
        let btrfs_root = checked.declaration.as_ref().is_some_and(|d| d.root.btrfs.is_some());
        if as_json {
            results.push(json!({
                "file": file,
                "valid": checked.declaration.is_some(),
                "diagnostics": checked.diagnostics.to_json(),
                "notes": if btrfs_root { vec![BTRFS_ROOT_NOTE] } else { Vec::new() },
                "declaration": checked.declaration.map(|d| d.normalized()),
            }));
            continue;
        }
        err!("{}", checked.diagnostics.render(color))?;
        if btrfs_root {
            err!("{}: warning: {BTRFS_ROOT_NOTE}", file.display())?;
        }
        match checked.declaration {
            Some(_) => outln!("{}: ok", file.display())?,
            None => outln!("{}: {}", file.display(), plural(checked.diagnostics.error_count(), "error"))?,
        }
    }
    if as_json {
        report::json(&serde_json::Value::Array(results))?;
    }
    Ok(ExitCode::from(if unreadable {
        EXIT_FAILURE
    } else if invalid {
        EXIT_FINDINGS
    } else {
        EXIT_OK
    }))
}
