//! Operating patches from outside the process: a control socket.
//!
//! [`serve`] starts, on a thread of its own, a Unix domain socket named
//! `<pid>.sock` in a per-user directory ([`dir::control_dir`]). The `hotfix`
//! command (crate `hotfix-cli`) finds a process's socket from its pid and asks it
//! for its status, to check a patch file, to apply one or to revert.
//!
//! - **Who may connect**: the process's own (effective) user and root, checked
//!   with the peer's credentials (`SO_PEERCRED`); anyone else gets an error
//!   reply, the connection is closed, and the attempt is logged. The directory is
//!   mode 0700 and the socket 0600 besides.
//! - **The protocol**: one JSON request line, one JSON reply line, versioned;
//!   see [`protocol`] (the one document of it).
//! - **Bad input**: lines are read up to [`socket::MAX_LINE`] bytes and within
//!   [`socket::LINE_TIMEOUT`]; at most [`socket::MAX_CLIENTS`] connections are
//!   served at once, more are told the server is busy. Nothing a client sends
//!   can block the host's own threads or crash it.
//! - **Ready to link**: it also reads, once and on a thread of its own, the
//!   executable's symbol table that linked patches are resolved against, so
//!   the first apply does not pay for it.
//! - **Status never waits**: it is read from a snapshot published after every
//!   apply and revert ([`snapshot`]), not from the runtime's lock, so it answers
//!   at once even while an apply is in progress.
//!
//! ```no_run
//! // In the server's main, once (thread-based and async servers alike):
//! match hotfix_core::control::serve() {
//!     Ok(path) => tracing::info!(socket = %path.display(), "hotfix control socket"),
//!     Err(e) => tracing::warn!(error = %e, "no hotfix control socket"),
//! }
//! ```

pub mod client;
mod commands;
pub mod dir;
mod peer;
pub mod protocol;
mod server;
pub mod snapshot;
pub mod socket;

use crate::error::Result;
use std::path::{Path, PathBuf};

pub use client::Client;

/// Starts the control socket in [`dir::control_dir`] on a thread of its own and
/// returns the socket's path. Calling it again returns the socket already served.
pub fn serve() -> Result<PathBuf> {
    serve_in(&dir::control_dir())
}

/// Like [`serve`], with the socket in `dir` (created with mode 0700 if missing;
/// refused if it is not a directory of this user that only this user may use).
pub fn serve_in(dir: &Path) -> Result<PathBuf> {
    let path = server::start(dir)?;
    crate::linked::warm_up();
    Ok(path)
}
