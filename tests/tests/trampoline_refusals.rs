//! Every refusal of the trampoline layer, each with its own error, and the code
//! bytes unchanged afterwards.

extern crate hotfix_tests;

use std::sync::Mutex;

use hotfix_core::code_error::CodeError;
use hotfix_core::foreign::{ForeignSymbol, find_function, plan_foreign};
use hotfix_core::os::{CodeEdit, apply_edits, read_code};

unsafe extern "C" {
    fn hf_short() -> i32;
    fn hf_loop_into_window(n: i32) -> i32;
    fn hf_call_in_window(x: i32) -> i32;
    fn hf_computed_jump() -> i32;
    fn hf_bp_target(x: i32) -> i32;
    fn hf_blocking_read(fd: i32, buf: *mut u8, n: usize) -> isize;
}

/// Tests of this file share the process's code: one at a time.
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

fn bytes_of(sym: &ForeignSymbol) -> Vec<u8> {
    read_code(sym.address, sym.size).unwrap()
}

/// Plans the function and returns the refusal, checking the bytes did not move.
fn refusal(name: &str) -> CodeError {
    let sym = find_function(name).unwrap();
    let before = bytes_of(&sym);
    assert_eq!(before, sym.original);
    let err = plan_foreign(&sym).expect_err(name);
    assert_eq!(bytes_of(&sym), before, "{name} changed");
    err
}

#[test]
fn function_shorter_than_the_window() {
    let _s = serial();
    // SAFETY: fixture without preconditions.
    assert_eq!(unsafe { hf_short() }, 7);
    match refusal("hf_short") {
        CodeError::FunctionTooShort { size, needed, .. } => {
            assert_eq!(size, 6);
            assert_eq!(needed, 13);
        }
        e => panic!("unexpected {e}"),
    }
    // SAFETY: as above.
    assert_eq!(unsafe { hf_short() }, 7);
}

#[test]
fn loop_back_into_the_window() {
    let _s = serial();
    // SAFETY: fixture without preconditions.
    assert_eq!(unsafe { hf_loop_into_window(4) }, 10);
    let sym = find_function("hf_loop_into_window").unwrap();
    match refusal("hf_loop_into_window") {
        CodeError::BranchIntoWindow {
            target,
            window_start,
            ..
        } => {
            assert_eq!(window_start, sym.address);
            assert_eq!(target, sym.address + 2);
        }
        e => panic!("unexpected {e}"),
    }
}

#[test]
fn call_inside_the_window() {
    let _s = serial();
    // SAFETY: fixture without preconditions.
    assert_eq!(unsafe { hf_call_in_window(1) }, 102);
    let sym = find_function("hf_call_in_window").unwrap();
    match refusal("hf_call_in_window") {
        CodeError::CallInWindow {
            call_at, return_to, ..
        } => {
            assert_eq!(call_at, sym.address + 1);
            assert_eq!(return_to, sym.address + 6);
        }
        e => panic!("unexpected {e}"),
    }
}

#[test]
fn computed_jump_anywhere() {
    let _s = serial();
    // SAFETY: fixture without preconditions.
    assert_eq!(unsafe { hf_computed_jump() }, 3);
    assert!(matches!(
        refusal("hf_computed_jump"),
        CodeError::IndirectJump { .. }
    ));
}

#[test]
fn breakpoint_at_the_entry_or_inside() {
    let _s = serial();
    let sym = find_function("hf_bp_target").unwrap();
    assert!(plan_foreign(&sym).is_ok());
    for offset in [0usize, 9] {
        let at = sym.address + offset;
        let old = read_code(at, 1).unwrap();
        let set = CodeEdit {
            addr: at,
            expected_old: old.clone(),
            new: vec![0xCC],
        };
        // SAFETY: nothing calls hf_bp_target while the breakpoint is set
        // (tests of this file run one at a time).
        unsafe { apply_edits(std::slice::from_ref(&set)) }.unwrap();
        let with_bp = bytes_of(&sym);
        match plan_foreign(&sym) {
            Err(CodeError::NotOriginalBytes {
                at: found_at,
                found,
                expected,
                ..
            }) => {
                assert_eq!(found_at, at);
                assert_eq!(found.0[0], 0xCC);
                assert_eq!(expected.0[0], old[0]);
            }
            other => panic!("unexpected {other:?}"),
        }
        assert_eq!(bytes_of(&sym), with_bp);
        // SAFETY: restores the original byte.
        unsafe { apply_edits(&[set.inverse()]) }.unwrap();
        assert_eq!(bytes_of(&sym), sym.original);
    }
    // SAFETY: original code again.
    assert_eq!(unsafe { hf_bp_target(1) }, 6);
}

#[test]
fn edits_whose_bytes_changed_write_nothing() {
    let _s = serial();
    let sym = find_function("hf_bp_target").unwrap();
    let plan = plan_foreign(&sym).unwrap();
    let good = plan.apply_edit(hf_short as *const () as usize);
    let mut bad = plan.apply_edit(hf_short as *const () as usize);
    bad.addr = sym.address + sym.size - 1;
    bad.expected_old = vec![0x00; 1];
    bad.new = vec![0xC3];
    // SAFETY: the batch is refused before anything is written.
    let err = unsafe { apply_edits(&[good, bad]) }.unwrap_err();
    assert!(matches!(err, CodeError::BytesChanged { .. }), "{err}");
    assert_eq!(
        bytes_of(&sym),
        sym.original,
        "the good edit was not applied either"
    );
}

#[test]
fn malformed_and_misplaced_edits_are_refused() {
    let _s = serial();
    let sym = find_function("hf_bp_target").unwrap();
    let e = |addr, old: &[u8], new: &[u8]| CodeEdit {
        addr,
        expected_old: old.to_vec(),
        new: new.to_vec(),
    };
    let first = sym.original[0];
    let cases = [
        vec![e(sym.address, &[first], &[0x90, 0x90])],
        vec![e(sym.address, &[], &[])],
        vec![
            e(sym.address, &sym.original[..2], &[0x90; 2]),
            e(sym.address + 1, &sym.original[1..3], &[0x90; 2]),
        ],
    ];
    for batch in &cases {
        // SAFETY: refused before anything is written.
        let err = unsafe { apply_edits(batch) }.unwrap_err();
        assert!(matches!(err, CodeError::InvalidEdit { .. }), "{err}");
    }
    // Data is not code.
    static DATA: [u8; 4] = [1, 2, 3, 4];
    let at = DATA.as_ptr() as usize;
    // SAFETY: refused before anything is written.
    let err = unsafe { apply_edits(&[e(at, &DATA[..2], &[0, 0])]) }.unwrap_err();
    assert!(matches!(err, CodeError::NotCode { .. }), "{err}");
    assert_eq!(DATA, [1, 2, 3, 4]);
    assert_eq!(bytes_of(&sym), sym.original);
}

#[test]
fn a_thread_inside_the_window_makes_the_batch_fail() {
    let _s = serial();
    let sym = find_function("hf_blocking_read").unwrap();
    let mut fds = [0i32; 2];
    // SAFETY: fds has room for the two descriptors.
    assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
    let (tx, rx) = std::sync::mpsc::channel();
    let reader = std::thread::spawn(move || {
        // SAFETY: gettid has no preconditions.
        tx.send(unsafe { libc::gettid() }).unwrap();
        let mut b = [0u8; 1];
        // SAFETY: reads one byte into b from the pipe; blocks inside the fixture's
        // syscall instruction until the test writes.
        unsafe { hf_blocking_read(fds[0], b.as_mut_ptr(), 1) }
    });
    let tid = rx.recv().unwrap();
    // Wait until the thread sleeps in the read.
    for _ in 0..1000 {
        let stat =
            std::fs::read_to_string(format!("/proc/self/task/{tid}/stat")).unwrap_or_default();
        if stat
            .rsplit(')')
            .next()
            .is_some_and(|s| s.trim_start().starts_with('S'))
        {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    let window = read_code(sym.address, 12).unwrap();
    // The edit would write the same bytes: harmless even if it went through.
    let edit = CodeEdit {
        addr: sym.address,
        expected_old: window.clone(),
        new: window.clone(),
    };
    // SAFETY: a no-op edit.
    let err = unsafe { apply_edits(&[edit]) }.unwrap_err();
    match err {
        CodeError::ThreadBusy {
            tid: busy,
            pc,
            window_start,
            ..
        } => {
            assert_eq!(busy, tid);
            assert!(pc > sym.address && pc < sym.address + 12, "pc {pc:#x}");
            assert_eq!(window_start, sym.address);
        }
        e => panic!("unexpected {e}"),
    }
    // SAFETY: writes one byte to the pipe to wake the reader.
    assert_eq!(unsafe { libc::write(fds[1], b"x".as_ptr().cast(), 1) }, 1);
    assert_eq!(reader.join().unwrap(), 1);
    // SAFETY: closing our own descriptors.
    unsafe {
        libc::close(fds[0]);
        libc::close(fds[1]);
    }
    assert_eq!(bytes_of(&sym), sym.original);
}

#[test]
fn a_thread_blocking_the_stop_signal_makes_the_batch_fail() {
    let _s = serial();
    let sym = find_function("hf_bp_target").unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
    let blocker = std::thread::spawn(move || {
        // SAFETY: sigset operations on a local set; blocks the stop signal in
        // this thread only.
        unsafe {
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            libc::sigaddset(&mut set, hotfix_core::os::stop_signal());
            libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
            tx.send(libc::gettid()).unwrap();
        }
        let _ = done_rx.recv();
    });
    let tid = rx.recv().unwrap();
    let plan = plan_foreign(&sym).unwrap();
    let edit = plan.apply_edit(hf_short as *const () as usize);
    // SAFETY: refused (the thread cannot be stopped) before anything is written.
    let err = unsafe { apply_edits(&[edit]) }.unwrap_err();
    match &err {
        CodeError::ThreadBlocksStopSignal { threads, .. } => {
            assert!(threads.starts_with(&format!("{tid} (")), "{threads}");
        }
        e => panic!("unexpected {e}"),
    }
    done_tx.send(()).unwrap();
    blocker.join().unwrap();
    assert_eq!(bytes_of(&sym), sym.original);
}

#[test]
fn memory_the_system_refuses_to_make_writable_is_left_untouched() {
    let _s = serial();
    // An executable page sealed with mseal(2): mprotect must fail with EPERM.
    let page = 4096;
    // SAFETY: a fresh anonymous mapping, written before being made executable.
    let p = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            page,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    assert_ne!(p, libc::MAP_FAILED);
    let code: [u8; 6] = [0xB8, 42, 0, 0, 0, 0xC3]; // mov eax, 42; ret
    // SAFETY: p is a fresh writable page of 4096 bytes.
    unsafe {
        std::ptr::copy_nonoverlapping(code.as_ptr(), p.cast::<u8>(), code.len());
        assert_eq!(
            libc::mprotect(p, page, libc::PROT_READ | libc::PROT_EXEC),
            0
        );
    }
    // SAFETY: seals our own mapping; no other preconditions.
    let sealed = unsafe { libc::syscall(462, p, page, 0) };
    if sealed != 0 {
        let why = format!(
            "mseal(2) refused ({}): no page here that mprotect must refuse",
            std::io::Error::last_os_error()
        );
        // SAFETY: unmaps the page this test mapped; nothing refers to it.
        unsafe { libc::munmap(p, page) };
        hotfix_tests::cannot_run(
            "memory_the_system_refuses_to_make_writable_is_left_untouched",
            &why,
        );
        return;
    }
    let edit = CodeEdit {
        addr: p as usize,
        expected_old: code.to_vec(),
        new: vec![0xB8, 43, 0, 0, 0, 0xC3],
    };
    // SAFETY: refused by the kernel before anything is written.
    let err = unsafe { apply_edits(&[edit]) }.unwrap_err();
    match &err {
        CodeError::ProtectFailed { addr, source, .. } => {
            assert_eq!(*addr, p as usize);
            assert_eq!(source.raw_os_error(), Some(libc::EPERM));
        }
        e => panic!("unexpected {e}"),
    }
    assert_eq!(read_code(p as usize, 6).unwrap(), code);
    // SAFETY: the page holds `mov eax, 42; ret`.
    let f: extern "C" fn() -> i32 = unsafe { std::mem::transmute(p) };
    assert_eq!(f(), 42);
}
