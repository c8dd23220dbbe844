//! Builds a fixture patch against an edited copy of the fixture host's source,
//! as a user would who changed the host and rebuilt only the patch: a
//! workspace of its own (the host copy and the patch), the fixtures'
//! Cargo.lock, and the fixtures' target directory (dependencies are reused).

use crate::{FileLock, fixtures_target, root};
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

/// One edit of the host copy: in `file` (relative to the host crate), replace
/// `from` (which must occur) with `to`.
pub struct Edit<'a> {
    /// A file of the host crate, e.g. `src/layouts.rs` or `Cargo.toml`.
    pub file: &'a str,
    /// Text that must be in it.
    pub from: &'a str,
    /// What replaces it.
    pub to: &'a str,
}

fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).expect("create a copy directory");
    for entry in fs::read_dir(from).expect("read a fixture directory") {
        let entry = entry.expect("a directory entry");
        let dest = to.join(entry.file_name());
        if entry.file_type().expect("a file type").is_dir() {
            copy_dir(&entry.path(), &dest);
        } else {
            fs::copy(entry.path(), &dest).expect("copy a fixture file");
        }
    }
}

/// Builds fixture patch `patch` against a copy of the host with `edits`
/// applied (and the host's `features` enabled); returns a copy of the library
/// named after `variant`.
pub fn build_against_copy(
    variant: &str,
    patch: &str,
    edits: &[Edit<'_>],
    features: &[&str],
) -> PathBuf {
    let target = fixtures_target();
    let ws = target.join("host-copies").join(variant);
    let _ = fs::remove_dir_all(&ws);
    // Cargo names a path package's artifacts after its path relative to the
    // workspace: a directory named per variant keeps the copies apart in the
    // shared target directory (one name would make cargo reuse another
    // variant's build as fresh).
    let host_dir = format!("host-{variant}");
    let fixtures = root().join("tests/fixtures");
    copy_dir(&fixtures.join("host"), &ws.join(&host_dir));
    copy_dir(&fixtures.join("patches").join(patch), &ws.join("patch"));
    let _ = fs::remove_dir_all(ws.join(&host_dir).join("target"));
    // Each variant's patch has a name of its own, so no build's library
    // overwrites another's in the shared target directory.
    let package = format!("{patch}_{}", variant.replace('-', "_"));
    let patch_manifest = ws.join("patch/Cargo.toml");
    let text = fs::read_to_string(&patch_manifest).expect("read the patch manifest");
    let named = format!("name = \"{patch}\"");
    assert!(text.contains(&named), "the patch manifest has no `{named}`");
    fs::write(
        &patch_manifest,
        text.replacen(&named, &format!("name = \"{package}\""), 1),
    )
    .expect("write the patch manifest");
    let core = root().join("hotfix-core");
    let manifest = ws.join(&host_dir).join("Cargo.toml");
    let text = fs::read_to_string(&manifest).expect("read the host manifest");
    let text = text
        .replace("../../../hotfix-core", &core.display().to_string())
        .replace(
            "\"../dep\"",
            &format!("\"{}\"", fixtures.join("dep").display()),
        );
    fs::write(&manifest, text).expect("write the host manifest");
    for e in edits {
        let path = ws.join(&host_dir).join(e.file);
        let text = fs::read_to_string(&path).expect("read a host file");
        assert!(text.contains(e.from), "{} has no `{}`", e.file, e.from);
        fs::write(&path, text.replacen(e.from, e.to, 1)).expect("write a host file");
    }
    fs::write(
        ws.join("Cargo.toml"),
        format!(
            "[workspace]\nresolver = \"3\"\nmembers = [\"{host_dir}\", \"patch\"]\n\n\
             [workspace.package]\nedition = \"2024\"\nrust-version = \"1.88\"\nversion = \"1.0.0\"\npublish = false\n\n\
             [workspace.dependencies]\nhotfix-core = {{ path = \"{}\" }}\nfixture-host = {{ path = \"{host_dir}\" }}\n",
            core.display()
        ),
    )
    .expect("write the workspace manifest");
    fs::copy(fixtures.join("Cargo.lock"), ws.join("Cargo.lock")).expect("copy the lock file");

    let _lock = FileLock::take(&target.join(".build-lock"));
    let mut cmd = Command::new(env!("CARGO"));
    cmd.arg("build")
        .arg("--quiet")
        .arg("--manifest-path")
        .arg(ws.join("Cargo.toml"))
        .arg("--target-dir")
        .arg(&target)
        .arg("-p")
        .arg(&package);
    if !features.is_empty() {
        let f: Vec<String> = features
            .iter()
            .map(|f| format!("fixture-host/{f}"))
            .collect();
        cmd.arg("--features").arg(f.join(","));
    }
    let out = cmd.output().expect("run cargo");
    assert!(
        out.status.success(),
        "building {patch} against the host copy {variant} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let built = target.join("debug").join(format!("lib{package}.so"));
    let copy = target.join("out").join(format!("lib{package}.so"));
    fs::create_dir_all(target.join("out")).expect("create the output dir");
    fs::copy(&built, &copy).expect("copy the library");
    fs::set_permissions(&copy, fs::Permissions::from_mode(0o755)).expect("chmod the copy");
    copy
}
