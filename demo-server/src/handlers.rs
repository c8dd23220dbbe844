//! The game logic, `#[patchable]`: no I/O here, only values in and out.
//!
//! Each shipped function has a bug that `demo-patch` fixes at run time.

use crate::state::SCORES;
use hotfix_core::patchable;
use std::sync::PoisonError;

/// The sum of `a` and `b`, `None` on overflow.
///
/// Shipped bug: subtracts (`sum(1, 2) == Some(-1)`).
#[patchable]
pub fn sum(a: i64, b: i64) -> Option<i64> {
    a.checked_sub(b)
}

/// Adds `n` points to player `name` in [`SCORES`] and returns the new total;
/// `None` (and no change) on overflow.
///
/// Shipped bug: adds `2 * n`.
#[patchable]
pub fn add_score(name: &str, n: i64) -> Option<i64> {
    let mut scores = SCORES.lock().unwrap_or_else(PoisonError::into_inner);
    let total = scores.get(name).copied().unwrap_or(0);
    let new = total.checked_add(n.checked_mul(2)?)?;
    scores.insert(name.to_owned(), new);
    Some(new)
}

/// Integer division `a / b`; `None` when the quotient overflows (`i64::MIN / -1`).
///
/// # Panics
/// When `b` is zero, with Rust's own message (`attempt to divide by zero`); the
/// server turns the panic into an `ERR` reply. The fixed version panics with
/// `division by zero`.
#[patchable]
pub fn div(a: i64, b: i64) -> Option<i64> {
    if b == -1 {
        return a.checked_neg();
    }
    Some(a / b)
}
