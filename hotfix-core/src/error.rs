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

    /// A private copy of a host static the patch would use instead of the host's.
    #[error(
        "patch {patch} contains its own copy of host static `{symbol}`: its code would read and write that copy, not the host's; mark the static `#[hotfix_core::shared]` in the host"
    )]
    PrivateStatic { patch: String, symbol: String },

    /// A host thread-local the patch would see a fresh copy of.
    #[error(
        "patch {patch} uses host thread-local `{symbol}`: a patch has its own thread-local storage and would see a fresh value, not the host's; move the state into a `#[hotfix_core::shared]` static (e.g. a Mutex<HashMap<ThreadId, _>>)"
    )]
    ThreadLocal { patch: String, symbol: String },

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

/// Result of hotfix-core operations.
pub type Result<T, E = Error> = std::result::Result<T, E>;
