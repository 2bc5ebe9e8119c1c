//! The `rota-agent` binary: flags reach the `Hello`, and SIGTERM drains and exits 0.

mod support;

use std::process::Stdio;

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use rota_proto::agent_message::Msg;
use support::coordinator::FakeCoordinator;
use support::within;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_says_goodbye_and_exits_zero() {
    let mut coordinator = FakeCoordinator::start().await;
    let dir = tempfile::tempdir().unwrap();
    let mut agent = tokio::process::Command::new(env!("CARGO_BIN_EXE_rota-agent"))
        .args([
            "--coordinator",
            &coordinator.url,
            "--name",
            "bin-agent",
            "--group",
            "db",
            "--group",
            "gpu",
        ])
        .args([
            "--slots",
            "3",
            "--label",
            "zone=eu",
            "--drain-timeout",
            "5s",
        ])
        .arg("--spool-dir")
        .arg(dir.path().join("spool"))
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();

    let hello = coordinator.hello().await;
    assert_eq!((hello.name.as_str(), hello.slots), ("bin-agent", 3));
    assert_eq!(hello.groups, ["db", "gpu"]);
    assert_eq!(hello.labels.get("zone").map(String::as_str), Some("eu"));
    // A heartbeat means the Welcome was taken: the goodbye is said on an established stream.
    coordinator
        .message(|msg| matches!(msg, Msg::Heartbeat(_)).then_some(()))
        .await;

    kill(
        Pid::from_raw(i32::try_from(agent.id().unwrap()).unwrap()),
        Signal::SIGTERM,
    )
    .unwrap();

    coordinator
        .message(|msg| matches!(msg, Msg::Goodbye(_)).then_some(()))
        .await;
    let status = within(agent.wait()).await.unwrap();
    assert_eq!(status.code(), Some(0));
}
