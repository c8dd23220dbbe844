//! Panics that cross between the host's `std` and a patch's own copy of `std`.
//!
//! Each copy of `std` only catches its own panics (another's is a "foreign
//! exception" and aborts). So a panic never unwinds across the boundary: the side
//! that raised it catches it, turns it into a [`PanicMsg`], and the other side
//! raises it again in its own `std`. The host's panic hook runs once per panic.

use crate::abi::{HostApi, PanicMsg};
use std::any::Any;
use std::cell::Cell;
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::sync::atomic::{AtomicPtr, Ordering};

/// In a patch: the host's API, written once by `bind`. Null in the host itself.
static HOST_API: AtomicPtr<HostApi> = AtomicPtr::new(std::ptr::null_mut());

thread_local! {
    /// In a patch: a panic raised in this `std` whose host hook has not run yet.
    static HOOK_PENDING: Cell<bool> = const { Cell::new(false) };
}

/// The message of a panic payload (`&str` and `String`; other payloads are named).
pub fn message_of(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&'static str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else if let Some(m) = payload.downcast_ref::<PanicMsg>() {
        m.message.clone()
    } else {
        "Box<dyn Any> (a non-string panic payload)".to_owned()
    }
}

/// Host side: raises `msg` as a panic of the host's `std`.
pub(crate) fn host_raise(msg: PanicMsg) -> ! {
    if msg.hook_ran {
        resume_unwind(Box::new(msg.message))
    } else {
        std::panic::panic_any(msg.message)
    }
}

/// Patch side: remembers the host API and silences this `std`'s own panic hook
/// (the host's hook runs when the panic is raised again in the host).
pub(crate) fn bind_patch(api: &'static HostApi) {
    HOST_API.store(api as *const HostApi as *mut HostApi, Ordering::Release);
    std::panic::set_hook(Box::new(|_| HOOK_PENDING.with(|p| p.set(true))));
}

fn raise_in_host(msg: PanicMsg) -> ! {
    let api = HOST_API.load(Ordering::Acquire);
    if api.is_null() {
        // Not loaded as a patch (the replacement was called in its own build):
        // this std is the host's.
        host_raise(msg)
    }
    // SAFETY: a non-null HOST_API was stored by bind_patch from a &'static.
    let api = unsafe { &*api };
    (api.raise)(msg)
}

/// Patch side: runs patch code; a panic in it is raised again in the host.
#[inline]
pub fn guard<R>(f: impl FnOnce() -> R) -> R {
    match catch_unwind(AssertUnwindSafe(|| super::in_host_context(f))) {
        Ok(v) => v,
        Err(payload) => {
            let hook_ran = !HOOK_PENDING.with(|p| p.replace(false));
            let msg = PanicMsg {
                message: message_of(&*payload),
                hook_ran,
            };
            drop(payload);
            raise_in_host(msg)
        }
    }
}

/// Patch side: runs a hook of the patch, a panic becomes `Err`.
pub fn guard_hook(f: fn() -> Result<(), String>) -> Result<(), String> {
    match catch_unwind(|| super::in_host_context(f)) {
        Ok(r) => r,
        Err(payload) => {
            HOOK_PENDING.with(|p| p.set(false));
            Err(format!("the hook panicked: {}", message_of(&*payload)))
        }
    }
}

/// Signature of a host-side catching thunk of a function with arguments `A`
/// (as a tuple) and result `R`.
pub type CatchingThunk<A, R> = unsafe fn(*const AtomicPtr<()>, *mut A, *mut R) -> Option<PanicMsg>;

/// Host side: calls the implementation in `*src` with `args` inside the host's
/// `catch_unwind`; writes the result to `out`, or returns the panic.
///
/// # Safety
/// `src` holds a function whose ABI `call` knows; `args` is initialised and is
/// moved out; `out` is valid for a write of `R`.
pub unsafe fn catching<A, R>(
    src: *const AtomicPtr<()>,
    args: *mut A,
    out: *mut R,
    call: unsafe fn(*const (), A) -> R,
) -> Option<PanicMsg> {
    // SAFETY: per the contract, src is a live slot or prev cell.
    let f = unsafe { (*src).load(Ordering::Acquire) };
    // SAFETY: per the contract, args is initialised and is read exactly once.
    let args = unsafe { args.read() };
    // SAFETY: call transmutes f back to the function type it was registered with.
    match catch_unwind(AssertUnwindSafe(|| unsafe { call(f as *const (), args) })) {
        Ok(v) => {
            // SAFETY: out is valid for writes per the contract.
            unsafe { out.write(v) };
            None
        }
        Err(payload) => Some(PanicMsg {
            message: message_of(&*payload),
            hook_ran: true,
        }),
    }
}

/// Patch side: calls host code through the host's catching thunk; a host panic
/// is raised again in this `std`.
///
/// # Safety
/// `thunk` is a [`CatchingThunk<A, R>`] of the host, `src` a cell it may load.
pub unsafe fn cross_call<A, R>(thunk: *const (), src: *const AtomicPtr<()>, args: A) -> R {
    // SAFETY: per the contract, thunk has exactly this type.
    let thunk: CatchingThunk<A, R> = unsafe { std::mem::transmute(thunk) };
    let mut args = std::mem::ManuallyDrop::new(args);
    let mut out = std::mem::MaybeUninit::<R>::uninit();
    // SAFETY: args is moved into the callee (ManuallyDrop keeps us from
    // dropping it again); out is a valid place for R.
    match unsafe { thunk(src, &mut *args, out.as_mut_ptr()) } {
        // SAFETY: the thunk wrote out when it returned None.
        None => unsafe { out.assume_init() },
        Some(msg) => resume_unwind(Box::new(msg.message)),
    }
}

/// Patch side: the future of an `async` replacement; a panic while polling it is
/// raised again in the host, like a panic of a synchronous replacement.
///
/// The replacement's future is held inline: the box the slot's function type
/// requires (`Pin<Box<dyn Future>>`) is the only allocation of a patched call.
/// Each poll runs inside [`guard`], because the poll runs code of the patch's
/// own `std`, whose unwinding the host's `std` cannot catch; on the path that
/// does not panic that is one call, no allocation. Built with `panic = "abort"`
/// nothing can unwind, and the poll is not wrapped.
pub struct GuardedFuture<F>(F);

impl<F: std::future::Future> GuardedFuture<F> {
    /// Wraps a future of patch code.
    pub fn new(f: F) -> Self {
        Self(f)
    }
}

impl<F: std::future::Future> std::future::Future for GuardedFuture<F> {
    type Output = F::Output;

    #[inline]
    fn poll(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<F::Output> {
        // SAFETY: structural pinning of the only field: `GuardedFuture` never
        // moves it out, has no `Drop` impl, and is `Unpin` only when `F` is.
        let inner = unsafe { self.map_unchecked_mut(|s| &mut s.0) };
        if cfg!(panic = "abort") {
            super::in_host_context(move || inner.poll(cx))
        } else {
            guard(move || inner.poll(cx))
        }
    }
}
