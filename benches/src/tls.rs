//! TLS for the load tool: a self-signed certificate made at run time (rcgen), and the one
//! rustls client every TLS run uses.
//!
//! The client offers TLS 1.3 only, with one cipher suite (`TLS13_AES_128_GCM_SHA256`, what
//! browsers prefer on CPUs with AES instructions) and one key-exchange group (X25519), so that
//! every server it is pointed at negotiates the same thing and a comparison measures the
//! servers, not their cipher preferences. It verifies the server's certificate against the
//! certificates it was given (the run's own, or `--cacert`).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, bail};
use rustls::crypto::{CryptoProvider, ring};
use rustls::{ClientConfig, RootCertStore};
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, ServerName};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

/// The names the run-time certificate is for (and the name the client asks for).
pub const CERT_NAMES: [&str; 2] = ["localhost", "127.0.0.1"];

/// The cipher suite every TLS run negotiates, as reports name it.
pub const CIPHER_SUITE: &str = "TLS13_AES_128_GCM_SHA256";

/// What the client offers in ALPN, which decides the protocol inside TLS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Alpn {
    /// `http/1.1` only.
    Http1,
    /// `h2` only: a server that does not agree fails the connection.
    H2,
}

impl Alpn {
    fn wire(self) -> &'static [u8] {
        match self {
            Alpn::Http1 => b"http/1.1",
            Alpn::H2 => b"h2",
        }
    }
}

/// A self-signed certificate and its key, in PEM.
#[derive(Debug, Clone)]
pub struct SelfSigned {
    /// The certificate.
    pub cert_pem: String,
    /// Its private key (PKCS#8; ECDSA P-256).
    pub key_pem: String,
    /// The certificate, for the client's trust store.
    pub der: CertificateDer<'static>,
}

/// Where a certificate was written, in the forms the servers read.
#[derive(Debug, Clone)]
pub struct CertFiles {
    /// The certificate (nginx `ssl_certificate`, Switchyard `cert`).
    pub cert: PathBuf,
    /// The key (nginx `ssl_certificate_key`, Switchyard `key`).
    pub key: PathBuf,
    /// Certificate and key in one file (HAProxy `crt`).
    pub combined: PathBuf,
}

impl SelfSigned {
    /// A fresh certificate for [`CERT_NAMES`].
    pub fn generate() -> anyhow::Result<SelfSigned> {
        let names: Vec<String> = CERT_NAMES.iter().map(|n| (*n).to_string()).collect();
        let made = rcgen::generate_simple_self_signed(names)
            .context("cannot make a self-signed certificate")?;
        Ok(SelfSigned {
            cert_pem: made.cert.pem(),
            key_pem: made.signing_key.serialize_pem(),
            der: made.cert.der().clone(),
        })
    }

    /// Writes `tls.crt`, `tls.key` and `tls.pem` (both) into `dir`.
    pub fn write(&self, dir: &Path) -> anyhow::Result<CertFiles> {
        let files = CertFiles {
            cert: dir.join("tls.crt"),
            key: dir.join("tls.key"),
            combined: dir.join("tls.pem"),
        };
        std::fs::write(&files.cert, &self.cert_pem)?;
        std::fs::write(&files.key, &self.key_pem)?;
        std::fs::write(
            &files.combined,
            format!("{}{}", self.cert_pem, self.key_pem),
        )?;
        Ok(files)
    }
}

/// A TLS client: the rustls config and the server name it asks for and checks.
#[derive(Clone)]
pub struct TlsClient {
    connector: TlsConnector,
    name: ServerName<'static>,
    alpn: Alpn,
}

impl std::fmt::Debug for TlsClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsClient")
            .field("name", &self.name)
            .field("alpn", &self.alpn)
            .finish_non_exhaustive()
    }
}

/// The client's crypto: ring, one TLS 1.3 suite, one group.
fn provider() -> CryptoProvider {
    CryptoProvider {
        cipher_suites: vec![ring::cipher_suite::TLS13_AES_128_GCM_SHA256],
        kx_groups: vec![ring::kx_group::X25519],
        ..ring::default_provider()
    }
}

impl TlsClient {
    /// A client trusting `trusted`, asking for `server_name`, offering `alpn`.
    pub fn new(
        trusted: &[CertificateDer<'static>],
        server_name: &str,
        alpn: Alpn,
    ) -> anyhow::Result<TlsClient> {
        let mut roots = RootCertStore::empty();
        for cert in trusted {
            roots
                .add(cert.clone())
                .context("a trusted certificate is not usable")?;
        }
        let mut config = ClientConfig::builder_with_provider(Arc::new(provider()))
            .with_protocol_versions(&[&rustls::version::TLS13])
            .context("TLS 1.3 with the ring provider")?
            .with_root_certificates(roots)
            .with_no_client_auth();
        config.alpn_protocols = vec![alpn.wire().to_vec()];
        let name = ServerName::try_from(server_name.to_string())
            .with_context(|| format!("`{server_name}` is not a server name"))?;
        Ok(TlsClient {
            connector: TlsConnector::from(Arc::new(config)),
            name,
            alpn,
        })
    }

    /// A client trusting the certificates of a PEM file (`load --cacert`).
    pub fn from_pem_file(path: &Path, server_name: &str, alpn: Alpn) -> anyhow::Result<Self> {
        let pem = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
        let certs = CertificateDer::pem_slice_iter(&pem)
            .collect::<Result<Vec<_>, _>>()
            .with_context(|| format!("{}: not PEM certificates", path.display()))?;
        if certs.is_empty() {
            bail!("{}: no certificate in it", path.display());
        }
        TlsClient::new(&certs, server_name, alpn)
    }

    /// The same client offering another protocol.
    pub fn with_alpn(&self, alpn: Alpn) -> anyhow::Result<TlsClient> {
        let mut config = ClientConfig::clone(self.connector.config());
        config.alpn_protocols = vec![alpn.wire().to_vec()];
        Ok(TlsClient {
            connector: TlsConnector::from(Arc::new(config)),
            name: self.name.clone(),
            alpn,
        })
    }

    /// What this client offers in ALPN.
    pub fn alpn(&self) -> Alpn {
        self.alpn
    }

    /// Runs the handshake on `tcp`; with [`Alpn::H2`], a server that did not choose `h2` is an
    /// error.
    pub async fn handshake(&self, tcp: TcpStream) -> anyhow::Result<TlsStream<TcpStream>> {
        let tls = self.connector.connect(self.name.clone(), tcp).await?;
        if self.alpn == Alpn::H2 && tls.get_ref().1.alpn_protocol() != Some(b"h2".as_slice()) {
            bail!("the server did not choose h2 in ALPN");
        }
        Ok(tls)
    }

    /// Connects to `addr` and runs the handshake.
    pub async fn connect(&self, addr: SocketAddr) -> anyhow::Result<TlsStream<TcpStream>> {
        let tcp = TcpStream::connect(addr)
            .await
            .with_context(|| format!("cannot connect to {addr}"))?;
        tcp.set_nodelay(true)?;
        self.handshake(tcp).await
    }
}
