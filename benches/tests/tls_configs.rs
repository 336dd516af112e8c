//! The configs of the TLS and HTTP/2 rows (`compare --protocol https|h2`) say what the rows
//! promise: TLS 1.3 only, the run's certificate, HTTP/2 by ALPN only on the h2 rows, and
//! `X-Forwarded-Proto: https`. The real tools' checks (`nginx -t`, `haproxy -c`) and a whole
//! compare run over TLS are `#[ignore]`d, as they need nginx, HAProxy and a built Switchyard:
//! `cargo build -p switchyard && cargo test -p switchyard-bench --test tls_configs -- --ignored`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;

use switchyard_bench::compare::configs::{self, TlsListen};
use switchyard_bench::tls::{CertFiles, SelfSigned};

mod support;

fn addr(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

fn colours() -> Vec<(String, SocketAddr)> {
    vec![("green".into(), addr(5000)), ("blue".into(), addr(5001))]
}

/// A certificate written to `dir`, as a run makes it.
fn cert_files(dir: &Path) -> CertFiles {
    SelfSigned::generate()
        .expect("certificate")
        .write(dir)
        .expect("write certificate")
}

fn nginx_conf(dir: &Path, files: &CertFiles, h2: bool) -> (String, PathBuf) {
    let upstream_file = dir.join("upstream.conf");
    std::fs::write(&upstream_file, configs::nginx_upstream(&[addr(5000)])).expect("upstream");
    let conf = configs::nginx_conf(&configs::NginxParams {
        prefix: dir,
        listen: addr(8443),
        upstream_file: &upstream_file,
        access_log: None,
        tls: Some(TlsListen { files, h2 }),
        request_id: false,
    });
    (conf, upstream_file)
}

fn haproxy_conf(dir: &Path, files: &CertFiles, h2: bool) -> String {
    configs::haproxy_conf(&configs::HaproxyParams {
        listen: addr(8444),
        servers: &colours(),
        active: "green",
        socket: &dir.join("haproxy.sock"),
        tls: Some(TlsListen { files, h2 }),
    })
}

#[test]
fn nginx_serves_tls13_with_the_runs_certificate_and_http2_only_on_h2_rows() {
    let dir = tempfile::tempdir().expect("tempdir");
    let files = cert_files(dir.path());
    let (h2, _) = nginx_conf(dir.path(), &files, true);
    for d in [
        "listen 127.0.0.1:8443 ssl http2 backlog=4096;".to_string(),
        "ssl_protocols TLSv1.3;".to_string(),
        format!("ssl_certificate {};", files.cert.display()),
        format!("ssl_certificate_key {};", files.key.display()),
        "proxy_pass http://app;".to_string(),
        "proxy_set_header X-Forwarded-Proto $scheme;".to_string(),
        "keepalive_requests 100000000;".to_string(),
    ] {
        assert!(h2.contains(&d), "nginx.conf lacks `{d}`:\n{h2}");
    }
    let (https, _) = nginx_conf(dir.path(), &files, false);
    assert!(
        https.contains("listen 127.0.0.1:8443 ssl backlog=4096;"),
        "{https}"
    );
    assert!(https.contains("ssl_protocols TLSv1.3;"), "{https}");
    assert!(
        !https.contains("http2"),
        "HTTP/1.1 rows offer no h2:\n{https}"
    );
}

#[test]
fn haproxy_serves_tls13_with_the_runs_certificate() {
    let dir = tempfile::tempdir().expect("tempdir");
    let files = cert_files(dir.path());
    let h2 = haproxy_conf(dir.path(), &files, true);
    let bind = format!(
        "bind 127.0.0.1:8444 ssl crt {} ssl-min-ver TLSv1.3 alpn h2,http/1.1\n",
        files.combined.display()
    );
    assert!(h2.contains(&bind), "haproxy.cfg lacks `{bind}`:\n{h2}");
    assert!(h2.contains("http-request set-header X-Forwarded-Proto https"));
    let https = haproxy_conf(dir.path(), &files, false);
    assert!(
        https.contains("ssl-min-ver TLSv1.3 alpn http/1.1\n"),
        "{https}"
    );
    // Every ALPN list offers http/1.1 alone (the temp dir's random name may hold "h2", so the
    // lists are read, not the whole text searched).
    let alpn: Vec<&str> = https
        .split("alpn ")
        .skip(1)
        .filter_map(|rest| rest.split_whitespace().next())
        .collect();
    assert_eq!(alpn, vec!["http/1.1"], "{https}");
    let pem = std::fs::read_to_string(&files.combined).expect("combined file");
    assert!(pem.contains("BEGIN CERTIFICATE") && pem.contains("BEGIN PRIVATE KEY"));
}

#[test]
fn switchyard_serves_https_only_with_the_runs_certificate() {
    let dir = tempfile::tempdir().expect("tempdir");
    let files = cert_files(dir.path());
    let text = configs::switchyard_conf(&configs::SwitchyardParams {
        listen: addr(8445),
        admin: addr(9903),
        pools: &colours(),
        active: "green",
        access_log: None,
        access_format: None,
        generate_request_id: true,
        tls: Some(TlsListen {
            files: &files,
            h2: true,
        }),
    });
    let config = switchyard_config::parse_str(&text, "generated.toml")
        .unwrap_or_else(|e| panic!("invalid generated config: {e}\n{text}"));
    assert!(config.listen.http.is_empty(), "{text}");
    assert_eq!(config.listen.https, vec![addr(8445)]);
    assert_eq!(config.tls.certs.len(), 1);
    assert_eq!(config.tls.certs[0].cert, files.cert);
    assert_eq!(config.tls.certs[0].key, files.key);
    assert_eq!(config.runtime.worker_threads, Some(1));
    assert!(!config.log.access);
}

#[test]
#[ignore = "needs nginx installed: cargo test -p switchyard-bench --test tls_configs -- --ignored"]
fn nginx_accepts_the_tls_configs() {
    for h2 in [false, true] {
        let dir = tempfile::tempdir().expect("tempdir");
        let files = cert_files(dir.path());
        let (conf, _) = nginx_conf(dir.path(), &files, h2);
        support::assert_nginx_accepts(dir.path(), &conf);
    }
}

#[test]
#[ignore = "needs HAProxy installed: cargo test -p switchyard-bench --test tls_configs -- --ignored"]
fn haproxy_accepts_the_tls_configs() {
    for h2 in [false, true] {
        let dir = tempfile::tempdir().expect("tempdir");
        let files = cert_files(dir.path());
        support::assert_haproxy_accepts(dir.path(), &haproxy_conf(dir.path(), &files, h2));
    }
}

/// A short `compare` over TLS against every proxy; each row must serve every request.
fn compare_over(protocol: &str, title: &str) {
    let exe = PathBuf::from(env!("CARGO_BIN_EXE_switchyard-bench"));
    let switchyard = exe.with_file_name("switchyard");
    assert!(
        switchyard.is_file(),
        "{} is missing: cargo build -p switchyard first",
        switchyard.display()
    );
    let out = Command::new(&exe)
        .args(["compare", "--protocol", protocol, "--rounds", "1"])
        .args(["-d", "500ms", "--warmup", "0s", "--idle-conns", "10"])
        .args(["-c", "8", "--streams", "4", "--syscalls"])
        .arg("--switchyard")
        .arg(&switchyard)
        .output()
        .expect("run compare");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let md = String::from_utf8_lossy(&out.stdout);
    for name in ["switchyard", "nginx", "haproxy"] {
        let row = md
            .lines()
            .find(|l| l.starts_with(&format!("| {name} | ")))
            .unwrap_or_else(|| panic!("no {name} row:\n{md}\n{stderr}"));
        let cells: Vec<&str> = row.split('|').map(str::trim).collect();
        let rps: f64 = cells[2].parse().unwrap_or(0.0);
        assert!(rps > 0.0, "{name} served nothing: {row}");
        assert_eq!(cells[cells.len() - 2], "0", "{name} failed requests: {row}");
    }
    assert!(md.contains(title), "{md}");
    assert!(md.contains("System calls per request"), "{md}");
    assert!(md.contains("MISSED") || md.contains("met"), "{md}");
}

#[test]
#[ignore = "needs nginx, HAProxy and a built switchyard: see the module doc"]
fn compare_runs_https_rows_end_to_end() {
    compare_over("https", "HTTPS: HTTP/1.1 over TLS 1.3");
}

#[test]
#[ignore = "needs nginx, HAProxy and a built switchyard: see the module doc"]
fn compare_runs_h2_rows_end_to_end() {
    compare_over("h2", "HTTP/2 over TLS 1.3");
}
