//! A webhook receiver for tests: a real HTTP server (axum on 127.0.0.1:0, on its own thread
//! and runtime, so sync tests with real binaries can use it too) that records every POST, can
//! be "down" (answering 503) and can answer late.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};

/// One POST as received.
#[derive(Debug, Clone)]
pub struct Received {
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Received {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("a JSON body")
    }

    /// Whether `X-Rota-Signature-256` is HMAC-SHA256 of the body with `secret`.
    pub fn signed_with(&self, secret: &[u8]) -> bool {
        let Some(sig) = self
            .headers
            .get("x-rota-signature-256")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("sha256="))
        else {
            return false;
        };
        let Some(tag) = (0..sig.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(sig.get(i..i + 2)?, 16).ok())
            .collect::<Option<Vec<u8>>>()
        else {
            return false;
        };
        let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret);
        ring::hmac::verify(&key, &self.body, &tag).is_ok()
    }
}

#[derive(Default)]
struct Shared {
    got: Mutex<Vec<Received>>,
    down: AtomicBool,
    /// POSTs refused while down.
    refused: AtomicU64,
    delay_ms: AtomicU64,
}

/// The receiver; stops when dropped (its thread's runtime ends with the process or test).
pub struct Receiver {
    pub addr: SocketAddr,
    shared: Arc<Shared>,
}

async fn hook(State(s): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let delay = s.delay_ms.load(Ordering::SeqCst);
    if delay > 0 {
        tokio::time::sleep(Duration::from_millis(delay)).await;
    }
    if s.down.load(Ordering::SeqCst) {
        s.refused.fetch_add(1, Ordering::SeqCst);
        return StatusCode::SERVICE_UNAVAILABLE;
    }
    s.got.lock().unwrap().push(Received { headers, body });
    StatusCode::OK
}

impl Receiver {
    pub fn start() -> Receiver {
        let shared = Arc::new(Shared::default());
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind receiver");
        listener.set_nonblocking(true).expect("nonblocking");
        let addr = listener.local_addr().expect("addr");
        let state = shared.clone();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
                let app = axum::Router::new()
                    .route("/hook", axum::routing::post(hook))
                    .with_state(state);
                let _ = axum::serve(listener, app).await;
            });
        });
        Receiver { addr, shared }
    }

    /// The URL webhooks are to POST to.
    pub fn url(&self) -> String {
        format!("http://{}/hook", self.addr)
    }

    /// While down, every POST is answered 503 and not recorded.
    pub fn set_down(&self, down: bool) {
        self.shared.down.store(down, Ordering::SeqCst);
    }

    /// Every POST is answered this late.
    pub fn set_delay(&self, delay: Duration) {
        self.shared
            .delay_ms
            .store(delay.as_millis() as u64, Ordering::SeqCst);
    }

    /// POSTs answered 503 so far.
    pub fn refused(&self) -> u64 {
        self.shared.refused.load(Ordering::SeqCst)
    }

    /// POSTs accepted so far.
    pub fn received(&self) -> Vec<Received> {
        self.shared.got.lock().unwrap().clone()
    }
}
