//! Whether a function's machine code differs between the base build and the
//! fixed build, relocation-aware: the bytes outside relocated fields must be
//! equal, and each relocation must be of the same type at the same place and
//! name the same target. A named target is compared by name (symbol names
//! carry the crate's build hash, so they match exactly between two builds of
//! one source with one set of settings); an anonymous constant, whose
//! section number moves when another constant is added, by its contents.

use super::objects::{Build, Rel, Unit};
use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};

/// Bytes a relocation of this type fills in an object file.
pub fn field_width(r_type: u32) -> usize {
    use hotfix_core::arch::reloc;
    use object::elf::{R_X86_64_8, R_X86_64_16, R_X86_64_PC16};
    match reloc::classify(r_type) {
        Some(k) => reloc::width(k),
        None if r_type == R_X86_64_8 => 1,
        None if r_type == R_X86_64_16 || r_type == R_X86_64_PC16 => 2,
        None => 4,
    }
}

/// How a relocation's target is named across builds.
pub fn target_key(unit: &Unit, rel: &Rel) -> String {
    let s = &unit.symbols[rel.sym];
    if !s.is_section && !s.name.is_empty() {
        return format!("{}{:+}", s.name, rel.addend);
    }
    let Some(sec) = s.section else {
        return format!("?{:+}", rel.addend);
    };
    if let Some(owner) = unit.owner(sec) {
        return format!(
            "{}@{:+}",
            unit.symbols[owner].name,
            rel.addend + s.value as i64
        );
    }
    format!(
        "#{:016x}{:+}",
        content_hash(unit, sec),
        rel.addend + s.value as i64
    )
}

/// A hash of an anonymous section's contents: its bytes with relocated
/// fields zeroed, and its relocations with their targets' names.
pub fn content_hash(unit: &Unit, sec: usize) -> u64 {
    let s = &unit.sections[sec];
    let mut h = DefaultHasher::new();
    s.size.hash(&mut h);
    masked(&s.data, &s.relocs).hash(&mut h);
    for r in sorted(&s.relocs) {
        (r.offset, r.r_type).hash(&mut h);
        let t = &unit.symbols[r.sym];
        if t.is_section || t.name.is_empty() {
            match t.section.and_then(|i| unit.owner(i)) {
                Some(o) => unit.symbols[o].name.hash(&mut h),
                None => "anonymous".hash(&mut h),
            }
        } else {
            t.name.hash(&mut h);
        }
        r.addend.hash(&mut h);
    }
    h.finish()
}

fn sorted(relocs: &[Rel]) -> Vec<Rel> {
    let mut v = relocs.to_vec();
    v.sort_by_key(|r| r.offset);
    v
}

fn masked(data: &[u8], relocs: &[Rel]) -> Vec<u8> {
    let mut out = data.to_vec();
    for r in relocs {
        let from = r.offset as usize;
        let to = (from + field_width(r.r_type)).min(out.len());
        if from < to {
            out[from..to].fill(0);
        }
    }
    out
}

/// Whether section `a` of `base` and section `b` of `fixed` hold the same
/// code (see the module docs).
pub fn same_code(base: &Build, a: (usize, usize), fixed: &Build, b: (usize, usize)) -> bool {
    let (ua, ub) = (&base.units[a.0], &fixed.units[b.0]);
    let (sa, sb) = (&ua.sections[a.1], &ub.sections[b.1]);
    if sa.size != sb.size || sa.relocs.len() != sb.relocs.len() {
        return false;
    }
    if masked(&sa.data, &sa.relocs) != masked(&sb.data, &sb.relocs) {
        return false;
    }
    sorted(&sa.relocs)
        .iter()
        .zip(sorted(&sb.relocs).iter())
        .all(|(x, y)| {
            x.offset == y.offset && x.r_type == y.r_type && target_key(ua, x) == target_key(ub, y)
        })
}
