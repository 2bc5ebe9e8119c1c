//! The engine's side of webhooks: outbox rows written in the batch that ends a run or a
//! jobset, handed to the sender after the commit, and the sender's outcomes recorded.

use std::collections::{BTreeSet, HashMap};

use rota_proto as pb;
use tokio::sync::mpsc::UnboundedSender;

use super::{Engine, State};
use crate::error::Result;
use crate::notify::{payload, Delivery, Event, Format, Outcome, Target};
use crate::store::{Batch, OutboxRecord, RunRecord};

/// Webhook counts since this coordinator started (and what is still to send), for `Status`
/// and the metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NotifyStats {
    /// POSTs answered 2xx.
    pub delivered: u64,
    /// POSTs that failed (every try counts).
    pub attempts_failed: u64,
    /// Rows given up on after retrying for a day.
    pub given_up: u64,
    /// Rows still to deliver.
    pub pending: u64,
}

pub(super) struct Notify {
    /// Each jobset's own webhooks (`rota jobset create --notify`), as stored.
    jobsets: HashMap<String, Vec<Target>>,
    /// To the sender task; rows go out after their batch committed.
    tx: UnboundedSender<Delivery>,
    /// Jobsets a run of which ended in this batch and that someone wants to hear end.
    ended_jobsets: BTreeSet<String>,
    pub stats: NotifyStats,
}

impl Notify {
    pub fn new(tx: UnboundedSender<Delivery>) -> Self {
        Notify {
            jobsets: HashMap::new(),
            tx,
            ended_jobsets: BTreeSet::new(),
            stats: NotifyStats::default(),
        }
    }
}

fn delivery(row: &OutboxRecord) -> Delivery {
    Delivery {
        id: row.id,
        event: row.event.clone(),
        url: row.url.clone(),
        format: Format::parse(&row.format).unwrap_or_default(),
        secret_file: (!row.secret_file.is_empty()).then(|| row.secret_file.clone()),
        payload: row.payload.clone(),
        attempts: row.attempts,
        next_at: row.next_at,
        created_at: row.created_at,
    }
}

/// What a listing gives when the request sets no limit.
const DEFAULT_LIMIT: u32 = 100;

impl State {
    /// The top-level, the job's and the jobset's webhooks, each URL once (first wins).
    fn targets(&self, job: Option<&str>, jobset: &str) -> Vec<Target> {
        let mut out: Vec<Target> = Vec::new();
        let lists = [
            self.jobs.global_notify(),
            job.map_or(&[][..], |j| self.jobs.job_notify(j)),
            self.notify
                .jobsets
                .get(jobset)
                .map_or(&[][..], Vec::as_slice),
        ];
        for t in lists.into_iter().flatten() {
            if !out.iter().any(|o| o.url == t.url) {
                out.push(t.clone());
            }
        }
        out
    }

    /// A run reached a final state (it was not in before): one outbox row per target that
    /// wants its event, in this batch.
    pub(super) fn run_ended(&mut self, b: &Batch<'_>, rec: &RunRecord) -> Result<()> {
        let targets = self.targets(rec.spec.job.as_deref(), &rec.jobset);
        if targets.iter().any(|t| t.wants(Event::JobsetFinished)) {
            self.notify.ended_jobsets.insert(rec.jobset.clone());
        }
        let Some(event) = Event::of_run_state(&rec.state) else {
            return Ok(());
        };
        let body = payload::run(rec, event);
        for t in targets.iter().filter(|t| t.wants(event)) {
            self.enqueue(b, t, rec.number, &rec.jobset, event, &body)?;
        }
        Ok(())
    }

    /// End of a batch: a jobset whose run ended and that holds no unfinished run any more has
    /// finished. Only jobsets someone listens to are looked at, each once per batch; the look
    /// is over the unfinished runs in memory, not the store.
    pub(super) fn jobsets_ended(&mut self, b: &Batch<'_>) -> Result<()> {
        for js in std::mem::take(&mut self.notify.ended_jobsets) {
            if self.live.values().any(|r| r.jobset == js) {
                continue;
            }
            let view = self.jobset_view(b, &js)?;
            let body = payload::jobset(&view, self.now);
            let targets = self.targets(None, &js);
            for t in targets.iter().filter(|t| t.wants(Event::JobsetFinished)) {
                self.enqueue(b, t, 0, &js, Event::JobsetFinished, &body)?;
            }
        }
        Ok(())
    }

    fn enqueue(
        &mut self,
        b: &Batch<'_>,
        t: &Target,
        run: u64,
        jobset: &str,
        event: Event,
        body: &serde_json::Value,
    ) -> Result<()> {
        let mut row = OutboxRecord {
            created_at: self.now,
            run,
            jobset: jobset.into(),
            event: event.as_str().into(),
            url: t.url.clone(),
            format: t.format.as_str().into(),
            secret_file: t.secret_file.clone().unwrap_or_default(),
            payload: body.to_string(),
            state: "pending".into(),
            next_at: self.now,
            ..Default::default()
        };
        row.id = b.insert_outbox(&row)?;
        self.notify.stats.pending += 1;
        let tx = self.notify.tx.clone();
        let d = delivery(&row);
        self.effects.push(Box::new(move || {
            let _ = tx.send(d);
        }));
        Ok(())
    }

    /// Records how a try ended. A row that is no longer there (pruned) is let go.
    pub(super) fn notify_outcome(&mut self, b: &Batch<'_>, o: Outcome) -> Result<()> {
        let delivered_at = if o.state == "delivered" { o.at } else { 0 };
        b.outbox_outcome(
            o.id,
            o.state,
            o.attempts,
            o.next_at,
            u32::from(o.status),
            &o.error,
            delivered_at,
        )?;
        let stats = &mut self.notify.stats;
        match o.state {
            "delivered" => stats.delivered += 1,
            _ => stats.attempts_failed += 1,
        }
        if o.state != "pending" {
            stats.pending = stats.pending.saturating_sub(1);
        }
        if o.state == "failed" {
            stats.given_up += 1;
        }
        Ok(())
    }

    pub(super) fn list_notifications(
        &self,
        b: &Batch<'_>,
        req: &pb::ListNotificationsRequest,
    ) -> Result<Vec<pb::Notification>> {
        let limit = super::listing_limit(req.limit, DEFAULT_LIMIT);
        Ok(b.read()
            .outbox(req.run, limit)?
            .into_iter()
            .map(|o| pb::Notification {
                id: o.id,
                url: o.url,
                event: o.event,
                run: o.run,
                jobset: o.jobset,
                next_try_ms: if o.state == "pending" { o.next_at } else { 0 },
                state: o.state,
                attempts: o.attempts,
                last_status: o.last_status,
                last_error: o.last_error,
                created_ms: o.created_at,
                delivered_ms: o.delivered_at,
            })
            .collect())
    }

    /// Replaces a jobset's webhooks, in the store and in memory.
    pub(super) fn set_jobset_notify(
        &mut self,
        b: &Batch<'_>,
        jobset: &str,
        targets: Vec<Target>,
    ) -> Result<()> {
        let text = serde_json::to_string(&targets).map_err(crate::store::StoreError::from)?;
        b.set_jobset_notify(jobset, &text)?;
        self.notify.jobsets.insert(jobset.into(), targets);
        Ok(())
    }

    /// At start: the jobsets' webhooks.
    pub(super) fn load_notify(&mut self, b: &Batch<'_>) -> Result<()> {
        for (jobset, text) in b.read().jobset_notify()? {
            let targets: Vec<Target> =
                serde_json::from_str(&text).map_err(crate::store::StoreError::from)?;
            self.notify.jobsets.insert(jobset, targets);
        }
        Ok(())
    }
}

impl Engine {
    /// After recovery: every row not yet delivered goes to the sender again (a kill -9
    /// between a result's commit and its POST loses nothing; a POST whose outcome was not
    /// recorded is sent again: delivery is at least once).
    pub(super) fn resume_outbox(&mut self) -> Result<()> {
        let rows = self.store.read().pending_outbox()?;
        self.state.notify.stats.pending = rows.len() as u64;
        for row in &rows {
            let _ = self.state.notify.tx.send(delivery(row));
        }
        Ok(())
    }
}
