//! hotfix: patch functions of a running Rust process without restarting it.
#![doc = include_str!("../README.md")]

pub mod abi;
mod alloc_bridge;
mod code;
mod error;
mod fingerprint;
mod foreign_patch;
mod host;
mod loader;
mod panic_bridge;
mod private;
mod runtime;
mod status;

#[doc(hidden)]
pub mod arch;
#[doc(hidden)]
pub mod code_error;
#[doc(hidden)]
pub mod foreign;
#[doc(hidden)]
pub mod os;

#[doc(hidden)]
pub mod __private {
    pub use crate::private::*;
}

pub use abi::Shared;
pub use code_error::CodeError;
pub use error::{Error, Result};
pub use hotfix_macros::{patch, patch_library, patchable, shared};
pub use loader::{LoadedPatch, PatchId};
pub use panic_bridge::message_of as panic_message;
pub use runtime::{ApplyOptions, Runtime, Strategy};
pub use status::{FunctionStatus, PatchStatus, Status};

/// Loads, checks and applies a patch file ([`Runtime::apply`] on the global runtime).
pub fn apply(path: impl AsRef<std::path::Path>) -> Result<PatchStatus> {
    Runtime::global().apply(path)
}

/// Reverts the newest applied patch ([`Runtime::revert_newest`]).
pub fn revert_newest() -> Result<PatchStatus> {
    Runtime::global().revert_newest()
}

/// What is applied ([`Runtime::status`]).
pub fn status() -> Status {
    Runtime::global().status()
}
