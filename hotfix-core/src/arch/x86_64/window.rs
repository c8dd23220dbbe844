//! Planning a raw trampoline into a foreign function: which bytes are replaced,
//! and proof that no code can land in the middle of them.
//!
//! The window starts at the function's entry, or just after an `endbr64` there
//! (kept in place so the function stays a valid indirect-branch target). It
//! covers the jump (`movabs rax|r11, target; jmp rax|r11`) rounded up to whole
//! instructions; the tail after the jump is filled with `int3`.
//!
//! Refused, each with its own [`CodeError`]: a function shorter than that; any
//! relative branch (in the function or one of its fragments) landing strictly
//! inside the window; any RIP-relative reference to an address strictly inside
//! it; a call inside the window returning strictly inside it; any computed jump
//! (a jump table: its targets cannot be proven outside the window). Landing
//! exactly on the window's first byte is fine: the jump starts there.

use super::decode::{Insn, decode_all};
use super::encode::{ENDBR64, INT3, ScratchRegister};
use crate::arch::{FunctionImage, Variadic};
use crate::code_error::CodeError;
use crate::os::CodeEdit;

/// Where and how a foreign function gets its jump. Pure data: making it writes
/// nothing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TrampolinePlan {
    /// The function's symbol.
    pub symbol: String,
    /// The function's runtime address.
    pub function: usize,
    /// The function's size.
    pub size: usize,
    /// First byte replaced (after a kept `endbr64`).
    pub window: usize,
    /// Whether an `endbr64` at the entry is kept in front of the window.
    pub kept_endbr: bool,
    /// Register the jump goes through.
    pub scratch: ScratchRegister,
    /// The original bytes of the window: whole instructions.
    pub original: Vec<u8>,
}

impl TrampolinePlan {
    /// Length of the window (the jump plus `int3` up to an instruction boundary).
    pub fn window_len(&self) -> usize {
        self.original.len()
    }

    /// One past the last byte of the window.
    pub fn window_end(&self) -> usize {
        self.window + self.original.len()
    }

    /// The window's bytes when jumping to `target`: the jump, then `int3` filler.
    pub fn patched_bytes(&self, target: usize) -> Vec<u8> {
        let mut v = self.scratch.jump(target as u64);
        v.resize(self.original.len(), INT3);
        v
    }

    /// The edit from the original bytes to a jump to `target`.
    pub fn apply_edit(&self, target: usize) -> CodeEdit {
        CodeEdit {
            addr: self.window,
            expected_old: self.original.clone(),
            new: self.patched_bytes(target),
        }
    }

    /// The edit re-pointing the jump from `from` to `to`.
    pub fn repoint_edit(&self, from: usize, to: usize) -> CodeEdit {
        CodeEdit {
            addr: self.window,
            expected_old: self.patched_bytes(from),
            new: self.patched_bytes(to),
        }
    }

    /// The edit restoring the original bytes over a jump to `from`.
    pub fn restore_edit(&self, from: usize) -> CodeEdit {
        CodeEdit {
            addr: self.window,
            expected_old: self.patched_bytes(from),
            new: self.original.clone(),
        }
    }
}

/// Plans the trampoline of `image`, refusing whatever is not proven safe.
pub fn plan_trampoline(image: &FunctionImage<'_>) -> Result<TrampolinePlan, CodeError> {
    let symbol = image.symbol;
    let kept = if image.bytes.starts_with(&ENDBR64) {
        ENDBR64.len()
    } else {
        0
    };
    let scratch = match image.variadic {
        Variadic::No => ScratchRegister::Rax,
        Variadic::Yes | Variadic::Unknown => ScratchRegister::R11,
    };
    let needed = kept + scratch.jump_len();
    if image.bytes.len() < needed {
        return Err(CodeError::FunctionTooShort {
            symbol: symbol.to_string(),
            address: image.address,
            size: image.bytes.len(),
            needed,
        });
    }
    let insns = decode_all(symbol, image.address, image.bytes)?;
    let start = image.address + kept;
    let jump_end = start + scratch.jump_len();
    let end = insns
        .iter()
        .filter(|i| i.ip >= start && i.ip < jump_end)
        .map(Insn::end)
        .max()
        .unwrap_or(jump_end)
        .max(jump_end);
    let inside = |a: usize| a > start && a < end;

    for i in insns.iter().filter(|i| i.ip >= start && i.ip < end) {
        if i.is_call() && inside(i.end()) {
            return Err(CodeError::CallInWindow {
                symbol: symbol.to_string(),
                call_at: i.ip,
                return_to: i.end(),
            });
        }
    }
    let fragments = image
        .fragments
        .iter()
        .map(|f| decode_all(f.name, f.address, f.bytes))
        .collect::<Result<Vec<_>, _>>()?;
    for i in insns.iter().chain(fragments.iter().flatten()) {
        if let Some(target) = i.branch_target().filter(|&t| inside(t)) {
            return Err(CodeError::BranchIntoWindow {
                symbol: symbol.to_string(),
                from: i.ip,
                target,
                window_start: start,
                window_end: end,
            });
        }
        if let Some(target) = i.rip_relative_target().filter(|&t| inside(t)) {
            return Err(CodeError::AddressIntoWindow {
                symbol: symbol.to_string(),
                at: i.ip,
                target,
                window_start: start,
                window_end: end,
            });
        }
        if i.is_computed_jump() {
            return Err(CodeError::IndirectJump {
                symbol: symbol.to_string(),
                at: i.ip,
                instruction: format!("{:?}", i.instr.code()),
            });
        }
    }
    let off = kept;
    Ok(TrampolinePlan {
        symbol: symbol.to_string(),
        function: image.address,
        size: image.bytes.len(),
        window: start,
        kept_endbr: kept > 0,
        scratch,
        original: image.bytes[off..off + (end - start)].to_vec(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image(bytes: &[u8], variadic: Variadic) -> FunctionImage<'_> {
        FunctionImage {
            symbol: "f",
            address: 0x1000,
            bytes,
            variadic,
            fragments: Vec::new(),
        }
    }

    // push rbp; mov rbp,rsp; mov eax,edi; add eax,1; nop x8; pop rbp; ret
    const PLAIN: [u8; 18] = [
        0x55, 0x48, 0x89, 0xE5, 0x89, 0xF8, 0x83, 0xC0, 0x01, 0x90, 0x90, 0x90, 0x90, 0x90, 0x90,
        0x90, 0x5D, 0xC3,
    ];

    #[test]
    fn plans_whole_instructions() {
        let p = plan_trampoline(&image(&PLAIN, Variadic::No)).unwrap();
        assert_eq!(p.scratch, ScratchRegister::Rax);
        assert_eq!(p.window, 0x1000);
        assert_eq!(p.window_len(), 12);
        let p = plan_trampoline(&image(&PLAIN, Variadic::Unknown)).unwrap();
        assert_eq!(p.scratch, ScratchRegister::R11);
        assert_eq!(p.window_len(), 13);
        let bytes = p.patched_bytes(0x55aa);
        assert_eq!(bytes.len(), 13);
    }

    #[test]
    fn keeps_endbr_and_rounds_up() {
        let mut b = ENDBR64.to_vec();
        // mov rax, imm64 (10 bytes) then mov eax, imm32 (5 bytes), ret
        b.extend_from_slice(&[0x48, 0xB8, 1, 2, 3, 4, 5, 6, 7, 8]);
        b.extend_from_slice(&[0xB8, 1, 0, 0, 0, 0xC3]);
        let p = plan_trampoline(&image(&b, Variadic::No)).unwrap();
        assert!(p.kept_endbr);
        assert_eq!(p.window, 0x1004);
        assert_eq!(p.window_len(), 15);
        assert_eq!(&p.patched_bytes(0)[12..], &[INT3, INT3, INT3]);
    }

    #[test]
    fn refuses_short_and_branches_into_window() {
        assert!(matches!(
            plan_trampoline(&image(&PLAIN[..11], Variadic::No)),
            Err(CodeError::FunctionTooShort { needed: 12, .. })
        ));
        let mut b = PLAIN.to_vec();
        // jmp back to offset 4 (inside the window)
        let at = b.len();
        b.extend_from_slice(&[0xEB, (4i32 - (at as i32 + 2)) as u8]);
        assert!(matches!(
            plan_trampoline(&image(&b, Variadic::No)),
            Err(CodeError::BranchIntoWindow { target: 0x1004, .. })
        ));
        // a jump to the function start is fine
        let mut b = PLAIN.to_vec();
        let at = b.len();
        b.extend_from_slice(&[0xEB, (0i32 - (at as i32 + 2)) as u8]);
        assert!(plan_trampoline(&image(&b, Variadic::No)).is_ok());
        // jmp rax anywhere: computed jump
        let mut b = PLAIN.to_vec();
        b.extend_from_slice(&[0xFF, 0xE0]);
        assert!(matches!(
            plan_trampoline(&image(&b, Variadic::No)),
            Err(CodeError::IndirectJump { .. })
        ));
    }

    #[test]
    fn refuses_call_returning_inside() {
        // call rel32 at offset 1, returns to 6; then nops and ret
        let mut b = vec![0x90, 0xE8, 0, 0, 0, 0];
        b.extend_from_slice(&[0x90; 10]);
        b.push(0xC3);
        assert!(matches!(
            plan_trampoline(&image(&b, Variadic::No)),
            Err(CodeError::CallInWindow {
                return_to: 0x1006,
                ..
            })
        ));
    }
}
