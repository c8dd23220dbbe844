//! Loading a patch: every check, in order, before anything of it runs.
//!
//! Decided from the file's bytes, before `dlopen`:
//! 1. the file: regular, on an ordinary file system, owned by this user or
//!    root, writable by its owner only (and its directory), at most the size
//!    limit, read with that bound; its SHA-256 is its identity
//!    ([`file_check`]);
//! 2. its ELF: complete, x86-64, a registry of our format;
//! 3. the registry, parsed from the file ([`static_registry`]): magic, format,
//!    size, build fingerprint (compiler, target, panic strategy,
//!    `debug_assertions`, target features, hotfix ABI, the versions, sources
//!    and layouts of the crates the bridges pass values of) first; then name,
//!    version, every list, every function pointer (into the patch's code), every
//!    string (bounded, UTF-8), all through the file's relocations;
//! 4. every replacement against the host (target exists, signature and body
//!    fingerprints, no duplicates), the patch's copies of host functions and its
//!    shared statics, then every host crate the patch was compiled against:
//!    its build (version, features, codegen options, dependencies' versions)
//!    and the digest of its source items ([`identity`]); then no private
//!    state: no code reachable from a replacement or hook uses the patch's own
//!    copy of a host static or thread-local ([`private_state`]); then its
//!    foreign symbols (each found in the process);
//! 5. the libraries and search paths the patch makes the loader use
//!    ([`needed`]).
//!
//! Where the runtime trusts signing keys, the signature is checked before any
//! of this parses the file ([`crate::signing`]).
//!
//! Only after all of that, `dlopen` of a sealed in-memory copy of exactly the
//! checked bytes. What can only be checked afterwards, and why:
//! - that the loaded library holds what the file said ([`registry`]): the
//!   dynamic loader applies the relocations, so their result exists only once
//!   loaded; every region the parse read is compared byte for byte, and the
//!   lists the registry's accessors return must be the parsed ones;
//! - that the patch made no allocation before it was bound to the host's
//!   allocator: only its constructors, run by `dlopen`, could have;
//! - binding: the patch gets the host's allocator, panics, statics and slots.
//!
//! A library is never unloaded once `dlopen`ed: code of it may still run.

mod elf_scan;
mod file_check;
mod identity;
mod image;
mod inspect;
mod needed;
mod patch_symbols;
mod private_state;
mod reach;
mod registry;
mod static_registry;

pub use file_check::DEFAULT_MAX_PATCH_SIZE;
pub(crate) use file_check::{CheckedFile, check_mode};

pub use inspect::{BuildInfo, PatchInfo, TargetInfo, inspect};

use crate::abi::{FnDesc, ForeignEntry, PatchEntry};
use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::host::{self, HOST_API};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// Identifies one loaded patch library for the life of the process.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PatchId(pub u64);

impl PatchId {
    /// A new id, never given before in this process.
    pub(crate) fn next() -> PatchId {
        static IDS: AtomicU64 = AtomicU64::new(1);
        PatchId(IDS.fetch_add(1, Ordering::Relaxed))
    }
}

/// What a patch runs around its apply and revert.
#[derive(Clone, Copy, Default)]
pub(crate) struct Hooks {
    /// Runs after every check and before any write; may veto.
    pub on_apply: Option<fn() -> crate::abi::HookResult>,
    /// Runs after a revert, or to undo `on_apply` when the apply failed.
    pub on_revert: Option<fn() -> crate::abi::HookResult>,
}

impl std::fmt::Display for PatchId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "#{}", self.0)
    }
}

/// One replacement, resolved against the host.
pub(crate) struct Resolved {
    pub entry: &'static PatchEntry,
    pub host: &'static FnDesc,
}

/// A patch library that passed every check and is bound to the host, but whose
/// replacements are not live yet: see [`crate::Runtime::apply_loaded`].
pub struct LoadedPatch {
    pub(crate) id: PatchId,
    pub(crate) name: String,
    pub(crate) version: String,
    pub(crate) source: PathBuf,
    pub(crate) digest: Digest,
    pub(crate) hooks: Hooks,
    pub(crate) entries: Vec<Resolved>,
    /// Index into `entries` by the target's descriptor address.
    pub(crate) by_target: HashMap<usize, usize>,
    pub(crate) foreign: &'static [ForeignEntry],
    /// Each foreign function as found when the patch was loaded, in the order
    /// of `foreign`.
    pub(crate) foreign_found: Vec<crate::foreign::ForeignSymbol>,
}

impl LoadedPatch {
    /// A patch without foreign replacements, from its checked file.
    pub(crate) fn new(
        id: PatchId,
        name: String,
        version: String,
        checked: CheckedFile,
        entries: Vec<Resolved>,
        hooks: Hooks,
    ) -> LoadedPatch {
        let by_target = entries
            .iter()
            .enumerate()
            .map(|(i, r)| (r.host as *const FnDesc as usize, i))
            .collect();
        LoadedPatch {
            id,
            name,
            version,
            source: checked.source,
            digest: checked.digest,
            hooks,
            entries,
            by_target,
            foreign: &[],
            foreign_found: Vec::new(),
        }
    }

    /// The patch's id.
    pub fn id(&self) -> PatchId {
        self.id
    }
    /// The patch's name (its crate's, unless `patch_library!` says otherwise).
    pub fn name(&self) -> &str {
        &self.name
    }
    /// The patch's version.
    pub fn version(&self) -> &str {
        &self.version
    }
    /// The file it was loaded from.
    pub fn source(&self) -> &Path {
        &self.source
    }
    /// The SHA-256 of the file's bytes: the patch's identity.
    pub fn digest(&self) -> Digest {
        self.digest
    }
    /// Paths of the functions it replaces.
    pub fn targets(&self) -> Vec<&'static str> {
        self.entries.iter().map(|r| r.host.meta.path).collect()
    }
    /// This patch's replacement of `f`, if it has one.
    pub(crate) fn entry_for(&self, f: &FnDesc) -> Option<&Resolved> {
        let i = *self.by_target.get(&(f as *const FnDesc as usize))?;
        self.entries.get(i)
    }
    /// Symbols of the foreign functions it replaces.
    pub fn foreign_targets(&self) -> Vec<&'static str> {
        self.foreign.iter().map(|f| f.symbol).collect()
    }
}

impl std::fmt::Debug for LoadedPatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadedPatch")
            .field("id", &self.id)
            .field("name", &self.name)
            .field("version", &self.version)
            .field("source", &self.source)
            .finish_non_exhaustive()
    }
}

/// A refusal of [`load`], and whether the library had been loaded by then (its
/// constructors ran; it stays mapped, and must not be loaded again).
#[derive(Debug)]
pub(crate) struct LoadError {
    pub error: Error,
    pub after_dlopen: bool,
}

impl LoadError {
    fn after_dlopen(error: Error) -> Self {
        Self {
            error,
            after_dlopen: true,
        }
    }
}

impl From<Error> for LoadError {
    fn from(error: Error) -> Self {
        Self {
            error,
            after_dlopen: false,
        }
    }
}

/// Checks a patch file (kind, owner, permissions of file and directory, size,
/// file system) and reads at most `max_size` bytes of it. Nothing is loaded.
pub(crate) fn check(path: &Path, max_size: u64) -> Result<file_check::CheckedFile> {
    file_check::check(path, max_size)
}

/// Proves a checked patch file compatible from its bytes alone, then loads it,
/// proves the loaded library equal to its file, and binds it. Nothing of the
/// host changes; nothing of the patch runs before every check that the file's
/// bytes allow has passed.
pub(crate) fn load(checked: file_check::CheckedFile) -> Result<Arc<LoadedPatch>, LoadError> {
    let src = &checked.source;
    let file = elf_scan::inspect(src, &checked.bytes)?;
    let object::File::Elf64(elf) = &file else {
        return Err(Error::NotSharedObject {
            path: src.clone(),
            reason: "not a 64-bit ELF file".into(),
        }
        .into());
    };
    let image =
        image::Image::new(elf, &checked.bytes).map_err(|reason| Error::CorruptRegistry {
            path: src.clone(),
            reason,
        })?;
    let parsed = static_registry::parse(src, &image)?;
    let label = format!("{} {}", parsed.name, parsed.version);
    if parsed.entries.is_empty() && parsed.foreign.is_empty() {
        return Err(Error::EmptyPatch { patch: label }.into());
    }
    let index = host::index();
    let hosts = resolve_entries(&label, &parsed.entries)?;
    check_host_calls(&label, &parsed.host_fns)?;
    check_shared(&label, &parsed.shared)?;
    let seen = parsed
        .entries
        .iter()
        .map(|e| &e.meta.krate)
        .chain(parsed.host_fns.iter().map(|m| &m.krate))
        .chain(parsed.shared.iter().map(|s| &s.krate));
    identity::check(&label, seen, &parsed.crates, &index.identities)?;
    private_state::check(src, &label, &file, &image, &parsed, index)?;
    let mut foreign_found = Vec::with_capacity(parsed.foreign.len());
    for f in &parsed.foreign {
        let found = crate::foreign::find_function(&f.symbol).map_err(|source| Error::Foreign {
            patch: label.clone(),
            symbol: f.symbol.clone(),
            source: Box::new(source),
        })?;
        foreign_found.push(found);
    }
    needed::check(src, &image)?;
    // ---- every check the file's bytes allow has passed: load it ----
    let copy = file_check::private_copy(&checked)?;
    let live = match registry::open(src, copy.path(), &image, &parsed) {
        // dlopen itself failed: nothing was loaded, the copy can go.
        Err(e @ Error::LoadFailed { .. }) => {
            copy.discard();
            return Err(e.into());
        }
        // The mapping outlives the copy: nothing is left behind.
        other => {
            drop(copy);
            other.map_err(LoadError::after_dlopen)?
        }
    };
    let entries: Vec<Resolved> = live
        .entries
        .iter()
        .zip(hosts)
        .map(|(entry, host)| Resolved { entry, host })
        .collect();
    bind(&label, &live, &entries).map_err(LoadError::after_dlopen)?;
    let id = PatchId::next();
    tracing::debug!(patch = %label, %id, digest = %checked.digest, file = %src.display(), "patch loaded and bound");
    let by_target = entries
        .iter()
        .enumerate()
        .map(|(i, r)| (r.host as *const FnDesc as usize, i))
        .collect();
    Ok(Arc::new(LoadedPatch {
        by_target,
        id,
        name: parsed.name,
        version: parsed.version,
        source: checked.source,
        digest: checked.digest,
        hooks: Hooks {
            on_apply: live.registry.on_apply,
            on_revert: live.registry.on_revert,
        },
        entries,
        foreign: live.foreign,
        foreign_found,
    }))
}

fn resolve_entries(
    label: &str,
    entries: &[static_registry::ParsedEntry],
) -> Result<Vec<&'static FnDesc>> {
    let index = host::index();
    let mut seen: HashMap<&str, &str> = HashMap::new();
    let mut out = Vec::with_capacity(entries.len());
    for entry in entries {
        let target = entry.meta.path.as_str();
        if let Some(first) = seen.insert(target, &entry.location) {
            return Err(Error::DuplicateTarget {
                patch: label.to_owned(),
                target: target.to_owned(),
                first: first.to_owned(),
                second: entry.location.clone(),
            });
        }
        let Some(&host) = index.fns.get(target) else {
            return Err(Error::UnknownTarget {
                patch: label.to_owned(),
                target: target.to_owned(),
            });
        };
        if host.meta.sig_fp != entry.meta.sig_fp {
            return Err(Error::SignatureMismatch {
                patch: label.to_owned(),
                target: target.to_owned(),
                patch_sig: entry.meta.signature.clone(),
                host_sig: host.meta.signature.to_owned(),
            });
        }
        if host.meta.body_fp != entry.meta.body_fp {
            return Err(Error::BodyMismatch {
                patch: label.to_owned(),
                target: target.to_owned(),
                patch_fp: entry.meta.body_fp,
                host_fp: host.meta.body_fp,
            });
        }
        out.push(host);
    }
    Ok(out)
}

/// The patch's private copies of host `#[patchable]` functions are bound to the
/// host's live versions; their signatures must be the host's.
fn check_host_calls(label: &str, copies: &[static_registry::ParsedMeta]) -> Result<()> {
    let index = host::index();
    for copy in copies {
        match index.fns.get(copy.path.as_str()) {
            Some(host) if host.meta.sig_fp != copy.sig_fp => {
                return Err(Error::HostFunctionMismatch {
                    patch: label.to_owned(),
                    function: copy.path.clone(),
                    patch_sig: copy.signature.clone(),
                    host_sig: host.meta.signature.to_owned(),
                });
            }
            Some(_) => {}
            None => tracing::info!(
                patch = label,
                function = %copy.path,
                "the patch carries a #[patchable] function the host lacks; it runs the patch's own version"
            ),
        }
    }
    Ok(())
}

fn check_shared(label: &str, shared: &[static_registry::ParsedShared]) -> Result<()> {
    let index = host::index();
    for s in shared {
        let host = match index.shared.get(s.path.as_str()) {
            None => "the host has no such shared static".to_owned(),
            Some(h) if h.type_fp != s.type_fp => {
                format!(
                    "the host's is of type `{}` (or another layout)",
                    h.type_name
                )
            }
            Some(_) => continue,
        };
        return Err(Error::SharedMismatch {
            patch: label.to_owned(),
            path: s.path.clone(),
            patch_type: s.type_name.clone(),
            host,
        });
    }
    Ok(())
}

/// Points the patch at the host: allocator, panics, statics, slots.
fn bind(label: &str, live: &registry::LiveRegistry, entries: &[Resolved]) -> Result<()> {
    let report = (live.registry.bind)(&HOST_API);
    if report.unbound_allocations > 0 {
        return Err(Error::AllocatedBeforeBind {
            patch: label.to_owned(),
            count: report.unbound_allocations,
        });
    }
    let index = host::index();
    for s in live.shared {
        if let Some(h) = index.shared.get(s.path) {
            // SAFETY: `cell` is the patch's Shared<T> cell and `storage` the host's
            // T, of equal type fingerprint (check_shared); the store is atomic.
            unsafe { (*s.cell).store(h.storage as *mut (), Ordering::Release) };
        }
    }
    for copy in live.host_fns {
        if let Some(h) = index.fns.get(copy.meta.path) {
            copy.cross_catching
                .store(h.catching as *mut (), Ordering::Release);
            copy.cross_src
                .store(&h.slot as *const _ as *mut _, Ordering::Release);
            copy.slot.store(copy.cross as *mut (), Ordering::Release);
        }
    }
    for r in entries {
        r.entry
            .host_catching
            .store(r.host.catching as *mut (), Ordering::Release);
        r.entry
            .prev
            .store(r.host.original as *mut (), Ordering::Release);
    }
    Ok(())
}
