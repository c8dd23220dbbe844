//! Which changes between the base revision and the working tree a patch can
//! carry: per library crate of the workspace (`hotfix_source::changes`), and
//! for every other changed file.

use super::workspace::{LibCrate, Repo, Workspace};
use crate::error::CliError;
use hotfix_source::changes::{Fix, classify};
use hotfix_source::units::Units;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// What the review found.
#[derive(Default)]
pub struct Review {
    /// Crates with replacements, each with its fixes and additions.
    pub crates: Vec<CrateFix>,
    /// One line per refused change: `file:line: what; what to do`.
    pub refusals: Vec<String>,
}

/// The fixes of one crate.
pub struct CrateFix {
    /// Index into [`Workspace::libs`].
    pub lib: usize,
    pub fixes: Vec<Fix>,
    pub added: Vec<String>,
    /// The base revision's root file of the crate.
    pub base_root: PathBuf,
    /// Digest of the fixed bodies and additions (the patch's version suffix).
    pub digest: String,
}

/// Reviews every library crate of `ws` and every changed file.
pub fn review(
    ws: &Workspace,
    repo: &Repo,
    base_dir: &Path,
    changed: &[PathBuf],
) -> Result<Review, CliError> {
    let mut out = Review::default();
    let mut covered = BTreeSet::new();
    let shown = |p: &Path| -> PathBuf {
        p.strip_prefix(base_dir)
            .or_else(|_| p.strip_prefix(&repo.top))
            .map(Path::to_owned)
            .unwrap_or_else(|_| p.to_owned())
    };
    for (index, lib) in ws.libs.iter().enumerate() {
        let rel = lib.root.strip_prefix(&repo.top).map_err(|_| {
            CliError::Usage(format!(
                "crate {} ({}) is outside the git repository {}",
                lib.krate,
                lib.root.display(),
                repo.top.display()
            ))
        })?;
        let base_root = base_dir.join(rel);
        let work = read_units(&lib.root, lib)?;
        let base = if base_root.is_file() {
            read_units(&base_root, lib)?
        } else {
            Units::default()
        };
        let files: BTreeSet<PathBuf> = work
            .map
            .values()
            .chain(base.map.values())
            .map(|u| shown(&u.file))
            .collect();
        if !work.has_patchable() && !base.has_patchable() {
            for f in changed.iter().filter(|f| files.contains(*f)) {
                out.refusals.push(format!(
                    "{}: crate {} changed, but it has no #[patchable] functions: a patch cannot \
                     carry changes to it; revert them (or make the functions to fix \
                     #[patchable] in a new release)",
                    f.display(),
                    lib.krate
                ));
            }
        } else {
            let c = classify(&base, &work);
            out.refusals.extend(c.refusals.iter().map(|r| {
                let mut r = r.clone();
                r.file = shown(&r.file);
                r.to_string()
            }));
            if !c.fixes.is_empty() {
                out.crates.push(CrateFix {
                    lib: index,
                    digest: c.fix_digest(&work),
                    fixes: c.fixes,
                    added: c.added,
                    base_root,
                });
            }
        }
        covered.extend(files);
    }
    for f in changed {
        if covered.contains(f) || ignored(ws, repo, f) {
            continue;
        }
        if f.extension().is_some_and(|e| e == "rs") {
            out.refusals.push(format!(
                "{}: changed, and it is no module of a library crate (a binary, a build \
                 script, or a file no `mod` names): a patch carries only library code; revert \
                 it (patchable code belongs in the package's library, see the README)",
                f.display()
            ));
            continue;
        }
        out.refusals.push(format!(
            "{}: changed, and a patch is built only from the Rust source of #[patchable] \
             crates; revert it (a change to a manifest, lockfile, build script, toolchain or \
             non-Rust source needs a new release of the host)",
            f.display()
        ));
    }
    Ok(out)
}

fn read_units(root: &Path, lib: &LibCrate) -> Result<Units, CliError> {
    Units::walk(root, &lib.krate).map_err(|why| {
        CliError::Tool(format!(
            "cannot read the source of crate {} at {}: {why}",
            lib.krate,
            root.display()
        ))
    })
}

/// Changed files that cannot reach the host's build: documentation, and the
/// tests, benches and examples of packages, and anything outside packages
/// except the workspace's build settings.
fn ignored(ws: &Workspace, repo: &Repo, rel: &Path) -> bool {
    let abs = repo.top.join(rel);
    if rel.extension().is_some_and(|e| e == "md") {
        return true;
    }
    let settings = [
        "Cargo.toml",
        "Cargo.lock",
        "rust-toolchain",
        "rust-toolchain.toml",
    ];
    if let Ok(in_ws) = abs.strip_prefix(&ws.root)
        && (settings.iter().any(|s| in_ws == Path::new(s)) || in_ws.starts_with(".cargo"))
    {
        return false;
    }
    let Some(pkg) = ws
        .package_dirs
        .iter()
        .filter(|d| abs.starts_with(d))
        .max_by_key(|d| d.components().count())
    else {
        return true;
    };
    let inner = abs.strip_prefix(pkg).unwrap_or(&abs);
    ["tests", "benches", "examples"]
        .iter()
        .any(|d| inner.starts_with(d))
}
