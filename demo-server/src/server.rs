//! The listener and the connections: one thread per client, one reply line per
//! request line.

use crate::dispatch::respond;
use crate::lines::{Line, LineReader};
use std::io::{self, BufWriter, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::Duration;

/// Longest request line, in bytes (without the newline).
pub const MAX_LINE: usize = 4096;

/// Most clients served at once; more are told so and closed.
pub const MAX_CLIENTS: usize = 1024;

/// A bound listener, not yet serving.
pub struct Server {
    listener: TcpListener,
    clients: Arc<AtomicUsize>,
}

impl Server {
    /// Binds `addr` (port 0 picks a free port).
    pub fn bind(addr: SocketAddr) -> io::Result<Server> {
        Ok(Server {
            listener: TcpListener::bind(addr)?,
            clients: Arc::new(AtomicUsize::new(0)),
        })
    }

    /// The address actually bound.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Accepts clients forever, each on its own thread.
    pub fn serve(self) -> io::Result<()> {
        for stream in self.listener.incoming() {
            match stream {
                Ok(stream) => self.start(stream),
                Err(e) => {
                    // Out of descriptors or memory: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    thread::sleep(Duration::from_millis(50));
                }
            }
        }
        Ok(())
    }

    fn start(&self, mut stream: TcpStream) {
        if self.clients.fetch_add(1, Ordering::AcqRel) >= MAX_CLIENTS {
            self.clients.fetch_sub(1, Ordering::AcqRel);
            let _ = stream.write_all(b"ERR too many clients\n");
            return;
        }
        let clients = Arc::clone(&self.clients);
        let spawned = thread::Builder::new()
            .name("client".to_owned())
            .spawn(move || {
                let peer = stream.peer_addr().ok();
                tracing::debug!(?peer, "client connected");
                if let Err(e) = serve_client(stream) {
                    tracing::debug!(?peer, error = %e, "client connection failed");
                }
                tracing::debug!(?peer, "client disconnected");
                clients.fetch_sub(1, Ordering::AcqRel);
            });
        if let Err(e) = spawned {
            self.clients.fetch_sub(1, Ordering::AcqRel);
            tracing::warn!(error = %e, "cannot start a client thread");
        }
    }
}

/// Answers every request line of one connection until the client closes it.
fn serve_client(stream: TcpStream) -> io::Result<()> {
    stream.set_nodelay(true)?;
    let mut reader = LineReader::new(stream.try_clone()?, MAX_LINE);
    let mut writer = BufWriter::new(stream);
    while let Some(line) = reader.next_line()? {
        let reply = match line {
            Line::Text(bytes) => respond(bytes),
            Line::TooLong => format!("ERR request line longer than {MAX_LINE} bytes"),
        };
        writer.write_all(reply.as_bytes())?;
        writer.write_all(b"\n")?;
        if !reader.has_buffered() {
            writer.flush()?;
        }
    }
    writer.flush()
}
