//! What the TLS tests share: a test CA and leaf certificates written to a tempdir, rustls
//! clients (trusting that CA, or anything when a test wants to see which certificate came), and
//! a proxy started with an https listener on port 0.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;
use http::{Request, Version};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};
use switchyard_config::{CertConfig, Config};
use switchyard_proxy::{Listeners, ProxyHandle, StartError};
use switchyard_tests::Resp;
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

/// A test CA and the files of the certificates it issued, in a tempdir.
pub struct Pki {
    /// Where the PEM files go; removed on drop.
    pub dir: tempfile::TempDir,
    /// The CA, signing every leaf.
    ca: CertifiedIssuer<'static, KeyPair>,
}

/// A leaf certificate written to disk.
#[derive(Clone)]
pub struct Leaf {
    /// The files, as `[[tls.certs]]` names them.
    pub files: CertConfig,
    /// The certificate itself, to compare with what a handshake served.
    pub der: CertificateDer<'static>,
}

impl Pki {
    /// A fresh CA in a fresh tempdir.
    pub fn new() -> Pki {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, "Switchyard test CA");
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let key = KeyPair::generate().expect("CA key");
        Pki {
            dir: tempfile::tempdir().expect("tempdir"),
            ca: CertifiedIssuer::self_signed(params, key).expect("CA certificate"),
        }
    }

    /// Issues a certificate for `names` and writes it to `{file}.crt` / `{file}.key` (over any
    /// earlier files of that name).
    pub fn leaf(&self, file: &str, names: &[&str]) -> Leaf {
        let mut params =
            CertificateParams::new(names.iter().map(|n| (*n).to_string()).collect::<Vec<_>>())
                .expect("leaf params");
        params.distinguished_name.push(DnType::CommonName, names[0]);
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let key = KeyPair::generate().expect("leaf key");
        let cert = params.signed_by(&key, &self.ca).expect("leaf certificate");
        // The chain: the leaf, then the CA (as a real chain would carry intermediates).
        let chain = format!("{}{}", cert.pem(), self.ca.pem());
        let files = CertConfig::new(
            self.path(&format!("{file}.crt")),
            self.path(&format!("{file}.key")),
        );
        std::fs::write(&files.cert, chain).expect("write certificate");
        std::fs::write(&files.key, key.serialize_pem()).expect("write key");
        Leaf {
            files,
            der: cert.der().clone(),
        }
    }

    /// A path in the tempdir.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// A client that trusts only this CA, offering `alpn` (TLS 1.2 and 1.3).
    pub fn client(&self, alpn: &[&[u8]]) -> Arc<ClientConfig> {
        self.client_with(alpn, &[&rustls::version::TLS13, &rustls::version::TLS12])
    }

    /// A client that trusts only this CA, offering `alpn` and only `versions`.
    pub fn client_with(
        &self,
        alpn: &[&[u8]],
        versions: &[&'static rustls::SupportedProtocolVersion],
    ) -> Arc<ClientConfig> {
        let mut roots = RootCertStore::empty();
        roots.add(self.ca.der().clone()).expect("trust the test CA");
        let mut config = ClientConfig::builder_with_provider(provider())
            .with_protocol_versions(versions)
            .expect("versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        Arc::new(config)
    }
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A client that accepts any certificate, so a test can look at which one the server chose
/// for a name no certificate has. `sni = false` sends no server name at all.
pub fn any_cert_client(sni: bool) -> Arc<ClientConfig> {
    let provider = provider();
    let mut config = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .expect("versions")
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AnyCert(provider)))
        .with_no_client_auth();
    config.enable_sni = sni;
    Arc::new(config)
}

/// Accepts every certificate (signatures are still checked).
#[derive(Debug)]
struct AnyCert(Arc<CryptoProvider>);

impl ServerCertVerifier for AnyCert {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// Connects to `addr` and completes a TLS handshake for `name`.
pub async fn connect(
    addr: SocketAddr,
    config: Arc<ClientConfig>,
    name: &str,
) -> Result<TlsStream<TcpStream>, std::io::Error> {
    let tcp = TcpStream::connect(addr).await?;
    let name = ServerName::try_from(name.to_string()).expect("server name");
    TlsConnector::from(config).connect(name, tcp).await
}

/// The certificate the server presented on `stream`.
pub fn served_cert(stream: &TlsStream<TcpStream>) -> CertificateDer<'static> {
    stream
        .get_ref()
        .1
        .peer_certificates()
        .expect("a certificate")[0]
        .clone()
}

/// The ALPN protocol the handshake settled on.
pub fn alpn(stream: &TlsStream<TcpStream>) -> Option<Vec<u8>> {
    stream.get_ref().1.alpn_protocol().map(<[u8]>::to_vec)
}

/// An HTTP/1.1 connection over `stream`; requests are sent one after another on it.
pub async fn h1(stream: TlsStream<TcpStream>) -> http1::SendRequest<Full<Bytes>> {
    let (sender, conn) = http1::handshake(TokioIo::new(stream))
        .await
        .expect("http/1.1 handshake");
    tokio::spawn(conn);
    sender
}

/// An HTTP/2 connection over `stream`.
pub async fn h2(stream: TlsStream<TcpStream>) -> http2::SendRequest<Full<Bytes>> {
    let (sender, conn) = http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
        .await
        .expect("h2 handshake");
    tokio::spawn(conn);
    sender
}

/// `GET path` with `Host: host` on an HTTP/1.1 connection.
pub async fn get1(sender: &mut http1::SendRequest<Full<Bytes>>, path: &str, host: &str) -> Resp {
    sender.ready().await.expect("connection ready");
    let req = Request::get(path)
        .header("host", host)
        .body(Full::new(Bytes::new()))
        .expect("request");
    collect(sender.send_request(req).await.expect("response")).await
}

/// `GET https://{authority}{path}` on an HTTP/2 connection (the authority is `:authority`).
pub async fn get2(
    sender: &mut http2::SendRequest<Full<Bytes>>,
    path: &str,
    authority: &str,
) -> Resp {
    sender.ready().await.expect("connection ready");
    let req = Request::get(format!("https://{authority}{path}"))
        .version(Version::HTTP_2)
        .body(Full::new(Bytes::new()))
        .expect("request");
    collect(sender.send_request(req).await.expect("response")).await
}

async fn collect(resp: http::Response<hyper::body::Incoming>) -> Resp {
    let (parts, body) = resp.into_parts();
    Resp {
        status: parts.status,
        version: parts.version,
        headers: parts.headers,
        body: body.collect().await.expect("body").to_bytes(),
    }
}

/// `config` with one https listener address and `certs`.
pub fn with_tls(mut config: Config, certs: &[&Leaf]) -> Config {
    config.listen.https = vec!["127.0.0.1:0".parse().expect("addr")];
    config.tls.certs = certs.iter().map(|l| l.files.clone()).collect();
    config
}

/// Starts the proxy on loopback listeners plus one https listener.
pub async fn try_start(config: Config) -> Result<ProxyHandle, StartError> {
    let mut listeners = Listeners::loopback()
        .await
        .expect("bind loopback listeners");
    listeners
        .https
        .push(TcpListener::bind("127.0.0.1:0").await.expect("bind https"));
    switchyard_proxy::start(config, listeners)
}

/// Starts the proxy on loopback listeners plus one https listener; panics if it refuses.
pub async fn start(config: Config) -> ProxyHandle {
    match try_start(config).await {
        Ok(p) => p,
        Err(e) => panic!("the proxy starts: {e}"),
    }
}

/// The proxy's first https address.
pub fn https(proxy: &ProxyHandle) -> SocketAddr {
    proxy.https_addrs()[0]
}
