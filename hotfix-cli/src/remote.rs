//! Talking to one process: connect, send a command, turn an error reply into a
//! [`CliError`].

use crate::error::CliError;
use hotfix_core::control::Client;
use hotfix_core::control::protocol::{Command, Reply, StatusReply};
use std::time::Duration;

/// How long `status` and `ps` wait for a reply.
pub const STATUS_TIMEOUT: Duration = Duration::from_secs(5);

/// How long `check`, `apply` and `revert` wait (an apply stops every thread of
/// a process for a moment, and a patch's hook may take its time).
pub const CHANGE_TIMEOUT: Duration = Duration::from_secs(300);

/// Sends `command` to process `pid` and returns its successful reply.
pub fn ask(pid: u32, command: Command, timeout: Duration) -> Result<Reply, CliError> {
    let connect = |source| CliError::Connect { pid, source };
    let mut client = Client::connect(pid).map_err(connect)?;
    let reply = client.request(command, timeout).map_err(connect)?;
    if reply.ok {
        return Ok(reply);
    }
    let (kind, message) = match reply.error {
        Some(e) => (e.kind, e.message),
        None => (
            hotfix_core::control::protocol::ErrorKind::Internal,
            "an error reply without a reason".to_owned(),
        ),
    };
    Err(CliError::Remote { pid, kind, message })
}

/// The status carried by a reply (every successful reply has one but `check`).
pub fn status_of(pid: u32, reply: &Reply) -> Result<&StatusReply, CliError> {
    reply.status.as_ref().ok_or_else(|| CliError::Remote {
        pid,
        kind: hotfix_core::control::protocol::ErrorKind::Internal,
        message: "the reply carries no status".to_owned(),
    })
}
