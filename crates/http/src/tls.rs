//! HTTPS: a rustls server configuration from a PEM certificate and key, or
//! from a certificate generated at start for `127.0.0.1` and `localhost`.
//!
//! Browsers speak HTTP/2 only over TLS, and HTTP/2 is what changes the unit
//! of HTTP/1.1's six connections per origin (docs/07-operating-and-scaling.md):
//! ALPN offers `h2` first, then `http/1.1`, and the connection loop
//! ([`crate::server`]) serves whichever the browser chose.
//!
//! The same certificate serves QUIC for WebTransport over HTTP/3
//! ([`Tls::quic_config`]: TLS 1.3 only, ALPN `h3`). A generated certificate
//! is an ECDSA P-256 one valid for 14 days, which is what a browser accepts
//! by its hash alone (`serverCertificateHashes`) for WebTransport: the page
//! is given [`Tls::certificate_hash`], and the lab works on a fresh machine
//! without installing a certificate.

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

/// The longest validity a browser accepts for a certificate it is given by
/// hash (the WebTransport spec's limit); a generated one stays a day short
/// of it, for clocks that differ.
pub const SELF_SIGNED_DAYS: i64 = 13;

/// A TLS acceptor and what to tell the user about its certificate.
#[derive(Clone)]
pub struct Tls {
    acceptor: TlsAcceptor,
    chain: Vec<CertificateDer<'static>>,
    key: Arc<PrivateKeyDer<'static>>,
    /// The certificate's SHA-256 fingerprint, `AB:CD:…`, as browsers show it.
    pub fingerprint: String,
    /// Where the certificate came from, in words.
    pub origin: String,
    /// The certificate's SHA-256 digest, for a page to hand to
    /// `new WebTransport(url, {serverCertificateHashes})`; only for a
    /// generated certificate, which no browser trusts otherwise.
    pub certificate_hash: Option<[u8; 32]>,
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
    /// A certificate generated now, valid for [`SELF_SIGNED_NAMES`] and
    /// [`SELF_SIGNED_DAYS`] days, on an ECDSA P-256 key. Browsers warn about
    /// it over HTTPS until told to trust it (its fingerprint tells them it
    /// is this one); WebTransport takes it by [`Tls::certificate_hash`].
    pub fn self_signed() -> Result<Tls, TlsError> {
        let names: Vec<String> = SELF_SIGNED_NAMES.iter().map(|n| (*n).to_owned()).collect();
        let mut params = rcgen::CertificateParams::new(names)?;
        // An hour back, for a client whose clock is a little behind.
        params.not_before = time::OffsetDateTime::now_utc() - time::Duration::hours(1);
        params.not_after = params.not_before + time::Duration::days(SELF_SIGNED_DAYS);
        let signing_key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
        let cert = params.self_signed(&signing_key)?.der().clone();
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(signing_key.serialize_der()));
        let hash = sha256(&cert);
        let mut tls = Tls::new(
            vec![cert],
            key,
            format!(
                "self-signed for {}, valid {SELF_SIGNED_DAYS} days",
                SELF_SIGNED_NAMES.join(", ")
            ),
        )?;
        tls.certificate_hash = Some(hash);
        Ok(tls)
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
            .with_single_cert(chain.clone(), key.clone_key())?;
        config.alpn_protocols = ALPN.iter().map(|p| p.to_vec()).collect();
        Ok(Tls {
            acceptor: TlsAcceptor::from(Arc::new(config)),
            chain,
            key: Arc::new(key),
            fingerprint,
            origin,
            certificate_hash: None,
        })
    }

    pub fn acceptor(&self) -> &TlsAcceptor {
        &self.acceptor
    }

    /// A rustls configuration for QUIC with the same certificate: TLS 1.3
    /// only, as QUIC requires, and ALPN `h3`, as WebTransport over HTTP/3
    /// does.
    pub fn quic_config(&self) -> Result<ServerConfig, TlsError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13])?
            .with_no_client_auth()
            .with_single_cert(self.chain.clone(), self.key.clone_key())?;
        config.alpn_protocols = vec![b"h3".to_vec()];
        Ok(config)
    }
}

fn sha256(cert: &CertificateDer<'_>) -> [u8; 32] {
    let digest = ring::digest::digest(&ring::digest::SHA256, cert.as_ref());
    digest.as_ref().try_into().expect("SHA-256 is 32 bytes")
}

/// SHA-256 of the certificate, as colon-separated hex.
fn fingerprint(cert: &CertificateDer<'_>) -> String {
    sha256(cert)
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
        let hash = tls
            .certificate_hash
            .expect("a generated certificate has a hash");
        let hex: String = hash.iter().map(|b| format!("{b:02X}")).collect();
        assert_eq!(hex, tls.fingerprint.replace(':', ""));
        let quic = tls.quic_config().unwrap();
        assert_eq!(quic.alpn_protocols, vec![b"h3".to_vec()]);
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
