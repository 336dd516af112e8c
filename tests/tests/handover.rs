//! Listeners as a value: an embedding program hands a running proxy's listening sockets to a
//! second proxy (`ProxyHandle::listener_fds`, `Listeners::from_inherited`), stops the first,
//! and clients carry on on the same addresses — the seam `switchyard serve` builds its binary
//! upgrade on.

mod common;

use switchyard_proxy::Listeners;
use switchyard_tests::{KeepAliveClient, TestApp};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_proxy_serves_on_the_first_ones_sockets() {
    let green = TestApp::start("green").await;
    let blue = TestApp::start("blue").await;
    let config = common::two_colours(&[green.addr()], &[blue.addr()]);
    let first = common::start(config.clone()).await;
    common::wait_healthy(&first, "green").await;
    let addr = common::http(&first);
    let admin = first.admin_addr().expect("admin");

    let inherited = first
        .listener_fds()
        .expect("copies of the sockets")
        .into_iter()
        .map(|(name, fd)| (Some(name.to_string()), std::net::TcpListener::from(fd)))
        .collect();
    let listeners = Listeners::from_inherited(&config, inherited)
        .await
        .expect("listeners from the inherited sockets");
    let second = switchyard_proxy::start(config, listeners).expect("the second proxy starts");
    assert_eq!(common::http(&second), addr, "the same client socket");
    assert_eq!(second.admin_addr(), Some(admin), "the same admin socket");

    assert!(first.shutdown().await, "the first proxy stops cleanly");
    let mut client = KeepAliveClient::connect(addr).await;
    for _ in 0..20 {
        assert_eq!(client.get("/", "x").await.expect("answer").status, 200);
    }
    second.shutdown().await;
}
