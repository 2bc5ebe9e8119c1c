//! `rota apply FILE`: sends the file's name and text; the coordinator parses and validates it,
//! so its errors name the file as the user gave it.

use anyhow::Context as _;
use rota_proto::ApplyRequest;
use serde::Serialize;

use super::Context;
use crate::args::ApplyArgs;
use crate::client::Reply;
use crate::output::emit;

/// `-o json` of apply.
#[derive(Debug, Serialize)]
struct ApplyView {
    jobs: Vec<String>,
    removed: Vec<String>,
}

pub async fn apply(ctx: &Context, args: ApplyArgs) -> anyhow::Result<()> {
    let path = args.file.display().to_string();
    let content = std::fs::read_to_string(&args.file).with_context(|| path.clone())?;
    let resp = ctx
        .client()
        .await?
        .apply(ApplyRequest { path, content })
        .await
        .reply()?;
    let view = ApplyView {
        jobs: resp.jobs,
        removed: resp.removed,
    };
    emit(ctx.output, &view, || summary(&view))?;
    Ok(())
}

fn summary(v: &ApplyView) -> String {
    let mut out = format!("applied {} jobs", v.jobs.len());
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
        let v = ApplyView {
            jobs: vec!["a".into(), "b".into()],
            removed: vec!["old".into()],
        };
        assert_eq!(summary(&v), "applied 2 jobs: a, b\nremoved 1: old\n");
    }
}
