//! `log` in patch code reaches the host's logger.
//!
//! A patch links its own copy of `log`, whose logger is never set. Binding
//! sets [`Forward`] as that copy's logger with every level let through; the
//! host's logger and the host's maximum level decide, at each record.

use crate::abi::{HostApi, LogHost};
use log::{Log, Metadata, Record};

/// Host side: the host's logger, as the patch's [`Forward`] calls it.
pub(crate) static HOST: LogHost = LogHost {
    enabled,
    log: log_record,
    flush,
};

fn enabled(m: &Metadata<'_>) -> bool {
    m.level() <= log::max_level() && log::logger().enabled(m)
}
fn log_record(r: &Record<'_>) {
    if r.level() <= log::max_level() {
        log::logger().log(r);
    }
}
fn flush() {
    log::logger().flush();
}

/// Patch side: the logger of the patch's copy of `log`.
struct Forward(&'static LogHost);

impl Log for Forward {
    fn enabled(&self, m: &Metadata<'_>) -> bool {
        (self.0.enabled)(m)
    }
    fn log(&self, r: &Record<'_>) {
        (self.0.log)(r)
    }
    fn flush(&self) {
        (self.0.flush)()
    }
}

/// Patch side: makes the host's logger the patch's.
pub(crate) fn bind_patch(api: &'static HostApi) {
    let forward: &'static Forward = Box::leak(Box::new(Forward(api.log)));
    match log::set_logger(forward) {
        Ok(()) => log::set_max_level(log::LevelFilter::Trace),
        Err(_) => {
            tracing::warn!(
                "the patch's logger was set before binding; its records stay in the patch"
            )
        }
    }
}
