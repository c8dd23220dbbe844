//! Builds a fixture patch against an edited copy of the fixture host's source,
//! as a user would who changed the host and rebuilt only the patch: a
//! workspace of its own (the host copy and the patch), the fixtures'
//! Cargo.lock, and the fixtures' target directory (dependencies are reused).

use crate::{cargo_build, fixtures_target, publish, root};
use std::fs;
use std::path::{Path, PathBuf};

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

/// Replaces the first `from` in the file at `path` (which must contain it).
fn replace_once(path: &Path, from: &str, to: &str) {
    let text = fs::read_to_string(path).expect("read a copied file");
    assert!(text.contains(from), "{} has no `{from}`", path.display());
    fs::write(path, text.replacen(from, to, 1)).expect("write a copied file");
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
    replace_once(
        &ws.join("patch/Cargo.toml"),
        &format!("name = \"{patch}\""),
        &format!("name = \"{package}\""),
    );
    let core = root().join("hotfix-core");
    let host_manifest = ws.join(&host_dir).join("Cargo.toml");
    replace_once(
        &host_manifest,
        "\"../../../hotfix-core\"",
        &format!("\"{}\"", core.display()),
    );
    replace_once(
        &host_manifest,
        "\"../dep\"",
        &format!("\"{}\"", fixtures.join("dep").display()),
    );
    for e in edits {
        replace_once(&ws.join(&host_dir).join(e.file), e.from, e.to);
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

    let features: Vec<String> = features
        .iter()
        .map(|f| format!("fixture-host/{f}"))
        .collect();
    let args = if features.is_empty() {
        Vec::new()
    } else {
        vec!["--features".to_owned(), features.join(",")]
    };
    cargo_build(
        &ws.join("Cargo.toml"),
        &package,
        &args,
        &[],
        &format!("{patch} against the host copy {variant}"),
    );
    let built = target.join("debug").join(format!("lib{package}.so"));
    publish(&built, &format!("lib{package}.so"))
}
