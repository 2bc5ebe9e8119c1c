//! Who may talk to a coordinator, and how clients reach it: TLS (rustls) and bearer tokens,
//! used alike by agents and the CLI.
//!
//! A coordinator that listens beyond loopback runs commands on every agent for whoever can
//! reach its port, so it checks a token on every call and can serve TLS (`--tls-cert`,
//! `--tls-key`). Clients send their token (`ROTA_TOKEN`, or `--token-file`) as
//! `authorization: Bearer …` and use TLS for `https://` URLs, trusting the system roots plus
//! `ROTA_CA` when given (a private CA or a self-signed certificate).
//!
//! The server side is [`Credentials`]: each token has a name and a [`Role`] (`agent` may only
//! `Connect`, `read` may list and show, `admin` may change things), so an agent's token, which
//! sits on every machine of the farm, cannot submit work. One shared token allowed everything
//! is still accepted, as the weakest set-up.

use std::convert::Infallible;
use std::path::Path;
use std::sync::Arc;
use std::task::{Context, Poll};

use tonic::body::Body;
use tonic::codegen::{http, BoxFuture, Service};
use tonic::metadata::{Ascii, MetadataValue};
use tonic::server::NamedService;
use tonic::service::Interceptor;
use tonic::transport::{Certificate, ClientTlsConfig, Endpoint};
use tonic::{Request, Status};

/// The environment variable holding the shared token, for agents, the CLI and the coordinator.
pub const TOKEN_ENV: &str = "ROTA_TOKEN";

/// What a client needs besides the URL.
#[derive(Clone, Default)]
pub struct Access {
    /// Sent as a bearer token on every call.
    pub token: Option<String>,
    /// Extra trust anchor (PEM) for `https://` URLs, besides the system roots.
    pub ca_pem: Option<Vec<u8>>,
}

impl std::fmt::Debug for Access {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Access")
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("ca_pem", &self.ca_pem.as_ref().map(Vec::len))
            .finish()
    }
}

impl Access {
    /// The token from `ROTA_TOKEN` (unless `token_file` names a file holding it) and the CA
    /// certificate from `ca_file`. Errors name the file.
    pub fn load(token_file: Option<&Path>, ca_file: Option<&Path>) -> Result<Access, String> {
        let token = match token_file {
            Some(path) => Some(read_token(path)?),
            None => std::env::var(TOKEN_ENV).ok().filter(|t| !t.is_empty()),
        };
        let ca_pem = ca_file
            .map(|path| {
                std::fs::read(path)
                    .map_err(|err| format!("cannot read CA certificate {}: {err}", path.display()))
            })
            .transpose()?;
        Ok(Access { token, ca_pem })
    }

    /// An endpoint for `url`, with TLS when it is `https://`.
    pub fn endpoint(&self, url: &str) -> Result<Endpoint, String> {
        let endpoint = Endpoint::from_shared(url.to_string())
            .map_err(|err| format!("invalid coordinator URL {url:?}: {err}"))?;
        if !url.starts_with("https://") {
            if self.ca_pem.is_some() {
                return Err(format!(
                    "a CA certificate is given but {url} is not an https:// URL"
                ));
            }
            return Ok(endpoint);
        }
        let mut tls = ClientTlsConfig::new().with_native_roots();
        if let Some(pem) = &self.ca_pem {
            tls = tls.ca_certificate(Certificate::from_pem(pem));
        }
        endpoint
            .tls_config(tls)
            .map_err(|err| format!("TLS setup for {url}: {err}"))
    }

    /// The interceptor that adds the token to every request.
    pub fn bearer(&self) -> Result<Bearer, String> {
        let value = self
            .token
            .as_ref()
            .map(|token| {
                format!("Bearer {token}")
                    .parse::<MetadataValue<Ascii>>()
                    .map_err(|_| format!("{TOKEN_ENV} must be printable ASCII"))
            })
            .transpose()?;
        Ok(Bearer(value))
    }
}

/// The innermost error's message: tonic wraps the useful part ("Connection refused (os error
/// 111)", rustls' "no private key found") in layers like "transport error" that tell a person
/// nothing.
/// The coordinators of `--coordinator URL[,URL…]` (or `ROTA_COORDINATOR`): several
/// coordinators on one PostgreSQL store, one of them active; agents and the CLI use the first
/// that answers and move on when it stops answering.
pub fn coordinator_urls(list: &str) -> Result<Vec<String>, String> {
    let urls: Vec<String> = list.split(',').map(|u| u.trim().to_string()).collect();
    if urls.iter().any(String::is_empty) {
        return Err(format!(
            "coordinator URLs {list:?}: an empty entry (give URL or URL,URL,…)"
        ));
    }
    Ok(urls)
}

/// Reads a token file: its first line, trimmed (a trailing newline is not part of it).
pub fn read_token(path: &Path) -> Result<String, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|err| format!("cannot read token file {}: {err}", path.display()))?;
    let token = text.lines().next().unwrap_or("").trim().to_string();
    if token.is_empty() {
        return Err(format!("token file {} is empty", path.display()));
    }
    Ok(token)
}

/// Client side: adds `authorization: Bearer <token>` when a token is set.
#[derive(Debug, Clone)]
pub struct Bearer(Option<MetadataValue<Ascii>>);

impl Interceptor for Bearer {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        if let Some(value) = &self.0 {
            request
                .metadata_mut()
                .insert("authorization", value.clone());
        }
        Ok(request)
    }
}

/// What a credential may call. Health and reflection are not guarded: probes need no token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// An agent: `AgentService.Connect` and nothing else, so an agent's host (or a run that
    /// got hold of its token) cannot submit, cancel or read anything.
    Agent,
    /// A client that looks: the `ControlService` calls in [`READ_METHODS`].
    Read,
    /// A client that drives: every `ControlService` call.
    Admin,
    /// Everything: the single shared token of `ROTA_TOKEN` / `--token-file`, and every caller
    /// of a coordinator without any token. Not writable in a credentials file.
    All,
}

/// The `ControlService` methods that change nothing: what the `read` role may call. Every
/// other method, including one added later, needs `admin`.
pub const READ_METHODS: &[&str] = &[
    "GetJobset",
    "ListJobsets",
    "ListRuns",
    "GetRun",
    "Logs",
    "Wait",
    "Watch",
    "ListAgents",
    "ListGroups",
    "ListJobs",
    "Status",
    "GetArtifact",
    "ListNotifications",
    "ListAudit",
    "PrunePreview",
];

const AGENT_SERVICE: &str = crate::agent_service_server::SERVICE_NAME;
const CONTROL_SERVICE: &str = crate::control_service_server::SERVICE_NAME;

impl Role {
    /// The name used in credentials files and messages.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Agent => "agent",
            Role::Read => "read",
            Role::Admin => "admin",
            Role::All => "all",
        }
    }

    /// A role as a credentials file names it: `agent`, `read` or `admin`.
    pub fn parse(text: &str) -> Result<Role, CredentialError> {
        match text {
            "agent" => Ok(Role::Agent),
            "read" => Ok(Role::Read),
            "admin" => Ok(Role::Admin),
            _ => Err(CredentialError::UnknownRole(text.to_string())),
        }
    }

    /// Whether this role may call `method` of `service` (as in the gRPC path
    /// `/service/method`).
    pub fn may_call(self, service: &str, method: &str) -> bool {
        match self {
            Role::All => true,
            // FetchArtifact: an agent places a dependency's artifacts before a run starts;
            // ArtifactStatus: it resumes sending one.
            Role::Agent => {
                service == AGENT_SERVICE
                    && matches!(method, "Connect" | "FetchArtifact" | "ArtifactStatus")
            }
            Role::Admin => service == CONTROL_SERVICE,
            Role::Read => service == CONTROL_SERVICE && READ_METHODS.contains(&method),
        }
    }

    /// The least role that may call the method, for refusals.
    fn needed_for(service: &str, method: &str) -> Role {
        [Role::Agent, Role::Read, Role::Admin]
            .into_iter()
            .find(|role| role.may_call(service, method))
            .unwrap_or(Role::All)
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Who made a request: the server puts it into every request it lets through
/// (`request.extensions().get::<Caller>()`), so a handler can tell who did what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The credential's name; `anonymous` on a coordinator without a token, `shared` for the
    /// single shared token.
    pub name: Arc<str>,
    pub role: Role,
}

/// How a person reads an audited method done to something: "cancelled" for `Cancel`, for the
/// "cancelled by ops-token at …" lines of `rota show` and the dashboard's run page.
pub fn audit_verb(method: &str) -> String {
    match method {
        "Submit" => "submitted".into(),
        "Cancel" => "cancelled".into(),
        "Retry" => "retried".into(),
        "Retire" => "retired".into(),
        "Trigger" => "triggered".into(),
        other => other.to_lowercase(),
    }
}

/// Why a set of credentials cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CredentialError {
    #[error("credential name {0:?} must be 1 to 64 printable ASCII characters, no spaces")]
    BadName(String),
    #[error("role must be agent, read or admin, got {0:?}")]
    UnknownRole(String),
    #[error(
        "credential {0:?}: token_sha256 must be 64 hex digits, the SHA-256 of the token \
         (printf %s \"$TOKEN\" | sha256sum)"
    )]
    BadDigest(String),
    #[error("credential {0:?}: the token is empty")]
    EmptyToken(String),
    #[error("two credentials are named {0:?}")]
    DuplicateName(String),
    #[error("credentials {0:?} and {1:?} have the same token: each role needs its own")]
    DuplicateToken(String, String),
    #[error("no credentials given: nobody could call anything")]
    Empty,
}

/// One credential a coordinator accepts: a name, a role and the SHA-256 of its token. The
/// token itself is not kept, so the server's memory does not hold the clients' secrets.
#[derive(Clone)]
pub struct Credential {
    name: Arc<str>,
    role: Role,
    digest: [u8; 32],
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credential")
            .field("name", &self.name)
            .field("role", &self.role)
            .finish_non_exhaustive()
    }
}

impl Credential {
    /// A credential for `token` itself (read from a token file).
    pub fn with_token(name: &str, role: Role, token: &str) -> Result<Credential, CredentialError> {
        check_credential_name(name)?;
        if token.is_empty() {
            return Err(CredentialError::EmptyToken(name.to_string()));
        }
        Ok(Credential {
            name: Arc::from(name),
            role,
            digest: sha256(token.as_bytes()),
        })
    }

    /// A credential given by the SHA-256 of its token, as 64 hex digits.
    pub fn with_sha256_hex(
        name: &str,
        role: Role,
        hex: &str,
    ) -> Result<Credential, CredentialError> {
        check_credential_name(name)?;
        let bad = || CredentialError::BadDigest(name.to_string());
        let hex = hex.trim().as_bytes();
        if hex.len() != 64 {
            return Err(bad());
        }
        let mut digest = [0u8; 32];
        for (byte, pair) in digest.iter_mut().zip(hex.chunks(2)) {
            let text = std::str::from_utf8(pair).map_err(|_| bad())?;
            *byte = u8::from_str_radix(text, 16).map_err(|_| bad())?;
        }
        Ok(Credential {
            name: Arc::from(name),
            role,
            digest,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn role(&self) -> Role {
        self.role
    }
}

fn check_credential_name(name: &str) -> Result<(), CredentialError> {
    if !name.is_empty() && name.len() <= 64 && name.bytes().all(|b| b.is_ascii_graphic()) {
        Ok(())
    } else {
        Err(CredentialError::BadName(name.to_string()))
    }
}

fn sha256(bytes: &[u8]) -> [u8; 32] {
    let digest = ring::digest::digest(&ring::digest::SHA256, bytes);
    digest.as_ref().try_into().expect("SHA-256 is 32 bytes")
}

/// The credentials a coordinator accepts, and the check of every call against them.
///
/// Three set-ups, from weakest to strongest: [`Credentials::open`] (no token: anyone who
/// reaches the port may do anything; for loopback), [`Credentials::shared`] (one token every
/// agent and client shares: an agent's host can submit work and read every log), and
/// [`Credentials::new`] with a credential per role and per holder.
#[derive(Clone, Default)]
pub struct Credentials(Option<Arc<[Credential]>>);

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.0 {
            None => f.write_str("Credentials::open"),
            Some(list) => f.debug_list().entries(list.iter()).finish(),
        }
    }
}

impl Credentials {
    /// No token: every call passes, as the caller `anonymous` with role `all`.
    pub fn open() -> Credentials {
        Credentials(None)
    }

    /// The single shared token (`ROTA_TOKEN`, `--token-file`): one credential, `shared`, that
    /// may call everything.
    pub fn shared(token: &str) -> Result<Credentials, CredentialError> {
        Credentials::new(vec![Credential::with_token("shared", Role::All, token)?])
    }

    /// These credentials and no others. Names must be unique, and so must tokens (a token
    /// shared by two credentials would make its role ambiguous).
    pub fn new(list: Vec<Credential>) -> Result<Credentials, CredentialError> {
        if list.is_empty() {
            return Err(CredentialError::Empty);
        }
        for (i, a) in list.iter().enumerate() {
            for b in &list[..i] {
                if a.name == b.name {
                    return Err(CredentialError::DuplicateName(a.name.to_string()));
                }
                if a.digest == b.digest {
                    return Err(CredentialError::DuplicateToken(
                        b.name.to_string(),
                        a.name.to_string(),
                    ));
                }
            }
        }
        Ok(Credentials(Some(list.into())))
    }

    /// Whether every call passes without a token.
    pub fn is_open(&self) -> bool {
        self.0.is_none()
    }

    /// Whether this is the single shared token, which may call everything.
    pub fn is_shared(&self) -> bool {
        self.0
            .as_ref()
            .is_some_and(|list| list.iter().any(|c| c.role == Role::All))
    }

    /// Checks a call to the gRPC `path` (`/package.Service/Method`) with this `authorization`
    /// header: the caller, or UNAUTHENTICATED for a missing or unknown token and
    /// PERMISSION_DENIED, naming the role and the method, for a role that may not call it.
    pub fn check(&self, path: &str, authorization: Option<&[u8]>) -> Result<Caller, Status> {
        let Some(list) = &self.0 else {
            return Ok(Caller {
                name: Arc::from("anonymous"),
                role: Role::All,
            });
        };
        let digest = authorization
            .and_then(|value| value.strip_prefix(b"Bearer "))
            .map(sha256);
        // Every credential is compared, without an early exit, so the time taken says
        // nothing about which one (if any) matched.
        let mut found = None;
        if let Some(digest) = digest {
            for credential in list.iter() {
                if constant_time_eq(&credential.digest, &digest) {
                    found = Some(credential);
                }
            }
        }
        let Some(credential) = found else {
            return Err(Status::unauthenticated(format!(
                "missing or wrong token: set {TOKEN_ENV} (or --token-file) to a token this \
                 coordinator accepts"
            )));
        };
        let (service, method) = path
            .trim_start_matches('/')
            .split_once('/')
            .unwrap_or((path, ""));
        if !credential.role.may_call(service, method) {
            return Err(Status::permission_denied(format!(
                "credential {:?} has role {}, which may not call {service}/{method} (it needs \
                 role {})",
                credential.name,
                credential.role,
                Role::needed_for(service, method)
            )));
        }
        Ok(Caller {
            name: credential.name.clone(),
            role: credential.role,
        })
    }

    /// `service` behind the check: refused calls never reach it, the others carry their
    /// [`Caller`] in their extensions.
    pub fn guard<S>(&self, service: S) -> Guarded<S> {
        Guarded {
            inner: service,
            credentials: self.clone(),
        }
    }
}

/// A gRPC service behind [`Credentials::check`] (see [`Credentials::guard`]). A tower service
/// rather than a tonic interceptor, because the check needs the method's path, which tonic
/// does not give interceptors.
#[derive(Debug, Clone)]
pub struct Guarded<S> {
    inner: S,
    credentials: Credentials,
}

impl<S: NamedService> NamedService for Guarded<S> {
    const NAME: &'static str = S::NAME;
}

impl<S, B> Service<http::Request<B>> for Guarded<S>
where
    S: Service<http::Request<B>, Response = http::Response<Body>, Error = Infallible>,
    S::Future: Send + 'static,
{
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = BoxFuture<http::Response<Body>, Infallible>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<B>) -> Self::Future {
        let authorization = request
            .headers()
            .get(http::header::AUTHORIZATION)
            .map(|value| value.as_bytes());
        match self.credentials.check(request.uri().path(), authorization) {
            Ok(caller) => {
                request.extensions_mut().insert(caller);
                Box::pin(self.inner.call(request))
            }
            Err(status) => {
                if status.code() == tonic::Code::PermissionDenied {
                    tracing::warn!(
                        path = request.uri().path(),
                        message = status.message(),
                        "call refused"
                    );
                } else {
                    tracing::info!(
                        path = request.uri().path(),
                        "call without a valid token refused"
                    );
                }
                Box::pin(std::future::ready(Ok(status.into_http())))
            }
        }
    }
}

/// Compares without an early exit, so the time taken does not tell how much of a guess was
/// right.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_list_of_coordinators_is_split_and_an_empty_entry_refused() {
        assert_eq!(
            coordinator_urls("http://a:1, http://b:2").unwrap(),
            vec!["http://a:1", "http://b:2"]
        );
        assert_eq!(coordinator_urls("http://a:1").unwrap(), vec!["http://a:1"]);
        assert!(coordinator_urls("http://a:1,,http://b:2")
            .unwrap_err()
            .contains("an empty entry"));
    }

    const SUBMIT: &str = "/rota.v1.ControlService/Submit";
    const CANCEL: &str = "/rota.v1.ControlService/Cancel";
    const LIST_RUNS: &str = "/rota.v1.ControlService/ListRuns";
    const CONNECT: &str = "/rota.v1.AgentService/Connect";

    fn by_role() -> Credentials {
        Credentials::new(vec![
            Credential::with_token("farm", Role::Agent, "agent-token").unwrap(),
            Credential::with_token("ci", Role::Read, "read-token").unwrap(),
            Credential::with_token("alice", Role::Admin, "admin-token").unwrap(),
        ])
        .unwrap()
    }

    fn call(credentials: &Credentials, path: &str, token: &str) -> Result<Caller, Status> {
        let header = format!("Bearer {token}");
        credentials.check(path, Some(header.as_bytes()))
    }

    #[test]
    fn the_shared_token_passes_everywhere_and_anything_else_is_unauthenticated() {
        let shared = Credentials::shared("s3cret").unwrap();
        for path in [SUBMIT, LIST_RUNS, CONNECT] {
            let caller = call(&shared, path, "s3cret").unwrap();
            assert_eq!((&*caller.name, caller.role), ("shared", Role::All));
        }
        for wrong in [
            None,
            Some(&b"Bearer s3cre"[..]),
            Some(b"Bearer s3cret2"),
            Some(b"s3cret"),
            Some(b"Bearer "),
        ] {
            let err = shared.check(SUBMIT, wrong).unwrap_err();
            assert_eq!(err.code(), tonic::Code::Unauthenticated, "{wrong:?}");
        }
    }

    #[test]
    fn without_credentials_everything_passes_as_anonymous() {
        let caller = Credentials::open().check(SUBMIT, None).unwrap();
        assert_eq!((&*caller.name, caller.role), ("anonymous", Role::All));
    }

    #[test]
    fn an_agent_token_may_only_connect() {
        let creds = by_role();
        let caller = call(&creds, CONNECT, "agent-token").unwrap();
        assert_eq!((&*caller.name, caller.role), ("farm", Role::Agent));
        for path in [LIST_RUNS, SUBMIT] {
            let err = call(&creds, path, "agent-token").unwrap_err();
            assert_eq!(err.code(), tonic::Code::PermissionDenied, "{path}");
            assert!(err.message().contains("role agent"), "{}", err.message());
        }
    }

    #[test]
    fn a_read_token_may_look_but_not_change_anything() {
        let creds = by_role();
        for method in READ_METHODS {
            let path = format!("/rota.v1.ControlService/{method}");
            assert!(call(&creds, &path, "read-token").is_ok(), "{method}");
        }
        let apply = "/rota.v1.ControlService/Apply";
        // A read token may ask what retention would delete, not delete it.
        let prune = "/rota.v1.ControlService/Prune";
        for path in [SUBMIT, CANCEL, apply, prune, CONNECT] {
            let err = call(&creds, path, "read-token").unwrap_err();
            assert_eq!(err.code(), tonic::Code::PermissionDenied, "{path}");
        }
        let err = call(&creds, SUBMIT, "read-token").unwrap_err();
        assert_eq!(
            err.message(),
            "credential \"ci\" has role read, which may not call \
             rota.v1.ControlService/Submit (it needs role admin)"
        );
    }

    #[test]
    fn an_admin_token_drives_the_control_service_but_is_no_agent() {
        let creds = by_role();
        for path in [SUBMIT, CANCEL, LIST_RUNS] {
            let caller = call(&creds, path, "admin-token").unwrap();
            assert_eq!((&*caller.name, caller.role), ("alice", Role::Admin));
        }
        let err = call(&creds, CONNECT, "admin-token").unwrap_err();
        assert_eq!(err.code(), tonic::Code::PermissionDenied);
        assert_eq!(
            call(&creds, SUBMIT, "nobody-token").unwrap_err().code(),
            tonic::Code::Unauthenticated
        );
    }

    #[test]
    fn a_credential_given_by_its_sha256_matches_its_token() {
        // printf %s admin-token | sha256sum
        let hex = "10a4c7c9fc5206d6f36dc6944a81bb6f4a3cb0e25014ae3b12e6c3e52712292a";
        let creds = Credentials::new(vec![
            Credential::with_sha256_hex("x", Role::Admin, hex).unwrap()
        ])
        .unwrap();
        assert_eq!(&*call(&creds, SUBMIT, "admin-token").unwrap().name, "x");
        assert!(call(&creds, SUBMIT, "admin-tokem").is_err());
        for bad in ["", "abc", &"g".repeat(64), &"a".repeat(65)] {
            assert_eq!(
                Credential::with_sha256_hex("x", Role::Admin, bad).unwrap_err(),
                CredentialError::BadDigest("x".into()),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn names_and_tokens_must_be_unique() {
        let a = Credential::with_token("a", Role::Read, "t1").unwrap();
        let a2 = Credential::with_token("a", Role::Admin, "t2").unwrap();
        let b = Credential::with_token("b", Role::Admin, "t1").unwrap();
        assert_eq!(
            Credentials::new(vec![a.clone(), a2]).unwrap_err(),
            CredentialError::DuplicateName("a".into())
        );
        assert_eq!(
            Credentials::new(vec![a, b]).unwrap_err(),
            CredentialError::DuplicateToken("a".into(), "b".into())
        );
        assert_eq!(
            Credentials::new(vec![]).unwrap_err(),
            CredentialError::Empty
        );
        assert!(Credential::with_token("has space", Role::Read, "t").is_err());
        assert_eq!(
            Role::parse("root"),
            Err(CredentialError::UnknownRole("root".into()))
        );
    }

    /// A service that answers with the caller it was given, as a header.
    #[derive(Clone)]
    struct Echo;

    impl Service<http::Request<()>> for Echo {
        type Response = http::Response<Body>;
        type Error = Infallible;
        type Future = std::future::Ready<Result<http::Response<Body>, Infallible>>;

        fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
            Poll::Ready(Ok(()))
        }

        fn call(&mut self, request: http::Request<()>) -> Self::Future {
            let caller = request.extensions().get::<Caller>().expect("a caller");
            let response = http::Response::builder()
                .header("x-caller", format!("{} {}", caller.name, caller.role))
                .body(Body::empty())
                .unwrap();
            std::future::ready(Ok(response))
        }
    }

    fn through_guard(guard: &mut Guarded<Echo>, path: &str, token: &str) -> http::Response<Body> {
        let request = http::Request::builder()
            .uri(path)
            .header("authorization", format!("Bearer {token}"))
            .body(())
            .unwrap();
        let mut future = guard.call(request);
        let mut cx = Context::from_waker(std::task::Waker::noop());
        match future.as_mut().poll(&mut cx) {
            Poll::Ready(Ok(response)) => response,
            _ => panic!("the guard answers at once"),
        }
    }

    #[test]
    fn the_guard_hands_the_caller_to_the_handler_and_refuses_before_it() {
        let mut guard = by_role().guard(Echo);
        let ok = through_guard(&mut guard, SUBMIT, "admin-token");
        assert_eq!(ok.headers()["x-caller"], "alice admin");
        let refused = through_guard(&mut guard, SUBMIT, "read-token");
        assert!(
            refused.headers().get("x-caller").is_none(),
            "the handler never ran"
        );
        assert_eq!(refused.headers()["grpc-status"], "7", "PERMISSION_DENIED");
        let unknown = through_guard(&mut guard, SUBMIT, "guess");
        assert_eq!(unknown.headers()["grpc-status"], "16", "UNAUTHENTICATED");
    }

    #[test]
    fn the_client_sends_what_the_server_expects() {
        let access = Access {
            token: Some("s3cret".into()),
            ca_pem: None,
        };
        let sent = access.bearer().unwrap().call(Request::new(())).unwrap();
        let header = sent.metadata().get("authorization").unwrap().as_bytes();
        assert!(Credentials::shared("s3cret")
            .unwrap()
            .check(SUBMIT, Some(header))
            .is_ok());
    }

    #[test]
    fn a_ca_needs_an_https_url() {
        let access = Access {
            token: None,
            ca_pem: Some(b"pem".to_vec()),
        };
        assert!(access
            .endpoint("http://127.0.0.1:1")
            .unwrap_err()
            .contains("not an https:// URL"));
    }
}
