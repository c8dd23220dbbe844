//! Time from the signal to the first call that runs new code, in the demo
//! server: `kill -HUP` (apply `libdemo_patch.so`) then `SUM 1 2` polled on one
//! open connection until it answers `3`; then `kill -USR2` (revert) and poll
//! until it answers `-1` again. Repeated in cycles; the first apply includes
//! the full load (checks, dlopen, binding), later ones reuse the library the
//! runtime keeps loaded.
//!
//! `cargo bench --manifest-path benches/Cargo.toml --target-dir target/benches --bench signal_to_call`
//!
//! Builds the demo as its README says (`cargo build -p demo-server -p demo-patch`
//! in the main workspace, debug profile) and runs `target/debug/demo-server`;
//! then the same with `--release` and `target/release/demo-server`.

use harness::fmt_ns;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const CYCLES: usize = 30;
const TIMEOUT: Duration = Duration::from_secs(20);

struct Server {
    child: Child,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

struct Conn {
    w: TcpStream,
    r: BufReader<TcpStream>,
}

impl Conn {
    fn ask(&mut self, line: &str) -> String {
        self.w
            .write_all(format!("{line}\n").as_bytes())
            .expect("send");
        let mut s = String::new();
        self.r.read_line(&mut s).expect("receive");
        assert!(!s.is_empty(), "the server closed the connection");
        s.trim().to_owned()
    }
}

fn signal(pid: u32, sig: libc::c_int) {
    // SAFETY: kill(2) on the server process this bench started.
    let rc = unsafe { libc::kill(pid as libc::pid_t, sig) };
    assert_eq!(rc, 0, "kill {pid}");
}

/// Polls `SUM 1 2` until it answers `want`; returns the time since `t0` and
/// the number of queries.
fn poll_until(c: &mut Conn, want: &str, t0: Instant) -> (Duration, usize) {
    let mut n = 0;
    loop {
        n += 1;
        if c.ask("SUM 1 2") == want {
            return (t0.elapsed(), n);
        }
        assert!(t0.elapsed() < TIMEOUT, "SUM 1 2 never answered {want}");
    }
}

fn stats(v: &[Duration]) -> (f64, f64, f64, f64) {
    let mut ns: Vec<f64> = v.iter().map(|d| d.as_nanos() as f64).collect();
    ns.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let q = |p: f64| ns[((ns.len() - 1) as f64 * p).round() as usize];
    (q(0.0), q(0.5), q(0.9), q(1.0))
}

/// Builds the demo with `profile` and measures it; the table, or why not.
fn measure(profile: &str) -> String {
    let root = harness::main_dir();
    eprintln!(
        "building demo-server and demo-patch in {} ({profile})...",
        root.display()
    );
    let mut args = vec!["build", "--quiet", "-p", "demo-server", "-p", "demo-patch"];
    if profile == "release" {
        args.push("--release");
    }
    let out = Command::new(env!("CARGO"))
        .current_dir(&root)
        .args(&args)
        .output()
        .expect("run cargo");
    if !out.status.success() {
        return format!(
            "Not measured: `cargo {}` failed:\n\n```text\n{}\n```\n",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let exe = root.join("target").join(profile).join("demo-server");
    let patch = root.join("target").join(profile).join("libdemo_patch.so");
    let patch_size = std::fs::metadata(&patch).map(|m| m.len()).unwrap_or(0);
    let mut child = Command::new(&exe)
        .args(["--listen", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start demo-server");
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("read banner");
    let server = Server { child };
    // "listening on 127.0.0.1:PORT pid PID"
    let words: Vec<&str> = line.split_whitespace().collect();
    let addr = words.get(2).expect("banner address").to_string();
    let pid = server.child.id();
    let stream = TcpStream::connect(&addr).expect("connect");
    stream.set_nodelay(true).expect("nodelay");
    let mut c = Conn {
        w: stream.try_clone().expect("clone"),
        r: BufReader::new(stream),
    };
    assert_eq!(c.ask("SUM 1 2"), "-1", "the shipped bug");

    // One query's round trip, for scale: the poll's resolution.
    let mut rtt = Vec::new();
    for _ in 0..200 {
        let t = Instant::now();
        c.ask("SUM 1 2");
        rtt.push(t.elapsed());
    }

    let mut first_apply = None;
    let mut applies = Vec::new();
    let mut reverts = Vec::new();
    let mut polls = Vec::new();
    for i in 0..CYCLES {
        let t0 = Instant::now();
        signal(pid, libc::SIGHUP);
        let (d, n) = poll_until(&mut c, "3", t0);
        polls.push(n);
        if i == 0 {
            first_apply = Some(d);
        } else {
            applies.push(d);
        }
        let t0 = Instant::now();
        signal(pid, libc::SIGUSR2);
        let (d, _) = poll_until(&mut c, "-1", t0);
        reverts.push(d);
    }
    drop(server);

    let row = |what: &str, v: &[Duration]| {
        let (min, med, p90, max) = stats(v);
        vec![
            what.to_owned(),
            v.len().to_string(),
            format!("**{}**", fmt_ns(med)),
            fmt_ns(min),
            fmt_ns(p90),
            fmt_ns(max),
        ]
    };
    let first = first_apply.expect("one cycle");
    let rows = vec![
        vec![
            "first SIGHUP (full load: checks, dlopen, bind, swap)".into(),
            "1".into(),
            format!("**{}**", fmt_ns(first.as_nanos() as f64)),
            "—".into(),
            "—".into(),
            "—".into(),
        ],
        row(
            "later SIGHUP (library kept loaded: read + hash + swap)",
            &applies,
        ),
        row("SIGUSR2 (revert) to the first old answer", &reverts),
        row("one `SUM 1 2` round trip (the poll's resolution)", &rtt),
    ];
    polls.sort();
    let mut md = format!(
        "`cargo {}`, then `target/{profile}/demo-server --listen 127.0.0.1:0`; patch file {:.1} MiB; {CYCLES} SIGHUP/SIGUSR2 cycles on one connection; median {} polls per apply\n\n",
        args[..args.len()].join(" ").replace(" --quiet", ""),
        patch_size as f64 / (1024.0 * 1024.0),
        polls[polls.len() / 2]
    );
    md.push_str(&harness::table(
        &[
            "from the signal to the first new answer",
            "samples",
            "median",
            "min",
            "p90",
            "max",
        ],
        &rows,
    ));
    md
}

fn main() {
    let machine = harness::machine();
    let mut md = String::new();
    md.push_str("Reproduce: `cargo bench --manifest-path benches/Cargo.toml --target-dir target/benches --bench signal_to_call`\n\n");
    md.push_str(&machine);
    md.push_str("\n\n");
    for (profile, what) in [
        ("debug", "debug build (as the README runs the demo)"),
        ("release", "release build"),
    ] {
        md.push_str(&format!("#### Demo server, {what}\n\n"));
        md.push_str(&measure(profile));
        md.push('\n');
    }
    harness::publish("signal_to_call", &md);
}
