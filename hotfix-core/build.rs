//! Records what changes type layout or ABI between two builds, so the runtime can
//! refuse a patch built by another compiler, for another target, or with other cfgs.
use std::process::Command;

fn main() {
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let version = Command::new(&rustc)
        .arg("-vV")
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).replace('\n', "; "))
        .unwrap_or_else(|| "unknown".into());
    println!(
        "cargo:rustc-env=HOTFIX_RUSTC_VERSION={}",
        version.trim_end_matches("; ")
    );
    let target = std::env::var("TARGET").unwrap_or_default();
    println!("cargo:rustc-env=HOTFIX_TARGET={target}");
    let features = std::env::var("CARGO_CFG_TARGET_FEATURE").unwrap_or_default();
    println!("cargo:rustc-env=HOTFIX_TARGET_FEATURES={features}");
    println!("cargo:rerun-if-env-changed=RUSTC");
    println!("cargo:rerun-if-env-changed=RUSTFLAGS");
    println!("cargo:rerun-if-env-changed=CARGO_ENCODED_RUSTFLAGS");
}
