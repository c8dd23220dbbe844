//! Stopping every other thread of the process, and releasing them.
//!
//! Each thread listed in `/proc/self/task` (except the caller) gets a real-time
//! signal ([`stop_signal`]) through `tgkill`. Its handler, which uses only atomics
//! and raw system calls (`gettid`, `futex`), looks up its slot, stores the
//! interrupted instruction and stack pointers there and sleeps on a futex until
//! released. Once released it executes a core-serializing instruction and returns.
//! `/proc/self/task` is scanned again after every thread is stopped, until a scan
//! finds no new thread (a stopped thread cannot create one).
//!
//! While threads are stopped the controller allocates nothing and takes no lock a
//! stopped thread might hold (the allocator's, the loader's, stdio's): it only
//! makes system calls and touches memory prepared beforehand.
//!
//! Slots live in tables that are never freed, so a late signal (a thread that
//! handles it after its session ended) can never touch freed memory; each slot's
//! state word carries the session's generation, so a late handler never confuses
//! two sessions.

use std::sync::atomic::{AtomicBool, AtomicI32, AtomicPtr, AtomicU32, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::arch;
use crate::code_error::CodeError;

const FREE: u32 = 0;
const SIGNALLED: u32 = 1;
const STOPPED: u32 = 2;
const RELEASED: u32 = 3;
const LEFT: u32 = 4;
const GONE: u32 = 5;
const PHASE_BITS: u32 = 3;

/// How long a thread may take to stop before the operation is refused.
const STOP_DEADLINE: Duration = Duration::from_secs(5);
/// How long released threads are awaited (after that they are left to finish alone).
const LEAVE_DEADLINE: Duration = Duration::from_secs(2);

fn enc(generation: u32, phase: u32) -> u32 {
    (generation << PHASE_BITS) | phase
}

fn phase(state: u32) -> u32 {
    state & ((1 << PHASE_BITS) - 1)
}

/// The signal used to stop threads: `SIGRTMAX - 3`. If the application installed
/// its own handler for it, stopping threads is refused with
/// [`CodeError::SignalInUse`].
pub fn stop_signal() -> i32 {
    libc::SIGRTMAX() - 3
}

struct Slot {
    tid: AtomicI32,
    state: AtomicU32,
    pc: AtomicUsize,
    sp: AtomicUsize,
}

struct Table {
    slots: Box<[Slot]>,
    used: AtomicUsize,
}

/// Current slot table; every table ever published is leaked, never freed.
static TABLE: AtomicPtr<Table> = AtomicPtr::new(std::ptr::null_mut());
static GENERATION: AtomicU32 = AtomicU32::new(0);
static INSTALLED: AtomicBool = AtomicBool::new(false);

fn table_with_capacity(min: usize) -> &'static Table {
    let cur = TABLE.load(Ordering::Acquire);
    // SAFETY: a non-null TABLE always points to a leaked, never-freed Table.
    if let Some(t) = unsafe { cur.as_ref() } {
        if t.slots.len() >= min {
            return t;
        }
    }
    let cap = min.next_power_of_two().max(64);
    let slots = (0..cap)
        .map(|_| Slot {
            tid: AtomicI32::new(0),
            state: AtomicU32::new(FREE),
            pc: AtomicUsize::new(0),
            sp: AtomicUsize::new(0),
        })
        .collect();
    let t: &'static Table = Box::leak(Box::new(Table {
        slots,
        used: AtomicUsize::new(0),
    }));
    TABLE.store(t as *const Table as *mut Table, Ordering::Release);
    t
}

/// The signal handler. Async-signal-safe: atomics, `gettid`, `futex`, `cpuid`.
extern "C" fn on_stop_signal(_sig: libc::c_int, _info: *mut libc::siginfo_t, ctx: *mut libc::c_void) {
    // SAFETY: __errno_location returns this thread's errno slot; saved and restored
    // so the interrupted code never sees our system calls' errno.
    let errno_ptr = unsafe { libc::__errno_location() };
    // SAFETY: errno_ptr is valid for this thread.
    let saved_errno = unsafe { *errno_ptr };
    handle_stop(ctx);
    // SAFETY: as above.
    unsafe { *errno_ptr = saved_errno };
}

fn handle_stop(ctx: *mut libc::c_void) {
    // SAFETY: a non-null TABLE points to a leaked Table that is never freed.
    let Some(table) = (unsafe { TABLE.load(Ordering::Acquire).as_ref() }) else {
        return;
    };
    // SAFETY: gettid has no preconditions.
    let tid = unsafe { libc::syscall(libc::SYS_gettid) } as i32;
    let used = table.used.load(Ordering::Acquire).min(table.slots.len());
    for slot in &table.slots[..used] {
        let s = slot.state.load(Ordering::Acquire);
        if phase(s) != SIGNALLED || slot.tid.load(Ordering::Relaxed) != tid {
            continue;
        }
        let generation = s >> PHASE_BITS;
        // SAFETY: ctx is the ucontext argument of this SA_SIGINFO handler.
        let (pc, sp) = unsafe { arch::context_pc_sp(ctx) };
        slot.pc.store(pc, Ordering::Relaxed);
        slot.sp.store(sp, Ordering::Relaxed);
        let stopped = enc(generation, STOPPED);
        if slot.state.compare_exchange(s, stopped, Ordering::AcqRel, Ordering::Acquire).is_err() {
            return;
        }
        while slot.state.load(Ordering::Acquire) == stopped {
            futex_wait(&slot.state, stopped);
        }
        arch::serialize_core();
        let _ = slot.state.compare_exchange(
            enc(generation, RELEASED),
            enc(generation, LEFT),
            Ordering::AcqRel,
            Ordering::Relaxed,
        );
        return;
    }
}

fn futex_wait(word: &AtomicU32, expected: u32) {
    // SAFETY: word is a valid, aligned u32 for the whole call (slots are never
    // freed); a null timeout waits until woken or the value differs.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAIT | libc::FUTEX_PRIVATE_FLAG,
            expected,
            std::ptr::null::<libc::timespec>(),
        );
    }
}

fn futex_wake(word: &AtomicU32) {
    // SAFETY: word is a valid, aligned u32; FUTEX_WAKE only reads its address.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAKE | libc::FUTEX_PRIVATE_FLAG,
            i32::MAX,
        );
    }
}

fn install_handler() -> Result<(), CodeError> {
    if INSTALLED.load(Ordering::Acquire) {
        return Ok(());
    }
    let sig = stop_signal();
    let ours = on_stop_signal as extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void)
        as libc::sighandler_t;
    // SAFETY: sigaction structs are plain data; zeroed is a valid initial value.
    let mut old: libc::sigaction = unsafe { std::mem::zeroed() };
    // SAFETY: querying the current action writes only into `old`.
    if unsafe { libc::sigaction(sig, std::ptr::null(), &mut old) } != 0 {
        return Err(CodeError::last_os("sigaction"));
    }
    if old.sa_sigaction != libc::SIG_DFL && old.sa_sigaction != libc::SIG_IGN && old.sa_sigaction != ours {
        return Err(CodeError::SignalInUse { signal: sig });
    }
    // SAFETY: as above.
    let mut act: libc::sigaction = unsafe { std::mem::zeroed() };
    act.sa_sigaction = ours;
    act.sa_flags = libc::SA_SIGINFO | libc::SA_RESTART;
    // SAFETY: sa_mask is a valid sigset_t inside `act`; blocking every signal while
    // stopped keeps other handlers from running code that is being modified.
    unsafe { libc::sigfillset(&mut act.sa_mask) };
    // SAFETY: installs a handler that is async-signal-safe (see `handle_stop`).
    if unsafe { libc::sigaction(sig, &act, std::ptr::null_mut()) } != 0 {
        return Err(CodeError::last_os("sigaction"));
    }
    INSTALLED.store(true, Ordering::Release);
    Ok(())
}

/// A thread held in the stop handler.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StoppedThread {
    /// Its thread id.
    pub tid: i32,
    /// The instruction pointer it was interrupted at.
    pub pc: usize,
    /// Its stack pointer when interrupted.
    pub sp: usize,
}

/// Every other thread of the process, held in the stop handler until
/// [`StoppedThreads::release`] (or drop).
pub struct StoppedThreads {
    table: &'static Table,
    generation: u32,
    used: usize,
    released: bool,
}

impl StoppedThreads {
    /// The stopped threads (threads that exited meanwhile are skipped).
    /// Allocation-free.
    pub fn threads(&self) -> impl Iterator<Item = StoppedThread> + '_ {
        let stopped = enc(self.generation, STOPPED);
        self.table.slots[..self.used].iter().filter_map(move |s| {
            (s.state.load(Ordering::Acquire) == stopped).then(|| StoppedThread {
                tid: s.tid.load(Ordering::Relaxed),
                pc: s.pc.load(Ordering::Relaxed),
                sp: s.sp.load(Ordering::Relaxed),
            })
        })
    }

    /// Lets every stopped thread run again. Each serializes its core before it
    /// returns to the code it was interrupted in.
    pub fn release(mut self) {
        self.release_inner();
    }

    fn release_inner(&mut self) {
        if self.released {
            return;
        }
        self.released = true;
        release_slots(self.table, self.generation, self.used);
    }
}

impl Drop for StoppedThreads {
    fn drop(&mut self) {
        self.release_inner();
    }
}

fn release_slots(table: &Table, generation: u32, used: usize) {
    let stopped = enc(generation, STOPPED);
    let released = enc(generation, RELEASED);
    for s in &table.slots[..used] {
        if s.state.compare_exchange(stopped, released, Ordering::AcqRel, Ordering::Relaxed).is_ok() {
            futex_wake(&s.state);
        }
    }
    // Wait (bounded) until they have left the handler; not needed for soundness
    // (slots are never freed and carry the generation), only for tidiness.
    let deadline = Instant::now() + LEAVE_DEADLINE;
    for s in &table.slots[..used] {
        while s.state.load(Ordering::Acquire) == released && Instant::now() < deadline {
            // SAFETY: sched_yield has no preconditions.
            unsafe { libc::sched_yield() };
        }
    }
    // Slots that never stopped (signal still pending) must not be matched by the
    // late handler in a later session: mark them gone for this generation.
    for s in &table.slots[..used] {
        let _ = s.state.compare_exchange(
            enc(generation, SIGNALLED),
            enc(generation, GONE),
            Ordering::AcqRel,
            Ordering::Relaxed,
        );
    }
}

enum Round {
    Stable,
    Overflow,
    NotStopped { tid: i32, waited: Duration },
    Failed(i32),
}

/// Stops every other thread of the process. The caller must hold the code-write
/// lock (sessions must not overlap) and must release the result promptly.
///
/// Refuses with [`CodeError::ThreadNotStopped`] if a thread does not enter the
/// handler in time (it blocks the signal, or is stopped by a debugger), and with
/// [`CodeError::SignalInUse`] if the application owns the stop signal.
pub fn stop_other_threads() -> Result<StoppedThreads, CodeError> {
    install_handler()?;
    let task_dir = TaskDir::open()?;
    let mut capacity = count_tasks().unwrap_or(0) * 2 + 16;
    loop {
        let table = table_with_capacity(capacity);
        let generation = GENERATION
            .fetch_add(1, Ordering::AcqRel)
            .wrapping_add(1)
            & (u32::MAX >> PHASE_BITS);
        // ---- from here until release: no allocation, no locks ----
        table.used.store(0, Ordering::Release);
        let mut used = 0usize;
        let round = stop_rounds(table, generation, &task_dir, &mut used);
        match round {
            Round::Stable => {
                return Ok(StoppedThreads {
                    table,
                    generation,
                    used,
                    released: false,
                });
            }
            Round::Overflow => {
                release_slots(table, generation, used);
                capacity = table.slots.len() * 2;
            }
            Round::NotStopped { tid, waited } => {
                release_slots(table, generation, used);
                return Err(CodeError::ThreadNotStopped {
                    tid,
                    waited_ms: waited.as_millis() as u64,
                    reason: why_not_stopped(tid),
                });
            }
            Round::Failed(errno) => {
                release_slots(table, generation, used);
                return Err(CodeError::Os {
                    call: "getdents64 /proc/self/task",
                    source: std::io::Error::from_raw_os_error(errno),
                });
            }
        }
    }
}

fn stop_rounds(table: &Table, generation: u32, dir: &TaskDir, used: &mut usize) -> Round {
    // SAFETY: getpid and gettid have no preconditions.
    let (pid, me) = unsafe { (libc::getpid(), libc::syscall(libc::SYS_gettid) as i32) };
    let signalled = enc(generation, SIGNALLED);
    loop {
        let mut found_new = false;
        let mut overflow = false;
        let scan = dir.for_each_tid(|tid| {
            if tid == me || overflow || table.slots[..*used].iter().any(|s| s.tid.load(Ordering::Relaxed) == tid) {
                return;
            }
            if *used == table.slots.len() {
                overflow = true;
                return;
            }
            let slot = &table.slots[*used];
            slot.tid.store(tid, Ordering::Relaxed);
            slot.pc.store(0, Ordering::Relaxed);
            slot.sp.store(0, Ordering::Relaxed);
            slot.state.store(signalled, Ordering::Release);
            *used += 1;
            table.used.store(*used, Ordering::Release);
            found_new = true;
            // SAFETY: tgkill only sends a signal; our handler is installed.
            if unsafe { libc::syscall(libc::SYS_tgkill, pid, tid, stop_signal()) } != 0 {
                // The thread exited before it could be signalled.
                let _ = slot.state.compare_exchange(
                    signalled,
                    enc(generation, GONE),
                    Ordering::AcqRel,
                    Ordering::Relaxed,
                );
            }
        });
        if let Err(errno) = scan {
            return Round::Failed(errno);
        }
        if overflow {
            return Round::Overflow;
        }
        if let Err((tid, waited)) = wait_stopped(table, generation, *used) {
            return Round::NotStopped { tid, waited };
        }
        if !found_new {
            return Round::Stable;
        }
    }
}

/// Waits until every signalled slot has stopped or its thread is gone.
fn wait_stopped(table: &Table, generation: u32, used: usize) -> Result<(), (i32, Duration)> {
    let signalled = enc(generation, SIGNALLED);
    let start = Instant::now();
    let mut spins: u32 = 0;
    loop {
        let mut pending = None;
        for s in &table.slots[..used] {
            if s.state.load(Ordering::Acquire) == signalled {
                pending = Some(s);
                break;
            }
        }
        let Some(slot) = pending else { return Ok(()) };
        spins = spins.wrapping_add(1);
        if spins % 64 == 0 {
            let tid = slot.tid.load(Ordering::Relaxed);
            if !task_alive(tid) {
                let _ = slot.state.compare_exchange(
                    signalled,
                    enc(generation, GONE),
                    Ordering::AcqRel,
                    Ordering::Relaxed,
                );
                continue;
            }
            if start.elapsed() > STOP_DEADLINE {
                return Err((tid, start.elapsed()));
            }
        }
        // SAFETY: sched_yield has no preconditions.
        unsafe { libc::sched_yield() };
    }
}

/// Whether the task can still run a handler: listed and not a zombie or dead.
/// Allocation-free (path and buffer on the stack).
fn task_alive(tid: i32) -> bool {
    let mut path = [0u8; 48];
    let prefix = b"/proc/self/task/";
    path[..prefix.len()].copy_from_slice(prefix);
    let mut n = prefix.len();
    n += write_decimal(&mut path[n..], tid as u32);
    let suffix = b"/stat\0";
    path[n..n + suffix.len()].copy_from_slice(suffix);
    // SAFETY: path is NUL-terminated; open has no other preconditions.
    let fd = unsafe { libc::open(path.as_ptr().cast(), libc::O_RDONLY | libc::O_CLOEXEC) };
    if fd < 0 {
        return false;
    }
    let mut buf = [0u8; 512];
    // SAFETY: buf is valid for buf.len() bytes; fd is open.
    let r = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
    // SAFETY: fd was opened above and is closed once.
    unsafe { libc::close(fd) };
    if r <= 0 {
        return false;
    }
    let text = &buf[..r as usize];
    // "tid (comm) S ...": the state follows the last ')'.
    match text.iter().rposition(|&b| b == b')') {
        Some(i) if i + 2 < text.len() => !matches!(text[i + 2], b'Z' | b'X' | b'x'),
        _ => true,
    }
}

fn write_decimal(out: &mut [u8], mut v: u32) -> usize {
    let mut digits = [0u8; 10];
    let mut n = 0;
    loop {
        digits[n] = b'0' + (v % 10) as u8;
        n += 1;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    for i in 0..n {
        out[i] = digits[n - 1 - i];
    }
    n
}

fn count_tasks() -> Option<usize> {
    std::fs::read_dir("/proc/self/task").ok().map(|d| d.count())
}

fn why_not_stopped(tid: i32) -> String {
    let status = std::fs::read_to_string(format!("/proc/self/task/{tid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .map(|v| v.trim().to_string())
    };
    let bit = 1u64 << (stop_signal() - 1);
    let blocked = field("SigBlk:")
        .and_then(|v| u64::from_str_radix(&v, 16).ok())
        .is_some_and(|m| m & bit != 0);
    if blocked {
        return format!("it blocks the stop signal {}", stop_signal());
    }
    let state = field("State:").unwrap_or_else(|| "unknown".into());
    let tracer = field("TracerPid:").unwrap_or_else(|| "0".into());
    format!("state {state}, tracer pid {tracer}")
}

/// An open `/proc/self/task` directory, listed with raw `getdents64`.
struct TaskDir {
    fd: i32,
}

impl TaskDir {
    fn open() -> Result<Self, CodeError> {
        // SAFETY: the path is a NUL-terminated literal.
        let fd = unsafe {
            libc::open(
                c"/proc/self/task".as_ptr(),
                libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC,
            )
        };
        if fd < 0 {
            return Err(CodeError::last_os("open /proc/self/task"));
        }
        Ok(Self { fd })
    }

    /// Calls `f` with every thread id listed now. Allocation-free.
    fn for_each_tid(&self, mut f: impl FnMut(i32)) -> Result<(), i32> {
        // SAFETY: fd is an open directory; rewinding restarts the listing.
        if unsafe { libc::lseek(self.fd, 0, libc::SEEK_SET) } < 0 {
            return Err(errno());
        }
        let mut buf = [0u64; 512];
        loop {
            // SAFETY: buf is valid for its size in bytes; getdents64 writes records into it.
            let n = unsafe {
                libc::syscall(
                    libc::SYS_getdents64,
                    self.fd,
                    buf.as_mut_ptr(),
                    std::mem::size_of_val(&buf),
                )
            };
            if n < 0 {
                return Err(errno());
            }
            if n == 0 {
                return Ok(());
            }
            // SAFETY: the kernel filled the first n bytes of buf.
            let bytes = unsafe { std::slice::from_raw_parts(buf.as_ptr().cast::<u8>(), n as usize) };
            let mut off = 0usize;
            while off + 19 <= bytes.len() {
                let reclen = u16::from_ne_bytes([bytes[off + 16], bytes[off + 17]]) as usize;
                if reclen == 0 || off + reclen > bytes.len() {
                    break;
                }
                let name = &bytes[off + 19..off + reclen];
                let mut tid: u32 = 0;
                let mut ok = false;
                for &c in name {
                    match c {
                        b'0'..=b'9' => {
                            tid = tid.wrapping_mul(10).wrapping_add((c - b'0') as u32);
                            ok = true;
                        }
                        0 => break,
                        _ => {
                            ok = false;
                            break;
                        }
                    }
                }
                if ok && tid > 0 && tid <= i32::MAX as u32 {
                    f(tid as i32);
                }
                off += reclen;
            }
        }
    }
}

impl Drop for TaskDir {
    fn drop(&mut self) {
        // SAFETY: fd was opened by TaskDir::open and is closed once.
        unsafe { libc::close(self.fd) };
    }
}

fn errno() -> i32 {
    // SAFETY: __errno_location always returns a valid pointer to this thread's errno.
    unsafe { *libc::__errno_location() }
}
