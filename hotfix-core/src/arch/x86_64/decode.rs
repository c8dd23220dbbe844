//! Decoding a whole function into instructions with iced-x86.

use iced_x86::{Decoder, DecoderOptions, FlowControl, Instruction, OpKind};

use crate::code_error::CodeError;

/// One decoded instruction and what the window analysis needs of it.
#[derive(Clone, Copy, Debug)]
pub struct Insn {
    /// Its address.
    pub ip: usize,
    /// Its length in bytes.
    pub len: usize,
    /// The decoded instruction.
    pub instr: Instruction,
}

impl Insn {
    /// One past its last byte (the return address, for a call).
    pub fn end(&self) -> usize {
        self.ip + self.len
    }

    /// The target of a relative branch, call, loop, jrcxz or xbegin.
    pub fn branch_target(&self) -> Option<usize> {
        (0..self.instr.op_count())
            .any(|i| {
                matches!(
                    self.instr.op_kind(i),
                    OpKind::NearBranch16 | OpKind::NearBranch32 | OpKind::NearBranch64
                )
            })
            .then(|| self.instr.near_branch_target() as usize)
    }

    /// The address a RIP-relative operand references (`lea r, [rip+x]`, loads).
    pub fn rip_relative_target(&self) -> Option<usize> {
        self.instr
            .is_ip_rel_memory_operand()
            .then(|| self.instr.ip_rel_memory_address() as usize)
    }

    /// Whether it is a call (direct or indirect).
    pub fn is_call(&self) -> bool {
        matches!(
            self.instr.flow_control(),
            FlowControl::Call | FlowControl::IndirectCall
        )
    }

    /// Whether it is an indirect jump whose targets are computed at run time
    /// (through a register or a register-addressed table). A jump through one
    /// RIP-relative memory slot (a tail call through the GOT or a function
    /// pointer variable) leaves the function and is not counted.
    pub fn is_computed_jump(&self) -> bool {
        self.instr.flow_control() == FlowControl::IndirectBranch
            && !self.instr.is_ip_rel_memory_operand()
    }
}

/// Decodes `bytes` (located at `address`) into whole instructions. Fails with
/// [`CodeError::UndecodableInstruction`] at the first invalid or truncated one.
pub fn decode_all(symbol: &str, address: usize, bytes: &[u8]) -> Result<Vec<Insn>, CodeError> {
    let mut decoder = Decoder::with_ip(64, bytes, address as u64, DecoderOptions::NONE);
    let mut out = Vec::new();
    let mut instr = Instruction::default();
    while decoder.can_decode() {
        let offset = decoder.position();
        decoder.decode_out(&mut instr);
        if instr.is_invalid() {
            let end = bytes.len().min(offset + 15);
            return Err(CodeError::UndecodableInstruction {
                symbol: symbol.to_string(),
                at: address + offset,
                bytes: bytes[offset..end].into(),
            });
        }
        out.push(Insn {
            ip: instr.ip() as usize,
            len: instr.len(),
            instr,
        });
    }
    Ok(out)
}
