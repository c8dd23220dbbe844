//! Torture through the public runtime, bounded in count and time: callers hammer
//! a `#[patchable]` function (directly and through a raw function pointer, so
//! through its entry) and a C function, while another thread applies and reverts
//! real patches with the entry strategy and with foreign trampolines.

use fixture_host::{c_answer, c_label, sum};
use hotfix_core::{ApplyOptions, Runtime, Strategy};
use hotfix_tests::{build_patch, serial};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

const CYCLES: u32 = 10_000;
const CAP: Duration = Duration::from_secs(60);
/// Fewer cycles than this within the cap is a failure (a stuck writer).
const MIN_CYCLES: u32 = 1_000;

fn torture(patch: &str, strategy: Strategy) -> (u32, u64) {
    let path = build_patch(patch);
    let rt = Runtime::global();
    let loaded = rt.load(&path).expect("load");
    let stop = Arc::new(AtomicBool::new(false));
    let calls = Arc::new(AtomicU64::new(0));
    let threads = 2 * std::thread::available_parallelism().map_or(2, |n| n.get());
    let workers: Vec<_> = (0..threads)
        .map(|i| {
            let (stop, calls) = (stop.clone(), calls.clone());
            std::thread::spawn(move || {
                let via_ptr: fn(i64, i64) -> i64 = sum;
                let mut n = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let s = if i % 2 == 0 { sum(1, 2) } else { via_ptr(1, 2) };
                    assert!(s == -1 || s == 3, "sum returned {s}");
                    let c = c_answer(2);
                    assert!(c == 46 || c == 1002, "c_answer returned {c}");
                    if n.is_multiple_of(1024) {
                        let l = c_label();
                        assert!(
                            l == "original 7" || l == "patched 8",
                            "c_label returned {l}"
                        );
                    }
                    n += 1;
                }
                calls.fetch_add(n, Ordering::Relaxed);
                n
            })
        })
        .collect();
    let start = Instant::now();
    let mut cycles = 0;
    while cycles < CYCLES && start.elapsed() < CAP {
        let id = rt
            .apply_loaded(&loaded, ApplyOptions { strategy })
            .expect("apply")
            .id;
        rt.revert(id).expect("revert");
        cycles += 1;
    }
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        assert!(
            w.join().expect("a caller crashed") > 0,
            "every caller made progress"
        );
    }
    assert_eq!((sum(1, 2), c_answer(2)), (-1, 46));
    let calls = calls.load(Ordering::Relaxed);
    eprintln!(
        "{patch} {strategy:?}: {cycles} apply/revert cycles, {calls} calls, {:?}",
        start.elapsed()
    );
    (cycles, calls)
}

#[test]
fn entry_strategy_under_load() {
    let _g = serial();
    let (cycles, calls) = torture("good", Strategy::Entry);
    assert!(cycles >= MIN_CYCLES, "only {cycles} cycles in {CAP:?}");
    assert!(calls > 0);
}

#[test]
fn foreign_trampolines_under_load() {
    let _g = serial();
    let (cycles, calls) = torture("foreign_good", Strategy::Slot);
    assert!(cycles >= MIN_CYCLES, "only {cycles} cycles in {CAP:?}");
    assert!(calls > 0);
}
