//! A stack of patches on one foreign function.
//!
//! The newest applied patch is live. Reverting a patch below the top changes no
//! code; reverting the top re-points the jump to the newest patch still applied,
//! or restores the original bytes when it was the last.
//!
//! Each change is prepared as a [`CodeEdit`] first, so a caller can gather the
//! edits of several functions into ONE [`apply_edits`] batch (all or nothing)
//! and commit them only once it succeeded.

use crate::arch::{self, TrampolinePlan};
use crate::code_error::CodeError;
use crate::os::{CodeEdit, apply_edits};

/// Identifies one patch on one function.
pub type PatchId = u64;

/// A push prepared by [`ForeignPatchStack::prepare_push`].
#[derive(Clone, Debug)]
pub struct PendingPush {
    target: usize,
    depth: usize,
    edit: Option<CodeEdit>,
}

impl PendingPush {
    /// The code edit to apply (none when the target is already live).
    pub fn edit(&self) -> Option<&CodeEdit> {
        self.edit.as_ref()
    }
}

/// A revert prepared by [`ForeignPatchStack::prepare_revert`].
#[derive(Clone, Debug)]
pub struct PendingRevert {
    id: PatchId,
    depth: usize,
    edit: Option<CodeEdit>,
}

impl PendingRevert {
    /// The code edit to apply (none when the patch is not the live one).
    pub fn edit(&self) -> Option<&CodeEdit> {
        self.edit.as_ref()
    }
}

/// The patches applied on one foreign function, oldest first.
#[derive(Debug)]
pub struct ForeignPatchStack {
    plan: TrampolinePlan,
    applied: Vec<(PatchId, usize)>,
    next_id: PatchId,
}

impl ForeignPatchStack {
    /// An empty stack over a planned trampoline.
    pub fn new(plan: TrampolinePlan) -> Self {
        Self {
            plan,
            applied: Vec::new(),
            next_id: 1,
        }
    }

    /// The trampoline plan.
    pub fn plan(&self) -> &TrampolinePlan {
        &self.plan
    }

    /// The applied patches `(id, target)`, oldest first; the last is live.
    pub fn applied(&self) -> &[(PatchId, usize)] {
        &self.applied
    }

    /// Where calls go now: the live patch's target, or `None` for the original.
    pub fn live_target(&self) -> Option<usize> {
        self.applied.last().map(|&(_, t)| t)
    }

    /// The bytes the window holds in the current state.
    pub fn expected_bytes(&self) -> Vec<u8> {
        match self.live_target() {
            Some(t) => self.plan.patched_bytes(t),
            None => self.plan.original.clone(),
        }
    }

    /// Prepares a new live patch jumping to `target`. Writes nothing.
    pub fn prepare_push(&self, target: usize) -> Result<PendingPush, CodeError> {
        arch::check_jump_target(target)?;
        let (function, end) = (self.plan.function, self.plan.function + self.plan.size);
        if (function..end).contains(&target) {
            return Err(CodeError::TargetInsideFunction {
                symbol: self.plan.symbol.clone(),
                function,
                end,
                target,
            });
        }
        let edit = match self.live_target() {
            None => Some(self.plan.apply_edit(target)),
            Some(live) if live == target => None,
            Some(live) => Some(self.plan.repoint_edit(live, target)),
        };
        Ok(PendingPush {
            target,
            depth: self.applied.len(),
            edit,
        })
    }

    /// Records a push whose edit was applied.
    pub fn commit_push(&mut self, pending: PendingPush) -> Result<PatchId, CodeError> {
        if pending.depth != self.applied.len() {
            return Err(self.stale());
        }
        let id = self.next_id;
        self.next_id += 1;
        self.applied.push((id, pending.target));
        Ok(id)
    }

    /// Prepares removing patch `id`. Writes nothing.
    pub fn prepare_revert(&self, id: PatchId) -> Result<PendingRevert, CodeError> {
        let pos = self
            .applied
            .iter()
            .position(|&(i, _)| i == id)
            .ok_or_else(|| CodeError::UnknownPatch {
                symbol: self.plan.symbol.clone(),
                id,
            })?;
        let live = self.applied[self.applied.len() - 1].1;
        let edit = if pos + 1 != self.applied.len() {
            None
        } else if pos == 0 {
            Some(self.plan.restore_edit(live))
        } else {
            let below = self.applied[pos - 1].1;
            (below != live).then(|| self.plan.repoint_edit(live, below))
        };
        Ok(PendingRevert {
            id,
            depth: self.applied.len(),
            edit,
        })
    }

    /// Records a revert whose edit was applied.
    pub fn commit_revert(&mut self, pending: PendingRevert) -> Result<(), CodeError> {
        if pending.depth != self.applied.len() {
            return Err(self.stale());
        }
        let pos = self
            .applied
            .iter()
            .position(|&(i, _)| i == pending.id)
            .ok_or_else(|| self.stale())?;
        self.applied.remove(pos);
        Ok(())
    }

    /// Pushes a patch jumping to `target` and applies it at once.
    ///
    /// # Safety
    /// `target` must be a function with the same signature and ABI as the patched one.
    pub unsafe fn push(&mut self, target: usize) -> Result<PatchId, CodeError> {
        let pending = self.prepare_push(target)?;
        if let Some(edit) = pending.edit() {
            // SAFETY: the edit comes from the plan (whole instructions, no branch
            // into the window); the caller vouches for the target.
            unsafe { apply_edits(std::slice::from_ref(edit))? };
        }
        self.commit_push(pending)
    }

    /// Reverts patch `id` and applies the resulting change at once.
    ///
    /// # Safety
    /// The function the jump falls back to must still be valid code (patches
    /// below it, or the original).
    pub unsafe fn revert(&mut self, id: PatchId) -> Result<(), CodeError> {
        let pending = self.prepare_revert(id)?;
        if let Some(edit) = pending.edit() {
            // SAFETY: the edit re-points to a still-applied patch or restores the
            // original bytes recorded from the file.
            unsafe { apply_edits(std::slice::from_ref(edit))? };
        }
        self.commit_revert(pending)
    }

    fn stale(&self) -> CodeError {
        CodeError::StaleEdit {
            symbol: self.plan.symbol.clone(),
        }
    }
}
