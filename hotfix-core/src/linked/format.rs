//! The registry of a linked patch: format 2 of the registry symbol.
//!
//! A linked patch is an ELF relocatable object (`ET_REL`, x86-64). Besides
//! the code and data it carries, it has two sections no loader maps:
//! - [`REGISTRY_SECTION`], whose first byte is the symbol
//!   [`REGISTRY_SYMBOL_V2`]: the magic `HOTFIXRG`, the format (`2`, little
//!   endian `u32`), the length of what follows (`u32`), then that many bytes
//!   of JSON: a [`Registry`];
//! - [`BASE_SECTION`]: the base build's bytes of every function the proof
//!   compares with the running host ([`Proof`]).
//!
//! The builder (`hotfix build --pid`) writes it with [`Registry::encode`];
//! the loader reads it with [`Registry::decode`], which bounds every length
//! before it reads and never trusts a count it has not checked.

use serde::{Deserialize, Serialize};

/// The registry symbol of a linked patch.
pub const REGISTRY_SYMBOL_V2: &str = "HOTFIX_REGISTRY_V2";
/// The format number of a linked patch's registry.
pub const FORMAT: u32 = 2;
/// The section holding the registry.
pub const REGISTRY_SECTION: &str = ".hotfix.registry";
/// The section holding the base build's bytes of proven functions.
pub const BASE_SECTION: &str = ".hotfix.base";
/// The largest registry the loader reads (its JSON).
pub const MAX_REGISTRY_JSON: usize = 8 << 20;
/// The longest symbol name the loader accepts.
pub const MAX_SYMBOL_LEN: usize = 4096;
/// The most functions one proof compares, and the most replacements.
pub const MAX_ENTRIES: usize = 1 << 20;

/// What a linked patch says of itself.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Registry {
    /// The patch's name.
    pub name: String,
    /// The patch's version.
    pub version: String,
    /// What it was built against.
    pub host: HostBuild,
    /// The functions it replaces.
    pub replace: Vec<Replace>,
    /// The functions whose base bytes must be the running host's.
    pub proof: Vec<Proof>,
}

/// The host build a linked patch was made for.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HostBuild {
    /// The crate whose code changed.
    #[serde(rename = "crate")]
    pub krate: String,
    /// The compiler (`rustc -vV`'s first line).
    pub rustc: String,
    /// The target triple.
    pub target: String,
    /// The cargo profile.
    pub profile: String,
    /// How cargo was asked to build (the package selection and features),
    /// for the operator's eyes.
    pub cargo: String,
    /// The base revision.
    pub base: String,
}

/// One replaced function.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Replace {
    /// The `#[patchable]` function's path (`demo_server::handlers::sum`).
    pub path: String,
    /// The function of the host it replaces (the slot's unpatched value), by
    /// symbol: it must be among the proven functions.
    pub host_symbol: String,
    /// The patch's function that replaces it, by symbol (defined in the patch).
    pub symbol: String,
    /// Why it is in the patch, in the operator's words.
    pub why: String,
}

/// One function of the base build, compared with the running host's.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Proof {
    /// Its symbol, in the base build and in the host.
    pub symbol: String,
    /// Where its bytes start in [`BASE_SECTION`].
    pub offset: u64,
    /// How many bytes it has (the host's symbol must have as many).
    pub size: u64,
    /// The relocations of the base build inside it: offset and ELF type. The
    /// loader masks the bytes each type lets the linker change, and nothing
    /// else; the builder names no mask.
    pub relocs: Vec<(u64, u32)>,
}

/// The compiler's identity as the runtime records it: `rustc -vV`'s lines
/// joined with `; ` (what [`HostBuild::rustc`] must equal).
pub fn rustc_identity(rustc_vv: &str) -> String {
    rustc_vv
        .replace('\n', "; ")
        .trim_end_matches("; ")
        .to_owned()
}

/// The identity of the compiler the running host was built with.
pub fn host_rustc() -> &'static str {
    env!("HOTFIX_RUSTC_VERSION")
}

impl Registry {
    /// The bytes of [`REGISTRY_SECTION`].
    pub fn encode(&self) -> Vec<u8> {
        let json = serde_json::to_vec(self).expect("a registry is plain data");
        let mut out = Vec::with_capacity(16 + json.len());
        out.extend_from_slice(&crate::abi::REGISTRY_MAGIC);
        out.extend_from_slice(&FORMAT.to_le_bytes());
        out.extend_from_slice(&(json.len() as u32).to_le_bytes());
        out.extend_from_slice(&json);
        out
    }

    /// Reads the registry from the bytes of [`REGISTRY_SECTION`]; says what is
    /// wrong otherwise. Checks every bound the format sets.
    pub fn decode(section: &[u8]) -> Result<Registry, String> {
        let header = section
            .get(..16)
            .ok_or_else(|| format!("it is {} bytes, shorter than its header", section.len()))?;
        if header[..8] != crate::abi::REGISTRY_MAGIC {
            return Err("it does not start with the registry magic".into());
        }
        let format = u32::from_le_bytes(header[8..12].try_into().expect("4 bytes"));
        if format != FORMAT {
            return Err(format!(
                "it is of format {format}; this runtime reads linked patches of format {FORMAT}"
            ));
        }
        let len = u32::from_le_bytes(header[12..16].try_into().expect("4 bytes")) as usize;
        if len > MAX_REGISTRY_JSON {
            return Err(format!(
                "it says {len} bytes follow, over the limit of {MAX_REGISTRY_JSON}"
            ));
        }
        let json = section
            .get(16..16 + len)
            .ok_or_else(|| format!("it says {len} bytes follow but the section ends first"))?;
        let reg: Registry =
            serde_json::from_slice(json).map_err(|e| format!("its contents do not parse: {e}"))?;
        reg.check_bounds()?;
        Ok(reg)
    }

    fn check_bounds(&self) -> Result<(), String> {
        if self.replace.len() > MAX_ENTRIES || self.proof.len() > MAX_ENTRIES {
            return Err(format!("it lists over {MAX_ENTRIES} functions"));
        }
        let names = self
            .replace
            .iter()
            .flat_map(|r| [&r.host_symbol, &r.symbol])
            .chain(self.proof.iter().map(|p| &p.symbol));
        for n in names {
            if n.is_empty() || n.len() > MAX_SYMBOL_LEN || n.contains('\0') {
                return Err(format!(
                    "a symbol name is empty, contains NUL or is over {MAX_SYMBOL_LEN} bytes"
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Registry {
        Registry {
            name: "p".into(),
            version: "1".into(),
            host: HostBuild {
                krate: "c".into(),
                rustc: "rustc 1".into(),
                target: "x86_64-unknown-linux-gnu".into(),
                profile: "dev".into(),
                cargo: "-p c".into(),
                base: "abc".into(),
            },
            replace: vec![Replace {
                path: "c::f".into(),
                host_symbol: "f".into(),
                symbol: "f".into(),
                why: "its source changed".into(),
            }],
            proof: vec![Proof {
                symbol: "f".into(),
                offset: 0,
                size: 4,
                relocs: vec![(0, 2)],
            }],
        }
    }

    #[test]
    fn round_trip() {
        let r = sample();
        assert_eq!(Registry::decode(&r.encode()).unwrap(), r);
    }

    #[test]
    fn every_header_field_is_checked() {
        let good = sample().encode();
        let mut bad_magic = good.clone();
        bad_magic[0] ^= 1;
        assert!(Registry::decode(&bad_magic).unwrap_err().contains("magic"));
        let mut bad_format = good.clone();
        bad_format[8] = 3;
        assert!(
            Registry::decode(&bad_format)
                .unwrap_err()
                .contains("format 3")
        );
        let mut long = good.clone();
        long[12..16].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(
            Registry::decode(&long)
                .unwrap_err()
                .contains("over the limit")
        );
        let mut short = good.clone();
        short.truncate(good.len() - 1);
        assert!(Registry::decode(&short).unwrap_err().contains("ends first"));
        assert!(
            Registry::decode(&good[..10])
                .unwrap_err()
                .contains("header")
        );
        assert!(Registry::decode(&[]).unwrap_err().contains("header"));
    }

    #[test]
    fn unknown_fields_and_bad_names_are_refused() {
        let mut r = sample();
        r.proof[0].symbol = String::new();
        assert!(Registry::decode(&r.encode()).unwrap_err().contains("empty"));
        let mut bytes = sample().encode();
        let json =
            String::from_utf8(bytes[16..].to_vec())
                .unwrap()
                .replacen("{", "{\"extra\":1,", 1);
        bytes.truncate(12);
        bytes.extend_from_slice(&(json.len() as u32).to_le_bytes());
        bytes.extend_from_slice(json.as_bytes());
        assert!(Registry::decode(&bytes).unwrap_err().contains("parse"));
    }
}
