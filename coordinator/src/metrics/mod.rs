//! What `/metrics` shows: one registry of `prometheus-client` metrics per coordinator (no
//! global registry, so in-process tests each get their own).
//!
//! Two kinds, so that a scrape costs the same with 10 or 100,000 runs queued:
//! - **events** (counters and histograms: runs finished, dispatch latency, commit latency,
//!   RPCs…) are atomics updated where the event happens, by one-line calls from the engine,
//!   the log hub and the RPC layer;
//! - **state** (gauges: runs by state, why runs wait, groups, agents) comes from a
//!   [`Snapshot`] the engine makes on request in O(groups + agents + queue classes), from
//!   numbers it keeps as runs change ([`counts::RunCounts`]) — never a scan of the runs.
//!
//! Label values are bounded: states and reason classes are fixed lists, groups and agents
//! are what the farm defines, jobsets are capped at [`MAX_JOBSET_SERIES`] (the unfinished
//! jobsets most recently submitted to) and RPC methods are the ones the coordinator serves
//! (see `rpc`). No run ids.

pub mod counts;
pub mod footprint;
pub mod rpc;

use std::sync::Mutex;
use std::time::Duration;

use prometheus_client::encoding::{prometheus_text, text as openmetrics_text};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use footprint::Footprint;

/// At most this many jobsets get their own `rota_jobset_runs` series.
pub const MAX_JOBSET_SERIES: usize = 20;

type Labels = Vec<(&'static str, String)>;

fn label(key: &'static str, value: impl Into<String>) -> Labels {
    vec![(key, value.into())]
}

/// Submit → first start: from a millisecond (an idle farm) to an hour (a long queue).
const LATENCY_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
    300.0, 900.0, 3600.0,
];
/// Run durations: sub-second checks to day-long builds.
const DURATION_BUCKETS: &[f64] = &[
    0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 300.0, 600.0, 1800.0, 3600.0, 7200.0, 21600.0, 86400.0,
];
/// One transaction's commit (with its fsync): tens of microseconds to a stalled disk.
const COMMIT_BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0,
];
/// Commands per batch: 1 up to the engine's batch cap of 1024.
const BATCH_BUCKETS: &[f64] = &[
    1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0,
];

fn duration_histogram() -> Histogram {
    Histogram::new(DURATION_BUCKETS.iter().copied())
}

/// The coordinator's metrics. Cheap to share (`Arc`); every update is an atomic or a short
/// lock inside `prometheus-client`.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    /// Scrapes set the state gauges, then encode: one at a time, so two scrapes never
    /// interleave their gauge values.
    scrape: Mutex<()>,
    // -- events
    submitted: Counter,
    finished: Family<Labels, Counter>,
    retries: Counter,
    leases_expired: Family<Labels, Counter>,
    dispatch_latency: Histogram,
    run_duration: Family<Labels, Histogram, fn() -> Histogram>,
    commit_latency: Histogram,
    batch_size: Histogram,
    pub(crate) rpcs: Family<Labels, Counter>,
    // -- state, set from a snapshot at scrape time
    runs: Family<Labels, Gauge>,
    jobset_runs: Family<Labels, Gauge>,
    waiting: Family<Labels, Gauge>,
    group_running: Family<Labels, Gauge>,
    group_max: Family<Labels, Gauge>,
    agents: Family<Labels, Gauge>,
    slots: Gauge,
    slots_busy: Gauge,
    notifications: Family<Labels, Counter>,
    notifications_pending: Gauge,
    // -- the data dir's footprint (`footprint`), measured at scrape time
    store_bytes: Gauge,
    log_bytes: Gauge,
    artifact_bytes: Gauge,
    free_bytes: Gauge,
    oldest_run: Gauge,
    /// Open dashboard streams (`/events`, log tails): moved by [`StreamGuard`]s.
    dashboard_streams: Gauge,
}

/// One open dashboard stream, counted in `rota_dashboard_streams` until it is dropped (when
/// the response body is: the tab closed, the connection broke, or the stream ended).
#[derive(Debug)]
pub struct StreamGuard(Gauge);

impl Drop for StreamGuard {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// The engine's state numbers at one moment, made in O(groups + agents + queue classes).
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// Every run state with its count (all runs in the store).
    pub runs: Vec<(&'static str, u64)>,
    /// (jobset, unfinished state, count) for at most [`MAX_JOBSET_SERIES`] jobsets.
    pub jobset_runs: Vec<(String, &'static str, u64)>,
    /// Waiting runs by reason class (`sched::WAITING_CLASSES`).
    pub waiting: Vec<(&'static str, u64)>,
    /// (group, running, max).
    pub groups: Vec<(String, u32, u32)>,
    /// Agents by state (connected, draining, disconnected, lost).
    pub agents: Vec<(&'static str, u64)>,
    /// Slots of agents that take runs, and how many of them are busy.
    pub slots: u64,
    pub slots_busy: u64,
    /// Orphan leases that ran out since start (kept by the scheduler core).
    pub orphan_leases_expired: u64,
    /// Webhook POSTs since start by outcome (delivered, failed, given_up), kept by the engine.
    pub notifications: [(&'static str, u64); 3],
    /// Webhooks in the outbox still to deliver.
    pub notifications_pending: u64,
    /// Bytes of log files held (as `rota status` shows them).
    pub log_bytes: u64,
    /// When the oldest run held was submitted (unix ms); 0 for none.
    pub oldest_run_submitted_ms: u64,
}

impl Metrics {
    /// A registry with every rota metric; `log_bytes` is the log hub's counter.
    pub fn new(log_bytes: Counter) -> Metrics {
        let m = Metrics {
            registry: Registry::default(),
            scrape: Mutex::new(()),
            submitted: Counter::default(),
            finished: Family::default(),
            retries: Counter::default(),
            leases_expired: Family::default(),
            dispatch_latency: Histogram::new(LATENCY_BUCKETS.iter().copied()),
            run_duration: Family::new_with_constructor(duration_histogram),
            commit_latency: Histogram::new(COMMIT_BUCKETS.iter().copied()),
            batch_size: Histogram::new(BATCH_BUCKETS.iter().copied()),
            rpcs: Family::default(),
            runs: Family::default(),
            jobset_runs: Family::default(),
            waiting: Family::default(),
            group_running: Family::default(),
            group_max: Family::default(),
            agents: Family::default(),
            slots: Gauge::default(),
            slots_busy: Gauge::default(),
            notifications: Family::default(),
            notifications_pending: Gauge::default(),
            store_bytes: Gauge::default(),
            log_bytes: Gauge::default(),
            artifact_bytes: Gauge::default(),
            free_bytes: Gauge::default(),
            oldest_run: Gauge::default(),
            dashboard_streams: Gauge::default(),
        };
        // Series that exist from the start at zero, so a rate over them works from the first
        // event on.
        for kind in ["agent", "orphan"] {
            let _ = m.leases_expired.get_or_create(&label("kind", kind));
        }
        for state in ["success", "errored", "cancelled", "skipped", "retired"] {
            let _ = m.finished.get_or_create(&label("state", state));
        }
        let mut r = Registry::with_prefix("rota");
        r.register(
            "runs_submitted",
            "Runs submitted (by submit, trigger or schedule) since start",
            m.submitted.clone(),
        );
        r.register(
            "runs_finished",
            "Runs that reached a final state since start, by state",
            m.finished.clone(),
        );
        r.register(
            "retries",
            "Automatic retries (a failed or lost attempt queued again) since start",
            m.retries.clone(),
        );
        r.register("leases_expired", "Leases that ran out since start: kind=agent (an agent silent past its lease), kind=orphan (a run whose agent did not come back)", m.leases_expired.clone());
        r.register(
            "dispatch_latency_seconds",
            "From submit to the first attempt's assignment to an agent",
            m.dispatch_latency.clone(),
        );
        r.register(
            "run_duration_seconds",
            "From assignment to the final state of runs that ran, by final state",
            m.run_duration.clone(),
        );
        r.register(
            "log_stored_bytes",
            "Log bytes taken in from agents since start",
            log_bytes,
        );
        r.register(
            "store_commit_seconds",
            "Time to commit one engine batch to SQLite (with its fsync)",
            m.commit_latency.clone(),
        );
        r.register(
            "store_batch_commands",
            "Commands applied in one engine batch (one transaction)",
            m.batch_size.clone(),
        );
        r.register(
            "rpcs",
            "gRPC calls by method and final status code (a stream counts when it ends)",
            m.rpcs.clone(),
        );
        r.register("runs", "Runs in the store, by state", m.runs.clone());
        r.register("jobset_runs", "Unfinished runs by jobset and state, for the unfinished jobsets most recently submitted to", m.jobset_runs.clone());
        r.register(
            "runs_waiting",
            "Runs that wait, by the class of their waiting reason",
            m.waiting.clone(),
        );
        r.register(
            "group_running",
            "Runs counted against a concurrency group",
            m.group_running.clone(),
        );
        r.register(
            "group_max",
            "A concurrency group's max",
            m.group_max.clone(),
        );
        r.register("agents", "Agents by state", m.agents.clone());
        r.register(
            "agent_slots",
            "Slots of the agents that take runs (not draining)",
            m.slots.clone(),
        );
        r.register(
            "agent_slots_busy",
            "Slots of the agents that take runs, in use",
            m.slots_busy.clone(),
        );
        r.register(
            "notifications",
            "Webhook POSTs since start: outcome=delivered (answered 2xx), failed (each failed try), given_up (after retrying for a day)",
            m.notifications.clone(),
        );
        r.register(
            "notifications_pending",
            "Webhooks in the outbox still to deliver",
            m.notifications_pending.clone(),
        );
        r.register(
            "store_size_bytes",
            "Bytes of the SQLite store on disk (rota.db and its WAL)",
            m.store_bytes.clone(),
        );
        r.register(
            "log_bytes",
            "Bytes of the log files the data dir holds (a running attempt's count once it ends)",
            m.log_bytes.clone(),
        );
        r.register(
            "artifact_bytes",
            "Bytes of stored artifact content (each distinct content once)",
            m.artifact_bytes.clone(),
        );
        r.register(
            "data_dir_free_bytes",
            "Bytes an unprivileged writer may still use on the data dir's filesystem",
            m.free_bytes.clone(),
        );
        r.register(
            "oldest_run_submitted_timestamp_seconds",
            "When the oldest run the store holds was submitted (unix seconds; 0 when it holds none)",
            m.oldest_run.clone(),
        );
        r.register(
            "dashboard_streams",
            "Open dashboard streams (live updates and log tails); a closed tab's goes",
            m.dashboard_streams.clone(),
        );
        Metrics { registry: r, ..m }
    }

    /// `count` runs were submitted.
    pub fn submitted(&self, count: usize) {
        self.submitted.inc_by(count as u64);
    }

    /// A first attempt was assigned `waited` after its submit.
    pub fn dispatched(&self, waited: Duration) {
        self.dispatch_latency.observe(waited.as_secs_f64());
    }

    /// A dashboard stream opened: counted until the guard drops.
    pub fn stream_opened(&self) -> StreamGuard {
        self.dashboard_streams.inc();
        StreamGuard(self.dashboard_streams.clone())
    }

    /// A run ended in `state`; `ran` is how long since it was assigned, if it ran.
    pub fn finished(&self, state: &str, ran: Option<Duration>) {
        self.finished.get_or_create(&label("state", state)).inc();
        if let Some(ran) = ran {
            self.run_duration
                .get_or_create(&label("state", state))
                .observe(ran.as_secs_f64());
        }
    }

    /// A failed or lost attempt was queued again.
    pub fn retried(&self) {
        self.retries.inc();
    }

    /// An agent was silent past its lease.
    pub fn agent_lease_expired(&self) {
        self.leases_expired
            .get_or_create(&label("kind", "agent"))
            .inc();
    }

    /// A batch of `commands` committed in `took`.
    pub fn committed(&self, took: Duration, commands: usize) {
        self.commit_latency.observe(took.as_secs_f64());
        self.batch_size.observe(commands as f64);
    }

    /// The exposition of every metric, with the state gauges from `snap` and `disk`:
    /// OpenMetrics when the scraper asked for it, else the Prometheus text format (0.0.4).
    pub fn render(&self, snap: &Snapshot, disk: &Footprint, openmetrics: bool) -> String {
        let _one = self.scrape.lock().unwrap_or_else(|e| e.into_inner());
        set_all(
            &self.runs,
            snap.runs.iter().map(|(s, n)| (label("state", *s), *n)),
        );
        set_all(
            &self.jobset_runs,
            snap.jobset_runs
                .iter()
                .map(|(j, s, n)| (vec![("jobset", j.clone()), ("state", (*s).into())], *n)),
        );
        set_all(
            &self.waiting,
            snap.waiting.iter().map(|(r, n)| (label("reason", *r), *n)),
        );
        set_all(
            &self.group_running,
            snap.groups
                .iter()
                .map(|(g, running, _)| (label("group", g), u64::from(*running))),
        );
        set_all(
            &self.group_max,
            snap.groups
                .iter()
                .map(|(g, _, max)| (label("group", g), u64::from(*max))),
        );
        set_all(
            &self.agents,
            snap.agents.iter().map(|(s, n)| (label("state", *s), *n)),
        );
        self.slots.set(gauge_value(snap.slots));
        self.slots_busy.set(gauge_value(snap.slots_busy));
        self.leases_expired
            .get_or_create(&label("kind", "orphan"))
            .inner()
            .store(
                snap.orphan_leases_expired,
                std::sync::atomic::Ordering::Relaxed,
            );
        for (outcome, n) in snap.notifications {
            self.notifications
                .get_or_create(&label("outcome", outcome))
                .inner()
                .store(n, std::sync::atomic::Ordering::Relaxed);
        }
        self.notifications_pending
            .set(gauge_value(snap.notifications_pending));
        self.store_bytes.set(gauge_value(disk.store_bytes));
        self.log_bytes.set(gauge_value(snap.log_bytes));
        self.artifact_bytes.set(gauge_value(disk.artifact_bytes));
        self.free_bytes.set(gauge_value(disk.free_bytes));
        self.oldest_run
            .set(gauge_value(snap.oldest_run_submitted_ms / 1000));
        let mut out = String::new();
        let encoded = if openmetrics {
            openmetrics_text::encode(&mut out, &self.registry)
        } else {
            prometheus_text::encode(&mut out, &self.registry)
        };
        encoded.expect("writing to a String cannot fail");
        out
    }
}

/// Replaces a gauge family's series with `values`, so a group or jobset that went away has
/// no stale series.
fn set_all(family: &Family<Labels, Gauge>, values: impl Iterator<Item = (Labels, u64)>) {
    family.clear();
    for (labels, n) in values {
        family.get_or_create(&labels).set(gauge_value(n));
    }
}

fn gauge_value(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}
