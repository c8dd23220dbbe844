//! Stopping every other thread of the process, and releasing them.
//!
//! Each thread listed in `/proc/self/task` (except the caller) gets a real-time
//! signal ([`stop_signal`]) through `tgkill`; its handler
//! ([`super::stop_handler`]) reports the interrupted instruction and stack
//! pointers and sleeps until released. `/proc/self/task` is scanned again after
//! every thread is stopped, until a scan finds no new thread (a stopped thread
//! cannot create one).
//!
//! While threads are stopped the controller allocates nothing and takes no lock a
//! stopped thread might hold (the allocator's, the loader's, stdio's): it only
//! makes system calls and touches memory prepared beforehand.
//!
//! A thread that keeps the stop signal blocked (a `sigwait` loop) would never
//! stop: such threads are found from `SigBlk` in `/proc/self/task/*/status`
//! before anyone is stopped and named in the refusal; one that blocks it later
//! is noticed while waiting. A thread blocks every signal for a moment in normal
//! operation (a new thread before it first runs, `pthread_create`'s parent,
//! `posix_spawn`), so only a thread that has run, keeps the signal blocked at
//! every look for [`BLOCKED_GRACE`] and is seen asleep in that time (not a
//! thread preempted inside such a section) is refused. A thread waiting in `sigwait` for a set that
//! holds the signal (its mask then shows nothing) is refused at once: the
//! signal would be handed to it. io_uring workers take no signals and run no
//! user code: they are neither stopped nor waited for.
//!
//! # Interrupted system calls
//!
//! The handler is installed with `SA_RESTART`, so `read`, `write`, `accept`,
//! `recv`, `send`, `connect`, `wait` and futex waits (mutexes, condition
//! variables) in the stopped threads resume as if nothing happened. The kernel
//! never restarts some calls after any handler, whatever the flags (`signal(7)`):
//! `poll`, `ppoll`, `select`, `epoll_wait`, `nanosleep`, `clock_nanosleep`,
//! `sigtimedwait`, `io_getevents`, System V IPC waits and socket calls with
//! `SO_RCVTIMEO`/`SO_SNDTIMEO`. Those return `EINTR` early in a stopped thread,
//! as they do for any signal. Rust's `std::thread::sleep` and `std::io`'s
//! `read_exact`/`write_all` retry, and mio/tokio retry `epoll_wait`; C code that
//! calls them must retry on `EINTR`, as POSIX already requires.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

pub use super::stop_handler::stop_signal;
use super::stop_handler::{
    GONE, PHASE_BITS, RELEASED, SIGNALLED, STOP_EVENTS, STOPPED, Table, enc, futex_wait_timeout,
    futex_wake, install_handler, table_with_capacity,
};
use super::tasks::{
    TaskDir, blocking_state, count_tasks, describe_task, errno, is_io_worker, task_alive,
    waits_for_signal, why_not_stopped,
};
use crate::code_error::CodeError;

/// How long a thread may take to stop before the operation is refused.
const STOP_DEADLINE: Duration = Duration::from_secs(5);
/// How long a thread may keep the stop signal blocked before it is named and
/// the operation refused. Threads block every signal for a moment in normal
/// operation (`pthread_create`, `fork`), so one look is not enough; a thread in
/// `sigwait` blocks it for good.
const BLOCKED_GRACE: Duration = Duration::from_millis(40);
/// How long the controller sleeps between checks while waiting for threads.
const POLL_NS: libc::c_long = 500_000;

static GENERATION: AtomicU32 = AtomicU32::new(0);
/// One stop session at a time: two controllers signalling each other would each
/// stop inside the other's session and never be released.
static SESSION: Mutex<()> = Mutex::new(());

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
    _session: MutexGuard<'static, ()>,
}

impl StoppedThreads {
    /// The stopped threads (threads that exited meanwhile are skipped).
    /// Allocation-free.
    pub fn threads(&self) -> impl Iterator<Item = StoppedThread> + '_ {
        let stopped = enc(self.generation, STOPPED);
        self.table.slots[..self.used]
            .iter()
            .filter(move |s| s.state.load(Ordering::Acquire) == stopped)
            .map(|s| StoppedThread {
                tid: s.tid.load(Ordering::Relaxed),
                pc: s.pc.load(Ordering::Relaxed),
                sp: s.sp.load(Ordering::Relaxed),
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
    // First, slots whose thread never stopped (its signal still pending, or
    // blocked) are closed, so a late handler finds nothing and returns at once.
    // This must come before the release loop: a handler that stops between the
    // two sees its slot released below, one that comes later sees it closed.
    for s in &table.slots[..used] {
        let _ = s.state.compare_exchange(
            enc(generation, SIGNALLED),
            enc(generation, GONE),
            Ordering::AcqRel,
            Ordering::Relaxed,
        );
    }
    let stopped = enc(generation, STOPPED);
    let released = enc(generation, RELEASED);
    for s in &table.slots[..used] {
        if s.state
            .compare_exchange(stopped, released, Ordering::AcqRel, Ordering::Relaxed)
            .is_ok()
        {
            futex_wake(&s.state);
        }
    }
    // Released threads are not awaited: each serializes its core before it
    // returns to its code; slots are never freed and carry the generation, so a
    // thread still leaving the handler cannot be confused with a later session;
    // a later signal to it stays pending until this handler returns.
}

enum Round {
    Stable,
    Overflow,
    NotStopped { tid: i32, waited: Duration },
    Blocked { tid: i32 },
    Failed(&'static str, i32),
}

/// Stops every other thread of the process, until the result is released or
/// dropped. Sessions are serialized by an internal lock.
///
/// While threads are stopped the caller must not allocate, log, or take any lock
/// another thread may hold: a stopped thread may hold it.
///
/// Before stopping anyone, refuses with [`CodeError::ThreadBlocksStopSignal`]
/// if threads keep the stop signal blocked (the `sigwait` pattern), naming them;
/// a thread that blocks it only later is noticed while waiting and refused the
/// same way within the grace period (40 ms) or so. Refuses with
/// [`CodeError::ThreadNotStopped`] if a thread does not enter the handler in time
/// (stopped by a debugger), and with [`CodeError::SignalInUse`] if the
/// application owns the stop signal.
pub fn stop_other_threads() -> Result<StoppedThreads, CodeError> {
    let session = SESSION.lock().unwrap_or_else(|e| e.into_inner());
    install_handler()?;
    let task_dir = TaskDir::open()?;
    refuse_blocking_threads(&task_dir)?;
    let mut capacity = count_tasks().unwrap_or(0) * 2 + 16;
    loop {
        let table = table_with_capacity(capacity);
        let generation =
            GENERATION.fetch_add(1, Ordering::AcqRel).wrapping_add(1) & (u32::MAX >> PHASE_BITS);
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
                    _session: session,
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
            Round::Blocked { tid } => {
                release_slots(table, generation, used);
                return Err(CodeError::ThreadBlocksStopSignal {
                    threads: describe_task(tid),
                    signal: stop_signal(),
                });
            }
            Round::Failed(call, errno) => {
                release_slots(table, generation, used);
                return Err(CodeError::Os {
                    call,
                    source: std::io::Error::from_raw_os_error(errno),
                });
            }
        }
    }
}

/// Refuses with [`CodeError::ThreadBlocksStopSignal`] when threads keep the
/// stop signal blocked, or wait for it in `sigwait` (they would never stop), naming them. Cheap when
/// none does (one look at each thread's status): call it before expensive work
/// that ends in [`stop_other_threads`], which checks again.
pub fn check_threads_take_stop_signal() -> Result<(), CodeError> {
    refuse_blocking_threads(&TaskDir::open()?)
}

/// Names the threads that wait for the stop signal in `sigwait`, or that have
/// run and keep it blocked at every look for [`BLOCKED_GRACE`]. Runs before
/// any thread is stopped (it allocates).
fn refuse_blocking_threads(dir: &TaskDir) -> Result<(), CodeError> {
    // SAFETY: gettid has no preconditions.
    let me = unsafe { libc::syscall(libc::SYS_gettid) } as i32;
    let signal = stop_signal();
    // (tid, seen asleep at some look)
    let mut blocking: Vec<(i32, bool)> = Vec::new();
    let mut waiting = Vec::new();
    dir.for_each_tid(|tid| {
        if tid == me || is_io_worker(tid) {
            return;
        }
        if waits_for_signal(tid, signal) {
            waiting.push(tid);
        } else if let Some(asleep) = blocking_state(tid, signal) {
            blocking.push((tid, asleep));
        }
    })
    .map_err(|errno| CodeError::Os {
        call: "getdents64 /proc/self/task",
        source: std::io::Error::from_raw_os_error(errno),
    })?;
    // A thread in sigwait for the stop signal would receive it as the
    // application's own: refused at once, before anyone is signalled.
    if !waiting.is_empty() {
        let threads: Vec<String> = waiting.into_iter().map(describe_task).collect();
        return Err(CodeError::ThreadBlocksStopSignal {
            threads: format!("{} (waiting for it in sigwait)", threads.join(", ")),
            signal,
        });
    }
    let start = Instant::now();
    while !blocking.is_empty() && start.elapsed() < BLOCKED_GRACE {
        std::thread::sleep(Duration::from_millis(2));
        blocking.retain_mut(|(tid, asleep)| {
            let now = task_alive(*tid)
                .then(|| blocking_state(*tid, signal))
                .flatten();
            *asleep |= now == Some(true);
            now.is_some()
        });
    }
    // Blocked at every look, and asleep at one at least: not a thread
    // preempted inside a short all-blocked section.
    let threads: Vec<String> = blocking
        .into_iter()
        .filter(|(_, asleep)| *asleep)
        .map(|(tid, _)| describe_task(tid))
        .collect();
    if threads.is_empty() {
        return Ok(());
    }
    Err(CodeError::ThreadBlocksStopSignal {
        threads: threads.join(", "),
        signal,
    })
}

fn stop_rounds(table: &Table, generation: u32, dir: &TaskDir, used: &mut usize) -> Round {
    // SAFETY: getpid and gettid have no preconditions.
    let (pid, me) = unsafe { (libc::getpid(), libc::syscall(libc::SYS_gettid) as i32) };
    let signalled = enc(generation, SIGNALLED);
    loop {
        let mut found_new = false;
        let mut overflow = false;
        let mut send_error = None;
        let gone = enc(generation, GONE);
        let scan = dir.for_each_tid(|tid| {
            // A slot whose thread is gone does not cover a new thread that
            // reuses its id.
            if tid == me
                || overflow
                || table.slots[..*used].iter().any(|s| {
                    s.tid.load(Ordering::Relaxed) == tid && s.state.load(Ordering::Acquire) != gone
                })
                || is_io_worker(tid)
            {
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
                let e = errno();
                // Only ESRCH proves the thread is gone; anything else (EAGAIN:
                // the queue of real-time signals is full) means it may still run.
                let _ = slot.state.compare_exchange(
                    signalled,
                    enc(generation, GONE),
                    Ordering::AcqRel,
                    Ordering::Relaxed,
                );
                if e != libc::ESRCH && send_error.is_none() {
                    send_error = Some(e);
                }
            }
        });
        if let Err(errno) = scan {
            return Round::Failed("getdents64 /proc/self/task", errno);
        }
        if let Some(errno) = send_error {
            return Round::Failed("tgkill", errno);
        }
        if overflow {
            return Round::Overflow;
        }
        match wait_stopped(table, generation, *used) {
            Ok(()) => {}
            Err(Pending::Blocked(tid)) => return Round::Blocked { tid },
            Err(Pending::Late(tid, waited)) => return Round::NotStopped { tid, waited },
        }
        if !found_new {
            return Round::Stable;
        }
    }
}

/// A thread that did not stop.
enum Pending {
    /// It has kept the stop signal blocked for [`BLOCKED_GRACE`].
    Blocked(i32),
    /// It did not stop within [`STOP_DEADLINE`] (waited this long).
    Late(i32, Duration),
}

/// Waits until every signalled slot has stopped or its thread is gone.
/// Allocation-free.
fn wait_stopped(table: &Table, generation: u32, used: usize) -> Result<(), Pending> {
    let signalled = enc(generation, SIGNALLED);
    let start = Instant::now();
    let mut spins: u32 = 0;
    // The pending thread seen blocking the signal at every look, since when,
    // and whether it was seen asleep.
    let mut parked_since: Option<(i32, Instant, bool)> = None;
    loop {
        let events = STOP_EVENTS.load(Ordering::Acquire);
        let mut pending = None;
        for s in &table.slots[..used] {
            if s.state.load(Ordering::Acquire) == signalled {
                pending = Some(s);
                break;
            }
        }
        let Some(slot) = pending else { return Ok(()) };
        spins = spins.wrapping_add(1);
        if spins & 15 == 0 {
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
            match (blocking_state(tid, stop_signal()), &mut parked_since) {
                (Some(asleep), Some((t, since, seen))) if *t == tid => {
                    *seen |= asleep;
                    if *seen && since.elapsed() > BLOCKED_GRACE {
                        return Err(Pending::Blocked(tid));
                    }
                }
                (Some(asleep), _) => parked_since = Some((tid, Instant::now(), asleep)),
                (None, _) => parked_since = None,
            }
            if start.elapsed() > STOP_DEADLINE {
                return Err(Pending::Late(tid, start.elapsed()));
            }
        }
        // Sleep until a handler reports a stop (or a short timeout, to notice
        // threads that exited): the CPU goes to the threads taking their signal.
        futex_wait_timeout(&STOP_EVENTS, events, Some(POLL_NS));
    }
}
