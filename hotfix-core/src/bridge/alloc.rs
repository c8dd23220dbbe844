//! The global allocator of a patch: the host's.
//!
//! A patch is a `cdylib` with its own copy of `std`; left alone it allocates with
//! the system allocator, and a host with its own `#[global_allocator]` would free
//! that memory with the wrong allocator. `hotfix_core::patch_library!` installs
//! [`HostAlloc`] as the patch's global allocator; once the runtime binds the
//! patch, every allocation goes through the host's allocator.

use crate::abi::HostApi;
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicPtr, AtomicUsize, Ordering};

static HOST: AtomicPtr<HostApi> = AtomicPtr::new(std::ptr::null_mut());
static UNBOUND: AtomicUsize = AtomicUsize::new(0);

/// A patch's global allocator: forwards to the host's once bound.
pub struct HostAlloc;

pub(crate) fn bind(api: &'static HostApi) -> usize {
    HOST.store(api as *const HostApi as *mut HostApi, Ordering::Release);
    UNBOUND.load(Ordering::Acquire)
}

#[inline]
fn host() -> Option<&'static HostApi> {
    let p = HOST.load(Ordering::Acquire);
    // SAFETY: a non-null pointer was stored from a &'static HostApi.
    (!p.is_null()).then(|| unsafe { &*p })
}

// SAFETY: every method forwards to a GlobalAlloc (the host's, or System before
// binding) with the caller's arguments unchanged. Memory allocated before binding
// is counted: the runtime refuses a patch that has any (it could later be freed
// by the host's allocator).
unsafe impl GlobalAlloc for HostAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        match host() {
            // SAFETY: forwarded with the caller's layout.
            Some(h) => unsafe { (h.alloc)(layout) },
            None => {
                UNBOUND.fetch_add(1, Ordering::AcqRel);
                // SAFETY: forwarded with the caller's layout.
                unsafe { System.alloc(layout) }
            }
        }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        match host() {
            // SAFETY: forwarded with the caller's layout.
            Some(h) => unsafe { (h.alloc_zeroed)(layout) },
            None => {
                UNBOUND.fetch_add(1, Ordering::AcqRel);
                // SAFETY: forwarded with the caller's layout.
                unsafe { System.alloc_zeroed(layout) }
            }
        }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        match host() {
            // SAFETY: ptr came from this allocator: the host's (binding happens
            // before any allocation is accepted, see UNBOUND).
            Some(h) => unsafe { (h.dealloc)(ptr, layout) },
            // SAFETY: before binding, every allocation came from System.
            None => unsafe { System.dealloc(ptr, layout) },
        }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        match host() {
            // SAFETY: as for dealloc.
            Some(h) => unsafe { (h.realloc)(ptr, layout, new_size) },
            // SAFETY: as for dealloc.
            None => unsafe { System.realloc(ptr, layout, new_size) },
        }
    }
}

/// The host's side of the allocator: its own global allocator.
pub(crate) mod host {
    use std::alloc::Layout;

    pub(crate) unsafe fn alloc(layout: Layout) -> *mut u8 {
        // SAFETY: forwarded from a GlobalAlloc::alloc call with a valid layout.
        unsafe { std::alloc::alloc(layout) }
    }
    pub(crate) unsafe fn alloc_zeroed(layout: Layout) -> *mut u8 {
        // SAFETY: as above.
        unsafe { std::alloc::alloc_zeroed(layout) }
    }
    pub(crate) unsafe fn dealloc(ptr: *mut u8, layout: Layout) {
        // SAFETY: ptr was allocated by this (the host's) allocator with layout.
        unsafe { std::alloc::dealloc(ptr, layout) }
    }
    pub(crate) unsafe fn realloc(ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: as for dealloc.
        unsafe { std::alloc::realloc(ptr, layout, new_size) }
    }
}
