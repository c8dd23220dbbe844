//! Making every core serialize after code was modified (Intel SDM Vol. 3, 8.1.3).
//!
//! Preferred: `membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED_SYNC_CORE)`, after
//! registering for it once. The kernel interrupts every CPU currently running a
//! thread of this process and makes it execute a core-serializing instruction
//! before it returns to user space; threads not running serialize when they are
//! scheduled back in (the registration makes the kernel do that).
//!
//! Fallback, where the kernel lacks the command or refuses it (old kernel,
//! seccomp): every other thread is stopped with the stop signal of
//! [`super::threads`] and released again. Its handler executes a core-serializing
//! instruction (`cpuid` on x86-64) after being released, before returning to the
//! interrupted code, so every thread has serialized once the fallback returns. The
//! calling thread serializes itself with the same instruction.

use std::sync::atomic::{AtomicU8, Ordering};

use super::threads;
use crate::arch;
use crate::code_error::CodeError;

const MEMBARRIER_CMD_QUERY: libc::c_long = 0;
const MEMBARRIER_CMD_PRIVATE_EXPEDITED_SYNC_CORE: libc::c_long = 1 << 5;
const MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED_SYNC_CORE: libc::c_long = 1 << 6;

/// How cores are made to serialize after a code write.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SyncCoreMethod {
    /// `membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED_SYNC_CORE)`.
    Membarrier,
    /// Stop and release every other thread with the stop signal; its handler
    /// serializes before returning.
    Signals,
}

const UNKNOWN: u8 = 0;
const MEMBARRIER: u8 = 1;
const SIGNALS: u8 = 2;
static METHOD: AtomicU8 = AtomicU8::new(UNKNOWN);
static FORCED: AtomicU8 = AtomicU8::new(UNKNOWN);

fn membarrier(cmd: libc::c_long) -> libc::c_long {
    // SAFETY: membarrier takes only integers and has no memory-safety preconditions.
    unsafe {
        libc::syscall(
            libc::SYS_membarrier,
            cmd,
            0 as libc::c_long,
            0 as libc::c_long,
        )
    }
}

/// What the kernel answered when asked for the membarrier sync-core commands.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MembarrierSupport {
    /// Queried and registered.
    Registered,
    /// `MEMBARRIER_CMD_QUERY` failed with this errno.
    QueryFailed(i32),
    /// The query's mask lacks the sync-core commands.
    NotOffered(i64),
    /// Registration failed with this errno.
    RegisterFailed(i32),
}

/// Asks the kernel for sync-core membarrier and registers this process for it.
pub fn probe_membarrier() -> MembarrierSupport {
    let mask = membarrier(MEMBARRIER_CMD_QUERY);
    if mask < 0 {
        return MembarrierSupport::QueryFailed(last_errno());
    }
    let needed = MEMBARRIER_CMD_PRIVATE_EXPEDITED_SYNC_CORE
        | MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED_SYNC_CORE;
    if mask & needed != needed {
        return MembarrierSupport::NotOffered(mask as i64);
    }
    if membarrier(MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED_SYNC_CORE) != 0 {
        return MembarrierSupport::RegisterFailed(last_errno());
    }
    MembarrierSupport::Registered
}

/// The method in use, probing (and registering) on first call.
pub fn sync_core_method() -> SyncCoreMethod {
    match FORCED.load(Ordering::Acquire) {
        MEMBARRIER => return SyncCoreMethod::Membarrier,
        SIGNALS => return SyncCoreMethod::Signals,
        _ => {}
    }
    match METHOD.load(Ordering::Acquire) {
        MEMBARRIER => SyncCoreMethod::Membarrier,
        SIGNALS => SyncCoreMethod::Signals,
        _ => {
            let support = probe_membarrier();
            let m = if support == MembarrierSupport::Registered {
                tracing::debug!("membarrier sync-core registered");
                MEMBARRIER
            } else {
                tracing::warn!(
                    ?support,
                    "membarrier sync-core unavailable; cores are serialized by stopping threads with a signal"
                );
                SIGNALS
            };
            METHOD.store(m, Ordering::Release);
            if m == MEMBARRIER {
                SyncCoreMethod::Membarrier
            } else {
                SyncCoreMethod::Signals
            }
        }
    }
}

/// Forces a method (`None`: back to automatic). For tests of the fallback path.
/// Forcing [`SyncCoreMethod::Membarrier`] registers first; if the kernel refuses,
/// the automatic choice stays in force.
#[doc(hidden)]
pub fn force_sync_core_method(method: Option<SyncCoreMethod>) {
    let v = match method {
        None => UNKNOWN,
        Some(SyncCoreMethod::Signals) => SIGNALS,
        Some(SyncCoreMethod::Membarrier) => {
            if probe_membarrier() == MembarrierSupport::Registered {
                MEMBARRIER
            } else {
                UNKNOWN
            }
        }
    };
    FORCED.store(v, Ordering::Release);
}

/// Makes every thread of the process serialize its instruction stream, so code
/// written before this call is what any core executes next. The caller must not
/// have other threads stopped (see [`sync_core_while_stopped`] for that case).
pub fn sync_core() -> Result<(), CodeError> {
    arch::serialize_core();
    if sync_core_method() == SyncCoreMethod::Membarrier
        && membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED_SYNC_CORE) == 0
    {
        return Ok(());
    }
    let stopped = threads::stop_other_threads()?;
    stopped.release();
    Ok(())
}

/// Serialization while the other threads are stopped by [`super::threads`]: the
/// caller serializes itself and, where available, membarrier serializes the
/// others now; in any case each stopped thread serializes in the stop handler
/// after being released. Allocation-free.
pub fn sync_core_while_stopped() {
    arch::serialize_core();
    if sync_core_method_cached() == Some(SyncCoreMethod::Membarrier) {
        let _ = membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED_SYNC_CORE);
    }
}

fn sync_core_method_cached() -> Option<SyncCoreMethod> {
    let v = match FORCED.load(Ordering::Acquire) {
        UNKNOWN => METHOD.load(Ordering::Acquire),
        f => f,
    };
    match v {
        MEMBARRIER => Some(SyncCoreMethod::Membarrier),
        SIGNALS => Some(SyncCoreMethod::Signals),
        _ => None,
    }
}

fn last_errno() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
}
