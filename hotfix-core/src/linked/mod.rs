//! Linked patches: only the code that changed, linked into the running host.
//!
//! A linked patch (made by `hotfix build --pid`) is an ELF relocatable
//! object holding the functions whose code changed between the base build
//! and the fixed build, and what they need that the host lacks; every other
//! reference (functions, statics, thread-locals, std, tokio, the allocator,
//! the panic machinery) resolves to the running host's own instance, by
//! symbol. There is no second copy of anything, so nothing needs a bridge.
//!
//! The walk from the file to the bound patch goes forward only:
//! 1. read: the file, bounded and owner-checked, and its signature where keys
//!    are trusted (done by the runtime before this module is entered);
//! 2. parse (`parse`): the object and its registry ([`format`](mod@format)), every
//!    length, index and offset checked, into owned data;
//! 3. prove ([`prove`]): the base build's bytes of every replaced and
//!    referenced function equal the running host's (relocations masked);
//! 4. resolve (`resolve`): every symbol to the patch, the host or a loaded
//!    library, or refused by name;
//! 5. link (`link`): mapped within reach of the host's code, relocated,
//!    protected; nothing of it has run;
//! 6. bind (`bind`): each replacement matched to its `#[patchable]` slot and
//!    the unwind table registered; the runtime then swaps the slots.

mod bind;
pub mod format;
pub mod host_symbols;
mod link;
mod parse;
pub mod prove;
mod resolve;
mod unwind;

pub(crate) use bind::load;
pub use parse::is_linked_patch;
pub use resolve::{is_rust_symbol, library_symbol};

/// Reads the executable's symbol table on a thread of its own (once), so
/// that the first linked patch does not wait for it. `control::serve` calls
/// it.
pub fn warm_up() {
    static STARTED: std::sync::Once = std::sync::Once::new();
    STARTED.call_once(|| {
        let spawned = std::thread::Builder::new()
            .name("hotfix-symbols".into())
            .spawn(|| {
                if let Err(e) = host_symbols::HostSymbols::get() {
                    tracing::warn!(error = %e, "linked patches cannot be applied");
                }
            });
        if let Err(e) = spawned {
            tracing::debug!(error = %e, "symbol table not read ahead");
        }
    });
}

/// Runs every check and the link of a linked patch's bytes in this process,
/// as an apply would, then unmaps it: nothing of it ran or stays. The
/// runtime's state is not consulted (a patch applied already passes).
pub fn check_bytes(bytes: &[u8]) -> crate::Result<()> {
    bind::prepare(std::path::Path::new("(bytes)"), bytes).map(drop)
}

/// Reads a linked patch file's bytes as the loader does (every bound
/// checked) and returns its registry; what is wrong otherwise.
pub fn check_file(bytes: &[u8]) -> Result<format::Registry, String> {
    parse::parse(bytes).map(|p| p.registry)
}
