//! A real PostgreSQL for the tests of `--store postgres://`: Debian's server binaries (initdb,
//! postgres), started once per test process in a temp dir on a free loopback port, one fresh
//! database per test. Nothing is mocked and nothing needs a server started beforehand.
//!
//! The server outlives nothing: it runs under a small shell that holds the read end of a pipe
//! whose write end is this process's; when the test process exits (however it exits) the pipe
//! closes, and the shell stops the server and removes its files. initdb refuses to run as
//! root, so under root (CI) the server runs as the `postgres` user Debian's package creates.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

/// The test process's server.
pub struct Server {
    port: u16,
    dir: PathBuf,
    /// `pg_ctl` with the user to run it as (see [`restart`]).
    pg_ctl: Vec<String>,
    /// The shell the server runs under; its stdin is the pipe whose closing stops it.
    _keeper: Mutex<Child>,
}

static SERVER: OnceLock<Option<Server>> = OnceLock::new();
static DURABLE_SERVER: OnceLock<Option<Server>> = OnceLock::new();
static DATABASES: AtomicU32 = AtomicU32::new(0);

/// The URL of a new, empty database on the test process's server, or None (after printing
/// why the calling test skips) where PostgreSQL is not installed; under
/// `ROTA_REQUIRE_TOOLS=1` that fails the test instead. The server does not fsync.
pub fn database() -> Option<String> {
    Server::database(SERVER.get_or_init(|| Server::start(false)).as_ref()?)
}

/// As [`database`], on a server that fsyncs as a production one does: for the benchmarks,
/// which compare its commits with SQLite's.
pub fn durable_database() -> Option<String> {
    Server::database(
        DURABLE_SERVER
            .get_or_init(|| Server::start(true))
            .as_ref()?,
    )
}

impl Server {
    fn database(&self) -> Option<String> {
        let name = format!("t{}", DATABASES.fetch_add(1, Ordering::Relaxed));
        let mut admin = postgres::Client::connect(&self.url("postgres"), postgres::NoTls)
            .expect("connect to the test PostgreSQL");
        admin
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .expect("create a test database");
        Some(self.url(&name))
    }
}

/// Restarts the test process's server (`pg_ctl restart -m fast`: every connection is cut,
/// transactions in flight are aborted) and waits until it accepts connections again. Give a
/// test that does this a test binary of its own: every test of the process shares the server.
pub fn restart() {
    let server = SERVER
        .get()
        .and_then(Option::as_ref)
        .expect("restart() after database()");
    let (program, args) = server.pg_ctl.split_first().expect("pg_ctl");
    let data = server.dir.join("data").display().to_string();
    let log = server.dir.join("server.log").display().to_string();
    let done = Command::new(program)
        .args(args)
        .args([
            "-D", &data, "-l", &log, "restart", "-m", "fast", "-w", "-t", "60",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .expect("run pg_ctl restart");
    assert!(
        done.status.success(),
        "pg_ctl restart: {}",
        String::from_utf8_lossy(&done.stderr)
    );
    server.wait_ready(&server.dir.join("server.log"));
}

/// Runs SQL on the database of `url` (a test's look behind the store).
pub fn execute(url: &str, sql: &str) {
    let mut client = postgres::Client::connect(url, postgres::NoTls).expect("connect");
    client.batch_execute(sql).expect(sql);
}

impl Server {
    /// The URL of database `db` on this server.
    pub fn url(&self, db: &str) -> String {
        format!("postgres://rota@127.0.0.1:{}/{db}", self.port)
    }

    fn start(fsync: bool) -> Option<Server> {
        let initdb = binary("initdb")?;
        let postgres = initdb.with_file_name("postgres");
        let dir = tempfile::Builder::new()
            .prefix("rota-pg-")
            .tempdir()
            .expect("temp dir")
            .keep();
        let data = dir.join("data");
        let as_user = if nix::unistd::geteuid().is_root() {
            let owner = Command::new("chown")
                .args(["-R", "postgres:", &dir.display().to_string()])
                .status()
                .expect("chown");
            assert!(
                owner.success(),
                "chown {} to the postgres user (Debian's postgresql package makes it)",
                dir.display()
            );
            vec!["runuser", "-u", "postgres", "--"]
        } else {
            vec![]
        };
        let run = |program: &Path, args: &[&str]| {
            let mut cmd = match as_user.split_first() {
                Some((first, rest)) => {
                    let mut c = Command::new(first);
                    c.args(rest).arg(program);
                    c
                }
                None => Command::new(program),
            };
            cmd.args(args);
            cmd
        };
        let init = run(
            &initdb,
            &[
                "-D",
                &data.display().to_string(),
                "-U",
                "rota",
                "--auth=trust",
                "--no-sync",
                "--no-locale",
                "-E",
                "UTF8",
            ],
        )
        .output()
        .expect("run initdb");
        assert!(
            init.status.success(),
            "initdb: {}",
            String::from_utf8_lossy(&init.stderr)
        );
        let port = free_port();
        let log = dir.join("server.log");
        // The tests' server does not fsync: it is never crashed, and a test suite's fsyncs
        // would cost minutes on a CI disk. Sockets in the temp dir, so /run/postgresql need
        // not exist.
        let fsync = if fsync { "on" } else { "off" };
        // Stopped with pg_ctl, which finds the server by its pid file: after a `restart` it
        // is no longer the shell's child.
        let pg_ctl = initdb.with_file_name("pg_ctl");
        let script = format!(
            "{postgres} -D {data} -p {port} -k {dir} -c listen_addresses=127.0.0.1 \
             -c fsync={fsync} -c max_connections=200 >{log} 2>&1 & \
             read _ignored; {pg_ctl} -D {data} stop -m fast -w >/dev/null 2>&1; rm -rf {dir}",
            postgres = postgres.display(),
            pg_ctl = pg_ctl.display(),
            data = data.display(),
            dir = dir.display(),
            log = log.display(),
        );
        let keeper = run(Path::new("sh"), &["-c", &script])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start postgres");
        let server = Server {
            port,
            dir,
            pg_ctl: as_user
                .iter()
                .map(|s| s.to_string())
                .chain([pg_ctl.display().to_string()])
                .collect(),
            _keeper: Mutex::new(keeper),
        };
        server.wait_ready(&log);
        Some(server)
    }

    fn wait_ready(&self, log: &Path) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            match postgres::Client::connect(&self.url("postgres"), postgres::NoTls) {
                Ok(_) => return,
                Err(e) if Instant::now() > deadline => {
                    let mut text = String::new();
                    let _ = std::fs::File::open(log).and_then(|mut f| f.read_to_string(&mut text));
                    panic!(
                        "PostgreSQL in {} not ready in 60 s: {e}\n{text}",
                        self.dir.display()
                    );
                }
                Err(_) => std::thread::sleep(Duration::from_millis(50)),
            }
        }
    }
}

/// A PostgreSQL server program: on PATH, or where Debian installs it
/// (`/usr/lib/postgresql/VERSION/bin`, the newest version).
fn binary(name: &str) -> Option<PathBuf> {
    let debian = || {
        let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
            .ok()?
            .flatten()
            .filter_map(|e| {
                let version = e.file_name().to_str()?.parse().ok()?;
                let path = e.path().join("bin").join(name);
                path.is_file().then_some((version, path))
            })
            .collect();
        versions.sort();
        versions.pop().map(|(_, p)| p)
    };
    // Debian's /usr/bin holds wrappers for the client programs only; the server's are in
    // the versioned directory, so look there first.
    let found = debian().or_else(|| crate::tools::on_path(name));
    if found.is_none() {
        crate::tools::missing(name, "postgresql");
    }
    found
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// Which store a test's coordinator keeps: generated tests run once on each (see
/// [`crate::on_both_stores`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Backend {
    /// SQLite in the data dir, the default.
    Sqlite,
    /// A fresh database on the test process's PostgreSQL, by its URL.
    Postgres(String),
}

impl Backend {
    /// A fresh PostgreSQL database, or None where the test skips (see [`database`]).
    pub fn postgres() -> Option<Backend> {
        database().map(Backend::Postgres)
    }

    /// `flags` and the coordinator flag that selects this store.
    pub fn flags(&self, flags: &[&str]) -> Vec<String> {
        let mut all: Vec<String> = flags.iter().map(|f| f.to_string()).collect();
        if let Backend::Postgres(url) = self {
            all.extend(["--store".to_string(), url.clone()]);
        }
        all
    }

    /// The store's location for `Store::open_at`, SQLite's in `dir`.
    pub fn location(&self, dir: &Path) -> rota_coordinator::store::StoreLocation {
        use rota_coordinator::store::StoreLocation;
        match self {
            Backend::Sqlite => StoreLocation::Sqlite(dir.join("rota.db")),
            Backend::Postgres(url) => StoreLocation::Postgres(url.clone()),
        }
    }
}

/// For each `fn NAME(backend: rota_tests::pg::Backend)` listed, the tests `sqlite::NAME` and
/// `postgres::NAME`: the same test on both stores.
#[macro_export]
macro_rules! on_both_stores {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[test]
                fn $name() {
                    super::$name($crate::pg::Backend::Sqlite)
                }
            )*
        }
        mod postgres {
            $(
                #[test]
                fn $name() {
                    if let Some(backend) = $crate::pg::Backend::postgres() {
                        super::$name(backend)
                    }
                }
            )*
        }
    };
}
