//! A `redis-server` of the test's own, on a free loopback port.
#![allow(dead_code, unreachable_pub)]

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use redis_cached::Cache;

pub mod acl;
pub mod child;
pub mod cluster;
pub mod delay_proxy;
pub mod logs;
pub mod near;
pub mod proxy;
pub mod recorder;
pub mod sentinel;
pub mod tls;

/// A redis-server process; killed when dropped.
pub struct RedisServer {
    pub port: u16,
    child: Option<Child>,
    dir: PathBuf,
    /// Given after the usual ones, at every (re)start.
    args: Vec<String>,
    /// A sentinel's: started as `redis-server <config> --sentinel`.
    sentinel_config: Option<PathBuf>,
    /// `requirepass` (given with `args`, or in a sentinel's config): in `url()`.
    password: Option<String>,
}

impl RedisServer {
    /// Starts a server on a free port and waits until it answers.
    pub fn start() -> RedisServer {
        let mut server = RedisServer::not_started();
        server.launch();
        server
    }

    /// Picks a free port but starts nothing yet: "Redis is down".
    pub fn not_started() -> RedisServer {
        let port = free_port();
        let dir = std::env::temp_dir().join(format!("redis-cached-test-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("create a temp dir");
        RedisServer {
            port,
            child: None,
            dir,
            args: Vec::new(),
            sentinel_config: None,
            password: None,
        }
    }

    /// Starts a server with `args` after the usual ones (again at each restart).
    pub fn start_with(args: &[&str]) -> RedisServer {
        RedisServer::start_with_password(args, None)
    }

    /// [`start_with`](Self::start_with), the server asking for `password` (also from its
    /// master, for a replica) if one is given.
    pub fn start_with_password(args: &[&str], password: Option<&str>) -> RedisServer {
        let mut server = RedisServer::not_started();
        server.args = args.iter().map(|a| (*a).to_owned()).collect();
        if let Some(password) = password {
            server
                .args
                .extend(["--requirepass", password, "--masterauth", password].map(str::to_owned));
        }
        server.password = password.map(str::to_owned);
        server.launch();
        server
    }

    /// Starts a replica of `master` and waits until it has synced.
    pub fn start_replica_of(master: &RedisServer) -> RedisServer {
        let port = master.port.to_string();
        RedisServer::start_replica_with(
            master,
            &["--replicaof", "127.0.0.1", &port, "--repl-diskless-sync-delay", "0"],
        )
    }

    /// Starts a replica of `master` with `args` (which name the master) and waits until
    /// it has synced.
    pub fn start_replica_with(master: &RedisServer, args: &[&str]) -> RedisServer {
        let port = master.port;
        let replica = RedisServer::start_with_password(args, master.password.as_deref());
        replica.wait_synced();
        // The master counts the replica (`ROLE`, `WAIT`) only once it acknowledged.
        wait_until(&format!("the master on port {port} has its replica online"), || {
            master
                .try_info("replication")
                .is_some_and(|info| info.contains("state=online"))
        });
        replica
    }

    /// Waits until this replica's link to its master is up.
    pub fn wait_synced(&self) {
        wait_until(&format!("the replica on port {} synced", self.port), || {
            self.try_info("replication")
                .is_some_and(|info| info.contains("master_link_status:up"))
        });
    }

    /// A sentinel on `port` whose config file (which it rewrites) is `config`'s text,
    /// with `requirepass <password>` in it if given.
    pub fn start_sentinel(port: u16, config: &str, password: Option<&str>) -> RedisServer {
        let dir = std::env::temp_dir().join(format!("redis-cached-test-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("create a temp dir");
        let path = dir.join("sentinel.conf");
        let config = match password {
            Some(password) => format!("{config}requirepass {password}\n"),
            None => config.to_owned(),
        };
        std::fs::write(&path, config).expect("write the sentinel config");
        let mut server = RedisServer {
            port,
            child: None,
            dir,
            args: Vec::new(),
            sentinel_config: Some(path),
            password: password.map(str::to_owned),
        };
        server.launch();
        server
    }

    /// `INFO <section>`, or `None` when the server does not answer.
    pub fn try_info(&self, section: &str) -> Option<String> {
        let mut c = redis::Client::open(self.url())
            .ok()?
            .get_connection_with_timeout(Duration::from_secs(1))
            .ok()?;
        c.set_read_timeout(Some(Duration::from_secs(1))).ok()?;
        redis::cmd("INFO").arg(section).query(&mut c).ok()
    }

    /// Whether the server says (`ROLE`) it is a master.
    pub fn is_master(&self) -> bool {
        let role = || -> Option<String> {
            let mut c = redis::Client::open(self.url())
                .ok()?
                .get_connection_with_timeout(Duration::from_secs(1))
                .ok()?;
            c.set_read_timeout(Some(Duration::from_secs(1))).ok()?;
            let role: Vec<redis::Value> = redis::cmd("ROLE").query(&mut c).ok()?;
            match role.first() {
                Some(redis::Value::BulkString(role)) => String::from_utf8(role.clone()).ok(),
                _ => None,
            }
        };
        role().as_deref() == Some("master")
    }

    /// Starts the server (again) and waits until it answers.
    pub fn launch(&mut self) {
        let mut command = Command::new("redis-server");
        if let Some(config) = &self.sentinel_config {
            command.arg(config).arg("--sentinel");
        }
        let child = command
            .args([
                "--port",
                &self.port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .arg("--dir")
            .arg(&self.dir)
            .args(&self.args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| missing_redis("redis-server", &e));
        self.child = Some(child);
        self.wait_until_up();
    }

    fn wait_until_up(&self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(mut c) = redis::Client::open(self.url()).and_then(|c| c.get_connection())
                && redis::cmd("PING").query::<String>(&mut c).is_ok()
            {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "redis-server on port {} did not come up",
                self.port
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn url(&self) -> String {
        match &self.password {
            Some(password) => format!("redis://:{password}@127.0.0.1:{}", self.port),
            None => format!("redis://127.0.0.1:{}", self.port),
        }
    }

    /// Creates an ACL user from the rules of an `ACL SETUSER` line (everything after the
    /// user name) and returns its URL.
    pub fn acl_user(&self, name: &str, password: &str, rules: &str) -> String {
        let _: () = acl_setuser(name, password, rules)
            .query(&mut self.conn())
            .expect("ACL SETUSER");
        format!("redis://{name}:{password}@127.0.0.1:{}", self.port)
    }

    /// A cache on this server; waits until it is connected.
    pub async fn cache(&self, prefix: &str) -> Cache {
        let cache = Cache::builder()
            .url(self.url())
            .prefix(prefix)
            .build()
            .await
            .expect("build the cache");
        wait_connected(&cache).await;
        cache
    }

    /// A cache on this server that may not be up ("Redis is down"): built with a short
    /// connect timeout, not waited for.
    pub async fn cache_while_down(&self, prefix: &str) -> Cache {
        Cache::builder()
            .url(self.url())
            .prefix(prefix)
            .connect_timeout(Duration::from_millis(200))
            .build()
            .await
            .expect("a cache is built while redis is down")
    }

    /// A plain synchronous connection for looking at what the cache stored.
    pub fn conn(&self) -> redis::Connection {
        redis::Client::open(self.url())
            .and_then(|c| c.get_connection())
            .expect("connect to the test redis")
    }

    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub fn restart(&mut self) {
        self.kill();
        self.launch();
    }

    fn signal(&self, signal: &str) {
        if let Some(child) = &self.child {
            send_signal(child.id(), signal);
        }
    }

    /// Freezes the server (SIGSTOP): connections stay open, nothing answers.
    pub fn pause(&self) {
        self.signal("-STOP");
    }

    pub fn resume(&self) {
        self.signal("-CONT");
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.resume();
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Panics with what to do when a Redis program (`redis-server`, `redis-cli`) cannot be run.
pub fn missing_redis(program: &str, error: &std::io::Error) -> ! {
    panic!(
        "cannot start `{program}` ({error}). The tests need Redis 6.2 or later on the PATH: \
         run them with `cargo xtask test`, which installs it (or says how) first"
    )
}

/// `ACL SETUSER <name> on ><password> <rules...>`, the rules as in an `ACL SETUSER` line.
pub fn acl_setuser(name: &str, password: &str, rules: &str) -> redis::Cmd {
    let mut command = redis::cmd("ACL");
    command.arg("SETUSER").arg(name).arg("on").arg(format!(">{password}"));
    for rule in rules.split_whitespace() {
        command.arg(rule);
    }
    command
}

/// Sends `signal` (`-STOP`, `-CONT`) to the process `pid` with `kill`.
pub fn send_signal(pid: u32, signal: &str) {
    let status = Command::new("kill")
        .args([signal, &pid.to_string()])
        .status()
        .expect("run kill");
    assert!(status.success(), "kill {signal} {pid}: {status}");
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// A cache with the prefix `shop:` and the default timeouts on the Redis at `url` (a
/// proxy's); waits until it is connected.
pub async fn cache_via(url: &str) -> Cache {
    let cache = Cache::builder()
        .url(url)
        .prefix("shop:")
        .build()
        .await
        .expect("build the cache");
    wait_connected(&cache).await;
    cache
}

/// Waits (bounded) until `cache` can talk to Redis: a write and a read succeed.
pub async fn wait_connected(cache: &Cache) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while cache.invalidate("__probe__").await.is_err() {
        assert!(Instant::now() < deadline, "the cache did not connect");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Waits (bounded, blocking the thread) until `condition` holds.
pub fn wait_until(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Waits (bounded) until `condition` holds.
pub async fn eventually(what: &str, mut condition: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !condition().await {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// How long [`wait_for`] waits: forming a cluster or a failover takes a few seconds here,
/// but CI machines are slower and busier.
pub const PATIENCE: Duration = Duration::from_secs(30);

/// Polls `check` until it succeeds and returns its value; panics with `what` and the
/// last reason `check` gave when [`PATIENCE`] runs out. For threads without a runtime.
pub fn wait_for<T>(what: &str, mut check: impl FnMut() -> Result<T, String>) -> T {
    let deadline = Instant::now() + PATIENCE;
    loop {
        match check() {
            Ok(value) => return value,
            Err(why) if Instant::now() >= deadline => {
                panic!("timed out after {PATIENCE:?} waiting until {what}; last: {why}")
            }
            Err(_) => std::thread::sleep(Duration::from_millis(20)),
        }
    }
}

/// Drops every subscription; the cache behind `proxy` cannot subscribe again (new
/// connections are refused) while its command connection keeps working. Waits until
/// only the one other cache (connected directly) is subscribed again.
pub async fn lose_subscription(redis: &RedisServer, proxy: &proxy::Proxy) {
    proxy.set(proxy::Fault::RefuseNew);
    kill_subscriptions(redis);
    eventually("only the direct cache is subscribed again", async || {
        subscribers(redis) == 1
    })
    .await;
}

/// Closes every pub/sub connection on the server.
pub fn kill_subscriptions(redis: &RedisServer) {
    let _: () = redis::cmd("CLIENT")
        .arg("KILL")
        .arg("TYPE")
        .arg("pubsub")
        .query(&mut redis.conn())
        .unwrap();
}

/// How many pub/sub connections the server has.
pub fn subscribers(redis: &RedisServer) -> usize {
    subscriber_ids(redis).len()
}

/// The client ids of the server's pub/sub connections.
pub fn subscriber_ids(redis: &RedisServer) -> Vec<String> {
    let clients: String = redis::cmd("CLIENT")
        .arg("LIST")
        .arg("TYPE")
        .arg("pubsub")
        .query(&mut redis.conn())
        .unwrap();
    clients
        .lines()
        .filter_map(|line| line.split(' ').next())
        .map(str::to_owned)
        .collect()
}
