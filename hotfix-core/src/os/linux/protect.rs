//! Making code pages writable for a moment and restoring their exact protection.
//!
//! Pages are made `rwx`, never `rw-`: other threads may be executing on the same
//! page (or, in the stopped state, spinning in our signal handler there), and
//! removing `x` even for a moment would fault them. Afterwards every page gets back
//! exactly the protection `/proc/self/maps` showed before (a page the application
//! made `rwx` stays `rwx`).
//!
//! [`PagePlan::make_writable`] and [`PagePlan::restore`] allocate nothing and only
//! make system calls, so they may run while other threads are stopped (a stopped
//! thread may hold the allocator's lock).

use super::maps::{Maps, Perms};
use crate::code_error::CodeError;

/// The system's page size.
pub fn page_size() -> usize {
    // SAFETY: sysconf has no memory-safety preconditions.
    let v = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if v > 0 { v as usize } else { 4096 }
}

/// One run of contiguous pages that had one protection.
#[derive(Clone, Debug)]
pub struct PageRun {
    /// First address (page aligned).
    pub start: usize,
    /// Length in bytes (whole pages).
    pub len: usize,
    /// Protection before the write.
    pub perms: Perms,
}

/// A failed `mprotect`: which run and the errno. Turned into a [`CodeError`] by
/// [`PagePlan::error`] once allocation is allowed again.
#[derive(Clone, Copy, Debug)]
pub struct PageFailure {
    /// Index of the run in [`PagePlan::runs`].
    pub run: usize,
    /// The errno of `mprotect`.
    pub errno: i32,
    /// Whether it happened while restoring protections (the code was written).
    pub restoring: bool,
    /// When making pages writable failed part-way: a run made writable before
    /// whose protection could not be put back, and that errno.
    pub left_writable: Option<(usize, i32)>,
}

/// The pages touched by a set of byte ranges, with their previous protections.
#[derive(Clone, Debug)]
pub struct PagePlan {
    /// Runs of pages, ascending and disjoint.
    pub runs: Vec<PageRun>,
    /// How many runs [`PagePlan::make_writable`] changed and have not been restored.
    changed: usize,
}

impl PagePlan {
    /// Collects every page touched by `ranges` (`(addr, len)`), a range crossing a
    /// page boundary covering both pages, and records each page's protection.
    /// Every page must be mapped readable and executable.
    pub fn new(maps: &Maps, ranges: &[(usize, usize)]) -> Result<Self, CodeError> {
        let page = page_size();
        let mut pages: Vec<usize> = Vec::new();
        for &(addr, len) in ranges {
            maps.check_code(addr, len)?;
            let first = addr & !(page - 1);
            let end = addr
                .checked_add(len)
                .ok_or(CodeError::NotMapped { addr, len })?;
            let mut p = first;
            while p < end {
                pages.push(p);
                p += page;
            }
        }
        pages.sort_unstable();
        pages.dedup();
        let mut runs: Vec<PageRun> = Vec::new();
        for p in pages {
            let m = maps
                .find(p)
                .ok_or(CodeError::NotMapped { addr: p, len: page })?;
            match runs.last_mut() {
                Some(last) if last.start + last.len == p && last.perms == m.perms => {
                    last.len += page;
                }
                _ => runs.push(PageRun {
                    start: p,
                    len: page,
                    perms: m.perms,
                }),
            }
        }
        Ok(Self { runs, changed: 0 })
    }

    /// Makes every run `rwx`. On failure the runs already changed are restored and
    /// the failure returned; nothing is left writable. Allocation-free.
    pub fn make_writable(&mut self) -> Result<(), PageFailure> {
        let rwx = libc::PROT_READ | libc::PROT_WRITE | libc::PROT_EXEC;
        for (i, run) in self.runs.iter().enumerate() {
            // SAFETY: the run is whole pages of a mapping that exists (checked in
            // `new`, and the caller holds the code-write lock); adding write while
            // keeping read and exec cannot break code running on those pages.
            let r = unsafe { libc::mprotect(run.start as *mut libc::c_void, run.len, rwx) };
            if r != 0 {
                let errno = errno();
                self.changed = i;
                // Put back what was changed; a run that stays writable is reported.
                let left_writable = self.restore().err().map(|f| (f.run, f.errno));
                return Err(PageFailure {
                    run: i,
                    errno,
                    restoring: false,
                    left_writable,
                });
            }
        }
        self.changed = self.runs.len();
        Ok(())
    }

    /// Restores the exact previous protection of every run changed by
    /// [`PagePlan::make_writable`]. Tries every run; reports the first failure.
    /// Allocation-free.
    pub fn restore(&mut self) -> Result<(), PageFailure> {
        let mut first = None;
        for (i, run) in self.runs.iter().enumerate().take(self.changed) {
            // SAFETY: as in `make_writable`; the protection restored is the one the
            // kernel reported for these pages before we changed them.
            let r = unsafe {
                libc::mprotect(run.start as *mut libc::c_void, run.len, run.perms.prot())
            };
            if r != 0 && first.is_none() {
                first = Some(PageFailure {
                    run: i,
                    errno: errno(),
                    restoring: true,
                    left_writable: None,
                });
            }
        }
        self.changed = 0;
        first.map_or(Ok(()), Err)
    }

    /// The error for a failure of [`PagePlan::make_writable`] or of
    /// [`PagePlan::restore`]: each says whether code was written and which pages
    /// are left writable.
    pub fn error(&self, failure: PageFailure) -> CodeError {
        let run = |i: usize| {
            self.runs.get(i).map_or((0, 0, String::new()), |r| {
                (r.start, r.len, r.perms.to_string())
            })
        };
        let (addr, len, perms) = run(failure.run);
        let source = std::io::Error::from_raw_os_error(failure.errno);
        if failure.restoring {
            return CodeError::ProtectRestoreFailed {
                addr,
                len,
                perms,
                source,
            };
        }
        match failure.left_writable {
            None => CodeError::ProtectFailed { addr, len, source },
            Some((left, errno)) => {
                let (left_addr, left_len, perms) = run(left);
                CodeError::ProtectFailedLeftWritable {
                    addr,
                    len,
                    source,
                    left_addr,
                    left_len,
                    perms,
                    restore_error: std::io::Error::from_raw_os_error(errno),
                }
            }
        }
    }
}

fn errno() -> i32 {
    // SAFETY: __errno_location always returns a valid pointer to this thread's errno.
    unsafe { *libc::__errno_location() }
}
