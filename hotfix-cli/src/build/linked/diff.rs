//! Whether a function's machine code differs between the base build and the
//! fixed build, relocation-aware: the bytes outside relocated fields must be
//! equal, and each relocation must be of the same type at the same place and
//! name the same target. A named target is compared by name (symbol names
//! carry the crate's build hash, so they match exactly between two builds of
//! one source with one set of settings); an anonymous constant, whose
//! section number moves when another constant is added, by its contents.
//! The items `#[patchable]` generates beside a function (its descriptor,
//! entry and thunks) are named after the function's place in the source, so
//! they are compared without that part ([`stable_name`]): a function below
//! a longer fix moves, and its unchanged wrapper must stay the host's (its
//! slot is the host's), not be carried with a private copy of its descriptor.

use super::objects::{Build, Rel, Unit};
use std::borrow::Cow;
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

/// The prefixes of the items `#[patchable]` generates beside a function,
/// whose names end in `_` and 16 hex digits of a hash of its place.
const GENERATED: [&str; 5] = [
    "__HOTFIX_DESC_",
    "__hotfix_entry_",
    "__hotfix_call_",
    "__hotfix_catching_",
    "__hotfix_cross_",
];

/// `name`, demangled and without the hash of the function's place, if it
/// names an item `#[patchable]` generates; else `name` itself.
pub fn stable_name(name: &str) -> Cow<'_, str> {
    if !GENERATED.iter().any(|g| name.contains(g)) {
        return Cow::Borrowed(name);
    }
    let shown = format!("{:#}", rustc_demangle::demangle(name));
    let mut out = String::with_capacity(shown.len());
    let mut rest = shown.as_str();
    while let Some((at, g)) = GENERATED
        .iter()
        .filter_map(|g| rest.find(g).map(|at| (at, g)))
        .min()
    {
        let ident_end = rest[at..]
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .map_or(rest.len(), |e| at + e);
        let ident = &rest[at..ident_end];
        let hashed = ident.len() > g.len() + 17
            && ident.as_bytes()[ident.len() - 17] == b'_'
            && ident[ident.len() - 16..]
                .bytes()
                .all(|b| b.is_ascii_hexdigit());
        out.push_str(&rest[..at]);
        out.push_str(if hashed {
            &ident[..ident.len() - 17]
        } else {
            ident
        });
        rest = &rest[ident_end..];
    }
    out.push_str(rest);
    Cow::Owned(out)
}

/// How a relocation's target is named across builds.
pub fn target_key(unit: &Unit, rel: &Rel) -> String {
    let s = &unit.symbols[rel.sym];
    if !s.is_section && !s.name.is_empty() {
        return format!("{}{:+}", stable_name(&s.name), rel.addend);
    }
    let Some(sec) = s.section else {
        return format!("?{:+}", rel.addend);
    };
    if let Some(owner) = unit.owner(sec) {
        return format!(
            "{}@{:+}",
            stable_name(&unit.symbols[owner].name),
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
                Some(o) => stable_name(&unit.symbols[o].name).hash(&mut h),
                None => "anonymous".hash(&mut h),
            }
        } else {
            stable_name(&t.name).hash(&mut h);
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

#[cfg(test)]
mod tests {
    use super::stable_name;

    #[test]
    fn generated_items_are_named_without_the_hash_of_their_place() {
        let desc = "_ZN12fixable_host6ledger51__HOTFIX_DESC_fixable_host_balance_647ac0352e3f19c117h0123456789abcdefE";
        assert_eq!(
            stable_name(desc),
            "fixable_host::ledger::__HOTFIX_DESC_fixable_host_balance"
        );
        assert_eq!(
            stable_name("__hotfix_entry_fixable_host_balance_647ac0352e3f19c1"),
            "__hotfix_entry_fixable_host_balance"
        );
        assert_eq!(
            stable_name("a::__hotfix_call_k_f_0123456789abcdef::{{closure}}"),
            "a::__hotfix_call_k_f::{{closure}}"
        );
        // Anything else, and a generated prefix without the hash, as it is.
        let other = "_ZN12fixable_host6ledger6Ledger7balance17h0123456789abcdefE";
        assert_eq!(stable_name(other), other);
        assert_eq!(stable_name("__hotfix_entry_x"), "__hotfix_entry_x");
    }
}
