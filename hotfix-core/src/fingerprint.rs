//! Compile-time fingerprints (FNV-1a, 64 bit) of signatures, bodies and types.

const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const PRIME: u64 = 0x0000_0100_0000_01b3;

/// FNV-1a of `bytes`, continuing from `hash`.
pub const fn fnv1a(mut hash: u64, bytes: &[u8]) -> u64 {
    let mut i = 0;
    while i < bytes.len() {
        hash ^= bytes[i] as u64;
        hash = hash.wrapping_mul(PRIME);
        i += 1;
    }
    hash
}

/// FNV-1a of a string, from the standard offset basis.
pub const fn hash_str(s: &str) -> u64 {
    fnv1a(OFFSET, s.as_bytes())
}

const fn mix_usize(hash: u64, v: usize) -> u64 {
    fnv1a(hash, &(v as u64).to_le_bytes())
}

/// Fingerprint of a signature: its text plus `(size, align)` of every argument
/// and of the return type, in order.
pub const fn signature(text: &str, layouts: &[(usize, usize)]) -> u64 {
    let mut h = hash_str(text);
    let mut i = 0;
    while i < layouts.len() {
        h = mix_usize(h, layouts[i].0);
        h = mix_usize(h, layouts[i].1);
        i += 1;
    }
    h
}

/// Adds a type's size and alignment to `hash`.
pub const fn add_layout(hash: u64, size: usize, align: usize) -> u64 {
    mix_usize(mix_usize(hash, size), align)
}

/// Fingerprint of a type: its text, size and alignment.
pub const fn type_layout(text: &str, size: usize, align: usize) -> u64 {
    mix_usize(mix_usize(hash_str(text), size), align)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_changes_the_signature_fingerprint() {
        let a = signature("fn(i64) -> i64", &[(8, 8), (8, 8)]);
        let b = signature("fn(i64) -> i64", &[(8, 8), (4, 4)]);
        let c = signature("fn(i32) -> i64", &[(8, 8), (8, 8)]);
        assert_ne!(a, b);
        assert_ne!(a, c);
        assert_eq!(a, signature("fn(i64) -> i64", &[(8, 8), (8, 8)]));
    }

    #[test]
    fn known_fnv_vector() {
        // FNV-1a 64 of "a" is 0xaf63dc4c8601ec8c.
        assert_eq!(hash_str("a"), 0xaf63_dc4c_8601_ec8c);
    }
}
