//! The proof that the patch was built against the code that runs: every
//! function of the base build the patch replaces or refers to is compared,
//! byte for byte, with the running host's function of the same symbol, the
//! bytes each base relocation lets a static linker rewrite masked (the mask
//! derives from the relocation's type, never from the patch). Another base
//! revision, profile, dependency feature or lockfile gives other code or
//! other symbol names, and is refused here, naming the first function.

use super::format::Proof;
use super::host_symbols::{HostKind, HostSymbols};

/// Why a function failed the proof.
#[derive(Debug, PartialEq, Eq)]
pub struct Mismatch {
    /// The function's symbol.
    pub symbol: String,
    /// What differs.
    pub reason: String,
}

/// The host's address of each proven function, in the order of `proofs`;
/// `read` reads the host's code at an address (false: unreadable).
pub fn prove(
    host: &HostSymbols,
    read: &dyn Fn(usize, &mut [u8]) -> bool,
    base: &[u8],
    proofs: &[Proof],
) -> Result<Vec<usize>, Mismatch> {
    let mut out = Vec::with_capacity(proofs.len());
    for p in proofs {
        let fail = |reason: String| Mismatch {
            symbol: p.symbol.clone(),
            reason,
        };
        let bytes = p
            .offset
            .checked_add(p.size)
            .and_then(|end| base.get(p.offset as usize..usize::try_from(end).ok()?))
            .ok_or_else(|| fail("its base bytes lie outside the patch's base section".into()))?;
        let mask = mask_of(p).map_err(fail)?;
        let candidates: Vec<_> = host
            .lookup(&p.symbol)
            .iter()
            .filter(|s| s.kind == HostKind::Function)
            .collect();
        if candidates.is_empty() {
            return Err(fail(
                "the running host has no such function: the patch was built from another build of the crate (another revision, profile, features or lockfile)".into(),
            ));
        }
        let mut why = String::new();
        let mut found = None;
        for c in &candidates {
            if c.size as u64 != p.size {
                why = format!(
                    "it is {} bytes in the host and {} in the base build",
                    c.size, p.size
                );
                continue;
            }
            let mut live = vec![0u8; bytes.len()];
            if !read(c.addr, &mut live) {
                why = format!("its code at {:#x} cannot be read", c.addr);
                continue;
            }
            match first_difference(bytes, &live, &mask) {
                None => {
                    found = Some(c.addr);
                    break;
                }
                Some(at) => {
                    why = format!(
                        "its code differs at offset {at:#x} (host {:02x}, base build {:02x})",
                        live[at], bytes[at]
                    )
                }
            }
        }
        out.push(found.ok_or_else(|| fail(why))?);
    }
    Ok(out)
}

/// Which bytes of the function are masked.
fn mask_of(p: &Proof) -> Result<Vec<bool>, String> {
    let len = usize::try_from(p.size).map_err(|_| "it is too large".to_owned())?;
    let mut mask = vec![false; len];
    // The fields of a function's relocations never overlap: a list whose
    // fields do (to mask more than relocations can change) is refused.
    let mut field_end = 0u64;
    for &(offset, r_type) in &p.relocs {
        let width = crate::arch::reloc::classify(r_type).map_or(1, crate::arch::reloc::width);
        if offset < field_end {
            return Err(format!(
                "its relocations are out of order or overlap at {offset:#x}"
            ));
        }
        field_end = offset.saturating_add(width as u64);
        let (start, width) = crate::arch::reloc::proof_mask(r_type).ok_or_else(|| {
            format!(
                "its base build has a relocation of {}, which the proof does not know",
                crate::arch::reloc::type_name(r_type)
            )
        })?;
        let from = (offset as i128) + i128::from(start);
        let to = from + width as i128;
        if from < 0 || to > len as i128 {
            return Err(format!(
                "a relocation at {offset:#x} reaches outside the function"
            ));
        }
        for m in &mut mask[from as usize..to as usize] {
            *m = true;
        }
    }
    Ok(mask)
}

fn first_difference(base: &[u8], live: &[u8], mask: &[bool]) -> Option<usize> {
    (0..base.len()).find(|&i| !mask[i] && base[i] != live[i])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn proof(relocs: Vec<(u64, u32)>, size: u64) -> Proof {
        Proof {
            symbol: "f".into(),
            offset: 0,
            size,
            relocs,
        }
    }

    #[test]
    fn masks_only_what_the_type_allows() {
        let m = mask_of(&proof(vec![(1, 4)], 8)).unwrap();
        assert_eq!(m, [false, true, true, true, true, false, false, false]);
        let m = mask_of(&proof(vec![(3, 9)], 8)).unwrap();
        assert_eq!(m, [true, true, true, true, true, true, true, false]);
        assert!(
            mask_of(&proof(vec![(6, 4)], 8))
                .unwrap_err()
                .contains("outside")
        );
        assert!(
            mask_of(&proof(vec![(1, 9)], 8))
                .unwrap_err()
                .contains("outside")
        );
        assert!(
            mask_of(&proof(vec![(0, 37)], 8))
                .unwrap_err()
                .contains("does not know")
        );
        assert!(mask_of(&proof(vec![(u64::MAX, 1)], 8)).is_err());
        let overlap = mask_of(&proof(vec![(0, 2), (2, 2)], 8)).unwrap_err();
        assert!(overlap.contains("overlap"), "{overlap}");
        assert!(
            mask_of(&proof(vec![(4, 2), (0, 2)], 8))
                .unwrap_err()
                .contains("order")
        );
        assert!(mask_of(&proof(vec![(0, 2), (4, 2)], 8)).is_ok());
    }

    #[test]
    fn names_the_first_unmasked_difference() {
        let mask = [false, true, false];
        assert_eq!(first_difference(&[1, 2, 3], &[1, 9, 3], &mask), None);
        assert_eq!(first_difference(&[1, 2, 3], &[1, 9, 4], &mask), Some(2));
    }

    #[test]
    fn this_function_proves_against_itself_and_not_against_other_bytes() {
        let host = HostSymbols::get().unwrap();
        let me = names_the_first_unmasked_difference as fn() as usize;
        let name = host_name_of(host, me).expect("own symbol");
        let size = host.lookup(&name)[0].size;
        let mut live = vec![0u8; size];
        assert!(crate::os::peek(me, &mut live));
        let p = Proof {
            symbol: name.clone(),
            offset: 0,
            size: size as u64,
            relocs: vec![],
        };
        assert_eq!(
            prove(host, &crate::os::peek, &live, std::slice::from_ref(&p)).unwrap(),
            vec![me]
        );
        let mut other = live.clone();
        other[size / 2] ^= 0x40;
        let err = prove(host, &crate::os::peek, &other, &[p]).unwrap_err();
        assert!(
            err.reason.contains(&format!("offset {:#x}", size / 2)),
            "{}",
            err.reason
        );
        let missing = Proof {
            symbol: "no_such_function_anywhere".into(),
            offset: 0,
            size: 1,
            relocs: vec![],
        };
        assert!(
            prove(host, &crate::os::peek, &[0], &[missing])
                .unwrap_err()
                .reason
                .contains("no such function")
        );
    }

    fn host_name_of(host: &HostSymbols, addr: usize) -> Option<String> {
        host.names()
            .find(|(_, defs)| defs.iter().any(|d| d.addr == addr))
            .map(|(n, _)| n.clone())
    }
}
