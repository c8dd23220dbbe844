//! A thousand refused patches leave no descriptor, mapping or memory behind.
//! (A binary of its own, so nothing else changes the figures.)

use hotfix_core::Runtime;
use hotfix_tests::elf_edit::PatchBytes;
use hotfix_tests::{build_patch, build_patch_with, mappings, open_fds, scratch_dir, serial};
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS")
}

#[test]
fn a_thousand_refusals_leak_nothing() {
    let _g = serial();
    let dir = scratch_dir("leaks");
    let write = |name: &str, bytes: &[u8]| -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, bytes).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        p
    };
    let garbage = write("libgarbage.so", b"\x7fELF but nothing more");
    let wrong_build = build_patch_with("good", &[], "fixture-nodebug");
    let mut edited = PatchBytes::read(&build_patch("good"));
    let reg = edited.symbol("HOTFIX_REGISTRY_V1");
    let at = edited
        .offset_of(reg + std::mem::offset_of!(hotfix_core::__private::RegistryV1, name) as u64 + 8);
    edited.put_u64(at, 1 << 40);
    let edited = write("libedited.so", &edited.bytes);
    let huge = dir.join("libhuge.so");
    std::fs::File::create(&huge)
        .unwrap()
        .set_len(1 << 40)
        .unwrap();
    std::fs::set_permissions(&huge, std::fs::Permissions::from_mode(0o755)).unwrap();
    let kinds = [&garbage, &wrong_build, &edited, &huge];

    let attempt = |i: usize| {
        let path = kinds[i % kinds.len()];
        assert!(
            Runtime::global().apply(path).is_err(),
            "{} was applied",
            path.display()
        );
    };
    for i in 0..20 {
        attempt(i);
    }
    let (fd0, maps0, rss0) = (open_fds(), mappings(), rss_kib());
    const ATTEMPTS: usize = 1000;
    for i in 0..ATTEMPTS {
        attempt(i);
    }
    let (fd1, maps1, rss1) = (open_fds(), mappings(), rss_kib());
    eprintln!(
        "{ATTEMPTS} refusals: fds {fd0} -> {fd1}, mappings {maps0} -> {maps1}, RSS {rss0} -> {rss1} KiB"
    );
    assert_eq!(fd1, fd0, "descriptors leaked");
    assert!(maps1 <= maps0 + 4, "mappings grew from {maps0} to {maps1}");
    assert!(
        rss1 <= rss0 + 16 * 1024,
        "RSS grew from {rss0} KiB to {rss1} KiB"
    );
    let _ = std::fs::remove_file(&huge);
}
