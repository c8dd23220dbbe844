//! The stop signal's handler and the slots it reports in.
//!
//! The handler uses only atomics and raw system calls (`gettid`, `futex`) and the
//! `cpuid` instruction: it looks up its slot, stores the interrupted instruction
//! and stack pointers, sleeps on a futex until released, serializes its core and
//! returns.
//!
//! Slots live in tables that are never freed, so a late signal (a thread that
//! handles it after its session ended) can never touch freed memory; each slot's
//! state word carries the session's generation, so a late handler never confuses
//! two sessions.

use std::sync::atomic::{AtomicBool, AtomicI32, AtomicPtr, AtomicU32, AtomicUsize, Ordering};

use crate::arch;
use crate::code_error::CodeError;

/// Phases of a slot's state word (low bits; the high bits hold the generation).
const FREE: u32 = 0;
pub(super) const SIGNALLED: u32 = 1;
pub(super) const STOPPED: u32 = 2;
pub(super) const RELEASED: u32 = 3;
const LEFT: u32 = 4;
pub(super) const GONE: u32 = 5;
pub(super) const PHASE_BITS: u32 = 3;

/// A state word: generation and phase.
pub(super) fn enc(generation: u32, phase: u32) -> u32 {
    (generation << PHASE_BITS) | phase
}

/// The phase of a state word.
pub(super) fn phase(state: u32) -> u32 {
    state & ((1 << PHASE_BITS) - 1)
}

/// The signal used to stop threads: `SIGRTMAX - 3`. If the application installed
/// its own handler for it, stopping threads is refused with
/// [`CodeError::SignalInUse`].
pub fn stop_signal() -> i32 {
    libc::SIGRTMAX() - 3
}

/// One thread's place in a stop session.
pub(super) struct Slot {
    pub(super) tid: AtomicI32,
    pub(super) state: AtomicU32,
    pub(super) pc: AtomicUsize,
    pub(super) sp: AtomicUsize,
}

/// The slots of the current session; `used` of them are assigned.
pub(super) struct Table {
    pub(super) slots: Box<[Slot]>,
    pub(super) used: AtomicUsize,
}

/// Current slot table; every table ever published is leaked, never freed.
static TABLE: AtomicPtr<Table> = AtomicPtr::new(std::ptr::null_mut());
static INSTALLED: AtomicBool = AtomicBool::new(false);
/// Bumped (and futex-woken) by every handler that stops, so the controller can
/// sleep instead of spinning: on a machine with few cores, a spinning controller
/// keeps the signalled threads from being scheduled to take their signal.
pub(super) static STOP_EVENTS: AtomicU32 = AtomicU32::new(0);

/// The current table, replaced (the old one leaked) if smaller than `min`.
pub(super) fn table_with_capacity(min: usize) -> &'static Table {
    let cur = TABLE.load(Ordering::Acquire);
    // SAFETY: a non-null TABLE always points to a leaked, never-freed Table.
    if let Some(t) = unsafe { cur.as_ref() }.filter(|t| t.slots.len() >= min) {
        return t;
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
extern "C" fn on_stop_signal(
    _sig: libc::c_int,
    _info: *mut libc::siginfo_t,
    ctx: *mut libc::c_void,
) {
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
        if slot
            .state
            .compare_exchange(s, stopped, Ordering::AcqRel, Ordering::Acquire)
            .is_err()
        {
            return;
        }
        STOP_EVENTS.fetch_add(1, Ordering::AcqRel);
        futex_wake(&STOP_EVENTS);
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
    futex_wait_timeout(word, expected, None);
}

/// `FUTEX_WAIT` on `word` while it equals `expected`, at most `timeout_ns`.
pub(super) fn futex_wait_timeout(
    word: &AtomicU32,
    expected: u32,
    timeout_ns: Option<libc::c_long>,
) {
    let ts = timeout_ns.map(|ns| libc::timespec {
        tv_sec: 0,
        tv_nsec: ns,
    });
    let ts_ptr = ts
        .as_ref()
        .map_or(std::ptr::null(), |t| t as *const libc::timespec);
    // SAFETY: word is a valid, aligned u32 for the whole call (slots and statics
    // are never freed); ts_ptr is null (wait until woken or the value differs) or
    // points to a timespec alive for the call.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAIT | libc::FUTEX_PRIVATE_FLAG,
            expected,
            ts_ptr,
        );
    }
}

/// `FUTEX_WAKE` every waiter on `word`.
pub(super) fn futex_wake(word: &AtomicU32) {
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

/// Installs the handler once; refuses a signal the application handles.
/// Called at every stop session: the application may have replaced or ignored
/// the signal since the last one (a thread would then never stop, or another
/// handler would run), so the current action is looked at each time.
pub(super) fn install_handler() -> Result<(), CodeError> {
    let sig = stop_signal();
    let ours = on_stop_signal as extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void)
        as libc::sighandler_t;
    // SAFETY: sigaction structs are plain data; zeroed is a valid initial value.
    let mut old: libc::sigaction = unsafe { std::mem::zeroed() };
    // SAFETY: querying the current action writes only into `old`.
    if unsafe { libc::sigaction(sig, std::ptr::null(), &mut old) } != 0 {
        return Err(CodeError::last_os("sigaction"));
    }
    if old.sa_sigaction == ours {
        return Ok(());
    }
    // Ignored after we installed ours, or someone else's handler: refused.
    // Ignored before we ever installed (an inherited SIG_IGN) is taken over.
    let ignored_by_app = old.sa_sigaction == libc::SIG_IGN && INSTALLED.load(Ordering::Acquire);
    if (old.sa_sigaction != libc::SIG_DFL && old.sa_sigaction != libc::SIG_IGN) || ignored_by_app {
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
