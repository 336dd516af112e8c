//! Binary upgrades with the real binary: SIGUSR2 under keep-alive load hands the listening
//! sockets to a new process, which takes the runtime decisions over (no state file here), and
//! the old process finishes gracefully and exits 0 — no request fails, no POST is processed
//! twice. A new process that cannot start leaves the old one serving. And the binary serves on
//! sockets systemd hands it (`systemd-socket-activate`).

mod common;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use common::{ConfigFile, Proxy, two_colour_config};
use switchyard_tests::{KeepAliveClient, TestApp, poll_until};

/// The pid the old process logged for its successor.
fn successor_pid(proxy: &Proxy) -> Option<String> {
    proxy.lines().iter().find_map(|l| {
        l.contains("upgrade: the new process is ready")
            .then(|| l.rsplit("pid=").next().map(|p| p.trim().to_string()))
            .flatten()
    })
}

fn kill(pid: &str, signal: &str) {
    let _ = std::process::Command::new("kill")
        .args([format!("-{signal}"), pid.to_string()])
        .status();
}

/// One keep-alive client's loop: fast GETs, slow GETs and POSTs with unique bodies, until
/// `stop`. A request is sent again only when the connection closed before any answer and,
/// for a POST, no app recorded it (so never twice). Returns the failures.
async fn client_loop(
    addr: SocketAddr,
    id: usize,
    stop: Arc<AtomicBool>,
    done: Arc<AtomicUsize>,
    resent: Arc<AtomicUsize>,
    apps: Arc<[TestApp; 2]>,
) -> Vec<String> {
    let mut failures = Vec::new();
    let mut client = KeepAliveClient::connect(addr).await;
    let mut n = 0usize;
    while !stop.load(Ordering::Relaxed) {
        n += 1;
        let body = format!("{id}-{n}");
        let mut tries = 0;
        loop {
            tries += 1;
            if client.is_closed() {
                client = KeepAliveClient::connect(addr).await;
            }
            let result = match n % 4 {
                0 => client.post("/echo", "x", body.clone()).await,
                1 => client.get("/slow?ms=50", "x").await,
                _ => client.get("/", "x").await,
            };
            match result {
                Ok(r) if r.status == 200 => break,
                Ok(r) => {
                    failures.push(format!("{body}: {} {}", r.status, r.text()));
                    break;
                }
                Err(e) if e.is_connection_closed() && tries < 3 => {
                    let recorded = apps
                        .iter()
                        .any(|a| a.posts().iter().any(|p| p.as_ref() == body.as_bytes()));
                    if n.is_multiple_of(4) && recorded {
                        break;
                    }
                    resent.fetch_add(1, Ordering::Relaxed);
                    client = KeepAliveClient::connect(addr).await;
                }
                Err(e) => {
                    failures.push(format!("{body}: {e}"));
                    break;
                }
            }
        }
        done.fetch_add(1, Ordering::Relaxed);
    }
    failures
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upgrade_under_load_fails_nothing_and_keeps_the_colour() {
    let apps = Arc::new([TestApp::start("green").await, TestApp::start("blue").await]);
    let file = ConfigFile::new(&two_colour_config(apps[0].addr(), apps[1].addr(), ""));
    let mut old = Proxy::start(&["-c", &file.arg()], &[]).await;
    old.wait_healthy().await;
    // A runtime decision the new process must take over (there is no state file).
    let admin = old.admin;
    let r = common::admin_post(admin, "/switch", r#"{"to":"blue"}"#).await;
    assert_eq!(r.status, 200, "{}", r.text());

    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicUsize::new(0));
    let resent = Arc::new(AtomicUsize::new(0));
    let clients: Vec<_> = (0..16)
        .map(|id| {
            tokio::spawn(client_loop(
                old.http,
                id,
                stop.clone(),
                done.clone(),
                resent.clone(),
                apps.clone(),
            ))
        })
        .collect();
    poll_until(Duration::from_secs(10), || async {
        done.load(Ordering::Relaxed) >= 300
    })
    .await;

    // Through the CLI, which returns once the new process serves.
    let out = common::cli(&["upgrade", "--admin", &old.admin_url()], &[]).await;
    assert_eq!(out.code, Some(0), "{}{}", out.stdout, out.stderr);
    let status = old.wait_exit().await;
    assert!(
        status.success(),
        "the old process exits 0: {status}\n{}",
        old.log_text()
    );
    let new_pid = successor_pid(&old).expect("the old process names its successor");
    let before = done.load(Ordering::Relaxed);
    poll_until(Duration::from_secs(10), || async {
        done.load(Ordering::Relaxed) >= before + 300
    })
    .await;
    stop.store(true, Ordering::Relaxed);
    let mut failures = Vec::new();
    for c in clients {
        failures.extend(c.await.expect("client"));
    }

    // The history carried over (there is no history file) with the upgrade in it.
    let history = common::admin_get(admin, "/history", None).await.json();
    let actions: Vec<&str> = history["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .filter_map(|e| e["action"].as_str())
        .collect();
    assert_eq!(
        actions,
        vec!["upgrade", "switch"],
        "newest first: {history}"
    );
    // The colour carried over, and the new process answers on the same sockets.
    let mut client = KeepAliveClient::connect(old.http).await;
    assert_eq!(
        client.get("/", "x").await.expect("answer").colour(),
        Some("blue")
    );
    let mut counts: HashMap<Vec<u8>, usize> = HashMap::new();
    for app in apps.iter() {
        for p in app.posts() {
            *counts.entry(p.to_vec()).or_default() += 1;
        }
    }
    let twice = counts.values().filter(|n| **n > 1).count();
    kill(&new_pid, "TERM");
    println!(
        "upgrade under load: {} requests, {} failed, {twice} POSTs processed twice, {} sent again after a keep-alive connection closed with no answer (never a POST an app had recorded)",
        done.load(Ordering::Relaxed),
        failures.len(),
        resent.load(Ordering::Relaxed)
    );
    assert!(failures.is_empty(), "failed: {failures:?}");
    assert_eq!(twice, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_binary_that_cannot_start_leaves_the_old_one_serving() {
    let green = TestApp::start("green").await;
    let blue = TestApp::start("blue").await;
    // Run a copy of the binary, so the test can replace the file on disk.
    let dir = tempfile::tempdir().expect("tempdir");
    let copy = dir.path().join("switchyard");
    std::fs::copy(env!("CARGO_BIN_EXE_switchyard"), &copy).expect("copy the binary");
    let file = ConfigFile::new(&two_colour_config(green.addr(), blue.addr(), ""));
    let old = Proxy::start_binary(&copy, &["-c", &file.arg()], &[]).await;
    old.wait_healthy().await;
    // The "new version" on disk exits 1 at once.
    std::fs::remove_file(&copy).expect("remove");
    std::fs::write(&copy, "#!/bin/sh\necho broken build >&2\nexit 1\n").expect("write");
    std::fs::set_permissions(&copy, std::os::unix::fs::PermissionsExt::from_mode(0o755))
        .expect("chmod");
    // Through the CLI (POST /upgrade): it waits for the outcome and exits 1.
    let out = common::cli(&["upgrade", "--admin", &old.admin_url()], &[]).await;
    assert_eq!(out.code, Some(1), "{}{}", out.stdout, out.stderr);
    assert!(out.stderr.contains("upgrade failed"), "{}", out.stderr);
    assert_eq!(
        old.get("/").await.text(),
        "green",
        "the old process still serves"
    );
    assert!(
        old.log_text().contains("exited before it was ready"),
        "{}",
        old.log_text()
    );
    let history = common::admin_get(old.admin, "/history", None).await.json();
    let last = &history["entries"][0];
    assert_eq!(last["action"], "upgrade", "{history}");
    assert_eq!(last["ok"], false);
    assert!(
        last["error"]
            .as_str()
            .is_some_and(|e| e.contains("exited before it was ready")),
        "{history}"
    );
    // A failed upgrade leaves the old process taking decisions again.
    let r = common::admin_post(old.admin, "/switch", r#"{"to":"blue"}"#).await;
    assert_eq!(r.status, 200, "{}", r.text());
    // And by signal.
    old.signal("USR2");
    poll_until(Duration::from_secs(10), || async {
        old.lines()
            .iter()
            .filter(|l| l.contains("upgrade failed; this process keeps serving"))
            .count()
            >= 2
    })
    .await;
    assert_eq!(
        old.get("/").await.text(),
        "blue",
        "the old process still serves"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn it_serves_on_a_socket_systemd_hands_it() {
    let Some(activate) = [
        "/usr/bin/systemd-socket-activate",
        "/bin/systemd-socket-activate",
    ]
    .into_iter()
    .find(|p| std::path::Path::new(p).exists()) else {
        assert!(
            std::env::var_os("CI").is_none(),
            "systemd-socket-activate is missing (Debian's systemd package ships it)"
        );
        panic!("systemd-socket-activate is missing: install systemd to run this test");
    };
    let green = TestApp::start("green").await;
    let blue = TestApp::start("blue").await;
    let port = common::closed_port().await;
    // The config names the address; the socket comes from systemd, matched by its name.
    let config = two_colour_config(green.addr(), blue.addr(), "")
        .replace("http = [\"127.0.0.1:0\"]", &format!("http = [\"{port}\"]"));
    let file = ConfigFile::new(&config);
    let mut child = tokio::process::Command::new(activate)
        .args([
            "-l",
            &port.to_string(),
            "--fdname=http",
            common::BIN,
            "serve",
            "-c",
        ])
        .arg(file.arg())
        .env("SWITCHYARD_LOG", "warn")
        .kill_on_drop(true)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("systemd-socket-activate starts");
    // The listening socket exists before switchyard runs: the first request starts it and is
    // served by it on the inherited socket.
    let answered = Arc::new(std::sync::Mutex::new(None));
    poll_until(Duration::from_secs(20), || {
        let answered = answered.clone();
        async move {
            let Ok(mut c) = KeepAliveClient::try_connect(port).await else {
                return false;
            };
            match c.get("/", "x").await {
                Ok(r) if r.status == 200 => {
                    *answered.lock().expect("lock") = r.colour().map(str::to_string);
                    true
                }
                _ => false,
            }
        }
    })
    .await;
    assert_eq!(
        answered.lock().expect("lock").as_deref(),
        Some("green"),
        "served on the socket systemd made"
    );
    let _ = child.start_kill();
    let _ = child.wait().await;
}

/// A WebSocket echo app that also answers plain health checks.
async fn ws_app() -> SocketAddr {
    use futures_util::{SinkExt, StreamExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut peek = [0u8; 16];
                if let Ok(n) = stream.peek(&mut peek).await {
                    if peek[..n].starts_with(b"GET /health") {
                        use tokio::io::AsyncWriteExt;
                        let mut stream = stream;
                        let _ = stream
                            .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok")
                            .await;
                        return;
                    }
                }
                let Ok(mut ws) = tokio_tungstenite::accept_async(stream).await else {
                    return;
                };
                while let Some(Ok(msg)) = ws.next().await {
                    if let tokio_tungstenite::tungstenite::Message::Text(t) = msg {
                        let echo =
                            tokio_tungstenite::tungstenite::Message::text(format!("echo {t}"));
                        if ws.send(echo).await.is_err() {
                            return;
                        }
                    }
                }
            });
        }
    });
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_websocket_keeps_echoing_on_the_old_process_until_it_closes() {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let app = ws_app().await;
    let file = ConfigFile::new(&two_colour_config(app, app, ""));
    let mut old = Proxy::start(&["-c", &file.arg()], &[]).await;
    old.wait_healthy().await;
    let stream = tokio::net::TcpStream::connect(old.http)
        .await
        .expect("connect");
    let req = format!("ws://{}/chat", old.http)
        .into_client_request()
        .expect("request");
    let (mut ws, resp) = tokio_tungstenite::client_async(req, stream)
        .await
        .expect("handshake through the proxy");
    assert_eq!(resp.status(), 101);
    let echo = async |ws: &mut tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>,
                      text: &str| {
        ws.send(Message::text(text)).await.ok()?;
        match ws.next().await {
            Some(Ok(Message::Text(t))) => Some(t.to_string()),
            _ => None,
        }
    };
    assert_eq!(
        echo(&mut ws, "before").await.as_deref(),
        Some("echo before")
    );

    let out = common::cli(&["upgrade", "--admin", &old.admin_url()], &[]).await;
    assert_eq!(out.code, Some(0), "{}{}", out.stdout, out.stderr);
    let new_pid = successor_pid(&old).expect("the old process names its successor");
    // The new process serves new requests; the open WebSocket stays on the old one.
    for n in 0..5 {
        let text = format!("after {n}");
        assert_eq!(
            echo(&mut ws, &text).await.as_deref(),
            Some(format!("echo {text}").as_str()),
            "the WebSocket keeps echoing across the upgrade"
        );
    }
    assert!(
        !old.lines()
            .iter()
            .any(|l| l.contains("all connections finished; stopped")),
        "the old process waits for the WebSocket"
    );
    let _ = ws.close(None).await;
    drop(ws);
    let status = old.wait_exit().await;
    assert!(status.success(), "{status}");
    kill(&new_pid, "TERM");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn systemd_hears_ready_reloading_and_stopping() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("notify.sock");
    let sock = tokio::net::UnixDatagram::bind(&path).expect("bind the notify socket");
    let green = TestApp::start("green").await;
    let blue = TestApp::start("blue").await;
    let file = ConfigFile::new(&two_colour_config(green.addr(), blue.addr(), ""));
    let notify = path.display().to_string();
    let mut proxy = Proxy::start(&["-c", &file.arg()], &[("NOTIFY_SOCKET", &notify)]).await;
    let mut buf = vec![0u8; 256];
    let mut next = async || {
        let n = switchyard_tests::within(Duration::from_secs(10), sock.recv(&mut buf))
            .await
            .expect("a notification in time")
            .expect("recv");
        String::from_utf8_lossy(&buf[..n]).into_owned()
    };
    assert_eq!(next().await, "READY=1");
    proxy.signal("HUP");
    assert_eq!(next().await, "RELOADING=1");
    assert_eq!(next().await, "READY=1");
    proxy.signal("TERM");
    assert_eq!(next().await, "STOPPING=1");
    assert!(proxy.wait_exit().await.success());
}
