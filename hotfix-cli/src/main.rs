//! `hotfix`: see what is live in running processes, check a patch against one,
//! apply it, revert it; through each process's control socket
//! (`hotfix_core::control::serve()`).

mod commands;
mod error;
mod remote;
mod show;

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

const AFTER_HELP: &str = "\
Exit codes:
  0  done
  1  refused: the process (or, for inspect, the loader) refused; nothing changed
  2  usage error, or a process could not be reached
  3  apply to several processes: one refused and undoing the apply on a process
     already patched failed (the lines say which stays patched)

Processes are found by pid through their sockets in $HOTFIX_CONTROL_DIR, else
$XDG_RUNTIME_DIR/hotfix, else /tmp/hotfix-run-<uid>. Only the process's own user
and root may use them.";

/// Operate hot patches of running processes.
#[derive(Parser, Debug)]
#[command(name = "hotfix", version, after_help = AFTER_HELP)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// List processes with a control socket: pid, executable, applied patches.
    Ps,
    /// Show what is applied in a process and which patch is live where.
    Status {
        /// The process.
        pid: u32,
        /// Print the status as JSON (the protocol's `status` object).
        #[arg(long)]
        json: bool,
    },
    /// Run every check of an apply against a process; apply nothing. Says what
    /// would change, or why it would be refused (exit 1).
    Check {
        /// The process.
        pid: u32,
        /// The patch file.
        file: PathBuf,
    },
    /// Apply a patch: `hotfix apply PID FILE`, or `hotfix apply --pid A --pid B
    /// FILE` to apply it to several processes in order; if one refuses, it is
    /// reverted from those already patched. One line per process.
    Apply {
        /// Processes to patch, in order (instead of the positional PID).
        #[arg(long = "pid", value_name = "PID")]
        pids: Vec<u32>,
        /// `PID FILE`, or `FILE` with --pid.
        #[arg(value_name = "PID FILE", num_args = 1..=2, required = true)]
        args: Vec<String>,
    },
    /// Revert the newest patch of a process, patch ID, or all (--all).
    Revert {
        /// The process.
        pid: u32,
        /// The patch id (as `hotfix status` shows it, `3` or `#3`).
        #[arg(conflicts_with = "all")]
        id: Option<String>,
        /// Revert every patch, newest first.
        #[arg(long)]
        all: bool,
    },
    /// Show what a patch file holds, offline: name, version, digest, build
    /// fingerprint, targets, foreign symbols, signer.
    Inspect {
        /// The patch file.
        file: PathBuf,
    },
    /// Make an Ed25519 key pair for signing patches: NAME.secret (mode 0600)
    /// and NAME.pub (give this one to servers: --trusted-key, HOTFIX_TRUSTED_KEYS).
    Keygen {
        /// Path of the pair without extension.
        name: PathBuf,
    },
    /// Sign a patch file with a secret key: writes FILE.sig beside it.
    Sign {
        /// The secret key file (from `hotfix keygen`).
        #[arg(long)]
        key: PathBuf,
        /// The patch file.
        file: PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() {
                error::EXIT_USAGE
            } else {
                error::EXIT_DONE
            });
        }
    };
    let result = match cli.command {
        Cmd::Ps => commands::ps(),
        Cmd::Status { pid, json } => commands::status(pid, json),
        Cmd::Check { pid, file } => commands::check(pid, &file),
        Cmd::Apply { pids, args } => commands::apply(pids, args),
        Cmd::Revert { pid, id, all } => commands::revert(pid, id.as_deref(), all),
        Cmd::Inspect { file } => commands::inspect(&file),
        Cmd::Keygen { name } => commands::keygen(&name),
        Cmd::Sign { key, file } => commands::sign(&key, &file),
    };
    match result {
        Ok(()) => ExitCode::from(error::EXIT_DONE),
        Err(e) => {
            eprintln!("hotfix: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}
