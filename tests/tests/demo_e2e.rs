//! End to end: the real `demo-server` binary, patched with the real `demo-patch`
//! through `SIGHUP` and reverted through `SIGUSR2`, over live TCP connections.

use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::thread;
use std::time::{Duration, Instant};

use hotfix_tests::{root, scratch_dir};

/// How long any single wait may take before the test fails.
const WAIT: Duration = Duration::from_secs(30);

/// The directory cargo writes this profile's binaries to (`target/debug`):
/// this test runs from `target/debug/deps`.
fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("the test's own path");
    exe.parent()
        .and_then(Path::parent)
        .expect("the test runs from <target>/<profile>/deps")
        .to_path_buf()
}

/// Builds a workspace package once per test process, in this test's profile.
fn cargo_build(package: &'static str) {
    static BUILT: Mutex<Vec<&'static str>> = Mutex::new(Vec::new());
    let mut built = BUILT.lock().unwrap_or_else(|e| e.into_inner());
    if built.contains(&package) {
        return;
    }
    let mut cmd = Command::new(env!("CARGO"));
    cmd.current_dir(root())
        .args(["build", "--quiet", "-p", package]);
    if profile_dir().ends_with("release") {
        cmd.arg("--release");
    }
    let out = cmd.output().expect("run cargo build");
    assert!(
        out.status.success(),
        "cargo build -p {package} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    built.push(package);
}

/// The server binary, built.
fn server_exe() -> PathBuf {
    cargo_build("demo-server");
    profile_dir().join("demo-server")
}

/// Builds `demo-patch`: it lands beside the server as `libdemo_patch.so`.
fn build_patch() -> PathBuf {
    cargo_build("demo-patch");
    let so = profile_dir().join("libdemo_patch.so");
    assert!(so.is_file(), "{} was not built", so.display());
    so
}

/// A running server, killed when dropped (also when a test fails).
struct Server {
    child: Child,
    addr: SocketAddr,
    pid: libc::pid_t,
    stderr: Arc<Mutex<String>>,
    /// Whatever the server printed to stdout after its first line.
    stdout_rest: Arc<Mutex<String>>,
}

impl Server {
    /// Starts the server on a free port with `args`, and waits for its
    /// `listening on <ADDR> pid <PID>` line.
    fn start(args: &[&str]) -> Server {
        let mut child = Command::new(server_exe())
            .args(["--listen", "127.0.0.1:0"])
            .args(args)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start demo-server");
        let stderr = Arc::new(Mutex::new(String::new()));
        let mut err_pipe = BufReader::new(child.stderr.take().expect("stderr piped"));
        let sink = Arc::clone(&stderr);
        thread::spawn(move || {
            let mut line = String::new();
            while matches!(err_pipe.read_line(&mut line), Ok(n) if n > 0) {
                sink.lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push_str(&line);
                line.clear();
            }
        });
        let mut out_pipe = BufReader::new(child.stdout.take().expect("stdout piped"));
        let (tx, rx) = mpsc::channel();
        let stdout_rest = Arc::new(Mutex::new(String::new()));
        let rest_sink = Arc::clone(&stdout_rest);
        thread::spawn(move || {
            let mut first = String::new();
            let _ = out_pipe.read_line(&mut first);
            let _ = tx.send(first);
            // Anything more on stdout breaks the contract: keep it for the check.
            let mut chunk = [0u8; 1024];
            while let Ok(n @ 1..) = out_pipe.read(&mut chunk) {
                let text = String::from_utf8_lossy(&chunk[..n]).into_owned();
                rest_sink
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push_str(&text);
            }
        });
        let first = rx.recv_timeout(WAIT).unwrap_or_default();
        let pid = child.id();
        let mut server = Server {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            pid: pid as libc::pid_t,
            stderr,
            stdout_rest,
        };
        let words: Vec<&str> = first.trim_end().split(' ').collect();
        match words.as_slice() {
            ["listening", "on", addr, "pid", p] => {
                server.addr = addr.parse().expect("a socket address");
                assert_eq!(p.parse::<u32>().ok(), Some(pid), "the pid printed");
            }
            _ => panic!(
                "unexpected first stdout line {first:?}; stderr:\n{}",
                server.stderr()
            ),
        }
        server
    }

    fn connect(&self) -> Conn {
        let stream = TcpStream::connect(self.addr).expect("connect to demo-server");
        stream.set_read_timeout(Some(WAIT)).expect("read timeout");
        Conn {
            reader: BufReader::new(stream.try_clone().expect("clone the stream")),
            writer: stream,
        }
    }

    fn signal(&self, sig: libc::c_int) {
        // SAFETY: kill has no memory preconditions; pid is our own live child.
        let rc = unsafe { libc::kill(self.pid, sig) };
        assert_eq!(rc, 0, "kill({}, {sig})", self.pid);
    }

    fn stderr(&self) -> String {
        self.stderr
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Waits until the server's stderr contains `needle`.
    fn wait_stderr(&self, needle: &str) {
        let start = Instant::now();
        while !self.stderr().contains(needle) {
            assert!(
                start.elapsed() < WAIT,
                "stderr never contained {needle:?}:\n{}",
                self.stderr()
            );
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// Asserts the server is still running and printed nothing more to stdout.
    fn assert_alive(&mut self) {
        let rest = self
            .stdout_rest
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        assert!(
            rest.is_empty(),
            "demo-server printed more to stdout: {rest:?}"
        );
        let status = self.child.try_wait().expect("try_wait");
        assert!(
            status.is_none(),
            "demo-server exited ({status:?}); stderr:\n{}",
            self.stderr()
        );
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One long-lived client connection.
struct Conn {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl Conn {
    /// Sends raw bytes followed by a newline and returns the one reply line.
    fn ask_bytes(&mut self, request: &[u8]) -> String {
        let mut msg = request.to_vec();
        msg.push(b'\n');
        self.writer.write_all(&msg).expect("send a request");
        let mut reply = String::new();
        let n = self.reader.read_line(&mut reply).expect("read a reply");
        assert!(n > 0, "the server closed the connection");
        assert!(reply.ends_with('\n'), "a partial reply {reply:?}");
        reply.truncate(reply.len() - 1);
        reply
    }

    fn ask(&mut self, request: &str) -> String {
        self.ask_bytes(request.as_bytes())
    }

    /// Polls `PATCHES` until `done` holds for it; returns the last answer.
    fn wait_patches(&mut self, what: &str, done: impl Fn(&str) -> bool) -> String {
        let start = Instant::now();
        loop {
            let p = self.ask("PATCHES");
            if done(&p) {
                return p;
            }
            assert!(start.elapsed() < WAIT, "PATCHES never became {what}: {p}");
            thread::sleep(Duration::from_millis(20));
        }
    }
}

fn is_err(reply: &str) -> bool {
    reply == "ERR" || reply.starts_with("ERR ")
}

/// Malformed requests get `ERR`, and the connection keeps working.
fn check_garbage(c: &mut Conn) {
    let garbage: Vec<Vec<u8>> = vec![
        b"HELLO".to_vec(),
        b"".to_vec(),
        b"   ".to_vec(),
        b"SUM".to_vec(),
        b"SUM 1".to_vec(),
        b"SUM 1 2 3".to_vec(),
        b"SUM one two".to_vec(),
        b"SUM 99999999999999999999 1".to_vec(),
        b"SCORE".to_vec(),
        b"SCORE bob x".to_vec(),
        b"DIV 1".to_vec(),
        b"CLASS extra".to_vec(),
        b"SUM \xff\xfe 1".to_vec(),
        b"\xc3\x28".to_vec(),
        vec![b'A'; 10_000],
        b"DIV -9223372036854775808 -1".to_vec(),
    ];
    for g in garbage {
        let reply = c.ask_bytes(&g);
        let shown = String::from_utf8_lossy(&g[..g.len().min(40)]).into_owned();
        assert!(is_err(&reply), "{shown:?} -> {reply:?}");
    }
    assert_eq!(c.ask("DIV 7 2"), "3", "the connection still works");
}

#[test]
fn patch_and_revert_through_signals_on_one_connection() {
    let mut server = Server::start(&[]);
    let mut c = server.connect();

    // The shipped bugs.
    assert_eq!(c.ask("SUM 1 2"), "-1");
    assert_eq!(c.ask("SCORE alice 5"), "10");
    assert_eq!(c.ask("DIV 1 0"), "ERR attempt to divide by zero");
    assert_eq!(c.ask("CLASS"), "Role");
    assert_eq!(c.ask("PATCHES"), "none");
    check_garbage(&mut c);
    assert!(
        is_err(&c.ask("SUM -9223372036854775808 1")),
        "a - b overflows"
    );
    assert!(
        is_err(&c.ask("SCORE bob 9223372036854775807")),
        "2n overflows"
    );

    // Apply.
    build_patch();
    server.signal(libc::SIGHUP);
    let p = c.wait_patches("not none", |p| p != "none");
    assert!(p.starts_with("demo-patch "), "{p}");
    for f in ["sum", "add_score", "div"] {
        assert!(p.contains(&format!("demo_server::handlers::{f}")), "{p}");
    }
    assert!(p.contains("Role::getClassName"), "{p}");
    assert_eq!(p.matches("demo-patch").count(), 1, "{p}");

    // Every fix, on the same connection, with the state kept.
    assert_eq!(c.ask("SUM 1 2"), "3");
    assert_eq!(c.ask("SCORE alice 5"), "15");
    assert_eq!(c.ask("DIV 1 0"), "ERR division by zero");
    assert_eq!(c.ask("DIV 9 3"), "3");
    assert_eq!(c.ask("CLASS"), "Mage", "the C++ method is patched");
    check_garbage(&mut c);
    assert!(
        is_err(&c.ask("SUM 9223372036854775807 1")),
        "a + b overflows"
    );
    assert_eq!(c.ask("SUM -9223372036854775808 1"), "-9223372036854775807");
    server.wait_stderr("patch applied");

    // Revert: the bugs are back, the state stays.
    server.signal(libc::SIGUSR2);
    c.wait_patches("none", |p| p == "none");
    assert_eq!(c.ask("SUM 1 2"), "-1");
    assert_eq!(c.ask("SCORE alice 1"), "17");
    assert_eq!(c.ask("DIV 1 0"), "ERR attempt to divide by zero");
    assert_eq!(c.ask("CLASS"), "Role");
    check_garbage(&mut c);
    server.wait_stderr("patch reverted");
    server.assert_alive();
}

#[test]
fn a_garbage_patch_file_is_refused_and_the_server_keeps_serving() {
    let dir = scratch_dir("demo-garbage");
    let junk = dir.join("libdemo_patch.so");
    fs::write(&junk, b"this is not a shared library\n\x00\x01\x02").expect("write junk");
    fs::set_permissions(&junk, fs::Permissions::from_mode(0o644)).expect("chmod junk");
    let junk_arg = junk.to_str().expect("a UTF-8 path");

    let mut server = Server::start(&["--patch", junk_arg]);
    let mut c = server.connect();
    assert_eq!(c.ask("SUM 1 2"), "-1");
    server.signal(libc::SIGHUP);
    server.wait_stderr("patch refused");
    let log = server.stderr();
    assert!(log.contains(junk_arg), "the refusal names the file:\n{log}");
    assert_eq!(c.ask("PATCHES"), "none");
    assert_eq!(c.ask("SUM 1 2"), "-1");
    assert_eq!(c.ask("SCORE carol 1"), "2");
    assert_eq!(c.ask("DIV 1 0"), "ERR attempt to divide by zero");
    // A new client is served too.
    assert_eq!(server.connect().ask("SUM 2 2"), "0");
    server.assert_alive();
    let _ = fs::remove_dir_all(&dir);
}

#[test]
fn a_burst_of_signals_leaves_a_coherent_state() {
    build_patch();
    let mut server = Server::start(&[]);
    let mut c = server.connect();
    assert_eq!(c.ask("SUM 1 2"), "-1");
    for i in 0..20 {
        server.signal(if i % 2 == 0 {
            libc::SIGHUP
        } else {
            libc::SIGUSR2
        });
        thread::sleep(Duration::from_micros(200));
    }
    // Let the worker drain: the answer must stay the same for a while.
    let start = Instant::now();
    let mut last = c.ask("PATCHES");
    let mut stable_since = Instant::now();
    while stable_since.elapsed() < Duration::from_millis(500) {
        assert!(start.elapsed() < WAIT, "PATCHES never settled: {last}");
        thread::sleep(Duration::from_millis(20));
        let p = c.ask("PATCHES");
        if p != last {
            last = p;
            stable_since = Instant::now();
        }
    }
    server.assert_alive();
    let expected_sum = if last == "none" {
        "-1"
    } else {
        assert!(last.starts_with("demo-patch "), "{last}");
        assert_eq!(
            last.matches("demo-patch").count(),
            1,
            "applied once: {last}"
        );
        "3"
    };
    assert_eq!(
        c.ask("SUM 1 2"),
        expected_sum,
        "behaviour agrees with {last}"
    );

    // The signal worker still works: a deterministic apply and revert.
    if last != "none" {
        server.signal(libc::SIGUSR2);
        c.wait_patches("none", |p| p == "none");
    }
    server.signal(libc::SIGHUP);
    c.wait_patches("demo-patch", |p| p.starts_with("demo-patch "));
    assert_eq!(c.ask("SUM 1 2"), "3");
    server.signal(libc::SIGUSR2);
    c.wait_patches("none", |p| p == "none");
    assert_eq!(c.ask("SUM 1 2"), "-1");
    assert_eq!(server.connect().ask("SUM 5 5"), "0");
    server.assert_alive();
}
