//! The status as an immutable snapshot, published after every apply and revert
//! (under the runtime's lock, so snapshots are published in order). Reading it
//! takes no lock: `status` never waits behind an apply.

use crate::status::Status;
use arc_swap::ArcSwap;
use std::sync::{Arc, LazyLock};

static SNAPSHOT: LazyLock<ArcSwap<Status>> =
    LazyLock::new(|| ArcSwap::from_pointee(Status::default()));

/// Replaces the published status. Called by the runtime, with its lock held,
/// after an apply or revert succeeded.
pub(crate) fn publish(status: Status) {
    SNAPSHOT.store(Arc::new(status));
}

/// The status published last: what is applied now, unless an apply or revert is
/// in progress, in which case it is what was applied before it.
pub fn current() -> Arc<Status> {
    SNAPSHOT.load_full()
}
