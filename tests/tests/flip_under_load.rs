//! Flip under load: 16 keep-alive clients hammer the proxy with fast GETs, slow GETs and POSTs
//! while the test flips colours 24 times. Nothing may fail, no client connection may be closed,
//! every request that started after a switch returned must be answered by the new colour, and
//! requests in flight across a flip must finish on the colour they started on.

mod common;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use switchyard_tests::{KeepAliveClient, TestApp};

const CLIENTS: usize = 16;
const FLIPS: usize = 24;

/// What one request saw.
#[derive(Debug)]
struct Outcome {
    what: &'static str,
    /// Switches that had returned when the request was sent.
    done_before: usize,
    /// Switches that had started when the response was complete.
    started_after: usize,
    /// The colour that answered, or the error.
    result: Result<String, String>,
}

/// The order of colours: index k is the colour after k switches.
fn colour_after(k: usize) -> &'static str {
    if k.is_multiple_of(2) { "green" } else { "blue" }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn flipping_under_load_fails_nothing_and_closes_no_connection() {
    let green = TestApp::start("green").await;
    let blue = TestApp::start("blue").await;
    let proxy = common::start(common::two_colours(&[green.addr()], &[blue.addr()])).await;
    common::wait_healthy(&proxy, "green").await;
    common::wait_healthy(&proxy, "blue").await;
    let addr = common::http(&proxy);

    let started = Arc::new(AtomicUsize::new(0));
    let done = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let outcomes = Arc::new(Mutex::new(Vec::new()));

    let mut clients = Vec::new();
    for c in 0..CLIENTS {
        let (started, done, stop, outcomes) = (
            started.clone(),
            done.clone(),
            stop.clone(),
            outcomes.clone(),
        );
        clients.push(tokio::spawn(async move {
            let mut client = KeepAliveClient::connect(addr).await;
            let mut i = 0usize;
            while !stop.load(Ordering::Relaxed) {
                i += 1;
                let done_before = done.load(Ordering::SeqCst);
                let (what, result) = match i % 10 {
                    0..=5 => (
                        "fast GET",
                        client
                            .get("/", "app.test")
                            .await
                            .map_err(|e| e.to_string())
                            .and_then(|r| check(&r, None)),
                    ),
                    6 | 7 => {
                        let path = format!("/slow?ms={}", 20 + (i * 7 + c * 13) % 100);
                        (
                            "slow GET",
                            client
                                .get(&path, "app.test")
                                .await
                                .map_err(|e| e.to_string())
                                .and_then(|r| check(&r, None)),
                        )
                    }
                    _ => {
                        let body = Bytes::from(format!("client {c} request {i}"));
                        let r = client.post("/echo", "app.test", body.clone()).await;
                        (
                            "POST",
                            r.map_err(|e| e.to_string())
                                .and_then(|r| check(&r, Some(&body))),
                        )
                    }
                };
                let started_after = started.load(Ordering::SeqCst);
                outcomes.lock().expect("outcomes").push(Outcome {
                    what,
                    done_before,
                    started_after,
                    result,
                });
            }
            client
        }));
    }

    // Flip every 60 ms: pacing the load, not waiting for anything.
    for k in 1..=FLIPS {
        tokio::time::sleep(Duration::from_millis(60)).await;
        started.fetch_add(1, Ordering::SeqCst);
        let out = proxy
            .switch(None, colour_after(k), false)
            .await
            .expect("the switch is accepted");
        assert_eq!(out.active, colour_after(k));
        done.fetch_add(1, Ordering::SeqCst);
    }
    tokio::time::sleep(Duration::from_millis(60)).await;
    stop.store(true, Ordering::Relaxed);
    let mut open = Vec::new();
    for c in clients {
        open.push(c.await.expect("client task"));
    }

    let outcomes = std::mem::take(&mut *outcomes.lock().expect("outcomes"));
    let total = outcomes.len();
    let mut failed = Vec::new();
    let mut wrong_colour = Vec::new();
    let mut spanned_and_kept_old_colour = 0;
    let mut by_kind = std::collections::BTreeMap::<&str, usize>::new();
    for o in &outcomes {
        *by_kind.entry(o.what).or_default() += 1;
        let colour = match &o.result {
            Ok(c) => c.as_str(),
            Err(e) => {
                failed.push(format!("{}: {e}", o.what));
                continue;
            }
        };
        let expected = colour_after(o.done_before);
        if o.started_after == o.done_before {
            // No switch overlapped this request: it must see the colour of the last switch
            // that returned before it was sent.
            if colour != expected {
                wrong_colour.push(format!(
                    "{} answered by {colour}, expected {expected}",
                    o.what
                ));
            }
        } else {
            // A switch ran while the request was in flight: it was routed either before or
            // after, never to a colour that was not live in between.
            let candidates: Vec<&str> = (o.done_before..=o.started_after)
                .map(colour_after)
                .collect();
            if !candidates.contains(&colour) {
                wrong_colour.push(format!(
                    "{} answered by {colour}, live colours were {candidates:?}",
                    o.what
                ));
            }
            if colour == expected {
                spanned_and_kept_old_colour += 1;
            }
        }
    }
    let closed = open.iter().filter(|c| c.is_closed()).count();
    println!(
        "flip under load: {total} requests ({by_kind:?}), {FLIPS} flips, {} failed, {} wrong colour, {closed} client connections closed, {spanned_and_kept_old_colour} requests in flight across a flip finished on their colour",
        failed.len(),
        wrong_colour.len()
    );
    assert!(failed.is_empty(), "failed requests: {failed:?}");
    assert!(
        wrong_colour.is_empty(),
        "misrouted requests: {wrong_colour:?}"
    );
    assert_eq!(closed, 0, "the proxy closed client connections");
    assert_eq!(
        proxy.open_connections(),
        CLIENTS,
        "all client connections still open at the proxy"
    );
    assert!(
        spanned_and_kept_old_colour > 0,
        "some requests were in flight across a flip"
    );
    assert!(
        total > FLIPS * CLIENTS,
        "the load was real: {total} requests"
    );
    // Both colours received traffic, and each kept-alive client reused its one connection.
    assert!(green.requests() > 0 && blue.requests() > 0);
    for c in &open {
        assert!(c.requests_sent() > 1);
    }
    proxy.shutdown().await;
}

/// A response is good when it is 200 and, for an echo, carries the body back.
fn check(r: &switchyard_tests::Resp, echo: Option<&Bytes>) -> Result<String, String> {
    if r.status != 200 {
        return Err(format!("status {}: {}", r.status, r.text()));
    }
    if let Some(body) = echo {
        if r.body != *body {
            return Err(format!("echo mismatch: sent {body:?}, got {:?}", r.body));
        }
    }
    r.colour()
        .map(str::to_string)
        .ok_or_else(|| "no x-colour header".to_string())
}
