//! Linked patches made by hand in the test process: an ELF relocatable object
//! written with `object::write`, replacing a `#[patchable]` function of the
//! test binary itself, its proof the host's own bytes of that function. And
//! the places in such a file's bytes that hand edits overwrite.

use hotfix_core::__private::FnDesc;
use hotfix_core::linked::format::{
    BASE_SECTION, HostBuild, Proof, REGISTRY_SECTION, REGISTRY_SYMBOL_V2, Registry, Replace,
    host_rustc,
};
use object::read::elf::{ElfFile64, FileHeader};
use object::write::{Object, Relocation, SectionId, Symbol, SymbolId, SymbolSection};
use object::{
    Architecture, BinaryFormat, Endianness, Object as _, ObjectSection, ObjectSymbol,
    RelocationFlags, SectionFlags, SectionKind, SymbolFlags, SymbolKind, SymbolScope, elf,
};
use std::collections::HashMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// `R_X86_64_*` numbers the tests use.
pub mod r {
    pub const R_64: u32 = 1;
    pub const PC32: u32 = 2;
    pub const PLT32: u32 = 4;
    pub const R_32: u32 = 10;
    pub const GOTOFF64: u32 = 25;
}

/// The symbol the replacement is defined by, in every patch made here.
pub const REPLACEMENT: &str = "hotfix_test_linked_replacement";

/// One symbol of the running executable's `.symtab`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExeSymbol {
    /// Its name.
    pub name: String,
    /// Its runtime address.
    pub addr: usize,
    /// Its size.
    pub size: usize,
}

/// Every named symbol of `/proc/self/exe`'s `.symtab`, at runtime addresses.
fn exe_symbols() -> &'static [ExeSymbol] {
    static SYMS: OnceLock<Vec<ExeSymbol>> = OnceLock::new();
    SYMS.get_or_init(|| {
        let bias = hotfix_core::foreign::loaded_objects()
            .into_iter()
            .find(|o| o.is_main)
            .expect("the main executable in the loader's list")
            .bias;
        let file = std::fs::File::open("/proc/self/exe").expect("open /proc/self/exe");
        let cache = object::ReadCache::new(file);
        let exe = object::File::parse(&cache).expect("the executable parses");
        let syms: Vec<ExeSymbol> = exe
            .symbols()
            .filter(|s| s.is_definition())
            .filter_map(|s| {
                Some(ExeSymbol {
                    name: s.name().ok().filter(|n| !n.is_empty())?.to_owned(),
                    addr: bias.wrapping_add(s.address() as usize),
                    size: s.size() as usize,
                })
            })
            .collect();
        assert!(!syms.is_empty(), "the test binary has a symbol table");
        syms
    })
}

/// The executable's symbol at `addr` (a Rust symbol where there are several).
pub fn symbol_at(addr: usize) -> ExeSymbol {
    let at: Vec<&ExeSymbol> = exe_symbols().iter().filter(|s| s.addr == addr).collect();
    at.iter()
        .find(|s| hotfix_core::linked::is_rust_symbol(&s.name))
        .or(at.first())
        .map(|s| (*s).clone())
        .unwrap_or_else(|| panic!("no symbol at {addr:#x} in /proc/self/exe"))
}

/// The running host's bytes of the function `sym`.
pub fn live_bytes(sym: &ExeSymbol) -> Vec<u8> {
    assert!(sym.size > 0, "{} has no size in the symbol table", sym.name);
    let mut out = vec![0u8; sym.size];
    assert!(
        hotfix_core::os::peek(sym.addr, &mut out),
        "cannot read {}",
        sym.name
    );
    out
}

/// The host's target triple: the `host:` line of its compiler's `rustc -vV`.
pub fn host_target() -> String {
    host_rustc()
        .split("; ")
        .find_map(|l| l.strip_prefix("host: "))
        .expect("a host line in the compiler's identity")
        .to_owned()
}

/// One relocation of the patch's code: at `offset`, of `r_type`, against
/// `symbol` (defined by the patch if one of its sections defines it, else
/// an undefined symbol the loader resolves in the host).
#[derive(Clone, Debug)]
pub struct Reloc {
    /// Offset in the code section.
    pub offset: u64,
    /// The symbol's name.
    pub symbol: String,
    /// `R_X86_64_*`.
    pub r_type: u32,
    /// Addend.
    pub addend: i64,
}

/// A section besides the code.
#[derive(Clone, Debug)]
pub struct Extra {
    /// Its name.
    pub name: String,
    /// What `object` writes it as.
    pub kind: SectionKind,
    /// `SHF_*`.
    pub sh_flags: u32,
    /// Its bytes (for a zero-filled section, only the length counts).
    pub data: Vec<u8>,
    /// A symbol at its start.
    pub symbol: Option<String>,
}

/// One function the patch replaces and its replacement.
#[derive(Clone, Debug)]
pub struct Code {
    /// Its replacement's symbol.
    pub symbol: String,
    /// Its replacement's machine code (a section of its own, `.text.<symbol>`).
    pub bytes: Vec<u8>,
    /// Its relocations.
    pub relocs: Vec<Reloc>,
}

/// What a hand-made linked patch holds.
#[derive(Clone, Debug)]
pub struct Spec {
    /// The registry, as written.
    pub registry: Registry,
    /// The bytes of `.hotfix.base`.
    pub base: Vec<u8>,
    /// The code sections.
    pub code: Vec<Code>,
    /// Other sections.
    pub extra: Vec<Extra>,
}

impl Spec {
    /// A patch replacing the `#[patchable]` function `path` of this binary
    /// with `code` (no relocations), proven by the host's own bytes of the
    /// function, compared exactly (no relocation masked).
    pub fn replacing(path: &str, code: &[u8]) -> Spec {
        let mut spec = Spec {
            registry: Registry {
                name: "hand-made".into(),
                version: "1.0.0".into(),
                host: HostBuild {
                    krate: "hotfix-tests".into(),
                    rustc: host_rustc().to_owned(),
                    target: host_target(),
                    profile: "dev".into(),
                    cargo: "-p hotfix-tests".into(),
                    base: "HEAD".into(),
                },
                replace: Vec::new(),
                proof: Vec::new(),
            },
            base: Vec::new(),
            code: Vec::new(),
            extra: Vec::new(),
        };
        spec.also_replace(path, REPLACEMENT, code);
        spec
    }

    /// Adds the replacement of `path` by the function `symbol` of `code`.
    pub fn also_replace(&mut self, path: &str, symbol: &str, code: &[u8]) -> &mut Code {
        let desc = desc(path);
        let host = symbol_at(desc.original as usize);
        self.prove(&host);
        self.registry.replace.push(Replace {
            path: path.to_owned(),
            host_symbol: host.name.clone(),
            symbol: symbol.to_owned(),
            why: "a test replaces it".into(),
        });
        self.code.push(Code {
            symbol: symbol.to_owned(),
            bytes: code.to_vec(),
            relocs: Vec::new(),
        });
        self.code.last_mut().expect("just pushed")
    }

    /// Adds the host's bytes of `host` to the proof, compared exactly.
    pub fn prove(&mut self, host: &ExeSymbol) {
        let bytes = live_bytes(host);
        self.registry.proof.push(Proof {
            symbol: host.name.clone(),
            offset: self.base.len() as u64,
            size: bytes.len() as u64,
            relocs: Vec::new(),
        });
        self.base.extend_from_slice(&bytes);
    }

    /// The file's bytes.
    pub fn build(&self) -> Vec<u8> {
        let mut obj = Object::new(BinaryFormat::Elf, Architecture::X86_64, Endianness::Little);
        let mut named: HashMap<String, SymbolId> = HashMap::new();
        let define = |obj: &mut Object<'static>, name: &str, section: SectionId, kind| {
            obj.add_symbol(Symbol {
                name: name.as_bytes().to_vec(),
                value: 0,
                size: 0,
                kind,
                scope: SymbolScope::Compilation,
                weak: false,
                section: SymbolSection::Section(section),
                flags: SymbolFlags::None,
            })
        };
        let mut code_sections = Vec::new();
        for c in &self.code {
            let id = obj.add_section(
                Vec::new(),
                format!(".text.{}", c.symbol).into_bytes(),
                SectionKind::Text,
            );
            obj.section_mut(id).flags = SectionFlags::Elf {
                sh_flags: u64::from(elf::SHF_ALLOC | elf::SHF_EXECINSTR),
            };
            obj.set_section_data(id, c.bytes.clone(), 16);
            let sym = define(&mut obj, &c.symbol, id, SymbolKind::Text);
            named.insert(c.symbol.clone(), sym);
            code_sections.push(id);
        }
        for e in &self.extra {
            let id = obj.add_section(Vec::new(), e.name.as_bytes().to_vec(), e.kind);
            obj.section_mut(id).flags = SectionFlags::Elf {
                sh_flags: u64::from(e.sh_flags),
            };
            if e.kind == SectionKind::UninitializedData || e.kind == SectionKind::UninitializedTls {
                obj.append_section_bss(id, e.data.len() as u64, 8);
            } else {
                obj.set_section_data(id, e.data.clone(), 8);
            }
            if let Some(name) = &e.symbol {
                let kind = if e.sh_flags & elf::SHF_TLS != 0 {
                    SymbolKind::Tls
                } else {
                    SymbolKind::Data
                };
                let sym = define(&mut obj, name, id, kind);
                named.insert(name.clone(), sym);
            }
        }
        for (c, &section) in self.code.iter().zip(&code_sections) {
            for r in &c.relocs {
                let symbol = *named.entry(r.symbol.clone()).or_insert_with(|| {
                    obj.add_symbol(Symbol {
                        name: r.symbol.as_bytes().to_vec(),
                        value: 0,
                        size: 0,
                        kind: SymbolKind::Unknown,
                        scope: SymbolScope::Linkage,
                        weak: false,
                        section: SymbolSection::Undefined,
                        flags: SymbolFlags::None,
                    })
                });
                obj.add_relocation(
                    section,
                    Relocation {
                        offset: r.offset,
                        symbol,
                        addend: r.addend,
                        flags: RelocationFlags::Elf { r_type: r.r_type },
                    },
                )
                .expect("add a relocation");
            }
        }
        let raw = |obj: &mut Object<'static>, name: &str, data: Vec<u8>| {
            let id = obj.add_section(Vec::new(), name.as_bytes().to_vec(), SectionKind::Other);
            obj.section_mut(id).flags = SectionFlags::Elf { sh_flags: 0 };
            obj.set_section_data(id, data, 1);
            id
        };
        let reg = raw(&mut obj, REGISTRY_SECTION, self.registry.encode());
        obj.add_symbol(Symbol {
            name: REGISTRY_SYMBOL_V2.as_bytes().to_vec(),
            value: 0,
            size: 0,
            kind: SymbolKind::Data,
            scope: SymbolScope::Linkage,
            weak: false,
            section: SymbolSection::Section(reg),
            flags: SymbolFlags::None,
        });
        raw(&mut obj, BASE_SECTION, self.base.clone());
        obj.write().expect("write the object")
    }
}

/// The `#[patchable]` function of this binary registered under `path`.
pub fn desc(path: &str) -> &'static FnDesc {
    hotfix_core::__private::host_fn(path)
        .unwrap_or_else(|| panic!("no #[patchable] {path} in this binary"))
}

/// Writes a patch file (mode 0600) into `dir`, a directory only its owner
/// may write (see [`crate::scratch_dir`]).
pub fn write_patch(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, bytes).expect("write the patch file");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
        .expect("chmod the patch file");
    path
}

/// Size of one section header.
pub const SHDR: usize = 64;
/// Size of one `Elf64_Rela`.
pub const RELA: usize = 24;

/// Where things are in a linked patch file's bytes.
#[derive(Clone, Debug)]
pub struct Layout {
    /// `e_shoff`.
    pub shoff: usize,
    /// `e_shnum`.
    pub shnum: usize,
    /// Section names by index.
    pub names: Vec<String>,
    /// File range of each section's bytes (`sh_offset`, `sh_size`).
    pub ranges: Vec<(usize, usize)>,
}

impl Layout {
    /// Reads the layout of `bytes` (which must parse).
    pub fn of(bytes: &[u8]) -> Layout {
        let file = ElfFile64::<Endianness>::parse(bytes).expect("an ELF object");
        let endian = file.endian();
        let header = file.elf_header();
        let shoff = header.e_shoff(endian) as usize;
        let shnum = header.e_shnum(endian) as usize;
        let mut names = vec![String::new(); shnum];
        let mut ranges = vec![(0, 0); shnum];
        for s in file.sections() {
            names[s.index().0] = s.name().unwrap_or("").to_owned();
            let (off, size) = s.file_range().unwrap_or((0, 0));
            ranges[s.index().0] = (off as usize, size as usize);
        }
        Layout {
            shoff,
            shnum,
            names,
            ranges,
        }
    }

    /// The index of the section named `name`.
    pub fn index(&self, name: &str) -> usize {
        self.names
            .iter()
            .position(|n| n == name)
            .unwrap_or_else(|| panic!("no section {name} in {:?}", self.names))
    }

    /// The file offset of the header of the section named `name`.
    pub fn header(&self, name: &str) -> usize {
        self.shoff + self.index(name) * SHDR
    }

    /// The file range of the bytes of the section named `name`.
    pub fn range(&self, name: &str) -> std::ops::Range<usize> {
        let (off, size) = self.ranges[self.index(name)];
        off..off + size
    }
}

/// Offsets of section header fields.
pub mod shdr {
    pub const TYPE: usize = 4;
    pub const FLAGS: usize = 8;
    pub const OFFSET: usize = 24;
    pub const SIZE: usize = 32;
    pub const LINK: usize = 40;
    pub const INFO: usize = 44;
}

/// Writes a little-endian `u32` at `at`.
pub fn put_u32(bytes: &mut [u8], at: usize, v: u32) {
    bytes[at..at + 4].copy_from_slice(&v.to_le_bytes());
}

/// Writes a little-endian `u64` at `at`.
pub fn put_u64(bytes: &mut [u8], at: usize, v: u64) {
    bytes[at..at + 8].copy_from_slice(&v.to_le_bytes());
}

/// Reads a little-endian `u64` at `at`.
pub fn get_u64(bytes: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(bytes[at..at + 8].try_into().expect("8 bytes"))
}
