//! Reading a patch file without a host: what `hotfix inspect` shows.
//!
//! The file gets the loader's checks (kind, owner, permissions; a complete
//! x86-64 ELF with a registry) and is loaded the way an apply loads it (from a
//! sealed private copy, never unloaded), into the calling process: its
//! constructors run, none of its functions do. Nothing is bound or applied.

use super::{elf_scan, file_check, registry};
use crate::abi::{BuildFingerprint, RawStr};
use crate::error::Result;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

/// What a patch file holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PatchInfo {
    /// The file (canonical path).
    pub file: PathBuf,
    /// Its size in bytes.
    pub size: u64,
    /// SHA-256 of its bytes, lower-case hex (what `sha256sum` prints).
    pub sha256: String,
    /// How it was built.
    pub build: BuildInfo,
    /// Why the rest of the registry was not read, when the patch was built
    /// differently from this program (its layout may differ): the first field
    /// that differs. `None`: everything below was read.
    pub unreadable: Option<String>,
    /// The patch's name.
    pub name: String,
    /// The patch's version.
    pub version: String,
    /// The `#[patchable]` functions it replaces.
    pub targets: Vec<TargetInfo>,
    /// The foreign functions it replaces, by symbol.
    pub foreign: Vec<String>,
    /// The host `#[shared]` statics it uses.
    pub shared: Vec<String>,
    /// Whether it has an `on_apply` hook.
    pub apply_hook: bool,
    /// Whether it has an `on_revert` hook.
    pub revert_hook: bool,
}

/// A patch's build fingerprint: what a host must have been built with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BuildInfo {
    /// `rustc -vV` of the compiler.
    pub rustc: String,
    /// Target triple.
    pub target: String,
    /// Panic strategy.
    pub panic: String,
    /// Whether debug assertions were on.
    pub debug_assertions: bool,
    /// Enabled target features.
    pub target_features: String,
    /// Version of hotfix's ABI.
    pub hotfix_abi: String,
}

/// A replaced function.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TargetInfo {
    /// The function's path.
    pub path: String,
    /// Its signature as written.
    pub signature: String,
    /// Where the replacement is in the patch's source.
    pub location: String,
}

fn lossy(r: &RawStr) -> String {
    // SAFETY: RawStr of a patch point into its loaded, never-unloaded image;
    // invalid UTF-8 is replaced, not trusted.
    unsafe { r.to_string_lossy() }
}

/// Reads a patch file: see the module documentation. Refuses what the loader
/// refuses before the build fingerprint (not a file, insecure, not a patch).
pub fn inspect(path: impl AsRef<Path>) -> Result<PatchInfo> {
    let checked = file_check::check(path.as_ref())?;
    let src = checked.source.clone();
    elf_scan::inspect(&src, &checked.bytes)?;
    let sha256 = Sha256::digest(&checked.bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let copy = file_check::private_copy(&checked)?;
    let opened = registry::open_header(&src, copy.path());
    drop(copy);
    let reg = opened?;
    let b = &reg.build;
    let build = BuildInfo {
        rustc: lossy(&b.rustc),
        target: lossy(&b.target),
        panic: lossy(&b.panic),
        debug_assertions: b.debug_assertions != 0,
        target_features: lossy(&b.target_features),
        hotfix_abi: lossy(&b.hotfix_abi),
    };
    let mut info = PatchInfo {
        file: src.clone(),
        size: checked.bytes.len() as u64,
        sha256,
        build,
        unreadable: None,
        name: String::new(),
        version: String::new(),
        targets: Vec::new(),
        foreign: Vec::new(),
        shared: Vec::new(),
        apply_hook: false,
        revert_hook: false,
    };
    if let Err(e) = registry::compare_builds(&src, &reg.build, &BuildFingerprint::CURRENT)
        .and_then(|()| registry::check_size(&src, reg))
    {
        info.unreadable = Some(e.to_string());
        return Ok(info);
    }
    info.name = lossy(&reg.name);
    info.version = lossy(&reg.version);
    info.targets = (reg.entries)()
        .iter()
        .map(|e| TargetInfo {
            path: e.meta.path.to_owned(),
            signature: e.meta.signature.to_owned(),
            location: e.location.to_owned(),
        })
        .collect();
    info.foreign = (reg.foreign)()
        .iter()
        .map(|f| f.symbol.to_owned())
        .collect();
    info.shared = (reg.shared)().iter().map(|s| s.path.to_owned()).collect();
    info.apply_hook = reg.on_apply.is_some();
    info.revert_hook = reg.on_revert.is_some();
    Ok(info)
}
