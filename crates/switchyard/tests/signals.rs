//! Signals to a running `switchyard serve`: SIGHUP reloads the config file (and keeps the
//! running config when the new one is invalid); SIGTERM stops gracefully, letting requests in
//! flight finish, and exits 0; SIGUSR1 reopens the access-log file after logrotate moved it.

mod common;

use bytes::Bytes;
use common::{ConfigFile, Proxy, WAIT, two_colour_config};
use http_body_util::Full;
use std::path::Path;
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

/// `GET path` with a `Referer` and a `User-Agent`, on a new connection.
async fn get_with_agent(proxy: &Proxy, path: &str, referer: &str, agent: &str) -> u16 {
    let mut client = KeepAliveClient::connect(proxy.http).await;
    let req = http::Request::get(path)
        .header(http::header::HOST, "app.test")
        .header(http::header::REFERER, referer)
        .header(http::header::USER_AGENT, agent)
        .body(Full::new(Bytes::new()))
        .expect("a request");
    client
        .request(req)
        .await
        .expect("an answer")
        .status
        .as_u16()
}

/// The lines of the file at `path` (none while it does not exist).
fn file_lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

/// The parts of a combined-format line: address, time, request line, status, bytes, referer,
/// user agent; `None` when the line is not in that format.
fn combined(line: &str) -> Option<[&str; 7]> {
    let (addr, rest) = line.split_once(" - - [")?;
    let (time, rest) = rest.split_once("] \"")?;
    let (request, rest) = rest.split_once("\" ")?;
    let (status, rest) = rest.split_once(' ')?;
    let (bytes, rest) = rest.split_once(" \"")?;
    let (referer, rest) = rest.split_once("\" \"")?;
    let agent = rest.strip_suffix('"')?;
    Some([addr, time, request, status, bytes, referer, agent])
}

#[tokio::test]
async fn sigusr1_reopens_the_access_file_that_logrotate_moved_and_lines_are_combined() {
    let green = TestApp::start("green").await;
    let blue = TestApp::start("blue").await;
    let logs = tempfile::tempdir().expect("a temporary directory");
    let access = logs.path().join("access.log");
    let rotated = logs.path().join("access.log.1");
    let extra = format!(
        "[log]\naccess_format = \"combined\"\naccess_file = {:?}\n",
        access.display().to_string()
    );
    // One worker: the single-thread runtime serves, signals and stops.
    let config = two_colour_config(green.addr(), blue.addr(), &extra)
        .replace("worker_threads = 2", "worker_threads = 1");
    assert!(config.contains("worker_threads = 1"));
    let file = ConfigFile::new(&config);
    let mut proxy = Proxy::start(&["-c", &file.arg()], &[]).await;
    proxy.wait_healthy().await;

    let status = get_with_agent(&proxy, "/?first=1", "https://shop.test/", "probe/1.0").await;
    assert_eq!(status, 200);
    // Lines are written within 100 ms; wait for this one.
    poll_until(WAIT, || async {
        file_lines(&access).iter().any(|l| l.contains("first=1"))
    })
    .await;

    // logrotate moves the file, then signals; the proxy reopens the path, a new file.
    std::fs::rename(&access, &rotated).expect("rotate the access log");
    proxy.signal("USR1");
    proxy
        .wait_log("the access log reopened", |l| {
            l.contains("access log reopened")
        })
        .await;
    let status = get_with_agent(&proxy, "/?second=1", "-", "probe/2.0 \"quoted\"").await;
    assert_eq!(status, 200);
    // A graceful stop writes every line before the process exits.
    proxy.signal("TERM");
    let exit = proxy.wait_exit().await;
    assert_eq!(exit.code(), Some(0), "log:\n{}", proxy.log_text());

    let old = file_lines(&rotated);
    let new = file_lines(&access);
    assert_eq!(old.len(), 1, "the line before the rotation: {old:#?}");
    assert_eq!(new.len(), 1, "the line after it: {new:#?}");
    let [addr, time, request, status, bytes, referer, agent] =
        combined(&old[0]).unwrap_or_else(|| panic!("a combined line: {}", old[0]));
    assert_eq!(addr, "127.0.0.1");
    // `DD/Mon/YYYY:HH:MM:SS +0000`
    assert_eq!(time.len(), 26, "{time}");
    assert!(
        time.ends_with(" +0000") && time.as_bytes()[2] == b'/',
        "{time}"
    );
    assert_eq!(request, "GET /?first=1 HTTP/1.1");
    assert_eq!((status, bytes), ("200", "5"));
    assert_eq!((referer, agent), ("https://shop.test/", "probe/1.0"));
    let [_, _, request, status, _, referer, agent] =
        combined(&new[0]).unwrap_or_else(|| panic!("a combined line: {}", new[0]));
    assert_eq!((request, status), ("GET /?second=1 HTTP/1.1", "200"));
    // A quote in a field is escaped as nginx escapes it, so it cannot end the field.
    assert_eq!((referer, agent), ("-", "probe/2.0 \\x22quoted\\x22"));
}

#[tokio::test]
async fn two_workers_write_every_line_of_a_busy_access_file_whole_and_once() {
    let green = TestApp::start("green").await;
    let blue = TestApp::start("blue").await;
    let logs = tempfile::tempdir().expect("a temporary directory");
    let access = logs.path().join("access.log");
    let extra = format!(
        "[log]\naccess_format = \"json\"\naccess_file = {:?}\n",
        access.display().to_string()
    );
    // Two workers, each writing the buffer to the file when it passes 64 KiB.
    let config = two_colour_config(green.addr(), blue.addr(), &extra);
    assert!(config.contains("worker_threads = 2"));
    let file = ConfigFile::new(&config);
    let mut proxy = Proxy::start(&["-c", &file.arg()], &[]).await;
    proxy.wait_healthy().await;

    // 8 clients × 250 requests: ~0.9 MB of JSON lines, a dozen or so 64 KiB writes.
    const CLIENTS: usize = 8;
    const EACH: usize = 250;
    let addr = proxy.http;
    let clients: Vec<_> = (0..CLIENTS)
        .map(|c| {
            tokio::spawn(async move {
                let mut client = KeepAliveClient::connect(addr).await;
                for i in 0..EACH {
                    let resp = client
                        .get(&format!("/?c={c}&i={i}"), "app.test")
                        .await
                        .expect("the proxy answers");
                    assert_eq!(resp.status, 200);
                }
            })
        })
        .collect();
    for c in clients {
        within(WAIT, c)
            .await
            .expect("a client finishes in time")
            .expect("a client's requests all succeed");
    }
    let before_stop = std::fs::metadata(&access).map_or(0, |m| m.len());
    proxy.signal("TERM");
    let exit = proxy.wait_exit().await;
    assert_eq!(exit.code(), Some(0), "log:\n{}", proxy.log_text());

    // Most lines were written while serving (the workers' 64 KiB writes); every line is in the
    // file after the stop, each whole (one JSON object) and once.
    assert!(
        before_stop >= 64 * 1024,
        "{before_stop} bytes before the stop"
    );
    let lines = file_lines(&access);
    let mut queries = std::collections::HashSet::new();
    for line in &lines {
        let v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: a whole line: {line}"));
        assert_eq!(v["fields"]["status"], 200, "{line}");
        let query = v["fields"]["query"].as_str().expect("a query").to_string();
        assert!(queries.insert(query), "one line a request: {line}");
    }
    let expected: std::collections::HashSet<String> = (0..CLIENTS)
        .flat_map(|c| (0..EACH).map(move |i| format!("c={c}&i={i}")))
        .collect();
    let missing: Vec<_> = expected.difference(&queries).take(5).collect();
    let extra: Vec<_> = queries.difference(&expected).take(5).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "{} lines for {} requests; missing e.g. {missing:?}, unexpected {extra:?}",
        queries.len(),
        expected.len()
    );
}
