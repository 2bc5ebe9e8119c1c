//! What the CLI workloads (W8, W9, W2') time: one process per call, as a script calls `rota`,
//! task-spooler's `tsp` or `/usr/bin/true`, each run to its end in turn.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context as _};

/// The thin `rota` of this build, beside the bench binary (`target/release/`): built now with
/// cargo, same profile and target dir, so it is never a stale one (a no-op when up to date).
/// Without cargo (the bench binary copied elsewhere) the one beside it is used as it is.
pub fn rota_cli(bench_exe: &Path) -> anyhow::Result<PathBuf> {
    let dir = bench_exe
        .parent()
        .context("the bench binary has no directory")?;
    let rota = dir.join("rota");
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("../Cargo.toml");
    if let (Some(target_dir), true) = (dir.parent(), manifest.is_file()) {
        let mut cargo = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
        cargo
            .args(["build", "--quiet", "-p", "rota-cli", "--bin", "rota"])
            .arg("--manifest-path")
            .arg(&manifest)
            .arg("--target-dir")
            .arg(target_dir);
        if dir.file_name().is_some_and(|n| n == "release") {
            cargo.arg("--release");
        }
        match cargo.status() {
            Ok(status) if status.success() => {}
            Ok(status) => bail!("building rota-cli failed: {status}"),
            Err(e) => tracing::warn!("cannot run cargo ({e}); using {}", rota.display()),
        }
    }
    ensure!(
        rota.is_file(),
        "no rota binary at {} (cargo build --release -p rota-cli)",
        rota.display()
    );
    Ok(rota)
}

/// `tsp` (Debian's task-spooler), installed with apt-get when missing (as the baseline
/// asks; fails with apt-get's reason when that is not possible, e.g. not root).
pub fn tsp() -> anyhow::Result<PathBuf> {
    let find = || {
        std::env::var_os("PATH").and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|d| d.join("tsp"))
                .find(|p| p.is_file())
        })
    };
    if let Some(path) = find() {
        return Ok(path);
    }
    let status = Command::new("apt-get")
        .args(["install", "-y", "-q", "task-spooler"])
        .stdout(Stdio::null())
        .status()
        .context("apt-get install task-spooler")?;
    ensure!(status.success(), "apt-get install task-spooler: {status}");
    find().context("tsp still not found after installing task-spooler")
}

/// A task-spooler of its own: its socket and job outputs under `dir`, `slots` at once.
pub struct Spooler {
    tsp: PathBuf,
    dir: PathBuf,
}

impl Spooler {
    pub fn start(dir: &Path, slots: u32) -> anyhow::Result<Spooler> {
        std::fs::create_dir_all(dir)?;
        let spooler = Spooler {
            tsp: tsp()?,
            dir: dir.to_path_buf(),
        };
        spooler.run(&["-S", &slots.to_string()])?;
        Ok(spooler)
    }

    /// `tsp ARGS` against this spooler; its stdout.
    pub fn run(&self, args: &[&str]) -> anyhow::Result<String> {
        let out = self.command(args).output()?;
        ensure!(out.status.success(), "tsp {args:?}: {}", out.status);
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// `tsp ARGS` as a command to time.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(&self.tsp);
        c.args(args)
            .env("TS_SOCKET", self.dir.join("socket"))
            .env("TMPDIR", &self.dir)
            .env("TS_MAXFINISHED", "100000")
            .stdin(Stdio::null());
        c
    }

    /// Waits until no job is queued or running (`tsp -l` polled every 5 ms).
    pub fn wait_idle(&self, within: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + within;
        loop {
            let list = self.run(&["-l"])?;
            let busy = list
                .lines()
                .skip(1)
                .any(|l| l.contains(" running ") || l.contains(" queued "));
            if !busy {
                return Ok(());
            }
            ensure!(
                Instant::now() < deadline,
                "tsp jobs still busy after {within:?}"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

impl Drop for Spooler {
    fn drop(&mut self) {
        // Stops its server; the jobs of the bench have all ended by then.
        let _ = self.command(&["-K"]).status();
    }
}

/// Runs `make()`'s command `n` times one after the other, each to its end with its output
/// discarded; the duration of each call, in ms, in order.
pub fn sequential(n: u64, mut make: impl FnMut(u64) -> Command) -> anyhow::Result<Vec<f64>> {
    let mut ms = Vec::with_capacity(n as usize);
    for i in 0..n {
        let mut command = make(i);
        command.stdout(Stdio::null()).stderr(Stdio::piped());
        let started = Instant::now();
        let out = command.output()?;
        ms.push(started.elapsed().as_secs_f64() * 1e3);
        ensure!(
            out.status.success(),
            "call {i} ({command:?}) failed: {}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(ms)
}

/// `/usr/bin/true`, `n` times: the spawn floor of this machine now.
pub fn true_loop(n: u64) -> anyhow::Result<Vec<f64>> {
    sequential(n, |_| Command::new("/usr/bin/true"))
}

/// Calls per second of a sequence of calls.
pub fn rate(ms: &[f64]) -> f64 {
    ms.len() as f64 / (ms.iter().sum::<f64>() / 1e3)
}

/// The values sorted, for percentiles.
pub fn sorted(ms: &[f64]) -> Vec<f64> {
    let mut v = ms.to_vec();
    v.sort_by(f64::total_cmp);
    v
}
