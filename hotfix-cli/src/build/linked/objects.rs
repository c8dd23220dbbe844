//! The object files of a build, read from its `.rlib` archives into owned
//! data: per object its sections (bytes, flags, relocations) and symbols,
//! and per build an index of every defined symbol by name.

use object::elf;
use object::read::archive::ArchiveFile;
use object::read::elf::ElfFile64;
use object::{
    Object, ObjectSection, ObjectSymbol, RelocationFlags, RelocationTarget, SymbolSection,
};
use std::collections::HashMap;
use std::path::Path;

/// One relocation.
#[derive(Clone, Copy, Debug)]
pub struct Rel {
    pub offset: u64,
    pub r_type: u32,
    /// Index into the unit's symbols.
    pub sym: usize,
    pub addend: i64,
}

/// One section.
#[derive(Debug)]
pub struct Sec {
    pub name: String,
    pub flags: u64,
    pub align: u64,
    pub size: u64,
    /// Empty for zero-filled sections.
    pub data: Vec<u8>,
    pub nobits: bool,
    pub relocs: Vec<Rel>,
}

impl Sec {
    fn has(&self, flag: u32) -> bool {
        self.flags & u64::from(flag) != 0
    }
    /// Loaded at run time.
    pub fn alloc(&self) -> bool {
        self.has(elf::SHF_ALLOC)
    }
    /// Code.
    pub fn code(&self) -> bool {
        self.has(elf::SHF_EXECINSTR)
    }
    /// Thread-local.
    pub fn tls(&self) -> bool {
        self.has(elf::SHF_TLS)
    }
    /// Data the program writes (relro data is written by the loader only).
    pub fn writable(&self) -> bool {
        self.has(elf::SHF_WRITE) && !self.name.starts_with(".data.rel.ro")
    }
}

/// One symbol.
#[derive(Clone, Debug)]
pub struct Sym {
    pub name: String,
    /// Index into the unit's sections, if defined in one.
    pub section: Option<usize>,
    pub value: u64,
    pub size: u64,
    pub global: bool,
    pub is_section: bool,
}

/// One object file.
#[derive(Debug)]
pub struct Unit {
    /// Where it came from, for messages.
    pub label: String,
    /// By ELF section index (index 0 is the null section).
    pub sections: Vec<Sec>,
    /// By ELF symbol index.
    pub symbols: Vec<Sym>,
}

impl Unit {
    /// The first named symbol of `section` at `offset` (a function or datum
    /// the section defines).
    pub fn named_at(&self, section: usize, offset: u64) -> Option<usize> {
        self.symbols.iter().position(|s| {
            s.section == Some(section) && s.value == offset && !s.is_section && !s.name.is_empty()
        })
    }

    /// The named symbol whose section is `section` and that covers it whole
    /// (the function of a `.text.<name>` section).
    pub fn owner(&self, section: usize) -> Option<usize> {
        self.named_at(section, 0)
    }
}

/// Every object of one or more archives, with defined symbols by name.
#[derive(Debug, Default)]
pub struct Build {
    pub units: Vec<Unit>,
    /// Defined symbol name → (unit, symbol), globals first, then the first
    /// local definition.
    pub defined: HashMap<String, (usize, usize)>,
}

impl Build {
    /// Adds every ELF object member of the archive at `path`.
    pub fn add_archive(&mut self, path: &Path) -> Result<(), String> {
        let data = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let archive = ArchiveFile::parse(&*data)
            .map_err(|e| format!("{} is no archive: {e}", path.display()))?;
        for member in archive.members() {
            let member = member.map_err(|e| format!("{}: {e}", path.display()))?;
            let name = String::from_utf8_lossy(member.name()).into_owned();
            if !name.ends_with(".o") {
                continue; // lib.rmeta and the like
            }
            let bytes = member
                .data(&*data)
                .map_err(|e| format!("{}({name}): {e}", path.display()))?;
            let label = format!("{}({name})", path.display());
            self.add_object(label, bytes)?;
        }
        Ok(())
    }

    /// Adds one ELF relocatable object.
    pub fn add_object(&mut self, label: String, bytes: &[u8]) -> Result<(), String> {
        let file = ElfFile64::<object::Endianness>::parse(bytes)
            .map_err(|e| format!("{label}: no 64-bit ELF object: {e}"))?;
        let nsec = file.sections().map(|s| s.index().0).max().unwrap_or(0) + 1;
        let mut sections: Vec<Sec> = (0..nsec)
            .map(|_| Sec {
                name: String::new(),
                flags: 0,
                align: 1,
                size: 0,
                data: Vec::new(),
                nobits: true,
                relocs: Vec::new(),
            })
            .collect();
        for s in file.sections() {
            let flags = match s.flags() {
                object::SectionFlags::Elf { sh_flags } => sh_flags,
                _ => 0,
            };
            let nobits = s.kind() == object::SectionKind::UninitializedData
                || s.kind() == object::SectionKind::UninitializedTls;
            let alloc = flags & u64::from(elf::SHF_ALLOC) != 0;
            sections[s.index().0] = Sec {
                name: s.name().unwrap_or_default().to_owned(),
                flags,
                align: s.align().max(1),
                size: s.size(),
                data: if nobits || !alloc {
                    Vec::new()
                } else {
                    s.data().map_err(|e| format!("{label}: {e}"))?.to_vec()
                },
                nobits,
                relocs: Vec::new(),
            };
        }
        let nsym = file.symbols().map(|s| s.index().0).max().unwrap_or(0) + 1;
        let mut symbols = vec![
            Sym {
                name: String::new(),
                section: None,
                value: 0,
                size: 0,
                global: false,
                is_section: false,
            };
            nsym
        ];
        for sym in file.symbols() {
            let section = match sym.section() {
                SymbolSection::Section(i) => Some(i.0),
                _ => None,
            };
            symbols[sym.index().0] = Sym {
                name: sym.name().unwrap_or_default().to_owned(),
                section,
                value: sym.address(),
                size: sym.size(),
                global: sym.is_global(),
                is_section: sym.kind() == object::SymbolKind::Section,
            };
        }
        for s in file.sections() {
            if !sections[s.index().0].alloc() {
                continue;
            }
            for (offset, r) in s.relocations() {
                let (RelocationFlags::Elf { r_type }, RelocationTarget::Symbol(sym)) =
                    (r.flags(), r.target())
                else {
                    return Err(format!(
                        "{label}: a relocation that is not ELF or names no symbol"
                    ));
                };
                sections[s.index().0].relocs.push(Rel {
                    offset,
                    r_type,
                    sym: sym.0,
                    addend: r.addend(),
                });
            }
        }
        self.units.push(Unit {
            label,
            sections,
            symbols,
        });
        let unit = self.units.len() - 1;
        let (units, defined) = (&self.units, &mut self.defined);
        for (i, s) in units[unit].symbols.iter().enumerate() {
            if s.section.is_none() || s.name.is_empty() || s.is_section {
                continue;
            }
            match defined.get(&s.name) {
                Some(&(u, j)) if units[u].symbols[j].global || !s.global => {}
                _ => {
                    defined.insert(s.name.clone(), (unit, i));
                }
            }
        }
        Ok(())
    }
}
