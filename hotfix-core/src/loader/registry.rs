//! `dlopen` of the private copy and the checks of the registry header.

use crate::abi::{
    BuildFingerprint, REGISTRY_FORMAT, REGISTRY_MAGIC, REGISTRY_SYMBOL, RawStr, RegistryV1,
};
use crate::error::{Error, Result};
use std::path::Path;

/// Opens the library (never to be closed) and returns its checked registry.
pub(crate) fn open(source: &Path, copy: &Path) -> Result<&'static RegistryV1> {
    let reg = open_header(source, copy)?;
    compare_builds(source, &reg.build, &BuildFingerprint::CURRENT)?;
    check_size(source, reg)?;
    Ok(reg)
}

/// Opens the library (never to be closed) and returns its registry, of which
/// only the header (magic, format) is checked: the build fingerprint is yet to
/// be compared before anything else of it is read.
pub(crate) fn open_header(source: &Path, copy: &Path) -> Result<&'static RegistryV1> {
    use libloading::os::unix::{Library, RTLD_LOCAL, RTLD_NOW};
    // SAFETY: loading runs the library's constructors. The file passed the
    // permission and ELF checks; a Rust cdylib's constructors only record the
    // program arguments. The library is never unloaded (code of it may run on
    // any thread after a patch is reverted), hence the leak below.
    let lib = unsafe { Library::open(Some(copy), RTLD_NOW | RTLD_LOCAL) }.map_err(|e| {
        Error::LoadFailed {
            path: source.to_owned(),
            reason: e.to_string(),
        }
    })?;
    let lib: &'static Library = Box::leak(Box::new(lib));
    let symbol = format!("{REGISTRY_SYMBOL}\0");
    // SAFETY: we only take the symbol's address; it is read below as a header
    // of fixed #[repr(C)] layout before anything else.
    let ptr: *const RegistryV1 = *unsafe { lib.get::<*const RegistryV1>(symbol.as_bytes()) }
        .map_err(|_| Error::NoRegistry {
            path: source.to_owned(),
        })?;
    let corrupt = |reason: String| Error::CorruptRegistry {
        path: source.to_owned(),
        reason,
    };
    if ptr.is_null() || !(ptr as usize).is_multiple_of(std::mem::align_of::<RegistryV1>()) {
        return Err(corrupt("the registry symbol is null or misaligned".into()));
    }
    // SAFETY: the symbol is the address of a static in the loaded library. The
    // fields read before the fingerprint check (magic, format, size, build) have
    // a layout that does not depend on the compiler.
    let reg: &'static RegistryV1 = unsafe { &*ptr };
    if reg.magic != REGISTRY_MAGIC {
        return Err(corrupt(format!("bad magic {:02x?}", reg.magic)));
    }
    if reg.format_version != REGISTRY_FORMAT {
        return Err(Error::UnsupportedFormat {
            path: source.to_owned(),
            found: reg.format_version,
            supported: REGISTRY_FORMAT,
            relation: if reg.format_version < REGISTRY_FORMAT {
                "older"
            } else {
                "newer"
            },
        });
    }
    Ok(reg)
}

/// Refuses a registry whose size is not this runtime's.
pub(crate) fn check_size(source: &Path, reg: &RegistryV1) -> Result<()> {
    if reg.size as usize != std::mem::size_of::<RegistryV1>() {
        return Err(Error::CorruptRegistry {
            path: source.to_owned(),
            reason: format!(
                "registry size {} differs from {}",
                reg.size,
                std::mem::size_of::<RegistryV1>()
            ),
        });
    }
    Ok(())
}

pub(crate) fn compare_builds(
    source: &Path,
    patch: &BuildFingerprint,
    host: &BuildFingerprint,
) -> Result<()> {
    // SAFETY: RawStr of the patch point into its loaded, never-unloaded image;
    // invalid UTF-8 is replaced, not trusted.
    let s = |r: &RawStr| unsafe { r.to_string_lossy() };
    let fields: [(&'static str, String, String); 6] = [
        ("compiler (rustc -vV)", s(&patch.rustc), s(&host.rustc)),
        ("target", s(&patch.target), s(&host.target)),
        ("panic strategy", s(&patch.panic), s(&host.panic)),
        (
            "debug_assertions setting",
            (patch.debug_assertions != 0).to_string(),
            (host.debug_assertions != 0).to_string(),
        ),
        (
            "set of target features",
            s(&patch.target_features),
            s(&host.target_features),
        ),
        (
            "hotfix ABI version",
            s(&patch.hotfix_abi),
            s(&host.hotfix_abi),
        ),
    ];
    for (what, p, h) in fields {
        if p != h {
            return Err(Error::BuildMismatch {
                path: source.to_owned(),
                what,
                patch: p,
                host: h,
            });
        }
    }
    Ok(())
}
