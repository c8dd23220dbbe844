//! Writing machine code into the running process: one batch of edits, all or
//! nothing, while every other thread is stopped outside the edited bytes.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use super::maps::Maps;
use super::maps_snapshot::{MapsSnapshot, SnapshotError};
use super::membarrier;
use super::protect::PagePlan;
use super::threads::{self, StoppedThreads};
use crate::code_error::{CodeError, HexBytes};

/// How many times a batch is retried while some thread is inside an edited range.
pub const BUSY_ATTEMPTS: u32 = 200;

/// One replacement of code bytes: `expected_old` must be in memory at `addr`, and
/// is replaced by `new` (same length).
///
/// `addr` must be an instruction boundary of both the old and the new code: a
/// thread stopped exactly at `addr` resumes with the first new instruction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CodeEdit {
    /// First byte replaced.
    pub addr: usize,
    /// Bytes that must be there now.
    pub expected_old: Vec<u8>,
    /// Bytes written instead.
    pub new: Vec<u8>,
}

impl CodeEdit {
    /// One past the last byte of the edit.
    pub fn end(&self) -> usize {
        self.addr + self.new.len()
    }

    /// Whether `pc` is strictly inside the edit: a thread there would resume in
    /// the middle of the new bytes. `pc == addr` is an instruction boundary of both
    /// old and new code and is safe.
    pub fn holds_inside(&self, pc: usize) -> bool {
        pc > self.addr && pc < self.end()
    }

    /// The edit that undoes this one.
    pub fn inverse(&self) -> CodeEdit {
        CodeEdit {
            addr: self.addr,
            expected_old: self.new.clone(),
            new: self.expected_old.clone(),
        }
    }
}

static CODE_LOCK: Mutex<()> = Mutex::new(());
static BATCHES: AtomicU64 = AtomicU64::new(0);
static BUSY_RETRIES: AtomicU64 = AtomicU64::new(0);

/// Counters of [`apply_edits`] since the process started.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WriteStats {
    /// Batches written.
    pub batches: u64,
    /// Times every thread was released again because one was inside an edit.
    pub busy_retries: u64,
}

/// The counters of [`apply_edits`].
pub fn write_stats() -> WriteStats {
    WriteStats {
        batches: BATCHES.load(Ordering::Relaxed),
        busy_retries: BUSY_RETRIES.load(Ordering::Relaxed),
    }
}

/// The lock every code write of this process takes, so two writers never change
/// the protection of the same page under each other.
pub fn code_write_lock() -> MutexGuard<'static, ()> {
    CODE_LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

/// Reads `len` bytes of code at `addr`, after checking in /proc/self/maps that
/// they are mapped readable.
pub fn read_code(addr: usize, len: usize) -> Result<Vec<u8>, CodeError> {
    Maps::read()?.check_readable(addr, len)?;
    // SAFETY: the range was just checked to be mapped readable.
    Ok(unsafe { std::slice::from_raw_parts(addr as *const u8, len) }.to_vec())
}

fn validate(edits: &[CodeEdit]) -> Result<(), CodeError> {
    let mut sorted: Vec<&CodeEdit> = edits.iter().collect();
    sorted.sort_by_key(|e| e.addr);
    for e in &sorted {
        if e.new.is_empty() {
            return Err(CodeError::InvalidEdit {
                addr: e.addr,
                reason: "empty edit",
            });
        }
        if e.new.len() != e.expected_old.len() {
            return Err(CodeError::InvalidEdit {
                addr: e.addr,
                reason: "new and expected bytes differ in length",
            });
        }
        if e.addr.checked_add(e.new.len()).is_none() {
            return Err(CodeError::InvalidEdit {
                addr: e.addr,
                reason: "range overflows the address space",
            });
        }
    }
    for w in sorted.windows(2) {
        if w[0].end() > w[1].addr {
            return Err(CodeError::InvalidEdit {
                addr: w[1].addr,
                reason: "edits overlap",
            });
        }
    }
    Ok(())
}

/// Index of the first edit whose memory differs from `expected_old`, with the
/// bytes found copied into `found` (whose capacity must hold the longest edit).
/// Allocation-free; the ranges must have been checked readable in a snapshot
/// taken while every other thread is stopped.
fn first_mismatch(edits: &[CodeEdit], found: &mut Vec<u8>) -> Option<usize> {
    let i = edits.iter().position(|e| {
        // SAFETY: the caller checked every range to be mapped readable.
        let now = unsafe { std::slice::from_raw_parts(e.addr as *const u8, e.new.len()) };
        now != e.expected_old.as_slice()
    })?;
    let e = &edits[i];
    found.clear();
    // SAFETY: as above; `found` has the capacity, so nothing is allocated.
    found
        .extend_from_slice(unsafe { std::slice::from_raw_parts(e.addr as *const u8, e.new.len()) });
    Some(i)
}

fn mismatch_error(e: &CodeEdit, found: &[u8]) -> CodeError {
    CodeError::BytesChanged {
        addr: e.addr,
        found: found.into(),
        expected: HexBytes(e.expected_old.clone()),
    }
}

/// A thread found inside an edit: (tid, address found, edit index).
type Busy = (i32, usize, usize);

/// Finds a stopped thread whose instruction pointer, or any word on its stack
/// above its stack pointer (return addresses, contexts saved by signal handlers
/// it was running), lies strictly inside an edit. Only memory that `maps` (taken
/// while every other thread is stopped) shows readable is read; a stack that is
/// not in a readable mapping counts as busy. Allocation-free.
fn find_busy(stopped: &StoppedThreads, edits: &[CodeEdit], maps: &MapsSnapshot) -> Option<Busy> {
    let inside = |v: usize| edits.iter().position(|e| e.holds_inside(v));
    for t in stopped.threads() {
        if let Some(i) = inside(t.pc) {
            return Some((t.tid, t.pc, i));
        }
        let Some(m) = maps.find(t.sp).filter(|m| m.perms.read) else {
            return Some((t.tid, t.sp, 0));
        };
        // Read through the kernel, a page at most at a time: a page the
        // mapping shows readable may still fault (a guard page installed with
        // madvise, as between thread stacks that share one mapping). The
        // first such page ends this thread's stack.
        let mut at = (t.sp + 7) & !7;
        let mut chunk = [0u8; 4096];
        while at + 8 <= m.end {
            let to_page_end = 4096 - (at & 4095);
            let len = (m.end - at).min(to_page_end) & !7;
            if !super::peek::peek(at, &mut chunk[..len]) {
                break;
            }
            for word in chunk[..len].chunks_exact(8) {
                let word = usize::from_ne_bytes(word.try_into().expect("8 bytes"));
                if let Some(i) = inside(word) {
                    return Some((t.tid, word, i));
                }
            }
            at += len;
        }
    }
    None
}

/// Whether the snapshot shows every edit in readable, executable memory and every
/// page of `pages` with the protection the plan recorded.
fn snapshot_agrees(maps: &MapsSnapshot, edits: &[CodeEdit], pages: &PagePlan) -> bool {
    edits
        .iter()
        .all(|e| maps.covers(e.addr, e.new.len(), |p| p.read && p.exec))
        && pages
            .runs
            .iter()
            .all(|r| maps.covers(r.start, r.len, |p| p == r.perms))
}

/// Why one stop of every thread could not be used; retried.
enum Retry {
    /// The mappings text outgrew the buffer.
    SnapshotTooSmall,
    /// The mappings changed since the plan was made.
    MapsChanged,
    /// A thread is inside an edit.
    Busy(Busy),
}

/// Applies every edit, or none.
///
/// Records the protection of every touched page (both pages when an edit crosses
/// a page boundary); stops every other thread; then, with every other thread
/// stopped, takes a snapshot of the mappings and checks against it that every
/// edit is mapped code and every page still has the recorded protection (reading
/// nothing the snapshot does not show mapped), and that every edit's bytes are
/// what it expects. If a thread is inside an edit, or the mappings changed,
/// releases them all, backs off and retries ([`BUSY_ATTEMPTS`] times) before
/// refusing with [`CodeError::ThreadBusy`]; makes the pages `rwx` (if the system
/// refuses, returns [`CodeError::ProtectFailed`] with nothing written); writes;
/// restores each page's exact previous protection; serializes every core;
/// releases.
///
/// # Safety
/// The new bytes must be correct code for every thread that will execute them,
/// and every `addr` must be an instruction boundary of both old and new code.
pub unsafe fn apply_edits(edits: &[CodeEdit]) -> Result<(), CodeError> {
    validate(edits)?;
    if edits.is_empty() {
        return Ok(());
    }
    let _guard = code_write_lock();
    // Probe (and register) membarrier now: it may allocate and log.
    let _ = membarrier::sync_core_method();
    let ranges: Vec<(usize, usize)> = edits.iter().map(|e| (e.addr, e.new.len())).collect();
    let mut found = Vec::with_capacity(edits.iter().map(|e| e.new.len()).max().unwrap_or(0));
    let mut snapshot = MapsSnapshot::with_capacity(SNAPSHOT_START);
    let mut attempt = 0u32;
    loop {
        attempt += 1;
        let mut pages = PagePlan::new(&Maps::read()?, &ranges)?;
        let stopped = threads::stop_other_threads()?;
        // ---- threads stopped: no allocation, no locks until release ----
        let retry = match snapshot.take() {
            Err(SnapshotError::TooSmall) => Some(Retry::SnapshotTooSmall),
            Err(SnapshotError::Os(call, errno)) => {
                stopped.release();
                return Err(CodeError::Os {
                    call,
                    source: std::io::Error::from_raw_os_error(errno),
                });
            }
            Ok(()) if !snapshot_agrees(&snapshot, edits, &pages) => Some(Retry::MapsChanged),
            Ok(()) => find_busy(&stopped, edits, &snapshot).map(Retry::Busy),
        };
        if let Some(retry) = retry {
            stopped.release();
            BUSY_RETRIES.fetch_add(1, Ordering::Relaxed);
            match retry {
                Retry::SnapshotTooSmall => {
                    snapshot = MapsSnapshot::with_capacity(snapshot.capacity() * 2);
                }
                Retry::MapsChanged => {
                    tracing::debug!(attempt, "mappings changed while planning; retrying");
                }
                Retry::Busy((tid, pc, i)) => {
                    let e = &edits[i];
                    tracing::debug!(tid, pc, attempt, "a thread is inside a code edit; retrying");
                    if attempt >= BUSY_ATTEMPTS {
                        return Err(CodeError::ThreadBusy {
                            tid,
                            pc,
                            window_start: e.addr,
                            window_end: e.end(),
                            attempts: attempt,
                        });
                    }
                }
            }
            if attempt >= BUSY_ATTEMPTS {
                return Err(CodeError::MapsUnstable { attempts: attempt });
            }
            std::thread::sleep(Duration::from_micros(50 * u64::from(attempt.min(100))));
            continue;
        }
        if let Some(i) = first_mismatch(edits, &mut found) {
            stopped.release();
            return Err(mismatch_error(&edits[i], &found));
        }
        if let Err(f) = pages.make_writable() {
            stopped.release();
            return Err(pages.error(f));
        }
        for e in edits {
            // SAFETY: the range is mapped (in the snapshot taken while stopped) and
            // now writable; every other thread is stopped outside it; the caller
            // vouches for the new code.
            unsafe {
                std::ptr::copy_nonoverlapping(e.new.as_ptr(), e.addr as *mut u8, e.new.len())
            };
        }
        let restored = pages.restore();
        membarrier::sync_core_while_stopped();
        stopped.release();
        BATCHES.fetch_add(1, Ordering::Relaxed);
        tracing::debug!(edits = edits.len(), attempt, "code edits applied");
        return restored.map_err(|f| pages.error(f));
    }
}

/// Bytes of mappings text the first snapshot can hold; doubled when too small.
const SNAPSHOT_START: usize = 256 * 1024;

/// Runs `write` while the pages of `[addr, addr+len)` are writable, holding the
/// code-write lock, and restores their exact previous protection afterwards.
/// Other threads keep running: `write` must keep the code valid at every moment
/// (single atomic stores, core syncs in between).
pub fn with_writable_code<R>(
    addr: usize,
    len: usize,
    write: impl FnOnce() -> Result<R, CodeError>,
) -> Result<R, CodeError> {
    with_writable_code_ranges(&[(addr, len)], |_| write())
}

/// [`with_writable_code`] for several `(addr, len)` ranges at once: one read
/// of the mappings (handed to `write`), one protection change each way.
pub fn with_writable_code_ranges<R>(
    ranges: &[(usize, usize)],
    write: impl FnOnce(&Maps) -> Result<R, CodeError>,
) -> Result<R, CodeError> {
    let _guard = code_write_lock();
    let maps = Maps::read()?;
    let mut pages = PagePlan::new(&maps, ranges)?;
    pages.make_writable().map_err(|f| pages.error(f))?;
    let result = write(&maps);
    let restored = pages.restore();
    let r = result?;
    restored.map_err(|f| pages.error(f))?;
    Ok(r)
}
