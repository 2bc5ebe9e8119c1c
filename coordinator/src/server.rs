//! Wiring: engine + gRPC services (with health and reflection) on a listener the caller bound,
//! until the shutdown future resolves (docs/style.md rule 2).

use std::future::Future;
use std::path::PathBuf;
use std::time::Duration;

use rota_proto as pb;
use rota_proto::access::Credentials;
use rota_proto::errors::root_cause;
use tokio::net::TcpListener;
use tonic::transport::server::TcpIncoming;
use tonic::transport::{Identity, ServerTlsConfig};

use crate::datadir::DataDir;
use crate::engine::{self, EngineConfig};
use crate::sched::SchedConfig;
use crate::service::{agent_stream::AgentService, control::ControlService};
use crate::store::lease::Seen;

/// How a coordinator runs.
#[derive(Debug, Clone)]
pub struct CoordinatorConfig {
    /// Where the SQLite store and the log files live.
    pub data_dir: PathBuf,
    /// Keep the store in this PostgreSQL database (`postgres://USER@HOST/DB`) instead of
    /// SQLite in `data_dir`; the logs stay in `data_dir`.
    pub postgres: Option<String>,
    /// A config file of job definitions (with its `config_d` files) to apply at start.
    pub config_file: Option<PathBuf>,
    /// Re-read and apply `config_file` on SIGHUP (set by the binary; in-process tests leave
    /// it off so a signal sent to the test runner changes nothing). Without a config file a
    /// SIGHUP is then logged and ignored.
    pub reload_on_sighup: bool,
    /// An agent silent this long is lost; a run whose agent went away waits this long for it.
    pub lease: Duration,
    /// How often agents heartbeat (told to them in Welcome).
    pub heartbeat_interval: Duration,
    /// First retry back-off; doubles per attempt.
    pub retry_backoff: Duration,
    /// SIGTERM → SIGKILL grace on cancel.
    pub cancel_grace: Duration,
    /// Who may call what: every `ControlService` and `AgentService` call is checked against
    /// them (health and reflection stay open, for probes). Open by default.
    pub credentials: Credentials,
    /// Serve TLS with this certificate chain and key (PEM).
    pub tls: Option<TlsIdentity>,
    /// Start with an empty store even though `logs/` holds runs (the store was lost).
    pub fresh: bool,
    /// New work is refused while the data dir's filesystem has less free space than this, so
    /// what was already accepted can still be recorded.
    pub reserve_bytes: u64,
    /// Each stream of a run keeps at most this many bytes (head and tail, with a marker of
    /// what was cut), unless its job sets `max_log_bytes`.
    pub max_log_bytes: u64,
    /// The base of the links in webhook bodies (`{public_url}/runs/N`); None: the address
    /// served on, as `http://` or `https://`.
    pub public_url: Option<String>,
    /// The first retry delay of a failed webhook POST (doubling, capped at an hour, for a
    /// day); tests shorten it.
    pub notify_backoff: Duration,
    /// How long finished runs are kept (`--keep-max-age`, `--keep-last`,
    /// `--keep-failed-for`): under the config file's `retention`, which is under each job's.
    /// Default: everything is kept.
    pub retention: crate::retention::Policy,
    /// The engine's time source; tests pass an adjustable one to cross ages without sleeping.
    pub clock: crate::time::Clock,
}

/// A server certificate chain and its private key, both PEM.
#[derive(Clone)]
pub struct TlsIdentity {
    pub cert_pem: Vec<u8>,
    pub key_pem: Vec<u8>,
}

impl TlsIdentity {
    /// Whether rustls accepts this certificate and key, so a bad file is reported before the
    /// coordinator announces its address.
    pub fn check(&self) -> anyhow::Result<()> {
        tonic::transport::Server::builder()
            .tls_config(ServerTlsConfig::new().identity(self.identity()))
            .map(|_| ())
            .map_err(|err| anyhow::anyhow!("TLS certificate or key: {}", root_cause(&err)))
    }

    fn identity(&self) -> Identity {
        Identity::from_pem(&self.cert_pem, &self.key_pem)
    }
}

impl std::fmt::Debug for TlsIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsIdentity").finish_non_exhaustive()
    }
}

impl CoordinatorConfig {
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        CoordinatorConfig {
            data_dir: data_dir.into(),
            postgres: None,
            config_file: None,
            reload_on_sighup: false,
            lease: Duration::from_secs(15),
            heartbeat_interval: Duration::from_secs(5),
            retry_backoff: Duration::from_secs(1),
            cancel_grace: Duration::from_secs(10),
            credentials: Credentials::open(),
            tls: None,
            fresh: false,
            reserve_bytes: DEFAULT_RESERVE,
            max_log_bytes: DEFAULT_MAX_LOG_BYTES,
            public_url: None,
            notify_backoff: Duration::from_secs(1),
            retention: Default::default(),
            clock: crate::time::Clock::wall(),
        }
    }
}

/// The longest lease, heartbeat, back-off or grace accepted: anything longer is a typo (and
/// would overflow the arithmetic on instants).
pub const MAX_TIMING: Duration = Duration::from_secs(86_400);

impl CoordinatorConfig {
    /// Refuses timings that cannot work, naming the flag: a lease of zero (every agent lost at
    /// once), a heartbeat not shorter than the lease (every agent lost between two
    /// heartbeats), below a millisecond (sent to agents in whole milliseconds, where 0 means
    /// "the default"), or above [`MAX_TIMING`].
    pub fn check(&self) -> anyhow::Result<()> {
        let ms = Duration::from_millis(1);
        for (flag, value, min) in [
            ("--lease", self.lease, ms),
            ("--heartbeat", self.heartbeat_interval, ms),
            ("--retry-backoff", self.retry_backoff, Duration::ZERO),
            ("--cancel-grace", self.cancel_grace, Duration::ZERO),
            ("--notify-backoff", self.notify_backoff, ms),
        ] {
            if value < min {
                anyhow::bail!("{flag} must be at least {min:?}, got {value:?}");
            }
            if value > MAX_TIMING {
                anyhow::bail!("{flag} must be at most {MAX_TIMING:?} (1d), got {value:?}");
            }
        }
        if let Some(url) = &self.public_url {
            let ok = reqwest::Url::parse(url)
                .is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.host_str().is_some());
            if !ok {
                anyhow::bail!(
                    "--public-url must be an http:// or https:// URL with a host, got {url:?}"
                );
            }
        }
        if self.heartbeat_interval >= self.lease {
            anyhow::bail!(
                "--heartbeat ({:?}) must be shorter than --lease ({:?}): agents would be lost between two heartbeats",
                self.heartbeat_interval,
                self.lease
            );
        }
        Ok(())
    }
}

/// The apply request for a config file and its `config_d` files, read here because they are on
/// this machine.
fn config_request(path: &std::path::Path) -> anyhow::Result<pb::ApplyRequest> {
    let mut sources = crate::config::read_sources(path)?.into_iter();
    let main = sources
        .next()
        .expect("read_sources returns the file itself first");
    Ok(pb::ApplyRequest {
        path: main.path,
        content: main.content,
        config_d: sources
            .map(|f| pb::ConfigFile {
                path: f.path,
                content: f.content,
            })
            .collect(),
        check_only: false,
    })
}

/// SIGHUP re-reads `path` and applies it as `rota apply` would: all or nothing, runs already
/// queued or running go on. A file that does not read or validate is logged and changes nothing.
/// Without a config file a SIGHUP is logged and ignored (rather than ending the process).
async fn reload_on_sighup(
    engine: engine::EngineHandle,
    path: Option<PathBuf>,
    mut hup: tokio::signal::unix::Signal,
) {
    while hup.recv().await.is_some() {
        let Some(path) = &path else {
            tracing::warn!("SIGHUP ignored: no --config to reload");
            continue;
        };
        let applied = match config_request(path) {
            Ok(req) => engine
                .ask(|t| engine::Command::Apply(req, engine::Actor::config_file(), t))
                .await
                .map_err(anyhow::Error::from),
            Err(err) => Err(err),
        };
        match applied {
            Ok(resp) => tracing::info!(
                path = %path.display(),
                jobs = resp.jobs.len(),
                removed = resp.removed.len(),
                "SIGHUP: config reloaded"
            ),
            Err(err) => tracing::error!(
                path = %path.display(),
                "SIGHUP: config not reloaded, nothing changed: {err:#}"
            ),
        }
    }
}

/// Default of [`CoordinatorConfig::reserve_bytes`]: room for many thousands of results.
pub const DEFAULT_RESERVE: u64 = 64 << 20;

/// Default of [`CoordinatorConfig::max_log_bytes`]: 1 GiB.
pub const DEFAULT_MAX_LOG_BYTES: u64 = 1 << 30;

/// Large submits (100,000 runs) are one message.
const MAX_MESSAGE: usize = 512 << 20;

/// Serves until `shutdown` resolves, then closes agent streams and returns.
pub async fn serve(
    config: CoordinatorConfig,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    open_listening(config, &listener)
        .await?
        .serve(listener, shutdown)
        .await
}

/// A coordinator whose data dir is locked, store opened and recovered and config file applied,
/// not yet serving: every reason not to start shows up here, before an address is announced.
pub struct Opened {
    config: CoordinatorConfig,
    engine: engine::EngineHandle,
    /// Held until serving ends.
    data_dir: DataDir,
    /// SIGHUP, listened to from before the address is announced (its default action would end
    /// the process).
    hup: Option<tokio::signal::unix::Signal>,
}

impl std::fmt::Debug for Opened {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Opened")
            .field("data_dir", &self.data_dir)
            .finish_non_exhaustive()
    }
}

/// Locks the data dir, opens the store and recovers, applies the config file. With a
/// PostgreSQL store this waits, without listening, while another coordinator is active; see
/// [`open_listening`] for a standby that answers meanwhile.
pub async fn open(config: CoordinatorConfig) -> anyhow::Result<Opened> {
    open_with(config, String::new(), Seen::default()).await
}

/// [`open`] for a coordinator that is already bound to `listener`: with a PostgreSQL store it
/// serves there as a standby (see [`crate::service::standby`]) until it holds the store's
/// lease, telling callers where the active coordinator is; then it stops answering as a standby
/// and returns, ready to [`Opened::serve`] the same listener. With SQLite it is [`open`].
pub async fn open_listening(
    config: CoordinatorConfig,
    listener: &TcpListener,
) -> anyhow::Result<Opened> {
    if config.postgres.is_none() {
        return open(config).await;
    }
    let served_on = listener.local_addr()?;
    let address = base_url(&config, served_on);
    let seen = Seen::default();
    // The same socket, a second descriptor: the standby's server accepts on it until the
    // lease is held, then the real server accepts on `listener` (no gap in which the port is
    // closed, no connection refused).
    let standby_listener = {
        let fd = std::os::fd::AsFd::as_fd(listener).try_clone_to_owned()?;
        let std_listener = std::net::TcpListener::from(fd);
        std_listener.set_nonblocking(true)?;
        TcpListener::from_std(std_listener)?
    };
    let (stop_tx, mut stop_rx) = tokio::sync::watch::channel(false);
    let routes = crate::service::standby::routes(seen.clone(), stop_rx.clone()).await;
    let standby = server_builder(&config)?
        .add_routes(routes)
        .serve_with_incoming_shutdown(
            TcpIncoming::from(standby_listener).with_nodelay(Some(true)),
            async move {
                let _ = stop_rx.wait_for(|stop| *stop).await;
            },
        );
    let standby = tokio::spawn(async move {
        if let Err(err) = standby.await {
            tracing::error!("standby answers stopped: {}", root_cause(&err));
        }
    });
    let opened = open_with(config, address, seen).await;
    // Its open connections are sent GOAWAY (their clients reconnect and reach the active
    // server); not waited for, since a client may keep one open as long as it likes.
    let _ = stop_tx.send(true);
    drop(standby);
    opened
}

/// Where clients reach a coordinator served on `served_on`: `--public-url`, else the address
/// as `http://` or `https://` (with this machine's name for an unspecified address).
fn base_url(config: &CoordinatorConfig, served_on: std::net::SocketAddr) -> String {
    if let Some(url) = &config.public_url {
        return url.clone();
    }
    let scheme = if config.tls.is_some() {
        "https"
    } else {
        "http"
    };
    if served_on.ip().is_unspecified() {
        format!(
            "{scheme}://{}:{}",
            crate::store::host_name(),
            served_on.port()
        )
    } else {
        format!("{scheme}://{served_on}")
    }
}

/// The server both the active and the standby answers run on: TLS if configured, HTTP/1.1
/// beside HTTP/2, keepalives.
fn server_builder(config: &CoordinatorConfig) -> anyhow::Result<tonic::transport::Server> {
    let mut server = tonic::transport::Server::builder();
    if let Some(tls) = &config.tls {
        server = server
            .tls_config(ServerTlsConfig::new().identity(tls.identity()))
            .map_err(|err| anyhow::anyhow!("TLS certificate or key: {}", root_cause(&err)))?;
    }
    // HTTP/1.1 for browsers and Prometheus beside gRPC's HTTP/2 (told apart by the
    // connection preface).
    Ok(server
        .http2_keepalive_interval(Some(Duration::from_secs(10)))
        .accept_http1(true))
}

async fn open_with(
    config: CoordinatorConfig,
    address: String,
    seen: Seen,
) -> anyhow::Result<Opened> {
    config.check()?;
    // Listening from the first moment, so a SIGHUP sent as soon as the address is announced
    // cannot end the process (the signal's default action).
    let hup = if config.reload_on_sighup {
        Some(
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
                .map_err(|err| anyhow::anyhow!("cannot listen for SIGHUP: {err}"))?,
        )
    } else {
        None
    };
    // A lost rota.db is looked for only where the store is SQLite: with PostgreSQL there is
    // no rota.db, and the database is looked after by its own backups.
    let data_dir = DataDir::open(&config.data_dir, config.fresh || config.postgres.is_some())?;
    let engine_config = EngineConfig {
        data_dir: config.data_dir.clone(),
        postgres: config.postgres.clone(),
        reserve_bytes: config.reserve_bytes,
        max_log_bytes: config.max_log_bytes,
        lease: config.lease,
        heartbeat_interval: config.heartbeat_interval,
        sched: SchedConfig {
            retry_backoff_base_ms: config.retry_backoff.as_millis() as u64,
            orphan_lease_ms: config.lease.as_millis() as u64,
            ..SchedConfig::default()
        },
        cancel_grace: config.cancel_grace,
        retention: config.retention,
        clock: config.clock.clone(),
        address,
        seen,
    };
    // On a thread of the blocking pool, so the runtime goes on (a standby's answers, signals)
    // while a standby waits for the store's lease.
    let engine = tokio::task::spawn_blocking(move || engine::start(engine_config)).await??;
    if let Some(path) = &config.config_file {
        let req = config_request(path)?;
        engine
            .ask(|t| engine::Command::Apply(req, engine::Actor::config_file(), t))
            .await?;
    }
    Ok(Opened {
        config,
        engine,
        data_dir,
        hup,
    })
}

impl Opened {
    /// Serves until `shutdown` resolves, then closes agent streams and returns.
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let Opened {
            config,
            engine,
            data_dir,
            hup,
        } = self;
        if let Some(hup) = hup {
            tokio::spawn(reload_on_sighup(
                engine.clone(),
                config.config_file.clone(),
                hup,
            ));
        }
        // dsari's trigger files. Without inotify (its per-user instance limit reached) the
        // coordinator still serves; `rota trigger` still works.
        let _triggers = match crate::triggers::watch(engine.clone(), &config.data_dir) {
            Ok(watch) => Some(watch),
            Err(err) => {
                tracing::error!("trigger files are not watched: {err}");
                None
            }
        };
        let health_reporter = tonic_health::server::HealthReporter::new();
        health_reporter
            .set_serving::<pb::control_service_server::ControlServiceServer<ControlService>>()
            .await;
        health_reporter
            .set_serving::<pb::agent_service_server::AgentServiceServer<AgentService>>()
            .await;
        // v1 and v1alpha: grpcurl 1.8 and grpcio's reflection client speak only v1alpha.
        let reflection = || {
            tonic_reflection::server::Builder::configure()
                .register_encoded_file_descriptor_set(pb::FILE_DESCRIPTOR_SET)
                .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        };
        let reflection_v1alpha = reflection().build_v1alpha()?;
        let reflection = reflection().build_v1()?;
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let health = crate::service::health::Health::server(health_reporter, stop_rx.clone());
        let auth = &config.credentials;
        let control = auth.guard(
            pb::control_service_server::ControlServiceServer::new(ControlService {
                engine: engine.clone(),
                shutdown: stop_rx.clone(),
            })
            .max_decoding_message_size(MAX_MESSAGE)
            .max_encoding_message_size(MAX_MESSAGE),
        );
        let metrics = engine.metrics.clone();
        let base_url = base_url(&config, listener.local_addr()?);
        // Taken once: a second serve of the same engine has no second sender.
        if let Some(rx) = engine.deliveries.lock().ok().and_then(|mut d| d.take()) {
            let mut sender = crate::notify::SenderConfig::new(base_url);
            sender.backoff = config.notify_backoff;
            tokio::spawn(crate::notify::sender::run(
                rx,
                engine.clone(),
                engine.logs.clone(),
                sender,
            ));
        }
        let http = crate::service::http::router(crate::service::http::HttpState {
            engine: engine.clone(),
            credentials: config.credentials.clone(),
            shutdown: stop_rx.clone(),
            tls: config.tls.is_some(),
        });
        // Not guarded: a run holds no token, its upload carries its own capability.
        let uploads =
            pb::run_service_server::RunServiceServer::new(crate::service::artifacts::RunService {
                engine: engine.clone(),
            })
            .max_decoding_message_size(2 * rota_proto::ARTIFACT_CHUNK);
        let agents = auth.guard(
            pb::agent_service_server::AgentServiceServer::new(AgentService {
                engine,
                shutdown: stop_rx,
            })
            .max_decoding_message_size(16 << 20),
        );
        // gRPC services by path; every other request (pages, /metrics) goes to `http`.
        let routes = tonic::service::Routes::from(http)
            .add_service(health)
            .add_service(reflection)
            .add_service(reflection_v1alpha)
            .add_service(control)
            .add_service(agents)
            .add_service(uploads);
        // Every gRPC call counted by method and code (`rota_rpcs_total`).
        let routes = tonic::service::Routes::from(routes.into_axum_router().layer(
            axum::middleware::from_fn_with_state(metrics, crate::metrics::rpc::track),
        ));
        let incoming = TcpIncoming::from(listener).with_nodelay(Some(true));
        tracing::info!(
            addr = %incoming.local_addr()?,
            data_dir = %config.data_dir.display(),
            tls = config.tls.is_some(),
            open = config.credentials.is_open(),
            "coordinator serving"
        );
        server_builder(&config)?
            .add_routes(routes)
            // TCP_NODELAY on every accepted connection: `serve_with_incoming` ignores the builder's
            // `tcp_nodelay`, and with Nagle on, a reply's trailing frames wait for the client's
            // delayed ACK: 40 ms added to every call and every Assign.
            .serve_with_incoming_shutdown(incoming, async move {
                shutdown.await;
                // Ends agent streams, so graceful shutdown does not wait on them forever.
                let _ = stop_tx.send(true);
            })
            .await?;
        tracing::info!("coordinator stopped");
        drop(data_dir);
        Ok(())
    }
}
