//! The threads of this process, listed from `/proc/self/task` with raw system
//! calls and stack buffers, so it can run while other threads are stopped.

use super::stop_handler::stop_signal;
use crate::code_error::CodeError;

/// Writes `/proc/self/task/<tid>/<file>\0` into `path`; returns it as a C string
/// pointer. Allocation-free.
fn task_path(path: &mut [u8; 64], tid: i32, file: &[u8]) -> *const libc::c_char {
    let prefix = b"/proc/self/task/";
    path[..prefix.len()].copy_from_slice(prefix);
    let mut n = prefix.len();
    n += write_decimal(&mut path[n..], tid as u32);
    path[n] = b'/';
    n += 1;
    let file = &file[..file.len().min(path.len() - n - 1)];
    path[n..n + file.len()].copy_from_slice(file);
    path[n + file.len()] = 0;
    path.as_ptr().cast()
}

/// Reads up to `buf.len()` bytes of a task's /proc file; `None` if it cannot be
/// read. Allocation-free.
fn read_task_file(tid: i32, file: &[u8], buf: &mut [u8]) -> Option<usize> {
    let mut path = [0u8; 64];
    let p = task_path(&mut path, tid, file);
    // SAFETY: p points to a NUL-terminated path in `path`, alive for the call.
    let fd = unsafe { libc::open(p, libc::O_RDONLY | libc::O_CLOEXEC) };
    if fd < 0 {
        return None;
    }
    let mut len = 0usize;
    while len < buf.len() {
        // SAFETY: buf[len..] is valid for writes of its length; fd is open.
        let r = unsafe { libc::read(fd, buf[len..].as_mut_ptr().cast(), buf.len() - len) };
        if r <= 0 {
            break;
        }
        len += r as usize;
    }
    // SAFETY: fd was opened above and is closed once.
    unsafe { libc::close(fd) };
    Some(len)
}

/// The bytes after `key` in `text`, leading blanks skipped.
fn field<'a>(text: &'a [u8], key: &[u8]) -> Option<&'a [u8]> {
    let at = text.windows(key.len()).position(|w| w == key)?;
    let rest = &text[at + key.len()..];
    let blanks = rest
        .iter()
        .take_while(|c| **c == b' ' || **c == b'\t')
        .count();
    Some(&rest[blanks..])
}

/// Whether the thread's signal mask (`SigBlk` in its status file) blocks
/// `signal`. False when it cannot be read. Allocation-free.
pub(super) fn blocks_signal(tid: i32, signal: i32) -> bool {
    let mut buf = [0u8; 4096];
    read_task_file(tid, b"status", &mut buf).is_some_and(|len| mask_has(&buf[..len], signal))
}

/// Whether the `SigBlk` mask of a status file's text holds `signal`.
fn mask_has(status: &[u8], signal: i32) -> bool {
    let mut mask: u64 = 0;
    for &c in field(status, b"\nSigBlk:").unwrap_or_default() {
        match (c as char).to_digit(16) {
            Some(d) => mask = (mask << 4) | u64::from(d),
            None => break,
        }
    }
    (1..=64).contains(&signal) && mask & (1u64 << (signal - 1)) != 0
}

/// How a thread holds `signal` off: `None` if it lets it through (or has
/// never run: a thread just created has every signal blocked until it first
/// runs, which its zero time on a CPU in `schedstat` tells); `Some(asleep)` if
/// it blocks it, with whether it sleeps interruptibly now (`S`: a `sigwait`,
/// `sleep` or `poll` loop) rather than runs or waits to run (a thread
/// preempted inside a short section that blocks every signal, such as
/// `pthread_create`'s). Allocation-free.
pub(super) fn blocking_state(tid: i32, signal: i32) -> Option<bool> {
    let mut buf = [0u8; 4096];
    let len = read_task_file(tid, b"status", &mut buf)?;
    let text = &buf[..len];
    if !mask_has(text, signal) {
        return None;
    }
    let asleep = field(text, b"\nState:").and_then(|v| v.first()) == Some(&b'S');
    let mut stat = [0u8; 128];
    if let Some(n) = read_task_file(tid, b"schedstat", &mut stat) {
        let ran = stat[..n]
            .split(|c| c.is_ascii_whitespace())
            .next()
            .and_then(parse_number);
        if ran == Some(0) {
            return None;
        }
    }
    Some(asleep)
}

/// Whether the thread waits in `sigwait`/`sigtimedwait` for a set that holds
/// `signal`: while it waits, the kernel unblocks that set, so its mask shows
/// nothing, and the signal would be handed to the application. Read from its
/// `syscall` file (system call number and arguments) and, through the kernel,
/// the set it waits for. Allocation-free.
pub(super) fn waits_for_signal(tid: i32, signal: i32) -> bool {
    let mut buf = [0u8; 256];
    let Some(len) = read_task_file(tid, b"syscall", &mut buf) else {
        return false;
    };
    let mut words = buf[..len]
        .split(|c| c.is_ascii_whitespace())
        .filter(|w| !w.is_empty());
    let number = words.next().and_then(parse_number);
    if number != Some(libc::SYS_rt_sigtimedwait as u64) {
        return false;
    }
    let Some(set) = words.next().and_then(parse_number) else {
        return false;
    };
    let mut mask = [0u8; 8];
    if !(1..=64).contains(&signal) || !super::peek::peek(set as usize, &mut mask) {
        return false;
    }
    u64::from_ne_bytes(mask) & (1u64 << (signal - 1)) != 0
}

/// A decimal number or a `0x` hexadecimal one.
fn parse_number(w: &[u8]) -> Option<u64> {
    let (digits, radix) = match w.strip_prefix(b"0x") {
        Some(hex) => (hex, 16),
        None => (w, 10),
    };
    if digits.is_empty() {
        return None;
    }
    digits.iter().try_fold(0u64, |acc, &c| {
        let d = (c as char).to_digit(radix)?;
        acc.checked_mul(u64::from(radix))?.checked_add(u64::from(d))
    })
}

/// Whether the task is an io_uring worker (`PF_IO_WORKER` in its `stat`
/// flags): a kernel thread in our thread group that never runs user code and
/// takes no signals, so it is neither stopped nor waited for. Allocation-free.
pub(super) fn is_io_worker(tid: i32) -> bool {
    const PF_IO_WORKER: u64 = 0x10;
    let mut buf = [0u8; 512];
    let Some(len) = read_task_file(tid, b"stat", &mut buf) else {
        return false;
    };
    let text = &buf[..len];
    let Some(close) = text.iter().rposition(|&b| b == b')') else {
        return false;
    };
    // After "pid (comm) ": state ppid pgrp session tty_nr tpgid flags ...
    text[close + 1..]
        .split(|c| *c == b' ')
        .filter(|w| !w.is_empty())
        .nth(6)
        .and_then(parse_number)
        .is_some_and(|flags| flags & PF_IO_WORKER != 0)
}

/// `tid (name)` of a thread, for messages.
pub(super) fn describe_task(tid: i32) -> String {
    let mut buf = [0u8; 64];
    let name = read_task_file(tid, b"comm", &mut buf)
        .map(|n| String::from_utf8_lossy(&buf[..n]).trim_end().to_owned())
        .unwrap_or_else(|| "?".to_owned());
    format!("{tid} ({name})")
}

/// Whether the task may still run a handler. False only when proven gone: its
/// /proc entry is missing (ENOENT/ESRCH) or it is a zombie or dead; any other
/// failure (out of descriptors) counts as alive. Allocation-free.
pub(super) fn task_alive(tid: i32) -> bool {
    let mut path = [0u8; 64];
    let p = task_path(&mut path, tid, b"stat");
    // SAFETY: p is a NUL-terminated path in `path`; open has no other preconditions.
    let fd = unsafe { libc::open(p, libc::O_RDONLY | libc::O_CLOEXEC) };
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
    if blocks_signal(tid, stop_signal()) {
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
