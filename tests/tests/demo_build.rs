//! The README's primary workflow on the real demo: a copy of this workspace as
//! a git repository, the server built and running, `sum` fixed in place in
//! `demo-server/src/handlers.rs`, `hotfix build --base HEAD`, `hotfix apply`,
//! the fixed answer on a connection that stayed open, `hotfix revert`.

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
    let server = Server::start_exe(
        &target.join("debug/demo-server"),
        &[],
        &[("HOTFIX_CONTROL_DIR", &ctl)],
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
}
