//! Clients from URLs: the URL's scheme, TLS settings and the crypto provider redis-rs
//! needs for them. Every topology makes its clients here.

use std::time::Duration;

use redis::Client;
use redis::cluster::{ClusterClient, ClusterClientBuilder};

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

/// Why a client cannot be made.
#[derive(Debug)]
pub(crate) enum ClientError {
    /// A setting is wrong; the message says which. TLS settings need `rediss://` URLs,
    /// and each PEM must parse (see [`TlsSettings::certificates`]).
    Config(String),
    /// A URL cannot be parsed (or needs the `tls` feature).
    Url(Box<dyn std::error::Error + Send + Sync>),
}

/// The client of a Redis URL with TLS settings; with none, the same as [`client`].
#[cfg(feature = "tls")]
pub(crate) fn client_with_tls(url: &str, tls: &TlsSettings) -> Result<Client, ClientError> {
    if !tls.is_set() {
        return client(url).map_err(ClientError::Url);
    }
    if !uses_tls(url) {
        return Err(ClientError::Config(
            "`tls_root_ca` and `tls_client_auth` need a `rediss` url".to_owned(),
        ));
    }
    let certificates = tls.certificates().map_err(ClientError::Config)?;
    install_crypto_provider();
    Client::build_with_tls(url, certificates).map_err(|e| ClientError::Url(e.into()))
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

/// The cluster client of seed URLs (`rediss://` with TLS settings as for [`client_with_tls`]),
/// with every deadline explicit: redis-rs's cluster client has no response timeout by
/// default, and waits 1.28 s or more before retrying a `TRYAGAIN` or `CLUSTERDOWN`.
/// A request, with its redirections and retries, is dropped by redis-rs after two
/// `op_timeout`s, so it keeps nothing pending for a node that never answers; the cache's
/// own deadline (`op_timeout`) ends the call first, and says why (a `WAIT` no replica
/// answered is not a timeout of the node).
pub(crate) fn cluster_client(
    seeds: &[String],
    #[cfg(feature = "tls")] tls: &TlsSettings,
    op_timeout: Duration,
    connect_timeout: Duration,
) -> Result<ClusterClient, ClientError> {
    if seeds.is_empty() {
        return Err(ClientError::Config("`cluster` needs at least one seed node".to_owned()));
    }
    for seed in seeds {
        // The same checks, and messages, as for one server.
        #[cfg(not(feature = "tls"))]
        client(seed).map_err(ClientError::Url)?;
        #[cfg(feature = "tls")]
        client_with_tls(seed, tls)?;
    }
    // Short waits, and few retries: enough for a `MOVED` then an `ASK`, while a
    // `TRYAGAIN` (keys of a slot split by a resharding) comes back well within the
    // deadline, so the cache can act on it.
    let retry_wait = u64::try_from(op_timeout.as_millis() / 10).unwrap_or(u64::MAX).max(1);
    #[allow(unused_mut, reason = "set only with the `tls` feature")]
    let mut builder = ClusterClientBuilder::new(seeds.to_vec())
        // Half: a new cluster connection connects to the seeds, then to every node the
        // slot map names, and a hung node may cost this at each step.
        .connection_timeout(connect_timeout / 2)
        .response_timeout(op_timeout * 2)
        .overall_response_timeout(Some(op_timeout * 2))
        .retries(3)
        .min_retry_wait(1)
        .max_retry_wait(retry_wait);
    #[cfg(feature = "tls")]
    if tls.is_set() {
        builder = builder.certs(tls.certificates().map_err(ClientError::Config)?);
    }
    builder.build().map_err(|e| ClientError::Url(e.into()))
}

/// `url` with its host and port replaced (its scheme, credentials, database and query
/// kept): a cluster node's URL from a seed's.
pub(crate) fn node_url(url: &str, host: &str, port: u16) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("redis", url));
    let (userinfo, rest) = match rest.rsplit_once('@') {
        Some((userinfo, rest)) => (format!("{userinfo}@"), rest),
        None => (String::new(), rest),
    };
    let path = rest.find(['/', '?']).map_or("", |at| &rest[at..]);
    let host = if host.contains(':') {
        format!("[{host}]")
    } else {
        host.to_owned()
    };
    format!("{scheme}://{userinfo}{host}:{port}{path}")
}

#[cfg(test)]
mod tests {
    use super::node_url;

    #[test]
    fn a_nodes_url_keeps_the_seeds_scheme_credentials_and_database() {
        assert_eq!(
            node_url("redis://10.0.0.1:7000", "10.0.0.2", 7001),
            "redis://10.0.0.2:7001"
        );
        assert_eq!(
            node_url(
                "rediss://app:s3cr3t@seed.example:7000/0?protocol=resp3",
                "10.0.0.2",
                7001
            ),
            "rediss://app:s3cr3t@10.0.0.2:7001/0?protocol=resp3"
        );
        assert_eq!(node_url("redis://seed", "::1", 7001), "redis://[::1]:7001");
    }
}
