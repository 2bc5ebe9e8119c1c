//! The web dashboard on the coordinator's port: in headless Chromium (a run's state changes on
//! the open page, cancel from the page kills the process, the log tails live, hostile names
//! and logs stay text, login with a token) and at the HTTP level (escaping, 404s, CSRF and
//! origin refusals, authentication).

use std::time::Duration;

use fantoccini::Locator;
use rota_proto as pb;
use rota_proto::access::Credentials;
use rota_tests::browser::Browser;
use rota_tests::procs::alive;
use rota_tests::{eventually, sh, Cluster, Coordinator};

const DEADLINE: Duration = Duration::from_secs(30);
const HOSTILE: &str = "<img src=x onerror=alert(1)>";
/// Markup where a page shows text: the command and the environment (a job name like HOSTILE
/// is refused at submit, see `a_hostile_job_name_is_refused_before_any_page_can_show_it`).
fn hostile_run() -> pb::RunSpec {
    let mut spec = sh("hostile", &format!("{HOSTILE_LOG} # {HOSTILE}"));
    spec.env.insert("LABEL".into(), HOSTILE.into());
    spec
}
/// A log of markup, invalid UTF-8 and colour codes.
const HOSTILE_LOG: &str =
    "printf '<script>window.injected=1</script>\\n\\377\\376 bytes\\n\\033[31mred\\033[0m done\\n'";
const TOKEN: &str = "dashboard-secret-token";

fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("http client")
}

async fn get(url: &str) -> (u16, String) {
    let res = http().get(url).send().await.expect("GET");
    let code = res.status().as_u16();
    (code, res.text().await.expect("body"))
}

async fn submit(c: &mut rota_tests::Client, spec: pb::RunSpec) -> pb::Run {
    c.submit(pb::SubmitRequest {
        jobset: String::new(),
        runs: vec![spec],
        parallel: 0,
    })
    .await
    .expect("submit")
    .into_inner()
    .runs
    .remove(0)
}

async fn state_of(c: &mut rota_tests::Client, run: u64) -> String {
    c.get_run(pb::RunRef {
        run: run.to_string(),
    })
    .await
    .expect("get run")
    .into_inner()
    .state
}

async fn wait_state(c: &mut rota_tests::Client, run: u64, state: &str) {
    eventually(DEADLINE, &format!("run {run} to be {state}"), || {
        let mut c = c.clone();
        async move { (state_of(&mut c, run).await == state).then_some(()) }
    })
    .await;
}

/// The CSRF token a page's forms carry.
fn csrf_of(page: &str) -> String {
    let at = page.find("data-csrf=\"").expect("a csrf token on the page") + 11;
    page[at..].split('"').next().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_show_hostile_names_and_logs_as_escaped_text() {
    let mut cluster = Cluster::start().await;
    cluster.add_agent("a", 1, &[]);
    let mut c = cluster.client().await;
    let run = submit(&mut c, hostile_run()).await;
    wait_state(&mut c, run.number, "success").await;
    let base = cluster.coordinator.url.clone();

    for path in [
        "/".to_string(),
        "/jobsets/default".into(),
        format!("/runs/{}", run.number),
    ] {
        let (code, page) = get(&format!("{base}{path}")).await;
        assert_eq!(code, 200, "{path}: {page}");
        assert!(
            !page.contains("<img src=x"),
            "{path} holds a raw img tag: {page}"
        );
        assert!(
            !page.contains("<script>window"),
            "{path} holds a raw script: {page}"
        );
        assert!(!page.contains('\x1b'), "{path} holds a raw escape: {page}");
    }
    let (_, page) = get(&format!("{base}/runs/{}", run.number)).await;
    assert!(
        page.contains("&lt;img src=x onerror=alert(1)&gt;"),
        "{page}"
    );
    assert!(
        page.contains("&lt;script&gt;window.injected=1&lt;/script&gt;"),
        "{page}"
    );
    assert!(page.contains("\u{fffd}\u{fffd} bytes"), "{page}");
    assert!(
        page.contains("<span class=\"fg1\">red</span> done"),
        "{page}"
    );
    assert!(
        page.contains("This coordinator has no token"),
        "an open coordinator says so"
    );

    // The download is the bytes as written, not the page's rendering.
    let res = http()
        .get(format!(
            "{base}/runs/{}/log?stream=stdout&attempt=1",
            run.number
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 200);
    assert_eq!(res.headers()["content-type"], "application/octet-stream");
    let raw = res.bytes().await.unwrap();
    assert_eq!(
        &raw[..],
        b"<script>window.injected=1</script>\n\xff\xfe bytes\n\x1b[31mred\x1b[0m done\n"
    );
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hostile_job_name_is_refused_before_any_page_can_show_it() {
    let cluster = Cluster::start().await;
    let mut c = cluster.client().await;
    let err = c
        .submit(pb::SubmitRequest {
            jobset: String::new(),
            runs: vec![sh(HOSTILE, "true")],
            parallel: 0,
        })
        .await
        .unwrap_err();
    assert!(err.message().contains("invalid job name"), "{err}");
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_pages_runs_and_bad_queries_answer_one_line_naming_them() {
    let cluster = Cluster::start().await;
    let mut c = cluster.client().await;
    submit(&mut c, sh("one", "true")).await;
    let base = cluster.coordinator.url.clone();
    for (path, code, says) in [
        ("/nothing-here", 404, "not found: /nothing-here"),
        ("/runs/987654", 404, "987654"),
        ("/jobsets/nope", 404, "no jobset \"nope\""),
        ("/runs/1?attempt=7", 404, "no attempt"),
        (
            "/jobsets/default?after=x",
            400,
            "after must be a run number, got \"x\"",
        ),
        ("/jobsets/default?state=bogus", 400, "unknown run state"),
        ("/runs/1/log?stream=both", 400, "one stream"),
        (
            "/runs/1/log?stream=video",
            400,
            "stream must be stdout, stderr or both",
        ),
        ("/assets/other.js", 404, "not found"),
    ] {
        let (got, body) = get(&format!("{base}{path}")).await;
        let body = body.replace("&quot;", "\"");
        assert_eq!(got, code, "{path}: {body}");
        assert!(body.contains(says), "{path}: {body}");
    }
    let (code, _) = get(&format!("{base}/")).await;
    assert_eq!(code, 200, "the coordinator is still serving");
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_post_without_the_csrf_token_or_from_another_origin_changes_nothing() {
    let cluster = Cluster::start().await;
    let mut c = cluster.client().await;
    let run = submit(&mut c, sh("wait", "sleep 1000")).await;
    let base = cluster.coordinator.url.clone();
    let cancel = format!("{base}/actions/cancel");
    let (_, page) = get(&format!("{base}/runs/{}", run.number)).await;
    let csrf = csrf_of(&page);
    let number = run.number.to_string();

    let res = http()
        .post(&cancel)
        .form(&[("run", number.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 403);
    assert!(res.text().await.unwrap().contains("CSRF token"));
    let res = http()
        .post(&cancel)
        .header("origin", "http://evil.example")
        .form(&[("run", number.as_str()), ("csrf", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 403);
    assert!(res.text().await.unwrap().contains("evil.example"));
    assert_eq!(
        state_of(&mut c, run.number).await,
        "pending",
        "nothing changed"
    );

    let res = http()
        .post(&cancel)
        .form(&[
            ("run", number.as_str()),
            ("csrf", csrf.as_str()),
            ("back", "/jobsets/default"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 303);
    assert_eq!(res.headers()["location"], "/jobsets/default");
    assert_eq!(state_of(&mut c, run.number).await, "cancelled");

    // A refusal of the engine is its one-line message, on the page.
    let res = http()
        .post(&cancel)
        .form(&[("run", number.as_str()), ("csrf", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 409);
    let body = res.text().await.unwrap();
    assert!(body.contains("class=\"error\""), "{body}");
    assert!(body.contains("cancelled"), "{body}");
    let res = http()
        .post(format!("{base}/actions/explode"))
        .form(&[("csrf", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 404);
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_a_token_every_page_and_action_needs_a_login() {
    let dir = tempfile::tempdir().unwrap();
    let mut coordinator = Coordinator::start(&dir.path().join("data"), |c| {
        c.credentials = Credentials::shared(TOKEN).unwrap();
    })
    .await;
    let base = coordinator.url.clone();
    for path in [
        "/",
        "/jobs",
        "/jobsets/default",
        "/runs/1",
        "/events",
        "/runs/1/log?stream=stdout",
    ] {
        let res = http().get(format!("{base}{path}")).send().await.unwrap();
        assert_eq!(res.status().as_u16(), 303, "{path}");
        assert!(
            res.headers()["location"]
                .to_str()
                .unwrap()
                .starts_with("/login?next="),
            "{path}"
        );
    }
    let res = http()
        .post(format!("{base}/actions/trigger"))
        .form(&[("job", "x")])
        .send()
        .await
        .unwrap();
    assert_eq!(
        res.status().as_u16(),
        303,
        "an action without a login goes to the login form"
    );

    let res = http()
        .post(format!("{base}/login"))
        .form(&[("token", "wrong")])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 401);
    assert!(res.text().await.unwrap().contains("wrong token"));

    let res = http()
        .post(format!("{base}/login"))
        .form(&[("token", TOKEN), ("next", "/jobs")])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 303);
    assert_eq!(res.headers()["location"], "/jobs");
    let cookie = res.headers()["set-cookie"].to_str().unwrap().to_string();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    assert!(
        !cookie.contains(TOKEN),
        "the cookie is not the token: {cookie}"
    );
    let session = cookie.split(';').next().unwrap().to_string();

    let page = http()
        .get(format!("{base}/"))
        .header("cookie", &session)
        .send()
        .await
        .unwrap();
    assert_eq!(page.status().as_u16(), 200);
    let page = page.text().await.unwrap();
    assert!(!page.contains("This coordinator has no token"));
    assert!(page.contains("Log out"));
    let csrf = csrf_of(&page);
    // Logged in, an action still needs the session's CSRF token.
    let res = http()
        .post(format!("{base}/actions/parallel"))
        .header("cookie", &session)
        .form(&[("jobset", "default"), ("parallel", "2")])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 403);
    // A bearer token works without a session (scripts), as it does over gRPC.
    let res = http()
        .get(format!("{base}/jobs"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 200);
    let res = http()
        .get(format!("{base}/jobs"))
        .bearer_auth("nope")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 401);

    let res = http()
        .post(format!("{base}/logout"))
        .header("cookie", &session)
        .form(&[("csrf", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 303);
    let res = http()
        .get(format!("{base}/"))
        .header("cookie", &session)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 303, "the session ended at logout");
    coordinator.stop().await;
}

/// One browser for every step: Chromium is slow to start.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn dashboard_in_a_browser() {
    let Some(browser) = Browser::start().await else {
        return;
    };
    let mut cluster = Cluster::start().await;
    let mut c = cluster.client().await;
    let base = cluster.coordinator.url.clone();
    let dir = cluster.dir.path().to_path_buf();
    let b = &browser.client;

    // pending → running → success, on a page that is never reloaded.
    let go = dir.join("go");
    let run = submit(
        &mut c,
        sh(
            "gated",
            &format!("while [ ! -e {} ]; do sleep 0.05; done", go.display()),
        ),
    )
    .await;
    b.goto(&format!("{base}/jobsets/default")).await.unwrap();
    b.execute("window.notReloaded = true; return null;", vec![])
        .await
        .unwrap();
    let cell = format!("tr[data-run=\"{}\"] [data-f=state]", run.number);
    browser
        .wait_text(&cell, "pending on the page", |t| t == "pending")
        .await;
    cluster.add_agent("a", 2, &[]);
    browser
        .wait_text(&cell, "running on the page", |t| t == "running")
        .await;
    std::fs::write(&go, b"").unwrap();
    browser
        .wait_text(&cell, "success on the page", |t| t == "success")
        .await;
    let same = b
        .execute("return window.notReloaded === true;", vec![])
        .await
        .unwrap();
    assert_eq!(
        same,
        serde_json::Value::Bool(true),
        "the page was not reloaded"
    );

    // A live tail shows lines as they are printed.
    let step = |i: u32| dir.join(format!("step-{i}"));
    let script = format!(
        "echo line-1; while [ ! -e {s2} ]; do sleep 0.05; done; echo line-2; \
         while [ ! -e {s3} ]; do sleep 0.05; done; echo line-3 >&2; echo line-4",
        s2 = step(2).display(),
        s3 = step(3).display()
    );
    let run = submit(&mut c, sh("talker", &script)).await;
    wait_state(&mut c, run.number, "running").await;
    b.goto(&format!("{base}/runs/{}", run.number))
        .await
        .unwrap();
    browser
        .wait_text("#log-stdout", "line-1 in the tail", |t| {
            t.contains("line-1")
        })
        .await;
    std::fs::write(step(2), b"").unwrap();
    browser
        .wait_text("#log-stdout", "line-2 in the tail", |t| {
            t.contains("line-2")
        })
        .await;
    std::fs::write(step(3), b"").unwrap();
    browser
        .wait_text("#log-stderr", "line-3 in stderr", |t| t.contains("line-3"))
        .await;
    browser
        .wait_text("#log-stdout", "line-4 in stdout", |t| t.contains("line-4"))
        .await;
    let stdout = browser.wait_text("#log-stdout", "stdout", |_| true).await;
    assert_eq!(
        stdout.matches("line-2").count(),
        1,
        "each line once: {stdout}"
    );

    // Cancel from the page kills the process.
    let pid_file = dir.join("pid");
    let run = submit(
        &mut c,
        sh(
            "victim",
            &format!("echo $$ > {}; exec sleep 1000", pid_file.display()),
        ),
    )
    .await;
    let pid: i32 = eventually(DEADLINE, "the victim's pid", || async {
        std::fs::read_to_string(&pid_file).ok()?.trim().parse().ok()
    })
    .await;
    wait_state(&mut c, run.number, "running").await;
    b.goto(&format!("{base}/runs/{}", run.number))
        .await
        .unwrap();
    b.find(Locator::Css("button[data-action=cancel]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    browser
        .wait_text("h1 [data-f=state]", "cancelled on the page", |t| {
            t == "cancelled"
        })
        .await;
    eventually(DEADLINE, "the cancelled process to be gone", || async {
        (!alive(pid)).then_some(())
    })
    .await;
    assert_eq!(state_of(&mut c, run.number).await, "cancelled");

    // A hostile name and log render as text: nothing injected, the text visible.
    let run = submit(&mut c, hostile_run()).await;
    wait_state(&mut c, run.number, "success").await;
    for path in [
        format!("/runs/{}", run.number),
        "/jobsets/default".into(),
        "/".into(),
    ] {
        b.goto(&format!("{base}{path}")).await.unwrap();
        b.find(Locator::Css("main")).await.unwrap();
        assert_eq!(browser.count("img").await, 0, "no img element on {path}");
        assert_eq!(
            browser.count("main script").await,
            0,
            "no script element on {path}"
        );
        let injected = b
            .execute("return window.injected === undefined;", vec![])
            .await
            .unwrap();
        assert_eq!(
            injected,
            serde_json::Value::Bool(true),
            "no script ran on {path}"
        );
    }
    b.goto(&format!("{base}/runs/{}", run.number))
        .await
        .unwrap();
    browser
        .wait_text("table.fields code", "the command as text", |t| {
            t.contains(HOSTILE)
        })
        .await;
    browser
        .wait_text("table.env", "the environment as text", |t| {
            t.contains(HOSTILE)
        })
        .await;
    let log = browser
        .wait_text("#log-stdout", "the log as text", |t| t.contains("<script>"))
        .await;
    assert!(
        log.contains("\u{fffd}\u{fffd} bytes") && log.contains("red done"),
        "{log}"
    );

    // The overview, for the README: a busy jobset beside the finished one.
    let gate = dir.join("gate");
    let busy: Vec<pb::RunSpec> = (1..=6)
        .map(|i| {
            sh(
                &format!("build-{i}"),
                &format!("while [ ! -e {} ]; do sleep 0.05; done", gate.display()),
            )
        })
        .collect();
    c.submit(pb::SubmitRequest {
        jobset: "nightly".into(),
        runs: busy,
        parallel: 2,
    })
    .await
    .unwrap();
    b.goto(&format!("{base}/")).await.unwrap();
    browser
        .wait_text("#agents", "two runs on the agent", |t| t.contains("2 / 2"))
        .await;
    browser
        .wait_text("#jobsets", "the busy jobset on the overview", |t| {
            t.contains("running 2")
        })
        .await;
    if std::env::var_os("ROTA_SCREENSHOT").is_some_and(|v| v == "1") {
        let png = b.screenshot().await.unwrap();
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/dashboard.png");
        std::fs::write(&path, png).unwrap();
        eprintln!("wrote {}", path.display());
    }
    std::fs::write(&gate, b"").unwrap();
    rota_tests::wait_jobset(&mut c, "nightly", DEADLINE).await;
    cluster.stop().await;

    // With a token, the browser must log in; a wrong token is refused.
    let dir = tempfile::tempdir().unwrap();
    let mut secure = Coordinator::start(&dir.path().join("data"), |c| {
        c.credentials = Credentials::shared(TOKEN).unwrap();
    })
    .await;
    b.goto(&format!("{}/jobs", secure.url)).await.unwrap();
    let login = |token: &'static str| async move {
        let field = b.find(Locator::Css("input[name=token]")).await.unwrap();
        field.send_keys(token).await.unwrap();
        b.find(Locator::Css("form.login button"))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
    };
    login("not-the-token").await;
    browser
        .wait_text("p.error", "the refusal", |t| t.contains("wrong token"))
        .await;
    login(TOKEN).await;
    browser
        .wait_text("h1", "the jobs page after login", |t| t == "Jobs")
        .await;
    assert!(b.current_url().await.unwrap().path().ends_with("/jobs"));
    secure.stop().await;
    browser.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_runs_page_says_who_submitted_and_who_cancelled_it() {
    let cluster = Cluster::start().await;
    let mut c = cluster.client().await;
    // No agent: the run stays pending until it is cancelled.
    let run = submit(&mut c, sh("waits", "sleep 600")).await;
    c.cancel(pb::RunRef {
        run: run.number.to_string(),
    })
    .await
    .unwrap();
    let base = cluster.coordinator.url.clone();
    let (code, page) = get(&format!("{base}/runs/{}", run.number)).await;
    assert_eq!(code, 200, "{page}");
    let history = &page[page.find("id=\"history\"").expect("a history section")..];
    let submitted = history
        .find("submitted by <b>anonymous</b>")
        .expect(history);
    let cancelled = history
        .find("cancelled by <b>anonymous</b>")
        .expect(history);
    assert!(submitted < cancelled, "oldest first: {history}");
    cluster.stop().await;
}

/// An action from the page is audited like the CLI's call: with the browser's address as its
/// peer (copied from the HTTP connection), not an empty one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_action_from_the_page_is_audited_with_the_browsers_address() {
    let cluster = Cluster::start().await;
    let mut c = cluster.client().await;
    let base = cluster.coordinator.url.clone();
    let (_, page) = get(&format!("{base}/")).await;
    let csrf = csrf_of(&page);
    let res = http()
        .post(format!("{base}/actions/group-max"))
        .form(&[("group", "db"), ("max", "3"), ("csrf", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 303, "{}", res.text().await.unwrap());
    let entries = c
        .list_audit(pb::ListAuditRequest::default())
        .await
        .unwrap()
        .into_inner()
        .entries;
    assert_eq!(entries.len(), 1, "{entries:?}");
    assert_eq!(entries[0].method, "SetGroupMax");
    assert_eq!(entries[0].target, "group db max 3");
    assert!(
        entries[0].peer.starts_with("127.0.0.1:"),
        "the peer is the browser's: {:?}",
        entries[0]
    );
    cluster.stop().await;
}

/// Clicks `button` (CSS) on the page at `path`, after typing `value` into `input` when given.
async fn click_on(
    browser: &Browser,
    base: &str,
    path: &str,
    input: Option<(&str, &str)>,
    button: &str,
) {
    let b = &browser.client;
    b.goto(&format!("{base}{path}")).await.unwrap();
    if let Some((css, value)) = input {
        let field = b.find(Locator::Css(css)).await.unwrap();
        field.clear().await.unwrap();
        field.send_keys(value).await.unwrap();
    }
    b.execute("window.beforeAction = true; return null;", vec![])
        .await
        .unwrap();
    b.find(Locator::Css(button))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    // The action answers with a redirect back to the page: wait until a new page (one
    // without the mark) has loaded, not just for the old one still showing or none yet.
    eventually(DEADLINE, "the page after the action", || async {
        let fresh = b
            .execute(
                "return window.beforeAction === undefined && document.readyState === 'complete' \
                 && document.querySelector('main') !== null;",
                vec![],
            )
            .await
            .ok()?;
        (fresh == serde_json::Value::Bool(true)).then_some(())
    })
    .await;
}

/// Every button the pages offer besides cancel (see `dashboard_in_a_browser`), clicked in
/// Chromium: trigger, retry, retire, jobset parallel, group max and drain, each checked
/// through the API.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_action_from_the_pages_changes_what_the_api_shows() {
    let Some(browser) = Browser::start().await else {
        return;
    };
    let mut cluster = Cluster::start().await;
    let mut c = cluster.client().await;
    let base = cluster.coordinator.url.clone();
    c.apply(pb::ApplyRequest {
        path: "jobs.yaml".into(),
        content: "jobs:\n  nightly:\n    command: [echo, nightly]\n".into(),
        ..Default::default()
    })
    .await
    .expect("apply");
    cluster.add_agent("a", 1, &["db"]);
    cluster.wait_agents(1).await;

    // Trigger, from the jobs page: a run of the job, which succeeds.
    click_on(
        &browser,
        &base,
        "/jobs",
        None,
        "button[data-action=trigger]",
    )
    .await;
    let triggered =
        rota_tests::eventually_run(&c, DEADLINE, "the triggered run", |r| r.name == "nightly")
            .await;
    wait_state(&mut c, triggered.number, "success").await;

    // Retry, then retire, from the run's page.
    let failing = submit(&mut c, sh("fails", "exit 3")).await;
    wait_state(&mut c, failing.number, "errored").await;
    let page = format!("/runs/{}", failing.number);
    click_on(&browser, &base, &page, None, "button[data-action=retry]").await;
    eventually(DEADLINE, "the retried run's second attempt to fail", || {
        let mut c = c.clone();
        async move {
            let run = c
                .get_run(pb::RunRef {
                    run: failing.number.to_string(),
                })
                .await
                .ok()?
                .into_inner();
            (run.attempt == 2 && run.state == "errored").then_some(())
        }
    })
    .await;
    click_on(&browser, &base, &page, None, "button[data-action=retire]").await;
    wait_state(&mut c, failing.number, "retired").await;

    // A jobset's parallel, from its page.
    c.submit(pb::SubmitRequest {
        jobset: "batch".into(),
        runs: vec![sh("one", "true")],
        parallel: 1,
    })
    .await
    .unwrap();
    click_on(
        &browser,
        &base,
        "/jobsets/batch",
        Some(("input[name=parallel]", "4")),
        "button[data-action=parallel]",
    )
    .await;
    let jobset = c
        .get_jobset(pb::GetJobsetRequest {
            name: "batch".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(jobset.parallel, 4, "{jobset:?}");

    // A group's max and an agent's drain, from the overview.
    let db_form = "form[action=\"/actions/group-max\"]:has(input[name=group][value=db])";
    click_on(
        &browser,
        &base,
        "/",
        Some((&format!("{db_form} input[name=max]"), "3")),
        &format!("{db_form} button"),
    )
    .await;
    let groups = c
        .list_groups(pb::ListGroupsRequest {})
        .await
        .unwrap()
        .into_inner()
        .groups;
    let db = groups.iter().find(|g| g.name == "db").expect("group db");
    assert_eq!((db.max, db.defined), (3, true), "{groups:?}");
    click_on(&browser, &base, "/", None, "button[data-action=drain]").await;
    // Idle, it drains at once: draining, then gone (the agent exits).
    eventually(DEADLINE, "agent a to drain", || {
        let mut c = c.clone();
        async move {
            let agents = c.list_agents(pb::ListAgentsRequest {}).await.ok()?;
            (!agents
                .into_inner()
                .agents
                .iter()
                .any(|a| a.name == "a" && a.state == "connected"))
            .then_some(())
        }
    })
    .await;

    // Each was audited as the page's caller did it.
    let methods: Vec<String> = c
        .list_audit(pb::ListAuditRequest::default())
        .await
        .unwrap()
        .into_inner()
        .entries
        .into_iter()
        .rev()
        .map(|e| e.method)
        .filter(|m| m != "Submit")
        .collect();
    assert_eq!(
        methods,
        [
            "Apply",
            "Trigger",
            "Retry",
            "Retire",
            "SetParallel",
            "SetGroupMax",
            "Drain"
        ],
    );
    cluster.stop().await;
    browser.close().await;
}

/// The `<pre>` of one stream on a run page: its rendered text.
fn pane<'a>(page: &'a str, stream: &str) -> Option<&'a str> {
    let at = page.find(&format!("id=\"log-{stream}\""))?;
    let start = at + page[at..].find('>')? + 1;
    Some(&page[start..start + page[start..].find("</pre>")?])
}

/// The run page shows the log of any attempt, stdout and stderr side by side or either alone,
/// each with only its own stream's and attempt's bytes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_page_shows_each_attempts_streams_apart() {
    let mut cluster = Cluster::start().await;
    cluster.add_agent("a", 1, &[]);
    let mut c = cluster.client().await;
    let mark = cluster.dir.path().join("tried");
    let mut spec = sh(
        "twice",
        &format!(
            "if [ -e {m} ]; then echo second-out; echo second-err >&2; \
             else touch {m}; echo first-out; echo first-err >&2; exit 1; fi",
            m = mark.display()
        ),
    );
    spec.retries = 1;
    let run = submit(&mut c, spec).await;
    wait_state(&mut c, run.number, "success").await;
    let base = format!("{}/runs/{}", cluster.coordinator.url, run.number);
    let page_of = |query: &str| {
        let url = format!("{base}{query}");
        async move {
            let (code, page) = get(&url).await;
            assert_eq!(code, 200, "{url}: {page}");
            page
        }
    };

    // Side by side (the default): the latest attempt's two streams, each in its pane.
    let latest = page_of("").await;
    assert_eq!(pane(&latest, "stdout"), Some("second-out\n"), "{latest}");
    assert_eq!(pane(&latest, "stderr"), Some("second-err\n"), "{latest}");
    let first = page_of("?attempt=1&stream=both").await;
    assert_eq!(pane(&first, "stdout"), Some("first-out\n"), "{first}");
    assert_eq!(pane(&first, "stderr"), Some("first-err\n"), "{first}");
    // One stream alone.
    let only = page_of("?attempt=1&stream=stderr").await;
    assert_eq!(pane(&only, "stderr"), Some("first-err\n"), "{only}");
    assert_eq!(pane(&only, "stdout"), None, "{only}");
    let only = page_of("?attempt=2&stream=stdout").await;
    assert_eq!(pane(&only, "stdout"), Some("second-out\n"), "{only}");
    assert_eq!(pane(&only, "stderr"), None, "{only}");
    // An attempt the run never had is one line naming it.
    let (code, page) = get(&format!("{base}?attempt=3")).await;
    assert_eq!(code, 404, "{page}");
    assert!(page.contains("has no attempt &quot;3&quot;"), "{page}");
    cluster.stop().await;
}

/// Pages left behind keep no streams: Chromium keeps them in its back/forward cache, and it
/// allows six connections to one host, so cached pages holding their event streams (and a run
/// page its log tail) stalled the next page for a minute. Each page now closes its streams on
/// `pagehide` and reopens them on `pageshow` — shown here by going back to a cached page whose
/// run changed meanwhile: its heading catches up.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn pages_left_behind_hold_no_connections_and_catch_up_when_shown_again() {
    let Some(browser) = Browser::start().await else {
        return;
    };
    let mut cluster = Cluster::start().await;
    let mut c = cluster.client().await;
    cluster.add_agent("a", 1, &[]);
    let base = cluster.coordinator.url.clone();
    let gate = cluster.dir.path().join("gate");
    let run = submit(
        &mut c,
        sh(
            "held",
            &format!(
                "echo up; while [ ! -e {} ]; do sleep 0.05; done",
                gate.display()
            ),
        ),
    )
    .await;
    wait_state(&mut c, run.number, "running").await;
    let b = &browser.client;
    let pages = [format!("/runs/{}", run.number), "/jobsets/default".into()];
    for i in 0..12 {
        let path = &pages[i % 2];
        let started = std::time::Instant::now();
        b.goto(&format!("{base}{path}")).await.unwrap();
        b.find(Locator::Css("main")).await.unwrap();
        // A stall is the browser waiting for a free connection, about 60 s; a page here
        // loads in well under a second.
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "page {i} ({path}) took {:?} to load",
            started.elapsed()
        );
    }
    // On the jobset page now; back to the run page (from the cache where the browser keeps
    // it), then the run ends: the page shown again is live.
    b.back().await.unwrap();
    browser
        .wait_text("h1 [data-f=state]", "the run page back", |t| t == "running")
        .await;
    std::fs::write(&gate, b"").unwrap();
    wait_state(&mut c, run.number, "success").await;
    browser
        .wait_text(
            "h1 [data-f=state]",
            "success on the page shown again",
            |t| t == "success",
        )
        .await;
    cluster.stop().await;
    browser.close().await;
}
