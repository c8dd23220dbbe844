//! Generates 1000 replacements.
fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    benchgen::write_out("patch.rs", &benchgen::patch_fns("many_host", 1000));
}
