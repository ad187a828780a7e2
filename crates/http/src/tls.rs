//! HTTPS: a rustls server configuration from a PEM certificate and key, or
//! from a certificate generated at start for `127.0.0.1` and `localhost`.
//!
//! Browsers speak HTTP/2 only over TLS, and HTTP/2 is what lifts the six
//! connections per origin that HTTP/1.1 allows (docs/07-operating-and-scaling.md):
//! ALPN offers `h2` first, then `http/1.1`, and the connection loop
//! ([`crate::server`]) serves whichever the browser chose. A browser opens
//! its WebSockets over HTTP/1.1 (this server does not offer RFC 8441's
//! WebSocket over HTTP/2), on a TLS connection of their own.

use std::fmt;
use std::path::Path;
use std::sync::Arc;

use rustls::ServerConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio_rustls::TlsAcceptor;

/// The names a generated certificate is valid for.
pub(crate) const SELF_SIGNED_NAMES: [&str; 2] = ["127.0.0.1", "localhost"];

/// ALPN protocol ids, most preferred first.
pub(crate) const ALPN: [&[u8]; 2] = [b"h2", b"http/1.1"];

/// A TLS acceptor and what to tell the user about its certificate.
#[derive(Clone)]
pub struct Tls {
    acceptor: TlsAcceptor,
    /// The certificate's SHA-256 fingerprint, `AB:CD:…`, as browsers show it.
    pub fingerprint: String,
    /// Where the certificate came from, in words.
    pub origin: String,
}

impl fmt::Debug for Tls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tls")
            .field("fingerprint", &self.fingerprint)
            .field("origin", &self.origin)
            .finish_non_exhaustive()
    }
}

/// Why a certificate could not be used; each says which file and what.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("reading the certificate {path}: {reason}")]
    Certificate { path: String, reason: String },
    #[error("reading the private key {path}: {reason}")]
    Key { path: String, reason: String },
    #[error("the certificate and key do not make a TLS configuration: {0}")]
    Config(#[from] rustls::Error),
    #[error("generating a certificate: {0}")]
    Generate(#[from] rcgen::Error),
}

impl Tls {
    /// A certificate generated now, valid for [`SELF_SIGNED_NAMES`]. Browsers
    /// warn about it until told to trust it: its fingerprint tells them it is
    /// this one.
    pub fn self_signed() -> Result<Tls, TlsError> {
        let names: Vec<String> = SELF_SIGNED_NAMES.iter().map(|n| (*n).to_owned()).collect();
        let generated = rcgen::generate_simple_self_signed(names)?;
        let cert = generated.cert.der().clone();
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(
            generated.signing_key.serialize_der(),
        ));
        Tls::new(
            vec![cert],
            key,
            format!("self-signed for {}", SELF_SIGNED_NAMES.join(", ")),
        )
    }

    /// The certificate chain in `cert` and the private key in `key`, both
    /// PEM.
    pub fn from_pem_files(cert: &Path, key: &Path) -> Result<Tls, TlsError> {
        let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
            .and_then(|certs| certs.collect::<Result<_, _>>())
            .map_err(|err| TlsError::Certificate {
                path: cert.display().to_string(),
                reason: err.to_string(),
            })?;
        if chain.is_empty() {
            return Err(TlsError::Certificate {
                path: cert.display().to_string(),
                reason: "no CERTIFICATE block in it".into(),
            });
        }
        let private = PrivateKeyDer::from_pem_file(key).map_err(|err| TlsError::Key {
            path: key.display().to_string(),
            reason: err.to_string(),
        })?;
        Tls::new(chain, private, format!("from {}", cert.display()))
    }

    fn new(
        chain: Vec<CertificateDer<'static>>,
        key: PrivateKeyDer<'static>,
        origin: String,
    ) -> Result<Tls, TlsError> {
        let fingerprint = fingerprint(&chain[0]);
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_single_cert(chain, key)?;
        config.alpn_protocols = ALPN.iter().map(|p| p.to_vec()).collect();
        Ok(Tls {
            acceptor: TlsAcceptor::from(Arc::new(config)),
            fingerprint,
            origin,
        })
    }

    pub fn acceptor(&self) -> &TlsAcceptor {
        &self.acceptor
    }
}

/// SHA-256 of the certificate, as colon-separated hex.
fn fingerprint(cert: &CertificateDer<'_>) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, cert.as_ref());
    digest
        .as_ref()
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_generated_certificate_makes_a_configuration_with_a_fingerprint() {
        let tls = Tls::self_signed().unwrap();
        assert_eq!(tls.fingerprint.len(), 32 * 3 - 1);
        assert!(tls.origin.contains("127.0.0.1"));
    }

    #[test]
    fn missing_or_wrong_files_say_which_and_why() {
        let dir = std::env::temp_dir().join(format!("notify-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let missing = dir.join("missing.pem");
        let err = Tls::from_pem_files(&missing, &missing).unwrap_err();
        assert!(err.to_string().contains("missing.pem"), "{err}");
        let empty = dir.join("empty.pem");
        std::fs::write(&empty, "not a certificate\n").unwrap();
        let err = Tls::from_pem_files(&empty, &empty).unwrap_err();
        assert!(err.to_string().contains("no CERTIFICATE block"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
