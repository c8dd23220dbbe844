//! Machine code the runtime keeps rewritten: redirected entries of
//! `#[patchable]` functions (the entry strategy) and foreign functions.
//!
//! [`CodeState::sync`] makes the code agree with a stack of patches, all or
//! nothing: on a failure, what it already changed is put back.

use crate::abi::FnDesc;
use crate::error::{Error, Result};
use crate::loader::LoadedPatch;
use crate::runtime::Strategy;
use std::collections::HashMap;
use std::sync::Arc;

/// The foreign symbols of a stack, for a message.
fn foreign_symbols(stack: &[(Arc<LoadedPatch>, Strategy)]) -> String {
    let all: Vec<&str> = stack
        .iter()
        .flat_map(|(p, _)| p.foreign.iter().map(|f| f.symbol))
        .collect();
    all.join(", ")
}

/// What is rewritten now.
#[derive(Default)]
pub(crate) struct CodeState {
    /// Redirected entries: entry address to (target, function path).
    entries: HashMap<usize, (usize, &'static str)>,
    /// Foreign functions.
    pub(crate) foreign: crate::foreign_patch::ForeignState,
}

/// The entries a stack wants redirected: each function whose top-most
/// replacement was applied with [`Strategy::Entry`].
fn wanted_entries(stack: &[(Arc<LoadedPatch>, Strategy)]) -> HashMap<usize, (usize, &'static str)> {
    let mut top: HashMap<*const FnDesc, (&'static FnDesc, usize, Strategy)> = HashMap::new();
    for (p, s) in stack {
        for r in &p.entries {
            top.insert(r.host, (r.host, r.entry.replacement as usize, *s));
        }
    }
    top.into_values()
        .filter(|(_, _, s)| *s == Strategy::Entry)
        .map(|(f, repl, _)| (f.entry as usize, (repl, f.meta.path)))
        .collect()
}

impl CodeState {
    /// Rewrites code so it matches `stack`; `label` names the patch being
    /// applied or reverted, for errors.
    pub(crate) fn sync(
        &mut self,
        stack: &[(Arc<LoadedPatch>, Strategy)],
        label: &str,
    ) -> Result<()> {
        let want = wanted_entries(stack);
        let mut changes: Vec<(usize, Option<usize>, &'static str)> = Vec::new();
        for (&entry, &(target, path)) in &want {
            if self.entries.get(&entry).map(|t| t.0) != Some(target) {
                changes.push((entry, Some(target), path));
            }
        }
        for (&entry, &(_, path)) in &self.entries {
            if !want.contains_key(&entry) {
                changes.push((entry, None, path));
            }
        }
        // Check every entry first: nothing is written if one holds foreign bytes.
        for &(entry, _, path) in &changes {
            crate::arch::check_entry(entry as *const u8).map_err(|source| Error::Entry {
                patch: label.to_owned(),
                target: path.to_owned(),
                source: Box::new(source),
            })?;
        }
        let foreign = self.foreign.prepare(stack, label)?;
        let mut done: Vec<(usize, Option<usize>)> = Vec::new();
        for &(entry, target, path) in &changes {
            let r = match target {
                // SAFETY: entry is a #[patchable] entry stub registered by the host,
                // target a replacement whose signature fingerprint equals its own.
                Some(t) => unsafe { crate::arch::redirect_entry(entry as *const u8, t) },
                // SAFETY: entry is a #[patchable] entry stub.
                None => unsafe { crate::arch::restore_entry(entry as *const u8) },
            };
            if let Err(source) = r {
                self.undo_entries(&done);
                return Err(Error::Entry {
                    patch: label.to_owned(),
                    target: path.to_owned(),
                    source: Box::new(source),
                });
            }
            done.push((entry, self.entries.get(&entry).map(|t| t.0)));
        }
        let edits = foreign.edits();
        // SAFETY: every edit comes from a trampoline plan (whole instructions, no
        // branch or call into the window, bytes checked against the file) and
        // jumps to a replacement exported for that very symbol.
        if let Err(source) = unsafe { crate::os::apply_edits(&edits) } {
            self.undo_entries(&done);
            return Err(Error::Foreign {
                patch: label.to_owned(),
                symbol: foreign_symbols(stack),
                source: Box::new(source),
            });
        }
        self.entries = want;
        self.foreign.commit(foreign, label)
    }

    fn undo_entries(&self, done: &[(usize, Option<usize>)]) {
        for &(entry, before) in done.iter().rev() {
            let r = match before {
                // SAFETY: restoring what this runtime wrote a moment ago.
                Some(t) => unsafe { crate::arch::redirect_entry(entry as *const u8, t) },
                // SAFETY: as above.
                None => unsafe { crate::arch::restore_entry(entry as *const u8) },
            };
            if let Err(e) = r {
                tracing::error!(entry = format_args!("{entry:#x}"), error = %e, "could not undo an entry redirect");
            }
        }
    }
}
