//! Talking to the coordinator: connecting, and turning gRPC failures into the one-line errors
//! `main` prints (`rota: cannot reach coordinator at URL: ...`, `rota: no run "abc"`).

use std::error::Error as StdError;
use std::fmt;
use std::time::Duration;

use rota_proto::access::{Access, Bearer};
use rota_proto::control_service_client::ControlServiceClient;
use rota_proto::errors::root_cause;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

/// The generated ControlService client over a connected channel, sending the token on every
/// call; cheap to clone.
pub type Client = ControlServiceClient<InterceptedService<Channel, Bearer>>;

/// How long a first connection may take: an unroutable host should fail, not hang.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// A 100,000-run batch submit and its reply are one message each (the coordinator accepts
/// the same size); tonic's 4 MB default would refuse the reply to a submit already committed.
const MAX_MESSAGE: usize = 512 << 20;

/// Connects eagerly, so an unreachable coordinator is reported once, up front, with its URL.
pub async fn connect(url: &str, access: &Access) -> anyhow::Result<Client> {
    let bearer = access.bearer().map_err(anyhow::Error::msg)?;
    let channel = channel(url, access).await?;
    Ok(ControlServiceClient::with_interceptor(channel, bearer)
        .max_decoding_message_size(MAX_MESSAGE)
        .max_encoding_message_size(MAX_MESSAGE))
}

/// A connected channel (TLS with `access`'s CA for `https://`), for any service, to `urls`:
/// one coordinator's URL, or several comma-separated (coordinators on one PostgreSQL store),
/// of which the first that is active is used. A standby does not listen; of several, each is
/// also asked its health first ([`ACTIVE_CHECK`]), so a paused one is passed over too.
pub async fn channel(urls: &str, access: &Access) -> anyhow::Result<Channel> {
    let list = rota_proto::access::coordinator_urls(urls).map_err(anyhow::Error::msg)?;
    let mut failed = Vec::new();
    for url in list.iter().map(|u| normalize_url(u)) {
        let endpoint = access
            .endpoint(&url)
            .map_err(anyhow::Error::msg)?
            .connect_timeout(CONNECT_TIMEOUT);
        let channel = match endpoint.connect().await {
            Ok(channel) => channel,
            Err(e) => {
                failed.push(format!("{url}: {}", root_cause(&e)));
                continue;
            }
        };
        if list.len() == 1 {
            return Ok(channel);
        }
        match active(channel.clone()).await {
            Ok(()) => return Ok(channel),
            Err(why) => failed.push(format!("{url}: {why}")),
        }
    }
    match failed.as_slice() {
        [one] => anyhow::bail!("cannot reach coordinator at {one}"),
        all => anyhow::bail!("cannot reach any coordinator ({})", all.join("; ")),
    }
}

/// How long one of several coordinators may take to say it serves.
const ACTIVE_CHECK: Duration = Duration::from_secs(2);

/// Whether the coordinator behind `channel` serves `rota.v1.ControlService` (health check).
async fn active(channel: Channel) -> Result<(), String> {
    use tonic_health::pb::{health_check_response::ServingStatus, HealthCheckRequest};
    let mut health = tonic_health::pb::health_client::HealthClient::new(channel);
    let request = HealthCheckRequest {
        service: "rota.v1.ControlService".into(),
    };
    match tokio::time::timeout(ACTIVE_CHECK, health.check(request)).await {
        Err(_) => Err(format!("no answer within {ACTIVE_CHECK:?}")),
        Ok(Err(status)) => Err(status.message().to_string()),
        Ok(Ok(r)) if r.get_ref().status == ServingStatus::Serving as i32 => Ok(()),
        Ok(Ok(_)) => Err("not serving".into()),
    }
}

/// `host:port` is accepted as `http://host:port`: people type the listen address they gave
/// the coordinator.
pub fn normalize_url(url: &str) -> String {
    if url.contains("://") {
        url.to_string()
    } else {
        format!("http://{url}")
    }
}

/// A failed RPC, displayed as one line: the coordinator chooses its messages for people
/// (`no run "abc"`), so the message alone is shown; the code only when the message is empty.
#[derive(Debug)]
pub struct RpcError(pub tonic::Status);

impl fmt::Display for RpcError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let status = &self.0;
        let message = status.message().trim();
        match (status.code(), message.is_empty()) {
            (tonic::Code::Unavailable, true) => write!(f, "coordinator unavailable"),
            (tonic::Code::Unavailable, false) => write!(f, "coordinator unavailable: {message}"),
            (code, true) => write!(f, "{}", code.description()),
            (_, false) => write!(f, "{message}"),
        }
    }
}

impl StdError for RpcError {}

/// The metadata a standby coordinator puts on its answers: where the active one is (the
/// coordinator's `service::standby::ACTIVE_HEADER`).
const ACTIVE_HEADER: &str = "rota-active";

/// Where to go instead, when `err` is a standby's answer naming the active coordinator: its
/// address, if it has the scheme of `asked` (`https://` is never followed to `http://`, so a
/// token that travelled encrypted is not then sent in clear) and is not `asked` itself.
pub fn standby_redirect(err: &anyhow::Error, asked: &str) -> Option<String> {
    let status = err
        .chain()
        .find_map(|cause| cause.downcast_ref::<RpcError>())
        .map(|e| &e.0)
        .filter(|s| s.code() == tonic::Code::Unavailable)?;
    let active = status
        .metadata()
        .get(ACTIVE_HEADER)?
        .to_str()
        .ok()?
        .to_owned();
    let scheme = |url: &str| url.split("://").next().map(str::to_owned);
    let asked = normalize_url(asked);
    (scheme(&active) == scheme(&asked) && active != asked).then_some(active)
}

/// `client.get_run(req).await.reply()?`: unwraps the response and converts the status.
pub trait Reply<T> {
    /// The response message, or an [`RpcError`].
    fn reply(self) -> anyhow::Result<T>;
}

impl<T> Reply<T> for Result<tonic::Response<T>, tonic::Status> {
    fn reply(self) -> anyhow::Result<T> {
        self.map(tonic::Response::into_inner)
            .map_err(|s| RpcError(s).into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_standby_is_followed_only_to_another_address_of_the_same_scheme() {
        let answer = |code: tonic::Code, active: &str| {
            let mut status = tonic::Status::new(code, "this coordinator is a standby");
            status
                .metadata_mut()
                .insert(ACTIVE_HEADER, active.parse().unwrap());
            anyhow::Error::new(RpcError(status)).context("runs")
        };
        let e = answer(tonic::Code::Unavailable, "http://c1:7878");
        assert_eq!(
            standby_redirect(&e, "c2:7878"),
            Some("http://c1:7878".into())
        );
        // Not from https to http, not to itself, not for another code.
        let e = answer(tonic::Code::Unavailable, "http://c1:7878");
        assert_eq!(standby_redirect(&e, "https://c2:7878"), None);
        assert_eq!(standby_redirect(&e, "http://c1:7878"), None);
        let e = answer(tonic::Code::NotFound, "http://c1:7878");
        assert_eq!(standby_redirect(&e, "c2:7878"), None);
        let plain = anyhow::Error::new(RpcError(tonic::Status::unavailable("down")));
        assert_eq!(standby_redirect(&plain, "c2:7878"), None);
    }

    #[test]
    fn status_errors_show_only_the_coordinators_message() {
        let e = RpcError(tonic::Status::not_found("no run \"abc\""));
        assert_eq!(e.to_string(), "no run \"abc\"");
    }

    #[test]
    fn status_errors_without_message_name_the_code() {
        let e = RpcError(tonic::Status::new(tonic::Code::Unimplemented, ""));
        assert_eq!(e.to_string(), tonic::Code::Unimplemented.description());
        let e = RpcError(tonic::Status::unavailable("connection reset"));
        assert_eq!(e.to_string(), "coordinator unavailable: connection reset");
    }

    #[test]
    fn urls_without_scheme_default_to_http() {
        assert_eq!(normalize_url("127.0.0.1:7878"), "http://127.0.0.1:7878");
        assert_eq!(normalize_url("https://h:1"), "https://h:1");
    }

    #[tokio::test]
    async fn unreachable_coordinator_is_one_line_naming_the_url() {
        // Bind then drop a listener: the port is (almost certainly) closed afterwards.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        drop(listener);
        let err = connect(&url, &Access::default())
            .await
            .expect_err("nothing listens there");
        let line = format!("{err:#}");
        assert!(
            line.starts_with(&format!("cannot reach coordinator at {url}: ")),
            "{line}"
        );
        assert!(!line.contains('\n'), "{line}");
    }

    #[tokio::test]
    async fn of_several_coordinators_a_closed_and_a_paused_one_are_passed_over_naming_both() {
        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let closed_url = format!("http://{}", closed.local_addr().unwrap());
        drop(closed);
        // Bound and never accepted: the kernel takes the connection, nothing answers, as with
        // a coordinator under SIGSTOP.
        let paused = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let paused_url = format!("http://{}", paused.local_addr().unwrap());
        let err = connect(&format!("{closed_url},{paused_url}"), &Access::default())
            .await
            .expect_err("no coordinator answers");
        let line = format!("{err:#}");
        assert!(line.starts_with("cannot reach any coordinator ("), "{line}");
        assert!(line.contains(&format!("{closed_url}: ")), "{line}");
        assert!(
            line.contains(&format!("{paused_url}: no answer within")),
            "{line}"
        );
    }
}
