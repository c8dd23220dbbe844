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

/// The code changes that make code agree with a stack, prepared (every
/// foreign function resolved, planned and checked) but not written.
pub(crate) struct CodePlan {
    want: HashMap<usize, (usize, &'static str)>,
    changes: Vec<(usize, Option<usize>, &'static str)>,
    foreign: crate::foreign_patch::Prepared,
    foreign_symbols: String,
}

impl CodeState {
    /// Prepares what makes code match `stack`: which entries change, and every
    /// foreign function resolved, planned and checked. Writes nothing; `label`
    /// names the patch being applied or reverted, for errors.
    pub(crate) fn plan(
        &self,
        stack: &[(Arc<LoadedPatch>, Strategy)],
        label: &str,
    ) -> Result<CodePlan> {
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
        Ok(CodePlan {
            want,
            changes,
            foreign,
            foreign_symbols: foreign_symbols(stack),
        })
    }

    /// Writes a plan, all or nothing: on a failure, what was already written is
    /// put back; if that fails too, the error says so
    /// ([`Error::CodeLeftChanged`]).
    pub(crate) fn write(&mut self, plan: CodePlan, label: &str) -> Result<()> {
        let CodePlan {
            want,
            changes,
            foreign,
            foreign_symbols,
        } = plan;
        // One batch: every entry is checked before any is written.
        let batch: Vec<(*const u8, Option<usize>)> = changes
            .iter()
            .map(|&(entry, target, _)| (entry as *const u8, target))
            .collect();
        // SAFETY: each entry is a #[patchable] entry stub registered by the host;
        // each target a replacement whose signature fingerprint equals its own.
        if let Err(source) = unsafe { crate::arch::set_entries(&batch) } {
            let target = changes.iter().map(|c| c.2).collect::<Vec<_>>().join(", ");
            let err = Error::Entry {
                patch: label.to_owned(),
                target,
                source: Box::new(source),
            };
            // A failed batch wrote nothing, or put back what it wrote; make sure.
            return Err(self.undo_entries(&changes, label, err));
        }
        let edits = foreign.edits();
        // SAFETY: every edit comes from a trampoline plan (whole instructions, no
        // branch or call into the window, bytes checked against the file) and
        // jumps to a replacement exported for that very symbol.
        if let Err(source) = unsafe { crate::os::apply_edits(&edits) } {
            let err = Error::Foreign {
                patch: label.to_owned(),
                symbol: foreign_symbols,
                source: Box::new(source),
            };
            return Err(self.undo_entries(&changes, label, err));
        }
        self.entries = want;
        self.foreign.commit(foreign, label)
    }

    /// Rewrites code so it matches `stack` ([`CodeState::plan`], then
    /// [`CodeState::write`]).
    pub(crate) fn sync(
        &mut self,
        stack: &[(Arc<LoadedPatch>, Strategy)],
        label: &str,
    ) -> Result<()> {
        let plan = self.plan(stack, label)?;
        self.write(plan, label)
    }

    /// Puts `changes` back to what this runtime last wrote, and returns `err`,
    /// or [`Error::CodeLeftChanged`] around it if putting back failed.
    fn undo_entries(
        &self,
        changes: &[(usize, Option<usize>, &'static str)],
        label: &str,
        err: Error,
    ) -> Error {
        let back: Vec<(*const u8, Option<usize>)> = changes
            .iter()
            .map(|&(entry, _, _)| (entry as *const u8, self.entries.get(&entry).map(|t| t.0)))
            .collect();
        // SAFETY: restoring what this runtime wrote before (or the original).
        match unsafe { crate::arch::set_entries(&back) } {
            Ok(()) => err,
            Err(undo) => {
                let paths: Vec<&str> = changes.iter().map(|c| c.2).collect();
                tracing::error!(error = %undo, "could not undo entry redirects");
                Error::CodeLeftChanged {
                    patch: label.to_owned(),
                    source: Box::new(err),
                    left: Box::new(crate::error::LeftChanged {
                        undo,
                        state: format!(
                            "the entries of {} may still jump to this patch's replacements \
                             while the runtime records them as before",
                            paths.join(", ")
                        ),
                    }),
                }
            }
        }
    }
}
