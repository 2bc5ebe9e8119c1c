//! Affinity: a run with `same_agent_as: X` starts only on the agent that ran X (to use X's
//! `RUN_DIR` there, with no copy). Agents are named here because a pin must outlive the agent's
//! session: after a reconnect, or a coordinator restart, the same agent has a new id.
//!
//! Pinned runs do not enter the class queue: once ready they wait in a queue of their own per
//! agent name, and a dispatch cycle looks only at the heads of the agents that have some, so
//! nothing is scanned. A pinned run whose agent is not connected fails when the agent is
//! declared lost, or when it stays away for the orphan lease (a deadline, kept like the
//! orphans'); it is not retried elsewhere, as no other agent has X's directory.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use super::queue::{rank, Rank};
use super::{Final, Millis, Phase, RunNo, Scheduler};
use crate::sched::types::AgentId;

#[derive(Debug, Default)]
pub(super) struct Pins {
    /// The session id of each connected, named agent, and back.
    by_name: HashMap<Arc<str>, AgentId>,
    names: HashMap<AgentId, Arc<str>>,
    /// The agent each successful run ran on, for the runs pinned to it.
    ran_on: HashMap<RunNo, Arc<str>>,
    /// Ready pinned runs per agent name, best first.
    ready: HashMap<Arc<str>, BTreeSet<Rank>>,
    /// Ready pinned runs whose agent is away, by the time they fail.
    away: BTreeSet<(Millis, RunNo)>,
    away_deadline: HashMap<RunNo, Millis>,
}

impl Pins {
    fn unmark_away(&mut self, run: RunNo) {
        if let Some(t) = self.away_deadline.remove(&run) {
            self.away.remove(&(t, run));
        }
    }

    fn mark_away(&mut self, run: RunNo, deadline: Millis) {
        self.unmark_away(run);
        self.away_deadline.insert(run, deadline);
        self.away.insert((deadline, run));
    }
}

impl Scheduler {
    /// Names a connected agent (its `Hello.name`), so runs pinned to that name can start on it.
    /// Ready pinned runs that waited for it stop counting down.
    pub fn name_agent(&mut self, id: AgentId, name: &str) {
        let name: Arc<str> = Arc::from(name);
        if let Some(old) = self.pins.by_name.insert(name.clone(), id) {
            self.pins.names.remove(&old);
        }
        self.pins.names.insert(id, name.clone());
        for run in self.ready_for(&name) {
            self.pins.unmark_away(run);
        }
    }

    /// Records that `run` ran on agent `name` (a run restored from the store: a pinned
    /// dependent needs it).
    pub fn set_ran_on(&mut self, run: RunNo, name: &str) {
        self.pins.ran_on.insert(run, Arc::from(name));
    }

    /// The agent name a pinned run waits for, once its target has succeeded.
    pub fn pinned_to(&self, run: RunNo) -> Option<&Arc<str>> {
        let target = self.runs.get(&run)?.info.same_agent_as?;
        self.pins.ran_on.get(&target)
    }

    /// Before a successful run leaves `Active`: remember its agent for runs pinned to it.
    pub(super) fn note_ran_on(&mut self, run: RunNo) {
        if let Some(Phase::Active {
            agent: Some(agent), ..
        }) = self.runs.get(&run).map(|r| &r.phase)
        {
            if let Some(name) = self.pins.names.get(agent) {
                self.pins.ran_on.insert(run, name.clone());
            }
        }
    }

    /// Forgets what a forgotten run left here.
    pub(super) fn forget_pins(&mut self, run: RunNo) {
        self.pins.ran_on.remove(&run);
    }

    /// A pinned run became ready: queue it for its agent (starting the away deadline when
    /// that agent is not connected). Returns a reason to fail it when there is no agent to
    /// wait for at all.
    pub(super) fn pin_ready(&mut self, run: RunNo) -> Option<String> {
        let st = &self.runs[&run];
        let target = st.info.same_agent_as?;
        let Some(name) = self.pins.ran_on.get(&target).cloned() else {
            return Some(format!(
                "same_agent_as: the agent that ran run {target} is not known"
            ));
        };
        self.pins
            .ready
            .entry(name.clone())
            .or_default()
            .insert(rank(st.info.priority, run));
        if !self.pins.by_name.contains_key(&name) {
            let deadline = self.clock.saturating_add(self.config.orphan_lease_ms);
            self.pins.mark_away(run, deadline);
        }
        None
    }

    /// A pinned run left the ready state.
    pub(super) fn pin_unready(&mut self, run: RunNo) {
        let st = &self.runs[&run];
        let r = rank(st.info.priority, run);
        self.pins.unmark_away(run);
        if let Some(target) = st.info.same_agent_as {
            if let Some(name) = self.pins.ran_on.get(&target) {
                if let Some(set) = self.pins.ready.get_mut(name) {
                    set.remove(&r);
                    if set.is_empty() {
                        self.pins.ready.remove(name);
                    }
                }
            }
        }
    }

    /// The agent's session ended: its ready pinned runs wait for it to come back, for the
    /// orphan lease (`lost`: it will not come back; they fail now).
    pub(super) fn pins_agent_gone(&mut self, id: AgentId, lost: bool, now: Millis) {
        let Some(name) = self.pins.names.remove(&id) else {
            return;
        };
        if self.pins.by_name.get(&name) == Some(&id) {
            self.pins.by_name.remove(&name);
        }
        for run in self.ready_for(&name) {
            if lost {
                self.fail_pinned(run, &name);
            } else {
                self.pins
                    .mark_away(run, now.saturating_add(self.config.orphan_lease_ms));
            }
        }
    }

    /// The ready runs pinned to agent `name`, best first.
    fn ready_for(&self, name: &Arc<str>) -> Vec<RunNo> {
        self.pins
            .ready
            .get(name)
            .map(|set| set.iter().map(|r| r.1).collect())
            .unwrap_or_default()
    }

    /// Fails the pinned runs whose agent stayed away past their deadline.
    pub(super) fn pins_tick(&mut self, now: Millis) {
        while let Some(&(t, run)) = self.pins.away.first() {
            if t > now {
                break;
            }
            self.pins.away.pop_first();
            self.pins.away_deadline.remove(&run);
            if let Some(name) = self.pinned_to(run).cloned() {
                self.fail_pinned(run, &name);
            }
        }
    }

    pub(super) fn pins_next_deadline(&self) -> Option<Millis> {
        self.pins.away.first().map(|(t, _)| *t)
    }

    fn fail_pinned(&mut self, run: RunNo, name: &str) {
        let target = self.runs[&run].info.same_agent_as.unwrap_or_default();
        self.finish(
            run,
            Final::Errored,
            format!("same_agent_as: agent {name}, which ran run {target}, is gone"),
        );
    }

    /// Starts the ready pinned runs whose agents have room, best first per agent.
    pub(super) fn dispatch_pinned(&mut self) -> usize {
        let names: Vec<Arc<str>> = self.pins.ready.keys().cloned().collect();
        let mut started = 0;
        for name in names {
            let Some(&agent) = self.pins.by_name.get(&name) else {
                continue;
            };
            while let Some(head) = self.pins.ready.get(&name).and_then(|s| s.first().copied()) {
                let run = head.1;
                if !self.agents.get(agent).is_some_and(|a| a.accepts()) {
                    break;
                }
                let Some(group) = self.pinned_placement(run) else {
                    break;
                };
                self.start(run, agent, group);
                started += 1;
            }
        }
        started
    }

    /// The jobset, exclusive-job and group checks of a pinned run (the agent is fixed):
    /// `Some(group)` when it may start, counted against that group.
    fn pinned_placement(&self, run: RunNo) -> Option<Option<Arc<str>>> {
        let key = &self.runs[&run].key;
        if !self.limits_allow(key) {
            return None;
        }
        if key.groups.is_empty() {
            return Some(None);
        }
        key.groups
            .iter()
            .find(|g| {
                let (running, max) = self.groups.get(*g).map_or((0, 1), |s| (s.running, s.max()));
                running < max
            })
            .map(|g| Some(g.clone()))
    }

    /// Why a ready pinned run waits.
    pub(super) fn pinned_reason(&self, run: RunNo) -> Option<String> {
        let target = self.runs.get(&run)?.info.same_agent_as?;
        let name = self.pins.ran_on.get(&target)?;
        let Some(agent) = self.pins.by_name.get(name) else {
            return Some(format!(
                "same_agent_as: waiting for agent {name} (it ran run {target}) to reconnect"
            ));
        };
        if !self.agents.get(*agent).is_some_and(|a| a.accepts()) {
            return Some(format!(
                "same_agent_as: agent {name} (it ran run {target}) has no free slot"
            ));
        }
        None
    }
}
