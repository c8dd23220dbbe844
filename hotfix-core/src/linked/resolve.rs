//! Where every symbol a linked patch refers to lives: in the patch (what it
//! carries), in the running executable (by name in its symbol table: its
//! functions, statics, thread-locals, vtables, std, tokio, the allocator and
//! the panic machinery are all the host's own), or in a library the process
//! loaded (libc). A symbol found nowhere is refused by name, and so is a
//! patch that carries its own copy of a static the host has.

use super::host_symbols::{HostKind, HostSymbols};
use super::parse::{PatchObject, Place, Role};

/// Where one symbol resolves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    /// Carried by the patch: a section of it and an offset.
    Patch { section: usize, offset: u64 },
    /// The executable's, at this address.
    Host(usize),
    /// The executable's thread-local at this offset of its TLS block.
    HostTls(usize),
    /// A loaded library's, at this address (far from the patch: calls go
    /// through a stub, data through the GOT).
    Library(usize),
    /// No relocation refers to it (the null symbol).
    Unused,
}

/// A symbol that could not be resolved, and why.
#[derive(Debug, PartialEq, Eq)]
pub struct Unresolved {
    /// Its name.
    pub symbol: String,
    /// Why.
    pub reason: String,
}

/// Resolves every symbol of `obj`, in the order of `obj.symbols`.
pub fn resolve(obj: &PatchObject, host: &HostSymbols) -> Result<Vec<Target>, Unresolved> {
    let mut out = Vec::with_capacity(obj.symbols.len());
    for sym in &obj.symbols {
        let fail = |reason: &str| Unresolved {
            symbol: sym.name.clone(),
            reason: reason.to_owned(),
        };
        let target = match sym.place {
            Place::Defined { section, offset } => {
                let role = obj.sections[section].role;
                if matches!(role, Role::Writable | Role::Zeroed) && !sym.name.is_empty() {
                    let shadows = host
                        .lookup(&sym.name)
                        .iter()
                        .any(|h| h.kind == HostKind::Writable);
                    if shadows {
                        return Err(fail(
                            "the patch carries its own copy of this static of the running host; its code must use the host's (rebuild the patch with `hotfix build`)",
                        ));
                    }
                }
                Target::Patch { section, offset }
            }
            // The parser refuses a relocation naming such a symbol.
            Place::Undefined if sym.name.is_empty() => Target::Unused,
            Place::Undefined => host_target(&sym.name, sym.tls, host).map_err(|r| fail(&r))?,
        };
        out.push(target);
    }
    Ok(out)
}

fn host_target(name: &str, tls: bool, host: &HostSymbols) -> Result<Target, String> {
    let defs = host.lookup(name);
    if tls {
        let mut tls_defs = defs.iter().filter(|d| d.kind == HostKind::ThreadLocal);
        return match (tls_defs.next(), tls_defs.next()) {
            (Some(d), None) => Ok(Target::HostTls(d.addr)),
            (Some(_), Some(_)) => Err("the host has several thread-locals of this name".into()),
            (None, _) => Err(
                "the running host has no such thread-local; a patch cannot add thread-locals"
                    .into(),
            ),
        };
    }
    let defs: Vec<_> = defs
        .iter()
        .filter(|d| d.kind != HostKind::ThreadLocal)
        .collect();
    if let Some(first) = defs.first() {
        let distinct = defs.iter().any(|d| d.addr != first.addr);
        let copies = defs.iter().all(|d| d.kind == HostKind::Function) && is_rust_symbol(name);
        if distinct && !copies {
            return Err(format!(
                "the host has {} different symbols of this name; which one the patch means cannot be told",
                defs.len()
            ));
        }
        // Local copies of one Rust function (its name carries the hash of
        // its crate and instance) are the same code: any.
        return Ok(Target::Host(first.addr));
    }
    if host
        .lookup(name)
        .iter()
        .any(|d| d.kind == HostKind::ThreadLocal)
    {
        return Err(
            "the host's symbol of this name is a thread-local, used as a plain symbol".into(),
        );
    }
    match library_symbol(name) {
        Some(addr) => Ok(Target::Library(addr)),
        None => Err(
            "the running host does not have it and the patch does not carry it (rebuild the patch against this host with `hotfix build --pid`)".into(),
        ),
    }
}

/// Whether `name` is a Rust symbol whose name says which one it is: legacy
/// mangling ends in `17h` and 16 hex digits, v0 starts with `_R`.
pub fn is_rust_symbol(name: &str) -> bool {
    if name.starts_with("_R") {
        return true;
    }
    let Some(body) = name.strip_prefix("_ZN").and_then(|n| n.strip_suffix('E')) else {
        return false;
    };
    body.len() > 19
        && body[body.len() - 19..].starts_with("17h")
        && body[body.len() - 16..]
            .bytes()
            .all(|b| b.is_ascii_hexdigit())
}

/// A symbol of a library the process loaded (`dlsym` over the global scope).
pub fn library_symbol(name: &str) -> Option<usize> {
    let c = std::ffi::CString::new(name).ok()?;
    // SAFETY: `dlsym` with RTLD_DEFAULT only looks the NUL-terminated name up.
    let p = unsafe { libc::dlsym(libc::RTLD_DEFAULT, c.as_ptr()) };
    (!p.is_null()).then_some(p as usize)
}

#[cfg(test)]
mod tests {
    use super::is_rust_symbol;

    #[test]
    fn rust_symbols_are_told_from_local_labels() {
        assert!(is_rust_symbol(
            "_ZN11demo_server8handlers3sum17hbc4df0afcfd839faE"
        ));
        assert!(is_rust_symbol("_RNvCs1234_5crate3foo"));
        assert!(!is_rust_symbol("GCC_except_table0"));
        assert!(!is_rust_symbol("_ZL7counter"));
        assert!(!is_rust_symbol("_ZN3foo3barE"));
        assert!(!is_rust_symbol("_ZN3foo17hXYZ0000000000000E"));
    }
}
