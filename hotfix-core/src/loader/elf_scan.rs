//! What the patch file's ELF says, read before `dlopen`: that it is a complete
//! shared object for this machine, which registry format it exports, and whether
//! it carries private copies of host statics or thread-locals.

use crate::abi::{REGISTRY_FORMAT, REGISTRY_SYMBOL_PREFIX};
use crate::error::{Error, Result};
use object::{Object, ObjectSection, ObjectSymbol, SectionFlags, SymbolKind};
use std::collections::HashSet;
use std::path::Path;

/// Statics that tracing/log macros put into the calling crate: caches of
/// call-site registration, harmless as private copies.
const HARMLESS_STATICS: &[&str] = &["CALLSITE", "__CALLSITE", "META", "__META", "INTEREST"];

fn not_so(path: &Path, reason: impl Into<String>) -> Error {
    Error::NotSharedObject {
        path: path.to_owned(),
        reason: reason.into(),
    }
}

/// Checks the file's ELF structure and registry symbol; returns the parsed file.
pub(crate) fn inspect<'a>(path: &Path, bytes: &'a [u8]) -> Result<object::File<'a>> {
    if bytes.is_empty() {
        return Err(not_so(path, "the file is empty"));
    }
    if !bytes.starts_with(b"\x7fELF") {
        let shown: String = bytes
            .iter()
            .take(8)
            .map(|b| format!("{b:02x}"))
            .collect::<Vec<_>>()
            .join(" ");
        return Err(not_so(
            path,
            format!("not an ELF file (it starts with {shown})"),
        ));
    }
    let file = object::File::parse(bytes)
        .map_err(|e| not_so(path, format!("truncated or malformed ELF: {e}")))?;
    if file.kind() != object::ObjectKind::Dynamic {
        return Err(not_so(
            path,
            format!("it is a {:?} object, not a shared library", file.kind()),
        ));
    }
    if file.architecture() != object::Architecture::X86_64 {
        return Err(not_so(
            path,
            format!("it is built for {:?}, not x86_64", file.architecture()),
        ));
    }
    for s in file.sections() {
        if let Some((off, size)) = s.file_range()
            && off.saturating_add(size) > bytes.len() as u64
        {
            return Err(not_so(
                path,
                format!(
                    "truncated: section {} ends at byte {}, the file has {}",
                    s.name().unwrap_or("?"),
                    off.saturating_add(size),
                    bytes.len()
                ),
            ));
        }
    }
    let mut versions = Vec::new();
    for sym in file.dynamic_symbols().chain(file.symbols()) {
        if let Some(v) = sym
            .name()
            .ok()
            .and_then(|n| n.strip_prefix(REGISTRY_SYMBOL_PREFIX))
            .and_then(|v| v.parse::<u32>().ok())
        {
            versions.push(v);
        }
    }
    if versions.contains(&REGISTRY_FORMAT) {
        return Ok(file);
    }
    match versions.first() {
        None => Err(Error::NoRegistry {
            path: path.to_owned(),
        }),
        Some(&found) => Err(Error::UnsupportedFormat {
            path: path.to_owned(),
            found,
            supported: REGISTRY_FORMAT,
            relation: if found < REGISTRY_FORMAT {
                "older"
            } else {
                "newer"
            },
        }),
    }
}

/// A host static or thread-local the patch holds its own copy of.
pub(crate) enum PrivateCopy {
    Static(String),
    ThreadLocal(String),
}

/// Finds copies of host statics (writable data) and thread-locals that belong to
/// `host_crates` and are not hotfix's own (shared cells and storage, slots).
pub(crate) fn private_copies(
    path: &Path,
    file: &object::File<'_>,
    host_crates: &HashSet<String>,
    shared: &HashSet<&str>,
) -> Result<Vec<PrivateCopy>> {
    if file.symbol_table().is_none() {
        return Err(Error::NoSymbolTable {
            path: path.to_owned(),
        });
    }
    let mut found = Vec::new();
    let mut seen = HashSet::new();
    for sym in file.symbols() {
        let tls = sym.kind() == SymbolKind::Tls;
        if sym.kind() != SymbolKind::Data && !tls {
            continue;
        }
        let Ok(name) = sym.name() else { continue };
        let Ok(dm) = rustc_demangle::try_demangle(name) else {
            continue;
        };
        let full = format!("{dm:#}");
        let Some(krate) = full.split("::").next() else {
            continue;
        };
        if !host_crates.contains(krate) || full.contains("__HOTFIX_") || full.contains("__hotfix_")
        {
            continue;
        }
        let shown = full.split("::{{").next().unwrap_or(&full).to_owned();
        let last = shown.rsplit("::").next().unwrap_or("");
        if HARMLESS_STATICS.contains(&last) || shared.contains(shown.as_str()) {
            continue;
        }
        if !tls {
            let writable = sym
                .section_index()
                .and_then(|i| file.section_by_index(i).ok())
                .is_some_and(|s| {
                    // .data.rel.ro is read-only once relocated: immutable statics.
                    let relro = s.name().is_ok_and(|n| n.starts_with(".data.rel.ro"));
                    let write = match s.flags() {
                        SectionFlags::Elf { sh_flags } => {
                            sh_flags & u64::from(object::elf::SHF_WRITE) != 0
                        }
                        _ => false,
                    };
                    write && !relro
                });
            if !writable {
                continue;
            }
        }
        if seen.insert(shown.clone()) {
            found.push(if tls {
                PrivateCopy::ThreadLocal(shown)
            } else {
                PrivateCopy::Static(shown)
            });
        }
    }
    Ok(found)
}
