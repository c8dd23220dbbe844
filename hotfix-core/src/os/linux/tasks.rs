//! The threads of this process, listed from `/proc/self/task` with raw system
//! calls and stack buffers, so it can run while other threads are stopped.

use super::stop_handler::stop_signal;
use crate::code_error::CodeError;

/// Whether the task may still run a handler. False only when proven gone: its
/// /proc entry is missing (ENOENT/ESRCH) or it is a zombie or dead; any other
/// failure (out of descriptors) counts as alive. Allocation-free.
pub(super) fn task_alive(tid: i32) -> bool {
    let mut path = [0u8; 48];
    let prefix = b"/proc/self/task/";
    path[..prefix.len()].copy_from_slice(prefix);
    let mut n = prefix.len();
    n += write_decimal(&mut path[n..], tid as u32);
    let suffix = b"/stat\0";
    path[n..n + suffix.len()].copy_from_slice(suffix);
    // SAFETY: path is NUL-terminated; open has no other preconditions.
    let fd = unsafe { libc::open(path.as_ptr().cast(), libc::O_RDONLY | libc::O_CLOEXEC) };
    if fd < 0 {
        return !matches!(errno(), libc::ENOENT | libc::ESRCH);
    }
    let mut buf = [0u8; 512];
    // SAFETY: buf is valid for buf.len() bytes; fd is open.
    let r = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
    let read_errno = errno();
    // SAFETY: fd was opened above and is closed once.
    unsafe { libc::close(fd) };
    if r <= 0 {
        return !(r < 0 && matches!(read_errno, libc::ENOENT | libc::ESRCH));
    }
    let text = &buf[..r as usize];
    // "tid (comm) S ...": the state follows the last ')'.
    match text.iter().rposition(|&b| b == b')') {
        Some(i) if i + 2 < text.len() => !matches!(text[i + 2], b'Z' | b'X' | b'x'),
        _ => true,
    }
}

fn write_decimal(out: &mut [u8], mut v: u32) -> usize {
    let mut digits = [0u8; 10];
    let mut n = 0;
    loop {
        digits[n] = b'0' + (v % 10) as u8;
        n += 1;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    for i in 0..n {
        out[i] = digits[n - 1 - i];
    }
    n
}

/// How many threads the process has now.
pub(super) fn count_tasks() -> Option<usize> {
    std::fs::read_dir("/proc/self/task").ok().map(|d| d.count())
}

/// Why a thread did not take the stop signal, from its status file.
pub(super) fn why_not_stopped(tid: i32) -> String {
    let status =
        std::fs::read_to_string(format!("/proc/self/task/{tid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .map(|v| v.trim().to_string())
    };
    let bit = 1u64 << (stop_signal() - 1);
    let blocked = field("SigBlk:")
        .and_then(|v| u64::from_str_radix(&v, 16).ok())
        .is_some_and(|m| m & bit != 0);
    if blocked {
        return format!("it blocks the stop signal {}", stop_signal());
    }
    let state = field("State:").unwrap_or_else(|| "unknown".into());
    let tracer = field("TracerPid:").unwrap_or_else(|| "0".into());
    format!("state {state}, tracer pid {tracer}")
}

/// An open `/proc/self/task` directory, listed with raw `getdents64`.
pub(super) struct TaskDir {
    fd: i32,
}

impl TaskDir {
    /// Opens `/proc/self/task`.
    pub(super) fn open() -> Result<Self, CodeError> {
        // SAFETY: the path is a NUL-terminated literal.
        let fd = unsafe {
            libc::open(
                c"/proc/self/task".as_ptr(),
                libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC,
            )
        };
        if fd < 0 {
            return Err(CodeError::last_os("open /proc/self/task"));
        }
        Ok(Self { fd })
    }

    /// Calls `f` with every thread id listed now. Allocation-free.
    pub(super) fn for_each_tid(&self, mut f: impl FnMut(i32)) -> Result<(), i32> {
        // SAFETY: fd is an open directory; rewinding restarts the listing.
        if unsafe { libc::lseek(self.fd, 0, libc::SEEK_SET) } < 0 {
            return Err(errno());
        }
        let mut buf = [0u64; 512];
        loop {
            // SAFETY: buf is valid for its size in bytes; getdents64 writes records into it.
            let n = unsafe {
                libc::syscall(
                    libc::SYS_getdents64,
                    self.fd,
                    buf.as_mut_ptr(),
                    std::mem::size_of_val(&buf),
                )
            };
            if n < 0 {
                return Err(errno());
            }
            if n == 0 {
                return Ok(());
            }
            // SAFETY: the kernel filled the first n bytes of buf.
            let bytes =
                unsafe { std::slice::from_raw_parts(buf.as_ptr().cast::<u8>(), n as usize) };
            let mut off = 0usize;
            while off + 19 <= bytes.len() {
                let reclen = u16::from_ne_bytes([bytes[off + 16], bytes[off + 17]]) as usize;
                if reclen == 0 || off + reclen > bytes.len() {
                    break;
                }
                let name = &bytes[off + 19..off + reclen];
                let mut tid: u32 = 0;
                let mut ok = false;
                for &c in name {
                    match c {
                        b'0'..=b'9' => {
                            tid = tid.wrapping_mul(10).wrapping_add((c - b'0') as u32);
                            ok = true;
                        }
                        0 => break,
                        _ => {
                            ok = false;
                            break;
                        }
                    }
                }
                if ok && tid > 0 && tid <= i32::MAX as u32 {
                    f(tid as i32);
                }
                off += reclen;
            }
        }
    }
}

impl Drop for TaskDir {
    fn drop(&mut self) {
        // SAFETY: fd was opened by TaskDir::open and is closed once.
        unsafe { libc::close(self.fd) };
    }
}

/// This thread's `errno`.
pub(super) fn errno() -> i32 {
    // SAFETY: __errno_location always returns a valid pointer to this thread's errno.
    unsafe { *libc::__errno_location() }
}
