//! `rota artifact upload` from inside a run: the real `rota` binary, run by a real agent,
//! adds files to its run's artifacts with the capability its agent handed it (never a
//! token); they are listed, downloadable and placed in a dependent's RUN_DIR on another
//! host. The capability is refused once its attempt ended, under another run's id, and for
//! a file the disk has no room for, storing nothing.

use std::time::Duration;

use rota_proto as pb;
use rota_tests::{eventually, sh, stdout_of, submit, wait_jobset, Cluster};

const ROTA: &str = env!("CARGO_BIN_EXE_e2e-rota");
const DEADLINE: Duration = Duration::from_secs(60);

async fn get(c: &mut rota_tests::Client, id: &str) -> pb::Run {
    c.get_run(pb::RunRef { run: id.into() })
        .await
        .unwrap()
        .into_inner()
}

fn sha256_hex(bytes: &[u8]) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, bytes);
    digest.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

type Uploads = pb::run_service_client::RunServiceClient<tonic::transport::Channel>;

async fn uploads(url: &str) -> Uploads {
    let channel = tonic::transport::Endpoint::from_shared(url.to_string())
        .unwrap()
        .connect()
        .await
        .unwrap();
    Uploads::new(channel)
}

/// One upload of `data` under `path`, declaring `size`.
async fn upload(
    client: &mut Uploads,
    capability: &str,
    path: &str,
    data: &[u8],
    size: u64,
) -> Result<pb::UploadArtifactResponse, tonic::Status> {
    let first = pb::UploadArtifactRequest {
        capability: capability.into(),
        path: path.into(),
        sha256: sha256_hex(data),
        size,
        data: data.to_vec().into(),
    };
    client
        .upload_artifact(futures::stream::iter([first]))
        .await
        .map(tonic::Response::into_inner)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_uploaded_from_inside_a_run_are_listed_downloaded_and_reach_its_dependent() {
    let mut cluster = Cluster::start().await;
    cluster.add_agent("host-a", 1, &["host-a_group"]);
    cluster.add_agent("host-b", 1, &["host-b_group"]);
    cluster.wait_agents(2).await;
    let mut c = cluster.client().await;

    let mut dump = sh(
        "dump",
        &format!(
            "set -e; test -z \"$ROTA_TOKEN\"; case \"$ROTA_ARTIFACT_TOKEN\" in rota-upload.*) ;; *) exit 9;; esac
             head -c 2500000 /dev/urandom > big.bin; mkdir -p sub; echo note > sub/note.txt
             {ROTA} artifact upload big.bin ./sub/note.txt
             echo globbed > kept.txt; echo $ROTA_ARTIFACT_TOKEN"
        ),
    );
    dump.groups = vec!["host-a_group".into()];
    // Matched by its glob when the run succeeds: kept beside the uploads, not instead.
    dump.artifacts = vec!["kept.txt".into()];
    let mut compress = sh(
        "compress",
        "sha256sum big.bin | cut -c1-64; cat sub/note.txt kept.txt; echo $AGENT_NAME",
    );
    compress.groups = vec!["host-b_group".into()];
    compress.after = vec!["dump".into()];
    let runs = submit(&mut c, "pipeline", vec![dump, compress]).await;
    wait_jobset(&mut c, "pipeline", DEADLINE).await;
    let (dump, compress) = (
        get(&mut c, &runs[0].id).await,
        get(&mut c, &runs[1].id).await,
    );
    assert_eq!(dump.state, "success", "{dump:?}");
    assert_eq!(compress.state, "success", "{compress:?}");
    let listed: Vec<(&str, u64)> = dump
        .artifacts
        .iter()
        .map(|a| (a.path.as_str(), a.size))
        .collect();
    assert_eq!(
        listed,
        [("big.bin", 2_500_000), ("kept.txt", 8), ("sub/note.txt", 5)]
    );
    let big = &dump.artifacts[0];
    assert_eq!(
        stdout_of(&mut c, &compress.id).await,
        format!("{}\nnote\nglobbed\nhost-b\n", big.sha256)
    );

    // Downloaded through ControlService: the same bytes.
    let mut stream = c
        .get_artifact(pb::GetArtifactRequest {
            run: dump.number.to_string(),
            path: "big.bin".into(),
        })
        .await
        .unwrap()
        .into_inner();
    let mut bytes = Vec::new();
    while let Some(piece) = stream.message().await.unwrap() {
        bytes.extend_from_slice(&piece.data);
    }
    assert_eq!(
        (bytes.len(), sha256_hex(&bytes)),
        (2_500_000, big.sha256.clone())
    );

    // The attempt has ended: its capability is refused and the run's artifacts stay as
    // they were.
    let out = stdout_of(&mut c, &dump.id).await;
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines[..2],
        [
            format!("big.bin (2500000 bytes) kept with run {}", dump.number),
            format!("sub/note.txt (5 bytes) kept with run {}", dump.number),
        ]
    );
    let token = lines[2].to_string();
    let mut up = uploads(&cluster.coordinator.url).await;
    let late = upload(&mut up, &token, "late.txt", b"late\n", 5)
        .await
        .unwrap_err();
    assert_eq!(late.code(), tonic::Code::FailedPrecondition, "{late:?}");
    assert!(late.message().contains("is not running"), "{late:?}");
    // So is the CLI, saying why.
    std::fs::write(cluster.dir.path().join("late.txt"), "late\n").unwrap();
    let out = std::process::Command::new(ROTA)
        .args(["artifact", "upload", "late.txt"])
        .current_dir(cluster.dir.path())
        .env("ROTA_ARTIFACT_URL", &cluster.coordinator.url)
        .env("ROTA_ARTIFACT_TOKEN", &token)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("is not running"), "{stderr}");
    assert_eq!(get(&mut c, &dump.id).await.artifacts.len(), 3);
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_is_refused_for_another_run_a_bad_digest_or_no_room_and_stores_nothing() {
    let mut cluster = Cluster::start().await;
    cluster.add_agent("a", 2, &[]);
    cluster.wait_agents(1).await;
    let mut c = cluster.client().await;
    let tokens = cluster.dir.path().join("tokens");
    let flag = cluster.dir.path().join("go");
    std::fs::create_dir_all(&tokens).unwrap();
    let waiting = |name: &str| {
        sh(
            name,
            &format!(
                "echo $ROTA_ARTIFACT_TOKEN > {}/$RUN_NUMBER.tmp && mv {0}/$RUN_NUMBER.tmp {0}/$RUN_NUMBER; \
                 while [ ! -e {} ]; do sleep 0.02; done",
                tokens.display(),
                flag.display()
            ),
        )
    };
    let runs = submit(&mut c, "hold", vec![waiting("one"), waiting("two")]).await;
    let token_of = |n: u64| {
        let path = tokens.join(n.to_string());
        move || {
            let path = path.clone();
            async move {
                std::fs::read_to_string(path)
                    .ok()
                    .map(|t| t.trim().to_string())
            }
        }
    };
    let one = eventually(DEADLINE, "run one's capability", token_of(runs[0].number)).await;
    let two = eventually(DEADLINE, "run two's capability", token_of(runs[1].number)).await;
    let mut up = uploads(&cluster.coordinator.url).await;

    // Run one's tag under run two's id: not a capability this coordinator made.
    let tag = one.rsplit('.').next().unwrap();
    let forged = format!("rota-upload.{}.1.{tag}", runs[1].id);
    let err = upload(&mut up, &forged, "x.txt", b"x", 1)
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::PermissionDenied, "{err:?}");
    assert!(
        err.message().contains("not made by this coordinator"),
        "{err:?}"
    );
    let err = upload(&mut up, "ROTA_TOKEN-like", "x.txt", b"x", 1)
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::PermissionDenied, "{err:?}");

    // Bytes that do not hash to the digest they came with.
    let mut bad = pb::UploadArtifactRequest {
        capability: one.clone(),
        path: "bad.txt".into(),
        sha256: sha256_hex(b"good"),
        size: 4,
        data: b"evil".to_vec().into(),
    };
    let err = up
        .upload_artifact(futures::stream::iter([bad.clone()]))
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument, "{err:?}");
    // A path outside RUN_DIR.
    bad.path = "../escape".into();
    let err = up
        .upload_artifact(futures::stream::iter([bad]))
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument, "{err:?}");

    // A file larger than the data dir's free space: refused before a byte is stored.
    let data_dir = cluster.dir.path().join("data");
    let free = rota_coordinator::datadir::free_bytes(&data_dir).unwrap();
    let huge = free + (64 << 20);
    if huge <= rota_proto::MAX_ARTIFACT_BYTES {
        let err = upload(&mut up, &two, "huge.bin", b"first bytes", huge)
            .await
            .unwrap_err();
        assert_eq!(err.code(), tonic::Code::ResourceExhausted, "{err:?}");
        assert!(err.message().contains("reserve"), "{err:?}");
    } else {
        eprintln!("no full-disk case: {free} bytes free is above the largest artifact");
    }

    // A good upload by each run is its own, and nothing of the refused ones was kept.
    let ok = upload(&mut up, &two, "two.txt", b"two\n", 4).await.unwrap();
    assert_eq!(ok.run_number, runs[1].number);
    std::fs::write(&flag, "").unwrap();
    wait_jobset(&mut c, "hold", DEADLINE).await;
    let (one_run, two_run) = (
        get(&mut c, &runs[0].id).await,
        get(&mut c, &runs[1].id).await,
    );
    assert!(one_run.artifacts.is_empty(), "{one_run:?}");
    let paths: Vec<&str> = two_run.artifacts.iter().map(|a| a.path.as_str()).collect();
    assert_eq!(paths, ["two.txt"]);
    let stored: Vec<_> = std::fs::read_dir(data_dir.join("artifacts/content"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(stored, [std::ffi::OsString::from(sha256_hex(b"two\n"))]);
    let partial = std::fs::read_dir(data_dir.join("artifacts/partial"))
        .map(|d| d.count())
        .unwrap_or(0);
    assert_eq!(partial, 0, "nothing half-stored");
    cluster.stop().await;
}

/// An upload cut off midway (the uploading process killed, its connection gone) keeps
/// nothing: no artifact is listed and no half-written content stays on disk, while the run
/// goes on and can upload the file again whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_cut_off_midway_keeps_nothing_and_can_be_made_again() {
    let mut cluster = Cluster::start().await;
    cluster.add_agent("a", 1, &[]);
    cluster.wait_agents(1).await;
    let mut c = cluster.client().await;
    let dir = cluster.dir.path().to_path_buf();
    let (token_file, flag) = (dir.join("token"), dir.join("go"));
    let run = submit(
        &mut c,
        "cut",
        vec![sh(
            "uploader",
            &format!(
                "echo $ROTA_ARTIFACT_TOKEN > {t}.tmp && mv {t}.tmp {t}; \
                 while [ ! -e {} ]; do sleep 0.02; done",
                flag.display(),
                t = token_file.display()
            ),
        )],
    )
    .await
    .remove(0);
    let token = eventually(DEADLINE, "the run's capability", || async {
        std::fs::read_to_string(&token_file)
            .ok()
            .map(|t| t.trim().to_string())
    })
    .await;

    // Two chunks of three: the first sent, then the connection dropped.
    let data: Vec<u8> = (0..3 * rota_proto::ARTIFACT_CHUNK)
        .map(|i| (i % 251) as u8)
        .collect();
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    let url = cluster.coordinator.url.clone();
    let uploading = tokio::spawn(async move {
        let mut up = uploads(&url).await;
        up.upload_artifact(tokio_stream::wrappers::ReceiverStream::new(rx))
            .await
    });
    let chunk =
        |i: usize| data[i * rota_proto::ARTIFACT_CHUNK..][..rota_proto::ARTIFACT_CHUNK].to_vec();
    tx.send(pb::UploadArtifactRequest {
        capability: token.clone(),
        path: "big.bin".into(),
        sha256: sha256_hex(&data),
        size: data.len() as u64,
        data: chunk(0).into(),
    })
    .await
    .unwrap();
    tx.send(pb::UploadArtifactRequest {
        data: chunk(1).into(),
        ..Default::default()
    })
    .await
    .unwrap();
    let partial_dir = dir.join("data/artifacts/partial");
    let held = || {
        std::fs::read_dir(&partial_dir)
            .map(|d| {
                d.filter_map(|e| e.ok()?.metadata().ok())
                    .map(|m| m.len())
                    .sum::<u64>()
            })
            .unwrap_or(0)
    };
    eventually(DEADLINE, "part of the upload on disk", || async {
        (held() >= 2 * rota_proto::ARTIFACT_CHUNK as u64).then_some(())
    })
    .await;
    uploading.abort();
    let _ = uploading.await;
    drop(tx);
    eventually(DEADLINE, "the half-written content gone", || async {
        (held() == 0).then_some(())
    })
    .await;
    assert!(get(&mut c, &run.id).await.artifacts.is_empty());

    // The run is still running and uploads it again, whole.
    let mut up = uploads(&cluster.coordinator.url).await;
    let first = pb::UploadArtifactRequest {
        capability: token,
        path: "big.bin".into(),
        sha256: sha256_hex(&data),
        size: data.len() as u64,
        data: chunk(0).into(),
    };
    let rest = (1..3).map(|i| pb::UploadArtifactRequest {
        data: chunk(i).into(),
        ..Default::default()
    });
    let messages: Vec<_> = std::iter::once(first).chain(rest).collect();
    up.upload_artifact(futures::stream::iter(messages))
        .await
        .unwrap();
    std::fs::write(&flag, "").unwrap();
    wait_jobset(&mut c, "cut", DEADLINE).await;
    let done = get(&mut c, &run.id).await;
    assert_eq!(done.state, "success");
    let paths: Vec<&str> = done.artifacts.iter().map(|a| a.path.as_str()).collect();
    assert_eq!(paths, ["big.bin"]);
    assert_eq!(held(), 0);
    cluster.stop().await;
}
