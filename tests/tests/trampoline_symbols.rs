//! Finding C and C++ functions by symbol: mangled and demangled names, static
//! (internal-linkage) functions only in `.symtab`, libraries, variadic detection.

// Links the fixtures (compiled into the hotfix-tests library by build.rs).
extern crate hotfix_tests;

use hotfix_core::arch::Variadic;
use hotfix_core::code_error::CodeError;
use hotfix_core::foreign::{find_function, loaded_objects};

unsafe extern "C" {
    fn hf_foreign_old(x: i32) -> i32;
    fn hf_cpp_touch(x: i32) -> i32;
}

/// Memory at the symbol's runtime address holds its bytes from the file.
fn assert_memory_is_file(sym: &hotfix_core::foreign::ForeignSymbol) {
    // SAFETY: the symbol is a function of this executable, mapped readable.
    let mem = unsafe { std::slice::from_raw_parts(sym.address as *const u8, sym.size) };
    assert_eq!(mem, sym.original.as_slice(), "{}", sym.name);
}

#[test]
fn c_function_by_name_matches_its_address() {
    // SAFETY: plain C functions without preconditions.
    assert_eq!(unsafe { hf_foreign_old(1) }, 1001);
    let sym = find_function("hf_foreign_old").unwrap();
    assert_eq!(sym.address, hf_foreign_old as *const () as usize);
    assert!(sym.size >= 17, "size {}", sym.size);
    assert_eq!(sym.variadic, Variadic::Unknown);
    assert!(sym.demangled.is_none());
    let exe = std::fs::read_link("/proc/self/exe").unwrap();
    assert_eq!(sym.object, exe);
    assert_memory_is_file(&sym);
}

#[test]
fn cpp_method_by_mangled_and_demangled_name() {
    // SAFETY: links the C++ object and exercises it; no preconditions.
    assert!(unsafe { hf_cpp_touch(1) } > 0);
    let by_mangled = find_function("_ZN4Role12getClassNameB5cxx11Ev").unwrap();
    assert_eq!(
        by_mangled.demangled.as_deref(),
        Some("Role::getClassName[abi:cxx11]()")
    );
    let by_demangled = find_function("Role::getClassName[abi:cxx11]()").unwrap();
    assert_eq!(by_mangled, by_demangled);
    let without_params = find_function("Role::getClassName[abi:cxx11]").unwrap();
    assert_eq!(by_mangled.address, without_params.address);
    assert_eq!(by_mangled.variadic, Variadic::No);
    assert!(by_mangled.size > 0);
    assert_memory_is_file(&by_mangled);
}

#[test]
fn static_cpp_function_is_found_without_dlsym() {
    // SAFETY: as above.
    assert!(unsafe { hf_cpp_touch(2) } > 0);
    // Internal linkage: not in .dynsym, so dlsym cannot see it.
    // SAFETY: dlsym with a NUL-terminated name has no other preconditions.
    let via_dlsym = unsafe { libc::dlsym(libc::RTLD_DEFAULT, c"_ZL16hf_static_secreti".as_ptr()) };
    assert!(via_dlsym.is_null());
    let sym = find_function("hf_static_secret(int)").unwrap();
    assert_eq!(sym.name, "_ZL16hf_static_secreti");
    assert_eq!(find_function("_ZL16hf_static_secreti").unwrap(), sym);
    assert_memory_is_file(&sym);
    // Calling the found address proves it (and the load bias) right.
    // SAFETY: the symbol is `static int hf_static_secret(int)`, C ABI compatible.
    let f: extern "C" fn(i32) -> i32 = unsafe { std::mem::transmute(sym.address) };
    assert_eq!(f(5), 38);
}

#[test]
fn variadic_is_detected_from_the_signature() {
    // SAFETY: as above.
    assert!(unsafe { hf_cpp_touch(3) } > 0);
    assert_eq!(
        find_function("hf::fixed(int)").unwrap().variadic,
        Variadic::No
    );
    let v = find_function("hf::variadic(int, ...)").unwrap();
    assert_eq!(v.variadic, Variadic::Yes);
    assert_eq!(v.name, "_ZN2hf8variadicEiz");
}

#[test]
fn library_functions_are_found_in_their_object() {
    let objects = loaded_objects();
    assert!(objects[0].is_main);
    assert!(
        objects
            .iter()
            .any(|o| o.path.to_string_lossy().contains("libc.so"))
    );
    let sym = find_function("getpid").unwrap();
    assert!(
        sym.object.to_string_lossy().contains("libc.so"),
        "{:?}",
        sym.object
    );
    assert_eq!(sym.address, libc::getpid as *const () as usize);
    assert_memory_is_file(&sym);
}

#[test]
fn unknown_names_are_refused() {
    assert!(matches!(
        find_function("hf_no_such_function_anywhere"),
        Err(CodeError::SymbolNotFound { .. })
    ));
}
