//! The one error type of hotfix-core: what was refused, and why.

use std::path::PathBuf;

/// Everything the runtime refuses. When an apply returns an error, no slot,
/// entry or foreign function has changed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The patch file does not exist.
    #[error("patch file {path} does not exist")]
    NotFound { path: PathBuf },

    /// The path is not a regular file.
    #[error("patch path {path} is not a regular file (it is a {kind})")]
    NotAFile { path: PathBuf, kind: &'static str },

    /// The file or its directory could be changed by someone else.
    #[error("refusing patch {path}: {reason}")]
    Insecure { path: PathBuf, reason: String },

    /// The file is larger than the runtime reads.
    #[error(
        "refusing patch {path}: it is {size} bytes, over the limit of {limit} bytes; a patch is far smaller (raise the limit with Runtime::set_max_patch_size if this one is real)"
    )]
    TooLarge {
        path: PathBuf,
        size: u64,
        limit: u64,
    },

    /// The file lives on a file system whose files are not plain stored bytes.
    #[error(
        "refusing patch {path}: it is on {fs}, not an ordinary file system; copy the patch to a normal directory"
    )]
    PseudoFileSystem { path: PathBuf, fs: &'static str },

    /// Reading gave other than the size the kernel reported.
    #[error(
        "refusing patch {path}: the kernel reports {reported} bytes but reading gave {read}: not a plain file, or it changed while read; copy the patch to a normal directory"
    )]
    UntruthfulSize {
        path: PathBuf,
        reported: u64,
        read: u64,
    },

    /// A library the patch needs, or a directory it makes the loader search,
    /// could be changed by someone else, or cannot be found.
    #[error(
        "refusing patch {path}: it needs library {library}: {reason}; fix the library's location or permissions, or rebuild the patch without it"
    )]
    UnsafeDependency {
        path: PathBuf,
        library: String,
        reason: String,
    },

    /// The same bytes were loaded and refused before.
    #[error(
        "refusing patch {path} (sha256 {digest}): these bytes were loaded and refused before ({reason}); they are not loaded again. Build a fixed patch"
    )]
    RefusedBefore {
        path: PathBuf,
        digest: crate::Digest,
        reason: String,
    },

    /// The host trusts signing keys and the patch's signature is missing,
    /// broken, or from another key.
    #[error("refusing patch {path}: {reason}")]
    SignatureRefused { path: PathBuf, reason: String },

    /// A key or signature file could not be used.
    #[error("key file {path}: {reason}")]
    KeyFile { path: PathBuf, reason: String },

    /// Signing could not be done.
    #[error("signing failed: {reason}")]
    Signing { reason: String },

    /// Reading or copying the file failed.
    #[error("cannot read patch {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// The file is not a shared object this machine can load.
    #[error("patch {path} is not a loadable shared object: {reason}")]
    NotSharedObject { path: PathBuf, reason: String },

    /// No registry symbol at all.
    #[error(
        "patch {path} exports no hotfix registry (no `HOTFIX_REGISTRY_V*` symbol): was it built with `hotfix_core::patch_library!()`?"
    )]
    NoRegistry { path: PathBuf },

    /// A registry of another format version.
    #[error(
        "patch {path} has registry format {found} ({relation} than this runtime's format {supported}); rebuild the patch against this host's hotfix version"
    )]
    UnsupportedFormat {
        path: PathBuf,
        found: u32,
        supported: u32,
        relation: &'static str,
    },

    /// The registry symbol does not hold a valid registry.
    #[error("patch {path} has a corrupt registry: {reason}")]
    CorruptRegistry { path: PathBuf, reason: String },

    /// Host and patch were built differently.
    #[error(
        "patch {path} was built with a different {what}: patch has `{patch}`, host has `{host}`"
    )]
    BuildMismatch {
        path: PathBuf,
        what: &'static str,
        patch: String,
        host: String,
    },

    /// The patch was compiled against another build of a host crate.
    #[error(
        "patch {patch} was built against another build of {krate}: its {} is `{}` in the patch's build and `{}` in the running host's; rebuild the patch with the host's features, profile and dependency versions (the host's Cargo.lock and cargo invocation)",
        diff.key, diff.patch, diff.host
    )]
    CrateBuildDiffers {
        patch: String,
        krate: String,
        diff: Box<BuildDifference>,
    },

    /// The patch was compiled against other source of a host crate.
    #[error(
        "patch {patch} was built against other source of {krate}: {what}; rebuild the patch against the source the host was built from"
    )]
    CrateSourceDiffers {
        patch: String,
        krate: String,
        what: String,
    },

    /// A crate's identity could not be computed when it was compiled.
    #[error(
        "patch {patch} cannot be proven built against the host's {krate}: {side} identity of it is unknown ({why}); build host and patch with cargo from the crate's source"
    )]
    CrateIdentityUnknown {
        patch: String,
        krate: String,
        side: &'static str,
        why: String,
    },

    /// `dlopen` failed.
    #[error("cannot load patch {path}: {reason}")]
    LoadFailed { path: PathBuf, reason: String },

    /// The patch replaces nothing.
    #[error("patch {patch} replaces no function")]
    EmptyPatch { patch: String },

    /// A target the host does not have.
    #[error(
        "patch {patch} replaces `{target}`, which this host does not have as a #[patchable] function"
    )]
    UnknownTarget { patch: String, target: String },

    /// A signature that differs from the target's.
    #[error(
        "patch {patch} replaces `{target}` with signature `{patch_sig}`, but the host's is `{host_sig}` (types or their layout differ)"
    )]
    SignatureMismatch {
        patch: String,
        target: String,
        patch_sig: String,
        host_sig: String,
    },

    /// The patch was built against other source of the target.
    #[error(
        "patch {patch} was built against other source of `{target}` (body fingerprint {patch_fp:016x}, host has {host_fp:016x}); rebuild it against the running host's source"
    )]
    BodyMismatch {
        patch: String,
        target: String,
        patch_fp: u64,
        host_fp: u64,
    },

    /// Two replacements for one target in one patch.
    #[error("patch {patch} replaces `{target}` twice ({first} and {second})")]
    DuplicateTarget {
        patch: String,
        target: String,
        first: String,
        second: String,
    },

    /// The patch is already in the stack.
    #[error(
        "patch {patch} {version} is already applied ({why}); revert it first, or bump its version"
    )]
    AlreadyApplied {
        patch: String,
        version: String,
        why: &'static str,
    },

    /// Revert with an empty stack.
    #[error("nothing to revert: no patch is applied")]
    NothingApplied,

    /// Revert of a patch that is not in the stack.
    #[error("patch {patch} is not applied")]
    NotApplied { patch: String },

    /// The patch calls a host function whose signature differs.
    #[error(
        "patch {patch} calls host function `{function}` with signature `{patch_sig}`, but the host's is `{host_sig}`"
    )]
    HostFunctionMismatch {
        patch: String,
        function: String,
        patch_sig: String,
        host_sig: String,
    },

    /// A `#[shared]` static the host lacks or has with another type.
    #[error("patch {patch} uses shared static `{path}` of type `{patch_type}`, but {host}")]
    SharedMismatch {
        patch: String,
        path: String,
        patch_type: String,
        host: String,
    },

    /// The patch's code reaches its own copy of a host static: its writes
    /// would not reach the host's.
    #[error(
        "patch {patch} keeps a private copy of {symbol}, reached from {reached_from}: writes would not reach the host's; {advice}"
    )]
    PrivateStatic {
        patch: String,
        symbol: String,
        /// Which replacement or hook reaches it, and through which functions.
        reached_from: String,
        /// What to do, which depends on whose static it is.
        advice: String,
    },

    /// The patch's code reaches its own copy of a host thread-local: it would
    /// see a fresh value, not the host's.
    #[error(
        "patch {patch} keeps a private copy of thread-local {symbol}, reached from {reached_from}: a patch has its own thread-local storage and would see a fresh value, not the host's; {advice}"
    )]
    ThreadLocal {
        patch: String,
        symbol: String,
        /// Which replacement or hook reaches it, and through which functions.
        reached_from: String,
        /// What to do, which depends on whose thread-local it is.
        advice: String,
    },

    /// The patch's code reaches a static that may be a copy of host state,
    /// and the host's executable cannot say.
    #[error(
        "patch {patch} reaches static {symbol} from {reached_from}, and hotfix cannot tell whether it is a copy of host state: {reason}; run a host built with its symbol table (no `strip`), or don't touch it from the patch"
    )]
    UndecidedStatic {
        patch: String,
        symbol: String,
        reached_from: String,
        reason: String,
    },

    /// What the patch's code reaches could not be decided from its file.
    #[error(
        "patch {patch}: hotfix cannot prove which statics its code reaches: {reason}; the patch is refused rather than loaded unproven"
    )]
    Unproven { patch: String, reason: String },

    /// A linked patch file is damaged or not one `hotfix build` makes.
    #[error(
        "refusing linked patch {path}: {reason}; it is damaged or was not made by `hotfix build`: rebuild it"
    )]
    LinkedInvalid { path: PathBuf, reason: String },

    /// A linked patch was built by another compiler or for another target.
    #[error(
        "patch {patch} was built by another {what}: `{patch_value}` in the patch, `{host_value}` in the running host; build it with the host's toolchain (`hotfix build --pid PID`)"
    )]
    LinkedBuiltElsewhere {
        patch: String,
        what: &'static str,
        patch_value: String,
        host_value: String,
    },

    /// The base build a linked patch carries is not the code the host runs.
    #[error(
        "patch {patch} was not built from the code this host runs: function {function} ({symbol}): {reason}; build it with `hotfix build --base REV --pid PID`, REV being the revision the host was built from"
    )]
    LinkedUnproven {
        patch: String,
        function: String,
        symbol: String,
        reason: String,
    },

    /// A symbol of a linked patch cannot be linked into the host.
    #[error(
        "patch {patch} cannot be linked into this host: symbol {function} ({symbol}): {reason}"
    )]
    LinkedUnresolved {
        patch: String,
        function: String,
        symbol: String,
        reason: String,
    },

    /// A replacement of a linked patch does not match its target.
    #[error("patch {patch} cannot replace {target}: {reason}")]
    LinkedTarget {
        patch: String,
        target: String,
        reason: String,
    },

    /// The patch has no symbol table to check.
    #[error(
        "patch {path} has no symbol table (stripped?): hotfix cannot prove it holds no private copies of host statics; build it without `strip`"
    )]
    NoSymbolTable { path: PathBuf },

    /// The patch allocated before it was bound to the host's allocator.
    #[error(
        "patch {patch} allocated {count} time(s) before it was bound to the host's allocator (in a constructor?); such memory cannot be freed by the host"
    )]
    AllocatedBeforeBind { patch: String, count: usize },

    /// The apply hook refused.
    #[error("patch {patch} vetoed its own apply: {reason}")]
    Vetoed { patch: String, reason: String },

    /// A foreign function could not be patched.
    #[error("patch {patch}: foreign function `{symbol}`: {source}")]
    Foreign {
        patch: String,
        symbol: String,
        #[source]
        source: Box<crate::code_error::CodeError>,
    },

    /// Writing the patch's code failed after its `on_apply` hook had run; the
    /// hook's effects were undone by `on_revert` where the patch has one.
    #[error("{source}; patch {patch}'s on_apply hook had run: {hook}")]
    AfterApplyHook {
        patch: String,
        #[source]
        source: Box<Error>,
        /// What became of the hook's effects.
        hook: String,
    },

    /// The patch was reverted (none of its code runs any more), but its
    /// `on_revert` hook failed.
    #[error(
        "patch {patch} IS reverted (none of its code runs any more), but its on_revert hook failed: {reason}; the state the hook should have restored is the patch's own"
    )]
    RevertHookFailed { patch: String, reason: String },

    /// Writing code failed and putting back what was written failed too.
    #[error(
        "{source}; putting back what patch {patch} had already written ALSO failed ({}): {} — the host is not as before; revert or restart it", left.undo, left.state
    )]
    CodeLeftChanged {
        patch: String,
        #[source]
        source: Box<Error>,
        left: Box<LeftChanged>,
    },

    /// An entry (NOP pad) could not be patched.
    #[error("patch {patch}: entry of `{target}`: {source}")]
    Entry {
        patch: String,
        target: String,
        #[source]
        source: Box<crate::code_error::CodeError>,
    },

    /// The control socket's directory is unsafe to use.
    #[error(
        "refusing control directory {path}: {reason}; remove it (or set HOTFIX_CONTROL_DIR to a directory only this user may use)"
    )]
    ControlDir { path: PathBuf, reason: String },

    /// The control socket could not be set up.
    #[error("cannot {action} control socket {path}: {source}")]
    ControlIo {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// The other end of a control socket is not the process asked for, or does
    /// not speak the protocol.
    #[error("control socket {path}: {reason}")]
    ControlPeer { path: PathBuf, reason: String },
}

/// Writing code failed part-way, and putting back what was already written
/// failed too: the host is NOT as before.
#[derive(Debug)]
pub struct LeftChanged {
    /// Why putting back failed.
    pub undo: crate::code_error::CodeError,
    /// What is left changed.
    pub state: String,
}

/// Result of hotfix-core operations.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// One setting of a crate's build on which a patch and the host differ.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildDifference {
    /// The setting: `features`, `codegen`, `version`, `dependency NAME`...
    pub key: String,
    /// Its value in the patch's build (`(absent)` when it has none).
    pub patch: String,
    /// Its value in the running host's build.
    pub host: String,
}
