//! Load while swapping: client connections send requests without pause while
//! `demo-patch` is applied (`SIGHUP`) and reverted (`SIGUSR2`) over and over.
//!
//! ```text
//! cargo bench -p demo-server --bench swap_load
//! SWAP_LOAD_CLIENTS=16 SWAP_LOAD_CYCLES=100 cargo bench -p demo-server --bench swap_load
//! ```
//!
//! Every reply must be the old or the new correct value (anything else is an
//! error), no connection may drop, and latency is reported inside the swap
//! windows (signal sent until `PATCHES` on a control connection shows the
//! change) and outside them. Exits non-zero on an error, a dropped connection
//! or a timeout.

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// The server binary cargo built for this bench's profile.
const SERVER: &str = env!("CARGO_BIN_EXE_demo-server");
/// Longest wait for any one step (start, a swap landing, a reply).
const STEP_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest the whole swapping phase may take.
const RUN_TIMEOUT: Duration = Duration::from_secs(240);
/// Quiet time between swaps, so there is load outside the windows too.
const GAP: Duration = Duration::from_millis(15);

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Builds `demo-patch` in the server's profile, beside the server binary.
fn build_patch() -> Result<PathBuf, String> {
    let server_dir = Path::new(SERVER)
        .parent()
        .ok_or("the server has no directory")?;
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(&root)
        .args(["build", "--quiet", "-p", "demo-patch"]);
    if server_dir.ends_with("release") {
        cmd.arg("--release");
    }
    let out = cmd.output().map_err(|e| format!("run cargo: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "cargo build -p demo-patch failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let so = server_dir.join("libdemo_patch.so");
    if !so.is_file() {
        return Err(format!("{} was not built", so.display()));
    }
    Ok(so)
}

/// The server process, killed when dropped; keeps the tail of its stderr.
struct Server {
    child: Child,
    addr: SocketAddr,
    log: Arc<Mutex<Vec<String>>>,
}

impl Server {
    fn start() -> Result<Server, String> {
        let mut child = Command::new(SERVER)
            .args(["--listen", "127.0.0.1:0"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("start {SERVER}: {e}"))?;
        let log = Arc::new(Mutex::new(Vec::new()));
        let stderr = child.stderr.take().ok_or("no stderr")?;
        let sink = Arc::clone(&log);
        thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let mut log = sink.lock().unwrap_or_else(|e| e.into_inner());
                if log.len() >= 40 {
                    log.remove(0);
                }
                log.push(line);
            }
        });
        let mut first = String::new();
        let stdout = child.stdout.take().ok_or("no stdout")?;
        BufReader::new(stdout)
            .read_line(&mut first)
            .map_err(|e| format!("read the server's stdout: {e}"))?;
        let addr = first
            .split_whitespace()
            .nth(2)
            .and_then(|a| a.parse().ok())
            .ok_or_else(|| format!("unexpected first line {first:?}"))?;
        Ok(Server { child, addr, log })
    }

    fn signal(&self, sig: libc::c_int) -> Result<(), String> {
        let pid = libc::pid_t::try_from(self.child.id()).map_err(|e| e.to_string())?;
        // SAFETY: kill has no memory preconditions; pid is our own live child.
        if unsafe { libc::kill(pid, sig) } == 0 {
            Ok(())
        } else {
            Err(format!(
                "kill({pid}, {sig}): {}",
                std::io::Error::last_os_error()
            ))
        }
    }

    fn log_tail(&self) -> String {
        self.log
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .join("\n")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A connection that sends one line and reads one reply.
struct Conn {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
    line: String,
}

impl Conn {
    fn open(addr: SocketAddr) -> std::io::Result<Conn> {
        let stream = TcpStream::connect(addr)?;
        stream.set_nodelay(true)?;
        stream.set_read_timeout(Some(STEP_TIMEOUT))?;
        Ok(Conn {
            reader: BufReader::new(stream.try_clone()?),
            writer: stream,
            line: String::new(),
        })
    }

    fn ask(&mut self, request: &str) -> std::io::Result<&str> {
        self.writer.write_all(request.as_bytes())?;
        self.line.clear();
        if self.reader.read_line(&mut self.line)? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        Ok(self.line.trim_end_matches('\n'))
    }
}

/// What one client saw.
#[derive(Default)]
struct ClientReport {
    served: u64,
    /// `SUM` replies that came from the patched code (`a + b`).
    patched: u64,
    errors: u64,
    dropped: bool,
    first_error: Option<String>,
    /// (start, end) of each request, in ns since the bench's start.
    samples: Vec<(u64, u64)>,
}

/// Sends SUM, SCORE and DIV in turn until `stop`; checks every reply.
fn client(id: usize, addr: SocketAddr, t0: Instant, stop: Arc<AtomicBool>) -> ClientReport {
    let mut report = ClientReport::default();
    let mut conn = match Conn::open(addr) {
        Ok(c) => c,
        Err(e) => {
            report.dropped = true;
            report.first_error = Some(format!("connect: {e}"));
            return report;
        }
    };
    let name = format!("bench-{id}");
    let b = id as i64 + 1;
    let mut total = 0i64;
    let mut i = 0i64;
    while !stop.load(Ordering::Relaxed) {
        i += 1;
        let (request, kind) = match i % 3 {
            0 => (format!("SUM {i} {b}\n"), 0),
            1 => (format!("SCORE {name} 1\n"), 1),
            _ => (format!("DIV {} 7\n", i * 13), 2),
        };
        let start = t0.elapsed().as_nanos() as u64;
        let reply = match conn.ask(&request) {
            Ok(r) => r.parse::<i64>().map_err(|_| r.to_owned()),
            Err(e) => {
                report.dropped = true;
                report
                    .first_error
                    .get_or_insert(format!("{request:?}: {e}"));
                return report;
            }
        };
        let end = t0.elapsed().as_nanos() as u64;
        report.samples.push((start, end));
        report.served += 1;
        let ok = match (kind, &reply) {
            (0, Ok(v)) => {
                report.patched += u64::from(*v == i + b);
                *v == i - b || *v == i + b
            }
            (1, Ok(v)) => {
                (*v == total + 1 || *v == total + 2) && {
                    total = *v;
                    true
                }
            }
            (_, Ok(v)) => *v == i * 13 / 7,
            (_, Err(_)) => false,
        };
        if !ok {
            report.errors += 1;
            report
                .first_error
                .get_or_insert(format!("{} -> {reply:?}", request.trim_end()));
        }
    }
    report
}

/// Waits until `PATCHES` on the control connection satisfies `done`.
fn wait_patches(c: &mut Conn, done: impl Fn(&str) -> bool) -> Result<(), String> {
    let start = Instant::now();
    loop {
        let p = c.ask("PATCHES\n").map_err(|e| format!("control: {e}"))?;
        if done(p) {
            return Ok(());
        }
        if start.elapsed() > STEP_TIMEOUT {
            return Err(format!("a swap did not land in {STEP_TIMEOUT:?}: {p}"));
        }
        thread::sleep(Duration::from_micros(200));
    }
}

/// Applies and reverts `cycles` times; returns the swap windows (ns since t0).
fn swap(server: &Server, cycles: usize, t0: Instant) -> Result<Vec<(u64, u64)>, String> {
    let mut control = Conn::open(server.addr).map_err(|e| format!("control: {e}"))?;
    let mut windows = Vec::with_capacity(cycles * 2);
    let begin = Instant::now();
    for _ in 0..cycles {
        for (sig, applied) in [(libc::SIGHUP, true), (libc::SIGUSR2, false)] {
            thread::sleep(GAP);
            let start = t0.elapsed().as_nanos() as u64;
            server.signal(sig)?;
            wait_patches(&mut control, |p| (p != "none") == applied)?;
            windows.push((start, t0.elapsed().as_nanos() as u64));
            if begin.elapsed() > RUN_TIMEOUT {
                return Err(format!("the swaps took longer than {RUN_TIMEOUT:?}"));
            }
        }
    }
    thread::sleep(GAP);
    Ok(windows)
}

/// Whether `[start, end]` overlaps one of the sorted, disjoint `windows`.
fn in_window(windows: &[(u64, u64)], (start, end): (u64, u64)) -> bool {
    let i = windows.partition_point(|w| w.1 < start);
    windows.get(i).is_some_and(|w| w.0 <= end)
}

fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn us(ns: u64) -> String {
    format!("{:.1} µs", ns as f64 / 1000.0)
}

fn run() -> Result<bool, String> {
    let clients = env_usize("SWAP_LOAD_CLIENTS", 16).max(1);
    let cycles = env_usize("SWAP_LOAD_CYCLES", 100).max(1);
    build_patch()?;
    let server = Server::start()?;
    let t0 = Instant::now();
    let stop = Arc::new(AtomicBool::new(false));
    let handles: Vec<_> = (0..clients)
        .map(|id| {
            let stop = Arc::clone(&stop);
            let addr = server.addr;
            thread::spawn(move || client(id, addr, t0, stop))
        })
        .collect();
    thread::sleep(Duration::from_millis(200));
    let windows = swap(&server, cycles, t0);
    stop.store(true, Ordering::Relaxed);
    let reports: Vec<ClientReport> = handles
        .into_iter()
        .map(|h| {
            h.join().unwrap_or_else(|_| ClientReport {
                dropped: true,
                first_error: Some("a client thread panicked".to_owned()),
                ..ClientReport::default()
            })
        })
        .collect();
    let elapsed = t0.elapsed();
    let windows = match windows {
        Ok(w) => w,
        Err(e) => return Err(format!("{e}\nserver log tail:\n{}", server.log_tail())),
    };

    let served: u64 = reports.iter().map(|r| r.served).sum();
    let errors: u64 = reports.iter().map(|r| r.errors).sum();
    let patched: u64 = reports.iter().map(|r| r.patched).sum();
    let dropped = reports.iter().filter(|r| r.dropped).count();
    let (mut inside, mut outside) = (Vec::new(), Vec::new());
    for &s in reports.iter().flat_map(|r| &r.samples) {
        let latency = s.1 - s.0;
        if in_window(&windows, s) {
            inside.push(latency);
        } else {
            outside.push(latency);
        }
    }
    inside.sort_unstable();
    outside.sort_unstable();
    let lens: Vec<u64> = windows.iter().map(|w| w.1 - w.0).collect();
    let mean = lens.iter().sum::<u64>() / lens.len().max(1) as u64;
    let max = lens.iter().copied().max().unwrap_or(0);

    println!(
        "swap_load: {clients} clients, {cycles} apply/revert cycles ({} swaps) in {:.1} s",
        windows.len(),
        elapsed.as_secs_f64()
    );
    println!(
        "  requests served       {served} ({:.0}/s)",
        served as f64 / elapsed.as_secs_f64()
    );
    println!("  SUM replies patched   {patched} (a + b: served by demo-patch)");
    println!("  errors                {errors}");
    println!("  dropped connections   {dropped}");
    println!(
        "  swap window           mean {}, max {} (signal sent -> PATCHES shows it)",
        us(mean),
        us(max)
    );
    println!(
        "  {:<20}{:>10}{:>12}{:>12}{:>12}",
        "latency", "requests", "p50", "p99", "max"
    );
    for (label, v) in [("inside swap windows", &inside), ("outside", &outside)] {
        println!(
            "  {:<20}{:>10}{:>12}{:>12}{:>12}",
            label,
            v.len(),
            us(percentile(v, 0.50)),
            us(percentile(v, 0.99)),
            us(v.last().copied().unwrap_or(0))
        );
    }
    for r in reports.iter().filter(|r| r.first_error.is_some()) {
        eprintln!("first problem: {}", r.first_error.as_deref().unwrap_or(""));
    }
    Ok(errors == 0 && dropped == 0)
}

fn main() -> ExitCode {
    match run() {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("swap_load failed: {e}");
            ExitCode::FAILURE
        }
    }
}
