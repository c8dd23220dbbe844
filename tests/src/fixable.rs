//! A git repository made from a template (`tests/fixtures/fixable`, or
//! another one of the same shape: a `host` package whose manifest is
//! `Cargo.toml.tmpl`), for the `hotfix build --base` tests: edit its source in
//! place, build its host, run `hotfix build`, and talk to the running host.

use crate::demo::{WAIT, hotfix_exe};
use crate::{fixtures_target, root};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};

/// A template: its directory under `tests/fixtures`, and its host package.
#[derive(Clone, Copy, Debug)]
pub struct Template {
    /// The directory under `tests/fixtures` (holding `host/`).
    pub dir: &'static str,
    /// The name of the host package (and of its executable).
    pub package: &'static str,
}

/// `tests/fixtures/fixable`: a ledger, no runtime.
pub const FIXABLE: Template = Template {
    dir: "fixable",
    package: "fixable-host",
};

/// `tests/fixtures/tokio-fixable`: a greeter on a multi-thread tokio runtime.
pub const TOKIO_FIXABLE: Template = Template {
    dir: "tokio-fixable",
    package: "tokio-fixable-host",
};

impl Template {
    /// The target directory every repository of the template shares
    /// (hotfix-core and the dependencies are built once).
    pub fn target_dir(&self) -> PathBuf {
        fixtures_target().join(format!("{}-target", self.dir))
    }
}

/// What one run of `hotfix` gave.
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// The file and size `hotfix build` printed on its `built FILE (N bytes)`
    /// line.
    pub fn built(&self) -> (PathBuf, u64) {
        let line = self
            .stdout
            .lines()
            .find_map(|l| l.strip_prefix("built "))
            .unwrap_or_else(|| panic!("no `built` line: {self:?}"));
        let (file, rest) = line.split_once(" (").expect("a path and a size");
        let size = rest
            .split_once(" bytes)")
            .and_then(|(n, _)| n.parse::<u64>().ok())
            .unwrap_or_else(|| panic!("no size: {self:?}"));
        (PathBuf::from(file), size)
    }
}

impl std::fmt::Debug for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit {}\n--- stdout\n{}--- stderr\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

/// One repository.
pub struct Repo {
    pub dir: PathBuf,
    /// The host package's directory name (distinct per repository: cargo
    /// names a path package's artifacts after its relative path).
    pub member: String,
    /// The template it was made from.
    pub template: Template,
}

fn run(cmd: &mut Command, what: &str) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(
        out.status.success(),
        "{what} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("create dir");
    for e in std::fs::read_dir(from).expect("read template") {
        let e = e.expect("entry");
        let dest = to.join(e.file_name());
        if e.file_type().expect("type").is_dir() {
            copy_dir(&e.path(), &dest);
        } else {
            std::fs::copy(e.path(), dest).expect("copy");
        }
    }
}

impl Repo {
    /// A fresh repository `name` of [`FIXABLE`] with one commit (returned
    /// by [`Repo::head`]).
    pub fn new(name: &str) -> Repo {
        Repo::of(FIXABLE, name)
    }

    /// A fresh repository `name` of `template` with one commit.
    pub fn of(template: Template, name: &str) -> Repo {
        let dir = fixtures_target().join(template.dir).join(name);
        let _ = std::fs::remove_dir_all(&dir);
        let member = format!("host-{name}");
        copy_dir(
            &root()
                .join("tests/fixtures")
                .join(template.dir)
                .join("host"),
            &dir.join(&member),
        );
        let core = root().join("hotfix-core");
        let core = core.canonicalize().expect("hotfix-core path");
        let tmpl = dir.join(&member).join("Cargo.toml.tmpl");
        let manifest = std::fs::read_to_string(&tmpl)
            .expect("template manifest")
            .replace("@HOTFIX_CORE@", &core.display().to_string());
        std::fs::remove_file(&tmpl).expect("remove template");
        std::fs::write(dir.join(&member).join("Cargo.toml"), manifest).expect("manifest");
        std::fs::write(
            dir.join("Cargo.toml"),
            format!("[workspace]\nresolver = \"3\"\nmembers = [\"{member}\"]\n"),
        )
        .expect("workspace manifest");
        // The versions this workspace already resolved (and has downloaded).
        std::fs::copy(root().join("Cargo.lock"), dir.join("Cargo.lock")).expect("lockfile");
        std::fs::write(dir.join(".gitignore"), "/target\n").expect(".gitignore");
        let repo = Repo {
            dir,
            member,
            template,
        };
        repo.git(&["init", "-q", "-b", "main"]);
        repo.git(&["config", "user.email", "tests@hotfix"]);
        repo.git(&["config", "user.name", "hotfix tests"]);
        // The lockfile as cargo trims it, committed with the rest.
        run(
            repo.cargo().args(["metadata", "--format-version", "1"]),
            "cargo metadata",
        );
        repo.commit("A: shipped");
        repo
    }

    pub fn git(&self, args: &[&str]) -> String {
        run(
            Command::new("git").arg("-C").arg(&self.dir).args(args),
            &format!("git {args:?}"),
        )
    }

    /// Commits everything; returns the commit id.
    pub fn commit(&self, message: &str) -> String {
        self.git(&["add", "-A"]);
        self.git(&["commit", "-q", "-m", message]);
        self.head()
    }

    pub fn head(&self) -> String {
        self.git(&["rev-parse", "HEAD"])
    }

    /// Puts the working tree back to HEAD.
    pub fn reset(&self) {
        self.git(&["checkout", "-q", "--", "."]);
        self.git(&["clean", "-q", "-fd"]);
    }

    /// A path inside the host package.
    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.join(&self.member).join(rel)
    }

    /// Replaces `from` (which must be there) by `to` in a file of the host.
    pub fn edit(&self, rel: &str, from: &str, to: &str) {
        let p = self.path(rel);
        let text = std::fs::read_to_string(&p).expect("read source");
        assert!(text.contains(from), "{rel} has no `{from}`");
        std::fs::write(&p, text.replacen(from, to, 1)).expect("write source");
    }

    fn cargo(&self) -> Command {
        let mut c = Command::new(env!("CARGO"));
        c.current_dir(&self.dir)
            .env("CARGO_TARGET_DIR", self.template.target_dir());
        c
    }

    /// Builds the host as `cargo build -p fixable-host` does; its executable.
    pub fn build_host(&self) -> PathBuf {
        self.build_host_with(&[])
    }

    /// Builds the host as `cargo build -p PACKAGE ARGS` does (`ARGS`: more
    /// cargo options, `--features F`); its executable (in `debug/`).
    pub fn build_host_with(&self, args: &[&str]) -> PathBuf {
        let package = self.template.package;
        run(
            self.cargo()
                .args(["build", "--quiet", "-p", package])
                .args(args),
            &format!("cargo build -p {package} {}", args.join(" ")),
        );
        self.template.target_dir().join("debug").join(package)
    }

    /// `hotfix ARGS` in the repository.
    pub fn hotfix(&self, ctl: &Path, args: &[&str]) -> Run {
        let out = Command::new(hotfix_exe())
            .current_dir(&self.dir)
            .env("HOTFIX_CONTROL_DIR", ctl)
            .env("CARGO_TARGET_DIR", self.template.target_dir())
            .env("CARGO", env!("CARGO"))
            .args(args)
            .output()
            .expect("run hotfix");
        Run {
            code: out.status.code().expect("hotfix exited, not killed"),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }
}

/// A running host (`fixable-host`, `tokio-fixable-host`), asked through its
/// stdin.
pub struct Host {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    pub pid: u32,
}

impl Host {
    /// Starts `exe` (a copy of it in `ctl`, so later builds cannot replace
    /// the file under the running process) with control directory `ctl`.
    pub fn start(exe: &Path, ctl: &Path) -> Host {
        let copy = ctl.join(exe.file_name().expect("the host's file name"));
        std::fs::copy(exe, &copy).expect("copy the host");
        Host::start_exe(&copy, ctl)
    }

    /// Starts `exe` itself (no copy) with control directory `ctl`.
    pub fn start_exe(exe: &Path, ctl: &Path) -> Host {
        let mut child = Command::new(exe)
            .env("HOTFIX_CONTROL_DIR", ctl)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start the host");
        let stdin = child.stdin.take().expect("stdin");
        let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
        let mut first = String::new();
        stdout.read_line(&mut first).expect("ready line");
        let pid = first
            .trim()
            .strip_prefix("ready pid ")
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("not a ready line: {first:?}"));
        let sock = ctl.join(format!("{pid}.sock"));
        let start = std::time::Instant::now();
        while !sock.exists() {
            assert!(
                start.elapsed() < WAIT,
                "no control socket {}",
                sock.display()
            );
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        Host {
            child,
            stdin,
            stdout,
            pid,
        }
    }

    /// Sends one line, returns the answer.
    pub fn ask(&mut self, line: &str) -> String {
        writeln!(self.stdin, "{line}").expect("write to the host");
        self.stdin.flush().expect("flush");
        let mut answer = String::new();
        self.stdout.read_line(&mut answer).expect("read the answer");
        answer.trim().to_owned()
    }

    /// Reads one more line the host wrote, without sending one (a line a
    /// patch printed comes before the answer).
    pub fn line(&mut self) -> String {
        let mut line = String::new();
        self.stdout.read_line(&mut line).expect("read a line");
        line.trim().to_owned()
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
