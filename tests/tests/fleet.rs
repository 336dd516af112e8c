//! Fleet mode against a real etcd (Debian's `etcd-server`): three instances share one decision.
//!
//! These tests need the `etcd` binary: they are ignored by a plain `cargo test`, and `.ci/run`
//! installs etcd and runs them with `--ignored`.

mod common;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use switchyard_config::FleetConfig;
use switchyard_proxy::fleet::Fleet;
use switchyard_proxy::{Builder, ControlError, Listeners, ProxyHandle};
use switchyard_tests::etcd::Etcd;
use switchyard_tests::{KeepAliveClient, TestApp, poll_until};

const NEEDS_ETCD: &str = "needs etcd";

/// Starts one instance of the fleet under `prefix`, named `node`.
async fn instance(
    etcd: &Etcd,
    prefix: &str,
    node: &str,
    apps: (SocketAddr, SocketAddr),
    state: Option<PathBuf>,
) -> ProxyHandle {
    let mut config = common::two_colours(&[apps.0], &[apps.1]);
    let mut fleet = FleetConfig::new(vec![etcd.url()], prefix);
    fleet.node = Some(node.to_string());
    config.fleet = Some(fleet.clone());
    config.state.file = state;
    let listeners = Listeners::loopback().await.expect("loopback listeners");
    Builder::new(config, listeners)
        .fleet(Fleet::connect(&fleet).await)
        .start()
        .expect("the instance starts")
}

fn active(proxy: &ProxyHandle) -> String {
    proxy.status().services["app"].active.clone()
}

/// Waits until every instance has `colour` active and no split, and serves it.
async fn all_on(proxies: &[&ProxyHandle], colour: &str) {
    poll_until(Duration::from_secs(10), || async {
        proxies.iter().all(|p| {
            let s = p.status();
            s.services["app"].active == colour && s.services["app"].split.is_none()
        })
    })
    .await;
    for p in proxies {
        let mut client = KeepAliveClient::connect(common::http(p)).await;
        let answer = client.get("/", "app.test").await.expect("an answer");
        assert_eq!(answer.colour(), Some(colour));
    }
}

/// Waits until `proxy` sees `n` live nodes that have all applied `revision`.
async fn converged(proxy: &ProxyHandle, n: usize, revision: i64) {
    poll_until(Duration::from_secs(10), || async {
        let status = proxy.status();
        let fleet = status.fleet.expect("fleet mode");
        let live = fleet.nodes.iter().filter(|n| n.alive).collect::<Vec<_>>();
        live.len() == n && live.iter().all(|n| n.applied_revision >= revision)
    })
    .await;
}

/// An admin call with a JSON body: the status and the answer as JSON.
async fn admin_call(
    proxy: &ProxyHandle,
    method: &str,
    path: &str,
    body: &str,
) -> (u16, serde_json::Value) {
    let admin = proxy.admin_addr().expect("admin listener");
    let mut client = KeepAliveClient::connect(admin).await;
    let req = http::Request::builder()
        .method(method)
        .uri(path)
        .header("host", "localhost")
        .header("content-type", "application/json")
        .body(http_body_util::Full::new(bytes::Bytes::from(
            body.to_string(),
        )))
        .expect("a request");
    let resp = client.request(req).await.expect("the admin API answers");
    (resp.status.as_u16(), resp.json())
}

/// The value of an unlabelled gauge in an exposition.
fn gauge(exposition: &str, name: &str) -> Option<i64> {
    exposition
        .lines()
        .filter(|l| !l.starts_with('#'))
        .find(|l| l.split([' ', '{']).next() == Some(name))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

/// The fleet tests are `#[ignore]`d: run with `--ignored`, they need etcd and fail without it
/// (never an "ok" that did not run).
fn require_etcd() {
    assert!(
        switchyard_tests::etcd::available(),
        "{NEEDS_ETCD}: install Debian's etcd-server (.ci/run does) or set ETCD_BIN"
    );
}

/// A real etcd, two apps (green, blue) and three instances `a`, `b`, `c` under `prefix`, every
/// one seeing blue healthy; `c` mirrors its decisions to `state` when given.
struct Three {
    etcd: Etcd,
    green: TestApp,
    blue: TestApp,
    a: ProxyHandle,
    b: ProxyHandle,
    c: ProxyHandle,
}

async fn three(prefix: &str, state: Option<PathBuf>) -> Three {
    require_etcd();
    let etcd = Etcd::start().await;
    let green = TestApp::start("green").await;
    let blue = TestApp::start("blue").await;
    let apps = (green.addr(), blue.addr());
    let a = instance(&etcd, prefix, "a", apps, None).await;
    let b = instance(&etcd, prefix, "b", apps, None).await;
    let c = instance(&etcd, prefix, "c", apps, state).await;
    for p in [&a, &b, &c] {
        common::wait_healthy(p, "blue").await;
    }
    Three {
        etcd,
        green,
        blue,
        a,
        b,
        c,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs etcd (Debian's etcd-server; .ci/run installs it and runs this)"]
async fn a_flip_through_one_instance_reaches_every_instance() {
    let Three {
        etcd,
        green,
        blue,
        a,
        b,
        c,
    } = three("/test/one", None).await;
    // The first instance seeded the empty prefix with the config's colour.
    all_on(&[&a, &b, &c], "green").await;
    converged(&a, 3, 0).await;

    let out = a
        .switch(None, "blue", false)
        .await
        .expect("switch through a");
    let revision = out.revision.expect("a fleet switch has a revision");
    all_on(&[&a, &b, &c], "blue").await;
    converged(&a, 3, revision).await;
    converged(&c, 3, revision).await;

    // b's history names the node that made the flip; a's names itself.
    let seen = b.history(10);
    let entry = seen
        .iter()
        .find(|e| e.to.as_deref() == Some("blue"))
        .expect("b recorded the fleet switch");
    assert_eq!(entry.node.as_deref(), Some("a"));
    assert_eq!(entry.from.as_deref(), Some("green"));
    assert_eq!(a.history(1)[0].node.as_deref(), Some("a"));

    // A rollback and a split through another instance reach the others too.
    c.rollback(None, false).await.expect("rollback through c");
    all_on(&[&a, &b, &c], "green").await;
    b.split(None, BTreeMap::from([("blue".to_string(), 30)]))
        .await
        .expect("split through b");
    poll_until(Duration::from_secs(10), || async {
        [&a, &c].iter().all(|p| {
            p.status().services["app"].split
                == Some(BTreeMap::from([("blue".into(), 30), ("green".into(), 70)]))
        })
    })
    .await;
    // A reload with another `active` in the config never flips the fleet.
    let mut edited = common::two_colours(&[green.addr()], &[blue.addr()]);
    edited.services.get_mut("app").expect("app").active = "blue".into();
    let mut fleet = FleetConfig::new(vec![etcd.url()], "/test/one");
    fleet.node = Some("a".into());
    edited.fleet = Some(fleet);
    a.reload(edited).await.expect("reload");
    assert_eq!(active(&a), "green");
    assert!(a.status().services["app"].split.is_some());
    // An instance that stops leaves the fleet at once (its lease is revoked), not 10 s later.
    c.shutdown().await;
    poll_until(Duration::from_secs(3), || async {
        a.status()
            .fleet
            .is_some_and(|f| f.nodes.iter().any(|n| n.node == "c" && !n.alive))
    })
    .await;
    for p in [a, b] {
        p.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs etcd (Debian's etcd-server; .ci/run installs it and runs this)"]
async fn racing_flips_leave_every_instance_on_one_decision_and_one_gets_409() {
    // The etcd and the apps live as long as their bindings: bound, not left to `..`.
    let Three {
        etcd: _etcd,
        green: _green,
        blue: _blue,
        a,
        b,
        c,
    } = three("/test/race", None).await;
    all_on(&[&a, &b, &c], "green").await;
    let mut conflicts = 0;
    for _round in 0..20 {
        // a switches to blue while b splits 50/50, both from the same revision.
        let (by_a, (status_b, answer_b)) = tokio::join!(
            a.switch(None, "blue", false),
            admin_call(&b, "PUT", "/split", r#"{"blue": 50}"#)
        );
        match (&by_a, status_b) {
            (Ok(_), 200) => {}
            (Ok(_), 409) => {
                conflicts += 1;
                assert!(
                    answer_b["error"]
                        .as_str()
                        .is_some_and(|e| e.contains("first"))
                );
                assert_eq!(answer_b["current"]["active"], "blue", "{answer_b}");
            }
            (Err(ControlError::Conflict { current, .. }), 200) => {
                conflicts += 1;
                assert!(
                    current.as_ref().is_some_and(|d| d.split.is_some()),
                    "{current:?}"
                );
            }
            other => panic!("two racing flips: {other:?} {answer_b}"),
        }
        // Whatever won, every instance ends on the same decision.
        poll_until(Duration::from_secs(10), || async {
            let decisions = [&a, &b, &c]
                .iter()
                .map(|p| {
                    let s = p.status();
                    (
                        s.services["app"].active.clone(),
                        s.services["app"].split.clone(),
                    )
                })
                .collect::<Vec<_>>();
            decisions.iter().all(|d| *d == decisions[0])
        })
        .await;
        c.switch(None, "green", true)
            .await
            .expect("reset through c");
        all_on(&[&a, &b, &c], "green").await;
        if conflicts > 0 {
            break;
        }
    }
    assert!(
        conflicts > 0,
        "twenty rounds of racing flips never conflicted"
    );
    for p in [a, b, c] {
        p.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs etcd (Debian's etcd-server; .ci/run installs it and runs this)"]
async fn without_etcd_instances_keep_serving_refuse_flips_and_catch_up_when_it_returns() {
    let dir = tempfile::tempdir().expect("tempdir");
    let state = dir.path().join("c.state.json");
    let Three {
        etcd,
        green,
        blue,
        a,
        b,
        c,
    } = three("/test/away", Some(state.clone())).await;
    let apps = (green.addr(), blue.addr());
    a.switch(None, "blue", false).await.expect("switch");
    all_on(&[&a, &b, &c], "blue").await;

    etcd.kill();
    poll_until(Duration::from_secs(15), || async {
        [&a, &b, &c]
            .iter()
            .all(|p| p.status().fleet.is_some_and(|f| !f.connected))
    })
    .await;
    // Serving goes on with the last decision; a flip is refused with 503 and a JSON error.
    all_on(&[&a, &b, &c], "blue").await;
    let (status, answer) = admin_call(&b, "POST", "/switch", r#"{"to": "green"}"#).await;
    assert_eq!(status, 503, "{answer}");
    assert!(answer["error"].as_str().is_some_and(|e| e.contains("etcd")));
    assert_eq!(active(&b), "blue");
    let admin = b.admin_addr().expect("admin");
    let mut client = KeepAliveClient::connect(admin).await;
    let health = client.get("/healthz", "localhost").await.expect("healthz");
    assert_eq!(health.status.as_u16(), 200);
    assert_eq!(
        gauge(&a.metrics_text(), "switchyard_fleet_connected"),
        Some(0)
    );

    // An instance restarted while etcd is away serves the decision its state file mirrors.
    c.shutdown().await;
    let c = instance(&etcd, "/test/away", "c", apps, Some(state.clone())).await;
    assert_eq!(active(&c), "blue");
    common::wait_healthy(&c, "blue").await;
    all_on(&[&c], "blue").await;

    // etcd is back: every instance reconnects, a flip works again and all converge.
    etcd.restart().await;
    poll_until(Duration::from_secs(20), || async {
        [&a, &b, &c]
            .iter()
            .all(|p| p.status().fleet.is_some_and(|f| f.connected))
    })
    .await;
    assert_eq!(
        gauge(&a.metrics_text(), "switchyard_fleet_connected"),
        Some(1)
    );
    let out = b
        .switch(None, "green", false)
        .await
        .expect("switch after etcd returned");
    all_on(&[&a, &b, &c], "green").await;
    converged(&b, 3, out.revision.expect("revision")).await;
    for p in [a, b, c] {
        p.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs etcd, /usr/bin/chromium, node and `npm ci` in tests/browser (.ci/run installs them and runs this)"]
async fn the_dashboard_shows_every_node_and_whether_it_converged() {
    require_etcd();
    if let Err(why) = switchyard_tests::browser::tools() {
        panic!("the browser test cannot run: {why}");
    }
    let etcd = Etcd::start().await;
    let green = TestApp::start("green").await;
    let blue = TestApp::start("blue").await;
    let apps = (green.addr(), blue.addr());
    let a = instance(&etcd, "/test/dash", "edge-a", apps, None).await;
    let b = instance(&etcd, "/test/dash", "edge-b", apps, None).await;
    common::wait_healthy(&a, "blue").await;
    let out = a.switch(None, "blue", false).await.expect("switch");
    converged(&b, 2, out.revision.expect("revision")).await;

    let out_dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("dashboard");
    let admin = b.admin_addr().expect("admin");
    let args = [
        format!("http://{admin}"),
        out_dir.display().to_string(),
        "edge-a".into(),
        "edge-b".into(),
    ];
    let stdout = switchyard_tests::browser::run("fleet.mjs", &args).await;
    assert!(
        stdout.contains("node edge-a: alive and converged"),
        "{stdout}"
    );
    assert!(out_dir.join("dashboard-fleet.png").exists());
    println!(
        "dashboard screenshot: {}",
        out_dir.join("dashboard-fleet.png").display()
    );
    for p in [a, b] {
        p.shutdown().await;
    }
}
