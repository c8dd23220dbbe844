//! The future a `#[patchable] async fn` returns.
//!
//! While the function's slot holds its entry (nothing replaces it), the call
//! runs the original `async fn` and its future is held inline: no allocation.
//! Once a replacement is live, the slot's function creates a boxed future
//! (every implementation must have the same type), held in the other variant.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

/// The original's future inline (`A`), or the boxed future of whatever the
/// slot held when the call was made (`B`).
pub enum AsyncCall<A, B> {
    /// The original, unboxed.
    Inline(A),
    /// A replacement's (or a cross-build call's) boxed future.
    Boxed(B),
}

impl<A, B> Future for AsyncCall<A, B>
where
    A: Future,
    B: Future<Output = A::Output> + Unpin,
{
    type Output = A::Output;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<A::Output> {
        // SAFETY: structural pinning of `Inline`: an `AsyncCall` never moves its
        // fields out and has no `Drop` impl, so a pinned `A` stays where it is
        // until it is dropped in place. `B` is `Unpin` and needs no pinning.
        match unsafe { self.get_unchecked_mut() } {
            // SAFETY: as above, `a` is never moved while pinned.
            AsyncCall::Inline(a) => unsafe { Pin::new_unchecked(a) }.poll(cx),
            AsyncCall::Boxed(b) => Pin::new(b).poll(cx),
        }
    }
}

/// The boxed future of a `Send` call, its trait-object lifetime erased.
pub type BoxedSend<O> = Pin<Box<dyn Future<Output = O> + Send + 'static>>;
/// The boxed future of a `?Send` call, its trait-object lifetime erased.
pub type BoxedLocal<O> = Pin<Box<dyn Future<Output = O> + 'static>>;

/// Erases the lifetime bound of the boxed future a slot's function returned.
///
/// The slot's function ties every borrowed argument to one lifetime; a caller
/// with arguments of several lifetimes gets a future bounded by their
/// intersection, which an `impl Future` result cannot name.
///
/// # Safety
/// The result must be returned only inside an opaque type that captures every
/// lifetime of the arguments the future was created from (the wrapper's
/// `impl Future`): the caller then keeps every borrow alive while the future
/// lives, which is all the erased bound promised.
#[inline(always)]
pub unsafe fn erase_send<'a, O>(f: Pin<Box<dyn Future<Output = O> + Send + 'a>>) -> BoxedSend<O> {
    // SAFETY: only the trait-object lifetime bound differs (same layout and
    // vtable); the caller's contract keeps the borrows alive.
    unsafe { std::mem::transmute(f) }
}

/// [`erase_send`] for a `?Send` future.
///
/// # Safety
/// As for [`erase_send`].
#[inline(always)]
pub unsafe fn erase_local<'a, O>(f: Pin<Box<dyn Future<Output = O> + 'a>>) -> BoxedLocal<O> {
    // SAFETY: as in erase_send.
    unsafe { std::mem::transmute(f) }
}
