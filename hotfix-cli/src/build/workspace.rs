//! The host's workspace as cargo and git describe it: its packages and their
//! library crates, its target directory, the base revision's files.

use crate::error::CliError;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// One package's library crate.
pub struct LibCrate {
    /// The package name (`demo-server`).
    pub package: String,
    pub version: String,
    /// The crate name (`demo_server`).
    pub krate: String,
    /// The crate's root file (`.../src/lib.rs`).
    pub root: PathBuf,
    pub manifest: PathBuf,
}

/// The workspace.
pub struct Workspace {
    pub root: PathBuf,
    pub target_dir: PathBuf,
    pub libs: Vec<LibCrate>,
    /// Every package's directory (libraries or not).
    pub package_dirs: Vec<PathBuf>,
}

/// The `cargo` to run: the one that runs us, else `cargo` from `PATH`.
pub fn cargo() -> Command {
    Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
}

/// Runs `cmd` and returns its standard output, or a usage error naming `what`.
pub fn output(mut cmd: Command, what: &str) -> Result<Vec<u8>, CliError> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|e| CliError::Tool(format!("{what}: cannot run: {e}")))?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        return Err(CliError::Tool(format!("{what} failed: {}", err.trim())));
    }
    Ok(out.stdout)
}

impl Workspace {
    /// Reads the workspace with `cargo metadata` (from `manifest`, or the
    /// current directory).
    pub fn read(manifest: Option<&Path>) -> Result<Self, CliError> {
        let mut cmd = cargo();
        cmd.args(["metadata", "--format-version", "1", "--no-deps"]);
        if let Some(m) = manifest {
            cmd.arg("--manifest-path").arg(m);
        }
        let out = output(cmd, "cargo metadata")?;
        let meta: serde_json::Value = serde_json::from_slice(&out)
            .map_err(|e| CliError::Tool(format!("cargo metadata: not JSON: {e}")))?;
        let path = |v: &serde_json::Value| v.as_str().map(PathBuf::from);
        let root = path(&meta["workspace_root"])
            .ok_or_else(|| CliError::Tool("cargo metadata: no workspace_root".into()))?;
        let target_dir = path(&meta["target_directory"])
            .ok_or_else(|| CliError::Tool("cargo metadata: no target_directory".into()))?;
        let mut libs = Vec::new();
        let mut package_dirs = Vec::new();
        for p in meta["packages"].as_array().into_iter().flatten() {
            let Some(manifest) = path(&p["manifest_path"]) else {
                continue;
            };
            let dir = manifest.parent().unwrap_or(&root).to_owned();
            package_dirs.push(dir.clone());
            for t in p["targets"].as_array().into_iter().flatten() {
                let is_lib = t["kind"]
                    .as_array()
                    .is_some_and(|k| k.iter().any(|k| k == "lib" || k == "rlib"));
                if let (true, Some(name), Some(src)) =
                    (is_lib, t["name"].as_str(), path(&t["src_path"]))
                {
                    libs.push(LibCrate {
                        package: p["name"].as_str().unwrap_or_default().to_owned(),
                        version: p["version"].as_str().unwrap_or_default().to_owned(),
                        krate: name.replace('-', "_"),
                        root: src,
                        manifest: manifest.clone(),
                    });
                }
            }
        }
        Ok(Self {
            root,
            target_dir,
            libs,
            package_dirs,
        })
    }
}

/// The git repository holding the workspace, and the base revision.
pub struct Repo {
    /// The repository's top directory.
    pub top: PathBuf,
    /// The base revision as a full commit id.
    pub commit: String,
}

fn git(top: &Path) -> Command {
    let mut c = Command::new("git");
    c.arg("-C").arg(top);
    c
}

fn text(bytes: Vec<u8>) -> String {
    String::from_utf8_lossy(&bytes).trim().to_owned()
}

impl Repo {
    /// The repository of `dir` and the commit `rev` names.
    pub fn open(dir: &Path, rev: &str) -> Result<Self, CliError> {
        let mut c = git(dir);
        c.args(["rev-parse", "--show-toplevel"]);
        let top = PathBuf::from(text(output(c, "git rev-parse --show-toplevel").map_err(
            |e| {
                CliError::Usage(format!(
                    "{} is not in a git repository ({e})",
                    dir.display()
                ))
            },
        )?));
        if rev.starts_with('-') {
            return Err(CliError::Usage(format!("`{rev}` is not a revision")));
        }
        let mut c = git(&top);
        c.args(["rev-parse", "--verify", "--quiet", "--end-of-options"])
            .arg(format!("{rev}^{{commit}}"));
        let commit = text(output(c, "git rev-parse").map_err(|_| {
            CliError::Usage(format!(
                "--base {rev}: no such commit in {} (name the revision the running host was built from)",
                top.display()
            ))
        })?);
        Ok(Self { top, commit })
    }

    /// The files of the base commit, under `dir/<commit>` (made once, then
    /// reused).
    pub fn checkout_base(&self, dir: &Path) -> Result<PathBuf, CliError> {
        let dest = dir.join(&self.commit);
        if dest.join(".hotfix-complete").is_file() {
            return Ok(dest);
        }
        let tmp = dir.join(format!("{}.tmp-{}", self.commit, std::process::id()));
        let io = |e: std::io::Error| CliError::Tool(format!("{}: {e}", tmp.display()));
        let _ = std::fs::remove_dir_all(&tmp);
        std::fs::create_dir_all(&tmp).map_err(io)?;
        let index = tmp.join(".hotfix-index");
        let mut c = git(&self.top);
        c.env("GIT_INDEX_FILE", &index)
            .args(["read-tree", "--end-of-options", &self.commit]);
        output(c, "git read-tree")?;
        let mut c = git(&self.top);
        let prefix = format!("{}/", tmp.display());
        c.env("GIT_INDEX_FILE", &index)
            .args(["checkout-index", "--all", "--force"])
            .arg(format!("--prefix={prefix}"));
        output(c, "git checkout-index")?;
        std::fs::remove_file(&index).map_err(io)?;
        std::fs::write(tmp.join(".hotfix-complete"), &self.commit).map_err(io)?;
        let _ = std::fs::remove_dir_all(&dest);
        std::fs::rename(&tmp, &dest).map_err(io)?;
        Ok(dest)
    }

    /// Files that differ between the base commit and the working tree
    /// (staged, unstaged and untracked), relative to the repository's top.
    pub fn changed_files(&self) -> Result<Vec<PathBuf>, CliError> {
        let mut c = git(&self.top);
        c.args([
            "diff",
            "--name-only",
            "--no-renames",
            "-z",
            "--end-of-options",
            &self.commit,
            "--",
        ]);
        let mut files = split_z(output(c, "git diff")?);
        let mut c = git(&self.top);
        c.args(["ls-files", "--others", "--exclude-standard", "-z"]);
        files.extend(split_z(output(c, "git ls-files")?));
        files.sort();
        files.dedup();
        Ok(files)
    }
}

fn split_z(bytes: Vec<u8>) -> Vec<PathBuf> {
    bytes
        .split(|b| *b == 0)
        .filter(|s| !s.is_empty())
        .map(|s| PathBuf::from(String::from_utf8_lossy(s).into_owned()))
        .collect()
}
