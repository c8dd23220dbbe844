//! The control socket fed garbage, overlong lines, a stalled client and 100
//! clients at once: every one gets an error reply or a closed connection within
//! bounded time, and the server keeps serving its own clients and the socket.

use hotfix_core::control::client::Client;
use hotfix_core::control::protocol::{Command, ErrorKind};
use hotfix_core::control::socket::{LINE_TIMEOUT, MAX_CLIENTS, MAX_LINE};
use hotfix_tests::demo::{RawControl, Server, WAIT, control_dir, reply_kind};
use std::io::Write;
use std::path::PathBuf;
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

const STATUS: &str = r#"{"v":1,"cmd":"status"}"#;

fn start(name: &str) -> (Server, PathBuf) {
    let ctl = control_dir(name);
    let server = Server::start_with_env(&[], &[("HOTFIX_CONTROL_DIR", ctl.as_path())]);
    (server, ctl)
}

/// The server still answers its TCP clients and a fresh control client.
fn still_serving(server: &mut Server, ctl: &std::path::Path) {
    assert_eq!(server.connect().ask("SUM 2 2"), "0");
    let reply = RawControl::connect(ctl, server.pid).ask(STATUS);
    assert_eq!(reply_kind(&reply), "ok", "{reply}");
    server.assert_alive();
}

#[test]
fn garbage_gets_bad_request_and_the_connection_stays_usable() {
    let (mut server, ctl) = start("abuse-garbage");
    let mut c = RawControl::connect(&ctl, server.pid);
    let garbage: [&[u8]; 14] = [
        b"hello",
        b"",
        b"{}",
        b"[1,2,3]",
        b"{\"v\":1}",
        b"{\"cmd\":\"status\"}",
        b"{\"v\":2,\"cmd\":\"status\"}",
        b"{\"v\":1,\"cmd\":\"launch-missiles\"}",
        b"{\"v\":1,\"cmd\":\"apply\"}",
        b"{\"v\":1,\"cmd\":\"revert\",\"id\":1,\"all\":true}",
        b"{\"v\":1,\"cmd\":\"revert\",\"id\":-1}",
        b"\xff\xfe\x00garbage",
        b"{\"v\":1,\"cmd\":\"status\"",
        b"\x1b[2J",
    ];
    for g in garbage {
        let mut line = g.to_vec();
        line.push(b'\n');
        c.send(&line).expect("send garbage");
        let reply = c.reply().expect("a reply, not a closed connection");
        let v: serde_json::Value = serde_json::from_str(&reply).expect("a JSON reply");
        assert_eq!(
            reply_kind(&v),
            "bad_request",
            "{:?} -> {reply}",
            String::from_utf8_lossy(g)
        );
        assert_eq!(v["v"], 1, "{reply}");
    }
    // A request the runtime refuses is not a protocol error.
    let v = c.ask(r#"{"v":1,"cmd":"apply","file":"/no/such/patch.so"}"#);
    assert_eq!(reply_kind(&v), "refused", "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("does not exist")
    );
    // The same connection still works, several requests on one line burst.
    c.send(format!("{STATUS}\n{STATUS}\n").as_bytes()).unwrap();
    for _ in 0..2 {
        let v: serde_json::Value = serde_json::from_str(&c.reply().unwrap()).unwrap();
        assert_eq!(reply_kind(&v), "ok", "{v}");
        assert!(v["status"]["patches"].as_array().unwrap().is_empty());
    }
    still_serving(&mut server, &ctl);
}

#[test]
fn overlong_lines_get_too_long_and_a_closed_connection() {
    let (mut server, ctl) = start("abuse-long");
    for size in [MAX_LINE + 2, 10 * MAX_LINE, 8 << 20] {
        let mut c = RawControl::connect(&ctl, server.pid);
        let mut writer = c.stream.try_clone().unwrap();
        // The server stops reading: the writer may be reset, never hang.
        writer.set_write_timeout(Some(WAIT)).unwrap();
        let sender = thread::spawn(move || {
            let big = vec![b'x'; size];
            let _ = writer.write_all(&big);
            let _ = writer.write_all(b"\n");
        });
        let start = Instant::now();
        let reply = c.reply().expect("an error reply before closing");
        let v: serde_json::Value = serde_json::from_str(&reply).expect("JSON");
        assert_eq!(reply_kind(&v), "too_long", "{size} bytes: {reply}");
        assert!(c.reply().is_none(), "closed after the error");
        assert!(start.elapsed() < WAIT, "took {:?}", start.elapsed());
        sender.join().unwrap();
    }
    still_serving(&mut server, &ctl);
}

#[test]
fn a_stalled_client_times_out_while_others_are_served() {
    let (mut server, ctl) = start("abuse-stall");
    let mut stalled = RawControl::connect(&ctl, server.pid);
    stalled.send(br#"{"v":1,"cmd":"sta"#).unwrap();
    let silent = RawControl::connect(&ctl, server.pid);
    let start = Instant::now();
    // Meanwhile, everyone else is served at once.
    for _ in 0..5 {
        let t = Instant::now();
        let v = RawControl::connect(&ctl, server.pid).ask(STATUS);
        assert_eq!(reply_kind(&v), "ok", "{v}");
        assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
        assert_eq!(server.connect().ask("SUM 1 1"), "0");
    }
    for mut c in [stalled, silent] {
        let reply = c.reply().expect("a timeout reply");
        let v: serde_json::Value = serde_json::from_str(&reply).expect("JSON");
        assert_eq!(reply_kind(&v), "timeout", "{reply}");
        assert!(c.reply().is_none(), "closed after the timeout");
    }
    let took = start.elapsed();
    assert!(
        took >= LINE_TIMEOUT - Duration::from_millis(500) && took < LINE_TIMEOUT + WAIT,
        "closed after {took:?}"
    );
    still_serving(&mut server, &ctl);
}

#[test]
fn a_hundred_clients_at_once_get_served_or_told_busy() {
    let (mut server, ctl) = start("abuse-crowd");
    let pid = server.pid;
    let barrier = Arc::new(Barrier::new(100));
    let clients: Vec<_> = (0..100)
        .map(|_| {
            let (ctl, barrier) = (ctl.clone(), Arc::clone(&barrier));
            thread::spawn(move || {
                barrier.wait();
                let start = Instant::now();
                let mut c = RawControl::connect(&ctl, pid);
                // A client refused as busy is answered before its request is
                // read, so the send may fail (EPIPE) with the reply waiting.
                let _ = c.send(format!("{STATUS}\n").as_bytes());
                let kind = match c.reply() {
                    Some(line) => {
                        let v: serde_json::Value = serde_json::from_str(&line).expect("JSON");
                        reply_kind(&v)
                    }
                    None => "closed".to_owned(),
                };
                (kind, start.elapsed())
            })
        })
        .collect();
    let results: Vec<(String, Duration)> = clients.into_iter().map(|t| t.join().unwrap()).collect();
    let ok = results.iter().filter(|(k, _)| k == "ok").count();
    for (kind, took) in &results {
        assert!(kind == "ok" || kind == "busy", "{kind}");
        assert!(*took < WAIT, "a client waited {took:?}");
    }
    assert!(ok >= 1, "nobody was served: {results:?}");

    // Bounded: with MAX_CLIENTS connections held open, the next is told busy.
    let held: Vec<RawControl> = (0..MAX_CLIENTS)
        .map(|_| served_connection(&ctl, pid))
        .collect();
    let mut extra = RawControl::connect(&ctl, pid);
    let line = extra.reply().expect("a busy reply");
    let v: serde_json::Value = serde_json::from_str(&line).expect("JSON");
    assert_eq!(reply_kind(&v), "busy", "{line}");
    assert!(extra.reply().is_none(), "closed after busy");
    // The `hotfix` command's client, writing after the refusal closed the
    // connection (EPIPE), still reports the busy reply, not a broken pipe.
    let mut late = Client::connect_in(&ctl, pid as u32).expect("connect");
    thread::sleep(Duration::from_millis(300));
    let reply = late
        .request(Command::Status, WAIT)
        .expect("the busy reply, not a write error");
    assert_eq!(reply.error.map(|e| e.kind), Some(ErrorKind::Busy));
    assert_eq!(
        server.connect().ask("SUM 3 1"),
        "2",
        "the server's own clients"
    );
    drop(held);
    // Slots free as their threads see the connections closed.
    let start = Instant::now();
    loop {
        let mut c = RawControl::connect(&ctl, pid);
        let v = c.ask(STATUS);
        if reply_kind(&v) == "ok" {
            break;
        }
        assert!(start.elapsed() < WAIT, "never served again: {v}");
        thread::sleep(Duration::from_millis(20));
    }
    still_serving(&mut server, &ctl);
}

/// A connection that was admitted and served (earlier clients may still be
/// finishing: reconnect while the server says it is busy).
fn served_connection(ctl: &std::path::Path, pid: libc::pid_t) -> RawControl {
    let start = Instant::now();
    loop {
        let mut c = RawControl::connect(ctl, pid);
        let v = c.ask(STATUS);
        match reply_kind(&v).as_str() {
            "ok" => return c,
            "busy" => {}
            other => panic!("{other}: {v}"),
        }
        assert!(start.elapsed() < WAIT, "busy for too long");
        thread::sleep(Duration::from_millis(20));
    }
}
