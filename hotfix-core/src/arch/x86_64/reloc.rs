//! x86-64 ELF relocations of a linked patch: which ones the linker takes,
//! what each computes, and which bytes each lets a static linker rewrite
//! (what the proof masks when it compares the base build with the host).

/// The relocations a linked patch may use, by what they compute.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RelocKind {
    /// `S + A`, 8 bytes (`R_X86_64_64`).
    Abs64,
    /// `S + A`, 4 bytes zero-extended (`R_X86_64_32`).
    Abs32,
    /// `S + A`, 4 bytes sign-extended (`R_X86_64_32S`).
    Abs32S,
    /// `S + A - P`, 4 bytes (`R_X86_64_PC32`).
    Pc32,
    /// `S + A - P`, 8 bytes (`R_X86_64_PC64`).
    Pc64,
    /// `L + A - P`, 4 bytes: a call, through a stub where `S` is far
    /// (`R_X86_64_PLT32`).
    Plt32,
    /// `G + A - P`, 4 bytes: a GOT entry holding `S`
    /// (`R_X86_64_GOTPCREL`, `GOTPCRELX`, `REX_GOTPCRELX`).
    GotPcRel,
    /// `G + A - P`, 4 bytes: a GOT pair (module, offset of `S`) for
    /// `__tls_get_addr` (`R_X86_64_TLSGD`).
    TlsGd,
    /// `G + A - P`, 4 bytes: a GOT pair (module, 0) (`R_X86_64_TLSLD`).
    TlsLd,
    /// The offset of `S` in its module's TLS block plus `A`, 4 bytes
    /// (`R_X86_64_DTPOFF32`).
    DtpOff32,
    /// The same, 8 bytes (`R_X86_64_DTPOFF64`).
    DtpOff64,
    /// `G + A - P`, 4 bytes: a GOT entry holding the offset of `S` from the
    /// thread pointer (`R_X86_64_GOTTPOFF`).
    GotTpOff,
    /// The offset of `S` from the thread pointer plus `A`, 4 bytes
    /// (`R_X86_64_TPOFF32`).
    TpOff32,
}

/// `R_X86_64_*` numbers.
pub mod types {
    pub const R_64: u32 = 1;
    pub const PC32: u32 = 2;
    pub const PLT32: u32 = 4;
    pub const GOTPCREL: u32 = 9;
    pub const R_32: u32 = 10;
    pub const R_32S: u32 = 11;
    pub const DTPOFF64: u32 = 17;
    pub const TLSGD: u32 = 19;
    pub const TLSLD: u32 = 20;
    pub const DTPOFF32: u32 = 21;
    pub const GOTTPOFF: u32 = 22;
    pub const TPOFF32: u32 = 23;
    pub const PC64: u32 = 24;
    pub const GOTPCRELX: u32 = 41;
    pub const REX_GOTPCRELX: u32 = 42;
}

/// The kind of an ELF relocation type, if the linker takes it.
pub fn classify(r_type: u32) -> Option<RelocKind> {
    use types::*;
    Some(match r_type {
        R_64 => RelocKind::Abs64,
        R_32 => RelocKind::Abs32,
        R_32S => RelocKind::Abs32S,
        PC32 => RelocKind::Pc32,
        PC64 => RelocKind::Pc64,
        PLT32 => RelocKind::Plt32,
        GOTPCREL | GOTPCRELX | REX_GOTPCRELX => RelocKind::GotPcRel,
        TLSGD => RelocKind::TlsGd,
        TLSLD => RelocKind::TlsLd,
        DTPOFF32 => RelocKind::DtpOff32,
        DTPOFF64 => RelocKind::DtpOff64,
        GOTTPOFF => RelocKind::GotTpOff,
        TPOFF32 => RelocKind::TpOff32,
        _ => return None,
    })
}

/// A name for messages.
pub fn type_name(r_type: u32) -> String {
    use types::*;
    let n = match r_type {
        R_64 => "R_X86_64_64",
        R_32 => "R_X86_64_32",
        R_32S => "R_X86_64_32S",
        PC32 => "R_X86_64_PC32",
        PC64 => "R_X86_64_PC64",
        PLT32 => "R_X86_64_PLT32",
        GOTPCREL => "R_X86_64_GOTPCREL",
        GOTPCRELX => "R_X86_64_GOTPCRELX",
        REX_GOTPCRELX => "R_X86_64_REX_GOTPCRELX",
        TLSGD => "R_X86_64_TLSGD",
        TLSLD => "R_X86_64_TLSLD",
        DTPOFF32 => "R_X86_64_DTPOFF32",
        DTPOFF64 => "R_X86_64_DTPOFF64",
        GOTTPOFF => "R_X86_64_GOTTPOFF",
        TPOFF32 => "R_X86_64_TPOFF32",
        other => return format!("relocation type {other}"),
    };
    n.to_owned()
}

/// How many bytes a relocation of this kind writes.
pub fn width(kind: RelocKind) -> usize {
    match kind {
        RelocKind::Abs64 | RelocKind::Pc64 | RelocKind::DtpOff64 => 8,
        _ => 4,
    }
}

/// The bytes around a relocation at `r_offset` that a static linker may have
/// rewritten in the host: `(start relative to r_offset, length)`. Besides the
/// field itself: the opcode a GOT load is relaxed through (`mov` to `lea`,
/// `call *` to `addr32 call`), and the whole call sequence of a thread-local
/// lookup relaxed to a cheaper model. `None` for a type the proof does not
/// know (the proof then refuses the function).
pub fn proof_mask(r_type: u32) -> Option<(i64, usize)> {
    use types::*;
    Some(match r_type {
        R_64 | PC64 | DTPOFF64 => (0, 8),
        PC32 | PLT32 | R_32 | R_32S | DTPOFF32 | TPOFF32 => (0, 4),
        // REX prefix and opcode before the field: `48 8b 05` → `48 8d 05`.
        GOTPCREL | GOTPCRELX | REX_GOTPCRELX | GOTTPOFF => (-3, 7),
        // `66 48 8d 3d <rel> 66 66 48 e8 <rel>`: 16 bytes, the field at 4.
        TLSGD => (-4, 16),
        // `48 8d 3d <rel> e8 <rel>`: 12 bytes, the field at 3.
        TLSLD => (-3, 12),
        _ => return None,
    })
}

/// Writes `value` into `field` (of [`width`] bytes) as `kind` stores it;
/// `Err` when it does not fit.
pub fn store(kind: RelocKind, field: &mut [u8], value: i128) -> Result<(), &'static str> {
    match kind {
        RelocKind::Abs64 | RelocKind::Pc64 | RelocKind::DtpOff64 => {
            let v = i64::try_from(value)
                .or_else(|_| u64::try_from(value).map(|u| u as i64))
                .map_err(|_| "the value does not fit in 64 bits")?;
            field.copy_from_slice(&v.to_le_bytes());
        }
        RelocKind::Abs32 => {
            let v = u32::try_from(value).map_err(|_| "the address does not fit in 32 bits")?;
            field.copy_from_slice(&v.to_le_bytes());
        }
        _ => {
            let v = i32::try_from(value)
                .map_err(|_| "the distance does not fit in a signed 32-bit field")?;
            field.copy_from_slice(&v.to_le_bytes());
        }
    }
    Ok(())
}

/// Bytes of one call stub.
pub const STUB_LEN: usize = 8;

/// A stub that jumps through the 8-byte slot at `slot` when placed at `at`:
/// `jmp *[rip + disp32]`, then two bytes of `int3`.
pub fn call_stub(at: usize, slot: usize) -> Option<[u8; STUB_LEN]> {
    let disp = i32::try_from((slot as i128) - (at as i128 + 6)).ok()?;
    let d = disp.to_le_bytes();
    Some([0xff, 0x25, d[0], d[1], d[2], d[3], 0xcc, 0xcc])
}

/// The thread pointer of the calling thread (`%fs:0`, the TCB's self pointer).
pub fn thread_pointer() -> usize {
    let tp: usize;
    // SAFETY: on x86-64 Linux `%fs:0` holds the thread control block's own
    // address (the ABI's TLS variant II); reading it has no side effect.
    unsafe {
        std::arch::asm!("mov {}, fs:0", out(reg) tp, options(nostack, readonly, preserves_flags))
    };
    tp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_has_a_mask_and_a_width() {
        for t in 0..64 {
            if let Some(k) = classify(t) {
                let (start, len) = proof_mask(t).expect("a mask for every linked type");
                assert!(start <= 0 && len >= width(k), "{}", type_name(t));
            }
        }
    }

    #[test]
    fn store_refuses_what_does_not_fit() {
        let mut f = [0u8; 4];
        assert!(store(RelocKind::Pc32, &mut f, i32::MAX as i128 + 1).is_err());
        assert!(store(RelocKind::Pc32, &mut f, -1).is_ok());
        assert_eq!(f, [0xff; 4]);
        assert!(store(RelocKind::Abs32, &mut f, -1).is_err());
        let mut g = [0u8; 8];
        assert!(store(RelocKind::Abs64, &mut g, u64::MAX as i128).is_ok());
        assert!(store(RelocKind::Abs64, &mut g, u64::MAX as i128 + 1).is_err());
    }

    #[test]
    fn the_stub_jumps_through_its_slot() {
        let s = call_stub(0x1000, 0x2000).unwrap();
        assert_eq!(&s[..2], &[0xff, 0x25]);
        assert_eq!(
            i32::from_le_bytes(s[2..6].try_into().unwrap()),
            0x2000 - 0x1006
        );
        assert!(call_stub(0, 1 << 40).is_none());
    }

    #[test]
    fn thread_pointer_is_the_tcb_self_pointer() {
        let tp = thread_pointer();
        // SAFETY: `%fs:0` points at itself (variant II TCB).
        assert_eq!(unsafe { *(tp as *const usize) }, tp);
    }
}
