//! Reading a patch file without a host: what `hotfix inspect` shows.
//!
//! The file gets the loader's checks (kind, owner, permissions, size, file
//! system; a complete x86-64 ELF with a registry) and its registry is read
//! from the file's bytes, as the loader reads it before `dlopen`. Nothing of
//! the patch is loaded or run.

use super::{elf_scan, file_check, image, static_registry};
use crate::error::{Error, Result};
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
    /// The id of the key its signature file (`<file>.sig`) names, if it has
    /// one. Not verified here: a host verifies it against the keys it trusts.
    pub signer: Option<String>,
    /// For a linked patch (`hotfix build --pid`), the host build it was made
    /// for; `None` for a patch library.
    pub linked: Option<crate::linked::format::HostBuild>,
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
    /// Hash of the layouts of the types the bridges pass.
    pub bridged_layouts: u64,
    /// Versions of the crates the bridges pass values of (tracing, log, tokio).
    pub bridged_crates: String,
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

/// Reads a patch file: see the module documentation. Refuses what the loader
/// refuses before the build fingerprint (not a file, insecure, not a patch).
pub fn inspect(path: impl AsRef<Path>) -> Result<PatchInfo> {
    let checked = file_check::check(path.as_ref(), file_check::DEFAULT_MAX_PATCH_SIZE)?;
    let src = checked.source.clone();
    if crate::linked::is_linked_patch(&checked.bytes) {
        return inspect_linked(&checked);
    }
    let file = elf_scan::inspect(&src, &checked.bytes)?;
    let object::File::Elf64(elf) = &file else {
        return Err(Error::NotSharedObject {
            path: src,
            reason: "not a 64-bit ELF file".into(),
        });
    };
    let image =
        image::Image::new(elf, &checked.bytes).map_err(|reason| Error::CorruptRegistry {
            path: src.clone(),
            reason,
        })?;
    let (_, build) = static_registry::read_header(&src, &image)?;
    let unreadable = static_registry::compare_build(&src, &build)
        .err()
        .map(|e| e.to_string());
    let mut info = PatchInfo {
        file: src.clone(),
        size: checked.bytes.len() as u64,
        sha256: checked.digest.to_string(),
        build,
        unreadable,
        name: String::new(),
        version: String::new(),
        targets: Vec::new(),
        foreign: Vec::new(),
        shared: Vec::new(),
        apply_hook: false,
        revert_hook: false,
        signer: crate::signing::claimed_signer(&src),
        linked: None,
    };
    if info.unreadable.is_some() {
        return Ok(info);
    }
    let reg = static_registry::parse(&src, &image)?;
    info.name = reg.name;
    info.version = reg.version;
    info.targets = reg
        .entries
        .into_iter()
        .map(|e| TargetInfo {
            path: e.meta.path,
            signature: e.meta.signature,
            location: e.location,
        })
        .collect();
    info.foreign = reg.foreign.into_iter().map(|f| f.symbol).collect();
    info.shared = reg.shared.into_iter().map(|s| s.path).collect();
    info.apply_hook = reg.on_apply.is_some();
    info.revert_hook = reg.on_revert.is_some();
    Ok(info)
}

/// A linked patch's registry, read as the loader reads it.
fn inspect_linked(checked: &file_check::CheckedFile) -> Result<PatchInfo> {
    let src = &checked.source;
    let reg = crate::linked::check_file(&checked.bytes).map_err(|reason| Error::LinkedInvalid {
        path: src.clone(),
        reason,
    })?;
    Ok(PatchInfo {
        file: src.clone(),
        size: checked.bytes.len() as u64,
        sha256: checked.digest.to_string(),
        build: BuildInfo {
            rustc: reg.host.rustc.replace("; ", "\n"),
            target: reg.host.target.clone(),
            panic: "the host's".into(),
            debug_assertions: false,
            target_features: "the host's".into(),
            hotfix_abi: format!("linked patch, format {}", crate::linked::format::FORMAT),
            bridged_layouts: 0,
            bridged_crates: "none: it runs the host's own crates".into(),
        },
        unreadable: None,
        name: reg.name,
        version: reg.version,
        targets: reg
            .replace
            .into_iter()
            .map(|r| TargetInfo {
                path: r.path,
                signature: String::new(),
                location: r.why,
            })
            .collect(),
        foreign: Vec::new(),
        shared: Vec::new(),
        apply_hook: false,
        revert_hook: false,
        signer: crate::signing::claimed_signer(src),
        linked: Some(reg.host),
    })
}
