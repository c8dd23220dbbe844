//! Finding a C/C++ function by its symbol in the ELF symbol tables (`.symtab` and
//! `.dynsym`) of the executable and every loaded library, by mangled or
//! demangled name, with its size, runtime address and original bytes from disk.

use std::collections::HashSet;
use std::fs::File;
use std::path::{Path, PathBuf};

use object::read::elf::ElfFile64;
use object::{Object, ObjectSegment, ObjectSymbol, ReadCache, SymbolKind, elf};

use super::objects::{LoadedObject, loaded_objects};
use crate::arch::Variadic;
use crate::code_error::{CodeError, HexBytes};

/// A piece of code split off a function, or a compiler clone of it
/// (`foo.cold`, `foo.part.0`, `foo.constprop.0`, `foo.isra.0`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fragment {
    /// Its symbol.
    pub name: String,
    /// Its runtime address.
    pub address: usize,
    /// Its bytes in the file.
    pub original: Vec<u8>,
}

/// A function found in a loaded object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ForeignSymbol {
    /// The symbol as in the table (mangled).
    pub name: String,
    /// Its demangled form, if it is a C++ or Rust symbol.
    pub demangled: Option<String>,
    /// The object defining it.
    pub object: PathBuf,
    /// Runtime address.
    pub address: usize,
    /// Size from the symbol table.
    pub size: usize,
    /// Offset of its first byte in the file.
    pub file_offset: u64,
    /// Load bias of the object.
    pub bias: usize,
    /// Whether it takes `...` (proven only for demangled C++ signatures).
    pub variadic: Variadic,
    /// Whether every compiler that saw it knew calls to it bind to this very
    /// definition: a local (`static`) symbol, or hidden, internal or protected
    /// visibility. Callers of such a function may rely on the registers it
    /// leaves untouched (see [`crate::arch::untouched_caller_saved`]).
    pub binds_locally: bool,
    /// Its bytes in the file: what memory must hold before patching.
    pub original: Vec<u8>,
    /// Fragments and clones with symbols of their own (`name.cold`, ...). Their
    /// branches are checked too; callers of a clone are NOT redirected by a patch.
    pub fragments: Vec<Fragment>,
}

/// Finds the one function named `name` (mangled `_ZN4Role12getClassNameB5cxx11Ev`,
/// demangled `Role::getClassName[abi:cxx11]()`, demangled without parameters
/// `Role::getClassName[abi:cxx11]`, or a plain C name) in the executable and the
/// loaded libraries. Refuses none and several.
pub fn find_function(name: &str) -> Result<ForeignSymbol, CodeError> {
    let mut found = find_functions(name)?;
    match found.len() {
        0 => Err(CodeError::SymbolNotFound {
            name: name.to_string(),
        }),
        1 => Ok(found.remove(0)),
        _ => Err(CodeError::AmbiguousSymbol {
            name: name.to_string(),
            candidates: found
                .iter()
                .map(|s| format!("{} @ {:#x} in {}", s.name, s.address, s.object.display()))
                .collect(),
        }),
    }
}

/// Every function matching `name` in every loaded object (see [`find_function`]).
/// A symbol listed in both `.symtab` and `.dynsym` is returned once.
pub fn find_functions(name: &str) -> Result<Vec<ForeignSymbol>, CodeError> {
    let mut out = Vec::new();
    for obj in loaded_objects() {
        match search_object(&obj, name) {
            Ok(found) => out.extend(found),
            // A library whose file cannot be read (deleted, not ELF) cannot be
            // searched; the others still can.
            Err(e @ CodeError::ElfRead { .. }) => tracing::debug!(error = %e, "object skipped"),
            Err(e) => return Err(e),
        }
    }
    Ok(out)
}

fn elf_error(path: &Path, reason: impl ToString) -> CodeError {
    CodeError::ElfRead {
        path: path.to_path_buf(),
        reason: reason.to_string(),
    }
}

/// Longest identifier in the query: a cheap filter before demangling.
fn key_identifier(query: &str) -> &str {
    query
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .max_by_key(|s| s.len())
        .unwrap_or(query)
}

/// The demangled form of `raw`, full and without parameters.
fn demangle(raw: &str) -> Option<(String, Option<String>)> {
    if raw.starts_with("_Z") && !is_rust_legacy(raw) {
        let sym = cpp_demangle::Symbol::new(raw.as_bytes()).ok()?;
        let full = sym.demangle(&cpp_demangle::DemangleOptions::new()).ok()?;
        let short = sym
            .demangle(&cpp_demangle::DemangleOptions::new().no_params())
            .ok();
        return Some((full, short));
    }
    rustc_demangle::try_demangle(raw)
        .ok()
        .map(|d| (format!("{d:#}"), None))
}

/// The path of a Rust symbol as its source names it: demangled, without the
/// hash, without the compiler's own segments (`{{closure}}`, `{constant#0}`)
/// and without the name `thread_local!` gives a variable's storage
/// (`__RUST_STD_INTERNAL_VAL`). `None` if it is no Rust symbol.
pub(crate) fn rust_path(raw: &str) -> Option<String> {
    let full = format!("{:#}", rustc_demangle::try_demangle(raw).ok()?);
    let segments: Vec<&str> = full
        .split("::")
        .filter(|s| !(s.starts_with('{') && s.ends_with('}')))
        .collect();
    let keep = match segments.split_last() {
        Some((&"__RUST_STD_INTERNAL_VAL", rest)) if !rest.is_empty() => rest,
        _ => &segments[..],
    };
    let mut path = keep.join("::");
    // LLVM's suffixes (`HOST.0` for a static split in parts): no identifier
    // holds a dot.
    let last = path.rfind("::").map_or(0, |i| i + 2);
    if let Some(dot) = path[last..].find('.') {
        path.truncate(last + dot);
    }
    Some(path)
}

/// The paths ([`rust_path`]) of the statics and thread-locals that the symbol
/// table of this process's executable names; `None` if it has no symbol table
/// (stripped).
pub(crate) fn executable_statics() -> Result<Option<HashSet<String>>, CodeError> {
    let Some(exe) = loaded_objects().into_iter().find(|o| o.is_main) else {
        return Err(elf_error(Path::new("/proc/self/exe"), "no main executable"));
    };
    let file = File::open(&exe.read_path).map_err(|e| elf_error(&exe.path, e))?;
    let cache = ReadCache::new(file);
    let elf =
        ElfFile64::<object::Endianness, _>::parse(&cache).map_err(|e| elf_error(&exe.path, e))?;
    if elf.symbol_table().is_none() {
        return Ok(None);
    }
    let mut out = HashSet::new();
    for sym in elf.symbols().chain(elf.dynamic_symbols()) {
        if !matches!(sym.kind(), SymbolKind::Data | SymbolKind::Tls) || sym.is_undefined() {
            continue;
        }
        if let Some(path) = sym.name().ok().and_then(rust_path) {
            out.insert(path);
        }
    }
    Ok(Some(out))
}

/// Legacy Rust symbols end in `17h<16 hex digits>E`.
fn is_rust_legacy(raw: &str) -> bool {
    raw.len() > 20
        && raw.ends_with('E')
        && raw[..raw.len() - 1]
            .rsplit_once("17h")
            .is_some_and(|(_, h)| h.len() == 16 && h.bytes().all(|b| b.is_ascii_hexdigit()))
}

fn variadic_of(demangled: Option<&str>) -> Variadic {
    match demangled {
        Some(d) if d.contains('(') => {
            if d.contains("...") {
                Variadic::Yes
            } else {
                Variadic::No
            }
        }
        _ => Variadic::Unknown,
    }
}

type Elf<'a> = ElfFile64<'a, object::Endianness, &'a ReadCache<File>>;

struct Candidate {
    name: String,
    demangled: Option<String>,
    st_value: u64,
    size: u64,
    st_type: u8,
    binds_locally: bool,
}

fn search_object(obj: &LoadedObject, query: &str) -> Result<Vec<ForeignSymbol>, CodeError> {
    let file = File::open(&obj.read_path).map_err(|e| elf_error(&obj.path, e))?;
    let cache = ReadCache::new(file);
    let elf =
        ElfFile64::<object::Endianness, _>::parse(&cache).map_err(|e| elf_error(&obj.path, e))?;
    let key = key_identifier(query);
    let mut matches: Vec<Candidate> = Vec::new();
    let mut all_funcs: Vec<(String, u64, u64)> = Vec::new();
    // Addresses that some symbol names as binding locally: a global default
    // function with a local alias (`-fno-semantic-interposition`'s
    // `.localalias`, glibc's hidden `__GI_` names) is called directly.
    let mut local_at = std::collections::HashSet::new();
    for sym in elf.symbols().chain(elf.dynamic_symbols()) {
        let e = sym.elf_symbol();
        if !sym.is_undefined()
            && (e.st_bind() == elf::STB_LOCAL || e.st_visibility() != elf::STV_DEFAULT)
        {
            local_at.insert(sym.address());
        }
    }
    for sym in elf.symbols().chain(elf.dynamic_symbols()) {
        let st_type = sym.elf_symbol().st_type();
        if !matches!(st_type, elf::STT_FUNC | elf::STT_GNU_IFUNC) || sym.is_undefined() {
            continue;
        }
        let Ok(raw) = sym.name() else { continue };
        all_funcs.push((raw.to_string(), sym.address(), sym.size()));
        let demangled = if raw == query || raw.contains(key) {
            demangle(raw)
        } else {
            None
        };
        let hit = raw == query
            || demangled
                .as_ref()
                .is_some_and(|(full, short)| full == query || short.as_deref() == Some(query));
        if hit
            && !matches
                .iter()
                .any(|c| c.st_value == sym.address() && c.name == raw)
        {
            matches.push(Candidate {
                name: raw.to_string(),
                demangled: demangled.map(|d| d.0),
                st_value: sym.address(),
                size: sym.size(),
                st_type,
                binds_locally: sym.elf_symbol().st_bind() == elf::STB_LOCAL
                    || sym.elf_symbol().st_visibility() != elf::STV_DEFAULT,
            });
        }
    }
    // One function may be listed under several names (aliases) or twice.
    matches.sort_by_key(|c| c.st_value);
    matches.dedup_by_key(|c| c.st_value);
    if matches.is_empty() {
        return Ok(Vec::new());
    }
    check_build_id(obj, &elf)?;
    let mut out = Vec::new();
    for c in matches {
        if c.st_type == elf::STT_GNU_IFUNC {
            return Err(unsupported(
                obj,
                &c.name,
                "an IFUNC symbol names its resolver, not the function",
            ));
        }
        if c.size == 0 {
            return Err(unsupported(
                obj,
                &c.name,
                "the symbol table gives it no size",
            ));
        }
        let (file_offset, original) = file_bytes(&elf, c.st_value, c.size).ok_or_else(|| {
            unsupported(obj, &c.name, "its bytes are not in a loaded file segment")
        })?;
        let prefix = format!("{}.", c.name);
        let mut fragments = Vec::new();
        for (name, value, size) in all_funcs.iter().filter(|f| f.0.starts_with(&prefix)) {
            if fragments.iter().any(|f: &Fragment| f.name == *name) || *size == 0 {
                continue;
            }
            if let Some((_, bytes)) = file_bytes(&elf, *value, *size) {
                fragments.push(Fragment {
                    name: name.clone(),
                    address: obj.bias.wrapping_add(*value as usize),
                    original: bytes,
                });
            }
        }
        out.push(ForeignSymbol {
            variadic: variadic_of(c.demangled.as_deref()),
            binds_locally: c.binds_locally || local_at.contains(&c.st_value),
            name: c.name,
            demangled: c.demangled,
            object: obj.path.clone(),
            address: obj.bias.wrapping_add(c.st_value as usize),
            size: c.size as usize,
            file_offset,
            bias: obj.bias,
            original,
            fragments,
        });
    }
    Ok(out)
}

fn unsupported(obj: &LoadedObject, name: &str, reason: &'static str) -> CodeError {
    CodeError::UnsupportedSymbol {
        name: name.to_string(),
        object: obj.path.clone(),
        reason,
    }
}

fn check_build_id<'a>(obj: &LoadedObject, elf: &Elf<'a>) -> Result<(), CodeError> {
    let on_disk = elf.build_id().ok().flatten();
    match (on_disk, obj.build_id.as_deref()) {
        (Some(disk), Some(mem)) if disk != mem => Err(CodeError::BuildIdMismatch {
            path: obj.path.clone(),
            on_disk: HexBytes(disk.to_vec()),
            loaded: HexBytes(mem.to_vec()),
        }),
        _ => Ok(()),
    }
}

/// File offset and bytes of `[vaddr, vaddr+size)` from the loadable segment
/// holding them.
fn file_bytes<'a>(elf: &Elf<'a>, vaddr: u64, size: u64) -> Option<(u64, Vec<u8>)> {
    let end = vaddr.checked_add(size)?;
    let seg = elf.segments().find(|s| {
        let (_, filesz) = s.file_range();
        s.address() <= vaddr && s.address().checked_add(filesz).is_some_and(|e| end <= e)
    })?;
    let rel = vaddr - seg.address();
    let offset = seg.file_range().0.checked_add(rel)?;
    let data = seg.data().ok()?;
    let start = usize::try_from(rel).ok()?;
    let bytes = data
        .get(start..start.checked_add(usize::try_from(size).ok()?)?)?
        .to_vec();
    Some((offset, bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn demangles_and_classifies() {
        let (full, short) = demangle("_ZN4Role12getClassNameB5cxx11Ev").unwrap();
        assert_eq!(full, "Role::getClassName[abi:cxx11]()");
        assert_eq!(short.as_deref(), Some("Role::getClassName[abi:cxx11]"));
        assert_eq!(variadic_of(Some(&full)), Variadic::No);
        let (full, _) = demangle("_Z6printfPKcz").unwrap();
        assert_eq!(variadic_of(Some(&full)), Variadic::Yes);
        assert_eq!(variadic_of(None), Variadic::Unknown);
        assert_eq!(
            key_identifier("Role::getClassName[abi:cxx11]()"),
            "getClassName"
        );
        assert!(is_rust_legacy("_ZN4core3fmt5write17h0123456789abcdefE"));
    }

    #[test]
    fn rust_paths_leave_out_compiler_segments() {
        assert_eq!(
            rust_path("_ZN12fixture_host2TL29_$u7b$$u7b$constant$u7d$$u7d$28_$u7b$$u7b$closure$u7d$$u7d$23__RUST_STD_INTERNAL_VAL17h8887ff8c9a7fd76dE").as_deref(),
            Some("fixture_host::TL")
        );
        assert_eq!(
            rust_path("_RNvNCNKNvNtNtCsjrHSEGnQ3l9_3std9panicking11panic_count17LOCAL_PANIC_COUNT0s_023___RUST_STD_INTERNAL_VAL").as_deref(),
            Some("std::panicking::panic_count::LOCAL_PANIC_COUNT")
        );
        assert_eq!(
            rust_path("_ZN12fixture_host5PLAIN17h0123456789abcdefE").as_deref(),
            Some("fixture_host::PLAIN")
        );
        assert_eq!(
            rust_path("_ZN11hotfix_core12alloc_bridge4HOST17haf33f0964d898832E.0").as_deref(),
            Some("hotfix_core::alloc_bridge::HOST")
        );
        assert_eq!(rust_path("memcpy"), None);
    }
}
