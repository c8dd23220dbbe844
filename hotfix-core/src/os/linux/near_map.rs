//! Memory for a linked patch within a 32-bit displacement of the host's code:
//! an anonymous mapping placed below (else above) the executable with
//! `MAP_FIXED_NOREPLACE`, so it never replaces anything mapped there.

use super::protect::page_size;

/// The farthest a 32-bit PC-relative field reaches, less a margin.
const REACH: usize = (1 << 31) - (1 << 20);

/// An anonymous mapping near the executable. Unmapped when dropped, unless
/// [`NearMap::keep`] made it permanent (code of it may run).
#[derive(Debug)]
pub struct NearMap {
    addr: usize,
    len: usize,
    kept: bool,
}

impl NearMap {
    /// A read-write mapping of `len` bytes (rounded up to pages) from which
    /// every address of `[lo, hi)` is within a signed 32-bit displacement, and
    /// back. `None` if no such place is free.
    pub fn new(lo: usize, hi: usize, len: usize) -> Option<NearMap> {
        let page = page_size();
        let len = len.max(1).checked_add(page - 1)? & !(page - 1);
        if hi.checked_sub(lo)?.checked_add(len)? >= REACH {
            return None;
        }
        let step = 16 << 20;
        let below = (1..=96usize).filter_map(|k| {
            lo.checked_sub(len)?
                .checked_sub(k * step)
                .map(|a| a & !(page - 1))
        });
        let above = (1..=96usize).filter_map(|k| hi.checked_add(k * step + 256 * step));
        for addr in below.chain(above) {
            let fits = addr
                .checked_add(len)
                .is_some_and(|end| end - lo.min(addr) < REACH && hi.max(end) - addr < REACH);
            if !fits || addr < (1 << 16) {
                continue;
            }
            // SAFETY: an anonymous private mapping at a fixed address that the
            // kernel refuses (EEXIST) rather than replace if anything is there.
            let got = unsafe {
                libc::mmap(
                    addr as *mut libc::c_void,
                    len,
                    libc::PROT_READ | libc::PROT_WRITE,
                    libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED_NOREPLACE,
                    -1,
                    0,
                )
            };
            if got == libc::MAP_FAILED {
                continue;
            }
            if got as usize != addr {
                // A kernel without MAP_FIXED_NOREPLACE took it as a hint.
                // SAFETY: unmapping the mapping just made, which nothing uses.
                unsafe { libc::munmap(got, len) };
                continue;
            }
            return Some(NearMap {
                addr,
                len,
                kept: false,
            });
        }
        None
    }

    /// Its first address.
    pub fn addr(&self) -> usize {
        self.addr
    }

    /// Its length in bytes (whole pages).
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether it is empty (never: at least a page).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The mapping's bytes, to fill before any of it is made executable.
    pub fn bytes_mut(&mut self) -> &mut [u8] {
        // SAFETY: the mapping is ours, read-write (until `protect`), `len`
        // bytes long, and `&mut self` makes this the only view of it.
        unsafe { std::slice::from_raw_parts_mut(self.addr as *mut u8, self.len) }
    }

    /// Sets the protection of `[offset, offset + len)` (whole pages) to
    /// `prot` (`libc::PROT_*`).
    pub fn protect(&self, offset: usize, len: usize, prot: i32) -> std::io::Result<()> {
        if len == 0 {
            return Ok(());
        }
        let in_range = offset
            .checked_add(len)
            .is_some_and(|end| end <= self.len && offset.is_multiple_of(page_size()));
        if !in_range {
            return Err(std::io::Error::from(std::io::ErrorKind::InvalidInput));
        }
        // SAFETY: the range lies inside this mapping, which is ours.
        let r = unsafe { libc::mprotect((self.addr + offset) as *mut libc::c_void, len, prot) };
        if r == 0 {
            Ok(())
        } else {
            Err(std::io::Error::last_os_error())
        }
    }

    /// Makes the mapping permanent: it is never unmapped.
    pub fn keep(mut self) {
        self.kept = true;
    }
}

impl Drop for NearMap {
    fn drop(&mut self) {
        if !self.kept {
            // SAFETY: the mapping is ours and nothing of it was made reachable
            // (only `keep` publishes it).
            unsafe { libc::munmap(self.addr as *mut libc::c_void, self.len) };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lands_within_reach_of_the_range_and_unmaps_when_dropped() {
        let lo = near_map_test_anchor as *const () as usize;
        let m = NearMap::new(lo, lo + 4096, 3 * 4096 + 1).expect("room near the executable");
        assert!(m.addr().abs_diff(lo) < REACH);
        assert_eq!(m.len() % page_size(), 0);
        let addr = m.addr();
        drop(m);
        let mut b = [0u8; 1];
        assert!(!super::super::peek::peek(addr, &mut b), "unmapped on drop");
    }

    #[test]
    fn a_range_wider_than_the_reach_is_refused() {
        assert!(NearMap::new(1 << 20, (1 << 20) + REACH, 4096).is_none());
        assert!(NearMap::new(10, 5, 4096).is_none());
    }

    fn near_map_test_anchor() {}
}
