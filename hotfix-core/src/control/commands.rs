//! What each request does, and the conversion of the runtime's status to the
//! wire format.

use super::peer::PeerCred;
use super::protocol::{
    CheckReport, CheckTarget, Command, ErrorKind, LivePatch, Reply, Request, StatusReply, VERSION,
    WireFunction, WirePatch,
};
use super::snapshot;
use crate::error::Error;
use crate::loader::PatchId;
use crate::runtime::{Runtime, Strategy};
use crate::status::{PatchStatus, Status};
use std::panic::{AssertUnwindSafe, catch_unwind};

/// Answers one request line (already bounded in size) of `peer`.
pub(crate) fn respond(line: &[u8], peer: PeerCred) -> Reply {
    let request: Request = match serde_json::from_slice(line) {
        Ok(r) => r,
        Err(e) => {
            return Reply::error(
                ErrorKind::BadRequest,
                format!(
                    "not a request of protocol version {VERSION}: {e}; send e.g. {{\"v\":1,\"cmd\":\"status\"}}"
                ),
            );
        }
    };
    if request.v != VERSION {
        return Reply::error(
            ErrorKind::BadRequest,
            format!(
                "protocol version {} is not served; this runtime speaks version {VERSION}",
                request.v
            ),
        );
    }
    if request.command != Command::Status {
        tracing::info!(
            peer_pid = peer.pid,
            peer_uid = peer.uid,
            command = ?request.command,
            "control socket request"
        );
    }
    // A panic in a patch's hook must not take the connection's thread down
    // without a reply.
    catch_unwind(AssertUnwindSafe(|| run(request.command))).unwrap_or_else(|payload| {
        Reply::error(
            ErrorKind::Internal,
            format!(
                "the command panicked: {}; the runtime is as the panic left it (ask for the status)",
                crate::bridge::panic::message_of(&*payload)
            ),
        )
    })
}

fn run(command: Command) -> Reply {
    let runtime = Runtime::global();
    match command {
        Command::Status => with_status(Reply::ok()),
        Command::Check { file } => match check(runtime, &file) {
            Ok(report) => Reply {
                check: Some(report),
                ..Reply::ok()
            },
            Err(e) => refused(&e),
        },
        Command::Apply { file } => match runtime.apply(&file) {
            Ok(p) => with_status(Reply {
                applied: Some(wire_patch(&p)),
                ..Reply::ok()
            }),
            Err(e) => refused(&e),
        },
        Command::Revert { id, all } => {
            let result = match (id, all) {
                (Some(_), true) => {
                    return Reply::error(
                        ErrorKind::BadRequest,
                        "revert takes an id or \"all\": true, not both",
                    );
                }
                (Some(id), false) => runtime.revert(PatchId(id)).map(|p| vec![p]),
                (None, true) => runtime.revert_all(),
                (None, false) => runtime.revert_newest().map(|p| vec![p]),
            };
            match result {
                Ok(ps) => with_status(Reply {
                    reverted: Some(ps.iter().map(wire_patch).collect()),
                    ..Reply::ok()
                }),
                Err(e) => refused(&e),
            }
        }
    }
}

fn refused(e: &Error) -> Reply {
    with_status(Reply::error(ErrorKind::Refused, e.to_string()))
}

fn with_status(reply: Reply) -> Reply {
    Reply {
        status: Some(status_reply(&snapshot::current())),
        ..reply
    }
}

/// The wire form of a status, with this process's pid and executable.
pub(crate) fn status_reply(status: &Status) -> StatusReply {
    StatusReply {
        pid: std::process::id(),
        exe: std::env::current_exe()
            .map(|p| p.display().to_string())
            .unwrap_or_default(),
        patches: status.patches.iter().map(wire_patch).collect(),
        functions: status
            .functions
            .iter()
            .map(|f| WireFunction {
                function: f.path.clone(),
                patch: f.patch.clone(),
                version: f.version.clone(),
                id: f.id.0,
            })
            .collect(),
    }
}

fn wire_patch(p: &PatchStatus) -> WirePatch {
    WirePatch {
        id: p.id.0,
        name: p.name.clone(),
        version: p.version.clone(),
        file: p.source.display().to_string(),
        sha256: p.digest.to_string(),
        strategy: match p.strategy {
            Strategy::Slot => "slot",
            Strategy::Entry => "entry",
        }
        .to_owned(),
        targets: p.targets.clone(),
        foreign: p.foreign.clone(),
    }
}

/// Every check of an apply, nothing applied: loads the patch (every check
/// of its file before `dlopen`, then the load), then the apply's own checks
/// ([`Runtime::check_loaded`]: signature, not applied already, foreign
/// functions resolved, planned and checked, threads that would not stop), and
/// says what each target runs now. Only the `on_apply` hook is left to apply.
fn check(runtime: &Runtime, file: &str) -> crate::Result<CheckReport> {
    let patch = runtime.load(file)?;
    runtime.check_loaded(&patch, crate::ApplyOptions::default())?;
    let now = snapshot::current();
    let live = |function: &str| {
        now.live(function).map(|f| LivePatch {
            patch: f.patch.clone(),
            version: f.version.clone(),
            id: f.id.0,
        })
    };
    let target = |function: &str| CheckTarget {
        function: function.to_owned(),
        live: live(function),
    };
    Ok(CheckReport {
        id: patch.id().0,
        name: patch.name().to_owned(),
        version: patch.version().to_owned(),
        file: patch.source().display().to_string(),
        sha256: patch.digest().to_string(),
        apply_hook: patch.hooks.on_apply.is_some(),
        targets: patch.targets().into_iter().map(target).collect(),
        foreign: patch.foreign_targets().into_iter().map(target).collect(),
    })
}
