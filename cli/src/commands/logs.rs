//! `rota logs RUN [-f] [--stdout|--stderr]`: byte-exact output, stdout chunks to our stdout and
//! stderr chunks to our stderr, flushed per chunk so `-f` is live and pipes see bytes at once.

use std::io::{self, Write};

use rota_proto::{LogStream, LogsRequest, LogsResponse};
use serde::Serialize;

use super::Context;
use crate::args::LogsArgs;
use crate::client::{Reply, RpcError};
use crate::output::{to_json, OutputFormat};

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
    let req = LogsRequest {
        run: args.run,
        follow: args.follow,
        // Neither flag: both streams.
        stdout: !args.stderr,
        stderr: !args.stdout,
    };
    let mut stream = ctx.client().await?.logs(req).await.reply()?;
    while let Some(chunk) = stream.message().await.map_err(RpcError)? {
        write_chunk(ctx.output, &chunk)?;
    }
    Ok(())
}

fn is_stderr(chunk: &LogsResponse) -> bool {
    chunk.stream == LogStream::Stderr as i32
}

fn write_chunk(format: OutputFormat, chunk: &LogsResponse) -> io::Result<()> {
    match format {
        OutputFormat::Table if is_stderr(chunk) => {
            let mut err = io::stderr().lock();
            err.write_all(&chunk.data)?;
            err.flush()
        }
        OutputFormat::Table => {
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
        };
        assert_eq!(
            chunk_json(&chunk),
            r#"{"stream":"stderr","offset":42,"data":"oops\n�"}"#
        );
    }
}
