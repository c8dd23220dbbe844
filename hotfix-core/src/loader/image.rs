//! The patch file as its loader would map it, read without loading it: bytes
//! at a virtual address (from the loadable segments), and the value a pointer
//! slot will hold once the dynamic loader has applied the relocations.
//!
//! Every read is bounded and checked: an address outside the segments, a
//! length that overflows or runs past the file, a pointer slot with no
//! relocation, each is an error naming what was asked for. Every region read
//! is recorded, so that after `dlopen` the same regions of the live library can
//! be compared with what was validated here ([`Image::expected`]).

use object::elf;
use object::read::elf::{ElfFile64, ProgramHeader};
use object::{Endianness, Object, ObjectSymbol, ObjectSymbolTable, RelocationFlags};
use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};

/// A loadable segment.
struct Segment {
    vaddr: u64,
    memsz: u64,
    offset: u64,
    filesz: u64,
    exec: bool,
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
    /// A symbol of another object: not a pointer into the patch.
    External,
}

/// Why a read of the image failed.
pub(crate) type ImageError = String;

/// A patch file viewed as it will be mapped.
pub(crate) struct Image<'a> {
    bytes: &'a [u8],
    segments: Vec<Segment>,
    relocs: BTreeMap<u64, Reloc>,
    dynsyms: HashMap<String, u64>,
    /// Regions read so far: `(vaddr, len)`.
    read: RefCell<Vec<(u64, u64)>>,
}

/// Relocation types of x86-64 this reader resolves.
const R_64: u32 = elf::R_X86_64_64;
const R_RELATIVE: u32 = elf::R_X86_64_RELATIVE;

impl<'a> Image<'a> {
    /// Reads the segments, dynamic relocations and dynamic symbols.
    pub(crate) fn new(
        elf: &ElfFile64<'a, Endianness>,
        bytes: &'a [u8],
    ) -> Result<Self, ImageError> {
        let endian = elf.endian();
        let mut segments = Vec::new();
        for ph in elf.elf_program_headers() {
            // A segment the loader maps unreadable could not be compared
            // after loading: its contents are never read as registry data.
            if ph.p_type(endian) != elf::PT_LOAD || ph.p_flags(endian) & elf::PF_R == 0 {
                continue;
            }
            let seg = Segment {
                vaddr: ph.p_vaddr(endian),
                memsz: ph.p_memsz(endian),
                offset: ph.p_offset(endian),
                filesz: ph.p_filesz(endian),
                exec: ph.p_flags(endian) & elf::PF_X != 0,
            };
            let in_file = seg
                .offset
                .checked_add(seg.filesz)
                .is_some_and(|e| e <= bytes.len() as u64);
            if !in_file || seg.filesz > seg.memsz || seg.vaddr.checked_add(seg.memsz).is_none() {
                return Err(format!(
                    "a loadable segment at {:#x} lies outside the file or overflows",
                    seg.vaddr
                ));
            }
            segments.push(seg);
        }
        let mut dynsyms = HashMap::new();
        if let Some(table) = elf.dynamic_symbol_table() {
            for sym in table.symbols() {
                if let Ok(name) = sym.name()
                    && !sym.is_undefined()
                {
                    dynsyms.insert(name.to_owned(), sym.address());
                }
            }
        }
        let mut relocs = BTreeMap::new();
        if let Some(iter) = elf.dynamic_relocations() {
            for (offset, r) in iter {
                let RelocationFlags::Elf { r_type } = r.flags() else {
                    continue;
                };
                let value = match r_type {
                    R_RELATIVE => Reloc::Relative(r.addend() as u64),
                    R_64 => match r.target() {
                        object::RelocationTarget::Symbol(i) => match elf
                            .dynamic_symbol_table()
                            .and_then(|t| t.symbol_by_index(i).ok())
                        {
                            Some(s) if !s.is_undefined() => {
                                Reloc::Relative(s.address().wrapping_add(r.addend() as u64))
                            }
                            _ => Reloc::External,
                        },
                        _ => Reloc::Relative(r.addend() as u64),
                    },
                    _ => continue,
                };
                relocs.insert(offset, value);
            }
        }
        Ok(Self {
            bytes,
            segments,
            relocs,
            dynsyms,
            read: RefCell::new(Vec::new()),
        })
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

    /// `len` bytes at `vaddr`, which must lie in one segment's file bytes.
    pub(crate) fn bytes(&self, vaddr: u64, len: u64, what: &str) -> Result<&'a [u8], ImageError> {
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
        self.read.borrow_mut().push((vaddr, len));
        Ok(&self.bytes[start..start + len as usize])
    }

    /// A little-endian `u64` at `vaddr` as stored in the file (a pointer slot
    /// holds 0 there until relocated).
    pub(crate) fn u64_at(&self, vaddr: u64, what: &str) -> Result<u64, ImageError> {
        let b = self.bytes(vaddr, 8, what)?;
        Ok(u64::from_le_bytes(b.try_into().expect("8 bytes")))
    }

    /// The address (relative to the load base) a pointer slot will hold once
    /// relocated; `None` for a null pointer.
    pub(crate) fn ptr_at(&self, vaddr: u64, what: &str) -> Result<Option<u64>, ImageError> {
        let stored = self.u64_at(vaddr, what)?;
        match self.relocs.get(&vaddr) {
            Some(Reloc::Relative(target)) => Ok(Some(*target)),
            Some(Reloc::External) => Err(format!(
                "{what}: the pointer at {vaddr:#x} is bound to a symbol of another object"
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
    /// pointer)` at `vaddr`, at most `max` bytes, valid UTF-8.
    pub(crate) fn str_at(
        &self,
        vaddr: u64,
        ptr_first: bool,
        max: u64,
        what: &str,
    ) -> Result<String, ImageError> {
        let (p, l) = if ptr_first {
            (vaddr, vaddr + 8)
        } else {
            (vaddr + 8, vaddr)
        };
        let len = self.u64_at(l, what)?;
        if len > max {
            return Err(format!(
                "{what}: length {len} is over the limit of {max} bytes"
            ));
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
    /// its load `base`: the file's bytes with each relocation applied.
    pub(crate) fn expected(&self, base: u64) -> Vec<(u64, Vec<u8>)> {
        let mut regions = self.read.borrow().clone();
        regions.sort_unstable();
        regions.dedup();
        regions
            .into_iter()
            .map(|(vaddr, len)| {
                let seg = self
                    .segment_of(vaddr, len)
                    .expect("region was read from a segment");
                let start = (seg.offset + vaddr - seg.vaddr) as usize;
                let mut out = self.bytes[start..start + len as usize].to_vec();
                for (&at, r) in self.relocs.range(vaddr..vaddr + len) {
                    if at + 8 <= vaddr + len
                        && let Reloc::Relative(target) = r
                    {
                        let i = (at - vaddr) as usize;
                        out[i..i + 8].copy_from_slice(&base.wrapping_add(*target).to_le_bytes());
                    }
                }
                (vaddr, out)
            })
            .collect()
    }
}
