//! Encodings of the few x86-64 instructions the patcher writes.

/// `endbr64`: the landing pad indirect-branch tracking (CET IBT) requires.
pub const ENDBR64: [u8; 4] = [0xF3, 0x0F, 0x1E, 0xFA];
/// The 2-byte NOP (`xchg ax, ax`) an unpatched entry holds.
pub const NOP2: [u8; 2] = [0x66, 0x90];
/// `jmp -16`: from the entry back to the start of its 14-byte pad.
pub const JMP_TO_PAD: [u8; 2] = [0xEB, 0xF0];
/// `jmp +12`: from the start of the pad over the rest of it, to the entry.
pub const PAD_SKIP: [u8; 2] = [0xEB, 0x0C];
/// First two bytes of `jmp qword ptr [rip+0]`.
pub const JMP_RIP_OPCODE: [u8; 2] = [0xFF, 0x25];
/// The one-byte NOP.
pub const NOP: u8 = 0x90;
/// `int3`, used to fill bytes after a jump that are never executed.
pub const INT3: u8 = 0xCC;
/// Length of the pad before a patchable entry.
pub const PAD_LEN: usize = 14;

/// `jmp qword ptr [rip+0]` followed by the 8-byte absolute target: 14 bytes, the
/// content of a redirected pad.
pub fn long_jump_rip(target: u64) -> [u8; 14] {
    let mut b = [0u8; 14];
    b[..2].copy_from_slice(&JMP_RIP_OPCODE);
    b[6..].copy_from_slice(&target.to_le_bytes());
    b
}

/// The scratch register a trampoline loads its target into.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ScratchRegister {
    /// `movabs rax, imm64; jmp rax` (12 bytes). Only for targets proven not
    /// variadic: variadic calls pass the vector-register count in AL.
    Rax,
    /// `movabs r11, imm64; jmp r11` (13 bytes). r11 carries nothing across a call.
    R11,
}

impl ScratchRegister {
    /// Length of the jump through this register.
    pub fn jump_len(self) -> usize {
        match self {
            Self::Rax => 12,
            Self::R11 => 13,
        }
    }

    /// The register's name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Rax => "rax",
            Self::R11 => "r11",
        }
    }

    /// `movabs reg, target; jmp reg`.
    pub fn jump(self, target: u64) -> Vec<u8> {
        let mut v = Vec::with_capacity(self.jump_len());
        match self {
            Self::Rax => {
                v.extend_from_slice(&[0x48, 0xB8]);
                v.extend_from_slice(&target.to_le_bytes());
                v.extend_from_slice(&[0xFF, 0xE0]);
            }
            Self::R11 => {
                v.extend_from_slice(&[0x49, 0xBB]);
                v.extend_from_slice(&target.to_le_bytes());
                v.extend_from_slice(&[0x41, 0xFF, 0xE3]);
            }
        }
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use iced_x86::{Decoder, DecoderOptions, Mnemonic, Register};

    fn decode(bytes: &[u8]) -> Vec<iced_x86::Instruction> {
        Decoder::with_ip(64, bytes, 0x1000, DecoderOptions::NONE)
            .into_iter()
            .collect()
    }

    #[test]
    fn jumps_decode_as_intended() {
        let t = 0x1122_3344_5566_7788u64;
        for (reg, r) in [
            (ScratchRegister::Rax, Register::RAX),
            (ScratchRegister::R11, Register::R11),
        ] {
            let i = decode(&reg.jump(t));
            assert_eq!(i.len(), 2);
            assert_eq!(i[0].mnemonic(), Mnemonic::Mov);
            assert_eq!(i[0].op0_register(), r);
            assert_eq!(i[0].immediate64(), t);
            assert_eq!(i[1].mnemonic(), Mnemonic::Jmp);
            assert_eq!(i[1].op0_register(), r);
            assert_eq!(reg.jump(t).len(), reg.jump_len());
        }
        let i = decode(&long_jump_rip(t));
        assert_eq!(i[0].mnemonic(), Mnemonic::Jmp);
        assert_eq!(i[0].len(), 6);
        assert!(i[0].is_ip_rel_memory_operand());
        assert_eq!(i[0].ip_rel_memory_address(), 0x1006);
        let i = decode(&JMP_TO_PAD);
        assert_eq!(i[0].near_branch_target(), 0x1000 + 2 - 16);
        let i = decode(&PAD_SKIP);
        assert_eq!(i[0].near_branch_target(), 0x1000 + 14);
        assert_eq!(decode(&ENDBR64)[0].mnemonic(), Mnemonic::Endbr64);
        assert_eq!(decode(&NOP2)[0].mnemonic(), Mnemonic::Nop);
    }
}
