//! Where control sockets live: one directory per user, one socket per process.

use crate::error::{Error, Result};
use std::fs;
use std::io;
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Environment variable naming the control directory (overrides the default).
pub const DIR_ENV: &str = "HOTFIX_CONTROL_DIR";

fn euid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

/// The control directory of this user: `$HOTFIX_CONTROL_DIR` if set, else
/// `$XDG_RUNTIME_DIR/hotfix` if that is set to an absolute path, else
/// `/tmp/hotfix-run-<euid>`. A server and the `hotfix` command find each other
/// when they agree on it (same user, same environment).
pub fn control_dir() -> PathBuf {
    let from = |name: &str| {
        std::env::var_os(name)
            .map(PathBuf::from)
            .filter(|p| p.is_absolute())
    };
    if let Some(d) = from(DIR_ENV) {
        return d;
    }
    if let Some(d) = from("XDG_RUNTIME_DIR") {
        return d.join("hotfix");
    }
    // Not TMPDIR: a server and the command must agree whatever their TMPDIR.
    PathBuf::from(format!("/tmp/hotfix-run-{}", euid()))
}

/// The socket of process `pid` in `dir`.
pub fn socket_path(dir: &Path, pid: u32) -> PathBuf {
    dir.join(format!("{pid}.sock"))
}

/// Refuses a control directory to serve in that is not a real directory owned
/// by this user with no permission for group or others.
pub fn check_dir(dir: &Path) -> Result<()> {
    check_owned(dir, |owner| owner == euid())
}

/// Refuses a control directory to connect in that is not a real directory with
/// no permission for group or others, owned by this user or root (root may use
/// anyone's).
pub fn check_client_dir(dir: &Path) -> Result<()> {
    check_owned(dir, |owner| owner == euid() || owner == 0 || euid() == 0)
}

fn check_owned(dir: &Path, owner_ok: impl Fn(u32) -> bool) -> Result<()> {
    let refuse = |reason: String| Error::ControlDir {
        path: dir.to_owned(),
        reason,
    };
    let meta = fs::symlink_metadata(dir).map_err(|e| refuse(e.to_string()))?;
    if !meta.is_dir() {
        return Err(refuse(
            "it is not a directory (or it is a symbolic link)".into(),
        ));
    }
    if !owner_ok(meta.uid()) {
        return Err(refuse(format!(
            "it is owned by uid {}, not by this user ({})",
            meta.uid(),
            euid()
        )));
    }
    let mode = meta.permissions().mode() & 0o7777;
    if mode & 0o077 != 0 {
        return Err(refuse(format!(
            "its mode is {mode:o}: group or others have access (it must be 0700)"
        )));
    }
    Ok(())
}

/// Creates `dir` (mode 0700) if missing, then checks it ([`check_dir`]).
pub fn ensure_dir(dir: &Path) -> Result<()> {
    match fs::DirBuilder::new().mode(0o700).create(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
        Err(source) => {
            return Err(Error::ControlIo {
                action: "create the directory of",
                path: dir.to_owned(),
                source,
            });
        }
    }
    check_dir(dir)
}

/// The pids of the processes with a control socket in `dir`, sorted. Sockets of
/// processes that no longer exist are removed (they are left behind when a
/// process exits); other files are ignored.
pub fn live_pids(dir: &Path) -> Result<Vec<u32>> {
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => {
            return Err(Error::ControlIo {
                action: "list the directory of",
                path: dir.to_owned(),
                source,
            });
        }
    };
    let mut pids = Vec::new();
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|n| n.strip_suffix(".sock"))
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        if !entry.file_type().is_ok_and(|t| t.is_socket()) {
            continue;
        }
        if Path::new(&format!("/proc/{pid}")).exists() {
            pids.push(pid);
        } else {
            match fs::remove_file(entry.path()) {
                Ok(()) => {
                    tracing::debug!(pid, "removed the stale control socket of a dead process")
                }
                Err(e) => tracing::debug!(pid, error = %e, "cannot remove a stale control socket"),
            }
        }
    }
    pids.sort_unstable();
    Ok(pids)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn fresh(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("hotfix-dir-test-{}-{name}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        d
    }

    #[test]
    fn a_directory_others_may_use_is_refused() {
        let d = fresh("mode");
        ensure_dir(&d).expect("created 0700");
        assert_eq!(
            fs::metadata(&d).unwrap().permissions().mode() & 0o777,
            0o700
        );
        for mode in [0o755, 0o770, 0o701, 0o707] {
            fs::set_permissions(&d, fs::Permissions::from_mode(mode)).unwrap();
            let e = ensure_dir(&d).expect_err("refused");
            assert!(matches!(e, Error::ControlDir { .. }), "{e}");
            assert!(e.to_string().contains("group or others"), "{e}");
            assert!(check_client_dir(&d).is_err(), "{mode:o}");
        }
        fs::set_permissions(&d, fs::Permissions::from_mode(0o700)).unwrap();
        ensure_dir(&d).expect("0700 is fine");
        let _ = fs::remove_dir_all(&d);
    }

    #[test]
    fn a_symlink_or_a_file_is_refused() {
        let d = fresh("link");
        let real = fresh("link-target");
        ensure_dir(&real).unwrap();
        std::os::unix::fs::symlink(&real, &d).unwrap();
        let e = check_dir(&d).expect_err("a symlink is refused");
        assert!(e.to_string().contains("symbolic link"), "{e}");
        let f = fresh("file");
        fs::write(&f, b"").unwrap();
        assert!(ensure_dir(&f).is_err());
        for p in [&d, &f] {
            let _ = fs::remove_file(p);
        }
        let _ = fs::remove_dir_all(&real);
    }

    /// A directory owned by another user is refused to serve in, whoever runs
    /// the test: as root, one this test creates and gives to uid 65534; as
    /// anyone else (who cannot give a directory away), a system directory
    /// owned by another user.
    #[test]
    fn another_users_directory_is_refused_to_serve_in() {
        if euid() == 0 {
            let d = fresh("owner");
            ensure_dir(&d).unwrap();
            let c = std::ffi::CString::new(d.as_os_str().as_encoded_bytes()).unwrap();
            // SAFETY: chown of a path we created, with a valid C string.
            let rc = unsafe { libc::chown(c.as_ptr(), 65534, 65534) };
            assert_eq!(rc, 0, "root can chown");
            for e in [
                check_dir(&d).expect_err("not ours"),
                ensure_dir(&d).expect_err("not ours"),
            ] {
                assert!(matches!(e, Error::ControlDir { .. }), "{e}");
                assert!(e.to_string().contains("owned by uid 65534"), "{e}");
            }
            // Root may operate anyone's processes.
            check_client_dir(&d).expect("root connects in anyone's directory");
            let _ = fs::remove_dir_all(&d);
            return;
        }
        let me = euid();
        let Some((d, owner)) = ["/", "/usr", "/etc", "/proc"].iter().find_map(|d| {
            let uid = fs::symlink_metadata(d).ok()?.uid();
            (uid != me).then(|| (Path::new(d), uid))
        }) else {
            // Written past the test harness's capture, so every run shows it.
            use std::io::Write;
            let why = format!(
                "NOT RUN: another_users_directory_is_refused_to_serve_in: uid {me} owns /, /usr, /etc and /proc"
            );
            let _ = writeln!(std::io::stderr().lock(), "{why}");
            let ci = std::env::var("CI").is_ok_and(|v| v.eq_ignore_ascii_case("true") || v == "1");
            assert!(!ci, "{why} (CI is set: every test must run here)");
            return;
        };
        for e in [
            check_dir(d).expect_err("not ours"),
            ensure_dir(d).expect_err("not ours"),
        ] {
            assert!(matches!(e, Error::ControlDir { .. }), "{e}");
            assert!(
                e.to_string()
                    .contains(&format!("owned by uid {owner}, not by this user ({me})")),
                "{e}"
            );
        }
    }

    #[test]
    fn stale_sockets_of_dead_processes_are_removed() {
        let d = fresh("stale");
        ensure_dir(&d).unwrap();
        // A pid that cannot exist (above the kernel's maximum).
        let dead = socket_path(&d, 4_194_304 + 1);
        let live = socket_path(&d, std::process::id());
        let _l1 = std::os::unix::net::UnixListener::bind(&dead).unwrap();
        let _l2 = std::os::unix::net::UnixListener::bind(&live).unwrap();
        fs::write(d.join("7.sock.txt"), b"").unwrap();
        fs::write(d.join("1.sock"), b"not a socket").unwrap();
        assert_eq!(live_pids(&d).unwrap(), vec![std::process::id()]);
        assert!(!dead.exists(), "the dead process's socket is removed");
        assert!(d.join("1.sock").exists(), "other files are left alone");
        let _ = fs::remove_dir_all(&d);
    }
}
