//! The two builds a linked patch is made from: the base revision and the
//! working tree, each the crate's library as the host's build made it (its
//! profile, features and package selection, which decide every dependency's
//! features), in one target directory of hotfix's own.

use super::super::Profile;
use super::super::cargo_build::{artifacts, feature_args};
use super::super::workspace::cargo;
use super::objects::Build;
use crate::error::CliError;
use std::path::{Path, PathBuf};

/// How cargo selects packages; it decides every dependency's features.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Selection {
    /// `cargo build -p PACKAGE`.
    Package(String),
    /// `cargo build` at the workspace root.
    Workspace,
}

impl Selection {
    /// As the plan shows it.
    pub fn describe(&self) -> String {
        match self {
            Selection::Package(p) => format!("cargo build -p {p}"),
            Selection::Workspace => "cargo build (the workspace)".into(),
        }
    }
}

/// What one build produced.
pub struct Built {
    /// The crate's own objects.
    pub objects: Build,
    /// Every other library archive cargo built or used.
    pub rlibs: Vec<PathBuf>,
}

/// Builds the library crate `krate` of the workspace at `root`.
pub fn build(
    root: &Path,
    package: &str,
    krate: &str,
    sel: &Selection,
    profile: &Profile,
    target_dir: &Path,
) -> Result<Built, CliError> {
    // Base and fixed builds share the target directory (every dependency is
    // built once), but cargo judges freshness by file times, which cannot
    // tell the two trees apart: the crate itself is always rebuilt. Only in
    // the profile's directory: `cargo clean -p` alone cleans `debug` (a
    // release base build was taken as the fixed build).
    let mut clean = cargo();
    clean
        .args(["clean", "--quiet", "-p", package, "--profile"])
        .arg(&profile.profile)
        .arg("--manifest-path")
        .arg(root.join("Cargo.toml"))
        .env("CARGO_TARGET_DIR", target_dir)
        .current_dir(root);
    super::super::workspace::output(clean, "cargo clean")?;
    let mut cmd = cargo();
    cmd.args(["build", "--lib", "--profile"])
        .arg(&profile.profile)
        .arg("--manifest-path")
        .arg(root.join("Cargo.toml"))
        .env("CARGO_TARGET_DIR", target_dir)
        .current_dir(root);
    if let Selection::Package(p) = sel {
        cmd.args(["-p", p]);
    }
    feature_args(&mut cmd, profile);
    let what = format!("crate {krate} in {}", root.display());
    let mut own = None;
    let mut rlibs = Vec::new();
    for a in artifacts(cmd, &what)? {
        for f in a
            .files
            .into_iter()
            .filter(|f| f.extension().is_some_and(|e| e == "rlib"))
        {
            if a.krate == krate {
                own = Some(f);
            } else {
                rlibs.push(f);
            }
        }
    }
    let own = own.ok_or_else(|| {
        CliError::BuildFailed(format!("cargo built no library archive of crate {krate}"))
    })?;
    let mut objects = Build::default();
    objects
        .add_archive(&own)
        .map_err(|e| CliError::BuildFailed(format!("reading the build of {krate}: {e}")))?;
    Ok(Built { objects, rlibs })
}

/// The objects of `rlibs` and of the toolchain's standard library, searched
/// for code the host lacks.
pub fn dependencies(rlibs: &[PathBuf], root: &Path) -> Result<Build, CliError> {
    let mut deps = Build::default();
    let mut all = rlibs.to_vec();
    let mut c =
        std::process::Command::new(std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into()));
    c.args(["--print", "target-libdir"]).current_dir(root);
    let dir = String::from_utf8_lossy(&super::super::workspace::output(
        c,
        "rustc --print target-libdir",
    )?)
    .trim()
    .to_owned();
    if let Ok(entries) = std::fs::read_dir(&dir) {
        let mut sys: Vec<PathBuf> = entries
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e == "rlib"))
            .collect();
        sys.sort();
        all.extend(sys);
    }
    for r in &all {
        deps.add_archive(r)
            .map_err(|e| CliError::BuildFailed(format!("reading a dependency: {e}")))?;
    }
    Ok(deps)
}
