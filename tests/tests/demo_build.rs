//! The README's primary workflow on the real demo: a copy of this workspace as
//! a git repository, the server built and running, `sum` fixed in place in
//! `demo-server/src/handlers.rs`, `hotfix build --base HEAD`, `hotfix apply`,
//! the fixed answer on a connection that stayed open, `hotfix revert`.
//!
//! Then, on the same server (the first patch reverted), a linked patch:
//! `hotfix build --base HEAD --pid PID` of fixes whose code uses the host's
//! std (`println!`, `HashMap`, `env::var`, `thread::spawn`, `format!`, a
//! panic), applied and reverted.

use hotfix_tests::demo::{Server, control_dir, hotfix_exe};
use hotfix_tests::{fixtures_target, root};
use std::path::Path;
use std::process::Command;

fn run(cmd: &mut Command, what: &str) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(
        out.status.success(),
        "{what} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Copies the workspace's files (tracked and new, not ignored) into `dir`
/// and commits them there.
fn copy_workspace(dir: &Path) {
    let _ = std::fs::remove_dir_all(dir);
    let files = run(
        Command::new("git").arg("-C").arg(root()).args([
            "ls-files",
            "-z",
            "--cached",
            "--others",
            "--exclude-standard",
        ]),
        "git ls-files",
    );
    let mut copied = 0;
    for rel in files.split('\0').filter(|f| !f.is_empty()) {
        let from = root().join(rel);
        if !from.is_file() {
            continue; // deleted in the working tree
        }
        let to = dir.join(rel);
        std::fs::create_dir_all(to.parent().expect("a parent")).expect("mkdir");
        std::fs::copy(&from, &to).expect("copy");
        copied += 1;
    }
    assert!(copied > 50, "only {copied} files copied");
    let git = |args: &[&str]| run(Command::new("git").arg("-C").arg(dir).args(args), "git");
    git(&["init", "-q", "-b", "main"]);
    git(&["config", "user.email", "tests@hotfix"]);
    git(&["config", "user.name", "hotfix tests"]);
    git(&["add", "-A"]);
    git(&["commit", "-q", "-m", "the demo as shipped"]);
}

#[test]
fn the_readme_fix_in_place_of_the_demo_is_built_applied_and_reverted() {
    let dir = fixtures_target().join("demo-repo").join("hotfix");
    let target = fixtures_target().join("demo-repo-target");
    copy_workspace(&dir);
    run(
        Command::new(env!("CARGO"))
            .current_dir(&dir)
            .env("CARGO_TARGET_DIR", &target)
            .args(["build", "--quiet", "-p", "demo-server"]),
        "cargo build -p demo-server",
    );
    let ctl = control_dir("demo-build");
    let mut server = Server::start_exe(
        &target.join("debug/demo-server"),
        &[],
        &[
            ("HOTFIX_CONTROL_DIR", &ctl),
            ("DEMO_FIX_WHO", Path::new("the-demo-test")),
        ],
    );
    let mut conn = server.connect();
    assert_eq!(conn.ask("SUM 1 2"), "-1", "the shipped bug");

    let handlers = dir.join("demo-server/src/handlers.rs");
    let text = std::fs::read_to_string(&handlers).expect("handlers.rs");
    assert!(text.contains("    a.checked_sub(b)\n"), "the README's bug");
    std::fs::write(
        &handlers,
        text.replace("    a.checked_sub(b)\n", "    a.checked_add(b)\n"),
    )
    .expect("write the fix");

    let hotfix = |args: &[&str]| {
        let out = Command::new(hotfix_exe())
            .current_dir(&dir)
            .env("HOTFIX_CONTROL_DIR", &ctl)
            .env("CARGO_TARGET_DIR", &target)
            .env("CARGO", env!("CARGO"))
            .args(args)
            .output()
            .expect("run hotfix");
        let text = format!(
            "exit {:?}\n{}{}",
            out.status.code(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            text,
        )
    };
    let (code, stdout, all) = hotfix(&["build", "--base", "HEAD"]);
    assert_eq!(code, Some(0), "{all}");
    assert!(
        stdout.contains("replace demo_server::handlers::sum")
            && stdout.contains("demo-server/src/handlers.rs:13"),
        "{all}"
    );
    let patch = stdout
        .lines()
        .find_map(|l| l.strip_prefix("built "))
        .and_then(|l| l.split(" sha256 ").next())
        .unwrap_or_else(|| panic!("no built line: {all}"))
        .to_owned();

    let pid = server.pid.to_string();
    let (code, stdout, all) = hotfix(&["apply", &pid, &patch]);
    assert_eq!(code, Some(0), "{all}");
    assert!(stdout.contains("demo_server::handlers::sum"), "{all}");
    assert_eq!(conn.ask("SUM 1 2"), "3", "fixed, on the same connection");
    assert_eq!(conn.ask("SCORE alice 5"), "10", "the rest unchanged");

    let (code, _, all) = hotfix(&["revert", &pid]);
    assert_eq!(code, Some(0), "{all}");
    assert_eq!(conn.ask("SUM 1 2"), "-1", "the bug is back");

    // The linked flow, on the same server and connection.
    linked_fix(&handlers, &text);
    let started = std::time::Instant::now();
    let (code, stdout, all) = hotfix(&["build", "--base", "HEAD", "--pid", &pid]);
    eprintln!("hotfix build --pid took {:?}", started.elapsed());
    assert_eq!(code, Some(0), "{all}");
    let exe = target
        .join("debug/demo-server")
        .canonicalize()
        .expect("the host");
    for line in [
        "replace demo_server::handlers::sum".to_owned(),
        "replace demo_server::handlers::div".to_owned(),
        format!(
            "  host    {} (profile dev, features: default)",
            exe.display()
        ),
        "  build   cargo build -p demo-server".to_owned(),
    ] {
        assert!(stdout.contains(&line), "no `{line}`: {all}");
    }
    assert!(
        !stdout.contains("replace demo_server::handlers::add_score"),
        "{all}"
    );
    let plan = |what: &str| -> Vec<&str> {
        stdout
            .lines()
            .filter(|l| l.starts_with(&format!("  {what} ")))
            .collect()
    };
    // The two slots' new code; the fix's own closure, new code the patch
    // carries; never the host's std (its env, panic machinery, allocator).
    let slots = plan("slot");
    assert!(
        slots.len() == 2
            && slots
                .iter()
                .any(|l| l.contains("handlers::") && l.contains("sum"))
            && slots
                .iter()
                .any(|l| l.contains("handlers::") && l.contains("div")),
        "{all}"
    );
    let carried = plan("carry");
    assert!(
        carried.iter().any(|l| l.contains("handlers::")
            && l.contains("sum::{{closure}}")
            && l.ends_with("it is new")),
        "{all}"
    );
    for host_code in [
        "std::env::",
        "core::panicking::",
        "std::panicking::begin_panic",
        "std::panicking::rust_panic",
        "__rust_alloc",
        "__rdl_",
    ] {
        assert!(
            !carried.iter().any(|l| l.contains(host_code)),
            "{host_code} is the host's, not carried: {all}"
        );
    }
    let linked = stdout
        .lines()
        .find_map(|l| l.strip_prefix("built "))
        .and_then(|l| l.split(" (").next())
        .unwrap_or_else(|| panic!("no built line: {all}"))
        .to_owned();
    assert!(
        linked.starts_with(&target.join("hotfix/demo_server-").display().to_string())
            && linked.ends_with(".hotfix"),
        "the default output: {all}"
    );
    let size = std::fs::metadata(&linked).expect("the linked patch").len();
    assert!(size < 1 << 20, "{size} bytes: {all}");
    assert!(stdout.contains(&format!("({size} bytes) sha256 ")), "{all}");

    let (code, stdout, all) = hotfix(&["apply", &pid, &linked]);
    assert_eq!(code, Some(0), "{all}");
    assert!(
        stdout.contains("demo_server::handlers::sum")
            && stdout.contains("demo_server::handlers::div"),
        "{all}"
    );
    assert_eq!(conn.ask("SUM 1 2"), "3", "fixed, on the same connection");
    server.wait_stdout("sum(1, 2) = Some(3) for the-demo-test\n");
    assert_eq!(
        conn.ask(&format!("SUM {} 1", i64::MAX)),
        "ERR overflow: the sum does not fit in 64 bits"
    );
    assert_eq!(
        conn.ask("DIV 1 0"),
        "ERR division of 1 by zero (patched)",
        "a panic through the patch's frames, caught by the host"
    );
    assert_eq!(conn.ask("DIV 7 2"), "3");
    assert_eq!(
        conn.ask("SCORE alice 5"),
        "20",
        "the host's state, unchanged code"
    );
    server.assert_running();
    let mut other = server.connect();
    assert_eq!(other.ask("SUM 20 22"), "42", "a new connection too");
    server.wait_stdout("sum(20, 22) = Some(42) for the-demo-test\n");

    let (code, _, all) = hotfix(&["revert", &pid]);
    assert_eq!(code, Some(0), "{all}");
    assert_eq!(conn.ask("SUM 1 2"), "-1", "the bug is back");
    assert_eq!(conn.ask("DIV 1 0"), "ERR attempt to divide by zero");
    let printed = server.stdout();
    assert_eq!(
        printed.lines().count(),
        3,
        "nothing printed after the revert: {printed:?}"
    );
    server.assert_running();
}

/// Writes the linked flow's fixes over the shipped `handlers.rs` text.
fn linked_fix(handlers: &Path, shipped: &str) {
    let sum = "    a.checked_sub(b)\n";
    let fixed_sum = r#"    let mut terms = std::collections::HashMap::new();
    terms.insert("a", a);
    terms.insert("b", b);
    let who = std::env::var("DEMO_FIX_WHO").unwrap_or_else(|_| "nobody".to_owned());
    let total = std::thread::spawn(move || {
        terms
            .values()
            .try_fold(0i64, |total, term| total.checked_add(*term))
    })
    .join()
    .expect("the adding thread");
    let line = format!("sum({a}, {b}) = {total:?} for {who}");
    println!("{line}");
    total
"#;
    let div = "    if b == -1 {\n";
    let fixed_div = "    if b == 0 {\n        panic!(\"division of {a} by zero (patched)\");\n    }\n    if b == -1 {\n";
    assert!(
        shipped.contains(sum) && shipped.contains(div),
        "the shipped handlers"
    );
    let text = shipped
        .replacen(sum, fixed_sum, 1)
        .replacen(div, fixed_div, 1);
    std::fs::write(handlers, text).expect("write the linked fix");
}
