//! The version of a dependency, from the file cargo handed the compiler: the
//! dependency's dep-info (`name-HASH.d`, written beside `libname-HASH.rlib`)
//! names its source files, and the `Cargo.toml` above them its version. The
//! set of its source files, relative to its package, tells most feature
//! differences too (features compile modules in or out): it is hashed beside
//! the version.

use std::path::{Path, PathBuf};

/// Longest dep-info or manifest read, in bytes.
const MAX_FILE: u64 = 16 * 1024 * 1024;
/// Directories walked up from a source file to its manifest.
const MAX_UP: usize = 16;

/// `version` of the package that built `artifact`, or why it is not known.
pub fn version(artifact: &Path) -> String {
    match try_version(artifact) {
        Ok(v) => v,
        Err(why) => format!("unknown ({why})"),
    }
}

/// The source files of the crate that built `artifact` (`libname-HASH.rlib`),
/// from its dep-info (`name-HASH.d` beside it), the crate root first.
fn dep_info_sources(artifact: &Path) -> Option<Vec<PathBuf>> {
    let stem = artifact.file_stem()?.to_str()?;
    let stem = stem.strip_prefix("lib").unwrap_or(stem);
    let text = super::read_bounded(&artifact.with_file_name(format!("{stem}.d")), MAX_FILE)?;
    Some(sources(&text))
}

fn try_version(artifact: &Path) -> Result<String, String> {
    let sources = dep_info_sources(artifact).ok_or("no dep-info")?;
    let first = sources.first().ok_or("an empty dep-info")?;
    let mut dir = first.parent();
    for _ in 0..MAX_UP {
        let Some(d) = dir else { break };
        let manifest = d.join("Cargo.toml");
        if let Some(text) = super::read_bounded(&manifest, MAX_FILE) {
            let version = package_version(&text, d)?;
            let mut files: Vec<String> = sources
                .iter()
                .filter_map(|s| s.strip_prefix(d).ok())
                .map(|s| s.display().to_string())
                .collect();
            files.sort();
            files.dedup();
            let digest = hotfix_source::digest::short_digest(files.join("\n").as_bytes());
            return Ok(format!("{version} (sources {digest})"));
        }
        dir = d.parent();
    }
    Err("no Cargo.toml above its sources".into())
}

/// The root source file of the crate that built `artifact`, when its sources
/// are local (not in cargo's registry or git checkouts).
pub fn local_root(artifact: &Path) -> Option<PathBuf> {
    let root = dep_info_sources(artifact)?.into_iter().next()?;
    let shown = root.display().to_string();
    let remote = shown.contains("/registry/src/") || shown.contains("/git/checkouts/");
    (!remote && root.extension().is_some_and(|e| e == "rs")).then_some(root)
}

/// The prerequisites of the first make rule (`out: src1 src2`), unescaped.
fn sources(dep_info: &str) -> Vec<PathBuf> {
    let Some((_, deps)) = dep_info
        .lines()
        .find(|l| l.contains(": "))
        .and_then(|rule| rule.split_once(": "))
    else {
        return Vec::new();
    };
    let mut out = Vec::new();
    let mut path = String::new();
    let mut chars = deps.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => path.extend(chars.next()),
            ' ' => {
                if !path.is_empty() {
                    out.push(PathBuf::from(std::mem::take(&mut path)));
                }
            }
            c => path.push(c),
        }
    }
    if !path.is_empty() {
        out.push(PathBuf::from(path));
    }
    out
}

/// `[package] version` of a manifest; `version.workspace = true` is looked up
/// in the `[workspace.package]` of a manifest above `dir`.
fn package_version(manifest: &str, dir: &Path) -> Result<String, String> {
    match section_value(manifest, "[package]", "version") {
        Some(v) if v.starts_with('"') => Ok(v.trim_matches('"').to_owned()),
        Some(_) => {
            let mut up = Some(dir);
            for _ in 0..MAX_UP {
                let Some(d) = up else { break };
                if let Some(text) = super::read_bounded(&d.join("Cargo.toml"), MAX_FILE)
                    && let Some(v) = section_value(&text, "[workspace.package]", "version")
                {
                    return Ok(v.trim_matches('"').to_owned());
                }
                up = d.parent();
            }
            Err("a workspace version with no workspace above".into())
        }
        None => Err("no [package] version".into()),
    }
}

/// The value of `key = value` (or `key.workspace = true`) in `section`.
fn section_value(manifest: &str, section: &str, key: &str) -> Option<String> {
    let mut inside = false;
    for line in manifest.lines().map(str::trim) {
        if line.starts_with('[') {
            inside = line == section;
            continue;
        }
        if !inside {
            continue;
        }
        let Some((k, v)) = line.split_once('=') else {
            continue;
        };
        let k = k.trim();
        if k == key {
            return Some(v.trim().to_owned());
        }
        if k == format!("{key}.workspace") {
            return Some("workspace".to_owned());
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_sources_of_a_rule() {
        let d =
            "/t/libx-1.rlib: /r/x-1.0.3/src/lib.rs /r/x-1.0.3/src/a.rs\n\n/r/x-1.0.3/src/lib.rs:\n";
        assert_eq!(
            sources(d),
            [
                PathBuf::from("/r/x-1.0.3/src/lib.rs"),
                PathBuf::from("/r/x-1.0.3/src/a.rs")
            ]
        );
        let spaced = "/t/out.d: /my\\ dir/src/lib.rs /b.rs\n";
        assert_eq!(sources(spaced)[0], PathBuf::from("/my dir/src/lib.rs"));
    }

    #[test]
    fn reads_package_versions() {
        let m = "[package]\nname = \"x\"\nversion = \"1.2.3\"\n[dependencies]\nversion = \"9\"\n";
        assert_eq!(package_version(m, Path::new("/")).unwrap(), "1.2.3");
        assert_eq!(
            section_value(
                "[package]\nversion.workspace = true\n",
                "[package]",
                "version"
            ),
            Some("workspace".to_owned())
        );
    }
}
