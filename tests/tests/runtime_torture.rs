//! Torture through the public runtime, bounded in count and time: callers hammer
//! `#[patchable]` functions (by name, and at their entries: the entry symbol's
//! address, as C code or a pointer taken by foreign code calls it) and a C
//! function, while another thread applies and reverts real patches with the
//! entry strategy and with foreign trampolines.

use fixture_host::{c_answer, c_label, sum};
use hotfix_core::__private::FnDesc;
use hotfix_core::{ApplyOptions, Runtime, Strategy};
use hotfix_tests::entry::{
    NameLenEntry, assert_replacement, assert_unpatched, block_on, desc, name_len_entry,
    redirect_target, sum_entry,
};
use hotfix_tests::{NewSeen, build_patch, serial};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, LazyLock};
use std::time::{Duration, Instant};

const CYCLES: u32 = 3_000;
const CAP: Duration = Duration::from_secs(60);
/// Fewer cycles than this within the cap is a failure (a stuck writer);
/// loaded 2-core runs make several times more.
const MIN_CYCLES: u32 = 500;

/// How long the patcher waits for some call to see the new code of one cycle.
const SEEN_TIMEOUT: Duration = Duration::from_secs(5);

/// One way of calling patched code: what it returns with the original live
/// and with the patch live. Every caller runs every probe in each iteration.
struct Probe {
    what: &'static str,
    call: fn() -> i64,
    old: i64,
    new: i64,
}

/// `sum(1, 2)` through the wrapper (which reads the slot).
fn sum_by_name() -> i64 {
    sum(1, 2)
}

/// `sum(1, 2)` through the address of its entry symbol.
fn sum_at_entry() -> i64 {
    static AT: LazyLock<fn(i64, i64) -> i64> = LazyLock::new(sum_entry);
    AT(1, 2)
}

/// `name_len("abc", &1)` (an `async fn`) through the address of its entry.
fn name_len_at_entry() -> i64 {
    static AT: LazyLock<NameLenEntry> = LazyLock::new(name_len_entry);
    block_on(AT("abc", &1)) as i64
}

/// The C function, with or without its trampoline.
fn c_answer_2() -> i64 {
    i64::from(c_answer(2))
}

/// What the patcher checks after each apply and after each revert, from its
/// own thread (no caller's timing involved).
trait Check {
    fn applied(&self);
    fn reverted(&self);
}

/// No check beyond the probes.
struct NoCheck;

impl Check for NoCheck {
    fn applied(&self) {}
    fn reverted(&self) {}
}

/// The entries of these functions jump to these replacements while the patch
/// is applied, and to their originals once it is reverted; a call of the
/// entry from the patcher's thread right after the revert runs the original.
struct Entries(Vec<(&'static FnDesc, usize)>);

impl Entries {
    /// Reads the targets after a first apply and checks each is the named
    /// replacement of the loaded copy of `patch`.
    fn of(patch: &Path, functions: &[(&'static str, &str)]) -> Self {
        let rt = Runtime::global();
        let id = rt
            .apply_with(
                patch,
                ApplyOptions {
                    strategy: Strategy::Entry,
                },
            )
            .expect("first apply")
            .id;
        let out = functions
            .iter()
            .map(|&(path, name)| {
                let d = desc(path);
                (d, assert_replacement(redirect_target(d), patch, name))
            })
            .collect();
        rt.revert(id).expect("first revert");
        Entries(out)
    }
}

impl Check for Entries {
    fn applied(&self) {
        for &(d, target) in &self.0 {
            assert_eq!(redirect_target(d), target, "{}", d.meta.path);
        }
    }
    fn reverted(&self) {
        for &(d, _) in &self.0 {
            assert_unpatched(d);
        }
        assert_eq!(sum_at_entry(), -1, "sum's entry after the revert");
        assert_eq!(name_len_at_entry(), 4, "name_len's entry after the revert");
    }
}

/// Applies and reverts `patch` while callers run every probe. Each cycle waits
/// until every probe has returned its new value at least once (from some
/// caller) before it reverts. Returns (cycles, calls).
fn torture(
    patch: &str,
    strategy: Strategy,
    probes: &'static [Probe],
    check: &dyn Check,
) -> (u32, u64) {
    let path = build_patch(patch);
    let rt = Runtime::global();
    let loaded = rt.load(&path).expect("load");
    let stop = Arc::new(AtomicBool::new(false));
    let calls = Arc::new(AtomicU64::new(0));
    let seen: Arc<Vec<NewSeen>> = Arc::new(probes.iter().map(|_| NewSeen::default()).collect());
    let threads = 2 * std::thread::available_parallelism().map_or(2, |n| n.get());
    let workers: Vec<_> = (0..threads)
        .map(|_| {
            let (stop, calls, seen) = (stop.clone(), calls.clone(), seen.clone());
            std::thread::spawn(move || {
                let mut n = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    for (p, seen) in probes.iter().zip(seen.iter()) {
                        let v = (p.call)();
                        assert!(v == p.old || v == p.new, "{} returned {v}", p.what);
                        if v == p.new && p.new != p.old {
                            seen.saw_new();
                        }
                    }
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
    let mut windows = vec![0u32; probes.len()];
    while cycles < CYCLES && start.elapsed() < CAP {
        let before: Vec<u64> = seen.iter().map(NewSeen::count).collect();
        let id = rt
            .apply_loaded(&loaded, ApplyOptions { strategy })
            .expect("apply")
            .id;
        check.applied();
        for ((p, seen), (before, w)) in probes
            .iter()
            .zip(seen.iter())
            .zip(before.into_iter().zip(windows.iter_mut()))
        {
            if p.new != p.old {
                *w += u32::from(seen.wait_after(before, SEEN_TIMEOUT));
            }
        }
        rt.revert(id).expect("revert");
        check.reverted();
        cycles += 1;
    }
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        assert!(
            w.join().expect("a caller crashed") > 0,
            "every caller made progress"
        );
    }
    for p in probes {
        assert_eq!((p.call)(), p.old, "{} after the last revert", p.what);
    }
    let calls = calls.load(Ordering::Relaxed);
    eprintln!(
        "{patch} {strategy:?}: {cycles} apply/revert cycles, {calls} calls (every probe each), {:?}",
        start.elapsed()
    );
    for (p, w) in probes.iter().zip(&windows) {
        if p.new != p.old {
            eprintln!("  {}: new code seen in {w} of {cycles} cycles", p.what);
            assert_eq!(
                *w, cycles,
                "{}: the new code was not seen in every cycle",
                p.what
            );
        }
    }
    (cycles, calls)
}

/// Callers call `sum` and the `async fn` `name_len` at their entries (and
/// `sum` by name) while the `good` patch is applied and reverted with
/// `Strategy::Entry`: every cycle, each entry's jump goes to the replacement
/// in the patch file, some call at each entry runs it, and after the revert
/// each stub jumps to its original and a call at the entry runs it.
#[test]
fn entry_strategy_under_load() {
    static PROBES: [Probe; 4] = [
        Probe {
            what: "sum at its entry",
            call: sum_at_entry,
            old: -1,
            new: 3,
        },
        Probe {
            what: "async name_len at its entry",
            call: name_len_at_entry,
            old: 4,
            new: 301,
        },
        Probe {
            what: "sum by name",
            call: sum_by_name,
            old: -1,
            new: 3,
        },
        Probe {
            what: "c_answer (not in this patch)",
            call: c_answer_2,
            old: 46,
            new: 46,
        },
    ];
    let _g = serial();
    let entries = Entries::of(
        &build_patch("good"),
        &[
            ("fixture_host::sum", "sum"),
            ("fixture_host::name_len", "name_len"),
        ],
    );
    let (cycles, calls) = torture("good", Strategy::Entry, &PROBES, &entries);
    assert!(cycles >= MIN_CYCLES, "only {cycles} cycles in {CAP:?}");
    assert!(calls > u64::from(cycles));
}

#[test]
fn foreign_trampolines_under_load() {
    static PROBES: [Probe; 2] = [
        Probe {
            what: "c_answer",
            call: c_answer_2,
            old: 46,
            new: 1002,
        },
        Probe {
            what: "sum by name",
            call: sum_by_name,
            old: -1,
            new: 3,
        },
    ];
    let _g = serial();
    let (cycles, calls) = torture("foreign_good", Strategy::Slot, &PROBES, &NoCheck);
    assert!(cycles >= MIN_CYCLES, "only {cycles} cycles in {CAP:?}");
    assert!(calls > u64::from(cycles));
}
