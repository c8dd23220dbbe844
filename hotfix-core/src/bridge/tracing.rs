//! `tracing` in patch code reaches the host's subscriber.
//!
//! A patch links its own copy of `tracing-core`: its own global dispatcher
//! (never set) and its own call-site registry, so left alone its events reach
//! no subscriber. Binding sets [`Forward`] as the global default of the
//! patch's copy: every span and event goes to the dispatcher the calling host
//! thread uses at that moment (its scoped default, else the global one). Call
//! sites are registered with the host's dispatcher but always answer
//! "sometimes", so a subscriber the host installs later is asked too.

use crate::abi::{HostApi, TracingHost};
use tracing_core::span::{Attributes, Current, Id, Record};
use tracing_core::subscriber::Interest;
use tracing_core::{Dispatch, Event, LevelFilter, Metadata, Subscriber, dispatcher};

/// Host side: the host's dispatcher, as the patch's [`Forward`] calls it.
pub(crate) static HOST: TracingHost = TracingHost {
    register_callsite,
    enabled,
    new_span,
    record,
    record_follows_from,
    event,
    enter,
    exit,
    clone_span,
    try_close,
    current_span,
};

fn register_callsite(m: &'static Metadata<'static>) {
    dispatcher::get_default(|d| {
        d.register_callsite(m);
    });
}
fn enabled(m: &Metadata<'_>) -> bool {
    dispatcher::get_default(|d| d.enabled(m))
}
fn new_span(a: &Attributes<'_>) -> Id {
    dispatcher::get_default(|d| d.new_span(a))
}
fn record(id: &Id, r: &Record<'_>) {
    dispatcher::get_default(|d| d.record(id, r));
}
fn record_follows_from(id: &Id, follows: &Id) {
    dispatcher::get_default(|d| d.record_follows_from(id, follows));
}
fn event(e: &Event<'_>) {
    dispatcher::get_default(|d| d.event(e));
}
fn enter(id: &Id) {
    dispatcher::get_default(|d| d.enter(id));
}
fn exit(id: &Id) {
    dispatcher::get_default(|d| d.exit(id));
}
fn clone_span(id: &Id) -> Id {
    dispatcher::get_default(|d| d.clone_span(id))
}
fn try_close(id: Id) -> bool {
    dispatcher::get_default(|d| d.try_close(id.clone()))
}
fn current_span() -> Current {
    dispatcher::get_default(|d| d.current_span())
}

/// Patch side: the subscriber of the patch's copy of `tracing-core`.
struct Forward(&'static TracingHost);

impl Subscriber for Forward {
    fn register_callsite(&self, m: &'static Metadata<'static>) -> Interest {
        (self.0.register_callsite)(m);
        Interest::sometimes()
    }
    fn max_level_hint(&self) -> Option<LevelFilter> {
        // The host's subscriber may change: every level is asked about.
        Some(LevelFilter::TRACE)
    }
    fn enabled(&self, m: &Metadata<'_>) -> bool {
        (self.0.enabled)(m)
    }
    fn new_span(&self, a: &Attributes<'_>) -> Id {
        (self.0.new_span)(a)
    }
    fn record(&self, id: &Id, r: &Record<'_>) {
        (self.0.record)(id, r)
    }
    fn record_follows_from(&self, id: &Id, follows: &Id) {
        (self.0.record_follows_from)(id, follows)
    }
    fn event(&self, e: &Event<'_>) {
        (self.0.event)(e)
    }
    fn enter(&self, id: &Id) {
        (self.0.enter)(id)
    }
    fn exit(&self, id: &Id) {
        (self.0.exit)(id)
    }
    fn clone_span(&self, id: &Id) -> Id {
        (self.0.clone_span)(id)
    }
    fn try_close(&self, id: Id) -> bool {
        (self.0.try_close)(id)
    }
    fn current_span(&self) -> Current {
        (self.0.current_span)()
    }
}

/// Patch side: makes the host's dispatcher the patch's global default.
pub(crate) fn bind_patch(api: &'static HostApi) {
    // Fails only if something set it before: then the patch keeps it.
    if dispatcher::set_global_default(Dispatch::new(Forward(api.tracing))).is_err() {
        ::tracing::warn!(
            "the patch's tracing dispatcher was set before binding; its events stay in the patch"
        );
    }
}
