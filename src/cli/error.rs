//! How a command ends when it fails: its error, typed by whose mistake it is, and
//! so its exit code.

use std::error::Error;

use blankslate_persist::add::ManageError;

use crate::report::{EXIT_FAILURE, EXIT_FINDINGS, EXIT_USAGE};

/// The error a command ends with.
#[derive(Debug)]
pub enum CliError {
    /// What the person gave the command is wrong (exit 2) or invalid (exit 1).
    Input(InputError),
    /// A `persist` command's work; an invalid declaration is a finding (exit 1).
    Manage(ManageError),
    /// The work could not be done (exit 3).
    Failure(Box<dyn Error>),
}

impl CliError {
    /// The exit code the command ends with.
    pub fn exit_code(&self) -> u8 {
        match self {
            CliError::Input(input) => input.code,
            CliError::Manage(error) if error.is_invalid() => EXIT_FINDINGS,
            CliError::Manage(_) | CliError::Failure(_) => EXIT_FAILURE,
        }
    }

    /// The error to print, with its chain of causes.
    pub fn error(&self) -> &(dyn Error + 'static) {
        match self {
            CliError::Input(input) => input,
            CliError::Manage(error) => error,
            CliError::Failure(error) => error.as_ref(),
        }
    }
}

impl From<ManageError> for CliError {
    fn from(error: ManageError) -> CliError {
        CliError::Manage(error)
    }
}

/// Every other error a command meets is a failure of its work.
macro_rules! failures {
    ($($error:ty),* $(,)?) => {$(
        impl From<$error> for CliError {
            fn from(error: $error) -> CliError {
                CliError::Failure(error.into())
            }
        }
    )*};
}

failures!(
    String,
    &str,
    Box<dyn Error>,
    std::io::Error,
    serde_json::Error,
    crate::report::WriteError,
    blankslate_sys::fs::FsError,
    blankslate_state::generation::GenerationError,
    blankslate_decl::LoadError,
    blankslate_etc_builder::BuildError,
    blankslate_state::store::StoreError,
    blankslate_state::activation::ActivationError,
    blankslate_etc_builder::keep::KeepError,
    blankslate_persist::PersistError,
    blankslate_activator::switch::SwitchError,
    blankslate_activator::etc::EtcError,
    blankslate_activator::running::RunningError,
    blankslate_activator::trial::TrialError,
    blankslate_activator::sandbox::SandboxError,
    blankslate_activator::hostonly::HostOnlyError,
    blankslate_activator::initrd::InitrdError,
    blankslate_audit::AuditError,
    blankslate_audit::PackagedError,
    blankslate_adopt::AdoptError,
    blankslate_net::NetError,
    blankslate_activator::root::btrfs::BtrfsRootError,
);

/// A mistake in what the person gave the command (a generation that does not exist,
/// an input file that is not what the command reads): it ends the command with its own
/// exit code, not as a failure.
#[derive(Debug)]
pub struct InputError {
    code: u8,
    message: String,
}

impl InputError {
    /// The command line named something that is not there (exit 2).
    pub fn argument(message: impl Into<String>) -> CliError {
        CliError::Input(InputError { code: EXIT_USAGE, message: message.into() })
    }

    /// An input file's contents are invalid (exit 1, as for an invalid declaration).
    pub fn contents(message: impl Into<String>) -> CliError {
        CliError::Input(InputError { code: EXIT_FINDINGS, message: message.into() })
    }
}

impl std::fmt::Display for InputError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl Error for InputError {}
