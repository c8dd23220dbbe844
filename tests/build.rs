//! Compiles the C, C++ and assembly fixtures of the integration tests.

fn main() {
    let dir = "fixtures/c";
    for f in ["shapes.S", "foreign.c", "role.cpp"] {
        println!("cargo:rerun-if-changed={dir}/{f}");
    }
    cc::Build::new()
        .file(format!("{dir}/shapes.S"))
        .file(format!("{dir}/foreign.c"))
        .opt_level(2)
        .flag("-fcf-protection=full")
        .flag("-fno-omit-frame-pointer")
        .warnings(true)
        .compile("hf_fixtures_c");
    cc::Build::new()
        .cpp(true)
        .file(format!("{dir}/role.cpp"))
        .opt_level(2)
        .warnings(true)
        .compile("hf_fixtures_cpp");
}
