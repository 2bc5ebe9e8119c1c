//! `rota submit`: one command (`-- CMD...`), or one shell command per line of a file
//! (`--from FILE`, `-` = stdin) sent as ONE Submit batch, so the batch is committed (and
//! numbered) atomically, like `xargs` into a queue.

use std::io::Read;
use std::path::Path;

use anyhow::{bail, Context as _};
use rota_proto::{RunSpec, SubmitRequest};

use super::Context;
use crate::args::{OnDisconnect, SubmitArgs};
use crate::client::Reply;
use crate::output::{emit, render, views, OutputFormat};

pub async fn submit(ctx: &Context, args: SubmitArgs) -> anyhow::Result<()> {
    let commands = match &args.from {
        Some(path) => {
            let lines = command_lines(&read_source(path)?);
            if lines.is_empty() {
                bail!(
                    "{}: no commands (blank lines and # comments are skipped)",
                    path.display()
                );
            }
            Some(lines)
        }
        None => None,
    };
    let req = SubmitRequest {
        jobset: args.jobset.clone().unwrap_or_default(),
        runs: run_specs(&args, commands),
        parallel: 0,
    };
    let resp = ctx.client().await?.submit(req).await.reply()?;
    let json: Vec<views::RunView> = views::all(&resp.runs);
    let format = if args.quiet {
        OutputFormat::Id
    } else {
        ctx.output
    };
    emit(format, &json, || render::changed_runs_table(&resp.runs))?;
    Ok(())
}

/// The text of `--from`: a file, or stdin for `-`.
fn read_source(path: &Path) -> anyhow::Result<String> {
    if path == Path::new("-") {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .context("reading commands from stdin")?;
        Ok(text)
    } else {
        std::fs::read_to_string(path).with_context(|| path.display().to_string())
    }
}

/// The commands of a `--from` text: one per line, surrounding blanks trimmed, blank lines and
/// lines starting with `#` skipped.
pub fn command_lines(text: &str) -> Vec<String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(String::from)
        .collect()
}

/// The RunSpecs to submit: one per `--from` line (shell form), or the single command. With
/// `--shell` (and for every `--from` line) the words become one string with `shell: true`: the
/// coordinator wraps it in `/bin/sh -c`, the same way for submits and config files.
pub fn run_specs(args: &SubmitArgs, from_lines: Option<Vec<String>>) -> Vec<RunSpec> {
    let template = RunSpec {
        name: args.name.clone().unwrap_or_default(),
        command: Vec::new(),
        shell: false,
        env: args.env.iter().cloned().collect(),
        groups: args.groups.clone(),
        priority: args.priority.unwrap_or(0),
        after: args
            .after
            .iter()
            .chain(
                args.same_agent_as
                    .iter()
                    .filter(|r| !args.after.contains(r)),
            )
            .cloned()
            .collect(),
        same_agent_as: args.same_agent_as.clone().unwrap_or_default(),
        artifacts: args.artifacts.clone(),
        retries: args.retries.unwrap_or(0),
        max_execution_ms: args
            .timeout
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
        kill_grace_ms: args
            .kill_grace
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
        on_disconnect: match args.on_disconnect {
            OnDisconnect::Keep => rota_proto::OnDisconnect::Keep,
            OnDisconnect::Stop => rota_proto::OnDisconnect::Stop,
        } as i32,
    };
    match from_lines {
        Some(lines) => lines
            .into_iter()
            .map(|line| RunSpec {
                command: vec![line],
                shell: true,
                ..template.clone()
            })
            .collect(),
        None if args.shell => vec![RunSpec {
            command: vec![args.command.join(" ")],
            shell: true,
            ..template
        }],
        None => vec![RunSpec {
            command: args.command.clone(),
            ..template
        }],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::args::{Cli, Command};
    use clap::Parser;

    fn submit_args(args: &[&str]) -> SubmitArgs {
        let cli = Cli::try_parse_from(std::iter::once("rota").chain(args.iter().copied()))
            .expect("parses");
        match cli.command {
            Command::Submit(a) => a,
            other => panic!("not submit: {other:?}"),
        }
    }

    #[test]
    fn from_lines_skip_blanks_and_comments_and_trim() {
        let text =
            "# dumps\n\npg_dump db1 > db1.sql\n  gzip db1.sql  \r\n   # indented comment\n\t\nls\n";
        assert_eq!(
            command_lines(text),
            ["pg_dump db1 > db1.sql", "gzip db1.sql", "ls"]
        );
        assert!(command_lines("# only\n\n").is_empty());
    }

    #[test]
    fn argv_is_sent_verbatim_without_shell() {
        let a = submit_args(&["submit", "--", "printf", "%s\n", "a b"]);
        let specs = run_specs(&a, None);
        assert_eq!(specs.len(), 1);
        assert_eq!(specs[0].command, ["printf", "%s\n", "a b"]);
        assert!(!specs[0].shell);
        assert_eq!(specs[0].name, "", "the coordinator derives the name");
    }

    #[test]
    fn shell_joins_the_words_into_one_string() {
        let a = submit_args(&["submit", "--shell", "--", "echo", "hi", ">", "/tmp/x"]);
        let specs = run_specs(&a, None);
        assert_eq!(specs[0].command, ["echo hi > /tmp/x"]);
        assert!(specs[0].shell);
    }

    #[test]
    fn every_from_line_is_a_shell_run_with_the_shared_options() {
        let a = submit_args(&[
            "submit",
            "--jobset",
            "s",
            "--from",
            "cmds.txt",
            "--group",
            "db",
            "--priority",
            "low",
            "--env",
            "K=V",
            "--retries",
            "2",
            "--timeout",
            "90s",
        ]);
        let specs = run_specs(&a, Some(vec!["a | b".into(), "c".into()]));
        assert_eq!(specs.len(), 2);
        for (spec, cmd) in specs.iter().zip(["a | b", "c"]) {
            assert_eq!(spec.command, [cmd]);
            assert!(spec.shell);
            assert_eq!(spec.groups, ["db"]);
            assert_eq!(spec.priority, -10);
            assert_eq!(spec.env.get("K").map(String::as_str), Some("V"));
            assert_eq!(spec.retries, 2);
            assert_eq!(spec.max_execution_ms, 90_000);
            assert_eq!(spec.on_disconnect, rota_proto::OnDisconnect::Keep as i32);
        }
    }

    #[test]
    fn on_disconnect_stop_and_kill_grace_reach_the_spec() {
        let a = submit_args(&[
            "submit",
            "--on-disconnect",
            "stop",
            "--kill-grace",
            "2s",
            "--",
            "sleep",
            "9",
        ]);
        let specs = run_specs(&a, None);
        assert_eq!(
            specs[0].on_disconnect,
            rota_proto::OnDisconnect::Stop as i32
        );
        assert_eq!(specs[0].kill_grace_ms, 2_000);
    }
}
