//! What is applied, for people and programs.

use crate::loader::PatchId;
use crate::runtime::Strategy;
use std::path::PathBuf;

/// One applied patch.
#[derive(Clone, Debug)]
pub struct PatchStatus {
    /// Its id in this process.
    pub id: PatchId,
    /// Its name.
    pub name: String,
    /// Its version.
    pub version: String,
    /// The SHA-256 of its file: its identity.
    pub digest: crate::Digest,
    /// The file it was loaded from.
    pub source: PathBuf,
    /// How it was applied.
    pub strategy: Strategy,
    /// Paths of the `#[patchable]` functions it replaces.
    pub targets: Vec<String>,
    /// Symbols of the foreign functions it replaces.
    pub foreign: Vec<String>,
}

/// Which patch's version of a function is live.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FunctionStatus {
    /// The function's path (or a foreign function's symbol).
    pub path: String,
    /// Name of the patch whose version is live.
    pub patch: String,
    /// Its version.
    pub version: String,
    /// Its id.
    pub id: PatchId,
}

/// The applied patches, bottom to top, and every patched function.
#[derive(Clone, Debug, Default)]
pub struct Status {
    /// Applied patches, oldest first.
    pub patches: Vec<PatchStatus>,
    /// Patched functions and which patch is live for each (unlisted functions
    /// run their original).
    pub functions: Vec<FunctionStatus>,
}

impl Status {
    /// The live patch of one function, if it is patched.
    pub fn live(&self, path: &str) -> Option<&FunctionStatus> {
        self.functions.iter().find(|f| f.path == path)
    }
}

impl std::fmt::Display for Status {
    /// One line: `none`, or `name version [f1, f2]; name version [...]`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.patches.is_empty() {
            return f.write_str("none");
        }
        for (i, p) in self.patches.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            let all: Vec<&str> = p
                .targets
                .iter()
                .chain(p.foreign.iter())
                .map(String::as_str)
                .collect();
            write!(f, "{} {} [{}]", p.name, p.version, all.join(", "))?;
        }
        Ok(())
    }
}
