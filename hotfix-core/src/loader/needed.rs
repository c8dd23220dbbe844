//! The libraries a patch makes the dynamic loader load (`DT_NEEDED`), and the
//! directories it makes it search (`DT_RPATH`, `DT_RUNPATH`), checked like the
//! patch file itself before `dlopen`: `dlopen` would load them, running their
//! constructors, with none of the checks made on the patch.
//!
//! A needed library already loaded in the process is not loaded again and is
//! accepted. Any other is looked up where the loader would look (the patch's
//! search paths, `LD_LIBRARY_PATH`, the system directories), and the file found
//! and its directory must be owned by this user or root and writable by their
//! owner only. Every search directory the patch names must pass the same check,
//! so nobody else can place a library there later.

use super::file_check::check_mode;
use super::image::Image;
use crate::error::{Error, Result};
use object::elf;
use std::fs;
use std::path::{Path, PathBuf};

/// Directories the loader searches after the patch's own.
const SYSTEM_DIRS: &[&str] = &[
    "/lib/x86_64-linux-gnu",
    "/usr/lib/x86_64-linux-gnu",
    "/lib64",
    "/usr/lib64",
    "/lib",
    "/usr/lib",
];

fn refuse(path: &Path, library: &str, reason: String) -> Error {
    Error::UnsafeDependency {
        path: path.to_owned(),
        library: library.to_owned(),
        reason,
    }
}

/// What the dynamic section asks of the loader.
struct DynamicNeeds {
    needed: Vec<String>,
    rpath: Vec<String>,
    runpath: Vec<String>,
}

/// Reads `DT_NEEDED`, `DT_RPATH` and `DT_RUNPATH` from the dynamic array as
/// the loader reads it ([`Image`]: `PT_DYNAMIC` at its address; filters and
/// auditors were refused there).
fn dynamic_needs(path: &Path, image: &Image<'_>) -> Result<DynamicNeeds> {
    let bad = |reason: String| Error::NotSharedObject {
        path: path.to_owned(),
        reason,
    };
    let string = |offset: u64| {
        image
            .dynamic_string(offset)
            .map(|s| String::from_utf8_lossy(s).into_owned())
            .map_err(bad)
    };
    let paths = |tag: u32| -> Result<Vec<String>> {
        let mut out = Vec::new();
        for v in image.dynamic_values(tag) {
            out.extend(
                string(v)?
                    .split(':')
                    .filter(|p| !p.is_empty())
                    .map(str::to_owned),
            );
        }
        Ok(out)
    };
    Ok(DynamicNeeds {
        needed: image
            .dynamic_values(elf::DT_NEEDED)
            .map(string)
            .collect::<Result<_>>()?,
        rpath: paths(elf::DT_RPATH)?,
        runpath: paths(elf::DT_RUNPATH)?,
    })
}

/// Refuses `$ORIGIN` and other tokens: the patch is loaded from a sealed
/// in-memory copy, where the loader's `$ORIGIN` is not the patch's directory.
fn expand(path: &Path, dir: &str) -> Result<PathBuf> {
    if dir.contains('$') {
        return Err(refuse(
            path,
            &format!("(search path {dir})"),
            "it uses $ORIGIN or another token, which names no directory for a patch loaded from a sealed in-memory copy; give an absolute path".into(),
        ));
    }
    if !dir.starts_with('/') {
        return Err(refuse(
            path,
            &format!("(search path {dir})"),
            "it is relative: it would depend on the server's working directory".into(),
        ));
    }
    Ok(PathBuf::from(dir))
}

/// Checks a directory the loader would search, if it exists.
fn check_dir(path: &Path, library: &str, dir: &Path) -> Result<()> {
    match fs::metadata(dir) {
        Ok(meta) => check_mode(dir, &meta, "search directory").map_err(|e| match e {
            Error::Insecure { reason, .. } => refuse(path, library, reason),
            other => other,
        }),
        Err(_) => Ok(()),
    }
}

/// Checks every `DT_NEEDED` library and search directory of the patch at
/// `path`. Nothing is loaded.
pub(crate) fn check(path: &Path, image: &Image<'_>) -> Result<()> {
    let needs = dynamic_needs(path, image)?;
    let mut own_dirs = Vec::new();
    // DT_RPATH is searched first only when there is no DT_RUNPATH.
    let (before_env, after_env) = if needs.runpath.is_empty() {
        (&needs.rpath, &needs.runpath)
    } else {
        (&needs.runpath, &needs.rpath)
    };
    for dir in needs.rpath.iter().chain(&needs.runpath) {
        let d = expand(path, dir)?;
        own_dirs.push((dir.clone(), d));
    }
    let loaded: Vec<String> = crate::foreign::loaded_objects()
        .iter()
        .filter_map(|o| o.path.file_name().map(|n| n.to_string_lossy().into_owned()))
        .collect();
    let env = std::env::var("LD_LIBRARY_PATH").unwrap_or_default();
    // An empty or relative entry is searched relative to the working
    // directory: not a place a check can vouch for.
    let env_relative = !env.is_empty() && env.split(':').any(|p| !p.starts_with('/'));
    let env_dirs: Vec<PathBuf> = env
        .split(':')
        .filter(|p| p.starts_with('/'))
        .map(PathBuf::from)
        .collect();
    for library in &needs.needed {
        if library.contains('/') {
            check_file(path, library, Path::new(library))?;
            continue;
        }
        if loaded.iter().any(|l| l == library) {
            continue;
        }
        if env_relative {
            return Err(refuse(
                path,
                library,
                "LD_LIBRARY_PATH has an empty or relative entry, so the loader would search the working directory".into(),
            ));
        }
        let dirs = own_dirs
            .iter()
            .filter(|(raw, _)| before_env.contains(raw))
            .map(|(_, d)| d.clone())
            .chain(env_dirs.iter().cloned())
            .chain(
                own_dirs
                    .iter()
                    .filter(|(raw, _)| after_env.contains(raw) && !before_env.contains(raw))
                    .map(|(_, d)| d.clone()),
            )
            .chain(SYSTEM_DIRS.iter().map(PathBuf::from));
        let mut found = false;
        for dir in dirs {
            let candidate = dir.join(library);
            if candidate.exists() {
                check_dir(path, library, &dir)?;
                check_file(path, library, &candidate)?;
                found = true;
                break;
            }
        }
        if !found {
            return Err(refuse(
                path,
                library,
                "it is not loaded in this process and was not found where the loader would search"
                    .into(),
            ));
        }
    }
    // Every search path the patch names must be safe too: nobody else may
    // place a library there for a later load to find.
    for (raw, dir) in &own_dirs {
        check_dir(path, &format!("(search path {raw})"), dir)?;
    }
    Ok(())
}

/// Checks a library file and its directory as the patch file is checked.
fn check_file(path: &Path, library: &str, file: &Path) -> Result<()> {
    let meta = fs::metadata(file)
        .map_err(|e| refuse(path, library, format!("{}: {e}", file.display())))?;
    let as_refusal = |e: Error| match e {
        Error::Insecure { reason, .. } => refuse(path, library, reason),
        other => other,
    };
    check_mode(file, &meta, "the library").map_err(as_refusal)?;
    if let Some(dir) = file.parent() {
        check_dir(path, library, dir)?;
    }
    Ok(())
}
