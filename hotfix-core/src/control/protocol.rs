#![doc = include_str!("PROTOCOL.md")]

use serde::{Deserialize, Serialize};

/// The protocol version this runtime speaks.
pub const VERSION: u32 = 1;

/// One request line.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Request {
    /// Protocol version ([`VERSION`]).
    pub v: u32,
    /// What is asked.
    #[serde(flatten)]
    pub command: Command,
}

impl Request {
    /// A request of this protocol version.
    pub fn new(command: Command) -> Request {
        Request {
            v: VERSION,
            command,
        }
    }
}

/// The commands of a [`Request`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "snake_case")]
pub enum Command {
    /// What is applied.
    Status,
    /// Every check of an apply, nothing applied.
    Check {
        /// The patch file (absolute path).
        file: String,
    },
    /// Load, check and apply a patch file.
    Apply {
        /// The patch file (absolute path).
        file: String,
    },
    /// Revert one patch (`id`), every patch (`all`), or else the newest.
    Revert {
        /// The patch to revert.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<u64>,
        /// Revert every patch, newest first.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        all: bool,
    },
}

/// One reply line.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Reply {
    /// Protocol version ([`VERSION`]).
    pub v: u32,
    /// Whether the command was done.
    pub ok: bool,
    /// Why not, when `ok` is false.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorReply>,
    /// The process and what is applied.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<StatusReply>,
    /// What an apply would change.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub check: Option<CheckReport>,
    /// The patch applied.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub applied: Option<WirePatch>,
    /// The patches reverted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reverted: Option<Vec<WirePatch>>,
}

impl Reply {
    /// A successful reply with nothing in it yet.
    pub fn ok() -> Reply {
        Reply {
            v: VERSION,
            ok: true,
            ..Reply::default()
        }
    }

    /// A failure reply.
    pub fn error(kind: ErrorKind, message: impl Into<String>) -> Reply {
        Reply {
            v: VERSION,
            ok: false,
            error: Some(ErrorReply {
                kind,
                message: message.into(),
            }),
            ..Reply::default()
        }
    }

    /// The reply as one line, without the newline.
    pub fn to_line(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|e| {
            format!(
                r#"{{"v":{VERSION},"ok":false,"error":{{"kind":"internal","message":"cannot encode the reply: {}"}}}}"#,
                e.to_string().replace(['"', '\\'], "'")
            )
        })
    }
}

/// Why a command was not done.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorReply {
    /// The class of failure.
    pub kind: ErrorKind,
    /// What was refused, why, and what to do.
    pub message: String,
}

/// Classes of failure (see the table above).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// The runtime refused; nothing changed.
    Refused,
    /// Not a request of this protocol.
    BadRequest,
    /// The request line is too long.
    TooLong,
    /// The request line did not arrive in time.
    Timeout,
    /// Too many connections.
    Busy,
    /// The peer may not use this socket.
    Forbidden,
    /// The command panicked.
    Internal,
}

/// The process and what is applied in it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusReply {
    /// The process id.
    pub pid: u32,
    /// The process's executable.
    pub exe: String,
    /// Applied patches, oldest first.
    pub patches: Vec<WirePatch>,
    /// Every patched function and the patch whose version is live.
    pub functions: Vec<WireFunction>,
}

/// One applied patch.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WirePatch {
    /// Its id in the process.
    pub id: u64,
    /// Its name.
    pub name: String,
    /// Its version.
    pub version: String,
    /// The file it was loaded from.
    pub file: String,
    /// The SHA-256 of the file: the patch's identity.
    pub sha256: String,
    /// `slot` or `entry`.
    pub strategy: String,
    /// Paths of the `#[patchable]` functions it replaces.
    pub targets: Vec<String>,
    /// Symbols of the foreign functions it replaces.
    pub foreign: Vec<String>,
}

/// A patched function and the patch whose version of it is live.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WireFunction {
    /// The function's path or symbol.
    pub function: String,
    /// The live patch's name.
    pub patch: String,
    /// Its version.
    pub version: String,
    /// Its id.
    pub id: u64,
}

/// What applying a patch would change.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckReport {
    /// The id the patch would have once applied.
    pub id: u64,
    /// Its name.
    pub name: String,
    /// Its version.
    pub version: String,
    /// The file checked (canonical path).
    pub file: String,
    /// The SHA-256 of the file.
    pub sha256: String,
    /// Whether it has an `on_apply` hook (which may still veto an apply).
    pub apply_hook: bool,
    /// The `#[patchable]` functions it would replace.
    pub targets: Vec<CheckTarget>,
    /// The foreign functions it would replace.
    pub foreign: Vec<CheckTarget>,
}

/// One function a patch would replace, and what runs there now.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckTarget {
    /// The function's path or symbol.
    pub function: String,
    /// The patch live there now, which the apply would shadow (`None`: the
    /// original).
    pub live: Option<LivePatch>,
}

/// A patch live on a function.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LivePatch {
    /// Its name.
    pub patch: String,
    /// Its version.
    pub version: String,
    /// Its id.
    pub id: u64,
}
