//! The patch's registry read from its file, before anything of it is loaded.
//!
//! The header (magic, format, size, build fingerprint) has a layout that does
//! not depend on the compiler and is read first; the rest is read only once the
//! build fingerprint equals the host's, with the host's own layouts. Every
//! pointer is followed through the file's relocations, every length and count
//! is bounded, every string must be UTF-8, every function pointer must point
//! into the patch's code. Nothing here forms a reference to patch data: it
//! copies what it validated into owned values.

use super::identity::{self, ParsedCrate};
use super::image::Image;
use super::inspect::BuildInfo;
use crate::abi::{
    BuildFingerprint, FnDesc, FnMeta, ForeignEntry, PatchEntry, REGISTRY_FORMAT, REGISTRY_MAGIC,
    REGISTRY_SYMBOL, RegistryV1, SharedDesc,
};
use crate::error::{Error, Result};
use std::mem::{offset_of, size_of};
use std::path::Path;

/// Most items of one kind a registry may list.
const MAX_ITEMS: u64 = 100_000;
/// Longest string of each kind.
const MAX_NAME: u64 = 256;
const MAX_PATH: u64 = 4096;
const MAX_TEXT: u64 = 64 * 1024;

/// Metadata of a function as the patch carries it.
#[derive(Clone, Debug)]
pub(crate) struct ParsedMeta {
    pub path: String,
    pub signature: String,
    pub sig_fp: u64,
    pub body_fp: u64,
    pub krate: ParsedCrate,
}

/// One replacement of a `#[patchable]` function.
#[derive(Clone, Debug)]
pub(crate) struct ParsedEntry {
    pub meta: ParsedMeta,
    pub location: String,
    /// The replacement's address in the file.
    pub replacement: u64,
}

/// One replacement of a foreign function.
#[derive(Clone, Debug)]
pub(crate) struct ParsedForeign {
    pub symbol: String,
    /// The replacement's address in the file.
    pub replacement: u64,
}

/// One private copy of a host `#[shared]` static.
#[derive(Clone, Debug)]
pub(crate) struct ParsedShared {
    pub path: String,
    pub type_name: String,
    pub type_fp: u64,
    pub krate: ParsedCrate,
}

/// A linker-collected slice: where it starts and how many items it has.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Slice {
    pub start: u64,
    pub count: usize,
}

/// Everything the registry says, validated.
#[derive(Debug)]
pub(crate) struct ParsedRegistry {
    /// Address of the registry in the file.
    pub vaddr: u64,
    pub name: String,
    pub version: String,
    pub entries: Vec<ParsedEntry>,
    pub foreign: Vec<ParsedForeign>,
    pub host_fns: Vec<ParsedMeta>,
    pub shared: Vec<ParsedShared>,
    /// The slices of entries, foreign entries, host functions and shared statics.
    pub slices: [Slice; 4],
    /// The address in the file of its `on_apply` hook, if it has one.
    pub on_apply: Option<u64>,
    /// The address in the file of its `on_revert` hook, if it has one.
    pub on_revert: Option<u64>,
    /// The patch's view of the local crates it was compiled against.
    pub crates: Vec<ParsedCrate>,
}

/// Whether `&str` is laid out as (pointer, length) by the compiler that built
/// this runtime (and, once the fingerprints are equal, the patch).
fn str_ptr_first() -> bool {
    let s: &'static str = "hotfix";
    // SAFETY: `&str` is two words (pointer and length) in some order; reading
    // them as two usizes only looks at those words.
    let words: [usize; 2] = unsafe { std::mem::transmute::<&'static str, [usize; 2]>(s) };
    words[0] == s.as_ptr() as usize
}

/// Reads the registry header of `image`: its address and build fingerprint,
/// after checking magic and format version. Layout-independent.
pub(crate) fn read_header(path: &Path, image: &Image<'_>) -> Result<(u64, BuildInfo)> {
    let corrupt = |reason: String| Error::CorruptRegistry {
        path: path.to_owned(),
        reason,
    };
    let reg = image
        .symbol(REGISTRY_SYMBOL)
        .ok_or_else(|| Error::NoRegistry {
            path: path.to_owned(),
        })?;
    // Every field address below is `reg` plus an offset inside the registry.
    Image::at(reg, size_of::<RegistryV1>() as u64, "registry").map_err(corrupt)?;
    Image::check_aligned(reg, std::mem::align_of::<RegistryV1>(), "registry").map_err(corrupt)?;
    let magic = image.bytes(
        reg + offset_of!(RegistryV1, magic) as u64,
        8,
        "registry magic",
    );
    let magic = magic.map_err(corrupt)?;
    if magic != REGISTRY_MAGIC {
        return Err(corrupt(format!("bad magic {magic:02x?}")));
    }
    let format = u32::from_le_bytes(
        image
            .bytes(
                reg + offset_of!(RegistryV1, format_version) as u64,
                4,
                "registry format",
            )
            .map_err(corrupt)?
            .try_into()
            .expect("4 bytes"),
    );
    if format != REGISTRY_FORMAT {
        return Err(Error::UnsupportedFormat {
            path: path.to_owned(),
            found: format,
            supported: REGISTRY_FORMAT,
            relation: if format < REGISTRY_FORMAT {
                "older"
            } else {
                "newer"
            },
        });
    }
    let at = reg + offset_of!(RegistryV1, build) as u64;
    let raw = |off: usize, what: &str| {
        image
            .str_at(at + off as u64, true, MAX_TEXT, what)
            .map_err(corrupt)
    };
    let da = image
        .bytes(
            at + offset_of!(BuildFingerprint, debug_assertions) as u64,
            1,
            "debug_assertions",
        )
        .map_err(corrupt)?[0];
    let build = BuildInfo {
        rustc: raw(offset_of!(BuildFingerprint, rustc), "build.rustc")?,
        target: raw(offset_of!(BuildFingerprint, target), "build.target")?,
        panic: raw(offset_of!(BuildFingerprint, panic), "build.panic")?,
        debug_assertions: da != 0,
        target_features: raw(
            offset_of!(BuildFingerprint, target_features),
            "build.target_features",
        )?,
        hotfix_abi: raw(offset_of!(BuildFingerprint, hotfix_abi), "build.hotfix_abi")?,
        // Added in ABI 2: a patch of an older ABI has other bytes here, and is
        // refused for its ABI version, compared first.
        bridged_layouts: image
            .u64_at(
                at + offset_of!(BuildFingerprint, bridged_layouts) as u64,
                "build.bridged_layouts",
            )
            .unwrap_or_default(),
        bridged_crates: raw(
            offset_of!(BuildFingerprint, bridged_crates),
            "build.bridged_crates",
        )
        .unwrap_or_else(|_| "(unreadable)".to_owned()),
    };
    Ok((reg, build))
}

/// Reads and validates the registry of `image`. `path` names the file.
pub(crate) fn parse(path: &Path, image: &Image<'_>) -> Result<ParsedRegistry> {
    let corrupt = |reason: String| Error::CorruptRegistry {
        path: path.to_owned(),
        reason,
    };
    let (reg, build) = read_header(path, image)?;
    compare_build(path, &build)?;
    let size = u32::from_le_bytes(
        image
            .bytes(
                reg + offset_of!(RegistryV1, size) as u64,
                4,
                "registry size",
            )
            .map_err(corrupt)?
            .try_into()
            .expect("4 bytes"),
    );
    // From here on the patch was built by this compiler, for this target, with
    // the same cfgs: the host's layouts are the patch's.
    if size as usize != size_of::<RegistryV1>() {
        return Err(corrupt(format!(
            "registry size {size} differs from {}",
            size_of::<RegistryV1>()
        )));
    }
    image
        .bytes(reg, size_of::<RegistryV1>() as u64, "registry")
        .map_err(corrupt)?;
    let field = |off: usize| reg + off as u64;
    let raw = |off: usize, max: u64, what: &str| image.str_at(field(off), true, max, what);
    let name = raw(offset_of!(RegistryV1, name), MAX_NAME, "patch name").map_err(corrupt)?;
    let version =
        raw(offset_of!(RegistryV1, version), MAX_NAME, "patch version").map_err(corrupt)?;
    for (off, what) in [
        (offset_of!(RegistryV1, entries), "registry.entries"),
        (offset_of!(RegistryV1, foreign), "registry.foreign"),
        (offset_of!(RegistryV1, host_fns), "registry.host_fns"),
        (offset_of!(RegistryV1, shared), "registry.shared"),
        (offset_of!(RegistryV1, bind), "registry.bind"),
    ] {
        image.code_ptr_at(field(off), what).map_err(corrupt)?;
    }
    let mut hooks = [None; 2];
    for (i, (off, what)) in [
        (offset_of!(RegistryV1, on_apply), "registry.on_apply"),
        (offset_of!(RegistryV1, on_revert), "registry.on_revert"),
    ]
    .into_iter()
    .enumerate()
    {
        if let Some(target) = image.ptr_at(field(off), what).map_err(corrupt)? {
            image.check_code(target, what).map_err(corrupt)?;
            hooks[i] = Some(target);
        }
    }
    let p = str_ptr_first();
    let crates = std::cell::RefCell::new(std::collections::HashMap::new());
    let meta_at = |vaddr: u64, what: &str| -> std::result::Result<ParsedMeta, String> {
        Image::at(vaddr, size_of::<FnMeta>() as u64, what)?;
        Image::check_aligned(vaddr, std::mem::align_of::<FnMeta>(), what)?;
        image.bytes(vaddr, size_of::<FnMeta>() as u64, what)?;
        Ok(ParsedMeta {
            path: image.str_at(vaddr + offset_of!(FnMeta, path) as u64, p, MAX_PATH, what)?,
            signature: image.str_at(
                vaddr + offset_of!(FnMeta, signature) as u64,
                p,
                MAX_TEXT,
                what,
            )?,
            sig_fp: image.u64_at(vaddr + offset_of!(FnMeta, sig_fp) as u64, what)?,
            body_fp: image.u64_at(vaddr + offset_of!(FnMeta, body_fp) as u64, what)?,
            krate: identity::read(
                image,
                &mut crates.borrow_mut(),
                vaddr + offset_of!(FnMeta, krate) as u64,
                p,
                what,
            )?,
        })
    };
    let meta_ptr = |vaddr: u64, what: &str| -> std::result::Result<ParsedMeta, String> {
        let target = image
            .ptr_at(vaddr, what)?
            .ok_or_else(|| format!("{what}: null metadata pointer"))?;
        meta_at(target, what)
    };

    let entries_slice = slice(image, "PATCH_ENTRIES", size_of::<PatchEntry>()).map_err(corrupt)?;
    let mut entries = Vec::with_capacity(entries_slice.count);
    for at in items(entries_slice, size_of::<PatchEntry>()) {
        let what = "a replacement entry";
        let one = (|| {
            image.bytes(at, size_of::<PatchEntry>() as u64, what)?;
            let meta = meta_ptr(at + offset_of!(PatchEntry, meta) as u64, what)?;
            let replacement =
                image.code_ptr_at(at + offset_of!(PatchEntry, replacement) as u64, what)?;
            let location = image.str_at(
                at + offset_of!(PatchEntry, location) as u64,
                p,
                MAX_PATH,
                what,
            )?;
            Ok::<_, String>(ParsedEntry {
                meta,
                location,
                replacement,
            })
        })();
        entries.push(one.map_err(corrupt)?);
    }

    let foreign_slice =
        slice(image, "FOREIGN_ENTRIES", size_of::<ForeignEntry>()).map_err(corrupt)?;
    let mut foreign = Vec::with_capacity(foreign_slice.count);
    for at in items(foreign_slice, size_of::<ForeignEntry>()) {
        let what = "a foreign replacement";
        let one = (|| {
            image.bytes(at, size_of::<ForeignEntry>() as u64, what)?;
            let symbol = image.str_at(
                at + offset_of!(ForeignEntry, symbol) as u64,
                p,
                MAX_TEXT,
                what,
            )?;
            let replacement =
                image.code_ptr_at(at + offset_of!(ForeignEntry, replacement) as u64, what)?;
            image.str_at(
                at + offset_of!(ForeignEntry, location) as u64,
                p,
                MAX_PATH,
                what,
            )?;
            Ok::<_, String>(ParsedForeign {
                symbol,
                replacement,
            })
        })();
        foreign.push(one.map_err(corrupt)?);
    }

    let fns_slice = slice(image, "FNS", size_of::<FnDesc>()).map_err(corrupt)?;
    let mut host_fns = Vec::with_capacity(fns_slice.count);
    for at in items(fns_slice, size_of::<FnDesc>()) {
        let what = "a copy of a host function";
        let one = (|| {
            image.bytes(at, size_of::<FnDesc>() as u64, what)?;
            let meta = meta_ptr(at + offset_of!(FnDesc, meta) as u64, what)?;
            for off in [
                offset_of!(FnDesc, original),
                offset_of!(FnDesc, entry),
                offset_of!(FnDesc, catching),
                offset_of!(FnDesc, cross),
            ] {
                image.code_ptr_at(at + off as u64, what)?;
            }
            Ok::<_, String>(meta)
        })();
        host_fns.push(one.map_err(corrupt)?);
    }

    let shared_slice = slice(image, "SHARED", size_of::<SharedDesc>()).map_err(corrupt)?;
    let mut shared = Vec::with_capacity(shared_slice.count);
    for at in items(shared_slice, size_of::<SharedDesc>()) {
        let what = "a shared static";
        let one = (|| {
            image.bytes(at, size_of::<SharedDesc>() as u64, what)?;
            let path = image.str_at(at + offset_of!(SharedDesc, path) as u64, p, MAX_PATH, what)?;
            let type_name = image.str_at(
                at + offset_of!(SharedDesc, type_name) as u64,
                p,
                MAX_TEXT,
                what,
            )?;
            let type_fp = image.u64_at(at + offset_of!(SharedDesc, type_fp) as u64, what)?;
            image
                .ptr_at(at + offset_of!(SharedDesc, storage) as u64, what)?
                .ok_or_else(|| format!("{what}: null storage pointer"))?;
            // The runtime writes the host's storage address into the cell.
            let cell = image
                .ptr_at(at + offset_of!(SharedDesc, cell) as u64, what)?
                .ok_or_else(|| format!("{what}: null cell pointer"))?;
            Image::check_aligned(cell, std::mem::align_of::<usize>(), what)?;
            image.check_writable(cell, 8, what)?;
            let krate = identity::read(
                image,
                &mut crates.borrow_mut(),
                at + offset_of!(SharedDesc, krate) as u64,
                p,
                what,
            )?;
            Ok::<_, String>(ParsedShared {
                path,
                type_name,
                type_fp,
                krate,
            })
        })();
        shared.push(one.map_err(corrupt)?);
    }

    let crates = identity::read_list(
        image,
        field(offset_of!(RegistryV1, crates)),
        p,
        "registry.crates",
    )
    .map_err(corrupt)?;
    Ok(ParsedRegistry {
        crates,
        vaddr: reg,
        name,
        version,
        entries,
        foreign,
        host_fns,
        shared,
        slices: [entries_slice, foreign_slice, fns_slice, shared_slice],
        on_apply: hooks[0],
        on_revert: hooks[1],
    })
}

/// The linker-collected slice `name` (`__start_linkme_NAME` ..
/// `__stop_linkme_NAME`), of items of `size` bytes; empty when absent.
fn slice(image: &Image<'_>, name: &str, size: usize) -> std::result::Result<Slice, String> {
    let start = image.symbol(&format!("__start_linkme_{name}"));
    let stop = image.symbol(&format!("__stop_linkme_{name}"));
    let (start, stop) = match (start, stop) {
        (None, None) => return Ok(Slice { start: 0, count: 0 }),
        (Some(a), Some(b)) if a <= b => (a, b),
        _ => return Err(format!("the bounds of the {name} list are inconsistent")),
    };
    // Every list's items are 8-byte aligned structs of pointers.
    Image::check_aligned(start, 8, name)?;
    let bytes = stop - start;
    if bytes % size as u64 != 0 {
        return Err(format!(
            "the {name} list is {bytes} bytes, not a whole number of {size}-byte items"
        ));
    }
    let count = bytes / size as u64;
    if count > MAX_ITEMS {
        return Err(format!(
            "the {name} list has {count} items, over the limit of {MAX_ITEMS}"
        ));
    }
    // The whole list must be stored in the file.
    image.bytes(start, bytes, name)?;
    Ok(Slice {
        start,
        count: count as usize,
    })
}

/// Addresses of the items of a slice.
fn items(s: Slice, size: usize) -> impl Iterator<Item = u64> {
    (0..s.count as u64).map(move |i| s.start + i * size as u64)
}

/// The host's own build fingerprint, as text.
pub(crate) fn host_build() -> BuildInfo {
    let host = &BuildFingerprint::CURRENT;
    // SAFETY: the host's own fingerprint: RawStr built by RawStr::new from
    // static strings of this build.
    let s = |r: &crate::abi::RawStr| unsafe { r.to_string_lossy() };
    BuildInfo {
        rustc: s(&host.rustc),
        target: s(&host.target),
        panic: s(&host.panic),
        debug_assertions: host.debug_assertions != 0,
        target_features: s(&host.target_features),
        hotfix_abi: s(&host.hotfix_abi),
        bridged_layouts: host.bridged_layouts,
        bridged_crates: s(&host.bridged_crates),
    }
}

/// Compares the patch's build fingerprint with the host's; the first field
/// that differs is named.
pub(crate) fn compare_build(path: &Path, patch: &BuildInfo) -> Result<()> {
    let host = host_build();
    let fields: [(&'static str, String, String); 8] = [
        ("compiler (rustc -vV)", patch.rustc.clone(), host.rustc),
        ("target", patch.target.clone(), host.target),
        ("panic strategy", patch.panic.clone(), host.panic),
        (
            "debug_assertions setting",
            patch.debug_assertions.to_string(),
            host.debug_assertions.to_string(),
        ),
        (
            "set of target features",
            patch.target_features.clone(),
            host.target_features,
        ),
        (
            "hotfix ABI version",
            patch.hotfix_abi.clone(),
            host.hotfix_abi,
        ),
        (
            "versions and sources of tracing, log and tokio (whose values the bridges pass)",
            patch.bridged_crates.clone(),
            host.bridged_crates,
        ),
        (
            "layout of the types the bridges pass (tracing, log and tokio built with other features)",
            format!("{:016x}", patch.bridged_layouts),
            format!("{:016x}", host.bridged_layouts),
        ),
    ];
    for (what, p, h) in fields {
        if p != h {
            return Err(Error::BuildMismatch {
                path: path.to_owned(),
                what,
                patch: p,
                host: h,
            });
        }
    }
    Ok(())
}
