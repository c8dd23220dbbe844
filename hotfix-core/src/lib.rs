//! hotfix: replace functions of a running Rust process without restarting it.
//!
//! A host marks functions `#[patchable]`. A patch is a `cdylib` crate that names
//! the functions it replaces by path. The runtime loads a patch, proves it
//! compatible with the running host (same compiler, target and cfgs; same
//! signatures, with the layout of every argument; built against the host's own
//! build and source of every host crate it was compiled against, see
//! [`Error::CrateSourceDiffers`]; no private copies of host state), then swaps every function of the
//! patch in one step, or nothing. Patches stack and revert in any order.
//!
//! # A complete example
//!
//! The host (a library crate the server binary uses, so a patch can name it):
//!
//! ```no_run
//! // my_server/src/lib.rs
//! use hotfix_core::{patchable, shared};
//! use std::collections::HashMap;
//! use std::sync::{LazyLock, Mutex};
//!
//! /// State patches read and write: `#[shared]` makes them reach this instance.
//! #[shared]
//! pub static SCORES: LazyLock<Mutex<HashMap<String, i64>>> = LazyLock::new(Default::default);
//!
//! /// Shipped with a bug: adds twice the points.
//! #[patchable]
//! pub fn add_score(name: &str, n: i64) -> i64 {
//!     let mut scores = SCORES.lock().unwrap();
//!     let total = scores.entry(name.to_owned()).or_insert(0);
//!     *total += 2 * n;
//!     *total
//! }
//!
//! // my_server/src/main.rs: apply a patch when asked (e.g. on SIGHUP).
//! fn on_sighup() {
//!     match hotfix_core::apply("target/debug/libmy_patch.so") {
//!         Ok(p) => tracing::info!("applied {} {}: {:?}", p.name, p.version, p.targets),
//!         Err(e) => tracing::warn!("patch refused, nothing changed: {e}"),
//!     }
//!     // ...and `hotfix_core::revert_newest()` on SIGUSR2.
//! }
//! # fn main() {}
//! ```
//!
//! The patch (`crate-type = ["cdylib"]`, depending on `hotfix-core` and the
//! host's library crate), built with `cargo build -p my-patch`:
//!
//! ```no_run
//! # mod my_server {
//! #     use std::collections::HashMap;
//! #     use std::sync::{LazyLock, Mutex};
//! #     #[hotfix_core::shared]
//! #     pub static SCORES: LazyLock<Mutex<HashMap<String, i64>>> = LazyLock::new(Default::default);
//! #     #[hotfix_core::patchable]
//! #     pub fn add_score(name: &str, n: i64) -> i64 { 2 * n }
//! # }
//! // my_patch/src/lib.rs
//! hotfix_core::patch_library!();
//!
//! #[hotfix_core::patch(my_server::add_score)]
//! fn add_score(name: &str, n: i64) -> i64 {
//!     let mut scores = my_server::SCORES.lock().unwrap();
//!     let total = scores.entry(name.to_owned()).or_insert(0);
//!     *total += n; // the fix, on the host's own table
//!     *total
//! }
//! # fn main() {}
//! ```
//!
//! # Operating from outside the process
//!
//! [`control::serve`] starts a control socket (a Unix socket named by pid, on
//! a thread of its own, for this user and root only) through which the `hotfix`
//! command (crate `hotfix-cli`) shows the status, checks a patch without applying
//! it, applies and reverts, with exit codes a deploy script can act on. Status
//! is answered from a snapshot ([`control::snapshot`]) and never waits for an
//! apply in progress. [`inspect`] reads a patch file without a host.
//!
//! # A patch from a fix written in place
//!
//! Instead of a patch crate, fix the bug in the host's own source and run
//! `hotfix build --base REV --pid PID` (REV: the revision the running host
//! was built from). It refuses every change a patch cannot carry (anything
//! but new bodies of `#[patchable]` functions and new private items they
//! use), one line per item, builds the crate at REV and with the fix exactly
//! as the host was built, compares the compiled code function by function,
//! and writes a *linked patch* ([`linked`]): only the code that changed, with
//! every other reference (the host's functions, statics, thread-locals,
//! `std`, tokio, the allocator, the panic machinery) resolved to the running
//! host's own instance when it is applied. The host proves, before anything
//! of it runs, that the base build's code of every function it replaces or
//! calls is the code that runs. Without `--pid` it compiles the fixed crate
//! as a `cdylib` patch library instead. Only library crates are patched:
//! keep `#[patchable]` code out of `main.rs`. See the README, section 3b.
//!
//! # What `#[patchable]` generates
//!
//! For each function: the original body under a hidden name; a slot (an atomic
//! pointer to the current implementation, loaded with `Acquire` on every call,
//! stored with `Release` on a swap: no lock, no allocation, never blocking on an
//! apply in progress); a NOP-padded entry laid out like libpulp's (14 bytes of
//! NOP, a 2-byte NOP at the entry, then a direct jump to the original), which
//! the entry strategy redirects too; the wrapper under the function's name
//! loads the slot and, while it holds the original, calls the original
//! directly (a plain call's cost), otherwise calls what it holds, so every
//! call and every function pointer reads the slot; and a registration the
//! runtime finds through the linker, without any list: the function's path, a
//! fingerprint of its signature (types as written, size and alignment of every
//! argument and of the result) and one of its body.
//!
//! It works on free functions, on every method of an `impl` block (inherent or
//! trait; put `#[patchable]` on the block, and optionally on some methods to
//! choose them), `unsafe fn`, `extern "C" fn`, functions with lifetimes, and
//! `async fn` (free, methods taking `&self`, `&mut self` or `self`, in trait
//! impls natively or under `#[async_trait]`; `#[patchable(?Send)]` for a future
//! that is not `Send`). For an `async fn` the slot holds a function that
//! creates a boxed future; while it holds the entry (its unpatched value), a
//! call runs the original
//! and keeps its future inline (no allocation). A future already created keeps
//! running the code it was created with. Generic functions, `const fn`,
//! `impl Trait` arguments or results and `-> !` are refused at compile time
//! with the reason; in an `impl` block the refused method alone is left as it
//! is.
//!
//! # What a patch sees
//!
//! A patch is written as if it were compiled into the host:
//! - **state**: host statics marked `#[shared]` are the host's instances (one
//!   extra load per access). A patch whose replacements or hooks can reach
//!   its own copy of any other host static or thread-local (of any crate,
//!   dependencies and `std` included, except what the runtime bridges) is
//!   refused at load;
//! - **host functions**: a call to another `#[patchable]` host function reaches
//!   the host's live version of it, including one a later patch installs;
//! - **panics**: a panic in patch code, or in host code a patch calls, reaches the
//!   host as its own panic (its `catch_unwind` and its panic hook work);
//! - **allocator**: every allocation of the patch uses the host's global allocator;
//! - **tokio** (feature `tokio`): patch code runs with the host thread's
//!   runtime entered into the patch's tokio: timers, sockets and `spawn` work
//!   on the host's runtime. Tasks the patch spawns take task ids from the
//!   patch's own counter, and `std::thread::current()` in patch code has a
//!   `ThreadId` of the patch's own numbering;
//! - **logging**: `tracing` spans and events of a patch go to the dispatcher
//!   the calling host thread uses (its scoped default, else the global one),
//!   inside the host's current span and filtered by the host's filter; `log`
//!   records go to the host's logger under the host's maximum level. Host and
//!   patch must use the same versions of `tracing`, `tracing-core` and `log`
//!   (part of the build fingerprint);
//! - **hooks**: `patch_library!(on_apply = f, on_revert = g)`; `f` may veto;
//! - **the original**: inside a replacement, `original(args)` calls the version
//!   that was live below it.
//!
//! # Safety of swaps
//!
//! Applies and reverts are serialised. A call in flight finishes on the code it
//! started with; the next call through the slot takes the new one. Each slot
//! changes with one atomic store; the stores of one patch happen in one critical
//! section after every check passed, so a thread calling two patched functions
//! during a swap may see the new version of one and the old of the other for the
//! duration of those stores. Patch libraries are never unloaded: reverted
//! libraries stay mapped, since a thread may still be running their code, and a
//! patch applied again reuses its library.
//!
//! # What is proven before a patch is loaded
//!
//! `dlopen` runs a library's constructors, so it comes last: before it, the
//! file is read with a bound ([`Runtime::set_max_patch_size`]), must be a
//! regular file on an ordinary file system owned by this user or root and
//! writable by its owner only, is identified by its SHA-256 ([`Digest`]), and
//! its registry is parsed from the file's bytes (format, build fingerprint,
//! every replacement against the host, foreign symbols; every length, count
//! and pointer bounded), as are the libraries and search paths it makes the
//! loader use. After `dlopen` the loaded library is compared byte for byte
//! with what was proven. Where the runtime trusts keys
//! ([`Runtime::trust_key`], `HOTFIX_TRUSTED_KEYS`), a patch must carry an
//! Ed25519 signature by one of them ([`signing`]), checked before the file is
//! parsed. A patch that passes every check is trusted code: its constructors
//! and IFUNC resolvers run at `dlopen` like any library's.
//!
//! # Hooks
//!
//! `on_apply` runs after every check (foreign functions resolved, planned and
//! checked) and before any write; it may veto. If writing code then fails,
//! `on_revert` runs to undo what `on_apply` did, and the error says so. A
//! revert writes code first (if that fails the patch stays applied and
//! `on_revert` does not run), then runs `on_revert`; a failing `on_revert` is
//! reported ([`Error::RevertHookFailed`]) with the patch reverted.
//!
//! # Foreign functions: what patching them asks of the process
//!
//! Foreign code is written while every other thread is held in a handler of
//! the signal `SIGRTMAX-3`, outside the bytes being written:
//! - the application must not install its own handler for that signal, and
//!   no thread may keep it blocked (a `sigwait` thread must leave it out of its
//!   mask): such threads are named and the apply refused at once;
//! - `poll`, `epoll_wait`, `select`, `nanosleep` and a few other calls return
//!   `EINTR` early in a held thread, as for any signal (the others restart:
//!   the handler uses `SA_RESTART`); Rust's `std` and tokio retry them;
//! - a `static` or hidden C function whose code leaves caller-saved registers
//!   untouched is refused: its callers, compiled with GCC's `-fipa-ra` (on at
//!   `-O2`) or LTO, may keep values in those registers across the call, and a
//!   replacement may clobber them. The decision is made from the decoded
//!   function, not from a flag. Global functions with default visibility are
//!   taken as interposable (what `-fPIC` code, the `cc` crate's default,
//!   assumes); a C executable compiled with `-fPIE -O2` may apply the same
//!   optimisation to them, and that is not detected.

pub mod abi;
mod async_call;
mod bridge;
mod code;
pub mod control;
mod digest;
mod error;
mod fingerprint;
mod foreign_patch;
mod host;
pub mod linked;
mod loader;
mod private;
mod runtime;
pub mod signing;
mod status;

#[doc(hidden)]
pub mod arch;
#[doc(hidden)]
pub mod code_error;
#[doc(hidden)]
pub mod foreign;
#[doc(hidden)]
pub mod os;

#[doc(hidden)]
pub mod __private {
    pub use crate::private::*;
}

pub use abi::Shared;
pub use bridge::panic::message_of as panic_message;
pub use code_error::CodeError;
pub use digest::Digest;
pub use error::{BuildDifference, Error, LeftChanged, Result};
pub use hotfix_macros::{patch, patch_foreign, patch_foreign_c, patch_library, patchable, shared};
pub use loader::{
    BuildInfo, DEFAULT_MAX_PATCH_SIZE, LoadedPatch, PatchId, PatchInfo, TargetInfo, inspect,
};
pub use runtime::{ApplyOptions, Runtime, Strategy};
pub use status::{FunctionStatus, PatchStatus, Status};

/// Loads, checks and applies a patch file ([`Runtime::apply`] on the global runtime).
pub fn apply(path: impl AsRef<std::path::Path>) -> Result<PatchStatus> {
    Runtime::global().apply(path)
}

/// Reverts the newest applied patch ([`Runtime::revert_newest`]).
pub fn revert_newest() -> Result<PatchStatus> {
    Runtime::global().revert_newest()
}

/// What is applied ([`Runtime::status`]).
pub fn status() -> Status {
    Runtime::global().status()
}
