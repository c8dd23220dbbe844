//! The patch's unwind table, checked and then registered with the unwinder
//! the host's panics use (libgcc's `__register_frame`), so a panic in patch
//! code unwinds through its frames into the host's and is caught where the
//! host catches.
//!
//! The unwinder trusts what it is given, and a panic anywhere in the process
//! may walk it later, so the relocated table is read first with `gimli`:
//! every record well formed, every FDE covering code of the patch, every LSDA
//! inside the patch, every personality one of the host's, and every row of
//! every FDE's unwind program computable.

use gimli::{
    BaseAddresses, CieOrFde, EhFrame, LittleEndian, Pointer, UnwindContext, UnwindSection,
    UnwindTable,
};

/// The unwinder's registration function, if the process has one.
pub fn register_frame_fn() -> Option<unsafe extern "C" fn(*const u8)> {
    let f = super::resolve::library_symbol("__register_frame")?;
    // SAFETY: `__register_frame` has this C signature in libgcc (and LLVM's
    // libunwind); the address came from the dynamic loader.
    Some(unsafe { std::mem::transmute::<usize, unsafe extern "C" fn(*const u8)>(f) })
}

/// Where the checked table may point.
pub struct Bounds<'a> {
    /// The patch's code: each FDE must cover a part of one range.
    pub code: &'a [(usize, usize)],
    /// The patch's mapping: every LSDA lies in it.
    pub mapping: (usize, usize),
    /// The personality routines a CIE may name.
    pub personalities: &'a [usize],
}

/// Checks the relocated `.eh_frame` `table`, mapped at `addr`.
pub fn check(table: &[u8], addr: usize, bounds: &Bounds<'_>) -> Result<(), String> {
    let eh = EhFrame::new(table, LittleEndian);
    let bases = BaseAddresses::default().set_eh_frame(addr as u64);
    let mut ctx = Box::new(UnwindContext::new());
    let mut entries = eh.entries(&bases);
    let inside = |a: u64, (lo, hi): (usize, usize)| a >= lo as u64 && a < hi as u64;
    let mut fdes = 0usize;
    while let Some(entry) = entries
        .next()
        .map_err(|e| format!("its unwind table is malformed: {e}"))?
    {
        match entry {
            CieOrFde::Cie(cie) => {
                let Some(p) = cie.personality() else { continue };
                let routine = match p {
                    Pointer::Direct(a) => a,
                    Pointer::Indirect(slot) => {
                        let mut word = [0u8; 8];
                        if !crate::os::peek(slot as usize, &mut word) {
                            return Err("its unwind table names an unreadable personality".into());
                        }
                        u64::from_le_bytes(word)
                    }
                };
                if !bounds.personalities.contains(&(routine as usize)) {
                    return Err(format!(
                        "its unwind table names a personality routine at {routine:#x}, which is none of the host's"
                    ));
                }
            }
            CieOrFde::Fde(partial) => {
                let fde = partial
                    .parse(EhFrame::cie_from_offset)
                    .map_err(|e| format!("its unwind table has a malformed FDE: {e}"))?;
                let (start, len) = (fde.initial_address(), fde.len());
                let end = start.checked_add(len).ok_or("an FDE's range overflows")?;
                let covered = bounds
                    .code
                    .iter()
                    .any(|&(lo, hi)| start >= lo as u64 && end <= hi as u64 && len > 0);
                if !covered {
                    return Err(format!(
                        "its unwind table describes {start:#x}..{end:#x}, which is not code of the patch"
                    ));
                }
                if let Some(lsda) = fde.lsda() {
                    let (Pointer::Direct(a) | Pointer::Indirect(a)) = lsda;
                    if !inside(a, bounds.mapping) {
                        return Err(format!(
                            "its unwind table points at exception data at {a:#x}, outside the patch"
                        ));
                    }
                }
                let mut rows = UnwindTable::new(&eh, &bases, &mut ctx, &fde)
                    .map_err(|e| format!("an FDE's unwind program is malformed: {e}"))?;
                while rows
                    .next_row()
                    .map_err(|e| format!("an FDE's unwind program is malformed: {e}"))?
                    .is_some()
                {}
                fdes += 1;
            }
        }
    }
    if fdes == 0 && !bounds.code.is_empty() {
        return Err("its unwind table describes none of its code".into());
    }
    Ok(())
}

/// Registers the terminated `.eh_frame` at `eh_frame`. It is never
/// deregistered: linked patches stay mapped for the life of the process.
///
/// # Safety
/// `eh_frame` must point at a relocated `.eh_frame` section that passed
/// [`check`], followed by a zero terminator, in memory that stays mapped and
/// unchanged forever.
pub unsafe fn register(register: unsafe extern "C" fn(*const u8), eh_frame: usize) {
    // SAFETY: the caller's contract; libgcc locks its own list.
    unsafe { register(eh_frame as *const u8) };
}
