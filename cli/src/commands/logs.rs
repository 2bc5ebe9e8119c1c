//! `rota logs RUN [-f] [--stdout|--stderr] [--attempt N]`: byte-exact output, stdout chunks to
//! our stdout and stderr chunks to our stderr, flushed per chunk so `-f` is live and pipes see
//! bytes at once. `-f` survives a coordinator restart: it reconnects and resumes at the offsets
//! it reached, so every byte is printed exactly once, and exits 0 only once the run has ended.

use std::io::{self, Write};

use rota_proto::{LogStream, LogsRequest, LogsResponse, RunRef};
use serde::Serialize;

use super::Context;
use crate::args::LogsArgs;
use crate::client::{Client, RpcError};
use crate::output::{to_json, OutputFormat};
use crate::reconnect::{self, Reconnect};

/// `-o json`: one object per chunk and line (JSON lines). JSON strings cannot carry arbitrary
/// bytes, so `data` is the chunk decoded as UTF-8 with invalid sequences replaced; use the
/// table (raw) output for byte-exact logs.
#[derive(Debug, Serialize)]
struct ChunkView<'a> {
    stream: &'static str,
    offset: u64,
    data: std::borrow::Cow<'a, str>,
}

pub async fn logs(ctx: &Context, args: LogsArgs) -> anyhow::Result<()> {
    let mut req = LogsRequest {
        run: args.run,
        follow: args.follow,
        // Neither flag: both streams.
        stdout: !args.stderr,
        stderr: !args.stdout,
        attempt: args.attempt.unwrap_or(0),
        ..Default::default()
    };
    let mut client = ctx.client().await?;
    let mut reconnect = Reconnect::new();
    loop {
        match stream_once(&mut client, &mut req, ctx.output, &mut reconnect).await? {
            // Without -f, or with --attempt N: what was asked for is printed.
            Ok(()) if !req.follow || args.attempt.is_some() => return Ok(()),
            // The followed attempt ended; the run may go on with a retry.
            Ok(()) => match after_end(&mut client, &req).await {
                Ok(AfterEnd::RunEnded) => return Ok(()),
                Ok(AfterEnd::Attempt(attempt)) => {
                    req.attempt = attempt;
                    req.stdout_offset = 0;
                    req.stderr_offset = 0;
                }
                // The stream ended but the run goes on (a coordinator that ended it early):
                // resume, after a pause.
                Ok(AfterEnd::Resume) => {
                    client = reconnect.again(ctx, "the log stream ended early").await?;
                }
                Err(status) if reconnect::is_disconnect(&status) => {
                    client = reconnect.again(ctx, status.message()).await?;
                }
                Err(status) => return Err(RpcError(status).into()),
            },
            // The coordinator went away while we followed: resume where we were.
            Err(status) if req.follow && reconnect::is_disconnect(&status) => {
                client = reconnect.again(ctx, status.message()).await?;
            }
            Err(status) => return Err(RpcError(status).into()),
        }
    }
}

/// One Logs call: prints what arrives and advances `req` past it (pinning the attempt the
/// bytes belong to), so a repeated call resumes exactly where this one stopped. The outer
/// error is our own output failing (a closed pipe), the inner one the call's.
async fn stream_once(
    client: &mut Client,
    req: &mut LogsRequest,
    format: OutputFormat,
    reconnect: &mut Reconnect,
) -> io::Result<Result<(), tonic::Status>> {
    let mut stream = match client.logs(req.clone()).await {
        Ok(s) => s.into_inner(),
        Err(status) => return Ok(Err(status)),
    };
    reconnect.connected();
    loop {
        let mut chunk = match stream.message().await {
            Ok(Some(chunk)) => chunk,
            Ok(None) => return Ok(Ok(())),
            Err(status) => return Ok(Err(status)),
        };
        if chunk.attempt != 0 {
            req.attempt = chunk.attempt;
        }
        let at = if is_stderr(&chunk) {
            &mut req.stderr_offset
        } else {
            &mut req.stdout_offset
        };
        // Bytes already printed (a resent chunk) are not printed again.
        let skip = at.saturating_sub(chunk.offset).min(chunk.data.len() as u64) as usize;
        chunk.data.drain(..skip);
        chunk.offset += skip as u64;
        *at = chunk.offset + chunk.data.len() as u64;
        if !chunk.data.is_empty() {
            write_chunk(format, &chunk)?;
        }
    }
}

/// What follows the end of a followed attempt's stream.
enum AfterEnd {
    /// The run has ended: nothing more to print.
    RunEnded,
    /// The run went on with this (newer) attempt.
    Attempt(u32),
    /// The run has not ended and has no newer attempt.
    Resume,
}

async fn after_end(client: &mut Client, req: &LogsRequest) -> Result<AfterEnd, tonic::Status> {
    let run = client
        .get_run(RunRef {
            run: req.run.clone(),
        })
        .await?
        .into_inner();
    let ended = matches!(
        run.state.as_str(),
        "success" | "errored" | "cancelled" | "skipped" | "retired"
    );
    Ok(if ended {
        AfterEnd::RunEnded
    } else if run.attempt > req.attempt {
        AfterEnd::Attempt(run.attempt)
    } else {
        AfterEnd::Resume
    })
}

fn is_stderr(chunk: &LogsResponse) -> bool {
    chunk.stream == LogStream::Stderr as i32
}

fn write_chunk(format: OutputFormat, chunk: &LogsResponse) -> io::Result<()> {
    match format {
        // Logs have no key to print: `-o id` gets the raw output, like a table.
        OutputFormat::Table | OutputFormat::Id if is_stderr(chunk) => {
            let mut err = io::stderr().lock();
            err.write_all(&chunk.data)?;
            err.flush()
        }
        OutputFormat::Table | OutputFormat::Id => {
            let mut out = io::stdout().lock();
            out.write_all(&chunk.data)?;
            out.flush()
        }
        OutputFormat::Json => {
            let mut out = io::stdout().lock();
            writeln!(out, "{}", chunk_json(chunk))?;
            out.flush()
        }
    }
}

fn chunk_json(chunk: &LogsResponse) -> String {
    let view = ChunkView {
        stream: if is_stderr(chunk) { "stderr" } else { "stdout" },
        offset: chunk.offset,
        data: String::from_utf8_lossy(&chunk.data),
    };
    // Compact: one chunk per line.
    serde_json::to_string(&view).unwrap_or_else(|_| to_json(&view))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_chunks_are_one_line_each_and_name_their_stream() {
        let chunk = LogsResponse {
            stream: LogStream::Stderr as i32,
            offset: 42,
            data: b"oops\n\xff".to_vec(),
            attempt: 1,
        };
        assert_eq!(
            chunk_json(&chunk),
            r#"{"stream":"stderr","offset":42,"data":"oops\n�"}"#
        );
    }
}
