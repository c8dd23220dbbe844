//! Foreign patches that would break the host are refused before any code is
//! written: callers optimised with inter-procedural register allocation, and
//! threads that never take the stop signal.

use fixture_host::{
    c_answer, c_ipa_caller, c_ipa_formats_caller, c_label, ipa_caller_model,
    ipa_formats_caller_model,
};
use hotfix_core::{ApplyOptions, CodeError, Error, Runtime};
use hotfix_tests::{SignalBlocker, block_all_signals, build_patch, serial};
use std::time::{Duration, Instant};

fn leaf(x: i64) -> i64 {
    let t = (x * 3 + 1) ^ (x >> 7);
    (t + (x << 3)) * 5 + (x >> 3)
}

#[test]
fn a_local_leaf_whose_o2_caller_keeps_registers_is_refused_naming_them() {
    let _g = serial();
    let args = (3, 5, 7, 11);
    let expected = ipa_caller_model(args.0, args.1, args.2, args.3, leaf);
    assert_eq!(c_ipa_caller(args.0, args.1, args.2, args.3), expected);

    let err = Runtime::global()
        .apply(build_patch("ipa_leaf"))
        .expect_err("refused");
    let Error::Foreign { source, .. } = &err else {
        panic!("not a foreign refusal: {err}");
    };
    let CodeError::CallersMayKeepRegisters {
        symbol, registers, ..
    } = source.as_ref()
    else {
        panic!("not the register refusal: {err}");
    };
    assert_eq!(symbol, "fixture_ipa_leaf");
    // The -O2 caller keeps its values in caller-saved registers the leaf never
    // writes; at least those four are named (GCC 12 picks r8, r9, rsi, rcx).
    assert!(
        registers
            .split(", ")
            .filter(|r| !r.starts_with("xmm"))
            .count()
            >= 4,
        "{registers}"
    );
    assert!(err.to_string().contains("-fipa-ra"), "{err}");
    assert_eq!(c_ipa_caller(args.0, args.1, args.2, args.3), expected);
    assert!(Runtime::global().status().patches.is_empty());
}

#[test]
fn a_hidden_function_that_calls_out_is_patched_and_its_o2_caller_stays_right() {
    let _g = serial();
    let original = |x: i64| format!("{x}").len() as i64 + x;
    let fixed = |x: i64| format!("[{x}]").len() as i64 + 2 * x;
    for (x, y) in [(1, 2), (-40, 9), (123_456, -7)] {
        assert_eq!(
            c_ipa_formats_caller(x, y),
            ipa_formats_caller_model(x, y, original)
        );
    }
    Runtime::global()
        .apply(build_patch("ipa_formats"))
        .expect("applied: the callee clobbers every caller-saved register already");
    for (x, y) in [(1, 2), (-40, 9), (123_456, -7)] {
        assert_eq!(
            c_ipa_formats_caller(x, y),
            ipa_formats_caller_model(x, y, fixed)
        );
    }
    Runtime::global().revert_newest().expect("revert");
    assert_eq!(
        c_ipa_formats_caller(1, 2),
        ipa_formats_caller_model(1, 2, original)
    );
}

#[test]
fn a_thread_blocking_every_signal_refuses_a_foreign_apply_at_once_naming_it() {
    let _g = serial();
    // Both C functions the patch replaces are linked into this binary.
    assert_eq!((c_answer(2), c_label().as_str()), (46, "original 7"));
    let patch = Runtime::global()
        .load(build_patch("foreign_good"))
        .expect("load");
    let blocker = SignalBlocker::start("sigwaiter");
    let tid = blocker.tid;

    let start = Instant::now();
    let err = Runtime::global()
        .apply_loaded(&patch, ApplyOptions::default())
        .expect_err("refused");
    let took = start.elapsed();
    let Error::Foreign { source, .. } = &err else {
        panic!("not a foreign refusal: {err}");
    };
    let CodeError::ThreadBlocksStopSignal { threads, .. } = source.as_ref() else {
        panic!("not the blocked-signal refusal: {err}");
    };
    assert!(threads.contains(&format!("{tid} (sigwaiter)")), "{threads}");
    assert!(took < Duration::from_millis(100), "refused after {took:?}");
    assert_eq!(c_answer(2), 46, "nothing was written");
    assert!(Runtime::global().status().patches.is_empty());

    // Once the thread is gone, the same patch applies.
    drop(blocker);
    Runtime::global()
        .apply_loaded(&patch, ApplyOptions::default())
        .expect("applies without the blocking thread");
    assert_eq!(c_answer(2), 1002);
    Runtime::global().revert_newest().expect("revert");
    assert_eq!(c_answer(2), 46);
}

#[test]
fn a_thread_in_sigwait_for_every_signal_is_named_before_anyone_is_signalled() {
    let _g = serial();
    assert_eq!((c_answer(2), c_label().as_str()), (46, "original 7"));
    let patch = Runtime::global()
        .load(build_patch("foreign_good"))
        .expect("load");
    let (tx, rx) = std::sync::mpsc::channel();
    let waiter = std::thread::Builder::new()
        .name("sigwaiter2".into())
        .spawn(move || {
            let all = block_all_signals();
            // SAFETY: gettid, pthread_self and sigwait on a full set blocked in
            // this thread; sigwait returns when SIGUSR1 is sent to it below.
            unsafe {
                tx.send((libc::syscall(libc::SYS_gettid) as i32, libc::pthread_self()))
                    .unwrap();
                let mut got = 0;
                libc::sigwait(&all, &mut got);
                got
            }
        })
        .unwrap();
    let (tid, handle) = rx.recv().unwrap();
    // Until it is inside sigwait.
    let deadline = Instant::now() + Duration::from_secs(5);
    while !std::fs::read_to_string(format!("/proc/self/task/{tid}/syscall"))
        .unwrap_or_default()
        .starts_with(&format!("{} ", libc::SYS_rt_sigtimedwait))
    {
        assert!(
            Instant::now() < deadline,
            "the thread never reached sigwait"
        );
        std::thread::sleep(Duration::from_millis(2));
    }
    let err = Runtime::global()
        .apply_loaded(&patch, ApplyOptions::default())
        .expect_err("refused");
    // SAFETY: the thread is alive in sigwait; SIGUSR1 is in its waited set.
    unsafe { libc::pthread_kill(handle, libc::SIGUSR1) };
    let got = waiter.join().unwrap();
    assert_eq!(
        got,
        libc::SIGUSR1,
        "the waiter received only its own signal"
    );
    assert!(
        err.to_string()
            .contains(&format!("{tid} (sigwaiter2) (waiting for it in sigwait)")),
        "{err}"
    );
    assert_eq!(c_answer(2), 46, "nothing was written");
}
