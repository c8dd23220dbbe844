//! Foreign (C/C++) functions replaced by patches: resolved by symbol, planned,
//! and rewritten through the machine-code layer in one batch per apply or
//! revert.

use crate::code_error::CodeError;
use crate::error::{Error, Result};
use crate::foreign::{self, ForeignPatchStack, PendingPush, PendingRevert};
use crate::loader::{LoadedPatch, PatchId};
use crate::os::CodeEdit;
use crate::runtime::Strategy;
use std::collections::HashMap;
use std::sync::Arc;

/// Foreign functions currently rewritten, by address.
#[derive(Default)]
pub(crate) struct ForeignState {
    stacks: HashMap<usize, ForeignPatchStack>,
    /// Address of each resolved symbol name.
    resolved: HashMap<&'static str, usize>,
    /// Which foreign-stack entry each runtime patch owns on each function.
    owned: HashMap<(usize, PatchId), foreign::PatchId>,
}

enum Op {
    Push(usize, PatchId, PendingPush),
    Revert(usize, PatchId, PendingRevert),
}

/// The foreign changes of one sync, prepared (nothing written yet).
pub(crate) struct Prepared {
    ops: Vec<Op>,
    /// Stacks created for functions patched for the first time.
    fresh: Vec<(&'static str, usize, ForeignPatchStack)>,
}

impl Prepared {
    /// The code edits, for one batch.
    pub(crate) fn edits(&self) -> Vec<CodeEdit> {
        self.ops
            .iter()
            .filter_map(|op| match op {
                Op::Push(_, _, p) => p.edit().cloned(),
                Op::Revert(_, _, r) => r.edit().cloned(),
            })
            .collect()
    }
}

fn foreign_error(label: &str, symbol: &str, source: CodeError) -> Error {
    Error::Foreign {
        patch: label.to_owned(),
        symbol: symbol.to_owned(),
        source: Box::new(source),
    }
}

/// Refuses a function whose callers may keep values in registers it leaves
/// untouched: a replacement is compiled for the plain ABI, and may clobber any
/// caller-saved register (so may the trampoline's scratch register).
fn refuse_kept_registers(sym: &foreign::ForeignSymbol) -> std::result::Result<(), CodeError> {
    let kept = foreign::registers_callers_may_keep(sym)?;
    if kept.is_empty() {
        return Ok(());
    }
    Err(CodeError::CallersMayKeepRegisters {
        symbol: sym.name.clone(),
        object: sym.object.clone(),
        registers: kept.join(", "),
    })
}

impl ForeignState {
    /// Prepares what makes foreign functions match `stack`: resolves and plans
    /// every newly patched function. Writes nothing.
    pub(crate) fn prepare(
        &self,
        stack: &[(Arc<LoadedPatch>, Strategy)],
        label: &str,
    ) -> Result<Prepared> {
        // Wanted: per function, the (patch, replacement) of each patch, in order.
        let mut fresh: Vec<(&'static str, usize, ForeignPatchStack)> = Vec::new();
        let mut wanted: HashMap<usize, Vec<(PatchId, usize)>> = HashMap::new();
        let mut names: HashMap<usize, &'static str> = HashMap::new();
        // Foreign code is written while every other thread is held: refuse at
        // once, before resolving and planning, if some thread never would be.
        let touches_foreign =
            stack.iter().any(|(p, _)| !p.foreign.is_empty()) || !self.owned.is_empty();
        if touches_foreign {
            crate::os::check_threads_take_stop_signal().map_err(|e| {
                let symbols: Vec<&str> = stack
                    .iter()
                    .flat_map(|(p, _)| p.foreign.iter().map(|f| f.symbol))
                    .collect();
                foreign_error(label, &symbols.join(", "), e)
            })?;
        }
        for (p, _) in stack {
            for (i, f) in p.foreign.iter().enumerate() {
                let addr = match self.resolved.get(f.symbol) {
                    Some(&a) => a,
                    None => match fresh.iter().find(|(s, _, _)| *s == f.symbol) {
                        Some(&(_, a, _)) => a,
                        None => {
                            // Found when the patch was loaded (a search of every
                            // object's symbol tables); the plan below re-checks the
                            // bytes in memory.
                            let sym = match p.foreign_found.get(i) {
                                Some(found) => found.clone(),
                                None => foreign::find_function(f.symbol)
                                    .map_err(|e| foreign_error(label, f.symbol, e))?,
                            };
                            if !self.stacks.contains_key(&sym.address)
                                && !fresh.iter().any(|(_, a, _)| *a == sym.address)
                            {
                                let plan = foreign::plan_foreign(&sym)
                                    .and_then(|plan| refuse_kept_registers(&sym).map(|()| plan))
                                    .map_err(|e| foreign_error(label, f.symbol, e))?;
                                fresh.push((f.symbol, sym.address, ForeignPatchStack::new(plan)));
                            }
                            sym.address
                        }
                    },
                };
                names.insert(addr, f.symbol);
                wanted
                    .entry(addr)
                    .or_default()
                    .push((p.id, f.replacement as usize));
            }
        }
        let mut ops = Vec::new();
        // Reverts: patches that own a foreign entry but left the stack.
        for (&(addr, pid), &fid) in &self.owned {
            let still = wanted
                .get(&addr)
                .is_some_and(|w| w.iter().any(|(p, _)| *p == pid));
            if !still {
                let st = &self.stacks[&addr];
                let pending = st
                    .prepare_revert(fid)
                    .map_err(|e| foreign_error(label, &st.plan().symbol, e))?;
                ops.push(Op::Revert(addr, pid, pending));
            }
        }
        // Pushes: patches in the stack that own nothing yet (always the newest).
        for (addr, list) in &wanted {
            for &(pid, target) in list {
                if self.owned.contains_key(&(*addr, pid)) {
                    continue;
                }
                let st = self
                    .stacks
                    .get(addr)
                    .or_else(|| fresh.iter().find(|(_, a, _)| a == addr).map(|(_, _, s)| s))
                    .expect("every wanted function has a stack");
                let pending = st
                    .prepare_push(target)
                    .map_err(|e| foreign_error(label, names[addr], e))?;
                ops.push(Op::Push(*addr, pid, pending));
            }
        }
        Ok(Prepared { ops, fresh })
    }

    /// Records a prepared change whose edits were written.
    pub(crate) fn commit(&mut self, prepared: Prepared, label: &str) -> Result<()> {
        for (symbol, addr, st) in prepared.fresh {
            self.resolved.insert(symbol, addr);
            self.stacks.entry(addr).or_insert(st);
        }
        for op in prepared.ops {
            match op {
                Op::Push(addr, pid, pending) => {
                    let st = self.stacks.get_mut(&addr).expect("stack exists");
                    let fid = st
                        .commit_push(pending)
                        .map_err(|e| foreign_error(label, &st.plan().symbol, e))?;
                    self.owned.insert((addr, pid), fid);
                }
                Op::Revert(addr, pid, pending) => {
                    let st = self.stacks.get_mut(&addr).expect("stack exists");
                    st.commit_revert(pending)
                        .map_err(|e| foreign_error(label, &st.plan().symbol, e))?;
                    self.owned.remove(&(addr, pid));
                }
            }
        }
        Ok(())
    }
}
