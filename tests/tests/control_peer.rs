//! Only the process's own user and root may use its control socket: a peer of
//! another uid is refused (and logged), and the server keeps serving.
//!
//! The tests run as root. The child drops its effective uid to 65534 (nobody)
//! but keeps file-system uid 0, so it can reach the socket through the 0700
//! directory: what refuses it is the server's `SO_PEERCRED` check (which sees
//! the effective uid), not the file permissions.

use hotfix_tests::demo::{RawControl, Server, control_dir, reply_kind};
use std::os::unix::ffi::OsStrExt;

/// Exit codes of the child.
const REFUSED: i32 = 0;
const SERVED: i32 = 1;
const OTHER_REPLY: i32 = 2;
const NO_SETUID: i32 = 20;
const NO_CONNECT: i32 = 23;

/// Whether `needle` occurs in `hay` (no allocation: runs in a forked child).
fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// In the forked child: only raw system calls, no allocation, then `_exit`.
fn child(addr: &libc::sockaddr_un) -> ! {
    const NOBODY: libc::c_long = 65534;
    // SAFETY: raw system calls on this (single-threaded) child's own
    // credentials and on a descriptor it owns; buffers are local and sized.
    unsafe {
        if libc::syscall(libc::SYS_setresuid, NOBODY, NOBODY, 0 as libc::c_long) != 0
            || libc::geteuid() != 65534
        {
            libc::_exit(NO_SETUID);
        }
        // File-system uid back to 0 (allowed: the saved uid is 0).
        libc::syscall(libc::SYS_setfsuid, 0 as libc::c_long);
        let fd = libc::socket(libc::AF_UNIX, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
        let len = std::mem::size_of::<libc::sockaddr_un>() as libc::socklen_t;
        if fd < 0 || libc::connect(fd, (addr as *const libc::sockaddr_un).cast(), len) != 0 {
            libc::_exit(NO_CONNECT);
        }
        let timeout = libc::timeval {
            tv_sec: 30,
            tv_usec: 0,
        };
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_RCVTIMEO,
            (&timeout as *const libc::timeval).cast(),
            std::mem::size_of::<libc::timeval>() as libc::socklen_t,
        );
        let req = b"{\"v\":1,\"cmd\":\"status\"}\n";
        libc::write(fd, req.as_ptr().cast(), req.len());
        let mut buf = [0u8; 4096];
        let mut got = 0usize;
        loop {
            let n = libc::read(fd, buf[got..].as_mut_ptr().cast(), buf.len() - got);
            if n <= 0 {
                break;
            }
            got += n as usize;
            if got == buf.len() {
                break;
            }
        }
        let reply = &buf[..got];
        let code = if contains(reply, b"\"kind\":\"forbidden\"") && contains(reply, b"uid 65534") {
            REFUSED
        } else if contains(reply, b"\"ok\":true") {
            SERVED
        } else {
            OTHER_REPLY
        };
        libc::_exit(code)
    }
}

#[test]
fn a_peer_of_another_uid_is_refused_and_the_server_keeps_serving() {
    // SAFETY: geteuid has no preconditions.
    assert_eq!(unsafe { libc::geteuid() }, 0, "these tests run as root");
    let ctl = control_dir("peer");
    let mut server = Server::start_with_env(&[], &[("HOTFIX_CONTROL_DIR", ctl.as_path())]);
    let mut c = server.connect();
    assert_eq!(c.ask("SUM 1 2"), "-1");

    let path = ctl.join(format!("{}.sock", server.pid));
    let bytes = path.as_os_str().as_bytes();
    // SAFETY: sockaddr_un is plain data; all zeroes is a valid value.
    let mut addr: libc::sockaddr_un = unsafe { std::mem::zeroed() };
    addr.sun_family = libc::AF_UNIX as libc::sa_family_t;
    assert!(bytes.len() < addr.sun_path.len(), "socket path too long");
    for (d, s) in addr.sun_path.iter_mut().zip(bytes) {
        *d = *s as libc::c_char;
    }

    // SAFETY: the child runs only `child`, which makes raw system calls and exits.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork failed");
    if pid == 0 {
        child(&addr);
    }
    let mut status = 0;
    // SAFETY: waiting for our own child, with a valid status pointer.
    let waited = unsafe { libc::waitpid(pid, &mut status, 0) };
    assert_eq!(waited, pid);
    assert!(libc::WIFEXITED(status), "the child died: {status:#x}");
    let code = libc::WEXITSTATUS(status);
    assert_eq!(
        code, REFUSED,
        "child exit {code}: {SERVED} = it was served, {OTHER_REPLY} = another reply, \
         {NO_SETUID} = setresuid failed, {NO_CONNECT} = it could not connect"
    );
    server.wait_stderr("connection refused, the peer's uid is neither this process's nor root");
    assert!(
        server.stderr().contains("peer_uid=65534"),
        "{}",
        server.stderr()
    );

    // Root (this test) is served, and so are the server's clients.
    let mut ctl_conn = RawControl::connect(&ctl, server.pid);
    let reply = ctl_conn.ask(r#"{"v":1,"cmd":"status"}"#);
    assert_eq!(reply_kind(&reply), "ok", "{reply}");
    assert_eq!(reply["status"]["pid"].as_i64(), Some(i64::from(server.pid)));
    assert_eq!(c.ask("SUM 1 2"), "-1");
    server.assert_alive();
}
