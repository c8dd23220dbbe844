//! A client that hangs up before its reply cannot end the host, even a host
//! that does not ignore `SIGPIPE` (as a Rust library in a C program may not).

use hotfix_tests::demo::{RawControl, control_dir, reply_kind};
use std::io::Write;
use std::net::Shutdown;
use std::thread;
use std::time::Duration;

#[test]
fn clients_that_hang_up_early_do_not_kill_a_host_without_sigpipe_ignored() {
    // SAFETY: restores the default action of SIGPIPE (terminate) for this
    // process; no handler is involved.
    let previous = unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
    assert_ne!(previous, libc::SIG_ERR);
    let ctl = control_dir("sigpipe");
    hotfix_core::control::serve_in(&ctl).expect("serve the control socket");
    let pid = std::process::id() as libc::pid_t;
    let mut sent = 0;
    for _ in 0..50 {
        let c = RawControl::connect(&ctl, pid);
        let mut s = &c.stream;
        // While earlier connections are still being answered, the server may
        // tell this one it is busy and close it first: the write then fails
        // with EPIPE, which is the server doing its job.
        if s.write_all(b"{\"v\":1,\"cmd\":\"status\"}\n").is_ok() {
            sent += 1;
        }
        let _ = c.stream.shutdown(Shutdown::Both);
        drop(c);
    }
    assert!(sent >= 1, "no request reached the server");
    // Give the connection threads time to write their replies into the void.
    thread::sleep(Duration::from_millis(500));
    let v = RawControl::connect(&ctl, pid).ask(r#"{"v":1,"cmd":"status"}"#);
    assert_eq!(reply_kind(&v), "ok", "{v}");
}
