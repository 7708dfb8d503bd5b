//! The log's rate limit: each call site (one `tracing::warn!` in the code)
//! may write `per_second` lines a second, with bursts of `burst`
//! (`--log-lines-per-second`, 0 = no limit). A flood — ten thousand clients
//! failing the same way at once — then costs a few lines a second, not a
//! disk or a collector; the lines dropped are counted
//! (`switchboard_logs_suppressed_total`) and, every [`REPORT_EVERY`], one
//! line says how many there were. Spans are never limited (a connection's
//! span carries its fields for the lines that are written).

use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use switchboard_proto::token_bucket::TokenBucket;
use tracing::{Event, Metadata, callsite::Identifier, subscriber::Interest};
use tracing_subscriber::layer::{Context, Filter};

/// How often a line reports the lines suppressed meanwhile.
pub const REPORT_EVERY: Duration = Duration::from_secs(10);
/// Call sites followed at once: past it, new ones share the limit of the
/// first call site dropped (there are a few hundred in the code).
const MAX_SITES: usize = 4096;

/// A per-call-site rate on log lines (a per-layer filter).
#[derive(Debug, Clone)]
pub struct LogRate {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    sites: Mutex<HashMap<Identifier, TokenBucket>>,
    per_second: u32,
    burst: u32,
    /// Lines dropped since the last report.
    suppressed: AtomicU64,
}

impl LogRate {
    pub fn new(per_second: u32, burst: u32) -> Self {
        Self {
            inner: Arc::new(Inner {
                sites: Mutex::default(),
                per_second: per_second.max(1),
                burst: burst.max(1),
                suppressed: AtomicU64::new(0),
            }),
        }
    }

    /// Whether one more line of call site `site` may be written at `now`.
    fn admit(&self, site: Identifier, now: Instant) -> bool {
        let inner = &self.inner;
        let mut sites = inner.sites.lock().unwrap_or_else(|p| p.into_inner());
        if sites.len() >= MAX_SITES && !sites.contains_key(&site) {
            sites.retain(|_, bucket| !bucket.is_full(now));
        }
        let admitted = sites
            .entry(site)
            .or_insert_with(|| TokenBucket::new(inner.per_second, inner.burst, now))
            .try_take(now);
        if !admitted {
            inner.suppressed.fetch_add(1, Ordering::Relaxed);
            switchboard_proto::metrics::metrics().logs_suppressed.inc();
        }
        admitted
    }

    /// The lines dropped since the last call.
    pub fn take_suppressed(&self) -> u64 {
        self.inner.suppressed.swap(0, Ordering::Relaxed)
    }

    /// Writes, every [`REPORT_EVERY`], how many lines were dropped, until
    /// the process ends (the task is the log's: it lives as long).
    pub async fn report(self) {
        let mut every = tokio::time::interval(REPORT_EVERY);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            every.tick().await;
            let suppressed = self.take_suppressed();
            if suppressed > 0 {
                tracing::warn!(
                    suppressed,
                    "log lines dropped by the log's rate limit (--log-lines-per-second)"
                );
            }
        }
    }
}

impl<S> Filter<S> for LogRate {
    fn enabled(&self, _meta: &Metadata<'_>, _cx: &Context<'_, S>) -> bool {
        true
    }

    fn callsite_enabled(&self, meta: &'static Metadata<'static>) -> Interest {
        // Events are decided one by one (`event_enabled`); spans always pass.
        if meta.is_event() {
            Interest::sometimes()
        } else {
            Interest::always()
        }
    }

    fn event_enabled(&self, event: &Event<'_>, _cx: &Context<'_, S>) -> bool {
        self.admit(event.metadata().callsite(), Instant::now())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;

    use tracing_subscriber::{Layer, layer::SubscriberExt};

    use super::*;

    /// Counts the lines it is given.
    struct Count(Arc<AtomicUsize>);
    impl<S: tracing::Subscriber> Layer<S> for Count {
        fn on_event(&self, _event: &Event<'_>, _cx: tracing_subscriber::layer::Context<'_, S>) {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
    }

    #[test]
    fn a_flooding_call_site_is_cut_to_its_burst_and_others_still_write() {
        let written = Arc::new(AtomicUsize::new(0));
        let rate = LogRate::new(1, 3);
        let subscriber =
            tracing_subscriber::registry().with(Count(written.clone()).with_filter(rate.clone()));
        tracing::subscriber::with_default(subscriber, || {
            for n in 0..100 {
                tracing::warn!(n, "the same failure, again");
            }
            tracing::warn!("another call site");
        });
        // The burst of the first site (and what refilled within the loop,
        // at 1 a second: nothing), and the other site's line.
        assert_eq!(written.load(Ordering::Relaxed), 3 + 1);
        assert_eq!(rate.take_suppressed(), 97);
        assert_eq!(rate.take_suppressed(), 0);
    }

    #[test]
    fn a_call_site_writes_again_as_its_rate_refills() {
        struct Site;
        impl tracing::Callsite for Site {
            fn set_interest(&self, _: Interest) {}
            fn metadata(&self) -> &Metadata<'_> {
                unreachable!()
            }
        }
        static SITE: Site = Site;
        let rate = LogRate::new(2, 2);
        let t0 = Instant::now();
        let site = || Identifier(&SITE);
        assert!(rate.admit(site(), t0));
        assert!(rate.admit(site(), t0));
        assert!(!rate.admit(site(), t0));
        assert!(!rate.admit(site(), t0 + Duration::from_millis(100)));
        assert!(rate.admit(site(), t0 + Duration::from_millis(600)));
        assert_eq!(rate.take_suppressed(), 2);
    }
}
