//! Linked patches (`hotfix build --base REV --pid PID`) of the `fixable`
//! ledger, in real git repositories: fixes whose code uses the host's std
//! (`println!`, `print!`, `format!`, `HashMap`, `thread::spawn`) and async
//! functions, applied and reverted; a patch built for a host of another
//! revision refused by the running host; a host built with `--release`; the
//! package selection, `-p` or the whole workspace, that decides a
//! dependency's features; and two patches stacked, the second calling what
//! the first replaced.
//!
//! `hotfix build --pid` takes the host's profile from the directory of its
//! executable (`target/debug`, `target/release`): each host runs from a copy
//! in a control directory named after that profile directory.

use hotfix_tests::demo::control_dir;
use hotfix_tests::fixable::{FIXABLE, Host, Repo, Run};
use hotfix_tests::root;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, MutexGuard};

const LEDGER: &str = "src/ledger.rs";

/// One test at a time: the repositories share a target directory, whose
/// `debug/fixable-host` each host build overwrites, and the linked builds
/// run one at a time anyway.
fn serial() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

/// A control directory `<tmp>/…/<profile_dir>`: a host started with it runs
/// from `<profile_dir>/fixable-host`.
fn host_dir(name: &str, profile_dir: &str) -> PathBuf {
    let dir = control_dir(name).join(profile_dir);
    std::fs::DirBuilder::new()
        .mode(0o700)
        .create(&dir)
        .expect("create the host's directory");
    dir
}

/// `cargo build --quiet ARGS` in the repository, into `target`.
fn cargo_build(repo: &Repo, target: &Path, args: &[&str]) {
    let out = Command::new(env!("CARGO"))
        .current_dir(&repo.dir)
        .env("CARGO_TARGET_DIR", target)
        .args(["build", "--quiet"])
        .args(args)
        .output()
        .expect("run cargo");
    assert!(
        out.status.success(),
        "cargo build {args:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The file `hotfix build` printed after `built `, which must have the size
/// printed, under 1 MB.
fn built_file(run: &Run) -> PathBuf {
    let (file, size) = run.built();
    assert_eq!(
        std::fs::metadata(&file).expect("the patch file").len(),
        size,
        "{run:?}"
    );
    assert!(size < 1 << 20, "{size} bytes: {run:?}");
    file
}

/// The plan lines of `what` (`slot`, `carry`, ...).
fn plan<'r>(run: &'r Run, what: &str) -> Vec<&'r str> {
    let prefix = format!("  {what} ");
    run.stdout
        .lines()
        .filter(|l| l.starts_with(&prefix))
        .collect()
}

/// `hotfix apply PID FILE`, which must succeed.
fn apply(repo: &Repo, ctl: &Path, host: &Host, patch: &Path) -> Run {
    let run = repo.hotfix(
        ctl,
        &["apply", &host.pid.to_string(), &patch.display().to_string()],
    );
    assert_eq!(run.code, 0, "{run:?}");
    run
}

/// `hotfix revert PID`, which must succeed.
fn revert(repo: &Repo, ctl: &Path, host: &Host) {
    let run = repo.hotfix(ctl, &["revert", &host.pid.to_string()]);
    assert_eq!(run.code, 0, "{run:?}");
}

/// The deposit's fee charged once.
fn fix_deposit(repo: &Repo) {
    repo.edit(
        LEDGER,
        "self.entries.push(amount - fee - fee);",
        "self.entries.push(amount - fee);",
    );
}

/// `hotfix build --base BASE --pid PID` (and `extra`), which must succeed;
/// the run and the patch.
fn build(repo: &Repo, ctl: &Path, base: &str, host: &Host, extra: &[&str]) -> (Run, PathBuf) {
    let started = std::time::Instant::now();
    let pid = host.pid.to_string();
    let mut args = vec!["build", "--base", base, "--pid", &pid];
    args.extend_from_slice(extra);
    let run = repo.hotfix(ctl, &args);
    eprintln!(
        "{}: hotfix build --pid took {:?}",
        repo.member,
        started.elapsed()
    );
    assert_eq!(run.code, 0, "{run:?}");
    let file = built_file(&run);
    (run, file)
}

/// Fixes of every shape, whose code uses the host's std: the deposit's fee
/// charged once, the net computed on a spawned thread from a `HashMap` and
/// printed with `println!` (a line before the answer); the largest entry, the
/// count printed first with `print!`: it waits in the host's own stdout
/// buffer, locked by the host's loop, and begins the answer's line; the label
/// made with `format!`; an async method with an `.await` of its own; an async
/// free fn counting distinct words in a `HashMap`.
fn fix_all(repo: &Repo) {
    repo.edit(
        LEDGER,
        "self.entries.push(amount - fee - fee);",
        "let mut fees = std::collections::HashMap::new();
        fees.insert(amount, fee);
        let net = std::thread::spawn(move || fees.iter().map(|(a, f)| a - f).sum::<i64>())
            .join()
            .expect(\"the net thread\");
        println!(\"deposit {amount}: fee {fee}, net {net}\");
        self.entries.push(net);",
    );
    repo.edit(
        LEDGER,
        "        self.entries.iter().min()\n",
        "        print!(\"of {}: \", self.entries.len());\n        self.entries.iter().max()\n",
    );
    repo.edit(
        LEDGER,
        "write!(f, \"{} entrys\", self.entries.len())",
        "let label = format!(\"{} entries\", self.entries.len());\n        f.write_str(&label)",
    );
    repo.edit(
        LEDGER,
        "        self.balance() + amount\n",
        "        let fee = async { fee_of(amount, self.fee_percent) }.await;\n        self.balance() + amount - fee\n",
    );
    repo.edit(
        LEDGER,
        "    memo.len()\n",
        "    let mut seen = std::collections::HashMap::new();
    for word in memo.split_whitespace() {
        *seen.entry(word).or_insert(0) += 1;
    }
    seen.len()\n",
    );
}

#[test]
fn a_linked_patch_of_sync_and_async_fixes_uses_the_hosts_std_and_reverts() {
    let _serial = serial();
    let repo = Repo::new("linked-std");
    let base = repo.head();
    let exe = repo.build_host();
    let ctl = host_dir("linked-std", "debug");
    let mut host = Host::start(&exe, &ctl);
    let shipped = [
        ("deposit 100", "Some(80)"),
        ("deposit 100", "Some(160)"),
        ("deposits", "2"),
        ("largest", "Some(80)"),
        ("label", "2 entrys"),
        ("quote 100", "260"),
        ("words a b a", "5"),
    ];
    for (q, a) in shipped {
        assert_eq!(host.ask(q), a, "{q}: shipped");
    }

    fix_all(&repo);
    let (run, patch) = build(&repo, &ctl, &base, &host, &[]);
    for line in [
        format!(
            "  host    {} (profile dev, features: default)",
            ctl.join("fixable-host").display()
        ),
        "  build   cargo build -p fixable-host".to_owned(),
        "replace fixable_host::ledger::Ledger::deposit".to_owned(),
        "replace fixable_host::ledger::Ledger::largest".to_owned(),
        "replace fixable_host::ledger::<Ledger as std::fmt::Display>::fmt".to_owned(),
        "replace fixable_host::ledger::Ledger::quote".to_owned(),
        "replace fixable_host::ledger::words".to_owned(),
    ] {
        assert!(run.stdout.contains(&line), "no `{line}`: {run:?}");
    }
    assert_eq!(plan(&run, "slot").len(), 5, "{run:?}");
    // The host's own functions the fixes call stay the host's: its private
    // helper, its #[patchable] balance, the allocator.
    let carried = plan(&run, "carry");
    for host_code in [
        "fixable_host::ledger::fee_of",
        "Ledger::balance",
        "__rust_alloc",
        "__rdl_",
    ] {
        assert!(
            !carried.iter().any(|l| l.contains(host_code)),
            "{host_code} is the host's, not carried: {run:?}"
        );
    }
    assert!(
        carried
            .iter()
            .any(|l| l.contains("fixable_host::ledger::") && l.contains("{{closure}}")),
        "the fix's closures are new code: {run:?}"
    );

    let applied = apply(&repo, &ctl, &host, &patch);
    assert!(
        applied
            .stdout
            .contains("fixable_host::ledger::Ledger::deposit"),
        "{applied:?}"
    );
    assert_eq!(host.ask("deposit 100"), "deposit 100: fee 10, net 90");
    assert_eq!(host.line(), "Some(250)");
    let fixed = [
        ("deposits", "3"),
        ("largest", "of 3: Some(90)"),
        ("label", "3 entries"),
        ("quote 100", "340"),
        ("words a b a", "2"),
    ];
    for (q, a) in fixed {
        assert_eq!(host.ask(q), a, "{q}: fixed");
    }

    revert(&repo, &ctl, &host);
    let reverted = [
        ("deposit 100", "Some(330)"),
        ("deposits", "4"),
        ("largest", "Some(80)"),
        ("label", "4 entrys"),
        ("quote 100", "430"),
        ("words a b a", "5"),
    ];
    for (q, a) in reverted {
        assert_eq!(host.ask(q), a, "{q}: reverted");
    }
}

#[test]
fn a_linked_patch_built_for_another_revision_is_refused_by_the_running_host() {
    let _serial = serial();
    let repo = Repo::new("linked-base");
    let shipped = repo.head();
    let exe = repo.build_host();
    let ctl = host_dir("linked-base", "debug");
    let mut host = Host::start(&exe, &ctl);
    assert_eq!(host.ask("deposit 100"), "Some(80)");

    // A later revision rewrote the body of `deposit`, and was built; the
    // running host is still the first.
    repo.edit(
        LEDGER,
        "let fee = fee_of(amount, self.fee_percent);",
        "let fee = fee_of(amount, self.fee_percent) + 0;",
    );
    let later = repo.commit("B: deposit rewritten");
    let later_dir = host_dir("linked-base-b", "debug");
    let later_exe = later_dir.join("fixable-host");
    std::fs::copy(repo.build_host(), &later_exe).expect("copy the later host");
    fix_deposit(&repo);

    // Built for the later host's executable: it builds, and the running host
    // refuses it, naming the function, before any of it runs.
    let run = repo.hotfix(
        &ctl,
        &[
            "build",
            "--base",
            &later,
            "--host",
            &later_exe.display().to_string(),
        ],
    );
    assert_eq!(run.code, 0, "{run:?}");
    let patch = built_file(&run);
    let pid = host.pid.to_string();
    let applied = repo.hotfix(&ctl, &["apply", &pid, &patch.display().to_string()]);
    assert_eq!(applied.code, 1, "{applied:?}");
    assert!(
        applied.stderr.contains(
            "was not built from the code this host runs: function fixable_host::ledger::Ledger::"
        ) && applied.stderr.contains("deposit"),
        "{applied:?}"
    );
    assert_eq!(
        host.ask("deposit 100"),
        "Some(160)",
        "still the shipped code"
    );
    let status = repo.hotfix(&ctl, &["status", &pid]);
    assert!(
        status.code == 0 && status.stdout.contains("no patch applied"),
        "nothing applied: {status:?}"
    );

    // Built for the running host against the wrong base: refused at build.
    let run = repo.hotfix(&ctl, &["build", "--base", &later, "--pid", &pid]);
    assert_eq!(run.code, 1, "{run:?}");
    assert!(
        run.stderr.contains(
            "the base build is not the code the host runs: function fixable_host::ledger::Ledger::"
        ) && run.stderr.contains("deposit"),
        "{run:?}"
    );

    // Against the revision it runs, the same host takes the fix.
    let (_, patch) = build(&repo, &ctl, &shipped, &host, &[]);
    apply(&repo, &ctl, &host, &patch);
    assert_eq!(host.ask("deposit 100"), "Some(250)", "fixed");
}

#[test]
fn a_release_host_is_patched_with_its_profile() {
    let _serial = serial();
    let repo = Repo::new("linked-release");
    // CI time: the dependencies (hotfix-core and its) unoptimised, and built
    // once, in the target directory of hotfix's own builds (the host's own
    // crate is built as `--release` builds it, and rebuilt by hotfix).
    let manifest = repo.dir.join("Cargo.toml");
    let mut text = std::fs::read_to_string(&manifest).expect("workspace manifest");
    text.push_str("\n[profile.release.package.\"*\"]\nopt-level = 0\n");
    std::fs::write(&manifest, text).expect("workspace manifest");
    let base = repo.commit("A: the dependencies unoptimised in release");
    let target = FIXABLE.target_dir().join("hotfix/linked");
    cargo_build(&repo, &target, &["--release", "-p", "fixable-host"]);
    let ctl = host_dir("linked-release", "release");
    let mut host = Host::start(&target.join("release/fixable-host"), &ctl);
    assert_eq!(host.ask("deposit 100"), "Some(80)");
    assert_eq!(host.ask("words a b a"), "5");

    fix_deposit(&repo);
    repo.edit(
        LEDGER,
        "    memo.len()\n",
        "    let words: std::collections::HashSet<&str> = memo.split_whitespace().collect();
    words.len()\n",
    );
    let (run, patch) = build(&repo, &ctl, &base, &host, &[]);
    for line in [
        format!(
            "  host    {} (profile release, features: default)",
            ctl.join("fixable-host").display()
        ),
        "  build   cargo build -p fixable-host".to_owned(),
    ] {
        assert!(run.stdout.contains(&line), "no `{line}`: {run:?}");
    }
    apply(&repo, &ctl, &host, &patch);
    assert_eq!(host.ask("deposit 100"), "Some(170)");
    assert_eq!(host.ask("words a b a"), "2");
    revert(&repo, &ctl, &host);
    assert_eq!(host.ask("deposit 100"), "Some(250)");
    assert_eq!(host.ask("words a b a"), "5");
}

/// A repository whose workspace has a second member, `other`, enabling the
/// `discount` feature of the host's dependency `rates` (see
/// `tests/fixtures/fixable-workspace`); the host's fee comes from `rates`.
fn workspace_repo(name: &str) -> Repo {
    let repo = Repo::new(name);
    let members = root().join("tests/fixtures/fixable-workspace");
    for file in [
        "rates/Cargo.toml",
        "rates/src/lib.rs",
        "other/Cargo.toml",
        "other/src/lib.rs",
    ] {
        let to = repo.dir.join(file);
        std::fs::create_dir_all(to.parent().expect("a parent")).expect("mkdir");
        std::fs::copy(members.join(file), to).expect("copy a member");
    }
    std::fs::write(
        repo.dir.join("Cargo.toml"),
        format!(
            "[workspace]\nresolver = \"3\"\nmembers = [\"{}\", \"other\"]\n",
            repo.member
        ),
    )
    .expect("workspace manifest");
    let manifest = repo.path("Cargo.toml");
    let mut text = std::fs::read_to_string(&manifest).expect("host manifest");
    text.push_str("rates = { path = \"../rates\" }\n");
    std::fs::write(&manifest, text).expect("host manifest");
    repo.edit(LEDGER, "fee_percent: 10,", "fee_percent: rates::percent(),");
    // The lockfile with the new members, committed with them.
    let out = Command::new(env!("CARGO"))
        .current_dir(&repo.dir)
        .args(["metadata", "--format-version", "1"])
        .output()
        .expect("run cargo metadata");
    assert!(out.status.success(), "cargo metadata: {out:?}");
    repo.commit("A: the fee rate from `rates`, another member");
    repo
}

#[test]
fn the_package_selection_the_host_was_built_with_is_found_and_required() {
    let _serial = serial();
    let repo = workspace_repo("linked-ws");
    let base = repo.head();
    // The same revision built twice: at the root (`rates` with `discount`,
    // unified from `other`), and as `-p fixable-host` (without).
    cargo_build(&repo, &FIXABLE.target_dir(), &[]);
    let ws_ctl = host_dir("linked-ws", "debug");
    let mut ws_host = Host::start(&FIXABLE.target_dir().join("debug/fixable-host"), &ws_ctl);
    cargo_build(&repo, &FIXABLE.target_dir(), &["-p", "fixable-host"]);
    let p_ctl = host_dir("linked-p", "debug");
    let mut p_host = Host::start(&FIXABLE.target_dir().join("debug/fixable-host"), &p_ctl);
    assert_eq!(ws_host.ask("deposit 100"), "Some(82)", "a 9 % fee, twice");
    assert_eq!(p_host.ask("deposit 100"), "Some(80)", "a 10 % fee, twice");

    fix_deposit(&repo);
    // For the root-built host: `-p` gives other symbols, the workspace fits.
    let (run, ws_patch) = build(&repo, &ws_ctl, &base, &ws_host, &[]);
    assert!(
        run.stdout
            .contains("  build   cargo build (the workspace)\n"),
        "{run:?}"
    );
    // For the `-p` host: `-p` fits.
    let p_out = FIXABLE.target_dir().join("hotfix/linked-ws-p.hotfix");
    let (run, p_patch) = build(
        &repo,
        &p_ctl,
        &base,
        &p_host,
        &["-o", &p_out.display().to_string()],
    );
    assert_eq!(p_patch, p_out);
    assert!(
        run.stdout
            .contains("  build   cargo build -p fixable-host\n"),
        "{run:?}"
    );

    // The `-p` patch on the root-built host: refused, naming the function.
    let ws_pid = ws_host.pid.to_string();
    let refused = repo.hotfix(&ws_ctl, &["apply", &ws_pid, &p_patch.display().to_string()]);
    assert_eq!(refused.code, 1, "{refused:?}");
    assert!(
        refused.stderr.contains(
            "was not built from the code this host runs: function fixable_host::ledger::Ledger::"
        ) && refused.stderr.contains("deposit")
            && refused
                .stderr
                .contains("the running host has no such function"),
        "{refused:?}"
    );
    assert_eq!(
        ws_host.ask("deposit 100"),
        "Some(164)",
        "still the shipped code"
    );
    let status = repo.hotfix(&ws_ctl, &["status", &ws_pid]);
    assert!(
        status.code == 0 && status.stdout.contains("no patch applied"),
        "nothing applied: {status:?}"
    );

    // Each patch on its own host.
    apply(&repo, &ws_ctl, &ws_host, &ws_patch);
    assert_eq!(ws_host.ask("deposit 100"), "Some(255)", "a 9 % fee, once");
    apply(&repo, &p_ctl, &p_host, &p_patch);
    assert_eq!(p_host.ask("deposit 100"), "Some(170)", "a 10 % fee, once");
    revert(&repo, &ws_ctl, &ws_host);
    assert_eq!(ws_host.ask("deposit 100"), "Some(337)", "reverted");
}

/// Two linked patches against one base: the second's code calls a function
/// the first replaced, through the host's slot. (The second fix is longer
/// than the code it replaces: every `#[patchable]` function below it moves,
/// and the items the macro generates beside each are named after its place;
/// the unchanged wrapper must still be the host's, not a copy with a private
/// descriptor whose slot no patch sets.)
#[test]
fn a_second_linked_patch_calls_the_first_ones_replacement() {
    let _serial = serial();
    let repo = Repo::new("linked-stack");
    let base = repo.head();
    let exe = repo.build_host();
    let ctl = host_dir("linked-stack", "debug");
    let mut host = Host::start(&exe, &ctl);
    assert_eq!(host.ask("deposit 100"), "Some(80)");

    // The first patch: the balance in cents.
    repo.edit(
        LEDGER,
        "self.entries.iter().sum()",
        "self.entries.iter().sum::<i64>() * 100",
    );
    let (_, first) = build(&repo, &ctl, &base, &host, &[]);
    apply(&repo, &ctl, &host, &first);
    assert_eq!(host.ask("balance"), "8000");
    assert_eq!(host.ask("deposit 100"), "Some(16000)");
    repo.reset();

    // The second: the deposit's fee once, written on more lines (every
    // function below it moves).
    repo.edit(
        LEDGER,
        "self.entries.push(amount - fee - fee);",
        "let net = amount - fee;\n        self.entries.push(net);",
    );
    let (run, second) = build(&repo, &ctl, &base, &host, &[]);
    assert!(
        !plan(&run, "carry")
            .iter()
            .any(|l| l.contains("Ledger::balance")),
        "the host's balance, whose slot the first patch set: {run:?}"
    );
    apply(&repo, &ctl, &host, &second);
    assert_eq!(host.ask("balance"), "16000");
    assert_eq!(
        host.ask("deposit 100"),
        "Some(25000)",
        "the second patch's deposit calls the host's balance, replaced by the first"
    );
}

/// A fix inside a closure: the closure keeps its name when its code changes,
/// and so does the instance of the generic function that calls it
/// (`Iterator::sum` of a `Map` over it); the patch carries that instance
/// too, or the host's copy would call the host's old closure (found on
/// mini-redis: `Db::get`'s `Option::map` closure fixed, the answer unchanged).
#[test]
fn a_fix_inside_a_closure_runs_the_fixed_closure() {
    let _serial = serial();
    let repo = Repo::new("linked-closure");
    repo.edit(
        LEDGER,
        "self.entries.iter().sum()",
        "self.entries.iter().map(|e| *e).sum()",
    );
    let base = repo.commit("the balance through a closure");
    let exe = repo.build_host();
    let ctl = host_dir("linked-closure", "debug");
    let mut host = Host::start(&exe, &ctl);
    assert_eq!(host.ask("deposit 100"), "Some(80)");
    repo.edit(
        LEDGER,
        "self.entries.iter().map(|e| *e).sum()",
        "self.entries.iter().map(|e| *e * 100).sum()",
    );
    let (run, patch) = build(&repo, &ctl, &base, &host, &[]);
    assert!(
        plan(&run, "carry")
            .iter()
            .any(|l| l.contains("which changed")),
        "the function that calls the closure is carried: {run:?}"
    );
    apply(&repo, &ctl, &host, &patch);
    assert_eq!(host.ask("balance"), "8000", "the fixed closure runs");
    revert(&repo, &ctl, &host);
    assert_eq!(host.ask("balance"), "80");
}
