//! The `#[patchable]` functions of a build, read from its objects: each
//! descriptor (`FnDesc`, `#[repr(C)]`, placed in the `linkme_FNS` section)
//! names the function the slot runs unpatched (field `original`) and, through
//! its `FnMeta`, the function's path.

use super::objects::{Build, Unit};

/// Offsets in `FnDesc` and `FnMeta` (both `#[repr(C)]`, see hotfix-core's abi).
const DESC_META: u64 = 16;
const DESC_ORIGINAL: u64 = 24;
const META_PATH_LEN: u64 = 8;

/// One `#[patchable]` function of a build.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Desc {
    /// Its path (`demo_server::handlers::sum`).
    pub path: String,
    /// The symbol of the function its slot runs unpatched.
    pub original: String,
}

/// Every descriptor of `build`.
pub fn descriptors(build: &Build) -> Vec<Desc> {
    let mut out = Vec::new();
    for unit in &build.units {
        for sec in unit.sections.iter().filter(|s| s.name == "linkme_FNS") {
            let reloc_at = |off: u64| sec.relocs.iter().find(|r| r.offset == off);
            let (Some(orig), Some(meta)) = (reloc_at(DESC_ORIGINAL), reloc_at(DESC_META)) else {
                continue;
            };
            // A local function is named through its section's symbol.
            let t = &unit.symbols[orig.sym];
            let original = if t.is_section || t.name.is_empty() {
                match t
                    .section
                    .and_then(|s| unit.named_at(s, (t.value as i64 + orig.addend) as u64))
                {
                    Some(i) => &unit.symbols[i].name,
                    None => continue,
                }
            } else {
                &t.name
            };
            if let Some(path) = meta_path(unit, meta.sym, meta.addend) {
                out.push(Desc {
                    path,
                    original: original.clone(),
                });
            }
        }
    }
    out
}

/// The path string of the `FnMeta` at symbol `sym` + `addend`.
fn meta_path(unit: &Unit, sym: usize, addend: i64) -> Option<String> {
    let s = &unit.symbols[sym];
    let sec = &unit.sections[s.section?];
    let at = (s.value as i64 + addend) as u64;
    let ptr = sec.relocs.iter().find(|r| r.offset == at)?;
    let len_at = (at + META_PATH_LEN) as usize;
    let len = u64::from_le_bytes(sec.data.get(len_at..len_at + 8)?.try_into().ok()?) as usize;
    let t = &unit.symbols[ptr.sym];
    let text = &unit.sections[t.section?];
    let from = (t.value as i64 + ptr.addend) as usize;
    let bytes = text.data.get(from..from.checked_add(len)?)?;
    String::from_utf8(bytes.to_vec()).ok()
}
