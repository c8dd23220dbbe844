//! Per-call cost of a `#[patchable]` function against a plain function.
//!
//! `cargo bench -p hotfix-core --bench slot_call`
//!
//! Rows (all take two `i64` and add them; inputs go through `black_box`):
//! - `plain`: an `#[inline(never)]` function, called directly;
//! - `plain_cross_crate`: the same body in another crate (hotfix-core), called
//!   directly: a position-independent executable loads the target of a call
//!   across crates (and across codegen units) from the GOT, which is also how
//!   the call to a patchable function's entry is made;
//! - `plain_via_fn_ptr`: the same through a function pointer the compiler
//!   cannot see through (the baseline of the other pointer rows);
//! - `patchable_unpatched`: a `#[patchable]` function with its original live:
//!   the call loads the slot, which holds the original, compares it with the
//!   descriptor's `unpatched` and calls the original directly;
//! - `patchable_unpatched_via_fn_ptr`: the same through a function pointer
//!   (taken before any patch: it passes through the slot too);
//! - `patchable_patched_bare`: the slot holds a plain replacement function;
//! - `patchable_patched`: the slot holds the replacement a real patch exports:
//!   the one `#[hotfix_core::patch]` generates (the body inside the panic guard);
//! - `patchable_patched_via_fn_ptr`: as `patchable_patched`, through a pointer;
//! - `patchable_slot_on_entry`: the slot on the (unredirected) entry, whose
//!   `jmp rel32` reaches the original;
//! - `patchable_entry_patched`: the slot left on the entry, the entry
//!   redirected to the bare replacement (the 2-byte NOP becomes a jump into
//!   the pad, whose long jump reaches the replacement): what a call that
//!   reaches the entry pays under the entry strategy (the runtime also stores
//!   the replacement in the slot, so calls through the slot cost
//!   `patchable_patched`);
//! - `async_plain` / `async_unpatched` / `async_patched`: an `async fn` adding
//!   two `i64`, polled to completion with a no-op waker: plain, `#[patchable]`
//!   with its original live (future inline), and with the replacement
//!   `#[patch]` generates in the slot (one boxed future per call);
//! - `c_plain` / `c_trampolined`: a C-ABI function (`extern "C"`, `no_mangle`,
//!   written in Rust so the bench needs no C compiler; its machine code is what
//!   the trampoline sees in C) before and after the raw trampoline is written
//!   over its entry;
//! - `static_plain` / `static_shared`: a load of a plain static and of a
//!   `#[shared]` static (the extra load a patch-visible static costs).
//!
//! The patched rows patch without a patch library: they store the replacement
//! into the function's slot with `slot.store(replacement, Release)`. That is
//! exactly what `Runtime::apply` makes live with the (default) slot strategy:
//! `runtime::relink` ends with `f.slot.store(live as *mut (), Release)`, where
//! `live` is the top-most patch entry's `replacement`. Nothing else is on the
//! call path (loading, checks and binding happen before, off the call path).
//!
//! After the run the bench prints each row's ns/call and its ratio to `plain`
//! (or to `plain_via_fn_ptr` for pointer rows), from this run's estimates.
//!
//! With `HOTFIX_CALLGRIND=N` in the environment the bench runs no criterion:
//! it calls each row `N` times in a function of its own
//! (`callgrind_row_<row>`), for `valgrind --tool=callgrind` to count the
//! instructions of (`hotfix-core/benches/callgrind.sh` does it all). With
//! `HOTFIX_PAIRED=R` it times the same functions instead, 2,000,000 calls per
//! row in each of `R` rounds, and prints each row's median time ratio to its
//! baseline in the same round (a burst of load hits both alike);
//! `hotfix-core/benches/paired.sh` runs that in several processes and
//! `hotfix-core/benches/per_call.sh` joins both into BENCHMARKS.md's table.
//! The replacements return one more than the original, in the same one
//! instruction: a copy of the original would be merged with it (one address
//! for both makes the slot look unpatched), and a patched row's sum shows that
//! the replacement ran.

#[path = "slot_call/loops.rs"]
mod loops;

use criterion::Criterion;
use hotfix_core::__private::{FnDesc, PatchEntry, entries, host_fn};
use hotfix_core::patchable;
use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime};

const GROUP: &str = "slot_call";

/// The baseline: an ordinary function the compiler must call.
#[inline(never)]
fn plain_add(a: i64, b: i64) -> i64 {
    a.wrapping_add(b)
}

/// The same body, patchable (not inlined either: its wrapper's direct call of
/// the original would otherwise take the original's body in, no call left).
#[patchable]
#[inline(never)]
fn add(a: i64, b: i64) -> i64 {
    a.wrapping_add(b)
}

/// The async baseline.
#[inline(never)]
async fn plain_async_add(a: i64, b: i64) -> i64 {
    a.wrapping_add(b)
}

/// The same body, patchable.
#[patchable]
async fn async_add(a: i64, b: i64) -> i64 {
    a.wrapping_add(b)
}

/// Its replacement as a patch library writes it.
#[hotfix_core::patch(crate::async_add)]
async fn patched_async_add(a: i64, b: i64) -> i64 {
    // One more than the original (module docs: not merged with it).
    a.wrapping_add(b).wrapping_add(1)
}

/// Polls a future that never waits to completion.
#[inline(always)]
fn block_on<F: std::future::Future>(f: F) -> F::Output {
    let mut f = std::pin::pin!(f);
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    loop {
        if let std::task::Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return v;
        }
    }
}

/// A bare replacement: what the slot dispatches to at the least.
fn bare_replacement(a: i64, b: i64) -> i64 {
    // One more than the original (module docs: not merged with it).
    a.wrapping_add(b).wrapping_add(1)
}

/// A replacement as a patch library writes it; the macro wraps it in the
/// exported `__hotfix_replacement_patched_add` (body inside the panic guard).
#[hotfix_core::patch(crate::add)]
fn patched_add(a: i64, b: i64) -> i64 {
    // One more than the original (module docs: not merged with it).
    a.wrapping_add(b).wrapping_add(1)
}

/// The descriptor of the `#[patchable]` function `name`, as the runtime finds it.
fn desc_of(name: &str) -> &'static FnDesc {
    let path = format!("{}::{name}", module_path!());
    host_fn(&path).unwrap_or_else(|| panic!("no #[patchable] {path} in this binary"))
}

/// The descriptor of `add`.
fn desc_of_add() -> &'static FnDesc {
    desc_of("add")
}

/// The `#[patch]` entry for `name`, as a patch's registry exports it.
fn patch_entry_of(name: &str) -> &'static PatchEntry {
    let path = format!("{}::{name}", module_path!());
    entries()
        .iter()
        .find(|e| e.meta.path == path)
        .unwrap_or_else(|| panic!("no #[patch] of {path} in this binary"))
}

/// Makes `f` live for `add`, as `Runtime::apply` does with the slot strategy
/// (`desc.unpatched`, the original, is what an unpatched slot holds).
fn set_live(f: *const ()) {
    desc_of_add().slot.store(f as *mut (), Ordering::Release);
}

/// The same for `async_add`.
fn set_live_async(f: *const ()) {
    desc_of("async_add")
        .slot
        .store(f as *mut (), Ordering::Release);
}

fn bench(c: &mut Criterion) {
    let desc = desc_of_add();
    let unpatched = desc.unpatched;
    let entry = patch_entry_of("add");
    assert_eq!(add(2, 3), 5);

    let plain_ptr: fn(i64, i64) -> i64 = plain_add;
    let patchable_ptr: fn(i64, i64) -> i64 = add;

    let mut g = c.benchmark_group(GROUP);
    g.bench_function("plain", |b| {
        b.iter(|| plain_add(black_box(20), black_box(22)))
    });
    g.bench_function("plain_cross_crate", |b| {
        b.iter(|| hotfix_core::__private::bench_plain_add(black_box(20), black_box(22)))
    });
    g.bench_function("plain_via_fn_ptr", |b| {
        b.iter(|| black_box(plain_ptr)(black_box(20), black_box(22)))
    });
    g.bench_function("patchable_unpatched", |b| {
        b.iter(|| add(black_box(20), black_box(22)))
    });
    g.bench_function("patchable_unpatched_via_fn_ptr", |b| {
        b.iter(|| black_box(patchable_ptr)(black_box(20), black_box(22)))
    });
    set_live(desc.entry);
    assert_eq!(add(2, 3), 5);
    g.bench_function("patchable_slot_on_entry", |b| {
        b.iter(|| add(black_box(20), black_box(22)))
    });

    set_live(bare_replacement as *const ());
    assert_eq!(add(2, 3), 6);
    g.bench_function("patchable_patched_bare", |b| {
        b.iter(|| add(black_box(20), black_box(22)))
    });

    set_live(entry.replacement);
    assert_eq!(add(2, 3), 6);
    g.bench_function("patchable_patched", |b| {
        b.iter(|| add(black_box(20), black_box(22)))
    });
    g.bench_function("patchable_patched_via_fn_ptr", |b| {
        b.iter(|| black_box(patchable_ptr)(black_box(20), black_box(22)))
    });
    g.finish();

    set_live(unpatched);
    // The patched path really ran the replacement: a different result shows it.
    set_live(subtracting as *const ());
    assert_eq!(add(5, 3), 2, "the slot store took effect");
    assert_eq!(patchable_ptr(5, 3), 2, "a pointer taken before sees it too");
    set_live(unpatched);
    assert_eq!(add(5, 3), 8);
}

/// A C-ABI function for the trampoline rows.
#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn hotfix_bench_c_add(a: i64, b: i64) -> i64 {
    // Long enough (in bytes) for the 13-byte window.
    (a.wrapping_mul(3).wrapping_add(b).rotate_left(7)) ^ 0x1234_5678
}

/// Its replacement.
#[inline(never)]
extern "C" fn c_add_fixed(a: i64, b: i64) -> i64 {
    // Not the same code as the original: identical code would be folded into
    // one function, and the trampoline refused (it would jump into itself).
    (a.wrapping_mul(3).wrapping_add(b).rotate_left(7)) ^ 0x0765_4321
}

static PLAIN_STATIC: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(7);

#[hotfix_core::shared]
static SHARED_STATIC: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(7);

fn bench_more(c: &mut Criterion) {
    let desc = desc_of_add();
    let mut g = c.benchmark_group(GROUP);
    let redirect = |target: *const ()| {
        // SAFETY: the entry of `add`; the target has its signature.
        unsafe { hotfix_core::arch::redirect_entry(desc.entry as *const u8, target as usize) }
            .expect("redirect the entry");
    };
    set_live(desc.entry);
    redirect(subtracting as *const ());
    assert_eq!(
        add(5, 3),
        2,
        "the slot on the entry, the entry's jump taken"
    );
    redirect(bare_replacement as *const ());
    assert_eq!(add(5, 3), 9);
    g.bench_function("patchable_entry_patched", |b| {
        b.iter(|| add(black_box(20), black_box(22)))
    });
    // SAFETY: as above.
    unsafe { hotfix_core::arch::restore_entry(desc.entry as *const u8) }.expect("restore");
    set_live(desc.unpatched);

    g.bench_function("async_plain", |b| {
        b.iter(|| block_on(plain_async_add(black_box(20), black_box(22))))
    });
    let async_desc = desc_of("async_add");
    set_live_async(async_desc.unpatched);
    assert_eq!(block_on(async_add(2, 3)), 5);
    g.bench_function("async_unpatched", |b| {
        b.iter(|| block_on(async_add(black_box(20), black_box(22))))
    });
    set_live_async(patch_entry_of("async_add").replacement);
    assert_eq!(block_on(async_add(2, 3)), 6);
    g.bench_function("async_patched", |b| {
        b.iter(|| block_on(async_add(black_box(20), black_box(22))))
    });
    set_live_async(async_desc.unpatched);

    g.bench_function("c_plain", |b| {
        b.iter(|| hotfix_bench_c_add(black_box(20), black_box(22)))
    });
    let sym =
        hotfix_core::foreign::find_function("hotfix_bench_c_add").expect("find the C function");
    let plan = hotfix_core::foreign::plan_foreign(&sym).expect("plan the trampoline");
    let mut stack = hotfix_core::foreign::ForeignPatchStack::new(plan);
    // SAFETY: same signature and ABI.
    let id =
        unsafe { stack.push(c_add_fixed as *const () as usize) }.expect("write the trampoline");
    g.bench_function("c_trampolined", |b| {
        b.iter(|| hotfix_bench_c_add(black_box(20), black_box(22)))
    });
    // SAFETY: falls back to the original bytes.
    unsafe { stack.revert(id) }.expect("revert the trampoline");

    g.bench_function("static_plain", |b| {
        b.iter(|| black_box(&PLAIN_STATIC).load(Ordering::Relaxed))
    });
    g.bench_function("static_shared", |b| {
        b.iter(|| black_box(&SHARED_STATIC).load(Ordering::Relaxed))
    });
    g.finish();
}

/// Only for the check that a slot store takes effect.
fn subtracting(a: i64, b: i64) -> i64 {
    a.wrapping_sub(b)
}

/// (row, baseline) pairs of the summary.
const ROWS: &[(&str, &str)] = &[
    ("plain", "plain"),
    ("plain_cross_crate", "plain"),
    ("patchable_unpatched", "plain"),
    ("patchable_unpatched", "plain_cross_crate"),
    ("patchable_patched_bare", "plain"),
    ("patchable_patched_bare", "plain_cross_crate"),
    ("patchable_patched", "plain"),
    ("patchable_patched", "plain_cross_crate"),
    ("plain_via_fn_ptr", "plain"),
    ("patchable_unpatched_via_fn_ptr", "plain_via_fn_ptr"),
    ("patchable_slot_on_entry", "plain"),
    ("patchable_patched_via_fn_ptr", "plain_via_fn_ptr"),
    ("patchable_entry_patched", "plain"),
    ("async_plain", "async_plain"),
    ("async_unpatched", "async_plain"),
    ("async_patched", "async_plain"),
    ("c_plain", "plain"),
    ("c_trampolined", "c_plain"),
    ("static_plain", "static_plain"),
    ("static_shared", "static_plain"),
];

/// Criterion's output directory (`target/criterion`).
fn criterion_dir() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .expect("the target dir")
        .join("criterion")
}

/// The point estimate named `key` in an `estimates.json` (no JSON crate: the
/// file is criterion's fixed format `"key":{..."point_estimate":X,...}`).
fn estimate(json: &str, key: &str) -> Option<f64> {
    let at = json.find(&format!("\"{key}\":{{"))?;
    let rest = &json[at..];
    let p = rest.find("\"point_estimate\":")? + "\"point_estimate\":".len();
    let num: String = rest[p..]
        .chars()
        .take_while(|c| c.is_ascii_digit() || matches!(c, '.' | 'e' | 'E' | '-' | '+'))
        .collect();
    num.parse().ok()
}

/// ns/call of one row of this run: criterion's headline estimate (the slope
/// when it sampled linearly, else the mean) and the median.
fn row(dir: &Path, name: &str, since: SystemTime) -> Option<(f64, f64)> {
    let file = dir
        .join(GROUP)
        .join(name)
        .join("new")
        .join("estimates.json");
    let fresh = std::fs::metadata(&file)
        .and_then(|m| m.modified())
        .is_ok_and(|t| t >= since);
    if !fresh {
        return None;
    }
    let json = std::fs::read_to_string(&file).ok()?;
    let headline = estimate(&json, "slope").or_else(|| estimate(&json, "mean"))?;
    Some((headline, estimate(&json, "median")?))
}

fn summary(since: SystemTime) {
    let dir = criterion_dir();
    let rows: Vec<_> = ROWS
        .iter()
        .filter_map(|&(name, base)| Some((name, base, row(&dir, name, since)?)))
        .collect();
    if rows.is_empty() {
        return;
    }
    let of = |name: &str| rows.iter().find(|r| r.0 == name).map(|r| r.2);
    println!("\n| row | ns/call | median ns/call | ratio to baseline (baseline) |");
    println!("| --- | ---: | ---: | --- |");
    for &(name, base, (ns, median)) in &rows {
        let ratio = of(base).map_or_else(
            || "-".to_owned(),
            |(b, _)| format!("{:.2}x ({base})", ns / b),
        );
        println!("| `{name}` | {ns:.3} | {median:.3} | {ratio} |");
    }
}

fn main() {
    if let Some(rounds) = std::env::var_os("HOTFIX_PAIRED") {
        let rounds = rounds
            .to_str()
            .and_then(|s| s.parse().ok())
            .expect("HOTFIX_PAIRED=<rounds>");
        loops::paired(rounds, 2_000_000);
        return;
    }
    if let Some(n) = std::env::var_os("HOTFIX_CALLGRIND") {
        let n = n
            .to_str()
            .and_then(|s| s.parse().ok())
            .expect("HOTFIX_CALLGRIND=<calls>");
        loops::callgrind(n);
        return;
    }
    let since = SystemTime::now();
    let mut c = Criterion::default()
        .measurement_time(Duration::from_secs(3))
        .warm_up_time(Duration::from_secs(1))
        .sample_size(50)
        .configure_from_args();
    bench(&mut c);
    bench_more(&mut c);
    c.final_summary();
    summary(since);
}
