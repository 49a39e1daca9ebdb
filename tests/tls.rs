//! `rediss://` with the `tls` feature: the cache builds whether or not the server is up,
//! and talks TLS to a server only when the system's root certificates trust it (each
//! child process gets its "system roots" from `SSL_CERT_FILE`, set before it starts), or
//! the CA given with `tls_root_ca`; with `tls_client_auth` it presents a client
//! certificate. A server it cannot trust, or that wants a certificate it does not have,
//! fails open, and the log says which. The behaviour suite runs over mutual TLS too.

mod behaviour;
mod support;

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use behaviour::{Db, behaviour_tests};
use redis_cached::{Cache, Error, Policy};
use support::child::{is_child, run_child};
use support::logs::Logs;
use support::tls::{Certificates, make_certificates};
use support::{RedisServer, eventually, wait_connected};

static POLICY: Policy = Policy::new("tls", Duration::from_secs(60));

/// The behaviour suite's database over mutual TLS: a server of a private CA that asks
/// for a client certificate, and a cache that trusts that CA and presents one.
async fn mutual_tls_db() -> (TlsRedis, Arc<Db>) {
    let server = TlsRedis::start_with(Clients::Authenticated, "server");
    let cache = Cache::builder()
        .url(format!("rediss://127.0.0.1:{}", server.port))
        .prefix("shop:")
        .tls_root_ca(server.read("ca.pem"))
        .tls_client_auth(server.read("client.pem"), server.read("client.key"))
        .build()
        .await
        .expect("the TLS settings are valid");
    wait_connected(&cache).await;
    (server, Arc::new(Db::new(cache)))
}

behaviour_tests!(mutual_tls_db());

#[tokio::test]
async fn a_rediss_url_builds_while_nothing_listens_and_the_cache_fails_open() {
    let down = RedisServer::not_started();
    let cache = Cache::builder()
        .url(format!("rediss://127.0.0.1:{}", down.port))
        .connect_timeout(Duration::from_millis(50))
        .build()
        .await
        .expect("`rediss://` is accepted with the `tls` feature");
    let loaded = cache.get_or_load(&POLICY, "k", async { Ok::<_, ()>(Some(7u32)) }).await;
    assert_eq!(loaded, Ok(Some(7)), "fails open to the loader");
    assert!(format!("{cache:?}").contains("connected: false"), "{cache:?}");
}

#[test]
fn a_rediss_url_reaches_a_server_the_system_roots_trust_and_no_other() {
    const TEST: &str = "a_rediss_url_reaches_a_server_the_system_roots_trust_and_no_other";
    if is_child(TEST) {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let url = std::env::var("REDIS_CACHED_TLS_URL").unwrap();
        match std::env::var("REDIS_CACHED_TLS_TRUSTED").as_deref() {
            Ok("yes") => runtime.block_on(talks_tls(&url)),
            _ => runtime.block_on(refuses_an_unknown_issuer(&url)),
        }
        return;
    }
    let server = TlsRedis::start();
    let url = format!("rediss://127.0.0.1:{}", server.port);
    let ca = server.dir.join("ca.pem");
    let other_ca = server.dir.join("other-ca.pem");
    for (roots, trusted) in [(&ca, "yes"), (&other_ca, "no")] {
        run_child(
            TEST,
            &[
                ("SSL_CERT_FILE", roots.to_str().unwrap()),
                ("REDIS_CACHED_TLS_URL", &url),
                ("REDIS_CACHED_TLS_TRUSTED", trusted),
            ],
        );
    }
}

/// The cache connects over TLS and serves hits.
async fn talks_tls(url: &str) {
    let cache = Cache::builder().url(url).prefix("tls:").build().await.unwrap();
    support::wait_connected(&cache).await;
    assert!(format!("{cache:?}").contains("connected: true"), "{cache:?}");
    for _ in 0..2 {
        let loaded = cache.get_or_load(&POLICY, "k", async { Ok::<_, ()>(Some(7u32)) }).await;
        assert_eq!(loaded, Ok(Some(7)));
    }
    assert_eq!((cache.stats().loads, cache.stats().hits), (1, 1));
}

/// The server's certificate is not trusted: no connection, and the log says why.
async fn refuses_an_unknown_issuer(url: &str) {
    let (logs, _guard) = Logs::capture();
    let cache = Cache::builder()
        .url(url)
        .connect_timeout(Duration::from_millis(200))
        .build()
        .await
        .unwrap();
    eventually("the cache says why it cannot connect", async || {
        logs.lines()
            .iter()
            .any(|l| l.contains("cannot connect") && l.contains("UnknownIssuer"))
    })
    .await;
    assert!(cache.invalidate("k").await.is_err());
    assert!(format!("{cache:?}").contains("connected: false"), "{cache:?}");
}

/// A cache for the TLS server at `port` with this builder's TLS settings; short
/// timeouts, so a refused connection is retried (and logged) soon.
async fn cache_with(port: u16, tls: impl FnOnce(redis_cached::CacheBuilder) -> redis_cached::CacheBuilder) -> Cache {
    tls(Cache::builder()
        .url(format!("rediss://127.0.0.1:{port}"))
        .prefix("tls:")
        .connect_timeout(Duration::from_millis(200)))
    .build()
    .await
    .expect("the TLS settings are valid")
}

/// Calls `cache` twice for the same key; returns how many times the loader ran.
async fn call_twice(cache: &Cache) -> usize {
    let loads = AtomicUsize::new(0);
    for _ in 0..2 {
        let loaded = cache
            .get_or_load(&POLICY, "k", async {
                loads.fetch_add(1, Ordering::SeqCst);
                Ok::<_, ()>(Some(7u32))
            })
            .await;
        assert_eq!(loaded, Ok(Some(7)));
    }
    loads.load(Ordering::SeqCst)
}

/// Waits until a captured line says the cache cannot connect, for `reason`.
async fn logged_connect_failure(logs: &Logs, reason: &str) {
    eventually(&format!("the log says {reason:?}"), async || {
        logs.lines()
            .iter()
            .any(|l| l.contains("cannot connect") && l.contains(reason))
    })
    .await;
}

#[tokio::test]
async fn a_private_ca_given_with_tls_root_ca_is_trusted_and_values_are_stored() {
    let server = TlsRedis::start_with(Clients::Anonymous, "server");
    let cache = cache_with(server.port, |b| b.tls_root_ca(server.read("ca.pem"))).await;
    support::wait_connected(&cache).await;
    assert_eq!(call_twice(&cache).await, 1, "the second call is a hit");
    assert_eq!(server.cli(&["EXISTS", "tls:{k}"]), "1", "the value is in Redis");
}

#[tokio::test]
async fn mutual_tls_with_tls_client_auth_hits_and_the_key_is_never_logged() {
    let server = TlsRedis::start_with(Clients::Authenticated, "server");
    let (logs, _guard) = Logs::capture();
    let cache = cache_with(server.port, |b| {
        b.tls_root_ca(server.read("ca.pem"))
            .tls_client_auth(server.read("client.pem"), server.read("client.key"))
    })
    .await;
    support::wait_connected(&cache).await;
    assert_eq!(call_twice(&cache).await, 1, "the second call is a hit");
    assert_eq!(server.cli(&["EXISTS", "tls:{k}"]), "1", "the value is in Redis");
    let key = String::from_utf8(server.read("client.key")).unwrap();
    assert!(!format!("{cache:?}").contains(key_body(&key)), "{cache:?}");
    for line in logs.lines() {
        assert!(!line.contains(key_body(&key)), "a log line carries the key: {line}");
    }
}

#[tokio::test]
async fn without_a_client_certificate_a_server_that_wants_one_fails_open_and_the_log_says_so() {
    let server = TlsRedis::start_with(Clients::Authenticated, "server");
    let (logs, _guard) = Logs::capture();
    let cache = cache_with(server.port, |b| b.tls_root_ca(server.read("ca.pem"))).await;
    logged_connect_failure(&logs, "the server requires a client certificate (CertificateRequired)").await;
    assert_eq!(call_twice(&cache).await, 2, "every call runs its loader");
    assert_eq!(server.cli(&["EXISTS", "tls:{k}"]), "0", "nothing was stored");
}

#[tokio::test]
async fn a_server_certificate_of_another_ca_fails_open_and_the_log_says_the_issuer_is_unknown() {
    let server = TlsRedis::start_with(Clients::Anonymous, "server");
    let (logs, _guard) = Logs::capture();
    let cache = cache_with(server.port, |b| b.tls_root_ca(server.read("other-ca.pem"))).await;
    logged_connect_failure(
        &logs,
        "the server's certificate is not signed by a trusted CA (UnknownIssuer)",
    )
    .await;
    assert_eq!(call_twice(&cache).await, 2, "every call runs its loader");
    assert_eq!(server.cli(&["EXISTS", "tls:{k}"]), "0", "nothing was stored");
}

#[tokio::test]
async fn an_expired_server_certificate_fails_open_and_the_log_says_it_has_expired() {
    let server = TlsRedis::start_with(Clients::Anonymous, "expired");
    let (logs, _guard) = Logs::capture();
    let cache = cache_with(server.port, |b| b.tls_root_ca(server.read("ca.pem"))).await;
    logged_connect_failure(&logs, "the server's certificate has expired").await;
    assert_eq!(call_twice(&cache).await, 2, "every call runs its loader");
}

#[test]
fn the_builders_debug_never_shows_the_client_key() {
    let dir = Certificates::make();
    let key = String::from_utf8(dir.read("client.key")).unwrap();
    let builder = Cache::builder()
        .url("rediss://127.0.0.1:6380")
        .tls_root_ca(dir.read("ca.pem"))
        .tls_client_auth(dir.read("client.pem"), key.clone());
    let debug = format!("{builder:?}");
    assert!(debug.contains("tls_client_auth: Some(<redacted>)"), "{debug}");
    assert!(
        !debug.contains(key_body(&key)) && !debug.contains("PRIVATE KEY"),
        "{debug}"
    );
}

#[tokio::test]
async fn tls_settings_that_cannot_work_are_configuration_errors_when_built() {
    let dir = Certificates::make();
    let down = format!("rediss://127.0.0.1:{}", RedisServer::not_started().port);
    let invalid = async |builder: redis_cached::CacheBuilder| match builder.build().await {
        Err(Error::InvalidConfig(why)) => why,
        other => panic!("expected InvalidConfig, got {other:?}"),
    };
    let why = invalid(
        Cache::builder()
            .url("redis://127.0.0.1:6379")
            .tls_root_ca(dir.read("ca.pem")),
    )
    .await;
    assert!(why.contains("`rediss` url"), "{why}");
    let why = invalid(Cache::builder().url(&down).tls_root_ca("not a certificate")).await;
    assert!(why.contains("tls_root_ca"), "{why}");
    let why = invalid(
        Cache::builder()
            .url(&down)
            .tls_client_auth(dir.read("client.pem"), "not a key"),
    )
    .await;
    assert!(why.contains("tls_client_auth"), "{why}");
    // A key, but not the certificate's.
    let other_key = String::from_utf8(dir.read("other-ca.key")).unwrap();
    let why = invalid(
        Cache::builder()
            .url(&down)
            .tls_client_auth(dir.read("client.pem"), other_key.clone()),
    )
    .await;
    assert!(why.contains("tls_client_auth"), "{why}");
    assert!(!why.contains(key_body(&other_key)), "{why}");
}

/// The base64 of a PEM: what must never be printed of a key.
fn key_body(pem: &str) -> &str {
    pem.lines()
        .find(|line| !line.starts_with("-----") && line.len() > 16)
        .expect("a PEM with a body")
}

/// Whether the server asks clients for a certificate (`--tls-auth-clients`).
#[derive(Clone, Copy)]
enum Clients {
    Anonymous,
    Authenticated,
}

/// A redis-server listening for TLS only, with a certificate for 127.0.0.1 from a CA of
/// its own (`ca.pem`; `other-ca.pem` is another CA, `client.pem` a client certificate
/// of the first); killed when dropped.
struct TlsRedis {
    port: u16,
    dir: PathBuf,
    child: Child,
}

impl TlsRedis {
    fn start() -> TlsRedis {
        TlsRedis::start_with(Clients::Anonymous, "server")
    }

    /// A server with the certificate `<cert>.pem` (`server`, or `expired`).
    fn start_with(clients: Clients, cert: &str) -> TlsRedis {
        let port = RedisServer::not_started().port;
        let dir = std::env::temp_dir().join(format!("redis-cached-tls-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("create a temp dir");
        make_certificates(&dir);
        let auth_clients = match clients {
            Clients::Anonymous => "no",
            Clients::Authenticated => "yes",
        };
        let child = Command::new("redis-server")
            .args(["--port", "0", "--tls-port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--tls-auth-clients", auth_clients, "--save", "", "--appendonly", "no"])
            .arg("--tls-cert-file")
            .arg(dir.join(format!("{cert}.pem")))
            .arg("--tls-key-file")
            .arg(dir.join("server.key"))
            .arg("--tls-ca-cert-file")
            .arg(dir.join("ca.pem"))
            .arg("--dir")
            .arg(&dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start redis-server");
        TlsRedis { port, dir, child }
    }

    fn read(&self, file: &str) -> Vec<u8> {
        std::fs::read(self.dir.join(file)).expect("read a certificate")
    }

    /// Runs `redis-cli` over TLS with the client certificate; its trimmed output.
    fn cli(&self, args: &[&str]) -> String {
        let output = Command::new("redis-cli")
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string(), "--tls"])
            .arg("--cacert")
            .arg(self.dir.join("ca.pem"))
            .arg("--cert")
            .arg(self.dir.join("client.pem"))
            .arg("--key")
            .arg(self.dir.join("client.key"))
            .args(args)
            .output()
            .expect("run redis-cli");
        assert!(output.status.success(), "redis-cli {args:?}: {output:?}");
        String::from_utf8_lossy(&output.stdout).trim().to_owned()
    }
}

impl Drop for TlsRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
/// Sentinel over TLS: `rediss://` sentinel URLs, the CA of `tls_root_ca` trusted for
/// the sentinels and the master alike, and the master reached over TLS (the sentinels
/// name its TLS port) with no `url(...)` given.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn through_tls_sentinels_the_cache_reaches_the_master_over_tls_and_follows_a_failover() {
    use redis::Commands;
    use support::sentinel::{MASTER_NAME, SentinelSet};

    let certificates = Certificates::make();
    let mut set = SentinelSet::start_tls(&certificates.dir);
    let cache = Cache::builder()
        .sentinel(MASTER_NAME, set.tls_urls.clone().expect("TLS sentinels"))
        .tls_root_ca(certificates.read("ca.pem"))
        .prefix("shop:")
        .build()
        .await
        .expect("the TLS settings are valid");
    wait_connected(&cache).await;
    let db = Db::new(cache);
    db.product(3).await.unwrap();
    db.product(3).await.unwrap();
    assert_eq!((db.loads(), db.cache.stats().errors), (1, 0), "a hit on the master");
    assert!(
        set.master()
            .conn()
            .exists::<_, bool>(db.cache.key("product:3"))
            .unwrap()
    );
    set.failover();
    let new = set.wait_switched();
    let probe = db.cache.key("product:4");
    let mut new_master = set.nodes[new].conn();
    eventually("a fill lands on the new master", async || {
        let _ = db.product(4).await;
        new_master.exists::<_, bool>(&probe).unwrap_or(false)
    })
    .await;
    db.cache
        .invalidate("product:3")
        .await
        .expect("confirmed on the new master");
}

#[tokio::test]
async fn sentinel_urls_of_both_schemes_are_a_configuration_error() {
    let why = match Cache::builder()
        .sentinel("mymaster", ["rediss://127.0.0.1:1", "redis://127.0.0.1:2"])
        .build()
        .await
    {
        Err(Error::InvalidConfig(why)) => why,
        other => panic!("expected InvalidConfig, got {other:?}"),
    };
    assert!(why.contains("one scheme"), "{why}");
}

/// The near cache over mutual TLS: its tracking connection is TLS too (with the client
/// certificate), so values are served from memory and another cache's invalidation
/// still reaches them.
#[tokio::test]
async fn the_near_cache_tracks_over_mutual_tls() {
    let server = TlsRedis::start_with(Clients::Authenticated, "server");
    let near = async || {
        cache_with(server.port, |b| {
            b.tls_root_ca(server.read("ca.pem"))
                .tls_client_auth(server.read("client.pem"), server.read("client.key"))
                .near_cache(100)
        })
        .await
    };
    let (a, b) = (near().await, near().await);
    let value = Arc::new(AtomicUsize::new(1));
    let read = async |cache: &Cache| {
        let value = value.load(Ordering::SeqCst);
        cache
            .get_or_load(&POLICY, "k", async move { Ok::<_, ()>(Some(value)) })
            .await
            .unwrap()
    };
    eventually("a near hit", async || {
        read(&b).await;
        b.stats().near_hits > 0
    })
    .await;
    value.store(2, Ordering::SeqCst);
    a.invalidate("k").await.unwrap();
    eventually("the invalidation reached the other cache", async || {
        read(&b).await == Some(2)
    })
    .await;
    assert_eq!(a.stats().errors + b.stats().errors, 0);
}
