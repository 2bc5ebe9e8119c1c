//! A farm in Docker: the coordinator and agents as containers of the project's own images
//! (`deploy/image/build.sh`, `FROM scratch`, nothing pulled) on a private network, so the suite
//! can cut a host off the network (`docker network disconnect`), kill it, stop it or restart the
//! coordinator as an operator would. Driven with the `docker` CLI; the host's `rota` CLI talks
//! to the coordinator through a port published on 127.0.0.1.
//!
//! The images (`rota-test:KEY`, about 90 MB) are built once per test binary from the binaries
//! `cargo test` already built (`ROTA_BIN_DIR`, debug info stripped); KEY changes with those
//! binaries, so a test binary run again reuses them, and a rebuilt one replaces them (the old
//! ones are removed unless a container still uses them). Every container and network carries
//! the label `rota-test.pid=PID`: a [`Farm`] removes its own on drop, even when the test
//! panics, and the first use removes those a killed test binary left behind.

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;
use std::time::Duration;

use crate::procs::{until, Bins, Cli};

/// The label on everything the suite creates: the creating test binary's pid.
const LABEL: &str = "rota-test.pid";

/// The tags of the images one test binary built.
#[derive(Debug)]
pub struct Images {
    /// `TAG`: rota-coordinator.
    pub coordinator: String,
    /// `TAG-agent`: rota-agent with busybox's tools.
    pub agent: String,
    /// `TAG-tools`: derived from `TAG-agent` as deploy/README.md shows, with GNU `seq` and
    /// `date` from this host in `/opt/tools/bin` (examples/farm.yaml uses `seq -f`).
    pub tools_agent: String,
}

static IMAGES: OnceLock<Option<Images>> = OnceLock::new();

/// The images, built on first use; None (after printing why the test skips) where Docker is
/// absent. Under `ROTA_REQUIRE_TOOLS=1` a missing Docker fails instead.
pub fn images(bins: Bins) -> Option<&'static Images> {
    IMAGES.get_or_init(|| build_images(bins)).as_ref()
}

fn build_images(bins: Bins) -> Option<Images> {
    crate::tools::tool("docker", "docker.io")?;
    let server = docker_output(&["version", "--format", "{{.Server.Version}}"]);
    if !server.status.success() {
        let reason = format!(
            "the Docker daemon does not answer: {}",
            String::from_utf8_lossy(&server.stderr).trim()
        );
        if std::env::var_os("ROTA_REQUIRE_TOOLS").is_some_and(|v| v == "1") {
            panic!("{reason}, and ROTA_REQUIRE_TOOLS=1");
        }
        eprintln!("SKIPPED: {reason}");
        return None;
    }
    let build = format!("{}/../deploy/image/build.sh", env!("CARGO_MANIFEST_DIR"));
    let tag = format!("rota-test:{:016x}", build_key(bins, &build));
    remove_leftovers(&tag);
    let tools_agent = format!("{tag}-tools");
    let images = Images {
        coordinator: tag.clone(),
        agent: format!("{tag}-agent"),
        tools_agent: tools_agent.clone(),
    };
    if docker_output(&["image", "inspect", &images.tools_agent])
        .status
        .success()
    {
        return Some(images); // built from these very binaries already
    }
    let staged = tempfile::tempdir().expect("tempdir");
    for (name, path) in [
        ("rota", bins.rota),
        ("rota-local", bins.local),
        ("rota-coordinator", bins.coordinator),
        ("rota-agent", bins.agent),
    ] {
        std::os::unix::fs::symlink(path, staged.path().join(name)).expect("stage a binary");
    }
    let out = Command::new(&build)
        .arg(&tag)
        .env("ROTA_BIN_DIR", staged.path())
        .env("ROTA_STRIP", "1")
        .stdin(Stdio::null())
        .output()
        .expect("run deploy/image/build.sh");
    assert!(
        out.status.success(),
        "deploy/image/build.sh failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    build_tools_image(&images.agent, &tools_agent);
    Some(images)
}

/// What the images are made of: the binaries (path, size, change time) and the build files. A
/// test binary rebuilt by cargo gets a new key, so new images; the same one reuses its images.
fn build_key(bins: Bins, build_sh: &str) -> u64 {
    use std::hash::{Hash, Hasher};
    use std::os::unix::fs::MetadataExt;
    let mut h = std::collections::hash_map::DefaultHasher::new();
    for path in [bins.rota, bins.local, bins.coordinator, bins.agent] {
        let meta = std::fs::metadata(path).expect("a binary");
        (
            path,
            meta.len(),
            meta.ctime(),
            meta.ctime_nsec(),
            meta.ino(),
        )
            .hash(&mut h);
    }
    let dockerfile = Path::new(build_sh).with_file_name("Dockerfile");
    for file in [Path::new(build_sh), &dockerfile] {
        std::fs::read(file).expect("build file").hash(&mut h);
    }
    h.finish()
}
/// The derived agent image of deploy/README.md: GNU tools copied in from this host (they link
/// only glibc, which the base image already holds from the same host).
fn build_tools_image(base: &str, tag: &str) {
    let ctx = tempfile::tempdir().expect("tempdir");
    let bin = ctx.path().join("tools/bin");
    std::fs::create_dir_all(&bin).expect("mkdir");
    for tool in ["seq", "date"] {
        std::fs::copy(Path::new("/usr/bin").join(tool), bin.join(tool))
            .unwrap_or_else(|e| panic!("copy /usr/bin/{tool} (coreutils): {e}"));
    }
    std::fs::write(
        ctx.path().join("Dockerfile"),
        format!(
            "FROM {base}\nUSER root\nCOPY tools/ /opt/tools/\n\
             ENV PATH=/opt/tools/bin:/usr/local/bin:/bin\nUSER rota\n"
        ),
    )
    .expect("write Dockerfile");
    docker(&["build", "-q", "-t", tag, ctx.path().to_str().unwrap()]);
}

/// Removes the containers and networks of test binaries that no longer run (killed before
/// their drop guards ran), and the images of other builds than `keep` (`rmi` without -f leaves
/// those a container still uses).
fn remove_leftovers(keep: &str) {
    let filter = format!("label={LABEL}");
    let format = format!("{{{{.ID}}}} {{{{.Label \"{LABEL}\"}}}}");
    for (list, rm) in [
        (["ps", "-a"], ["rm", "-f"]),
        (["network", "ls"], ["network", "rm"]),
    ] {
        let out = docker_output(&[list[0], list[1], "--filter", &filter, "--format", &format]);
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            let Some((id, pid)) = line.split_once(' ') else {
                continue;
            };
            if pid.parse::<u32>().is_ok_and(|p| {
                p != std::process::id() && !Path::new(&format!("/proc/{p}")).exists()
            }) {
                let _ = docker_output(&[rm[0], rm[1], id]);
            }
        }
    }
    let out = docker_output(&[
        "images",
        "rota-test",
        "--format",
        "{{.Repository}}:{{.Tag}}",
    ]);
    for image in String::from_utf8_lossy(&out.stdout).lines() {
        if !image.starts_with(keep) {
            let _ = docker_output(&["rmi", image]);
        }
    }
}

/// `docker ARGS...`, whatever its outcome.
pub fn docker_output(args: &[&str]) -> Output {
    Command::new("docker")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run docker")
}

/// `docker ARGS...`, which must succeed; its stdout, trimmed.
pub fn docker(args: &[&str]) -> String {
    let out = docker_output(args);
    assert!(
        out.status.success(),
        "docker {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Coordinator flags for the farm's fault scenarios: a host silent for 4 s is lost (long enough
/// that two busy cores do not lose one by accident, short enough to keep the suite fast).
pub const FAULTS: &[&str] = &[
    "--lease",
    "4",
    "--heartbeat",
    "0.5",
    "--retry-backoff",
    "0.1",
];

/// A coordinator and agents, each a container, on a network of their own. Dropping it removes
/// them all (printing the tails of their logs first when the test failed).
pub struct Farm {
    pub images: &'static Images,
    bins: Bins,
    /// Prefix of every name: `rota-PID-N`.
    prefix: String,
    network: String,
    /// `http://127.0.0.1:PORT`, the coordinator's published port.
    url: String,
    /// Containers by the test's name for them (`coordinator`, `host-a`, ...).
    containers: Vec<(String, String)>,
}

impl Farm {
    /// A network and a coordinator (`--lease` etc. in `flags`) on it, reachable from the
    /// agents as `coordinator:7878`.
    pub fn start(images: &'static Images, bins: Bins, flags: &[&str]) -> Farm {
        static FARMS: AtomicUsize = AtomicUsize::new(0);
        let prefix = format!(
            "rota-{}-{}",
            std::process::id(),
            FARMS.fetch_add(1, Ordering::Relaxed)
        );
        let label = format!("{LABEL}={}", std::process::id());
        let network = format!("{prefix}-net");
        docker(&["network", "create", "--label", &label, &network]);
        let mut farm = Farm {
            images,
            bins,
            prefix,
            network,
            url: String::new(),
            containers: Vec::new(),
        };
        let name = farm.container("coordinator");
        farm.containers.push(("coordinator".into(), name.clone()));
        let mut args = vec![
            "run",
            "-d",
            "--name",
            &name,
            "--label",
            &label,
            "--network",
            &farm.network,
            "--network-alias",
            "coordinator",
            "-p",
            "127.0.0.1::7878",
            &images.coordinator,
            "--listen",
            "0.0.0.0:7878",
            "--data-dir",
            "/var/lib/rota",
            "-v",
        ];
        args.extend_from_slice(flags);
        docker(&args);
        farm.find_port();
        farm
    }

    /// The container name of `name` in this farm.
    pub fn container(&self, name: &str) -> String {
        format!("{}-{name}", self.prefix)
    }

    /// Reads the coordinator's published port (again after a restart, which may change it)
    /// and waits until it answers.
    fn find_port(&mut self) {
        let coordinator = self.container("coordinator");
        let port = docker(&["port", &coordinator, "7878/tcp"]);
        let addr = port.lines().next().unwrap_or_default().to_string();
        self.url = format!("http://{addr}");
        until(Duration::from_secs(30), "the coordinator to answer", || {
            self.cli().rota(&["status"]).status.success().then_some(())
        });
    }

    /// Starts the agent `name` (`--name NAME`, host name NAME) from `image` with `slots` and
    /// `extra` flags (e.g. `--group`), tini as PID 1 as in deploy/compose.yaml.
    pub fn add_agent(&mut self, image: &str, name: &str, slots: u32, extra: &[&str]) {
        let container = self.container(name);
        let label = format!("{LABEL}={}", std::process::id());
        let slots = slots.to_string();
        let mut args = vec![
            "run",
            "-d",
            "--init",
            "--name",
            &container,
            "--label",
            &label,
            "--network",
            &self.network,
            "--hostname",
            name,
            image,
            "--coordinator=http://coordinator:7878",
            "--name",
            name,
            "--slots",
            &slots,
            "--spool-dir",
            "/var/lib/rota-agent",
            "-v",
        ];
        args.extend_from_slice(extra);
        docker(&args);
        self.containers.push((name.to_string(), container));
    }

    /// The host's `rota` CLI against the coordinator's published port.
    pub fn cli(&self) -> Cli<'_> {
        Cli {
            bin: self.bins.rota,
            url: &self.url,
            env: &[],
        }
    }

    /// `docker ACTION [ARGS...] CONTAINER-OF-NAME`, e.g. `("kill", &[], "host-a")`.
    pub fn docker_on(&self, action: &str, args: &[&str], name: &str) -> String {
        let container = self.container(name);
        let mut all = vec![action];
        all.extend_from_slice(args);
        all.push(&container);
        docker(&all)
    }

    /// Cuts `name` off the farm's network (it keeps running, its connections hang).
    pub fn disconnect(&self, name: &str) {
        docker(&[
            "network",
            "disconnect",
            &self.network,
            &self.container(name),
        ]);
    }

    /// Puts `name` back on the network.
    pub fn connect(&self, name: &str) {
        docker(&["network", "connect", &self.network, &self.container(name)]);
    }

    /// `docker restart` of the coordinator (SIGTERM, then start again on the same data).
    pub fn restart_coordinator(&mut self) {
        self.docker_on("restart", &["-t", "20"], "coordinator");
        self.find_port();
    }

    /// Runs `script` with `sh -c` inside the container of `name`; its output.
    pub fn exec(&self, name: &str, script: &str) -> Output {
        docker_output(&["exec", &self.container(name), "sh", "-c", script])
    }

    /// The pid a run wrote to `file` inside `name`, once it is there.
    pub fn read_pid(&self, name: &str, file: &str) -> i32 {
        until(
            Duration::from_secs(30),
            &format!("{file} on {name}"),
            || {
                let out = self.exec(name, &format!("cat {file}"));
                String::from_utf8_lossy(&out.stdout).trim().parse().ok()
            },
        )
    }

    /// True while process `pid` of `name`'s pid namespace exists and is not a zombie.
    pub fn alive(&self, name: &str, pid: i32) -> bool {
        let out = self.exec(name, &format!("cat /proc/{pid}/stat"));
        let stat = String::from_utf8_lossy(&out.stdout);
        out.status.success()
            && !stat
                .rsplit(')')
                .next()
                .is_some_and(|rest| rest.trim_start().starts_with('Z'))
    }

    /// `docker logs` of `name`, stdout and stderr.
    pub fn logs(&self, name: &str) -> String {
        let out = docker_output(&["logs", &self.container(name)]);
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    }
}

impl Drop for Farm {
    fn drop(&mut self) {
        if std::thread::panicking() {
            for (name, container) in &self.containers {
                let out = docker_output(&["logs", container]);
                let mut logs = out.stdout;
                logs.extend(out.stderr);
                let tail = String::from_utf8_lossy(&logs[logs.len().saturating_sub(6000)..]);
                eprintln!("----- tail of docker logs {name} -----\n{tail}");
            }
        }
        let mut rm = vec!["rm", "-f", "-v"];
        rm.extend(self.containers.iter().map(|(_, c)| c.as_str()));
        let _ = docker_output(&rm);
        let _ = docker_output(&["network", "rm", &self.network]);
    }
}
