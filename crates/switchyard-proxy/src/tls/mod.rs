//! TLS termination for the `listen.https` listeners, and the http → https redirect.
//!
//! rustls (ring provider) with TLS 1.2 and 1.3 only, ALPN `h2` then `http/1.1`, and a
//! certificate resolver that picks by SNI from a set swapped whole on reload (see [`certs`]).
//! The handshake runs on the connection's own task, bounded by `limits.header_timeout`.

mod certs;
mod redirect;

use std::sync::Arc;
use std::time::Duration;

use rustls::ServerConfig;
use rustls::crypto::CryptoProvider;
use switchyard_config::CertConfig;
use tokio::net::TcpStream;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

pub use certs::TlsError;
pub(crate) use certs::{CertSet, CertStore};
pub(crate) use redirect::redirect;

/// The TLS side of a running proxy: the acceptor every https listener shares, and the store
/// a reload swaps certificates in.
#[derive(Clone)]
pub(crate) struct Tls {
    /// The certificates in force (also the acceptor's resolver).
    store: Arc<CertStore>,
    /// Shared by every https listener.
    acceptor: TlsAcceptor,
}

/// What a reload needs to swap certificates: load with the same provider, then replace.
#[derive(Debug, Clone)]
pub(crate) struct CertReloader {
    store: Arc<CertStore>,
}

/// Reads and checks `certs` (blocking file I/O: call off the runtime's worker threads).
pub(crate) fn load_certs(certs: &[CertConfig]) -> Result<CertSet, TlsError> {
    CertSet::load(certs, &provider())
}

impl CertReloader {
    /// Serves `set` to new handshakes.
    pub(crate) fn replace(&self, set: CertSet) {
        tracing::info!(certificates = ?set.names(), "TLS certificates reloaded");
        self.store.replace(set);
    }
}

/// The crypto provider: ring, whatever process-wide default another library installed.
fn provider() -> CryptoProvider {
    rustls::crypto::ring::default_provider()
}

impl Tls {
    /// Loads `certs` and builds the server config (blocking file I/O).
    pub(crate) fn new(certs: &[CertConfig]) -> Result<Tls, TlsError> {
        let provider = Arc::new(provider());
        let set = CertSet::load(certs, &provider)?;
        tracing::info!(certificates = ?set.names(), "TLS certificates loaded");
        let store = Arc::new(CertStore::new(set));
        let mut config = ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
            .map_err(|e| TlsError::Setup(e.to_string()))?
            .with_no_client_auth()
            .with_cert_resolver(store.clone());
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(Tls {
            store,
            acceptor: TlsAcceptor::from(Arc::new(config)),
        })
    }

    /// The handle a reload uses to swap certificates.
    pub(crate) fn reloader(&self) -> CertReloader {
        CertReloader {
            store: self.store.clone(),
        }
    }

    /// Runs the server side of the handshake on `stream`, giving up after `timeout`.
    pub(crate) async fn accept(
        &self,
        stream: TcpStream,
        timeout: Duration,
    ) -> Result<TlsStream<TcpStream>, HandshakeError> {
        match tokio::time::timeout(timeout, self.acceptor.accept(stream)).await {
            Ok(Ok(tls)) => Ok(tls),
            Ok(Err(e)) => Err(HandshakeError::Failed(e)),
            Err(_) => Err(HandshakeError::TimedOut(timeout)),
        }
    }
}

/// Why a TLS handshake did not complete (the connection is dropped).
#[derive(Debug, thiserror::Error)]
pub(crate) enum HandshakeError {
    /// A protocol error, or the client went away.
    #[error("TLS handshake failed: {0}")]
    Failed(std::io::Error),
    /// The client did not finish the handshake in time.
    #[error("TLS handshake not finished within {0:?}")]
    TimedOut(Duration),
}
