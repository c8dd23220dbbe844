//! The version of a dependency, from the file cargo handed the compiler: the
//! dependency's dep-info (`name-HASH.d`, written beside `libname-HASH.rlib`)
//! names its source files, and the `Cargo.toml` above them its version.

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

fn try_version(artifact: &Path) -> Result<String, String> {
    let stem = artifact
        .file_stem()
        .and_then(|s| s.to_str())
        .ok_or("no file name")?;
    let stem = stem.strip_prefix("lib").unwrap_or(stem);
    let dep_info = artifact.with_file_name(format!("{stem}.d"));
    let text = super::read_bounded(&dep_info, MAX_FILE).ok_or("no dep-info")?;
    let source = first_source(&text).ok_or("an empty dep-info")?;
    let mut dir = source.parent();
    for _ in 0..MAX_UP {
        let Some(d) = dir else { break };
        let manifest = d.join("Cargo.toml");
        if let Some(text) = super::read_bounded(&manifest, MAX_FILE) {
            return package_version(&text, d);
        }
        dir = d.parent();
    }
    Err("no Cargo.toml above its sources".into())
}

/// The first prerequisite of a make rule (`out: src1 src2`), unescaped.
fn first_source(dep_info: &str) -> Option<PathBuf> {
    let rule = dep_info.lines().find(|l| l.contains(": "))?;
    let (_, deps) = rule.split_once(": ")?;
    let mut path = String::new();
    let mut chars = deps.trim_start().chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => path.extend(chars.next()),
            ' ' => break,
            c => path.push(c),
        }
    }
    (!path.is_empty()).then(|| PathBuf::from(path))
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
    fn reads_the_first_source_of_a_rule() {
        let d =
            "/t/libx-1.rlib: /r/x-1.0.3/src/lib.rs /r/x-1.0.3/src/a.rs\n\n/r/x-1.0.3/src/lib.rs:\n";
        assert_eq!(
            first_source(d),
            Some(PathBuf::from("/r/x-1.0.3/src/lib.rs"))
        );
        let spaced = "/t/out.d: /my\\ dir/src/lib.rs /b.rs\n";
        assert_eq!(
            first_source(spaced),
            Some(PathBuf::from("/my dir/src/lib.rs"))
        );
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
