//! A crate's Rust source as hotfix reads it, shared by the `#[patchable]`
//! macro (the crate identity a host and a patch carry) and the `hotfix build`
//! command (the changes between the revision a host was built from and the
//! working tree):
//!
//! - [`tree`]: the module tree, followed from the root file as rustc does;
//! - [`digest`]: one digest per item, doc comments and the bodies a patch
//!   replaces left out;
//! - [`units`] and [`changes`]: items split down to methods, and the
//!   classification of what changed into replacements, allowed additions and
//!   refusals.
//!
//! ```
//! use hotfix_source::changes::{classify, Outcome};
//! use hotfix_source::units::Units;
//!
//! let base = Units::from_text("k", "src/lib.rs",
//!     "#[patchable] pub fn add(a: i64) -> i64 { a - 1 }").unwrap();
//! let work = Units::from_text("k", "src/lib.rs",
//!     "#[patchable] pub fn add(a: i64) -> i64 { bump(a) }\nfn bump(a: i64) -> i64 { a + 1 }").unwrap();
//! let c = classify(&base, &work);
//! assert!(c.refusals.is_empty());
//! assert_eq!(c.fixes[0].name, "fn k::add");
//! assert_eq!(c.added, ["fn k::bump"]);
//! assert!(matches!(c.outcome(), Outcome::Patch));
//! ```

pub mod changes;
pub mod digest;
pub mod text;
pub mod tree;
pub mod units;
