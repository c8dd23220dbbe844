//! Loading a patch: every check, in order, before anything is swapped.
//!
//! 1. the file (permissions, owner, kind) and its private copy;
//! 2. its ELF (complete, x86-64, a registry of our format, no private copies of
//!    host statics or thread-locals);
//! 3. `dlopen` of the copy, then the registry header and build fingerprint;
//! 4. every entry against the host (target exists, signature and body
//!    fingerprints, no duplicates), the patch's calls into host functions and its
//!    shared statics;
//! 5. binding: the patch gets the host's allocator, panics, statics and slots.
//!
//! A library is never unloaded once `dlopen`ed: code of it may still run.

mod elf_scan;
mod file_check;
mod inspect;
mod registry;

pub use inspect::{BuildInfo, PatchInfo, TargetInfo, inspect};

use crate::abi::{FnDesc, ForeignEntry, PatchEntry, RegistryV1};
use crate::error::{Error, Result};
use crate::host::{self, HOST_API};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// Identifies one loaded patch library for the life of the process.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PatchId(pub u64);

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
    pub(crate) hash: u64,
    pub(crate) registry: &'static RegistryV1,
    pub(crate) entries: Vec<Resolved>,
    /// Index into `entries` by the target's descriptor address.
    pub(crate) by_target: HashMap<usize, usize>,
    pub(crate) foreign: &'static [ForeignEntry],
}

impl LoadedPatch {
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

/// Checks a patch file (kind, owner, permissions of file and directory) and
/// reads it. Nothing is loaded.
pub(crate) fn check(path: &Path) -> Result<file_check::CheckedFile> {
    file_check::check(path)
}

/// Loads and checks a checked patch file. Nothing of the host changes.
pub(crate) fn load(checked: file_check::CheckedFile) -> Result<Arc<LoadedPatch>> {
    let src = &checked.source;
    let elf = elf_scan::inspect(src, &checked.bytes)?;
    let index = host::index();
    // The patch's own name is not known before dlopen: name it by file here.
    let file_name = src.display().to_string();
    let shared = index.shared.keys().copied().collect();
    if let Some(copy) = elf_scan::private_copies(src, &elf, &index.crates, &shared)?
        .into_iter()
        .next()
    {
        return Err(match copy {
            elf_scan::PrivateCopy::Static(symbol) => Error::PrivateStatic {
                patch: file_name,
                symbol,
            },
            elf_scan::PrivateCopy::ThreadLocal(symbol) => Error::ThreadLocal {
                patch: file_name,
                symbol,
            },
        });
    }
    let copy = file_check::private_copy(&checked)?;
    let opened = registry::open(src, copy.path());
    // The mapping outlives the copy: nothing is left behind.
    drop(copy);
    let registry = opened?;
    // SAFETY: registry::open checked magic, format, size and build fingerprint:
    // the strings are RawStr built by the same compiler into the loaded library.
    let (name, version) = unsafe {
        (
            registry.name.to_string_lossy(),
            registry.version.to_string_lossy(),
        )
    };
    let label = format!("{name} {version}");
    let entries = resolve_entries(&label, (registry.entries)())?;
    let foreign = (registry.foreign)();
    if entries.is_empty() && foreign.is_empty() {
        return Err(Error::EmptyPatch { patch: label });
    }
    check_host_calls(&label, (registry.host_fns)())?;
    check_shared(&label, registry)?;
    bind(&label, registry, &entries)?;
    static IDS: AtomicU64 = AtomicU64::new(1);
    let id = PatchId(IDS.fetch_add(1, Ordering::Relaxed));
    tracing::debug!(patch = %label, %id, file = %src.display(), "patch loaded and bound");
    let by_target = entries
        .iter()
        .enumerate()
        .map(|(i, r)| (r.host as *const FnDesc as usize, i))
        .collect();
    Ok(Arc::new(LoadedPatch {
        by_target,
        id,
        name,
        version,
        source: checked.source,
        hash: checked.hash,
        registry,
        entries,
        foreign,
    }))
}

fn resolve_entries(label: &str, entries: &'static [PatchEntry]) -> Result<Vec<Resolved>> {
    let index = host::index();
    let mut seen: HashMap<&str, &str> = HashMap::new();
    let mut out = Vec::with_capacity(entries.len());
    for entry in entries {
        let target = entry.meta.path;
        if let Some(first) = seen.insert(target, entry.location) {
            return Err(Error::DuplicateTarget {
                patch: label.to_owned(),
                target: target.to_owned(),
                first: first.to_owned(),
                second: entry.location.to_owned(),
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
                patch_sig: entry.meta.signature.to_owned(),
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
        out.push(Resolved { entry, host });
    }
    Ok(out)
}

/// The patch's private copies of host `#[patchable]` functions are bound to the
/// host's live versions; their signatures must be the host's.
fn check_host_calls(label: &str, copies: &'static [FnDesc]) -> Result<()> {
    let index = host::index();
    for copy in copies {
        match index.fns.get(copy.meta.path) {
            Some(host) if host.meta.sig_fp != copy.meta.sig_fp => {
                return Err(Error::HostFunctionMismatch {
                    patch: label.to_owned(),
                    function: copy.meta.path.to_owned(),
                    patch_sig: copy.meta.signature.to_owned(),
                    host_sig: host.meta.signature.to_owned(),
                });
            }
            Some(_) => {}
            None => tracing::info!(
                patch = label,
                function = copy.meta.path,
                "the patch carries a #[patchable] function the host lacks; it runs the patch's own version"
            ),
        }
    }
    Ok(())
}

fn check_shared(label: &str, registry: &RegistryV1) -> Result<()> {
    let index = host::index();
    for s in (registry.shared)() {
        let host = match index.shared.get(s.path) {
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
            path: s.path.to_owned(),
            patch_type: s.type_name.to_owned(),
            host,
        });
    }
    Ok(())
}

/// Points the patch at the host: allocator, panics, statics, slots.
fn bind(label: &str, registry: &'static RegistryV1, entries: &[Resolved]) -> Result<()> {
    let report = (registry.bind)(&HOST_API);
    if report.unbound_allocations > 0 {
        return Err(Error::AllocatedBeforeBind {
            patch: label.to_owned(),
            count: report.unbound_allocations,
        });
    }
    let index = host::index();
    for s in (registry.shared)() {
        if let Some(h) = index.shared.get(s.path) {
            // SAFETY: `cell` is the patch's Shared<T> cell and `storage` the host's
            // T, of equal type fingerprint (check_shared); the store is atomic.
            unsafe { (*s.cell).store(h.storage as *mut (), Ordering::Release) };
        }
    }
    for copy in (registry.host_fns)() {
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
