//! The generated nginx, HAProxy and Switchyard configs say what `compare` promises, and the
//! real tools accept them (those two tests are `#[ignore]`d, as nginx and HAProxy are not
//! installed everywhere: `cargo test -p switchyard-bench --test configs -- --ignored`); the HAProxy
//! runtime-socket talk works against a fake socket; `compare` runs end to end on the direct
//! upstream alone (also with `--syscalls`, and with `--protocol https`, where it has no row).
//! The TLS and HTTP/2 configs are checked in `tls_configs.rs`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;

use switchyard_bench::compare::configs;
use switchyard_bench::compare::targets::which;
use switchyard_bench::flip::{haproxy_command, haproxy_flip_command};

mod support;

fn addr(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

fn colours() -> Vec<(String, SocketAddr)> {
    vec![("green".into(), addr(5000)), ("blue".into(), addr(5001))]
}

/// nginx.conf for a proxy on :8080 with its prefix and upstream file in `dir`.
fn nginx_conf_in(dir: &Path, access_log: Option<&Path>, request_id: bool) -> (String, PathBuf) {
    let upstream_file = dir.join("upstream.conf");
    let conf = configs::nginx_conf(&configs::NginxParams {
        prefix: dir,
        listen: addr(8080),
        upstream_file: &upstream_file,
        access_log,
        tls: None,
        request_id,
    });
    (conf, upstream_file)
}

#[test]
fn nginx_config_has_the_promised_directives() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (conf, upstream_file) = nginx_conf_in(dir.path(), None, false);
    for d in [
        "worker_processes 1;",
        "daemon off;",
        "access_log off;",
        "listen 127.0.0.1:8080",
        "proxy_pass http://app;",
        "proxy_http_version 1.1;",
        "proxy_set_header Connection \"\";",
        "proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;",
        "proxy_set_header X-Forwarded-Proto $scheme;",
        "proxy_set_header X-Forwarded-Host $http_host;",
        "keepalive_requests 100000000;",
    ] {
        assert!(conf.contains(d), "nginx.conf lacks `{d}`:\n{conf}");
    }
    assert!(conf.contains(&format!("include {};", upstream_file.display())));
    assert!(
        !conf.contains("X-Request-Id"),
        "ids only when asked:\n{conf}"
    );
    let up = configs::nginx_upstream(&[addr(5000)]);
    assert!(up.contains("server 127.0.0.1:5000;"));
    assert!(up.contains("keepalive 128;"));
}

#[test]
fn nginx_adds_request_ids_like_switchyard_when_asked() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (conf, _) = nginx_conf_in(dir.path(), None, true);
    for d in [
        "map $http_x_request_id $forward_request_id {",
        "\"\" $request_id;",
        "default $http_x_request_id;",
        "proxy_set_header X-Request-Id $forward_request_id;",
        "add_header X-Request-Id $forward_request_id always;",
    ] {
        assert!(conf.contains(d), "nginx.conf lacks `{d}`:\n{conf}");
    }
}

/// Reads one request head from `stream` and answers it 200 with an empty body; `None` once
/// the peer closes.
async fn answer_once(stream: &mut tokio::net::TcpStream) -> Option<String> {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let mut head = Vec::new();
    let mut buf = [0u8; 4096];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = stream.read(&mut buf).await.ok()?;
        if n == 0 {
            return None;
        }
        head.extend_from_slice(&buf[..n]);
    }
    stream
        .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")
        .await
        .ok()?;
    Some(String::from_utf8_lossy(&head).to_ascii_lowercase())
}

/// The value of `name` (lower case) in a lower-cased head, if present.
fn field<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
        .map(str::trim)
}

#[tokio::test]
#[ignore = "needs nginx installed: cargo test -p switchyard-bench --test configs -- --ignored"]
async fn nginx_sends_and_echoes_a_request_id_when_asked() {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let nginx =
        which("nginx").expect("nginx is installed (this test is for machines that have it)");
    let upstream = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind upstream");
    let colours = vec![("green".to_string(), upstream.local_addr().expect("addr"))];
    // The upstream answers from the start: start_nginx waits for an answer through nginx
    // (its readiness probe, skipped below); every head is kept.
    let (heads_tx, mut heads) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = upstream.accept().await {
            let tx = heads_tx.clone();
            tokio::spawn(async move {
                while let Some(head) = answer_once(&mut s).await {
                    if tx.send(head).is_err() {
                        return;
                    }
                }
            });
        }
    });
    let dir = tempfile::tempdir().expect("tempdir");
    let proxy = switchyard_bench::compare::targets::start_nginx(
        &nginx,
        dir.path(),
        &colours,
        false,
        true,
        None,
    )
    .await
    .expect("nginx starts");
    for client_id in [None, Some("abc-123")] {
        let mut c = tokio::net::TcpStream::connect(proxy.addr)
            .await
            .expect("connect");
        let extra = client_id.map_or(String::new(), |id| format!("X-Request-Id: {id}\r\n"));
        c.write_all(
            format!("GET /probe HTTP/1.1\r\nHost: app\r\n{extra}Connection: close\r\n\r\n")
                .as_bytes(),
        )
        .await
        .expect("send");
        let mut answer = Vec::new();
        c.read_to_end(&mut answer).await.expect("read answer");
        let answer = String::from_utf8_lossy(&answer).to_ascii_lowercase();
        let head = loop {
            let h = heads.recv().await.expect("the upstream saw the request");
            if h.starts_with("get /probe ") {
                break h;
            }
        };
        let sent = field(&head, "x-request-id")
            .expect("nginx sent an X-Request-Id")
            .to_string();
        match client_id {
            Some(id) => assert_eq!(sent, id, "the client's id passes: {head}"),
            None => assert!(
                sent.len() == 32 && sent.bytes().all(|b| b.is_ascii_hexdigit()),
                "a generated id, 32 hex digits like Switchyard's: {sent:?}"
            ),
        }
        assert_eq!(
            field(&answer, "x-request-id"),
            Some(sent.as_str()),
            "the same id echoed: {answer}"
        );
    }
}

#[test]
fn haproxy_config_has_the_promised_directives() {
    let dir = tempfile::tempdir().expect("tempdir");
    let socket = dir.path().join("haproxy.sock");
    let c = colours();
    let conf = configs::haproxy_conf(&configs::HaproxyParams {
        listen: addr(8081),
        servers: &c,
        active: "green",
        socket: &socket,
        tls: None,
    });
    for d in [
        "nbthread 1",
        "http-reuse always",
        "option forwardfor",
        "http-request set-header X-Forwarded-Proto http",
        "http-request set-header X-Forwarded-Host %[req.hdr(host)]",
        "bind 127.0.0.1:8081",
        "server green 127.0.0.1:5000\n",
        "server blue 127.0.0.1:5001 disabled",
        "level admin",
    ] {
        assert!(conf.contains(d), "haproxy.cfg lacks `{d}`:\n{conf}");
    }
    assert!(conf.contains(&format!("stats socket {}", socket.display())));
}

#[test]
#[ignore = "needs nginx installed: cargo test -p switchyard-bench --test configs -- --ignored"]
fn nginx_accepts_the_config() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (conf, upstream_file) = nginx_conf_in(dir.path(), None, true);
    let up = configs::nginx_upstream(&[addr(5000)]);
    std::fs::write(&upstream_file, &up).expect("write upstream");
    support::assert_nginx_accepts(dir.path(), &conf);
}

#[test]
#[ignore = "needs HAProxy installed: cargo test -p switchyard-bench --test configs -- --ignored"]
fn haproxy_accepts_the_config() {
    let dir = tempfile::tempdir().expect("tempdir");
    let socket = dir.path().join("haproxy.sock");
    let c = colours();
    let conf = configs::haproxy_conf(&configs::HaproxyParams {
        listen: addr(8081),
        servers: &c,
        active: "green",
        socket: &socket,
        tls: None,
    });
    support::assert_haproxy_accepts(dir.path(), &conf);
}

#[test]
fn switchyard_config_is_valid_and_single_threaded() {
    let c = colours();
    let text = configs::switchyard_conf(&configs::SwitchyardParams {
        listen: addr(8082),
        admin: addr(9902),
        pools: &c,
        active: "green",
        access_log: None,
        access_format: None,
        generate_request_id: true,
        tls: None,
    });
    let config = switchyard_config::parse_str(&text, "generated.toml")
        .unwrap_or_else(|e| panic!("invalid generated config: {e}\n{text}"));
    assert_eq!(config.runtime.worker_threads, Some(1));
    let app = &config.services["app"];
    assert_eq!(app.active, "green");
    assert_eq!(app.pools.len(), 2);
    assert!(!config.log.access, "no access log unless asked for");
}

#[test]
fn access_logs_are_on_for_both_or_off_for_both() {
    let c = colours();
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("access.log");
    let text = configs::switchyard_conf(&configs::SwitchyardParams {
        listen: addr(8082),
        admin: addr(9902),
        pools: &c,
        active: "green",
        access_log: Some(&file),
        access_format: None,
        generate_request_id: true,
        tls: None,
    });
    let config = switchyard_config::parse_str(&text, "generated.toml")
        .unwrap_or_else(|e| panic!("invalid generated config: {e}\n{text}"));
    assert!(config.log.access);
    assert_eq!(config.log.access_file.as_deref(), Some(file.as_path()));
    assert_eq!(
        config.log.access_format, None,
        "Switchyard's own default format"
    );
    // `--access-format combined`: the line nginx's `combined` writes.
    let combined = configs::switchyard_conf(&configs::SwitchyardParams {
        listen: addr(8082),
        admin: addr(9902),
        pools: &c,
        active: "green",
        access_log: Some(&file),
        access_format: Some("combined"),
        generate_request_id: false,
        tls: None,
    });
    let config = switchyard_config::parse_str(&combined, "generated.toml")
        .unwrap_or_else(|e| panic!("invalid generated config: {e}\n{combined}"));
    assert_eq!(
        config.log.access_format,
        Some(switchyard_config::AccessFormat::Combined)
    );
    assert!(!config.services["app"].generate_request_id);
    let (conf, _) = nginx_conf_in(dir.path(), Some(&file), false);
    let wanted = format!(
        "access_log {} combined buffer=64k flush=100ms;",
        file.display()
    );
    assert!(conf.contains(&wanted), "{conf}");
    assert!(!conf.contains("access_log off;"), "{conf}");
}

#[test]
fn haproxy_flip_commands() {
    let c = vec!["green".to_string(), "blue".to_string()];
    assert_eq!(
        haproxy_flip_command("app", &c, "blue"),
        "set server app/blue state ready; set server app/green state maint"
    );
}

#[tokio::test]
async fn haproxy_socket_talk() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("fake.sock");
    let listener = tokio::net::UnixListener::bind(&path).expect("bind unix socket");
    let server = tokio::spawn(async move {
        use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
        let (stream, _) = listener.accept().await.expect("accept");
        let mut stream = BufReader::new(stream);
        let mut line = String::new();
        stream.read_line(&mut line).await.expect("read");
        stream.get_mut().write_all(b"\n").await.expect("write");
        line
    });
    let answer = haproxy_command(&path, "set server app/blue state ready")
        .await
        .expect("talk");
    assert_eq!(answer.trim(), "");
    assert_eq!(
        server.await.expect("join"),
        "set server app/blue state ready\n"
    );
}

#[test]
fn compare_runs_end_to_end_on_the_direct_upstream() {
    let out = Command::new(env!("CARGO_BIN_EXE_switchyard-bench"))
        .args([
            "compare", "--only", "direct", "--rounds", "2", "-d", "300ms",
        ])
        .args(["--warmup", "0s", "--idle-conns", "0", "-c", "4"])
        .output()
        .expect("run compare");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let md = String::from_utf8_lossy(&out.stdout);
    assert!(md.contains("| upstream directly (ceiling) |"), "{md}");
    assert!(stderr.contains("round 2/2 direct"), "{stderr}");
    assert!(md.contains("requests/s"), "{md}");
}

#[test]
fn compare_counts_system_calls_per_request_where_strace_exists() {
    let out = Command::new(env!("CARGO_BIN_EXE_switchyard-bench"))
        .args([
            "compare", "--only", "direct", "--rounds", "1", "-d", "300ms",
        ])
        .args([
            "--warmup",
            "0s",
            "--idle-conns",
            "0",
            "-c",
            "4",
            "--syscalls",
        ])
        .output()
        .expect("run compare");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let md = String::from_utf8_lossy(&out.stdout);
    if which("strace").is_none() {
        // Without strace the run says so; under CI strace must be there (.ci/run installs it).
        assert!(md.contains("strace is not installed"), "{md}");
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI=true: strace is missing, so the count was not tested"
        );
        return;
    }
    assert!(md.contains("System calls per request"), "{md}\n{stderr}");
    let row = md
        .lines()
        .find(|l| l.starts_with("| direct | "))
        .unwrap_or_else(|| panic!("no syscall row for direct:\n{md}\n{stderr}"));
    let per_request: f64 = row
        .split('|')
        .nth(2)
        .and_then(|c| c.trim().parse().ok())
        .unwrap_or_else(|| panic!("no count in {row}"));
    // At least one read and one write for each request the upstream answers.
    assert!(per_request >= 2.0, "{row}");
}

#[test]
fn tls_rows_have_no_direct_row_and_say_why() {
    let out = Command::new(env!("CARGO_BIN_EXE_switchyard-bench"))
        .args(["compare", "--only", "direct", "--protocol", "https"])
        .args([
            "--rounds",
            "1",
            "-d",
            "100ms",
            "--warmup",
            "0s",
            "--idle-conns",
            "0",
        ])
        .output()
        .expect("run compare");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let md = String::from_utf8_lossy(&out.stdout);
    assert!(md.starts_with("HTTPS: HTTP/1.1 over TLS 1.3"), "{md}");
    assert!(!md.contains("| upstream directly"), "{md}");
    assert!(
        md.contains("no row for the upstream directly: it speaks plain HTTP/1.1 only"),
        "{md}"
    );
}
