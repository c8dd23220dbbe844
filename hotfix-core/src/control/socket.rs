//! One control connection: bounded line reads with a deadline, one reply line
//! per request line.

use super::commands::respond;
use super::peer::PeerCred;
use super::protocol::{ErrorKind, Reply};
use std::io::{self, Read};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

/// Longest request line, in bytes (without the newline).
pub const MAX_LINE: usize = 16 * 1024;

/// How long the server waits for a whole request line.
pub const LINE_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a reply may take to be written before the client is dropped.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// Most connections served at once; more get a `busy` reply.
pub const MAX_CLIENTS: usize = 16;

/// What the reader got.
pub(crate) enum Line {
    /// A complete line, without its newline.
    Text(Vec<u8>),
    /// More than the limit without a newline.
    TooLong,
    /// The deadline passed before a newline.
    TimedOut,
    /// The peer closed the connection (a partial last line is dropped).
    Closed,
}

/// Reads newline-terminated lines of at most `max` bytes, each within `timeout`.
pub(crate) struct LineReader<R> {
    inner: R,
    buf: Vec<u8>,
    max: usize,
}

/// A stream whose reads can be given a deadline.
pub(crate) trait TimedRead: Read {
    /// Makes reads fail with `WouldBlock`/`TimedOut` after `timeout`.
    fn set_timeout(&mut self, timeout: Duration) -> io::Result<()>;
}

impl TimedRead for &UnixStream {
    fn set_timeout(&mut self, timeout: Duration) -> io::Result<()> {
        self.set_read_timeout(Some(timeout.max(Duration::from_millis(1))))
    }
}

impl<R: TimedRead> LineReader<R> {
    pub(crate) fn new(inner: R, max: usize) -> Self {
        LineReader {
            inner,
            buf: Vec::new(),
            max,
        }
    }

    /// The next line, waiting at most `timeout` for it.
    pub(crate) fn next_line(&mut self, timeout: Duration) -> io::Result<Line> {
        let deadline = Instant::now() + timeout;
        let mut chunk = [0u8; 4096];
        loop {
            if let Some(i) = self.buf.iter().position(|&b| b == b'\n') {
                if i > self.max {
                    return Ok(Line::TooLong);
                }
                let line = self.buf.drain(..=i).take(i).collect();
                return Ok(Line::Text(line));
            }
            if self.buf.len() > self.max {
                return Ok(Line::TooLong);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(Line::TimedOut);
            }
            self.inner.set_timeout(left)?;
            match self.inner.read(&mut chunk) {
                Ok(0) => return Ok(Line::Closed),
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    return Ok(Line::TimedOut);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }
}

/// Writes one reply line.
pub(crate) fn send(stream: &UnixStream, reply: &Reply) -> io::Result<()> {
    let mut line = reply.to_line().into_bytes();
    line.push(b'\n');
    write_all(stream, &line)
}

/// Writes all of `bytes` with `MSG_NOSIGNAL`: a peer that closed its end gives
/// `EPIPE`, never a `SIGPIPE` (whose default action would end a host that does
/// not ignore it). The stream's write timeout applies.
pub(crate) fn write_all(stream: &UnixStream, mut bytes: &[u8]) -> io::Result<()> {
    while !bytes.is_empty() {
        // SAFETY: the descriptor is a live socket owned by `stream`; the buffer
        // is valid for reads of `bytes.len()` bytes.
        let n = unsafe {
            libc::send(
                stream.as_raw_fd(),
                bytes.as_ptr().cast(),
                bytes.len(),
                libc::MSG_NOSIGNAL,
            )
        };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        if n == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        bytes = &bytes[n as usize..];
    }
    Ok(())
}

/// Serves one connection of `peer` until the client closes it or breaks the
/// framing.
pub(crate) fn serve_connection(stream: &UnixStream, peer: PeerCred) -> io::Result<()> {
    stream.set_write_timeout(Some(WRITE_TIMEOUT))?;
    let mut reader = LineReader::new(stream, MAX_LINE);
    loop {
        match reader.next_line(LINE_TIMEOUT)? {
            Line::Text(line) => send(stream, &respond(&line, peer))?,
            Line::TooLong => {
                let why = format!("request line longer than {MAX_LINE} bytes; closing");
                return send(stream, &Reply::error(ErrorKind::TooLong, why));
            }
            Line::TimedOut => {
                let why = format!(
                    "no complete request line within {} s; closing",
                    LINE_TIMEOUT.as_secs()
                );
                return send(stream, &Reply::error(ErrorKind::Timeout, why));
            }
            Line::Closed => return Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::VecDeque;

    /// A stream of scripted reads; an empty script times out.
    struct Script(VecDeque<Vec<u8>>);

    impl Read for Script {
        fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
            match self.0.pop_front() {
                Some(mut b) => {
                    let n = b.len().min(out.len());
                    out[..n].copy_from_slice(&b[..n]);
                    if n < b.len() {
                        b.drain(..n);
                        self.0.push_front(b);
                    }
                    Ok(n)
                }
                None => Err(io::ErrorKind::WouldBlock.into()),
            }
        }
    }

    impl TimedRead for Script {
        fn set_timeout(&mut self, _: Duration) -> io::Result<()> {
            Ok(())
        }
    }

    fn reader(parts: &[&[u8]], max: usize) -> LineReader<Script> {
        LineReader::new(Script(parts.iter().map(|p| p.to_vec()).collect()), max)
    }

    fn text(l: Line) -> Vec<u8> {
        match l {
            Line::Text(t) => t,
            _ => panic!("not a line"),
        }
    }

    #[test]
    fn lines_split_across_reads_and_several_per_read() {
        let mut r = reader(&[b"ab", b"c\nde\nf", b"g\n"], 100);
        let t = Duration::from_secs(1);
        assert_eq!(text(r.next_line(t).unwrap()), b"abc");
        assert_eq!(text(r.next_line(t).unwrap()), b"de");
        assert_eq!(text(r.next_line(t).unwrap()), b"fg");
        assert!(matches!(r.next_line(t).unwrap(), Line::TimedOut));
    }

    #[test]
    fn overlong_and_unfinished_lines() {
        let t = Duration::from_secs(1);
        let long = vec![b'x'; 5000];
        assert!(matches!(
            reader(&[&long], 100).next_line(t).unwrap(),
            Line::TooLong
        ));
        let mut just_over = vec![b'x'; 101];
        just_over.push(b'\n');
        assert!(matches!(
            reader(&[&just_over], 100).next_line(t).unwrap(),
            Line::TooLong
        ));
        let mut at_limit = vec![b'x'; 100];
        at_limit.push(b'\n');
        assert_eq!(
            text(reader(&[&at_limit], 100).next_line(t).unwrap()).len(),
            100
        );
        assert!(matches!(
            reader(&[b"{\"v\":1"], 100).next_line(t).unwrap(),
            Line::TimedOut
        ));
    }
}
