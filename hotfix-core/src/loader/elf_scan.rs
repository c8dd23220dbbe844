//! What the patch file's ELF says, read before `dlopen`: that it is a complete
//! shared object for this machine, and which registry format it exports.

use crate::abi::{REGISTRY_FORMAT, REGISTRY_SYMBOL_PREFIX};
use crate::error::{Error, Result};
use object::{Object, ObjectSection, ObjectSymbol};
use std::path::Path;

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
