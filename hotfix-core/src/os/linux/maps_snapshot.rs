//! `/proc/self/maps` read into a buffer prepared beforehand, with raw system
//! calls, so it can be read while every other thread is stopped: a stopped
//! thread may hold the allocator's lock, and the mappings read before the stop
//! may no longer exist (a thread stack unmapped, a library closed).
//!
//! Everything here is allocation-free once the buffer exists.

use super::maps::Perms;
use super::tasks::errno;

/// One mapping as found in the snapshot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct RawMapping {
    /// First address.
    pub start: usize,
    /// One past the last address.
    pub end: usize,
    /// Permissions.
    pub perms: Perms,
}

/// Why a snapshot could not be taken.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum SnapshotError {
    /// The buffer filled up before the end of the file: grow it and try again.
    TooSmall,
    /// A system call failed with this errno.
    Os(&'static str, i32),
}

/// A buffer holding the text of `/proc/self/maps` at one moment.
pub(super) struct MapsSnapshot {
    buf: Box<[u8]>,
    len: usize,
}

impl MapsSnapshot {
    /// An empty snapshot able to hold `capacity` bytes of text.
    pub(super) fn with_capacity(capacity: usize) -> Self {
        Self {
            buf: vec![0u8; capacity.max(4096)].into_boxed_slice(),
            len: 0,
        }
    }

    /// How many bytes it can hold.
    pub(super) fn capacity(&self) -> usize {
        self.buf.len()
    }

    /// Reads the whole of `/proc/self/maps` now. Allocation-free.
    pub(super) fn take(&mut self) -> Result<(), SnapshotError> {
        self.len = 0;
        // SAFETY: the path is a NUL-terminated literal.
        let fd = unsafe {
            libc::open(
                c"/proc/self/maps".as_ptr(),
                libc::O_RDONLY | libc::O_CLOEXEC,
            )
        };
        if fd < 0 {
            return Err(SnapshotError::Os("open /proc/self/maps", errno()));
        }
        let result = loop {
            if self.len == self.buf.len() {
                break Err(SnapshotError::TooSmall);
            }
            let spare = &mut self.buf[self.len..];
            // SAFETY: `spare` is valid for writes of `spare.len()` bytes; fd is open.
            let n = unsafe { libc::read(fd, spare.as_mut_ptr().cast(), spare.len()) };
            match n {
                0 => break Ok(()),
                n if n > 0 => self.len += n as usize,
                _ if errno() == libc::EINTR => {}
                _ => break Err(SnapshotError::Os("read /proc/self/maps", errno())),
            }
        };
        // SAFETY: fd was opened above and is closed once.
        unsafe { libc::close(fd) };
        if result.is_err() {
            self.len = 0;
        }
        result
    }

    /// The mappings, in ascending order (the kernel lists them so).
    fn mappings(&self) -> impl Iterator<Item = RawMapping> + '_ {
        self.buf[..self.len]
            .split(|&b| b == b'\n')
            .filter_map(parse_line)
    }

    /// The mapping containing `addr`.
    pub(super) fn find(&self, addr: usize) -> Option<RawMapping> {
        self.mappings()
            .take_while(|m| m.start <= addr)
            .find(|m| addr < m.end)
    }

    /// Whether every byte of `[addr, addr+len)` is mapped with `want(perms)`.
    pub(super) fn covers(&self, addr: usize, len: usize, want: impl Fn(Perms) -> bool) -> bool {
        let Some(end) = addr.checked_add(len) else {
            return false;
        };
        let mut at = addr;
        while at < end {
            match self.find(at) {
                Some(m) if want(m.perms) => at = m.end,
                _ => return false,
            }
        }
        true
    }
}

/// Parses `start-end perms ...`; anything else is `None`.
fn parse_line(line: &[u8]) -> Option<RawMapping> {
    let dash = line.iter().position(|&b| b == b'-')?;
    let space = dash + 1 + line[dash + 1..].iter().position(|&b| b == b' ')?;
    let start = parse_hex(&line[..dash])?;
    let end = parse_hex(&line[dash + 1..space])?;
    let perms = Perms::parse(line.get(space + 1..space + 5)?)?;
    (start < end).then_some(RawMapping { start, end, perms })
}

fn parse_hex(s: &[u8]) -> Option<usize> {
    if s.is_empty() || s.len() > 16 {
        return None;
    }
    s.iter().try_fold(0usize, |acc, &c| {
        let d = (c as char).to_digit(16)?;
        Some((acc << 4) | d as usize)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_live_maps_and_finds_this_function() {
        let mut s = MapsSnapshot::with_capacity(1 << 20);
        s.take().expect("read /proc/self/maps");
        let here = parses_the_live_maps_and_finds_this_function as *const () as usize;
        let m = s.find(here).expect("this function is mapped");
        assert!(m.perms.exec && m.perms.read, "{m:?}");
        assert!(s.covers(here, 1, |p| p.exec));
        assert!(!s.covers(here, usize::MAX, |_| true));
        assert_eq!(s.find(0), None);
    }

    #[test]
    fn a_buffer_too_small_says_so() {
        let mut s = MapsSnapshot::with_capacity(1);
        // The minimum capacity is one page; a process has more maps text than that
        // only sometimes, so shrink the view instead.
        s.buf = vec![0u8; 16].into_boxed_slice();
        assert_eq!(s.take(), Err(SnapshotError::TooSmall));
        assert_eq!(s.find(parse_hex as *const () as usize), None);
    }

    #[test]
    fn malformed_lines_are_skipped() {
        assert_eq!(parse_line(b"garbage"), None);
        assert_eq!(parse_line(b"10-5 r-xp"), None);
        assert_eq!(parse_line(b"zz-30 r-xp"), None);
        assert_eq!(parse_line(b"10-30"), None);
        assert_eq!(parse_line(b"0000000000000000010-30 r-xp"), None);
        let m = parse_line(b"10-30 r-xp 0 0:0 0 /x").unwrap();
        assert_eq!((m.start, m.end, m.perms.exec), (0x10, 0x30, true));
    }
}
