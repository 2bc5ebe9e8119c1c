//! `rota notifications` and `rota audit`: JSON views and tables of webhook deliveries and of
//! audit entries, and the "cancelled by NAME at TIME" lines of `rota show`.

use rota_proto::{AuditEntry, Notification};
use serde::Serialize;

use super::{local_time, rfc3339, Ids, Table};

/// One webhook delivery.
#[derive(Debug, Serialize)]
pub struct NotificationView {
    pub id: u64,
    pub url: String,
    pub event: String,
    /// None for a jobset's end.
    pub run: Option<u64>,
    pub jobset: String,
    pub state: String,
    pub attempts: u32,
    pub last_status: Option<u32>,
    pub last_error: String,
    pub next_try_ms: Option<u64>,
    pub next_try: Option<String>,
    pub created_at_ms: u64,
    pub created_at: Option<String>,
    pub delivered_at_ms: Option<u64>,
    pub delivered_at: Option<String>,
}

fn nonzero<T: PartialEq + Default>(v: T) -> Option<T> {
    (v != T::default()).then_some(v)
}

impl From<&Notification> for NotificationView {
    fn from(n: &Notification) -> Self {
        Self {
            id: n.id,
            url: n.url.clone(),
            event: n.event.clone(),
            run: nonzero(n.run),
            jobset: n.jobset.clone(),
            state: n.state.clone(),
            attempts: n.attempts,
            last_status: nonzero(n.last_status),
            last_error: n.last_error.clone(),
            next_try_ms: nonzero(n.next_try_ms),
            next_try: rfc3339(n.next_try_ms),
            created_at_ms: n.created_ms,
            created_at: rfc3339(n.created_ms),
            delivered_at_ms: nonzero(n.delivered_ms),
            delivered_at: rfc3339(n.delivered_ms),
        }
    }
}

impl Ids for NotificationView {
    fn ids(&self) -> Vec<String> {
        vec![self.id.to_string()]
    }
}

/// One audit entry.
#[derive(Debug, Serialize)]
pub struct AuditView {
    pub id: u64,
    pub at_ms: u64,
    pub at: Option<String>,
    pub caller: String,
    pub role: String,
    pub peer: String,
    pub method: String,
    pub target: String,
    pub runs: Vec<u64>,
}

impl From<&AuditEntry> for AuditView {
    fn from(a: &AuditEntry) -> Self {
        Self {
            id: a.id,
            at_ms: a.at_ms,
            at: rfc3339(a.at_ms),
            caller: a.caller.clone(),
            role: a.role.clone(),
            peer: a.peer.clone(),
            method: a.method.clone(),
            target: a.target.clone(),
            runs: a.runs.clone(),
        }
    }
}

impl Ids for AuditView {
    fn ids(&self) -> Vec<String> {
        vec![self.id.to_string()]
    }
}

/// ID, EVENT, RUN, STATE, TRIES, LAST, NEXT, URL.
pub fn notifications_table(list: &[Notification]) -> String {
    let mut t = Table::new(&[
        "ID", "EVENT", "RUN", "STATE", "TRIES", "LAST", "NEXT", "URL",
    ]);
    for n in list {
        let run = if n.run == 0 {
            format!("jobset {}", n.jobset)
        } else {
            n.run.to_string()
        };
        let last = match (n.last_status, n.last_error.as_str()) {
            (_, e) if !e.is_empty() => e.to_string(),
            (0, _) => "-".to_string(),
            (s, _) => format!("HTTP {s}"),
        };
        t.row(vec![
            n.id.to_string(),
            n.event.clone(),
            run,
            n.state.clone(),
            n.attempts.to_string(),
            last,
            local_time(n.next_try_ms),
            n.url.clone(),
        ]);
    }
    t.render()
}

/// TIME, CALLER, ROLE, PEER, METHOD, TARGET.
pub fn audit_table(entries: &[AuditEntry]) -> String {
    let mut t = Table::new(&["TIME", "CALLER", "ROLE", "PEER", "METHOD", "TARGET"]);
    for a in entries {
        t.row(vec![
            local_time(a.at_ms),
            a.caller.clone(),
            a.role.clone(),
            if a.peer.is_empty() {
                "-".into()
            } else {
                a.peer.clone()
            },
            a.method.clone(),
            a.target.clone(),
        ]);
    }
    t.render()
}

/// `rota show`'s history lines, oldest first: "cancelled by ops-token at 2026-12-02 12:03:00".
pub fn history_lines(entries: &[AuditEntry]) -> String {
    let mut out = String::new();
    for a in entries.iter().rev() {
        out.push_str(&format!(
            "{} by {} at {}\n",
            rota_proto::access::audit_verb(&a.method),
            a.caller,
            local_time(a.at_ms)
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn history_reads_oldest_first_with_the_caller() {
        let entries = [
            AuditEntry {
                method: "Cancel".into(),
                caller: "ops-token".into(),
                ..Default::default()
            },
            AuditEntry {
                method: "Submit".into(),
                caller: "ci".into(),
                ..Default::default()
            },
        ];
        assert_eq!(
            history_lines(&entries),
            "submitted by ci at -\ncancelled by ops-token at -\n"
        );
    }

    #[test]
    fn notification_json_leaves_out_what_did_not_happen() {
        let v = NotificationView::from(&Notification {
            id: 3,
            state: "pending".into(),
            ..Default::default()
        });
        assert_eq!(v.run, None);
        assert_eq!(v.delivered_at, None);
        assert_eq!(v.last_status, None);
    }
}
