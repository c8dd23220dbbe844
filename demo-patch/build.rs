//! Compiles the C++ replacement of `Role::getClassName`.
fn main() {
    println!("cargo:rerun-if-changed=cpp/role_fix.cpp");
    cc::Build::new()
        .cpp(true)
        .file("cpp/role_fix.cpp")
        .flag_if_supported("-Wno-return-type-c-linkage")
        .compile("demo_patch_role_fix");
}
