//! `rediss://` with the `tls` feature: the cache builds whether or not the server is up,
//! and talks TLS to a server only when the system's root certificates trust it. Each
//! child process gets its "system roots" from `SSL_CERT_FILE`, set before it starts.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use redis_cached::{Cache, Policy};
use support::child::{is_child, run_child};
use support::logs::Logs;
use support::{RedisServer, eventually};

static POLICY: Policy = Policy::new("tls", Duration::from_secs(60));

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

/// A redis-server listening for TLS only, with a certificate for 127.0.0.1 from a CA of
/// its own (`ca.pem`; `other-ca.pem` is another CA); killed when dropped.
struct TlsRedis {
    port: u16,
    dir: PathBuf,
    child: Child,
}

impl TlsRedis {
    fn start() -> TlsRedis {
        let port = RedisServer::not_started().port;
        let dir = std::env::temp_dir().join(format!("redis-cached-tls-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("create a temp dir");
        make_certificates(&dir);
        let child = Command::new("redis-server")
            .args(["--port", "0", "--tls-port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--tls-auth-clients", "no", "--save", "", "--appendonly", "no"])
            .arg("--tls-cert-file")
            .arg(dir.join("server.pem"))
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
}

impl Drop for TlsRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Two CAs and a server certificate for 127.0.0.1 signed by the first, with `openssl`.
fn make_certificates(dir: &Path) {
    let new_key = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
    for (ca, name) in [("ca", "redis-cached test CA"), ("other-ca", "another CA")] {
        let (key, pem, subject) = (format!("{ca}.key"), format!("{ca}.pem"), format!("/CN={name}"));
        openssl(
            dir,
            &[
                &["req", "-x509"],
                &new_key[..],
                &["-keyout", &key, "-out", &pem, "-days", "1", "-subj", &subject],
            ]
            .concat(),
        );
    }
    std::fs::write(
        dir.join("server.ext"),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
    )
    .expect("write server.ext");
    openssl(
        dir,
        &[
            &["req"],
            &new_key[..],
            &["-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=127.0.0.1"],
        ]
        .concat(),
    );
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.pem",
            "-days",
            "1",
            "-extfile",
            "server.ext",
        ],
    );
}

fn openssl(dir: &Path, args: &[&str]) {
    let output = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| panic!("cannot run `openssl` ({e}); the TLS tests need it: `apt-get install -y openssl`"));
    assert!(
        output.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}
