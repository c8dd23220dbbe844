//! Shared helpers of the integration tests: building the fixture crates (real
//! patch cdylibs) and keeping tests of one binary from applying patches at once.

pub mod demo;
pub mod elf_edit;
pub mod entry;
pub mod fixable;
pub mod host_copy;
pub mod linked_patch;

use std::fs;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, MutexGuard};

/// The workspace root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Where fixture crates are built.
pub fn fixtures_target() -> PathBuf {
    root().join("target").join("fixtures")
}

/// Holds the process-wide test lock; on drop (also when the test fails)
/// reverts whatever the test left applied, so one failure does not cascade.
pub struct Serial {
    _lock: MutexGuard<'static, ()>,
}

impl Drop for Serial {
    fn drop(&mut self) {
        if let Err(e) = hotfix_core::Runtime::global().revert_all() {
            eprintln!("revert_all after the test failed: {e}");
        }
    }
}

/// Takes the process-wide test lock: tests of one binary share one runtime.
pub fn serial() -> Serial {
    static LOCK: Mutex<()> = Mutex::new(());
    Serial {
        _lock: LOCK.lock().unwrap_or_else(|e| e.into_inner()),
    }
}

/// Holds an exclusive `flock` on a file while alive.
struct FileLock(fs::File);

impl FileLock {
    fn take(path: &Path) -> Self {
        let f = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path)
            .expect("open the fixture lock file");
        // SAFETY: flock on a valid, owned file descriptor.
        let rc = unsafe { libc::flock(std::os::fd::AsRawFd::as_raw_fd(&f), libc::LOCK_EX) };
        assert_eq!(rc, 0, "flock the fixture lock file");
        FileLock(f)
    }
}

impl Drop for FileLock {
    fn drop(&mut self) {
        // SAFETY: unlocking the descriptor we locked.
        unsafe { libc::flock(std::os::fd::AsRawFd::as_raw_fd(&self.0), libc::LOCK_UN) };
    }
}

/// Mappings of loaded patch copies (sealed memfds named `hotfix-patch`).
pub fn loaded_copies() -> usize {
    fs::read_to_string("/proc/self/maps")
        .expect("read /proc/self/maps")
        .lines()
        .filter(|l| l.contains("hotfix-patch"))
        .count()
}

/// Runs `cargo build --quiet` of `package` in the workspace of `manifest`
/// into the fixtures' target directory (under the build lock); `what` names
/// the build in a failure.
fn cargo_build(manifest: &Path, package: &str, args: &[String], env: &[(&str, &str)], what: &str) {
    let target = fixtures_target();
    fs::create_dir_all(&target).expect("create the fixture target dir");
    let _lock = FileLock::take(&target.join(".build-lock"));
    let out = Command::new(env!("CARGO"))
        .arg("build")
        .arg("--quiet")
        .arg("--manifest-path")
        .arg(manifest)
        .arg("--target-dir")
        .arg(&target)
        .arg("-p")
        .arg(package)
        .args(args)
        .envs(env.iter().copied())
        .output()
        .expect("run cargo");
    assert!(
        out.status.success(),
        "building {what} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Copies a built library to `out/<name>` of the fixtures' target directory
/// (mode 0755, in a directory only its owner may write), where no later build
/// overwrites it.
fn publish(built: &Path, name: &str) -> PathBuf {
    let out_dir = fixtures_target().join("out");
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o755)
        .create(&out_dir)
        .expect("create the fixture output dir");
    let copy = out_dir.join(name);
    fs::copy(built, &copy).expect("copy the fixture library");
    fs::set_permissions(&copy, fs::Permissions::from_mode(0o755)).expect("chmod the copy");
    copy
}

/// Builds a fixture patch crate with `features` and `profile`, and returns a
/// copy of its library that no other build overwrites.
pub fn build_patch_with(package: &str, features: &[&str], profile: &str) -> PathBuf {
    build_patch_with_env(package, features, profile, &[])
}

/// [`build_patch_with`], with environment variables for the build (read by a
/// fixture's build script).
pub fn build_patch_with_env(
    package: &str,
    features: &[&str],
    profile: &str,
    env: &[(&str, &str)],
) -> PathBuf {
    let mut args = vec!["--profile".to_owned(), profile.to_owned()];
    if !features.is_empty() {
        args.extend(["--features".to_owned(), features.join(",")]);
    }
    cargo_build(
        &root().join("tests/fixtures/Cargo.toml"),
        package,
        &args,
        env,
        &format!("fixture {package}"),
    );
    let dir = if profile == "dev" { "debug" } else { profile };
    let built = fixtures_target().join(dir).join(format!("lib{package}.so"));
    let variant = if features.is_empty() {
        String::new()
    } else {
        format!("-{}", features.join("-"))
    };
    publish(&built, &format!("lib{package}{variant}-{profile}.so"))
}

/// Builds a fixture patch crate in the dev profile without features.
pub fn build_patch(package: &str) -> PathBuf {
    build_patch_with(package, &[], "dev")
}

/// A fresh directory only this user may write, for files a test makes.
pub fn scratch_dir(name: &str) -> PathBuf {
    let dir = fixtures_target()
        .join("scratch")
        .join(format!("{}-{name}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o755)
        .create(&dir)
        .expect("create a scratch dir");
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).expect("chmod the scratch dir");
    dir
}

/// The lines of `/proc/self/maps` text whose path contains `needle`, as
/// `(start, end, perms, path)` with adjacent ranges of equal protection and
/// path merged: what protections cover which addresses, whatever way the kernel
/// splits its areas.
pub fn coalesced_maps(maps: &str, needle: &str) -> Vec<(u64, u64, String, String)> {
    let mut out: Vec<(u64, u64, String, String)> = Vec::new();
    for line in maps.lines().filter(|l| l.contains(needle)) {
        let mut f = line.split_whitespace();
        let (Some(range), Some(perms)) = (f.next(), f.next()) else {
            continue;
        };
        let path = f.nth(3).unwrap_or("").to_owned();
        let Some((a, b)) = range.split_once('-') else {
            continue;
        };
        let (Ok(a), Ok(b)) = (u64::from_str_radix(a, 16), u64::from_str_radix(b, 16)) else {
            continue;
        };
        match out.last_mut() {
            Some(last) if last.1 == a && last.2 == perms && last.3 == path => last.1 = b,
            _ => out.push((a, b, perms.to_owned(), path)),
        }
    }
    out
}

/// Whether this run is a CI run (`CI` set to `true` or `1`, as CI services set it).
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v.eq_ignore_ascii_case("true") || v == "1")
}

/// Says that the calling test cannot check what it exists for on this
/// machine, and why: on standard error, written past the test harness's
/// capture of `eprintln!` so every run shows it, passed or not. Fails the test
/// in CI ([`in_ci`]), where every test must run. Returns otherwise; the caller
/// then ends the test.
pub fn cannot_run(test: &str, why: &str) {
    use std::io::Write;
    let line = format!("NOT RUN: {test}: {why}");
    let _ = writeln!(std::io::stderr().lock(), "{line}");
    assert!(!in_ci(), "{line} (CI is set: every test must run here)");
}

/// Counts calls that saw the new code, so a patcher can wait until the code it
/// made live was really run before it reverts: a torture test then proves the
/// patch went live in every cycle, not only that nothing broke.
#[derive(Default)]
pub struct NewSeen(std::sync::atomic::AtomicU64);

impl NewSeen {
    /// Records one call that saw the new code.
    pub fn saw_new(&self) {
        self.0.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    /// Calls that saw the new code so far.
    pub fn count(&self) -> u64 {
        self.0.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Waits (yielding) until some call saw the new code after `count()` was
    /// `before`; false if none did within `timeout`.
    pub fn wait_after(&self, before: u64, timeout: std::time::Duration) -> bool {
        let start = std::time::Instant::now();
        while self.count() == before {
            if start.elapsed() > timeout {
                return false;
            }
            std::thread::yield_now();
        }
        true
    }
}

/// Compiles the C file `tests/fixtures/c/<name>.c` into the shared object
/// `out` with the system's C compiler.
pub fn compile_c_shared(name: &str, out: &Path) {
    let src = root().join("tests/fixtures/c").join(format!("{name}.c"));
    let status = Command::new("cc")
        .args(["-shared", "-fPIC", "-O2", "-pthread", "-o"])
        .arg(out)
        .arg(&src)
        .status()
        .expect("run cc");
    assert!(status.success(), "compiling {} failed", src.display());
}

/// Blocks every signal in the calling thread, as a `sigwait` thread does, and
/// returns the full set.
pub fn block_all_signals() -> libc::sigset_t {
    // SAFETY: a zeroed sigset_t is valid storage; sigfillset fills it;
    // pthread_sigmask changes only the calling thread's mask.
    unsafe {
        let mut all: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut all);
        libc::pthread_sigmask(libc::SIG_BLOCK, &all, std::ptr::null_mut());
        all
    }
}

/// A thread named `name` that blocks every signal and sleeps until dropped.
pub struct SignalBlocker {
    /// Its thread id.
    pub tid: i32,
    stop: Option<std::sync::mpsc::Sender<()>>,
    handle: Option<std::thread::JoinHandle<()>>,
}

impl SignalBlocker {
    /// Starts it and returns once its mask is in force and it sleeps.
    pub fn start(name: &str) -> Self {
        let (stop, stopped) = std::sync::mpsc::channel::<()>();
        let (ready, tid) = std::sync::mpsc::channel();
        let handle = std::thread::Builder::new()
            .name(name.to_owned())
            .spawn(move || {
                block_all_signals();
                // SAFETY: gettid has no preconditions.
                ready.send(unsafe { libc::gettid() }).unwrap();
                let _ = stopped.recv();
            })
            .expect("spawn a signal blocker");
        let tid = tid.recv().expect("the blocker's tid");
        // Until it sleeps in its wait.
        let state = format!("/proc/self/task/{tid}/stat");
        for _ in 0..500 {
            let s = fs::read_to_string(&state).unwrap_or_default();
            if s.rsplit_once(") ")
                .is_some_and(|(_, rest)| rest.starts_with('S'))
            {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
        Self {
            tid,
            stop: Some(stop),
            handle: Some(handle),
        }
    }
}

impl Drop for SignalBlocker {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

/// How many file descriptors this process has open.
pub fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

/// How many mappings this process has (lines of `/proc/self/maps`).
pub fn mappings() -> usize {
    std::fs::read_to_string("/proc/self/maps")
        .unwrap()
        .lines()
        .count()
}
