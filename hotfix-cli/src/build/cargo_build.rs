//! The patch build itself: the fixed crate compiled by cargo as a `cdylib`,
//! with the host's profile and features, in patch mode (the plan file named
//! in `HOTFIX_PATCH_PLAN`, read by `#[patchable]`).

use super::workspace::{LibCrate, cargo};
use crate::error::CliError;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

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

/// Adds the profile's feature flags to a cargo command.
pub fn feature_args(cmd: &mut Command, profile: &Profile) {
    if profile.all_features {
        cmd.arg("--all-features");
    }
    if profile.no_default_features {
        cmd.arg("--no-default-features");
    }
    if !profile.features.is_empty() {
        cmd.arg("--features").arg(profile.features.join(","));
    }
}

/// What cargo said it built: each artifact's crate name and files.
pub struct Artifact {
    /// The target's crate name (`-` as `_`).
    pub krate: String,
    pub files: Vec<PathBuf>,
}

/// Runs a cargo build command with JSON messages (compiler messages go to
/// our standard error) and returns what it built; `what` names it in the
/// refusal when it fails.
pub fn artifacts(mut cmd: Command, what: &str) -> Result<Vec<Artifact>, CliError> {
    cmd.args(["--message-format", "json-render-diagnostics"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    let mut child = cmd
        .spawn()
        .map_err(|e| CliError::Tool(format!("cannot run cargo: {e}")))?;
    let mut out = Vec::new();
    if let Some(stdout) = child.stdout.take() {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            let Ok(msg) = serde_json::from_str::<serde_json::Value>(&line) else {
                continue;
            };
            if msg["reason"] != "compiler-artifact" {
                continue;
            }
            out.push(Artifact {
                krate: msg["target"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .replace('-', "_"),
                files: msg["filenames"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|f| f.as_str().map(PathBuf::from))
                    .collect(),
            });
        }
    }
    let status = child
        .wait()
        .map_err(|e| CliError::Tool(format!("cargo: {e}")))?;
    if !status.success() {
        return Err(CliError::BuildFailed(format!(
            "cargo could not build {what} (its messages are above)"
        )));
    }
    Ok(out)
}

/// Runs `cargo rustc` for `lib` with the plan file and returns the library
/// cargo built.
pub fn build(lib: &LibCrate, profile: &Profile, plan: &Path) -> Result<PathBuf, CliError> {
    let mut cmd = cargo();
    cmd.args(["rustc", "--lib", "--crate-type", "cdylib", "--profile"])
        .arg(&profile.profile)
        .arg("--manifest-path")
        .arg(&lib.manifest)
        .args(["-p", &lib.package])
        .env(super::PLAN_VAR, plan);
    feature_args(&mut cmd, profile);
    let what = format!("the patch of crate {}", lib.krate);
    artifacts(cmd, &what)?
        .into_iter()
        .filter(|a| a.krate == lib.krate)
        .flat_map(|a| a.files)
        .find(|f| f.extension().is_some_and(|e| e == "so"))
        .ok_or_else(|| {
            CliError::BuildFailed(format!(
                "cargo built crate {} but named no shared library",
                lib.krate
            ))
        })
}
