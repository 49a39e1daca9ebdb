//! Clients from URLs: the URL's scheme, TLS settings and the crypto provider redis-rs
//! needs for them. Every topology makes its clients here.

use redis::Client;

#[cfg(feature = "tls")]
use super::tls::TlsSettings;

/// The client of a Redis URL; an error for a URL redis-rs cannot parse, or for a TLS
/// URL (`rediss://`) while the `tls` feature is off.
pub(crate) fn client(url: &str) -> Result<Client, Box<dyn std::error::Error + Send + Sync>> {
    if uses_tls(url) {
        #[cfg(not(feature = "tls"))]
        return Err("a `rediss` url needs the `tls` feature of redis-cached, which is off".into());
        #[cfg(feature = "tls")]
        install_crypto_provider();
    }
    Ok(Client::open(url)?)
}

/// Why a client of `url` with these TLS settings cannot be made: the settings need a
/// `rediss://` URL, and each PEM must parse (see [`TlsSettings::certificates`]).
#[cfg(feature = "tls")]
pub(crate) enum TlsClientError {
    /// A setting is wrong; the message says which.
    Config(String),
    /// The URL cannot be parsed.
    Url(Box<dyn std::error::Error + Send + Sync>),
}

/// The client of a Redis URL with TLS settings; with none, the same as [`client`].
#[cfg(feature = "tls")]
pub(crate) fn client_with_tls(url: &str, tls: &TlsSettings) -> Result<Client, TlsClientError> {
    if !tls.is_set() {
        return client(url).map_err(TlsClientError::Url);
    }
    if !uses_tls(url) {
        return Err(TlsClientError::Config(
            "`tls_root_ca` and `tls_client_auth` need a `rediss` url".to_owned(),
        ));
    }
    let certificates = tls.certificates().map_err(TlsClientError::Config)?;
    install_crypto_provider();
    Client::build_with_tls(url, certificates).map_err(|e| TlsClientError::Url(e.into()))
}

/// Whether the URL's scheme asks for TLS.
pub(crate) fn uses_tls(url: &str) -> bool {
    url.split_once("://")
        .is_some_and(|(scheme, _)| scheme.eq_ignore_ascii_case("rediss") || scheme.eq_ignore_ascii_case("valkeys"))
}

/// Makes ring the process's rustls crypto provider, unless the application chose one:
/// redis-rs builds each TLS connection with the process's provider and panics when there
/// is none (rustls cannot pick one when the build has both of its providers, or none).
#[cfg(feature = "tls")]
pub(crate) fn install_crypto_provider() {
    static INSTALLED: std::sync::Once = std::sync::Once::new();
    INSTALLED.call_once(|| {
        // An error means a provider is installed already: the application's stands.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}
