//! Operating-system services of the code writer: page protections read from
//! `/proc/self/maps`, stopping every other thread, making cores serialize after a
//! code write (`membarrier`), and the all-or-nothing batch writer built on them.

#[cfg(target_os = "linux")]
mod linux;

#[cfg(target_os = "linux")]
pub use linux::{
    code_write::{
        BUSY_ATTEMPTS, CodeEdit, WriteStats, apply_edits, code_write_lock, read_code,
        with_writable_code, with_writable_code_ranges, write_stats,
    },
    maps::{Mapping, Maps, Perms},
    membarrier::{
        MembarrierSupport, SyncCoreMethod, force_sync_core_method, probe_membarrier, sync_core,
        sync_core_method,
    },
    near_map::NearMap,
    peek::peek,
    protect::page_size,
    threads::{
        StoppedThread, StoppedThreads, check_threads_take_stop_signal, stop_other_threads,
        stop_signal,
    },
};
