//! Calls never wait for, and never see half of, an apply or a revert; applies
//! and reverts from several threads are serialised.

use fixture_host::{Player, answer, greet, sum};
use hotfix_core::{ApplyOptions, Error, Runtime, Strategy};
use hotfix_tests::{build_patch, entry, serial};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Barrier, Mutex};
use std::thread;
use std::time::{Duration, Instant};

fn rt() -> &'static Runtime {
    Runtime::global()
}

/// The process-wide test lock; reverts what the test left applied on drop.
fn guard() -> hotfix_tests::Serial {
    serial()
}

fn assert_original(when: &str) {
    assert_eq!((sum(1, 2), answer()), (-1, 40), "{when}");
    assert_eq!(greet("x"), "hello x", "{when}");
    let status = rt().status();
    assert!(status.patches.is_empty(), "{when}: {status}");
    assert!(status.functions.is_empty(), "{when}: {status:?}");
}

fn callers() -> usize {
    2 * thread::available_parallelism().map_or(1, |n| n.get())
}

/// Apply/revert cycles the swapping thread aims for.
const CYCLES: u64 = 100_000;
/// Fewest cycles that make the test mean something.
const MIN_CYCLES: u64 = 10_000;
/// Wall-clock cap of the swapping loop.
const CAP: Duration = Duration::from_secs(60);

/// Results no caller may see, with the first few for the message.
#[derive(Default)]
struct Bad {
    count: AtomicU64,
    first: Mutex<Vec<String>>,
}

impl Bad {
    fn record(&self, what: String) {
        if self.count.fetch_add(1, Ordering::Relaxed) < 10 {
            self.first
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(what);
        }
    }
}

/// Sets the flag when dropped, so callers stop even if the test panics.
struct StopOnDrop<'a>(&'a AtomicBool);

impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

#[test]
fn calls_during_apply_revert_cycles_see_the_old_or_the_new_version() {
    let _g = guard();
    swap_under_calls(ApplyOptions::default(), CYCLES, MIN_CYCLES, CAP);
}

/// The same with the entry strategy: each apply and revert also rewrites the
/// NOP-padded entries of the patched functions while other threads call them
/// at those entries. Each cycle costs far more (page protections and core
/// serialisation for the batch of entries), hence far fewer cycles.
#[test]
fn calls_during_entry_strategy_cycles_see_the_old_or_the_new_version() {
    let _g = guard();
    let opts = ApplyOptions {
        strategy: Strategy::Entry,
    };
    swap_under_calls(opts, 100, 30, Duration::from_secs(20));
}

/// `callers()` threads call patchable functions in a loop while this thread
/// applies and reverts the `good` patch `cycles` times (or until `cap`).
fn swap_under_calls(opts: ApplyOptions, cycles_wanted: u64, min_cycles: u64, cap: Duration) {
    let patch = rt().load(build_patch("good")).expect("load the good patch");
    assert_original("before");
    // Pointers taken before any patch. With the slot strategy, pointers to the
    // wrappers (they read the slot); with the entry strategy, the addresses of
    // the entry symbols, as C code or a pointer taken by foreign code calls
    // them (they reach the replacement only through the redirected entry).
    let (raw_sum, raw_answer) = match opts.strategy {
        Strategy::Slot => (sum as fn(i64, i64) -> i64, answer as fn() -> u32),
        Strategy::Entry => (entry::sum_entry(), entry::answer_entry()),
    };

    let n = callers();
    let stop = AtomicBool::new(false);
    let start = Barrier::new(n + 1);
    let calls: Vec<AtomicU64> = (0..n).map(|_| AtomicU64::new(0)).collect();
    let (old_seen, new_seen) = (AtomicU64::new(0), AtomicU64::new(0));
    let bad = Bad::default();

    let (cycles, elapsed, during) = thread::scope(|s| {
        for me in calls.iter() {
            let (stop, start, bad) = (&stop, &start, &bad);
            let (old_seen, new_seen) = (&old_seen, &new_seen);
            s.spawn(move || {
                let player = Player { xp: 250 };
                let (mut old, mut new) = (0u64, 0u64);
                start.wait();
                let mut i = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let got = (sum(1, 2), raw_sum(1, 2), answer(), raw_answer());
                    for (what, v, was, now) in [
                        ("sum", got.0, -1, 3),
                        ("raw sum", got.1, -1, 3),
                        ("answer", i64::from(got.2), 40, 42),
                        ("raw answer", i64::from(got.3), 40, 42),
                    ] {
                        if v == was {
                            old += 1;
                        } else if v == now {
                            new += 1;
                        } else {
                            bad.record(format!("{what} returned {v}"));
                        }
                    }
                    if i.is_multiple_of(16) {
                        // Allocated by whichever version ran, freed here.
                        let g = greet("x");
                        if g != "hello x" && g != "hi x" {
                            bad.record(format!("greet returned {g:?}"));
                        }
                        let l = player.level();
                        if l != 4 && l != 3 {
                            bad.record(format!("level returned {l}"));
                        }
                    }
                    i += 1;
                    me.fetch_add(1, Ordering::Relaxed);
                }
                old_seen.fetch_add(old, Ordering::Relaxed);
                new_seen.fetch_add(new, Ordering::Relaxed);
            });
        }

        let stopper = StopOnDrop(&stop);
        start.wait();
        let began = Instant::now();
        let before: Vec<u64> = calls.iter().map(|c| c.load(Ordering::Relaxed)).collect();
        let mut cycles = 0u64;
        while cycles < cycles_wanted && began.elapsed() < cap {
            let applied = match rt().apply_loaded(&patch, opts) {
                Ok(a) => a,
                Err(e) => {
                    bad.record(format!("cycle {cycles}: apply: {e}"));
                    break;
                }
            };
            // This thread's own stores are visible to its own calls.
            let got = (sum(1, 2), raw_sum(1, 2), raw_answer());
            if got != (3, 3, 42) {
                bad.record(format!(
                    "cycle {cycles}: applied, but (sum, raw sum, raw answer) are {got:?}"
                ));
            }
            if let Err(e) = rt().revert(applied.id) {
                bad.record(format!("cycle {cycles}: revert: {e}"));
                break;
            }
            let got = (sum(1, 2), raw_sum(1, 2), raw_answer());
            if got != (-1, -1, 40) {
                bad.record(format!(
                    "cycle {cycles}: reverted, but (sum, raw sum, raw answer) are {got:?}"
                ));
            }
            cycles += 1;
        }
        let elapsed = began.elapsed();
        let during: Vec<u64> = calls
            .iter()
            .zip(before)
            .map(|(c, b)| c.load(Ordering::Relaxed) - b)
            .collect();
        drop(stopper);
        (cycles, elapsed, during)
    });

    let total: u64 = calls.iter().map(|c| c.load(Ordering::Relaxed)).sum();
    eprintln!(
        "{:?}: {cycles} apply/revert cycles in {elapsed:?} with {n} calling threads; \
         {total} call rounds, per thread during the cycles: {during:?}; \
         results: {} old, {} new",
        opts.strategy,
        old_seen.load(Ordering::Relaxed),
        new_seen.load(Ordering::Relaxed),
    );
    let first = bad.first.lock().unwrap_or_else(|e| e.into_inner());
    assert_eq!(
        bad.count.load(Ordering::Relaxed),
        0,
        "results that are neither old nor new: {first:?}"
    );
    assert!(
        cycles >= min_cycles,
        "only {cycles} cycles in {elapsed:?} (at least {min_cycles} needed)"
    );
    assert!(
        during.iter().all(|&c| c > 0),
        "a calling thread made no progress while patches were swapped: {during:?}"
    );
    // Both versions were really seen, or the test proved nothing.
    assert!(
        old_seen.load(Ordering::Relaxed) > 0,
        "no call saw the original"
    );
    assert!(
        new_seen.load(Ordering::Relaxed) > 0,
        "no call saw the patch"
    );
    assert_original("after the cycles");
}

#[test]
fn applies_and_reverts_from_several_threads_are_serialised() {
    let _g = guard();
    // One patch per thread: name and bytes differ, so none refuses another.
    let names = ["good", "layer_a", "layer_b", "layer_c"];
    let patches: Vec<_> = names
        .iter()
        .map(|n| rt().load(build_patch(n)).expect("load"))
        .collect();
    assert_original("before");
    const ROUNDS: u64 = 2_000;
    let stop = AtomicBool::new(false);
    let start = Barrier::new(patches.len() + 1);
    let bad = Bad::default();
    let checked = AtomicU64::new(0);

    thread::scope(|s| {
        let stopper = StopOnDrop(&stop);
        // A caller that sees only whole versions: the original or one layer's.
        let (stop_r, start_r, bad_r, checked_r) = (&stop, &start, &bad, &checked);
        let caller = s.spawn(move || {
            start_r.wait();
            while !stop_r.load(Ordering::Relaxed) {
                let (s, a) = (sum(1, 2), answer());
                if ![-1, 3, 103, 203, 303].contains(&s) {
                    bad_r.record(format!("sum returned {s}"));
                }
                if ![40, 42, 1, 2].contains(&a) {
                    bad_r.record(format!("answer returned {a}"));
                }
                checked_r.fetch_add(1, Ordering::Relaxed);
            }
        });
        let workers: Vec<_> = patches
            .iter()
            .map(|patch| {
                let (start, bad) = (&start, &bad);
                s.spawn(move || {
                    start.wait();
                    for round in 0..ROUNDS {
                        let applied = match rt().apply_loaded(patch, ApplyOptions::default()) {
                            Ok(a) => a,
                            Err(e) => {
                                bad.record(format!("{} round {round}: apply: {e}", patch.name()));
                                continue;
                            }
                        };
                        if !rt().status().patches.iter().any(|p| p.id == applied.id) {
                            bad.record(format!("{} round {round}: not in status", patch.name()));
                        }
                        if let Err(e) = rt().revert(applied.id) {
                            bad.record(format!("{} round {round}: revert: {e}", patch.name()));
                        }
                    }
                })
            })
            .collect();
        for w in workers {
            w.join().expect("a worker panicked");
        }
        drop(stopper);
        caller.join().expect("the caller panicked");
    });

    let first = bad.first.lock().unwrap_or_else(|e| e.into_inner());
    assert_eq!(bad.count.load(Ordering::Relaxed), 0, "{first:?}");
    assert!(
        checked.load(Ordering::Relaxed) > 0,
        "the caller made no call"
    );
    assert_original("after every thread reverted its patch");
}

#[test]
fn threads_racing_to_apply_one_patch_exactly_one_wins() {
    let _g = guard();
    let patch = rt().load(build_patch("good")).expect("load");
    assert_original("before");
    let n = callers().max(4);
    const ROUNDS: usize = 300;
    let barrier = Barrier::new(n);
    let wins = AtomicU64::new(0);
    let bad = Bad::default();

    thread::scope(|s| {
        for _ in 0..n {
            let (barrier, wins, bad, patch) = (&barrier, &wins, &bad, &patch);
            s.spawn(move || {
                for round in 0..ROUNDS {
                    barrier.wait();
                    let won = match rt().apply_loaded(patch, ApplyOptions::default()) {
                        Ok(a) => Some(a.id),
                        Err(Error::AlreadyApplied { .. }) => None,
                        Err(e) => {
                            bad.record(format!("round {round}: {e}"));
                            None
                        }
                    };
                    if won.is_some() {
                        wins.fetch_add(1, Ordering::Relaxed);
                    }
                    // Everyone has tried: exactly one apply is in the stack.
                    barrier.wait();
                    if won.is_some() {
                        let st = rt().status();
                        if st.patches.len() != 1 || sum(1, 2) != 3 {
                            bad.record(format!("round {round}: stack {st} sum {}", sum(1, 2)));
                        }
                    }
                    barrier.wait();
                    if let Some(id) = won
                        && let Err(e) = rt().revert(id)
                    {
                        bad.record(format!("round {round}: revert: {e}"));
                    }
                }
            });
        }
    });

    let first = bad.first.lock().unwrap_or_else(|e| e.into_inner());
    assert_eq!(bad.count.load(Ordering::Relaxed), 0, "{first:?}");
    assert_eq!(
        wins.load(Ordering::Relaxed),
        ROUNDS as u64,
        "one winner per round"
    );
    assert_original("after the races");
}
