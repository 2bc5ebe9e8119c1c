//! Connected agents and an index of those with free slots, per group, so that finding a place
//! for a run is a lookup, not a scan of every agent.

use std::cmp::Reverse;
use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use super::types::{AgentId, RunNo};

#[derive(Debug)]
pub struct AgentSlots {
    pub slots: u32,
    pub groups: Vec<Arc<str>>,
    pub running: HashSet<RunNo>,
    /// A draining agent takes no new runs.
    pub draining: bool,
}

impl AgentSlots {
    pub fn free(&self) -> u32 {
        self.slots.saturating_sub(self.running.len() as u32)
    }

    pub(super) fn accepts(&self) -> bool {
        !self.draining && self.free() > 0
    }
}

/// Key in the free-agent indexes: most free slots first (spreads load), then lowest id.
type FreeKey = (Reverse<u32>, AgentId);

#[derive(Debug, Default)]
pub struct AgentPool {
    agents: HashMap<AgentId, AgentSlots>,
    /// Agents with a free slot, any group.
    free_any: BTreeSet<FreeKey>,
    /// Agents with a free slot, per group they serve.
    free_by_group: HashMap<Arc<str>, BTreeSet<FreeKey>>,
    /// Number of connected agents serving each group (free or not).
    serving: HashMap<Arc<str>, u32>,
}

impl AgentPool {
    pub fn get(&self, id: AgentId) -> Option<&AgentSlots> {
        self.agents.get(&id)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&AgentId, &AgentSlots)> {
        self.agents.iter()
    }

    pub fn insert(&mut self, id: AgentId, slots: u32, groups: Vec<Arc<str>>) {
        self.remove(id);
        for g in &groups {
            *self.serving.entry(g.clone()).or_default() += 1;
        }
        let agent = AgentSlots {
            slots,
            groups,
            running: HashSet::new(),
            draining: false,
        };
        self.index(id, &agent);
        self.agents.insert(id, agent);
    }

    /// Removes an agent, returning the runs it held.
    pub fn remove(&mut self, id: AgentId) -> Option<AgentSlots> {
        let agent = self.agents.remove(&id)?;
        self.unindex(id, &agent);
        for g in &agent.groups {
            if let Some(n) = self.serving.get_mut(g) {
                *n -= 1;
                if *n == 0 {
                    self.serving.remove(g);
                }
            }
        }
        Some(agent)
    }

    /// Changes one agent under the index: takes it out, applies `f`, puts it back.
    pub fn update<R>(&mut self, id: AgentId, f: impl FnOnce(&mut AgentSlots) -> R) -> Option<R> {
        let mut agent = self.agents.remove(&id)?;
        self.unindex(id, &agent);
        let r = f(&mut agent);
        self.index(id, &agent);
        self.agents.insert(id, agent);
        Some(r)
    }

    /// The agent with the most free slots, among all or among those serving `group`.
    pub fn best_free(&self, group: Option<&Arc<str>>) -> Option<AgentId> {
        let set = match group {
            None => &self.free_any,
            Some(g) => self.free_by_group.get(g)?,
        };
        set.first().map(|(_, id)| *id)
    }

    pub fn serves(&self, group: &Arc<str>) -> bool {
        self.serving.contains_key(group)
    }

    pub fn is_empty(&self) -> bool {
        self.agents.is_empty()
    }

    /// (busy slots, total slots) over agents that take runs.
    pub fn slot_usage(&self) -> (u32, u32) {
        self.agents
            .values()
            .filter(|a| !a.draining)
            .fold((0, 0), |(b, t), a| {
                (b + a.running.len() as u32, t + a.slots)
            })
    }

    fn index(&mut self, id: AgentId, a: &AgentSlots) {
        if !a.accepts() {
            return;
        }
        let key = (Reverse(a.free()), id);
        self.free_any.insert(key);
        for g in &a.groups {
            self.free_by_group.entry(g.clone()).or_default().insert(key);
        }
    }

    fn unindex(&mut self, id: AgentId, a: &AgentSlots) {
        let key = (Reverse(a.free()), id);
        self.free_any.remove(&key);
        for g in &a.groups {
            if let Some(set) = self.free_by_group.get_mut(g) {
                set.remove(&key);
                if set.is_empty() {
                    self.free_by_group.remove(g);
                }
            }
        }
    }
}
