//! The patch's unwind table, registered with the unwinder the host's panics
//! use (libgcc's `__register_frame`), so a panic in patch code unwinds
//! through its frames into the host's and is caught where the host catches.

/// The unwinder's registration function, if the process has one.
pub fn register_frame_fn() -> Option<unsafe extern "C" fn(*const u8)> {
    let f = super::resolve::library_symbol("__register_frame")?;
    // SAFETY: `__register_frame` has this C signature in libgcc (and LLVM's
    // libunwind); the address came from the dynamic loader.
    Some(unsafe { std::mem::transmute::<usize, unsafe extern "C" fn(*const u8)>(f) })
}

/// Registers the terminated `.eh_frame` at `eh_frame`. It is never
/// deregistered: linked patches stay mapped for the life of the process.
///
/// # Safety
/// `eh_frame` must point at a relocated `.eh_frame` section, followed by a
/// zero terminator, in memory that stays mapped and unchanged forever.
pub unsafe fn register(register: unsafe extern "C" fn(*const u8), eh_frame: usize) {
    // SAFETY: the caller's contract; libgcc locks its own list.
    unsafe { register(eh_frame as *const u8) };
}
