//! `SIGHUP` applies the patch file, `SIGUSR2` reverts the newest patch.
//!
//! The signal handler (signal-hook's) only records the signal; a normal thread
//! takes them one at a time and does the loading, allocating and logging.
//! Signals that arrive while one is handled coalesce.

use signal_hook::consts::{SIGHUP, SIGUSR2};
use signal_hook::iterator::Signals;
use std::io;
use std::path::PathBuf;
use std::thread::{self, JoinHandle};

/// Installs the handlers and starts the thread that acts on the signals. Call
/// it before announcing the server, so no signal meets the default action.
pub fn spawn(patch: PathBuf) -> io::Result<JoinHandle<()>> {
    let mut signals = Signals::new([SIGHUP, SIGUSR2])?;
    thread::Builder::new()
        .name("hotfix-signals".to_owned())
        .spawn(move || {
            for signal in signals.forever() {
                match signal {
                    SIGHUP => apply(&patch),
                    SIGUSR2 => revert(),
                    other => tracing::warn!(signal = other, "unexpected signal ignored"),
                }
            }
        })
}

/// Applies the patch file, logging what changed or why it was refused.
fn apply(patch: &std::path::Path) {
    tracing::info!(file = %patch.display(), "SIGHUP: applying the patch");
    match hotfix_core::apply(patch) {
        Ok(applied) => tracing::info!(
            patch = %applied.name,
            version = %applied.version,
            functions = ?applied.targets,
            foreign = ?applied.foreign,
            now = %hotfix_core::status(),
            "patch applied"
        ),
        Err(e) => tracing::warn!(
            file = %patch.display(),
            reason = %e,
            "patch refused; the server keeps its previous behaviour"
        ),
    }
}

/// Reverts the newest applied patch, logging what changed or why not.
fn revert() {
    tracing::info!("SIGUSR2: reverting the newest patch");
    match hotfix_core::revert_newest() {
        Ok(reverted) => tracing::info!(
            patch = %reverted.name,
            version = %reverted.version,
            functions = ?reverted.targets,
            foreign = ?reverted.foreign,
            now = %hotfix_core::status(),
            "patch reverted"
        ),
        Err(e) => tracing::warn!(reason = %e, "revert refused; nothing changed"),
    }
}
