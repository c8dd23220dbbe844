//! What a function's machine code refers to: the x86-64 half of the walk over a
//! patch's call graph (`loader::reach`).
//!
//! The function is decoded whole (linear sweep over its symbol's extent: code
//! a compiler emits holds no data between instructions on x86-64; jump tables
//! live in read-only data). Each instruction is classified:
//! - a direct call or jump: [`CodeRef::Branch`];
//! - a call or jump through a RIP-relative slot (`call [rip+x]`, the GOT):
//!   [`CodeRef::Memory`] of the slot, whose relocation says where it goes;
//! - any other RIP-relative operand (`lea`, loads, stores, compares):
//!   [`CodeRef::Memory`];
//! - the thread-local access sequences of the x86-64 TLS ABI: `lea rdi,
//!   [rip+x]` directly followed by a call (to `__tls_get_addr`) is a
//!   [`CodeRef::TlsLookup`] of the GOT entry `x`, general dynamic when the
//!   `lea` carries the ABI's `0x66` prefix, local dynamic otherwise. For local
//!   dynamic, the block's base is returned in `rax`: the displacements applied
//!   to it (followed on every path through the function, through register
//!   copies, `lea` and `add`) are [`CodeRef::TlsOffset`]s, and where the base
//!   escapes what can be followed, [`CodeRef::TlsUnresolved`].
//!
//! Calls and jumps through registers are not followed here: what they can
//! reach is found from the data the code refers to (vtables, function pointer
//! tables), which the walk follows through the patch's relocations.

use iced_x86::{
    Code, Decoder, DecoderOptions, FlowControl, Instruction, InstructionInfoFactory, Mnemonic,
    OpAccess, OpKind, Register,
};

use crate::arch::{CodeRef, RefsError};

/// Decodes the function at `address` (its `bytes`) and appends what it refers
/// to to `out`. Each decoded instruction takes one from `budget`. `tls_entry`
/// tells whether an address is a TLS GOT entry (its relocation names a TLS
/// module): only an argument of a lookup that is one is a
/// [`CodeRef::TlsLookup`].
pub fn code_refs(
    address: u64,
    bytes: &[u8],
    budget: &mut u64,
    tls_entry: &dyn Fn(u64) -> bool,
    out: &mut Vec<CodeRef>,
) -> Result<(), RefsError> {
    // One pass without keeping the instructions (a whole function of them
    // would cost 40 bytes each); the one before is kept, to see what follows
    // a `lea rdi`.
    let start = out.len();
    let mut decoder = Decoder::with_ip(64, bytes, address, DecoderOptions::NONE);
    let mut prev: Option<Instruction> = None;
    // Local-dynamic lookups: (index in `out`, index of the call after it).
    let mut locals = Vec::new();
    let mut count = 0;
    loop {
        let insn = if decoder.can_decode() {
            Some(next(&mut decoder, address, budget)?)
        } else {
            None
        };
        if let Some(p) = prev {
            let next_is_call = insn
                .as_ref()
                .is_some_and(|n| n.flow_control() == FlowControl::Call || is_call_through(n));
            if let Some(general) = tls_lookup(&p, next_is_call, bytes, address, tls_entry) {
                out.push(CodeRef::TlsLookup {
                    got: p.ip_rel_memory_address(),
                    general,
                });
                if !general {
                    locals.push((out.len(), count));
                }
            } else {
                classify(&p, out);
            }
        }
        let Some(insn) = insn else { break };
        prev = Some(insn);
        count += 1;
    }
    if locals.is_empty() {
        return Ok(());
    }
    // A local-dynamic lookup: follow its block base through the function, on
    // every path. Rare (code that reaches several thread-locals at once), so
    // only then are the function's instructions kept.
    let mut decoder = Decoder::with_ip(64, bytes, address, DecoderOptions::NONE);
    let insns: Vec<Instruction> = decoder.iter().collect();
    let mut info = InstructionInfoFactory::new();
    let mut refs = out.split_off(start);
    for (at, call) in locals.into_iter().rev() {
        let mut offsets = Vec::new();
        local_dynamic_offsets(&insns, call, &mut info, &mut offsets);
        refs.splice(at - start..at - start, offsets);
    }
    out.append(&mut refs);
    Ok(())
}

/// Decodes the next instruction, taking one from `budget`.
fn next(
    decoder: &mut Decoder<'_>,
    address: u64,
    budget: &mut u64,
) -> Result<Instruction, RefsError> {
    if *budget == 0 {
        return Err(RefsError::OverBudget);
    }
    *budget -= 1;
    let at = address + decoder.position() as u64;
    let insn = decoder.decode();
    if insn.is_invalid() {
        return Err(RefsError::Undecodable { at });
    }
    Ok(insn)
}

/// Whether `insn` is the argument of a TLS lookup (`lea rdi, [rip+x]` of a
/// TLS GOT entry, a call next); if so, whether general dynamic.
fn tls_lookup(
    insn: &Instruction,
    next_is_call: bool,
    bytes: &[u8],
    address: u64,
    tls_entry: &dyn Fn(u64) -> bool,
) -> Option<bool> {
    let lookup = insn.code() == Code::Lea_r64_m
        && insn.op0_register() == Register::RDI
        && insn.is_ip_rel_memory_operand()
        && next_is_call
        && tls_entry(insn.ip_rel_memory_address());
    // The ABI's general-dynamic sequence starts with a `0x66` prefix.
    let first = usize::try_from(insn.ip() - address).ok()?;
    lookup.then(|| bytes.get(first) == Some(&0x66))
}

/// A direct branch, or a RIP-relative operand.
fn classify(insn: &Instruction, out: &mut Vec<CodeRef>) {
    match insn.flow_control() {
        FlowControl::Call | FlowControl::UnconditionalBranch | FlowControl::ConditionalBranch
            if has_near_branch(insn) =>
        {
            out.push(CodeRef::Branch(insn.near_branch_target()));
        }
        _ if insn.is_ip_rel_memory_operand() => {
            out.push(CodeRef::Memory(insn.ip_rel_memory_address()));
        }
        _ => {}
    }
}

fn has_near_branch(insn: &Instruction) -> bool {
    (0..insn.op_count()).any(|i| {
        matches!(
            insn.op_kind(i),
            OpKind::NearBranch16 | OpKind::NearBranch32 | OpKind::NearBranch64
        )
    })
}

fn is_call_through(insn: &Instruction) -> bool {
    insn.flow_control() == FlowControl::IndirectCall && insn.is_ip_rel_memory_operand()
}

/// Registers a call may change (System V x86-64): a block base held in one
/// of them dies at a call.
const CALL_CLOBBERED: [Register; 9] = [
    Register::RAX,
    Register::RCX,
    Register::RDX,
    Register::RSI,
    Register::RDI,
    Register::R8,
    Register::R9,
    Register::R10,
    Register::R11,
];

/// Argument registers: a block base passed in one escapes into the callee.
const ARGUMENTS: [Register; 6] = [
    Register::RDI,
    Register::RSI,
    Register::RDX,
    Register::RCX,
    Register::R8,
    Register::R9,
];

/// A register holding `block base + offset`, and whether that offset was
/// reported (the register then points into a known thread-local).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct Held {
    reg: Register,
    offset: i64,
    reported: bool,
}

/// After a local-dynamic lookup whose call is `insns[call]`: the offsets
/// applied to the returned block base (`rax`), on every path through the
/// function, followed through register copies, `lea` and `add`, and kept in
/// callee-saved registers across calls, until every register holding it is
/// overwritten. If the base (at an offset not reported) escapes where it
/// cannot be followed (stored, passed to a call, returned, combined with
/// another register, out of the function, or past [`TLS_STEPS`]),
/// [`CodeRef::TlsUnresolved`] says so.
fn local_dynamic_offsets(
    insns: &[Instruction],
    call: usize,
    info: &mut InstructionInfoFactory,
    out: &mut Vec<CodeRef>,
) {
    let start = vec![Held {
        reg: Register::RAX,
        offset: 0,
        reported: false,
    }];
    let mut work = vec![(call + 1, start)];
    let mut seen = std::collections::HashSet::new();
    let mut steps = 0;
    while let Some((mut at, mut held)) = work.pop() {
        loop {
            if held.is_empty() || !seen.insert((at, held.clone())) {
                break;
            }
            steps += 1;
            let Some(insn) = insns.get(at).filter(|_| steps <= TLS_STEPS) else {
                // Past the function's end, or too far to follow.
                if held.iter().any(|h| !h.reported) {
                    out.push(CodeRef::TlsUnresolved);
                    return;
                }
                break;
            };
            if !track(insn, &mut held, info, out) {
                out.push(CodeRef::TlsUnresolved);
                return;
            }
            // Whether the base, at an offset not reported, is in one of `regs`.
            let escapes = |held: &[Held], regs: &[Register]| {
                held.iter().any(|h| !h.reported && regs.contains(&h.reg))
            };
            let target = || insn_at(insns, insn.near_branch_target());
            match insn.flow_control() {
                FlowControl::Next => at += 1,
                // `track` refused a base passed as an argument.
                FlowControl::Call | FlowControl::IndirectCall => {
                    held.retain(|h| !CALL_CLOBBERED.contains(&h.reg));
                    at += 1;
                }
                FlowControl::ConditionalBranch => {
                    match target() {
                        Some(t) => work.push((t, held.clone())),
                        // A tail call: the callee gets the argument registers.
                        None if escapes(&held, &ARGUMENTS) => {
                            out.push(CodeRef::TlsUnresolved);
                            return;
                        }
                        None => {}
                    }
                    at += 1;
                }
                FlowControl::UnconditionalBranch => match target() {
                    Some(t) => at = t,
                    None if escapes(&held, &ARGUMENTS) => {
                        out.push(CodeRef::TlsUnresolved);
                        return;
                    }
                    None => break,
                },
                // The caller gets `rax` and `rdx`.
                FlowControl::Return if escapes(&held, &[Register::RAX, Register::RDX]) => {
                    out.push(CodeRef::TlsUnresolved);
                    return;
                }
                // A trap: this path ends.
                FlowControl::Return | FlowControl::Interrupt | FlowControl::Exception => break,
                // A computed jump (its targets are not known here), or
                // transactional memory: nothing more can be followed.
                _ => {
                    if held.iter().any(|h| !h.reported) {
                        out.push(CodeRef::TlsUnresolved);
                        return;
                    }
                    break;
                }
            }
        }
    }
}

/// Most instructions followed after one local-dynamic lookup, all paths
/// together.
const TLS_STEPS: usize = 512;

/// The index of the instruction at `ip`, if one starts there.
fn insn_at(insns: &[Instruction], ip: u64) -> Option<usize> {
    insns.binary_search_by_key(&ip, Instruction::ip).ok()
}

/// Applies one instruction to the registers holding the block base; reports
/// the offsets it accesses. False if the base escapes (see
/// [`local_dynamic_offsets`]).
fn track(
    insn: &Instruction,
    held: &mut Vec<Held>,
    info: &mut InstructionInfoFactory,
    out: &mut Vec<CodeRef>,
) -> bool {
    // Padding (`nopw 0x0(%rax,%rax,1)`) names no memory.
    if insn.mnemonic() == Mnemonic::Nop {
        return true;
    }
    let find = |held: &[Held], r: Register| {
        let r = r.full_register();
        held.iter().position(|h| h.reg == r)
    };
    let has_memory = (0..insn.op_count()).any(|i| insn.op_kind(i) == OpKind::Memory);
    let mut derived: Option<Held> = None;
    let mut used_as_address = Vec::new();
    if has_memory {
        if let Some(i) = find(held, insn.memory_index())
            && !held[i].reported
        {
            return false; // an unknown multiple of the base
        }
        if let Some(i) = find(held, insn.memory_base()) {
            let at = held[i]
                .offset
                .wrapping_add(insn.memory_displacement64() as i64);
            out.push(CodeRef::TlsOffset(at));
            used_as_address.push(held[i].reg);
            if insn.code() == Code::Lea_r64_m {
                derived = Some(Held {
                    reg: insn.op0_register().full_register(),
                    offset: at,
                    reported: true,
                });
            }
        }
    }
    let reg_op =
        |n: u32| (insn.op_kind(n) == OpKind::Register).then(|| insn.op_register(n).full_register());
    match insn.code() {
        Code::Mov_r64_rm64 | Code::Mov_rm64_r64 => {
            if let (Some(d), Some(s)) = (reg_op(0), reg_op(1))
                && let Some(i) = find(held, s)
            {
                derived = Some(Held {
                    reg: d,
                    ..held[i].clone()
                });
                used_as_address.push(s);
            }
        }
        Code::Add_rm64_imm8 | Code::Add_rm64_imm32 | Code::Add_RAX_imm32 => {
            if let Some(d) = reg_op(0)
                && let Some(i) = find(held, d)
            {
                let at = held[i].offset.wrapping_add(insn.immediate(1) as i64);
                out.push(CodeRef::TlsOffset(at));
                derived = Some(Held {
                    reg: d,
                    offset: at,
                    reported: true,
                });
                used_as_address.push(d);
            }
        }
        _ => {}
    }
    let compares = matches!(insn.mnemonic(), Mnemonic::Cmp | Mnemonic::Test);
    let call = matches!(
        insn.flow_control(),
        FlowControl::Call | FlowControl::IndirectCall
    );
    let info = info.info(insn);
    for used in info.used_registers() {
        let r = used.register().full_register();
        let Some(i) = find(held, r) else { continue };
        let reads = matches!(
            used.access(),
            OpAccess::Read | OpAccess::CondRead | OpAccess::ReadWrite | OpAccess::ReadCondWrite
        );
        // A read other than as an address, a copy, or a comparison hands
        // the base on where it is not followed.
        if reads && !held[i].reported && !used_as_address.contains(&r) && !compares {
            return false;
        }
    }
    if call
        && held
            .iter()
            .any(|h| !h.reported && ARGUMENTS.contains(&h.reg))
    {
        return false;
    }
    for used in info.used_registers() {
        if matches!(
            used.access(),
            OpAccess::Write | OpAccess::CondWrite | OpAccess::ReadWrite | OpAccess::ReadCondWrite
        ) {
            let r = used.register().full_register();
            held.retain(|h| h.reg != r);
        }
    }
    if let Some(d) = derived {
        held.retain(|h| h.reg != d.reg);
        held.push(d);
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refs(bytes: &[u8]) -> Vec<CodeRef> {
        let mut out = Vec::new();
        let mut budget = 1000;
        code_refs(0x1000, bytes, &mut budget, &|a| a >= 0x1100, &mut out).unwrap();
        out
    }

    #[test]
    fn calls_jumps_and_rip_operands() {
        // call rel32 (+0x10); lea rax,[rip+0x20]; call [rip+0x30]; jmp rel32 (+0)
        let code = [
            0xe8, 0x10, 0, 0, 0, // call 0x1015
            0x48, 0x8d, 0x05, 0x20, 0, 0, 0, // lea rax,[rip+0x20] -> 0x102c
            0xff, 0x15, 0x30, 0, 0, 0, // call [rip+0x30] -> 0x1042
            0xe9, 0, 0, 0, 0, // jmp 0x1017
        ];
        assert_eq!(
            refs(&code),
            vec![
                CodeRef::Branch(0x1015),
                CodeRef::Memory(0x102c),
                CodeRef::Memory(0x1042),
                CodeRef::Branch(0x1017),
            ]
        );
    }

    #[test]
    fn general_dynamic_tls() {
        // data16 lea rdi,[rip+0x100]; data16 data16 rex.W call rel32
        let code = [
            0x66, 0x48, 0x8d, 0x3d, 0, 1, 0, 0, // -> 0x1108
            0x66, 0x66, 0x48, 0xe8, 0, 0, 0, 0,
        ];
        assert_eq!(
            refs(&code)[0],
            CodeRef::TlsLookup {
                got: 0x1108,
                general: true
            }
        );
    }

    /// The offsets a local-dynamic lookup's code applies, and whether it
    /// reports the base as escaping.
    fn local(after_call: &[u8]) -> (Vec<i64>, bool) {
        // lea rdi,[rip+0x100]; call rel32; then `after_call`.
        let mut code = vec![0x48, 0x8d, 0x3d, 0, 1, 0, 0, 0xe8, 0, 0, 0, 0];
        code.extend_from_slice(after_call);
        let r = refs(&code);
        assert_eq!(
            r[0],
            CodeRef::TlsLookup {
                got: 0x1107,
                general: false
            }
        );
        let offsets = r
            .iter()
            .filter_map(|c| match c {
                CodeRef::TlsOffset(o) => Some(*o),
                _ => None,
            })
            .collect();
        (offsets, r.contains(&CodeRef::TlsUnresolved))
    }

    #[test]
    fn local_dynamic_offsets_through_copies() {
        let (offsets, unresolved) = local(&[
            0x48, 0x89, 0xc1, // mov rcx,rax
            0x48, 0x83, 0x79, 0x38, 0x01, // cmp qword [rcx+0x38],1
            0x48, 0x8d, 0x40, 0x40, // lea rax,[rax+0x40]
            0x48, 0xff, 0x00, // inc qword [rax]
            0x48, 0x89, 0xd8, // mov rax,rbx (the base is gone from rax)
            0x48, 0xc7, 0x40, 0x08, 1, 0, 0, 0, // mov qword [rax+8],1 (not TLS)
            0x31, 0xc9, // xor ecx,ecx (and from rcx)
            0xc3, // ret
        ]);
        assert_eq!(offsets, vec![0x38, 0x40, 0x40]);
        assert!(!unresolved);
    }

    #[test]
    fn local_dynamic_offsets_on_both_branches() {
        let (mut offsets, unresolved) = local(&[
            0x48, 0x85, 0xff, // test rdi,rdi
            0x74, 0x05, // je +5
            0x48, 0x8b, 0x40, 0x10, // mov rax,[rax+0x10]
            0xc3, // ret
            0x48, 0x8b, 0x40, 0x20, // mov rax,[rax+0x20]
            0xc3, // ret
        ]);
        offsets.sort();
        assert_eq!(offsets, vec![0x10, 0x20]);
        assert!(!unresolved);
    }

    #[test]
    fn a_local_dynamic_base_that_escapes_is_unresolved() {
        // mov [rsp+8],rax; ret
        let (_, unresolved) = local(&[0x48, 0x89, 0x44, 0x24, 0x08, 0xc3]);
        assert!(unresolved);
        // Kept in a callee-saved register across a call, then used.
        let (offsets, unresolved) = local(&[
            0x48, 0x89, 0xc3, // mov rbx,rax
            0xe8, 0, 0, 0, 0, // call
            0x48, 0x8b, 0x43, 0x18, // mov rax,[rbx+0x18]
            0x31, 0xdb, // xor ebx,ebx
            0xc3, // ret
        ]);
        assert_eq!(offsets, vec![0x18]);
        assert!(!unresolved);
    }

    #[test]
    fn budget_and_garbage_are_errors() {
        let mut out = Vec::new();
        let mut budget = 1;
        let no_tls = |_| false;
        assert_eq!(
            code_refs(0, &[0x90, 0x90], &mut budget, &no_tls, &mut out),
            Err(RefsError::OverBudget)
        );
        let mut budget = 10;
        assert_eq!(
            code_refs(0, &[0x90, 0x06], &mut budget, &no_tls, &mut out),
            Err(RefsError::Undecodable { at: 1 })
        );
    }
}
