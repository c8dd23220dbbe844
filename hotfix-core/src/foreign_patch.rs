//! Foreign (C/C++) functions replaced by patches: resolved, planned and written
//! through the machine-code layer.

use crate::error::{Error, Result};
use crate::loader::LoadedPatch;
use crate::runtime::Strategy;
use std::sync::Arc;

/// Foreign functions currently rewritten.
#[derive(Default)]
pub(crate) struct ForeignState {}

impl ForeignState {
    /// Rewrites foreign functions so they match `stack`.
    pub(crate) fn sync(&mut self, stack: &[(Arc<LoadedPatch>, Strategy)], label: &str) -> Result<()> {
        for (p, _) in stack {
            if let Some(f) = p.foreign.first() {
                return Err(Error::Foreign {
                    patch: label.to_owned(),
                    symbol: f.symbol.to_owned(),
                    source: Box::new(crate::code_error::CodeError::UnsupportedSymbol {
                        name: f.symbol.to_owned(),
                        object: std::path::PathBuf::new(),
                        reason: "foreign function patching is not wired into the runtime yet",
                    }),
                });
            }
        }
        Ok(())
    }
}
