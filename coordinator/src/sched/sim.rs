//! Seeded random simulation of the scheduler core (docs/architecture.md: "seeded random
//! simulations that check invariants").
//!
//! A driver throws random events at a [`Scheduler`]: submits (priorities, groups, exclusive jobs,
//! dependencies on earlier runs, retries), cancels, retries, retires, results of active runs,
//! agents that connect, drain, reject a run, disconnect, get lost and reconnect to claim what
//! they still hold, group `max` and jobset `parallel` changed up and down, time moving on, and
//! now and then a coordinator restart that rebuilds the core from what a store would hold.
//!
//! After every step (the event, then `dispatch()`), each decision is checked against a model
//! of what runs where, built only from the decisions themselves and the events the driver
//! caused, never from the core's internals: no Assign when the group is at its max, the agent
//! at its slots, the jobset at `parallel` or the exclusive job running; the least loaded group
//! and the best-ranked startable run win; no runnable run waits while a slot it may use is
//! free; every run ends exactly once (one Finish per life, never an Assign after it); attempts
//! only grow; back-offs double; orphans are lost when their lease ends. At the end, every limit
//! is opened and every run is driven to a final state.
//!
//! A failure names its seed and step and shows the last events. Replay one seed alone with
//! `ROTA_SIM_SEED=N cargo test -p rota-coordinator --lib sched::sim` (100 000 steps, or
//! `ROTA_SIM_STEPS`); the run is deterministic, so it fails at the same step. To hunt for new
//! failures, `ROTA_SIM_SEEDS=K` runs seeds 1..=K; `--nocapture` prints what each seed reached.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::*;

mod agents;
mod check;
mod runs;
mod world;

const CI_SEEDS: u64 = 8;
const CI_STEPS: u64 = 15_000;
const REPLAY_STEPS: u64 = 100_000;

const LEASE: Millis = 5_000;
const BACKOFF_BASE: Millis = 500;
const BACKOFF_MAX: Millis = 4_000;
const MACHINES: usize = 6;
/// Submits pause while this many runs are unfinished, so the checks stay cheap.
const MAX_UNFINISHED: usize = 40;
/// Groups agents commonly serve; runs may also name `rare`, which few agents serve and often
/// none (so runs that need it wait, and must not block others).
const COMMON: [&str; 5] = ["a", "b", "c", "d", "e"];
const GROUPS: [&str; 6] = ["a", "b", "c", "d", "e", "rare"];
const JOBSETS: [&str; 3] = ["js0", "js1", "js2"];
const JOBS: [&str; 3] = ["job0", "job1", "job2"];

#[test]
fn random_event_sequences_keep_every_scheduling_invariant() {
    let var = |name: &str, default: u64| {
        std::env::var(name).map_or(default, |s| {
            s.parse()
                .unwrap_or_else(|_| panic!("{name} must be a number, not {s:?}"))
        })
    };
    let (seeds, steps): (Vec<u64>, u64) = match std::env::var("ROTA_SIM_SEED") {
        Ok(_) => (
            vec![var("ROTA_SIM_SEED", 0)],
            var("ROTA_SIM_STEPS", REPLAY_STEPS),
        ),
        Err(_) => (
            (1..=var("ROTA_SIM_SEEDS", CI_SEEDS)).collect(),
            var("ROTA_SIM_STEPS", CI_STEPS),
        ),
    };
    // Seeds are independent: spread them over the cores.
    let next = std::sync::Mutex::new(seeds.into_iter());
    let workers = std::thread::available_parallelism().map_or(2, |n| n.get().min(4));
    let mut failures: Vec<(u64, String)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..workers)
            .map(|_| {
                s.spawn(|| {
                    let mut failed = Vec::new();
                    loop {
                        let seed = next.lock().expect("seed queue").next();
                        let Some(seed) = seed else { break failed };
                        if let Err(msg) = simulate(seed, steps) {
                            failed.push((seed, msg));
                        }
                    }
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("simulation worker"))
            .collect()
    });
    failures.sort();
    if let Some((_, msg)) = failures.first() {
        let seeds: Vec<u64> = failures.iter().map(|(s, _)| *s).collect();
        panic!("scheduler simulation failed for seeds {seeds:?}; the first:\n{msg}");
    }
}

/// Runs one seed; a panic anywhere (a check, or the core itself) comes back as the message
/// that names the seed, the step, the last events and how to replay it.
fn simulate(seed: u64, steps: u64) -> Result<(), String> {
    let mut sim = Sim::new(seed);
    let result = catch_unwind(AssertUnwindSafe(|| {
        for _ in 0..steps {
            sim.step();
        }
        sim.settle();
    }));
    let stats: Vec<String> = sim.stats.iter().map(|(k, v)| format!("{k} {v}")).collect();
    eprintln!("sim seed {seed}: {} steps; {}", sim.step, stats.join(", "));
    let Err(panic) = result else { return Ok(()) };
    let msg = panic
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_default();
    let trace: Vec<&str> = sim.trace.iter().map(String::as_str).collect();
    Err(format!(
        "seed {seed}, step {}: {msg}\n\
         --- last events, oldest first ---\n{}\n\
         --- replay: ROTA_SIM_SEED={seed} cargo test -p rota-coordinator --lib sched::sim",
        sim.step,
        trace.join("\n")
    ))
}

/// A run as the model sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
enum St {
    /// Not started; may not start before `not_before` (a retry back-off).
    Pending {
        not_before: Millis,
    },
    /// Assigned to `agent`. `orphan_until` is set while that agent is gone: the run keeps its
    /// group, jobset and job counted until a claim or the end of the lease.
    Active {
        agent: AgentId,
        group: Option<Arc<str>>,
        cancel: bool,
        orphan_until: Option<Millis>,
        /// An `on_disconnect: stop` run whose agent was lost: `orphan_until` is when it is
        /// lost in turn; no claim takes it back.
        fenced: bool,
    },
    Done(Final),
}

/// A run in the model: what was submitted, its current attempt and where it is.
#[derive(Debug)]
struct MRun {
    info: RunInfo,
    attempt: u32,
    st: St,
    /// Highest attempt assigned so far (a rejected attempt may be assigned again).
    assigned: u32,
    finishes: u32,
    reopens: u32,
}

/// One host running rota-agent; each connection is a new session (agent id).
#[derive(Debug, Default)]
struct Machine {
    session: Option<AgentId>,
    slots: u32,
    groups: Vec<Arc<str>>,
    draining: bool,
    /// Attempts the agent process is running.
    held: BTreeSet<(RunNo, u32)>,
    /// Attempts it was told to kill.
    killing: BTreeSet<(RunNo, u32)>,
}

/// What an event says must hold once its step is over.
#[derive(Debug)]
enum Want {
    Done(Final),
    /// Back in the queue as this attempt, after a back-off.
    Requeued(u32),
    /// Stopped by its agent unasked (drain deadline): queued again at once as this attempt,
    /// so it may already be running again.
    Interrupted(u32),
    /// A Kill for the run in this step (true) or none (false).
    Kill(bool),
    /// Pending again (or skipped again at once) as this attempt.
    Reopened(u32),
}

/// Resources in use, counted from the model.
#[derive(Debug, Default)]
struct Loads {
    group: HashMap<Arc<str>, u32>,
    jobset: HashMap<Arc<str>, u32>,
    job: HashMap<Arc<str>, u32>,
    agent: HashMap<AgentId, u32>,
    on_agent: HashMap<AgentId, BTreeSet<(RunNo, u32)>>,
}

/// Where runs could start now (see `Sim::room`).
#[derive(Debug)]
struct Room {
    any_agent: bool,
    groups: BTreeSet<Arc<str>>,
}

fn count<K: std::hash::Hash + Eq>(m: &HashMap<K, u32>, k: &K) -> u32 {
    m.get(k).copied().unwrap_or(0)
}

fn rank(i: &RunInfo) -> (Reverse<i32>, RunNo) {
    (Reverse(i.priority), i.number)
}

/// The core under test, the model of what it should have decided, the machines the agents run
/// on, and the limits as last set.
struct Sim {
    rng: StdRng,
    sched: Scheduler,
    now: Millis,
    step: u64,
    next_run: RunNo,
    next_agent: AgentId,
    runs: BTreeMap<RunNo, MRun>,
    unfinished: BTreeSet<RunNo>,
    machines: Vec<Machine>,
    live: BTreeMap<AgentId, usize>,
    /// Group `max` as last set (absent or None: undefined, an implicit 1).
    group_max: BTreeMap<Arc<str>, Option<u32>>,
    parallel: BTreeMap<Arc<str>, u32>,
    wants: Vec<(RunNo, Want)>,
    /// Runs named by this step's decisions, compared with the core after the step.
    touched: BTreeSet<RunNo>,
    kills: BTreeSet<RunNo>,
    /// Runs whose agent stopped them unasked in this step: requeued without a back-off.
    interrupted: BTreeSet<RunNo>,
    trace: VecDeque<String>,
    /// How often each kind of thing happened, printed per seed (`--nocapture`) to show the
    /// simulation reaches the interesting cases.
    stats: BTreeMap<&'static str, u64>,
}

fn config() -> SchedConfig {
    SchedConfig {
        retry_backoff_base_ms: BACKOFF_BASE,
        retry_backoff_max_ms: BACKOFF_MAX,
        orphan_lease_ms: LEASE,
    }
}

impl Sim {
    fn new(seed: u64) -> Self {
        let mut sim = Sim {
            rng: StdRng::seed_from_u64(seed),
            sched: Scheduler::new(config()),
            now: 1_000_000,
            step: 0,
            next_run: 1,
            next_agent: 1,
            runs: BTreeMap::new(),
            unfinished: BTreeSet::new(),
            machines: (0..MACHINES).map(|_| Machine::default()).collect(),
            live: BTreeMap::new(),
            group_max: BTreeMap::new(),
            parallel: BTreeMap::new(),
            wants: Vec::new(),
            touched: BTreeSet::new(),
            kills: BTreeSet::new(),
            interrupted: BTreeSet::new(),
            trace: VecDeque::new(),
            stats: BTreeMap::new(),
        };
        for m in 0..MACHINES {
            sim.configure(m);
        }
        sim
    }

    fn tally(&mut self, what: &'static str) {
        *self.stats.entry(what).or_default() += 1;
    }

    fn log(&mut self, line: String) {
        if self.trace.len() == 80 {
            self.trace.pop_front();
        }
        self.trace.push_back(line);
    }

    // ----- the driver -------------------------------------------------------------------

    fn step(&mut self) {
        self.step += 1;
        // A restart restores every run, so it gets rarer as runs pile up (long replays).
        let restart_odds = (self.runs.len() as u32 / 8).max(500);
        if self.rng.random_ratio(1, restart_odds) {
            self.restart();
        } else {
            match self.rng.random_range(0..100) {
                0..18 if self.unfinished.len() < MAX_UNFINISHED => self.submit(),
                0..50 => self.random_report(),
                50..60 => self.tick(),
                60..64 => self.cancel(),
                64..67 => self.retry(),
                67..69 => self.retire(),
                69..74 => self.connect(),
                74..75 => {
                    if let Some(m) = self.pick_machine(|m| m.session.is_some()) {
                        self.disconnect(m);
                        self.open_session(m);
                    }
                }
                75..78 => {
                    if let Some(m) = self.pick_machine(|m| m.session.is_some()) {
                        self.disconnect(m);
                    }
                }
                78..80 => self.lose(),
                80..81 => self.drain(),
                81..83 => self.reject(),
                83..87 => self.set_group_max(),
                87..91 => self.set_parallel(),
                91..92 => self.stale_report(),
                92..93 => self.refused_events(),
                _ => self.random_report(),
            }
        }
        self.finish_step();
    }

    /// Dispatches, checks every decision as it is applied to the model, then the whole state.
    fn finish_step(&mut self) {
        self.sched.dispatch();
        for d in self.sched.take_decisions() {
            self.log(format!("  -> {d:?}"));
            self.apply(d);
        }
        self.check_wants();
        self.check_state();
        if self.step.is_multiple_of(64) {
            self.check_deep();
        }
    }

    /// The end: every limit open, every machine back serving every group, results reported and
    /// time moved on until every run has reached a final state.
    fn settle(&mut self) {
        self.log("settle: open every limit, reconnect every machine".into());
        for g in GROUPS {
            self.group_max.insert(Arc::from(g), Some(4));
            self.sched.set_group_max(g, Some(4));
        }
        for js in JOBSETS {
            self.parallel.insert(Arc::from(js), 0);
            self.sched.set_parallel(js, 0);
        }
        for m in 0..MACHINES {
            if self.machines[m].session.is_some() {
                self.disconnect(m);
            }
            self.machines[m].slots = 3;
            self.machines[m].groups = GROUPS.iter().map(|g| Arc::from(*g)).collect();
            self.open_session(m);
        }
        self.finish_step();
        for _ in 0..1_000 {
            if self.unfinished.is_empty() {
                break;
            }
            self.step += 1;
            for m in 0..MACHINES {
                for (run, attempt) in self.machines[m].held.clone() {
                    let outcome = if self.rng.random_ratio(9, 10) {
                        Outcome::Success
                    } else {
                        Outcome::Failed
                    };
                    self.report(m, run, attempt, outcome);
                }
            }
            self.finish_step();
            self.step += 1;
            self.advance(LEASE + BACKOFF_MAX);
            self.finish_step();
        }
        let left: Vec<_> = self
            .unfinished
            .iter()
            .map(|r| (r, &self.runs[r].st))
            .collect();
        assert!(left.is_empty(), "runs never finished: {left:?}");
        for (n, r) in &self.runs {
            let retired = u32::from(r.st == St::Done(Final::Retired));
            assert_eq!(
                r.finishes,
                r.reopens + 1 + retired,
                "run {n} finished {} times over {} reopens (retired: {retired})",
                r.finishes,
                r.reopens
            );
        }
    }

    fn run_mut(&mut self, run: RunNo) -> &mut MRun {
        self.runs.get_mut(&run).expect("known run")
    }
}

impl MRun {
    /// The run's agent is lost (its session, or its orphan lease ran out): an
    /// `on_disconnect: stop` run not yet fenced is fenced for a lease plus its grace (true);
    /// any other run is lost now (false).
    fn fence(&mut self, now: Millis) -> bool {
        let grace = self.info.stop_on_disconnect;
        match (&mut self.st, grace) {
            (
                St::Active {
                    orphan_until,
                    fenced: fenced @ false,
                    ..
                },
                Some(grace),
            ) => {
                *fenced = true;
                *orphan_until = Some(now + LEASE + grace);
                true
            }
            _ => false,
        }
    }
}

/// What a failed attempt (or a lost agent) leads to.
fn fail_want(r: &MRun) -> Want {
    match r.st {
        St::Active { cancel: true, .. } => Want::Done(Final::Cancelled),
        _ if r.attempt <= r.info.retries => Want::Requeued(r.attempt + 1),
        _ => Want::Done(Final::Errored),
    }
}
