//! Patch code that uses tokio runs on the host's runtime (feature `tokio`).
//!
//! A patch links its own copy of tokio, whose thread-local context never holds
//! a runtime: left alone, `tokio::time::sleep`, IO and `spawn` in patch code
//! panic with "there is no reactor running". Every call of a replacement and
//! every poll of a patched future runs with the runtime the calling host thread
//! is in entered into the patch's copy ([`in_host_runtime`]), so the patch's
//! tokio code registers its timers, IO and tasks with the host's runtime.
//! Host and patch were built with the same tokio version (the build
//! fingerprint's `bridged_crates`) and its "full" feature set, which this
//! feature forces, so the runtime's handle has one layout in both.

use crate::abi::HostApi;
use std::sync::atomic::{AtomicPtr, Ordering};

static API: AtomicPtr<HostApi> = AtomicPtr::new(std::ptr::null_mut());

/// Host side: the runtime the calling thread is in.
pub(crate) fn host_handle() -> Option<tokio::runtime::Handle> {
    tokio::runtime::Handle::try_current().ok()
}

/// Patch side: remembers the host's API.
pub(crate) fn bind_patch(api: &'static HostApi) {
    API.store(api as *const HostApi as *mut HostApi, Ordering::Release);
}

/// Patch side: runs `f` with the host thread's runtime entered into the
/// patch's copy of tokio (as it is, when the thread is in none, or when this
/// is not a bound patch).
#[inline]
pub(crate) fn in_host_runtime<R>(f: impl FnOnce() -> R) -> R {
    let api = API.load(Ordering::Acquire);
    if api.is_null() {
        return f();
    }
    // SAFETY: a non-null API was stored by bind_patch from a &'static HostApi.
    let handle = (unsafe { &*api }.tokio_handle)();
    match handle {
        Some(h) => {
            let _entered = h.enter();
            f()
        }
        None => f(),
    }
}
