//! A linked patch's ELF relocatable object, read into owned, checked data:
//! every section inside the file, every symbol's section real, every
//! relocation's symbol real and its field inside its section. Nothing later
//! reads the file's bytes again.

use super::format::{BASE_SECTION, REGISTRY_SECTION, REGISTRY_SYMBOL_V2, Registry};
use object::elf;
use object::read::elf::{ElfFile64, FileHeader, SectionHeader};
use object::{
    Object, ObjectSection, ObjectSymbol, RelocationFlags, RelocationTarget, SectionKind,
    SymbolSection,
};
use std::collections::HashMap;

/// The most sections, symbols and relocations one patch may have.
const MAX_SECTIONS: usize = 1 << 16;
const MAX_SYMBOLS: usize = 1 << 20;
const MAX_RELOCS: usize = 1 << 22;

/// The section types a linked patch has: data, code and zero-filled
/// sections, the tables the object format needs, and sections no loader
/// maps. (`SHT_REL` passes here to be refused by what it is in
/// [`check_relocation_sections`].)
const KNOWN_TYPES: [u32; 11] = [
    elf::SHT_NULL,
    elf::SHT_PROGBITS,
    elf::SHT_SYMTAB,
    elf::SHT_STRTAB,
    elf::SHT_RELA,
    elf::SHT_NOBITS,
    elf::SHT_NOTE,
    elf::SHT_REL,
    elf::SHT_GROUP,
    elf::SHT_SYMTAB_SHNDX,
    elf::SHT_X86_64_UNWIND,
];

/// What a loaded section holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// Code.
    Code,
    /// Data nobody writes (after relocation).
    ReadOnly,
    /// Data the patch's code may write: a static the host lacks.
    Writable,
    /// Zero-filled writable data.
    Zeroed,
    /// Unwind tables, registered with the unwinder.
    EhFrame,
}

/// One section the loader maps.
#[derive(Debug)]
pub struct Section {
    /// Its name, for messages.
    pub name: String,
    /// What it holds.
    pub role: Role,
    /// Alignment (a power of two).
    pub align: u64,
    /// Size in bytes.
    pub size: u64,
    /// Its bytes (empty for [`Role::Zeroed`]).
    pub data: Vec<u8>,
    /// Relocations applied to it.
    pub relocs: Vec<Reloc>,
}

/// One relocation.
#[derive(Clone, Copy, Debug)]
pub struct Reloc {
    /// Offset of the field in its section.
    pub offset: u64,
    /// ELF type.
    pub r_type: u32,
    /// Index into [`PatchObject::symbols`].
    pub symbol: usize,
    /// Addend.
    pub addend: i64,
}

/// Where a symbol is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Place {
    /// Not in the patch: the host's.
    Undefined,
    /// In the mapped section of this index (into [`PatchObject::sections`]), at
    /// this offset.
    Defined { section: usize, offset: u64 },
}

/// One symbol.
#[derive(Clone, Debug)]
pub struct Symbol {
    /// Its name (empty for a section symbol).
    pub name: String,
    /// Where it is.
    pub place: Place,
    /// Whether it is a thread-local.
    pub tls: bool,
}

/// The checked contents of a linked patch file.
#[derive(Debug)]
pub struct PatchObject {
    /// Sections to map, in file order.
    pub sections: Vec<Section>,
    /// Every symbol relocations refer to (index 0 is unused).
    pub symbols: Vec<Symbol>,
    /// Defined symbols by name.
    pub defined: HashMap<String, usize>,
    /// The registry.
    pub registry: Registry,
    /// The bytes of the base build's proven functions.
    pub base: Vec<u8>,
}

/// Whether `bytes` look like a linked patch (an ELF relocatable object), as
/// opposed to a shared library.
pub fn is_linked_patch(bytes: &[u8]) -> bool {
    bytes.len() >= 18
        && bytes[..4] == *b"\x7fELF"
        && u16::from_le_bytes([bytes[16], bytes[17]]) == elf::ET_REL
}

/// Reads and checks the object; a refusal says what is wrong.
pub fn parse(bytes: &[u8]) -> Result<PatchObject, String> {
    let file = ElfFile64::<object::Endianness>::parse(bytes)
        .map_err(|e| format!("it is no 64-bit ELF object: {e}"))?;
    let header = file.elf_header();
    let endian = file.endian();
    if header.e_type(endian) != elf::ET_REL {
        return Err("it is not a relocatable object (ET_REL)".into());
    }
    if header.e_machine(endian) != elf::EM_X86_64 || !file.is_little_endian() {
        return Err("it is not for x86-64".into());
    }
    let count = file.sections().count();
    if count > MAX_SECTIONS {
        return Err(format!("it has {count} sections, over {MAX_SECTIONS}"));
    }
    let mut sections = Vec::new();
    let mut mapped: HashMap<object::SectionIndex, usize> = HashMap::new();
    let mut registry_bytes = None;
    let mut base = None;
    for s in file.sections() {
        let name = s
            .name()
            .map_err(|e| format!("a section name is unreadable: {e}"))?;
        let flags = match s.flags() {
            object::SectionFlags::Elf { sh_flags } => sh_flags,
            _ => 0,
        };
        let sh_type = s.elf_section_header().sh_type(endian);
        if !KNOWN_TYPES.contains(&sh_type) {
            // A relocation section whose type was changed would otherwise
            // be skipped, and its relocations with it.
            return Err(format!(
                "section {name} is of type {sh_type:#x}, which a linked patch does not have"
            ));
        }
        if name == REGISTRY_SECTION {
            registry_bytes = Some(section_data(&s, name)?);
            continue;
        }
        if name == BASE_SECTION {
            base = Some(section_data(&s, name)?);
            continue;
        }
        if flags & u64::from(elf::SHF_ALLOC) == 0 {
            continue; // debug info, notes, symbol tables: never mapped
        }
        if flags & u64::from(elf::SHF_TLS) != 0 {
            return Err(format!(
                "section {name} holds a new thread-local; a patch cannot add thread-locals to threads that already run (keep the state in a static, or in the host)"
            ));
        }
        if is_constructor(name) {
            return Err(format!(
                "section {name} would run code at load; a linked patch runs nothing before it is applied"
            ));
        }
        let role = if name == ".eh_frame" {
            Role::EhFrame
        } else if flags & u64::from(elf::SHF_EXECINSTR) != 0 {
            Role::Code
        } else if s.kind() == SectionKind::UninitializedData {
            Role::Zeroed
        } else if flags & u64::from(elf::SHF_WRITE) != 0 && !name.starts_with(".data.rel.ro") {
            Role::Writable
        } else {
            Role::ReadOnly
        };
        let align = s.align().max(1);
        if !align.is_power_of_two() || align > 1 << 16 {
            return Err(format!("section {name} has alignment {align}"));
        }
        let data = if role == Role::Zeroed {
            Vec::new()
        } else {
            section_data(&s, name)?
        };
        if role != Role::Zeroed && data.len() as u64 != s.size() {
            return Err(format!(
                "section {name} is cut short by the end of the file"
            ));
        }
        if s.size() > bytes.len() as u64 * 4 + (1 << 20) {
            return Err(format!("section {name} claims {} bytes", s.size()));
        }
        mapped.insert(s.index(), sections.len());
        sections.push(Section {
            name: name.to_owned(),
            role,
            align,
            size: s.size(),
            data,
            relocs: Vec::new(),
        });
    }
    let registry_bytes = registry_bytes.ok_or_else(|| {
        format!("it has no {REGISTRY_SECTION} section: not a hotfix linked patch")
    })?;
    let registry = Registry::decode(&registry_bytes).map_err(|e| format!("its registry: {e}"))?;
    let base = base.unwrap_or_default();

    let nsyms = file.symbols().count();
    if nsyms > MAX_SYMBOLS {
        return Err(format!("it has {nsyms} symbols, over {MAX_SYMBOLS}"));
    }
    let mut symbols = vec![Symbol {
        name: String::new(),
        place: Place::Undefined,
        tls: false,
    }];
    let mut by_index: HashMap<object::SymbolIndex, usize> = HashMap::new();
    let mut defined = HashMap::new();
    let mut registry_symbol = false;
    for sym in file.symbols() {
        let name = sym
            .name()
            .map_err(|e| format!("a symbol name is unreadable: {e}"))?;
        if name == REGISTRY_SYMBOL_V2 {
            registry_symbol = true;
        }
        let place = match sym.section() {
            SymbolSection::Undefined => Place::Undefined,
            SymbolSection::Section(idx) => match mapped.get(&idx) {
                Some(&section) => {
                    let offset = sym.address();
                    if offset > sections[section].size {
                        return Err(format!("symbol {name} lies past the end of its section"));
                    }
                    Place::Defined { section, offset }
                }
                None => continue, // a symbol of an unmapped section (registry, debug info)
            },
            SymbolSection::Common => {
                return Err(format!(
                    "symbol {name} is a common symbol; rebuild without -fcommon"
                ));
            }
            _ => continue, // absolute and file symbols: nothing refers to them
        };
        let tls = sym.kind() == object::SymbolKind::Tls;
        if tls && place != Place::Undefined {
            return Err(format!(
                "it defines thread-local {name}; a patch cannot add thread-locals"
            ));
        }
        if name.len() > super::format::MAX_SYMBOL_LEN {
            return Err(format!(
                "a symbol name is over {} bytes",
                super::format::MAX_SYMBOL_LEN
            ));
        }
        let i = symbols.len();
        if !name.is_empty()
            && place != Place::Undefined
            && defined.insert(name.to_owned(), i).is_some()
        {
            return Err(format!("symbol {name} is defined twice"));
        }
        by_index.insert(sym.index(), i);
        symbols.push(Symbol {
            name: name.to_owned(),
            place,
            tls,
        });
    }
    if !registry_symbol {
        return Err(format!("it has no {REGISTRY_SYMBOL_V2} symbol"));
    }

    check_relocation_sections(&file, &mapped)?;
    let mut total = 0usize;
    for s in file.sections() {
        let Some(&target) = mapped.get(&s.index()) else {
            continue;
        };
        for (offset, r) in s.relocations() {
            total += 1;
            if total > MAX_RELOCS {
                return Err(format!("it has over {MAX_RELOCS} relocations"));
            }
            let RelocationFlags::Elf { r_type } = r.flags() else {
                return Err("a relocation is not an ELF relocation".into());
            };
            let symbol = match r.target() {
                RelocationTarget::Symbol(idx) => *by_index.get(&idx).ok_or_else(|| {
                    format!(
                        "a relocation in {} names symbol {} that is missing or not mapped",
                        sections[target].name, idx.0
                    )
                })?,
                _ => return Err("a relocation names no symbol".into()),
            };
            if symbols[symbol].place == Place::Undefined && symbols[symbol].name.is_empty() {
                return Err(format!(
                    "a relocation in {} names an undefined symbol without a name",
                    sections[target].name
                ));
            }
            let kind = crate::arch::reloc::classify(r_type).ok_or_else(|| {
                format!(
                    "section {} has a relocation of {}, which the linker does not take",
                    sections[target].name,
                    crate::arch::reloc::type_name(r_type)
                )
            })?;
            let width = crate::arch::reloc::width(kind) as u64;
            if offset
                .checked_add(width)
                .is_none_or(|end| end > sections[target].size)
                || sections[target].role == Role::Zeroed
            {
                return Err(format!(
                    "a relocation at {offset:#x} lies outside section {}",
                    sections[target].name
                ));
            }
            sections[target].relocs.push(Reloc {
                offset,
                r_type,
                symbol,
                addend: r.addend(),
            });
        }
    }
    Ok(PatchObject {
        sections,
        symbols,
        defined,
        registry,
        base,
    })
}

/// Every relocation section is one that [`parse`]'s relocation loop reads:
/// `object` skips, without a word, a relocation section it cannot read
/// (outside the file, or not a whole number of entries), one of another
/// symbol table or one for section 0, and reads `SHT_REL` without its
/// implicit addends; the code would then be linked with fields left
/// unrelocated. The builder writes `SHT_RELA` sections for mapped sections
/// only, named `.rela<section>`.
fn check_relocation_sections(
    file: &ElfFile64<'_, object::Endianness>,
    mapped: &HashMap<object::SectionIndex, usize>,
) -> Result<(), String> {
    let endian = file.endian();
    let symtab = file.elf_symbol_table().section();
    for s in file.sections() {
        let header = s.elf_section_header();
        let sh_type = header.sh_type(endian);
        let name = s.name().unwrap_or("");
        let by_name = name.starts_with(".rela.") || name.starts_with(".rel.");
        if sh_type != elf::SHT_RELA && sh_type != elf::SHT_REL && !by_name {
            continue;
        }
        if sh_type != elf::SHT_RELA {
            return Err(format!(
                "section {name} is not a relocation section with addends (SHT_RELA, type {sh_type}), the only kind the loader reads"
            ));
        }
        if header.link(endian) != symtab {
            return Err(format!(
                "relocation section {name} refers to section {} as its symbol table, not to the patch's symbol table",
                header.sh_link(endian)
            ));
        }
        if !mapped.contains_key(&header.info_link(endian)) {
            return Err(format!(
                "relocation section {name} applies to section {}, which the loader does not map",
                header.sh_info(endian)
            ));
        }
        header
            .data_as_array::<elf::Rela64<object::Endianness>, _>(endian, file.data())
            .map_err(|e| {
                format!(
                    "relocation section {name} lies outside the file or is not whole entries: {e}"
                )
            })?;
    }
    Ok(())
}

fn section_data(
    s: &object::read::elf::ElfSection64<'_, '_, object::Endianness>,
    name: &str,
) -> Result<Vec<u8>, String> {
    s.data()
        .map(<[u8]>::to_vec)
        .map_err(|e| format!("section {name} lies outside the file: {e}"))
}

/// Sections the dynamic loader would run.
fn is_constructor(name: &str) -> bool {
    [
        ".init_array",
        ".fini_array",
        ".preinit_array",
        ".ctors",
        ".dtors",
        ".init",
        ".fini",
    ]
    .iter()
    .any(|p| name == *p || name.starts_with(&format!("{p}.")))
}
