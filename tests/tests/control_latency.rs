//! `status` over the control socket answers at once while an apply holds the
//! runtime's lock: it reads the published snapshot, not the runtime.
//!
//! The apply (of the `slow_apply` fixture, which also rewrites a C function)
//! comes from another client of the socket; its `on_apply` hook keeps the lock
//! until the test releases it. Figures: `cargo test -p hotfix-tests --test
//! control_latency -- --nocapture`.

use fixture_host::{answer, c_answer};
use hotfix_core::Runtime;
use hotfix_tests::demo::{RawControl, WAIT, control_dir, reply_kind};
use hotfix_tests::{build_patch, serial};
use std::path::PathBuf;
use std::thread;
use std::time::{Duration, Instant};

const STATUS: &str = r#"{"v":1,"cmd":"status"}"#;

/// Generous for a loaded 2-core machine; the target is under 10 ms.
const BOUND: Duration = Duration::from_millis(200);

/// Where the `slow_apply` fixture's hook looks (a fixed directory: see the
/// fixture).
fn marker(what: &str) -> PathBuf {
    PathBuf::from(format!(
        "/tmp/hotfix-slow-apply-{}.{what}",
        std::process::id()
    ))
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

fn summary(name: &str, mut lat: Vec<Duration>) -> Duration {
    lat.sort();
    let us = |d: Duration| d.as_secs_f64() * 1e6;
    println!(
        "{name}: n={} median {:.0} us, p99 {:.0} us, max {:.0} us",
        lat.len(),
        us(percentile(&lat, 0.5)),
        us(percentile(&lat, 0.99)),
        us(*lat.last().unwrap())
    );
    *lat.last().unwrap()
}

#[test]
fn status_answers_at_once_while_an_apply_holds_the_lock() {
    let _g = serial();
    let patch = build_patch("slow_apply");
    let ctl = control_dir("latency");
    hotfix_core::control::serve_in(&ctl).expect("serve the control socket");
    let pid = std::process::id() as libc::pid_t;
    let _ = std::fs::remove_file(marker("started"));
    let _ = std::fs::remove_file(marker("release"));
    assert_eq!((answer(), c_answer(2)), (40, 46));

    // Another client applies; its hook holds the runtime's lock.
    let apply_req = serde_json::json!({"v": 1, "cmd": "apply", "file": patch}).to_string();
    let ctl2 = ctl.clone();
    let applier = thread::spawn(move || RawControl::connect(&ctl2, pid).ask(&apply_req));
    let start = Instant::now();
    while !marker("started").exists() {
        assert!(start.elapsed() < WAIT, "the apply hook never ran");
        assert!(
            !applier.is_finished(),
            "the apply ended before its hook ran"
        );
        thread::sleep(Duration::from_millis(5));
    }
    // The lock really is held: the runtime's own status waits for it.
    let locked = thread::spawn(|| {
        let t = Instant::now();
        let s = Runtime::global().status();
        (t.elapsed(), s.patches.len())
    });
    thread::sleep(Duration::from_millis(100));
    assert!(
        !locked.is_finished(),
        "Runtime::status did not wait: the apply does not hold the lock"
    );

    // Status through the socket: one connection, and a fresh one per request.
    let mut c = RawControl::connect(&ctl, pid);
    let mut same = Vec::new();
    for _ in 0..300 {
        let t = Instant::now();
        let v = c.ask(STATUS);
        same.push(t.elapsed());
        assert_eq!(reply_kind(&v), "ok", "{v}");
        assert!(
            v["status"]["patches"].as_array().unwrap().is_empty(),
            "the apply in progress is not published yet: {v}"
        );
    }
    let mut fresh = Vec::new();
    for _ in 0..100 {
        let t = Instant::now();
        let v = RawControl::connect(&ctl, pid).ask(STATUS);
        fresh.push(t.elapsed());
        assert_eq!(reply_kind(&v), "ok", "{v}");
    }
    assert!(!applier.is_finished(), "measured while the apply was held");
    assert!(!locked.is_finished());

    // Let the apply finish: status now shows it.
    std::fs::write(marker("release"), b"").expect("release the apply");
    let applied = applier.join().expect("the applying client");
    assert_eq!(reply_kind(&applied), "ok", "{applied}");
    assert_eq!(applied["applied"]["name"], "slow_apply");
    let (waited, seen) = locked.join().unwrap();
    assert_eq!(seen, 1, "Runtime::status ran after the apply");
    assert!(waited >= Duration::from_millis(100), "{waited:?}");
    assert_eq!((answer(), c_answer(2)), (7, 2002));
    let v = c.ask(STATUS);
    assert_eq!(v["status"]["patches"][0]["name"], "slow_apply", "{v}");
    let v = c.ask(r#"{"v":1,"cmd":"revert","all":true}"#);
    assert_eq!(reply_kind(&v), "ok", "{v}");
    assert_eq!((answer(), c_answer(2)), (40, 46));

    let max_same = summary("status on one connection, apply held", same);
    let max_fresh = summary("status on a new connection each, apply held", fresh);
    println!("Runtime::status (takes the lock) waited {waited:?}");
    assert!(max_same < BOUND, "{max_same:?}");
    assert!(max_fresh < BOUND, "{max_fresh:?}");
    let _ = std::fs::remove_file(marker("started"));
    let _ = std::fs::remove_file(marker("release"));
}
