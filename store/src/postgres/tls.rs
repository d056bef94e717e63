//! TLS to PostgreSQL with rustls, chosen as libpq chooses it: `sslmode=disable|prefer|require|
//! verify-ca|verify-full` and `sslrootcert=PATH` (or `system`, the Mozilla roots) in the URL.
//! `prefer` (the default) and `require` encrypt without checking who answers, as in libpq;
//! `require` with a root certificate checks the chain like `verify-ca`; `verify-full` also
//! checks that the certificate names the host.

use std::sync::Arc;

use percent_encoding::percent_decode_str;
use tokio_postgres::Config;
use tokio_postgres::config::SslMode;
use tokio_postgres_rustls::MakeRustlsConnect;
use tokio_rustls::rustls::client::WebPkiServerVerifier;
use tokio_rustls::rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use tokio_rustls::rustls::crypto::{CryptoProvider, ring, verify_tls12_signature, verify_tls13_signature};
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use tokio_rustls::rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, Error, RootCertStore, SignatureScheme,
};

use super::redacted;
use crate::event_store::StoreError;

/// How a connection to the database at a URL is made.
#[derive(Clone)]
pub struct Connector {
    pub config: Config,
    pub tls: MakeRustlsConnect,
}

impl Connector {
    /// Reads `url`, taking out the TLS parameters that `tokio_postgres` does not know.
    pub fn parse(url: &str) -> Result<Connector, StoreError> {
        let bad = |why: String| StoreError::Backend(format!("{}: {why}", redacted(url)));
        let (base, query) = url.split_once('?').unwrap_or((url, ""));
        let (mut mode, mut root) = (None, None);
        let mut kept = Vec::new();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            match pair.split_once('=') {
                Some(("sslmode", value)) => mode = Some(value.to_string()),
                Some(("sslrootcert", value)) => root = Some(percent_decode_str(value).decode_utf8_lossy().into_owned()),
                _ => kept.push(pair),
            }
        }
        let url_without = if kept.is_empty() { base.to_string() } else { format!("{base}?{}", kept.join("&")) };
        let mut config: Config = url_without.parse().map_err(|e| bad(format!("not a PostgreSQL URL: {e}")))?;
        let mode = mode.as_deref().unwrap_or("prefer");
        let (ssl, check) = match mode {
            "disable" => (SslMode::Disable, Check::Nothing),
            "prefer" | "allow" => (SslMode::Prefer, Check::Nothing),
            "require" if root.is_some() => (SslMode::Require, Check::Chain),
            "require" => (SslMode::Require, Check::Nothing),
            "verify-ca" => (SslMode::Require, Check::Chain),
            "verify-full" => (SslMode::Require, Check::ChainAndName),
            other => {
                return Err(bad(format!(
                    "sslmode={other} is not one of disable, prefer, require, verify-ca, verify-full"
                )));
            }
        };
        config.ssl_mode(ssl);
        let provider = Arc::new(ring::default_provider());
        let verifier: Arc<dyn ServerCertVerifier> = match check {
            Check::Nothing => Arc::new(Unchecked(provider.clone())),
            Check::Chain | Check::ChainAndName => {
                let roots = roots(root.as_deref()).map_err(|why| bad(format!("sslmode={mode}: {why}")))?;
                let webpki = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                    .build()
                    .map_err(|e| bad(format!("sslrootcert: {e}")))?;
                if check == Check::Chain { Arc::new(ChainOnly(webpki)) } else { webpki }
            }
        };
        let tls = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| bad(e.to_string()))?
            .dangerous()
            .with_custom_certificate_verifier(verifier)
            .with_no_client_auth();
        Ok(Connector { config, tls: MakeRustlsConnect::new(tls) })
    }

    /// One connection, outside the pool (listeners, locks).
    pub async fn connect(
        &self,
    ) -> Result<
        (
            tokio_postgres::Client,
            tokio_postgres::Connection<
                tokio_postgres::Socket,
                <MakeRustlsConnect as tokio_postgres::tls::MakeTlsConnect<tokio_postgres::Socket>>::Stream,
            >,
        ),
        tokio_postgres::Error,
    > {
        self.config.connect(self.tls.clone()).await
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Check {
    Nothing,
    Chain,
    ChainAndName,
}

/// The roots to check the server's chain against.
fn roots(root: Option<&str>) -> Result<RootCertStore, String> {
    let mut store = RootCertStore::empty();
    match root {
        None => return Err("needs sslrootcert=PATH (the CA's PEM) or sslrootcert=system".into()),
        Some("system") => store.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
        Some(path) => {
            let certificates = CertificateDer::pem_file_iter(path)
                .map_err(|e| format!("cannot read sslrootcert {path}: {e}"))?
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| format!("cannot read sslrootcert {path}: {e}"))?;
            let (added, _) = store.add_parsable_certificates(certificates);
            if added == 0 {
                return Err(format!("sslrootcert {path} holds no usable certificate"));
            }
        }
    }
    Ok(store)
}

/// Encryption without authentication (`prefer`, `require`): the handshake's signatures are
/// still checked against the certificate presented, but not who issued it.
#[derive(Debug)]
struct Unchecked(Arc<CryptoProvider>);

impl ServerCertVerifier for Unchecked {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// `verify-ca`: the chain must lead to a root given, whatever name the certificate holds.
#[derive(Debug)]
struct ChainOnly(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for ChainOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, Error> {
        match self.0.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now) {
            Err(Error::InvalidCertificate(CertificateError::NotValidForName))
            | Err(Error::InvalidCertificate(CertificateError::NotValidForNameContext { .. })) => {
                Ok(ServerCertVerified::assertion())
            }
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tls_parameters_are_taken_out_and_the_rest_kept() {
        let plain = Connector::parse("postgres://u@db.example:5432/tenure?sslmode=disable&application_name=x").unwrap();
        assert_eq!(plain.config.get_ssl_mode(), SslMode::Disable);
        assert_eq!(plain.config.get_application_name(), Some("x"));
        assert_eq!(Connector::parse("postgres://u@h/d").unwrap().config.get_ssl_mode(), SslMode::Prefer);
        assert_eq!(
            Connector::parse("postgres://u@h/d?sslmode=require").unwrap().config.get_ssl_mode(),
            SslMode::Require
        );
        let system = Connector::parse("postgres://u@h/d?sslmode=verify-full&sslrootcert=system").unwrap();
        assert_eq!(system.config.get_ssl_mode(), SslMode::Require);
    }

    #[test]
    fn a_check_without_roots_or_an_unknown_mode_is_one_clear_error() {
        let no_roots = Connector::parse("postgres://u:secret@h/d?sslmode=verify-full").err().unwrap().to_string();
        assert!(no_roots.contains("sslrootcert") && !no_roots.contains("secret"), "{no_roots}");
        let missing = Connector::parse("postgres://u@h/d?sslmode=verify-ca&sslrootcert=/nonexistent/ca.pem");
        assert!(missing.err().unwrap().to_string().contains("/nonexistent/ca.pem"));
        let encoded = Connector::parse("postgres://u@h/d?sslmode=verify-ca&sslrootcert=%2Fnonexistent%2Fca.pem");
        assert!(encoded.err().unwrap().to_string().contains("/nonexistent/ca.pem"), "the path is percent-decoded");
        let unknown = Connector::parse("postgres://u@h/d?sslmode=sometimes").err().unwrap().to_string();
        assert!(unknown.contains("sslmode=sometimes"), "{unknown}");
    }
}
