//! A split respects health: a pool of the split whose servers are down gets no new requests
//! while another pool of it is healthy (its connect failures retried on the other pool), a
//! split onto pools that are all down is refused unless forced, and weights that leave out
//! the active pool give it the rest of 100.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use switchyard_tests::{KeepAliveClient, TestApp, poll_until};

fn weights(pairs: &[(&str, u32)]) -> BTreeMap<String, u32> {
    pairs.iter().map(|(p, w)| (p.to_string(), *w)).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn weights_that_leave_out_the_active_pool_give_it_the_rest() {
    let green = TestApp::start("green").await;
    let blue = TestApp::start("blue").await;
    let proxy = common::start(common::two_colours(&[green.addr()], &[blue.addr()])).await;
    common::wait_healthy(&proxy, "blue").await;
    proxy
        .split(None, weights(&[("blue", 10)]))
        .await
        .expect("split");
    let status = proxy.status();
    let app = &status.services["app"];
    assert_eq!(
        app.split.clone(),
        Some(weights(&[("blue", 10), ("green", 90)])),
        "blue=10 means green 90"
    );
    assert!((app.pools["blue"].share - 0.1).abs() < 1e-9);
    assert!((app.pools["green"].share - 0.9).abs() < 1e-9);
    const N: usize = 3000;
    let mut client = KeepAliveClient::connect(common::http(&proxy)).await;
    let mut blue_answers = 0;
    for _ in 0..N {
        if client.get("/", "x").await.expect("answer").colour() == Some("blue") {
            blue_answers += 1;
        }
    }
    let share = blue_answers as f64 / N as f64;
    println!("split blue=10 over {N} requests: blue share {share:.3}");
    // Binomial(3000, 0.1): a standard deviation of ~0.55%; ±3% is over five of them.
    assert!((0.07..=0.13).contains(&share), "blue share {share}");
    proxy.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_split_onto_pools_that_are_down_is_refused_unless_forced() {
    let green = TestApp::start("green").await;
    let blue = TestApp::start("blue").await;
    let proxy = common::start(common::two_colours(&[green.addr()], &[blue.addr()])).await;
    common::wait_healthy(&proxy, "green").await;
    blue.set_healthy(false);
    poll_until(Duration::from_secs(5), || async {
        !proxy.status().services["app"].pools["blue"].servers[0].healthy
            && proxy.status().services["app"].pools["blue"].servers[0].health == "down"
    })
    .await;
    let refused = proxy.split(None, weights(&[("blue", 30)])).await;
    let err = refused.expect_err("a split onto a pool that is down is refused");
    assert_eq!(err.status(), 409, "{err}");
    assert!(proxy.status().services["app"].split.is_none());
    proxy
        .split_forced_as("test", None, weights(&[("blue", 30)]), true)
        .await
        .expect("forced");
    let status = proxy.status();
    let app = &status.services["app"];
    assert!(app.split.is_some());
    // Forced, but blue is down: it gets no share of new requests while green is healthy.
    assert_eq!(app.pools["blue"].share, 0.0);
    assert_eq!(app.pools["green"].share, 1.0);
    let mut client = KeepAliveClient::connect(common::http(&proxy)).await;
    for _ in 0..200 {
        let r = client.get("/", "x").await.expect("answer");
        assert_eq!(r.colour(), Some("green"));
    }
    proxy.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_pool_of_a_split_under_load_fails_no_request() {
    let green = TestApp::start("green").await;
    let blue = TestApp::start("blue").await;
    let proxy = common::start(common::two_colours(&[green.addr()], &[blue.addr()])).await;
    common::wait_healthy(&proxy, "blue").await;
    common::wait_healthy(&proxy, "green").await;
    proxy
        .split(None, weights(&[("blue", 30), ("green", 70)]))
        .await
        .expect("split");
    let addr = common::http(&proxy);
    let done = Arc::new(AtomicUsize::new(0));
    let mut clients = Vec::new();
    for c in 0..16 {
        let done = done.clone();
        clients.push(tokio::spawn(async move {
            let mut client = KeepAliveClient::connect(addr).await;
            let mut failed_gets = 0;
            let mut failed_posts = Vec::new();
            for i in 0..150 {
                if i % 4 == 3 {
                    let body = format!("{c}-{i}");
                    match client.post("/echo", "x", body.clone()).await {
                        Ok(r) if r.status == 200 => {}
                        Ok(r) => failed_posts.push((body, r.status.as_u16(), r.text())),
                        Err(e) => failed_posts.push((body, 0, e.to_string())),
                    }
                } else {
                    match client.get("/", "x").await {
                        Ok(r) if r.status == 200 => {}
                        _ => failed_gets += 1,
                    }
                }
                done.fetch_add(1, Ordering::Relaxed);
            }
            (failed_gets, failed_posts)
        }));
    }
    // Kill blue once the load is under way.
    poll_until(Duration::from_secs(10), || async {
        done.load(Ordering::Relaxed) >= 400
    })
    .await;
    blue.kill().await;
    let mut failed_gets = 0;
    let mut failed_posts = Vec::new();
    for c in clients {
        let (g, p) = c.await.expect("client");
        failed_gets += g;
        failed_posts.extend(p);
    }
    println!(
        "30/70 split, blue killed under load: {} requests, {failed_gets} GETs failed, {} POSTs failed",
        done.load(Ordering::Relaxed),
        failed_posts.len()
    );
    assert_eq!(failed_gets, 0, "no GET fails");
    for (body, status, text) in &failed_posts {
        // Only a POST in flight on blue at the kill may fail: it was sent (it reached blue's
        // connection, though blue may have died before its handler ran), so it is not retried.
        assert!(
            *status == 502 && text.contains("reset_before_response"),
            "POST {body} failed other than by having been sent to the killed app: {status} {text}"
        );
    }
    assert!(failed_posts.len() <= 16, "at most one in flight per client");
    proxy.shutdown().await;
}
