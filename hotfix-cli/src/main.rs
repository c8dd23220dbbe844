//! `hotfix`: see what is live in running processes, check a patch against one,
//! apply it, revert it; through each process's control socket
//! (`hotfix_core::control::serve()`). `hotfix build --base REV` makes a patch
//! from a fix written in place in the host's own source.

mod build;
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
  1  refused: the process (or, for inspect, the loader) refused; nothing changed;
     for build: a change a patch cannot carry, nothing to patch, or the fix did
     not compile
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
    /// Build a patch from the fix in the working tree: every change since REV
    /// (the revision the running host was built from) is reviewed, and the
    /// crate is compiled from the fixed source as a patch library.
    Build {
        /// The git revision the running host was built from.
        #[arg(long, value_name = "REV")]
        base: String,
        /// The package with the fix (default: the one whose #[patchable]
        /// functions changed).
        #[arg(short = 'p', long, value_name = "PACKAGE")]
        package: Option<String>,
        /// The cargo profile the host was built with (`dev` for `cargo build`,
        /// `release` for `cargo build --release`; default `dev`, or with
        /// --pid/--host the one whose output directory holds the host).
        #[arg(long, conflicts_with = "release")]
        profile: Option<String>,
        /// Make a linked patch (only the code that changed, linked to the
        /// running host's own code and data) for the host running as PID.
        #[arg(long, value_name = "PID", conflicts_with = "host")]
        pid: Option<u32>,
        /// Make a linked patch for the host executable FILE.
        #[arg(long, value_name = "FILE")]
        host: Option<PathBuf>,
        /// Same as `--profile release`.
        #[arg(long)]
        release: bool,
        /// Features the host was built with, as cargo takes them.
        #[arg(short = 'F', long)]
        features: Vec<String>,
        /// The host was built with --all-features.
        #[arg(long)]
        all_features: bool,
        /// The host was built with --no-default-features.
        #[arg(long)]
        no_default_features: bool,
        /// The workspace's Cargo.toml (default: found from the current directory).
        #[arg(long, value_name = "PATH")]
        manifest_path: Option<PathBuf>,
        /// Where to write the patch (default: target/hotfix/<crate>-<rev>.so).
        #[arg(short, long, value_name = "FILE")]
        out: Option<PathBuf>,
        /// The patch's name as status shows it (default: <package>-fix-<rev>).
        #[arg(long)]
        name: Option<String>,
        /// Print the plan and build nothing.
        #[arg(long)]
        dry_run: bool,
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
        Cmd::Build {
            base,
            package,
            profile,
            release,
            pid,
            host,
            features,
            all_features,
            no_default_features,
            manifest_path,
            out,
            name,
            dry_run,
        } => build::run(&build::BuildArgs {
            base,
            package,
            host: match (pid, host) {
                (Some(p), _) => Some(build::HostArg::Pid(p)),
                (None, Some(f)) => Some(build::HostArg::File(f)),
                (None, None) => None,
            },
            profile: build::Profile {
                explicit: release || profile.is_some(),
                profile: if release {
                    "release".into()
                } else {
                    profile.unwrap_or_else(|| "dev".into())
                },
                features,
                all_features,
                no_default_features,
            },
            manifest_path,
            out,
            name,
            dry_run,
        }),
    };
    match result {
        Ok(()) => ExitCode::from(error::EXIT_DONE),
        Err(e) => {
            eprintln!("hotfix: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}
