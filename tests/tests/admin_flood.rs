//! The admin listener cannot starve the proxy: 1,100 idle TCP connections to it (no token is
//! needed to open one) are held to `admin.max_connections`, cut by the header clock, and
//! leave client traffic and health checks untouched.

mod common;

use std::time::Duration;

use switchyard_tests::{KeepAliveClient, TestApp, poll_until, within};
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

/// CPU seconds (user + system) this process has used, from /proc/self/stat.
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").expect("/proc/self/stat");
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the ")".
    (ticks(11) + ticks(12)) / 100.0
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_admin_connections_neither_starve_clients_nor_spin() {
    // The test process holds both ends of the connections. (How many of the 1,100 connects
    // complete depends on the kernel's accept queue and on the machine's load; far more than the
    // admin cap of 16 always do.)
    let (_, after) = switchyard_proxy::raise_fd_limit().expect("raise the open-file limit");
    assert!(
        after.is_none_or(|n| n >= 4096),
        "this test needs at least 4096 open files, the hard limit allows {after:?}"
    );
    let green = TestApp::start("green").await;
    let blue = TestApp::start("blue").await;
    let mut config = common::two_colours(&[green.addr()], &[blue.addr()]);
    config.admin.max_connections = 16;
    config.limits.header_timeout = Duration::from_millis(500);
    let proxy = common::start(config).await;
    common::wait_healthy(&proxy, "green").await;
    let admin = proxy.admin_addr().expect("admin listener");

    let cpu_before = cpu_seconds();
    let connects: Vec<_> = (0..1100)
        .map(|_| {
            tokio::spawn(async move {
                // Beyond the accept queue a connect may wait: such a one is simply not kept.
                match within(Duration::from_secs(5), TcpStream::connect(admin)).await {
                    Some(Ok(s)) => Some(s),
                    _ => None,
                }
            })
        })
        .collect();
    let mut idle = Vec::new();
    for c in connects {
        if let Some(s) = c.await.expect("connect task") {
            idle.push(s);
        }
    }
    assert!(
        idle.len() >= 100,
        "only {} connections opened (the admin cap is 16)",
        idle.len()
    );

    // Client traffic and health checks carry on.
    let mut client = KeepAliveClient::connect(common::http(&proxy)).await;
    for _ in 0..200 {
        assert_eq!(client.get("/", "x").await.expect("answer").status, 200);
    }
    let checks = green.health_checks();
    poll_until(Duration::from_secs(5), || async {
        green.health_checks() >= checks + 3
    })
    .await;
    assert!(proxy.status().services["app"].pools["green"].servers[0].healthy);

    // The header clock cuts idle admin connections, so the admin API answers again while the
    // idle ones are still open on the client side.
    poll_until(Duration::from_secs(20), || async {
        let mut c = match within(
            Duration::from_millis(500),
            KeepAliveClient::try_connect(admin),
        )
        .await
        {
            Some(Ok(c)) => c,
            _ => return false,
        };
        c.set_timeout(Some(Duration::from_millis(500)));
        c.get("/healthz", "admin")
            .await
            .is_ok_and(|r| r.status == 200)
    })
    .await;
    // The connections the admin listener took were closed by it (the header clock), not kept.
    let mut closed = 0;
    for s in idle.iter_mut().take(16) {
        let mut buf = [0u8; 64];
        if let Some(Ok(0)) = within(Duration::from_secs(5), s.read(&mut buf)).await {
            closed += 1;
        }
    }
    assert!(
        closed >= 1,
        "no idle admin connection was closed by the proxy"
    );
    let cpu = cpu_seconds() - cpu_before;
    println!(
        "{} idle admin connections: clients served, health checks passing, the admin API back; CPU used by the whole test meanwhile: {cpu:.2} s",
        idle.len()
    );
    drop(idle);
    proxy.shutdown().await;
}
