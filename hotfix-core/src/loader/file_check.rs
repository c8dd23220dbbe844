//! Checks on the patch file made before anything is loaded, and the private
//! copy that is loaded instead of the file itself.
//!
//! The copy makes each load a fresh `dlopen` (the loader would otherwise hand
//! back an already-loaded library for the same inode), and keeps a rebuild of the
//! patch from rewriting code that is mapped and running.

use crate::digest::Digest;
use crate::error::{Error, Result};
use std::fs;
use std::io::Read;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// A patch file that passed the checks, with its bytes.
pub(crate) struct CheckedFile {
    /// The path the user gave, canonicalised.
    pub source: PathBuf,
    /// The bytes that were checked (and are the only ones ever loaded).
    pub bytes: Vec<u8>,
    /// SHA-256 of the bytes.
    pub digest: Digest,
}

/// The default largest patch file the runtime reads: 256 MiB.
pub const DEFAULT_MAX_PATCH_SIZE: u64 = 256 << 20;

fn insecure(path: &Path, reason: String) -> Error {
    Error::Insecure {
        path: path.to_owned(),
        reason,
    }
}

/// Refuses a file or directory that anyone but its owner may write.
pub(crate) fn check_mode(path: &Path, meta: &fs::Metadata, what: &str) -> Result<()> {
    let mode = meta.permissions().mode() & 0o7777;
    if mode & 0o022 != 0 {
        return Err(insecure(
            path,
            format!(
                "{what} {} is writable by {} (mode {mode:o}); only its owner may write it",
                path.display(),
                if mode & 0o002 != 0 {
                    "everyone"
                } else {
                    "its group"
                }
            ),
        ));
    }
    // SAFETY: geteuid has no preconditions and cannot fail.
    let euid = unsafe { libc::geteuid() };
    if meta.uid() != euid && meta.uid() != 0 {
        return Err(insecure(
            path,
            format!(
                "{what} {} is owned by uid {}, not by this process's user ({euid}) or root",
                path.display(),
                meta.uid()
            ),
        ));
    }
    Ok(())
}

/// Checks `path` and reads it, at most `max_size` bytes. Nothing is loaded.
pub(crate) fn check(path: &Path, max_size: u64) -> Result<CheckedFile> {
    let io = |source| Error::Io {
        path: path.to_owned(),
        source,
    };
    let source = match fs::canonicalize(path) {
        Ok(p) => p,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(Error::NotFound {
                path: path.to_owned(),
            });
        }
        Err(e) => return Err(io(e)),
    };
    let meta = fs::metadata(&source).map_err(io)?;
    if !meta.is_file() {
        let kind = if meta.is_dir() {
            "directory"
        } else {
            "special file"
        };
        return Err(Error::NotAFile { path: source, kind });
    }
    check_mode(&source, &meta, "the patch file")?;
    let dir = source.parent().unwrap_or(Path::new("/"));
    let dir_meta = fs::metadata(dir).map_err(io)?;
    check_mode(dir, &dir_meta, "the patch's directory")?;

    let file = fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(&source)
        .map_err(io)?;
    let opened = file.metadata().map_err(io)?;
    if opened.ino() != meta.ino() || opened.dev() != meta.dev() || !opened.is_file() {
        return Err(insecure(
            &source,
            "the file was replaced while it was being checked".into(),
        ));
    }
    if let Some(fs) = pseudo_file_system(&file) {
        return Err(Error::PseudoFileSystem { path: source, fs });
    }
    let reported = opened.len();
    if reported > max_size {
        return Err(Error::TooLarge {
            path: source,
            size: reported,
            limit: max_size,
        });
    }
    // Read one byte more than reported: a file that yields more (or less) than
    // its size is not plain stored bytes.
    let mut bytes = Vec::with_capacity(reported as usize);
    (&file)
        .take(reported + 1)
        .read_to_end(&mut bytes)
        .map_err(io)?;
    if bytes.len() as u64 != reported {
        return Err(Error::UntruthfulSize {
            path: source,
            reported,
            read: bytes.len() as u64,
        });
    }
    let digest = Digest::of(&bytes);
    Ok(CheckedFile {
        source,
        bytes,
        digest,
    })
}

/// The name of the pseudo file system `file` lives on (procfs, sysfs and
/// friends, whose files are generated, not stored), if it does.
fn pseudo_file_system(file: &fs::File) -> Option<&'static str> {
    use std::os::fd::AsRawFd;
    const PSEUDO: &[(i64, &str)] = &[
        (0x9fa0, "procfs"),
        (0x6265_6572, "sysfs"),
        (0x6462_6720, "debugfs"),
        (0x7472_6163, "tracefs"),
        (0x0027_e0eb, "cgroupfs"),
        (0x6367_7270, "cgroup2fs"),
        (0x7363_6673, "securityfs"),
        (0x6165_676c, "pstore"),
        (0xcafe_4a11, "bpffs"),
        (0x6265_6570, "configfs"),
        (0x6573_5543, "fusectl"),
        (0xde5e_81e4, "efivarfs"),
        (0x1cd1, "devpts"),
        (0xf97c_ff8c, "selinuxfs"),
        (0x6e73_6673, "nsfs"),
        (0x5346_414f, "openpromfs"),
    ];
    // SAFETY: a zeroed statfs is valid storage for fstatfs to fill.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: the fd is open for the call; st is valid for writes.
    if unsafe { libc::fstatfs(file.as_raw_fd(), &mut st) } != 0 {
        return None;
    }
    let kind = st.f_type as i64;
    PSEUDO.iter().find(|(m, _)| *m == kind).map(|(_, n)| *n)
}

/// The private copy a patch is loaded from: an anonymous, sealed in-memory
/// file, or (where `memfd_create` is refused) a file in this process's 0700
/// directory, unlinked on drop (the mapping outlives the name).
pub(crate) enum PrivateCopy {
    /// A sealed memfd, loaded through `/proc/self/fd/N`. It is never closed:
    /// the dynamic loader recognises loaded libraries by path, and the number
    /// of a closed descriptor would be handed to the next patch, whose
    /// `dlopen` would then return the library loaded before.
    Memfd {
        /// Held, never closed.
        _fd: std::mem::ManuallyDrop<fs::File>,
        /// `/proc/self/fd/N`.
        path: PathBuf,
    },
    /// A file in the private directory.
    File(PathBuf),
}

impl PrivateCopy {
    /// The path `dlopen` opens.
    pub(crate) fn path(&self) -> &Path {
        match self {
            PrivateCopy::Memfd { path, .. } | PrivateCopy::File(path) => path,
        }
    }

    /// Frees a copy that `dlopen` refused to load: nothing refers to its path,
    /// so its descriptor may be closed (and its number reused).
    pub(crate) fn discard(mut self) {
        if let PrivateCopy::Memfd { _fd, .. } = &mut self {
            // SAFETY: taken once; `self` is dropped right after without
            // touching the descriptor again.
            drop(unsafe { std::mem::ManuallyDrop::take(_fd) });
        }
    }
}

impl Drop for PrivateCopy {
    fn drop(&mut self) {
        if let PrivateCopy::File(p) = self {
            let _ = fs::remove_file(p);
        }
    }
}

/// Writes the checked bytes to a private copy (see [`PrivateCopy`]).
pub(crate) fn private_copy(checked: &CheckedFile) -> Result<PrivateCopy> {
    match memfd_copy(checked) {
        Ok(c) => Ok(c),
        Err(e) => {
            tracing::debug!(error = %e, "memfd_create refused; copying to the private directory");
            file_copy(checked)
        }
    }
}

fn memfd_copy(checked: &CheckedFile) -> std::io::Result<PrivateCopy> {
    use std::os::fd::FromRawFd;
    let name = c"hotfix-patch";
    // SAFETY: name is a valid C string; the flags are valid for memfd_create.
    let fd =
        unsafe { libc::memfd_create(name.as_ptr(), libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: fd was just returned by memfd_create and is owned by nothing else.
    let mut file = unsafe { fs::File::from_raw_fd(fd) };
    std::io::Write::write_all(&mut file, &checked.bytes)?;
    // Nobody may change the bytes that were checked once they are mapped.
    let seals = libc::F_SEAL_WRITE | libc::F_SEAL_GROW | libc::F_SEAL_SHRINK | libc::F_SEAL_SEAL;
    // SAFETY: fcntl on an fd we own, with a valid command and argument.
    if unsafe { libc::fcntl(fd, libc::F_ADD_SEALS, seals) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    let path = PathBuf::from(format!("/proc/self/fd/{fd}"));
    if !path.exists() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::NotFound,
            "/proc/self/fd is not available",
        ));
    }
    Ok(PrivateCopy::Memfd {
        _fd: std::mem::ManuallyDrop::new(file),
        path,
    })
}

/// This process's private directory for patch copies (mode 0700).
fn private_dir() -> Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!("hotfix-{}", std::process::id()));
    let io = |source| Error::Io {
        path: dir.clone(),
        source,
    };
    match fs::DirBuilder::new().mode(0o700).create(&dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(io(e)),
    }
    let meta = fs::symlink_metadata(&dir).map_err(io)?;
    // SAFETY: geteuid has no preconditions and cannot fail.
    let euid = unsafe { libc::geteuid() };
    if !meta.is_dir() || meta.uid() != euid || meta.permissions().mode() & 0o077 != 0 {
        return Err(insecure(
            &dir,
            "the private copy directory is not a directory owned by this user with mode 0700"
                .into(),
        ));
    }
    Ok(dir)
}

/// Writes the checked bytes to a new file in this process's private directory.
fn file_copy(checked: &CheckedFile) -> Result<PrivateCopy> {
    let (source, bytes, digest) = (&checked.source, &checked.bytes, checked.digest.short());
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let stem = source
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "patch".into());
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let copy = private_dir()?.join(format!("{stem}-{digest}-{n}.so"));
    let io = |source| Error::Io {
        path: copy.clone(),
        source,
    };
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o500)
        .open(&copy)
        .map_err(io)?;
    std::io::Write::write_all(&mut f, bytes).map_err(io)?;
    Ok(PrivateCopy::File(copy))
}
