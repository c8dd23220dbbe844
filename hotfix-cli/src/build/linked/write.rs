//! Writing the linked patch: an ELF relocatable object with the carried
//! sections (flags, alignment and relocations as compiled), their FDEs in a
//! new `.eh_frame`, every name left to the host as an undefined symbol, and
//! the registry and base bytes in sections no loader maps.

use super::eh_frame;
use super::objects::{Build, Sym};
use super::select::{Inputs, Key, Origin, Selection};
use hotfix_core::linked::format::{BASE_SECTION, REGISTRY_SECTION, REGISTRY_SYMBOL_V2, Registry};
use hotfix_core::linked::host_symbols::HostKind;
use object::write::{Object, Relocation, SectionId, Symbol, SymbolId, SymbolSection};
use object::{
    Architecture, BinaryFormat, Endianness, RelocationFlags, SectionFlags, SectionKind,
    SymbolFlags, SymbolKind, SymbolScope, elf,
};
use std::collections::HashMap;

struct Writer<'a> {
    inp: &'a Inputs<'a>,
    sel: &'a Selection,
    obj: Object<'static>,
    out_sec: HashMap<Key, SectionId>,
    named: HashMap<String, SymbolId>,
}

/// The patch file's bytes.
pub fn write(
    inp: &Inputs<'_>,
    sel: &Selection,
    registry: &Registry,
    base: Vec<u8>,
) -> Result<Vec<u8>, String> {
    let mut w = Writer {
        inp,
        sel,
        obj: Object::new(BinaryFormat::Elf, Architecture::X86_64, Endianness::Little),
        out_sec: HashMap::new(),
        named: HashMap::new(),
    };
    for &key in &sel.carried {
        w.add_section(key);
    }
    for &key in &sel.carried {
        w.add_symbols(key);
    }
    for name in &sel.externs {
        let tls = inp
            .host
            .lookup(name)
            .iter()
            .any(|d| d.kind == HostKind::ThreadLocal);
        let id = w.obj.add_symbol(Symbol {
            name: name.as_bytes().to_vec(),
            value: 0,
            size: 0,
            kind: if tls {
                SymbolKind::Tls
            } else {
                SymbolKind::Unknown
            },
            scope: SymbolScope::Linkage,
            weak: false,
            section: SymbolSection::Undefined,
            flags: SymbolFlags::None,
        });
        w.named.insert(name.clone(), id);
    }
    for (from, to) in &sel.renames {
        if let Some(&id) = w.named.get(to) {
            w.named.insert(from.clone(), id);
        }
    }
    for &key in &sel.carried {
        let relocs = w.build(key.0).units[key.1].sections[key.2].relocs.clone();
        let sec = w.out_sec[&key];
        for r in relocs {
            w.relocate(key.0, key.1, sec, r.offset, r.r_type, r.sym, r.addend)?;
        }
    }
    w.eh_frame()?;
    let reg = w.raw_section(REGISTRY_SECTION, registry.encode());
    w.obj.add_symbol(Symbol {
        name: REGISTRY_SYMBOL_V2.as_bytes().to_vec(),
        value: 0,
        size: 0,
        kind: SymbolKind::Data,
        scope: SymbolScope::Linkage,
        weak: false,
        section: SymbolSection::Section(reg),
        flags: SymbolFlags::None,
    });
    w.raw_section(BASE_SECTION, base);
    w.obj
        .write()
        .map_err(|e| format!("cannot write the patch object: {e}"))
}

impl<'a> Writer<'a> {
    fn build(&self, o: Origin) -> &'a Build {
        self.inp.build(o)
    }

    /// A section no loader maps (flags 0).
    fn raw_section(&mut self, name: &str, data: Vec<u8>) -> SectionId {
        let id = self
            .obj
            .add_section(Vec::new(), name.as_bytes().to_vec(), SectionKind::Other);
        self.obj.section_mut(id).flags = SectionFlags::Elf { sh_flags: 0 };
        self.obj.set_section_data(id, data, 1);
        id
    }

    fn add_section(&mut self, key: Key) {
        let s = &self.build(key.0).units[key.1].sections[key.2];
        let kind = if s.code() {
            SectionKind::Text
        } else if s.nobits {
            SectionKind::UninitializedData
        } else if s.writable() {
            SectionKind::Data
        } else {
            SectionKind::ReadOnlyData
        };
        let keep = u64::from(elf::SHF_ALLOC | elf::SHF_WRITE | elf::SHF_EXECINSTR);
        let (name, flags, align, size, nobits) =
            (s.name.clone(), s.flags & keep, s.align, s.size, s.nobits);
        let data = s.data.clone();
        let id = self.obj.add_section(Vec::new(), name.into_bytes(), kind);
        self.obj.section_mut(id).flags = SectionFlags::Elf { sh_flags: flags };
        if nobits {
            self.obj.append_section_bss(id, size, align);
        } else {
            self.obj.set_section_data(id, data, align);
        }
        self.out_sec.insert(key, id);
    }

    fn add_symbols(&mut self, key: Key) {
        let syms: Vec<Sym> = self.build(key.0).units[key.1]
            .symbols
            .iter()
            .filter(|s| s.section == Some(key.2) && !s.is_section && !s.name.is_empty())
            .cloned()
            .collect();
        let code = self.build(key.0).units[key.1].sections[key.2].code();
        for s in syms {
            if self.sel.by_name.get(&s.name) != Some(&key) || self.named.contains_key(&s.name) {
                continue;
            }
            let id = self.obj.add_symbol(Symbol {
                name: s.name.as_bytes().to_vec(),
                value: s.value,
                size: s.size,
                kind: if code {
                    SymbolKind::Text
                } else {
                    SymbolKind::Data
                },
                scope: SymbolScope::Compilation,
                weak: false,
                section: SymbolSection::Section(self.out_sec[&key]),
                flags: SymbolFlags::None,
            });
            self.named.insert(s.name, id);
        }
    }

    /// The output symbol and addend for symbol `sym` of unit `u`.
    fn target(
        &mut self,
        o: Origin,
        u: usize,
        sym: usize,
        addend: i64,
    ) -> Result<(SymbolId, i64), String> {
        let s = self.build(o).units[u].symbols[sym].clone();
        if let Some(sec) = s.section {
            if let Some(&out) = self.out_sec.get(&(o, u, sec)) {
                if !s.is_section
                    && !s.name.is_empty()
                    && let Some(&id) = self.named.get(&s.name)
                {
                    return Ok((id, addend));
                }
                let id = self.obj.section_symbol(out);
                return Ok((id, addend + s.value as i64));
            }
            let unit = &self.build(o).units[u];
            let name = if !s.is_section && !s.name.is_empty() {
                Some((s.name.clone(), 0))
            } else {
                unit.owner(sec)
                    .map(|i| (unit.symbols[i].name.clone(), s.value as i64))
            };
            if let Some((n, off)) = name
                && let Some(&id) = self.named.get(&n)
            {
                return Ok((id, addend + off));
            }
            return Err(format!(
                "a reference to section {} of {} that the patch neither carries nor names",
                unit.sections[sec].name, unit.label
            ));
        }
        self.named
            .get(&s.name)
            .map(|&id| (id, addend))
            .ok_or_else(|| format!("symbol {} is neither carried nor left to the host", s.name))
    }

    #[allow(clippy::too_many_arguments)]
    fn relocate(
        &mut self,
        o: Origin,
        u: usize,
        out: SectionId,
        offset: u64,
        r_type: u32,
        sym: usize,
        addend: i64,
    ) -> Result<(), String> {
        let (symbol, addend) = self.target(o, u, sym, addend)?;
        self.obj
            .add_relocation(
                out,
                Relocation {
                    offset,
                    symbol,
                    addend,
                    flags: RelocationFlags::Elf { r_type },
                },
            )
            .map_err(|e| format!("cannot add a relocation: {e}"))
    }

    /// The carried FDEs and their CIEs, CIE pointers rewritten.
    fn eh_frame(&mut self) -> Result<(), String> {
        if self.sel.fdes.is_empty() {
            return Ok(());
        }
        let id = self
            .obj
            .add_section(Vec::new(), b".eh_frame".to_vec(), SectionKind::ReadOnlyData);
        self.obj.section_mut(id).flags = SectionFlags::Elf {
            sh_flags: u64::from(elf::SHF_ALLOC),
        };
        let mut bytes: Vec<u8> = Vec::new();
        let mut cies: HashMap<(Origin, usize, u64), u64> = HashMap::new();
        let mut relocs: Vec<(Origin, usize, u64, u32, usize, i64)> = Vec::new();
        // Each object's table is indexed once, however many FDEs it gives.
        let mut tables: HashMap<(Origin, usize), eh_frame::EhFrame> = HashMap::new();
        for &(o, u, fde) in &self.sel.fdes.clone() {
            let unit = &self.build(o).units[u];
            let eh = match tables.entry((o, u)) {
                std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
                std::collections::hash_map::Entry::Vacant(e) => {
                    e.insert(eh_frame::index(unit).ok_or("an .eh_frame became unreadable")?)
                }
            };
            let sec = &unit.sections[eh.section];
            let rec = eh.records[&fde];
            let cie_at = rec.cie.ok_or("an FDE without a CIE")?;
            let copy = |bytes: &mut Vec<u8>, relocs: &mut Vec<_>, r: eh_frame::Record| {
                let out = bytes.len() as u64;
                let from = r.offset as usize;
                bytes.extend_from_slice(&sec.data[from..from + r.len as usize]);
                for x in sec
                    .relocs
                    .iter()
                    .filter(|x| x.offset >= r.offset && x.offset < r.offset + r.len)
                {
                    relocs.push((o, u, out + x.offset - r.offset, x.r_type, x.sym, x.addend));
                }
                out
            };
            let cie_out = match cies.get(&(o, u, cie_at)) {
                Some(&c) => c,
                None => {
                    let cie = *eh.records.get(&cie_at).ok_or("an FDE names no CIE")?;
                    let c = copy(&mut bytes, &mut relocs, cie);
                    cies.insert((o, u, cie_at), c);
                    c
                }
            };
            let fde_out = copy(&mut bytes, &mut relocs, rec);
            let ptr = (fde_out + 4 - cie_out) as u32;
            bytes[fde_out as usize + 4..fde_out as usize + 8].copy_from_slice(&ptr.to_le_bytes());
        }
        self.obj.set_section_data(id, bytes, 8);
        for (o, u, offset, r_type, sym, addend) in relocs {
            self.relocate(o, u, id, offset, r_type, sym, addend)?;
        }
        Ok(())
    }
}
