//! A client that hangs up before its reply cannot end the host, even a host
//! that does not ignore `SIGPIPE` (as a Rust library in a C program may not).
//!
//! Each client sends many requests in one write and closes the connection at
//! once, so the server writes replies into a connection its client has closed:
//! a write that raises `SIGPIPE` unless it is made with `MSG_NOSIGNAL`. The
//! test counts those writes (each ends its connection with `EPIPE`, which the
//! server logs) and requires a floor of them, then asks the host for its status.

use hotfix_tests::demo::{RawControl, control_dir, reply_kind};
use std::fmt::Write as _;
use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use tracing::field::{Field, Visit};
use tracing_subscriber::Layer;
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::layer::{Context, SubscriberExt};

/// Connections opened, one after the other.
const CONNECTIONS: usize = 20;
/// Requests each client writes before it closes: far more replies than the
/// server writes before the close arrives.
const PIPELINED: usize = 1000;
/// Fewest connections whose server side must have hit the closed connection.
const MIN_EPIPE: usize = CONNECTIONS / 2;
/// How long to wait for one connection's server side to end.
const WAIT: Duration = Duration::from_secs(5);

/// Counts control connections that ended because a reply hit a connection the
/// client had closed (`EPIPE`, errno 32).
struct EndedWithEpipe(Arc<AtomicUsize>);

struct Fields(String);

impl Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        let _ = write!(self.0, "{}={:?} ", field.name(), value);
    }
}

impl<S: tracing::Subscriber> Layer<S> for EndedWithEpipe {
    fn on_event(&self, event: &tracing::Event<'_>, _: Context<'_, S>) {
        let mut f = Fields(String::new());
        event.record(&mut f);
        if f.0.contains("control connection ended with an error") && f.0.contains("os error 32") {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }
}

#[test]
fn clients_that_hang_up_early_do_not_kill_a_host_without_sigpipe_ignored() {
    // SAFETY: restores the default action of SIGPIPE (terminate) for this
    // process; no handler is involved.
    let previous = unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
    assert_ne!(previous, libc::SIG_ERR);
    let epipe = Arc::new(AtomicUsize::new(0));
    tracing::subscriber::set_global_default(
        tracing_subscriber::registry()
            .with(EndedWithEpipe(Arc::clone(&epipe)).with_filter(LevelFilter::DEBUG)),
    )
    .expect("the test's global subscriber");
    let ctl = control_dir("sigpipe");
    hotfix_core::control::serve_in(&ctl).expect("serve the control socket");
    let pid = std::process::id() as libc::pid_t;
    let requests = "{\"v\":1,\"cmd\":\"status\"}\n".repeat(PIPELINED);
    for i in 0..CONNECTIONS {
        let before = epipe.load(Ordering::SeqCst);
        let c = RawControl::connect(&ctl, pid);
        // One connection at a time: the server is never too busy to take it.
        (&c.stream)
            .write_all(requests.as_bytes())
            .expect("send the requests");
        // Closes both descriptors of the connection: the client is gone.
        drop(c);
        let start = Instant::now();
        while epipe.load(Ordering::SeqCst) == before && start.elapsed() < WAIT {
            std::thread::sleep(Duration::from_millis(1));
        }
        if epipe.load(Ordering::SeqCst) == before {
            eprintln!("connection {i}: no reply hit the closed connection within {WAIT:?}");
        }
    }
    let hit = epipe.load(Ordering::SeqCst);
    eprintln!("{hit} of {CONNECTIONS} connections: a reply was written after the client closed");
    assert!(
        hit >= MIN_EPIPE,
        "only {hit} of {CONNECTIONS} connections had a reply written after the client closed \
         (at least {MIN_EPIPE} needed): the test did not make the write it exists for"
    );
    // The host survived every one of those writes and still answers.
    let v = RawControl::connect(&ctl, pid).ask(r#"{"v":1,"cmd":"status"}"#);
    assert_eq!(reply_kind(&v), "ok", "{v}");
}
