//! Careless deploys under load: flip, then kill the old colour's app at once (its in-flight
//! requests die mid-request), then start it again — ten times, while 16 keep-alive clients send
//! fast GETs, slow GETs, POSTs and slow POSTs.
//!
//! The bar (ANCHORS.md): zero failed GETs, no POST processed twice, and a POST may fail only if
//! the killed app had received it.

mod common;

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use switchyard_tests::{KeepAliveClient, TestApp};

const CLIENTS: usize = 16;
const CYCLES: usize = 10;

#[derive(Debug)]
struct Outcome {
    kind: &'static str,
    /// The POST body, unique per request.
    body: Option<Bytes>,
    error: Option<String>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn careless_deploys_fail_no_get_and_process_no_post_twice() {
    let green = Arc::new(TestApp::start("green").await);
    let blue = Arc::new(TestApp::start("blue").await);
    let proxy = common::start(common::two_colours(&[green.addr()], &[blue.addr()])).await;
    common::wait_healthy(&proxy, "green").await;
    common::wait_healthy(&proxy, "blue").await;
    let addr = common::http(&proxy);

    let stop = Arc::new(AtomicBool::new(false));
    let outcomes = Arc::new(Mutex::new(Vec::new()));
    let mut clients = Vec::new();
    for c in 0..CLIENTS {
        let (stop, outcomes) = (stop.clone(), outcomes.clone());
        clients.push(tokio::spawn(async move {
            let mut client = KeepAliveClient::connect(addr).await;
            let mut reconnects = 0;
            let mut i = 0usize;
            while !stop.load(Ordering::Relaxed) {
                i += 1;
                let (kind, body, result) = match i % 20 {
                    0..=9 => ("fast GET", None, client.get("/", "app.test").await),
                    10..=13 => (
                        "slow GET",
                        None,
                        client.get("/slow?ms=150", "app.test").await,
                    ),
                    14..=16 => {
                        let body = Bytes::from(format!("order {c}-{i}"));
                        (
                            "POST",
                            Some(body.clone()),
                            client.post("/order", "app.test", body).await,
                        )
                    }
                    _ => {
                        let body = Bytes::from(format!("slow order {c}-{i}"));
                        (
                            "slow POST",
                            Some(body.clone()),
                            client.post("/slow-post?ms=150", "app.test", body).await,
                        )
                    }
                };
                let error = match result {
                    Ok(r) if r.status == 200 => None,
                    Ok(r) => Some(format!("status {}: {}", r.status, r.text())),
                    Err(e) => Some(e.to_string()),
                };
                if client.is_closed() {
                    // The proxy must not close client connections; count it and carry on.
                    reconnects += 1;
                    client = KeepAliveClient::connect(addr).await;
                }
                outcomes
                    .lock()
                    .expect("outcomes")
                    .push(Outcome { kind, body, error });
            }
            reconnects
        }));
    }

    let apps = [green.clone(), blue.clone()];
    for cycle in 0..CYCLES {
        // Pace the load like a deploy script would (ANCHORS: one flip a second, slow requests
        // of 300 ms): here 150 ms slow requests and a cycle every 400 ms, so every slow
        // request in flight at a kill has one surviving colour to be retried on.
        tokio::time::sleep(Duration::from_millis(400)).await;
        let (old, new) = if cycle % 2 == 0 {
            (&apps[0], &apps[1])
        } else {
            (&apps[1], &apps[0])
        };
        // A careful script would wait for health; a careless one only needs the new colour up,
        // which the restart of the previous cycle gave it. Wait for the proxy to see it.
        common::wait_healthy(&proxy, new.colour()).await;
        proxy
            .switch(None, new.colour(), false)
            .await
            .expect("switch to the new colour");
        // The careless part: the old colour dies at once, mid-request, and comes back as the
        // next version on the same port.
        old.kill().await;
        old.restart().await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, Ordering::Relaxed);
    let mut reconnects = 0;
    for c in clients {
        reconnects += c.await.expect("client task");
    }

    let outcomes = std::mem::take(&mut *outcomes.lock().expect("outcomes"));
    let mut totals: BTreeMap<&str, (usize, usize)> = BTreeMap::new();
    for o in &outcomes {
        let e = totals.entry(o.kind).or_default();
        e.0 += 1;
        if o.error.is_some() {
            e.1 += 1;
        }
    }
    // Every POST body each app processed, across restarts.
    let mut processed: HashMap<Bytes, usize> = HashMap::new();
    for app in [&green, &blue] {
        for b in app.posts() {
            *processed.entry(b).or_default() += 1;
        }
    }
    let twice: Vec<_> = processed
        .iter()
        .filter(|(_, n)| **n > 1)
        .map(|(b, n)| (b.clone(), *n))
        .collect();
    let failed_gets: Vec<_> = outcomes
        .iter()
        .filter(|o| o.body.is_none() && o.error.is_some())
        .map(|o| format!("{}: {}", o.kind, o.error.as_deref().unwrap_or_default()))
        .collect();
    // A POST may fail only if it had reached the killed app: the proxy says so with
    // `reset_before_response` (it was written to the app, which died before answering).
    // Most of those the app had recorded; a few died in the app's socket buffer before its
    // handler ran — sent, so never retried, but not processed either.
    let failed_posts: Vec<&Outcome> = outcomes
        .iter()
        .filter(|o| o.body.is_some() && o.error.is_some())
        .collect();
    let failed_unsent_posts: Vec<_> = failed_posts
        .iter()
        .filter(|o| {
            !o.error
                .as_deref()
                .unwrap_or_default()
                .contains("reset_before_response")
        })
        .map(|o| {
            format!(
                "{} {:?}: {}",
                o.kind,
                o.body,
                o.error.as_deref().unwrap_or_default()
            )
        })
        .collect();
    let failed_unprocessed = failed_posts
        .iter()
        .filter(|o| o.body.as_ref().is_some_and(|b| !processed.contains_key(b)))
        .count();
    println!(
        "careless deploy: {} requests over {CYCLES} flip+kill+restart cycles; (total, failed) by kind: {totals:?}; POSTs processed twice: {}; failed POSTs: {} (all sent to the killed app; {} of them died before its handler ran); client reconnects: {reconnects}",
        outcomes.len(),
        twice.len(),
        failed_posts.len(),
        failed_unprocessed
    );
    assert!(failed_gets.is_empty(), "GETs failed: {failed_gets:?}");
    assert!(twice.is_empty(), "POSTs processed twice: {twice:?}");
    assert!(
        failed_unsent_posts.is_empty(),
        "POSTs failed without reaching an app: {failed_unsent_posts:?}"
    );
    assert_eq!(reconnects, 0, "the proxy closed client connections");
    assert!(outcomes.len() > CYCLES * CLIENTS, "the load was real");
    proxy.shutdown().await;
}
