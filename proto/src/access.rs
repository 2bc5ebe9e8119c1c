//! Who may talk to a coordinator, and how clients reach it: TLS (rustls) and a shared bearer
//! token, used alike by agents and the CLI.
//!
//! A coordinator that listens beyond loopback runs commands on every agent for whoever can
//! reach its port, so it can require a token (`ROTA_TOKEN`, or `--token-file`) and serve TLS
//! (`--tls-cert`, `--tls-key`). Clients send the token as `authorization: Bearer …` on every
//! call and use TLS for `https://` URLs, trusting the system roots plus `ROTA_CA` when given
//! (a private CA or a self-signed certificate).

use std::path::Path;
use std::sync::Arc;

use tonic::metadata::{Ascii, MetadataValue};
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
pub fn root_cause(err: &(dyn std::error::Error + 'static)) -> String {
    let mut cur = err;
    while let Some(next) = cur.source() {
        cur = next;
    }
    cur.to_string()
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

/// Server side: refuses calls without the right bearer token (`unauthenticated`). Without a
/// configured token every call passes.
#[derive(Clone)]
pub struct RequireToken(Option<Arc<[u8]>>);

impl std::fmt::Debug for RequireToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("RequireToken")
            .field(&self.0.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

impl RequireToken {
    /// Checks for `token`, or lets everything through when `None`.
    pub fn new(token: Option<&str>) -> Self {
        RequireToken(token.map(|t| Arc::from(format!("Bearer {t}").into_bytes())))
    }
}

impl Interceptor for RequireToken {
    fn call(&mut self, request: Request<()>) -> Result<Request<()>, Status> {
        let Some(expected) = &self.0 else {
            return Ok(request);
        };
        let given = request
            .metadata()
            .get("authorization")
            .map(|v| v.as_bytes())
            .unwrap_or_default();
        if constant_time_eq(given, expected) {
            Ok(request)
        } else {
            Err(Status::unauthenticated(format!(
                "missing or wrong token: set {TOKEN_ENV} to the coordinator's token"
            )))
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

    fn request(auth: Option<&str>) -> Request<()> {
        let mut r = Request::new(());
        if let Some(a) = auth {
            r.metadata_mut().insert("authorization", a.parse().unwrap());
        }
        r
    }

    #[test]
    fn the_right_token_passes_and_anything_else_is_unauthenticated() {
        let mut check = RequireToken::new(Some("s3cret"));
        assert!(check.call(request(Some("Bearer s3cret"))).is_ok());
        for wrong in [
            None,
            Some("Bearer s3cre"),
            Some("Bearer s3cret2"),
            Some("s3cret"),
        ] {
            let err = check.call(request(wrong)).unwrap_err();
            assert_eq!(err.code(), tonic::Code::Unauthenticated, "{wrong:?}");
        }
    }

    #[test]
    fn without_a_token_everything_passes() {
        assert!(RequireToken::new(None).call(request(None)).is_ok());
    }

    #[test]
    fn the_client_sends_what_the_server_expects() {
        let access = Access {
            token: Some("s3cret".into()),
            ca_pem: None,
        };
        let sent = access.bearer().unwrap().call(Request::new(())).unwrap();
        assert!(RequireToken::new(Some("s3cret")).call(sent).is_ok());
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
