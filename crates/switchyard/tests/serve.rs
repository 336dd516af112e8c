//! `switchyard serve`: the embedded default config on its default ports, and the start errors
//! that must exit 1 with a reason (bad config, port in use, token variable missing).

mod common;

use common::{ConfigFile, Proxy, admin_get, cli, closed_port, error_lines, two_colour_config};
use switchyard_tests::KeepAliveClient;

#[tokio::test]
#[ignore = "binds the default ports 0.0.0.0:8080 and 127.0.0.1:9901, often taken on a developer machine; run with --ignored (.ci/run does)"]
async fn without_a_config_it_serves_the_embedded_default() {
    // The default config listens on 0.0.0.0:8080 and 127.0.0.1:9901.
    for addr in ["0.0.0.0:8080", "127.0.0.1:9901"] {
        if let Err(e) = std::net::TcpListener::bind(addr) {
            panic!("the default-ports test needs {addr} free: {e}");
        }
    }
    let proxy = match Proxy::try_start(&[], &[]).await {
        Ok(proxy) => proxy,
        Err(output) => panic!("switchyard serve did not start:\n{output}"),
    };
    assert_eq!(proxy.http.port(), 8080);
    assert_eq!(proxy.admin.to_string(), "127.0.0.1:9901");
    let healthz = admin_get(proxy.admin, "/healthz", None).await;
    assert_eq!(healthz.status, 200);
    assert_eq!(healthz.text().trim(), "ok");
    // Nothing is expected on :5000/:5001 (502/503), but whatever is there, the proxy answers.
    let mut client = KeepAliveClient::connect("127.0.0.1:8080".parse().expect("an address")).await;
    let resp = client
        .get("/", "localhost")
        .await
        .expect("the proxy answers");
    println!("GET :8080/ -> {}", resp.status);
    assert!(resp.status.as_u16() >= 200, "{resp:?}");
}

#[tokio::test]
async fn a_bad_config_is_refused_with_every_problem() {
    let file = ConfigFile::new(
        r#"[listen]
http = ["127.0.0.1:0"]
bogus = 1

[services.app]
active = "green"

[services.app.pools]
green = ["127.0.0.1:5000"]
"#,
    );
    let out = cli(&["serve", "-c", &file.arg()], &[]).await;
    assert_eq!(out.code, Some(1), "{out:?}");
    assert_eq!(
        error_lines(&out.stderr, &file.path).first().map(|p| p.0),
        Some(3)
    );
}

#[tokio::test]
async fn a_port_in_use_is_refused() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a port");
    let addr = taken.local_addr().expect("its address");
    let upstream = closed_port().await;
    let config = two_colour_config(upstream, upstream, "")
        .replace("http = [\"127.0.0.1:0\"]", &format!("http = [\"{addr}\"]"));
    let file = ConfigFile::new(&config);
    let out = cli(&["serve", "-c", &file.arg()], &[]).await;
    assert_eq!(out.code, Some(1), "{out:?}");
    assert!(out.stderr.starts_with("error: "), "{}", out.stderr);
    assert!(out.stderr.contains(&addr.to_string()), "{}", out.stderr);
}

#[tokio::test]
async fn a_missing_token_variable_is_refused() {
    let upstream = closed_port().await;
    let config = two_colour_config(
        upstream,
        upstream,
        "token_env = \"SWITCHYARD_TEST_UNSET_TOKEN\"\n",
    );
    let file = ConfigFile::new(&config);
    let out = cli(&["serve", "-c", &file.arg()], &[]).await;
    assert_eq!(out.code, Some(1), "{out:?}");
    assert!(
        out.stderr.contains("SWITCHYARD_TEST_UNSET_TOKEN"),
        "{}",
        out.stderr
    );
}

#[tokio::test]
async fn json_logs_carry_the_started_line() {
    let upstream = closed_port().await;
    let file = ConfigFile::new(&two_colour_config(upstream, upstream, ""));
    let proxy = Proxy::start(&["-c", &file.arg(), "--log-format", "json"], &[]).await;
    let line = proxy
        .lines()
        .into_iter()
        .find(|l| l.contains("switchyard started"))
        .expect("the started line");
    let json: serde_json::Value = serde_json::from_str(&line).expect("a JSON log line");
    assert_eq!(json["fields"]["admin"], proxy.admin.to_string());
}
