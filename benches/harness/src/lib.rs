//! Shared helpers of the comparative benchmarks: nested builds of the patch
//! and peer libraries, staging them where the hotfix runtime accepts them,
//! the machine's description, criterion's estimates, and result tables.

use std::fmt::Write as _;
use std::fs;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// `benches/` (this workspace's root).
pub fn benches_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("harness is inside benches/")
        .to_owned()
}

/// The main workspace's root.
pub fn main_dir() -> PathBuf {
    benches_dir()
        .parent()
        .expect("benches/ is inside the main workspace")
        .to_owned()
}

/// `target/benches`: where `cargo bench --target-dir target/benches` builds.
pub fn target_dir() -> PathBuf {
    main_dir().join("target").join("benches")
}

/// Where the benches build patch and peer libraries: `target/benches` itself,
/// with the `bench` profile, so the host crates the bench binary was built
/// with are reused (cargo releases the build lock before running a bench).
pub fn nested_target() -> PathBuf {
    target_dir()
}

/// Where criterion writes its estimates for these benches.
pub fn criterion_dir() -> PathBuf {
    target_dir().join("criterion")
}

/// Where each bench writes its tables (`benches/results/*.md`).
pub fn results_dir() -> PathBuf {
    benches_dir().join("results")
}

/// Makes `dir` (and parents) with mode 0755: the runtime refuses a patch whose
/// directory others may write.
pub fn private_dir(dir: &Path) -> PathBuf {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o755)
        .create(dir)
        .unwrap_or_else(|e| panic!("create {}: {e}", dir.display()));
    fs::set_permissions(dir, fs::Permissions::from_mode(0o755)).expect("chmod 0755");
    dir.to_owned()
}

/// `cargo build --profile bench` of `packages` of this workspace into
/// [`nested_target`], with `features`: the profile of the bench binary, since
/// the runtime refuses a patch whose `debug_assertions` differ from the host's.
pub fn cargo_build(packages: &[&str], features: &[&str]) {
    let mut cmd = Command::new(env!("CARGO"));
    cmd.arg("build")
        .arg("--profile")
        .arg("bench")
        .arg("--quiet")
        .arg("--manifest-path")
        .arg(benches_dir().join("Cargo.toml"))
        .arg("--target-dir")
        .arg(nested_target());
    for p in packages {
        cmd.arg("-p").arg(p);
    }
    if !features.is_empty() {
        cmd.arg("--features").arg(features.join(","));
    }
    eprintln!("building {packages:?} {features:?} (nested cargo, bench profile)...");
    let out = cmd.output().expect("run cargo");
    assert!(
        out.status.success(),
        "building {packages:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `target/benches/release/<file>` (the `bench` profile's directory).
pub fn built(file: &str) -> PathBuf {
    nested_target().join("release").join(file)
}

/// Copies `src` to `dir/name` (mode 0755), replacing it atomically.
pub fn stage(src: &Path, dir: &Path, name: &str) -> PathBuf {
    private_dir(dir);
    let dst = dir.join(name);
    let tmp = dir.join(format!(".{name}.tmp"));
    fs::copy(src, &tmp)
        .unwrap_or_else(|e| panic!("copy {} to {}: {e}", src.display(), tmp.display()));
    fs::set_permissions(&tmp, fs::Permissions::from_mode(0o755)).expect("chmod 0755");
    fs::rename(&tmp, &dst).expect("rename into place");
    dst
}

/// One line per fact about the machine and toolchain of a run.
pub fn machine() -> String {
    let cpuinfo = fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| {
            l.strip_prefix("model name")
                .map(|v| v.trim_start_matches([' ', '\t', ':']).to_owned())
        })
        .unwrap_or_else(|| "unknown".into());
    let mhz = cpuinfo
        .lines()
        .find_map(|l| {
            l.strip_prefix("cpu MHz")
                .map(|v| v.trim_start_matches([' ', '\t', ':']).to_owned())
        })
        .unwrap_or_default();
    let nproc = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    let load = fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let rustc = Command::new("rustc")
        .arg("-V")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default();
    let kernel = fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    format!(
        "- machine: nproc {nproc}, CPU `{model}` ({mhz} MHz), Linux {}\n- toolchain: {rustc}, release profile (opt-level 3)\n- load average at the start of the run: {}",
        kernel.trim(),
        load.split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    )
}

/// Criterion as every bench here configures it: ~2 s of measurement.
pub fn criterion() -> criterion::Criterion {
    criterion::Criterion::default()
        .output_directory(&criterion_dir())
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(50)
        .configure_from_args()
}

/// Criterion's estimate of one benchmark, in nanoseconds per iteration.
#[derive(Clone, Copy, Debug)]
pub struct Est {
    /// Point estimate (slope of the linear regression, else the mean).
    pub ns: f64,
    /// 95 % confidence interval.
    pub lo: f64,
    pub hi: f64,
}

/// Reads `criterion_dir()/group/id/new/estimates.json`.
pub fn estimate(group: &str, id: &str) -> Option<Est> {
    let path = criterion_dir()
        .join(group)
        .join(id)
        .join("new")
        .join("estimates.json");
    let v: serde_json::Value = serde_json::from_str(&fs::read_to_string(path).ok()?).ok()?;
    let pick = if v["slope"].is_object() {
        &v["slope"]
    } else {
        &v["mean"]
    };
    Some(Est {
        ns: pick["point_estimate"].as_f64()?,
        lo: pick["confidence_interval"]["lower_bound"].as_f64()?,
        hi: pick["confidence_interval"]["upper_bound"].as_f64()?,
    })
}

/// Removes a group's old estimates, so a table never shows a stale figure.
pub fn clear_group(group: &str) {
    let _ = fs::remove_dir_all(criterion_dir().join(group));
}

/// A duration in ns, µs, ms or s with 3 significant digits.
pub fn fmt_ns(ns: f64) -> String {
    let (v, unit) = if ns < 1e3 {
        (ns, "ns")
    } else if ns < 1e6 {
        (ns / 1e3, "µs")
    } else if ns < 1e9 {
        (ns / 1e6, "ms")
    } else {
        (ns / 1e9, "s")
    };
    let digits = if v >= 100.0 {
        0
    } else if v >= 10.0 {
        1
    } else {
        2
    };
    format!("{v:.digits$} {unit}")
}

/// A markdown table.
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut s = String::new();
    writeln!(s, "| {} |", header.join(" | ")).unwrap();
    writeln!(
        s,
        "|{}",
        header.iter().map(|_| " --- |").collect::<String>()
    )
    .unwrap();
    for r in rows {
        writeln!(s, "| {} |", r.join(" | ")).unwrap();
    }
    s
}

/// Prints `text` and writes it to `benches/results/<name>.md`.
pub fn publish(name: &str, text: &str) {
    let dir = results_dir();
    fs::create_dir_all(&dir).expect("create benches/results");
    let path = dir.join(format!("{name}.md"));
    fs::write(&path, text).expect("write results");
    println!("\n{text}\n(written to {})", path.display());
}
