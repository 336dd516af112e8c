//! TLS termination end to end: certificates made in the test, a rustls client, the real proxy
//! and a real upstream on 127.0.0.1:0. SNI choice, ALPN (h2 and http/1.1), protocol versions,
//! certificate reload with connections kept open, start errors, and the http → https redirect.

#[path = "../common/mod.rs"]
mod common;
mod support;

use std::time::Duration;

use switchyard_proxy::{ControlError, StartError, TlsError};
use switchyard_tests::{KeepAliveClient, TestApp, poll_until, raw_request, within};
use tokio::io::AsyncReadExt;

use support::{Pki, get1, get2, with_tls};

/// The usual set-up: green and blue apps, a proxy with one certificate for `app.test`.
async fn set_up() -> (
    Pki,
    support::Leaf,
    TestApp,
    TestApp,
    switchyard_proxy::ProxyHandle,
) {
    let pki = Pki::new();
    let leaf = pki.leaf("app", &["app.test"]);
    let green = TestApp::start("green").await;
    let blue = TestApp::start("blue").await;
    let config = with_tls(
        common::two_colours(&[green.addr()], &[blue.addr()]),
        &[&leaf],
    );
    let proxy = support::start(config).await;
    (pki, leaf, green, blue, proxy)
}

#[tokio::test]
async fn https_request_reaches_the_upstream_with_forwarded_proto() {
    let (pki, leaf, green, _blue, proxy) = set_up().await;
    let stream = support::connect(
        support::https(&proxy),
        pki.client(&[b"http/1.1"]),
        "app.test",
    )
    .await
    .expect("TLS handshake with a client trusting the test CA");
    assert_eq!(support::served_cert(&stream), leaf.der);
    let mut conn = support::h1(stream).await;
    let resp = get1(&mut conn, "/", "app.test").await;
    assert_eq!(resp.status, 200);
    assert_eq!(resp.text(), "green");
    assert_eq!(resp.colour(), Some("green"));
    let seen = get1(&mut conn, "/headers", "app.test").await.json();
    assert_eq!(seen["x-forwarded-proto"][0], "https");
    assert_eq!(seen["x-forwarded-host"][0], "app.test");
    assert_eq!(seen["host"][0], "app.test");
    assert_eq!(green.count_path("/headers"), 1);
    // The plain listener still says http.
    let mut plain = KeepAliveClient::connect(common::http(&proxy)).await;
    let seen = plain
        .get("/headers", "app.test")
        .await
        .expect("plain answer")
        .json();
    assert_eq!(seen["x-forwarded-proto"][0], "http");
    proxy.shutdown().await;
}

#[tokio::test]
async fn certificate_is_chosen_by_sni_and_the_first_is_the_default() {
    let pki = Pki::new();
    let a = pki.leaf("a", &["a.test"]);
    let b = pki.leaf("b", &["b.test", "*.wild.test"]);
    let green = TestApp::start("green").await;
    let blue = TestApp::start("blue").await;
    let config = with_tls(
        common::two_colours(&[green.addr()], &[blue.addr()]),
        &[&a, &b],
    );
    let proxy = support::start(config).await;
    let addr = support::https(&proxy);

    // Verified against the CA for the name asked: each name gets its own certificate.
    let s = support::connect(addr, pki.client(&[]), "a.test")
        .await
        .expect("a.test");
    assert_eq!(support::served_cert(&s), a.der);
    let s = support::connect(addr, pki.client(&[]), "b.test")
        .await
        .expect("b.test");
    assert_eq!(support::served_cert(&s), b.der);
    // SNI is matched case-insensitively, and wildcards cover one label.
    let s = support::connect(addr, pki.client(&[]), "B.Test")
        .await
        .expect("B.Test");
    assert_eq!(support::served_cert(&s), b.der);
    let s = support::connect(addr, pki.client(&[]), "x.wild.test")
        .await
        .expect("wildcard");
    assert_eq!(support::served_cert(&s), b.der);

    // An unknown name, a name a wildcard does not cover, and no SNI at all: the first.
    for (name, sni) in [
        ("unknown.test", true),
        ("a.b.wild.test", true),
        ("b.test", false),
    ] {
        let s = support::connect(addr, support::any_cert_client(sni), name)
            .await
            .expect("handshake");
        assert_eq!(support::served_cert(&s), a.der, "{name} (sni: {sni})");
    }
    proxy.shutdown().await;
}

#[tokio::test]
async fn alpn_negotiates_h2_and_h2_requests_carry_the_authority_upstream() {
    let (pki, _leaf, green, _blue, proxy) = set_up().await;
    let addr = support::https(&proxy);
    let stream = support::connect(addr, pki.client(&[b"h2", b"http/1.1"]), "app.test")
        .await
        .expect("handshake");
    assert_eq!(support::alpn(&stream).as_deref(), Some(&b"h2"[..]));
    let mut h2 = support::h2(stream).await;
    let resp = get2(&mut h2, "/", "app.test").await;
    assert_eq!(
        (resp.status.as_u16(), resp.version),
        (200, http::Version::HTTP_2)
    );
    assert_eq!(resp.text(), "green");
    let seen = get2(&mut h2, "/headers?x=1", "app.test:8443").await.json();
    assert_eq!(seen["host"][0], "app.test:8443");
    assert_eq!(seen["x-forwarded-host"][0], "app.test:8443");
    assert_eq!(seen["x-forwarded-proto"][0], "https");
    assert_eq!(seen["_version"], "HTTP/1.1");
    assert_eq!(seen["_uri"], "/headers?x=1");
    assert_eq!(green.count_path("/headers"), 1);

    // Offered alone, http/1.1 is what is negotiated.
    let stream = support::connect(addr, pki.client(&[b"http/1.1"]), "app.test")
        .await
        .expect("handshake");
    assert_eq!(support::alpn(&stream).as_deref(), Some(&b"http/1.1"[..]));
    let mut h1 = support::h1(stream).await;
    let resp = get1(&mut h1, "/", "app.test").await;
    assert_eq!(
        (resp.status.as_u16(), resp.version),
        (200, http::Version::HTTP_11)
    );
    proxy.shutdown().await;
}

#[tokio::test]
async fn only_tls_12_and_13_are_spoken() {
    let (pki, _leaf, _green, _blue, proxy) = set_up().await;
    let addr = support::https(&proxy);
    let v12 = pki.client_with(&[], &[&rustls::version::TLS12]);
    let s = support::connect(addr, v12, "app.test")
        .await
        .expect("TLS 1.2 handshake");
    assert_eq!(
        s.get_ref().1.protocol_version(),
        Some(rustls::ProtocolVersion::TLSv1_2)
    );
    let s = support::connect(addr, pki.client(&[]), "app.test")
        .await
        .expect("handshake");
    assert_eq!(
        s.get_ref().1.protocol_version(),
        Some(rustls::ProtocolVersion::TLSv1_3)
    );
    // A TLS 1.1 ClientHello (record and hello version 0x0302, no supported_versions) is
    // refused: the server answers with an alert or closes, never with a ServerHello.
    let mut tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
    tokio::io::AsyncWriteExt::write_all(&mut tcp, &tls11_client_hello())
        .await
        .expect("send hello");
    let mut buf = [0u8; 5];
    match within(Duration::from_secs(10), tcp.read_exact(&mut buf)).await {
        Some(Ok(_)) => assert_eq!(buf[0], 21, "expected an alert record, got {buf:?}"),
        Some(Err(_)) => {} // closed without a word: refused too
        None => panic!("the server neither refused nor closed a TLS 1.1 hello"),
    }
    proxy.shutdown().await;
}

/// A minimal TLS 1.1 ClientHello: one cipher suite, no extensions.
fn tls11_client_hello() -> Vec<u8> {
    let mut hello = vec![0x03, 0x02]; // client_version TLS 1.1
    hello.extend_from_slice(&[7u8; 32]); // random
    hello.push(0); // session id
    hello.extend_from_slice(&[0x00, 0x02, 0x00, 0x2f]); // TLS_RSA_WITH_AES_128_CBC_SHA
    hello.extend_from_slice(&[0x01, 0x00]); // compression: null
    let mut handshake = vec![0x01, 0x00];
    handshake.extend_from_slice(&u16::try_from(hello.len()).expect("len").to_be_bytes());
    handshake.extend_from_slice(&hello);
    let mut record = vec![0x16, 0x03, 0x02];
    record.extend_from_slice(&u16::try_from(handshake.len()).expect("len").to_be_bytes());
    record.extend_from_slice(&handshake);
    record
}

#[tokio::test]
async fn a_stalled_handshake_is_dropped_after_the_header_timeout() {
    let pki = Pki::new();
    let leaf = pki.leaf("app", &["app.test"]);
    let green = TestApp::start("green").await;
    let blue = TestApp::start("blue").await;
    let mut config = with_tls(
        common::two_colours(&[green.addr()], &[blue.addr()]),
        &[&leaf],
    );
    config.limits.header_timeout = Duration::from_millis(200);
    let proxy = support::start(config).await;
    let mut tcp = tokio::net::TcpStream::connect(support::https(&proxy))
        .await
        .expect("connect");
    let mut buf = [0u8; 16];
    let read = within(Duration::from_secs(10), tcp.read(&mut buf)).await;
    assert!(
        matches!(read, Some(Ok(0) | Err(_))),
        "the silent connection is closed: {read:?}"
    );
    poll_until(Duration::from_secs(5), || async {
        proxy.open_connections() == 0
    })
    .await;
    proxy.shutdown().await;
}

#[tokio::test]
async fn reload_swaps_certificates_for_new_connections_only() {
    let (pki, old, green, blue, proxy) = set_up().await;
    let addr = support::https(&proxy);
    let stream = support::connect(addr, pki.client(&[]), "app.test")
        .await
        .expect("handshake");
    assert_eq!(support::served_cert(&stream), old.der);
    let mut kept = support::h1(stream).await;
    assert_eq!(get1(&mut kept, "/", "app.test").await.status, 200);

    // New files at the same paths, then a reload: like a renewal followed by SIGHUP.
    let new = pki.leaf("app", &["app.test"]);
    assert_ne!(new.der, old.der);
    let config = with_tls(
        common::two_colours(&[green.addr()], &[blue.addr()]),
        &[&new],
    );
    let before = proxy.status().generation;
    let generation = proxy
        .reload(config)
        .await
        .expect("reload with the new certificate");
    assert!(generation > before);

    // The open connection carries on; a new one gets the new certificate.
    let resp = get1(&mut kept, "/", "app.test").await;
    assert_eq!((resp.status.as_u16(), resp.text().as_str()), (200, "green"));
    let fresh = support::connect(addr, pki.client(&[]), "app.test")
        .await
        .expect("handshake");
    assert_eq!(support::served_cert(&fresh), new.der);
    let mut fresh = support::h1(fresh).await;
    assert_eq!(get1(&mut fresh, "/", "app.test").await.status, 200);
    assert_eq!(get1(&mut kept, "/", "app.test").await.status, 200);
    proxy.shutdown().await;
}

#[tokio::test]
async fn a_bad_certificate_on_reload_is_rejected_and_the_old_one_keeps_serving() {
    let pki = Pki::new();
    let leaf = pki.leaf("app", &["app.test"]);
    let green = TestApp::start("green").await;
    let blue = TestApp::start("blue").await;
    // A config file, reloaded like SIGHUP does (`reload_from_source`).
    let file = pki.path("switchyard.toml");
    let toml = |cert: &str, key: &str| {
        format!(
            "[listen]\nhttp = [\"127.0.0.1:1\"]\nhttps = [\"127.0.0.1:2\"]\n\n\
             [[tls.certs]]\ncert = \"{cert}\"\nkey = \"{key}\"\n\n\
             [services.app]\nactive = \"green\"\n\n\
             [services.app.pools]\ngreen = [\"{}\"]\nblue = [\"{}\"]\n",
            green.addr(),
            blue.addr()
        )
    };
    std::fs::write(&file, toml("app.crt", "app.key")).expect("write config");
    let config = switchyard_config::load_file(&file).expect("valid config file");
    let proxy = support::start(config).await;
    let addr = support::https(&proxy);
    let generation = proxy.status().generation;

    let check_old_cert_serves = || async {
        let s = support::connect(addr, pki.client(&[]), "app.test")
            .await
            .expect("handshake");
        assert_eq!(support::served_cert(&s), leaf.der);
        let mut c = support::h1(s).await;
        assert_eq!(get1(&mut c, "/", "app.test").await.status, 200);
    };

    // A certificate file that holds garbage.
    std::fs::write(pki.path("garbage.crt"), "not a certificate\n").expect("write");
    std::fs::write(&file, toml("garbage.crt", "app.key")).expect("write config");
    let err = proxy
        .reload_from_source()
        .await
        .expect_err("a bad certificate is refused");
    assert!(matches!(err, ControlError::Tls(_)), "{err:?}");
    assert_eq!(err.status(), 400);
    assert!(err.to_string().contains("garbage.crt"), "{err}");
    check_old_cert_serves().await;

    // A key that belongs to another certificate.
    let other = pki.leaf("other", &["app.test"]);
    std::fs::write(&file, toml("app.crt", "other.key")).expect("write config");
    let err = proxy
        .reload_from_source()
        .await
        .expect_err("a mismatched key is refused");
    assert!(err.to_string().contains("does not match"), "{err}");
    assert!(err.to_string().contains("other.key"), "{err}");
    // A missing file.
    std::fs::write(&file, toml("missing.crt", "app.key")).expect("write config");
    let err = proxy
        .reload_from_source()
        .await
        .expect_err("a missing file is refused");
    assert!(err.to_string().contains("missing.crt"), "{err}");

    // Nothing of the rejected configs was applied.
    assert_eq!(proxy.status().generation, generation);
    check_old_cert_serves().await;
    drop(other);
    proxy.shutdown().await;
}

#[tokio::test]
async fn start_errors_name_the_file_at_fault() {
    let pki = Pki::new();
    let a = pki.leaf("a", &["a.test"]);
    let b = pki.leaf("b", &["b.test"]);
    let green = TestApp::start("green").await;
    let blue = TestApp::start("blue").await;
    let base = || common::two_colours(&[green.addr()], &[blue.addr()]);

    let mut missing = a.clone();
    missing.files.cert = pki.path("nowhere.crt");
    let err = support::try_start(with_tls(base(), &[&missing]))
        .await
        .expect_err("missing file");
    assert!(
        matches!(err, StartError::Tls(TlsError::Read { .. })),
        "{err:?}"
    );
    assert!(err.to_string().contains("nowhere.crt"), "{err}");

    let mut mismatched = a.clone();
    mismatched.files.key = b.files.key.clone();
    let err = support::try_start(with_tls(base(), &[&mismatched]))
        .await
        .expect_err("mismatch");
    assert!(
        matches!(err, StartError::Tls(TlsError::KeyMismatch { .. })),
        "{err:?}"
    );
    assert!(err.to_string().contains("b.key"), "{err}");

    // A key file given as the certificate: no certificate in it.
    let mut swapped = a.clone();
    swapped.files.cert = a.files.key.clone();
    let err = support::try_start(with_tls(base(), &[&swapped]))
        .await
        .expect_err("no cert");
    assert!(
        matches!(err, StartError::Tls(TlsError::NoCertificate { .. })),
        "{err:?}"
    );
    // A certificate file given as the key: no key in it.
    let mut swapped = a.clone();
    swapped.files.key = a.files.cert.clone();
    let err = support::try_start(with_tls(base(), &[&swapped]))
        .await
        .expect_err("no key");
    assert!(
        matches!(err, StartError::Tls(TlsError::NoKey { .. })),
        "{err:?}"
    );
    assert!(err.to_string().contains("a.crt"), "{err}");

    // https listeners without certificates: from the config, or from the listeners alone.
    let mut no_certs = base();
    no_certs.listen.https = vec!["127.0.0.1:0".parse().expect("addr")];
    let err = support::try_start(no_certs)
        .await
        .expect_err("https without certificates");
    assert!(err.to_string().contains("certificate"), "{err}");
    let err = support::try_start(base())
        .await
        .expect_err("an https listener, no certificate");
    assert!(
        matches!(err, StartError::Tls(TlsError::NoCertificates)),
        "{err:?}"
    );
}

#[tokio::test]
async fn plain_http_redirects_to_https_and_forwards_nothing() {
    let pki = Pki::new();
    let leaf = pki.leaf("app", &["app.test"]);
    let green = TestApp::start("green").await;
    let blue = TestApp::start("blue").await;
    let mut config = with_tls(
        common::two_colours(&[green.addr()], &[blue.addr()]),
        &[&leaf],
    );
    config.listen.redirect_https = true;
    let proxy = support::start(config).await;
    let port = support::https(&proxy).port();
    let before = green.requests();

    let mut client = KeepAliveClient::connect(common::http(&proxy)).await;
    let resp = client
        .get("/a/b?x=1&y=%20", "App.Test:8080")
        .await
        .expect("answer");
    assert_eq!(resp.status, 308);
    let expected = format!("https://app.test:{port}/a/b?x=1&y=%20");
    assert_eq!(resp.header("location"), Some(expected.as_str()));
    // The connection stays usable for the next request.
    let resp = client
        .post("/order", "app.test", "pay")
        .await
        .expect("answer");
    assert_eq!(resp.status, 308);
    assert_eq!(
        resp.header("location"),
        Some(format!("https://app.test:{port}/order").as_str())
    );

    // A bad Host is refused as on the forwarding path.
    for bad in [
        &b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"[..],
        b"GET / HTTP/1.1\r\n\r\n",
    ] {
        let raw = raw_request(common::http(&proxy), bad).await;
        let raw = String::from_utf8_lossy(&raw);
        assert!(raw.starts_with("HTTP/1.1 400"), "{raw}");
    }

    // https itself serves, the admin API is not redirected, and nothing reached the app.
    let s = support::connect(support::https(&proxy), pki.client(&[]), "app.test")
        .await
        .expect("tls");
    let mut c = support::h1(s).await;
    assert_eq!(get1(&mut c, "/", "app.test").await.text(), "green");
    let admin = proxy.admin_addr().expect("admin");
    let mut admin = KeepAliveClient::connect(admin).await;
    assert_eq!(
        admin
            .get("/healthz", "localhost")
            .await
            .expect("healthz")
            .status,
        200
    );
    assert_eq!(green.requests(), before + 1);
    assert!(green.posts().is_empty());
    proxy.shutdown().await;
}

/// An idle HTTPS keep-alive connection is parked like a plain one (after a second) and serves
/// its next requests on the same TLS session.
#[tokio::test]
async fn a_parked_https_connection_serves_its_next_request() {
    let (pki, _leaf, green, _blue, proxy) = set_up().await;
    let stream = support::connect(
        support::https(&proxy),
        pki.client(&[b"http/1.1"]),
        "app.test",
    )
    .await
    .expect("TLS handshake");
    let mut conn = support::h1(stream).await;
    assert_eq!(get1(&mut conn, "/", "app.test").await.status, 200);
    let parked = || {
        proxy
            .metrics_text()
            .lines()
            .find_map(|l| l.strip_prefix("switchyard_parked_connections{} "))
            .and_then(|v| v.trim().parse::<u64>().ok())
    };
    poll_until(Duration::from_secs(10), || async { parked() == Some(1) }).await;
    for _ in 0..3 {
        let resp = get1(&mut conn, "/", "app.test").await;
        assert_eq!(
            (resp.status, resp.text()),
            (http::StatusCode::OK, "green".to_string())
        );
    }
    assert_eq!(green.count_path("/"), 4);
    assert_eq!(
        proxy.open_connections(),
        1,
        "the same connection throughout"
    );
    proxy.shutdown().await;
}
