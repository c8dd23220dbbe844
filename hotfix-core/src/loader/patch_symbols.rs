//! The patch's symbol table (`.symtab`) as the walk over its code
//! ([`super::reach`]) needs it: its functions with their extents, its data
//! objects and thread-locals, its PLT, and the addresses where an object may
//! begin.

use object::{Object, ObjectSection, ObjectSymbol, SectionFlags, SymbolKind, SymbolSection, elf};
use std::collections::BTreeSet;

/// One symbol: `[start, end)` and its name as in the table.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Sym<'a> {
    pub start: u64,
    pub end: u64,
    pub name: &'a str,
}

/// What the symbol table says.
pub(crate) struct PatchSymbols<'a> {
    /// Functions, by start; one per address.
    pub functions: Vec<Sym<'a>>,
    /// Data objects with a size, by start.
    objects: Vec<Sym<'a>>,
    /// Thread-locals: offsets in the patch's TLS block, by start.
    tls: Vec<Sym<'a>>,
    /// The PLT sections: calls there leave the patch.
    plt: Vec<(u64, u64)>,
    /// Where an object may begin or end: symbols, section bounds, and what
    /// the walk adds (relocation targets, addresses code refers to).
    pub starts: BTreeSet<u64>,
}

/// An object the walk reached: `[start, end)`, and its symbol if one covers it.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Obj<'a> {
    pub start: u64,
    pub end: u64,
    pub sym: Option<Sym<'a>>,
}

impl<'a> PatchSymbols<'a> {
    /// Reads the symbol table of `file`; `None` if it has none.
    pub(crate) fn read(file: &object::File<'a>) -> Option<Self> {
        file.symbol_table()?;
        let mut functions = Vec::new();
        let mut objects = Vec::new();
        let mut tls = Vec::new();
        let mut starts = BTreeSet::new();
        let mut code_sections = Vec::new();
        let mut plt = Vec::new();
        for s in file.sections() {
            let SectionFlags::Elf { sh_flags } = s.flags() else {
                continue;
            };
            if sh_flags & u64::from(elf::SHF_ALLOC) == 0 {
                continue;
            }
            let range = (s.address(), s.address().saturating_add(s.size()));
            // TLS sections' addresses are those of the initialisation image.
            starts.insert(range.0);
            starts.insert(range.1);
            if sh_flags & u64::from(elf::SHF_EXECINSTR) != 0 {
                code_sections.push(range);
                if s.name().is_ok_and(|n| n.starts_with(".plt")) {
                    plt.push(range);
                }
            }
        }
        for sym in file.symbols() {
            if sym.is_undefined() {
                continue;
            }
            let Ok(name) = sym.name() else { continue };
            let start = sym.address();
            let end = start.saturating_add(sym.size());
            let one = Sym { start, end, name };
            match sym.kind() {
                SymbolKind::Tls => {
                    tls.push(one);
                    continue;
                }
                SymbolKind::Text => functions.push(one),
                SymbolKind::Data if sym.size() > 0 => objects.push(one),
                _ => {}
            }
            if sym.section() == SymbolSection::Absolute {
                continue;
            }
            starts.insert(start);
        }
        functions.sort_by_key(|f| (f.start, std::cmp::Reverse(f.end)));
        functions.dedup_by_key(|f| f.start);
        // A function whose table gives it no size runs to the next one (or
        // the end of its section).
        for i in 0..functions.len() {
            if functions[i].end > functions[i].start {
                continue;
            }
            let start = functions[i].start;
            let next = functions.get(i + 1).map_or(u64::MAX, |n| n.start);
            let section_end = code_sections
                .iter()
                .find(|(a, b)| *a <= start && start < *b)
                .map_or(start, |(_, b)| *b);
            functions[i].end = next.min(section_end);
        }
        functions.retain(|f| f.end > f.start);
        objects.sort_by_key(|o| (o.start, o.end));
        tls.sort_by_key(|o| (o.start, o.end));
        Some(Self {
            functions,
            objects,
            tls,
            plt,
            starts,
        })
    }

    /// The function whose code holds `addr`.
    pub(crate) fn function_at(&self, addr: u64) -> Option<usize> {
        let i = self.functions.partition_point(|f| f.start <= addr);
        let f = self.functions.get(i.checked_sub(1)?)?;
        (addr < f.end).then_some(i - 1)
    }

    /// Whether `addr` is in a PLT section.
    pub(crate) fn in_plt(&self, addr: u64) -> bool {
        self.plt.iter().any(|(a, b)| *a <= addr && addr < *b)
    }

    /// The data object holding `addr`: the innermost symbol covering it, or
    /// else the anonymous span between the nearest starts around it.
    pub(crate) fn object_at(&self, addr: u64) -> Option<Obj<'a>> {
        if let Some(sym) = covering(&self.objects, addr) {
            return Some(Obj {
                start: sym.start,
                end: sym.end,
                sym: Some(sym),
            });
        }
        let start = *self.starts.range(..=addr).next_back()?;
        let end = *self.starts.range(addr.checked_add(1)?..).next()?;
        Some(Obj {
            start,
            end,
            sym: None,
        })
    }

    /// The thread-local at `offset` of the patch's TLS block.
    pub(crate) fn tls_at(&self, offset: u64) -> Option<Sym<'a>> {
        covering(&self.tls, offset)
    }

    /// Every thread-local of the patch.
    pub(crate) fn all_tls(&self) -> &[Sym<'a>] {
        &self.tls
    }
}

/// The symbol of `sorted` covering `addr` that starts last (the innermost).
fn covering<'a>(sorted: &[Sym<'a>], addr: u64) -> Option<Sym<'a>> {
    let i = sorted.partition_point(|s| s.start <= addr);
    // Symbols may nest or alias: look back over a few that start before.
    sorted[..i]
        .iter()
        .rev()
        .take(16)
        .find(|s| addr < s.end)
        .copied()
}
