//! Compiles the C++ component: `Role::getClassName` in its own translation unit
//! (so no caller can inline it) and the `extern "C"` shim the Rust side calls.

fn main() {
    let files = ["cpp/role.hpp", "cpp/role.cpp", "cpp/role_shim.cpp"];
    for f in files {
        println!("cargo:rerun-if-changed={f}");
    }
    cc::Build::new()
        .cpp(true)
        .std("c++17")
        .include("cpp")
        .file("cpp/role.cpp")
        .file("cpp/role_shim.cpp")
        .warnings(true)
        .compile("demo_role");
}
