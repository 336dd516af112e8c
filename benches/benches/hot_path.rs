//! Criterion microbenches of the per-request work outside of I/O: loading the routing
//! snapshot, routing, choosing a pool and picking a server, and the header rewriting of
//! `switchyard_proxy::headers` on a realistic browser request.
// criterion_group! generates public functions without docs.
#![allow(missing_docs)]

mod common;

use std::hint::black_box;
use std::time::Duration;

use arc_swap::ArcSwap;
use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use http::{HeaderMap, HeaderName, HeaderValue, Uri, Version};
use switchyard_config::AllDown;
use switchyard_core::Registry;
use switchyard_proxy::headers;
use tokio::time::Instant;

fn selection(c: &mut Criterion) {
    let config = common::config();
    let registry = Registry::new();
    let swap = ArcSwap::new(common::snapshot(&config, &registry, 1));
    let snap = swap.load_full();
    let svc = snap
        .route(common::HOST, common::PATH)
        .expect("routed")
        .clone();
    assert_eq!(svc.name, "shop");

    let mut g = c.benchmark_group("snapshot");
    g.bench_function("load_full", |b| b.iter(|| black_box(swap.load_full())));
    g.bench_function("route", |b| {
        b.iter(|| black_box(snap.route(black_box(common::HOST), black_box(common::PATH))))
    });
    g.bench_function("choose_pool+pick", |b| {
        b.iter(|| {
            let pool = &svc.pools[svc.choose_pool()];
            black_box(pool.pick(&[], Instant::now(), AllDown::TryAll).is_ok())
        })
    });
    g.bench_function("load_full+route+pick", |b| {
        b.iter(|| {
            let snap = swap.load_full();
            let svc = snap.route(black_box(common::HOST), black_box(common::PATH));
            let picked = svc.map(|s| {
                s.pools[s.choose_pool()]
                    .pick(&[], Instant::now(), AllDown::TryAll)
                    .is_ok()
            });
            black_box(picked)
        })
    });
    g.bench_function("build (control plane)", |b| {
        b.iter(|| black_box(common::snapshot(&config, &registry, 2)))
    });
    g.finish();
}

/// Headers a current desktop browser sends for a page load, plus a proxy in front of us.
fn browser_headers() -> HeaderMap {
    let pairs = [
        ("host", "shop.example.com"),
        ("connection", "keep-alive"),
        ("cache-control", "max-age=0"),
        (
            "sec-ch-ua",
            "\"Chromium\";v=\"124\", \"Google Chrome\";v=\"124\", \"Not-A.Brand\";v=\"99\"",
        ),
        ("sec-ch-ua-mobile", "?0"),
        ("sec-ch-ua-platform", "\"Linux\""),
        ("upgrade-insecure-requests", "1"),
        (
            "user-agent",
            "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36",
        ),
        (
            "accept",
            "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,image/apng,*/*;q=0.8",
        ),
        ("sec-fetch-site", "same-origin"),
        ("sec-fetch-mode", "navigate"),
        ("sec-fetch-user", "?1"),
        ("sec-fetch-dest", "document"),
        ("referer", "https://shop.example.com/cart"),
        ("accept-encoding", "gzip, deflate, br, zstd"),
        ("accept-language", "en-GB,en;q=0.9,de;q=0.8"),
        (
            "cookie",
            "session=3f9a1c2e7b6d4a5f8e0c1b2a3d4e5f60; cart=42; consent=yes; _ga=GA1.1.123456789.1700000000",
        ),
        ("x-forwarded-for", "203.0.113.7"),
    ];
    let mut m = HeaderMap::with_capacity(pairs.len());
    for (k, v) in pairs {
        m.append(
            HeaderName::from_static(k),
            HeaderValue::from_str(v).expect("valid value"),
        );
    }
    m
}

fn header_rewriting(c: &mut Criterion) {
    let base = browser_headers();
    let uri: Uri = common::PATH.parse().expect("uri");
    let client = HeaderValue::from_static("198.51.100.23");
    let host = HeaderValue::from_static("shop.example.com");

    let mut g = c.benchmark_group("headers");
    g.bench_function("request_host", |b| {
        b.iter(|| black_box(headers::request_host(Version::HTTP_11, &uri, &base)))
    });
    g.bench_function("clone (baseline of the rest)", |b| {
        b.iter(|| black_box(base.clone()))
    });
    g.bench_function("strip_hop_by_hop", |b| {
        b.iter_batched_ref(
            || base.clone(),
            headers::strip_hop_by_hop,
            BatchSize::SmallInput,
        )
    });
    g.bench_function("forwarding (X-Forwarded-*, request id)", |b| {
        b.iter_batched_ref(
            || (base.clone(), host.clone()),
            |(h, host)| black_box(headers::forwarding(h, &client, "http", host.clone(), true)),
            BatchSize::SmallInput,
        )
    });
    g.bench_function("all three, as the request path does", |b| {
        b.iter_batched_ref(
            || base.clone(),
            |h| {
                let host = headers::request_host(Version::HTTP_11, &uri, h).expect("valid host");
                headers::strip_hop_by_hop(h);
                black_box(headers::forwarding(
                    h,
                    &client,
                    "http",
                    host.authority,
                    true,
                ))
            },
            BatchSize::SmallInput,
        )
    });
    g.finish();
}

fn short() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(50)
}

criterion_group! {
    name = benches;
    config = short();
    targets = selection, header_rewriting
}
criterion_main!(benches);
