//! The dashboard on a real proxy: the page and its files are served without a token and name
//! nothing outside the admin listener; without a token the page carries the state it first
//! draws; and in a real headless Chromium (Debian's, driven by `tests/browser/flip.mjs` through
//! playwright-core) a click on Flip and on the in-page confirmation moves `app` from green to
//! blue, a split shows one ACTIVE pool and the shares, and a failing staged colour shows DOWN.
//!
//! The browser test needs `/usr/bin/chromium`, `node` and `npm ci` in `tests/browser`, so it is
//! `#[ignore]`d by a plain `cargo test`; `.ci/run` installs them and runs it with
//! `cargo test -p switchyard-tests --test dashboard -- --ignored`, where a missing tool fails it.

mod common;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request};
use http_body_util::Full;
use switchyard_proxy::{Builder, Listeners, ProxyHandle};
use switchyard_tests::{KeepAliveClient, Resp, TestApp, within};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};

const TOKEN: &str = "dashboard-test-token";

async fn get(addr: SocketAddr, path: &str, token: Option<&str>) -> Resp {
    let mut client = KeepAliveClient::connect(addr).await;
    let mut req = Request::builder()
        .method(Method::GET)
        .uri(path)
        .header(http::header::HOST, "admin");
    if let Some(t) = token {
        req = req.header(http::header::AUTHORIZATION, format!("Bearer {t}"));
    }
    let req = req.body(Full::new(Bytes::new())).expect("request");
    client.request(req).await.expect("admin answers")
}

/// Every `src="…"` and `href="…"` of the page.
fn references(html: &str) -> Vec<String> {
    let mut out = Vec::new();
    for attr in ["src=\"", "href=\""] {
        let mut rest = html;
        while let Some(i) = rest.find(attr) {
            rest = &rest[i + attr.len()..];
            let end = rest.find('"').expect("closed attribute");
            out.push(rest[..end].to_string());
            rest = &rest[end..];
        }
    }
    out
}

async fn start_with_token(green: &TestApp, blue: &TestApp) -> ProxyHandle {
    let config = common::two_colours(&[green.addr()], &[blue.addr()]);
    let listeners = Listeners::loopback()
        .await
        .expect("bind loopback listeners");
    Builder::new(config, listeners)
        .admin_token(TOKEN)
        .start()
        .expect("the proxy starts")
}

#[tokio::test]
async fn the_page_is_served_without_a_token_and_references_nothing_elsewhere() {
    let green = TestApp::start("green").await;
    let blue = TestApp::start("blue").await;
    let proxy = start_with_token(&green, &blue).await;
    let admin = proxy.admin_addr().expect("admin API");

    let page = get(admin, "/", None).await;
    assert_eq!(page.status, 200);
    assert_eq!(
        page.header("content-type"),
        Some("text/html; charset=utf-8")
    );
    let csp = page.header("content-security-policy").expect("a CSP");
    assert!(csp.contains("default-src 'none'"), "{csp}");
    let html = page.text();
    assert!(html.contains("name=\"viewport\""), "readable on a phone");
    let refs = references(&html);
    assert!(refs.len() >= 2, "{refs:?}");
    let mut texts = vec![html.clone()];
    for r in &refs {
        assert!(
            r.starts_with('/') && !r.starts_with("//"),
            "same origin only: {r}"
        );
        let resp = get(admin, r, None).await;
        assert_eq!(resp.status, 200, "{r} needs no token");
        texts.push(resp.text());
    }
    for text in &texts {
        let lower = text.to_ascii_lowercase();
        assert!(!lower.contains("http://"), "no external reference");
        assert!(!lower.contains("https://"), "no external reference");
    }

    // The API needs the token; /healthz and the page do not.
    assert_eq!(get(admin, "/healthz", None).await.status, 200);
    for path in ["/status", "/stats", "/metrics", "/history"] {
        assert_eq!(get(admin, path, None).await.status, 401, "{path}");
        assert_eq!(get(admin, path, Some(TOKEN)).await.status, 200, "{path}");
    }
    proxy.shutdown().await;
}

#[tokio::test]
async fn without_a_token_the_page_carries_its_first_state() {
    let green = TestApp::start("green").await;
    let blue = TestApp::start("blue").await;
    let proxy = common::start(common::two_colours(&[green.addr()], &[blue.addr()])).await;
    let admin = proxy.admin_addr().expect("admin API");
    let html = get(admin, "/", None).await.text();
    let start = html
        .find(r#"<script type="application/json" id="initial-state">"#)
        .expect("the state block");
    let json = &html[start..];
    let json = &json[json.find('>').expect("tag end") + 1..json.find("</script>").expect("end")];
    let state: serde_json::Value = serde_json::from_str(json).expect("valid JSON");
    assert_eq!(state["status"]["services"]["app"]["active"], "green");
    assert!(state["stats"]["series"].is_array(), "{state}");
    assert!(state["history"].is_array(), "{state}");
    proxy.shutdown().await;

    // With a token, the page says nothing the API would not tell without one.
    let proxy = start_with_token(&green, &blue).await;
    let admin = proxy.admin_addr().expect("admin API");
    let html = get(admin, "/", None).await.text();
    assert!(
        !html.contains("initial-state\">"),
        "no state without the token"
    );
    assert!(!html.contains(&green.addr().to_string()));
    proxy.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs /usr/bin/chromium, node and `npm ci` in tests/browser; run with --ignored (.ci/run does)"]
async fn flipping_from_the_dashboard_in_a_real_browser() {
    let browser_dir = switchyard_tests::browser::dir();
    if let Err(why) = switchyard_tests::browser::tools() {
        panic!("the browser test cannot run: {why}");
    }
    let green = TestApp::start("green").await;
    let blue = TestApp::start("blue").await;
    let proxy = start_with_token(&green, &blue).await;
    common::wait_healthy(&proxy, "green").await;
    common::wait_healthy(&proxy, "blue").await;
    let admin = proxy.admin_addr().expect("admin API");

    // Some traffic, so the chart and the counters have something to show. Bounded, and it
    // stops by itself when the test is done.
    let stop = Arc::new(AtomicBool::new(false));
    let traffic = tokio::spawn({
        let stop = stop.clone();
        let http = common::http(&proxy);
        async move {
            let mut client = KeepAliveClient::connect(http).await;
            for i in 0..6000u32 {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                // One in 40 answered 500, so the error share has something to show.
                let path = if i % 40 == 0 { "/status/500" } else { "/" };
                let _ = client.get(path, "app.test").await;
                tokio::time::sleep(Duration::from_millis(15)).await;
            }
        }
    });

    // A second proxy without a token: its page carries its state, drawn before any poll.
    let open = common::start(common::two_colours(&[green.addr()], &[blue.addr()])).await;
    let open_admin = open.admin_addr().expect("admin API");

    let out_dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("dashboard");
    let script = browser_dir.join("flip.mjs");
    let mut child = tokio::process::Command::new("node")
        .arg(&script)
        .arg(format!("http://{admin}"))
        .arg(&out_dir)
        .arg(format!("http://{open_admin}"))
        .env("SWITCHYARD_ADMIN_TOKEN", TOKEN)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("node runs");
    let stdout = child.stdout.take().expect("piped stdout");
    let stderr = child.stderr.take().expect("piped stderr");
    // The script says when it wants green (staged by then) to fail its health checks.
    let green_app = &green;
    let run = async move {
        let mut lines = BufReader::new(stdout).lines();
        let mut out = String::new();
        while let Ok(Some(line)) = lines.next_line().await {
            if line.contains("make green unhealthy") {
                green_app.set_healthy(false);
            }
            out.push_str(&line);
            out.push('\n');
        }
        let mut err = String::new();
        let _ = BufReader::new(stderr).read_to_string(&mut err).await;
        (child.wait().await.expect("node exits"), out, err)
    };
    let (exit, stdout, stderr) = within(Duration::from_secs(180), run)
        .await
        .expect("the browser script finishes within 3 minutes");
    stop.store(true, Ordering::Relaxed);
    let _ = traffic.await;
    assert!(
        exit.success(),
        "the browser script failed:\n{stdout}\n{stderr}"
    );
    assert!(
        !green.is_healthy(),
        "the script asked for green to go down:\n{stdout}"
    );

    assert!(
        stdout.contains("with every API answer still held"),
        "the page drew its first state before any poll:\n{stdout}"
    );
    open.shutdown().await;
    for name in [
        "dashboard-first-paint.png",
        "dashboard-after-flip.png",
        "dashboard-split.png",
        "dashboard-staged-down.png",
    ] {
        let screenshot = out_dir.join(name);
        assert!(
            screenshot.exists(),
            "{} was not written",
            screenshot.display()
        );
        println!("dashboard screenshot: {}", screenshot.display());
    }

    let status = get(admin, "/status", Some(TOKEN)).await.json();
    assert_eq!(status["services"]["app"]["active"], "blue", "{status}");
    let history = get(admin, "/history?limit=3", Some(TOKEN)).await.json();
    let entries = history["entries"].as_array().expect("entries");
    let actions: Vec<_> = entries.iter().map(|e| e["action"].as_str()).collect();
    assert_eq!(
        actions,
        [Some("end_split"), Some("split"), Some("switch")],
        "{history}"
    );
    assert!(
        entries.iter().all(|e| e["actor"] == "dashboard"),
        "{history}"
    );
    assert_eq!(
        entries[1]["weights"],
        serde_json::json!({"blue": 90, "green": 10})
    );
    assert_eq!(
        (entries[2]["from"].as_str(), entries[2]["to"].as_str()),
        (Some("green"), Some("blue"))
    );
    proxy.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs /usr/bin/chromium, node and `npm ci` in tests/browser; run with --ignored (.ci/run does)"]
async fn mirror_and_ramp_from_the_dashboard_in_a_real_browser() {
    if let Err(why) = switchyard_tests::browser::tools() {
        panic!("the browser test cannot run: {why}");
    }
    let green = TestApp::start("green").await;
    let blue = TestApp::start("blue").await;
    let proxy = common::start(common::two_colours(&[green.addr()], &[blue.addr()])).await;
    common::wait_healthy(&proxy, "blue").await;
    let admin = proxy.admin_addr().expect("admin API");
    let out_dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("dashboard");
    let args = [format!("http://{admin}"), out_dir.display().to_string()];
    switchyard_tests::browser::run("rollout.mjs", &args).await;
    // What the clicks did, as the proxy sees it.
    let status = proxy.status();
    let app = &status.services["app"];
    let mirror = app.mirror.clone().expect("the mirror the page set");
    assert_eq!((mirror.to.as_str(), mirror.percent), ("blue", 25));
    let ramp = app.ramp.clone().expect("the ramp the page started");
    assert_eq!((ramp.to.as_str(), ramp.duration_ms), ("blue", 60_000));
    let actors: Vec<_> = proxy.history(2).into_iter().map(|e| e.actor).collect();
    assert_eq!(actors, ["dashboard", "dashboard"]);
    assert!(out_dir.join("dashboard-rollout.png").exists());
    proxy.shutdown().await;
}
