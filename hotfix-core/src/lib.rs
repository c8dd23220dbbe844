//! hotfix: patch functions of a running Rust process without restarting it.
#![doc = include_str!("../README.md")]

pub mod abi;
mod alloc_bridge;
mod fingerprint;
mod panic_bridge;
#[doc(hidden)]
pub mod __private {
    pub use crate::private::*;
}
mod private;

#[doc(hidden)]
pub mod arch;
#[doc(hidden)]
pub mod code_error;
#[doc(hidden)]
pub mod foreign;
#[doc(hidden)]
pub mod os;

pub use abi::Shared;
pub use hotfix_macros::{patch, patch_library, patchable, shared};
pub use panic_bridge::message_of as panic_message;
