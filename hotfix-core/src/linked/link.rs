//! Linking a patch into this process: its sections laid out in one mapping
//! within reach of the executable's code (code, then read-only data, the
//! unwind table, the GOT and call stubs, then writable data), every
//! relocation applied against the resolved symbols, then each region given
//! its final protection. Nothing of it runs here; a refusal unmaps it.

use super::host_symbols::{HostSymbols, thread_local_address};
use super::parse::{PatchObject, Role};
use super::resolve::Target;
use crate::arch::reloc::{self, RelocKind};
use crate::os::NearMap;
use std::collections::HashMap;

/// A patch linked in memory, not yet reachable from any host code.
#[derive(Debug)]
pub struct Linked {
    /// The mapping (unmapped if dropped).
    pub map: NearMap,
    /// Address of each mapped section, in the order of the object's sections.
    pub section_addr: Vec<usize>,
    /// The unwind table (address and size, a zero terminator after it), if
    /// the patch has one.
    pub eh_frame: Option<(usize, usize)>,
}

/// A relocation that could not be applied.
#[derive(Debug, PartialEq, Eq)]
pub struct LinkError {
    /// The symbol it refers to.
    pub symbol: String,
    /// Why.
    pub reason: String,
}

/// One GOT entry: what it holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum GotEntry {
    /// The address of symbol `i`.
    Address(usize),
    /// A TLS index (module, offset of symbol `i`), 16 bytes.
    TlsPair(usize),
    /// A TLS index (module, 0) for local-dynamic accesses.
    ModulePair,
    /// The offset of symbol `i` from the thread pointer.
    TpOffset(usize),
}

fn round_up(v: usize, align: usize) -> usize {
    (v + align - 1) & !(align - 1)
}

/// Lays out, maps and relocates `obj`, its symbols resolved as `targets`.
pub fn link(
    obj: &PatchObject,
    targets: &[Target],
    host: &HostSymbols,
) -> Result<Linked, LinkError> {
    let err = |symbol: usize, reason: String| LinkError {
        symbol: obj
            .symbols
            .get(symbol)
            .map(|s| s.name.clone())
            .unwrap_or_default(),
        reason,
    };
    let page = crate::os::page_size();
    // Entries the GOT and stubs need.
    let mut got: Vec<GotEntry> = Vec::new();
    let mut got_index: HashMap<GotEntry, usize> = HashMap::new();
    let mut stubs: Vec<usize> = Vec::new();
    let mut stub_index: HashMap<usize, usize> = HashMap::new();
    for s in &obj.sections {
        for r in &s.relocs {
            let kind = reloc::classify(r.r_type).expect("checked by the parser");
            let entry = match kind {
                RelocKind::GotPcRel => Some(GotEntry::Address(r.symbol)),
                RelocKind::TlsGd => Some(GotEntry::TlsPair(r.symbol)),
                RelocKind::TlsLd => Some(GotEntry::ModulePair),
                RelocKind::GotTpOff => Some(GotEntry::TpOffset(r.symbol)),
                RelocKind::Plt32 if matches!(targets[r.symbol], Target::Library(_)) => {
                    if let std::collections::hash_map::Entry::Vacant(e) = stub_index.entry(r.symbol)
                    {
                        e.insert(stubs.len());
                        stubs.push(r.symbol);
                    }
                    Some(GotEntry::Address(r.symbol))
                }
                _ => None,
            };
            if let Some(e) = entry
                && !got_index.contains_key(&e)
            {
                got_index.insert(e, got.len());
                got.push(e);
            }
        }
    }
    // Layout: [code | stubs] [read-only | eh_frame + 4 | GOT] [writable | zeroed]
    let mut section_off = vec![0usize; obj.sections.len()];
    let mut cursor = 0usize;
    let mut eh_frame = None;
    let mut place = |roles: &[Role], cursor: &mut usize| {
        for (i, s) in obj.sections.iter().enumerate() {
            if roles.contains(&s.role) {
                *cursor = round_up(*cursor, s.align as usize);
                section_off[i] = *cursor;
                *cursor += s.size as usize + if s.role == Role::EhFrame { 4 } else { 0 };
            }
        }
    };
    place(&[Role::Code], &mut cursor);
    let stubs_off = round_up(cursor, 16);
    cursor = stubs_off + stubs.len() * reloc::STUB_LEN;
    let code_end = round_up(cursor, page);
    cursor = code_end;
    place(&[Role::ReadOnly, Role::EhFrame], &mut cursor);
    let got_off = round_up(cursor, 16);
    let got_slot = |i: usize| got_off + i * 16;
    cursor = got_off + got.len() * 16;
    let ro_end = round_up(cursor, page);
    cursor = ro_end;
    place(&[Role::Writable, Role::Zeroed], &mut cursor);
    let total = round_up(cursor.max(1), page);

    let mut map = NearMap::new(host.range.0, host.range.1, total).ok_or_else(|| LinkError {
        symbol: String::new(),
        reason: format!(
            "no free place of {total} bytes within a 32-bit reach of the executable's code"
        ),
    })?;
    let base = map.addr();
    let section_addr: Vec<usize> = section_off.iter().map(|o| base + o).collect();
    let addr_of = |i: usize| -> Result<usize, LinkError> {
        Ok(match targets[i] {
            Target::Patch { section, offset } => section_addr[section] + offset as usize,
            Target::Host(a) | Target::Library(a) => a,
            Target::HostTls(_) => {
                return Err(err(i, "a thread-local is used as a plain address".into()));
            }
            Target::Unused => return Err(err(i, "a relocation names no symbol".into())),
        })
    };
    let tls_offset = |i: usize| match targets[i] {
        Target::HostTls(off) => Ok(off),
        _ => Err(err(
            i,
            "a thread-local access names a symbol that is no thread-local".into(),
        )),
    };
    let module = || {
        host.tls_module.ok_or_else(|| LinkError {
            symbol: String::new(),
            reason: "the executable has no thread-local block the loader reports".into(),
        })
    };
    let mem = map.bytes_mut();
    for (i, s) in obj.sections.iter().enumerate() {
        if s.role != Role::Zeroed {
            mem[section_off[i]..section_off[i] + s.data.len()].copy_from_slice(&s.data);
        }
        if s.role == Role::EhFrame {
            eh_frame = Some((base + section_off[i], s.size as usize));
        }
    }
    for (k, e) in got.iter().enumerate() {
        let (w0, w1) = match *e {
            GotEntry::Address(i) => (addr_of(i)?, 0),
            GotEntry::TlsPair(i) => (module()?, tls_offset(i)?),
            GotEntry::ModulePair => (module()?, 0),
            GotEntry::TpOffset(i) => {
                let at = thread_local_address(module()?, tls_offset(i)?);
                (at.wrapping_sub(reloc::thread_pointer()), 0)
            }
        };
        let at = got_slot(k);
        mem[at..at + 8].copy_from_slice(&w0.to_le_bytes());
        mem[at + 8..at + 16].copy_from_slice(&w1.to_le_bytes());
    }
    for (k, &sym) in stubs.iter().enumerate() {
        let at = stubs_off + k * reloc::STUB_LEN;
        let slot = got_slot(got_index[&GotEntry::Address(sym)]);
        let stub = reloc::call_stub(base + at, base + slot)
            .ok_or_else(|| err(sym, "its call stub cannot reach its GOT entry".into()))?;
        mem[at..at + reloc::STUB_LEN].copy_from_slice(&stub);
    }
    for (i, s) in obj.sections.iter().enumerate() {
        for r in &s.relocs {
            let kind = reloc::classify(r.r_type).expect("checked by the parser");
            let p = (base + section_off[i] + r.offset as usize) as i128;
            let a = i128::from(r.addend);
            let got_at = |e: GotEntry| (base + got_slot(got_index[&e])) as i128;
            let value = match kind {
                RelocKind::Abs64 | RelocKind::Abs32 | RelocKind::Abs32S => {
                    addr_of(r.symbol)? as i128 + a
                }
                RelocKind::Pc32 | RelocKind::Pc64 => addr_of(r.symbol)? as i128 + a - p,
                RelocKind::Plt32 => {
                    let l = match stub_index.get(&r.symbol) {
                        Some(k) => (base + stubs_off + k * reloc::STUB_LEN) as i128,
                        None => addr_of(r.symbol)? as i128,
                    };
                    l + a - p
                }
                RelocKind::GotPcRel => got_at(GotEntry::Address(r.symbol)) + a - p,
                RelocKind::TlsGd => got_at(GotEntry::TlsPair(r.symbol)) + a - p,
                RelocKind::TlsLd => got_at(GotEntry::ModulePair) + a - p,
                RelocKind::GotTpOff => got_at(GotEntry::TpOffset(r.symbol)) + a - p,
                RelocKind::DtpOff32 | RelocKind::DtpOff64 => tls_offset(r.symbol)? as i128 + a,
                RelocKind::TpOff32 => {
                    let at = thread_local_address(module()?, tls_offset(r.symbol)?);
                    at.wrapping_sub(reloc::thread_pointer()) as isize as i128 + a
                }
            };
            let at = section_off[i] + r.offset as usize;
            let field = &mut mem[at..at + reloc::width(kind)];
            reloc::store(kind, field, value).map_err(|why| {
                err(
                    r.symbol,
                    format!(
                        "{} at {:#x} of {}: {why}",
                        reloc::type_name(r.r_type),
                        r.offset,
                        s.name
                    ),
                )
            })?;
        }
    }
    let protect = |off: usize, len: usize, prot: i32| {
        map.protect(off, len, prot).map_err(|e| LinkError {
            symbol: String::new(),
            reason: format!("cannot set the protection of the patch's memory: {e}"),
        })
    };
    protect(0, code_end, libc::PROT_READ | libc::PROT_EXEC)?;
    protect(code_end, ro_end - code_end, libc::PROT_READ)?;
    Ok(Linked {
        map,
        section_addr,
        eh_frame,
    })
}
