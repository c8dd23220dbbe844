//! Replaces the first 10 functions of `many-host`.
#![allow(clippy::all)]

hotfix_core::patch_library!();

include!(concat!(env!("OUT_DIR"), "/patch.rs"));
