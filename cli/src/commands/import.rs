//! `rota import dsari DSARI_DATA_DIR`: brings dsari's run history into rota, so a team that
//! moves keeps it. Reads dsari's SQLite `runs` table (`DATA_DIR/dsari.sqlite3` unless
//! `--database`) and each run's `DATA_DIR/runs/JOB/RUN_ID/output.txt`, and sends them, oldest
//! first, over `ImportRuns` in bounded requests (a long output in pieces). dsari's run_id is
//! kept as the rota run id, so importing again skips what is there.

use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use rota_proto::{ImportRunsRequest, ImportedRun};
use serde::Serialize;

use super::Context;
use crate::args::{ImportCommand, ImportDsariArgs};
use crate::client::{Client, Reply};
use crate::output::{emit, Ids};

/// Output bytes per request, under the coordinator's bound (8 MiB).
const REQUEST_BYTES: usize = 4 << 20;
/// Runs per request, under the coordinator's bound (1000).
const REQUEST_RUNS: usize = 500;

/// `-o json` of an import.
#[derive(Debug, Default, Serialize)]
struct ImportView {
    /// Runs recorded now.
    imported: u64,
    /// Runs already there (an earlier import).
    skipped: u64,
    /// Rows that could not be imported, each with why (one line each).
    refused: Vec<String>,
}

/// `-o id`: nothing to name per run; the count of imported runs.
impl Ids for ImportView {
    fn ids(&self) -> Vec<String> {
        vec![self.imported.to_string()]
    }
}

pub async fn import(ctx: &Context, cmd: ImportCommand) -> anyhow::Result<()> {
    match cmd {
        ImportCommand::Dsari(args) => dsari(ctx, args).await,
    }
}

async fn dsari(ctx: &Context, args: ImportDsariArgs) -> anyhow::Result<()> {
    let db = args
        .database
        .clone()
        .unwrap_or_else(|| args.data_dir.join("dsari.sqlite3"));
    let (rows, mut view) = read_runs(&db)?;
    let mut client = ctx.client().await?;
    let mut batch = Batch::default();
    for row in rows {
        let output = match read_output(&args.data_dir, &row.job, &row.id) {
            Ok(o) => o,
            Err(e) => {
                view.refused
                    .push(format!("run {} of {}: {e:#}", row.id, row.job));
                continue;
            }
        };
        let len = output.len() as u64;
        let mut offset = 0;
        // At least one piece, so a run without output is recorded too.
        for piece in output
            .chunks(REQUEST_BYTES)
            .chain(output.is_empty().then_some(&[][..]))
        {
            if batch.bytes + piece.len() > REQUEST_BYTES || batch.runs.len() >= REQUEST_RUNS {
                batch.send(&mut client, &mut view).await?;
            }
            batch.bytes += piece.len();
            batch.runs.push(ImportedRun {
                output_offset: offset,
                output: piece.to_vec(),
                output_len: len,
                ..row.clone()
            });
            offset += piece.len() as u64;
        }
    }
    batch.send(&mut client, &mut view).await?;
    for why in &view.refused {
        eprintln!("warning: not imported: {why}");
    }
    emit(ctx.output, &view, || {
        format!(
            "imported {} runs, skipped {} already imported, {} not imported",
            view.imported,
            view.skipped,
            view.refused.len()
        )
    })?;
    Ok(())
}

#[derive(Default)]
struct Batch {
    runs: Vec<ImportedRun>,
    bytes: usize,
}

impl Batch {
    async fn send(&mut self, client: &mut Client, view: &mut ImportView) -> anyhow::Result<()> {
        if self.runs.is_empty() {
            return Ok(());
        }
        let runs = std::mem::take(&mut self.runs);
        self.bytes = 0;
        let resp = client
            .import_runs(ImportRunsRequest { runs })
            .await
            .reply()?;
        view.imported += u64::from(resp.imported);
        view.skipped += u64::from(resp.skipped);
        Ok(())
    }
}

/// dsari's `runs` rows, oldest (by stop time) first, without output. A row whose values do not
/// fit (not a UUID, a name that is not a directory name) is refused with why.
fn read_runs(db: &Path) -> anyhow::Result<(Vec<ImportedRun>, ImportView)> {
    if !db.is_file() {
        anyhow::bail!(
            "{}: no dsari database there (give --database FILE)",
            db.display()
        );
    }
    let conn =
        rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .with_context(|| format!("cannot open dsari database {}", db.display()))?;
    let mut stmt = conn
        .prepare(
            "SELECT job_name, run_id, schedule_time, start_time, stop_time, exit_code, \
             trigger_type, trigger_data, run_data FROM runs ORDER BY stop_time, run_id",
        )
        .with_context(|| format!("{}: not a dsari database (no runs table?)", db.display()))?;
    let mut view = ImportView::default();
    let mut out = Vec::new();
    let mut rows = stmt.query([])?;
    while let Some(r) = rows.next()? {
        let job: String = r.get(0)?;
        let id: String = r.get(1)?;
        let times: [Option<f64>; 3] = [r.get(2)?, r.get(3)?, r.get(4)?];
        let exit_code: Option<i64> = r.get(5)?;
        let trigger_type: Option<String> = r.get(6)?;
        let trigger_data: Option<String> = r.get(7)?;
        let run_data: Option<String> = r.get(8)?;
        match row(
            job.clone(),
            id.clone(),
            times,
            exit_code,
            trigger_type,
            [trigger_data, run_data],
        ) {
            Ok(run) => out.push(run),
            Err(why) => view.refused.push(format!("run {id:?} of {job:?}: {why}")),
        }
    }
    Ok((out, view))
}

fn row(
    job: String,
    id: String,
    times: [Option<f64>; 3],
    exit_code: Option<i64>,
    trigger_type: Option<String>,
    [trigger_data, run_data]: [Option<String>; 2],
) -> Result<ImportedRun, String> {
    if job.is_empty() || job == "." || job == ".." || job.contains(['/', '\0']) {
        return Err("the job name is not a directory name".into());
    }
    let uuid = uuid_text(&id).ok_or("run_id is not a UUID")?;
    let ms = |t: Option<f64>| -> Result<u64, String> {
        let t = t.ok_or("a time is missing")?;
        if !(0.0..=253_402_300_799.0).contains(&t) {
            return Err(format!("time {t} is out of range"));
        }
        Ok((t * 1000.0).round() as u64)
    };
    let exit_code = i32::try_from(exit_code.ok_or("exit_code is missing")?)
        .map_err(|_| "exit_code is out of range".to_string())?;
    // dsari: trigger_data is JSON; a trigger file's environment is in it.
    let env = trigger_data
        .as_deref()
        .and_then(|t| serde_json::from_str::<serde_json::Value>(t).ok())
        .and_then(|v| v.get("environment").cloned())
        .and_then(|e| serde_json::from_value(e).ok())
        .unwrap_or_default();
    // dsari: run_data is JSON; the run's RUN_DIR/return_data.{json,yaml}, as dsari loaded it,
    // is its "return_data".
    let return_data = match run_data
        .as_deref()
        .and_then(|t| serde_json::from_str::<serde_json::Value>(t).ok())
        .and_then(|v| v.get("return_data").cloned())
    {
        None | Some(serde_json::Value::Null) => String::new(),
        Some(v) => {
            let json = v.to_string();
            if json.len() > rota_proto::MAX_RETURN_DATA {
                return Err(format!(
                    "its return data is {} bytes, at most {}",
                    json.len(),
                    rota_proto::MAX_RETURN_DATA
                ));
            }
            json
        }
    };
    Ok(ImportedRun {
        id: uuid,
        job,
        schedule_time_ms: ms(times[0])?,
        start_time_ms: ms(times[1])?,
        stop_time_ms: ms(times[2])?,
        exit_code,
        trigger_type: trigger_type.unwrap_or_else(|| "schedule".into()),
        env,
        return_data,
        ..Default::default()
    })
}

/// The id as rota spells run ids (lowercase, hyphenated), if it is a UUID at all.
fn uuid_text(id: &str) -> Option<String> {
    let hex: String = id.chars().filter(|c| *c != '-').collect();
    if hex.len() != 32 || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
        return None;
    }
    let h = hex.to_ascii_lowercase();
    Some(format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    ))
}

/// A run's output as dsari reads it (`dsari.utils.read_output`): `output.txt`, else
/// `output.txt.gz`, else `output.txt.xz` (dsari writes the plain file; people compress old
/// ones, and dsari-info and dsari-render still show them). Empty when there is none: dsari
/// keeps runs whose output was removed.
fn read_output(data_dir: &Path, job: &str, id: &str) -> anyhow::Result<Vec<u8>> {
    let dir: PathBuf = data_dir.join("runs").join(job).join(id);
    let plain = dir.join("output.txt");
    let gz = dir.join("output.txt.gz");
    let xz = dir.join("output.txt.xz");
    let open = |path: &Path| {
        std::fs::File::open(path).with_context(|| format!("cannot read {}", path.display()))
    };
    let mut bytes = Vec::new();
    if plain.exists() {
        open(&plain)?
            .read_to_end(&mut bytes)
            .with_context(|| format!("cannot read {}", plain.display()))?;
    } else if gz.exists() {
        // Multi-member: `gzip` of concatenated pieces is one valid file too.
        flate2::read::MultiGzDecoder::new(open(&gz)?)
            .read_to_end(&mut bytes)
            .with_context(|| format!("{}: not a gzip file", gz.display()))?;
    } else if xz.exists() {
        let mut input = std::io::BufReader::new(open(&xz)?);
        lzma_rs::xz_decompress(&mut input, &mut bytes)
            .map_err(|e| anyhow::anyhow!("{}: not an xz file: {e}", xz.display()))?;
    }
    Ok(bytes)
}
