//! The running host's own symbols: the executable's `.symtab` with its load
//! bias, its address range, and its thread-local block. Read once from
//! `/proc/self/exe` (the file the process runs, even if replaced on disk
//! since), through a read cache (only the tables are read), never trusting a
//! symbol before its section is checked. `hotfix build` reads a host
//! executable's file the same way ([`HostSymbols::of_file`]).

use object::read::elf::ElfFile64;
use object::{Object, ObjectSection, ObjectSegment, ObjectSymbol, ReadCache, SectionIndex};
use std::collections::HashMap;
use std::sync::OnceLock;

/// What a host symbol is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HostKind {
    /// Code.
    Function,
    /// Data the process may write (`.data`, `.bss`, ...).
    Writable,
    /// Data nobody writes after relocation (`.rodata`, `.data.rel.ro`).
    ReadOnly,
    /// A thread-local: its value is the offset in the executable's TLS block.
    ThreadLocal,
}

/// One definition of a symbol in the executable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HostSymbol {
    /// Runtime address (for a thread-local: offset in the TLS block).
    pub addr: usize,
    /// Size from the symbol table.
    pub size: usize,
    /// What it is.
    pub kind: HostKind,
}

/// The executable's symbols.
#[derive(Debug)]
pub struct HostSymbols {
    by_name: HashMap<String, Vec<HostSymbol>>,
    /// Lowest and highest address of the executable's loaded segments.
    pub range: (usize, usize),
    /// Its TLS module id, if it has a TLS block the loader reports.
    pub tls_module: Option<usize>,
    /// Its loaded segments: address, size in the file, offset in the file.
    loads: Vec<(usize, usize, u64)>,
    /// Names it takes from shared libraries (undefined in its tables).
    imports: std::collections::HashSet<String>,
}

impl HostSymbols {
    /// The host's symbols, read once.
    pub fn get() -> Result<&'static HostSymbols, String> {
        static HOST: OnceLock<Result<HostSymbols, String>> = OnceLock::new();
        HOST.get_or_init(read).as_ref().map_err(Clone::clone)
    }

    /// The symbols of an executable file, at its link-time addresses.
    pub fn of_file(path: &std::path::Path) -> Result<HostSymbols, String> {
        read_file(path, path, 0)
    }

    /// Reads `out.len()` bytes at link-time address `addr` from the file the
    /// symbols were read from (see [`HostSymbols::of_file`]); false if they
    /// are not all in the file.
    pub fn read_from_file(&self, file: &std::fs::File, addr: usize, out: &mut [u8]) -> bool {
        use std::os::unix::fs::FileExt;
        let Some(&(start, filesz, offset)) = self
            .loads
            .iter()
            .find(|(start, filesz, _)| addr >= *start && addr - start < *filesz)
        else {
            return false;
        };
        if (addr - start).saturating_add(out.len()) > filesz {
            return false;
        }
        file.read_exact_at(out, offset + (addr - start) as u64)
            .is_ok()
    }

    /// Whether the executable takes `name` from a shared library.
    pub fn imports(&self, name: &str) -> bool {
        self.imports.contains(name)
    }

    /// Every definition of `name`.
    pub fn lookup(&self, name: &str) -> &[HostSymbol] {
        self.by_name.get(name).map_or(&[], Vec::as_slice)
    }

    /// Every name with its definitions.
    #[cfg(test)]
    pub fn names(&self) -> impl Iterator<Item = (&String, &Vec<HostSymbol>)> {
        self.by_name.iter()
    }
}

fn read() -> Result<HostSymbols, String> {
    let main = crate::foreign::loaded_objects()
        .into_iter()
        .find(|o| o.is_main)
        .ok_or("the process has no main executable in the loader's list")?;
    let mut host = read_file(&main.read_path, &main.path, main.bias)?;
    host.tls_module = main_tls_module();
    Ok(host)
}

fn read_file(
    read_path: &std::path::Path,
    label: &std::path::Path,
    bias: usize,
) -> Result<HostSymbols, String> {
    let file = std::fs::File::open(read_path)
        .map_err(|e| format!("cannot open {}: {e}", read_path.display()))?;
    let cache = ReadCache::new(file);
    let elf = ElfFile64::<object::Endianness, _>::parse(&cache)
        .map_err(|e| format!("{} is no ELF file hotfix reads: {e}", label.display()))?;
    let mut lo = usize::MAX;
    let mut hi = 0usize;
    let mut loads = Vec::new();
    for seg in elf.segments() {
        let start = bias.wrapping_add(seg.address() as usize);
        lo = lo.min(start);
        hi = hi.max(start.wrapping_add(seg.size() as usize));
        let (offset, filesz) = seg.file_range();
        loads.push((seg.address() as usize, filesz as usize, offset));
    }
    if lo >= hi {
        return Err(format!("{} has no loaded segment", label.display()));
    }
    let mut sections: HashMap<SectionIndex, HostKind> = HashMap::new();
    for s in elf.sections() {
        let flags = match s.flags() {
            object::SectionFlags::Elf { sh_flags } => sh_flags,
            _ => 0,
        };
        let kind = if flags & u64::from(object::elf::SHF_TLS) != 0 {
            HostKind::ThreadLocal
        } else if flags & u64::from(object::elf::SHF_EXECINSTR) != 0 {
            HostKind::Function
        } else if flags & u64::from(object::elf::SHF_WRITE) != 0
            && !is_relro(s.name().unwrap_or(""))
        {
            HostKind::Writable
        } else {
            HostKind::ReadOnly
        };
        sections.insert(s.index(), kind);
    }
    let mut by_name: HashMap<String, Vec<HostSymbol>> = HashMap::new();
    let mut imports = std::collections::HashSet::new();
    for sym in elf.dynamic_symbols().chain(elf.symbols()) {
        if sym.is_undefined()
            && let Ok(name) = sym.name()
            && !name.is_empty()
        {
            imports.insert(name.to_owned());
        }
    }
    let mut any = false;
    for sym in elf.symbols() {
        any = true;
        let Some(index) = sym.section_index() else {
            continue;
        };
        let Some(&kind) = sections.get(&index) else {
            continue;
        };
        let Ok(name) = sym.name() else { continue };
        if name.is_empty() || sym.kind() == object::SymbolKind::Section {
            continue;
        }
        let addr = if kind == HostKind::ThreadLocal {
            sym.address() as usize
        } else {
            bias.wrapping_add(sym.address() as usize)
        };
        by_name
            .entry(name.to_owned())
            .or_default()
            .push(HostSymbol {
                addr,
                size: sym.size() as usize,
                kind,
            });
    }
    if !any {
        return Err(format!(
            "{} has no symbol table (it was stripped); a linked patch resolves its references by the host's symbols: build the host with `strip = \"none\"` (cargo's default)",
            label.display()
        ));
    }
    Ok(HostSymbols {
        by_name,
        range: (lo, hi),
        tls_module: None,
        loads,
        imports,
    })
}

/// `.data.rel.ro` is written by the dynamic loader only, then made read-only.
fn is_relro(name: &str) -> bool {
    name.starts_with(".data.rel.ro") || name == ".got" || name.starts_with(".init_array")
}

/// The main executable's TLS module id, from the dynamic loader.
fn main_tls_module() -> Option<usize> {
    let mut out: Option<usize> = None;
    extern "C" fn first(
        info: *mut libc::dl_phdr_info,
        _size: libc::size_t,
        data: *mut libc::c_void,
    ) -> libc::c_int {
        // SAFETY: `data` is the `Option<usize>` below and `info` is valid for
        // this call (dl_iterate_phdr's contract); the first object is the
        // main executable.
        let (out, info) = unsafe { (&mut *data.cast::<Option<usize>>(), &*info) };
        if info.dlpi_tls_modid != 0 {
            *out = Some(info.dlpi_tls_modid);
        }
        1 // the first object only
    }
    // SAFETY: the callback only reads the info and writes `out`, alive for
    // the call.
    unsafe { libc::dl_iterate_phdr(Some(first), (&mut out as *mut Option<usize>).cast()) };
    out
}

/// The address of the calling thread's instance of the executable's
/// thread-local at `offset` of its TLS block, through the dynamic loader.
pub fn thread_local_address(module: usize, offset: usize) -> usize {
    #[repr(C)]
    struct TlsIndex {
        module: usize,
        offset: usize,
    }
    unsafe extern "C" {
        fn __tls_get_addr(index: *const TlsIndex) -> *mut u8;
    }
    let index = TlsIndex { module, offset };
    // SAFETY: `module` is the executable's TLS module id as the loader
    // reported it and `offset` lies in its TLS block (a symbol of a TLS
    // section); `__tls_get_addr` allocates the calling thread's block if needed.
    unsafe { __tls_get_addr(&index) as usize }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_its_own_functions_at_their_addresses() {
        let host = HostSymbols::get().unwrap();
        let me = read as fn() -> _ as usize;
        assert!(host.range.0 <= me && me < host.range.1);
        let found = host
            .by_name
            .iter()
            .find(|(n, defs)| n.contains("host_symbols4read") && defs.iter().any(|d| d.addr == me));
        assert!(
            found.is_some(),
            "this very function is found by name at its address"
        );
    }
}
