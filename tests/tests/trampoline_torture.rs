//! Torture: 2 x nproc threads call patched code in tight loops while another
//! thread applies and reverts 10,000 times, with each mechanism. Zero crashes;
//! every result is the old or the new value. Bounded by count and wall clock.
//! Also: threads being created and exiting all the time while patching.

extern crate hotfix_tests;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hotfix_core::arch::{EntryState, check_entry, redirect_entry, restore_entry};
use hotfix_core::foreign::{ForeignPatchStack, find_function, plan_foreign};
use hotfix_core::os::{read_code, write_stats};

unsafe extern "C" {
    fn hf_foreign_old(x: i32) -> i32;
    fn hf_foreign_c_new(x: i32) -> i32;
    fn hf_entry_stub(x: i32) -> i32;
    fn hf_entry_call_direct(x: i32) -> i32;
    fn hf_entry_replacement(x: i32) -> i32;
}

extern "C" fn foreign_rust_new(x: i32) -> i32 {
    x + 2000
}

extern "C" fn entry_rust_new(x: i32) -> i32 {
    x + 5000
}

const CYCLES: u32 = 10_000;
const WALL_CAP: Duration = Duration::from_secs(150);

static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

fn callers() -> usize {
    2 * std::thread::available_parallelism().map_or(2, |n| n.get())
}

/// Runs `callers()` threads calling `call(i, x)` until stopped; each result must
/// satisfy `ok(x, result)`. Returns (calls made, bad results seen).
fn hammer(
    call: fn(usize, i32) -> i32,
    ok: fn(i32, i32) -> bool,
    patcher: impl FnOnce() -> u32,
) -> (u64, u64, u32) {
    let stop = Arc::new(AtomicBool::new(false));
    let calls = Arc::new(AtomicU64::new(0));
    let bad = Arc::new(AtomicU64::new(0));
    let threads: Vec<_> = (0..callers())
        .map(|i| {
            let (stop, calls, bad) = (stop.clone(), calls.clone(), bad.clone());
            std::thread::spawn(move || {
                let mut x = i as i32;
                let mut n = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    x = (x + 1) & 0xFFFF;
                    let r = call(i, x);
                    if !ok(x, r) {
                        bad.fetch_add(1, Ordering::Relaxed);
                    }
                    n += 1;
                }
                calls.fetch_add(n, Ordering::Relaxed);
            })
        })
        .collect();
    let cycles = patcher();
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        t.join().expect("a caller thread panicked");
    }
    (
        calls.load(Ordering::Relaxed),
        bad.load(Ordering::Relaxed),
        cycles,
    )
}

#[test]
fn raw_trampoline_apply_revert_under_load() {
    let _s = serial();
    let sym = find_function("hf_foreign_old").unwrap();
    let mut stack = ForeignPatchStack::new(plan_foreign(&sym).unwrap());
    let rust_new = foreign_rust_new as *const () as usize;
    let c_new = hf_foreign_c_new as *const () as usize;
    let call = |i: usize, x: i32| {
        if i & 1 == 0 {
            // SAFETY: fixture without preconditions.
            unsafe { hf_foreign_old(x) }
        } else {
            let f: unsafe extern "C" fn(i32) -> i32 = std::hint::black_box(hf_foreign_old);
            // SAFETY: as above.
            unsafe { f(x) }
        }
    };
    let ok = |x: i32, r: i32| r == x + 1000 || r == x + 2000 || r == x + 3000;
    let (calls, bad, cycles) = hammer(call, ok, || {
        let start = Instant::now();
        let mut done = 0;
        while done < CYCLES && start.elapsed() < WALL_CAP {
            // SAFETY: both targets have the fixture's signature.
            let a = unsafe { stack.push(rust_new) }.unwrap();
            if done % 10 == 3 {
                // A second layer, re-pointing, then revert of the middle one.
                // SAFETY: as above.
                let b = unsafe { stack.push(c_new) }.unwrap();
                // SAFETY: reverting our patches.
                unsafe { stack.revert(a) }.unwrap();
                // SAFETY: as above.
                unsafe { stack.revert(b) }.unwrap();
            } else {
                // SAFETY: as above.
                unsafe { stack.revert(a) }.unwrap();
            }
            done += 1;
        }
        done
    });
    eprintln!(
        "raw trampoline: {cycles} apply/revert cycles, {calls} calls, {bad} bad, {:?}",
        write_stats()
    );
    assert_eq!(bad, 0);
    assert!(cycles > 0 && calls > 0);
    assert_eq!(read_code(sym.address, sym.size).unwrap(), sym.original);
    // SAFETY: original code.
    assert_eq!(unsafe { hf_foreign_old(1) }, 1001);
}

#[test]
fn entry_redirect_restore_under_load() {
    let _s = serial();
    let entry = hf_entry_stub as *const u8;
    let rust_new = entry_rust_new as *const () as usize;
    let c_new = hf_entry_replacement as *const () as usize;
    let call = |i: usize, x: i32| match i % 3 {
        // SAFETY: the stub has the declared signature.
        0 => unsafe { hf_entry_stub(x) },
        // SAFETY: a C function calling the stub directly; no preconditions.
        1 => unsafe { hf_entry_call_direct(x) },
        _ => {
            let f: unsafe extern "C" fn(i32) -> i32 = std::hint::black_box(hf_entry_stub);
            // SAFETY: the stub through a function pointer, same signature.
            unsafe { f(x) }
        }
    };
    let ok = |x: i32, r: i32| r == x + 1000 || r == x + 2000 || r == x + 5000;
    let (calls, bad, cycles) = hammer(call, ok, || {
        let start = Instant::now();
        let mut done = 0;
        while done < CYCLES && start.elapsed() < WALL_CAP {
            // SAFETY: both targets have the stub's signature.
            unsafe { redirect_entry(entry, rust_new) }.unwrap();
            if done % 10 == 3 {
                // SAFETY: as above (re-point).
                unsafe { redirect_entry(entry, c_new) }.unwrap();
            }
            // SAFETY: restoring our stub.
            unsafe { restore_entry(entry) }.unwrap();
            done += 1;
        }
        done
    });
    eprintln!("entry stub: {cycles} redirect/restore cycles, {calls} calls, {bad} bad");
    assert_eq!(bad, 0);
    assert!(cycles > 0 && calls > 0);
    assert_eq!(check_entry(entry).unwrap(), EntryState::Unpatched);
}

#[test]
fn threads_created_and_exiting_while_patching() {
    let _s = serial();
    let sym = find_function("hf_foreign_old").unwrap();
    let mut stack = ForeignPatchStack::new(plan_foreign(&sym).unwrap());
    let target = foreign_rust_new as *const () as usize;
    let stop = Arc::new(AtomicBool::new(false));
    let bad = Arc::new(AtomicU64::new(0));
    let spawner = {
        let (stop, bad) = (stop.clone(), bad.clone());
        std::thread::spawn(move || {
            let mut spawned = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let batch: Vec<_> = (0..4)
                    .map(|k| {
                        let bad = bad.clone();
                        std::thread::spawn(move || {
                            for x in 0..200 {
                                // SAFETY: fixture without preconditions.
                                let r = unsafe { hf_foreign_old(x + k) };
                                if r != x + k + 1000 && r != x + k + 2000 {
                                    bad.fetch_add(1, Ordering::Relaxed);
                                }
                            }
                        })
                    })
                    .collect();
                spawned += batch.len() as u64;
                for t in batch {
                    t.join().expect("a short-lived caller panicked");
                }
            }
            spawned
        })
    };
    let start = Instant::now();
    let mut cycles = 0;
    while cycles < 1_000 && start.elapsed() < Duration::from_secs(60) {
        // SAFETY: the target has the fixture's signature.
        let id = unsafe { stack.push(target) }.unwrap();
        // SAFETY: reverting our patch.
        unsafe { stack.revert(id) }.unwrap();
        cycles += 1;
    }
    stop.store(true, Ordering::Relaxed);
    let spawned = spawner.join().unwrap();
    eprintln!("thread churn: {cycles} cycles while {spawned} threads came and went");
    assert_eq!(bad.load(Ordering::Relaxed), 0);
    assert!(spawned > 0);
    assert_eq!(read_code(sym.address, sym.size).unwrap(), sym.original);
}
