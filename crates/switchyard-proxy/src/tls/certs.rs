//! Certificates: PEM chains and keys read from files, checked, and chosen per handshake by SNI.
//!
//! A [`CertSet`] is loaded whole (every file read, every key checked against its certificate)
//! before it is used, so a bad file never replaces a good set. The [`CertStore`] holds the set
//! in force behind an `ArcSwap`: a reload swaps it for new handshakes, and connections already
//! open keep the keys they negotiated with.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arc_swap::ArcSwap;
use rustls::crypto::CryptoProvider;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use switchyard_config::CertConfig;

/// Why certificates could not be loaded. Every message names the file at fault.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// The file is missing or unreadable.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// What the OS said.
        source: std::io::Error,
    },
    /// The file is not valid PEM.
    #[error("{} is not a valid PEM file: {reason}", path.display())]
    Pem {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The certificate file holds no certificate.
    #[error("{} holds no certificate (expected a PEM `BEGIN CERTIFICATE` block)", path.display())]
    NoCertificate {
        /// The file.
        path: PathBuf,
    },
    /// The key file holds no private key.
    #[error("{} holds no private key (expected a PKCS#8, PKCS#1 or SEC1 PEM key)", path.display())]
    NoKey {
        /// The file.
        path: PathBuf,
    },
    /// The certificate cannot be parsed.
    #[error("{}: the certificate cannot be parsed: {reason}", path.display())]
    BadCertificate {
        /// The certificate file.
        path: PathBuf,
        /// What the parser said.
        reason: String,
    },
    /// The key is of a type or format that cannot be used.
    #[error("{}: unusable private key: {reason}", path.display())]
    BadKey {
        /// The key file.
        path: PathBuf,
        /// What rustls said.
        reason: String,
    },
    /// The key is not the certificate's key.
    #[error("the key in {} does not match the certificate in {}", key.display(), cert.display())]
    KeyMismatch {
        /// The certificate file.
        cert: PathBuf,
        /// The key file.
        key: PathBuf,
    },
    /// https listeners but no certificate to serve.
    #[error("https listeners need at least one certificate: add a [[tls.certs]] entry")]
    NoCertificates,
    /// The TLS settings were refused by rustls.
    #[error("TLS setup failed: {0}")]
    Setup(String),
}

/// One loaded certificate with the names it serves.
#[derive(Debug)]
struct Entry {
    /// The chain and signing key rustls hands to a handshake.
    key: Arc<CertifiedKey>,
    /// Lower-case DNS names from the certificate's SANs (`*.example.com` included).
    names: Vec<String>,
}

/// A complete, checked set of certificates; the first is the default.
#[derive(Debug)]
pub(crate) struct CertSet {
    /// In config order; never empty.
    entries: Vec<Entry>,
}

impl CertSet {
    /// Reads and checks every certificate of `certs` (blocking file I/O).
    pub(crate) fn load(certs: &[CertConfig], provider: &CryptoProvider) -> Result<Self, TlsError> {
        if certs.is_empty() {
            return Err(TlsError::NoCertificates);
        }
        let entries = certs
            .iter()
            .map(|c| load_one(c, provider))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(CertSet { entries })
    }

    /// The certificate for a handshake that asked for `sni`: the first with that exact name,
    /// else the first whose wildcard covers it, else the first of all.
    pub(crate) fn choose(&self, sni: Option<&str>) -> &Arc<CertifiedKey> {
        let default = &self.entries[0].key;
        let Some(sni) = sni else { return default };
        let sni = sni.trim_end_matches('.').to_ascii_lowercase();
        let exact = self.entries.iter().find(|e| e.names.contains(&sni));
        let wild = || {
            self.entries
                .iter()
                .find(|e| e.names.iter().any(|n| wildcard_matches(n, &sni)))
        };
        exact.or_else(wild).map_or(default, |e| &e.key)
    }

    /// The names of each certificate, in order (for the start-up log).
    pub(crate) fn names(&self) -> Vec<String> {
        self.entries.iter().map(|e| e.names.join(" ")).collect()
    }
}

/// Whether the SAN `pattern` (`*.example.com`) covers `name`: exactly one label in place of
/// the `*`, as browsers do.
fn wildcard_matches(pattern: &str, name: &str) -> bool {
    let Some(suffix) = pattern.strip_prefix("*.") else {
        return false;
    };
    match name.split_once('.') {
        Some((label, rest)) => !label.is_empty() && rest == suffix,
        None => false,
    }
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        path: path.to_path_buf(),
        source,
    })
}

fn pem_error(path: &Path, e: rustls_pki_types::pem::Error) -> TlsError {
    TlsError::Pem {
        path: path.to_path_buf(),
        reason: e.to_string(),
    }
}

fn load_one(config: &CertConfig, provider: &CryptoProvider) -> Result<Entry, TlsError> {
    let (cert_path, key_path) = (config.cert.as_path(), config.key.as_path());
    let pem = read(cert_path)?;
    let chain = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| pem_error(cert_path, e))?;
    let Some(leaf) = chain.first() else {
        return Err(TlsError::NoCertificate {
            path: cert_path.to_path_buf(),
        });
    };
    let names = dns_names(leaf).map_err(|reason| TlsError::BadCertificate {
        path: cert_path.to_path_buf(),
        reason,
    })?;
    let pem = read(key_path)?;
    let key = match PrivateKeyDer::from_pem_slice(&pem) {
        Ok(k) => k,
        Err(rustls_pki_types::pem::Error::NoItemsFound) => {
            return Err(TlsError::NoKey {
                path: key_path.to_path_buf(),
            });
        }
        Err(e) => return Err(pem_error(key_path, e)),
    };
    let signer = provider
        .key_provider
        .load_private_key(key)
        .map_err(|e| TlsError::BadKey {
            path: key_path.to_path_buf(),
            reason: e.to_string(),
        })?;
    let key = CertifiedKey::new(chain, signer);
    match key.keys_match() {
        Ok(()) | Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::Unknown)) => {}
        Err(rustls::Error::InconsistentKeys(_)) => {
            return Err(TlsError::KeyMismatch {
                cert: cert_path.to_path_buf(),
                key: key_path.to_path_buf(),
            });
        }
        Err(e) => {
            return Err(TlsError::BadCertificate {
                path: cert_path.to_path_buf(),
                reason: e.to_string(),
            });
        }
    }
    Ok(Entry {
        key: Arc::new(key),
        names,
    })
}

/// The DNS names in the certificate's subject alternative names, lower-cased.
fn dns_names(cert: &CertificateDer<'_>) -> Result<Vec<String>, String> {
    let parsed = webpki::EndEntityCert::try_from(cert).map_err(|e| e.to_string())?;
    Ok(parsed
        .valid_dns_names()
        .map(|n| n.trim_end_matches('.').to_ascii_lowercase())
        .collect())
}

/// The certificates in force, as rustls asks for them on every handshake.
#[derive(Debug)]
pub(crate) struct CertStore {
    /// Swapped whole by a reload; read once per handshake.
    current: ArcSwap<CertSet>,
}

impl CertStore {
    /// A store serving `set`.
    pub(crate) fn new(set: CertSet) -> Self {
        CertStore {
            current: ArcSwap::from_pointee(set),
        }
    }

    /// Serves `set` to every handshake from now on; open connections are not touched.
    pub(crate) fn replace(&self, set: CertSet) {
        self.current.store(Arc::new(set));
    }
}

impl ResolvesServerCert for CertStore {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current.load().choose(hello.server_name()).clone())
    }
}

#[cfg(test)]
mod tests {
    use super::wildcard_matches;

    #[test]
    fn wildcards_cover_one_label() {
        assert!(wildcard_matches("*.example.com", "a.example.com"));
        assert!(!wildcard_matches("*.example.com", "example.com"));
        assert!(!wildcard_matches("*.example.com", "a.b.example.com"));
        assert!(!wildcard_matches("*.example.com", ".example.com"));
        assert!(!wildcard_matches("example.com", "example.com"));
    }
}
