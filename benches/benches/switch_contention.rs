//! The reader cost of a switch: three threads do what every request does first (load the
//! snapshot, route, choose a pool, pick a server) while a fourth stores a new snapshot every
//! N µs, as a flip storm would. Reported as reader ns per operation (the wall time of one
//! reader's loop divided by its operations), with and without the writer.
// criterion_group! generates public functions without docs.
#![allow(missing_docs)]

mod common;

use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use criterion::{Criterion, criterion_group, criterion_main};
use switchyard_config::AllDown;
use switchyard_core::{Registry, Snapshot};

/// Reader threads.
const READERS: usize = 3;

/// Runs `iters` operations on each reader while the writer (if any) stores every `period`;
/// returns the slowest reader's wall time.
fn contended(
    swap: &ArcSwap<Snapshot>,
    snaps: &[Arc<Snapshot>; 2],
    iters: u64,
    period: Option<Duration>,
    stores: &AtomicU64,
) -> Duration {
    let stop = AtomicBool::new(false);
    let barrier = std::sync::Barrier::new(READERS + 1);
    std::thread::scope(|s| {
        let readers: Vec<_> = (0..READERS)
            .map(|_| {
                s.spawn(|| {
                    barrier.wait();
                    let start = Instant::now();
                    for _ in 0..iters {
                        let snap = swap.load_full();
                        let picked = snap.route(common::HOST, common::PATH).map(|svc| {
                            svc.pools[svc.choose_pool()]
                                .pick(&[], tokio::time::Instant::now(), AllDown::TryAll)
                                .is_ok()
                        });
                        black_box(picked);
                    }
                    start.elapsed()
                })
            })
            .collect();
        let stop = &stop;
        let writer = period.map(|p| {
            s.spawn(move || {
                let mut k = 0usize;
                // Bounded by the readers: they set `stop` when done.
                while !stop.load(Ordering::Relaxed) {
                    swap.store(snaps[k % 2].clone());
                    k += 1;
                    std::thread::sleep(p);
                }
                stores.fetch_add(k as u64, Ordering::Relaxed);
            })
        });
        barrier.wait();
        let slowest = readers
            .into_iter()
            .map(|r| r.join().expect("reader thread"))
            .max()
            .unwrap_or_default();
        stop.store(true, Ordering::Relaxed);
        if let Some(w) = writer {
            w.join().expect("writer thread");
        }
        slowest
    })
}

fn switch_under_readers(c: &mut Criterion) {
    let config = common::config();
    let registry = Registry::new();
    let snaps = [
        common::snapshot(&config, &registry, 1),
        common::snapshot(&config, &registry, 2),
    ];
    let swap = ArcSwap::new(snaps[0].clone());
    let mut g = c.benchmark_group("switch_contention");
    for period in [None, Some(1000), Some(100), Some(10)] {
        let name = match period {
            None => format!("{READERS} readers, no writer"),
            Some(us) => format!("{READERS} readers, a store every {us}us"),
        };
        let stores = AtomicU64::new(0);
        let started = Instant::now();
        g.bench_function(&name, |b| {
            b.iter_custom(|iters| {
                contended(
                    &swap,
                    &snaps,
                    iters,
                    period.map(Duration::from_micros),
                    &stores,
                )
            })
        });
        if period.is_some() {
            let secs = started.elapsed().as_secs_f64();
            println!(
                "  writer: {} stores in {secs:.1} s ({:.0}/s; sleep granularity limits the rate)",
                stores.load(Ordering::Relaxed),
                stores.load(Ordering::Relaxed) as f64 / secs
            );
        }
    }
    g.finish();
}

fn short() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3))
        .sample_size(20)
}

criterion_group! {
    name = benches;
    config = short();
    targets = switch_under_readers
}
criterion_main!(benches);
