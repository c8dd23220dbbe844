//! Linked patches (`hotfix build --base REV --pid PID`) of a host running a
//! multi-thread tokio runtime, in a real git repository made from
//! `tests/fixtures/tokio-fixable`: a fixed `async fn` that sleeps on the
//! host's timer, spawns on the host's runtime and locks `parking_lot` mutexes
//! (a new one, and the host's own static) applies, answers on the runtime's
//! workers, and reverts; a patch built with a dependency feature the host was
//! built without is refused, at build time and by the running host, before any
//! of it runs.

use hotfix_tests::demo::control_dir;
use hotfix_tests::fixable::{Host, Repo, Run, TOKIO_FIXABLE};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

const LIB: &str = "src/lib.rs";

/// How long the fixed `greet` sleeps before it answers.
const SLEEP: Duration = Duration::from_millis(200);

/// The fix: no shouting; the greeting made in a spawned task after a sleep,
/// its word kept in a new `parking_lot::Mutex`, the name recorded in the
/// host's own `SEEN` (a `parking_lot::Mutex<Vec<String>>` static).
fn fix(repo: &Repo) {
    repo.edit(
        LIB,
        "    tokio::task::yield_now().await;\n    format!(\"HELLO {}!\", name.to_uppercase())\n",
        &format!(
            "    tokio::time::sleep(std::time::Duration::from_millis({})).await;
    let words = std::sync::Arc::new(Mutex::new(Vec::new()));
    let theirs = words.clone();
    let name = tokio::spawn(async move {{
        tokio::time::sleep(std::time::Duration::from_millis(1)).await;
        theirs.lock().push(\"hello\".to_owned());
        SEEN.lock().push(name.clone());
        name
    }})
    .await
    .expect(\"the greeting task\");
    let mut words = words.lock().clone();
    words.push(name);
    words.join(\" \")
",
            SLEEP.as_millis()
        ),
    );
}

/// The file `hotfix build` printed after `built `.
fn built_file(run: &Run) -> PathBuf {
    run.built().0
}

/// Builds the host (`cargo build -p tokio-fixable-host ARGS`) and copies its
/// executable to `dir` (`hotfix build --pid` and `--host` take the profile
/// from a `debug` or `release` directory, as under `target/`): both tests
/// build into one target directory, with and without a feature, so the build
/// and the copy are one step.
fn host_exe(repo: &Repo, args: &[&str], dir: &Path) -> PathBuf {
    static BUILD: Mutex<()> = Mutex::new(());
    let _one = BUILD.lock().unwrap_or_else(|e| e.into_inner());
    let built = repo.build_host_with(args);
    std::fs::create_dir_all(dir).expect("create the host's directory");
    let copy = dir.join(built.file_name().expect("a file name"));
    std::fs::copy(&built, &copy).expect("copy the host");
    copy
}

/// `burst N NAME`'s answer from the shipped or the fixed `greet`.
fn burst_answer(n: usize, name: &str, fixed: bool) -> String {
    (0..n)
        .map(|i| {
            if fixed {
                format!("hello {name}{i}")
            } else {
                format!("HELLO {}{i}!", name.to_uppercase())
            }
        })
        .collect::<Vec<_>>()
        .join(" | ")
}

#[test]
fn a_fixed_async_fn_sleeping_spawning_and_locking_runs_on_the_hosts_runtime_and_reverts() {
    let repo = Repo::of(TOKIO_FIXABLE, "e2e");
    let ctl = control_dir("tokio-e2e");
    // A copy outside any cargo output directory: its directory names no
    // profile, the default (dev) is the host's.
    let exe = host_exe(&repo, &[], &ctl);
    let mut host = Host::start_exe(&exe, &ctl);
    let pid = host.pid.to_string();
    assert_eq!(host.ask("greet ada"), "HELLO ADA!", "the shipped bug");
    assert_eq!(host.ask("burst 4 b"), burst_answer(4, "b", false));
    assert_eq!(host.ask("seen"), "", "the shipped greet records nothing");

    fix(&repo);
    let run = repo.hotfix(&ctl, &["build", "--base", "HEAD", "--pid", &pid]);
    assert_eq!(run.code, 0, "{run:?}");
    assert!(
        run.stdout.contains("replace tokio_fixable_host::greet"),
        "{run:?}"
    );
    assert!(
        run.stdout.contains("(profile dev, features: default)"),
        "the profile is the host's: {run:?}"
    );
    let patch = built_file(&run);
    assert_eq!(
        patch.extension().and_then(|e| e.to_str()),
        Some("hotfix"),
        "a linked patch: {run:?}"
    );
    assert!(patch.is_file(), "{run:?}");
    // Still the shipped code: building touches nothing of the host.
    assert_eq!(host.ask("greet ada"), "HELLO ADA!");

    let applied = repo.hotfix(&ctl, &["apply", &pid, &patch.display().to_string()]);
    assert_eq!(applied.code, 0, "{applied:?}");
    assert!(
        applied.stdout.contains("tokio_fixable_host::greet"),
        "{applied:?}"
    );

    // The fixed greet: the host's timer slept, its runtime ran the spawned
    // task, the new mutex held the word.
    let asked = Instant::now();
    assert_eq!(host.ask("greet ada"), "hello ada");
    assert!(
        asked.elapsed() >= SLEEP,
        "the fix sleeps {SLEEP:?} on the host's timer: answered in {:?}",
        asked.elapsed()
    );
    // Sixteen at once, each in its own task on the runtime's two workers.
    assert_eq!(host.ask("burst 16 c"), burst_answer(16, "c", true));
    // The host's own static, written by the patch, read by the host.
    let mut names: Vec<String> = (0..16).map(|i| format!("c{i}")).collect();
    names.push("ada".into());
    names.sort();
    assert_eq!(host.ask("seen"), names.join(","));
    // Again, while the first burst's timers are gone: nothing was left half-done.
    assert_eq!(host.ask("burst 3 d"), burst_answer(3, "d", true));

    let reverted = repo.hotfix(&ctl, &["revert", &pid]);
    assert_eq!(reverted.code, 0, "{reverted:?}");
    assert_eq!(host.ask("greet ada"), "HELLO ADA!", "the bug is back");
    assert_eq!(host.ask("burst 4 e"), burst_answer(4, "e", false));
    names.extend((0..3).map(|i| format!("d{i}")));
    names.sort();
    assert_eq!(
        host.ask("seen"),
        names.join(","),
        "the host keeps what the patch recorded; the shipped greet records nothing"
    );
}

#[test]
fn a_patch_built_with_a_dependency_feature_the_host_lacks_is_refused_before_it_runs() {
    let repo = Repo::of(TOKIO_FIXABLE, "feature");
    let ctl = control_dir("tokio-feature");
    let plain = host_exe(&repo, &[], &ctl.join("plain/debug"));
    // The same source built with `extra` (tokio's `test-util`).
    let extra = host_exe(&repo, &["--features", "extra"], &ctl.join("extra/debug"));
    let mut host = Host::start_exe(&plain, &ctl);
    let pid = host.pid.to_string();
    assert_eq!(host.ask("extra"), "false");
    assert_eq!(host.ask("greet ada"), "HELLO ADA!");

    fix(&repo);
    // At build time: the host runs no build with `extra`.
    let run = repo.hotfix(
        &ctl,
        &[
            "build",
            "--base",
            "HEAD",
            "--pid",
            &pid,
            "--features",
            "extra",
        ],
    );
    assert_eq!(run.code, 1, "{run:?}");
    assert!(
        run.stderr
            .contains("was not built from HEAD with these settings")
            && run.stderr.contains("--features"),
        "{run:?}"
    );

    // A patch made for the host built with `extra`, applied to the one
    // built without it.
    let out = ctl.join("patch-extra.hotfix");
    let out_arg = out.display().to_string();
    let extra_arg = extra.display().to_string();
    let run = repo.hotfix(
        &ctl,
        &[
            "build",
            "--base",
            "HEAD",
            "--host",
            &extra_arg,
            "--features",
            "extra",
            "-o",
            &out_arg,
        ],
    );
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(built_file(&run), out, "{run:?}");
    assert!(
        run.stdout
            .contains("(profile dev, features: default, extra)"),
        "{run:?}"
    );
    let applied = repo.hotfix(&ctl, &["apply", &pid, &out_arg]);
    assert_eq!(applied.code, 1, "{applied:?}");
    let named = |s: &str| {
        (s.contains("was not built from the code this host runs: function ")
            || s.contains("cannot be linked into this host: symbol "))
            && s.contains("tokio_fixable_host")
    };
    assert!(named(&applied.stderr), "{applied:?}");
    // Nothing of it ran: the shipped answers, nothing recorded.
    assert_eq!(host.ask("greet ada"), "HELLO ADA!");
    assert_eq!(host.ask("burst 2 b"), burst_answer(2, "b", false));
    assert_eq!(host.ask("seen"), "");
    let status = repo.hotfix(&ctl, &["status", &pid]);
    assert_eq!(status.code, 0, "{status:?}");
    assert!(
        status.stdout.contains("no patch applied"),
        "nothing applied: {status:?}"
    );

    // The very patch is good for the host it was built for.
    drop(host);
    let mut host = Host::start_exe(&extra, &ctl);
    assert_eq!(host.ask("extra"), "true");
    let applied = repo.hotfix(&ctl, &["apply", &host.pid.to_string(), &out_arg]);
    assert_eq!(applied.code, 0, "{applied:?}");
    assert_eq!(host.ask("greet ada"), "hello ada");
    assert_eq!(host.ask("seen"), "ada");
}
