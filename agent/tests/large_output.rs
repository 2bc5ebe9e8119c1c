//! A 50 MB log goes from the process through the spool and the sender to a slow, bounded
//! consumer without the agent holding it in memory. Alone in its file, so the peak RSS of this
//! test process is this test's.

mod support;

use rota_agent::runner::Run;
use rota_agent::sender::send_run;
use rota_agent::spool::{SpoolReader, Stream};
use rota_proto::agent_message::Msg;
use support::{spec, spool};

const SIZE: u64 = 50_000_000;

/// Peak resident set of this process, from /proc (kB).
fn peak_rss_kb() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status
        .lines()
        .find(|line| line.starts_with("VmHWM:"))
        .unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_megabytes_stream_through_a_bounded_consumer_in_small_memory() {
    let (_dir, spool) = spool();
    let before = peak_rss_kb();
    let spec = spec("big", &["head", "-c", &SIZE.to_string(), "/dev/zero"]);
    let key = spec.key.clone();
    let run = Run::start(spec, &spool);
    let readers = Stream::BOTH.map(|stream| SpoolReader::new(spool.log_path(&key, stream)));
    let (tx, mut rx) = tokio::sync::mpsc::channel(2);
    let sender = tokio::spawn(send_run(run, [0, 0], true, readers, tx, None));

    let mut received = 0u64;
    let mut finished = None;
    let consume = async {
        while let Some(msg) = rx.recv().await {
            match msg.msg {
                Some(Msg::Log(chunk)) => {
                    assert_eq!(
                        chunk.offset, received,
                        "chunks arrive in order without gaps"
                    );
                    assert!(chunk.data.len() <= rota_agent::sender::CHUNK_SIZE);
                    assert!(chunk.data.iter().all(|&byte| byte == 0));
                    received += chunk.data.len() as u64;
                }
                Some(Msg::Finished(done)) => finished = Some(done),
                _ => {}
            }
            // A consumer slower than the producer: the spool absorbs the difference.
            tokio::task::yield_now().await;
        }
    };
    tokio::time::timeout(std::time::Duration::from_secs(120), consume)
        .await
        .expect("deadline passed");
    sender.await.unwrap().unwrap();

    let finished = finished.expect("RunFinished after the chunks");
    assert_eq!(
        (received, finished.stdout_len, finished.exit_code),
        (SIZE, SIZE, Some(0))
    );
    let grown_kb = peak_rss_kb().saturating_sub(before);
    eprintln!("peak RSS before {before} kB, grown {grown_kb} kB");
    assert!(
        grown_kb < 20_000,
        "peak RSS grew by {grown_kb} kB for a {SIZE} byte log"
    );
}
