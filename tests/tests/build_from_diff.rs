//! `hotfix build --base REV`: a patch made from a fix written in place in the
//! host's own source, in a real git repository made from a fixture workspace;
//! applied to the running host with `hotfix apply`, and reverted.

use hotfix_tests::demo::control_dir;
use hotfix_tests::fixable::{Host, Repo, Run};
use std::path::PathBuf;

const LEDGER: &str = "src/ledger.rs";

/// The fix: the fee once, through a new private helper, on the private field.
fn fix(repo: &Repo) {
    repo.edit(
        LEDGER,
        "self.entries.push(amount - fee - fee);",
        "self.entries.push(net_of(amount, fee));",
    );
    fix_other_shapes(repo);
    let path = repo.path(LEDGER);
    let mut text = std::fs::read_to_string(&path).expect("read");
    text.push_str("\n/// The amount less the fee, once.\nfn net_of(amount: i64, fee: i64) -> i64 {\n    amount - fee\n}\n");
    std::fs::write(&path, text).expect("write");
}

/// Fixes of every other shape: a method returning borrowed data, an async
/// method, a trait impl's method, an async free function with a borrowed
/// argument.
fn fix_other_shapes(repo: &Repo) {
    repo.edit(
        LEDGER,
        "self.entries.iter().min()",
        "self.entries.iter().max()",
    );
    repo.edit(
        LEDGER,
        "self.balance() + amount\n",
        "self.balance() + net_of(amount, fee_of(amount, self.fee_percent))\n",
    );
    repo.edit(LEDGER, "\"{} entrys\"", "\"{} entries\"");
    repo.edit(LEDGER, "memo.len()", "memo.split_whitespace().count()");
}

/// The file `hotfix build` printed after `built `.
fn built_file(run: &Run) -> PathBuf {
    let line = run
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("built "))
        .unwrap_or_else(|| panic!("no `built` line: {run:?}"));
    let file = line.split(" sha256 ").next().expect("a path");
    PathBuf::from(file)
}

/// The 1-based line of the first `needle` in a file of the host.
fn line_of(repo: &Repo, needle: &str) -> usize {
    let text = std::fs::read_to_string(repo.path(LEDGER)).expect("read");
    let at = text.find(needle).unwrap_or_else(|| panic!("no `{needle}`"));
    text[..at].matches('\n').count() + 1
}

#[test]
fn a_fix_written_in_place_is_built_applied_and_reverted() {
    let repo = Repo::new("e2e");
    let base = repo.head();
    let exe = repo.build_host();
    let ctl = control_dir("build-e2e");
    let mut host = Host::start(&exe, &ctl);
    assert_eq!(
        host.ask("deposit 100"),
        "Some(80)",
        "the shipped bug: the fee twice"
    );
    assert_eq!(host.ask("deposits"), "1");
    assert_eq!(host.ask("deposit 50"), "Some(120)");
    let bugs = [
        ("largest", "Some(40)"),
        ("quote 100", "220"),
        ("label", "2 entrys"),
        ("words two words", "9"),
    ];
    for (q, a) in bugs {
        assert_eq!(host.ask(q), a, "{q}: the shipped bug");
    }

    fix(&repo);
    let run = repo.hotfix(&ctl, &["build", "--base", &base]);
    assert_eq!(run.code, 0, "{run:?}");
    let deposit_line = line_of(&repo, "pub fn deposit(");
    assert!(
        run.stdout
            .contains("replace fixable_host::ledger::Ledger::deposit")
            && run
                .stdout
                .contains(&format!("host-e2e/src/ledger.rs:{deposit_line}")),
        "{run:?}"
    );
    assert!(
        run.stdout
            .contains("add     fn fixable_host::ledger::net_of"),
        "{run:?}"
    );
    for shape in [
        "replace fixable_host::ledger::Ledger::largest",
        "replace fixable_host::ledger::Ledger::quote",
        "replace fixable_host::ledger::<Ledger as std::fmt::Display>::fmt",
        "replace fixable_host::ledger::words",
    ] {
        assert!(run.stdout.contains(shape), "{shape}: {run:?}");
    }
    assert!(
        !run.stdout
            .contains("replace fixable_host::ledger::deposits"),
        "{run:?}"
    );
    let patch = built_file(&run);
    assert!(patch.is_file(), "{run:?}");

    let pid = host.pid.to_string();
    let applied = repo.hotfix(&ctl, &["apply", &pid, &patch.display().to_string()]);
    assert_eq!(applied.code, 0, "{applied:?}");
    assert!(
        applied
            .stdout
            .contains("fixable_host::ledger::Ledger::deposit"),
        "{applied:?}"
    );
    // The same ledger (state kept), the fee once; the patch counts in the
    // host's own (#[shared]) counter.
    assert_eq!(host.ask("deposit 100"), "Some(210)");
    assert_eq!(host.ask("deposits"), "3");
    assert_eq!(host.ask("balance"), "210");
    let fixed = [
        ("largest", "Some(90)"),
        ("quote 100", "300"),
        ("label", "3 entries"),
        ("words two words", "2"),
    ];
    for (q, a) in fixed {
        assert_eq!(host.ask(q), a, "{q}: fixed");
    }

    let reverted = repo.hotfix(&ctl, &["revert", &pid]);
    assert_eq!(reverted.code, 0, "{reverted:?}");
    assert_eq!(host.ask("deposit 100"), "Some(290)", "the bug is back");
    assert_eq!(host.ask("deposits"), "4");
    let bugs_again = [
        ("largest", "Some(40)"),
        ("quote 100", "390"),
        ("label", "4 entrys"),
        ("words two words", "9"),
    ];
    for (q, a) in bugs_again {
        assert_eq!(host.ask(q), a, "{q}: reverted");
    }
}

#[test]
fn a_patch_made_against_another_revision_is_refused_by_the_running_host() {
    let repo = Repo::new("otherbase");
    let shipped = repo.head();
    let exe = repo.build_host();
    let ctl = control_dir("build-otherbase");
    let mut host = Host::start(&exe, &ctl);
    assert_eq!(host.ask("deposit 100"), "Some(80)");

    // A later revision changed a type; the running host is still the first.
    repo.edit(
        LEDGER,
        "    fee_percent: i64,\n}",
        "    fee_percent: i64,\n    owner: u32,\n}",
    );
    repo.edit(
        LEDGER,
        "fee_percent: 10,\n",
        "fee_percent: 10,\n            owner: 0,\n",
    );
    let later = repo.commit("B: an owner");
    fix(&repo);
    let run = repo.hotfix(&ctl, &["build", "--base", &later]);
    assert_eq!(run.code, 0, "{run:?}");
    let patch = built_file(&run);

    let pid = host.pid.to_string();
    let applied = repo.hotfix(&ctl, &["apply", &pid, &patch.display().to_string()]);
    assert_eq!(applied.code, 1, "{applied:?}");
    // The first item (in name order) that differs: the inherent impl whose
    // constructor sets the new field.
    assert!(
        applied
            .stderr
            .contains("was built against other source of fixable_host: impl fixable_host::ledger::Ledger differs from the running host's"),
        "{applied:?}"
    );
    assert_eq!(
        host.ask("deposit 100"),
        "Some(160)",
        "still the shipped code"
    );

    // A later revision changed only the body of the function the fix
    // replaces: the crate's identity is the same, the replaced body is not.
    repo.git(&["reset", "-q", "--hard", &shipped]);
    repo.edit(
        LEDGER,
        "let fee = fee_of(amount, self.fee_percent);",
        "let fee = fee_of(amount, self.fee_percent) + 0;",
    );
    let later = repo.commit("C: deposit rewritten");
    fix(&repo);
    let run = repo.hotfix(&ctl, &["build", "--base", &later]);
    assert_eq!(run.code, 0, "{run:?}");
    let patch = built_file(&run);
    let applied = repo.hotfix(&ctl, &["apply", &pid, &patch.display().to_string()]);
    assert_eq!(applied.code, 1, "{applied:?}");
    assert!(
        applied
            .stderr
            .contains("was built against other source of `fixable_host::ledger::Ledger::deposit`"),
        "{applied:?}"
    );
    assert_eq!(
        host.ask("deposit 100"),
        "Some(240)",
        "still the shipped code"
    );
}

#[test]
fn each_change_a_patch_cannot_carry_is_refused_with_its_line_and_what_to_do() {
    let repo = Repo::new("refuse");
    let base = repo.head();
    let ctl = control_dir("build-refuse");
    // (edit from, edit to, the line's marker after the edit, what, what to do)
    let cases: &[(&str, &str, &str, &str, &str)] = &[
        (
            "amount * percent / 100",
            "amount * percent / 1000",
            "fn fee_of(",
            "the body of fn fixable_host::ledger::fee_of changed",
            "(`fixable_host::ledger::Ledger::deposit`, `fixable_host::ledger::Ledger::quote`)",
        ),
        (
            "    fee_percent: i64,\n}",
            "    fee_percent: i32,\n}",
            "pub struct Ledger",
            "struct fixable_host::ledger::Ledger changed",
            "cannot change a type the running host uses",
        ),
        (
            "    Eur,\n    Usd,",
            "    Usd,\n    Eur,",
            "pub enum Currency",
            "enum fixable_host::ledger::Currency changed",
            "cannot change a type the running host uses",
        ),
        (
            "const LIMIT: i64 = 1_000_000;",
            "const LIMIT: i64 = 2_000_000;",
            "const LIMIT",
            "const fixable_host::ledger::LIMIT changed",
            "add a new private const",
        ),
        (
            "AtomicU64::new(0)",
            "AtomicU64::new(7)",
            "static DEPOSITS",
            "static fixable_host::ledger::DEPOSITS changed",
            "cannot change the running host's state",
        ),
        (
            "pub fn deposits() -> u64 {\n    DEPOSITS.load(Ordering::Relaxed)",
            "pub fn deposits() -> u128 {\n    DEPOSITS.load(Ordering::Relaxed) as u128",
            "pub fn deposits()",
            "the signature or attributes of #[patchable] fn fixable_host::ledger::deposits changed",
            "a patch replaces bodies only",
        ),
        (
            "fn net_of(",
            "pub fn net_of(",
            "pub fn net_of(",
            "new public fn fixable_host::ledger::net_of",
            "remove `pub`",
        ),
        (
            "/// The amount less the fee, once.",
            "static EXTRA: u8 = 0;\n/// The amount less the fee, once.",
            "static EXTRA",
            "new static fixable_host::ledger::EXTRA",
            "existing #[shared] static",
        ),
        (
            "/// The amount less the fee, once.",
            "fn spare() {}\n/// The amount less the fee, once.",
            "fn spare",
            "new fn fixable_host::ledger::spare is not used by a changed #[patchable] function",
            "remove it, or call it from the fix",
        ),
    ];
    for (from, to, marker, what, todo) in cases {
        repo.reset();
        fix(&repo);
        repo.edit(LEDGER, from, to);
        let run = repo.hotfix(&ctl, &["build", "--base", &base, "--dry-run"]);
        assert_eq!(run.code, 1, "{from} -> {to}: {run:?}");
        let at = format!(
            "host-refuse/src/ledger.rs:{}: {what}",
            line_of(&repo, marker)
        );
        assert!(
            run.stderr.contains(&at),
            "{from} -> {to}: expected `{at}`: {run:?}"
        );
        assert!(
            run.stderr.contains(todo),
            "{from} -> {to}: expected `{todo}`: {run:?}"
        );
        assert!(
            !run.stdout.contains("replace"),
            "no plan when refused: {run:?}"
        );
    }

    // A removed item, named at its line in the base revision.
    repo.reset();
    fix(&repo);
    let default_line = line_of(&repo, "impl Default for Ledger");
    repo.edit(
        LEDGER,
        "impl Default for Ledger {\n    fn default() -> Self {\n        Self::new()\n    }\n}\n",
        "",
    );
    let run = repo.hotfix(&ctl, &["build", "--base", &base]);
    assert_eq!(run.code, 1, "{run:?}");
    assert!(
        run.stderr.contains(&format!(
            "host-refuse/src/ledger.rs:{default_line}: impl Default for fixable_host::ledger::Ledger was removed"
        )) && run.stderr.contains("restore it"),
        "{run:?}"
    );

    // A manifest is not Rust source of a #[patchable] crate.
    repo.reset();
    fix(&repo);
    let manifest = repo.path("Cargo.toml");
    let mut text = std::fs::read_to_string(&manifest).expect("manifest");
    text.push_str("\n[features]\nextra = []\n");
    std::fs::write(&manifest, text).expect("manifest");
    let run = repo.hotfix(&ctl, &["build", "--base", &base]);
    assert_eq!(run.code, 1, "{run:?}");
    assert!(
        run.stderr.contains(
            "host-refuse/Cargo.toml: changed, and a patch is built only from the Rust source"
        ),
        "{run:?}"
    );

    // A binary's source is no library code.
    repo.reset();
    fix(&repo);
    repo.edit("src/main.rs", "ERR unknown", "ERR unknown command");
    let run = repo.hotfix(&ctl, &["build", "--base", &base]);
    assert_eq!(run.code, 1, "{run:?}");
    assert!(
        run.stderr
            .contains("host-refuse/src/main.rs: changed, and it is no module of a library crate"),
        "{run:?}"
    );

    // Nothing changed: nothing to patch.
    repo.reset();
    let run = repo.hotfix(&ctl, &["build", "--base", &base]);
    assert_eq!(run.code, 1, "{run:?}");
    assert!(run.stderr.contains("nothing to patch"), "{run:?}");

    // Not a revision: a usage error.
    let run = repo.hotfix(&ctl, &["build", "--base", "no-such-rev"]);
    assert_eq!(run.code, 2, "{run:?}");
    assert!(
        run.stderr.contains("--base no-such-rev: no such commit"),
        "{run:?}"
    );

    // The plan alone: printed, nothing built.
    fix(&repo);
    let out = repo.dir.join("target/never.so");
    let run = repo.hotfix(
        &ctl,
        &[
            "build",
            "--base",
            &base,
            "--dry-run",
            "-o",
            &out.display().to_string(),
        ],
    );
    assert_eq!(run.code, 0, "{run:?}");
    assert!(
        run.stdout
            .contains("replace fixable_host::ledger::Ledger::deposit")
            && run.stdout.contains("dry run: nothing built"),
        "{run:?}"
    );
    assert!(!out.exists(), "a dry run wrote {}", out.display());
}

#[test]
fn a_fix_that_reaches_a_static_the_host_does_not_share_is_refused_when_applied() {
    let repo = Repo::new("private");
    let base = repo.head();
    let exe = repo.build_host();
    let ctl = control_dir("build-private");
    let mut host = Host::start(&exe, &ctl);
    fix(&repo);
    repo.edit(
        LEDGER,
        "self.entries.push(net_of(amount, fee));",
        "self.entries.push(net_of(amount, fee));\n        LAST.store(amount, Ordering::Relaxed);",
    );
    let run = repo.hotfix(&ctl, &["build", "--base", &base]);
    assert_eq!(run.code, 0, "the review passes it: {run:?}");
    let patch = built_file(&run);
    let pid = host.pid.to_string();
    let applied = repo.hotfix(&ctl, &["apply", &pid, &patch.display().to_string()]);
    assert_eq!(applied.code, 1, "{applied:?}");
    assert!(
        applied.stderr.contains("fixable_host::ledger::LAST")
            && applied.stderr.contains("Ledger::deposit"),
        "the static and the replacement that reaches it: {applied:?}"
    );
    assert_eq!(
        host.ask("deposit 100"),
        "Some(80)",
        "still the shipped code"
    );
}
