//! Redirecting NOP-padded entries (the libpulp / Microsoft hot-patch layout).
//!
//! A patchable entry stub is a 16-byte aligned block: a 14-byte pad (offsets
//! 0..14, never executed while unpatched), the entry at offset 14 holding the
//! 2-byte NOP `66 90`, then at offset 16 `jmp rel32 <original>`. Calls go
//! through the function's slot; the entry strategy redirects the entry too,
//! for code that reaches it directly (an `async fn`'s unpatched slot holds
//! it).
//!
//! Redirected, the pad holds `jmp qword ptr [rip+0]` with the 8-byte target
//! (`ff 25 00 00 00 00 <target>`) and the entry holds `jmp -16` (`eb f0`).
//!
//! Every change that code may be executing is ONE aligned 2-byte store (the first
//! two bytes of an instruction) or ONE 8-byte store of the target (data loaded by
//! the jump, within one cache line), each followed by a core sync. At every
//! moment each byte a thread can reach decodes to a valid path:
//!
//! * redirect: pad[0..2] := `eb 0c` (jump over the pad to the entry); sync;
//!   pad[2..14] := `00 00 00 00 <target>` (unreachable now); sync;
//!   pad[0..2] := `ff 25`; sync; entry := `eb f0`; sync.
//! * re-point: pad[6..14] := new target (one 8-byte store); sync.
//! * restore: entry := `66 90`; sync; pad[0..2] := `eb 0c`; sync;
//!   pad[2..14] := NOPs; sync.
//!
//! Restore leaves `eb 0c` + 12 NOPs in the pad rather than 14 NOPs: a thread
//! preempted right after the old `eb f0` resumes at pad+0 and jumps straight to
//! the entry. With 14 NOPs it could be preempted in the middle of the NOP run and
//! resume inside the long jump a later redirect writes there. Both pad contents
//! are accepted as unpatched.

use super::cpu::{store_u16, store_u64};
use super::encode::{JMP_RIP_OPCODE, JMP_TO_PAD, NOP, NOP2, PAD_LEN, PAD_SKIP};
use crate::arch::EntryState;
use crate::code_error::CodeError;
use crate::os;

const EXPECTED: &str = "pad of 14 x 90 (or eb 0c + 12 x 90) with entry 66 90, or pad ff 25 00 00 00 00 <target> with entry eb f0";

fn block_of(entry: *const u8) -> Result<usize, CodeError> {
    let entry = entry as usize;
    if entry % 16 != PAD_LEN || entry < PAD_LEN {
        return Err(CodeError::MisalignedEntry { entry });
    }
    Ok(entry - PAD_LEN)
}

fn classify(entry: usize, block: &[u8]) -> Result<EntryState, CodeError> {
    let (pad, ent) = block.split_at(PAD_LEN);
    let nops = |b: &[u8]| b.iter().all(|&x| x == NOP);
    if ent == NOP2 && (nops(pad) || (pad[..2] == PAD_SKIP && nops(&pad[2..]))) {
        return Ok(EntryState::Unpatched);
    }
    if ent == JMP_TO_PAD && pad[..2] == JMP_RIP_OPCODE && pad[2..6] == [0, 0, 0, 0] {
        let mut t = [0u8; 8];
        t.copy_from_slice(&pad[6..14]);
        return Ok(EntryState::Redirected(u64::from_le_bytes(t) as usize));
    }
    Err(CodeError::UnexpectedEntryBytes {
        entry,
        found: block.into(),
        expected: EXPECTED,
    })
}

/// The 16 bytes of the stub block, read without checking the mapping (the caller
/// checked it and holds the code-write lock).
fn read_block(block: usize) -> [u8; 16] {
    let mut b = [0u8; 16];
    // SAFETY: the caller checked the block to be mapped readable.
    unsafe { std::ptr::copy_nonoverlapping(block as *const u8, b.as_mut_ptr(), 16) };
    b
}

/// Reads the state of the entry stub at `entry` (the address of the 2-byte entry
/// instruction). Refuses with [`CodeError::UnexpectedEntryBytes`] when the bytes
/// are neither layout (a debugger's `cc`, another tool's hook).
pub fn check_entry(entry: *const u8) -> Result<EntryState, CodeError> {
    let block = block_of(entry)?;
    os::Maps::read()?.check_code(block, 16)?;
    classify(entry as usize, &read_block(block))
}

/// Redirects the entry to `target`, or re-points an already redirected entry.
/// The bytes are verified first; see the module docs for the store sequence.
///
/// # Safety
/// `entry` must be the entry of a patchable stub, and `target` a function with
/// the same signature and ABI as the one the stub belongs to.
pub unsafe fn redirect_entry(entry: *const u8, target: usize) -> Result<(), CodeError> {
    let block = block_of(entry)?;
    super::check_jump_target(target)?;
    os::with_writable_code(block, 16, || {
        let pad = block as *mut u8;
        let before = read_block(block);
        match classify(entry as usize, &before)? {
            EntryState::Redirected(old) if old == target => Ok(()),
            EntryState::Redirected(_) => {
                // SAFETY: pad+6..pad+14 lies in the 16-byte aligned block, so in one
                // cache line; the page is writable; the jump loads it as data.
                unsafe { store_u64(pad.add(6), target as u64) };
                os::sync_core()
            }
            EntryState::Unpatched => {
                if before[..2] != PAD_SKIP {
                    // SAFETY: the block is writable (with_writable_code) and 16-byte
                    // aligned, so the pad start is 2-byte aligned; the pad is never
                    // executed while the entry is `66 90`, and `eb 0c` jumps to it.
                    unsafe { store_u16(pad, PAD_SKIP) };
                    os::sync_core()?;
                }
                let mut tail = [0u8; 12];
                tail[4..].copy_from_slice(&(target as u64).to_le_bytes());
                // SAFETY: writable block; pad+2..pad+14 is unreachable while
                // pad[0..2] is `eb 0c` (synced above).
                unsafe { std::ptr::copy_nonoverlapping(tail.as_ptr(), pad.add(2), 12) };
                os::sync_core()?;
                // SAFETY: writable, aligned; one 2-byte store turns `eb 0c` into the
                // first bytes of `jmp [rip+0]`, whose other 12 bytes are in place.
                unsafe { store_u16(pad, JMP_RIP_OPCODE) };
                os::sync_core()?;
                // SAFETY: writable; entry = block + 14 is 2-byte aligned; one store
                // turns the 2-byte NOP into the 2-byte jump to the complete pad.
                unsafe { store_u16(pad.add(PAD_LEN), JMP_TO_PAD) };
                os::sync_core()
            }
        }
    })
}

/// Restores the entry to its unpatched state (`66 90`), then disarms the pad.
/// A no-op if it is not redirected.
///
/// # Safety
/// `entry` must be the entry of a patchable stub.
pub unsafe fn restore_entry(entry: *const u8) -> Result<(), CodeError> {
    let block = block_of(entry)?;
    os::with_writable_code(block, 16, || {
        let pad = block as *mut u8;
        match classify(entry as usize, &read_block(block))? {
            EntryState::Unpatched => Ok(()),
            EntryState::Redirected(_) => {
                // SAFETY: writable block (with_writable_code); entry = block + 14 is
                // 2-byte aligned; one store turns the jump back into the 2-byte NOP.
                unsafe { store_u16(pad.add(PAD_LEN), NOP2) };
                os::sync_core()?;
                // SAFETY: writable, aligned; a thread still at pad+0 now jumps over
                // the pad to the entry instead of through the old target.
                unsafe { store_u16(pad, PAD_SKIP) };
                os::sync_core()?;
                let nops = [NOP; 12];
                // SAFETY: writable; pad+2..pad+14 is unreachable while pad[0..2] is
                // `eb 0c` (synced above).
                unsafe { std::ptr::copy_nonoverlapping(nops.as_ptr(), pad.add(2), 12) };
                os::sync_core()
            }
        }
    })
}

/// Sets many entries at once: `Some(target)` redirects (or re-points) an entry,
/// `None` restores it. Every block is checked first (nothing is written if one
/// holds unexpected bytes or a target is not code); the mappings are read once,
/// the pages made writable once, and the per-entry sequences of the module docs
/// run side by side, so the whole batch costs four core syncs however many
/// entries it holds. Each entry still goes through exactly the states of
/// [`redirect_entry`] and [`restore_entry`], in the same order.
///
/// # Safety
/// Every entry must be the entry of a patchable stub, and every target a
/// function with the same signature and ABI as the stub's function.
pub unsafe fn set_entries(changes: &[(*const u8, Option<usize>)]) -> Result<(), CodeError> {
    if changes.is_empty() {
        return Ok(());
    }
    let mut blocks = Vec::with_capacity(changes.len());
    for &(entry, _) in changes {
        blocks.push(block_of(entry)?);
    }
    let ranges: Vec<(usize, usize)> = blocks.iter().map(|&b| (b, 16)).collect();
    os::with_writable_code_ranges(&ranges, |maps| {
        // What each entry needs, decided before anything is written.
        enum Step {
            Redirect(usize, bool),
            Repoint(usize),
            Restore,
        }
        let mut steps = Vec::with_capacity(changes.len());
        for (&(entry, want), &block) in changes.iter().zip(&blocks) {
            maps.check_code(block, 16)?;
            let now = read_block(block);
            let state = classify(entry as usize, &now)?;
            let step = match (state, want) {
                (EntryState::Unpatched, None) => None,
                (EntryState::Redirected(old), Some(t)) if old == t => None,
                (_, Some(t)) => {
                    super::check_jump_target_in(maps, t)?;
                    match state {
                        EntryState::Unpatched => Some(Step::Redirect(t, now[..2] == PAD_SKIP)),
                        EntryState::Redirected(_) => Some(Step::Repoint(t)),
                    }
                }
                (EntryState::Redirected(_), None) => Some(Step::Restore),
            };
            steps.push((block as *mut u8, step));
        }
        // SAFETY (all stores below): every block is mapped writable (this
        // closure runs inside with_writable_code_ranges), 16-byte aligned, and
        // was classified above; the stores of one block follow the sequences in
        // the module docs, with a core sync between any two of them.
        unsafe {
            // 1: restore entry := 66 90; redirect pad[0..2] := eb 0c; re-point.
            for (pad, step) in &steps {
                match step {
                    Some(Step::Restore) => store_u16(pad.add(PAD_LEN), NOP2),
                    Some(Step::Redirect(_, false)) => store_u16(*pad, PAD_SKIP),
                    Some(Step::Repoint(t)) => store_u64(pad.add(6), *t as u64),
                    _ => {}
                }
            }
            os::sync_core()?;
            // 2: restore pad[0..2] := eb 0c; redirect pad[2..14] := 0000 <target>.
            for (pad, step) in &steps {
                match step {
                    Some(Step::Restore) => store_u16(*pad, PAD_SKIP),
                    Some(Step::Redirect(t, _)) => {
                        let mut tail = [0u8; 12];
                        tail[4..].copy_from_slice(&(*t as u64).to_le_bytes());
                        std::ptr::copy_nonoverlapping(tail.as_ptr(), pad.add(2), 12);
                    }
                    _ => {}
                }
            }
            os::sync_core()?;
            // 3: restore pad[2..14] := NOPs; redirect pad[0..2] := ff 25.
            for (pad, step) in &steps {
                match step {
                    Some(Step::Restore) => {
                        let nops = [NOP; 12];
                        std::ptr::copy_nonoverlapping(nops.as_ptr(), pad.add(2), 12);
                    }
                    Some(Step::Redirect(..)) => store_u16(*pad, JMP_RIP_OPCODE),
                    _ => {}
                }
            }
            os::sync_core()?;
            // 4: redirect entry := eb f0.
            for (pad, step) in &steps {
                if let Some(Step::Redirect(..)) = step {
                    store_u16(pad.add(PAD_LEN), JMP_TO_PAD);
                }
            }
            os::sync_core()
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::arch::x86_64::encode::long_jump_rip;

    #[test]
    fn classifies_layouts() {
        let mut b = [NOP; 16];
        b[14..].copy_from_slice(&NOP2);
        assert_eq!(classify(14, &b).ok(), Some(EntryState::Unpatched));
        b[..2].copy_from_slice(&PAD_SKIP);
        assert_eq!(classify(14, &b).ok(), Some(EntryState::Unpatched));
        b[..14].copy_from_slice(&long_jump_rip(0xdead_beef));
        assert!(classify(14, &b).is_err());
        b[14..].copy_from_slice(&JMP_TO_PAD);
        assert_eq!(
            classify(14, &b).ok(),
            Some(EntryState::Redirected(0xdead_beef))
        );
        b[14] = 0xCC;
        assert!(matches!(
            classify(14, &b),
            Err(CodeError::UnexpectedEntryBytes { .. })
        ));
        assert!(matches!(
            block_of(0x1000 as *const u8),
            Err(CodeError::MisalignedEntry { .. })
        ));
    }
}
