//! The data shared between a host and its patches.
//!
//! A host registers each `#[patchable]` function as a [`FnDesc`] and each
//! `#[shared]` static as a [`SharedDesc`], collected by the linker into
//! distributed slices (no hand-written list). A patch library exports one
//! [`RegistryV1`] under the symbol [`REGISTRY_SYMBOL`].
//!
//! The header of the registry ([`RegistryV1::magic`] up to [`RegistryV1::build`])
//! uses only `#[repr(C)]` fields of fixed layout, so it can be read before the
//! runtime knows the patch was built by the same compiler. Everything after it
//! is read only once the build fingerprints are equal.

use std::marker::PhantomData;
use std::mem::{align_of, size_of};
use std::sync::atomic::AtomicPtr;

/// Version of the registry format this runtime reads.
pub const REGISTRY_FORMAT: u32 = 1;
/// Name of the registry symbol a patch exports for [`REGISTRY_FORMAT`].
pub const REGISTRY_SYMBOL: &str = "HOTFIX_REGISTRY_V1";
/// Prefix shared by the registry symbols of every format version.
pub const REGISTRY_SYMBOL_PREFIX: &str = "HOTFIX_REGISTRY_V";
/// First bytes of every registry, whatever its version.
pub const REGISTRY_MAGIC: [u8; 8] = *b"HOTFIXRG";

/// A string with a layout that does not depend on the compiler.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct RawStr {
    ptr: *const u8,
    len: usize,
}

// SAFETY: a RawStr only ever points at immutable, 'static string data.
unsafe impl Sync for RawStr {}
// SAFETY: as above; the pointed-to bytes are never written.
unsafe impl Send for RawStr {}

impl RawStr {
    /// Wraps a static string.
    pub const fn new(s: &'static str) -> Self {
        Self {
            ptr: s.as_ptr(),
            len: s.len(),
        }
    }

    /// Reads the string back.
    ///
    /// # Safety
    /// The string must have been built by [`RawStr::new`] in a library that is
    /// still loaded. Invalid UTF-8 (a corrupt registry) is replaced, not trusted.
    pub unsafe fn to_string_lossy(&self) -> String {
        if self.ptr.is_null() {
            return String::new();
        }
        // SAFETY: per the contract, ptr/len describe a live static byte string.
        let bytes = unsafe { std::slice::from_raw_parts(self.ptr, self.len) };
        String::from_utf8_lossy(bytes).into_owned()
    }
}

/// What changes type layout or ABI between two builds. Host and patch must agree
/// on every field before any function of the patch is called.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct BuildFingerprint {
    /// `rustc -vV` of the compiler (release, commit hash, LLVM version).
    pub rustc: RawStr,
    /// Target triple.
    pub target: RawStr,
    /// `unwind` or `abort`.
    pub panic: RawStr,
    /// Whether `debug_assertions` were on.
    pub debug_assertions: u8,
    /// Enabled target features (they change the ABI of SIMD types).
    pub target_features: RawStr,
    /// Version of the hotfix ABI (the layout of everything in this module).
    pub hotfix_abi: RawStr,
    /// Size and alignment of the types the bridges pass, hashed: they change
    /// with those crates' features (tokio's `parking_lot`, say), which their
    /// versions do not tell.
    pub bridged_layouts: u64,
    /// Versions of the crates whose values the bridges pass between host and
    /// patch (`tracing`, `tracing-core`, `log`, and `tokio` or `absent`), as
    /// hotfix-core was built.
    pub bridged_crates: RawStr,
}

impl BuildFingerprint {
    /// The fingerprint of the build this code is compiled into.
    pub const CURRENT: BuildFingerprint = BuildFingerprint {
        rustc: RawStr::new(env!("HOTFIX_RUSTC_VERSION")),
        target: RawStr::new(env!("HOTFIX_TARGET")),
        panic: RawStr::new(if cfg!(panic = "unwind") {
            "unwind"
        } else {
            "abort"
        }),
        debug_assertions: cfg!(debug_assertions) as u8,
        target_features: RawStr::new(env!("HOTFIX_TARGET_FEATURES")),
        hotfix_abi: RawStr::new(concat!(env!("CARGO_PKG_VERSION"), "/abi-2")),
        bridged_layouts: bridged_layouts(),
        bridged_crates: RawStr::new(hotfix_macros::__dependency_versions!(
            tracing,
            tracing_core,
            log,
            tokio
        )),
    };
}

/// What a build saw of one host crate: the host's own, or the one a patch was
/// compiled against. The runtime refuses a patch whose view of a crate differs
/// from the host's.
#[repr(C)]
pub struct CrateIdentity {
    /// The crate's name (`fixture_host`).
    pub name: &'static str,
    /// How it was built, one `key=value` line each: version, edition, enabled
    /// features, codegen options, every dependency's version.
    pub build: &'static str,
    /// Digest of `items` (32 hex digits), or `unavailable: <why>`.
    pub source: &'static str,
    /// One `name<TAB>digest` line per item of the crate's source (doc comments
    /// and the bodies of `#[patchable]` functions left out), sorted by name.
    pub items: &'static str,
}

impl CrateIdentity {
    /// Stands in where no crate is known (a target that is no `#[patchable]`
    /// function; its build fails anyway).
    #[doc(hidden)]
    pub const UNKNOWN: CrateIdentity = CrateIdentity {
        name: "",
        build: "",
        source: "unavailable: unknown crate",
        items: "",
    };
}

/// See [`BuildFingerprint::bridged_layouts`].
const fn bridged_layouts() -> u64 {
    let mut h = crate::fingerprint::hash_str("bridged layouts");
    macro_rules! add {
        ($($t:ty),* $(,)?) => {
            $(h = crate::fingerprint::add_layout(h, size_of::<$t>(), align_of::<$t>());)*
        };
    }
    add!(
        tracing_core::Dispatch,
        tracing_core::Metadata<'static>,
        tracing_core::Event<'static>,
        tracing_core::span::Attributes<'static>,
        tracing_core::span::Current,
        log::Record<'static>,
        log::Metadata<'static>,
    );
    #[cfg(feature = "tokio")]
    add!(
        tokio::runtime::Handle,
        tokio::runtime::Runtime,
        tokio::sync::Notify,
        tokio::sync::Mutex<()>,
        tokio::sync::Semaphore,
        tokio::net::TcpStream,
        tokio::time::Sleep,
        tokio::task::JoinHandle<()>,
    );
    h
}

/// Metadata of a `#[patchable]` function, as a constant the patch can name by path.
///
/// The host's macro emits it beside the function (`__HOTFIX_META_<name>`); a patch
/// that names the function reads its own copy, so the fingerprints it carries are
/// those of the host source the patch was built against.
#[repr(C)]
pub struct FnMeta {
    /// Full path: `crate::module::function`, `crate::module::Type::method` or
    /// `crate::module::<Type as Trait>::method`.
    pub path: &'static str,
    /// The signature as written, for messages.
    pub signature: &'static str,
    /// Fingerprint of the signature: types as written plus size and alignment of
    /// every argument and of the return type.
    pub sig_fp: u64,
    /// Fingerprint of the original body (tokens of signature and body).
    pub body_fp: u64,
    /// The crate the function belongs to, as this build saw it.
    pub krate: &'static CrateIdentity,
}

impl FnMeta {
    /// What a patch finds when the target it names is no `#[patchable]`
    /// function (its build then fails with that message).
    #[doc(hidden)]
    pub const MISSING: FnMeta = FnMeta {
        path: "",
        signature: "",
        sig_fp: 0,
        body_fp: 0,
        krate: &CrateIdentity::UNKNOWN,
    };
}

/// What a patch finds in place of the metadata of a target that is no
/// `#[patchable]` function (its build then fails, naming the target).
#[doc(hidden)]
pub struct NotPatchable;

/// A `#[patchable]` function, registered by the host without any list.
#[repr(C)]
pub struct FnDesc {
    /// What calls run (Acquire on the call path, Release on swap):
    /// [`FnDesc::unpatched`] while no replacement is live, the top-most
    /// replacement otherwise.
    pub slot: AtomicPtr<()>,
    /// What the slot holds while nothing replaces the function: the original,
    /// or for an `async fn` the entry. The wrapper compares the slot with it
    /// and, equal, calls the original directly (a direct call costs what a
    /// plain call costs; an indirect one a cycle more), or for an `async fn`
    /// runs the original's future inline.
    pub unpatched: *const (),
    /// Path and fingerprints.
    pub meta: &'static FnMeta,
    /// The original implementation.
    pub original: *const (),
    /// The NOP-padded entry (the 2-byte NOP), which jumps to the original; the
    /// entry strategy redirects it, for code that reaches it directly.
    pub entry: *const (),
    /// Host-side thunk: calls `*src` inside the host's `catch_unwind`.
    pub catching: *const (),
    /// Patch-side thunk: when a patch's private copy of this function is bound to
    /// the host, its slot points here, and calls go to the host's live version.
    pub cross: *const (),
    /// Where [`FnDesc::cross`] sends calls: the host's `catching` thunk.
    pub cross_catching: AtomicPtr<()>,
    /// Where [`FnDesc::cross`] sends calls: the host's slot.
    pub cross_src: AtomicPtr<AtomicPtr<()>>,
}

// SAFETY: the raw pointers are addresses of code and statics, never written
// through except via the atomics, which are Sync themselves.
unsafe impl Sync for FnDesc {}

/// A `#[shared]` static: the cell every access loads, and its storage.
#[repr(C)]
pub struct SharedDesc {
    /// Full path of the static.
    pub path: &'static str,
    /// The type as written, for messages.
    pub type_name: &'static str,
    /// Fingerprint of the type: text, size and alignment.
    pub type_fp: u64,
    /// The cell (`Shared<T>::ptr`) that every access loads.
    pub cell: *const AtomicPtr<()>,
    /// The storage this build owns.
    pub storage: *const (),
    /// The crate the static belongs to, as this build saw it.
    pub krate: &'static CrateIdentity,
}

// SAFETY: addresses of statics; the cell is atomic.
unsafe impl Sync for SharedDesc {}

/// A replacement exported by a patch for one `#[patchable]` function.
#[repr(C)]
pub struct PatchEntry {
    /// The target's metadata as the patch saw it.
    pub meta: &'static FnMeta,
    /// The replacement (same ABI as the target's slot).
    pub replacement: *const (),
    /// The implementation that was live below this one: what `original` calls.
    pub prev: AtomicPtr<()>,
    /// The host's catching thunk of the target, for calls to `original`.
    pub host_catching: AtomicPtr<()>,
    /// Where the replacement was written, for messages: `file:line`.
    pub location: &'static str,
}

// SAFETY: as for FnDesc.
unsafe impl Sync for PatchEntry {}

/// A replacement exported by a patch for a foreign (C/C++) function.
#[repr(C)]
pub struct ForeignEntry {
    /// The symbol: mangled (`_ZN4Role12getClassNameB5cxx11Ev`) or demangled
    /// (`Role::getClassName[abi:cxx11]()`).
    pub symbol: &'static str,
    /// The replacement's address.
    pub replacement: *const (),
    /// Where the replacement was declared, for messages.
    pub location: &'static str,
}

// SAFETY: as above.
unsafe impl Sync for ForeignEntry {}

/// A panic crossing between host and patch, carried as its message.
#[repr(C)]
pub struct PanicMsg {
    /// The payload's message (`&str` and `String` payloads; others are named).
    pub message: String,
    /// Whether the host's panic hook already ran for this panic.
    pub hook_ran: bool,
}

/// What the host lends a patch's `tracing`: the operations of the dispatcher
/// the calling host thread uses (its scoped default, else the global one).
/// Host and patch were built with the same `tracing-core` version (the build
/// fingerprint's `bridged_crates`), so its values pass as they are.
#[repr(C)]
pub struct TracingHost {
    /// Tells the host's dispatcher about a patch call site.
    pub register_callsite: fn(&'static tracing_core::Metadata<'static>),
    /// Whether the host's dispatcher wants this span or event.
    pub enabled: fn(&tracing_core::Metadata<'_>) -> bool,
    /// A new span.
    pub new_span: fn(&tracing_core::span::Attributes<'_>) -> tracing_core::span::Id,
    /// Values recorded on a span.
    pub record: fn(&tracing_core::span::Id, &tracing_core::span::Record<'_>),
    /// A span follows from another.
    pub record_follows_from: fn(&tracing_core::span::Id, &tracing_core::span::Id),
    /// An event.
    pub event: fn(&tracing_core::Event<'_>),
    /// A span is entered.
    pub enter: fn(&tracing_core::span::Id),
    /// A span is exited.
    pub exit: fn(&tracing_core::span::Id),
    /// A span handle is cloned.
    pub clone_span: fn(&tracing_core::span::Id) -> tracing_core::span::Id,
    /// A span handle is dropped; `true` when the span closed.
    pub try_close: fn(tracing_core::span::Id) -> bool,
    /// The host thread's current span.
    pub current_span: fn() -> tracing_core::span::Current,
}

/// What the host lends a patch's `log`: its logger (same `log` version).
#[repr(C)]
pub struct LogHost {
    /// Whether the host's logger wants a record of this level and target.
    pub enabled: fn(&log::Metadata<'_>) -> bool,
    /// Logs a record with the host's logger.
    pub log: fn(&log::Record<'_>),
    /// Flushes the host's logger.
    pub flush: fn(),
}

/// What the host lends a patch: its allocator, its panic machinery, its
/// tracing dispatcher and its logger.
#[repr(C)]
pub struct HostApi {
    /// Allocates with the host's global allocator.
    pub alloc: unsafe fn(std::alloc::Layout) -> *mut u8,
    /// Allocates zeroed memory with the host's global allocator.
    pub alloc_zeroed: unsafe fn(std::alloc::Layout) -> *mut u8,
    /// Frees with the host's global allocator.
    pub dealloc: unsafe fn(*mut u8, std::alloc::Layout),
    /// Reallocates with the host's global allocator.
    pub realloc: unsafe fn(*mut u8, std::alloc::Layout, usize) -> *mut u8,
    /// Raises a panic in the host's `std`.
    pub raise: fn(PanicMsg) -> !,
    /// The host's tracing dispatcher.
    pub tracing: &'static TracingHost,
    /// The host's logger.
    pub log: &'static LogHost,
    /// The tokio runtime the calling host thread is in, if any.
    #[cfg(feature = "tokio")]
    pub tokio_handle: fn() -> Option<tokio::runtime::Handle>,
}

/// What binding a patch to its host found.
#[repr(C)]
pub struct BindReport {
    /// Allocations the patch made before it was bound (with the system allocator).
    pub unbound_allocations: usize,
}

/// Result of a patch's lifecycle hook: `Err` vetoes an apply.
pub type HookResult = Result<(), String>;

/// The registry a patch exports under [`REGISTRY_SYMBOL`].
#[repr(C)]
pub struct RegistryV1 {
    /// [`REGISTRY_MAGIC`].
    pub magic: [u8; 8],
    /// [`REGISTRY_FORMAT`] of the hotfix that built the patch.
    pub format_version: u32,
    /// `size_of::<RegistryV1>()` in the patch's build.
    pub size: u32,
    /// The patch's build.
    pub build: BuildFingerprint,
    /// Patch name (by default the crate's name).
    pub name: RawStr,
    /// Patch version (by default the crate's version).
    pub version: RawStr,
    // ---- read only after the build fingerprints are equal ----
    /// The replacements of `#[patchable]` functions.
    pub entries: fn() -> &'static [PatchEntry],
    /// The replacements of foreign functions.
    pub foreign: fn() -> &'static [ForeignEntry],
    /// The patch's private copies of host `#[patchable]` functions.
    pub host_fns: fn() -> &'static [FnDesc],
    /// The patch's private copies of host `#[shared]` statics.
    pub shared: fn() -> &'static [SharedDesc],
    /// Lends the host's allocator and panic machinery to the patch.
    pub bind: fn(&'static HostApi) -> BindReport,
    /// Runs the patch's apply hook (panics already turned into `Err`).
    pub on_apply: Option<fn() -> HookResult>,
    /// Runs the patch's revert hook (panics already turned into `Err`).
    pub on_revert: Option<fn() -> HookResult>,
    /// The source items of every local crate the patch was compiled against,
    /// as it saw them (`build` left empty: the functions' identities carry it).
    pub crates: &'static [CrateIdentity],
}

// SAFETY: the registry is immutable static data and code addresses.
unsafe impl Sync for RegistryV1 {}

/// Typed view of a `#[shared]` static: every access costs one load of `ptr`.
#[repr(C)]
pub struct Shared<T: 'static> {
    ptr: AtomicPtr<()>,
    desc: &'static SharedDesc,
    _t: PhantomData<&'static T>,
}

impl<T: 'static> Shared<T> {
    #[doc(hidden)]
    pub const fn __new(storage: &'static T, desc: &'static SharedDesc) -> Self {
        Self {
            ptr: AtomicPtr::new(storage as *const T as *mut ()),
            desc,
            _t: PhantomData,
        }
    }

    /// The path under which the static is shared.
    pub fn path(&self) -> &'static str {
        self.desc.path
    }
}

impl<T: Sync + 'static> std::ops::Deref for Shared<T> {
    type Target = T;

    #[inline(always)]
    fn deref(&self) -> &T {
        let p = self.ptr.load(std::sync::atomic::Ordering::Relaxed);
        // SAFETY: ptr always points at a live `T`: the storage of this build,
        // or, in a bound patch, the host's storage of the same type (the type
        // fingerprints were compared before the runtime wrote the cell, and the
        // write happens-before any patch code runs: the slot swap is Release and
        // every call path loads the slot with Acquire).
        unsafe { &*(p as *const T) }
    }
}

// SAFETY: Shared<T> hands out only &T with T: Sync.
unsafe impl<T: Sync + 'static> Sync for Shared<T> {}
