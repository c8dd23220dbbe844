//! The records of an object's `.eh_frame`: which FDE describes which code
//! section, and the CIE each FDE uses. A patch carries the FDEs of the
//! functions it carries (with their CIEs), nothing else.

use super::objects::Unit;
use std::collections::HashMap;

/// One record: a CIE or an FDE.
#[derive(Clone, Copy, Debug)]
pub struct Record {
    /// Offset in the section.
    pub offset: u64,
    /// Bytes, the length field included.
    pub len: u64,
    /// For an FDE, the offset of its CIE.
    pub cie: Option<u64>,
}

/// The `.eh_frame` of one object.
#[derive(Debug)]
pub struct EhFrame {
    /// Its section index.
    pub section: usize,
    /// Every record, by offset.
    pub records: HashMap<u64, Record>,
    /// The FDE of each code section it describes.
    pub fde_of: HashMap<usize, u64>,
}

/// Reads the `.eh_frame` of `unit`, if it has one it can read (an FDE whose
/// function cannot be told is left out: its function is then never carried
/// with unwind information, and the builder refuses it).
pub fn index(unit: &Unit) -> Option<EhFrame> {
    let section = unit.sections.iter().position(|s| s.name == ".eh_frame")?;
    let sec = &unit.sections[section];
    let data = &sec.data;
    let word = |at: u64| -> Option<u32> {
        let at = at as usize;
        Some(u32::from_le_bytes(data.get(at..at + 4)?.try_into().ok()?))
    };
    let mut records = HashMap::new();
    let mut fde_of = HashMap::new();
    let mut at = 0u64;
    while (at as usize) + 4 <= data.len() {
        let len = word(at)?;
        if len == 0 {
            break;
        }
        if len == u32::MAX {
            return None; // 64-bit DWARF: never emitted for x86-64 code
        }
        let total = 4 + u64::from(len);
        let id = word(at + 4)?;
        let cie = (id != 0).then(|| (at + 4).wrapping_sub(u64::from(id)));
        records.insert(
            at,
            Record {
                offset: at,
                len: total,
                cie,
            },
        );
        if cie.is_some() {
            let pc = sec.relocs.iter().find(|r| r.offset == at + 8);
            if let Some(text) = pc.and_then(|r| unit.symbols[r.sym].section) {
                fde_of.insert(text, at);
            }
        }
        at += total;
    }
    Some(EhFrame {
        section,
        records,
        fde_of,
    })
}
