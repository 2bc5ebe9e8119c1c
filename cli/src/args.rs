//! The command line, as clap derive structs. Only parsing lives here: small value parsers
//! (`K=V`, durations, priorities) included, so `rota submit --timeout 5m` fails with a usage
//! error (exit 2) before anything touches the network.

use std::path::PathBuf;
use std::time::Duration;

use clap::{ArgAction, Args, Parser, Subcommand};
// Shared with config files, so `--priority high` and `--timeout 90s` mean what they mean there.
use rota_proto::duration::parse_duration;
use rota_proto::priority::parse_priority;

use crate::output::OutputFormat;

/// Where the CLI talks to when neither `--coordinator` nor `ROTA_COORDINATOR` is given: the
/// coordinator's default listen address.
pub const DEFAULT_COORDINATOR: &str = "http://127.0.0.1:7878";

/// `rota`: drive a rota coordinator, or run a config file in-process with `rota run FILE`.
#[derive(Debug, Parser)]
#[command(name = "rota", version, about, propagate_version = true)]
pub struct Cli {
    // An `Option`, not a clap default: `rota run` runs in-process unless this is explicit.
    /// Coordinator URL [default: http://127.0.0.1:7878]; several, comma-separated, for
    /// coordinators on one PostgreSQL store (the first that answers is used).
    #[arg(long, global = true, env = "ROTA_COORDINATOR", value_name = "URL")]
    pub coordinator: Option<String>,

    // Global, so it works before or after the command's name.
    /// Output format: table for people, json for programs, id for only the run numbers (or
    /// names of jobs, agents, groups, jobsets), one per line.
    #[arg(short = 'o', long, global = true, value_enum, default_value_t = OutputFormat::Table)]
    pub output: OutputFormat,

    /// Your token for the coordinator (a read or admin credential, or the one shared token), as
    /// the first line of this file [default: ROTA_TOKEN].
    #[arg(long, global = true, env = "ROTA_TOKEN_FILE", value_name = "FILE")]
    pub token_file: Option<std::path::PathBuf>,

    /// Also trust this CA certificate (PEM) for an https:// coordinator.
    #[arg(long, global = true, env = "ROTA_CA", value_name = "FILE")]
    pub ca: Option<std::path::PathBuf>,

    /// More logging: -v info, -vv debug, -vvv trace (default warn); RUST_LOG overrides.
    #[arg(short, long, global = true, action = ArgAction::Count)]
    pub verbose: u8,

    #[command(subcommand)]
    pub command: Command,
}

impl Cli {
    /// The coordinator URL to use: the explicit one, else the default.
    pub fn coordinator_url(&self) -> String {
        self.coordinator
            .clone()
            .unwrap_or_else(|| DEFAULT_COORDINATOR.to_string())
    }
}

/// Every `rota` command; one module per verb under `commands/`. Deferred: a command's flags are
/// built only when it is the one called (or for help, completions and the man page), since
/// building all of them was a third of a `rota submit`'s instructions (issue 14).
#[derive(Debug, Subcommand)]
#[command(defer = true)]
pub enum Command {
    /// Run a config file's jobs as one jobset, to the end (in-process without --coordinator).
    Run(RunArgs),
    /// Submit one command, or one shell command per line of a file (--from).
    Submit(SubmitArgs),
    /// Create, inspect and resize jobsets.
    #[command(subcommand)]
    Jobset(JobsetCommand),
    /// List runs.
    Runs(RunsArgs),
    /// Show every field of a run, its attempts and environment.
    Show(RunRefArgs),
    /// Print a run's output: stdout to stdout, stderr to stderr.
    Logs(LogsArgs),
    /// List a run's artifacts, or download one (--get PATH).
    Artifacts(ArtifactsArgs),
    /// Cancel a run.
    Cancel(RunRefArgs),
    /// Retry a run, or every failed run of a jobset.
    Retry(RetryArgs),
    /// Give up on an errored run.
    Retire(RunRefArgs),
    /// Wait until runs (or a whole jobset) finished; exit 0 only if all succeeded.
    Wait(WaitArgs),
    /// List agents.
    Agents,
    /// List concurrency groups.
    Groups,
    /// Change a concurrency group.
    #[command(subcommand)]
    Group(GroupCommand),
    /// Ask an agent to finish its runs and take no new ones.
    Drain(DrainArgs),
    /// Load a config file (jobs, groups) into the coordinator.
    Apply(ApplyArgs),
    /// List defined jobs.
    Jobs,
    /// Start a run of a defined job now.
    Trigger(TriggerArgs),
    /// Show the coordinator's versions, uptime, store, free space, agents and runs by state.
    Status,
    /// Bring another system's run history into rota.
    #[command(subcommand)]
    Import(ImportCommand),
    /// List recent webhook deliveries: delivered, failed and still to try.
    Notifications(NotificationsArgs),
    /// List the audit trail: who changed what, when, from where (newest first).
    Audit(AuditArgs),
    /// Delete the finished runs past the retention policy now (--dry-run: list them).
    Prune(PruneArgs),
    /// Print a shell completion script: `rota completions bash > /etc/bash_completion.d/rota`.
    Completions(CompletionsArgs),
    /// Print the rota(1) man page (roff): `rota man > /usr/local/share/man/man1/rota.1`.
    Man,
    /// From inside a run: add files to its artifacts (`rota artifact upload FILE...`).
    #[command(subcommand)]
    Artifact(ArtifactCommand),
}

/// `rota artifact ...`.
#[derive(Debug, Subcommand)]
pub enum ArtifactCommand {
    /// Upload files (paths relative to RUN_DIR) as artifacts of the run this runs in; uses
    /// the ROTA_ARTIFACT_URL, ROTA_ARTIFACT_TOKEN (and ROTA_ARTIFACT_CA) its agent set,
    /// valid only while the run's attempt runs.
    Upload {
        /// Files, relative to RUN_DIR (the working directory a run starts in), no `..`.
        #[arg(required = true, value_name = "FILE")]
        files: Vec<String>,
    },
}

/// `rota prune`.
#[derive(Debug, Args)]
pub struct PruneArgs {
    /// Only list what the policy would delete now (read role); without it the runs are
    /// deleted (admin role).
    #[arg(long)]
    pub dry_run: bool,
    /// List at most this many runs (at most 10000).
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub limit: u32,
}

/// `rota completions SHELL`.
#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell to complete for.
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

/// `rota run FILE`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// Config file (YAML or JSON).
    pub file: PathBuf,
    /// Jobset limit; overrides the file's `parallel` (0 = unlimited).
    #[arg(long, value_name = "N")]
    pub parallel: Option<u32>,
    /// Slots of the in-process agent [default: max(4, CPUs)].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub slots: Option<u32>,
    /// Data directory of the in-process coordinator [default: a temporary directory].
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
}

/// `rota submit`.
#[derive(Debug, Args)]
pub struct SubmitArgs {
    /// Jobset to submit into [default: the coordinator's "default" jobset].
    #[arg(long, value_name = "S")]
    pub jobset: Option<String>,
    /// Concurrency group (repeatable); the run takes one of them.
    #[arg(long = "group", value_name = "G")]
    pub groups: Vec<String>,
    /// high, normal, low or an integer (larger first).
    #[arg(long, value_name = "P", value_parser = parse_priority, allow_hyphen_values = true)]
    pub priority: Option<i32>,
    /// Run this one waits for: a run id or number (repeatable).
    #[arg(long, value_name = "RUN")]
    pub after: Vec<String>,
    /// Start on the agent that ran RUN, in its RUN_DIR (RUN is added to --after).
    #[arg(long, value_name = "RUN")]
    pub same_agent_as: Option<String>,
    /// A file or glob (relative to RUN_DIR) kept as an artifact when the run succeeds
    /// (repeatable).
    #[arg(long = "artifact", value_name = "GLOB")]
    pub artifacts: Vec<String>,
    /// Environment variable for the run (repeatable).
    #[arg(long, value_name = "K=V", value_parser = parse_env)]
    pub env: Vec<(String, String)>,
    /// Attempts after the first when the run errors.
    #[arg(long, value_name = "N")]
    pub retries: Option<u32>,
    /// Maximum execution time, e.g. 90s, 5m, 1h (plain numbers are seconds).
    #[arg(long, value_name = "DUR", value_parser = parse_duration)]
    pub timeout: Option<Duration>,
    /// Between SIGTERM and SIGKILL when the run is stopped (timeout, cancel, disconnect)
    /// [default: 60s].
    #[arg(long, value_name = "DUR", value_parser = parse_duration)]
    pub kill_grace: Option<Duration>,
    /// keep: the run goes on when its agent loses contact, and may be started again elsewhere
    /// meanwhile; stop: the agent stops it after a lease without contact, and a replacement
    /// starts only once it is surely dead (never two at once).
    #[arg(long, value_enum, value_name = "POLICY", default_value = "keep")]
    pub on_disconnect: OnDisconnect,
    /// Job name [default: derived by the coordinator].
    #[arg(long, value_name = "NAME", conflicts_with = "from")]
    pub name: Option<String>,
    /// Run the command words joined by spaces under /bin/sh -c.
    #[arg(long)]
    pub shell: bool,
    /// Print only the run numbers, one per line (the same as `-o id`).
    #[arg(short, long)]
    pub quiet: bool,
    /// One shell command per line (`-` = stdin), all submitted as one batch.
    #[arg(long, value_name = "FILE", conflicts_with = "command")]
    pub from: Option<PathBuf>,
    /// The command and its arguments (after `--` when they start with `-`).
    #[arg(
        value_name = "CMD",
        trailing_var_arg = true,
        required_unless_present = "from"
    )]
    pub command: Vec<String>,
}

/// `submit --on-disconnect`: what an agent does with the run when it loses contact.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OnDisconnect {
    Keep,
    Stop,
}

/// `rota jobset ...`.
#[derive(Debug, Subcommand)]
pub enum JobsetCommand {
    /// Create a jobset.
    Create {
        name: String,
        /// How many of its runs may run at once (0 = unlimited).
        #[arg(long, value_name = "N", default_value_t = 0)]
        parallel: u32,
        /// A webhook for its runs and its end:
        /// URL[,on=failure|success|retired|cancelled|jobset_finished|any][,secret_file=PATH][,format=json|slack]
        /// (`on` repeatable; default failure). Repeatable.
        #[arg(long, value_name = "URL[,on=EVENT]", value_parser = parse_notify)]
        notify: Vec<rota_proto::NotifyTarget>,
    },
    /// Change a jobset's limit while it runs (lowering never kills running runs).
    Parallel { name: String, parallel: u32 },
    /// Show one jobset.
    Show { name: String },
    /// List jobsets.
    List,
}

/// `rota runs`.
#[derive(Debug, Args)]
pub struct RunsArgs {
    /// Only runs of this jobset.
    #[arg(long, value_name = "S")]
    pub jobset: Option<String>,
    /// Only runs in this state (pending, running, success, errored, ...).
    #[arg(long, value_name = "X")]
    pub state: Option<String>,
    /// At most this many runs, lowest numbers first (0 = every run).
    #[arg(long, value_name = "N", default_value_t = DEFAULT_RUNS_PAGE)]
    pub limit: u32,
    /// Only runs numbered above N: the next page after a listing that ended at run N.
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub after: u64,
}

/// `rota runs` shows a page, not a 100,000-row queue, unless asked.
pub const DEFAULT_RUNS_PAGE: u32 = 1000;

/// A command that takes one run: its id (UUID) or number.
#[derive(Debug, Args)]
pub struct RunRefArgs {
    /// Run id or number.
    pub run: String,
}

/// `rota artifacts`.
#[derive(Debug, Args)]
pub struct ArtifactsArgs {
    /// Run id or number.
    pub run: String,
    /// Write this artifact (its path as listed) to stdout, or to --output.
    #[arg(long, value_name = "PATH")]
    pub get: Option<String>,
    /// With --get: write to this file instead of stdout.
    #[arg(long = "to", value_name = "FILE", requires = "get")]
    pub to: Option<std::path::PathBuf>,
}

/// `rota logs`.
#[derive(Debug, Args)]
pub struct LogsArgs {
    /// Run id or number.
    pub run: String,
    /// Keep streaming until the run has finished.
    #[arg(short, long)]
    pub follow: bool,
    /// Only stdout.
    #[arg(long, conflicts_with = "stderr")]
    pub stdout: bool,
    /// Only stderr.
    #[arg(long)]
    pub stderr: bool,
    /// The logs of this attempt (1 = the first) instead of the latest.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub attempt: Option<u32>,
}

/// `rota retry RUN | rota retry --jobset S --failed`.
#[derive(Debug, Args)]
pub struct RetryArgs {
    /// Run ids or numbers: all are retried or, if one may not be, none.
    #[arg(required_unless_present = "jobset", conflicts_with = "jobset")]
    pub runs: Vec<String>,
    /// Retry runs of this jobset (with --failed).
    #[arg(long, value_name = "S", requires = "failed")]
    pub jobset: Option<String>,
    /// Every errored run of the jobset.
    #[arg(long, requires = "jobset")]
    pub failed: bool,
}

/// `rota wait RUN... | rota wait --jobset S`.
#[derive(Debug, Args)]
pub struct WaitArgs {
    /// Run ids or numbers.
    #[arg(required_unless_present = "jobset", conflicts_with = "jobset")]
    pub runs: Vec<String>,
    /// Wait for every run of this jobset.
    #[arg(long, value_name = "S")]
    pub jobset: Option<String>,
}

/// `rota group ...`.
#[derive(Debug, Subcommand)]
pub enum GroupCommand {
    /// Set a group's max (lowering never kills running runs).
    Set {
        name: String,
        #[arg(long, value_name = "N")]
        max: u32,
    },
}

/// `rota drain AGENT`.
#[derive(Debug, Args)]
pub struct DrainArgs {
    /// Agent name.
    pub agent: String,
    /// How long its runs may take before they are cancelled [default: the agent's].
    #[arg(long, value_name = "DUR", value_parser = parse_duration)]
    pub timeout: Option<Duration>,
}

/// `rota apply FILE`.
#[derive(Debug, Args)]
pub struct ApplyArgs {
    /// Config file (YAML or JSON); sent as text with the files of its `config_d` directory
    /// (default `config.d` beside it), validated by the coordinator.
    pub file: PathBuf,
    /// Only validate: the coordinator checks the config and lists its jobs and warnings, and
    /// applies nothing.
    #[arg(long)]
    pub check: bool,
}

/// `rota trigger JOB`.
#[derive(Debug, Args)]
pub struct TriggerArgs {
    /// Job name.
    pub job: String,
    /// Environment variable for this run (repeatable).
    #[arg(long, value_name = "K=V", value_parser = parse_env)]
    pub env: Vec<(String, String)>,
}

/// `rota import ...`.
#[derive(Debug, Subcommand)]
pub enum ImportCommand {
    /// dsari's finished runs and their output (`DSARI_DATA_DIR/dsari.sqlite3` and
    /// `runs/JOB/RUN_ID/output.txt`); importing again skips runs already imported.
    Dsari(ImportDsariArgs),
}

/// `rota import dsari DSARI_DATA_DIR`.
#[derive(Debug, Args)]
pub struct ImportDsariArgs {
    /// dsari's data_dir (holding runs/ and, by default, dsari.sqlite3).
    pub data_dir: PathBuf,
    /// dsari's SQLite database, when not DSARI_DATA_DIR/dsari.sqlite3 (its `database.file`).
    #[arg(long, value_name = "FILE")]
    pub database: Option<PathBuf>,
}

/// `rota notifications`.
#[derive(Debug, Args)]
pub struct NotificationsArgs {
    /// Only those about this run number.
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub run: u64,
    /// At most this many, newest first.
    #[arg(long, value_name = "N", default_value_t = 100)]
    pub limit: u32,
}

/// `rota audit`.
#[derive(Debug, Args)]
pub struct AuditArgs {
    /// Only entries naming this run number.
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub run: u64,
    /// Only entries since T: an RFC 3339 time (2026-12-02T12:00:00Z) or a duration ago (1h, 2d).
    #[arg(long, value_name = "T", value_parser = parse_since)]
    pub since: Option<u64>,
    /// At most this many, newest first.
    #[arg(long, value_name = "N", default_value_t = 1000)]
    pub limit: u32,
}

/// `--notify URL[,on=EVENT][,secret_file=PATH][,format=F]` → a target, checked by the
/// coordinator (which names what is wrong).
pub fn parse_notify(s: &str) -> Result<rota_proto::NotifyTarget, String> {
    let mut parts = s.split(',');
    let url = parts.next().unwrap_or_default().trim();
    if url.is_empty() {
        return Err(format!("expected URL[,on=EVENT], got {s:?}"));
    }
    let mut t = rota_proto::NotifyTarget {
        url: url.to_string(),
        ..Default::default()
    };
    for part in parts {
        match part.split_once('=') {
            Some(("on", v)) => t.events.extend(v.split('|').map(str::to_string)),
            Some(("secret_file", v)) => t.secret_file = v.to_string(),
            Some(("format", v)) => t.format = v.to_string(),
            _ => {
                return Err(format!(
                    "unknown notify option {part:?}: expected on=EVENT, secret_file=PATH or format=json|slack"
                ))
            }
        }
    }
    Ok(t)
}

/// `--since`: RFC 3339, or a duration before now; unix ms.
pub fn parse_since(s: &str) -> Result<u64, String> {
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(s) {
        return u64::try_from(t.timestamp_millis()).map_err(|_| format!("{s:?} is before 1970"));
    }
    let ago = parse_duration(s).map_err(|_| {
        format!("expected an RFC 3339 time (2026-12-02T12:00:00Z) or a duration (1h), got {s:?}")
    })?;
    let ago = u64::try_from(ago.as_millis()).unwrap_or(u64::MAX);
    Ok(rota_proto::clock::now_millis().saturating_sub(ago))
}

/// `K=V` → (K, V); the value may contain `=` and be empty, the key may not.
pub fn parse_env(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
        _ => Err(format!("expected K=V, got {s:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    fn parse(args: &[&str]) -> Cli {
        Cli::try_parse_from(std::iter::once("rota").chain(args.iter().copied()))
            .unwrap_or_else(|e| panic!("{args:?} should parse: {e}"))
    }

    fn parse_err(args: &[&str]) -> clap::Error {
        Cli::try_parse_from(std::iter::once("rota").chain(args.iter().copied()))
            .expect_err("should be a usage error")
    }

    #[test]
    fn clap_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn output_flag_works_before_the_command() {
        let cli = parse(&["-o", "json", "runs"]);
        assert_eq!(cli.output, OutputFormat::Json);
        assert!(matches!(cli.command, Command::Runs(_)));
    }

    #[test]
    fn output_flag_works_after_the_command() {
        let cli = parse(&["runs", "--jobset", "x", "--output", "json"]);
        assert_eq!(cli.output, OutputFormat::Json);
        let cli = parse(&["jobset", "list", "-o", "json"]);
        assert_eq!(cli.output, OutputFormat::Json);
    }

    #[test]
    fn quiet_submit_and_id_output_parse() {
        let cli = parse(&["submit", "-q", "--", "make", "-q"]);
        let Command::Submit(a) = cli.command else {
            panic!("not submit")
        };
        assert!(a.quiet, "-q before the command is submit's");
        assert_eq!(a.command, ["make", "-q"], "-q after -- belongs to CMD");
        assert_eq!(parse(&["runs", "-o", "id"]).output, OutputFormat::Id);
    }

    #[test]
    fn completions_take_a_known_shell() {
        let Command::Completions(a) = parse(&["completions", "zsh"]).command else {
            panic!("not completions")
        };
        assert_eq!(a.shell, clap_complete::Shell::Zsh);
        assert_eq!(parse_err(&["completions", "tcsh"]).exit_code(), 2);
        assert_eq!(parse_err(&["completions"]).exit_code(), 2);
    }

    #[test]
    fn output_defaults_to_table_and_rejects_unknown_formats() {
        assert_eq!(parse(&["agents"]).output, OutputFormat::Table);
        let err = parse_err(&["-o", "yaml", "agents"]);
        assert_eq!(err.exit_code(), 2);
    }

    #[test]
    fn coordinator_flag_is_global_and_explicit_only_when_given() {
        let cli = parse(&["groups", "--coordinator", "http://h:1"]);
        assert_eq!(cli.coordinator.as_deref(), Some("http://h:1"));
        assert_eq!(cli.coordinator_url(), "http://h:1");
        // The env var may be set in the test environment; only check the fallback logic.
        let cli = Cli {
            coordinator: None,
            ..parse(&["groups"])
        };
        assert_eq!(cli.coordinator_url(), DEFAULT_COORDINATOR);
    }

    #[test]
    fn submit_takes_the_argv_after_double_dash_verbatim() {
        let cli = parse(&[
            "submit", "--jobset", "s", "--group", "a", "--group", "b", "--", "ls", "-la", "-o",
            "json",
        ]);
        let Command::Submit(a) = cli.command else {
            panic!("not submit")
        };
        assert_eq!(a.command, ["ls", "-la", "-o", "json"]);
        assert_eq!(a.jobset.as_deref(), Some("s"));
        assert_eq!(a.groups, ["a", "b"]);
        assert_eq!(
            cli.output,
            OutputFormat::Table,
            "-o after -- belongs to CMD"
        );
    }

    #[test]
    fn submit_takes_argv_without_double_dash_once_the_command_starts() {
        let Command::Submit(a) = parse(&["submit", "--shell", "echo", "-n", "hi"]).command else {
            panic!("not submit")
        };
        assert!(a.shell);
        assert_eq!(a.command, ["echo", "-n", "hi"]);
    }

    #[test]
    fn submit_parses_every_option() {
        let Command::Submit(a) = parse(&[
            "submit",
            "--priority",
            "high",
            "--after",
            "12",
            "--after",
            "abc",
            "--env",
            "A=1",
            "--env",
            "B=x=y",
            "--retries",
            "3",
            "--timeout",
            "1m30s",
            "--name",
            "build",
            "--",
            "make",
        ])
        .command
        else {
            panic!("not submit")
        };
        assert_eq!(a.priority, Some(10));
        assert_eq!(a.after, ["12", "abc"]);
        assert_eq!(
            a.env,
            [
                ("A".to_string(), "1".to_string()),
                ("B".to_string(), "x=y".to_string())
            ]
        );
        assert_eq!(a.retries, Some(3));
        assert_eq!(a.timeout, Some(Duration::from_secs(90)));
        assert_eq!(a.name.as_deref(), Some("build"));
        assert_eq!(a.command, ["make"]);
    }

    #[test]
    fn submit_accepts_negative_priorities() {
        let Command::Submit(a) = parse(&["submit", "--priority", "-5", "--", "x"]).command else {
            panic!("not submit")
        };
        assert_eq!(a.priority, Some(-5));
    }

    #[test]
    fn submit_needs_a_command_or_from_but_not_both() {
        parse_err(&["submit", "--jobset", "s"]);
        parse_err(&["submit", "--from", "f", "--", "ls"]);
        parse_err(&["submit", "--from", "f", "--name", "n"]);
        let Command::Submit(a) = parse(&["submit", "--jobset", "s", "--from", "-"]).command else {
            panic!("not submit")
        };
        assert_eq!(a.from, Some(PathBuf::from("-")));
        assert!(a.command.is_empty());
    }

    #[test]
    fn submit_rejects_malformed_values_as_usage_errors() {
        assert_eq!(
            parse_err(&["submit", "--env", "NOEQ", "--", "x"]).exit_code(),
            2
        );
        assert_eq!(
            parse_err(&["submit", "--timeout", "5x", "--", "x"]).exit_code(),
            2
        );
        assert_eq!(
            parse_err(&["submit", "--priority", "urgent", "--", "x"]).exit_code(),
            2
        );
        assert_eq!(parse_err(&["submit", "--bogus", "x"]).exit_code(), 2);
    }

    #[test]
    fn run_parses_its_options() {
        let Command::Run(a) = parse(&[
            "run",
            "p.yaml",
            "--parallel",
            "2",
            "--slots",
            "8",
            "--data-dir",
            "/d",
        ])
        .command
        else {
            panic!("not run")
        };
        assert_eq!(a.file, PathBuf::from("p.yaml"));
        assert_eq!(a.parallel, Some(2));
        assert_eq!(a.slots, Some(8));
        assert_eq!(a.data_dir, Some(PathBuf::from("/d")));
        parse_err(&["run", "p.yaml", "--slots", "0"]);
    }

    #[test]
    fn jobset_subcommands_parse() {
        assert!(matches!(
            parse(&["jobset", "create", "s", "--parallel", "3"]).command,
            Command::Jobset(JobsetCommand::Create { ref name, parallel: 3, .. }) if name == "s"
        ));
        assert!(matches!(
            parse(&["jobset", "parallel", "s", "5"]).command,
            Command::Jobset(JobsetCommand::Parallel { parallel: 5, .. })
        ));
        assert!(matches!(
            parse(&["jobset", "show", "s"]).command,
            Command::Jobset(JobsetCommand::Show { .. })
        ));
        assert!(matches!(
            parse(&["jobset", "list"]).command,
            Command::Jobset(JobsetCommand::List)
        ));
    }

    #[test]
    fn logs_streams_are_exclusive() {
        let Command::Logs(a) = parse(&["logs", "7", "-f", "--stderr"]).command else {
            panic!("not logs")
        };
        assert!(a.follow && a.stderr && !a.stdout);
        parse_err(&["logs", "7", "--stdout", "--stderr"]);
    }

    #[test]
    fn retry_takes_runs_or_a_jobsets_failed_runs() {
        let Command::Retry(a) = parse(&["retry", "7"]).command else {
            panic!("not retry")
        };
        assert_eq!(a.runs, ["7"]);
        let Command::Retry(a) = parse(&["retry", "7", "9"]).command else {
            panic!("not retry")
        };
        assert_eq!(a.runs, ["7", "9"]);
        let Command::Retry(a) = parse(&["retry", "--jobset", "s", "--failed"]).command else {
            panic!("not retry")
        };
        assert!(a.failed && a.runs.is_empty());
        parse_err(&["retry"]);
        parse_err(&["retry", "--jobset", "s"]);
        parse_err(&["retry", "7", "--jobset", "s", "--failed"]);
    }

    #[test]
    fn wait_takes_runs_or_a_jobset() {
        let Command::Wait(a) = parse(&["wait", "1", "2", "abc"]).command else {
            panic!("not wait")
        };
        assert_eq!(a.runs, ["1", "2", "abc"]);
        let Command::Wait(a) = parse(&["wait", "--jobset", "s"]).command else {
            panic!("not wait")
        };
        assert_eq!(a.jobset.as_deref(), Some("s"));
        parse_err(&["wait"]);
        parse_err(&["wait", "1", "--jobset", "s"]);
    }

    #[test]
    fn group_drain_trigger_apply_parse() {
        assert!(matches!(
            parse(&["group", "set", "g", "--max", "4"]).command,
            Command::Group(GroupCommand::Set { max: 4, .. })
        ));
        parse_err(&["group", "set", "g"]);
        let Command::Drain(a) = parse(&["drain", "host-a", "--timeout", "10m"]).command else {
            panic!("not drain")
        };
        assert_eq!(a.timeout, Some(Duration::from_secs(600)));
        let Command::Trigger(a) = parse(&["trigger", "nightly", "--env", "X=1"]).command else {
            panic!("not trigger")
        };
        assert_eq!(a.env, [("X".to_string(), "1".to_string())]);
        assert!(matches!(
            parse(&["apply", "c.yaml"]).command,
            Command::Apply(_)
        ));
    }

    #[test]
    fn verbose_counts() {
        assert_eq!(parse(&["-vv", "agents"]).verbose, 2);
        assert_eq!(parse(&["agents", "-v"]).verbose, 1);
    }

    #[test]
    fn env_pairs_need_a_key() {
        assert_eq!(parse_env("A="), Ok(("A".into(), String::new())));
        assert!(parse_env("=1").is_err());
        assert!(parse_env("A").is_err());
    }
}
