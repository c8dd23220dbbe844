//! `hotfix build --base REV`: a patch made from the fix written in place in
//! the host's own source. The changes since REV are reviewed (only new bodies
//! of `#[patchable]` functions, and new private items they use, can be
//! patched); the crate is compiled from the fixed source as a patch library
//! that carries REV's identity, so the running host proves it was made
//! against the source it runs.

mod cargo_build;
mod linked;
mod review;
mod workspace;

pub use cargo_build::Profile;
pub use linked::HostArg;

use crate::error::CliError;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// The environment variable `#[patchable]` reads the plan from.
const PLAN_VAR: &str = "HOTFIX_PATCH_PLAN";

/// What `hotfix build` was asked.
pub struct BuildArgs {
    pub base: String,
    pub package: Option<String>,
    /// The host a linked patch is made for; `None`: a patch library.
    pub host: Option<HostArg>,
    pub profile: Profile,
    pub manifest_path: Option<PathBuf>,
    pub out: Option<PathBuf>,
    pub name: Option<String>,
    pub dry_run: bool,
}

/// Runs `hotfix build`.
pub fn run(args: &BuildArgs) -> Result<(), CliError> {
    let ws = workspace::Workspace::read(args.manifest_path.as_deref())?;
    let repo = workspace::Repo::open(&ws.root, &args.base)?;
    let hotfix_dir = ws.target_dir.join("hotfix");
    let base_dir = repo.checkout_base(&hotfix_dir.join("base"))?;
    let changed = repo.changed_files()?;
    let review = review::review(&ws, &repo, &base_dir, &changed)?;
    let short = &repo.commit[..repo.commit.len().min(10)];
    if !review.refusals.is_empty() {
        let mut text = format!(
            "refusing to build a patch against {} ({short}): {} change(s) a patch cannot carry:",
            args.base,
            review.refusals.len()
        );
        for r in &review.refusals {
            let _ = write!(text, "\n  {r}");
        }
        return Err(CliError::BuildRefused(text));
    }
    let fix = pick(&ws, &review, args)?;
    let lib = &ws.libs[fix.lib];
    let ext = if args.host.is_some() { "hotfix" } else { "so" };
    let out = match &args.out {
        Some(o) => o.clone(),
        None => hotfix_dir.join(format!("{}-{short}.{ext}", lib.krate)),
    };
    let name = args
        .name
        .clone()
        .unwrap_or_else(|| format!("{}-fix-{short}", lib.package));

    // The version tells two fixes against one base apart.
    let version = format!("{}+fix.{}", lib.version, &fix.digest[..8]);
    println!(
        "patch {name} {version} of crate {} against {} ({short})",
        lib.krate, args.base
    );
    for f in &fix.fixes {
        let file = f.file.strip_prefix(&repo.top).unwrap_or(&f.file);
        println!(
            "  replace {:<40} {}:{}",
            f.name.trim_start_matches("fn "),
            file.display(),
            f.line
        );
    }
    for a in &fix.added {
        println!("  add     {a}");
    }
    if args.host.is_none() {
        println!("  build   {}", args.profile.describe());
    }
    println!("  output  {}", out.display());
    if args.dry_run {
        println!("dry run: nothing built");
        return Ok(());
    }
    if let Some(host) = &args.host {
        let _lock = lock(&hotfix_dir.join("plan"), &lib.krate)?;
        let job = linked::Job {
            args,
            ws: &ws,
            repo: &repo,
            base_dir: &base_dir,
            hotfix_dir: &hotfix_dir,
            lib,
            fix,
            name: &name,
            version: &version,
            out: &out,
        };
        return linked::run(&job, host);
    }

    // One build of a crate at a time: the plan file is the crate's.
    let _lock = lock(&hotfix_dir.join("plan"), &lib.krate)?;
    let plan = write_plan(&hotfix_dir, lib, fix, &name, &version)?;
    let built = cargo_build::build(lib, &args.profile, &plan)?;
    if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .map_err(|e| CliError::Tool(format!("{}: {e}", dir.display())))?;
    }
    std::fs::copy(&built, &out).map_err(|e| {
        CliError::Tool(format!(
            "copy {} to {}: {e}",
            built.display(),
            out.display()
        ))
    })?;
    verify(&out, fix)?;
    let bytes =
        std::fs::read(&out).map_err(|e| CliError::Tool(format!("{}: {e}", out.display())))?;
    println!(
        "built {} sha256 {}",
        out.display(),
        hotfix_core::Digest::of(&bytes)
    );
    Ok(())
}

/// Reads the built patch as the loader does and checks that it replaces
/// exactly the planned functions; removes it otherwise.
fn verify(out: &Path, fix: &review::CrateFix) -> Result<(), CliError> {
    let info = hotfix_core::inspect(out).map_err(|e| {
        let _ = std::fs::remove_file(out);
        CliError::BuildFailed(format!("the built patch is refused: {e}"))
    })?;
    if let Some(why) = &info.unreadable {
        println!("  (targets not verified: {why}; `hotfix check` lists them against the host)");
        return Ok(());
    }
    let bare = |s: &str| s.chars().filter(|c| !c.is_whitespace()).collect::<String>();
    let mut got: Vec<String> = info.targets.iter().map(|t| bare(&t.path)).collect();
    let mut want: Vec<String> = fix
        .fixes
        .iter()
        .map(|f| bare(f.name.trim_start_matches("fn ")))
        .collect();
    got.sort();
    want.sort();
    if got != want {
        let _ = std::fs::remove_file(out);
        return Err(CliError::BuildFailed(format!(
            "the built patch replaces [{}], not the planned [{}]; nothing was written (report \
             this: #[patchable] did not see the plan as `hotfix build` wrote it)",
            got.join(", "),
            want.join(", ")
        )));
    }
    Ok(())
}

/// Holds an exclusive lock on `<dir>/<krate>.lock` while alive.
struct Lock {
    _file: std::fs::File,
}

fn lock(dir: &Path, krate: &str) -> Result<Lock, CliError> {
    use std::os::fd::AsRawFd;
    std::fs::create_dir_all(dir).map_err(|e| CliError::Tool(format!("{}: {e}", dir.display())))?;
    let path = dir.join(format!("{krate}.lock"));
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| CliError::Tool(format!("{}: {e}", path.display())))?;
    // SAFETY: flock on a descriptor this function owns; the lock is released
    // when the file is closed (the Lock is dropped).
    let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) };
    if rc != 0 {
        return Err(CliError::Tool(format!(
            "lock {}: {}",
            path.display(),
            std::io::Error::last_os_error()
        )));
    }
    Ok(Lock { _file: file })
}

/// The one crate the patch is made of.
fn pick<'r>(
    ws: &workspace::Workspace,
    review: &'r review::Review,
    args: &BuildArgs,
) -> Result<&'r review::CrateFix, CliError> {
    let names: Vec<&str> = review
        .crates
        .iter()
        .map(|c| ws.libs[c.lib].package.as_str())
        .collect();
    if let Some(p) = &args.package
        && !names.contains(&p.as_str())
    {
        return Err(CliError::BuildRefused(format!(
            "package {p} has no changed #[patchable] function since {} (changed: {})",
            args.base,
            if names.is_empty() {
                "none".to_owned()
            } else {
                names.join(", ")
            }
        )));
    }
    match review.crates.as_slice() {
        [] => Err(CliError::BuildRefused(format!(
            "nothing to patch: no body of a #[patchable] function differs from {}; write the \
             fix in the working tree first",
            args.base
        ))),
        [one] => Ok(one),
        _ => Err(CliError::BuildRefused(format!(
            "fixes in several crates ({}): a patch is made of one crate; fix one crate per \
             patch (commit or stash the others)",
            names.join(", ")
        ))),
    }
}

/// Writes the plan `#[patchable]` reads in patch mode.
fn write_plan(
    dir: &Path,
    lib: &workspace::LibCrate,
    fix: &review::CrateFix,
    name: &str,
    version: &str,
) -> Result<PathBuf, CliError> {
    let abs = |p: &Path| std::fs::canonicalize(p).unwrap_or_else(|_| p.to_owned());
    let tab_free = |s: &str, what: &str| {
        if s.contains(['\t', '\n']) {
            Err(CliError::Usage(format!(
                "{what} `{s}` holds a tab or newline"
            )))
        } else {
            Ok(s.to_owned())
        }
    };
    let mut text = String::from("hotfix-plan\t1\n");
    let mut line = |k: &str, v: &str| {
        text.push_str(k);
        text.push('\t');
        text.push_str(v);
        text.push('\n');
    };
    line("name", &tab_free(name, "patch name")?);
    line("version", version);
    line("crate", &lib.krate);
    let path = |p: &Path| tab_free(&abs(p).display().to_string(), "path");
    line("base-root", &path(&fix.base_root)?);
    line("work-root", &path(&lib.root)?);
    for f in &fix.fixes {
        line("fix", &format!("{}\t{}", f.line, path(&f.file)?));
    }
    let plan_dir = dir.join("plan");
    std::fs::create_dir_all(&plan_dir)
        .map_err(|e| CliError::Tool(format!("{}: {e}", plan_dir.display())))?;
    let file = plan_dir.join(format!("{}.plan", lib.krate));
    // Written only when it changes: cargo rebuilds when its time does.
    if std::fs::read_to_string(&file).ok().as_deref() != Some(text.as_str()) {
        std::fs::write(&file, &text)
            .map_err(|e| CliError::Tool(format!("{}: {e}", file.display())))?;
    }
    Ok(file)
}
