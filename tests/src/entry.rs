//! A `#[patchable]` function's NOP-padded entry as foreign code reaches it: the
//! address of its entry symbol (what a C caller, or a function pointer taken by
//! foreign code, calls), not the Rust wrapper, which reads the slot.
//!
//! The stub's bytes are decoded here, independently of the runtime's own
//! classifier, and a redirect's target is checked against the patch file's
//! symbol table, so a test of the entry strategy fails when the jump written
//! at the entry goes anywhere but the replacement.

use hotfix_core::__private::{FnDesc, host_fn};
use object::{Object, ObjectSection, ObjectSymbol};
use std::future::Future;
use std::path::Path;
use std::pin::Pin;

/// The descriptor of the `#[patchable]` function registered under `path`, after
/// checking that its entry is neither the original nor the wrapper's address.
pub fn desc(path: &str) -> &'static FnDesc {
    let d = host_fn(path).unwrap_or_else(|| panic!("{path} is not a #[patchable] function"));
    assert_ne!(d.entry, d.original, "{path}: the entry is its own stub");
    d
}

/// What the 16-byte block of an entry stub and the jump after it do, decoded
/// from the bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EntryCode {
    /// Pad of NOPs (or `eb 0c` and 12 NOPs), `66 90` at the entry, then a
    /// direct jump to this address (the original).
    FallsThroughTo(usize),
    /// Entry `eb f0` (back into the pad), pad `ff 25 00 00 00 00 <target>`:
    /// a jump to this address.
    Redirected(usize),
}

/// Decodes the stub at `entry` (the address of its 2-byte entry instruction).
/// Panics on any other bytes, naming them.
pub fn entry_code(entry: *const ()) -> EntryCode {
    let at = entry as usize;
    let mut b = [0u8; 21];
    // SAFETY: `entry` is the entry symbol of a `#[patchable]` stub in this
    // executable's text: 14 pad bytes before it and its 2 bytes plus the
    // 5-byte jump after it are mapped readable for the life of the process.
    // Other threads may rewrite them meanwhile; volatile byte reads see each
    // byte either before or after a store.
    for (i, byte) in b.iter_mut().enumerate() {
        *byte = unsafe { std::ptr::read_volatile((at - 14 + i) as *const u8) };
    }
    let (pad, rest) = b.split_at(14);
    let nops = |s: &[u8]| s.iter().all(|&x| x == 0x90);
    if rest[..2] == [0x66, 0x90] && (nops(pad) || (pad[..2] == [0xeb, 0x0c] && nops(&pad[2..]))) {
        assert_eq!(
            rest[2], 0xe9,
            "entry {at:#x}: no jmp rel32 after the NOP: {b:02x?}"
        );
        let rel = i32::from_le_bytes(rest[3..7].try_into().expect("4 bytes"));
        let next = at + 2 + 5;
        return EntryCode::FallsThroughTo(next.wrapping_add_signed(rel as isize));
    }
    if rest[..2] == [0xeb, 0xf0] && pad[..6] == [0xff, 0x25, 0, 0, 0, 0] {
        let t = u64::from_le_bytes(pad[6..14].try_into().expect("8 bytes"));
        return EntryCode::Redirected(t as usize);
    }
    panic!("entry {at:#x}: neither an unpatched nor a redirected stub: {b:02x?}");
}

/// Checks that the stub of `d` is unpatched: its bytes say so, and it jumps to
/// the original.
pub fn assert_unpatched(d: &FnDesc) {
    assert_eq!(
        entry_code(d.entry),
        EntryCode::FallsThroughTo(d.original as usize),
        "{}: the entry is not restored",
        d.meta.path
    );
}

/// The target `d`'s entry jumps to; panics if it is not redirected.
pub fn redirect_target(d: &FnDesc) -> usize {
    match entry_code(d.entry) {
        EntryCode::Redirected(t) => t,
        other => panic!("{}: the entry is not redirected: {other:?}", d.meta.path),
    }
}

/// Checks that `target` is the replacement `__hotfix_replacement_<name>` of the
/// loaded copy of `patch_file`, and returns it: the object holding `target`
/// (`dladdr`) is a loaded library, `target` minus its base is the value of that
/// symbol in the file, and the code there is the file's bytes of that symbol.
pub fn assert_replacement(target: usize, patch_file: &Path, name: &str) -> usize {
    // SAFETY: a zeroed Dl_info is valid storage for dladdr's answer.
    let mut info: libc::Dl_info = unsafe { std::mem::zeroed() };
    // SAFETY: dladdr only reads the loader's tables; `info` is valid storage.
    let found = unsafe { libc::dladdr(target as *const libc::c_void, &mut info) };
    assert_ne!(found, 0, "{target:#x} is in no loaded object");
    let base = info.dli_fbase as usize;
    let bytes = std::fs::read(patch_file).expect("read the patch file");
    let file = object::File::parse(&*bytes).expect("parse the patch file");
    let suffix = format!("::__hotfix_replacement_{name}");
    let sym = file
        .symbols()
        .find(|s| {
            s.name()
                .is_ok_and(|n| format!("{:#}", rustc_demangle::demangle(n)).ends_with(&suffix))
        })
        .unwrap_or_else(|| panic!("no symbol *{suffix} in {}", patch_file.display()));
    let offset = target.wrapping_sub(base);
    assert_eq!(
        offset as u64,
        sym.address(),
        "{target:#x} is {offset:#x} into the object at {base:#x}, not {} ({:#x}) of {}",
        sym.name().unwrap_or("?"),
        sym.address(),
        patch_file.display()
    );
    let section = file
        .section_by_index(sym.section_index().expect("a defined symbol"))
        .expect("its section");
    let data = section.data().expect("the section's bytes");
    let at = (sym.address() - section.address()) as usize;
    let len = 16.min(sym.size() as usize).max(1);
    let mut live = vec![0u8; len];
    // SAFETY: `target` is code of a loaded library (dladdr found it), at least
    // `len` bytes long (the symbol's size), mapped readable while loaded (patch
    // libraries are never unloaded).
    unsafe { std::ptr::copy_nonoverlapping(target as *const u8, live.as_mut_ptr(), len) };
    assert_eq!(
        live,
        data[at..at + len],
        "the code at {target:#x} is not the file's {suffix}"
    );
    target
}

/// The entry of `fixture_host::sum` as a foreign caller holds it.
pub fn sum_entry() -> fn(i64, i64) -> i64 {
    let d = desc("fixture_host::sum");
    assert_ne!(
        d.entry,
        fixture_host::sum as fn(i64, i64) -> i64 as *const ()
    );
    // SAFETY: the stub forwards registers and stack unchanged, to the original
    // or (redirected) to a replacement whose signature fingerprint equals the
    // original's: calling it as `sum`'s own type calls the function.
    unsafe { std::mem::transmute::<*const (), fn(i64, i64) -> i64>(d.entry) }
}

/// The type of `fixture_host::name_len`'s entry: an `async fn`'s entry (and
/// slot) creates the boxed future.
pub type NameLenEntry =
    for<'a> fn(&'a str, &'a usize) -> Pin<Box<dyn Future<Output = usize> + Send + 'a>>;

/// The entry of the `async fn` `fixture_host::name_len` as a foreign caller
/// holds it.
pub fn name_len_entry() -> NameLenEntry {
    let d = desc("fixture_host::name_len");
    // SAFETY: as in `sum_entry`; an `async fn`'s original behind the stub is
    // the function that boxes its future, of exactly this type.
    unsafe { std::mem::transmute::<*const (), NameLenEntry>(d.entry) }
}

/// Polls a future that never waits (the fixtures' `name_len` does not).
pub fn block_on<F: Future>(f: F) -> F::Output {
    let mut f = std::pin::pin!(f);
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    loop {
        if let std::task::Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return v;
        }
    }
}

/// The entry of the `extern "C"` function `fixture_host::c_twice`, as a C
/// caller reaches it.
pub fn c_twice_entry() -> extern "C" fn(i32) -> i32 {
    let d = desc("fixture_host::c_twice");
    // SAFETY: as in `sum_entry`, with the C ABI the function was declared with.
    unsafe { std::mem::transmute::<*const (), extern "C" fn(i32) -> i32>(d.entry) }
}

/// The entry of `fixture_host::answer` as a foreign caller holds it.
pub fn answer_entry() -> fn() -> u32 {
    let d = desc("fixture_host::answer");
    // SAFETY: as in `sum_entry`.
    unsafe { std::mem::transmute::<*const (), fn() -> u32>(d.entry) }
}
