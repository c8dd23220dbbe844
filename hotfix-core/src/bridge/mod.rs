//! What a patch borrows from its host once bound, so that patch code behaves
//! as if compiled into the host: the global allocator ([`alloc`]), panics
//! ([`panic`]), the `tracing` dispatcher ([`tracing`]) and the `log` logger
//! ([`log`]). Each has a host side (what [`crate::abi::HostApi`] lends) and a
//! patch side (what the patch's `bind` installs in its own copies).

pub(crate) mod alloc;
pub(crate) mod log;
pub(crate) mod panic;
pub(crate) mod tracing;
