//! Text renderings of coordinator objects for `-o table` (the default): one table or one
//! detail page per kind of object, so every command prints the same thing the same way.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::time::Duration;

use rota_proto::{Agent, Group, Job, Jobset, Run, StatusResponse};

use super::{human_bytes, human_duration, local_time, shell_join, short_id, span_ms, Table};

/// States in lifecycle order, for counts and summaries.
pub const STATE_ORDER: [&str; 8] = [
    "pending",
    "assigned",
    "running",
    "success",
    "errored",
    "cancelled",
    "skipped",
    "retired",
];

/// How a run ended, for the EXIT column: the exit code, `sig N`, or empty.
pub fn exit_text(exit_code: Option<i32>, signal: Option<i32>) -> String {
    match (exit_code, signal) {
        (Some(code), _) => code.to_string(),
        (None, Some(sig)) => format!("sig {sig}"),
        (None, None) => String::new(),
    }
}

/// `finished - started` of a run as text, empty while unknown.
pub fn run_duration(run: &Run) -> String {
    span_ms(run.started_at_ms, run.finished_at_ms)
        .map(|ms| human_duration(Duration::from_millis(ms)))
        .unwrap_or_default()
}

/// The group a run counts against, or the groups it may take while it has none.
fn group_text(run: &Run) -> String {
    if run.concurrency_group.is_empty() {
        run.groups.join(",")
    } else {
        run.concurrency_group.clone()
    }
}

/// `rota runs`: NUMBER, ID, NAME, JOBSET, STATE, AGENT, GROUP, EXIT, WAITING.
pub fn runs_table(runs: &[Run]) -> String {
    let mut t = Table::new(&[
        "NUMBER", "ID", "NAME", "JOBSET", "STATE", "AGENT", "GROUP", "EXIT", "WAITING",
    ]);
    for r in runs {
        let waiting = if r.state == "pending" {
            r.waiting_reason.clone()
        } else {
            String::new()
        };
        t.row(vec![
            r.number.to_string(),
            short_id(&r.id).to_string(),
            r.name.clone(),
            r.jobset.clone(),
            r.state.clone(),
            r.agent.clone(),
            group_text(r),
            exit_text(r.exit_code, r.signal),
            waiting,
        ]);
    }
    t.render()
}

/// The answer of commands that create or change runs (submit, retry, cancel, trigger):
/// the full id, since that is what a person copies into the next command.
pub fn changed_runs_table(runs: &[Run]) -> String {
    let mut t = Table::new(&["NUMBER", "ID", "NAME", "JOBSET", "STATE"]);
    for r in runs {
        t.row(vec![
            r.number.to_string(),
            r.id.clone(),
            r.name.clone(),
            r.jobset.clone(),
            r.state.clone(),
        ]);
    }
    t.render()
}

/// `rota show RUN`: every field, then the attempts table and the environment.
pub fn run_details(r: &Run) -> String {
    let mut fields: Vec<(&str, String)> = vec![
        ("id", r.id.clone()),
        ("number", r.number.to_string()),
        ("name", r.name.clone()),
        ("jobset", r.jobset.clone()),
        ("state", r.state.clone()),
    ];
    if !r.waiting_reason.is_empty() {
        fields.push(("waiting", r.waiting_reason.clone()));
    }
    fields.extend([
        ("command", shell_join(&r.command)),
        ("shell", r.shell.to_string()),
        ("priority", r.priority.to_string()),
        ("groups", r.groups.join(", ")),
        ("group", r.concurrency_group.clone()),
        ("agent", r.agent.clone()),
        (
            "attempt",
            format!("{} of {} (retries {})", r.attempt, r.retries + 1, r.retries),
        ),
        ("exit", exit_text(r.exit_code, r.signal)),
        ("error", r.error.clone()),
        ("after", r.after.join(", ")),
        ("submitted", local_time(r.submitted_at_ms)),
        ("started", local_time(r.started_at_ms)),
        ("finished", local_time(r.finished_at_ms)),
        ("duration", run_duration(r)),
        ("trigger", r.trigger_type.clone()),
        ("stdout", format!("{} bytes", r.stdout_len)),
        ("stderr", format!("{} bytes", r.stderr_len)),
    ]);
    let mut out = String::new();
    for (key, value) in fields {
        let value = if value.is_empty() { "-".into() } else { value };
        let _ = writeln!(out, "{:<10} {}", format!("{key}:"), super::one_line(&value));
    }

    out.push_str("\nattempts:\n");
    let mut t = Table::new(&[
        "ATTEMPT", "STATE", "AGENT", "GROUP", "STARTED", "DURATION", "EXIT", "ERROR",
    ]);
    for a in &r.attempts {
        t.row(vec![
            a.attempt.to_string(),
            a.state.clone(),
            a.agent.clone(),
            a.concurrency_group.clone(),
            local_time(a.started_at_ms),
            span_ms(a.started_at_ms, a.finished_at_ms)
                .map(|ms| human_duration(Duration::from_millis(ms)))
                .unwrap_or_default(),
            exit_text(a.exit_code, a.signal),
            a.error.clone(),
        ]);
    }
    out.push_str(&indent(&t.render()));

    out.push_str("\nenv:\n");
    if r.env.is_empty() {
        out.push_str("  (none)\n");
    }
    let mut env: Vec<_> = r.env.iter().collect();
    env.sort();
    for (k, v) in env {
        let _ = writeln!(out, "  {k}={}", super::one_line(v));
    }
    if !r.artifacts.is_empty() {
        out.push_str("\nartifacts:\n");
        out.push_str(&indent(&artifacts(&r.artifacts)));
    }
    if !r.return_data_problem.is_empty() {
        let _ = writeln!(
            out,
            "\nreturn data: not kept: {}",
            super::one_line(&r.return_data_problem)
        );
    } else if let Ok(data) = serde_json::from_str::<serde_json::Value>(&r.return_data) {
        let pretty = serde_json::to_string_pretty(&data).unwrap_or_default();
        out.push_str("\nreturn data:\n");
        out.push_str(&indent(&pretty));
        out.push('\n');
    }
    out
}

/// `rota artifacts RUN`: path, size, digest.
pub fn artifacts(files: &[rota_proto::ArtifactFile]) -> String {
    let mut t = Table::new(&["PATH", "SIZE", "SHA256"]);
    for a in files {
        t.row(vec![a.path.clone(), a.size.to_string(), a.sha256.clone()]);
    }
    t.render()
}

/// `rota status`: one `key: value` line per fact; run counts in life order, zeros left out.
pub fn status_details(s: &StatusResponse) -> String {
    let runs: HashMap<String, u64> = s.runs.iter().map(|c| (c.state.clone(), c.count)).collect();
    let runs = counts_text(&runs);
    let agents = s
        .agents
        .iter()
        .map(|c| format!("{} {}", c.state, c.count))
        .collect::<Vec<_>>()
        .join(", ");
    let webhooks = format!(
        "{} delivered, {} pending, {} failed tries, {} given up",
        s.notifications_delivered,
        s.notifications_pending,
        s.notifications_attempts_failed,
        s.notifications_given_up
    );
    let fields: [(&str, String); 15] = [
        ("version", s.version.clone()),
        ("protocol", s.protocol_version.to_string()),
        ("uptime", human_duration(Duration::from_millis(s.uptime_ms))),
        ("store", s.store_kind.clone()),
        ("store size", human_bytes(s.store_bytes)),
        ("free space", human_bytes(s.data_dir_free_bytes)),
        ("agents", agents),
        ("queue", format!("{} pending", s.queue_depth)),
        ("runs", if runs.is_empty() { "none".into() } else { runs }),
        ("oldest run", local_time(s.oldest_run_submitted_ms)),
        ("webhooks", webhooks),
        ("log size", human_bytes(s.log_bytes)),
        ("artifacts", human_bytes(s.artifact_bytes)),
        ("retention", s.retention.clone()),
        ("pruned", format!("{} runs since start", s.pruned_runs)),
    ];
    let mut out = String::new();
    for (key, value) in fields {
        let _ = writeln!(out, "{:<12} {}", format!("{key}:"), super::one_line(&value));
    }
    out
}

fn indent(text: &str) -> String {
    text.lines().map(|l| format!("  {l}\n")).collect()
}

/// Counts in lifecycle order, zeros left out: `running 2, success 4`.
pub fn counts_text(counts: &HashMap<String, u64>) -> String {
    let mut known: Vec<String> = STATE_ORDER
        .iter()
        .filter_map(|s| {
            counts
                .get(*s)
                .filter(|n| **n > 0)
                .map(|n| format!("{s} {n}"))
        })
        .collect();
    let mut other: Vec<_> = counts
        .iter()
        .filter(|(s, n)| **n > 0 && !STATE_ORDER.contains(&s.as_str()))
        .collect();
    other.sort();
    known.extend(other.into_iter().map(|(s, n)| format!("{s} {n}")));
    known.join(", ")
}

/// A jobset's `parallel`, where 0 means unlimited.
fn parallel_text(parallel: u32) -> String {
    if parallel == 0 {
        "unlimited".into()
    } else {
        parallel.to_string()
    }
}

/// `rota prune`: the policy, then NUMBER, NAME, JOBSET, STATE, FINISHED of each run, then
/// whether more follow.
pub fn prune_table(r: &rota_proto::PruneResponse, dry_run: bool) -> String {
    let mut out = format!("policy: {}\n", super::one_line(&r.policy));
    if r.runs.is_empty() {
        out.push_str(if dry_run {
            "nothing to delete now\n"
        } else {
            "nothing deleted\n"
        });
        return out;
    }
    let mut t = Table::new(&["NUMBER", "NAME", "JOBSET", "STATE", "FINISHED"]);
    for p in &r.runs {
        t.row(vec![
            p.number.to_string(),
            p.name.clone(),
            p.jobset.clone(),
            p.state.clone(),
            local_time(p.finished_at_ms),
        ]);
    }
    out.push_str(&t.render());
    let verb = if dry_run {
        "would be deleted"
    } else {
        "deleted"
    };
    let _ = writeln!(out, "{} runs {verb}", r.runs.len());
    if r.more {
        out.push_str(if dry_run {
            "and more (raise --limit to list them)\n"
        } else {
            "more are being deleted in the background\n"
        });
    }
    out
}

/// `rota jobset list` and `rota jobset show S`: NAME, PARALLEL, STATE, TOTAL, COUNTS.
pub fn jobsets_table(jobsets: &[Jobset]) -> String {
    let mut t = Table::new(&["NAME", "PARALLEL", "STATE", "TOTAL", "COUNTS"]);
    for j in jobsets {
        t.row(vec![
            j.name.clone(),
            parallel_text(j.parallel),
            j.state.clone(),
            j.counts.values().sum::<u64>().to_string(),
            counts_text(&j.counts),
        ]);
    }
    t.render()
}

/// `rota agents`: NAME, STATE, SLOTS, RUNNING, GROUPS, RUNS.
pub fn agents_table(agents: &[Agent]) -> String {
    let mut t = Table::new(&["NAME", "STATE", "SLOTS", "RUNNING", "GROUPS", "RUNS"]);
    for a in agents {
        t.row(vec![
            a.name.clone(),
            a.state.clone(),
            a.slots.to_string(),
            a.running.to_string(),
            a.groups.join(","),
            a.running_runs
                .iter()
                .map(|id| short_id(id))
                .collect::<Vec<_>>()
                .join(","),
        ]);
    }
    t.render()
}

/// `rota groups`: NAME, MAX, RUNNING, WAITING, AGENTS. An implicit max shows as `1 (implicit)`.
pub fn groups_table(groups: &[Group]) -> String {
    let mut t = Table::new(&["NAME", "MAX", "RUNNING", "WAITING", "AGENTS"]);
    for g in groups {
        let max = if g.defined {
            g.max.to_string()
        } else {
            format!("{} (implicit)", g.max)
        };
        t.row(vec![
            g.name.clone(),
            max,
            g.running.to_string(),
            g.waiting.to_string(),
            g.agents.join(","),
        ]);
    }
    t.render()
}

/// `rota jobs`: NAME, SCHEDULE, NEXT, GROUPS.
pub fn jobs_table(jobs: &[Job]) -> String {
    let mut t = Table::new(&["NAME", "SCHEDULE", "NEXT", "GROUPS"]);
    for j in jobs {
        let schedule = match (j.schedule.as_str(), j.schedule_timezone.as_str()) {
            ("", _) => "-".to_string(),
            (s, "") => s.to_string(),
            (s, tz) => format!("{s} ({tz})"),
        };
        t.row(vec![
            j.name.clone(),
            schedule,
            local_time(j.next_run_at_ms),
            j.concurrency_groups.join(","),
        ]);
    }
    t.render()
}

#[cfg(test)]
pub mod tests {
    use super::*;
    use rota_proto::Attempt;

    /// An errored run with one attempt, an env and a group, as the coordinator would send it.
    pub fn sample_run() -> Run {
        Run {
            id: "3f2a9c1e-0000-4000-8000-000000000001".into(),
            number: 12,
            name: "compress-db1".into(),
            jobset: "pipeline".into(),
            command: vec!["gzip".into(), "-9".into(), "dump 1.sql".into()],
            state: "errored".into(),
            groups: vec!["db".into()],
            concurrency_group: "db".into(),
            agent: "local".into(),
            attempt: 1,
            exit_code: Some(3),
            error: "exit status 3".into(),
            started_at_ms: 1_700_000_000_000,
            finished_at_ms: 1_700_000_002_500,
            after: vec!["dump-db1".into()],
            attempts: vec![Attempt {
                attempt: 1,
                agent: "local".into(),
                concurrency_group: "db".into(),
                started_at_ms: 1_700_000_000_000,
                finished_at_ms: 1_700_000_002_500,
                exit_code: Some(3),
                state: "errored".into(),
                ..Default::default()
            }],
            stdout_len: 10,
            stderr_len: 20,
            env: [("B".to_string(), "2".to_string()), ("A".into(), "1".into())]
                .into_iter()
                .collect(),
            trigger_type: "submit".into(),
            ..Default::default()
        }
    }

    /// A pending run blocked on its group.
    pub fn pending_run() -> Run {
        Run {
            id: "aaaaaaaa-bbbb-4000-8000-000000000002".into(),
            number: 13,
            name: "upload-db1".into(),
            jobset: "pipeline".into(),
            state: "pending".into(),
            waiting_reason: "waiting for compress-db1".into(),
            groups: vec!["net".into(), "db".into()],
            ..Default::default()
        }
    }

    pub fn sample_agent() -> Agent {
        Agent {
            name: "host-a".into(),
            state: "connected".into(),
            groups: vec!["db".into(), "net".into()],
            slots: 4,
            running: 1,
            running_runs: vec!["3f2a9c1e-0000-4000-8000-000000000001".into()],
            ..Default::default()
        }
    }

    #[test]
    fn runs_table_shows_short_ids_exit_codes_and_waiting_reasons() {
        let text = runs_table(&[sample_run(), pending_run()]);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3);
        assert!(lines[0].starts_with("NUMBER  ID        NAME"), "{text}");
        assert!(lines[0].ends_with("EXIT  WAITING"), "{text}");
        assert!(
            lines[1].starts_with("12      3f2a9c1e  compress-db1"),
            "{text}"
        );
        assert!(
            lines[1].contains(" errored ") && lines[1].ends_with(" 3"),
            "{text}"
        );
        assert!(
            lines[2].contains("net,db"),
            "group list while unassigned: {text}"
        );
        assert!(lines[2].ends_with("waiting for compress-db1"), "{text}");
    }

    #[test]
    fn run_details_show_return_data_or_why_it_was_not_kept() {
        let mut run = sample_run();
        assert!(!run_details(&run).contains("return data"));
        run.return_data = r#"{"rows":3}"#.into();
        let text = run_details(&run);
        assert!(
            text.contains("\nreturn data:\n  {\n    \"rows\": 3\n  }\n"),
            "{text}"
        );
        run.return_data_problem = "return_data.json: EOF".into();
        let text = run_details(&run);
        assert!(
            text.contains("\nreturn data: not kept: return_data.json: EOF\n"),
            "{text}"
        );
    }

    #[test]
    fn exit_column_shows_code_or_signal() {
        assert_eq!(exit_text(Some(0), None), "0");
        assert_eq!(exit_text(None, Some(9)), "sig 9");
        assert_eq!(exit_text(None, None), "");
    }

    #[test]
    fn run_details_show_every_field_attempts_and_env() {
        let text = run_details(&sample_run());
        for expected in [
            "id:        3f2a9c1e-0000-4000-8000-000000000001\n",
            "number:    12\n",
            "command:   gzip -9 'dump 1.sql'\n",
            "attempt:   1 of 1 (retries 0)\n",
            "exit:      3\n",
            "error:     exit status 3\n",
            "after:     dump-db1\n",
            "duration:  2.5s\n",
            "stderr:    20 bytes\n",
            "\nattempts:\n  ATTEMPT  STATE    AGENT  GROUP",
            "\nenv:\n  A=1\n  B=2\n",
        ] {
            assert!(text.contains(expected), "missing {expected:?} in\n{text}");
        }
        assert!(!text.contains("waiting:"), "{text}");
        assert!(run_details(&pending_run()).contains("waiting:   waiting for compress-db1\n"));
    }

    #[test]
    fn jobsets_show_unlimited_parallel_and_counts_in_lifecycle_order() {
        let js = Jobset {
            name: "pipeline".into(),
            parallel: 0,
            state: "running".into(),
            counts: [
                ("success".to_string(), 4),
                ("pending".to_string(), 9),
                ("errored".to_string(), 0),
                ("running".to_string(), 3),
            ]
            .into_iter()
            .collect(),
            created_at_ms: 0,
        };
        assert_eq!(
            jobsets_table(&[js]),
            "NAME      PARALLEL   STATE    TOTAL  COUNTS\n\
             pipeline  unlimited  running  16     pending 9, running 3, success 4\n"
        );
    }

    #[test]
    fn agents_table_lists_groups_and_short_run_ids() {
        assert_eq!(
            agents_table(&[sample_agent()]),
            "NAME    STATE      SLOTS  RUNNING  GROUPS  RUNS\n\
             host-a  connected  4      1        db,net  3f2a9c1e\n"
        );
    }

    #[test]
    fn status_lists_one_fact_per_line_with_zero_run_counts_left_out() {
        let count = |state: &str, count| rota_proto::StateCount {
            state: state.into(),
            count,
        };
        let s = StatusResponse {
            version: "0.1.0".into(),
            protocol_version: 1,
            uptime_ms: 123_000,
            store_kind: "sqlite".into(),
            store_bytes: 4096,
            data_dir_free_bytes: 3 << 30,
            agents: vec![count("connected", 2), count("draining", 0)],
            queue_depth: 5,
            runs: vec![
                count("pending", 5),
                count("running", 0),
                count("success", 9),
            ],
            oldest_run_submitted_ms: 0,
            notifications_delivered: 4,
            notifications_pending: 1,
            retention: "keep_last 1000".into(),
            log_bytes: 2048,
            pruned_runs: 7,
            artifact_bytes: 5 << 20,
            ..Default::default()
        };
        assert_eq!(
            status_details(&s),
            "version:     0.1.0\n\
             protocol:    1\n\
             uptime:      2m03s\n\
             store:       sqlite\n\
             store size:  4.0 KiB\n\
             free space:  3.0 GiB\n\
             agents:      connected 2, draining 0\n\
             queue:       5 pending\n\
             runs:        pending 5, success 9\n\
             oldest run:  -\n\
             webhooks:    4 delivered, 1 pending, 0 failed tries, 0 given up\n\
             log size:    2.0 KiB\n\
             artifacts:   5.0 MiB\n\
             retention:   keep_last 1000\n\
             pruned:      7 runs since start\n"
        );
    }

    #[test]
    fn groups_table_marks_implicit_maxima() {
        let groups = [
            Group {
                name: "db".into(),
                max: 2,
                running: 1,
                waiting: 3,
                agents: vec!["host-a".into(), "host-b".into()],
                defined: true,
            },
            Group {
                name: "net".into(),
                max: 1,
                defined: false,
                ..Default::default()
            },
        ];
        assert_eq!(
            groups_table(&groups),
            "NAME  MAX           RUNNING  WAITING  AGENTS\n\
             db    2             1        3        host-a,host-b\n\
             net   1 (implicit)  0        0\n"
        );
    }

    #[test]
    fn jobs_table_shows_schedule_with_timezone() {
        let jobs = [
            Job {
                name: "nightly".into(),
                schedule: "H 2 * * *".into(),
                schedule_timezone: "Europe/Berlin".into(),
                concurrency_groups: vec!["db".into()],
                ..Default::default()
            },
            Job {
                name: "adhoc".into(),
                ..Default::default()
            },
        ];
        let text = jobs_table(&jobs);
        assert!(text.starts_with("NAME     SCHEDULE"), "{text}");
        assert!(
            text.contains("nightly  H 2 * * * (Europe/Berlin)  -     db\n"),
            "{text}"
        );
        assert!(text.contains("adhoc    -"), "{text}");
    }

    #[test]
    fn changed_runs_show_full_ids() {
        let text = changed_runs_table(&[pending_run()]);
        assert!(
            text.contains("13      aaaaaaaa-bbbb-4000-8000-000000000002  upload-db1"),
            "{text}"
        );
    }
}
