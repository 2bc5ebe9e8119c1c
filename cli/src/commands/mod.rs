//! One module per verb (docs/style.md rule 3). Each takes the shared [`Context`] and its own parsed
//! arguments, calls the coordinator and prints through `crate::output`. `run` and `apply` are
//! `rota-local`'s (cli/local/, see [`crate::companion`]).

mod agents;
mod artifact_upload;
mod artifacts;
mod audit;
mod cancel;
mod drain;
mod generate;
mod group;
mod groups;
mod import;
mod jobs;
mod jobset;
mod logs;
mod notifications;
mod prune;
mod retire;
mod retry;
mod runs;
mod show;
mod status;
mod submit;
mod trigger;
mod wait;

use std::process::ExitCode;

use crate::args::{Cli, Command};
use crate::client::{self, Client};
use crate::output::OutputFormat;

/// What every command needs besides its own arguments.
#[derive(Debug, Clone)]
pub struct Context {
    /// Coordinator URL, explicit or default.
    pub url: String,
    /// Whether `--coordinator`/`ROTA_COORDINATOR` was given: `rota run` runs in-process if not.
    pub explicit_coordinator: bool,
    /// `-o table|json`.
    pub output: OutputFormat,
    /// Token and extra CA for the coordinator.
    pub access: rota_proto::access::Access,
}

impl Context {
    /// What the global flags say: URL, output format, token and CA.
    pub fn from_cli(cli: &Cli) -> anyhow::Result<Context> {
        Ok(Context {
            url: client::normalize_url(&cli.coordinator_url()),
            explicit_coordinator: cli.coordinator.is_some(),
            output: cli.output,
            access: rota_proto::access::Access::load(cli.token_file.as_deref(), cli.ca.as_deref())
                .map_err(anyhow::Error::msg)?,
        })
    }

    /// A connected client; fails with one line naming the URL when nothing answers there.
    pub async fn client(&self) -> anyhow::Result<Client> {
        client::connect(&self.url, &self.access).await
    }
}

/// Runs the parsed command. `Ok(code)` carries non-zero codes that are not errors (failed runs
/// after `wait`/`run`, 130 after Ctrl-C).
pub async fn dispatch(cli: Cli) -> anyhow::Result<ExitCode> {
    // Generated from the clap definition alone: no token, CA or coordinator involved.
    match &cli.command {
        Command::Completions(a) => {
            return generate::completions(a.shell).map(|()| ExitCode::SUCCESS)
        }
        Command::Man => return generate::man().map(|()| ExitCode::SUCCESS),
        _ => {}
    }
    let ctx = Context::from_cli(&cli)?;
    let ok = |r: anyhow::Result<()>| r.map(|()| ExitCode::SUCCESS);
    match cli.command {
        Command::Submit(a) => ok(submit::submit(&ctx, a).await),
        Command::Jobset(c) => ok(jobset::jobset(&ctx, c).await),
        Command::Runs(a) => ok(runs::runs(&ctx, a).await),
        Command::Show(a) => ok(show::show(&ctx, a).await),
        Command::Logs(a) => ok(logs::logs(&ctx, a).await),
        Command::Artifacts(a) => ok(artifacts::artifacts(&ctx, a).await),
        Command::Cancel(a) => ok(cancel::cancel(&ctx, a).await),
        Command::Retry(a) => ok(retry::retry(&ctx, a).await),
        Command::Retire(a) => ok(retire::retire(&ctx, a).await),
        Command::Wait(a) => wait::wait(&ctx, a).await,
        Command::Agents => ok(agents::agents(&ctx).await),
        Command::Groups => ok(groups::groups(&ctx).await),
        Command::Group(c) => ok(group::group(&ctx, c).await),
        Command::Drain(a) => ok(drain::drain(&ctx, a).await),
        Command::Jobs => ok(jobs::jobs(&ctx).await),
        Command::Trigger(a) => ok(trigger::trigger(&ctx, a).await),
        Command::Status => ok(status::status(&ctx).await),
        Command::Import(c) => ok(import::import(&ctx, c).await),
        Command::Notifications(a) => ok(notifications::notifications(&ctx, a).await),
        Command::Audit(a) => ok(audit::audit(&ctx, a).await),
        Command::Prune(a) => ok(prune::prune(&ctx, a).await),
        Command::Artifact(c) => ok(artifact_upload::artifact(&ctx, c).await),
        Command::Completions(_) | Command::Man => unreachable!("handled above"),
        Command::Run(_) | Command::Apply(_) => crate::companion::exec(),
    }
}
