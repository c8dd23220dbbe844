//! A patched `async fn` that awaits a tokio timer, reads a tokio TCP socket
//! and spawns a task runs on the host's runtime, on multi-threaded and
//! current-thread runtimes alike, as if compiled into the host.

use fixture_host::tokio_io::wait_and_read;
use hotfix_core::Runtime;
use hotfix_tests::{build_patch, serial};
use std::time::{Duration, Instant};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};

const WAIT_MS: u64 = 30;

/// Accepts one connection whose peer writes `hello`, calls `wait_and_read`
/// on it; returns its result and how long it took.
async fn serve_one() -> (usize, Duration) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("address");
    let peer = tokio::spawn(async move {
        let mut c = TcpStream::connect(addr).await.expect("connect");
        c.write_all(b"hello").await.expect("write");
        // Keep the connection open until the server has read.
        tokio::time::sleep(Duration::from_millis(500)).await;
    });
    let (mut stream, _) = listener.accept().await.expect("accept");
    let start = Instant::now();
    let n = wait_and_read(&mut stream, WAIT_MS).await;
    let took = start.elapsed();
    peer.abort();
    (n, took)
}

fn on_each_runtime(check: impl Fn(usize, Duration)) {
    let multi = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a multi-thread runtime");
    let (n, took) = multi.block_on(serve_one());
    check(n, took);
    let current = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a current-thread runtime");
    let (n, took) = current.block_on(serve_one());
    check(n, took);
}

#[test]
fn a_patched_async_fn_uses_the_hosts_timers_sockets_and_tasks() {
    let path = build_patch("tokio_io");
    let _guard = serial();
    on_each_runtime(|n, _| assert_eq!(n, 0, "the shipped bug reads nothing"));
    let applied = Runtime::global().apply(&path).expect("apply tokio_io");
    on_each_runtime(|n, took| {
        assert_eq!(
            n, 10,
            "read `hello` (5 bytes) on the host's socket, doubled in a task"
        );
        assert!(
            took >= Duration::from_millis(WAIT_MS),
            "the patch's timer fired before its deadline: {took:?}"
        );
    });
    Runtime::global().revert(applied.id).expect("revert");
    on_each_runtime(|n, _| assert_eq!(n, 0, "reverted"));
}
