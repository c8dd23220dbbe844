//! Bad input: every patch the runtime must refuse, each with its own error
//! variant, a message that names the file or the function, and behaviour
//! unchanged afterwards (same results, nothing in `status()`).

use fixture_host::{answer, greet, sum};
use hotfix_core::{Error, Runtime};
use hotfix_tests::{build_patch, build_patch_with, scratch_dir, serial};
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

fn rt() -> &'static Runtime {
    Runtime::global()
}

/// The process-wide test lock; reverts what the test left applied on drop.
fn guard() -> hotfix_tests::Serial {
    serial()
}

/// What the host does with nothing applied.
fn assert_original(when: &str) {
    assert_eq!(sum(1, 2), -1, "sum {when}");
    assert_eq!(answer(), 40, "answer {when}");
    assert_eq!(greet("ann"), "hello ann", "greet {when}");
    // A function pointer taken now passes through the slot as well.
    let f: fn(i64, i64) -> i64 = sum;
    assert_eq!(f(5, 5), 0, "sum through a fn pointer {when}");
    let status = rt().status();
    assert!(status.patches.is_empty(), "patches {when}: {status}");
    assert!(status.functions.is_empty(), "functions {when}: {status:?}");
    assert_eq!(status.to_string(), "none");
}

/// Applies `path` with nothing applied, expects a refusal, and checks that
/// nothing changed.
fn refused(path: &Path) -> Error {
    assert_original("before the apply");
    let err = rt()
        .apply(path)
        .expect_err(&format!("{} must be refused", path.display()));
    assert_original(&format!("after the refusal `{err}`"));
    err
}

/// The file's name as the message must show it.
fn file_name(path: &Path) -> String {
    path.file_name()
        .expect("a file name")
        .to_string_lossy()
        .into_owned()
}

fn assert_names(err: &Error, what: &str) {
    let msg = err.to_string();
    assert!(msg.contains(what), "message `{msg}` does not name `{what}`");
}

/// Writes `bytes` into a fresh file of the scratch dir `dir` with mode 0644.
fn scratch_file(dir: &str, name: &str, bytes: &[u8]) -> PathBuf {
    let path = scratch_dir(dir).join(name);
    fs::write(&path, bytes).expect("write a scratch file");
    fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).expect("chmod");
    path
}

// ---- the file itself ----

#[test]
fn missing_file_is_not_found() {
    let _g = guard();
    let path = scratch_dir("missing").join("no-such-patch.so");
    let err = refused(&path);
    assert!(
        matches!(&err, Error::NotFound { path: p } if *p == path),
        "{err:?}"
    );
    assert_names(&err, "no-such-patch.so");
}

#[test]
fn directory_is_not_a_file() {
    let _g = guard();
    let dir = scratch_dir("a-directory.so");
    let err = refused(&dir);
    assert!(
        matches!(
            &err,
            Error::NotAFile {
                kind: "directory",
                ..
            }
        ),
        "{err:?}"
    );
    assert_names(&err, &file_name(&dir));
}

#[test]
fn empty_file_is_not_a_shared_object() {
    let _g = guard();
    let path = scratch_file("empty", "libempty.so", b"");
    let err = refused(&path);
    assert!(matches!(&err, Error::NotSharedObject { .. }), "{err:?}");
    assert_names(&err, "libempty.so");
    assert_names(&err, "empty");
}

#[test]
fn text_file_is_not_a_shared_object() {
    let _g = guard();
    let path = scratch_file(
        "text",
        "libtext.so",
        b"#!/bin/sh\necho this is not a shared object\n",
    );
    let err = refused(&path);
    assert!(matches!(&err, Error::NotSharedObject { .. }), "{err:?}");
    assert_names(&err, "libtext.so");
    assert_names(&err, "not an ELF file");
}

#[test]
fn truncated_shared_object_is_refused() {
    let _g = guard();
    let bytes = fs::read(build_patch("good")).expect("read the good patch");
    for (name, len) in [
        ("libthird.so", bytes.len() / 3),
        ("libhalf.so", bytes.len() / 2),
        ("libheader.so", 64),
        ("libminus1.so", bytes.len() - 1),
    ] {
        let path = scratch_file("truncated", name, &bytes[..len]);
        let err = refused(&path);
        assert!(
            matches!(&err, Error::NotSharedObject { .. }),
            "{name}: {err:?}"
        );
        assert_names(&err, name);
        assert_names(&err, "truncated");
    }
}

#[test]
fn shared_object_without_registry() {
    let _g = guard();
    let path = build_patch("no_registry");
    let err = refused(&path);
    assert!(matches!(&err, Error::NoRegistry { .. }), "{err:?}");
    assert_names(&err, &file_name(&path));
    assert_names(&err, "HOTFIX_REGISTRY_V");
}

// ---- the registry and the build ----

#[test]
fn older_registry_format() {
    let _g = guard();
    let path = build_patch_with("raw_registry", &["format-v0"], "dev");
    let err = refused(&path);
    assert!(
        matches!(
            &err,
            Error::UnsupportedFormat {
                found: 0,
                supported: 1,
                relation: "older",
                ..
            }
        ),
        "{err:?}"
    );
    assert_names(&err, &file_name(&path));
}

#[test]
fn newer_registry_format() {
    let _g = guard();
    let path = build_patch_with("raw_registry", &["format-v2"], "dev");
    let err = refused(&path);
    assert!(
        matches!(
            &err,
            Error::UnsupportedFormat {
                found: 2,
                supported: 1,
                relation: "newer",
                ..
            }
        ),
        "{err:?}"
    );
    assert_names(&err, &file_name(&path));
}

fn build_mismatch(path: &Path, expected_what: &str) -> Error {
    let err = refused(path);
    match &err {
        Error::BuildMismatch {
            what, patch, host, ..
        } => {
            assert_eq!(*what, expected_what, "{err}");
            assert_ne!(patch, host, "{err}");
        }
        _ => panic!("expected BuildMismatch ({expected_what}), got {err:?}"),
    }
    assert_names(&err, &file_name(path));
    err
}

#[test]
fn other_compiler() {
    let _g = guard();
    let path = build_patch_with("raw_registry", &["fake-rustc"], "dev");
    let err = build_mismatch(&path, "compiler (rustc -vV)");
    assert_names(&err, "rustc 1.0.0");
}

#[test]
fn other_target() {
    let _g = guard();
    let path = build_patch_with("raw_registry", &["fake-target"], "dev");
    let err = build_mismatch(&path, "target");
    assert_names(&err, "aarch64-unknown-linux-gnu");
}

#[test]
fn other_panic_strategy() {
    let _g = guard();
    let path = build_patch_with("good", &[], "fixture-abort");
    let err = build_mismatch(&path, "panic strategy");
    assert_names(&err, "abort");
}

#[test]
fn other_debug_assertions() {
    let _g = guard();
    let path = build_patch_with("good", &[], "fixture-nodebug");
    build_mismatch(&path, "debug_assertions setting");
}

// ---- the entries against the host ----

#[test]
fn signature_mismatch() {
    let _g = guard();
    let err = refused(&build_patch("sig_mismatch"));
    match &err {
        Error::SignatureMismatch {
            patch,
            target,
            patch_sig,
            host_sig,
        } => {
            assert!(patch.starts_with("sig_mismatch"), "{err}");
            assert_eq!(target, "fixture_host::sum");
            assert!(patch_sig.contains("i32"), "{err}");
            assert!(host_sig.contains("i64"), "{err}");
        }
        _ => panic!("expected SignatureMismatch, got {err:?}"),
    }
    assert_names(&err, "fixture_host::sum");
}

#[test]
fn unknown_target() {
    let _g = guard();
    let err = refused(&build_patch("unknown_target"));
    assert!(
        matches!(&err, Error::UnknownTarget { target, .. } if target == "fixture_host::extra"),
        "{err:?}"
    );
    assert_names(&err, "fixture_host::extra");
    assert_names(&err, "unknown_target");
}

#[test]
fn body_mismatch() {
    let _g = guard();
    let err = refused(&build_patch("body_mismatch"));
    match &err {
        Error::BodyMismatch {
            target,
            patch_fp,
            host_fp,
            ..
        } => {
            assert_eq!(target, "fixture_host::answer");
            assert_ne!(patch_fp, host_fp);
        }
        _ => panic!("expected BodyMismatch, got {err:?}"),
    }
    assert_names(&err, "fixture_host::answer");
    assert_names(&err, "body_mismatch");
}

#[test]
fn two_entries_for_one_target() {
    let _g = guard();
    let err = refused(&build_patch("duplicate"));
    match &err {
        Error::DuplicateTarget {
            target,
            first,
            second,
            ..
        } => {
            assert_eq!(target, "fixture_host::sum");
            assert_ne!(first, second, "two locations");
        }
        _ => panic!("expected DuplicateTarget, got {err:?}"),
    }
    assert_names(&err, "fixture_host::sum");
    assert_names(&err, "duplicate");
}

// ---- the stack ----

#[test]
fn the_same_patch_twice_is_already_applied() {
    let _g = guard();
    assert_original("before");
    let good = build_patch("good");
    let first = rt().apply(&good).expect("first apply");
    assert_eq!((sum(1, 2), answer()), (3, 42));

    // The same path, and the same bytes under another name.
    let copy = scratch_dir("twice").join("libgood-copy.so");
    fs::copy(&good, &copy).expect("copy");
    fs::set_permissions(&copy, fs::Permissions::from_mode(0o644)).expect("chmod");
    for path in [&good, &copy] {
        let err = rt()
            .apply(path)
            .expect_err("the second apply must be refused");
        match &err {
            Error::AlreadyApplied { patch, version, .. } => {
                assert_eq!((patch.as_str(), version.as_str()), ("good", "1.0.0"));
            }
            _ => panic!("expected AlreadyApplied, got {err:?}"),
        }
        assert_names(&err, "already applied");
        assert_names(&err, "good");
        // The first apply is still live, alone.
        assert_eq!((sum(1, 2), answer()), (3, 42));
        let status = rt().status();
        assert_eq!(
            status.patches.iter().map(|p| p.id).collect::<Vec<_>>(),
            vec![first.id]
        );
    }

    let reverted = rt().revert_all().expect("revert all");
    assert_eq!(reverted.len(), 1);
    assert_original("after revert_all");
}

#[test]
fn revert_with_nothing_applied() {
    let _g = guard();
    assert_original("before");
    let err = rt().revert_newest().expect_err("nothing to revert");
    assert!(matches!(err, Error::NothingApplied), "{err:?}");
    assert_names(&err, "nothing to revert");
    assert_original("after revert_newest");
    assert!(rt().revert_all().expect("revert_all of nothing").is_empty());
    assert_original("after revert_all");

    // A patch that is loaded but not applied cannot be reverted either.
    let loaded = rt().load(build_patch("layer_b")).expect("load layer_b");
    let err = rt().revert(loaded.id()).expect_err("not applied");
    assert!(matches!(err, Error::NothingApplied), "{err:?}");
    let a = rt().apply(build_patch("layer_a")).expect("apply layer_a");
    let err = rt().revert(loaded.id()).expect_err("not applied");
    match &err {
        Error::NotApplied { patch } => assert_eq!(*patch, loaded.id().to_string()),
        _ => panic!("expected NotApplied, got {err:?}"),
    }
    assert_names(&err, &loaded.id().to_string());
    assert_eq!(sum(1, 2), 103, "layer_a is still live");
    assert_eq!(rt().status().patches.len(), 1);
    rt().revert(a.id).expect("revert layer_a");
    assert_original("after reverting layer_a");
}

// ---- the file's permissions ----
//
// The runtime recognises bytes it has loaded before by their hash (and then
// skips the file checks: see `insecure_copy_of_loaded_bytes`). So that each of
// these tests sees bytes that are new to the process, whatever ran before, its
// copy of `layer_c` carries a unique tail after the ELF image (the loader maps
// only what the program headers name; the control test shows such a copy
// applies when its modes are safe).

fn insecure_copy(dir_name: &str, dir_mode: u32, file_mode: u32) -> PathBuf {
    let mut bytes = fs::read(build_patch("layer_c")).expect("read layer_c");
    bytes.extend_from_slice(format!("\0hotfix-test-tail:{dir_name}\0").as_bytes());
    let dir = scratch_dir(dir_name);
    let path = dir.join("liblayer_c.so");
    fs::write(&path, bytes).expect("write");
    fs::set_permissions(&path, fs::Permissions::from_mode(file_mode)).expect("chmod the file");
    fs::set_permissions(&dir, fs::Permissions::from_mode(dir_mode)).expect("chmod the dir");
    // The umask must not have undone the modes.
    let mode = |p: &Path| fs::metadata(p).expect("stat").permissions().mode() & 0o777;
    assert_eq!((mode(&dir), mode(&path)), (dir_mode, file_mode));
    path
}

#[test]
fn world_writable_file_is_insecure() {
    let _g = guard();
    let path = insecure_copy("ww-file", 0o755, 0o666);
    let err = refused(&path);
    assert!(matches!(&err, Error::Insecure { .. }), "{err:?}");
    assert_names(&err, "liblayer_c.so");
    assert_names(&err, "everyone");
}

#[test]
fn group_writable_file_is_insecure() {
    let _g = guard();
    let path = insecure_copy("gw-file", 0o755, 0o664);
    let err = refused(&path);
    assert!(matches!(&err, Error::Insecure { .. }), "{err:?}");
    assert_names(&err, "liblayer_c.so");
    assert_names(&err, "group");
}

#[test]
fn world_writable_directory_is_insecure() {
    let _g = guard();
    let path = insecure_copy("ww-dir", 0o777, 0o644);
    let err = refused(&path);
    assert!(matches!(&err, Error::Insecure { .. }), "{err:?}");
    assert_names(&err, "ww-dir");
    assert_names(&err, "directory");
}

#[test]
fn group_writable_directory_is_insecure() {
    let _g = guard();
    let path = insecure_copy("gw-dir", 0o775, 0o644);
    let err = refused(&path);
    assert!(matches!(&err, Error::Insecure { .. }), "{err:?}");
    assert_names(&err, "gw-dir");
    assert_names(&err, "group");
}

#[test]
fn secure_copy_made_the_same_way_applies() {
    // The control of the four tests above: a copy made the same way (with a
    // tail), but writable by its owner only.
    let _g = guard();
    assert_original("before");
    let path = insecure_copy("ok-dir", 0o755, 0o644);
    let status = rt()
        .apply(&path)
        .expect("a 0644 file in a 0755 dir applies");
    assert_eq!(
        status.source,
        fs::canonicalize(&path).expect("canonicalize")
    );
    assert_eq!(sum(1, 2), 303);
    rt().revert_all().expect("revert");
    assert_original("after revert");
}

/// BUG (hotfix-core/src/runtime.rs, `Runtime::load` / `Runtime::cached`): the
/// content-hash cache is consulted before `file_check::check_and_copy`, so a
/// world-writable copy of bytes that were loaded before is accepted without
/// the permission checks.
#[test]
fn insecure_copy_of_loaded_bytes() {
    let _g = guard();
    assert_original("before");
    let good = build_patch("good");
    rt().load(&good).expect("load the good patch");
    let dir = scratch_dir("ww-cached");
    let path = dir.join("libgood.so");
    fs::copy(&good, &path).expect("copy");
    fs::set_permissions(&path, fs::Permissions::from_mode(0o666)).expect("chmod");
    let result = rt().apply(&path);
    if result.is_ok() {
        rt().revert_all().expect("revert");
    }
    let err = result.expect_err("a world-writable file must be refused");
    assert!(matches!(&err, Error::Insecure { .. }), "{err:?}");
    assert_original("after");
}

/// BUG (hotfix-core/src/runtime.rs, `Runtime::cached`): `std::fs::read` runs on
/// the path before it is known to be a regular file, so a FIFO blocks `apply`
/// (and a device such as /dev/zero would be read without end) instead of being
/// refused as `NotAFile { kind: "special file" }`.
#[test]
fn fifo_is_not_a_file() {
    let _g = guard();
    assert_original("before");
    let fifo = scratch_dir("fifo").join("libfifo.so");
    let c = std::ffi::CString::new(fifo.as_os_str().as_encoded_bytes()).expect("path");
    // SAFETY: mkfifo with a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0, "mkfifo");
    let (tx, rx) = std::sync::mpsc::channel();
    let path = fifo.clone();
    std::thread::spawn(move || {
        let _ = tx.send(rt().apply(&path).map(|_| ()));
    });
    let result = rx.recv_timeout(std::time::Duration::from_secs(10));
    if result.is_err() {
        // Unblock the reader: open the FIFO for writing and close it at once.
        let _ = fs::OpenOptions::new().write(true).open(&fifo);
    }
    let err = result
        .expect("apply of a FIFO must return at once, not block")
        .expect_err("a FIFO must be refused");
    assert!(
        matches!(
            &err,
            Error::NotAFile {
                kind: "special file",
                ..
            }
        ),
        "{err:?}"
    );
    assert_original("after");
}

// ---- what the patch's code touches ----

#[test]
fn non_shared_host_static_is_private_static() {
    let _g = guard();
    let path = build_patch("plain_static");
    let err = refused(&path);
    match &err {
        Error::PrivateStatic {
            patch,
            symbol,
            reached_from,
            ..
        } => {
            assert_eq!(patch, "plain_static 1.0.0", "{err}");
            assert_eq!(symbol, "fixture_host::PLAIN", "{err}");
            assert!(
                reached_from.starts_with("its replacement of fixture_host::answer")
                    && reached_from.contains("fixture_host::read_plain"),
                "{err}"
            );
        }
        _ => panic!("expected PrivateStatic, got {err:?}"),
    }
    assert_names(&err, "fixture_host::PLAIN");
    assert_names(&err, "mark it #[shared] in the host");
    assert_eq!(fixture_host::read_plain(), 7);
}

#[test]
fn host_thread_local_is_thread_local() {
    let _g = guard();
    let path = build_patch("thread_local");
    let err = refused(&path);
    match &err {
        Error::ThreadLocal {
            patch,
            symbol,
            reached_from,
            ..
        } => {
            assert_eq!(patch, "thread_local 1.0.0", "{err}");
            assert_eq!(symbol, "fixture_host::TL", "{err}");
            assert!(
                reached_from.starts_with("its replacement of fixture_host::answer"),
                "{err}"
            );
        }
        _ => panic!("expected ThreadLocal, got {err:?}"),
    }
    assert_names(&err, "fixture_host::TL");
    assert_eq!(fixture_host::read_tl(), 5);
}

// ---- the patch's hooks ----

#[test]
fn vetoing_apply_hook() {
    let _g = guard();
    let err = refused(&build_patch("veto"));
    match &err {
        Error::Vetoed { patch, reason } => {
            assert_eq!(patch, "veto 1.0.0");
            assert!(reason.contains("not ready"), "{err}");
        }
        _ => panic!("expected Vetoed, got {err:?}"),
    }
    assert_names(&err, "veto");
    // A second try is refused the same way (the library is reused, not re-run).
    let again = refused(&build_patch("veto"));
    assert!(matches!(&again, Error::Vetoed { .. }), "{again:?}");
}

#[test]
fn panicking_apply_hook_is_a_veto() {
    let _g = guard();
    let err = refused(&build_patch("panicking_hook"));
    match &err {
        Error::Vetoed { patch, reason } => {
            assert_eq!(patch, "panicking_hook 1.0.0");
            assert!(reason.contains("hook exploded"), "{err}");
        }
        _ => panic!("expected Vetoed, got {err:?}"),
    }
    assert_names(&err, "panicking_hook");
    // The process survived and still works: a good patch applies afterwards.
    rt().apply(build_patch("good"))
        .expect("apply good after the panic");
    assert_eq!(sum(1, 2), 3);
    rt().revert_all().expect("revert");
    assert_original("after revert");
}

// ---- all of them ----

#[test]
fn refusals_in_a_row_leave_status_empty() {
    let _g = guard();
    assert_original("before");
    let scratch = scratch_dir("row");
    let text = scratch.join("libtext.so");
    fs::write(&text, "text").expect("write");
    fs::set_permissions(&text, fs::Permissions::from_mode(0o644)).expect("chmod");
    let paths = [
        scratch.join("missing.so"),
        scratch.clone(),
        text,
        build_patch("no_registry"),
        build_patch("sig_mismatch"),
        build_patch("unknown_target"),
        build_patch("body_mismatch"),
        build_patch("duplicate"),
        build_patch("plain_static"),
        build_patch("thread_local"),
        build_patch("veto"),
        build_patch("panicking_hook"),
    ];
    for round in 0..2 {
        for p in &paths {
            rt().apply(p)
                .expect_err(&format!("round {round}: {} must be refused", p.display()));
            assert!(rt().status().patches.is_empty(), "{}", p.display());
        }
    }
    assert_original("after every refusal");
    // Loading (without applying) a patch that passes the checks changes nothing.
    rt().load(build_patch("good")).expect("load good");
    assert_original("after a load");
}
