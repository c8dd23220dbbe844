//! The process's memory mappings as listed in `/proc/self/maps`.

use crate::code_error::CodeError;

/// Permissions of one mapping (`r-xp`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Perms {
    /// Readable.
    pub read: bool,
    /// Writable.
    pub write: bool,
    /// Executable.
    pub exec: bool,
    /// Private (copy-on-write) rather than shared.
    pub private: bool,
}

impl Perms {
    /// The `PROT_*` bits of these permissions, for `mprotect`.
    pub fn prot(self) -> i32 {
        let mut p = libc::PROT_NONE;
        if self.read {
            p |= libc::PROT_READ;
        }
        if self.write {
            p |= libc::PROT_WRITE;
        }
        if self.exec {
            p |= libc::PROT_EXEC;
        }
        p
    }

    /// Parses the four characters of a maps line (`r-xp`).
    pub(super) fn parse(b: &[u8]) -> Option<Self> {
        if b.len() != 4 {
            return None;
        }
        Some(Self {
            read: b[0] == b'r',
            write: b[1] == b'w',
            exec: b[2] == b'x',
            private: b[3] == b'p',
        })
    }
}

impl std::fmt::Display for Perms {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let c = |on: bool, ch: char| if on { ch } else { '-' };
        write!(
            f,
            "{}{}{}{}",
            c(self.read, 'r'),
            c(self.write, 'w'),
            c(self.exec, 'x'),
            if self.private { 'p' } else { 's' }
        )
    }
}

/// One line of `/proc/self/maps`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mapping {
    /// First address.
    pub start: usize,
    /// One past the last address.
    pub end: usize,
    /// Permissions.
    pub perms: Perms,
    /// Offset in the mapped file.
    pub offset: u64,
    /// Path or pseudo-name (`[stack]`), empty for anonymous memory.
    pub path: String,
}

impl Mapping {
    /// Whether `addr` lies in this mapping.
    pub fn contains(&self, addr: usize) -> bool {
        self.start <= addr && addr < self.end
    }
}

/// A snapshot of the process's mappings, sorted by address.
#[derive(Clone, Debug, Default)]
pub struct Maps {
    /// The mappings, ascending and non-overlapping.
    pub mappings: Vec<Mapping>,
}

impl Maps {
    /// Reads `/proc/self/maps`.
    pub fn read() -> Result<Self, CodeError> {
        let text = std::fs::read_to_string("/proc/self/maps").map_err(|source| CodeError::Os {
            call: "read /proc/self/maps",
            source,
        })?;
        Ok(Self::parse(&text))
    }

    /// Parses the text of a maps file; malformed lines are skipped.
    pub fn parse(text: &str) -> Self {
        let mut mappings: Vec<Mapping> = text.lines().filter_map(parse_line).collect();
        mappings.sort_by_key(|m| m.start);
        Self { mappings }
    }

    /// The mapping containing `addr`.
    pub fn find(&self, addr: usize) -> Option<&Mapping> {
        let i = self.mappings.partition_point(|m| m.end <= addr);
        self.mappings.get(i).filter(|m| m.contains(addr))
    }

    /// The mappings covering `[addr, addr+len)` in order, or `NotMapped` if any byte
    /// of it is unmapped.
    pub fn cover(&self, addr: usize, len: usize) -> Result<Vec<&Mapping>, CodeError> {
        let end = addr
            .checked_add(len)
            .ok_or(CodeError::NotMapped { addr, len })?;
        let mut out = Vec::new();
        let mut at = addr;
        while at < end {
            let m = self.find(at).ok_or(CodeError::NotMapped { addr, len })?;
            out.push(m);
            at = m.end;
        }
        Ok(out)
    }

    /// Checks that `[addr, addr+len)` is mapped readable and executable.
    pub fn check_code(&self, addr: usize, len: usize) -> Result<(), CodeError> {
        for m in self.cover(addr, len)? {
            if !(m.perms.read && m.perms.exec) {
                return Err(CodeError::NotCode {
                    addr: addr.max(m.start),
                    perms: m.perms.to_string(),
                });
            }
        }
        Ok(())
    }

    /// Checks that `[addr, addr+len)` is mapped readable.
    pub fn check_readable(&self, addr: usize, len: usize) -> Result<(), CodeError> {
        for m in self.cover(addr, len)? {
            if !m.perms.read {
                return Err(CodeError::NotCode {
                    addr: addr.max(m.start),
                    perms: m.perms.to_string(),
                });
            }
        }
        Ok(())
    }
}

fn parse_line(line: &str) -> Option<Mapping> {
    let mut fields = line.splitn(6, ' ');
    let range = fields.next()?;
    let perms = Perms::parse(fields.next()?.as_bytes())?;
    let offset = u64::from_str_radix(fields.next()?, 16).ok()?;
    let _dev = fields.next()?;
    let _inode = fields.next()?;
    let path = fields.next().unwrap_or("").trim_start().to_string();
    let (s, e) = range.split_once('-')?;
    let start = usize::from_str_radix(s, 16).ok()?;
    let end = usize::from_str_radix(e, 16).ok()?;
    (start < end).then_some(Mapping {
        start,
        end,
        perms,
        offset,
        path,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_lines_and_covers_ranges() {
        let text = "00400000-00401000 r-xp 00000000 08:01 42 /bin/x\n\
                    00401000-00403000 rwxp 00001000 08:01 42 /bin/x\n\
                    7ffc0000-7ffc1000 rw-p 00000000 00:00 0 [stack]\n\
                    garbage\n";
        let maps = Maps::parse(text);
        assert_eq!(maps.mappings.len(), 3);
        assert_eq!(maps.mappings[1].perms.to_string(), "rwxp");
        assert_eq!(maps.mappings[2].path, "[stack]");
        assert_eq!(maps.cover(0x400ff0, 0x20).map(|v| v.len()).ok(), Some(2));
        assert!(maps.check_code(0x400ff0, 0x20).is_ok());
        assert!(matches!(
            maps.cover(0x402ff0, 0x20),
            Err(CodeError::NotMapped { .. })
        ));
        assert!(matches!(
            maps.check_code(0x7ffc0000, 1),
            Err(CodeError::NotCode { .. })
        ));
    }
}
