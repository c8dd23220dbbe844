//! Which caller-saved registers a function leaves untouched, decided from its
//! code.
//!
//! GCC's inter-procedural register allocation (`-fipa-ra`, on at `-O2`) lets a
//! caller keep values in caller-saved registers across a call to a function
//! whose code it knows (a `static` or hidden function of the same unit, or any
//! function under LTO) when that function leaves those registers alone. A
//! replacement that follows the plain ABI, and the trampoline's own scratch
//! register, may clobber them. This module finds, from the decoded original,
//! the registers such a caller may rely on.
//!
//! The answer under-approximates what the original clobbers, so it never
//! misses a register a caller could keep: writes of the function and its
//! fragments count; a call or tail jump through a PLT stub, the GOT or a
//! register counts as clobbering every caller-saved register (a compiler
//! cannot know what such a callee does); a direct call to another local
//! function is not followed (its writes are not counted).

use iced_x86::{FlowControl, InstructionInfoFactory, OpAccess, Register};

use super::decode::{Insn, decode_all};
use crate::arch::FunctionImage;
use crate::code_error::CodeError;

/// The caller-saved registers of the System V x86-64 ABI: the integer ones,
/// every vector register (by its full name; xmm16-31 exist with AVX-512) and
/// the AVX-512 mask registers.
const CALLER_SAVED: [(Register, &str); 49] = [
    (Register::RAX, "rax"),
    (Register::RCX, "rcx"),
    (Register::RDX, "rdx"),
    (Register::RSI, "rsi"),
    (Register::RDI, "rdi"),
    (Register::R8, "r8"),
    (Register::R9, "r9"),
    (Register::R10, "r10"),
    (Register::R11, "r11"),
    (Register::ZMM0, "xmm0"),
    (Register::ZMM1, "xmm1"),
    (Register::ZMM2, "xmm2"),
    (Register::ZMM3, "xmm3"),
    (Register::ZMM4, "xmm4"),
    (Register::ZMM5, "xmm5"),
    (Register::ZMM6, "xmm6"),
    (Register::ZMM7, "xmm7"),
    (Register::ZMM8, "xmm8"),
    (Register::ZMM9, "xmm9"),
    (Register::ZMM10, "xmm10"),
    (Register::ZMM11, "xmm11"),
    (Register::ZMM12, "xmm12"),
    (Register::ZMM13, "xmm13"),
    (Register::ZMM14, "xmm14"),
    (Register::ZMM15, "xmm15"),
    (Register::ZMM16, "xmm16"),
    (Register::ZMM17, "xmm17"),
    (Register::ZMM18, "xmm18"),
    (Register::ZMM19, "xmm19"),
    (Register::ZMM20, "xmm20"),
    (Register::ZMM21, "xmm21"),
    (Register::ZMM22, "xmm22"),
    (Register::ZMM23, "xmm23"),
    (Register::ZMM24, "xmm24"),
    (Register::ZMM25, "xmm25"),
    (Register::ZMM26, "xmm26"),
    (Register::ZMM27, "xmm27"),
    (Register::ZMM28, "xmm28"),
    (Register::ZMM29, "xmm29"),
    (Register::ZMM30, "xmm30"),
    (Register::ZMM31, "xmm31"),
    (Register::K0, "k0"),
    (Register::K1, "k1"),
    (Register::K2, "k2"),
    (Register::K3, "k3"),
    (Register::K4, "k4"),
    (Register::K5, "k5"),
    (Register::K6, "k6"),
    (Register::K7, "k7"),
];

/// The caller-saved registers that `image` (with its fragments) never writes,
/// in ABI order; empty when it may clobber all of them. `calls_out(target)`
/// tells whether a direct call or jump to `target` (outside the function)
/// reaches code the compiler could not see (a PLT stub, another object).
pub fn untouched_caller_saved(
    image: &FunctionImage<'_>,
    calls_out: impl Fn(usize) -> bool,
) -> Result<Vec<&'static str>, CodeError> {
    let mut insns = decode_all(image.symbol, image.address, image.bytes)?;
    let mut ranges = vec![(image.address, image.address + image.bytes.len())];
    // Only fragments the function's own code branches into are part of it: a
    // same-named clone from another unit (`foo.constprop.0` of another `foo`)
    // says nothing about this one.
    let mut pending: Vec<&crate::arch::FragmentImage<'_>> = image.fragments.iter().collect();
    loop {
        let targets: Vec<usize> = insns.iter().filter_map(Insn::branch_target).collect();
        let Some(i) = pending.iter().position(|f| {
            targets
                .iter()
                .any(|&t| f.address <= t && t < f.address + f.bytes.len())
        }) else {
            break;
        };
        let f = pending.swap_remove(i);
        insns.extend(decode_all(f.name, f.address, f.bytes)?);
        ranges.push((f.address, f.address + f.bytes.len()));
    }
    let inside = |a: usize| ranges.iter().any(|&(s, e)| s <= a && a < e);
    let mut factory = InstructionInfoFactory::new();
    let mut written = [false; CALLER_SAVED.len()];
    for i in &insns {
        if leaves_unseen(i, &inside, &calls_out) {
            return Ok(Vec::new());
        }
        for used in factory.info(&i.instr).used_registers() {
            if !matches!(
                used.access(),
                OpAccess::Write
                    | OpAccess::CondWrite
                    | OpAccess::ReadWrite
                    | OpAccess::ReadCondWrite
            ) {
                continue;
            }
            let full = used.register().full_register();
            if let Some(k) = CALLER_SAVED.iter().position(|(r, _)| *r == full) {
                written[k] = true;
            }
        }
    }
    Ok(CALLER_SAVED
        .iter()
        .zip(written)
        .filter(|(_, w)| !w)
        .map(|((_, name), _)| *name)
        .collect())
}

/// Whether `i` transfers control to code whose register use the compiler of
/// the caller could not know: an indirect call, a jump through memory (the GOT),
/// or a direct call or jump out of the function to a PLT stub or another object.
fn leaves_unseen(
    i: &Insn,
    inside: &impl Fn(usize) -> bool,
    calls_out: &impl Fn(usize) -> bool,
) -> bool {
    match i.instr.flow_control() {
        FlowControl::IndirectCall => true,
        // A jump through one memory slot is a tail call through the GOT; a jump
        // through a register may be a switch table inside the function.
        FlowControl::IndirectBranch => i.instr.is_ip_rel_memory_operand(),
        FlowControl::Call | FlowControl::UnconditionalBranch | FlowControl::ConditionalBranch => i
            .branch_target()
            .is_some_and(|t| !inside(t) && calls_out(t)),
        _ => false,
    }
}

/// Whether the code at `bytes` (the first bytes of a call target at `address`)
/// is a PLT stub: `jmp [rip+x]`, after an optional `endbr64`, with an optional
/// `bnd` prefix.
pub fn is_plt_stub(address: usize, bytes: &[u8]) -> bool {
    let skip = if bytes.starts_with(&super::encode::ENDBR64) {
        4
    } else {
        0
    };
    let mut d = iced_x86::Decoder::with_ip(
        64,
        &bytes[skip..],
        (address + skip) as u64,
        iced_x86::DecoderOptions::NONE,
    );
    let i = d.decode();
    !i.is_invalid()
        && i.flow_control() == FlowControl::IndirectBranch
        && i.is_ip_rel_memory_operand()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::arch::Variadic;

    fn image(bytes: &[u8]) -> FunctionImage<'_> {
        FunctionImage {
            symbol: "f",
            address: 0x1000,
            bytes,
            variadic: Variadic::Unknown,
            fragments: Vec::new(),
        }
    }

    #[test]
    fn a_leaf_leaves_most_registers_alone() {
        // lea eax, [rdi*2+1]; ret
        let leaf = [0x8d, 0x44, 0x3f, 0x01, 0xc3];
        let kept = untouched_caller_saved(&image(&leaf), |_| false).unwrap();
        assert!(!kept.contains(&"rax"));
        assert!(kept.contains(&"rcx") && kept.contains(&"r11") && kept.contains(&"xmm0"));
    }

    #[test]
    fn a_call_through_the_plt_or_a_register_clobbers_everything() {
        // call rel32 to 0x2000; ret
        let call = [0xe8, 0xfb, 0x0f, 0x00, 0x00, 0xc3];
        assert!(
            untouched_caller_saved(&image(&call), |_| true)
                .unwrap()
                .is_empty()
        );
        // Not followed when the target is local: only the function's own writes count.
        assert_eq!(
            untouched_caller_saved(&image(&call), |_| false)
                .unwrap()
                .len(),
            49
        );
        // call rax; ret
        let indirect = [0xff, 0xd0, 0xc3];
        assert!(
            untouched_caller_saved(&image(&indirect), |_| false)
                .unwrap()
                .is_empty()
        );
        // jmp [rip+0x10]: a tail call through the GOT
        let tail = [0xff, 0x25, 0x10, 0x00, 0x00, 0x00];
        assert!(
            untouched_caller_saved(&image(&tail), |_| false)
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn only_fragments_the_function_branches_into_count() {
        // The leaf: lea eax, [rdi*2+1]; ret. A fragment at 0x3000 that calls
        // through a register (clobbering everything).
        let leaf = [0x8d, 0x44, 0x3f, 0x01, 0xc3];
        let frag = [0xff, 0xd0, 0xc3];
        let mut img = image(&leaf);
        img.fragments.push(crate::arch::FragmentImage {
            name: "f.constprop.0",
            address: 0x3000,
            bytes: &frag,
        });
        let kept = untouched_caller_saved(&img, |_| false).unwrap();
        assert!(!kept.is_empty(), "an unrelated clone must not count");
        // jmp rel32 to 0x3000 (from 0x1000: 0x3000 - 0x1005 = 0x1ffb).
        let jumps = [0xe9, 0xfb, 0x1f, 0x00, 0x00];
        let mut img = image(&jumps);
        img.fragments.push(crate::arch::FragmentImage {
            name: "f.cold",
            address: 0x3000,
            bytes: &frag,
        });
        assert!(untouched_caller_saved(&img, |_| false).unwrap().is_empty());
    }

    #[test]
    fn plt_stubs_are_recognised() {
        assert!(is_plt_stub(0x1000, &[0xff, 0x25, 0x10, 0x00, 0x00, 0x00]));
        // endbr64; bnd jmp [rip+0x10]
        assert!(is_plt_stub(
            0x1000,
            &[
                0xf3, 0x0f, 0x1e, 0xfa, 0xf2, 0xff, 0x25, 0x10, 0x00, 0x00, 0x00
            ]
        ));
        assert!(!is_plt_stub(0x1000, &[0x8d, 0x44, 0x3f, 0x01, 0xc3]));
        assert!(!is_plt_stub(0x1000, &[]));
    }
}
