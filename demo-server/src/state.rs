//! The server's in-memory state, shared with patches.

use hotfix_core::shared;
use std::collections::HashMap;
use std::sync::{LazyLock, Mutex};

/// Points per player. `#[shared]`: a patch's `add_score` updates this very
/// table, so scores written before a patch are still there after it.
#[shared]
pub static SCORES: LazyLock<Mutex<HashMap<String, i64>>> = LazyLock::new(Default::default);
