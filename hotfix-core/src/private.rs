//! Items used by the code the macros generate. Not a public API.

pub use crate::abi::PanicMsg;
pub use crate::abi::{
    BindReport, BuildFingerprint, CrateIdentity, FnDesc, FnMeta, ForeignEntry, HookResult, HostApi,
    NotPatchable, PatchEntry, REGISTRY_FORMAT, REGISTRY_MAGIC, RawStr, RegistryV1, Shared,
    SharedDesc,
};
pub use crate::async_call::{AsyncCall, erase_local, erase_send};
pub use crate::bridge::alloc::HostAlloc;
pub use crate::bridge::panic::{GuardedFuture, catching, cross_call, guard, guard_hook};
pub use crate::fingerprint::{signature as sig_fp, type_layout as type_fp};
pub use linkme;
pub use std::sync::atomic::{AtomicPtr, Ordering};

/// Every `#[patchable]` function of this build.
#[linkme::distributed_slice]
pub static FNS: [FnDesc];

/// Every `#[shared]` static of this build.
#[linkme::distributed_slice]
pub static SHARED: [SharedDesc];

/// Every replacement of this build (a patch's `#[patch]` functions).
#[linkme::distributed_slice]
pub static PATCH_ENTRIES: [PatchEntry];

/// Every foreign replacement of this build.
#[linkme::distributed_slice]
pub static FOREIGN_ENTRIES: [ForeignEntry];

/// Registry accessor: the replacements of this build.
pub fn entries() -> &'static [PatchEntry] {
    &PATCH_ENTRIES
}

/// Registry accessor: the foreign replacements of this build.
pub fn foreign() -> &'static [ForeignEntry] {
    &FOREIGN_ENTRIES
}

/// Registry accessor: the `#[patchable]` functions of this build.
pub fn host_fns() -> &'static [FnDesc] {
    &FNS
}

/// The `#[patchable]` function of this build registered under `path`.
pub fn host_fn(path: &str) -> Option<&'static FnDesc> {
    host_fns().iter().find(|d| d.meta.path == path)
}

/// Registry accessor: the `#[shared]` statics of this build.
pub fn shared() -> &'static [SharedDesc] {
    &SHARED
}

/// Patch side: lends the host's allocator and panic machinery to this build.
pub fn bind(api: &'static HostApi) -> BindReport {
    let unbound_allocations = crate::bridge::alloc::bind(api);
    crate::bridge::panic::bind_patch(api);
    crate::bridge::tracing::bind_patch(api);
    crate::bridge::log::bind_patch(api);
    #[cfg(feature = "tokio")]
    crate::bridge::tokio::bind_patch(api);
    BindReport {
        unbound_allocations,
    }
}

/// Loads a slot for a call.
#[inline(always)]
pub fn load(slot: &AtomicPtr<()>) -> *const () {
    slot.load(Ordering::Acquire) as *const ()
}

/// Marks the path it is called on as the unlikely one (a replacement is
/// live), so the compiler lays out the original's direct call as the
/// straight-line path. A `#[cold]` function: `core::hint::cold_path` says the
/// same but is stable only in releases newer than this crate's `rust-version`.
#[cold]
#[inline(always)]
pub fn patched_path() {}

/// A plain function in another crate than its callers: the baseline of
/// benchmarks for a call across crates (in a position-independent executable
/// such calls load their target from the GOT, like the call to a patchable
/// function's entry does).
#[inline(never)]
pub fn bench_plain_add(a: i64, b: i64) -> i64 {
    a.wrapping_add(b)
}
