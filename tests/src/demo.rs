//! The real `demo-server` binary, started by tests: building it (and the
//! `demo-patch` and the `hotfix` command) in the tests' profile, starting it on
//! a free port, talking to it over TCP.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::thread;
use std::time::{Duration, Instant};

use crate::root;

/// How long any single wait may take before the test fails.
pub const WAIT: Duration = Duration::from_secs(30);

/// The directory cargo writes this profile's binaries to (`target/debug`):
/// this test runs from `target/debug/deps`.
pub fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("the test's own path");
    exe.parent()
        .and_then(Path::parent)
        .expect("the test runs from <target>/<profile>/deps")
        .to_path_buf()
}

/// Builds a workspace package once per test process, in this test's profile.
pub fn cargo_build(package: &'static str) {
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
pub fn server_exe() -> PathBuf {
    cargo_build("demo-server");
    profile_dir().join("demo-server")
}

/// Builds `demo-patch`: it lands beside the server as `libdemo_patch.so`.
pub fn build_demo_patch() -> PathBuf {
    cargo_build("demo-patch");
    let so = profile_dir().join("libdemo_patch.so");
    assert!(so.is_file(), "{} was not built", so.display());
    so
}

/// The `hotfix` command, built.
pub fn hotfix_exe() -> PathBuf {
    cargo_build("hotfix-cli");
    profile_dir().join("hotfix")
}

/// A fresh control-socket directory (mode 0700) for one test, to give a server
/// and the `hotfix` command through `HOTFIX_CONTROL_DIR`.
pub fn control_dir(name: &str) -> PathBuf {
    use std::os::unix::fs::DirBuilderExt;
    // Short, whatever the checkout's path: a socket path has at most 107 bytes.
    let dir = std::env::temp_dir().join(format!("hotfix-test-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&dir)
        .expect("create a control dir");
    dir
}

/// A running server, killed when dropped (also when a test fails).
pub struct Server {
    child: Child,
    /// The TCP address it serves.
    pub addr: SocketAddr,
    /// Its pid.
    pub pid: libc::pid_t,
    stderr: Arc<Mutex<String>>,
    /// Whatever the server printed to stdout after its first line.
    stdout_rest: Arc<Mutex<String>>,
}

impl Server {
    /// Starts the server on a free port with `args`, and waits for its
    /// `listening on <ADDR> pid <PID>` line.
    pub fn start(args: &[&str]) -> Server {
        Server::start_with_env(args, &[])
    }

    /// [`Server::start`] with extra environment variables.
    pub fn start_with_env(args: &[&str], env: &[(&str, &Path)]) -> Server {
        Server::start_exe(&server_exe(), args, env)
    }

    /// [`Server::start_with_env`] of the demo-server executable `exe`.
    pub fn start_exe(exe: &Path, args: &[&str], env: &[(&str, &Path)]) -> Server {
        let mut child = Command::new(exe)
            .args(["--listen", "127.0.0.1:0"])
            .args(args)
            .envs(env.iter().map(|(k, v)| (*k, *v)))
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

    pub fn connect(&self) -> Conn {
        let stream = TcpStream::connect(self.addr).expect("connect to demo-server");
        stream.set_read_timeout(Some(WAIT)).expect("read timeout");
        Conn {
            reader: BufReader::new(stream.try_clone().expect("clone the stream")),
            writer: stream,
        }
    }

    pub fn signal(&self, sig: libc::c_int) {
        // SAFETY: kill has no memory preconditions; pid is our own live child.
        let rc = unsafe { libc::kill(self.pid, sig) };
        assert_eq!(rc, 0, "kill({}, {sig})", self.pid);
    }

    pub fn stderr(&self) -> String {
        self.stderr
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Waits until the server's stderr contains `needle`.
    pub fn wait_stderr(&self, needle: &str) {
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

    /// Whatever the server printed to stdout after its first line (a patch's
    /// `println!` lands here).
    pub fn stdout(&self) -> String {
        self.stdout_rest
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Waits until the server's stdout after its first line contains `needle`.
    pub fn wait_stdout(&self, needle: &str) {
        let start = Instant::now();
        while !self.stdout().contains(needle) {
            assert!(
                start.elapsed() < WAIT,
                "stdout never contained {needle:?}: {:?}; stderr:\n{}",
                self.stdout(),
                self.stderr()
            );
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// Asserts the server is still running and printed nothing more to stdout.
    pub fn assert_alive(&mut self) {
        let rest = self.stdout();
        assert!(
            rest.is_empty(),
            "demo-server printed more to stdout: {rest:?}"
        );
        self.assert_running();
    }

    /// Asserts the server is still running, whatever it printed.
    pub fn assert_running(&mut self) {
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
pub struct Conn {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl Conn {
    /// Sends raw bytes followed by a newline and returns the one reply line.
    pub fn ask_bytes(&mut self, request: &[u8]) -> String {
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

    pub fn ask(&mut self, request: &str) -> String {
        self.ask_bytes(request.as_bytes())
    }

    /// Polls `PATCHES` until `done` holds for it; returns the last answer.
    pub fn wait_patches(&mut self, what: &str, done: impl Fn(&str) -> bool) -> String {
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

/// A raw connection to a process's control socket, for tests that speak the
/// protocol (or fail to) by hand.
pub struct RawControl {
    /// The connection.
    pub stream: std::os::unix::net::UnixStream,
    reader: BufReader<std::os::unix::net::UnixStream>,
}

impl RawControl {
    /// Connects to process `pid`'s socket in `dir`; reads time out after [`WAIT`].
    pub fn connect(dir: &Path, pid: libc::pid_t) -> RawControl {
        let path = dir.join(format!("{pid}.sock"));
        let stream = std::os::unix::net::UnixStream::connect(&path)
            .unwrap_or_else(|e| panic!("connect to {}: {e}", path.display()));
        stream.set_read_timeout(Some(WAIT)).expect("read timeout");
        RawControl {
            reader: BufReader::new(stream.try_clone().expect("clone the stream")),
            stream,
        }
    }

    /// Sends raw bytes (add the newline yourself).
    pub fn send(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.stream.write_all(bytes)
    }

    /// The next reply line as text; `None` when the server closed the
    /// connection (end of file, or a reset because it left bytes unread).
    pub fn reply(&mut self) -> Option<String> {
        let mut line = String::new();
        match self.reader.read_line(&mut line) {
            Ok(0) => None,
            Ok(_) => Some(line),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => None,
            Err(e) => panic!("reading a control reply failed: {e}"),
        }
    }

    /// Sends one request line and returns the reply's JSON.
    pub fn ask(&mut self, request: &str) -> serde_json::Value {
        // A busy process answers before it reads and closes, so the send can
        // fail with the reply already waiting.
        let sent = self.send(format!("{request}\n").as_bytes());
        let line = self
            .reply()
            .unwrap_or_else(|| panic!("no reply before the connection closed (send: {sent:?})"));
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("reply {line:?} is not JSON: {e}"))
    }
}

/// The `error.kind` of a reply, or `"ok"` for a successful one.
pub fn reply_kind(reply: &serde_json::Value) -> String {
    if reply["ok"] == serde_json::Value::Bool(true) {
        return "ok".to_owned();
    }
    reply["error"]["kind"].as_str().unwrap_or("?").to_owned()
}
