//! End to end: the real `demo-server` binary, patched with the real `demo-patch`
//! through `SIGHUP` and reverted through `SIGUSR2`, over live TCP connections.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::thread;
use std::time::{Duration, Instant};

use hotfix_tests::demo::{Conn, Server, WAIT, build_demo_patch};
use hotfix_tests::scratch_dir;

fn is_err(reply: &str) -> bool {
    reply == "ERR" || reply.starts_with("ERR ")
}

/// Malformed requests get `ERR`, and the connection keeps working.
fn check_garbage(c: &mut Conn) {
    let garbage: Vec<Vec<u8>> = vec![
        b"HELLO".to_vec(),
        b"".to_vec(),
        b"   ".to_vec(),
        b"SUM".to_vec(),
        b"SUM 1".to_vec(),
        b"SUM 1 2 3".to_vec(),
        b"SUM one two".to_vec(),
        b"SUM 99999999999999999999 1".to_vec(),
        b"SCORE".to_vec(),
        b"SCORE bob x".to_vec(),
        b"DIV 1".to_vec(),
        b"CLASS extra".to_vec(),
        b"SUM \xff\xfe 1".to_vec(),
        b"\xc3\x28".to_vec(),
        vec![b'A'; 10_000],
        b"DIV -9223372036854775808 -1".to_vec(),
    ];
    for g in garbage {
        let reply = c.ask_bytes(&g);
        let shown = String::from_utf8_lossy(&g[..g.len().min(40)]).into_owned();
        assert!(is_err(&reply), "{shown:?} -> {reply:?}");
    }
    assert_eq!(c.ask("DIV 7 2"), "3", "the connection still works");
}

#[test]
fn patch_and_revert_through_signals_on_one_connection() {
    let mut server = Server::start(&[]);
    let mut c = server.connect();

    // The shipped bugs.
    assert_eq!(c.ask("SUM 1 2"), "-1");
    assert_eq!(c.ask("SCORE alice 5"), "10");
    assert_eq!(c.ask("DIV 1 0"), "ERR attempt to divide by zero");
    assert_eq!(c.ask("CLASS"), "Role");
    assert_eq!(c.ask("PATCHES"), "none");
    check_garbage(&mut c);
    assert!(
        is_err(&c.ask("SUM -9223372036854775808 1")),
        "a - b overflows"
    );
    assert!(
        is_err(&c.ask("SCORE bob 9223372036854775807")),
        "2n overflows"
    );

    // Apply.
    build_demo_patch();
    server.signal(libc::SIGHUP);
    let p = c.wait_patches("not none", |p| p != "none");
    assert!(p.starts_with("demo-patch "), "{p}");
    for f in ["sum", "add_score", "div"] {
        assert!(p.contains(&format!("demo_server::handlers::{f}")), "{p}");
    }
    assert!(p.contains("Role::getClassName"), "{p}");
    assert_eq!(p.matches("demo-patch").count(), 1, "{p}");

    // Every fix, on the same connection, with the state kept.
    assert_eq!(c.ask("SUM 1 2"), "3");
    assert_eq!(c.ask("SCORE alice 5"), "15");
    assert_eq!(c.ask("DIV 1 0"), "ERR division by zero");
    assert_eq!(c.ask("DIV 9 3"), "3");
    assert_eq!(c.ask("CLASS"), "Mage", "the C++ method is patched");
    check_garbage(&mut c);
    assert!(
        is_err(&c.ask("SUM 9223372036854775807 1")),
        "a + b overflows"
    );
    assert_eq!(c.ask("SUM -9223372036854775808 1"), "-9223372036854775807");
    server.wait_stderr("patch applied");

    // Revert: the bugs are back, the state stays.
    server.signal(libc::SIGUSR2);
    c.wait_patches("none", |p| p == "none");
    assert_eq!(c.ask("SUM 1 2"), "-1");
    assert_eq!(c.ask("SCORE alice 1"), "17");
    assert_eq!(c.ask("DIV 1 0"), "ERR attempt to divide by zero");
    assert_eq!(c.ask("CLASS"), "Role");
    check_garbage(&mut c);
    server.wait_stderr("patch reverted");
    server.assert_alive();
}

#[test]
fn a_garbage_patch_file_is_refused_and_the_server_keeps_serving() {
    let dir = scratch_dir("demo-garbage");
    let junk = dir.join("libdemo_patch.so");
    fs::write(&junk, b"this is not a shared library\n\x00\x01\x02").expect("write junk");
    fs::set_permissions(&junk, fs::Permissions::from_mode(0o644)).expect("chmod junk");
    let junk_arg = junk.to_str().expect("a UTF-8 path");

    let mut server = Server::start(&["--patch", junk_arg]);
    let mut c = server.connect();
    assert_eq!(c.ask("SUM 1 2"), "-1");
    server.signal(libc::SIGHUP);
    server.wait_stderr("patch refused");
    let log = server.stderr();
    assert!(log.contains(junk_arg), "the refusal names the file:\n{log}");
    assert_eq!(c.ask("PATCHES"), "none");
    assert_eq!(c.ask("SUM 1 2"), "-1");
    assert_eq!(c.ask("SCORE carol 1"), "2");
    assert_eq!(c.ask("DIV 1 0"), "ERR attempt to divide by zero");
    // A new client is served too.
    assert_eq!(server.connect().ask("SUM 2 2"), "0");
    server.assert_alive();
    let _ = fs::remove_dir_all(&dir);
}

#[test]
fn a_burst_of_signals_leaves_a_coherent_state() {
    build_demo_patch();
    let mut server = Server::start(&[]);
    let mut c = server.connect();
    assert_eq!(c.ask("SUM 1 2"), "-1");
    for i in 0..20 {
        server.signal(if i % 2 == 0 {
            libc::SIGHUP
        } else {
            libc::SIGUSR2
        });
        thread::sleep(Duration::from_micros(200));
    }
    // Let the worker drain: the answer must stay the same for a while.
    let start = Instant::now();
    let mut last = c.ask("PATCHES");
    let mut stable_since = Instant::now();
    while stable_since.elapsed() < Duration::from_millis(500) {
        assert!(start.elapsed() < WAIT, "PATCHES never settled: {last}");
        thread::sleep(Duration::from_millis(20));
        let p = c.ask("PATCHES");
        if p != last {
            last = p;
            stable_since = Instant::now();
        }
    }
    server.assert_alive();
    let expected_sum = if last == "none" {
        "-1"
    } else {
        assert!(last.starts_with("demo-patch "), "{last}");
        assert_eq!(
            last.matches("demo-patch").count(),
            1,
            "applied once: {last}"
        );
        "3"
    };
    assert_eq!(
        c.ask("SUM 1 2"),
        expected_sum,
        "behaviour agrees with {last}"
    );

    // The signal worker still works: a deterministic apply and revert.
    if last != "none" {
        server.signal(libc::SIGUSR2);
        c.wait_patches("none", |p| p == "none");
    }
    server.signal(libc::SIGHUP);
    c.wait_patches("demo-patch", |p| p.starts_with("demo-patch "));
    assert_eq!(c.ask("SUM 1 2"), "3");
    server.signal(libc::SIGUSR2);
    c.wait_patches("none", |p| p == "none");
    assert_eq!(c.ask("SUM 1 2"), "-1");
    assert_eq!(server.connect().ask("SUM 5 5"), "0");
    server.assert_alive();
}
