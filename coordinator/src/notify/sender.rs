//! The task that POSTs outbox rows. It keeps the rows still to send in a heap ordered by due
//! time and sleeps until the earliest one or until the engine hands it a new row: woken by
//! events and by the next retry's time, never polling. Each POST runs as its own task (up to
//! [`SenderConfig::concurrency`] at once) with a timeout, so one slow receiver holds up
//! neither the others nor the engine; its outcome goes back to the engine as
//! `Command::NotifyOutcome`, which records it in the row.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::time::Duration;

use tokio::sync::mpsc::UnboundedReceiver;
use tokio::task::JoinSet;

use super::{payload, Format};
use crate::engine::{Command, EngineHandle};
use crate::logs::LogHub;
use crate::time::now_millis;

/// An outbox row still to deliver, as the sender needs it.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub id: u64,
    pub event: String,
    pub url: String,
    pub format: Format,
    pub secret_file: Option<String>,
    /// The stored part of the body (JSON), see `payload`.
    pub payload: String,
    /// Tries so far.
    pub attempts: u32,
    /// Not before this (unix ms).
    pub next_at: u64,
    pub created_at: u64,
}

/// How one try ended, for the row.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub id: u64,
    pub attempts: u32,
    /// The HTTP status; 0 without an answer.
    pub status: u16,
    /// Empty when delivered.
    pub error: String,
    /// When it ended (unix ms).
    pub at: u64,
    /// `delivered`, `pending` (tried again at `next_at`) or `failed` (given up).
    pub state: &'static str,
    pub next_at: u64,
}

/// How the sender behaves.
#[derive(Debug, Clone)]
pub struct SenderConfig {
    /// Where the dashboard is served: `{base_url}/runs/{number}` in every body.
    pub base_url: String,
    /// The first retry's delay; doubling per failed try up to `max_backoff`.
    pub backoff: Duration,
    pub max_backoff: Duration,
    /// A row still failing this long after it was written is given up (`failed`).
    pub give_up_after: Duration,
    /// Per POST, connect to last byte.
    pub timeout: Duration,
    /// POSTs in flight at most.
    pub concurrency: usize,
}

impl SenderConfig {
    pub fn new(base_url: String) -> Self {
        SenderConfig {
            base_url,
            backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(3600),
            give_up_after: Duration::from_secs(86_400),
            timeout: Duration::from_secs(10),
            concurrency: 64,
        }
    }

    /// The delay after the `failed`-th failed try: backoff × 2^(failed-1), capped.
    fn delay(&self, failed: u32) -> Duration {
        let factor = 1u32 << failed.saturating_sub(1).min(20);
        self.backoff.saturating_mul(factor).min(self.max_backoff)
    }
}

/// Delivers what `rx` hands over until the engine ends (the channel closes).
pub async fn run(
    mut rx: UnboundedReceiver<Delivery>,
    engine: EngineHandle,
    logs: LogHub,
    config: SenderConfig,
) {
    let client = match reqwest::Client::builder()
        .timeout(config.timeout)
        .user_agent(concat!("rota/", env!("CARGO_PKG_VERSION")))
        .build()
    {
        Ok(c) => c,
        Err(e) => {
            tracing::error!("webhooks disabled: cannot build an HTTP client: {e}");
            return;
        }
    };
    let mut due: BinaryHeap<Reverse<(u64, u64)>> = BinaryHeap::new();
    let mut waiting: HashMap<u64, Delivery> = HashMap::new();
    let mut inflight: JoinSet<(Delivery, Result<u16, String>)> = JoinSet::new();
    loop {
        let now = now_millis();
        while inflight.len() < config.concurrency {
            match due.peek() {
                Some(Reverse((at, _))) if *at <= now => {}
                _ => break,
            }
            let Some(Reverse((_, id))) = due.pop() else {
                break;
            };
            if let Some(d) = waiting.remove(&id) {
                inflight.spawn(post(
                    client.clone(),
                    d,
                    logs.clone(),
                    config.base_url.clone(),
                ));
            }
        }
        let wait = (inflight.len() < config.concurrency)
            .then(|| due.peek().map(|Reverse((at, _))| at.saturating_sub(now)))
            .flatten();
        tokio::select! {
            d = rx.recv() => match d {
                Some(d) => {
                    due.push(Reverse((d.next_at, d.id)));
                    waiting.insert(d.id, d);
                }
                None => return,
            },
            Some(done) = inflight.join_next(), if !inflight.is_empty() => {
                let Ok((d, result)) = done else { continue };
                if let Some(again) = record(&engine, &config, d, result) {
                    due.push(Reverse((again.next_at, again.id)));
                    waiting.insert(again.id, again);
                }
            }
            _ = tokio::time::sleep(Duration::from_millis(wait.unwrap_or(0))), if wait.is_some() => {}
        }
    }
}

/// Tells the engine how a try ended; returns the delivery when it is to be tried again.
fn record(
    engine: &EngineHandle,
    config: &SenderConfig,
    mut d: Delivery,
    result: Result<u16, String>,
) -> Option<Delivery> {
    let now = now_millis();
    d.attempts += 1;
    let (status, error) = match result {
        Ok(s) if (200..300).contains(&s) => (s, String::new()),
        Ok(s) => (s, format!("the receiver answered HTTP {s}")),
        Err(e) => (0, e),
    };
    let mut outcome = Outcome {
        id: d.id,
        attempts: d.attempts,
        status,
        error: error.clone(),
        at: now,
        state: "delivered",
        next_at: 0,
    };
    let mut again = None;
    if !error.is_empty() {
        let next = now + config.delay(d.attempts).as_millis() as u64;
        if next > d.created_at + config.give_up_after.as_millis() as u64 {
            tracing::warn!(id = d.id, url = %d.url, attempts = d.attempts, "webhook given up: {error}");
            outcome.state = "failed";
        } else {
            tracing::info!(id = d.id, url = %d.url, attempts = d.attempts, "webhook failed, retrying: {error}");
            outcome.state = "pending";
            outcome.next_at = next;
            d.next_at = next;
            again = Some(d);
        }
    }
    engine.tell(Command::NotifyOutcome(outcome));
    again
}

/// One POST: the body rendered and signed (file reads off the async workers), then sent.
async fn post(
    client: reqwest::Client,
    d: Delivery,
    logs: LogHub,
    base_url: String,
) -> (Delivery, Result<u16, String>) {
    let prepared = {
        let d = d.clone();
        tokio::task::spawn_blocking(move || -> Result<(Vec<u8>, Option<String>), String> {
            let stored: serde_json::Value = serde_json::from_str(&d.payload)
                .map_err(|e| format!("stored payload is not JSON: {e}"))?;
            let body = payload::render(&stored, &base_url, &logs, d.format);
            let signature = match &d.secret_file {
                None => None,
                Some(path) => {
                    let secret = std::fs::read_to_string(path)
                        .map_err(|e| format!("cannot read the secret_file {path}: {e}"))?;
                    Some(payload::signature(secret.trim().as_bytes(), &body))
                }
            };
            Ok((body, signature))
        })
        .await
    };
    let (body, signature) = match prepared {
        Ok(Ok(p)) => p,
        Ok(Err(e)) => return (d, Err(e)),
        Err(e) => return (d, Err(format!("preparing the body failed: {e}"))),
    };
    let mut req = client
        .post(&d.url)
        .header("content-type", "application/json")
        .header("x-rota-event", &d.event)
        .header("x-rota-delivery", d.id.to_string())
        .body(body);
    if let Some(sig) = signature {
        req = req.header("x-rota-signature-256", sig);
    }
    let result = match req.send().await {
        Ok(resp) => Ok(resp.status().as_u16()),
        Err(e) => Err(rota_proto::errors::root_cause(&e)),
    };
    (d, result)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_from_the_first_delay_and_is_capped() {
        let c = SenderConfig::new("http://x".into());
        assert_eq!(c.delay(1), Duration::from_secs(1));
        assert_eq!(c.delay(2), Duration::from_secs(2));
        assert_eq!(c.delay(5), Duration::from_secs(16));
        assert_eq!(c.delay(40), Duration::from_secs(3600));
    }
}
