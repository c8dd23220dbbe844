//! A host with 10,000 generated `#[patchable]` functions `f0 .. f9999`, each of
//! two `u64` arguments. The `patch-nN` crates replace the first N of them.
#![allow(clippy::all)]

include!(concat!(env!("OUT_DIR"), "/fns.rs"));
