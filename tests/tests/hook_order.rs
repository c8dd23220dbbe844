//! Hooks and code writes are ordered so that a failure anywhere leaves the host
//! as before, hooks included, or says exactly what state it is in.

use fixture_host::{HOOK_MODE, HOOK_PROBE, HOOK_SAW, HOOK_STATE, c_answer, c_answer_address};
use hotfix_core::os::read_code;
use hotfix_core::{CodeError, Error, Runtime};
use hotfix_tests::{SignalBlocker, build_patch, serial};
use std::sync::atomic::Ordering;

fn reset() {
    HOOK_MODE.store(0, Ordering::SeqCst);
    HOOK_STATE.store(0, Ordering::SeqCst);
    assert_eq!(c_answer(2), 46);
}

#[test]
fn a_code_write_failing_after_on_apply_runs_on_revert_and_leaves_the_host_as_before() {
    let _g = serial();
    reset();
    let patch = build_patch("hooked_foreign");
    HOOK_MODE.store(1, Ordering::SeqCst);
    let err = Runtime::global()
        .apply(&patch)
        .expect_err("the write fails");
    HOOK_MODE.store(0, Ordering::SeqCst);
    let Error::AfterApplyHook { source, hook, .. } = &err else {
        panic!("not an after-hook failure: {err}");
    };
    assert!(
        matches!(
            source.as_ref(),
            Error::Foreign { source, .. } if matches!(source.as_ref(), CodeError::ThreadBlocksStopSignal { .. })
        ),
        "{err}"
    );
    assert!(hook.contains("on_revert ran and undid it"), "{hook}");
    assert_eq!(
        HOOK_STATE.load(Ordering::SeqCst),
        0,
        "on_apply's effect undone"
    );
    assert_eq!(c_answer(2), 46, "no code written");
    assert!(Runtime::global().status().patches.is_empty());
    // Once the blocking thread has gone, the same patch applies.
    std::thread::sleep(std::time::Duration::from_millis(450));
    Runtime::global().apply(&patch).expect("apply");
    assert_eq!((c_answer(2), HOOK_STATE.load(Ordering::SeqCst)), (2002, 1));
    Runtime::global().revert_newest().expect("revert");
    assert_eq!((c_answer(2), HOOK_STATE.load(Ordering::SeqCst)), (46, 0));
}

#[test]
fn a_revert_whose_code_write_fails_keeps_the_patch_and_does_not_run_on_revert() {
    let _g = serial();
    reset();
    let patch = build_patch("hooked_foreign");
    Runtime::global().apply(&patch).expect("apply");
    assert_eq!((c_answer(2), HOOK_STATE.load(Ordering::SeqCst)), (2002, 1));

    // A thread that blocks every signal: no code can be written now.
    let blocker = SignalBlocker::start("blocker");
    let err = Runtime::global().revert_newest().expect_err("refused");
    assert!(err.to_string().contains("(blocker)"), "{err}");
    assert_eq!(
        (c_answer(2), HOOK_STATE.load(Ordering::SeqCst)),
        (2002, 1),
        "still applied, hook not run"
    );
    assert_eq!(Runtime::global().status().patches.len(), 1);
    drop(blocker);

    Runtime::global().revert_newest().expect("revert");
    assert_eq!((c_answer(2), HOOK_STATE.load(Ordering::SeqCst)), (46, 0));
}

#[test]
fn a_failing_on_revert_is_reported_with_the_patch_reverted() {
    let _g = serial();
    reset();
    let patch = build_patch("hooked_foreign");
    Runtime::global().apply(&patch).expect("apply");
    HOOK_MODE.store(2, Ordering::SeqCst);
    let err = Runtime::global().revert_newest().expect_err("hook fails");
    HOOK_MODE.store(0, Ordering::SeqCst);
    assert!(
        matches!(&err, Error::RevertHookFailed { reason, .. } if reason == "told to fail"),
        "{err}"
    );
    assert!(err.to_string().contains("IS reverted"), "{err}");
    assert_eq!(c_answer(2), 46, "the patch's code no longer runs");
    assert!(Runtime::global().status().patches.is_empty());
}

/// The `on_apply` hook, which may veto, runs after every check and before
/// any code is written: refused by a check, the hook never runs; when it runs,
/// the host's C function is not yet rewritten (the hook calls it), and its veto
/// leaves the code as it was; without the veto the same patch applies.
#[test]
fn a_veto_runs_after_every_check_and_before_any_write() {
    let _g = serial();
    reset();
    HOOK_SAW.store(0, Ordering::SeqCst);
    HOOK_PROBE.store(c_answer_address(), Ordering::SeqCst);
    let _probe = Unset(&HOOK_PROBE);
    let code = || read_code(c_answer_address(), 16).expect("the C function's code");
    let original = code();
    let loaded = Runtime::global()
        .load(build_patch("hooked_foreign"))
        .expect("load");
    HOOK_MODE.store(3, Ordering::SeqCst);

    // A thread asleep with every signal blocked exists BEFORE the apply: the
    // plan refuses the patch, before its hook.
    let blocker = SignalBlocker::start("blocker2");
    let err = Runtime::global()
        .apply_loaded(&loaded, Default::default())
        .expect_err("refused by a check");
    drop(blocker);
    assert!(matches!(err, Error::Foreign { .. }), "{err}");
    assert_eq!(
        HOOK_SAW.load(Ordering::SeqCst),
        0,
        "on_apply never ran for a patch refused by a check"
    );

    // Every check passes: the hook runs and vetoes.
    let err = Runtime::global()
        .apply_loaded(&loaded, Default::default())
        .expect_err("vetoed");
    HOOK_MODE.store(0, Ordering::SeqCst);
    assert!(
        matches!(&err, Error::Vetoed { reason, .. } if reason == "vetoed by the test"),
        "{err}"
    );
    assert_eq!(
        HOOK_SAW.load(Ordering::SeqCst),
        46,
        "when on_apply ran, the C function was already rewritten"
    );
    assert_eq!(code(), original, "code written for a vetoed patch");
    assert_eq!((c_answer(2), HOOK_STATE.load(Ordering::SeqCst)), (46, 0));
    assert!(Runtime::global().status().patches.is_empty());

    // Not vetoed, the same patch applies: the hook still sees the old code.
    HOOK_SAW.store(0, Ordering::SeqCst);
    Runtime::global()
        .apply_loaded(&loaded, Default::default())
        .expect("apply");
    assert_eq!(HOOK_SAW.load(Ordering::SeqCst), 46);
    assert_eq!((c_answer(2), HOOK_STATE.load(Ordering::SeqCst)), (2002, 1));
    Runtime::global().revert_newest().expect("revert");
    assert_eq!((c_answer(2), HOOK_STATE.load(Ordering::SeqCst)), (46, 0));
    assert_eq!(code(), original);
}

/// Sets a probe back to 0 when dropped (also when the test fails).
struct Unset<'a>(&'a std::sync::atomic::AtomicUsize);

impl Drop for Unset<'_> {
    fn drop(&mut self) {
        self.0.store(0, Ordering::SeqCst);
        HOOK_MODE.store(0, Ordering::SeqCst);
    }
}
