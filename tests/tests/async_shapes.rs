//! Every async shape of `#[patchable]`, each with the real `async_shapes`
//! patch applied and reverted inside a tokio runtime. Every function awaits a
//! real yield, so each future is suspended and resumed by the runtime.

use fixture_host::async_shapes::{
    Account, Audit, Ledger, count_words, fetch, first_word, local_count,
};
use hotfix_core::Runtime;
use hotfix_tests::{build_patch, serial};

fn rt() -> &'static Runtime {
    Runtime::global()
}

fn apply() {
    rt().apply(build_patch("async_shapes"))
        .expect("apply the async_shapes patch");
}

fn revert() {
    rt().revert_newest().expect("revert the async_shapes patch");
}

/// Proves at compile time that a future is `Send`.
fn send<F: std::future::Future + Send>(f: F) -> F {
    f
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn owned_argument_send_future_spawned() {
    let _g = serial();
    assert_eq!(tokio::spawn(fetch(1)).await.expect("task"), 2);
    let early = fetch(10);
    apply();
    assert_eq!(tokio::spawn(fetch(1)).await.expect("task"), 3);
    assert_eq!(
        early.await,
        11,
        "a future created before the apply keeps the original"
    );
    let late = fetch(10);
    revert();
    assert_eq!(
        late.await,
        12,
        "a future created before the revert keeps the patch"
    );
    assert_eq!(tokio::spawn(fetch(1)).await.expect("task"), 2);
}

#[tokio::test]
async fn borrowed_arguments() {
    let _g = serial();
    let (text, extra) = (String::from("one two three"), 1u64);
    assert_eq!(send(count_words(&text, &extra)).await, 14);
    apply();
    assert_eq!(send(count_words(&text, &extra)).await, 4);
    revert();
    assert_eq!(count_words(&text, &extra).await, 14);
}

#[tokio::test]
async fn returning_borrowed_data() {
    let _g = serial();
    let text = String::from("alpha beta");
    assert_eq!(send(first_word(&text)).await, "alpha beta");
    apply();
    let word = first_word(&text).await;
    assert_eq!(word, "alpha");
    assert!(
        std::ptr::eq(word.as_ptr(), text.as_ptr()),
        "borrowed from the argument"
    );
    revert();
    assert_eq!(first_word(&text).await, "alpha beta");
}

#[tokio::test]
async fn not_send_future_on_a_local_set() {
    let _g = serial();
    let local = tokio::task::LocalSet::new();
    local
        .run_until(async {
            assert_eq!(
                tokio::task::spawn_local(local_count(1))
                    .await
                    .expect("task"),
                2
            );
            apply();
            // The replacement calls `original` (1 + 1) and adds 1.
            assert_eq!(
                tokio::task::spawn_local(local_count(1))
                    .await
                    .expect("task"),
                3
            );
            revert();
            assert_eq!(
                tokio::task::spawn_local(local_count(1))
                    .await
                    .expect("task"),
                2
            );
        })
        .await;
}

#[tokio::test]
async fn ref_self_method() {
    let _g = serial();
    let a = Account::new("ann lee", 100);
    assert_eq!(send(a.balance()).await, 101);
    apply();
    assert_eq!(a.balance().await, 100);
    revert();
    assert_eq!(a.balance().await, 101);
}

#[tokio::test]
async fn ref_mut_self_method() {
    let _g = serial();
    let mut a = Account::new("ann lee", 100);
    assert_eq!(send(a.deposit(10)).await, 120);
    apply();
    assert_eq!(a.deposit(10).await, 130);
    revert();
    assert_eq!(a.deposit(10).await, 150);
}

#[tokio::test]
async fn self_by_value_method() {
    let _g = serial();
    assert_eq!(send(Account::new("ann", 100).close()).await, 0);
    apply();
    assert_eq!(Account::new("ann", 100).close().await, 100);
    revert();
    assert_eq!(Account::new("ann", 100).close().await, 0);
}

#[tokio::test]
async fn method_returning_borrowed_data() {
    let _g = serial();
    let a = Account::new("ann lee", 1);
    assert_eq!(a.owner().await, "ann lee");
    apply();
    assert_eq!(send(a.owner()).await, "ann");
    revert();
    assert_eq!(a.owner().await, "ann lee");
}

#[tokio::test]
async fn native_async_fn_in_trait_impl() {
    let _g = serial();
    let a = Account::new("ann", 100);
    assert_eq!(send(a.with_bonus(5)).await, 100);
    apply();
    assert_eq!(a.with_bonus(5).await, 105);
    revert();
    assert_eq!(a.with_bonus(5).await, 100);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn async_trait_boxed_impl() {
    let _g = serial();
    let a = std::sync::Arc::new(Account::new("ann", 100));
    let dynamic: std::sync::Arc<dyn Audit + Send + Sync> = a.clone();
    assert_eq!(dynamic.scaled(3).await, 103);
    apply();
    assert_eq!(dynamic.scaled(3).await, 300);
    let spawned = tokio::spawn(async move { dynamic.scaled(2).await });
    assert_eq!(spawned.await.expect("task"), 200);
    revert();
    assert_eq!(a.scaled(3).await, 103);
}

/// The entry strategy for `async fn`s: by name, and at the entry symbol's
/// address (as foreign code holding a pointer to it calls it): the jump there
/// goes to the patch's replacement, whose future a runtime then drives; after
/// the revert the entry runs the original's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entry_strategy_reaches_async_functions_too() {
    use hotfix_core::{ApplyOptions, Strategy};
    use hotfix_tests::entry::{assert_replacement, assert_unpatched, desc, redirect_target};
    type FetchEntry =
        fn(u64) -> std::pin::Pin<Box<dyn std::future::Future<Output = u64> + Send + 'static>>;
    let _g = serial();
    let d = desc("fixture_host::async_shapes::fetch");
    // SAFETY: the stub forwards registers and stack unchanged to the function
    // that boxes `fetch`'s future (or, redirected, to a replacement of the
    // same signature fingerprint): calling it as that function's type calls it.
    let fetch_at_entry = unsafe { std::mem::transmute::<*const (), FetchEntry>(d.entry) };
    assert_unpatched(d);
    assert_eq!(tokio::spawn(fetch_at_entry(1)).await.expect("task"), 2);
    let a = Account::new("ann", 100);
    let patch = build_patch("async_shapes");
    rt().apply_with(
        &patch,
        ApplyOptions {
            strategy: Strategy::Entry,
        },
    )
    .expect("apply with the entry strategy");
    assert_replacement(redirect_target(d), &patch, "fetch");
    assert_eq!(tokio::spawn(fetch_at_entry(1)).await.expect("task"), 3);
    assert_eq!(tokio::spawn(fetch(1)).await.expect("task"), 3);
    assert_eq!(a.balance().await, 100);
    assert_eq!(a.with_bonus(5).await, 105);
    revert();
    assert_unpatched(d);
    assert_eq!(tokio::spawn(fetch_at_entry(1)).await.expect("task"), 2);
    assert_eq!(tokio::spawn(fetch(1)).await.expect("task"), 2);
    assert_eq!(a.balance().await, 101);
}
