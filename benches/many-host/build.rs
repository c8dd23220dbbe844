//! Generates `MANY_HOST_FNS` `#[patchable]` functions `f0 ..`.
fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=BENCHGEN_MANY_FNS");
    benchgen::write_out(
        "fns.rs",
        &benchgen::host_fns(benchgen::many_host_fns(), true),
    );
}
