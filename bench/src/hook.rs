//! A slow webhook receiver for W1's notify row: answers every POST after a fixed delay and
//! counts them, so the bench shows that a receiver that takes 2 s costs runs nothing.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// The receiver's address and how many POSTs it has answered.
pub struct SlowHook {
    pub addr: SocketAddr,
    pub answered: Arc<AtomicU64>,
}

impl SlowHook {
    /// Serves on 127.0.0.1:0 on the current runtime until the process ends.
    pub async fn start(delay: Duration) -> anyhow::Result<SlowHook> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let answered = Arc::new(AtomicU64::new(0));
        let count = answered.clone();
        let app = axum::Router::new().route(
            "/hook",
            axum::routing::post(move || {
                let count = count.clone();
                async move {
                    tokio::time::sleep(delay).await;
                    count.fetch_add(1, Ordering::Relaxed);
                    "ok"
                }
            }),
        );
        tokio::spawn(async move { axum::serve(listener, app).await });
        Ok(SlowHook { addr, answered })
    }

    pub fn url(&self) -> String {
        format!("http://{}/hook", self.addr)
    }
}
