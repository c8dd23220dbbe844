//! Real patch cdylibs, `dlopen`ed through the public API: apply, revert, stacks.

use fixture_host::{Describe, Player, answer, c_twice, greet, name_len, read_byte, sum};
use hotfix_core::{Error, Runtime};
use hotfix_tests::{build_patch, serial};

fn rt() -> &'static Runtime {
    Runtime::global()
}

/// Polls a future that never waits (the fixtures' async functions do not).
fn block_on<F: std::future::Future>(f: F) -> F::Output {
    let mut f = std::pin::pin!(f);
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    loop {
        if let std::task::Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return v;
        }
    }
}

/// Results of every kind of patchable function: free, method, trait method,
/// async, unsafe, extern "C".
fn kinds(p: &Player) -> (String, usize, u8) {
    let byte = 7u8;
    // SAFETY: points at a live byte.
    let read = unsafe { read_byte(&byte) };
    (p.describe(), block_on(name_len("abc", &1)), read)
}

#[test]
fn apply_changes_results_and_revert_restores_them() {
    let _g = serial();
    let good = build_patch("good");
    let p = Player { xp: 250 };
    assert_eq!(
        (sum(1, 2), answer(), greet("ann"), p.level(), c_twice(4)),
        (-1, 40, "hello ann".to_string(), 4, 8)
    );

    assert_eq!(kinds(&p), ("player with 250 xp".to_string(), 4, 7));
    // A future created before the patch keeps its code.
    let early = name_len("abc", &1);

    let applied = rt().apply(&good).expect("apply the good patch");
    assert_eq!(kinds(&p), ("level 3 player".to_string(), 301, 8));
    assert_eq!(
        block_on(early),
        4,
        "a future already created runs the old code"
    );
    assert_eq!(applied.name, "good");
    assert_eq!(sum(1, 2), 3);
    assert_eq!(answer(), 42);
    assert_eq!(greet("ann"), "hi ann");
    assert_eq!(p.level(), 3);
    assert_eq!(c_twice(4), 12);
    // A function pointer taken before the patch passes through the entry too.
    let f: fn(i64, i64) -> i64 = sum;
    assert_eq!(f(5, 5), 10);

    let status = rt().status();
    assert_eq!(status.patches.len(), 1);
    let live = status.live("fixture_host::sum").expect("sum is patched");
    assert_eq!(
        (live.patch.as_str(), live.version.as_str()),
        ("good", "1.0.0")
    );
    assert!(status.live("fixture_host::Player::level").is_some());
    assert_eq!(status.to_string().split_whitespace().next(), Some("good"));

    rt().revert_newest().expect("revert");
    assert_eq!(
        (sum(1, 2), answer(), greet("ann"), p.level(), c_twice(4)),
        (-1, 40, "hello ann".to_string(), 4, 8)
    );
    assert_eq!(kinds(&p), ("player with 250 xp".to_string(), 4, 7));
    assert_eq!(f(5, 5), 0);
    assert!(rt().status().patches.is_empty());
    assert_eq!(rt().status().to_string(), "none");
}

#[test]
fn the_same_patch_twice_is_refused_and_reapply_after_revert_works() {
    let _g = serial();
    let good = build_patch("good");
    rt().apply(&good).expect("first apply");
    let err = rt().apply(&good).expect_err("second apply must be refused");
    assert!(matches!(err, Error::AlreadyApplied { .. }), "{err}");
    assert!(err.to_string().contains("already applied"), "{err}");
    assert_eq!(sum(1, 2), 3, "the first apply is still live");
    assert_eq!(rt().status().patches.len(), 1);
    rt().revert_newest().expect("revert");
    assert_eq!(sum(1, 2), -1);
    rt().apply(&good).expect("apply again after revert");
    assert_eq!(sum(1, 2), 3);
    rt().revert_all().expect("revert all");
    assert_eq!(sum(1, 2), -1);
}

#[test]
fn three_stacked_patches_with_the_middle_one_reverted() {
    let _g = serial();
    let (a, b, c) = (
        build_patch("layer_a"),
        build_patch("layer_b"),
        build_patch("layer_c"),
    );
    let ia = rt().apply(&a).expect("a").id;
    let ib = rt().apply(&b).expect("b").id;
    let ic = rt().apply(&c).expect("c").id;
    // sum: c on top; answer: b on top (c does not replace it).
    assert_eq!((sum(1, 2), answer()), (303, 2));
    assert_eq!(
        rt().status().live("fixture_host::answer").map(|f| f.id),
        Some(ib)
    );

    rt().revert(ib).expect("revert the middle patch");
    assert_eq!(
        (sum(1, 2), answer()),
        (303, 1),
        "answer falls back to a, sum stays c"
    );
    let status = rt().status();
    assert_eq!(
        status.patches.iter().map(|p| p.id).collect::<Vec<_>>(),
        vec![ia, ic]
    );
    assert_eq!(status.live("fixture_host::sum").map(|f| f.id), Some(ic));
    assert_eq!(status.live("fixture_host::answer").map(|f| f.id), Some(ia));

    rt().revert_newest().expect("revert c");
    assert_eq!((sum(1, 2), answer()), (103, 1));
    rt().revert(ia).expect("revert a");
    assert_eq!((sum(1, 2), answer()), (-1, 40));
    let err = rt().revert_newest().expect_err("nothing left");
    assert!(matches!(err, Error::NothingApplied), "{err}");
    let err = rt().revert(ib).expect_err("b is not applied");
    assert!(
        matches!(err, Error::NothingApplied | Error::NotApplied { .. }),
        "{err}"
    );
}

/// The entry strategy, checked at the entries themselves: each entry stub's
/// jump goes to the patch's replacement (its address in the loaded copy of the
/// patch file, from the file's symbol table), a call of the entry's address (as
/// C code or a pointer taken by foreign code makes, not the Rust wrapper, which
/// reads the slot) runs it, and after the revert the stub's bytes are the
/// unpatched layout again and a call of the entry runs the original. A sync,
/// an `async` and an `extern "C"` function.
#[test]
fn entry_strategy_redirects_the_entry_and_revert_restores_it() {
    use hotfix_core::arch::{EntryState, check_entry};
    use hotfix_core::{ApplyOptions, Strategy};
    use hotfix_tests::entry::{
        assert_replacement, assert_unpatched, block_on, c_twice_entry, desc, name_len_entry,
        redirect_target, sum_entry,
    };
    let _g = serial();
    let good = build_patch("good");
    let ds = [
        desc("fixture_host::sum"),
        desc("fixture_host::name_len"),
        desc("fixture_host::c_twice"),
    ];
    let (sum_e, len_e, twice_e) = (sum_entry(), name_len_entry(), c_twice_entry());
    let via_entries = || (sum_e(1, 2), block_on(len_e("abc", &1)), twice_e(4));
    for d in ds {
        assert_unpatched(d);
        assert_eq!(
            check_entry(d.entry.cast()).expect("entry"),
            EntryState::Unpatched
        );
    }
    assert_eq!(via_entries(), (-1, 4, 8), "the entries run the originals");

    rt().apply_with(
        &good,
        ApplyOptions {
            strategy: Strategy::Entry,
        },
    )
    .expect("apply with the entry strategy");
    for (d, name) in ds.iter().zip(["sum", "name_len", "c_twice"]) {
        let target = assert_replacement(redirect_target(d), &good, name);
        assert_eq!(
            check_entry(d.entry.cast()).expect("entry"),
            EntryState::Redirected(target),
            "{name}: the runtime reads the same redirect"
        );
    }
    assert_eq!(
        via_entries(),
        (3, 301, 12),
        "the entries run the replacements"
    );
    assert_eq!(
        (sum(1, 2), block_on(name_len("abc", &1)), c_twice(4)),
        (3, 301, 12),
        "calls by name too"
    );

    rt().revert_newest().expect("revert");
    for d in ds {
        assert_unpatched(d);
        assert_eq!(
            check_entry(d.entry.cast()).expect("entry"),
            EntryState::Unpatched
        );
    }
    assert_eq!(
        via_entries(),
        (-1, 4, 8),
        "the entries run the originals again"
    );
    assert_eq!(
        (sum(1, 2), block_on(name_len("abc", &1)), c_twice(4)),
        (-1, 4, 8)
    );
}
