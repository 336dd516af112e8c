//! `GET /metrics` and `GET /stats` on a real proxy in front of real apps: the exposition parses
//! strictly, and the counters move as requests, retries, switches and reloads happen.

mod common;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request};
use http_body_util::Full;
use switchyard_proxy::ProxyHandle;
use switchyard_tests::{KeepAliveClient, Resp, TestApp, poll_until};

/// One sample: its name, labels and value.
#[derive(Debug, Clone, PartialEq)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

/// A parsed exposition: family types by name, and every sample.
#[derive(Debug, Default)]
struct Exposition {
    types: BTreeMap<String, String>,
    samples: Vec<Sample>,
}

impl Exposition {
    /// The value of the sample `name` with exactly these labels.
    fn get(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let want: BTreeMap<String, String> = labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        self.samples
            .iter()
            .find(|s| s.name == name && s.labels == want)
            .map(|s| s.value)
    }

    /// Like `get`, 0 when the sample is absent.
    fn val(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.get(name, labels).unwrap_or(0.0)
    }
}

/// Parses the OpenMetrics text format strictly: every line is a known comment or a well-formed
/// sample of a family declared just before it, label values are properly escaped, no sample is
/// repeated, and the text ends with `# EOF`.
fn parse(text: &str) -> Exposition {
    let mut out = Exposition::default();
    assert!(
        text.ends_with("# EOF\n"),
        "the exposition must end with # EOF"
    );
    let body = &text[..text.len() - "# EOF\n".len()];
    let mut current: Option<String> = None;
    let mut seen = std::collections::HashSet::new();
    for (n, line) in body.lines().enumerate() {
        let n = n + 1;
        if let Some(rest) = line.strip_prefix("# ") {
            let (kind, rest) = rest
                .split_once(' ')
                .unwrap_or_else(|| panic!("line {n}: {line}"));
            let (name, arg) = rest
                .split_once(' ')
                .unwrap_or_else(|| panic!("line {n}: {line}"));
            assert!(valid_name(name), "line {n}: bad metric name {name}");
            match kind {
                "HELP" => {
                    assert!(!arg.is_empty(), "line {n}: empty help");
                    current = Some(name.to_string());
                }
                "TYPE" => {
                    assert_eq!(
                        current.as_deref(),
                        Some(name),
                        "line {n}: TYPE without HELP"
                    );
                    assert!(
                        ["counter", "gauge", "histogram", "info"].contains(&arg),
                        "line {n}: type {arg}"
                    );
                    assert!(
                        out.types
                            .insert(name.to_string(), arg.to_string())
                            .is_none(),
                        "line {n}: family {name} declared twice"
                    );
                }
                "UNIT" => {
                    assert_eq!(
                        current.as_deref(),
                        Some(name),
                        "line {n}: UNIT out of place"
                    );
                    assert!(name.ends_with(&format!("_{arg}")), "line {n}: unit {arg}");
                }
                other => panic!("line {n}: unknown comment # {other}"),
            }
            continue;
        }
        let family = current
            .clone()
            .unwrap_or_else(|| panic!("line {n}: sample before any family: {line}"));
        let sample = parse_sample(line).unwrap_or_else(|e| panic!("line {n}: {e}: {line}"));
        let suffix = sample
            .name
            .strip_prefix(family.as_str())
            .unwrap_or_else(|| panic!("line {n}: {} is not of family {family}", sample.name));
        let allowed: &[&str] = match out.types.get(&family).map(String::as_str) {
            Some("counter") => &["_total", "_created"],
            Some("gauge") => &[""],
            Some("histogram") => &["_bucket", "_sum", "_count", "_created"],
            Some("info") => &["_info"],
            other => panic!("line {n}: family {family} has type {other:?}"),
        };
        assert!(allowed.contains(&suffix), "line {n}: suffix {suffix:?}");
        if suffix == "_bucket" {
            assert!(
                sample.labels.contains_key("le"),
                "line {n}: bucket without le"
            );
        }
        assert!(
            seen.insert((sample.name.clone(), format!("{:?}", sample.labels))),
            "line {n}: repeated sample"
        );
        out.samples.push(sample);
    }
    out
}

fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

fn parse_sample(line: &str) -> Result<Sample, String> {
    let name_end = line.find(['{', ' ']).ok_or("no value")?;
    let name = &line[..name_end];
    if !valid_name(name) {
        return Err(format!("bad name {name}"));
    }
    let mut rest = &line[name_end..];
    let mut labels = BTreeMap::new();
    if let Some(r) = rest.strip_prefix('{') {
        rest = r;
        loop {
            if let Some(r) = rest.strip_prefix('}') {
                rest = r;
                break;
            }
            let eq = rest.find("=\"").ok_or("label without =\"")?;
            let key = &rest[..eq];
            if !valid_name(key) || key.contains(':') {
                return Err(format!("bad label name {key}"));
            }
            let mut value = String::new();
            let mut chars = rest[eq + 2..].char_indices();
            let end = loop {
                match chars.next().ok_or("unterminated label value")? {
                    (i, '"') => break i,
                    (_, '\\') => match chars.next().ok_or("dangling escape")?.1 {
                        'n' => value.push('\n'),
                        c @ ('\\' | '"') => value.push(c),
                        c => return Err(format!("bad escape \\{c}")),
                    },
                    (_, '\n') => return Err("newline in label value".into()),
                    (_, c) => value.push(c),
                }
            };
            if labels.insert(key.to_string(), value).is_some() {
                return Err(format!("label {key} twice"));
            }
            rest = &rest[eq + 2 + end + 1..];
            if let Some(r) = rest.strip_prefix(',') {
                rest = r;
            } else if !rest.starts_with('}') {
                return Err("expected , or }".into());
            }
        }
    }
    let value = rest.strip_prefix(' ').ok_or("no space before the value")?;
    let value = match value {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        "NaN" => f64::NAN,
        v => v.parse().map_err(|_| format!("bad value {v}"))?,
    };
    Ok(Sample {
        name: name.to_string(),
        labels,
        value,
    })
}

/// One request to the admin API on a fresh connection.
/// `GET /metrics` with this `Accept` header (none: the Prometheus text format).
async fn scrape_as(proxy: &ProxyHandle, accept: Option<&str>) -> Resp {
    let addr: SocketAddr = proxy.admin_addr().expect("admin API");
    let mut client = KeepAliveClient::connect(addr).await;
    let mut req = Request::builder()
        .method(Method::GET)
        .uri("/metrics")
        .header(http::header::HOST, "admin");
    if let Some(a) = accept {
        req = req.header(http::header::ACCEPT, a);
    }
    let req = req.body(Full::new(Bytes::new())).expect("request");
    client.request(req).await.expect("admin answers")
}

async fn admin(proxy: &ProxyHandle, method: Method, path: &str, body: &str) -> Resp {
    let addr: SocketAddr = proxy.admin_addr().expect("admin API");
    let mut client = KeepAliveClient::connect(addr).await;
    let req = Request::builder()
        .method(method)
        .uri(path)
        .header(http::header::HOST, "admin")
        .header("x-switchyard-actor", "metrics-test")
        .body(Full::new(Bytes::from(body.to_string())))
        .expect("request");
    client.request(req).await.expect("admin answers")
}

async fn scrape(proxy: &ProxyHandle) -> Exposition {
    let resp = scrape_as(proxy, Some("application/openmetrics-text; version=1.0.0")).await;
    assert_eq!(resp.status, 200);
    assert_eq!(
        resp.header("content-type"),
        Some("application/openmetrics-text; version=1.0.0; charset=utf-8")
    );
    parse(&resp.text())
}

fn requests(m: &Exposition, pool: &str, class: &str) -> f64 {
    m.val(
        "switchyard_requests_total",
        &[("service", "app"), ("pool", pool), ("class", class)],
    )
}

#[tokio::test]
async fn the_parser_rejects_what_it_should() {
    let ok = "# HELP a_b Help.\n# TYPE a_b counter\na_b_total{x=\"1\\\"2\"} 3\n# EOF\n";
    assert_eq!(parse(ok).get("a_b_total", &[("x", "1\"2")]), Some(3.0));
    for bad in [
        "a_b_total 1\n# EOF\n",
        "# HELP a_b Help.\n# TYPE a_b counter\na_b 1\n# EOF\n",
        "# HELP a_b Help.\n# TYPE a_b counter\na_b_total{x=\"1} 1\n# EOF\n",
        "# HELP a_b Help.\n# TYPE a_b counter\na_b_total 1\n",
    ] {
        assert!(std::panic::catch_unwind(|| parse(bad)).is_err(), "{bad}");
    }
}

#[tokio::test]
async fn counters_move_with_requests_retries_switches_and_reloads() {
    let green = TestApp::start("green").await;
    let green2 = TestApp::start("green").await;
    let blue = TestApp::start("blue").await;
    let config = common::two_colours(&[green.addr(), green2.addr()], &[blue.addr()]);
    let proxy = common::start(config.clone()).await;
    common::wait_healthy(&proxy, "green").await;
    common::wait_healthy(&proxy, "blue").await;

    let before = scrape(&proxy).await;
    assert_eq!(requests(&before, "green", "2xx"), 0.0);
    assert_eq!(
        before.get(
            "switchyard_active_pool",
            &[("service", "app"), ("pool", "green")]
        ),
        Some(1.0)
    );
    assert_eq!(
        before.get(
            "switchyard_active_pool",
            &[("service", "app"), ("pool", "blue")]
        ),
        Some(0.0)
    );
    let generation = before
        .get("switchyard_snapshot_generation", &[])
        .expect("generation");
    for addr in [green.addr(), green2.addr(), blue.addr()] {
        let pool = if addr == blue.addr() { "blue" } else { "green" };
        let server = addr.to_string();
        assert_eq!(
            before.get(
                "switchyard_server_healthy",
                &[("service", "app"), ("pool", pool), ("server", &server)]
            ),
            Some(1.0),
            "{server}"
        );
    }

    // Five requests on one keep-alive connection: counted by class, timed, and the connection
    // is visible while it is open.
    let mut client = KeepAliveClient::connect(common::http(&proxy)).await;
    for _ in 0..5 {
        let resp = client.get("/", "app.test").await.expect("proxied");
        assert_eq!(resp.status, 200);
    }
    let m = scrape(&proxy).await;
    assert_eq!(requests(&m, "green", "2xx"), 5.0);
    assert_eq!(requests(&m, "blue", "2xx"), 0.0);
    assert!(m.val("switchyard_open_connections", &[]) >= 1.0);
    let green_labels = [("service", "app"), ("pool", "green")];
    assert_eq!(
        m.get(
            "switchyard_response_head_duration_seconds_count",
            &green_labels
        ),
        Some(5.0)
    );
    let inf = [("service", "app"), ("pool", "green"), ("le", "+Inf")];
    assert_eq!(
        m.get("switchyard_response_head_duration_seconds_bucket", &inf),
        Some(5.0)
    );
    let mut buckets: Vec<(f64, f64)> = m
        .samples
        .iter()
        .filter(|s| {
            s.name == "switchyard_response_head_duration_seconds_bucket"
                && s.labels["pool"] == "green"
                && s.labels["service"] == "app"
        })
        .map(|s| {
            (
                s.labels["le"].parse::<f64>().unwrap_or(f64::INFINITY),
                s.value,
            )
        })
        .collect();
    buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
    assert!(
        buckets.windows(2).all(|w| w[0].1 <= w[1].1),
        "cumulative: {buckets:?}"
    );
    assert!(
        m.val(
            "switchyard_response_head_duration_seconds_sum",
            &green_labels
        ) > 0.0
    );
    assert_eq!(
        m.val("switchyard_upstream_attempts_total", &green_labels),
        5.0
    );

    // A killed server: requests that meet it fail to connect and are retried on the other.
    green2.kill().await;
    let retries = |m: &Exposition| {
        m.val(
            "switchyard_upstream_retries_total",
            &[("service", "app"), ("reason", "connect_refused")],
        )
    };
    let mut sent = 0;
    while retries(&scrape(&proxy).await) == 0.0 {
        assert!(sent < 50, "no retry after {sent} requests");
        let resp = client.get("/", "app.test").await.expect("proxied");
        assert_eq!(resp.status, 200, "retried on the surviving server");
        sent += 1;
    }
    let m = scrape(&proxy).await;
    assert!(
        m.val(
            "switchyard_upstream_failures_total",
            &[("service", "app"), ("reason", "connect_refused")]
        ) >= 1.0
    );
    assert!(
        m.val("switchyard_upstream_attempts_total", &green_labels) > requests(&m, "green", "2xx"),
        "a retry is one more attempt than requests"
    );
    assert_eq!(requests(&m, "green", "5xx"), 0.0);
    let dead = green2.addr().to_string();
    poll_until(Duration::from_secs(10), || async {
        scrape(&proxy).await.get(
            "switchyard_server_healthy",
            &[("service", "app"), ("pool", "green"), ("server", &dead)],
        ) == Some(0.0)
    })
    .await;

    // A switch and a rollback: counted by kind, and the gauges follow.
    let resp = admin(&proxy, Method::POST, "/switch", r#"{"to":"blue"}"#).await;
    assert_eq!(resp.status, 200, "{}", resp.text());
    let resp = client.get("/", "app.test").await.expect("proxied");
    assert_eq!(resp.colour(), Some("blue"));
    let m = scrape(&proxy).await;
    let switches = |m: &Exposition, kind: &str| {
        m.val(
            "switchyard_switches_total",
            &[("service", "app"), ("kind", kind)],
        )
    };
    assert_eq!(switches(&m, "switch"), 1.0);
    assert_eq!(requests(&m, "blue", "2xx"), 1.0);
    assert_eq!(
        m.get(
            "switchyard_active_pool",
            &[("service", "app"), ("pool", "blue")]
        ),
        Some(1.0)
    );
    assert_eq!(
        m.get(
            "switchyard_pool_live",
            &[("service", "app"), ("pool", "green")]
        ),
        Some(0.0)
    );
    assert!(m.val("switchyard_snapshot_generation", &[]) > generation);
    assert!(
        m.get(
            "switchyard_pool_in_flight",
            &[("service", "app"), ("pool", "green")]
        )
        .is_some()
    );
    let resp = admin(&proxy, Method::POST, "/rollback", "").await;
    assert_eq!(resp.status, 200, "{}", resp.text());
    let m = scrape(&proxy).await;
    assert_eq!(switches(&m, "rollback"), 1.0);
    assert_eq!(
        m.get(
            "switchyard_active_pool",
            &[("service", "app"), ("pool", "green")]
        ),
        Some(1.0)
    );

    // Reloads by result: an invalid config is rejected, a valid one applied.
    let mut invalid = config.clone();
    if let Some(svc) = invalid.services.get_mut("app") {
        svc.active = "purple".into();
    }
    assert!(proxy.reload(invalid).await.is_err());
    proxy.reload(config).await.expect("a valid reload");
    let m = scrape(&proxy).await;
    assert_eq!(
        m.get("switchyard_config_reloads_total", &[("result", "rejected")]),
        Some(1.0)
    );
    assert_eq!(
        m.get("switchyard_config_reloads_total", &[("result", "ok")]),
        Some(1.0)
    );
    assert_eq!(
        m.get("switchyard_config_reloads_total", &[("result", "failed")]),
        Some(0.0)
    );

    // The same exposition is available in-process.
    let text = proxy.metrics_text();
    assert!(
        parse(&text)
            .get("switchyard_snapshot_generation", &[])
            .is_some()
    );
    proxy.shutdown().await;
}

#[tokio::test]
async fn stats_give_the_dashboard_counters_per_pool() {
    let green = TestApp::start("green").await;
    let blue = TestApp::start("blue").await;
    let proxy = common::start(common::two_colours(&[green.addr()], &[blue.addr()])).await;
    let mut client = KeepAliveClient::connect(common::http(&proxy)).await;
    for _ in 0..3 {
        client.get("/", "app.test").await.expect("proxied");
    }
    green.kill().await;
    // The only green server is dead: the proxy answers 5xx itself, counted on green.
    let resp = client
        .get("/", "app.test")
        .await
        .expect("the proxy answers");
    assert!(resp.status.is_server_error(), "{}", resp.status);
    let stats = admin(&proxy, Method::GET, "/stats", "").await;
    assert_eq!(stats.status, 200);
    let stats = stats.json();
    let green_stats = &stats["services"]["app"]["pools"]["green"];
    assert_eq!(green_stats["requests"], 4, "{stats}");
    assert_eq!(green_stats["errors"], 1, "{stats}");
    assert_eq!(stats["services"]["app"]["pools"]["blue"]["requests"], 0);
    assert!(stats["generation"].as_u64().is_some_and(|g| g >= 1));
    assert!(stats["uptime_seconds"].as_f64().is_some());
    assert!(stats["open_connections"].as_u64().is_some_and(|n| n >= 1));
    proxy.shutdown().await;
}

#[tokio::test]
async fn the_text_format_is_the_default_and_the_openmetrics_one_is_negotiated() {
    let green = TestApp::start("green").await;
    let blue = TestApp::start("blue").await;
    let proxy = common::start(common::two_colours(&[green.addr()], &[blue.addr()])).await;
    common::wait_healthy(&proxy, "green").await;
    let mut client = KeepAliveClient::connect(common::http(&proxy)).await;
    client.get("/", "x").await.expect("answer");

    let text = scrape_as(&proxy, None).await;
    assert_eq!(
        text.header("content-type"),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    let body = text.text();
    assert!(!body.contains("# EOF"), "no OpenMetrics trailer");
    assert!(
        body.contains("# TYPE switchyard_requests_total counter"),
        "a counter's TYPE names its samples"
    );
    assert!(body.contains("# HELP switchyard_requests_total "));
    for family in [
        "process_resident_memory_bytes",
        "process_cpu_seconds_total",
        "process_open_fds",
        "process_max_fds",
        "process_start_time_seconds",
        "switchyard_build_info",
        "switchyard_request_bytes_total",
        "switchyard_server_failures_total",
        "switchyard_pool_upstream_failures_total",
    ] {
        assert!(
            body.contains(&format!("# TYPE {family} ")),
            "{family} is exposed:\n{body}"
        );
    }
    // The lowest latency bucket is 50 µs.
    assert!(
        body.contains("switchyard_response_head_duration_seconds_bucket{")
            && body.contains("le=\"0.00005\""),
        "{body}"
    );

    let om = scrape_as(
        &proxy,
        Some("application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5"),
    )
    .await;
    assert_eq!(
        om.header("content-type"),
        Some("application/openmetrics-text; version=1.0.0; charset=utf-8")
    );
    assert!(om.text().ends_with("# EOF\n"));
    proxy.shutdown().await;
}

#[tokio::test]
#[ignore = "needs promtool (Debian's prometheus package; .ci/run installs it and runs this)"]
async fn promtool_finds_nothing_to_lint() {
    let green = TestApp::start("green").await;
    let blue = TestApp::start("blue").await;
    let proxy = common::start(common::two_colours(&[green.addr()], &[blue.addr()])).await;
    common::wait_healthy(&proxy, "green").await;
    let mut client = KeepAliveClient::connect(common::http(&proxy)).await;
    client.get("/", "x").await.expect("answer");
    let body = scrape_as(&proxy, None).await.text();
    let mut child = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("promtool is installed");
    {
        use std::io::Write as _;
        let mut stdin = child.stdin.take().expect("stdin");
        stdin
            .write_all(body.as_bytes())
            .expect("write the exposition");
    }
    let out = child.wait_with_output().expect("promtool ran");
    assert!(
        out.status.success(),
        "promtool check metrics: {}\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    proxy.shutdown().await;
}
