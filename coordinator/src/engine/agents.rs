//! Agent sessions as the engine sees them: who is connected, under which name and session, and
//! what happens when one says hello, reports, or goes away.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rota_proto as pb;

use super::{AgentTx, Effect, State};
use crate::error::{Error, Result};
use crate::logs::RunId;
use crate::sched::{AgentId, Outcome};
use crate::store::{ArtifactRecord, Batch};

/// What an agent's stream handler passes on from `Hello`.
#[derive(Debug)]
pub struct AgentHello {
    pub hello: pb::Hello,
    pub tx: AgentTx,
}

/// The runs the engine has assigned to one agent session, each at its current attempt. The
/// session's stream task accepts a log chunk, `RunStarted` or `RunFinished` only for these,
/// and checks chunks here without a round trip to the engine (log bytes stay off its thread).
/// The engine keeps it exact: a run enters on Assign or claim and leaves when it finishes, is
/// requeued or moves away; a session that is replaced or gone is emptied.
#[derive(Debug, Clone, Default)]
pub struct Assigned(Arc<Mutex<HashMap<RunId, Assignment>>>);

/// One run assigned to a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Assignment {
    pub attempt: u32,
    /// The run's log cap per stream (its job's `max_log_bytes`, else the coordinator's).
    pub max_log_bytes: u64,
}

impl Assigned {
    /// What this session holds of `run`, if anything.
    pub fn get(&self, run: &RunId) -> Option<Assignment> {
        self.lock().get(run).copied()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<RunId, Assignment>> {
        self.0.lock().expect("assigned runs lock")
    }
}

/// The engine's answer to `Hello`.
#[derive(Debug)]
pub struct HelloReply {
    pub agent: AgentId,
    /// What this session may report on.
    pub assigned: Assigned,
    /// For each held run: (run id, attempt, run number, keep).
    pub held: Vec<(String, u32, u64, bool)>,
}

#[derive(Debug)]
struct Session {
    name: String,
    session_id: String,
    groups: Vec<String>,
    slots: u32,
    labels: BTreeMap<String, String>,
    tx: AgentTx,
    connected_at: u64,
    last_seen: u64,
    draining: bool,
    assigned: Assigned,
}

/// Agent sessions, live and recently gone.
#[derive(Debug, Default)]
pub struct Agents {
    next_id: AgentId,
    live: HashMap<AgentId, Session>,
    by_name: HashMap<String, AgentId>,
    /// name → (state, last seen, session) of agents that went away, for `rota agents`.
    gone: BTreeMap<String, (String, u64, Session)>,
    /// Run number → the agent, run id and attempt last put in an [`Assigned`] set.
    holders: HashMap<u64, (AgentId, RunId, u32)>,
    /// The coordinator's own stall time already added to orphan leases.
    stalled_seen: Duration,
}

impl Agents {
    /// Connected agents as (taking work, draining), for `Status`.
    pub fn live_counts(&self) -> (u64, u64) {
        let draining = self.live.values().filter(|s| s.draining).count() as u64;
        (self.live.len() as u64 - draining, draining)
    }

    /// Agents that went away and did not come back under their name, as (disconnected,
    /// lost), for metrics.
    pub fn gone_counts(&self) -> (u64, u64) {
        let gone = self
            .gone
            .values()
            .filter(|(_, _, s)| !self.by_name.contains_key(&s.name));
        gone.fold((0, 0), |(d, l), (state, _, _)| {
            if state == "lost" {
                (d, l + 1)
            } else {
                (d + 1, l)
            }
        })
    }

    pub fn name(&self, id: AgentId) -> Option<String> {
        self.live.get(&id).map(|s| s.name.clone())
    }

    /// Queues a message to an agent for after the commit.
    pub fn send_later(
        &self,
        effects: &mut Vec<Effect>,
        id: AgentId,
        msg: pb::coordinator_message::Msg,
    ) {
        if let Some(s) = self.live.get(&id) {
            let tx = s.tx.clone();
            effects.push(Box::new(move || {
                let _ = tx.send(Ok(pb::CoordinatorMessage { msg: Some(msg) }));
            }));
        }
    }
}

impl State {
    /// Keeps the holder's [`Assigned`] set exact after a change to run `rec`: the run belongs
    /// to the agent the core has it active on, at its current attempt, or to no one.
    pub(super) fn track_holder(&mut self, rec: &crate::store::RunRecord) {
        let holder = self
            .core
            .agent_of(rec.number)
            .filter(|_| self.core.is_current(rec.number, rec.attempt))
            .zip(RunId::parse(&rec.id))
            .map(|(agent, id)| (agent, id, rec.attempt));
        let max_log_bytes = self.max_log_bytes(rec);
        let old = match holder {
            Some(h) => self.agents.holders.insert(rec.number, h),
            None => self.agents.holders.remove(&rec.number),
        };
        if old == holder {
            return;
        }
        if let Some((agent, id, _)) = old {
            if let Some(s) = self.agents.live.get(&agent) {
                s.assigned.lock().remove(&id);
            }
        }
        if let Some((agent, id, attempt)) = holder {
            if let Some(s) = self.agents.live.get(&agent) {
                s.assigned.lock().insert(
                    id,
                    Assignment {
                        attempt,
                        max_log_bytes,
                    },
                );
            }
        }
    }

    fn max_log_bytes(&self, rec: &crate::store::RunRecord) -> u64 {
        rec.spec.max_log_bytes.unwrap_or(self.config.max_log_bytes)
    }

    /// Orphan leases wait out a stall of the coordinator itself: an agent cannot have
    /// reconnected to a process that did not run. (Stream leases are judged on awake time in
    /// the stream handler.)
    pub(super) fn wait_out_stalls(&mut self) {
        let stalled = crate::awake::clock().stalled();
        let new = stalled.saturating_sub(self.agents.stalled_seen);
        if !new.is_zero() {
            self.agents.stalled_seen = stalled;
            tracing::warn!(
                stall = ?new,
                "the coordinator did not run for a while: agent leases extended by as much"
            );
            self.core
                .extend_leases(u64::try_from(new.as_millis()).unwrap_or(u64::MAX));
        }
    }

    pub(super) fn agent_hello(&mut self, b: &Batch<'_>, h: AgentHello) -> Result<HelloReply> {
        let hello = h.hello;
        crate::error::check_name("agent", &hello.name)?;
        if hello.slots == 0 {
            return Err(Error::InvalidArgument(format!(
                "agent {:?}: slots must be at least 1",
                hello.name
            )));
        }
        // Another stream under the same name: the same session reconnecting (its old stream may
        // still look open if it stalled) replaces its old stream; a different session is
        // refused while the holder is live, so two processes never share a name and a run
        // never looks lost while its first copy still runs. A restarted agent whose old
        // session is really dead gets in once that session ends (stream closed, or lease).
        if let Some(&old) = self.agents.by_name.get(&hello.name) {
            if let Some(s) = self.agents.live.get(&old) {
                if s.session_id != hello.session_id {
                    let refusal = Error::AlreadyExists(format!(
                        "agent name {:?} is taken by live session {} (connected since {}); \
                         another agent process uses this name, or its previous session is \
                         not yet lost (it is after the lease without word from it)",
                        hello.name,
                        s.session_id,
                        crate::time::format_millis(s.connected_at)
                    ));
                    tracing::warn!(agent = %hello.name, session = %hello.session_id, "refused: {refusal}");
                    return Err(refusal);
                }
            }
            self.agents.by_name.remove(&hello.name);
            if let Some(s) = self.agents.live.remove(&old) {
                // A stalled old stream may still deliver; it must not write anything.
                s.assigned.lock().clear();
                self.agents
                    .gone
                    .insert(s.name.clone(), ("reconnected".into(), self.now, s));
            }
            // The old stream's runs wait for this session's claim below.
            self.core.agent_disconnected(old, self.now);
        }
        self.agents.next_id += 1;
        let id = self.agents.next_id;
        let groups: Vec<Arc<str>> = hello.groups.iter().map(|g| Arc::from(g.as_str())).collect();
        self.core.agent_connected(id, hello.slots, groups);
        self.core.name_agent(id, &hello.name);
        let mut held = Vec::new();
        for run in &hello.held {
            let number = match self.ids.get(&run.run_id) {
                Some(n) => Some(*n),
                None => b.read().run_by_id(&run.run_id)?.map(|r| r.number),
            };
            let keep = number.is_some_and(|n| self.core.claim(id, n, run.attempt));
            if keep {
                let n = number.expect("claimed");
                let name = hello.name.clone();
                self.update(b, n, |r| r.agent = name)?;
            }
            held.push((run.run_id.clone(), run.attempt, number.unwrap_or(0), keep));
        }
        // Welcome goes out first, before any Assign this batch's dispatch may add.
        let assigned = Assigned::default();
        let resume = held
            .iter()
            .map(|(run_id, attempt, number, keep)| {
                // Only a run this agent keeps has stored offsets worth telling (and a run id
                // known to be one); the rest it drops.
                let id = RunId::parse(run_id).filter(|_| *keep);
                let len = |s| id.map_or(0, |id| self.logs.len(&id, *attempt, s));
                if let (Some(id), Some(rec)) = (id, self.live.get(number)) {
                    let assignment = Assignment {
                        attempt: *attempt,
                        max_log_bytes: self.max_log_bytes(rec),
                    };
                    assigned.lock().insert(id, assignment);
                }
                pb::ResumeRun {
                    run_id: run_id.clone(),
                    attempt: *attempt,
                    stdout_acked: len(crate::logs::Stream::Stdout),
                    stderr_acked: len(crate::logs::Stream::Stderr),
                    keep: *keep,
                }
            })
            .collect();
        let welcome = pb::Welcome {
            agent_id: id.to_string(),
            heartbeat_interval_ms: self.config.heartbeat_interval.as_millis() as u64,
            lease_ms: self.config.lease.as_millis() as u64,
            resume,
        };
        let tx = h.tx.clone();
        self.effects.push(Box::new(move || {
            let _ = tx.send(Ok(pb::CoordinatorMessage {
                msg: Some(pb::coordinator_message::Msg::Welcome(welcome)),
            }));
        }));
        self.agents.gone.remove(&hello.name);
        self.agents.by_name.insert(hello.name.clone(), id);
        self.agents.live.insert(
            id,
            Session {
                name: hello.name,
                session_id: hello.session_id,
                groups: hello.groups,
                slots: hello.slots,
                labels: hello.labels.into_iter().collect(),
                tx: h.tx,
                connected_at: self.now,
                last_seen: self.now,
                draining: false,
                assigned: assigned.clone(),
            },
        );
        Ok(HelloReply {
            agent: id,
            assigned,
            held,
        })
    }

    pub(super) fn agent_heartbeat(&mut self, agent: AgentId, draining: bool) {
        if let Some(s) = self.agents.live.get_mut(&agent) {
            s.last_seen = self.now;
            if draining && !s.draining {
                s.draining = true;
                self.core.drain(agent);
            }
        }
    }

    pub(super) fn agent_started(
        &mut self,
        b: &Batch<'_>,
        agent: AgentId,
        msg: pb::RunStarted,
    ) -> Result<()> {
        let Some(&number) = self.ids.get(&msg.run_id) else {
            tracing::warn!(agent, run = %msg.run_id, "refused RunStarted for a run that is not unfinished");
            return Ok(());
        };
        if !self.core.is_current(number, msg.attempt) || self.core.agent_of(number) != Some(agent) {
            tracing::warn!(
                agent,
                run = number,
                attempt = msg.attempt,
                "refused RunStarted for a run or attempt not assigned to this agent"
            );
            return Ok(());
        }
        let rec = self.update(b, number, |r| r.state = "running".into())?;
        self.update_attempt(b, &rec, msg.attempt, |a| a.state = "running".into())
    }

    /// Records an attempt's end once: a report for any attempt but the current one is refused.
    pub(super) fn agent_finished(
        &mut self,
        b: &Batch<'_>,
        agent: AgentId,
        msg: pb::RunFinished,
    ) -> Result<bool> {
        let Some(&number) = self.ids.get(&msg.run_id) else {
            tracing::info!(run = %msg.run_id, attempt = msg.attempt, "refused result for a finished run");
            return Ok(false);
        };
        if self.core.agent_of(number) != Some(agent) {
            tracing::info!(
                run = number,
                attempt = msg.attempt,
                "refused result from an agent that does not hold the run"
            );
            return Ok(false);
        }
        if msg.rejected {
            self.core.unassign(number, msg.attempt)?;
            self.update(b, number, |r| {
                r.state = "pending".into();
                r.agent.clear();
                r.group.clear();
            })?;
            return Ok(true);
        }
        let outcome = if msg.cancelled {
            Outcome::Cancelled
        } else if msg.exit_code == Some(0) && msg.error.is_empty() && !msg.timed_out {
            Outcome::Success
        } else {
            Outcome::Failed
        };
        if let Err(e) = self.core.finished(number, msg.attempt, outcome, self.now) {
            tracing::info!(run = number, "refused result: {e}");
            return Ok(false);
        }
        let now = self.now;
        let state = match outcome {
            Outcome::Success => "success",
            Outcome::Cancelled => "cancelled",
            Outcome::Failed => "errored",
        };
        let error = if msg.timed_out && msg.error.is_empty() {
            "timed out".to_string()
        } else {
            msg.error.clone()
        };
        let rec = self.update(b, number, |r| {
            r.exit_code = msg.exit_code;
            r.signal = msg.signal;
            r.error = error.clone();
            r.stdout_len = msg.stdout_len;
            r.stderr_len = msg.stderr_len;
        })?;
        self.update_attempt(b, &rec, msg.attempt, |a| {
            a.state = state.into();
            a.finished_at = now;
            a.exit_code = msg.exit_code;
            a.signal = msg.signal;
            a.error = error;
        })?;
        if let Some(data) = super::return_data::record(&msg) {
            b.put_return_data(number, &data)?;
        }
        if outcome == Outcome::Success && !msg.artifacts.is_empty() {
            // Only content held whole and checked counts; the agent sent every chunk before
            // this result, so anything else was refused on the way (and logged there).
            let kept: Vec<ArtifactRecord> = msg
                .artifacts
                .iter()
                .filter(|a| {
                    let held = self.artifacts.has(&a.sha256, a.size);
                    if !held {
                        tracing::warn!(run = number, path = %a.path, "artifact not stored whole: not recorded");
                    }
                    held
                })
                .map(|a| ArtifactRecord {
                    path: a.path.clone(),
                    sha256: a.sha256.clone(),
                    size: a.size,
                })
                .collect();
            b.put_artifacts(number, &kept)?;
        }
        Ok(true)
    }

    pub(super) fn agent_gone(&mut self, agent: AgentId, lost: bool) {
        let Some(s) = self.agents.live.remove(&agent) else {
            return;
        };
        s.assigned.lock().clear();
        if self.agents.by_name.get(&s.name) == Some(&agent) {
            self.agents.by_name.remove(&s.name);
        }
        if lost {
            self.metrics.agent_lease_expired();
            self.core.agent_lost(agent, self.now);
        } else {
            self.core.agent_disconnected(agent, self.now);
        }
        let state = if lost { "lost" } else { "disconnected" };
        self.agents
            .gone
            .insert(s.name.clone(), (state.into(), self.now, s));
    }

    pub(super) fn agent_views(&self) -> Vec<pb::Agent> {
        let mut out: Vec<pb::Agent> = self
            .agents
            .live
            .iter()
            .map(|(id, s)| {
                let running: Vec<String> = self
                    .core
                    .agent(*id)
                    .map(|a| {
                        let mut r: Vec<u64> = a.running.iter().copied().collect();
                        r.sort_unstable();
                        r.iter().map(|n| n.to_string()).collect()
                    })
                    .unwrap_or_default();
                view(
                    s,
                    if s.draining { "draining" } else { "connected" },
                    running,
                )
            })
            .collect();
        for (state, last_seen, s) in self.agents.gone.values() {
            if self.agents.by_name.contains_key(&s.name) {
                continue;
            }
            let mut v = view(s, state, vec![]);
            v.last_seen_ms = *last_seen;
            out.push(v);
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        out
    }

    pub(super) fn drain_agent(&mut self, req: pb::DrainRequest) -> Result<pb::Agent> {
        let id =
            *self.agents.by_name.get(&req.agent).ok_or_else(|| {
                Error::NotFound(format!("no connected agent named {:?}", req.agent))
            })?;
        self.agent_heartbeat(id, true);
        self.agents.send_later(
            &mut self.effects,
            id,
            pb::coordinator_message::Msg::Drain(pb::Drain {
                timeout_ms: req.timeout_ms,
            }),
        );
        self.agent_views()
            .into_iter()
            .find(|a| a.name == req.agent)
            .ok_or_else(|| Error::NotFound(req.agent))
    }
}

fn view(s: &Session, state: &str, running_runs: Vec<String>) -> pb::Agent {
    pb::Agent {
        name: s.name.clone(),
        state: state.into(),
        groups: s.groups.clone(),
        slots: s.slots,
        running: running_runs.len() as u32,
        running_runs,
        labels: s.labels.clone().into_iter().collect(),
        connected_at_ms: s.connected_at,
        last_seen_ms: s.last_seen,
        session_id: s.session_id.clone(),
    }
}
