//! The stack of applied patches, and the one place that changes slots.

use crate::abi::FnDesc;
use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::loader::{self, DEFAULT_MAX_PATCH_SIZE, LoadedPatch, PatchId};
use crate::signing::PublicKey;
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
    /// Every library ever loaded, by SHA-256: they are never unloaded, and
    /// applying the same bytes again reuses the library.
    loaded: HashMap<Digest, Arc<LoadedPatch>>,
    /// Files refused after they were loaded (their constructors ran), by
    /// SHA-256, with why: refused again without loading them again.
    refused_loaded: HashMap<Digest, String>,
    /// Foreign functions and entries currently rewritten.
    code: crate::code::CodeState,
}

/// What the runtime accepts to load.
struct Policy {
    /// Largest patch file read.
    max_size: u64,
    /// Keys whose signatures are accepted.
    keys: Vec<PublicKey>,
    /// Whether patches must be signed (a key was trusted, or named in the
    /// environment even if it could not be read).
    required: bool,
    /// Whether "signatures are off" was said.
    said_unsigned: bool,
}

/// The hotfix runtime of this process. Applies and reverts are serialised; calls
/// through slots never wait for them.
pub struct Runtime {
    state: Mutex<State>,
    policy: Mutex<Policy>,
}

impl Runtime {
    /// The process's runtime.
    pub fn global() -> &'static Runtime {
        static RUNTIME: OnceLock<Runtime> = OnceLock::new();
        RUNTIME.get_or_init(|| Runtime {
            state: Mutex::new(State::default()),
            policy: Mutex::new({
                let (keys, required) = keys_from_env();
                Policy {
                    max_size: DEFAULT_MAX_PATCH_SIZE,
                    keys,
                    required,
                    said_unsigned: false,
                }
            }),
        })
    }

    fn policy(&self) -> MutexGuard<'_, Policy> {
        self.policy.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Sets the largest patch file the runtime reads (default
    /// [`DEFAULT_MAX_PATCH_SIZE`], 256 MiB); larger files are refused unread.
    pub fn set_max_patch_size(&self, bytes: u64) {
        self.policy().max_size = bytes;
    }

    /// Trusts `key`: from now on only patches signed by a trusted key load
    /// (see [`crate::signing`]).
    pub fn trust_key(&self, key: PublicKey) {
        let mut p = self.policy();
        p.required = true;
        if !p.keys.contains(&key) {
            tracing::info!(key = %key.id(), "trusting patches signed by this key");
            p.keys.push(key);
        }
    }

    /// Checks the signature of a read patch where keys are trusted; says once
    /// that signatures are off where none is.
    fn check_signature_of(&self, source: &Path, digest: &Digest) -> Result<()> {
        let keys = {
            let mut p = self.policy();
            if !p.required {
                if !p.said_unsigned {
                    p.said_unsigned = true;
                    tracing::warn!(
                        "patch signatures are off: no trusted key is configured (Runtime::trust_key or HOTFIX_TRUSTED_KEYS); any patch that passes the checks is applied"
                    );
                }
                return Ok(());
            }
            p.keys.clone()
        };
        let signer = crate::signing::verify(source, digest, &keys)?;
        tracing::info!(file = %source.display(), %digest, key = %signer, "patch signature verified");
        Ok(())
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while the lock was held cannot leave a slot half-written (each
        // store is atomic); the stack is still the truth, so keep going.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Loads and checks a patch without applying it. The file checks run every
    /// time; bytes loaded before reuse the library loaded then.
    pub fn load(&self, path: impl AsRef<Path>) -> Result<Arc<LoadedPatch>> {
        let max = self.policy().max_size;
        let checked = loader::check(path.as_ref(), max)?;
        self.check_signature_of(&checked.source, &checked.digest)?;
        {
            let state = self.lock();
            if let Some(p) = state.loaded.get(&checked.digest) {
                return Ok(p.clone());
            }
            if let Some(reason) = state.refused_loaded.get(&checked.digest) {
                return Err(Error::RefusedBefore {
                    path: checked.source,
                    digest: checked.digest,
                    reason: reason.clone(),
                });
            }
        }
        let digest = checked.digest;
        if crate::linked::is_linked_patch(&checked.bytes) {
            // Nothing of a linked patch runs or stays mapped when it is refused.
            let patch = crate::linked::load(checked)?;
            let mut state = self.lock();
            return Ok(state.loaded.entry(patch.digest).or_insert(patch).clone());
        }
        match loader::load(checked) {
            Ok(patch) => {
                let mut state = self.lock();
                Ok(state.loaded.entry(patch.digest).or_insert(patch).clone())
            }
            Err(e) => {
                if e.after_dlopen {
                    self.lock()
                        .refused_loaded
                        .insert(digest, e.error.to_string());
                }
                Err(e.error)
            }
        }
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
        // A patch loaded before a key was trusted is held to the key too.
        self.check_signature_of(&patch.source, &patch.digest)?;
        let mut state = self.lock();
        let state = &mut *state;
        let label = patch_label(patch);
        // Order: every check (the code plan resolves and checks foreign
        // functions) before the hook; the hook (it may veto) before any write;
        // a failed write undoes the hook through on_revert.
        let plan = plan_apply(state, patch, opts)?;
        if let Some(hook) = patch.hooks.on_apply
            && let Err(reason) = hook()
        {
            return Err(Error::Vetoed {
                patch: label,
                reason,
            });
        }
        if let Err(e) = state.code.write(plan, &label) {
            if patch.hooks.on_apply.is_none() {
                return Err(e);
            }
            let hook = match patch.hooks.on_revert.map(|undo| undo()) {
                None => {
                    "the patch has no on_revert hook, so whatever on_apply changed stays changed"
                        .to_owned()
                }
                Some(Ok(())) => "on_revert ran and undid it; the host is as before".to_owned(),
                Some(Err(why)) => format!(
                    "on_revert, run to undo it, failed ({why}): whatever on_apply changed may stay changed"
                ),
            };
            return Err(Error::AfterApplyHook {
                patch: label,
                source: Box::new(e),
                hook,
            });
        }
        state.stack.push(Applied {
            patch: patch.clone(),
            strategy: opts.strategy,
        });
        relink(&state.stack, patch.entries.iter().map(|r| r.host));
        let status = patch_status(state.stack.last().expect("just pushed"));
        crate::control::snapshot::publish(status_of(state));
        tracing::info!(
            patch = %patch_label(patch),
            id = %patch.id,
            digest = %patch.digest,
            strategy = ?opts.strategy,
            functions = ?status.targets,
            foreign = ?status.foreign,
            "patch applied"
        );
        Ok(status)
    }

    /// Every check an apply of `patch` makes, without the `on_apply` hook:
    /// the signature where keys are trusted, not applied already, and the
    /// code plan (foreign functions resolved, planned and checked, threads that
    /// would not stop). Nothing is written; no hook runs.
    pub fn check_loaded(&self, patch: &Arc<LoadedPatch>, opts: ApplyOptions) -> Result<()> {
        self.check_signature_of(&patch.source, &patch.digest)?;
        plan_apply(&self.lock(), patch, opts).map(drop)
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
        let next: Vec<_> = state
            .stack
            .iter()
            .filter(|a| a.patch.id != id)
            .map(|a| (a.patch.clone(), a.strategy))
            .collect();
        let state = &mut *state;
        // Order: the code first (a failure leaves the patch applied and its hook
        // not run: the host exactly as before), then the slots, then the hook.
        state.code.sync(&next, &patch_label(&patch))?;
        let removed = state.stack.remove(pos);
        relink(&state.stack, patch.entries.iter().map(|r| r.host));
        if let Some(hook) = patch.hooks.on_revert
            && let Err(reason) = hook()
        {
            tracing::error!(patch = %patch_label(&patch), id = %patch.id, %reason, "patch reverted, but its on_revert hook failed");
            return Err(Error::RevertHookFailed {
                patch: patch_label(&patch),
                reason,
            });
        }
        let status = patch_status(&removed);
        crate::control::snapshot::publish(status_of(state));
        tracing::info!(
            patch = %patch_label(&patch),
            id = %patch.id,
            digest = %patch.digest,
            functions = ?status.targets,
            foreign = ?status.foreign,
            "patch reverted"
        );
        Ok(status)
    }

    /// Reverts every applied patch, newest first. A patch whose `on_revert`
    /// hook fails is reverted all the same, and the first such failure is
    /// returned once every patch is reverted; any other failure stops here.
    pub fn revert_all(&self) -> Result<Vec<PatchStatus>> {
        let mut out = Vec::new();
        let mut hook_failed = None;
        loop {
            match self.revert_newest() {
                Ok(s) => out.push(s),
                Err(Error::NothingApplied) => return hook_failed.map_or(Ok(out), Err),
                Err(e @ Error::RevertHookFailed { .. }) => {
                    hook_failed.get_or_insert(e);
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// The applied patches (bottom to top) and, per patched function, the patch
    /// whose version is live.
    pub fn status(&self) -> Status {
        status_of(&self.lock())
    }

    /// Paths of every `#[patchable]` function of this process.
    pub fn patchable_functions(&self) -> Vec<&'static str> {
        let mut v: Vec<_> = crate::host::index().fns.keys().copied().collect();
        v.sort_unstable();
        v
    }
}

/// The status of a stack (see [`Runtime::status`]).
fn status_of(state: &State) -> Status {
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

/// The code plan of applying `patch` over `state`'s stack, after refusing a
/// patch applied already. Writes nothing.
fn plan_apply(
    state: &State,
    patch: &Arc<LoadedPatch>,
    opts: ApplyOptions,
) -> Result<crate::code::CodePlan> {
    for a in &state.stack {
        let why = if a.patch.digest == patch.digest {
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
    let mut next = state
        .stack
        .iter()
        .map(|a| (a.patch.clone(), a.strategy))
        .collect::<Vec<_>>();
    next.push((patch.clone(), opts.strategy));
    state.code.plan(&next, &patch_label(patch))
}

fn patch_label(p: &LoadedPatch) -> String {
    format!("{} {}", p.name, p.version)
}

fn patch_status(a: &Applied) -> PatchStatus {
    PatchStatus {
        id: a.patch.id,
        name: a.patch.name.clone(),
        version: a.patch.version.clone(),
        digest: a.patch.digest,
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

/// Keys named by `HOTFIX_TRUSTED_KEYS` (public key files separated by `:`),
/// and whether any was named: a file that cannot be read is logged and trusts
/// nothing, but still makes the host require signatures.
fn keys_from_env() -> (Vec<PublicKey>, bool) {
    let Some(list) = std::env::var_os("HOTFIX_TRUSTED_KEYS") else {
        return (Vec::new(), false);
    };
    let mut keys = Vec::new();
    let mut named = false;
    for p in std::env::split_paths(&list).filter(|p| !p.as_os_str().is_empty()) {
        named = true;
        match PublicKey::read(&p) {
            Ok(k) => keys.push(k),
            Err(e) => tracing::error!(error = %e, "HOTFIX_TRUSTED_KEYS: key not trusted"),
        }
    }
    (keys, named)
}
