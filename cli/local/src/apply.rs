//! `rota apply [--check] FILE`: sends the file's name and text, and those of its `config_d`
//! files (read here, where the directory is); the coordinator parses and validates them, so its
//! errors name the files as the user gave them. Warnings (dsari keys without effect in rota) go
//! to stderr.

use rota_proto::{ApplyRequest, ConfigFile};
use serde::Serialize;

use rota_cli::args::ApplyArgs;
use rota_cli::client::Reply;
use rota_cli::commands::Context;
use rota_cli::output::{emit, Ids};

/// `-o json` of apply.
#[derive(Debug, Serialize)]
struct ApplyView {
    jobs: Vec<String>,
    removed: Vec<String>,
    warnings: Vec<String>,
    /// Only checked (`--check`), nothing applied.
    checked: bool,
}

/// `-o id` of apply: the names of the jobs it defines.
impl Ids for ApplyView {
    fn ids(&self) -> Vec<String> {
        self.jobs.clone()
    }
}

pub async fn apply(ctx: &Context, args: ApplyArgs) -> anyhow::Result<()> {
    let mut files = rota_coordinator::config::read_sources(&args.file)
        .map_err(|e| anyhow::anyhow!("{e}"))?
        .into_iter();
    let main = files
        .next()
        .expect("read_sources returns the file itself first");
    let request = ApplyRequest {
        path: main.path,
        content: main.content,
        config_d: files
            .map(|f| ConfigFile {
                path: f.path,
                content: f.content,
            })
            .collect(),
        check_only: args.check,
    };
    let resp = ctx.client().await?.apply(request).await.reply()?;
    for warning in &resp.warnings {
        eprintln!("warning: {warning}");
    }
    let view = ApplyView {
        jobs: resp.jobs,
        removed: resp.removed,
        warnings: resp.warnings,
        checked: args.check,
    };
    emit(ctx.output, &view, || summary(&view))?;
    Ok(())
}

fn summary(v: &ApplyView) -> String {
    let verb = if v.checked {
        "valid, would apply"
    } else {
        "applied"
    };
    let mut out = format!("{verb} {} jobs", v.jobs.len());
    if !v.jobs.is_empty() {
        out.push_str(&format!(": {}", v.jobs.join(", ")));
    }
    if !v.removed.is_empty() {
        out.push_str(&format!(
            "\nremoved {}: {}",
            v.removed.len(),
            v.removed.join(", ")
        ));
    }
    out.push('\n');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_lists_applied_and_removed_jobs() {
        let mut v = ApplyView {
            jobs: vec!["a".into(), "b".into()],
            removed: vec!["old".into()],
            warnings: Vec::new(),
            checked: false,
        };
        assert_eq!(summary(&v), "applied 2 jobs: a, b\nremoved 1: old\n");
        v.checked = true;
        v.removed.clear();
        assert_eq!(summary(&v), "valid, would apply 2 jobs: a, b\n");
    }
}
