//! Editing real patch files the way an attacker or a broken build would:
//! locating the registry, its pointer slots' relocations and the dynamic
//! symbols, and overwriting them in place.

use object::{Object, ObjectSection, ObjectSegment, ObjectSymbol};

/// Size of one `Elf64_Rela` and one `Elf64_Sym`.
const RELA: usize = 24;
const SYM: usize = 24;

/// A patch file's bytes, with what the edits need to find.
pub struct PatchBytes {
    /// The bytes, edited in place.
    pub bytes: Vec<u8>,
}

impl PatchBytes {
    /// Reads a patch file.
    pub fn read(path: &std::path::Path) -> Self {
        Self {
            bytes: std::fs::read(path).expect("read the patch"),
        }
    }

    fn file(&self) -> object::File<'_> {
        object::File::parse(&*self.bytes).expect("an ELF file")
    }

    /// The address of an exported symbol.
    pub fn symbol(&self, name: &str) -> u64 {
        self.file()
            .dynamic_symbols()
            .find(|s| s.name() == Ok(name))
            .unwrap_or_else(|| panic!("no dynamic symbol {name}"))
            .address()
    }

    /// The file offset of virtual address `vaddr`.
    pub fn offset_of(&self, vaddr: u64) -> usize {
        for seg in self.file().segments() {
            let (off, size) = seg.file_range();
            if seg.address() <= vaddr && vaddr < seg.address() + size {
                return (off + vaddr - seg.address()) as usize;
            }
        }
        panic!("{vaddr:#x} is not stored in the file")
    }

    /// The file offset of the addend of the relocation that fills the pointer
    /// slot at `slot` (what the slot will hold, relative to the load base).
    pub fn addend_offset(&self, slot: u64) -> usize {
        let file = self.file();
        let rela = file.section_by_name(".rela.dyn").expect(".rela.dyn");
        let (off, size) = rela.file_range().expect("stored");
        for i in 0..size as usize / RELA {
            let at = off as usize + i * RELA;
            let r_offset = u64::from_le_bytes(self.bytes[at..at + 8].try_into().unwrap());
            if r_offset == slot {
                return at + 16;
            }
        }
        panic!("no relocation fills {slot:#x}")
    }

    /// The file offset of the `st_value` of dynamic symbol `name`.
    pub fn symbol_value_offset(&self, name: &str) -> usize {
        let file = self.file();
        let index = file
            .dynamic_symbols()
            .find(|s| s.name() == Ok(name))
            .unwrap_or_else(|| panic!("no dynamic symbol {name}"))
            .index()
            .0;
        let dynsym = file.section_by_name(".dynsym").expect(".dynsym");
        let (off, _) = dynsym.file_range().expect("stored");
        off as usize + index * SYM + 8
    }

    /// A little-endian u64 at a file offset.
    pub fn u64_at(&self, offset: usize) -> u64 {
        u64::from_le_bytes(self.bytes[offset..offset + 8].try_into().unwrap())
    }

    /// Overwrites 8 bytes at a file offset.
    pub fn put_u64(&mut self, offset: usize, value: u64) {
        self.bytes[offset..offset + 8].copy_from_slice(&value.to_le_bytes());
    }

    /// Writes the bytes to `path` (mode 0755).
    pub fn write(&self, path: &std::path::Path) {
        use std::os::unix::fs::PermissionsExt;
        std::fs::write(path, &self.bytes).expect("write the edited patch");
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    }
}
