//! Wiring: engine + gRPC services (with health and reflection) on a listener the caller bound,
//! until the shutdown future resolves (STYLE.md rule 2).

use std::future::Future;
use std::path::PathBuf;
use std::time::Duration;

use rota_proto as pb;
use rota_proto::access::{root_cause, RequireToken};
use tokio::net::TcpListener;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::server::TcpIncoming;
use tonic::transport::{Identity, ServerTlsConfig};

use crate::datadir::DataDir;
use crate::engine::{self, EngineConfig};
use crate::sched::SchedConfig;
use crate::service::{agent_stream::AgentService, control::ControlService};

/// How a coordinator runs.
#[derive(Debug, Clone)]
pub struct CoordinatorConfig {
    /// Where the SQLite store and the log files live.
    pub data_dir: PathBuf,
    /// A config file of job definitions to apply at start.
    pub config_file: Option<PathBuf>,
    /// An agent silent this long is lost; a run whose agent went away waits this long for it.
    pub lease: Duration,
    /// How often agents heartbeat (told to them in Welcome).
    pub heartbeat_interval: Duration,
    /// First retry back-off; doubles per attempt.
    pub retry_backoff: Duration,
    /// SIGTERM → SIGKILL grace on cancel.
    pub cancel_grace: Duration,
    /// When set, agents and the CLI must send it as a bearer token (health and reflection
    /// stay open, for probes).
    pub token: Option<String>,
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
            config_file: None,
            lease: Duration::from_secs(15),
            heartbeat_interval: Duration::from_secs(5),
            retry_backoff: Duration::from_secs(1),
            cancel_grace: Duration::from_secs(10),
            token: None,
            tls: None,
            fresh: false,
            reserve_bytes: DEFAULT_RESERVE,
            max_log_bytes: DEFAULT_MAX_LOG_BYTES,
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
    open(config).await?.serve(listener, shutdown).await
}

/// A coordinator whose data dir is locked, store opened and recovered and config file applied,
/// not yet serving: every reason not to start shows up here, before an address is announced.
pub struct Opened {
    config: CoordinatorConfig,
    engine: engine::EngineHandle,
    /// Held until serving ends.
    data_dir: DataDir,
}

impl std::fmt::Debug for Opened {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Opened")
            .field("data_dir", &self.data_dir)
            .finish_non_exhaustive()
    }
}

/// Locks the data dir, opens the store and recovers, applies the config file.
pub async fn open(config: CoordinatorConfig) -> anyhow::Result<Opened> {
    let data_dir = DataDir::open(&config.data_dir, config.fresh)?;
    let engine = engine::start(EngineConfig {
        data_dir: config.data_dir.clone(),
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
    })?;
    if let Some(path) = &config.config_file {
        let content = std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        let req = pb::ApplyRequest {
            path: path.display().to_string(),
            content,
        };
        engine.ask(|t| engine::Command::Apply(req, t)).await?;
    }
    Ok(Opened {
        config,
        engine,
        data_dir,
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
        } = self;
        let (health_reporter, health) = tonic_health::server::health_reporter();
        health_reporter
            .set_serving::<pb::control_service_server::ControlServiceServer<ControlService>>()
            .await;
        health_reporter
            .set_serving::<pb::agent_service_server::AgentServiceServer<AgentService>>()
            .await;
        let reflection = tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(pb::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
            .build_v1()?;
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let auth = RequireToken::new(config.token.as_deref());
        let control = InterceptedService::new(
            pb::control_service_server::ControlServiceServer::new(ControlService {
                engine: engine.clone(),
                shutdown: stop_rx.clone(),
            })
            .max_decoding_message_size(MAX_MESSAGE)
            .max_encoding_message_size(MAX_MESSAGE),
            auth.clone(),
        );
        let agents = InterceptedService::new(
            pb::agent_service_server::AgentServiceServer::new(AgentService {
                engine,
                shutdown: stop_rx,
            })
            .max_decoding_message_size(16 << 20),
            auth,
        );
        let incoming = TcpIncoming::from(listener).with_nodelay(Some(true));
        tracing::info!(
            addr = %incoming.local_addr()?,
            data_dir = %config.data_dir.display(),
            tls = config.tls.is_some(),
            token = config.token.is_some(),
            "coordinator serving"
        );
        let mut server = tonic::transport::Server::builder();
        if let Some(tls) = &config.tls {
            server = server
                .tls_config(ServerTlsConfig::new().identity(tls.identity()))
                .map_err(|err| anyhow::anyhow!("TLS certificate or key: {}", root_cause(&err)))?;
        }
        server
            .http2_keepalive_interval(Some(Duration::from_secs(10)))
            .add_service(health)
            .add_service(reflection)
            .add_service(control)
            .add_service(agents)
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
