//! The stack of applied patches, and the one place that changes slots.

use crate::abi::FnDesc;
use crate::error::{Error, Result};
use crate::loader::{self, LoadedPatch, PatchId};
use crate::status::{FunctionStatus, PatchStatus, Status};
use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

/// How the replacements of a patch are made live.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Strategy {
    /// Store the replacement in each function's slot (one atomic store each).
    #[default]
    Slot,
    /// Also redirect each function's NOP-padded entry to the replacement with a
    /// jump, so even code that bypasses the slot reaches it.
    Entry,
}

/// Options of an apply.
#[derive(Clone, Copy, Debug, Default)]
pub struct ApplyOptions {
    /// How the replacements are made live.
    pub strategy: Strategy,
}

struct Applied {
    patch: Arc<LoadedPatch>,
    strategy: Strategy,
}

#[derive(Default)]
struct State {
    /// Bottom to top.
    stack: Vec<Applied>,
    /// Every library ever loaded, by content hash: they are never unloaded, and
    /// applying the same bytes again reuses the library.
    loaded: HashMap<u64, Arc<LoadedPatch>>,
    /// Foreign functions and entries currently rewritten.
    code: crate::code::CodeState,
}

/// The hotfix runtime of this process. Applies and reverts are serialised; calls
/// through slots never wait for them.
pub struct Runtime {
    state: Mutex<State>,
}

impl Runtime {
    /// The process's runtime.
    pub fn global() -> &'static Runtime {
        static RUNTIME: OnceLock<Runtime> = OnceLock::new();
        RUNTIME.get_or_init(|| Runtime {
            state: Mutex::new(State::default()),
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while the lock was held cannot leave a slot half-written (each
        // store is atomic); the stack is still the truth, so keep going.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Loads and checks a patch without applying it. The file checks run every
    /// time; bytes loaded before reuse the library loaded then.
    pub fn load(&self, path: impl AsRef<Path>) -> Result<Arc<LoadedPatch>> {
        let checked = loader::check(path.as_ref())?;
        if let Some(p) = self.lock().loaded.get(&checked.hash) {
            return Ok(p.clone());
        }
        let patch = loader::load(checked)?;
        let mut state = self.lock();
        Ok(state.loaded.entry(patch.hash).or_insert(patch).clone())
    }

    /// Loads, checks and applies a patch file with the slot strategy.
    pub fn apply(&self, path: impl AsRef<Path>) -> Result<PatchStatus> {
        self.apply_with(path, ApplyOptions::default())
    }

    /// Loads, checks and applies a patch file.
    pub fn apply_with(&self, path: impl AsRef<Path>, opts: ApplyOptions) -> Result<PatchStatus> {
        let path = path.as_ref();
        let result = self
            .load(path)
            .and_then(|patch| self.apply_loaded(&patch, opts));
        if let Err(e) = &result {
            tracing::warn!(file = %path.display(), error = %e, "patch refused; nothing changed");
        }
        result
    }

    /// Applies a loaded patch: all its replacements become live in one step
    /// under the runtime's lock, or none do.
    pub fn apply_loaded(
        &self,
        patch: &Arc<LoadedPatch>,
        opts: ApplyOptions,
    ) -> Result<PatchStatus> {
        let mut state = self.lock();
        for a in &state.stack {
            let why = if a.patch.hash == patch.hash {
                Some("the same file")
            } else if a.patch.name == patch.name && a.patch.version == patch.version {
                Some("same name and version")
            } else {
                None
            };
            if let Some(why) = why {
                return Err(Error::AlreadyApplied {
                    patch: patch.name.clone(),
                    version: patch.version.clone(),
                    why,
                });
            }
        }
        if let Some(hook) = patch.registry.on_apply
            && let Err(reason) = hook()
        {
            return Err(Error::Vetoed {
                patch: format!("{} {}", patch.name, patch.version),
                reason,
            });
        }
        let mut next = state
            .stack
            .iter()
            .map(|a| (a.patch.clone(), a.strategy))
            .collect::<Vec<_>>();
        next.push((patch.clone(), opts.strategy));
        let state = &mut *state;
        state.code.sync(&next, &patch_label(patch))?;
        state.stack.push(Applied {
            patch: patch.clone(),
            strategy: opts.strategy,
        });
        relink(&state.stack, patch.entries.iter().map(|r| r.host));
        let status = patch_status(state.stack.last().expect("just pushed"));
        tracing::info!(
            patch = %patch_label(patch),
            id = %patch.id,
            strategy = ?opts.strategy,
            functions = ?status.targets,
            foreign = ?status.foreign,
            "patch applied"
        );
        Ok(status)
    }

    /// Reverts the newest applied patch.
    pub fn revert_newest(&self) -> Result<PatchStatus> {
        let id = {
            let state = self.lock();
            state
                .stack
                .last()
                .map(|a| a.patch.id)
                .ok_or(Error::NothingApplied)?
        };
        self.revert(id)
    }

    /// Reverts one patch anywhere in the stack: each of its functions falls back
    /// to the next patch below that replaces it, or to the original.
    pub fn revert(&self, id: PatchId) -> Result<PatchStatus> {
        let mut state = self.lock();
        if state.stack.is_empty() {
            return Err(Error::NothingApplied);
        }
        let Some(pos) = state.stack.iter().position(|a| a.patch.id == id) else {
            return Err(Error::NotApplied {
                patch: id.to_string(),
            });
        };
        let patch = state.stack[pos].patch.clone();
        if let Some(hook) = patch.registry.on_revert
            && let Err(reason) = hook()
        {
            tracing::warn!(patch = %patch_label(&patch), %reason, "revert hook failed; reverting anyway");
        }
        let next: Vec<_> = state
            .stack
            .iter()
            .filter(|a| a.patch.id != id)
            .map(|a| (a.patch.clone(), a.strategy))
            .collect();
        let state = &mut *state;
        state.code.sync(&next, &patch_label(&patch))?;
        let removed = state.stack.remove(pos);
        relink(&state.stack, patch.entries.iter().map(|r| r.host));
        let status = patch_status(&removed);
        tracing::info!(
            patch = %patch_label(&patch),
            id = %patch.id,
            functions = ?status.targets,
            foreign = ?status.foreign,
            "patch reverted"
        );
        Ok(status)
    }

    /// Reverts every applied patch, newest first.
    pub fn revert_all(&self) -> Result<Vec<PatchStatus>> {
        let mut out = Vec::new();
        loop {
            match self.revert_newest() {
                Ok(s) => out.push(s),
                Err(Error::NothingApplied) => return Ok(out),
                Err(e) => return Err(e),
            }
        }
    }

    /// The applied patches (bottom to top) and, per patched function, the patch
    /// whose version is live.
    pub fn status(&self) -> Status {
        let state = self.lock();
        let patches: Vec<PatchStatus> = state.stack.iter().map(patch_status).collect();
        let mut live: HashMap<&str, &Applied> = HashMap::new();
        for a in &state.stack {
            for t in a
                .patch
                .targets()
                .into_iter()
                .chain(a.patch.foreign_targets())
            {
                live.insert(t, a);
            }
        }
        let mut functions: Vec<FunctionStatus> = live
            .into_iter()
            .map(|(path, a)| FunctionStatus {
                path: path.to_owned(),
                patch: a.patch.name.clone(),
                version: a.patch.version.clone(),
                id: a.patch.id,
            })
            .collect();
        functions.sort_by(|a, b| a.path.cmp(&b.path));
        Status { patches, functions }
    }

    /// Paths of every `#[patchable]` function of this process.
    pub fn patchable_functions(&self) -> Vec<&'static str> {
        let mut v: Vec<_> = crate::host::index().fns.keys().copied().collect();
        v.sort_unstable();
        v
    }
}

fn patch_label(p: &LoadedPatch) -> String {
    format!("{} {}", p.name, p.version)
}

fn patch_status(a: &Applied) -> PatchStatus {
    PatchStatus {
        id: a.patch.id,
        name: a.patch.name.clone(),
        version: a.patch.version.clone(),
        source: a.patch.source.clone(),
        strategy: a.strategy,
        targets: a.patch.targets().into_iter().map(str::to_owned).collect(),
        foreign: a
            .patch
            .foreign_targets()
            .into_iter()
            .map(str::to_owned)
            .collect(),
    }
}

/// Makes each function's slot (and every replacement's `prev`) agree with the
/// stack: the live version is the top-most patch that replaces the function.
fn relink<'a>(stack: &[Applied], targets: impl Iterator<Item = &'a FnDesc>) {
    let mut done = HashSet::new();
    for f in targets {
        if !done.insert(f as *const FnDesc) {
            continue;
        }
        // `original` calls of the lowest replacement reach the original body.
        let mut live = f.original;
        let mut top = f.unpatched;
        for a in stack {
            if let Some(r) = a.patch.entry_for(f) {
                r.entry.prev.store(live as *mut (), Ordering::Release);
                live = r.entry.replacement;
                top = live;
            }
        }
        f.slot.store(top as *mut (), Ordering::Release);
    }
}
