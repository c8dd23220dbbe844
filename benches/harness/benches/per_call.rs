//! Per-call cost of hotfix and of the systems users would pick instead, as a
//! ratio to a plain `#[inline(never)]` call of the same function, before and
//! after a patch, from 1 thread and from 2 threads at once.
//!
//! `cargo bench --manifest-path benches/Cargo.toml --target-dir target/benches --bench per_call`
//!
//! Phase 1 measures every system unpatched; then every system gets its patch
//! (hotfix: real patch cdylibs through `Runtime::apply_with`, plus in-process
//! slot stores and entry redirects; subsecond: `apply_patch` with a jump table;
//! hot-lib-reloader: the watched dylib replaced by its v2 build and reloaded;
//! retour: the detour enabled); phase 2 measures every system patched. Each
//! phase measures the plain call again, and its rows are divided by that
//! phase's plain figure.

use criterion::Criterion;
use harness::{Est, estimate, fmt_ns};
use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::sync::Barrier;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

// ---------------------------------------------------------------- subsecond

use bench_host::{
    repl_add, repl_string, retour_add, retour_add_v2, retour_string, retour_string_v2, sub_add,
    sub_string,
};

fn sub_hotfn_add(a: u64, b: u64) -> u64 {
    subsecond::HotFn::current(sub_add).call((a, b))
}

fn sub_hotfn_string(s: String) -> String {
    subsecond::HotFn::current(sub_string).call((s,))
}

/// The closure `subsecond::call` runs (Dioxus's entry point).
#[inline(always)]
fn sub_closure(a: u64, b: u64) -> impl FnMut() -> u64 {
    move || sub_add(a, b)
}

fn sub_call_add(a: u64, b: u64) -> u64 {
    subsecond::call(sub_closure(a, b))
}

/// The address subsecond looks up in its jump table for a `HotFn` over `F`.
fn call_it_addr<F: subsecond::HotFunction<A, M>, A, M>(_f: &F) -> u64 {
    <F as subsecond::HotFunction<A, M>>::call_it as *const () as u64
}

/// Installs the new versions from `lib` in subsecond's jump table through its
/// own `apply_patch`. The Dioxus CLI would compute the table by diffing
/// object files; here the old addresses are the `call_it` instances subsecond
/// looks up, the new ones the exports of the patch library.
fn subsecond_apply(lib: &Path) {
    // SAFETY: loading a library of this workspace whose constructors are Rust's.
    let handle = unsafe { libloading::Library::new(lib) }.expect("dlopen the subsecond patch");
    let addr = |sym: &[u8]| -> u64 {
        // SAFETY: the symbol's address only.
        let s = unsafe { handle.get::<*const ()>(sym) }.expect("patch export");
        *s as u64
    };
    let base = addr(b"main");
    let mut table = subsecond::JumpTable {
        lib: lib.to_owned(),
        map: Default::default(),
        aslr_reference: subsecond::aslr_reference() as u64,
        new_base_address: base,
        ifunc_count: 0,
    };
    table
        .map
        .insert(call_it_addr(&sub_add), addr(b"sub_add_v2"));
    table
        .map
        .insert(call_it_addr(&sub_string), addr(b"sub_string_v2"));
    table
        .map
        .insert(call_it_addr(&sub_closure(0, 0)), addr(b"sub_closure_v2"));
    // SAFETY: every new function has the ABI of the `call_it` it replaces.
    unsafe { subsecond::apply_patch(table) }.expect("subsecond::apply_patch");
    std::mem::forget(handle);
}

// --------------------------------------------------------- hot-lib-reloader

fn hlr_dir() -> PathBuf {
    harness::target_dir().join("hlr")
}

#[hot_lib_reloader::hot_module(dylib = "hlr_lib", lib_dir = crate::hlr_dir(), file_watch_debounce = 20)]
mod hot_lib {
    #[hot_functions]
    unsafe extern "Rust" {
        pub fn hlr_add(a: u64, b: u64) -> u64;
        pub fn hlr_string(s: String) -> String;
    }

    #[lib_updated]
    pub fn was_updated() -> bool {}
}

fn desc(path: &str) -> &'static hotfix_core::__private::FnDesc {
    hotfix_core::__private::host_fn(path).unwrap_or_else(|| panic!("{path} is not registered"))
}

// ------------------------------------------------ hotfix at the entry itself

/// `bench_host::entry_add`'s entry, as C code or a pointer taken by foreign
/// code holds it: the address of the NOP-padded entry symbol, not the Rust
/// wrapper (which reads the slot). Unpatched the NOP falls through to a jump
/// to the original; with `patch-entry` applied by `Strategy::Entry` the entry
/// jumps into the pad, whose long jump reaches the replacement.
fn entry_add_fn() -> AddFn {
    // SAFETY: the stub forwards registers and stack unchanged to the original
    // or (redirected) to a replacement of the same signature fingerprint.
    unsafe { std::mem::transmute::<*const (), AddFn>(desc("bench_host::entry_add").entry) }
}

/// `bench_host::entry_string`'s entry (see [`entry_add_fn`]).
fn entry_string_fn() -> StrFn {
    // SAFETY: as in `entry_add_fn`.
    unsafe { std::mem::transmute::<*const (), StrFn>(desc("bench_host::entry_string").entry) }
}

fn entry_add_at_entry(a: u64, b: u64) -> u64 {
    entry_add_fn()(a, b)
}

fn entry_string_at_entry(s: String) -> String {
    entry_string_fn()(s)
}

// -------------------------------------------------------------------- rows

type AddFn = fn(u64, u64) -> u64;
type StrFn = fn(String) -> String;
/// Runs `iters` calls on each of `threads` threads (a monomorphic loop per row,
/// so every call is a direct call, as in a host).
type Runner = fn(usize, u64) -> Duration;

/// One system's way to call the function, for both workloads.
struct Row {
    id: &'static str,
    label: &'static str,
    add: Runner,
    add_check: AddFn,
    string: Option<(Runner, StrFn)>,
}

macro_rules! row {
    ($id:literal, $label:literal, $add:path) => {
        Row {
            id: $id,
            label: $label,
            add: |t, n| threaded(t, n, |n| run_add($add, n)),
            add_check: $add,
            string: None,
        }
    };
    ($id:literal, $label:literal, $add:path, $string:path) => {
        Row {
            string: Some((|t, n| threaded(t, n, |n| run_string($string, n)), $string)),
            ..row!($id, $label, $add)
        }
    };
}

fn rows() -> Vec<Row> {
    vec![
        row!(
            "plain",
            "plain `#[inline(never)]` call (baseline)",
            bench_host::plain_add,
            bench_host::plain_string
        ),
        row!(
            "hotfix_slot",
            "hotfix slot (`Strategy::Slot`, patch cdylib)",
            bench_host::slot_add,
            bench_host::slot_string
        ),
        row!(
            "hotfix_entry",
            "hotfix entry (`Strategy::Entry`, patch cdylib), called by name (the wrapper reads the slot)",
            bench_host::entry_add,
            bench_host::entry_string
        ),
        Row {
            id: "hotfix_entry_at_entry",
            label: "hotfix entry (`Strategy::Entry`, patch cdylib), called at the entry symbol's address (as C code calls it: through the redirected entry)",
            // The entry's address is read once per run, outside the loop.
            add: |t, n| threaded(t, n, |n| run_add(entry_add_fn(), n)),
            add_check: entry_add_at_entry,
            string: Some((
                |t, n| threaded(t, n, |n| run_string(entry_string_fn(), n)),
                entry_string_at_entry,
            )),
        },
        row!(
            "hotfix_store",
            "hotfix slot, in-process `slot.store` (no patch guard)",
            bench_host::store_add,
            bench_host::store_string
        ),
        row!(
            "hotfix_guarded",
            "hotfix slot, in-process `slot.store` of a `guard`-wrapped replacement (what `#[patch]` exports, no cdylib)",
            bench_host::guarded_add,
            bench_host::guarded_string
        ),
        row!(
            "hotfix_redirect",
            "hotfix entry, in-process `redirect_entry` (no patch guard)",
            bench_host::redirect_add,
            bench_host::redirect_string
        ),
        row!(
            "subsecond_hotfn",
            "subsecond `HotFn::current(f).call(..)`",
            sub_hotfn_add,
            sub_hotfn_string
        ),
        row!(
            "subsecond_call",
            "subsecond `subsecond::call(closure)`",
            sub_call_add
        ),
        row!(
            "hot_lib_reloader",
            "hot-lib-reloader `#[hot_module]` wrapper",
            hot_lib::hlr_add,
            hot_lib::hlr_string
        ),
        row!(
            "retour",
            "retour `GenericDetour` (disabled / enabled)",
            retour_add,
            retour_string
        ),
    ]
}

/// `iters` calls of `f` on this thread.
/// (Unrolled by 4, so the loop's own branch and alignment weigh less.)
#[inline(never)]
fn run_add(f: impl Fn(u64, u64) -> u64, iters: u64) -> Duration {
    let (a, b) = (black_box(7u64), black_box(5u64));
    let start = Instant::now();
    for _ in 0..iters / 4 {
        black_box(f(black_box(a), black_box(b)));
        black_box(f(black_box(a), black_box(b)));
        black_box(f(black_box(a), black_box(b)));
        black_box(f(black_box(a), black_box(b)));
    }
    for _ in 0..iters % 4 {
        black_box(f(black_box(a), black_box(b)));
    }
    start.elapsed()
}

#[inline(never)]
fn run_string(f: impl Fn(String) -> String, iters: u64) -> Duration {
    let mut s = String::from("Hello, World");
    let start = Instant::now();
    for _ in 0..iters / 4 {
        s = f(black_box(s));
        s = f(black_box(s));
        s = f(black_box(s));
        s = f(black_box(s));
        black_box(&s);
    }
    for _ in 0..iters % 4 {
        s = f(black_box(s));
        black_box(&s);
    }
    start.elapsed()
}

/// `iters` calls on each of `threads` threads started together; the slowest
/// thread's time (so the figure is the per-call time of one thread).
fn threaded(threads: usize, iters: u64, work: impl Fn(u64) -> Duration + Sync) -> Duration {
    if threads == 1 {
        return work(iters);
    }
    let barrier = Barrier::new(threads);
    std::thread::scope(|s| {
        let hs: Vec<_> = (0..threads)
            .map(|_| {
                s.spawn(|| {
                    barrier.wait();
                    work(iters)
                })
            })
            .collect();
        hs.into_iter()
            .map(|h| h.join().expect("bench thread"))
            .max()
            .expect("threads")
    })
}

/// Every row computes what its phase says (unpatched: the shipped body;
/// patched: the fix), so no row measures the wrong code.
fn check(phase: u8) {
    let (add, up) = if phase == 1 {
        (2, "hello, world")
    } else {
        (12, "HELLO, WORLD")
    };
    let s = || String::from("Hello, World");
    for r in rows() {
        let want_add = if r.id == "plain" { 12 } else { add };
        assert_eq!(
            (r.add_check)(7, 5),
            want_add,
            "{} add in phase {phase}",
            r.id
        );
        if let Some((_, f)) = r.string {
            let want = if r.id == "plain" { "HELLO, WORLD" } else { up };
            assert_eq!(f(s()), want, "{} string in phase {phase}", r.id);
        }
    }
}

const THREADS: [usize; 2] = [1, 2];
const WORKS: [&str; 2] = ["add", "string"];

/// Interleaved rounds of the paired measurement.
const ROUNDS: usize = 21;
/// Length of one trial of one row.
const TRIAL: Duration = Duration::from_millis(8);

/// The paired figure of one row: per round, its time divided by the plain
/// call's time of the same round (rows run round-robin, in a rotating order,
/// so a burst of load from elsewhere hits every row alike).
#[derive(Clone, Copy, Default)]
struct Paired {
    /// Median, 25th and 75th percentile of the per-round ratios.
    med: f64,
    p25: f64,
    p75: f64,
    /// Median ns per call.
    ns: f64,
}

type PairedKey = (&'static str, usize, u8, &'static str);

fn quantile(v: &mut [f64], q: f64) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).expect("no NaN"));
    v[((v.len() - 1) as f64 * q).round() as usize]
}

fn paired(
    work: &'static str,
    threads: usize,
    phase: u8,
    out: &mut std::collections::HashMap<PairedKey, Paired>,
) {
    let rows: Vec<(&'static str, Runner)> = rows()
        .into_iter()
        .filter_map(|r| match work {
            "add" => Some((r.id, r.add)),
            _ => r.string.map(|(run, _)| (r.id, run)),
        })
        .collect();
    assert_eq!(rows[0].0, "plain");
    let iters: Vec<u64> = rows
        .iter()
        .map(|(_, run)| {
            let n = 20_000;
            run(threads, n);
            let per = run(threads, n).as_nanos() as f64 / n as f64;
            ((TRIAL.as_nanos() as f64 / per) as u64).max(1_000)
        })
        .collect();
    let mut ns = vec![Vec::with_capacity(ROUNDS); rows.len()];
    for round in 0..ROUNDS {
        for k in 0..rows.len() {
            let i = (k + round) % rows.len();
            let t = rows[i].1(threads, iters[i]);
            ns[i].push(t.as_nanos() as f64 / iters[i] as f64);
        }
    }
    for (i, (id, _)) in rows.iter().enumerate() {
        let mut ratios: Vec<f64> = (0..ROUNDS).map(|r| ns[i][r] / ns[0][r]).collect();
        let mut t = ns[i].clone();
        out.insert(
            (work, threads, phase, id),
            Paired {
                med: quantile(&mut ratios, 0.5),
                p25: quantile(&mut ratios, 0.25),
                p75: quantile(&mut ratios, 0.75),
                ns: quantile(&mut t, 0.5),
            },
        );
    }
    eprintln!("paired {work} {threads}t phase {phase}: done");
}

fn group_name(work: &str, threads: usize, phase: u8) -> String {
    format!("per_call_{work}_{threads}t_p{phase}")
}

fn measure(c: &mut Criterion, phase: u8, pairs: &mut std::collections::HashMap<PairedKey, Paired>) {
    for threads in THREADS {
        for work in WORKS {
            paired(work, threads, phase, pairs);
        }
    }
    for threads in THREADS {
        for work in WORKS {
            let name = group_name(work, threads, phase);
            harness::clear_group(&name);
            let mut g = c.benchmark_group(&name);
            for r in rows() {
                let run = match work {
                    "add" => r.add,
                    _ => match r.string {
                        Some((run, _)) => run,
                        None => continue,
                    },
                };
                g.bench_function(r.id, |b| b.iter_custom(|n| run(threads, n)));
            }
            g.finish();
        }
    }
}

struct Peers {
    retour_add: retour::GenericDetour<AddFn>,
    retour_string: retour::GenericDetour<StrFn>,
    subsecond_lib: PathBuf,
    hlr_v2: PathBuf,
    patch_slot: PathBuf,
    patch_entry: PathBuf,
}

fn prepare() -> Peers {
    harness::cargo_build(
        &["patch-slot", "patch-entry", "subsecond-patch", "hlr-lib"],
        &[],
    );
    let stage = harness::target_dir().join("stage");
    let patch_slot = harness::stage(
        &harness::built("libpatch_slot.so"),
        &stage,
        "libpatch_slot.so",
    );
    let patch_entry = harness::stage(
        &harness::built("libpatch_entry.so"),
        &stage,
        "libpatch_entry.so",
    );
    let subsecond_lib = harness::stage(
        &harness::built("libsubsecond_patch.so"),
        &stage,
        "libsubsecond_patch.so",
    );
    // hot-lib-reloader watches hlr/libhlr_lib.so; v2 waits beside it.
    let _ = std::fs::remove_dir_all(hlr_dir());
    harness::stage(
        &harness::built("libhlr_lib.so"),
        &hlr_dir(),
        "libhlr_lib.so",
    );
    harness::cargo_build(&["hlr-lib"], &["v2"]);
    let hlr_v2 = harness::stage(&harness::built("libhlr_lib.so"), &stage, "libhlr_lib-v2.so");

    // SAFETY: both functions have the same signature; the detour stays
    // disabled until phase 2.
    let retour_add =
        unsafe { retour::GenericDetour::<AddFn>::new(retour_add, retour_add_v2 as AddFn) }
            .expect("retour: detour retour_add");
    // SAFETY: as above.
    let retour_string =
        unsafe { retour::GenericDetour::<StrFn>::new(retour_string, retour_string_v2 as StrFn) }
            .expect("retour: detour retour_string");
    Peers {
        retour_add,
        retour_string,
        subsecond_lib,
        hlr_v2,
        patch_slot,
        patch_entry,
    }
}

fn patch_everything(p: &Peers) {
    use hotfix_core::{ApplyOptions, Runtime, Strategy};
    let rt = Runtime::global();
    rt.apply_with(
        &p.patch_slot,
        ApplyOptions {
            strategy: Strategy::Slot,
        },
    )
    .expect("hotfix: apply patch-slot (Strategy::Slot)");
    rt.apply_with(
        &p.patch_entry,
        ApplyOptions {
            strategy: Strategy::Entry,
        },
    )
    .expect("hotfix: apply patch-entry (Strategy::Entry)");
    // The `hotfix_entry_at_entry` rows call these entries: they must jump to
    // the patch (check(2) then sees the replacements' results through them).
    for path in ["bench_host::entry_add", "bench_host::entry_string"] {
        let state = hotfix_core::arch::check_entry(desc(path).entry as *const u8)
            .unwrap_or_else(|e| panic!("{path}: {e}"));
        assert!(
            matches!(state, hotfix_core::arch::EntryState::Redirected(_)),
            "{path}: the entry is not redirected: {state:?}"
        );
    }
    // What `apply` does to a slot, in-process.
    desc("bench_host::store_add")
        .slot
        .store(repl_add as AddFn as *mut (), Ordering::Release);
    desc("bench_host::store_string")
        .slot
        .store(repl_string as StrFn as *mut (), Ordering::Release);
    // The same, with the replacements wrapped as `#[patch]` wraps them.
    desc("bench_host::guarded_add").slot.store(
        bench_host::repl_guarded_add as AddFn as *mut (),
        Ordering::Release,
    );
    desc("bench_host::guarded_string").slot.store(
        bench_host::repl_guarded_string as StrFn as *mut (),
        Ordering::Release,
    );
    // What `Strategy::Entry` does to an entry, in-process.
    for (path, repl) in [
        ("bench_host::redirect_add", repl_add as AddFn as usize),
        ("bench_host::redirect_string", repl_string as StrFn as usize),
    ] {
        let d = desc(path);
        d.slot.store(repl as *mut (), Ordering::Release);
        // SAFETY: d.entry is the entry stub of a function of this signature.
        unsafe { hotfix_core::arch::redirect_entry(d.entry as *const u8, repl) }
            .unwrap_or_else(|e| panic!("redirect_entry {path}: {e}"));
    }

    subsecond_apply(&p.subsecond_lib);

    // hot-lib-reloader: replace the watched file; its watcher thread reloads.
    let _ = hot_lib::was_updated();
    let watched = hlr_dir().join("libhlr_lib.so");
    let tmp = hlr_dir().join(".incoming");
    std::fs::copy(&p.hlr_v2, &tmp).expect("copy hlr v2");
    std::fs::rename(&tmp, &watched).expect("install hlr v2");
    let t0 = Instant::now();
    while !hot_lib::was_updated() {
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "hot-lib-reloader did not reload v2"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    eprintln!(
        "hot-lib-reloader reloaded v2 {:?} after the file was replaced",
        t0.elapsed()
    );

    // SAFETY: the detours were created for these functions with equal signatures.
    unsafe {
        p.retour_add.enable().expect("retour enable");
        p.retour_string.enable().expect("retour enable");
    }
}

fn ratio_table(
    work: &'static str,
    threads: usize,
    pairs: &std::collections::HashMap<PairedKey, Paired>,
) -> String {
    let mut out = Vec::new();
    let ratio = |p: Option<&Paired>| match p {
        Some(p) => format!("**{:.2}x** ({:.2}–{:.2})", p.med, p.p25, p.p75),
        None => "n/a".into(),
    };
    let time = |e: Option<Est>| match e {
        Some(e) => format!("{} ({}–{})", fmt_ns(e.ns), fmt_ns(e.lo), fmt_ns(e.hi)),
        None => "n/a".into(),
    };
    for r in rows() {
        if work == "string" && r.string.is_none() {
            continue;
        }
        let un = estimate(&group_name(work, threads, 1), r.id);
        let pa = estimate(&group_name(work, threads, 2), r.id);
        out.push(vec![
            r.label.to_owned(),
            ratio(pairs.get(&(work, threads, 1, r.id))),
            ratio(pairs.get(&(work, threads, 2, r.id))),
            time(un),
            time(pa),
        ]);
    }
    harness::table(
        &[
            "system",
            "unpatched / plain (median of paired rounds, IQR)",
            "patched / plain",
            "unpatched ns per call (criterion, 95% CI)",
            "patched ns per call (criterion)",
        ],
        &out,
    )
}

/// The goals, checked against the paired medians of 1 thread.
fn goals(pairs: &std::collections::HashMap<PairedKey, Paired>) -> String {
    let mut s = String::from("#### Goals\n\n");
    let g = |work, phase, id| pairs.get(&(work, 1usize, phase, id)).copied();
    let verdict = |ok: bool| if ok { "**met**" } else { "**missed**" };
    for work in WORKS {
        for (phase, state) in [(1u8, "unpatched"), (2, "patched")] {
            for id in ["hotfix_slot", "hotfix_store"] {
                if let Some(p) = g(work, phase, id) {
                    s.push_str(&format!(
                        "- slot call within 1.1x of a plain call, `{work}`, {state}, `{id}`: {:.2}x, {}\n",
                        p.med,
                        verdict(p.med <= 1.1)
                    ));
                }
            }
        }
    }
    for work in WORKS {
        let Some(slot) = g(work, 2, "hotfix_slot") else {
            continue;
        };
        let plain = g(work, 2, "plain").map(|p| p.ns).unwrap_or(0.0);
        for peer in ["hot_lib_reloader", "subsecond_hotfn", "subsecond_call"] {
            if let Some(p) = g(work, 2, peer) {
                let whole = p.med / slot.med;
                let over_slot = (slot.ns - plain).max(0.01);
                let over_peer = p.ns - plain;
                s.push_str(&format!(
                    "- at least 5x cheaper per call than patched `{peer}`, `{work}`: the whole call {whole:.1}x cheaper ({} against {}), {}; the cost added to a plain call {:.1}x smaller ({} against {})\n",
                    fmt_ns(slot.ns),
                    fmt_ns(p.ns),
                    verdict(whole >= 5.0),
                    over_peer / over_slot,
                    fmt_ns(slot.ns - plain),
                    fmt_ns(over_peer),
                ));
            }
        }
    }
    s
}

fn main() {
    let machine = harness::machine();
    let peers = prepare();
    // The first call loads the hot-lib-reloader library and starts its watcher.
    check(1);
    let mut c = harness::criterion();
    let mut pairs = std::collections::HashMap::new();
    measure(&mut c, 1, &mut pairs);
    patch_everything(&peers);
    check(2);
    measure(&mut c, 2, &mut pairs);
    c.final_summary();

    let mut md = String::new();
    md.push_str("Reproduce: `cargo bench --manifest-path benches/Cargo.toml --target-dir target/benches --bench per_call`\n\n");
    md.push_str(&machine);
    md.push_str("\n\n");
    md.push_str(&goals(&pairs));
    md.push('\n');
    for threads in THREADS {
        for work in WORKS {
            let what = if work == "add" {
                "`fn(u64, u64) -> u64`"
            } else {
                "`fn(String) -> String` (the String moves in and back out; no allocation per call)"
            };
            let who = if threads == 1 {
                "1 thread".to_owned()
            } else {
                format!("{threads} threads at once (per-call time of one thread)")
            };
            md.push_str(&format!("#### {what}, {who}\n\n"));
            md.push_str(&ratio_table(work, threads, &pairs));
            md.push('\n');
        }
    }
    harness::publish("per_call", &md);
}
