//! What the compiler was told about the crate being compiled: its root file,
//! features, codegen options and dependencies, read from the command line of
//! the `rustc` process this macro runs in (the way cargo invokes it).

use std::path::PathBuf;

/// Longest `@argfile` read, in bytes (cargo writes one when a command line is
/// too long).
const MAX_ARGFILE: u64 = 4 * 1024 * 1024;

/// Codegen options that change the code or layouts a patch relies on.
const CODEGEN_KEYS: &[&str] = &[
    "opt-level",
    "debug-assertions",
    "overflow-checks",
    "panic",
    "target-cpu",
    "target-feature",
    "relocation-model",
    "code-model",
];

/// The parts of a `rustc` command line that identify a build.
#[derive(Default)]
pub struct RustcArgs {
    /// The crate's root source file, when one was named.
    pub root: Option<PathBuf>,
    /// `--edition`.
    pub edition: String,
    /// Enabled Cargo features, sorted.
    pub features: Vec<String>,
    /// `-C key=value` options of [`CODEGEN_KEYS`], sorted.
    pub codegen: Vec<String>,
    /// `--extern name=path`: dependencies with a file.
    pub externs: Vec<(String, PathBuf)>,
    /// `--crate-type` values.
    pub crate_types: Vec<String>,
}

/// The command line of this process, `@file` arguments expanded.
fn args() -> Vec<String> {
    let mut out = Vec::new();
    for a in std::env::args().skip(1) {
        match a.strip_prefix('@') {
            Some(file) => {
                if let Some(text) = super::read_bounded(file.as_ref(), MAX_ARGFILE) {
                    out.extend(text.lines().map(str::to_owned));
                }
            }
            None => out.push(a),
        }
    }
    out
}

/// This process's command line, read once (every `#[patchable]` of a
/// compilation asks).
pub fn current() -> &'static RustcArgs {
    static ARGS: std::sync::OnceLock<RustcArgs> = std::sync::OnceLock::new();
    ARGS.get_or_init(|| parse(&args()))
}

fn parse(args: &[String]) -> RustcArgs {
    let mut r = RustcArgs::default();
    let mut i = 0;
    // `--flag value` or `--flag=value`.
    let value = |i: &mut usize, flag: &str| -> Option<String> {
        let a = &args[*i];
        if a == flag {
            *i += 1;
            return args.get(*i).cloned();
        }
        a.strip_prefix(flag)
            .and_then(|rest| rest.strip_prefix('='))
            .map(str::to_owned)
    };
    while i < args.len() {
        let a = args[i].as_str();
        if let Some(v) = value(&mut i, "--edition") {
            r.edition = v;
        } else if let Some(v) = value(&mut i, "--cfg") {
            if let Some(f) = v
                .strip_prefix("feature=\"")
                .and_then(|f| f.strip_suffix('"'))
            {
                r.features.push(f.to_owned());
            }
        } else if let Some(v) = value(&mut i, "--crate-type") {
            r.crate_types.extend(v.split(',').map(str::to_owned));
        } else if let Some(v) = value(&mut i, "--extern") {
            let v = v.strip_prefix("noprelude:").unwrap_or(&v);
            if let Some((name, path)) = v.split_once('=') {
                r.externs.push((name.to_owned(), PathBuf::from(path)));
            }
        } else if a == "-C" || a.starts_with("-C") {
            let v = if a == "-C" {
                i += 1;
                args.get(i).cloned().unwrap_or_default()
            } else {
                a[2..].to_owned()
            };
            if CODEGEN_KEYS.iter().any(|k| v.split('=').next() == Some(k)) {
                r.codegen.push(v);
            }
        } else if !a.starts_with('-') && a.ends_with(".rs") {
            r.root = Some(PathBuf::from(a));
        }
        i += 1;
    }
    r.features.sort();
    r.codegen.sort();
    r.externs.sort();
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(s: &[&str]) -> Vec<String> {
        s.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn reads_what_cargo_passes() {
        let r = parse(&strings(&[
            "--crate-name",
            "host",
            "--edition=2024",
            "host/src/lib.rs",
            "--cfg",
            "feature=\"b\"",
            "--cfg",
            "feature=\"a\"",
            "--cfg",
            "debug_assertions",
            "-C",
            "opt-level=3",
            "-Cdebuginfo=2",
            "-C",
            "metadata=abc",
            "--extern",
            "tokio=/t/libtokio-1.rlib",
            "--extern",
            "noprelude:core=/t/libcore-2.rlib",
        ]));
        assert_eq!(r.root, Some(PathBuf::from("host/src/lib.rs")));
        assert_eq!(r.edition, "2024");
        assert_eq!(r.features, ["a", "b"]);
        assert_eq!(r.codegen, ["opt-level=3"]);
        assert_eq!(
            r.externs,
            [
                ("core".to_owned(), PathBuf::from("/t/libcore-2.rlib")),
                ("tokio".to_owned(), PathBuf::from("/t/libtokio-1.rlib")),
            ]
        );
    }
}
