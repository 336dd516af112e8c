//! The generated nginx, HAProxy and Switchyard configs say what `compare` promises, and the
//! real tools accept them (those two tests are `#[ignore]`d, as nginx and HAProxy are not
//! installed everywhere: `cargo test -p switchyard-bench --test configs -- --ignored`); the HAProxy
//! runtime-socket talk works against a fake socket; `compare` runs end to end on the direct
//! upstream alone (also with `--syscalls`, and with `--protocol https`, where it has no row).
//! The TLS and HTTP/2 configs are checked in `tls_configs.rs`.

use std::net::SocketAddr;
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

#[test]
fn nginx_config_has_the_promised_directives() {
    let dir = tempfile::tempdir().expect("tempdir");
    let upstream_file = dir.path().join("upstream.conf");
    let conf = configs::nginx_conf(&configs::NginxParams {
        prefix: dir.path(),
        listen: addr(8080),
        upstream_file: &upstream_file,
        access_log: None,
        tls: None,
    });
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
    let up = configs::nginx_upstream(&[addr(5000)]);
    assert!(up.contains("server 127.0.0.1:5000;"));
    assert!(up.contains("keepalive 128;"));
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
    let upstream_file = dir.path().join("upstream.conf");
    let conf = configs::nginx_conf(&configs::NginxParams {
        prefix: dir.path(),
        listen: addr(8080),
        upstream_file: &upstream_file,
        access_log: None,
        tls: None,
    });
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
    let upstream_file = dir.path().join("upstream.conf");
    let conf = configs::nginx_conf(&configs::NginxParams {
        prefix: dir.path(),
        listen: addr(8080),
        upstream_file: &upstream_file,
        access_log: Some(&file),
        tls: None,
    });
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
