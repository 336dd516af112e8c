//! The switch history on a real proxy: every switch, rollback, split, reload and forced switch
//! is recorded with its actor, `GET /history` answers newest first, and with a state file the
//! history survives a restart (trimmed to `[admin] history` entries).

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request};
use http_body_util::Full;
use serde_json::Value;
use switchyard_proxy::ProxyHandle;
use switchyard_tests::{KeepAliveClient, Resp, TestApp, poll_until};

/// One request to the admin API, with `X-Switchyard-Actor: actor` when given.
async fn admin(
    proxy: &ProxyHandle,
    method: Method,
    path: &str,
    actor: Option<&str>,
    body: &str,
) -> Resp {
    let addr: SocketAddr = proxy.admin_addr().expect("admin API");
    let mut client = KeepAliveClient::connect(addr).await;
    let mut req = Request::builder()
        .method(method)
        .uri(path)
        .header(http::header::HOST, "admin");
    if let Some(actor) = actor {
        req = req.header("x-switchyard-actor", actor);
    }
    let req = req
        .body(Full::new(Bytes::from(body.to_string())))
        .expect("request");
    client.request(req).await.expect("admin answers")
}

/// `GET /history?limit=N` (or without a limit): the entries, newest first.
async fn history(proxy: &ProxyHandle, limit: Option<usize>) -> Vec<Value> {
    let path = match limit {
        Some(n) => format!("/history?limit={n}"),
        None => "/history".to_string(),
    };
    let resp = admin(proxy, Method::GET, &path, None, "").await;
    assert_eq!(resp.status, 200, "{}", resp.text());
    resp.json()["entries"]
        .as_array()
        .cloned()
        .expect("entries is an array")
}

/// Checks `2025-01-31T23:59:59.123Z`.
fn is_rfc3339_utc(t: &str) -> bool {
    let b = t.as_bytes();
    b.len() == 24
        && t.ends_with('Z')
        && [4, 7].iter().all(|i| b[*i] == b'-')
        && b[10] == b'T'
        && [13, 16].iter().all(|i| b[*i] == b':')
        && b[19] == b'.'
        && b.iter()
            .enumerate()
            .filter(|(i, _)| ![4, 7, 10, 13, 16, 19, 23].contains(i))
            .all(|(_, c)| c.is_ascii_digit())
}

fn field<'a>(e: &'a Value, name: &str) -> &'a str {
    e[name].as_str().unwrap_or("<none>")
}

#[tokio::test]
async fn every_decision_is_recorded_with_its_actor() {
    let green = TestApp::start("green").await;
    let blue = TestApp::start("blue").await;
    let config = common::two_colours(&[green.addr()], &[blue.addr()]);
    let proxy = common::start(config.clone()).await;
    common::wait_healthy(&proxy, "green").await;
    common::wait_healthy(&proxy, "blue").await;
    assert!(history(&proxy, None).await.is_empty());

    let ok = |r: &Resp| assert_eq!(r.status, 200, "{}", r.text());
    ok(&admin(
        &proxy,
        Method::POST,
        "/switch",
        Some("cli"),
        r#"{"to":"blue"}"#,
    )
    .await);
    // A switch to the colour already live changes nothing and is not recorded.
    ok(&admin(
        &proxy,
        Method::POST,
        "/switch",
        Some("cli"),
        r#"{"to":"blue"}"#,
    )
    .await);
    ok(&admin(&proxy, Method::POST, "/rollback", None, "").await);
    ok(&admin(
        &proxy,
        Method::PUT,
        "/services/app/split",
        Some("deploy bot\t<script>"),
        r#"{"green":90,"blue":10}"#,
    )
    .await);
    ok(&admin(&proxy, Method::DELETE, "/split", Some("dashboard"), "").await);

    // The health gate: refused without force (recorded as refused), applied with it.
    blue.set_healthy(false);
    poll_until(Duration::from_secs(10), || async {
        !proxy.status().services["app"].pools["blue"].servers[0].healthy
    })
    .await;
    let refused = admin(
        &proxy,
        Method::POST,
        "/switch",
        Some("cli"),
        r#"{"to":"blue"}"#,
    )
    .await;
    assert_eq!(refused.status, 409);
    ok(&admin(
        &proxy,
        Method::POST,
        "/switch",
        Some(&"x".repeat(100)),
        r#"{"to":"blue","force":true}"#,
    )
    .await);
    // Unknown names change nothing and are not recorded.
    let unknown = admin(&proxy, Method::POST, "/switch", None, r#"{"to":"mauve"}"#).await;
    assert_eq!(unknown.status, 404);

    // Reloads: in code (embedded), rejected, and through the admin API with no file to read.
    proxy
        .reload_as("ops", config.clone())
        .await
        .expect("a valid reload");
    let mut invalid = config.clone();
    if let Some(svc) = invalid.services.get_mut("app") {
        svc.active = "purple".into();
    }
    assert!(proxy.reload(invalid).await.is_err());
    let no_file = admin(&proxy, Method::POST, "/reload", Some("cli"), "").await;
    assert_eq!(no_file.status, 400);
    // In-process calls are `embedded` unless they name someone.
    blue.set_healthy(true);
    proxy.rollback(None, true).await.expect("rollback");

    let entries = history(&proxy, None).await;
    let summary: Vec<String> = entries
        .iter()
        .map(|e| {
            format!(
                "{} {} {}->{} forced={} ok={} by {}",
                field(e, "action"),
                field(e, "service"),
                field(e, "from"),
                field(e, "to"),
                e["forced"],
                e["ok"],
                field(e, "actor"),
            )
        })
        .collect();
    let long_actor = "x".repeat(64);
    let expected = vec![
        "rollback app blue->green forced=true ok=true by embedded".to_string(),
        "reload <none> <none>-><none> forced=false ok=false by cli".to_string(),
        "reload <none> <none>-><none> forced=false ok=false by embedded".to_string(),
        "reload <none> <none>-><none> forced=false ok=true by ops".to_string(),
        format!("switch app green->blue forced=true ok=true by {long_actor}"),
        "switch app green->blue forced=false ok=false by cli".to_string(),
        "end_split app green->green forced=false ok=true by dashboard".to_string(),
        "split app green->green forced=false ok=true by deploy bot__script_".to_string(),
        "rollback app blue->green forced=false ok=true by admin-api".to_string(),
        "switch app green->blue forced=false ok=true by cli".to_string(),
    ];
    assert_eq!(summary, expected);

    // Every entry has a time, a generation, and the details of its kind.
    let mut last_generation = u64::MAX;
    for e in &entries {
        assert!(is_rfc3339_utc(field(e, "time")), "{e}");
        let g = e["generation"].as_u64().expect("generation");
        assert!(g <= last_generation, "newest first: {summary:?}");
        last_generation = g;
    }
    let split = &entries[7];
    assert_eq!(split["weights"]["green"], 90);
    assert_eq!(split["weights"]["blue"], 10);
    let refused = &entries[5];
    assert!(
        field(refused, "error").contains("no healthy server"),
        "{refused}"
    );
    let rejected = &entries[2];
    assert!(
        field(rejected, "error").contains("invalid config"),
        "{rejected}"
    );

    // limit: the newest N; a bad limit is a 400.
    let two = history(&proxy, Some(2)).await;
    assert_eq!(two, entries[..2].to_vec());
    let bad = admin(&proxy, Method::GET, "/history?limit=lots", None, "").await;
    assert_eq!(bad.status, 400);
    assert_eq!(
        proxy.history(3),
        serde_json::from_value::<Vec<_>>(Value::Array(entries[..3].to_vec())).expect("entries")
    );
    proxy.shutdown().await;
}

#[tokio::test]
async fn a_reload_that_changes_the_colour_is_recorded_per_service() {
    let green = TestApp::start("green").await;
    let blue = TestApp::start("blue").await;
    let config = common::two_colours(&[green.addr()], &[blue.addr()]);
    let proxy = common::start(config.clone()).await;
    let mut edited = config.clone();
    if let Some(svc) = edited.services.get_mut("app") {
        svc.active = "blue".into();
    }
    let generation = proxy.reload_as("ops", edited).await.expect("reload");
    let entries = history(&proxy, None).await;
    assert_eq!(entries.len(), 2, "{entries:?}");
    let change = &entries[0];
    assert_eq!(field(change, "action"), "reload");
    assert_eq!(field(change, "service"), "app");
    assert_eq!(
        (field(change, "from"), field(change, "to")),
        ("green", "blue")
    );
    assert_eq!(change["generation"], generation);
    assert_eq!(field(&entries[1], "action"), "reload");
    assert!(entries[1]["service"].is_null());
    proxy.shutdown().await;
}

#[tokio::test]
async fn the_history_survives_a_restart_with_a_state_file() {
    let green = TestApp::start("green").await;
    let blue = TestApp::start("blue").await;
    let dir = tempfile::tempdir().expect("tempdir");
    let state = dir.path().join("state.json");
    let mut config = common::two_colours(&[green.addr()], &[blue.addr()]);
    config.state.file = Some(state.clone());
    config.admin.history = 3;

    let proxy = common::start(config.clone()).await;
    common::wait_healthy(&proxy, "green").await;
    common::wait_healthy(&proxy, "blue").await;
    for (i, to) in ["blue", "green", "blue", "green", "blue"]
        .iter()
        .enumerate()
    {
        let actor = format!("cli-{i}");
        let body = format!(r#"{{"to":"{to}"}}"#);
        let resp = admin(&proxy, Method::POST, "/switch", Some(&actor), &body).await;
        assert_eq!(resp.status, 200, "{}", resp.text());
    }
    let before = history(&proxy, None).await;
    assert_eq!(before.len(), 3, "kept to [admin] history");
    assert_eq!(field(&before[0], "actor"), "cli-4");
    proxy.shutdown().await;

    let file = dir.path().join("state.json.history.jsonl");
    let lines = std::fs::read_to_string(&file).expect("the history file");
    assert_eq!(lines.lines().count(), 5, "appended, one line per entry");

    let restarted = common::start(config).await;
    assert_eq!(
        restarted.status().services["app"].active,
        "blue",
        "state restored"
    );
    let after = history(&restarted, None).await;
    assert_eq!(after, before, "the same entries after a restart");
    let lines = std::fs::read_to_string(&file).expect("the history file");
    assert_eq!(lines.lines().count(), 3, "trimmed at start");
    restarted.shutdown().await;
}
