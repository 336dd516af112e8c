//! Signals to a running `switchyard serve`: SIGHUP reloads the config file (and keeps the
//! running config when the new one is invalid); SIGTERM stops gracefully, letting requests in
//! flight finish, and exits 0.

mod common;

use common::{ConfigFile, Proxy, WAIT, two_colour_config};
use switchyard_tests::{KeepAliveClient, TestApp, poll_until, within};

#[tokio::test]
async fn sighup_reloads_and_keeps_the_running_config_when_the_file_is_bad() {
    let green = TestApp::start("green").await;
    let blue = TestApp::start("blue").await;
    let teal = TestApp::start("teal").await;
    let file = ConfigFile::new(&two_colour_config(green.addr(), blue.addr(), ""));
    let proxy = Proxy::start(&["-c", &file.arg()], &[]).await;
    assert_eq!(proxy.get("/").await.text(), "green");
    let first = proxy.status(None).await["generation"]
        .as_u64()
        .expect("a generation");

    // The green pool moves to the teal app.
    file.rewrite(&two_colour_config(teal.addr(), blue.addr(), ""));
    proxy.signal("HUP");
    let status = proxy
        .wait_status("a new generation", |s| {
            s["generation"].as_u64().is_some_and(|g| g > first)
        })
        .await;
    let reloaded = status["generation"].as_u64().expect("a generation");
    assert_eq!(
        status["services"]["app"]["pools"]["green"]["servers"][0]["addr"],
        teal.addr().to_string()
    );
    poll_until(WAIT, || async { proxy.get("/").await.text() == "teal" }).await;

    // An invalid file: the errors are logged with their positions, nothing changes.
    let bad = two_colour_config(teal.addr(), blue.addr(), "")
        .replace("interval = \"100ms\"", "interval = \"soon\"");
    file.rewrite(&bad);
    proxy.signal("HUP");
    let prefix = format!("{}:", file.arg());
    proxy
        .wait_log("with the reload error's FILE:LINE:COL", |l| {
            // Logged at error level, with its position.
            l.contains("ERROR")
                && l.split_once(&prefix).is_some_and(|(_, rest)| {
                    let mut parts = rest.splitn(3, ':');
                    let line = parts
                        .next()
                        .is_some_and(|n| n.parse::<u32>().is_ok_and(|n| n > 0));
                    let col = parts.next().is_some_and(|n| n.parse::<u32>().is_ok());
                    line && col && rest.contains("soon")
                })
        })
        .await;
    let status = proxy.status(None).await;
    assert_eq!(status["generation"].as_u64(), Some(reloaded));
    assert_eq!(proxy.get("/").await.text(), "teal");
    assert!(green.requests() >= 1);
}

#[tokio::test]
async fn sigterm_lets_requests_in_flight_finish_then_exits_0() {
    let green = TestApp::start("green").await;
    let blue = TestApp::start("blue").await;
    let file = ConfigFile::new(&two_colour_config(green.addr(), blue.addr(), ""));
    let mut proxy = Proxy::start(&["-c", &file.arg()], &[]).await;
    let http = proxy.http;

    let mut slow = Vec::new();
    for _ in 0..3 {
        let mut client = KeepAliveClient::connect(http).await;
        slow.push(tokio::spawn(async move {
            client.get("/slow?ms=1500", "app.test").await
        }));
    }
    proxy
        .wait_status("3 requests in flight on green", |s| {
            s["services"]["app"]["pools"]["green"]["in_flight"] == 3
        })
        .await;

    proxy.signal("TERM");
    for task in slow {
        let resp = task.await.expect("the request task").expect("an answer");
        assert_eq!((resp.status.as_u16(), resp.text().as_str()), (200, "green"));
    }
    let status = proxy.wait_exit().await;
    assert_eq!(status.code(), Some(0), "log:\n{}", proxy.log_text());
    let refused = within(WAIT, tokio::net::TcpStream::connect(http)).await;
    assert!(
        matches!(refused, Some(Err(_))),
        "a new connection after exit: {refused:?}"
    );
    let log = proxy.log_text();
    assert!(log.contains("SIGTERM"), "{log}");
}
