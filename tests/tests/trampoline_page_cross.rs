//! A trampoline whose window crosses a page boundary, a stack of patches on one
//! function, a variadic function behind an r11 trampoline, and page protections
//! restored exactly (an application's RWX page stays RWX).

extern crate hotfix_tests;

use std::sync::Mutex;

use hotfix_core::arch::ScratchRegister;
use hotfix_core::foreign::{ForeignPatchStack, find_function, plan_foreign};
use hotfix_core::os::{CodeEdit, Maps, apply_edits, page_size, read_code};

unsafe extern "C" {
    fn hf_page_neighbour() -> i32;
    fn hf_page_cross() -> i32;
    fn hf_page_after() -> i32;
    fn hf_call_sum_doubles() -> f64;
    fn hf_sum_doubles_times_ten(n: i32, ...) -> f64;
}

extern "C" fn patched_22() -> i32 {
    22
}

extern "C" fn patched_23() -> i32 {
    23
}

static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// The lines of /proc/self/maps that describe the test executable.
fn exe_maps() -> String {
    let exe = std::fs::read_link("/proc/self/exe").unwrap();
    let exe = exe.to_string_lossy();
    std::fs::read_to_string("/proc/self/maps")
        .unwrap()
        .lines()
        .filter(|l| l.ends_with(exe.as_ref()))
        .collect::<Vec<_>>()
        .join("\n")
}

fn call_all() -> (i32, i32, i32) {
    // SAFETY: fixtures without preconditions.
    unsafe { (hf_page_neighbour(), hf_page_cross(), hf_page_after()) }
}

#[test]
fn window_across_a_page_boundary_patches_and_reverts() {
    let _s = serial();
    assert_eq!(call_all(), (11, 21, 31));
    let sym = find_function("hf_page_cross").unwrap();
    let plan = plan_foreign(&sym).unwrap();
    let page = page_size();
    assert_eq!(plan.window, sym.address);
    assert!(
        plan.window % page + plan.window_len() > page,
        "fixture must cross a page: {:#x} + {}",
        plan.window,
        plan.window_len()
    );
    let maps_before = exe_maps();
    let mut stack = ForeignPatchStack::new(plan);
    // SAFETY: patched_22 has the fixture's signature.
    let a = unsafe { stack.push(patched_22 as *const () as usize) }.unwrap();
    assert_eq!(call_all(), (11, 22, 31));
    assert_eq!(
        exe_maps(),
        maps_before,
        "protections restored while patched"
    );
    // SAFETY: as above.
    let b = unsafe { stack.push(patched_23 as *const () as usize) }.unwrap();
    assert_eq!(call_all(), (11, 23, 31));
    // Reverting the middle patch changes nothing; the newest stays live.
    // SAFETY: reverting patches of this stack.
    unsafe { stack.revert(a) }.unwrap();
    assert_eq!(call_all(), (11, 23, 31));
    assert_eq!(stack.live_target(), Some(patched_23 as *const () as usize));
    // SAFETY: as above.
    unsafe { stack.revert(b) }.unwrap();
    assert_eq!(call_all(), (11, 21, 31));
    assert_eq!(read_code(sym.address, sym.size).unwrap(), sym.original);
    assert_eq!(exe_maps(), maps_before);
    // SAFETY: as above.
    assert!(unsafe { stack.revert(b) }.is_err(), "double revert refused");
}

#[test]
fn revert_of_the_top_repoints_to_the_next_newest() {
    let _s = serial();
    let sym = find_function("hf_page_cross").unwrap();
    let mut stack = ForeignPatchStack::new(plan_foreign(&sym).unwrap());
    // SAFETY: targets have the fixture's signature.
    let a = unsafe { stack.push(patched_22 as *const () as usize) }.unwrap();
    // SAFETY: as above.
    let b = unsafe { stack.push(patched_23 as *const () as usize) }.unwrap();
    // SAFETY: reverting patches of this stack.
    unsafe { stack.revert(b) }.unwrap();
    assert_eq!(call_all(), (11, 22, 31));
    // SAFETY: as above.
    unsafe { stack.revert(a) }.unwrap();
    assert_eq!(call_all(), (11, 21, 31));
    assert_eq!(read_code(sym.address, sym.size).unwrap(), sym.original);
}

#[test]
fn variadic_call_keeps_al_through_an_r11_trampoline() {
    let _s = serial();
    // SAFETY: fixture without preconditions.
    assert_eq!(unsafe { hf_call_sum_doubles() }, 8.0);
    let sym = find_function("hf_sum_doubles").unwrap();
    let plan = plan_foreign(&sym).unwrap();
    assert_eq!(plan.scratch, ScratchRegister::R11);
    assert!(
        plan.kept_endbr,
        "compiled with -fcf-protection: endbr64 kept"
    );
    assert_eq!(
        &read_code(sym.address, 4).unwrap(),
        &[0xF3, 0x0F, 0x1E, 0xFA]
    );
    let target = hf_sum_doubles_times_ten as *const () as usize;
    assert_eq!(target % 256, 0, "AL would be 0 through rax");
    let mut stack = ForeignPatchStack::new(plan);
    // SAFETY: same signature.
    let id = unsafe { stack.push(target) }.unwrap();
    // SAFETY: as above.
    assert_eq!(unsafe { hf_call_sum_doubles() }, 80.0);
    // SAFETY: reverting our patch.
    unsafe { stack.revert(id) }.unwrap();
    // SAFETY: as above.
    assert_eq!(unsafe { hf_call_sum_doubles() }, 8.0);

    // Control: the same window through rax loses the doubles (AL becomes 0), so
    // the check above would catch a planner that chose rax here.
    let mut rax_plan = stack.plan().clone();
    rax_plan.scratch = ScratchRegister::Rax;
    let mut rax_stack = ForeignPatchStack::new(rax_plan);
    // SAFETY: same signature; the wrong register only garbles the doubles read.
    let id = unsafe { rax_stack.push(target) }.unwrap();
    // SAFETY: as above.
    let garbled = unsafe { hf_call_sum_doubles() };
    // SAFETY: reverting our patch.
    unsafe { rax_stack.revert(id) }.unwrap();
    assert_ne!(garbled, 80.0);
    assert_eq!(read_code(sym.address, sym.size).unwrap(), sym.original);
}

#[test]
fn an_rwx_page_of_the_application_stays_rwx() {
    let _s = serial();
    let page = page_size();
    // SAFETY: a fresh anonymous RWX mapping owned by this test.
    let p = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            page,
            libc::PROT_READ | libc::PROT_WRITE | libc::PROT_EXEC,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    assert_ne!(p, libc::MAP_FAILED);
    let code: [u8; 6] = [0xB8, 5, 0, 0, 0, 0xC3]; // mov eax, 5; ret
    // SAFETY: p is a fresh writable page.
    unsafe { std::ptr::copy_nonoverlapping(code.as_ptr(), p.cast::<u8>(), 6) };
    // SAFETY: the page holds `mov eax, imm32; ret`.
    let f: extern "C" fn() -> i32 = unsafe { std::mem::transmute(p) };
    assert_eq!(f(), 5);
    let edit = CodeEdit {
        addr: p as usize,
        expected_old: code.to_vec(),
        new: vec![0xB8, 6, 0, 0, 0, 0xC3],
    };
    // SAFETY: replaces one whole instruction sequence nobody else runs.
    unsafe { apply_edits(&[edit]) }.unwrap();
    assert_eq!(f(), 6);
    let maps = Maps::read().unwrap();
    let m = maps.find(p as usize).unwrap();
    assert_eq!(m.perms.to_string(), "rwxp");
    // SAFETY: unmapping our own page; f is not used after.
    unsafe { libc::munmap(p, page) };
}
