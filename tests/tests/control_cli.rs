//! End to end through the control socket: the real `demo-server`, operated by
//! the real `hotfix` command, with a client connection that stays open.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use hotfix_tests::demo::{Server, build_demo_patch, control_dir, hotfix_exe};
use hotfix_tests::scratch_dir;
use serde_json::Value;

/// What one run of `hotfix` gave.
struct Run {
    code: i32,
    stdout: String,
    stderr: String,
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

/// Runs `hotfix ARGS` with the test's control directory.
fn hotfix(ctl: &Path, args: &[&str]) -> Run {
    let out = Command::new(hotfix_exe())
        .env("HOTFIX_CONTROL_DIR", ctl)
        .args(args)
        .output()
        .expect("run hotfix");
    Run {
        code: out.status.code().expect("hotfix exited, not killed"),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// `hotfix status PID --json`, parsed.
fn status_json(ctl: &Path, pid: i32) -> Value {
    let r = hotfix(ctl, &["status", &pid.to_string(), "--json"]);
    assert_eq!(r.code, 0, "{r:?}");
    serde_json::from_str(&r.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {r:?}"))
}

fn patch_names(status: &Value) -> Vec<String> {
    status["patches"]
        .as_array()
        .expect("patches is an array")
        .iter()
        .map(|p| p["name"].as_str().expect("a name").to_owned())
        .collect()
}

fn start(ctl: &Path) -> Server {
    Server::start_with_env(&[], &[("HOTFIX_CONTROL_DIR", ctl)])
}

#[test]
fn ps_check_apply_status_revert_on_a_live_server() {
    let ctl = control_dir("cli-e2e");
    let patch = build_demo_patch();
    let patch_arg = patch.to_str().expect("a UTF-8 path");
    let mut server = start(&ctl);
    let pid = server.pid.to_string();
    let mut c = server.connect();
    let shipped = [
        ("SUM 1 2", "-1"),
        ("DIV 1 0", "ERR attempt to divide by zero"),
        ("CLASS", "Role"),
        ("PATCHES", "none"),
    ];
    for (q, a) in shipped {
        assert_eq!(c.ask(q), a, "{q}");
    }

    // ps lists it.
    let r = hotfix(&ctl, &["ps"]);
    assert_eq!(r.code, 0, "{r:?}");
    let line = r
        .stdout
        .lines()
        .find(|l| l.split_whitespace().next() == Some(&pid))
        .unwrap_or_else(|| panic!("ps does not list {pid}: {r:?}"));
    assert!(
        line.contains("demo-server") && line.ends_with("none"),
        "{line}"
    );

    // check: what would change, nothing changed.
    let r = hotfix(&ctl, &["check", &pid, patch_arg]);
    assert_eq!(r.code, 0, "{r:?}");
    for needle in [
        "demo-patch 0.1.0",
        "passes every check; nothing was applied",
        "demo_server::handlers::sum",
        "demo_server::handlers::div",
        "demo_server::handlers::add_score",
        "Role::getClassName[abi:cxx11]() (foreign)",
        "now: the original",
    ] {
        assert!(r.stdout.contains(needle), "{needle:?} missing: {r:?}");
    }
    for (q, a) in shipped {
        assert_eq!(c.ask(q), a, "after check: {q}");
    }
    assert!(patch_names(&status_json(&ctl, server.pid)).is_empty());

    // apply: the open connection gets the fixes at once.
    let r = hotfix(&ctl, &["apply", &pid, patch_arg]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(
        r.stdout
            .starts_with(&format!("{pid}: applied demo-patch 0.1.0 #")),
        "{r:?}"
    );
    assert_eq!(c.ask("SUM 1 2"), "3");
    server.wait_stderr("control socket request");
    assert!(
        server.stderr().contains("command=Apply"),
        "who applied is logged"
    );
    assert_eq!(c.ask("DIV 1 0"), "ERR division by zero");
    assert_eq!(c.ask("CLASS"), "Mage");
    assert!(c.ask("PATCHES").starts_with("demo-patch 0.1.0 ["));

    // status --json parses and says the same.
    let s = status_json(&ctl, server.pid);
    assert_eq!(s["pid"].as_i64(), Some(i64::from(server.pid)));
    assert_eq!(patch_names(&s), ["demo-patch"]);
    let id = s["patches"][0]["id"].as_u64().expect("an id");
    let live: Vec<(&str, u64)> = s["functions"]
        .as_array()
        .expect("functions")
        .iter()
        .map(|f| (f["function"].as_str().unwrap(), f["id"].as_u64().unwrap()))
        .collect();
    assert!(
        live.contains(&("demo_server::handlers::sum", id)),
        "{live:?}"
    );
    assert!(
        live.contains(&("Role::getClassName[abi:cxx11]()", id)),
        "{live:?}"
    );
    let table = hotfix(&ctl, &["status", &pid]);
    assert_eq!(table.code, 0, "{table:?}");
    assert!(table.stdout.contains(&format!("#{id}")), "{table:?}");
    let r = hotfix(&ctl, &["ps"]);
    assert!(
        r.stdout.contains(&format!("demo-patch 0.1.0 #{id}")),
        "{r:?}"
    );

    // Checking or applying it again is refused: exit 1, nothing changes.
    for cmd in ["check", "apply"] {
        let r = hotfix(&ctl, &[cmd, &pid, patch_arg]);
        assert_eq!(r.code, 1, "{cmd}: {r:?}");
        assert!(r.stderr.contains("already applied"), "{cmd}: {r:?}");
    }

    // A garbage file: exit 1, nothing changes.
    let dir = scratch_dir("cli-garbage");
    let junk = dir.join("libjunk.so");
    fs::write(&junk, b"not a shared library at all\n\x00\x01").expect("write junk");
    fs::set_permissions(&junk, fs::Permissions::from_mode(0o644)).expect("chmod junk");
    let junk_arg = junk.to_str().expect("a UTF-8 path");
    for cmd in ["check", "apply"] {
        let r = hotfix(&ctl, &[cmd, &pid, junk_arg]);
        assert_eq!(r.code, 1, "{cmd} junk: {r:?}");
        assert!(r.stderr.contains("not a loadable shared object"), "{r:?}");
    }
    assert_eq!(patch_names(&status_json(&ctl, server.pid)), ["demo-patch"]);
    assert_eq!(c.ask("SUM 1 2"), "3");
    let r = hotfix(&ctl, &["inspect", junk_arg]);
    assert_eq!(r.code, 1, "inspect junk: {r:?}");

    // revert restores, on the same connection.
    let r = hotfix(&ctl, &["revert", &pid]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(
        r.stdout
            .contains(&format!("reverted demo-patch 0.1.0 #{id}")),
        "{r:?}"
    );
    for (q, a) in shipped {
        assert_eq!(c.ask(q), a, "after revert: {q}");
    }
    assert!(patch_names(&status_json(&ctl, server.pid)).is_empty());
    let r = hotfix(&ctl, &["revert", &pid]);
    assert_eq!(r.code, 1, "nothing left to revert: {r:?}");
    assert!(r.stderr.contains("nothing to revert"), "{r:?}");
    let r = hotfix(&ctl, &["revert", &pid, "--all"]);
    assert_eq!(r.code, 0, "--all of nothing is done: {r:?}");
    assert!(r.stdout.contains("no patch applied now"), "{r:?}");

    // Usage and connection errors: exit 2.
    assert_eq!(hotfix(&ctl, &["apply", patch_arg]).code, 2);
    assert_eq!(hotfix(&ctl, &["frobnicate"]).code, 2);
    assert_eq!(hotfix(&ctl, &["status", "999999999"]).code, 2);
    assert_eq!(hotfix(&ctl, &["check", &pid, "/no/such/file.so"]).code, 2);
    server.assert_alive();
    let _ = fs::remove_dir_all(&dir);
}

#[test]
fn inspect_reads_a_patch_offline() {
    let patch = build_demo_patch();
    let ctl = control_dir("cli-inspect");
    let r = hotfix(&ctl, &["inspect", patch.to_str().expect("UTF-8")]);
    assert_eq!(r.code, 0, "{r:?}");
    let bytes = fs::read(&patch).expect("read the patch");
    assert!(
        r.stdout
            .contains(&format!("size             {} bytes", bytes.len())),
        "{r:?}"
    );
    let sha = r
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("sha256           "))
        .expect("a sha256 line");
    assert_eq!(sha.len(), 64, "{sha}");
    for needle in [
        "name             demo-patch",
        "version          0.1.0",
        "target           x86_64-unknown-linux-gnu",
        "demo_server::handlers::sum  `fn(i64, i64)->Option<i64>`",
        "Role::getClassName[abi:cxx11]() (foreign)",
        "demo_server::state::SCORES",
    ] {
        assert!(r.stdout.contains(needle), "{needle:?} missing: {r:?}");
    }
}

#[test]
fn apply_to_several_processes_is_undone_when_one_refuses() {
    let ctl = control_dir("cli-multi");
    let patch = build_demo_patch();
    let patch_arg = patch.to_str().expect("a UTF-8 path");
    let mut a = start(&ctl);
    let mut b = start(&ctl);
    let (pa, pb) = (a.pid.to_string(), b.pid.to_string());
    let (mut ca, mut cb) = (a.connect(), b.connect());

    // B has the patch already: it will refuse it.
    assert_eq!(hotfix(&ctl, &["apply", &pb, patch_arg]).code, 0);
    assert_eq!(cb.ask("SUM 1 2"), "3");

    let r = hotfix(&ctl, &["apply", "--pid", &pa, "--pid", &pb, patch_arg]);
    assert_eq!(r.code, 1, "{r:?}");
    let lines: Vec<&str> = r.stdout.lines().collect();
    assert_eq!(lines.len(), 3, "{r:?}");
    assert!(
        lines[0].starts_with(&format!("{pa}: applied demo-patch")),
        "{r:?}"
    );
    assert!(lines[1].starts_with(&format!("{pb}: refused: ")), "{r:?}");
    assert!(lines[1].contains("already applied"), "{r:?}");
    assert!(lines[2].starts_with(&format!("{pa}: reverted #")), "{r:?}");
    assert_eq!(ca.ask("SUM 1 2"), "-1", "A was put back");
    assert!(patch_names(&status_json(&ctl, a.pid)).is_empty());
    assert_eq!(patch_names(&status_json(&ctl, b.pid)), ["demo-patch"]);

    // Both clean: both patched, one line each.
    assert_eq!(hotfix(&ctl, &["revert", &pb]).code, 0);
    let r = hotfix(&ctl, &["apply", "--pid", &pa, "--pid", &pb, patch_arg]);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(r.stdout.lines().count(), 2, "{r:?}");
    assert_eq!(
        (ca.ask("SUM 1 2"), cb.ask("SUM 1 2")),
        ("3".into(), "3".into())
    );

    let r = hotfix(&ctl, &["ps"]);
    for p in [&pa, &pb] {
        assert!(
            r.stdout
                .lines()
                .any(|l| l.starts_with(p.as_str()) && l.contains("demo-patch 0.1.0 #")),
            "{r:?}"
        );
    }
    a.assert_alive();
    b.assert_alive();

    // B exits: its socket is left behind, and ps ignores and removes it.
    let b_socket = ctl.join(format!("{pb}.sock"));
    assert!(b_socket.exists());
    drop(b);
    let r = hotfix(&ctl, &["ps"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(!r.stdout.contains(&format!("\n{pb} ")), "{r:?}");
    assert!(r.stdout.contains(&format!("\n{pa} ")), "{r:?}");
    assert!(!b_socket.exists(), "the dead process's socket was removed");
    assert_eq!(hotfix(&ctl, &["status", &pb]).code, 2);
}

#[test]
fn a_server_that_trusts_a_key_applies_only_what_it_signed() {
    let ctl = control_dir("cli-signed");
    let keys = scratch_dir("cli-keys");
    let name = keys.join("release");
    let r = hotfix(&ctl, &["keygen", name.to_str().unwrap()]);
    assert_eq!(r.code, 0, "{r:?}");
    let public = keys.join("release.pub");
    let secret = keys.join("release.secret");
    assert_eq!(
        fs::metadata(&secret).unwrap().permissions().mode() & 0o777,
        0o600,
        "the secret key is its owner's only"
    );
    // The demo patch, copied where its signature can live beside it.
    let patch = keys.join("libdemo_patch.so");
    fs::copy(build_demo_patch(), &patch).unwrap();
    fs::set_permissions(&patch, fs::Permissions::from_mode(0o755)).unwrap();
    let patch_arg = patch.to_str().unwrap();

    let mut server = Server::start_with_env(
        &["--trusted-key", public.to_str().unwrap()],
        &[("HOTFIX_CONTROL_DIR", &ctl)],
    );
    let pid = server.pid.to_string();
    let mut c = server.connect();
    assert_eq!(c.ask("SUM 1 2"), "-1");

    let r = hotfix(&ctl, &["apply", &pid, patch_arg]);
    assert_eq!(r.code, 1, "an unsigned patch is refused: {r:?}");
    assert!(r.stderr.contains("not signed"), "{r:?}");
    assert_eq!(c.ask("SUM 1 2"), "-1");

    let r = hotfix(
        &ctl,
        &["sign", "--key", secret.to_str().unwrap(), patch_arg],
    );
    assert_eq!(r.code, 0, "{r:?}");
    let r = hotfix(&ctl, &["inspect", patch_arg]);
    assert!(r.stdout.contains("signer           key "), "{r:?}");
    let r = hotfix(&ctl, &["apply", &pid, patch_arg]);
    assert_eq!(r.code, 0, "the signed patch applies: {r:?}");
    assert_eq!(c.ask("SUM 1 2"), "3");
    server.assert_alive();
}
