//! The host's side: its registered functions and statics, and what it lends to
//! patches.

use crate::abi::{CrateIdentity, FnDesc, HostApi, SharedDesc};
use crate::bridge::alloc::host as alloc;
use std::collections::{HashMap, HashSet};
use std::sync::OnceLock;

/// The host's `#[patchable]` functions and `#[shared]` statics, by path.
pub(crate) struct HostIndex {
    pub fns: HashMap<&'static str, &'static FnDesc>,
    pub shared: HashMap<&'static str, &'static SharedDesc>,
    /// Crates that own them: a patch's private copy of a static of these crates
    /// would be a silent fork of host state.
    pub crates: HashSet<String>,
    /// Each crate's identity as the host was built, by crate name.
    pub identities: HashMap<&'static str, &'static CrateIdentity>,
}

/// The index, built once from the linker-collected registrations.
pub(crate) fn index() -> &'static HostIndex {
    static INDEX: OnceLock<HostIndex> = OnceLock::new();
    INDEX.get_or_init(|| {
        let mut fns = HashMap::new();
        let mut crates = HashSet::new();
        let mut identities = HashMap::new();
        for d in crate::private::FNS.iter() {
            crates.insert(first_segment(d.meta.path));
            keep_listed(&mut identities, d.meta.krate);
            if fns.insert(d.meta.path, d).is_some() {
                tracing::warn!(
                    path = d.meta.path,
                    "two #[patchable] functions share one path; patches reach the last one"
                );
            }
        }
        let mut shared = HashMap::new();
        for d in crate::private::SHARED.iter() {
            crates.insert(first_segment(d.path));
            keep_listed(&mut identities, d.krate);
            shared.insert(d.path, d);
        }
        HostIndex {
            fns,
            shared,
            crates,
            identities,
        }
    })
}

/// Records a crate's identity, keeping the one that lists the items (only one
/// function of each crate carries the list).
fn keep_listed(
    identities: &mut HashMap<&'static str, &'static CrateIdentity>,
    id: &'static CrateIdentity,
) {
    let slot = identities.entry(id.name).or_insert(id);
    if slot.items.is_empty() {
        *slot = id;
    }
}

fn first_segment(path: &str) -> String {
    path.split("::").next().unwrap_or(path).to_owned()
}

/// What the host lends every patch.
pub(crate) static HOST_API: HostApi = HostApi {
    alloc: alloc::alloc,
    alloc_zeroed: alloc::alloc_zeroed,
    dealloc: alloc::dealloc,
    realloc: alloc::realloc,
    raise: crate::bridge::panic::host_raise,
    tracing: &crate::bridge::tracing::HOST,
    log: &crate::bridge::log::HOST,
    #[cfg(feature = "tokio")]
    tokio_handle: crate::bridge::tokio::host_handle,
};
