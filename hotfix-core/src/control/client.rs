//! The client side of the control socket, as the `hotfix` command uses it.

use super::dir;
use super::peer::{allowed, euid, peer_cred};
use super::protocol::{Command, Reply, Request, VERSION};
use super::socket::{Line, LineReader};
use crate::error::{Error, Result};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Longest reply line accepted, in bytes.
pub const MAX_REPLY: usize = 4 * 1024 * 1024;

/// A connection to one process's control socket.
#[derive(Debug)]
pub struct Client {
    stream: UnixStream,
    path: PathBuf,
    pid: u32,
}

impl Client {
    /// Connects to process `pid`'s socket in [`dir::control_dir`].
    pub fn connect(pid: u32) -> Result<Client> {
        Client::connect_in(&dir::control_dir(), pid)
    }

    /// Connects to process `pid`'s socket in `dir`. Refuses a directory that
    /// group or others may use, and a server that is not process `pid`. Unless
    /// this is root (who may operate anyone's process), the directory and the
    /// server must be this user's or root's.
    pub fn connect_in(dir: &Path, pid: u32) -> Result<Client> {
        dir::check_client_dir(dir)?;
        let path = dir::socket_path(dir, pid);
        let stream = UnixStream::connect(&path).map_err(|source| Error::ControlIo {
            action: "connect to",
            path: path.clone(),
            source,
        })?;
        let peer = |reason: String| Error::ControlPeer {
            path: path.clone(),
            reason,
        };
        let cred = peer_cred(&stream).map_err(|e| peer(format!("no peer credentials: {e}")))?;
        if !(allowed(cred.uid) || euid() == 0) {
            return Err(peer(format!(
                "served by uid {}, neither this user nor root",
                cred.uid
            )));
        }
        if u32::try_from(cred.pid).ok() != Some(pid) {
            return Err(peer(format!(
                "served by process {}, not {pid} (a socket left by another process?)",
                cred.pid
            )));
        }
        Ok(Client { stream, path, pid })
    }

    /// The process this client talks to.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Sends one request and waits at most `timeout` for its reply.
    pub fn request(&mut self, command: Command, timeout: Duration) -> Result<Reply> {
        let io = |action, source| Error::ControlIo {
            action,
            path: self.path.clone(),
            source,
        };
        let mut line = serde_json::to_vec(&Request::new(command)).map_err(|e| {
            io(
                "encode a request for",
                std::io::Error::new(std::io::ErrorKind::InvalidInput, e),
            )
        })?;
        line.push(b'\n');
        // A process that is busy answers before reading and closes: the write
        // can then fail with EPIPE while its reply waits in our buffer. Read
        // it before reporting the write.
        let written = super::socket::write_all(&self.stream, &line);
        let mut reader = LineReader::new(&self.stream, MAX_REPLY);
        let bad = |reason: String| Error::ControlPeer {
            path: self.path.clone(),
            reason,
        };
        let next = reader.next_line(timeout);
        let reply = match (written, next) {
            (Ok(()), next) => next.map_err(|e| io("read from", e))?,
            (Err(_), Ok(Line::Text(t))) => Line::Text(t),
            (Err(e), _) => return Err(io("write to", e)),
        };
        let reply = match reply {
            Line::Text(t) => t,
            Line::TooLong => {
                return Err(bad(format!("a reply longer than {MAX_REPLY} bytes")));
            }
            Line::TimedOut => {
                return Err(bad(format!("no reply within {} s", timeout.as_secs_f64())));
            }
            Line::Closed => {
                return Err(bad(
                    "the process closed the connection without a reply".into()
                ));
            }
        };
        let reply: Reply = serde_json::from_slice(&reply)
            .map_err(|e| bad(format!("a reply that is not protocol JSON: {e}")))?;
        if reply.v != VERSION {
            return Err(bad(format!(
                "a reply of protocol version {}, not {VERSION}",
                reply.v
            )));
        }
        Ok(reply)
    }
}
