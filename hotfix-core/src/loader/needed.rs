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
use object::Endianness;
use object::elf;
use object::read::elf::{Dyn, ElfFile64, ProgramHeader};
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

/// Reads `DT_NEEDED`, `DT_RPATH` and `DT_RUNPATH` from the dynamic segment
/// (`PT_DYNAMIC`, what the dynamic loader reads, not the section headers) and
/// its string table. Refuses the entries that make the loader load other
/// libraries by other means (filters, auditors).
fn dynamic_needs(
    path: &Path,
    elf: &ElfFile64<'_, Endianness>,
    image: &Image<'_>,
) -> Result<DynamicNeeds> {
    let bad = |reason: String| Error::NotSharedObject {
        path: path.to_owned(),
        reason,
    };
    let endian = elf.endian();
    let mut out = DynamicNeeds {
        needed: Vec::new(),
        rpath: Vec::new(),
        runpath: Vec::new(),
    };
    let mut dynamic = None;
    for ph in elf.elf_program_headers() {
        if ph.p_type(endian) == elf::PT_DYNAMIC {
            if dynamic.is_some() {
                return Err(bad("two dynamic segments".into()));
            }
            dynamic = ph
                .dynamic(endian, elf.data())
                .map_err(|e| bad(format!("dynamic segment: {e}")))?;
        }
    }
    let Some(dyns) = dynamic else {
        return Ok(out);
    };
    let value = |tag: u32| {
        dyns.iter()
            .find(|d| d.tag32(endian) == Some(tag))
            .and_then(|d| d.val32(endian))
    };
    let (Some(strtab), Some(strsz)) = (value(elf::DT_STRTAB), value(elf::DT_STRSZ)) else {
        return Ok(out);
    };
    let strings = image
        .bytes(u64::from(strtab), u64::from(strsz), "dynamic string table")
        .map_err(bad)?;
    for d in dyns {
        let tag = d.tag32(endian);
        let list = match tag {
            Some(elf::DT_NULL) => break,
            Some(elf::DT_NEEDED) => &mut out.needed,
            Some(elf::DT_RPATH) => &mut out.rpath,
            Some(elf::DT_RUNPATH) => &mut out.runpath,
            Some(elf::DT_AUXILIARY | elf::DT_FILTER | elf::DT_AUDIT | elf::DT_DEPAUDIT) => {
                return Err(refuse(
                    path,
                    "(filter or auditor)",
                    "it names filter or audit libraries (DT_AUXILIARY, DT_FILTER, DT_AUDIT, DT_DEPAUDIT), which hotfix does not check".into(),
                ));
            }
            _ => continue,
        };
        let offset = d.val32(endian).unwrap_or(u32::MAX) as usize;
        let s = strings
            .get(offset..)
            .and_then(|rest| rest.split(|&b| b == 0).next().filter(|_| rest.contains(&0)))
            .ok_or_else(|| {
                bad(format!(
                    "dynamic string at offset {offset} is outside the table"
                ))
            })?;
        let s = String::from_utf8_lossy(s).into_owned();
        if tag == Some(elf::DT_NEEDED) {
            list.push(s);
        } else {
            list.extend(s.split(':').filter(|p| !p.is_empty()).map(str::to_owned));
        }
    }
    Ok(out)
}

/// Expands `$ORIGIN` (the patch's directory); refuses other tokens.
fn expand(path: &Path, library: &str, dir: &str) -> Result<PathBuf> {
    let origin = path.parent().unwrap_or(Path::new("/")).to_string_lossy();
    let expanded = dir
        .replace("${ORIGIN}", &origin)
        .replace("$ORIGIN", &origin);
    if expanded.contains('$') {
        return Err(refuse(
            path,
            library,
            format!("search path {dir:?} uses a token other than $ORIGIN"),
        ));
    }
    if !expanded.starts_with('/') {
        return Err(refuse(
            path,
            library,
            format!(
                "search path {dir:?} is relative: it would depend on the server's working directory"
            ),
        ));
    }
    Ok(PathBuf::from(expanded))
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
pub(crate) fn check(path: &Path, elf: &ElfFile64<'_, Endianness>, image: &Image<'_>) -> Result<()> {
    let needs = dynamic_needs(path, elf, image)?;
    let mut own_dirs = Vec::new();
    // DT_RPATH is searched first only when there is no DT_RUNPATH.
    let (before_env, after_env) = if needs.runpath.is_empty() {
        (&needs.rpath, &needs.runpath)
    } else {
        (&needs.runpath, &needs.rpath)
    };
    for dir in needs.rpath.iter().chain(&needs.runpath) {
        let d = expand(path, "(search path)", dir)?;
        own_dirs.push((dir.clone(), d));
    }
    let loaded: Vec<String> = crate::foreign::loaded_objects()
        .iter()
        .filter_map(|o| o.path.file_name().map(|n| n.to_string_lossy().into_owned()))
        .collect();
    let env_dirs: Vec<PathBuf> = std::env::var("LD_LIBRARY_PATH")
        .unwrap_or_default()
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
