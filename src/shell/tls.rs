//! TLS client configuration.
//!
//! Owns building rustls [`ClientConfig`]s for caseclerk's IMAP and SMTP clients (and for the test
//! side of [`crate::dev::devstack`]). Every config is built with an **explicit ring crypto provider**:
//! if another crate ever pulls `aws-lc-rs` into the tree, rustls's process-wide default provider
//! becomes ambiguous and `ClientConfig::builder()` panics at run time; naming the provider here
//! keeps that from ever mattering.
//!
//! Trust: the webpki (Mozilla) roots, plus — when configured — the CA certificate(s) in one PEM
//! file. The extra file is how a site with an internal CA, and the throwaway test stack, are
//! trusted; the webpki roots alone reject such servers with `UnknownIssuer`.
//!
//! It also tells a server whose certificate did not verify ([`certificate_not_trusted`]) from
//! other TLS failures: the first needs a person (a `ca_file`, a renewed certificate), the others
//! are retried.
//!
//! Must not: open sockets, read anything except the named PEM file, or relax verification
//! (there is deliberately no "accept invalid certificates" switch).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use tokio_rustls::rustls::{self, ClientConfig, RootCertStore};

/// Why a TLS client configuration could not be built. Each variant names the file involved.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// The extra CA file could not be read at all.
    #[error("cannot read CA certificate file {path}: {source}")]
    ReadCa {
        /// The file that was named.
        path: PathBuf,
        /// What the operating system said.
        #[source]
        source: std::io::Error,
    },
    /// The extra CA file is not well-formed PEM.
    #[error("CA certificate file {path} is not valid PEM: {source}")]
    Pem {
        /// The file that was named.
        path: PathBuf,
        /// What the PEM parser said.
        #[source]
        source: rustls_pki_types::pem::Error,
    },
    /// The extra CA file holds no `CERTIFICATE` section (for example a key, or an empty file).
    #[error(
        "CA certificate file {path} contains no certificate \
         (expected a '-----BEGIN CERTIFICATE-----' section)"
    )]
    NoCertificate {
        /// The file that was named.
        path: PathBuf,
    },
    /// A certificate in the extra CA file is not usable as a trust anchor.
    #[error("certificate #{index} in CA file {path} cannot be used as a trust anchor: {source}")]
    BadCertificate {
        /// The file that was named.
        path: PathBuf,
        /// 1-based position of the certificate among the file's certificates.
        index: usize,
        /// What rustls said.
        #[source]
        source: rustls::Error,
    },
    /// rustls refused the protocol versions with the ring provider (should not happen).
    #[error("cannot build a TLS client configuration with the ring provider: {0}")]
    Provider(#[source] rustls::Error),
}

/// A rustls client configuration trusting the webpki roots plus, when given, every CA
/// certificate in `extra_ca_pem`.
///
/// TLS 1.2 and 1.3 (rustls's safe defaults), no client certificate, ring provider. ALPN is left
/// empty (neither IMAP nor SMTP uses it).
pub fn client_config(extra_ca_pem: Option<&Path>) -> Result<Arc<ClientConfig>, TlsError> {
    let mut roots = RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    if let Some(path) = extra_ca_pem {
        for (i, cert) in read_ca_file(path)?.into_iter().enumerate() {
            roots.add(cert).map_err(|source| TlsError::BadCertificate {
                path: path.to_path_buf(),
                index: i + 1,
                source,
            })?;
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(TlsError::Provider)?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// Every `CERTIFICATE` section of a PEM file (other sections, such as keys, are skipped).
fn read_ca_file(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let bytes = std::fs::read(path).map_err(|source| TlsError::ReadCa {
        path: path.to_path_buf(),
        source,
    })?;
    let certs = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|source| TlsError::Pem {
            path: path.to_path_buf(),
            source,
        })?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate {
            path: path.to_path_buf(),
        });
    }
    Ok(certs)
}

/// Did this error (or one it wraps) come from the server's certificate failing verification —
/// an unknown issuer, expired, not for this host name? Such a failure repeats on every attempt
/// until a person acts, unlike a reset connection or a timeout during the handshake.
///
/// rustls's error reaches us inside an `io::Error` (tokio-rustls), itself maybe inside lettre's
/// error; an `io::Error` does not list the error it wraps as its `source()`, so the walk looks
/// inside each one.
pub fn certificate_not_trusted(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut next = Some(e);
    while let Some(e) = next {
        if let Some(rustls::Error::InvalidCertificate(_)) = e.downcast_ref::<rustls::Error>() {
            return true;
        }
        if let Some(inner) = e
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
            && certificate_not_trusted(inner)
        {
            return true;
        }
        next = e.source();
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_certificate_failure_is_found_inside_the_io_error_that_carries_it() {
        let unknown = rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer);
        let io = std::io::Error::new(std::io::ErrorKind::InvalidData, unknown);
        assert!(certificate_not_trusted(&io));
        let expired = rustls::Error::InvalidCertificate(rustls::CertificateError::Expired);
        assert!(certificate_not_trusted(&expired));
    }

    #[test]
    fn other_tls_and_connection_failures_are_not_certificate_failures() {
        let alert = rustls::Error::AlertReceived(rustls::AlertDescription::HandshakeFailure);
        let io = std::io::Error::new(std::io::ErrorKind::InvalidData, alert);
        assert!(!certificate_not_trusted(&io));
        let reset = std::io::Error::from(std::io::ErrorKind::ConnectionReset);
        assert!(!certificate_not_trusted(&reset));
    }

    /// A unique scratch file path under the system temp dir (no `tempfile` dependency).
    fn scratch(name: &str) -> PathBuf {
        std::env::temp_dir().join(format!("caseclerk-tls-{}-{name}", std::process::id()))
    }

    #[test]
    fn the_webpki_roots_alone_make_a_config() {
        let config = client_config(None).unwrap();
        assert!(config.alpn_protocols.is_empty());
    }

    #[test]
    fn a_missing_ca_file_is_named_in_the_error() {
        let path = scratch("does-not-exist.pem");
        let err = client_config(Some(&path)).unwrap_err();
        assert!(matches!(err, TlsError::ReadCa { .. }), "{err:?}");
        assert!(err.to_string().contains("does-not-exist.pem"), "{err}");
    }

    #[test]
    fn a_file_without_certificates_is_rejected_with_its_name() {
        let path = scratch("no-cert.pem");
        std::fs::write(&path, "just some text\n").unwrap();
        let err = client_config(Some(&path)).unwrap_err();
        std::fs::remove_file(&path).unwrap();
        assert!(matches!(err, TlsError::NoCertificate { .. }), "{err:?}");
        assert!(err.to_string().contains("no-cert.pem"), "{err}");
    }

    #[test]
    fn a_truncated_pem_section_is_reported_as_bad_pem() {
        let path = scratch("truncated.pem");
        std::fs::write(&path, "-----BEGIN CERTIFICATE-----\nMIIB\n").unwrap();
        let err = client_config(Some(&path)).unwrap_err();
        std::fs::remove_file(&path).unwrap();
        assert!(matches!(err, TlsError::Pem { .. }), "{err:?}");
    }

    #[test]
    fn garbage_inside_a_certificate_section_is_rejected_as_a_trust_anchor() {
        let path = scratch("garbage.pem");
        std::fs::write(
            &path,
            "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
        )
        .unwrap();
        let err = client_config(Some(&path)).unwrap_err();
        std::fs::remove_file(&path).unwrap();
        assert!(
            matches!(err, TlsError::BadCertificate { index: 1, .. }),
            "{err:?}"
        );
    }
}
