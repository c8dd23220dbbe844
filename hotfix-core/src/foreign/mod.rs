//! Foreign (C/C++) functions: finding them by symbol, planning a raw trampoline
//! into them, and a stack of patches per function.

mod objects;
mod stack;
mod symbols;

pub use objects::{LoadedObject, gnu_build_id, loaded_objects};
pub use stack::{ForeignPatchStack, PatchId, PendingPush, PendingRevert};
pub use symbols::{ForeignSymbol, Fragment, find_function, find_functions};
pub(crate) use symbols::{executable_statics, rust_path};

use crate::arch::{self, FragmentImage, FunctionImage, TrampolinePlan};
use crate::code_error::CodeError;
use crate::os::Maps;

/// The caller-saved registers that callers of `sym` may keep live across a call
/// to it: empty unless it binds locally (see [`ForeignSymbol::binds_locally`])
/// and its code, decoded, leaves some of them untouched. A direct call out of
/// the function counts as clobbering everything when it reaches a PLT stub or
/// another object.
pub fn registers_callers_may_keep(sym: &ForeignSymbol) -> Result<Vec<&'static str>, CodeError> {
    if !sym.binds_locally {
        return Ok(Vec::new());
    }
    let maps = Maps::read()?;
    let object = maps
        .find(sym.address)
        .map(|m| m.path.clone())
        .unwrap_or_default();
    let calls_out = |target: usize| {
        let Some(m) = maps.find(target) else {
            return true;
        };
        if m.path != object || !m.perms.read {
            return true;
        }
        // Through the kernel: the mapping may have changed since it was read.
        let mut head = [0u8; 16];
        let len = head.len().min(m.end - target);
        if !crate::os::peek(target, &mut head[..len]) {
            return true;
        }
        arch::is_plt_stub(target, &head[..len])
    };
    arch::untouched_caller_saved(&image_of(sym), calls_out)
}

fn image_of(sym: &ForeignSymbol) -> FunctionImage<'_> {
    FunctionImage {
        symbol: &sym.name,
        address: sym.address,
        bytes: &sym.original,
        variadic: sym.variadic,
        fragments: sym
            .fragments
            .iter()
            .map(|f| FragmentImage {
                name: &f.name,
                address: f.address,
                bytes: &f.original,
            })
            .collect(),
    }
}

/// Checks that memory holds the file's bytes for the function and its fragments
/// (a debugger's `cc`, another tool's hook or self-modified code are refused),
/// then plans the trampoline. Writes nothing.
pub fn plan_foreign(sym: &ForeignSymbol) -> Result<TrampolinePlan, CodeError> {
    let maps = Maps::read()?;
    verify_original(&maps, &sym.name, &sym.object, sym.address, &sym.original)?;
    for f in &sym.fragments {
        verify_original(&maps, &sym.name, &sym.object, f.address, &f.original)?;
    }
    arch::plan_trampoline(&image_of(sym))
}

fn verify_original(
    maps: &Maps,
    symbol: &str,
    file: &std::path::Path,
    address: usize,
    original: &[u8],
) -> Result<(), CodeError> {
    maps.check_code(address, original.len())?;
    // SAFETY: the range was just checked to be mapped readable.
    let now = unsafe { std::slice::from_raw_parts(address as *const u8, original.len()) };
    if let Some(i) = now.iter().zip(original).position(|(a, b)| a != b) {
        let end = (i + 16).min(original.len());
        return Err(CodeError::NotOriginalBytes {
            symbol: symbol.to_string(),
            at: address + i,
            found: now[i..end].into(),
            expected: original[i..end].into(),
            file: file.to_path_buf(),
        });
    }
    Ok(())
}
