//! The walk from a checked file to a bound linked patch, forward only:
//! parse, prove, resolve, link, bind. The runtime makes it live.

use super::host_symbols::HostSymbols;
use super::parse::{Place, Role};
use super::{link, parse, prove, resolve, unwind};
use crate::abi::{FnDesc, PatchEntry};
use crate::error::{Error, Result};
use crate::loader::{CheckedFile, Hooks, LoadedPatch, PatchId, Resolved};
use std::sync::Arc;
use std::sync::atomic::AtomicPtr;

fn demangled(symbol: &str) -> String {
    format!("{:#}", rustc_demangle::demangle(symbol))
}

/// A linked patch that passed every check and is linked in memory, but is
/// reachable from nothing (dropping it unmaps it).
pub(crate) struct Prepared {
    label: String,
    targets: Vec<(&'static FnDesc, String)>,
    replacements: Vec<usize>,
    linked: link::Linked,
    register: unsafe extern "C" fn(*const u8),
    name: String,
    version: String,
}

/// Checks and links a linked patch file's bytes without making anything of
/// it reachable (see [`crate::linked::check_bytes`]).
pub(crate) fn prepare(src: &std::path::Path, bytes: &[u8]) -> Result<Prepared> {
    let invalid = |reason: String| Error::LinkedInvalid {
        path: src.to_owned(),
        reason,
    };
    // 2. parse
    let obj = parse::parse(bytes).map_err(invalid)?;
    let reg = &obj.registry;
    let label = format!("{} {}", reg.name, reg.version);
    let host_rustc = super::format::host_rustc();
    let host_target = env!("HOTFIX_TARGET");
    for (what, patch_value, host_value) in [
        ("compiler", &reg.host.rustc, host_rustc),
        ("target", &reg.host.target, host_target),
    ] {
        if patch_value != host_value {
            return Err(Error::LinkedBuiltElsewhere {
                patch: label,
                what,
                patch_value: patch_value.clone(),
                host_value: host_value.to_owned(),
            });
        }
    }
    if reg.replace.is_empty() {
        return Err(Error::EmptyPatch { patch: label });
    }
    let host = HostSymbols::get().map_err(|reason| Error::LinkedUnresolved {
        patch: label.clone(),
        function: "(the host's symbol table)".into(),
        symbol: String::new(),
        reason,
    })?;
    // 3. prove
    let proven = prove::prove(host, &crate::os::peek, &obj.base, &reg.proof).map_err(|m| {
        Error::LinkedUnproven {
            patch: label.clone(),
            function: demangled(&m.symbol),
            symbol: m.symbol,
            reason: m.reason,
        }
    })?;
    let index = crate::host::index();
    let mut targets: Vec<(&'static FnDesc, String)> = Vec::with_capacity(reg.replace.len());
    for r in &reg.replace {
        let fail = |reason: String| Error::LinkedTarget {
            patch: label.clone(),
            target: r.path.clone(),
            reason,
        };
        let desc = *index
            .fns
            .get(r.path.as_str())
            .ok_or_else(|| fail("the host has no #[patchable] function of this path".into()))?;
        if targets.iter().any(|(d, _)| std::ptr::eq(*d, desc)) {
            return Err(fail("the patch replaces it twice".into()));
        }
        let at = reg
            .proof
            .iter()
            .position(|p| p.symbol == r.host_symbol)
            .ok_or_else(|| {
                fail(format!(
                    "the function it replaces, {}, is not proven",
                    r.host_symbol
                ))
            })?;
        if proven[at] != desc.original as usize {
            return Err(fail(format!(
                "{} is not the function the slot runs unpatched",
                demangled(&r.host_symbol)
            )));
        }
        let code = obj
            .defined
            .get(&r.symbol)
            .and_then(|&i| match obj.symbols[i].place {
                Place::Defined { section, .. } => Some(obj.sections[section].role == Role::Code),
                Place::Undefined => None,
            });
        if code != Some(true) {
            return Err(fail(format!(
                "its replacement {} is not a function the patch carries",
                r.symbol
            )));
        }
        targets.push((desc, r.symbol.clone()));
    }
    // 4. resolve
    let resolved = resolve::resolve(&obj, host).map_err(|u| Error::LinkedUnresolved {
        patch: label.clone(),
        function: demangled(&u.symbol),
        symbol: u.symbol,
        reason: u.reason,
    })?;
    let register = unwind::register_frame_fn().ok_or_else(|| Error::LinkedUnresolved {
        patch: label.clone(),
        function: "the unwinder's frame registration".into(),
        symbol: "__register_frame".into(),
        reason: "the process has no unwinder to register the patch's unwind table with, so a panic could not unwind through patch code".into(),
    })?;
    // 5. link
    let linked = link::link(&obj, &resolved, host).map_err(|e| Error::LinkedUnresolved {
        patch: label.clone(),
        function: demangled(&e.symbol),
        symbol: e.symbol,
        reason: e.reason,
    })?;
    if let Some((at, len)) = linked.eh_frame {
        let code: Vec<(usize, usize)> = obj
            .sections
            .iter()
            .zip(&linked.section_addr)
            .filter(|(s, _)| s.role == Role::Code)
            .map(|(s, &a)| (a, a + s.size as usize))
            .collect();
        let mut personalities: Vec<usize> = host
            .lookup("rust_eh_personality")
            .iter()
            .map(|d| d.addr)
            .collect();
        personalities.extend(resolve::library_symbol("__gxx_personality_v0"));
        let bounds = unwind::Bounds {
            code: &code,
            mapping: (linked.map.addr(), linked.map.addr() + linked.map.len()),
            personalities: &personalities,
        };
        // SAFETY: the table lies in the patch's mapping, linked and made
        // read-only above, `len` bytes long; nothing writes it any more.
        let table = unsafe { std::slice::from_raw_parts(at as *const u8, len) };
        unwind::check(table, at, &bounds).map_err(|reason| Error::LinkedInvalid {
            path: src.to_owned(),
            reason,
        })?;
    }
    let replacements = targets
        .iter()
        .map(|(_, symbol)| {
            let i = obj.defined[symbol];
            let Place::Defined { section, offset } = obj.symbols[i].place else {
                unreachable!("checked to be defined code above")
            };
            linked.section_addr[section] + offset as usize
        })
        .collect();
    Ok(Prepared {
        label,
        targets,
        replacements,
        linked,
        register,
        name: reg.name.clone(),
        version: reg.version.clone(),
    })
}

/// Loads a linked patch: every check before anything of it is reachable.
pub(crate) fn load(checked: CheckedFile) -> Result<Arc<LoadedPatch>> {
    let p = prepare(&checked.source, &checked.bytes)?;
    // 6. bind: from here nothing refuses.
    if let Some((eh, _)) = p.linked.eh_frame {
        // SAFETY: `eh` is the patch's relocated `.eh_frame`, laid out with a
        // zero terminator in read-only memory kept mapped forever below.
        unsafe { unwind::register(p.register, eh) };
    }
    let entries: Vec<Resolved> = p
        .targets
        .iter()
        .zip(&p.replacements)
        .map(|((desc, _), &replacement)| {
            let entry: &'static PatchEntry = Box::leak(Box::new(PatchEntry {
                meta: desc.meta,
                replacement: replacement as *const (),
                prev: AtomicPtr::new(desc.original as *mut ()),
                host_catching: AtomicPtr::new(desc.catching as *mut ()),
                location: "linked",
            }));
            Resolved { entry, host: desc }
        })
        .collect();
    let base = p.linked.map.addr();
    p.linked.map.keep();
    let id = PatchId::next();
    tracing::debug!(patch = %p.label, %id, digest = %checked.digest, file = %checked.source.display(), at = format_args!("{base:#x}"), "linked patch loaded and bound");
    Ok(Arc::new(LoadedPatch::new(
        id,
        p.name,
        p.version,
        checked,
        entries,
        Hooks::default(),
    )))
}
