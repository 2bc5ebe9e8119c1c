//! Headless Chromium for the dashboard's tests, driven over WebDriver (fantoccini against
//! Debian's `chromedriver`). Chromium is slow to start on a small machine, so a test file
//! starts one [`Browser`] and reuses it for every step.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use fantoccini::{Client, ClientBuilder, Locator};

/// A chromedriver process and one browser session in it; both end on drop.
pub struct Browser {
    pub client: Client,
    driver: Child,
    /// One browser at a time in a test binary: two Chromiums on a small machine slow each
    /// other past the tests' deadlines.
    _one: tokio::sync::MutexGuard<'static, ()>,
}

static ONE_BROWSER: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

impl Browser {
    /// Starts chromedriver on a free port and a headless Chromium session, or None (after
    /// printing SKIPPED, or panicking under ROTA_REQUIRE_TOOLS=1) without chromedriver.
    pub async fn start() -> Option<Browser> {
        let driver_path = crate::tools::tool("chromedriver", "chromium-driver")?;
        let one = ONE_BROWSER.lock().await;
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let driver = Command::new(driver_path)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver");
        let url = format!("http://127.0.0.1:{port}");
        let caps: serde_json::Map<String, serde_json::Value> = serde_json::from_value(serde_json::json!({
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": "/usr/bin/chromium",
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                         "--window-size=1280,900", "--hide-scrollbars"],
            }
        }))
        .expect("capabilities");
        let mut builder =
            ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new());
        builder.capabilities(caps);
        // chromedriver takes a moment to listen, Chromium longer to start.
        let client = crate::eventually(
            Duration::from_secs(60),
            "chromedriver to start a session",
            || {
                let builder = &builder;
                let url = url.clone();
                async move { builder.connect(&url).await.ok() }
            },
        )
        .await;
        Some(Browser {
            client,
            driver,
            _one: one,
        })
    }

    /// The text of the first element matching `css`, once it satisfies `ok` (30 s at most).
    pub async fn wait_text(&self, css: &str, what: &str, ok: impl Fn(&str) -> bool) -> String {
        crate::eventually(Duration::from_secs(30), what, || async {
            let text = self
                .client
                .find(Locator::Css(css))
                .await
                .ok()?
                .text()
                .await
                .ok()?;
            ok(&text).then_some(text)
        })
        .await
    }

    /// How many elements match `css` now.
    pub async fn count(&self, css: &str) -> usize {
        self.client
            .find_all(Locator::Css(css))
            .await
            .map(|v| v.len())
            .unwrap_or(0)
    }

    /// Ends the session and the driver.
    pub async fn close(mut self) {
        let _ = self.client.clone().close().await;
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}
