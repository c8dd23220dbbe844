//! Apply latency and how it scales: patches replacing 1, 10, 100, 1,000 and
//! 10,000 functions of `many-host` (all generated), each measured as
//!
//! - `Runtime::load`: file checks, ELF scan, private copy, dlopen, registry
//!   and signature checks, binding (a fresh copy of the file each time: the
//!   runtime would otherwise return the library it loaded before);
//! - raw `dlopen` of a fresh copy of the same file with libloading alone
//!   (`RTLD_NOW | RTLD_LOCAL`, the runtime's flags);
//! - `Runtime::apply_loaded` with `Strategy::Slot` (the swap), and the revert;
//! - `Runtime::apply_loaded` with `Strategy::Entry` (every entry rewritten).
//!
//! `cargo bench --manifest-path benches/Cargo.toml --target-dir target/benches --bench apply_latency`
//!
//! Writes `benches/results/apply_latency.md` and `benches/apply_latency.svg`.

extern crate many_host;

use criterion::{BenchmarkId, SamplingMode};
use harness::{Est, estimate, fmt_ns};
use hotfix_core::{ApplyOptions, Runtime, Strategy};
use std::io::Write as _;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

const SIZES: [usize; 5] = benchgen::PATCH_SIZES;

fn patch_file(n: usize) -> PathBuf {
    harness::built(&format!("libpatch_n{n}.so"))
}

/// A copy of `src` with 8 unique bytes appended past the end of the ELF (not
/// mapped, not read by the loader): new content, so a fresh load each time.
fn fresh_copy(src: &Path, dir: &Path) -> PathBuf {
    static N: AtomicU64 = AtomicU64::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    let stem = src.file_stem().unwrap().to_string_lossy();
    let dst = dir.join(format!("{stem}-{}-{n}.so", std::process::id()));
    std::fs::copy(src, &dst).expect("copy patch");
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(&dst)
        .expect("open copy");
    f.write_all(&(n ^ 0x5eed_0000_0000_0000).to_le_bytes())
        .expect("salt copy");
    std::fs::set_permissions(&dst, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    dst
}

fn check_patched(n: usize, patched: bool) {
    // f0 and f{n-1}: shipped add, the patch subtracts.
    for i in [0, n - 1] {
        let got = call(i, 1000, 7);
        let k = (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        let want = if patched {
            1000u64.wrapping_mul(k).wrapping_sub(7 ^ i as u64)
        } else {
            1000u64.wrapping_mul(k).wrapping_add(7 ^ i as u64)
        };
        assert_eq!(
            got,
            want,
            "f{i} after {} of patch-n{n}",
            if patched { "apply" } else { "revert" }
        );
    }
}

/// Calls `many_host::m*::f{i}` by path through the runtime's registry (the
/// generated functions have no table of their own).
fn call(i: usize, a: u64, b: u64) -> u64 {
    let path = format!("many_host::{}::f{i}", benchgen::module_of(i));
    let d =
        hotfix_core::__private::host_fn(&path).unwrap_or_else(|| panic!("{path} not registered"));
    // As the function's own wrapper does once patched: call what its slot
    // holds (the original while nothing replaces it).
    let target = d.slot.load(std::sync::atomic::Ordering::Acquire);
    // SAFETY: the slot of a `fn(u64, u64) -> u64` holds an implementation of
    // that signature (the original or a replacement with its fingerprint).
    let f: fn(u64, u64) -> u64 = unsafe { std::mem::transmute(target) };
    f(a, b)
}

fn group(what: &str) -> String {
    format!("apply_{what}")
}

fn main() {
    let saved = harness::criterion_dir().join("apply_machine.txt");
    if std::env::var_os("BENCH_REPORT_ONLY").is_some() {
        // Rewrites the table and the plot from the last run's estimates.
        report(&std::fs::read_to_string(&saved).unwrap_or_default());
        return;
    }
    let machine = harness::machine();
    let _ = std::fs::create_dir_all(harness::criterion_dir());
    let _ = std::fs::write(&saved, &machine);
    let packages: Vec<String> = SIZES.iter().map(|n| format!("patch-n{n}")).collect();
    let pk: Vec<&str> = packages.iter().map(String::as_str).collect();
    harness::cargo_build(&pk, &[]);
    let scratch = harness::private_dir(&harness::target_dir().join("stage").join("apply"));
    for e in std::fs::read_dir(&scratch).expect("read scratch") {
        let _ = std::fs::remove_file(e.expect("entry").path());
    }
    let rt = Runtime::global();
    let mut c = harness::criterion();

    // Sanity: each patch applies, changes f0 and f{n-1}, and reverts.
    for n in SIZES {
        let p = rt.load(fresh_copy(&patch_file(n), &scratch)).expect("load");
        check_patched(n, false);
        rt.apply_loaded(&p, ApplyOptions::default()).expect("apply");
        check_patched(n, true);
        rt.revert(p.id()).expect("revert");
        check_patched(n, false);
    }

    for what in ["load", "dlopen", "swap", "revert", "entry"] {
        harness::clear_group(&group(what));
    }

    // The swaps first: the Entry strategy reads /proc/self/maps (once per
    // apply or revert), so its cost grows with the mappings of the process,
    // and each measured load below leaves one more library mapped.
    // The swap (and the revert) of a loaded patch.
    let loaded: Vec<(usize, Arc<hotfix_core::LoadedPatch>)> = SIZES
        .iter()
        .map(|&n| {
            (
                n,
                rt.load(fresh_copy(&patch_file(n), &scratch)).expect("load"),
            )
        })
        .collect();
    for (what, strategy) in [
        ("swap", Strategy::Slot),
        ("revert", Strategy::Slot),
        ("entry", Strategy::Entry),
    ] {
        let mut g = c.benchmark_group(group(what));
        if what == "entry" {
            g.sampling_mode(SamplingMode::Flat).sample_size(10);
        }
        for (n, p) in &loaded {
            let opts = ApplyOptions { strategy };
            g.bench_with_input(BenchmarkId::from_parameter(n), n, |b, _| {
                b.iter_custom(|iters| {
                    let mut total = Duration::ZERO;
                    for _ in 0..iters {
                        if what == "revert" {
                            rt.apply_loaded(p, opts).expect("apply");
                            let t = Instant::now();
                            rt.revert(p.id()).expect("revert");
                            total += t.elapsed();
                        } else {
                            let t = Instant::now();
                            rt.apply_loaded(p, opts).expect("apply");
                            total += t.elapsed();
                            rt.revert(p.id()).expect("revert");
                        }
                    }
                    total
                })
            });
        }
        g.finish();
    }
    // Full load (and raw dlopen) of a fresh copy: few, slow iterations.
    for what in ["load", "dlopen"] {
        let mut g = c.benchmark_group(group(what));
        g.sampling_mode(SamplingMode::Flat).sample_size(10);
        for n in SIZES {
            let src = patch_file(n);
            g.bench_with_input(BenchmarkId::from_parameter(n), &n, |b, _| {
                b.iter_custom(|iters| {
                    let mut total = Duration::ZERO;
                    for _ in 0..iters {
                        let copy = fresh_copy(&src, &scratch);
                        let t = Instant::now();
                        if what == "load" {
                            let p = rt.load(&copy).expect("Runtime::load");
                            total += t.elapsed();
                            std::hint::black_box(p);
                        } else {
                            // SAFETY: a patch library of this workspace.
                            let lib = unsafe {
                                libloading::os::unix::Library::open(
                                    Some(&copy),
                                    libloading::os::unix::RTLD_NOW
                                        | libloading::os::unix::RTLD_LOCAL,
                                )
                            }
                            .expect("dlopen");
                            total += t.elapsed();
                            // Never unloaded, like the runtime's libraries.
                            std::mem::forget(lib);
                        }
                        let _ = std::fs::remove_file(&copy);
                    }
                    total
                })
            });
        }
        g.finish();
    }

    c.final_summary();

    report(&machine);
}

fn est(what: &str, n: usize) -> Option<Est> {
    estimate(&group(what), &n.to_string())
}

fn report(machine: &str) {
    let t = |e: Option<Est>| {
        e.map(|e| fmt_ns(e.ns))
            .unwrap_or_else(|| "not measured".into())
    };
    let mut rows = Vec::new();
    for n in SIZES {
        let (load, dl, swap, rev, entry) = (
            est("load", n),
            est("dlopen", n),
            est("swap", n),
            est("revert", n),
            est("entry", n),
        );
        let per = |e: Option<Est>| {
            e.map(|e| fmt_ns(e.ns / n as f64))
                .unwrap_or_else(|| "—".into())
        };
        let ratio = match (load, dl) {
            (Some(l), Some(d)) => format!("**{:.1}x**", l.ns / d.ns),
            _ => "—".into(),
        };
        let overhead = match (load, dl) {
            (Some(l), Some(d)) => fmt_ns(l.ns - d.ns),
            _ => "—".into(),
        };
        let size = std::fs::metadata(patch_file(n))
            .map(|m| format!("{:.0} KiB", m.len() as f64 / 1024.0))
            .unwrap_or_default();
        rows.push(vec![
            n.to_string(),
            format!("**{}**", per(swap)),
            ratio,
            t(swap),
            t(rev),
            t(load),
            t(dl),
            overhead,
            t(entry),
            per(entry),
            size,
        ]);
    }
    let mut md = String::new();
    md.push_str("Reproduce: `cargo bench --manifest-path benches/Cargo.toml --target-dir target/benches --bench apply_latency`\n\n");
    md.push_str(machine);
    md.push_str("\n\n");
    md.push_str(&harness::table(
        &[
            "functions",
            "swap per function",
            "load / raw dlopen",
            "swap (`apply_loaded`, Slot)",
            "revert",
            "`Runtime::load`",
            "raw dlopen (libloading)",
            "load − dlopen",
            "apply_loaded, `Strategy::Entry`",
            "Entry per function",
            "patch file",
        ],
        &rows,
    ));
    let swap1000 = est("swap", 1000);
    md.push_str(&format!(
        "\nGoal: apply of 1,000 functions after dlopen under 1 ms: {}.\n",
        match swap1000 {
            Some(e) if e.ns < 1e6 => format!("**met** ({})", fmt_ns(e.ns)),
            Some(e) => format!("**missed** ({})", fmt_ns(e.ns)),
            None => "not measured".into(),
        }
    ));
    md.push_str(
        "\n`Strategy::Entry` writes the entries of one apply as one batch (one read of `/proc/self/maps`, one protection change each way, four core syncs); it was measured before any of the measured loads (fewer libraries mapped).\n",
    );
    harness::publish("apply_latency", &md);
    plot();
}

fn plot() {
    use plotters::prelude::*;
    let path = harness::benches_dir().join("apply_latency.svg");
    let series: Vec<(&str, &str, RGBColor)> = vec![
        (
            "swap",
            "apply_loaded (Slot): the swap",
            RGBColor(31, 119, 180),
        ),
        ("revert", "revert (Slot)", RGBColor(44, 160, 44)),
        (
            "load",
            "Runtime::load (checks + dlopen + bind)",
            RGBColor(214, 39, 40),
        ),
        (
            "dlopen",
            "raw dlopen of the same file",
            RGBColor(148, 103, 189),
        ),
        ("entry", "apply_loaded (Entry)", RGBColor(255, 127, 14)),
    ];
    let data: Vec<Vec<(f64, f64)>> = series
        .iter()
        .map(|(w, _, _)| {
            SIZES
                .iter()
                .filter_map(|&n| est(w, n).map(|e| (n as f64, e.ns / 1e3)))
                .collect()
        })
        .collect();
    let all: Vec<f64> = data.iter().flatten().map(|p| p.1).collect();
    if all.is_empty() {
        return;
    }
    let ymin = all.iter().cloned().fold(f64::MAX, f64::min) / 2.0;
    let ymax = all.iter().cloned().fold(0.0, f64::max) * 2.0;
    let root = SVGBackend::new(&path, (900, 600)).into_drawing_area();
    root.fill(&WHITE).expect("fill");
    let mut chart = ChartBuilder::on(&root)
        .caption(
            "hotfix: apply latency against functions in the patch",
            ("sans-serif", 22),
        )
        .margin(15)
        .x_label_area_size(45)
        .y_label_area_size(70)
        .build_cartesian_2d((0.7f64..14_000f64).log_scale(), (ymin..ymax).log_scale())
        .expect("chart");
    chart
        .configure_mesh()
        .x_desc("functions replaced by the patch (log)")
        .y_desc("latency, µs (log)")
        .x_label_formatter(&|x| format!("{x:.0}"))
        .y_label_formatter(&|y| {
            if *y >= 1.0 {
                format!("{y:.0}")
            } else {
                format!("{y:.2}")
            }
        })
        .draw()
        .expect("mesh");
    // The 1 ms goal for 1,000 functions.
    chart
        .draw_series(PointSeries::of_element(
            [(1000.0, 1000.0)],
            6,
            RGBColor(0, 0, 0),
            &|c, s, st| {
                EmptyElement::at(c)
                    + Cross::new((0, 0), s, st)
                    + Text::new("goal: 1,000 fns < 1 ms", (8, -14), ("sans-serif", 13))
            },
        ))
        .expect("goal");
    for ((_, label, color), pts) in series.iter().zip(&data) {
        if pts.is_empty() {
            continue;
        }
        let color = *color;
        chart
            .draw_series(LineSeries::new(pts.clone(), color.stroke_width(2)))
            .expect("line")
            .label(*label)
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
            });
        chart
            .draw_series(pts.iter().map(|&p| Circle::new(p, 4, color.filled())))
            .expect("points");
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerRight)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()
        .expect("legend");
    root.present().expect("write svg");
    println!("plot written to {}", path.display());
}
