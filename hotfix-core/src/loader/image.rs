//! The patch file as the dynamic loader will map it, read without loading it:
//! bytes at a virtual address (from the loadable segments), the dynamic
//! segment, and the value a pointer slot will hold once the loader has applied
//! the relocations.
//!
//! Everything is read the way `ld.so` reads it: segments from the program
//! headers, the dynamic array from `PT_DYNAMIC` at its address, relocations
//! from `DT_RELA`/`DT_JMPREL`, their symbols from `DT_SYMTAB` (section headers,
//! which the loader ignores, are not trusted). What the loader would do that
//! this model cannot prove harmless is refused: code run while relocating
//! (`R_X86_64_IRELATIVE`, relocations against IFUNC symbols), writes to
//! non-writable segments (text relocations), relocation formats it does not
//! read (`DT_RELR`, `DT_REL`), unreadable or overlapping segments.
//!
//! Every read is bounded and checked: an address outside the segments, a
//! length that overflows or runs past the file, a pointer slot with no
//! relocation, each is an error naming what was asked for; all strings read
//! together are bounded too. Every region read is recorded, so that after
//! `dlopen` the same regions of the live library can be compared with what was
//! validated here ([`Image::expected`]).

use object::elf;
use object::read::elf::{ElfFile64, ProgramHeader};
use object::{Endianness, Object, ObjectSymbol, ObjectSymbolTable};
use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, HashMap};

/// A loadable segment.
struct Segment {
    vaddr: u64,
    memsz: u64,
    offset: u64,
    filesz: u64,
    exec: bool,
    write: bool,
}

impl Segment {
    fn end(&self) -> u64 {
        self.vaddr + self.memsz
    }
}

/// What the dynamic loader writes into a pointer slot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Reloc {
    /// `base + addend` (`R_X86_64_RELATIVE`, or `R_X86_64_64` against a symbol
    /// this file defines).
    Relative(u64),
    /// Bound by symbol lookup (another object, or TLS): not a pointer into the
    /// patch.
    External,
}

/// What a relocated word will hold, as the walk over the patch's code
/// ([`super::reach`]) needs it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum RelocTarget {
    /// An address in the patch (`R_X86_64_RELATIVE`, or `R_X86_64_64`,
    /// `GLOB_DAT`, `JUMP_SLOT` against a symbol it defines).
    Address(u64),
    /// The patch's own TLS module (`R_X86_64_DTPMOD64`).
    TlsModule,
    /// An offset in the patch's TLS block (`R_X86_64_DTPOFF64`,
    /// `R_X86_64_TPOFF64`: the symbol's value plus the addend).
    TlsOffset(u64),
    /// Bound to another object by symbol lookup.
    External,
}

/// What the live library must hold in one segment: from `start` to `end`,
/// the `regions` (each `(vaddr, bytes)`, ascending, disjoint).
pub(crate) struct ExpectedSpan {
    segment: usize,
    /// First address of the first region.
    pub start: u64,
    /// One past the last byte of the last region.
    pub end: u64,
    /// The regions.
    pub regions: Vec<(u64, Vec<u8>)>,
}

/// Why a read of the image failed.
pub(crate) type ImageError = String;

/// `DT_RELR` (packed relative relocations), not named by the `object` crate.
const DT_RELR: u32 = 36;
/// Most bytes of strings one image may hand out in all.
const STRING_BUDGET: u64 = 64 << 20;
/// Most dynamic entries and relocations read.
const MAX_DYNAMIC: u64 = 1 << 16;
const MAX_RELOCS: u64 = 1 << 24;

/// A patch file viewed as it will be mapped.
pub(crate) struct Image<'a> {
    bytes: &'a [u8],
    segments: Vec<Segment>,
    relocs: BTreeMap<u64, Reloc>,
    /// Every relocation's target, for the reachability walk.
    targets: BTreeMap<u64, RelocTarget>,
    /// `PT_GNU_RELRO`: read-only once relocated.
    relro: Option<(u64, u64)>,
    /// `PT_TLS`: the address and stored size of the TLS initialisation image.
    tls: Option<(u64, u64)>,
    dynsyms: HashMap<String, u64>,
    /// The dynamic array: `(tag, value)` up to `DT_NULL`.
    dynamic: Vec<(i64, u64)>,
    /// Regions read so far: `(vaddr, len)`.
    read: RefCell<Vec<(u64, u64)>>,
    /// String bytes handed out so far.
    strings: Cell<u64>,
}

fn le64(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}

impl<'a> Image<'a> {
    /// Reads the segments, the dynamic array, the relocations and the exported
    /// symbols.
    pub(crate) fn new(
        elf: &ElfFile64<'a, Endianness>,
        bytes: &'a [u8],
    ) -> Result<Self, ImageError> {
        let endian = elf.endian();
        let mut segments: Vec<Segment> = Vec::new();
        let mut dynamic_at = None;
        let mut relro = None;
        let mut tls = None;
        for ph in elf.elf_program_headers() {
            match ph.p_type(endian) {
                elf::PT_GNU_RELRO => {
                    let start = ph.p_vaddr(endian);
                    relro = Some((start, start.saturating_add(ph.p_memsz(endian))));
                    continue;
                }
                elf::PT_TLS => {
                    tls = Some((ph.p_vaddr(endian), ph.p_filesz(endian)));
                    continue;
                }
                elf::PT_DYNAMIC => {
                    if dynamic_at.is_some() {
                        return Err("two dynamic segments".into());
                    }
                    dynamic_at = Some((ph.p_vaddr(endian), ph.p_filesz(endian)));
                    continue;
                }
                elf::PT_LOAD => {}
                _ => continue,
            }
            let flags = ph.p_flags(endian);
            let seg = Segment {
                vaddr: ph.p_vaddr(endian),
                memsz: ph.p_memsz(endian),
                offset: ph.p_offset(endian),
                filesz: ph.p_filesz(endian),
                exec: flags & elf::PF_X != 0,
                write: flags & elf::PF_W != 0,
            };
            if flags & elf::PF_R == 0 {
                return Err(format!(
                    "the loadable segment at {:#x} is not readable",
                    seg.vaddr
                ));
            }
            let in_file = seg
                .offset
                .checked_add(seg.filesz)
                .is_some_and(|e| e <= bytes.len() as u64);
            let end = seg
                .vaddr
                .checked_add(seg.memsz)
                .and_then(|e| e.checked_add(0xfff));
            if !in_file || seg.filesz > seg.memsz || end.is_none() {
                return Err(format!(
                    "the loadable segment at {:#x} lies outside the file or overflows",
                    seg.vaddr
                ));
            }
            // Page-rounded, as the loader maps them: each segment must begin on
            // a page after the previous one ends.
            if let Some(prev) = segments.last()
                && seg.vaddr & !0xfff < (prev.end() + 0xfff) & !0xfff
            {
                return Err(format!(
                    "the loadable segment at {:#x} overlaps or precedes the one before it",
                    seg.vaddr
                ));
            }
            segments.push(seg);
        }
        let mut image = Self {
            bytes,
            segments,
            relocs: BTreeMap::new(),
            targets: BTreeMap::new(),
            relro,
            tls,
            dynsyms: HashMap::new(),
            dynamic: Vec::new(),
            read: RefCell::new(Vec::new()),
            strings: Cell::new(0),
        };
        if let Some((vaddr, size)) = dynamic_at {
            image.read_dynamic(vaddr, size)?;
            image.read_relocations()?;
        }
        if let Some(table) = elf.dynamic_symbol_table() {
            for sym in table.symbols() {
                if let Ok(name) = sym.name()
                    && !sym.is_undefined()
                {
                    image.dynsyms.insert(name.to_owned(), sym.address());
                }
            }
        }
        Ok(image)
    }

    /// Reads the dynamic array at `vaddr` (up to `DT_NULL`).
    fn read_dynamic(&mut self, vaddr: u64, size: u64) -> Result<(), ImageError> {
        let count = (size / 16).min(MAX_DYNAMIC);
        let raw = self.loader_bytes(vaddr, count * 16, "the dynamic segment")?;
        for i in 0..count as usize {
            let tag = le64(raw, i * 16) as i64;
            if tag == i64::from(elf::DT_NULL) {
                break;
            }
            self.dynamic.push((tag, le64(raw, i * 16 + 8)));
        }
        for tag in [
            DT_RELR,
            elf::DT_REL,
            elf::DT_TEXTREL,
            elf::DT_AUXILIARY,
            elf::DT_FILTER,
            elf::DT_AUDIT,
            elf::DT_DEPAUDIT,
        ] {
            if self.dynamic_value(tag)?.is_some() {
                return Err(format!(
                    "dynamic tag {tag:#x} (DT_RELR, DT_REL, DT_TEXTREL, filter or audit libraries) is not supported"
                ));
            }
        }
        if self
            .dynamic_value(elf::DT_FLAGS)?
            .is_some_and(|f| f & u64::from(elf::DF_TEXTREL) != 0)
        {
            return Err("the patch has text relocations (DF_TEXTREL)".into());
        }
        Ok(())
    }

    /// The value of the one dynamic entry `tag`; refused if it appears twice.
    pub(crate) fn dynamic_value(&self, tag: u32) -> Result<Option<u64>, ImageError> {
        let mut found = self.dynamic.iter().filter(|(t, _)| *t == i64::from(tag));
        let first = found.next().map(|(_, v)| *v);
        if found.next().is_some() {
            return Err(format!("dynamic tag {tag:#x} appears twice"));
        }
        Ok(first)
    }

    /// Every value of dynamic entries `tag`, in order.
    pub(crate) fn dynamic_values(&self, tag: u32) -> impl Iterator<Item = u64> + '_ {
        self.dynamic
            .iter()
            .filter(move |(t, _)| *t == i64::from(tag))
            .map(|(_, v)| *v)
    }

    /// The NUL-terminated string at `offset` of the dynamic string table.
    pub(crate) fn dynamic_string(&self, offset: u64) -> Result<&'a [u8], ImageError> {
        let (Some(table), Some(size)) = (
            self.dynamic_value(elf::DT_STRTAB)?,
            self.dynamic_value(elf::DT_STRSZ)?,
        ) else {
            return Err("dynamic strings without DT_STRTAB and DT_STRSZ".into());
        };
        let strings = self.loader_bytes(table, size, "the dynamic string table")?;
        let rest = usize::try_from(offset)
            .ok()
            .and_then(|o| strings.get(o..))
            .ok_or_else(|| format!("dynamic string at {offset} is outside its table"))?;
        let end = rest
            .iter()
            .position(|&b| b == 0)
            .ok_or_else(|| format!("dynamic string at {offset} is not terminated"))?;
        Ok(&rest[..end])
    }

    /// Reads `DT_RELA` and `DT_JMPREL` and resolves what each relocation writes.
    fn read_relocations(&mut self) -> Result<(), ImageError> {
        let mut tables = Vec::new();
        if let Some(at) = self.dynamic_value(elf::DT_RELA)? {
            let size = self.dynamic_value(elf::DT_RELASZ)?.unwrap_or(0);
            tables.push((at, size));
        }
        if let Some(at) = self.dynamic_value(elf::DT_JMPREL)? {
            if self.dynamic_value(elf::DT_PLTREL)? != Some(u64::from(elf::DT_RELA)) {
                return Err("PLT relocations that are not RELA".into());
            }
            let size = self.dynamic_value(elf::DT_PLTRELSZ)?.unwrap_or(0);
            tables.push((at, size));
        }
        let symtab = self.dynamic_value(elf::DT_SYMTAB)?;
        for (at, size) in tables {
            if size % 24 != 0 || size / 24 > MAX_RELOCS {
                return Err(format!("a relocation table of {size} bytes"));
            }
            let raw = self.loader_bytes(at, size, "a relocation table")?;
            for i in 0..(size / 24) as usize {
                let offset = le64(raw, i * 24);
                let info = le64(raw, i * 24 + 8);
                let addend = le64(raw, i * 24 + 16);
                let r_type = (info & 0xffff_ffff) as u32;
                let sym = info >> 32;
                let (value, target) = match r_type {
                    elf::R_X86_64_NONE => continue,
                    elf::R_X86_64_RELATIVE => {
                        (Reloc::Relative(addend), RelocTarget::Address(addend))
                    }
                    elf::R_X86_64_64 => match self.symbol_value(symtab, sym)? {
                        Some(v) => {
                            let at = v.wrapping_add(addend);
                            (Reloc::Relative(at), RelocTarget::Address(at))
                        }
                        None => (Reloc::External, RelocTarget::External),
                    },
                    elf::R_X86_64_GLOB_DAT
                    | elf::R_X86_64_JUMP_SLOT
                    | elf::R_X86_64_DTPMOD64
                    | elf::R_X86_64_DTPOFF64
                    | elf::R_X86_64_TPOFF64 => {
                        let defined = self.symbol_value(symtab, sym)?;
                        let target = match (r_type, defined) {
                            (_, None) => RelocTarget::External,
                            (elf::R_X86_64_DTPMOD64, Some(_)) => RelocTarget::TlsModule,
                            (elf::R_X86_64_DTPOFF64 | elf::R_X86_64_TPOFF64, Some(v)) => {
                                RelocTarget::TlsOffset(v.wrapping_add(addend))
                            }
                            (_, Some(v)) => RelocTarget::Address(v.wrapping_add(addend)),
                        };
                        (Reloc::External, target)
                    }
                    elf::R_X86_64_IRELATIVE => {
                        return Err(format!(
                            "the relocation at {offset:#x} runs an IFUNC resolver of the patch while loading"
                        ));
                    }
                    other => {
                        return Err(format!(
                            "relocation type {other} at {offset:#x} is not supported"
                        ));
                    }
                };
                match self.segment_of(offset, 8) {
                    Some(s) if s.write => {}
                    _ => {
                        return Err(format!(
                            "the relocation at {offset:#x} writes outside the patch's writable segments"
                        ));
                    }
                }
                self.relocs.insert(offset, value);
                self.targets.insert(offset, target);
            }
        }
        Ok(())
    }

    /// The value of dynamic symbol `index` if this file defines it (`None`: it
    /// is undefined, bound elsewhere). Refuses IFUNC symbols: binding to one
    /// runs its resolver while loading.
    fn symbol_value(&self, symtab: Option<u64>, index: u64) -> Result<Option<u64>, ImageError> {
        if index == 0 {
            return Ok(Some(0));
        }
        let table = symtab.ok_or("a relocation names a symbol but there is no DT_SYMTAB")?;
        let at = index
            .checked_mul(24)
            .and_then(|o| table.checked_add(o))
            .ok_or("symbol index overflows")?;
        let sym = self.loader_bytes(at, 24, "a dynamic symbol")?;
        let info = sym[4];
        let shndx = u16::from_le_bytes([sym[6], sym[7]]);
        if info & 0xf == elf::STT_GNU_IFUNC {
            return Err(format!(
                "a relocation binds to IFUNC symbol #{index}, whose resolver would run while loading"
            ));
        }
        Ok((shndx != elf::SHN_UNDEF).then(|| le64(sym, 8)))
    }

    /// What the relocation at `vaddr` will write there, if there is one.
    pub(crate) fn reloc_target(&self, vaddr: u64) -> Option<RelocTarget> {
        self.targets.get(&vaddr).copied()
    }

    /// The relocations in `[start, end)`, by address.
    pub(crate) fn reloc_targets(
        &self,
        start: u64,
        end: u64,
    ) -> impl Iterator<Item = (u64, RelocTarget)> + '_ {
        self.targets
            .range(start..end.max(start))
            .map(|(a, t)| (*a, *t))
    }

    /// Whether `vaddr` is code: in an executable segment's file bytes.
    pub(crate) fn is_code(&self, vaddr: u64) -> bool {
        self.segment_of(vaddr, 1)
            .is_some_and(|s| s.exec && vaddr - s.vaddr < s.filesz)
    }

    /// Whether `vaddr` stays writable once loaded: in a writable segment and
    /// outside `PT_GNU_RELRO` (which the loader makes read-only after
    /// relocating).
    pub(crate) fn is_mutable(&self, vaddr: u64) -> bool {
        let in_relro = self.relro.is_some_and(|(a, b)| a <= vaddr && vaddr < b);
        !in_relro && self.segment_of(vaddr, 1).is_some_and(|s| s.write)
    }

    /// The address and stored size of the TLS initialisation image
    /// (`PT_TLS`), if any. Past its stored bytes the block is zeroed, and the
    /// addresses belong to other sections.
    pub(crate) fn tls_image(&self) -> Option<(u64, u64)> {
        self.tls
    }

    /// The word stored at `vaddr` in the file, if it is stored there; not
    /// recorded for the comparison after loading.
    pub(crate) fn stored_word(&self, vaddr: u64) -> Option<u64> {
        self.loader_bytes(vaddr, 8, "a word")
            .ok()
            .map(|b| le64(b, 0))
    }

    /// The bytes of `[vaddr, vaddr+len)` as stored in the file, for decoding;
    /// not recorded for the comparison after loading.
    pub(crate) fn code_bytes(&self, vaddr: u64, len: u64) -> Option<&'a [u8]> {
        self.loader_bytes(vaddr, len, "code").ok()
    }

    /// The address of a symbol this file defines and exports.
    pub(crate) fn symbol(&self, name: &str) -> Option<u64> {
        self.dynsyms.get(name).copied()
    }

    fn segment_of(&self, vaddr: u64, len: u64) -> Option<&Segment> {
        let end = vaddr.checked_add(len)?;
        self.segments
            .iter()
            .find(|s| s.vaddr <= vaddr && end <= s.end())
    }

    /// `len` bytes at `vaddr`, which must lie in one segment's file bytes;
    /// recorded for the comparison after loading.
    pub(crate) fn bytes(&self, vaddr: u64, len: u64, what: &str) -> Result<&'a [u8], ImageError> {
        let b = self.loader_bytes(vaddr, len, what)?;
        self.read.borrow_mut().push((vaddr, len));
        Ok(b)
    }

    /// Bytes of the loader's own tables (dynamic array, relocations, symbols,
    /// strings): bounded like [`Image::bytes`] but not compared after loading,
    /// since the loader may rewrite them (glibc relocates dynamic entries in
    /// place).
    fn loader_bytes(&self, vaddr: u64, len: u64, what: &str) -> Result<&'a [u8], ImageError> {
        let seg = self.segment_of(vaddr, len).ok_or_else(|| {
            format!("{what}: {len} bytes at {vaddr:#x} lie outside the file's segments")
        })?;
        let rel = vaddr - seg.vaddr;
        if rel + len > seg.filesz {
            return Err(format!(
                "{what}: {len} bytes at {vaddr:#x} are not stored in the file"
            ));
        }
        let start = (seg.offset + rel) as usize;
        Ok(&self.bytes[start..start + len as usize])
    }

    /// `vaddr + off`, or an error naming `what`.
    pub(crate) fn at(vaddr: u64, off: u64, what: &str) -> Result<u64, ImageError> {
        vaddr
            .checked_add(off)
            .ok_or_else(|| format!("{what}: address {vaddr:#x} + {off} overflows"))
    }

    /// Checks that `vaddr` is aligned to `align` (a reference to it will be
    /// formed once the library is loaded).
    pub(crate) fn check_aligned(vaddr: u64, align: usize, what: &str) -> Result<(), ImageError> {
        if !vaddr.is_multiple_of(align as u64) {
            return Err(format!("{what}: {vaddr:#x} is not {align}-byte aligned"));
        }
        Ok(())
    }

    /// Checks that `[vaddr, vaddr+len)` lies in a writable segment (the
    /// runtime will write there when it binds the patch).
    pub(crate) fn check_writable(
        &self,
        vaddr: u64,
        len: u64,
        what: &str,
    ) -> Result<(), ImageError> {
        match self.segment_of(vaddr, len) {
            Some(s) if s.write => Ok(()),
            _ => Err(format!(
                "{what}: {vaddr:#x} is not in a writable segment of the patch"
            )),
        }
    }

    /// A little-endian `u64` at `vaddr` as stored in the file (a pointer slot
    /// holds 0 there until relocated).
    pub(crate) fn u64_at(&self, vaddr: u64, what: &str) -> Result<u64, ImageError> {
        let b = self.bytes(vaddr, 8, what)?;
        Ok(le64(b, 0))
    }

    /// The address (relative to the load base) a pointer slot will hold once
    /// relocated; `None` for a null pointer.
    pub(crate) fn ptr_at(&self, vaddr: u64, what: &str) -> Result<Option<u64>, ImageError> {
        let stored = self.u64_at(vaddr, what)?;
        match self.relocs.get(&vaddr) {
            Some(Reloc::Relative(target)) => Ok(Some(*target)),
            Some(Reloc::External) => Err(format!(
                "{what}: the pointer at {vaddr:#x} is bound to a symbol, not into the patch"
            )),
            None if stored == 0 => Ok(None),
            None => Err(format!(
                "{what}: the pointer at {vaddr:#x} holds {stored:#x} with no relocation (not a pointer into the patch)"
            )),
        }
    }

    /// A non-null pointer to code of this file.
    pub(crate) fn code_ptr_at(&self, vaddr: u64, what: &str) -> Result<u64, ImageError> {
        let target = self
            .ptr_at(vaddr, what)?
            .ok_or_else(|| format!("{what}: null function pointer"))?;
        self.check_code(target, what)?;
        Ok(target)
    }

    /// Checks that `target` lies in an executable segment's file bytes.
    pub(crate) fn check_code(&self, target: u64, what: &str) -> Result<(), ImageError> {
        match self.segment_of(target, 1) {
            Some(s) if s.exec && target - s.vaddr < s.filesz => Ok(()),
            _ => Err(format!(
                "{what}: {target:#x} is not code of the patch (outside its executable segment)"
            )),
        }
    }

    /// A string stored as `(pointer, length)` (`ptr_first`) or `(length,
    /// pointer)` at `vaddr`, at most `max` bytes, valid UTF-8. All strings of
    /// one image together are bounded too.
    pub(crate) fn str_at(
        &self,
        vaddr: u64,
        ptr_first: bool,
        max: u64,
        what: &str,
    ) -> Result<String, ImageError> {
        let second = Self::at(vaddr, 8, what)?;
        let (p, l) = if ptr_first {
            (vaddr, second)
        } else {
            (second, vaddr)
        };
        let len = self.u64_at(l, what)?;
        if len > max {
            return Err(format!(
                "{what}: length {len} is over the limit of {max} bytes"
            ));
        }
        let total = self.strings.get() + len;
        if total > STRING_BUDGET {
            return Err(format!(
                "{what}: the registry's strings add up to more than {STRING_BUDGET} bytes"
            ));
        }
        self.strings.set(total);
        if len == 0 {
            // An empty string's pointer is dangling (rustc stores 1): never read.
            return Ok(String::new());
        }
        let Some(ptr) = self.ptr_at(p, what)? else {
            return if len == 0 {
                Ok(String::new())
            } else {
                Err(format!("{what}: null pointer with length {len}"))
            };
        };
        let b = self.bytes(ptr, len, what)?;
        std::str::from_utf8(b)
            .map(str::to_owned)
            .map_err(|e| format!("{what}: not UTF-8 ({e})"))
    }

    /// The bytes the live library must hold at every region read so far, given
    /// its load `base`: the file's bytes with each relocation applied. Regions
    /// that touch are merged, and grouped by the segment holding them, so a
    /// caller can read each segment's span of the live library at once.
    pub(crate) fn expected(&self, base: u64) -> Vec<ExpectedSpan> {
        let mut regions = self.read.borrow().clone();
        regions.sort_unstable();
        let mut merged: Vec<(u64, u64, usize)> = Vec::new();
        for (vaddr, len) in regions {
            let seg = self
                .segments
                .iter()
                .position(|s| s.vaddr <= vaddr && vaddr + len <= s.end())
                .expect("region was read from a segment");
            match merged.last_mut() {
                Some((_, end, s)) if *s == seg && vaddr <= *end => {
                    *end = (*end).max(vaddr + len);
                }
                _ => merged.push((vaddr, vaddr + len, seg)),
            }
        }
        let mut spans: Vec<ExpectedSpan> = Vec::new();
        for (vaddr, end, seg_index) in merged {
            let seg = &self.segments[seg_index];
            let start = (seg.offset + vaddr - seg.vaddr) as usize;
            let mut out = self.bytes[start..start + (end - vaddr) as usize].to_vec();
            for (&at, r) in self.relocs.range(vaddr..end) {
                if at + 8 <= end
                    && let Reloc::Relative(target) = r
                {
                    let i = (at - vaddr) as usize;
                    out[i..i + 8].copy_from_slice(&base.wrapping_add(*target).to_le_bytes());
                }
            }
            match spans.last_mut() {
                Some(span) if span.segment == seg_index => {
                    span.end = end;
                    span.regions.push((vaddr, out));
                }
                _ => spans.push(ExpectedSpan {
                    segment: seg_index,
                    start: vaddr,
                    end,
                    regions: vec![(vaddr, out)],
                }),
            }
        }
        spans
    }
}
