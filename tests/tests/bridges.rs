//! A patch's `tracing` and `log` reach the host's subscriber and logger: its
//! events arrive with their fields, inside the host's current span, filtered
//! by the host's filter, at the thread's scoped subscriber when one is set;
//! its log records reach the host's logger.

use fixture_host::sum;
use hotfix_core::Runtime;
use hotfix_tests::{build_patch, serial};
use std::fmt::Write as _;
use std::sync::{Arc, Mutex};
use tracing::Subscriber;
use tracing::field::{Field, Visit};
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::{Layer, filter::LevelFilter};

type Seen = Arc<Mutex<Vec<String>>>;

/// Records each event as `target: fields (span: a > b)`.
struct Capture(Seen);

struct Fields(String);

impl Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        let _ = write!(self.0, "{}={:?} ", field.name(), value);
    }
}

impl<S: Subscriber + for<'a> LookupSpan<'a>> Layer<S> for Capture {
    fn on_event(&self, event: &tracing::Event<'_>, ctx: Context<'_, S>) {
        let mut fields = Fields(String::new());
        event.record(&mut fields);
        let spans: Vec<String> = ctx
            .event_scope(event)
            .map(|scope| scope.from_root().map(|s| s.name().to_owned()).collect())
            .unwrap_or_default();
        self.0.lock().unwrap().push(format!(
            "{}: {} (span: {})",
            event.metadata().target(),
            fields.0.trim_end(),
            spans.join(" > ")
        ));
    }
}

fn capture(level: LevelFilter) -> (impl Subscriber + Send + Sync, Seen) {
    let seen = Seen::default();
    let sub = tracing_subscriber::registry().with(Capture(Arc::clone(&seen)).with_filter(level));
    (sub, seen)
}

struct Logger(Mutex<Vec<String>>);

impl log::Log for Logger {
    fn enabled(&self, m: &log::Metadata<'_>) -> bool {
        m.level() <= log::Level::Info
    }
    fn log(&self, r: &log::Record<'_>) {
        if self.enabled(r.metadata()) {
            self.0
                .lock()
                .unwrap()
                .push(format!("{} {}: {}", r.level(), r.target(), r.args()));
        }
    }
    fn flush(&self) {}
}

static LOGGER: Logger = Logger(Mutex::new(Vec::new()));

#[test]
fn a_patchs_tracing_and_log_reach_the_hosts_subscriber_and_logger() {
    let path = build_patch("traced");
    let _guard = serial();
    let (global, seen) = capture(LevelFilter::INFO);
    tracing::subscriber::set_global_default(global).expect("the test's global subscriber");
    log::set_logger(&LOGGER).expect("the test's logger");
    log::set_max_level(log::LevelFilter::Info);

    assert_eq!(sum(2, 3), -1, "the shipped bug before the apply");
    assert!(
        seen.lock().unwrap().is_empty(),
        "{:?}",
        seen.lock().unwrap()
    );
    Runtime::global().apply(&path).expect("apply traced");

    let request = tracing::info_span!("request");
    let entered = request.enter();
    assert_eq!(sum(2, 3), 5, "the fix is live");
    drop(entered);

    let events = seen.lock().unwrap().clone();
    let from_patch: Vec<&String> = events.iter().filter(|e| e.starts_with("traced")).collect();
    assert_eq!(
        from_patch,
        [
            &"traced: message=sum fixed by the patch a=2 b=3 (span: request > patched_sum)"
                .to_owned()
        ],
        "one event, with its fields, inside the host's span and the patch's own; \
         the debug event filtered out by the host's filter: {events:?}"
    );
    let records = LOGGER.0.lock().unwrap().clone();
    assert!(
        records.contains(&"WARN traced: log from the patch: 2 + 3".to_owned()),
        "{records:?}"
    );

    // A thread's scoped subscriber gets the patch's events, not the global one.
    let (scoped, scoped_seen) = capture(LevelFilter::DEBUG);
    let before = seen.lock().unwrap().len();
    tracing::subscriber::with_default(scoped, || assert_eq!(sum(4, 4), 8));
    let scoped_events = scoped_seen.lock().unwrap().clone();
    assert!(
        scoped_events
            .iter()
            .any(|e| e == "traced: message=sum fixed by the patch a=4 b=4 (span: patched_sum)"),
        "{scoped_events:?}"
    );
    assert!(
        scoped_events
            .iter()
            .any(|e| e.starts_with("traced: message=a debug event of the patch")),
        "the scoped subscriber's own filter lets debug through: {scoped_events:?}"
    );
    assert_eq!(
        seen.lock().unwrap().len(),
        before,
        "the global saw none of them"
    );
}
