//! The listening socket and its thread: accepts, checks the peer, hands each
//! allowed connection to a thread of its own within [`MAX_CLIENTS`].

use super::dir;
use super::peer::{allowed, peer_cred};
use super::protocol::{ErrorKind, Reply};
use super::socket::{MAX_CLIENTS, WRITE_TIMEOUT, send, serve_connection};
use crate::error::{Error, Result};
use std::fs;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

/// The socket served by this process, once started.
static SERVING: Mutex<Option<PathBuf>> = Mutex::new(None);

/// Binds `<dir>/<pid>.sock` and starts the accepting thread (once per process).
pub(crate) fn start(dir: &Path) -> Result<PathBuf> {
    let mut serving = SERVING.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(path) = &*serving {
        tracing::debug!(socket = %path.display(), "control socket already served");
        return Ok(path.clone());
    }
    dir::ensure_dir(dir)?;
    let path = dir::socket_path(dir, std::process::id());
    let io = |action, source| Error::ControlIo {
        action,
        path: path.clone(),
        source,
    };
    // A socket of our pid that we do not serve is a dead process's.
    match fs::symlink_metadata(&path) {
        Ok(m) if m.file_type().is_socket() => {
            fs::remove_file(&path).map_err(|e| io("remove the stale", e))?
        }
        Ok(_) => {
            return Err(Error::ControlDir {
                path: dir.to_owned(),
                reason: format!("{} exists and is not a socket", path.display()),
            });
        }
        Err(_) => {}
    }
    let listener = UnixListener::bind(&path).map_err(|e| io("bind", e))?;
    fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).map_err(|e| io("chmod", e))?;
    thread::Builder::new()
        .name("hotfix-control".to_owned())
        .spawn(move || accept_loop(listener))
        .map_err(|e| io("start the thread of", e))?;
    tracing::info!(socket = %path.display(), "hotfix control socket listening");
    *serving = Some(path.clone());
    Ok(path)
}

fn accept_loop(listener: UnixListener) {
    let active = Arc::new(AtomicUsize::new(0));
    for stream in listener.incoming() {
        match stream {
            Ok(stream) => admit(stream, &active),
            Err(e) => {
                // Out of descriptors or memory: back off instead of spinning.
                tracing::warn!(error = %e, "control socket: accept failed");
                thread::sleep(Duration::from_millis(50));
            }
        }
    }
}

/// Checks the peer and the number of connections, then serves it on a thread.
fn admit(stream: UnixStream, active: &Arc<AtomicUsize>) {
    // Replies written from this thread must never block it.
    let _ = stream.set_write_timeout(Some(Duration::from_millis(100)));
    let cred = match peer_cred(&stream) {
        Ok(cred) if allowed(cred.uid) => cred,
        Ok(cred) => {
            tracing::warn!(
                peer_pid = cred.pid,
                peer_uid = cred.uid,
                "control socket: connection refused, the peer's uid is neither this process's nor root"
            );
            let why = format!(
                "uid {} may not use this control socket (only uid {} and root may)",
                cred.uid,
                super::peer::euid()
            );
            let _ = send(&stream, &Reply::error(ErrorKind::Forbidden, why));
            return;
        }
        Err(e) => {
            tracing::warn!(error = %e, "control socket: cannot read the peer's credentials; connection refused");
            return;
        }
    };
    if active.fetch_add(1, Ordering::AcqRel) >= MAX_CLIENTS {
        active.fetch_sub(1, Ordering::AcqRel);
        tracing::debug!("control socket: too many connections; one refused");
        let why = format!("{MAX_CLIENTS} connections are served already; try again");
        let _ = send(&stream, &Reply::error(ErrorKind::Busy, why));
        return;
    }
    let _ = stream.set_write_timeout(Some(WRITE_TIMEOUT));
    let guard = ActiveGuard(Arc::clone(active));
    let spawned = thread::Builder::new()
        .name("hotfix-control-conn".to_owned())
        .spawn(move || {
            let _guard = guard;
            if let Err(e) = serve_connection(&stream, cred) {
                tracing::debug!(error = %e, "control connection ended with an error");
            }
        });
    if let Err(e) = spawned {
        tracing::warn!(error = %e, "control socket: cannot start a connection thread");
    }
}

/// Counts a connection as active until dropped (also when its thread panics or
/// could not start).
struct ActiveGuard(Arc<AtomicUsize>);

impl Drop for ActiveGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}
