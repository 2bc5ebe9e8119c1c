//! A TCP proxy with a freeze switch, to put between an agent and the coordinator: while frozen
//! it forwards nothing in either direction, on old and new connections alike, but closes
//! nothing, like a network that silently stalls (a partition). It runs on its own runtime so
//! the test using it stays synchronous.

use std::net::SocketAddr;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

pub struct Proxy {
    addr: SocketAddr,
    frozen: watch::Sender<bool>,
    _runtime: tokio::runtime::Runtime,
}

impl Proxy {
    /// Listens on a free port of 127.0.0.1 and forwards every connection to `upstream`.
    pub fn start(upstream: SocketAddr) -> Proxy {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let listener = runtime.block_on(TcpListener::bind("127.0.0.1:0")).unwrap();
        let addr = listener.local_addr().unwrap();
        let frozen = watch::Sender::new(false);
        let switch = frozen.subscribe();
        runtime.spawn(async move {
            while let Ok((down, _)) = listener.accept().await {
                let switch = switch.clone();
                tokio::spawn(async move {
                    let Ok(up) = TcpStream::connect(upstream).await else {
                        return;
                    };
                    let (down_read, down_write) = down.into_split();
                    let (up_read, up_write) = up.into_split();
                    tokio::join!(
                        forward(down_read, up_write, switch.clone()),
                        forward(up_read, down_write, switch),
                    );
                });
            }
        });
        Proxy {
            addr,
            frozen,
            _runtime: runtime,
        }
    }

    /// `http://ADDR` of the proxy, for an agent's `--coordinator`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops (true) or resumes (false) forwarding; bytes held meanwhile are delivered after.
    pub fn freeze(&self, frozen: bool) {
        self.frozen.send_replace(frozen);
    }
}

/// Copies one direction; holds every byte while frozen.
async fn forward(
    mut from: OwnedReadHalf,
    mut to: OwnedWriteHalf,
    mut frozen: watch::Receiver<bool>,
) {
    let mut buf = vec![0; 64 << 10];
    loop {
        if frozen.wait_for(|f| !*f).await.is_err() {
            return;
        }
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if frozen.wait_for(|f| !*f).await.is_err() {
            return;
        }
        if to.write_all(&buf[..n]).await.is_err() {
            break;
        }
    }
    let _ = to.shutdown().await;
}
