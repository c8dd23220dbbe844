//! Redirecting NOP-padded entry stubs: states, re-pointing, restoring, refusals,
//! and the signal fallback for core serialization.

extern crate hotfix_tests;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use hotfix_core::arch::{EntryState, check_entry, redirect_entry, restore_entry};
use hotfix_core::code_error::CodeError;
use hotfix_core::os::{
    CodeEdit, SyncCoreMethod, apply_edits, force_sync_core_method, read_code, sync_core,
    sync_core_method,
};

unsafe extern "C" {
    fn hf_entry_stub2(x: i32) -> i32;
    fn hf_entry_replacement(x: i32) -> i32;
}

extern "C" fn rust_replacement(x: i32) -> i32 {
    x + 5000
}

static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

fn entry() -> *const u8 {
    hf_entry_stub2 as *const u8
}

fn block() -> Vec<u8> {
    read_code(entry() as usize - 14, 16).unwrap()
}

fn call(x: i32) -> (i32, i32) {
    // SAFETY: the stub has the signature declared above; called directly and
    // through a function pointer the optimizer cannot see through.
    let direct = unsafe { hf_entry_stub2(x) };
    let f: unsafe extern "C" fn(i32) -> i32 = std::hint::black_box(hf_entry_stub2);
    // SAFETY: as above.
    let indirect = unsafe { f(x) };
    (direct, indirect)
}

fn redirect_restore_cycle() {
    let c_target = hf_entry_replacement as *const () as usize;
    let rust_target = rust_replacement as *const () as usize;
    assert_eq!(check_entry(entry()).unwrap(), EntryState::Unpatched);
    assert_eq!(call(1), (1001, 1001));
    // SAFETY: both targets have the stub's signature.
    unsafe { redirect_entry(entry(), c_target) }.unwrap();
    assert_eq!(
        check_entry(entry()).unwrap(),
        EntryState::Redirected(c_target)
    );
    assert_eq!(call(2), (2002, 2002));
    let b = block();
    assert_eq!(&b[..6], &[0xFF, 0x25, 0, 0, 0, 0]);
    assert_eq!(&b[6..14], &(c_target as u64).to_le_bytes());
    assert_eq!(&b[14..], &[0xEB, 0xF0]);
    // Re-point: one 8-byte store of the target.
    // SAFETY: as above.
    unsafe { redirect_entry(entry(), rust_target) }.unwrap();
    assert_eq!(
        check_entry(entry()).unwrap(),
        EntryState::Redirected(rust_target)
    );
    assert_eq!(call(3), (5003, 5003));
    // SAFETY: restoring our own stub.
    unsafe { restore_entry(entry()) }.unwrap();
    assert_eq!(check_entry(entry()).unwrap(), EntryState::Unpatched);
    assert_eq!(call(4), (1004, 1004));
    let b = block();
    assert_eq!(&b[..2], &[0xEB, 0x0C], "pad start jumps over the pad");
    assert!(b[2..14].iter().all(|&x| x == 0x90));
    assert_eq!(&b[14..], &[0x66, 0x90]);
    // Restoring twice is a no-op.
    // SAFETY: as above.
    unsafe { restore_entry(entry()) }.unwrap();
    assert_eq!(check_entry(entry()).unwrap(), EntryState::Unpatched);
}

#[test]
fn redirect_repoint_and_restore() {
    let _s = serial();
    redirect_restore_cycle();
    // And again from the restored layout.
    redirect_restore_cycle();
}

/// A thread asleep in `poll(2)`, which the kernel never restarts after a signal
/// handler (`signal(7)`), counting the times a signal interrupted it: the stop
/// signal of the fallback reaches every thread, `membarrier` none that sleeps.
struct Sleeper {
    wake: std::os::unix::net::UnixStream,
    interrupted: Arc<AtomicU64>,
    handle: std::thread::JoinHandle<()>,
}

impl Sleeper {
    fn start() -> Self {
        let (wake, woken) = std::os::unix::net::UnixStream::pair().expect("a socket pair");
        let interrupted = Arc::new(AtomicU64::new(0));
        let (ready, is_ready) = std::sync::mpsc::channel();
        let count = Arc::clone(&interrupted);
        let handle = std::thread::spawn(move || {
            let mut fd = libc::pollfd {
                fd: std::os::fd::AsRawFd::as_raw_fd(&woken),
                events: libc::POLLIN,
                revents: 0,
            };
            ready.send(()).expect("say ready");
            loop {
                // SAFETY: one valid pollfd, for a descriptor this thread owns.
                let r = unsafe { libc::poll(&mut fd, 1, -1) };
                if r < 0
                    && std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted
                {
                    count.fetch_add(1, Ordering::SeqCst);
                } else {
                    return;
                }
            }
        });
        is_ready.recv().expect("the sleeper started");
        // Until it sleeps in poll.
        std::thread::sleep(std::time::Duration::from_millis(20));
        Sleeper {
            wake,
            interrupted,
            handle,
        }
    }

    fn interruptions(&self) -> u64 {
        self.interrupted.load(Ordering::SeqCst)
    }

    /// Wakes it, waits for it to end, and returns its count.
    fn finish(self) -> u64 {
        std::io::Write::write_all(&mut &self.wake, b"x").expect("wake the sleeper");
        self.handle.join().expect("the sleeper");
        self.interrupted.load(Ordering::SeqCst)
    }
}

/// Forces a sync-core method until dropped (also when the test fails).
struct Forced;

impl Forced {
    fn signals() -> Self {
        force_sync_core_method(Some(SyncCoreMethod::Signals));
        Forced
    }
}

impl Drop for Forced {
    fn drop(&mut self) {
        force_sync_core_method(None);
    }
}

/// Redirect/re-point/restore cycles with cores serialized by the stop signal
/// instead of membarrier, while two threads call the stub: every call sees a
/// whole version, and a thread asleep in `poll` is interrupted by the stop
/// signal at least once per cycle (each cycle serializes cores 8 times), so
/// the signal path is what ran.
#[test]
fn the_signal_fallback_serializes_too() {
    const CYCLES: u64 = 20;
    let _s = serial();
    let sleeper = Sleeper::start();
    let quiet = sleeper.interruptions();
    let forced = Forced::signals();
    assert_eq!(sync_core_method(), SyncCoreMethod::Signals);
    let stop = Arc::new(AtomicBool::new(false));
    let workers: Vec<_> = (0..2)
        .map(|_| {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut n = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let (a, b) = call(7);
                    assert!([1007, 2007, 5007].contains(&a) && [1007, 2007, 5007].contains(&b));
                    n += 1;
                }
                n
            })
        })
        .collect();
    for _ in 0..CYCLES {
        redirect_restore_cycle();
    }
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        assert!(w.join().unwrap() > 0);
    }
    drop(forced);
    let interrupted = sleeper.finish() - quiet;
    eprintln!(
        "the stop signal interrupted a sleeping thread {interrupted} times in {CYCLES} cycles"
    );
    assert!(
        interrupted >= CYCLES,
        "the stop signal interrupted a sleeping thread {interrupted} times in {CYCLES} cycles: \
         the signal path did not run"
    );
}

#[test]
fn unexpected_entry_bytes_are_refused_untouched() {
    let _s = serial();
    let at = entry() as usize;
    // A debugger's breakpoint on the entry.
    let bp = CodeEdit {
        addr: at,
        expected_old: vec![0x66, 0x90],
        new: vec![0xCC, 0x90],
    };
    // SAFETY: nothing calls the stub meanwhile (tests here run one at a time).
    unsafe { apply_edits(std::slice::from_ref(&bp)) }.unwrap();
    let before = block();
    assert!(matches!(
        check_entry(entry()),
        Err(CodeError::UnexpectedEntryBytes { .. })
    ));
    // SAFETY: refused before writing.
    let err =
        unsafe { redirect_entry(entry(), rust_replacement as *const () as usize) }.unwrap_err();
    match &err {
        CodeError::UnexpectedEntryBytes {
            entry: e, found, ..
        } => {
            assert_eq!(*e, at);
            assert_eq!(found.0[14], 0xCC);
        }
        e => panic!("unexpected {e}"),
    }
    // SAFETY: refused before writing.
    assert!(unsafe { restore_entry(entry()) }.is_err());
    assert_eq!(block(), before);
    // SAFETY: removes the breakpoint.
    unsafe { apply_edits(&[bp.inverse()]) }.unwrap();
    assert_eq!(check_entry(entry()).unwrap(), EntryState::Unpatched);
}

#[test]
fn bad_addresses_and_targets_are_refused() {
    let _s = serial();
    let e = entry() as usize;
    assert!(matches!(
        check_entry((e + 1) as *const u8),
        Err(CodeError::MisalignedEntry { .. })
    ));
    static NOT_CODE: [u8; 64] = [0x90; 64];
    let data_entry = (NOT_CODE.as_ptr() as usize + 15) & !15;
    assert!(matches!(
        check_entry((data_entry + 14) as *const u8),
        Err(CodeError::NotCode { .. })
    ));
    // SAFETY: refused before writing.
    let err = unsafe { redirect_entry(entry(), NOT_CODE.as_ptr() as usize) }.unwrap_err();
    assert!(
        matches!(err, CodeError::TargetNotExecutable { .. }),
        "{err}"
    );
    assert_eq!(check_entry(entry()).unwrap(), EntryState::Unpatched);
}

/// Whether the kernel offers private expedited sync-core membarrier, asked
/// by this test itself (`membarrier(2)`: `MEMBARRIER_CMD_QUERY` is 0, the
/// command is bit 5 and its registration bit 6 of the answer).
fn kernel_offers_sync_core() -> bool {
    const SYNC_CORE: libc::c_long = 1 << 5;
    const REGISTER_SYNC_CORE: libc::c_long = 1 << 6;
    // SAFETY: membarrier's query takes only integers and changes nothing.
    let mask = unsafe { libc::syscall(libc::SYS_membarrier, 0, 0, 0) };
    eprintln!("membarrier(MEMBARRIER_CMD_QUERY) = {mask:#x}");
    mask > 0 && mask & (SYNC_CORE | REGISTER_SYNC_CORE) == SYNC_CORE | REGISTER_SYNC_CORE
}

/// Where the kernel offers sync-core membarrier (asked independently of the
/// code's probe), cores are serialized with it: `sync_core` signals no
/// thread (one asleep in `poll` is never interrupted). Elsewhere the fallback
/// signals every thread.
#[test]
fn membarrier_sync_core_is_used_where_the_kernel_offers_it() {
    const SYNCS: u64 = 10;
    let _s = serial();
    let offered = kernel_offers_sync_core();
    let sleeper = Sleeper::start();
    let quiet = sleeper.interruptions();
    for _ in 0..SYNCS {
        sync_core().unwrap();
    }
    let interrupted = sleeper.finish() - quiet;
    eprintln!(
        "kernel offers sync-core membarrier: {offered}; method {:?}; a sleeping thread interrupted {interrupted} times by {SYNCS} syncs",
        sync_core_method()
    );
    if offered {
        assert_eq!(sync_core_method(), SyncCoreMethod::Membarrier);
        assert_eq!(
            interrupted, 0,
            "threads were signalled although membarrier is offered"
        );
    } else {
        assert_eq!(sync_core_method(), SyncCoreMethod::Signals);
        assert!(
            interrupted >= SYNCS,
            "the fallback did not signal the sleeping thread"
        );
    }
}
