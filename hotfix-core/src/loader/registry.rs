//! `dlopen` of a patch whose registry was proven from its file, and the proof
//! that the loaded library holds exactly what was proven.
//!
//! After `dlopen`, every region of the file the static parse read (the
//! registry, the linker-collected lists, each function's metadata, every
//! string) is compared byte for byte with the live library, with each
//! relocation applied at the library's load base. Only then is a reference to
//! the registry formed, and the lists its accessors return must be the ones
//! parsed.

use super::image::Image;
use super::static_registry::{ParsedRegistry, Slice};
use crate::abi::{FnDesc, ForeignEntry, PatchEntry, REGISTRY_SYMBOL, RegistryV1, SharedDesc};
use crate::error::{Error, Result};
use std::ffi::CString;
use std::path::Path;

/// The live registry and its lists, each proven equal to the parsed one.
pub(crate) struct LiveRegistry {
    pub registry: &'static RegistryV1,
    pub entries: &'static [PatchEntry],
    pub foreign: &'static [ForeignEntry],
    pub host_fns: &'static [FnDesc],
    pub shared: &'static [SharedDesc],
}

fn dl_error() -> String {
    // SAFETY: dlerror returns null or a NUL-terminated string owned by libc.
    let p = unsafe { libc::dlerror() };
    if p.is_null() {
        return "unknown dynamic loader error".into();
    }
    // SAFETY: p is non-null and NUL-terminated (above).
    unsafe { std::ffi::CStr::from_ptr(p) }
        .to_string_lossy()
        .into_owned()
}

/// Opens the library at `copy` (never to be closed: code of it may run on any
/// thread after a patch is reverted) and proves it holds what `parsed` says.
pub(crate) fn open(
    source: &Path,
    copy: &Path,
    image: &Image<'_>,
    parsed: &ParsedRegistry,
) -> Result<LiveRegistry> {
    let corrupt = |reason: String| Error::CorruptRegistry {
        path: source.to_owned(),
        reason: format!("after loading: {reason}"),
    };
    let c_copy =
        CString::new(copy.as_os_str().as_encoded_bytes()).map_err(|_| Error::LoadFailed {
            path: source.to_owned(),
            reason: "the path holds a NUL byte".into(),
        })?;
    // SAFETY: loading runs the library's constructors; every check that can be
    // made from the file's bytes passed before this point (see the loader's
    // module docs). The handle is never closed.
    let handle = unsafe { libc::dlopen(c_copy.as_ptr(), libc::RTLD_NOW | libc::RTLD_LOCAL) };
    if handle.is_null() {
        return Err(Error::LoadFailed {
            path: source.to_owned(),
            reason: dl_error(),
        });
    }
    let symbol = CString::new(REGISTRY_SYMBOL).expect("no NUL in the symbol name");
    // SAFETY: handle is a live library handle; symbol is NUL-terminated.
    let ptr = unsafe { libc::dlsym(handle, symbol.as_ptr()) } as usize;
    if ptr == 0 {
        return Err(corrupt("the registry symbol is not found".into()));
    }
    let base = (ptr as u64).wrapping_sub(parsed.vaddr);
    // SAFETY: a zeroed Dl_info is valid storage; dladdr only writes into it.
    let mut info: libc::Dl_info = unsafe { std::mem::zeroed() };
    // SAFETY: dladdr looks the address up in the loader's tables.
    let found = unsafe { libc::dladdr(ptr as *const libc::c_void, &mut info) };
    if found == 0 || info.dli_fbase as u64 != base {
        return Err(corrupt(format!(
            "the registry symbol resolved to {ptr:#x}, not inside the library loaded at {base:#x}"
        )));
    }
    for span in image.expected(base) {
        // One read per segment, through the kernel: a mapping the file did not
        // describe (an extra segment mapped over this one) reads as an error,
        // not a fault.
        let mut live = vec![0u8; (span.end - span.start) as usize];
        if !crate::os::peek(base.wrapping_add(span.start) as usize, &mut live) {
            return Err(corrupt(format!(
                "the loaded library cannot be read at {:#x}",
                span.start
            )));
        }
        for (vaddr, expected) in &span.regions {
            let at = (vaddr - span.start) as usize;
            if live[at..at + expected.len()] != expected[..] {
                return Err(corrupt(format!(
                    "the loaded library's bytes at {vaddr:#x} differ from the file's"
                )));
            }
        }
    }
    // SAFETY: every byte of the registry equals what the static parse validated
    // (magic, format, size, build fingerprint equal to the host's, function
    // pointers into the library's code, strings of bounded length in the file).
    let registry: &'static RegistryV1 = unsafe { &*(ptr as *const RegistryV1) };
    let check = |live: (usize, usize), want: Slice, what: &str| {
        let want_at = if want.count == 0 {
            live.0
        } else {
            base.wrapping_add(want.start) as usize
        };
        if live != (want_at, want.count) {
            return Err(corrupt(format!(
                "the {what} list the library returns differs from its file's"
            )));
        }
        Ok(())
    };
    let entries = (registry.entries)();
    check(
        (entries.as_ptr() as usize, entries.len()),
        parsed.slices[0],
        "replacement",
    )?;
    let foreign = (registry.foreign)();
    check(
        (foreign.as_ptr() as usize, foreign.len()),
        parsed.slices[1],
        "foreign",
    )?;
    let host_fns = (registry.host_fns)();
    check(
        (host_fns.as_ptr() as usize, host_fns.len()),
        parsed.slices[2],
        "host function",
    )?;
    let shared = (registry.shared)();
    check(
        (shared.as_ptr() as usize, shared.len()),
        parsed.slices[3],
        "shared static",
    )?;
    Ok(LiveRegistry {
        registry,
        entries,
        foreign,
        host_fns,
        shared,
    })
}
