//! What the load generator speaks to the proxies in a comparison (`--protocol`): plain
//! HTTP/1.1, HTTP/1.1 over TLS 1.3, or HTTP/2 over TLS 1.3 (ALPN `h2`, as browsers reach a
//! site). Behind every proxy the upstream stays plain HTTP/1.1 with kept-alive connections.
//!
//! For TLS every proxy serves the same self-signed certificate, made for the run (ECDSA P-256,
//! `localhost` and `127.0.0.1`), and the client negotiates the same suite with each of them
//! (see [`crate::tls`]). Connections are kept alive: one handshake per connection, made as
//! each run starts (64 handshakes against some 100,000 requests in a 5 s run: their CPU is well
//! under 0.1 % of the run's, and their latency lands above the p99).

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::configs::TlsListen;
use crate::load::Dial;
use crate::tls::{self, Alpn, CertFiles, SelfSigned, TlsClient};

/// The protocol between the load generator and the proxy.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    /// HTTP/1.1 over TCP, kept alive.
    #[default]
    Http1,
    /// HTTP/1.1 over TLS 1.3, kept alive.
    Https,
    /// HTTP/2 over TLS 1.3, chosen by ALPN; several concurrent streams per connection.
    H2,
}

impl Protocol {
    /// Over TLS.
    pub fn tls(self) -> bool {
        !matches!(self, Protocol::Http1)
    }

    /// HTTP/2 inside.
    pub fn h2(self) -> bool {
        matches!(self, Protocol::H2)
    }

    /// What the load generator offers in ALPN.
    fn alpn(self) -> Alpn {
        if self.h2() { Alpn::H2 } else { Alpn::Http1 }
    }

    /// The name in a table's heading.
    pub fn title(self) -> &'static str {
        match self {
            Protocol::Http1 => "HTTP/1.1",
            Protocol::Https => "HTTPS: HTTP/1.1 over TLS 1.3",
            Protocol::H2 => "HTTP/2 over TLS 1.3 (ALPN h2)",
        }
    }

    /// The kind of an idle connection, for the memory check's heading.
    pub fn idle_kind(self) -> &'static str {
        match self {
            Protocol::Http1 => "keep-alive",
            Protocol::Https => "keep-alive TLS",
            Protocol::H2 => "HTTP/2 TLS",
        }
    }

    /// The connections of the load: `connections` requests in flight, carried by HTTP/2
    /// as `streams` concurrent streams on each of `connections / streams` connections (at
    /// least one), so that every protocol has the same number of requests in flight.
    pub fn connections(self, connections: usize, streams: usize) -> (usize, usize) {
        if self.h2() {
            let streams = streams.clamp(1, connections.max(1));
            ((connections / streams).max(1), streams)
        } else {
            (connections, 1)
        }
    }

    /// A sentence on how clients connect, for the table's heading.
    pub fn describe(self, connections: usize, streams: usize) -> String {
        let (conns, streams) = self.connections(connections, streams);
        match self {
            Protocol::Http1 => format!("{conns} keep-alive connections"),
            Protocol::Https => format!(
                "{conns} keep-alive connections over TLS 1.3 ({}, X25519; one handshake per \
                 connection as the run starts), proxy → upstream plain HTTP/1.1",
                tls::CIPHER_SUITE
            ),
            Protocol::H2 => format!(
                "{conns} HTTP/2 connections × {streams} concurrent streams = {} requests in \
                 flight, over TLS 1.3 ({}, X25519; ALPN h2; one handshake per connection as the run \
                 starts), proxy → upstream plain HTTP/1.1",
                conns * streams,
                tls::CIPHER_SUITE
            ),
        }
    }
}

/// The TLS side of a run: the certificate every proxy serves, and the clients that trust it.
#[derive(Debug, Clone)]
pub struct RunTls {
    /// The certificate and key, in the forms the proxies read.
    pub files: CertFiles,
    /// The load generator's client (ALPN as the protocol says).
    pub load: TlsClient,
    /// The readiness checks' client (HTTP/1.1 inside).
    pub ready: TlsClient,
}

impl RunTls {
    /// Makes the certificate, writes it into `dir` and the clients that trust it; `None` for
    /// plain HTTP.
    pub fn new(protocol: Protocol, dir: &Path) -> anyhow::Result<Option<RunTls>> {
        if !protocol.tls() {
            return Ok(None);
        }
        let cert = SelfSigned::generate()?;
        let files = cert.write(dir)?;
        let load = TlsClient::new(
            std::slice::from_ref(&cert.der),
            tls::CERT_NAMES[0],
            protocol.alpn(),
        )?;
        let ready = load.with_alpn(Alpn::Http1)?;
        Ok(Some(RunTls { files, load, ready }))
    }

    /// The proxies' listener settings for this certificate and protocol.
    pub fn listen(&self) -> TlsListen<'_> {
        TlsListen {
            files: &self.files,
            h2: self.load.alpn() == Alpn::H2,
        }
    }

    /// How the load generator reaches a proxy listening at `addr`: over TLS when `tls` is
    /// set, plain TCP otherwise.
    pub fn dial(tls: Option<&RunTls>, addr: std::net::SocketAddr) -> Dial {
        Dial {
            addr,
            tls: tls.map(|t| t.load.clone()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn h2_keeps_the_requests_in_flight_of_http1() {
        assert_eq!(Protocol::Http1.connections(64, 8), (64, 1));
        assert_eq!(Protocol::Https.connections(64, 8), (64, 1));
        assert_eq!(Protocol::H2.connections(64, 8), (8, 8));
        assert_eq!(Protocol::H2.connections(64, 1), (64, 1));
        assert_eq!(Protocol::H2.connections(4, 8), (1, 4));
    }

    #[test]
    fn tls_rows_get_a_certificate_and_plain_rows_none() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert!(
            RunTls::new(Protocol::Http1, dir.path())
                .expect("plain")
                .is_none()
        );
        let tls = RunTls::new(Protocol::H2, dir.path())
            .expect("TLS set-up")
            .expect("a certificate for h2");
        assert_eq!(tls.load.alpn(), Alpn::H2);
        assert_eq!(tls.ready.alpn(), Alpn::Http1);
        let pem = std::fs::read_to_string(&tls.files.combined).expect("combined file");
        assert!(pem.contains("BEGIN CERTIFICATE") && pem.contains("PRIVATE KEY"));
    }
}
