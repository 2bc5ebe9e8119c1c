//! The coordinator's gRPC surface: health, reflection, and the agent handshake.

use rota_proto as pb;
use rota_tests::Cluster;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::HealthCheckRequest;

async fn channel(cluster: &Cluster) -> tonic::transport::Channel {
    tonic::transport::Endpoint::from_shared(cluster.coordinator.url.clone())
        .unwrap()
        .connect()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_reports_serving_for_both_services() {
    let cluster = Cluster::start().await;
    let mut health = HealthClient::new(channel(&cluster).await);
    for service in ["", "rota.v1.ControlService", "rota.v1.AgentService"] {
        let status = health
            .check(HealthCheckRequest {
                service: service.into(),
            })
            .await
            .unwrap_or_else(|e| panic!("health of {service:?}: {e}"))
            .into_inner()
            .status;
        assert_eq!(status, ServingStatus::Serving as i32, "{service:?}");
    }
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reflection_lists_rota_services() {
    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;
    use tonic_reflection::pb::v1::ServerReflectionRequest;

    let cluster = Cluster::start().await;
    let mut client = ServerReflectionClient::new(channel(&cluster).await);
    let req = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut stream = client
        .server_reflection_info(tokio_stream::iter(vec![req]))
        .await
        .unwrap()
        .into_inner();
    let resp = stream.message().await.unwrap().unwrap();
    let Some(MessageResponse::ListServicesResponse(list)) = resp.message_response else {
        panic!("unexpected reflection answer: {resp:?}");
    };
    let names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    for want in [
        "rota.v1.ControlService",
        "rota.v1.AgentService",
        "grpc.health.v1.Health",
    ] {
        assert!(names.iter().any(|n| n == want), "{want} in {names:?}");
    }
    cluster.stop().await;
}

async fn connect_with(cluster: &Cluster, first: pb::agent_message::Msg) -> tonic::Status {
    let mut client = pb::agent_service_client::AgentServiceClient::new(channel(cluster).await);
    let msgs = vec![pb::AgentMessage { msg: Some(first) }];
    client.connect(tokio_stream::iter(msgs)).await.unwrap_err()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_of_another_protocol_version_is_refused_with_a_clear_message() {
    let cluster = Cluster::start().await;
    let hello = pb::Hello {
        name: "old".into(),
        slots: 1,
        protocol_version: rota_proto::PROTOCOL_VERSION + 1,
        session_id: "s".into(),
        ..Default::default()
    };
    let err = connect_with(&cluster, pb::agent_message::Msg::Hello(hello)).await;
    assert_eq!(err.code(), tonic::Code::FailedPrecondition);
    assert!(
        err.message().contains("protocol version"),
        "{}",
        err.message()
    );
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_first_agent_message_must_be_hello() {
    let cluster = Cluster::start().await;
    let err = connect_with(
        &cluster,
        pb::agent_message::Msg::Heartbeat(pb::Heartbeat::default()),
    )
    .await;
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
    assert!(err.message().contains("Hello"), "{}", err.message());
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reflection_v1alpha_lists_rota_services_for_older_clients() {
    // grpcurl 1.8 and grpcio's reflection client speak only v1alpha.
    use tonic_reflection::pb::v1alpha::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1alpha::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1alpha::server_reflection_response::MessageResponse;
    use tonic_reflection::pb::v1alpha::ServerReflectionRequest;

    let cluster = Cluster::start().await;
    let mut client = ServerReflectionClient::new(channel(&cluster).await);
    let req = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut stream = client
        .server_reflection_info(tokio_stream::iter(vec![req]))
        .await
        .expect("v1alpha reflection is served")
        .into_inner();
    let resp = stream.message().await.unwrap().unwrap();
    let Some(MessageResponse::ListServicesResponse(list)) = resp.message_response else {
        panic!("unexpected reflection answer: {resp:?}");
    };
    let names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    for want in ["rota.v1.ControlService", "rota.v1.AgentService"] {
        assert!(names.iter().any(|n| n == want), "{want} in {names:?}");
    }
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_watch_of_an_unknown_service_streams_service_unknown_and_stays_open() {
    let cluster = Cluster::start().await;
    let mut health = HealthClient::new(channel(&cluster).await);
    let mut stream = health
        .watch(HealthCheckRequest {
            service: "nope".into(),
        })
        .await
        .expect("watch of an unknown service is a stream, not an error")
        .into_inner();
    let first = stream.message().await.expect("first message").expect("one");
    assert_eq!(first.status, ServingStatus::ServiceUnknown as i32);
    // The protocol keeps the call open (the service may appear later): nothing more comes,
    // and the stream has not ended.
    let next = tokio::time::timeout(std::time::Duration::from_millis(500), stream.message()).await;
    assert!(next.is_err(), "the stream stays open: {next:?}");

    // A known service still gets its status.
    let mut known = health
        .watch(HealthCheckRequest {
            service: "rota.v1.ControlService".into(),
        })
        .await
        .unwrap()
        .into_inner();
    let status = known.message().await.unwrap().unwrap().status;
    assert_eq!(status, ServingStatus::Serving as i32);

    // At shutdown both end with UNAVAILABLE, so a stop does not wait on probes.
    let stopping = tokio::spawn(cluster.stop());
    for s in [&mut stream, &mut known] {
        let end = s.message().await.expect_err("ends with a status");
        assert_eq!(end.code(), tonic::Code::Unavailable, "{end:?}");
    }
    stopping.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn follow_watch_and_wait_end_with_unavailable_when_the_coordinator_stops() {
    let cluster = Cluster::start().await;
    let mut c = cluster.client().await;
    // No agent: the run stays pending, so following it never ends by itself.
    let run = c
        .submit(pb::SubmitRequest {
            runs: vec![rota_tests::sh("p", "true")],
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .runs
        .remove(0);
    let mut logs = c
        .logs(pb::LogsRequest {
            run: run.id.clone(),
            follow: true,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let mut watch = c
        .watch(pb::WatchRequest::default())
        .await
        .unwrap()
        .into_inner();
    let mut waiter = c.clone();
    let mut wait_call = Box::pin(async move {
        waiter
            .wait(pb::WaitRequest {
                runs: vec![run.id],
                jobset: String::new(),
            })
            .await
    });
    // Polled once, the Wait goes out first on the shared connection; a later call answered on
    // that connection means the coordinator holds the Wait before it is told to stop.
    assert!(futures::poll!(&mut wait_call).is_pending());
    c.list_jobsets(pb::ListJobsetsRequest {}).await.unwrap();
    let wait = tokio::spawn(wait_call);

    let stopping = tokio::spawn(cluster.stop());
    let end = logs
        .message()
        .await
        .expect_err("logs -f ends with a status");
    assert_eq!(end.code(), tonic::Code::Unavailable, "logs: {end:?}");
    let end = loop {
        match watch.message().await {
            Ok(Some(_)) => continue,
            Ok(None) => panic!("watch ended OK at shutdown"),
            Err(e) => break e,
        }
    };
    assert_eq!(end.code(), tonic::Code::Unavailable, "watch: {end:?}");
    let end = wait.await.unwrap().expect_err("wait ends with a status");
    assert_eq!(end.code(), tonic::Code::Unavailable, "wait: {end:?}");
    stopping.await.unwrap();
}

/// Opens an agent stream that stays open (its sender is returned) and says Hello.
async fn open_session(
    cluster: &Cluster,
    name: &str,
    session: &str,
) -> (
    tokio::sync::mpsc::Sender<pb::AgentMessage>,
    Result<tonic::Streaming<pb::CoordinatorMessage>, tonic::Status>,
) {
    let mut client = pb::agent_service_client::AgentServiceClient::new(channel(cluster).await);
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    let hello = pb::Hello {
        name: name.into(),
        slots: 1,
        protocol_version: rota_proto::PROTOCOL_VERSION,
        session_id: session.into(),
        ..Default::default()
    };
    tx.send(pb::AgentMessage {
        msg: Some(pb::agent_message::Msg::Hello(hello)),
    })
    .await
    .unwrap();
    let stream = client
        .connect(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await
        .map(tonic::Response::into_inner);
    (tx, stream)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_taken_name_refuses_another_session_but_takes_the_same_session_back() {
    let cluster = Cluster::start().await;
    let (_first, stream) = open_session(&cluster, "dup", "session-1").await;
    let mut stream = stream.expect("the first session is welcomed");
    assert!(matches!(
        stream.message().await.unwrap().unwrap().msg,
        Some(pb::coordinator_message::Msg::Welcome(_))
    ));

    let (_other, refused) = open_session(&cluster, "dup", "session-2").await;
    let err = refused.expect_err("another session under a live name is refused");
    assert_eq!(err.code(), tonic::Code::AlreadyExists, "{err}");
    assert!(
        err.message().contains("\"dup\"") && err.message().contains("session-1"),
        "names the name and the holder: {}",
        err.message()
    );

    // The same session on a new stream (its old one stalled) is a reconnect, as before.
    let (_again, stream) = open_session(&cluster, "dup", "session-1").await;
    let mut stream = stream.expect("the same session reconnects");
    assert!(matches!(
        stream.message().await.unwrap().unwrap().msg,
        Some(pb::coordinator_message::Msg::Welcome(_))
    ));
    let mut c = cluster.client().await;
    let agents = c
        .list_agents(pb::ListAgentsRequest::default())
        .await
        .unwrap()
        .into_inner()
        .agents;
    let live: Vec<_> = agents.iter().filter(|a| a.state == "connected").collect();
    assert_eq!(live.len(), 1, "{agents:?}");
    assert_eq!(live[0].session_id, "session-1");
    cluster.stop().await;
}
