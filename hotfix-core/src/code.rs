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
        // Only stacks that use the entry strategy (or left entries redirected)
        // have entry work to do.
        let any_entry = stack.iter().any(|(_, s)| *s == Strategy::Entry);
        let want = if any_entry {
            wanted_entries(stack)
        } else {
            HashMap::new()
        };
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
        let foreign = self.foreign.prepare(stack, label)?;
        // One batch: every entry is checked before any is written.
        let batch: Vec<(*const u8, Option<usize>)> = changes
            .iter()
            .map(|&(entry, target, _)| (entry as *const u8, target))
            .collect();
        // SAFETY: each entry is a #[patchable] entry stub registered by the host;
        // each target a replacement whose signature fingerprint equals its own.
        if let Err(source) = unsafe { crate::arch::set_entries(&batch) } {
            self.undo_entries(&changes);
            let target = changes.iter().map(|c| c.2).collect::<Vec<_>>().join(", ");
            return Err(Error::Entry {
                patch: label.to_owned(),
                target,
                source: Box::new(source),
            });
        }
        let edits = foreign.edits();
        // SAFETY: every edit comes from a trampoline plan (whole instructions, no
        // branch or call into the window, bytes checked against the file) and
        // jumps to a replacement exported for that very symbol.
        if let Err(source) = unsafe { crate::os::apply_edits(&edits) } {
            self.undo_entries(&changes);
            return Err(Error::Foreign {
                patch: label.to_owned(),
                symbol: foreign_symbols(stack),
                source: Box::new(source),
            });
        }
        self.entries = want;
        self.foreign.commit(foreign, label)
    }

    /// Puts `changes` back to what this runtime last wrote (best effort: a
    /// failure here is logged; each entry is always in a valid state).
    fn undo_entries(&self, changes: &[(usize, Option<usize>, &'static str)]) {
        let back: Vec<(*const u8, Option<usize>)> = changes
            .iter()
            .map(|&(entry, _, _)| (entry as *const u8, self.entries.get(&entry).map(|t| t.0)))
            .collect();
        // SAFETY: restoring what this runtime wrote before (or the original).
        if let Err(e) = unsafe { crate::arch::set_entries(&back) } {
            tracing::error!(error = %e, "could not undo entry redirects");
        }
    }
}
