//! The per-call loops of the `slot_call` bench that callgrind counts and the
//! paired mode times: one `#[inline(never)]` function per row, and the state
//! (`add`'s and `async_add`'s slots and entry) each row runs in.

use super::{
    add, async_add, bare_replacement, block_on, desc_of, desc_of_add, patch_entry_of, plain_add,
    plain_async_add, set_live, set_live_async,
};
use std::hint::black_box;

/// One function per row, each calling its row `n` times, for callgrind. Each
/// returns its sum minus its own number, once after the loop: rows with the
/// same loop must not be folded into one function by the linker.
macro_rules! callgrind_rows {
    ($($name:ident, $id:literal => $call:expr;)*) => {
        $(
            #[unsafe(no_mangle)]
            #[inline(never)]
            pub fn $name(n: u64) -> i64 {
                let mut sum = 0i64;
                for _ in 0..n {
                    sum = sum.wrapping_add($call);
                }
                sum.wrapping_sub($id)
            }
        )*
    };
}

callgrind_rows! {
    callgrind_row_plain, 1 => plain_add(black_box(20), black_box(22));
    callgrind_row_plain_via_fn_ptr, 2 =>
        black_box(plain_add as fn(i64, i64) -> i64)(black_box(20), black_box(22));
    callgrind_row_patchable_unpatched, 3 => add(black_box(20), black_box(22));
    callgrind_row_patchable_unpatched_via_fn_ptr, 4 =>
        black_box(add as fn(i64, i64) -> i64)(black_box(20), black_box(22));
    callgrind_row_patchable_slot_patched, 5 => add(black_box(20), black_box(22));
    callgrind_row_patchable_slot_patched_via_fn_ptr, 6 =>
        black_box(add as fn(i64, i64) -> i64)(black_box(20), black_box(22));
    callgrind_row_patchable_entry_patched, 7 => add(black_box(20), black_box(22));
    callgrind_row_patchable_slot_on_entry, 11 => add(black_box(20), black_box(22));
    callgrind_row_async_plain, 8 => block_on(plain_async_add(black_box(20), black_box(22)));
    callgrind_row_async_unpatched, 9 => block_on(async_add(black_box(20), black_box(22)));
    callgrind_row_async_patched, 10 => block_on(async_add(black_box(20), black_box(22)));
}

/// The state a row runs in.
#[derive(Clone, Copy, PartialEq)]
enum State {
    /// Nothing replaced.
    Unpatched,
    /// `add`'s slot holds the `#[patch]` replacement.
    SlotPatched,
    /// `add`'s slot on its entry, the entry redirected to a bare replacement.
    EntryPatched,
    /// `add`'s slot on its (unredirected) entry.
    SlotOnEntry,
    /// `async_add`'s slot holds the `#[patch]` replacement.
    AsyncPatched,
}

/// A row of the callgrind and paired runs: its function, the number it
/// subtracts from its sum, its state and the row it is compared with.
type Row = (&'static str, fn(u64) -> i64, i64, State, &'static str);

const LOOP_ROWS: &[Row] = &[
    ("plain", callgrind_row_plain, 1, State::Unpatched, "plain"),
    (
        "plain_via_fn_ptr",
        callgrind_row_plain_via_fn_ptr,
        2,
        State::Unpatched,
        "plain",
    ),
    (
        "patchable_unpatched",
        callgrind_row_patchable_unpatched,
        3,
        State::Unpatched,
        "plain",
    ),
    (
        "patchable_unpatched_via_fn_ptr",
        callgrind_row_patchable_unpatched_via_fn_ptr,
        4,
        State::Unpatched,
        "plain_via_fn_ptr",
    ),
    (
        "patchable_slot_patched",
        callgrind_row_patchable_slot_patched,
        5,
        State::SlotPatched,
        "plain",
    ),
    (
        "patchable_slot_patched_via_fn_ptr",
        callgrind_row_patchable_slot_patched_via_fn_ptr,
        6,
        State::SlotPatched,
        "plain_via_fn_ptr",
    ),
    (
        "patchable_entry_patched",
        callgrind_row_patchable_entry_patched,
        7,
        State::EntryPatched,
        "plain",
    ),
    (
        "patchable_slot_on_entry",
        callgrind_row_patchable_slot_on_entry,
        11,
        State::SlotOnEntry,
        "plain",
    ),
    (
        "async_plain",
        callgrind_row_async_plain,
        8,
        State::Unpatched,
        "async_plain",
    ),
    (
        "async_unpatched",
        callgrind_row_async_unpatched,
        9,
        State::Unpatched,
        "async_plain",
    ),
    (
        "async_patched",
        callgrind_row_async_patched,
        10,
        State::AsyncPatched,
        "async_plain",
    ),
];

/// Puts `add` and `async_add` in `state` (`Unpatched` restores everything).
fn enter(state: State) {
    let desc = desc_of_add();
    let entry = desc.entry as *const u8;
    // SAFETY: the entry of `add`; the bare replacement has its signature.
    unsafe {
        match state {
            State::EntryPatched => {
                hotfix_core::arch::redirect_entry(entry, bare_replacement as *const () as usize)
            }
            _ => hotfix_core::arch::restore_entry(entry),
        }
    }
    .expect("rewrite the entry");
    set_live(match state {
        State::SlotPatched => patch_entry_of("add").replacement,
        State::EntryPatched | State::SlotOnEntry => desc.entry,
        _ => desc.unpatched,
    });
    set_live_async(match state {
        State::AsyncPatched => patch_entry_of("async_add").replacement,
        _ => desc_of("async_add").unpatched,
    });
}

/// Runs every row `n` times in its own function, each in the state it names.
pub fn callgrind(n: u64) {
    for &(row, f, id, state, _) in LOOP_ROWS {
        enter(state);
        // The replacements return one more than the original: a patched row
        // shows it ran the replacement.
        let per_call = match state {
            State::SlotPatched | State::EntryPatched | State::AsyncPatched => 43,
            _ => 42,
        };
        assert_eq!(f(n) + id, (per_call * n) as i64, "{row} computed its sum");
    }
    enter(State::Unpatched);
}

/// Time ratios robust to a shared machine: in each of `rounds` rounds every
/// row runs `n` calls (in a rotating order) and is divided by its baseline's
/// time in the same round; prints the median ratio and ns/call of each row.
pub fn paired(rounds: usize, n: u64) {
    let mut times = vec![Vec::with_capacity(rounds); LOOP_ROWS.len()];
    for round in 0..rounds {
        for k in 0..LOOP_ROWS.len() {
            let i = (k + round) % LOOP_ROWS.len();
            let (_, f, _, state, _) = LOOP_ROWS[i];
            enter(state);
            black_box(f(1_000));
            let start = std::time::Instant::now();
            black_box(f(n));
            times[i].push(start.elapsed().as_secs_f64() * 1e9 / n as f64);
        }
    }
    enter(State::Unpatched);
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let index = |name: &str| LOOP_ROWS.iter().position(|r| r.0 == name).expect("row");
    println!(
        "| row | median ns/call (loop included) | median ratio to baseline, paired by round (baseline) |"
    );
    println!("| --- | ---: | --- |");
    for (i, &(row, _, _, _, base)) in LOOP_ROWS.iter().enumerate() {
        let b = index(base);
        let ratios = times[i].iter().zip(&times[b]).map(|(t, u)| t / u).collect();
        println!(
            "| `{row}` | {:.3} | {:.3}x ({base}) |",
            median(times[i].clone()),
            median(ratios)
        );
    }
}
