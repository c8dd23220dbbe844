//! The one error type of the `hotfix` command, and the exit code of each.

use hotfix_core::control::protocol::ErrorKind;

/// Exit code: the command was done.
pub const EXIT_DONE: u8 = 0;
/// Exit code: the process (or the loader, for `inspect`) refused; nothing changed.
pub const EXIT_REFUSED: u8 = 1;
/// Exit code: bad usage, or the process could not be reached.
pub const EXIT_USAGE: u8 = 2;
/// Exit code: an apply to several processes was refused by one, and undoing it
/// on a process already patched failed: that process stays patched.
pub const EXIT_PARTIAL: u8 = 3;

/// Why a `hotfix` command did not do what was asked.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// The command line is wrong.
    #[error("{0}; see `hotfix --help`")]
    Usage(String),

    /// The process's control socket could not be used.
    #[error(
        "cannot reach process {pid}: {source}; is it running, did it call hotfix_core::control::serve(), and is it this user's (or are you root with the same HOTFIX_CONTROL_DIR / XDG_RUNTIME_DIR)?"
    )]
    Connect {
        /// The process.
        pid: u32,
        /// What failed.
        #[source]
        source: hotfix_core::Error,
    },

    /// The control directory cannot be listed.
    #[error("{0}")]
    Directory(hotfix_core::Error),

    /// The process answered with an error.
    #[error("process {pid}: {message}")]
    Remote {
        /// The process.
        pid: u32,
        /// The class of the error.
        kind: ErrorKind,
        /// What was refused, why, and what to do.
        message: String,
    },

    /// A patch file was refused offline (`inspect`).
    #[error("{0}")]
    Refused(hotfix_core::Error),

    /// Undoing a partial multi-process apply failed.
    #[error("{0}")]
    Partial(String),

    /// `hotfix build`: a tool it runs (cargo, git) failed, or a file could
    /// not be read or written.
    #[error("{0}")]
    Tool(String),

    /// `hotfix build`: the changes since the base cannot be patched (each
    /// line names the change and what to do), or there is nothing to patch.
    #[error("{0}")]
    BuildRefused(String),

    /// `hotfix build`: the fixed source did not compile.
    #[error("{0}")]
    BuildFailed(String),
}

impl CliError {
    /// The error without the process's pid in front (for lines that start with it).
    pub fn reason(&self) -> String {
        match self {
            CliError::Remote { message, .. } => message.clone(),
            other => other.to_string(),
        }
    }

    /// The exit code this error ends the command with.
    pub fn exit_code(&self) -> u8 {
        match self {
            CliError::Remote {
                kind: ErrorKind::Refused,
                ..
            }
            | CliError::Refused(_)
            | CliError::BuildRefused(_)
            | CliError::BuildFailed(_) => EXIT_REFUSED,
            CliError::Partial(_) => EXIT_PARTIAL,
            CliError::Usage(_)
            | CliError::Tool(_)
            | CliError::Directory(_)
            | CliError::Connect { .. }
            | CliError::Remote { .. } => EXIT_USAGE,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes() {
        let remote = |kind| CliError::Remote {
            pid: 1,
            kind,
            message: "m".into(),
        };
        assert_eq!(remote(ErrorKind::Refused).exit_code(), EXIT_REFUSED);
        for kind in [
            ErrorKind::BadRequest,
            ErrorKind::Busy,
            ErrorKind::Forbidden,
            ErrorKind::Timeout,
            ErrorKind::TooLong,
            ErrorKind::Internal,
        ] {
            assert_eq!(remote(kind).exit_code(), EXIT_USAGE, "{kind:?}");
        }
        assert_eq!(CliError::Usage("u".into()).exit_code(), EXIT_USAGE);
        let refused = CliError::Refused(hotfix_core::Error::NothingApplied);
        assert_eq!(refused.exit_code(), EXIT_REFUSED);
        assert_eq!(CliError::Partial("p".into()).exit_code(), EXIT_PARTIAL);
        assert_eq!(CliError::BuildRefused("r".into()).exit_code(), EXIT_REFUSED);
        assert_eq!(CliError::BuildFailed("f".into()).exit_code(), EXIT_REFUSED);
        assert_eq!(CliError::Tool("t".into()).exit_code(), EXIT_USAGE);
        assert_eq!(remote(ErrorKind::Refused).reason(), "m");
    }
}
