//! What a patch borrows from its host once bound, so that patch code behaves
//! as if compiled into the host: the global allocator ([`alloc`]), panics
//! ([`panic`]), the `tracing` dispatcher ([`tracing`]) and the `log` logger
//! ([`log`]) and, with the `tokio` feature, the tokio runtime ([`tokio`]).
//! Each has a host side (what [`crate::abi::HostApi`] lends) and a
//! patch side (what the patch's `bind` installs in its own copies).

pub(crate) mod alloc;
pub(crate) mod log;
pub(crate) mod panic;
#[cfg(feature = "tokio")]
pub(crate) mod tokio;
pub(crate) mod tracing;

/// Patch side: runs patch code in the host's context (with the `tokio`
/// feature, the host thread's tokio runtime entered).
#[inline]
pub(crate) fn in_host_context<R>(f: impl FnOnce() -> R) -> R {
    #[cfg(feature = "tokio")]
    {
        tokio::in_host_runtime(f)
    }
    #[cfg(not(feature = "tokio"))]
    {
        f()
    }
}
