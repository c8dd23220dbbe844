//! Processor-level primitives: core serialization, single-instruction code stores,
//! and reading the interrupted instruction pointer from a signal context.

use std::arch::asm;

/// Executes a core-serializing instruction (`cpuid`) on the calling thread.
/// Async-signal-safe: it is one instruction, no memory is touched.
#[inline]
pub fn serialize_core() {
    // SAFETY: cpuid reads only eax/ecx and writes eax/ebx/ecx/edx, all declared
    // (rbx is saved and restored by hand since LLVM reserves it); no memory access.
    unsafe {
        asm!(
            "mov {tmp}, rbx",
            "cpuid",
            "mov rbx, {tmp}",
            tmp = out(reg) _,
            inout("eax") 0u32 => _,
            inout("ecx") 0u32 => _,
            out("edx") _,
            options(nostack, preserves_flags),
        );
    }
}

/// Stores two bytes at `addr` with ONE `mov word` instruction, so a core fetching
/// instructions there sees either the old or the new two bytes, never a mix.
///
/// # Safety
/// `addr` must be 2-byte aligned, writable, and not accessed by Rust code as a
/// typed object concurrently.
#[inline]
pub unsafe fn store_u16(addr: *mut u8, bytes: [u8; 2]) {
    let v = u16::from_le_bytes(bytes);
    // SAFETY: the caller guarantees addr is aligned and writable; a single aligned
    // word store is atomic on x86-64.
    unsafe {
        asm!("mov word ptr [{a}], {v:x}", a = in(reg) addr, v = in(reg) v, options(nostack, preserves_flags));
    }
}

/// Stores eight bytes at `addr` with ONE `mov qword` instruction. Atomic when the
/// eight bytes lie within one cache line (Intel SDM Vol. 3, 8.1.1), even unaligned.
///
/// # Safety
/// `addr..addr+8` must be writable, within one 64-byte cache line, and not
/// accessed by Rust code as a typed object concurrently.
#[inline]
pub unsafe fn store_u64(addr: *mut u8, value: u64) {
    // SAFETY: per the caller's guarantees; x86-64 permits unaligned stores.
    unsafe {
        asm!("mov qword ptr [{a}], {v}", a = in(reg) addr, v = in(reg) value, options(nostack, preserves_flags));
    }
}

/// The interrupted instruction pointer and stack pointer saved in the `ucontext_t`
/// a `SA_SIGINFO` handler receives. Async-signal-safe (plain loads).
///
/// # Safety
/// `ctx` must be the third argument of a `SA_SIGINFO` signal handler.
#[inline]
pub unsafe fn context_pc_sp(ctx: *const libc::c_void) -> (usize, usize) {
    if ctx.is_null() {
        return (0, 0);
    }
    // SAFETY: the kernel passes a valid ucontext_t to SA_SIGINFO handlers.
    let uc = unsafe { &*(ctx as *const libc::ucontext_t) };
    let g = &uc.uc_mcontext.gregs;
    (
        g[libc::REG_RIP as usize] as usize,
        g[libc::REG_RSP as usize] as usize,
    )
}

/// Whether indirect-branch tracking (CET IBT) is enforced for this thread, from the
/// `x86_Thread_features_locked`/`x86_Thread_features` lines of /proc/self/status.
pub fn ibt_enforced() -> bool {
    std::fs::read_to_string("/proc/thread-self/status")
        .map(|s| {
            s.lines()
                .filter(|l| l.starts_with("x86_Thread_features:"))
                .any(|l| l.split_whitespace().any(|w| w == "ibt"))
        })
        .unwrap_or(false)
}
