//! TLS settings beyond the URL: the CAs to trust instead of the system's, and a client
//! certificate for mutual TLS. Checked when the cache is built, so a PEM that does not
//! parse is a configuration error rather than a connection that never succeeds; and the
//! reasons a TLS connection fails, in words, for the connect warning.

use std::fmt;
use std::sync::Arc;

use redis::{ClientTlsConfig, RedisError, TlsCertificates};
use rustls::RootCertStore;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// What `tls_root_ca` and `tls_client_auth` set; PEM bytes, as given.
#[derive(Clone, Default)]
pub(crate) struct TlsSettings {
    /// The CAs to trust instead of the system's root certificates.
    pub(crate) root_ca: Option<Vec<u8>>,
    /// The client's certificate (chain) and private key.
    pub(crate) client_auth: Option<ClientAuth>,
}

/// A client certificate and its private key, in PEM.
#[derive(Clone)]
pub(crate) struct ClientAuth {
    pub(crate) cert: Vec<u8>,
    pub(crate) key: Vec<u8>,
}

/// Stands for a value that is set but must not be printed.
struct Redacted;

impl fmt::Debug for Redacted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// Stands for a PEM that is set: its size, not its text.
struct PemSize(usize);

impl fmt::Debug for PemSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "<PEM, {} bytes>", self.0)
    }
}

impl fmt::Debug for TlsSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut debug = f.debug_struct("TlsSettings");
        self.debug_fields(&mut debug);
        debug.finish()
    }
}

impl TlsSettings {
    /// Adds the settings to a `Debug`: never the key, nor (for brevity) the certificates.
    pub(crate) fn debug_fields(&self, debug: &mut fmt::DebugStruct<'_, '_>) {
        debug
            .field("tls_root_ca", &self.root_ca.as_ref().map(|pem| PemSize(pem.len())))
            .field("tls_client_auth", &self.client_auth.as_ref().map(|_| Redacted));
    }

    /// Whether anything is set (only a `rediss://` URL can use it).
    pub(crate) fn is_set(&self) -> bool {
        self.root_ca.is_some() || self.client_auth.is_some()
    }

    /// The certificates for redis-rs, once each PEM is known to parse and the key to
    /// match its certificate; the error says which setting is wrong, without quoting the
    /// key.
    pub(crate) fn certificates(&self) -> Result<TlsCertificates, String> {
        let roots = match &self.root_ca {
            Some(pem) => root_store(pem)?,
            None => RootCertStore::empty(),
        };
        if let Some(auth) = &self.client_auth {
            check_client_auth(auth, roots)?;
        }
        Ok(TlsCertificates {
            client_tls: self.client_auth.as_ref().map(|auth| ClientTlsConfig {
                client_cert: auth.cert.clone(),
                client_key: auth.key.clone(),
            }),
            root_cert: self.root_ca.clone(),
        })
    }
}

/// The certificates of a PEM, at least one.
fn certificates_of(pem: &[u8], setting: &str) -> Result<Vec<CertificateDer<'static>>, String> {
    let certificates = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("`{setting}` is not a valid PEM certificate: {e}"))?;
    if certificates.is_empty() {
        return Err(format!("`{setting}` contains no PEM certificate"));
    }
    Ok(certificates)
}

/// The trust anchors of `tls_root_ca`.
fn root_store(pem: &[u8]) -> Result<RootCertStore, String> {
    let mut store = RootCertStore::empty();
    for certificate in certificates_of(pem, "tls_root_ca")? {
        store
            .add(certificate)
            .map_err(|e| format!("`tls_root_ca` holds a certificate that cannot be a trust anchor: {e}"))?;
    }
    Ok(store)
}

/// Builds the client configuration redis-rs will build at each connection, so a key that
/// does not parse or does not match the certificate is found now.
fn check_client_auth(auth: &ClientAuth, roots: RootCertStore) -> Result<(), String> {
    let chain = certificates_of(&auth.cert, "tls_client_auth")?;
    // The parser's message may quote a line of the key: say only what is expected.
    let key = PrivateKeyDer::from_pem_slice(&auth.key)
        .map_err(|_| "the key of `tls_client_auth` is not a PEM private key (PKCS#8, PKCS#1 or SEC1)".to_owned())?;
    rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS is unavailable: {e}"))?
        .with_root_certificates(roots)
        .with_client_auth_cert(chain, key)
        .map_err(|e| format!("`tls_client_auth` cannot be used: {e}"))?;
    Ok(())
}

/// Why a TLS connection failed, in words, where the error says.
pub(crate) fn reason(e: &RedisError) -> Option<&'static str> {
    // redis-rs keeps rustls's error only as text (behind an I/O error it holds as a
    // trait object), so the text is what can be read.
    let text = e.to_string();
    REASONS
        .iter()
        .find(|(needles, _)| needles.iter().any(|needle| text.contains(needle)))
        .map(|&(_, reason)| reason)
}

/// What rustls's error text says, and the reason in words; the first that matches wins.
const REASONS: [(&[&str], &str); 6] = [
    (
        &["UnknownIssuer"],
        "the server's certificate is not signed by a trusted CA (UnknownIssuer); trust its CA with `tls_root_ca`",
    ),
    (
        &["CertificateRequired"],
        "the server requires a client certificate (CertificateRequired); give one with `tls_client_auth`",
    ),
    (
        &["certificate expired", "peer certificate: Expired"],
        "the server's certificate has expired",
    ),
    (
        &["CertificateExpired"],
        "the server says the client certificate has expired (CertificateExpired)",
    ),
    (
        &["not valid for name", "NotValidForName"],
        "the server's certificate is not valid for the URL's host name",
    ),
    (
        &["UnknownCA"],
        "the server does not trust the CA of the client certificate (UnknownCA)",
    ),
];

#[cfg(test)]
mod tests {
    use super::{ClientAuth, TlsSettings};

    #[test]
    fn debug_shows_neither_key_nor_certificates() {
        let settings = TlsSettings {
            root_ca: Some(b"-----BEGIN CERTIFICATE-----ca".to_vec()),
            client_auth: Some(ClientAuth {
                cert: b"-----BEGIN CERTIFICATE-----client".to_vec(),
                key: b"-----BEGIN PRIVATE KEY-----s3cr3t".to_vec(),
            }),
        };
        let debug = format!("{settings:?}");
        assert!(debug.contains("tls_client_auth: Some(<redacted>)"), "{debug}");
        assert!(!debug.contains("BEGIN") && !debug.contains("s3cr3t"), "{debug}");
    }

    #[test]
    fn a_pem_without_certificates_is_refused() {
        let settings = TlsSettings {
            root_ca: Some(b"not a pem".to_vec()),
            client_auth: None,
        };
        let error = settings.certificates().err();
        assert_eq!(error.as_deref(), Some("`tls_root_ca` contains no PEM certificate"));
    }
}
