//! Real processes: the rota binaries started as children, killed with real signals.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

/// A child process that is SIGKILLed when dropped, so a failing test leaves nothing behind.
pub struct Proc {
    pub child: Child,
}

impl Proc {
    pub fn pid(&self) -> Pid {
        Pid::from_raw(self.child.id() as i32)
    }

    pub fn signal(&self, sig: Signal) {
        let _ = kill(self.pid(), sig);
    }

    /// `kill -9` and reap.
    pub fn kill9(&mut self) {
        self.signal(Signal::SIGKILL);
        let _ = self.child.wait();
    }

    /// The exit code once the process has exited (inner `None`: killed by a signal); `None`
    /// while it still runs.
    pub fn try_exit_code(&mut self) -> Option<Option<i32>> {
        self.child
            .try_wait()
            .expect("try_wait")
            .map(|status| status.code())
    }

    /// Waits for exit; returns the exit code (None: killed by a signal).
    pub fn wait(&mut self) -> Option<i32> {
        self.child.wait().expect("wait").code()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `rota-coordinator` on `listen` (use 127.0.0.1:0 for a free port) and returns it with
/// the address it printed.
pub fn coordinator(bin: &str, data_dir: &Path, listen: &str, extra: &[&str]) -> (Proc, SocketAddr) {
    let mut child = Command::new(bin)
        .args(["--listen", listen, "--data-dir"])
        .arg(data_dir)
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start rota-coordinator");
    let stdout = child.stdout.take().expect("stdout");
    let mut line = String::new();
    BufReader::new(stdout)
        .read_line(&mut line)
        .expect("read listen line");
    let addr = line
        .trim()
        .rsplit(' ')
        .next()
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("unexpected first line from rota-coordinator: {line:?}"));
    (Proc { child }, addr)
}

/// Starts `rota-agent`.
pub fn agent(bin: &str, url: &str, name: &str, slots: u32, spool: &Path, extra: &[&str]) -> Proc {
    let child = Command::new(bin)
        .args([
            "--coordinator",
            url,
            "--name",
            name,
            "--slots",
            &slots.to_string(),
            "--spool-dir",
        ])
        .arg(spool)
        .args(extra)
        .stdin(Stdio::null())
        .stdout(Stdio::inherit())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start rota-agent");
    Proc { child }
}

/// Runs the `rota` CLI against `url` to completion.
pub fn rota(bin: &str, url: &str, args: &[&str]) -> Output {
    Command::new(bin)
        .arg("--coordinator")
        .arg(url)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run rota")
}

/// True while a process exists and is not a zombie.
pub fn alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => !stat
            .rsplit(')')
            .next()
            .is_some_and(|rest| rest.trim_start().starts_with('Z')),
        Err(_) => false,
    }
}

/// The three real binaries, as the test crate builds them. Only integration tests see
/// `CARGO_BIN_EXE_*`, so they name them through [`crate::bins!`].
#[derive(Debug, Clone, Copy)]
pub struct Bins {
    pub rota: &'static str,
    /// `rota-local`, which `rota run` and `rota apply` exec (the images carry it too).
    pub local: &'static str,
    pub coordinator: &'static str,
    pub agent: &'static str,
}

/// The [`Bins`] of this test crate; expands `env!` in the calling test, where the paths are set.
#[macro_export]
macro_rules! bins {
    () => {
        $crate::procs::Bins {
            rota: env!("CARGO_BIN_EXE_e2e-rota"),
            local: env!("CARGO_BIN_EXE_e2e-rota-local"),
            coordinator: env!("CARGO_BIN_EXE_e2e-rota-coordinator"),
            agent: env!("CARGO_BIN_EXE_e2e-rota-agent"),
        }
    };
}

/// Coordinator flags for tests that are not about faults: a lease long enough that a busy
/// machine (two cores, other builds) never makes an agent look lost; retries start at once.
pub const STEADY: &[&str] = &[
    "--lease",
    "10",
    "--heartbeat",
    "1",
    "--retry-backoff",
    "0.1",
];

/// Coordinator flags that keep fault tests fast: an agent silent for 2 s is lost, a run whose
/// agent went away waits 2 s for it, agents heartbeat twice a second, retries start at once.
pub const FAST: &[&str] = &[
    "--lease",
    "2",
    "--heartbeat",
    "0.5",
    "--retry-backoff",
    "0.1",
];

/// Polls `check` until it returns Some, failing the test after `deadline`. The pause between
/// polls only limits CPU use; the condition is what the test waits for.
pub fn until<T>(deadline: Duration, what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = check() {
            return v;
        }
        assert!(
            start.elapsed() < deadline,
            "timed out after {deadline:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A real coordinator and real agents in one temp dir, driven through the real `rota` CLI.
/// Every child's stdout and stderr go to `<dir>/<name>.log`; when a test fails, the tails of
/// those logs are printed with the failure. Dropping it SIGKILLs every process it started.
pub struct System {
    pub bins: Bins,
    pub dir: tempfile::TempDir,
    /// Where the coordinator listens; a restart listens on the same address.
    pub addr: SocketAddr,
    /// `http://ADDR`.
    pub url: String,
    /// Environment given to every agent and `rota` command (e.g. `ROTA_TOKEN_FILE`, `ROTA_CA`).
    pub client_env: Vec<(String, String)>,
    coordinator: Option<Proc>,
    coordinator_flags: Vec<String>,
    agents: BTreeMap<String, Proc>,
}

impl System {
    /// A coordinator on a free port of 127.0.0.1 with the [`STEADY`] flags, and no agents.
    pub fn start(bins: Bins) -> System {
        System::start_with(bins, STEADY)
    }

    /// A coordinator with these flags on this store (see [`crate::on_both_stores`]).
    pub fn start_on(bins: Bins, store: &crate::pg::Backend, flags: &[&str]) -> System {
        let flags = store.flags(flags);
        System::start_with(bins, &flags.iter().map(String::as_str).collect::<Vec<_>>())
    }

    /// A coordinator with these flags (besides `--listen` and `--data-dir`).
    pub fn start_with(bins: Bins, flags: &[&str]) -> System {
        let dir = tempfile::tempdir().expect("tempdir");
        let flags: Vec<String> = flags.iter().map(|f| f.to_string()).collect();
        let (proc, addr) = spawn_coordinator(&bins, dir.path(), "127.0.0.1:0", &flags)
            .unwrap_or_else(|e| panic!("{e}"));
        System {
            bins,
            url: format!("http://{addr}"),
            addr,
            client_env: Vec::new(),
            coordinator: Some(proc),
            coordinator_flags: flags,
            agents: BTreeMap::new(),
            dir,
        }
    }

    /// A path in the temp dir.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// The coordinator's data dir.
    pub fn data_dir(&self) -> PathBuf {
        self.path("data")
    }

    /// The running coordinator's pid.
    pub fn coordinator_pid(&self) -> i32 {
        self.coordinator
            .as_ref()
            .expect("the coordinator runs")
            .pid()
            .as_raw()
    }

    /// Starts another coordinator on this system's data dir (port 0) that must refuse to
    /// start; returns its output. Fails the test if it is still running after `deadline`.
    pub fn refused_coordinator(&self, flags: &[&str], deadline: Duration) -> Output {
        let mut child = Command::new(self.bins.coordinator)
            .args(["--listen", "127.0.0.1:0", "--data-dir"])
            .arg(self.data_dir())
            .args(flags)
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start rota-coordinator");
        let start = Instant::now();
        while child.try_wait().expect("try_wait").is_none() {
            if start.elapsed() > deadline {
                let _ = child.kill();
                let out = child.wait_with_output().expect("wait");
                panic!(
                    "the coordinator started instead of refusing: {}",
                    String::from_utf8_lossy(&out.stdout)
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        child.wait_with_output().expect("wait")
    }

    /// The coordinator process (to signal it: SIGSTOP, SIGCONT).
    pub fn coordinator(&mut self) -> &mut Proc {
        self.coordinator.as_mut().expect("the coordinator runs")
    }

    /// `kill -9` the coordinator.
    pub fn kill9_coordinator(&mut self) {
        if let Some(mut c) = self.coordinator.take() {
            c.kill9();
        }
    }

    /// Sends `sig` to the coordinator (SIGHUP: reload its `--config`).
    pub fn signal_coordinator(&self, sig: Signal) {
        self.coordinator
            .as_ref()
            .expect("the coordinator runs")
            .signal(sig);
    }

    /// The coordinator's log so far (its stdout and stderr).
    pub fn coordinator_log(&self) -> String {
        std::fs::read_to_string(self.path("coordinator.log")).unwrap_or_default()
    }

    /// Stops the coordinator gracefully (SIGTERM) and waits until it has exited.
    pub fn stop_coordinator(&mut self) {
        if let Some(mut c) = self.coordinator.take() {
            c.signal(Signal::SIGTERM);
            let code = c.wait();
            assert_eq!(code, Some(0), "the coordinator stops cleanly on SIGTERM");
        }
    }

    /// Starts the coordinator again on the same data dir and port (after
    /// [`Self::kill9_coordinator`] or [`Self::stop_coordinator`]).
    pub fn restart_coordinator(&mut self) {
        self.restart_coordinator_with(&[]);
    }

    /// Like [`Self::restart_coordinator`], with `extra` flags for this start only.
    pub fn restart_coordinator_with(&mut self, extra: &[&str]) {
        assert!(self.coordinator.is_none(), "the coordinator still runs");
        let listen = self.addr.to_string();
        let mut flags = self.coordinator_flags.clone();
        flags.extend(extra.iter().map(|f| f.to_string()));
        let proc = until(Duration::from_secs(10), "the port to be free again", || {
            spawn_coordinator(&self.bins, self.dir.path(), &listen, &flags).ok()
        })
        .0;
        self.coordinator = Some(proc);
    }

    /// Starts a second coordinator on the same store, on `listen` (an address of its own), with
    /// a data dir of its own (`data-NAME`): with `--store postgres://` it answers there as a
    /// standby while this system's coordinator holds the store's lease, and prints its
    /// "listening on" line once it is active.
    pub fn start_standby(&self, name: &str, listen: &str) -> Standby {
        let log = log_file(self.dir.path(), &format!("coordinator-{name}"));
        let data_dir = self.path(&format!("data-{name}"));
        let mut child =
            coordinator_child(&self.bins, listen, &data_dir, &self.coordinator_flags, &log);
        let stdout = BufReader::new(child.stdout.take().expect("stdout"));
        let (tx, listening) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut log = log;
            for line in stdout.lines().map_while(Result::ok) {
                if let Some(addr) = line.strip_prefix("rota-coordinator listening on ") {
                    let _ = tx.send(addr.to_string());
                }
                let _ = writeln!(log, "{line}");
            }
        });
        Standby {
            proc: Proc { child },
            listening,
            log: self.path(&format!("coordinator-{name}.log")),
        }
    }

    /// Makes a standby that took over this system's coordinator (the one `rota` and
    /// [`Self::kill9_coordinator`] reach from now on); the old one must be gone or stopped.
    pub fn adopt(&mut self, standby: Standby) -> Option<Proc> {
        self.coordinator.replace(standby.proc)
    }

    /// Takes the coordinator process out of the system (to SIGSTOP it and watch it), so a
    /// standby can be adopted in its place.
    pub fn take_coordinator(&mut self) -> Proc {
        self.coordinator.take().expect("the coordinator runs")
    }

    /// Starts `rota-agent --name NAME --slots N` against the coordinator, spooling in the
    /// temp dir.
    pub fn start_agent(&mut self, name: &str, slots: u32, extra: &[&str]) {
        let url = self.url.clone();
        self.start_agent_at(&url, name, slots, extra);
    }

    /// Like [`Self::start_agent`], connecting to `url` (a proxy in front of the coordinator).
    pub fn start_agent_at(&mut self, url: &str, name: &str, slots: u32, extra: &[&str]) {
        self.start_agent_process(name, url, name, slots, extra);
    }

    /// Like [`Self::start_agent_at`], with `tune` applied to the command last (e.g. to start
    /// the agent as another user).
    pub fn start_agent_tuned(
        &mut self,
        url: &str,
        name: &str,
        slots: u32,
        extra: &[&str],
        tune: impl FnOnce(&mut Command),
    ) {
        self.start_agent_keyed(name, url, name, slots, extra, tune);
    }

    /// Starts a `rota-agent --name NAME` known to the test as `key` (its log is
    /// `agent-KEY.log`, its spool `spool-KEY`), so two processes may claim the same name.
    pub fn start_agent_process(
        &mut self,
        key: &str,
        url: &str,
        name: &str,
        slots: u32,
        extra: &[&str],
    ) {
        self.start_agent_keyed(key, url, name, slots, extra, |_| {});
    }

    fn start_agent_keyed(
        &mut self,
        key: &str,
        url: &str,
        name: &str,
        slots: u32,
        extra: &[&str],
        tune: impl FnOnce(&mut Command),
    ) {
        let log = log_file(self.dir.path(), &format!("agent-{key}"));
        let mut command = Command::new(self.bins.agent);
        command
            .args(["--coordinator", url, "--name", name, "--slots"])
            .arg(slots.to_string())
            .arg("--spool-dir")
            .arg(self.path(&format!("spool-{key}")))
            .args(extra)
            .env("RUST_LOG", "info")
            .envs(self.client_env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log);
        tune(&mut command);
        let child = command.spawn().expect("start rota-agent");
        let old = self.agents.insert(key.to_string(), Proc { child });
        assert!(old.is_none(), "agent {key} started twice");
    }

    /// What the agent process known as `key` has logged so far.
    pub fn agent_log(&self, key: &str) -> String {
        let text = std::fs::read(self.path(&format!("agent-{key}.log"))).unwrap_or_default();
        String::from_utf8_lossy(&text).into_owned()
    }

    /// The agent process known as `name` (its key).
    pub fn agent(&mut self, name: &str) -> &mut Proc {
        self.agents
            .get_mut(name)
            .unwrap_or_else(|| panic!("no agent {name}"))
    }

    /// The `rota` CLI against this coordinator, with [`Self::client_env`].
    pub fn cli(&self) -> Cli<'_> {
        Cli {
            bin: self.bins.rota,
            url: &self.url,
            env: &self.client_env,
        }
    }

    /// Runs `rota --coordinator URL ARGS...` to completion, stdin empty.
    pub fn rota(&self, args: &[&str]) -> Output {
        self.cli().rota(args)
    }

    /// Runs `rota --coordinator URL ARGS...` with `input` on its stdin.
    pub fn rota_with_stdin(&self, args: &[&str], input: &[u8]) -> Output {
        self.cli().rota_with_stdin(args, input)
    }

    /// A `rota` command line against this coordinator (see [`Cli::rota_command`]).
    pub fn rota_command(&self, args: &[&str]) -> Command {
        self.cli().rota_command(args)
    }

    /// `rota -o json ARGS...`, which must succeed; its parsed output.
    pub fn json(&self, args: &[&str]) -> serde_json::Value {
        self.cli().json(args)
    }

    /// The runs of a jobset (`rota runs --jobset`), by number.
    pub fn runs_of(&self, jobset: &str) -> BTreeMap<u64, serde_json::Value> {
        self.json(&["runs", "--jobset", jobset])
            .as_array()
            .expect("a list of runs")
            .iter()
            .map(|r| (r["number"].as_u64().expect("a run number"), r.clone()))
            .collect()
    }

    /// `rota submit ARGS...` of one run; the run as JSON.
    pub fn submit(&self, args: &[&str]) -> serde_json::Value {
        self.cli().submit(args)
    }

    /// `rota submit --jobset JOBSET --from FILE` of `lines` (one run per line, written to a
    /// file in the temp dir); the runs as JSON.
    pub fn submit_lines(&self, jobset: &str, lines: &str) -> Vec<serde_json::Value> {
        let file = self.path(&format!("{jobset}.txt"));
        std::fs::write(&file, lines).expect("write the runs file");
        let runs = self.json(&[
            "submit",
            "--jobset",
            jobset,
            "--from",
            file.to_str().unwrap(),
        ]);
        runs.as_array().cloned().expect("submit prints a list")
    }

    /// `rota show RUN -o json`.
    pub fn show(&self, run: &str) -> serde_json::Value {
        self.cli().show(run)
    }

    /// Waits until `rota show RUN` satisfies `done`; returns that view.
    pub fn wait_run(
        &self,
        run: &str,
        deadline: Duration,
        what: &str,
        done: impl Fn(&serde_json::Value) -> bool,
    ) -> serde_json::Value {
        self.cli().wait_run(run, deadline, what, done)
    }

    /// Waits until the run is in `state`.
    pub fn wait_state(&self, run: &str, state: &str, deadline: Duration) -> serde_json::Value {
        self.cli().wait_state(run, state, deadline)
    }

    /// The agents as `rota agents -o json` lists them.
    pub fn agents(&self) -> Vec<serde_json::Value> {
        self.cli().agents()
    }

    /// Waits until every named agent is connected.
    pub fn wait_agents(&self, names: &[&str]) {
        self.cli().wait_agents(names)
    }
}

/// The real `rota` CLI against one coordinator: what [`System`] and the Docker farm
/// (`crate::docker`) drive their coordinators with, so both read run records the same way.
#[derive(Clone, Copy)]
pub struct Cli<'a> {
    pub bin: &'a str,
    pub url: &'a str,
    /// Environment for every command (e.g. `ROTA_TOKEN_FILE`, `ROTA_CA`).
    pub env: &'a [(String, String)],
}

impl Cli<'_> {
    /// Runs `rota --coordinator URL ARGS...` to completion, stdin empty.
    pub fn rota(&self, args: &[&str]) -> Output {
        self.rota_with_stdin(args, b"")
    }

    /// Runs `rota --coordinator URL ARGS...` with `input` on its stdin.
    pub fn rota_with_stdin(&self, args: &[&str], input: &[u8]) -> Output {
        let mut child = self
            .rota_command(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run rota");
        let mut stdin = child.stdin.take().expect("stdin");
        let input = input.to_vec();
        let writer = std::thread::spawn(move || {
            let _ = stdin.write_all(&input);
        });
        let out = child.wait_with_output().expect("wait for rota");
        let _ = writer.join();
        out
    }

    /// A `rota` command line against this coordinator, for tests that need the child itself
    /// (`rota logs -f`). Tracing is left at its default so stderr carries only output.
    pub fn rota_command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(self.bin);
        cmd.arg("--coordinator")
            .arg(self.url)
            .args(args)
            .env_remove("RUST_LOG")
            .env_remove("ROTA_COORDINATOR")
            .envs(self.env.iter().map(|(k, v)| (k, v)));
        cmd
    }

    /// `rota -o json ARGS...`, which must succeed; its parsed output.
    pub fn json(&self, args: &[&str]) -> serde_json::Value {
        let mut all = vec!["-o", "json"];
        all.extend_from_slice(args);
        let out = self.rota(&all);
        assert!(
            out.status.success(),
            "rota {all:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "rota {all:?} printed no JSON ({e}): {}",
                String::from_utf8_lossy(&out.stdout)
            )
        })
    }

    /// `rota submit ARGS...` of one run; the run as JSON.
    pub fn submit(&self, args: &[&str]) -> serde_json::Value {
        let mut all = vec!["submit"];
        all.extend_from_slice(args);
        let runs = self.json(&all);
        assert_eq!(runs.as_array().map(Vec::len), Some(1), "one run: {runs}");
        runs[0].clone()
    }

    /// `rota show RUN -o json`.
    pub fn show(&self, run: &str) -> serde_json::Value {
        self.json(&["show", run])
    }

    /// Waits until `rota show RUN` satisfies `done`; returns that view.
    pub fn wait_run(
        &self,
        run: &str,
        deadline: Duration,
        what: &str,
        done: impl Fn(&serde_json::Value) -> bool,
    ) -> serde_json::Value {
        until(deadline, &format!("run {run}: {what}"), || {
            let v = self.show(run);
            done(&v).then_some(v)
        })
    }

    /// Waits until the run is in `state`.
    pub fn wait_state(&self, run: &str, state: &str, deadline: Duration) -> serde_json::Value {
        self.wait_run(run, deadline, state, |v| v["state"] == state)
    }

    /// The agents as `rota agents -o json` lists them.
    pub fn agents(&self) -> Vec<serde_json::Value> {
        self.json(&["agents"])
            .as_array()
            .cloned()
            .expect("agents is a list")
    }

    /// Waits until every named agent is connected.
    pub fn wait_agents(&self, names: &[&str]) {
        until(
            Duration::from_secs(20),
            &format!("agents {names:?}"),
            || {
                let agents = self.agents();
                names
                    .iter()
                    .all(|n| {
                        agents
                            .iter()
                            .any(|a| a["name"] == *n && a["state"] == "connected")
                    })
                    .then_some(())
            },
        );
    }
}

impl Drop for System {
    fn drop(&mut self) {
        // Agents first: their runs die with them (PDEATHSIG), nothing reconnects.
        self.agents.clear();
        self.coordinator = None;
        if std::thread::panicking() {
            let mut logs: Vec<PathBuf> = std::fs::read_dir(self.dir.path())
                .into_iter()
                .flatten()
                .flatten()
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|e| e == "log"))
                .collect();
            logs.sort();
            for log in logs {
                let text = std::fs::read(&log).unwrap_or_default();
                let tail = &text[text.len().saturating_sub(6000)..];
                eprintln!(
                    "----- tail of {} -----\n{}",
                    log.display(),
                    String::from_utf8_lossy(tail)
                );
            }
        }
    }
}

/// A coordinator started by [`System::start_standby`].
pub struct Standby {
    pub proc: Proc,
    listening: std::sync::mpsc::Receiver<String>,
    log: PathBuf,
}

impl Standby {
    /// Whether it has started listening (it became the active coordinator) within `within`.
    pub fn listening_within(&self, within: Duration) -> Option<String> {
        self.listening.recv_timeout(within).ok()
    }

    /// Its log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

fn log_file(dir: &Path, name: &str) -> std::fs::File {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join(format!("{name}.log")))
        .expect("open log file")
}

/// `rota-coordinator --listen LISTEN --data-dir DATA_DIR FLAGS`, its stdout piped (where it
/// prints its address), its stderr into `log`.
fn coordinator_child(
    bins: &Bins,
    listen: &str,
    data_dir: &Path,
    flags: &[String],
    log: &std::fs::File,
) -> Child {
    Command::new(bins.coordinator)
        .args(["--listen", listen, "--data-dir"])
        .arg(data_dir)
        .args(flags)
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(log.try_clone().expect("log"))
        .spawn()
        .expect("start rota-coordinator")
}

/// Starts the coordinator on `<dir>/data`; Err (and no process) when it does not come up
/// listening, e.g. because the port is still taken.
fn spawn_coordinator(
    bins: &Bins,
    dir: &Path,
    listen: &str,
    flags: &[String],
) -> Result<(Proc, SocketAddr), String> {
    let log = log_file(dir, "coordinator");
    let mut child = coordinator_child(bins, listen, &dir.join("data"), flags, &log);
    let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
    let mut line = String::new();
    let _ = stdout.read_line(&mut line);
    let addr = line
        .trim()
        .strip_prefix("rota-coordinator listening on ")
        .and_then(|a| a.parse().ok());
    let mut proc = Proc { child };
    match addr {
        Some(addr) => {
            // Keep draining stdout into the log: a closed pipe would fail a later print.
            std::thread::spawn(move || {
                let mut log = log;
                let _ = std::io::copy(&mut stdout, &mut log);
            });
            Ok((proc, addr))
        }
        None => {
            proc.kill9();
            let log = std::fs::read_to_string(dir.join("coordinator.log")).unwrap_or_default();
            Err(format!(
                "rota-coordinator did not start listening on {listen}: {line:?}; its log:\n{log}"
            ))
        }
    }
}

/// Live (non-zombie) processes whose process group is `pgid`.
pub fn group_members(pgid: i32) -> Vec<i32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return vec![];
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|&pid| {
            let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
                return false;
            };
            // After the command name: state, ppid, pgrp.
            let mut fields = stat.rsplit(')').next().unwrap_or("").split_whitespace();
            let state = fields.next();
            let pgrp = fields.nth(1).and_then(|p| p.parse::<i32>().ok());
            state != Some("Z") && pgrp == Some(pgid)
        })
        .collect()
}

/// Reads a pid a run wrote to `path`, once the file holds a whole line.
pub fn read_pid(path: &Path) -> Option<i32> {
    let text = std::fs::read_to_string(path).ok()?;
    if !text.ends_with('\n') {
        return None;
    }
    text.trim().parse().ok()
}

/// Whether process `pid` holds an established TCP connection to `port` on loopback: a client
/// started as a child has connected (e.g. before the test takes its server away).
pub fn connected_to(pid: u32, port: u16) -> bool {
    let sockets: std::collections::HashSet<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|fd| std::fs::read_link(fd.path()).ok())
        .filter_map(|target| {
            let t = target.to_string_lossy();
            Some(t.strip_prefix("socket:[")?.strip_suffix(']')?.to_string())
        })
        .collect();
    let table = std::fs::read_to_string("/proc/net/tcp").unwrap_or_default();
    // Columns: sl local_address rem_address st ... uid timeout inode.
    table.lines().skip(1).any(|line| {
        let cols: Vec<&str> = line.split_whitespace().collect();
        cols.len() > 9
            && cols[3] == "01"
            && cols[2].rsplit(':').next() == Some(&format!("{port:04X}"))
            && sockets.contains(cols[9])
    })
}

/// A small tmpfs mounted for a test (a real full filesystem), lazily unmounted when dropped.
pub struct Tmpfs {
    pub path: PathBuf,
}

impl Tmpfs {
    /// Mounts a tmpfs of `size` (mount's syntax: `4m`) at `path`; Err with the reason when
    /// this machine does not let the test mount (not root, no CAP_SYS_ADMIN).
    pub fn mount(path: &Path, size: &str) -> Result<Tmpfs, String> {
        std::fs::create_dir_all(path).map_err(|e| e.to_string())?;
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(path)
            .output()
            .map_err(|e| format!("cannot run mount: {e}"))?;
        if !out.status.success() {
            return Err(String::from_utf8_lossy(&out.stderr).trim().to_string());
        }
        Ok(Tmpfs {
            path: path.to_path_buf(),
        })
    }

    /// Changes its size in place (space returns without unmounting).
    pub fn resize(&self, size: &str) {
        self.remount(&format!("size={size}"));
    }

    /// Remounts it with `options` (e.g. `ro`).
    pub fn remount(&self, options: &str) {
        let out = Command::new("mount")
            .args(["-o", &format!("remount,{options}")])
            .arg(&self.path)
            .output()
            .expect("run mount");
        assert!(
            out.status.success(),
            "remount: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.path).output();
    }
}

/// Reads a child's output line by line on a thread, so a test can wait for a line with a
/// deadline (`recv_timeout`) instead of blocking on the pipe.
pub fn lines_of(output: impl std::io::Read + Send + 'static) -> std::sync::mpsc::Receiver<String> {
    use std::io::BufRead;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(output).lines() {
            let Ok(line) = line else { return };
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    rx
}
