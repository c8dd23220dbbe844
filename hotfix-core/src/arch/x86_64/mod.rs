//! x86-64 machine code: jump encodings, entry stubs, whole-function decoding,
//! trampoline windows and what a function's code refers to.

pub mod clobbers;
pub mod cpu;
pub mod decode;
pub mod encode;
pub mod entry;
pub mod refs;
pub mod reloc;
pub mod window;

pub use clobbers::{is_plt_stub, untouched_caller_saved};
pub use cpu::{context_pc_sp, serialize_core};
pub use encode::ScratchRegister;
pub use entry::{check_entry, redirect_entry, restore_entry, set_entries};
pub use refs::code_refs;
pub use window::{TrampolinePlan, plan_trampoline};

use crate::code_error::CodeError;
use crate::os;

/// Bytes of pad before a patchable entry.
pub const ENTRY_PAD_LEN: usize = encode::PAD_LEN;

/// Checks that `target` can be jumped to: it lies in executable memory of this
/// process and, where indirect-branch tracking is enforced, starts with `endbr64`.
pub fn check_jump_target(target: usize) -> Result<(), CodeError> {
    check_jump_target_in(&os::Maps::read()?, target)
}

/// [`check_jump_target`] against mappings already read.
pub fn check_jump_target_in(maps: &os::Maps, target: usize) -> Result<(), CodeError> {
    if maps.check_code(target, 4).is_err() {
        return Err(CodeError::TargetNotExecutable { target });
    }
    if cpu::ibt_enforced() {
        // SAFETY: the 4 bytes were just checked to be mapped readable.
        let head = unsafe { std::slice::from_raw_parts(target as *const u8, 4) };
        if head != encode::ENDBR64 {
            return Err(CodeError::TargetLacksEndbr { target });
        }
    }
    Ok(())
}
