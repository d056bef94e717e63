//! HTTPS in the gateway: a certificate chain and key from PEM files, offered with HTTP/2 and
//! HTTP/1.1 by ALPN, and reloaded on SIGHUP without touching open connections: new handshakes
//! get the new pair, a bad new pair is refused and the old one kept.

use std::path::PathBuf;
use std::sync::{Arc, RwLock};

use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::crypto::ring;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::server::{ClientHello, ResolvesServerCert};
use tokio_rustls::rustls::sign::CertifiedKey;
use tokio_rustls::rustls::{self, ServerConfig};

pub type Acceptor = TlsAcceptor;

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read the certificate chain {path}: {reason}")]
    Certificate { path: PathBuf, reason: String },
    #[error("cannot read the private key {path}: {reason}")]
    Key { path: PathBuf, reason: String },
    #[error("the private key {key} does not belong to the certificate {cert}")]
    Mismatch { cert: PathBuf, key: PathBuf },
    #[error("TLS: {0}")]
    Rustls(#[from] rustls::Error),
}

/// Where the pair is read from, again at every reload.
#[derive(Debug, Clone)]
pub struct PemFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl PemFiles {
    /// Reads and checks the pair: a chain of at least one certificate, a key the provider can
    /// sign with, and that key matching the leaf certificate.
    pub fn load(&self) -> Result<Arc<CertifiedKey>, TlsError> {
        let certificate = |reason: String| TlsError::Certificate { path: self.cert.clone(), reason };
        let chain = CertificateDer::pem_file_iter(&self.cert)
            .map_err(|e| certificate(e.to_string()))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| certificate(e.to_string()))?;
        if chain.is_empty() {
            return Err(certificate("no CERTIFICATE in it".into()));
        }
        let key = |reason: String| TlsError::Key { path: self.key.clone(), reason };
        let der = PrivateKeyDer::from_pem_file(&self.key).map_err(|e| key(e.to_string()))?;
        let signing = ring::default_provider().key_provider.load_private_key(der).map_err(|e| key(e.to_string()))?;
        let pair = CertifiedKey::new(chain, signing);
        pair.keys_match().map_err(|_| TlsError::Mismatch { cert: self.cert.clone(), key: self.key.clone() })?;
        Ok(Arc::new(pair))
    }
}

/// The pair handshakes are answered with; replaced whole at a reload.
#[derive(Debug)]
struct Current(RwLock<Arc<CertifiedKey>>);

impl ResolvesServerCert for Current {
    fn resolve(&self, _: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.read().unwrap_or_else(std::sync::PoisonError::into_inner).clone())
    }
}

/// Loads the pair (an error here stops the start) and returns the acceptor, with a task that
/// reloads the pair on every SIGHUP.
pub fn acceptor(files: PemFiles) -> Result<Acceptor, TlsError> {
    let current = Arc::new(Current(RwLock::new(files.load()?)));
    let mut config = ServerConfig::builder_with_provider(Arc::new(ring::default_provider()))
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_cert_resolver(current.clone());
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    reload_on_hangup(files, current);
    Ok(TlsAcceptor::from(Arc::new(config)))
}

fn reload_on_hangup(files: PemFiles, current: Arc<Current>) {
    #[cfg(unix)]
    tokio::spawn(async move {
        use tokio::signal::unix::{SignalKind, signal};
        let Ok(mut hangups) = signal(SignalKind::hangup()) else {
            tracing::warn!("cannot listen for SIGHUP: the certificate will not be reloaded");
            return;
        };
        while hangups.recv().await.is_some() {
            match files.load() {
                Ok(pair) => {
                    *current.0.write().unwrap_or_else(std::sync::PoisonError::into_inner) = pair;
                    tracing::info!(cert = %files.cert.display(), "reloaded the TLS certificate");
                }
                Err(error) => tracing::error!("kept the previous TLS certificate: {error}"),
            }
        }
    });
}
