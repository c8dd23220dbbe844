//! `hotfix build --base REV --pid PID` (or `--host FILE`): a linked patch,
//! holding only the code that changed, made for the running host.
//!
//! 1. the host: its executable's symbols, and the profile its path tells;
//! 2. the base build: REV's crate built as the host was (profile, features,
//!    and the package selection, tried `-p PACKAGE` first, then the whole
//!    workspace), kept only if the host has its `#[patchable]` functions
//!    under the very same symbols (the symbols carry the build's hash);
//! 3. the fixed build: the working tree, the same way;
//! 4. the walk ([`select`]): from the fixed functions, what the patch
//!    carries and what it leaves to the host;
//! 5. the proof, as the host will run it, against the executable's file;
//! 6. the file ([`write`]), read back as the loader reads it.

mod builds;
mod descs;
mod diff;
mod eh_frame;
mod objects;
mod select;
mod write;

use super::review::CrateFix;
use super::workspace::{LibCrate, Repo, Workspace};
use super::{BuildArgs, Profile};
use crate::error::CliError;
use builds::Selection as CargoSelection;
use hotfix_core::linked::format::{HostBuild, Proof, Registry, Replace};
use hotfix_core::linked::host_symbols::{HostKind, HostSymbols};
use std::path::{Path, PathBuf};

/// The running host a linked patch is made for.
pub enum HostArg {
    /// A process.
    Pid(u32),
    /// An executable file.
    File(PathBuf),
}

/// What the caller worked out before the build.
pub struct Job<'a> {
    pub args: &'a BuildArgs,
    pub ws: &'a Workspace,
    pub repo: &'a Repo,
    pub base_dir: &'a Path,
    pub hotfix_dir: &'a Path,
    pub lib: &'a LibCrate,
    pub fix: &'a CrateFix,
    pub name: &'a str,
    pub version: &'a str,
    pub out: &'a Path,
}

fn demangle(name: &str) -> String {
    format!("{:#}", rustc_demangle::demangle(name))
}

fn bare(s: &str) -> String {
    s.trim_start_matches("fn ")
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect()
}

/// The executable to read, and the profile its place tells.
fn host_file(host: &HostArg) -> Result<(PathBuf, PathBuf), CliError> {
    match host {
        HostArg::Pid(pid) => {
            let link = PathBuf::from(format!("/proc/{pid}/exe"));
            let shown = std::fs::read_link(&link).map_err(|e| {
                CliError::Usage(format!("--pid {pid}: cannot read its executable: {e}"))
            })?;
            Ok((link, shown))
        }
        HostArg::File(f) => Ok((f.clone(), f.clone())),
    }
}

/// The cargo profile whose output directory holds `exe`, if it tells:
/// `debug` is `dev`, `release` is `release`; any other directory names a
/// custom profile only inside the workspace's target directory `target_dir`
/// (`target/NAME/`, `target/TRIPLE/NAME/`), never one the executable was
/// copied or installed to (`/usr/local/bin` is no profile `bin`).
fn profile_of(exe: &Path, target_dir: &Path) -> Option<String> {
    let shown = exe.to_string_lossy();
    let shown = shown.trim_end_matches(" (deleted)");
    let parent = Path::new(shown).parent()?;
    let canonical = |p: &Path| std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
    match parent.file_name()?.to_str()? {
        "debug" => Some("dev".to_owned()),
        "release" => Some("release".to_owned()),
        other if canonical(parent).starts_with(canonical(target_dir)) => Some(other.to_owned()),
        _ => None,
    }
}

/// Runs the linked build.
pub fn run(job: &Job<'_>, host_arg: &HostArg) -> Result<(), CliError> {
    let (read_path, shown) = host_file(host_arg)?;
    let host = HostSymbols::of_file(&read_path)
        .map_err(|e| CliError::BuildRefused(format!("the host executable: {e}")))?;
    let mut profile: Profile = job.args.profile.clone();
    if !profile.explicit
        && let Some(p) = profile_of(&shown, &job.ws.target_dir)
    {
        profile.profile = p;
    }
    let target_dir = job.hotfix_dir.join("linked");
    let rel = job
        .ws
        .root
        .strip_prefix(&job.repo.top)
        .unwrap_or(Path::new(""));
    let base_root = job.base_dir.join(rel);
    println!("  host    {} ({})", shown.display(), profile.describe());

    // 2. the base build, as the host was built
    let paths: Vec<String> = job.fix.fixes.iter().map(|f| bare(&f.name)).collect();
    let mut tried = Vec::new();
    let mut chosen = None;
    for sel in [
        CargoSelection::Package(job.lib.package.clone()),
        CargoSelection::Workspace,
    ] {
        let base = builds::build(
            &base_root,
            &job.lib.package,
            &job.lib.krate,
            &sel,
            &profile,
            &target_dir,
        )?;
        let descs = descs::descriptors(&base.objects);
        let missing: Vec<&descs::Desc> = descs
            .iter()
            .filter(|d| paths.contains(&bare(&d.path)))
            .filter(|d| {
                !host
                    .lookup(&d.original)
                    .iter()
                    .any(|h| h.kind == HostKind::Function)
            })
            .collect();
        let found = descs
            .iter()
            .filter(|d| paths.contains(&bare(&d.path)))
            .count();
        if found == paths.len() && missing.is_empty() {
            chosen = Some((sel, base, descs));
            break;
        }
        tried.push(sel.describe());
    }
    let Some((sel, base, base_descs)) = chosen else {
        return Err(CliError::BuildRefused(format!(
            "the host {} was not built from {} with these settings: built as `{}` with {}, the crate's #[patchable] functions have other symbols than the host's (another revision, profile, features or lockfile); name the host's profile and features (--profile, --features)",
            shown.display(),
            job.args.base,
            tried.join("` and as `"),
            profile.describe()
        )));
    };
    println!("  build   {}", sel.describe());

    // 3. the fixed build
    let fixed = builds::build(
        &job.ws.root,
        &job.lib.package,
        &job.lib.krate,
        &sel,
        &profile,
        &target_dir,
    )?;
    let fixed_descs = descs::descriptors(&fixed.objects);
    let mut replace = Vec::new();
    for f in &job.fix.fixes {
        let path = bare(&f.name);
        let find = |ds: &[descs::Desc]| ds.iter().find(|d| bare(&d.path) == path).cloned();
        let (Some(b), Some(x)) = (find(&base_descs), find(&fixed_descs)) else {
            return Err(CliError::BuildFailed(format!(
                "{path}: the builds have no #[patchable] descriptor of it"
            )));
        };
        replace.push(Replace {
            path: b.path.clone(),
            host_symbol: b.original,
            symbol: x.original,
            why: "its source changed".into(),
        });
    }

    // 4. the walk
    let imported = |n: &str| host.imports(n) || hotfix_core::linked::library_symbol(n).is_some();
    let roots: Vec<String> = replace.iter().map(|r| r.symbol.clone()).collect();
    let mut inputs = select::Inputs {
        fixed: &fixed.objects,
        base: &base.objects,
        deps: None,
        host: &host,
        imported: &imported,
    };
    let mut sel_out = select::select(&inputs, &roots);
    let deps;
    if !sel_out.missing.is_empty() {
        deps = builds::dependencies(&fixed.rlibs, &job.ws.root)?;
        inputs.deps = Some(&deps);
        sel_out = select::select(&inputs, &roots);
    }
    let mut refusals = sel_out.refusals.clone();
    for m in &sel_out.missing {
        refusals.push(format!(
            "{}: the host does not have it and no library of the build defines it",
            demangle(m)
        ));
    }
    if !refusals.is_empty() {
        return Err(CliError::BuildRefused(format!(
            "refusing to build a linked patch: {}",
            refusals.join("; ")
        )));
    }
    for key in &sel_out.carried {
        let b = match key.0 {
            select::Origin::Fixed => &fixed.objects,
            select::Origin::Dep => inputs.deps.expect("deps were loaded"),
        };
        let unit = &b.units[key.1];
        if !unit.sections[key.2].code() {
            continue;
        }
        let name = unit
            .owner(key.2)
            .map(|i| unit.symbols[i].name.as_str())
            .unwrap_or("");
        let how = if roots.iter().any(|r| r == name) {
            "slot "
        } else {
            "carry"
        };
        println!("  {how}   {:<48} {}", demangle(name), sel_out.why[key]);
    }

    // 5. the proof
    let (proof, base_bytes) = proofs(&base.objects, &replace, &sel_out.externs);
    let file = std::fs::File::open(&read_path).map_err(|e| match host_arg {
        HostArg::Pid(pid) => CliError::Usage(format!(
            "process {pid} is gone (it exited while the patch was built): {e}"
        )),
        HostArg::File(f) => CliError::Tool(format!("{}: {e}", f.display())),
    })?;
    let read = |addr: usize, out: &mut [u8]| host.read_from_file(&file, addr, out);
    hotfix_core::linked::prove::prove(&host, &read, &base_bytes, &proof).map_err(|m| {
        CliError::BuildRefused(format!(
            "the base build is not the code the host runs: function {} ({}): {}; name the revision the host was built from with --base",
            demangle(&m.symbol),
            m.symbol,
            m.reason
        ))
    })?;

    // 6. the file
    let registry = Registry {
        name: job.name.to_owned(),
        version: job.version.to_owned(),
        host: HostBuild {
            krate: job.lib.krate.clone(),
            rustc: rustc_identity(&job.ws.root)?,
            target: host_target(&job.ws.root)?,
            profile: profile.profile.clone(),
            cargo: sel.describe(),
            base: job.repo.commit.clone(),
        },
        replace,
        proof,
    };
    let bytes = write::write(&inputs, &sel_out, &registry, base_bytes)
        .map_err(|e| CliError::BuildFailed(format!("writing the patch: {e}")))?;
    hotfix_core::linked::check_file(&bytes).map_err(|e| {
        CliError::BuildFailed(format!(
            "the written patch does not read back: {e} (report this)"
        ))
    })?;
    if let Some(dir) = job.out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .map_err(|e| CliError::Tool(format!("{}: {e}", dir.display())))?;
    }
    std::fs::write(job.out, &bytes)
        .map_err(|e| CliError::Tool(format!("{}: {e}", job.out.display())))?;
    println!(
        "built {} ({} bytes) sha256 {}",
        job.out.display(),
        bytes.len(),
        hotfix_core::Digest::of(&bytes)
    );
    Ok(())
}

/// The base build's bytes of every replaced function and of every function
/// of the crate the patch leaves to the host.
fn proofs(
    base: &objects::Build,
    replace: &[Replace],
    externs: &std::collections::BTreeSet<String>,
) -> (Vec<Proof>, Vec<u8>) {
    let mut out = Vec::new();
    let mut bytes = Vec::new();
    let names = replace.iter().map(|r| &r.host_symbol).chain(externs.iter());
    let mut seen = std::collections::HashSet::new();
    for n in names {
        if !seen.insert(n.clone()) {
            continue;
        }
        let Some(&(u, s)) = base.defined.get(n) else {
            continue;
        };
        let unit = &base.units[u];
        let sym = &unit.symbols[s];
        let Some(sec) = sym.section.map(|i| &unit.sections[i]) else {
            continue;
        };
        if !sec.code() || sym.size == 0 {
            continue;
        }
        let (from, to) = (sym.value as usize, (sym.value + sym.size) as usize);
        let Some(code) = sec.data.get(from..to) else {
            continue;
        };
        let relocs = sec
            .relocs
            .iter()
            .filter(|r| r.offset >= sym.value && r.offset < sym.value + sym.size)
            .map(|r| (r.offset - sym.value, r.r_type))
            .collect();
        out.push(Proof {
            symbol: n.clone(),
            offset: bytes.len() as u64,
            size: sym.size,
            relocs,
        });
        bytes.extend_from_slice(code);
    }
    (out, bytes)
}

fn rustc_vv(root: &Path) -> Result<String, CliError> {
    let mut c =
        std::process::Command::new(std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into()));
    c.arg("-vV").current_dir(root);
    Ok(String::from_utf8_lossy(&super::workspace::output(c, "rustc -vV")?).into_owned())
}

fn rustc_identity(root: &Path) -> Result<String, CliError> {
    Ok(hotfix_core::linked::format::rustc_identity(&rustc_vv(
        root,
    )?))
}

fn host_target(root: &Path) -> Result<String, CliError> {
    let vv = rustc_vv(root)?;
    vv.lines()
        .find_map(|l| l.strip_prefix("host: "))
        .map(str::to_owned)
        .ok_or_else(|| CliError::Tool("rustc -vV names no host target".into()))
}

#[cfg(test)]
mod tests {
    use super::profile_of;
    use std::path::Path;

    #[test]
    fn the_profile_is_read_from_a_cargo_output_directory_only() {
        let target = Path::new("/nonexistent/ws/target");
        let of = |exe: &str| profile_of(Path::new(exe), target);
        assert_eq!(
            of("/nonexistent/ws/target/debug/app").as_deref(),
            Some("dev")
        );
        assert_eq!(
            of("/nonexistent/ws/target/release/app (deleted)").as_deref(),
            Some("release")
        );
        assert_eq!(of("/elsewhere/debug/app").as_deref(), Some("dev"));
        assert_eq!(
            of("/nonexistent/ws/target/fast/app").as_deref(),
            Some("fast")
        );
        assert_eq!(
            of("/nonexistent/ws/target/x86_64-unknown-linux-gnu/fast/app").as_deref(),
            Some("fast")
        );
        assert_eq!(of("/usr/local/bin/app"), None);
        assert_eq!(of("/tmp/hotfix-copy/app (deleted)"), None);
        assert_eq!(of("app"), None);
    }
}
