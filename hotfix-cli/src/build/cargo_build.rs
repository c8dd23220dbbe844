//! The patch build itself: the fixed crate compiled by cargo as a `cdylib`,
//! with the host's profile and features, in patch mode (the plan file named
//! in `HOTFIX_PATCH_PLAN`, read by `#[patchable]`).

use super::workspace::{LibCrate, cargo};
use crate::error::CliError;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::Stdio;

/// How the host was built: what the patch build repeats.
#[derive(Debug, Clone)]
pub struct Profile {
    /// Cargo profile (`dev` for `cargo build`, `release` for `--release`).
    pub profile: String,
    /// Whether the profile was named (else a linked build takes the host's).
    pub explicit: bool,
    pub features: Vec<String>,
    pub all_features: bool,
    pub no_default_features: bool,
}

impl Profile {
    /// As the plan shows it.
    pub fn describe(&self) -> String {
        let mut f = Vec::new();
        if self.all_features {
            f.push("all".to_owned());
        } else {
            if !self.no_default_features {
                f.push("default".to_owned());
            }
            f.extend(self.features.iter().cloned());
        }
        format!("profile {}, features: {}", self.profile, f.join(", "))
    }
}

/// Runs `cargo rustc` for `lib` with the plan file and returns the library
/// cargo built. Compiler messages go to our standard error.
pub fn build(lib: &LibCrate, profile: &Profile, plan: &Path) -> Result<PathBuf, CliError> {
    let mut cmd = cargo();
    cmd.args(["rustc", "--lib", "--crate-type", "cdylib", "--profile"])
        .arg(&profile.profile)
        .arg("--manifest-path")
        .arg(&lib.manifest)
        .args(["-p", &lib.package])
        .args(["--message-format", "json-render-diagnostics"])
        .env(super::PLAN_VAR, plan)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    if profile.all_features {
        cmd.arg("--all-features");
    }
    if profile.no_default_features {
        cmd.arg("--no-default-features");
    }
    if !profile.features.is_empty() {
        cmd.arg("--features").arg(profile.features.join(","));
    }
    let mut child = cmd
        .spawn()
        .map_err(|e| CliError::Tool(format!("cannot run cargo: {e}")))?;
    let mut built = None;
    if let Some(out) = child.stdout.take() {
        for line in BufReader::new(out).lines() {
            let Ok(line) = line else { break };
            let Ok(msg) = serde_json::from_str::<serde_json::Value>(&line) else {
                continue;
            };
            if msg["reason"] == "compiler-artifact"
                && msg["target"]["name"].as_str().map(|n| n.replace('-', "_"))
                    == Some(lib.krate.clone())
            {
                for f in msg["filenames"].as_array().into_iter().flatten() {
                    if let Some(f) = f.as_str().filter(|f| f.ends_with(".so")) {
                        built = Some(PathBuf::from(f));
                    }
                }
            }
        }
    }
    let status = child
        .wait()
        .map_err(|e| CliError::Tool(format!("cargo: {e}")))?;
    if !status.success() {
        return Err(CliError::BuildFailed(format!(
            "cargo could not build the patch of crate {} (its messages are above)",
            lib.krate
        )));
    }
    built.ok_or_else(|| {
        CliError::BuildFailed(format!(
            "cargo built crate {} but named no shared library",
            lib.krate
        ))
    })
}
