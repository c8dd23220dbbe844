//! Nothing of a refused patch runs in the host: every refusal that the file's
//! bytes allow is made before `dlopen`, and hand-edited registries are refused
//! without crashing or changing the host.

use fixture_host::sum;
use hotfix_core::__private::{BuildFingerprint, FnMeta, PatchEntry, RegistryV1};
use hotfix_core::{Error, Runtime};
use hotfix_tests::elf_edit::PatchBytes;
use hotfix_tests::{
    build_patch, build_patch_with, build_patch_with_env, compile_c_shared, loaded_copies,
    scratch_dir, serial,
};
use std::mem::offset_of;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

fn marker(kind: &str) -> PathBuf {
    PathBuf::from(format!("/tmp/hotfix-ctor-{}-{kind}", std::process::id()))
}

fn threads() -> usize {
    std::fs::read_dir("/proc/self/task").unwrap().count()
}

/// The host is as it was: no patch applied, `sum` the shipped one.
fn unchanged() {
    assert_eq!(sum(1, 2), -1);
    assert!(Runtime::global().status().patches.is_empty());
}

#[test]
fn a_refused_rust_patch_never_runs_its_constructor() {
    let _g = serial();
    let _ = std::fs::remove_file(marker("rust"));
    let wrong = build_patch_with("ctor_marker", &[], "fixture-nodebug");
    let copies = loaded_copies();
    let err = Runtime::global().apply(&wrong).expect_err("refused");
    assert!(
        matches!(&err, Error::BuildMismatch { what, .. } if what.contains("debug_assertions")),
        "{err}"
    );
    assert!(
        !marker("rust").exists(),
        "the constructor of a refused patch ran"
    );
    assert_eq!(loaded_copies(), copies, "the refused patch was loaded");
    unchanged();

    // The same constructor does run when its patch is right: the marker can appear.
    let right = build_patch("ctor_marker");
    Runtime::global().apply(&right).expect("apply");
    assert!(
        marker("rust").exists(),
        "the constructor of a loaded patch ran"
    );
    assert_eq!(sum(1, 2), 3);
    Runtime::global().revert_newest().expect("revert");
    let _ = std::fs::remove_file(marker("rust"));
}

#[test]
fn a_c_object_with_a_garbage_registry_never_runs_its_constructor() {
    let _g = serial();
    let _ = std::fs::remove_file(marker("c"));
    let dir = scratch_dir("ctor-garbage");
    let so = dir.join("libgarbage.so");
    compile_c_shared("ctor_garbage", &so);
    let before = threads();
    let err = Runtime::global().apply(&so).expect_err("refused");
    assert!(
        matches!(&err, Error::CorruptRegistry { reason, .. } if reason.contains("bad magic")),
        "{err}"
    );
    assert!(
        !marker("c").exists(),
        "the constructor of a refused object ran"
    );
    assert_eq!(
        threads(),
        before,
        "a thread was started by the refused object"
    );
    unchanged();
}

/// One hand edit of a real patch, and what the refusal must say.
struct Edit {
    name: &'static str,
    apply: fn(&mut PatchBytes, u64),
    says: &'static str,
}

/// Offset of the relocation addend of the pointer slot at `slot`.
fn point(p: &mut PatchBytes, slot: u64, to: u64) {
    let at = p.addend_offset(slot);
    p.put_u64(at, to);
}

/// Makes the pointer slot at `slot` null: its relocation becomes `R_X86_64_NONE`.
fn null(p: &mut PatchBytes, slot: u64) {
    let at = p.addend_offset(slot) - 8;
    p.put_u64(at, 0);
}

fn set(p: &mut PatchBytes, vaddr: u64, value: u64) {
    let at = p.offset_of(vaddr);
    p.put_u64(at, value);
}

const HUGE: u64 = 1 << 40;
const REG_NAME: usize = offset_of!(RegistryV1, name);
const RUSTC: usize = offset_of!(RegistryV1, build) + offset_of!(BuildFingerprint, rustc);

fn first_entry(p: &PatchBytes) -> u64 {
    p.symbol("__start_linkme_PATCH_ENTRIES")
}

/// Where `&str` keeps its length: the word after the pointer or before it.
fn str_len_offset() -> u64 {
    let s: &'static str = "x";
    // SAFETY: `&str` is two words; reading them as two usizes only looks at them.
    let w: [usize; 2] = unsafe { std::mem::transmute::<&'static str, [usize; 2]>(s) };
    if w[0] == s.as_ptr() as usize { 8 } else { 0 }
}

fn meta_of(p: &PatchBytes, entry: u64) -> u64 {
    p.u64_at(p.addend_offset(entry + offset_of!(PatchEntry, meta) as u64))
}

const EDITS: &[Edit] = &[
    Edit {
        name: "magic",
        apply: |p, reg| set(p, reg, u64::from_le_bytes(*b"NOTHOTFX")),
        says: "bad magic",
    },
    Edit {
        name: "format version",
        apply: |p, reg| {
            let at = p.offset_of(reg) + offset_of!(RegistryV1, format_version);
            p.bytes[at..at + 4].copy_from_slice(&7u32.to_le_bytes());
        },
        says: "registry format 7",
    },
    Edit {
        name: "registry size",
        apply: |p, reg| {
            let at = p.offset_of(reg) + offset_of!(RegistryV1, size);
            p.bytes[at..at + 4].copy_from_slice(&9999u32.to_le_bytes());
        },
        says: "registry size 9999",
    },
    Edit {
        name: "build string length huge",
        apply: |p, reg| set(p, reg + RUSTC as u64 + 8, HUGE),
        says: "over the limit",
    },
    Edit {
        name: "build string out of the file",
        apply: |p, reg| point(p, reg + RUSTC as u64, 0xffff_ffff_0000),
        says: "outside the file's segments",
    },
    Edit {
        name: "build string null",
        apply: |p, reg| null(p, reg + RUSTC as u64),
        says: "null pointer with length",
    },
    Edit {
        name: "name length huge",
        apply: |p, reg| set(p, reg + REG_NAME as u64 + 8, HUGE),
        says: "patch name: length 1099511627776 is over the limit",
    },
    Edit {
        name: "name not UTF-8",
        apply: |p, reg| {
            let target = p.u64_at(p.addend_offset(reg + REG_NAME as u64));
            let at = p.offset_of(target);
            p.bytes[at] = 0xff;
        },
        says: "not UTF-8",
    },
    Edit {
        name: "crate list length huge",
        apply: |p, reg| set(p, reg + offset_of!(RegistryV1, crates) as u64 + 8, HUGE),
        says: "registry.crates: 1099511627776 crates, over the limit of 1024",
    },
    Edit {
        name: "crate list out of the file",
        apply: |p, reg| {
            point(
                p,
                reg + offset_of!(RegistryV1, crates) as u64,
                0xffff_ffff_0000,
            )
        },
        says: "outside the file's segments",
    },
    Edit {
        name: "entries accessor null",
        apply: |p, reg| null(p, reg + offset_of!(RegistryV1, entries) as u64),
        says: "registry.entries: null function pointer",
    },
    Edit {
        name: "bind accessor into data",
        apply: |p, reg| point(p, reg + offset_of!(RegistryV1, bind) as u64, reg),
        says: "registry.bind",
    },
    Edit {
        name: "entry count huge",
        apply: |p, _| {
            let at = p.symbol_value_offset("__stop_linkme_PATCH_ENTRIES");
            let v = p.u64_at(at);
            p.put_u64(at, v + HUGE * size_of::<PatchEntry>() as u64);
        },
        says: "PATCH_ENTRIES",
    },
    Edit {
        name: "entry list not whole",
        apply: |p, _| {
            let at = p.symbol_value_offset("__stop_linkme_PATCH_ENTRIES");
            let v = p.u64_at(at);
            p.put_u64(at, v - 1);
        },
        says: "not a whole number",
    },
    Edit {
        name: "entry metadata null",
        apply: |p, _| {
            let e = first_entry(p);
            null(p, e + offset_of!(PatchEntry, meta) as u64);
        },
        says: "null metadata pointer",
    },
    Edit {
        name: "entry path length huge",
        apply: |p, _| {
            let meta = meta_of(p, first_entry(p));
            set(
                p,
                meta + offset_of!(FnMeta, path) as u64 + str_len_offset(),
                HUGE,
            );
        },
        says: "over the limit",
    },
    Edit {
        name: "replacement null",
        apply: |p, _| {
            let e = first_entry(p);
            null(p, e + offset_of!(PatchEntry, replacement) as u64);
        },
        says: "null function pointer",
    },
];

#[test]
fn hand_edited_registry_fields_are_refused_with_the_host_unchanged() {
    let _g = serial();
    let good = PatchBytes::read(&build_patch("good"));
    let reg = good.symbol("HOTFIX_REGISTRY_V1");
    let dir = scratch_dir("edited");
    let copies = loaded_copies();
    for (i, edit) in EDITS.iter().enumerate() {
        let mut p = PatchBytes {
            bytes: good.bytes.clone(),
        };
        (edit.apply)(&mut p, reg);
        let path = dir.join(format!("libedited{i}.so"));
        p.write(&path);
        let err = Runtime::global()
            .apply(&path)
            .expect_err(&format!("edit {:?} was applied", edit.name));
        assert!(
            matches!(
                err,
                Error::CorruptRegistry { .. } | Error::UnsupportedFormat { .. }
            ),
            "edit {:?}: {err}",
            edit.name
        );
        assert!(
            err.to_string().contains(edit.says),
            "edit {:?}: {err}",
            edit.name
        );
        unchanged();
    }
    assert_eq!(loaded_copies(), copies, "an edited patch was loaded");
    // The unedited bytes, written the same way, apply.
    let path = dir.join("libunedited.so");
    good.write(&path);
    Runtime::global()
        .apply(&path)
        .expect("the unedited patch applies");
    assert_eq!(sum(1, 2), 3);
    Runtime::global().revert_newest().expect("revert");
}

#[test]
fn a_sparse_terabyte_file_is_refused_at_once_without_reading_it() {
    let _g = serial();
    let dir = scratch_dir("sparse");
    let path = dir.join("libhuge.so");
    let f = std::fs::File::create(&path).unwrap();
    f.set_len(1 << 40).unwrap();
    drop(f);
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    let start = Instant::now();
    let err = Runtime::global().apply(&path).expect_err("refused");
    let took = start.elapsed();
    assert!(
        matches!(err, Error::TooLarge { size, .. } if size == 1 << 40),
        "{err}"
    );
    assert!(took < Duration::from_millis(500), "took {took:?}");
    let _ = std::fs::remove_file(&path);
    unchanged();
}

#[test]
fn files_of_pseudo_file_systems_are_refused() {
    let _g = serial();
    let err = Runtime::global()
        .apply("/proc/self/pagemap")
        .expect_err("refused");
    assert!(
        matches!(&err, Error::PseudoFileSystem { fs, .. } if *fs == "procfs"),
        "{err}"
    );
    unchanged();
}

fn chown(path: &Path, uid: u32) {
    let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: a NUL-terminated path; chown has no memory preconditions.
    assert_eq!(unsafe { libc::chown(c.as_ptr(), uid, uid) }, 0, "chown");
}

#[test]
fn a_needed_library_in_an_unsafe_directory_is_refused_before_it_is_loaded() {
    let _g = serial();
    let _ = std::fs::remove_file(marker("needed"));
    let dir = scratch_dir("needed");
    let lib = dir.join("libhfneeded.so");
    compile_c_shared("needed", &lib);
    let patch = build_patch_with_env(
        "needs_lib",
        &[],
        "dev",
        &[("HOTFIX_NEEDED_DIR", dir.to_str().unwrap())],
    );
    // Another user's library, writable by everyone, in a directory anyone may write.
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
    std::fs::set_permissions(&lib, std::fs::Permissions::from_mode(0o666)).unwrap();
    chown(&lib, 65534);
    let err = Runtime::global().apply(&patch).expect_err("refused");
    assert!(
        matches!(&err, Error::UnsafeDependency { library, .. } if library == "libhfneeded.so"),
        "{err}"
    );
    assert!(
        !marker("needed").exists(),
        "the needed library's constructor ran"
    );
    unchanged();

    // Made safe, the same patch applies, and its library is loaded with it.
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(&lib, std::fs::Permissions::from_mode(0o755)).unwrap();
    chown(&lib, 0);
    Runtime::global().apply(&patch).expect("apply");
    assert_eq!(sum(1, 2), 3);
    assert!(
        marker("needed").exists(),
        "the library was loaded with the patch"
    );
    Runtime::global().revert_newest().expect("revert");
    let _ = std::fs::remove_file(marker("needed"));
}

#[test]
fn an_ifunc_resolver_that_would_run_while_loading_is_refused_first() {
    let _g = serial();
    let _ = std::fs::remove_file(marker("ifunc"));
    let dir = scratch_dir("ifunc");
    let so = dir.join("libifunc.so");
    compile_c_shared("ifunc_resolver", &so);
    let err = Runtime::global().apply(&so).expect_err("refused");
    assert!(
        matches!(&err, Error::CorruptRegistry { reason, .. } if reason.contains("IFUNC resolver")),
        "{err}"
    );
    assert!(!marker("ifunc").exists(), "the resolver ran");
    unchanged();
}

#[test]
fn segments_the_loader_would_map_unreadable_or_overlapping_are_refused() {
    let _g = serial();
    let good = PatchBytes::read(&build_patch("good"));
    let dir = scratch_dir("segments");
    let phoff = good.u64_at(0x20) as usize;
    let phentsize = u16::from_le_bytes([good.bytes[0x36], good.bytes[0x37]]) as usize;
    let phnum = u16::from_le_bytes([good.bytes[0x38], good.bytes[0x39]]) as usize;
    let loads: Vec<usize> = (0..phnum)
        .map(|i| phoff + i * phentsize)
        .filter(|&h| u32::from_le_bytes(good.bytes[h..h + 4].try_into().unwrap()) == 1)
        .collect();
    assert!(loads.len() >= 2, "a patch has several loadable segments");

    // The last loadable segment (data) mapped with no access at all.
    let mut p = PatchBytes {
        bytes: good.bytes.clone(),
    };
    let last = *loads.last().unwrap();
    p.bytes[last + 4..last + 8].copy_from_slice(&0u32.to_le_bytes());
    let path = dir.join("libnoread.so");
    p.write(&path);
    let err = Runtime::global().apply(&path).expect_err("refused");
    assert!(err.to_string().contains("is not readable"), "{err}");
    unchanged();

    // The second loadable segment moved onto the first one's pages.
    let mut p = PatchBytes {
        bytes: good.bytes.clone(),
    };
    let first_vaddr = p.u64_at(loads[0] + 0x10);
    p.put_u64(loads[1] + 0x10, first_vaddr);
    let path = dir.join("liboverlap.so");
    p.write(&path);
    let err = Runtime::global().apply(&path).expect_err("refused");
    assert!(err.to_string().contains("overlaps or precedes"), "{err}");
    unchanged();
}
