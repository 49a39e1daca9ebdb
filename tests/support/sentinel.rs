//! A Sentinel deployment of the test's own: one master, one replica and three sentinels
//! on free loopback ports, each sentinel told of the others and of the replica up front
//! so the set settles in about a second.

use std::path::Path;
use std::time::{Duration, Instant};

use redis_cached::{Cache, CacheBuilder};

use super::{RedisServer, free_port, wait_until};

/// The master name the sentinels monitor.
pub const MASTER_NAME: &str = "mymaster";

/// The two data nodes (either may be the master) and three sentinels; every process is
/// killed when dropped.
pub struct SentinelSet {
    pub nodes: [RedisServer; 2],
    /// The ports the sentinels know `nodes` by (their TLS ports under TLS).
    announced: [u16; 2],
    pub sentinels: Vec<RedisServer>,
    /// The sentinels' `rediss://` URLs, when they listen for TLS.
    pub tls_urls: Option<Vec<String>>,
    /// Which of `nodes` the sentinels last reported as master.
    master: usize,
}

impl SentinelSet {
    /// Starts the set and waits until every sentinel knows the master, the replica and
    /// the other two sentinels.
    pub fn start() -> SentinelSet {
        SentinelSet::start_fresh(&Options::default())
    }

    /// [`start`](Self::start) with the sentinels on these ports.
    pub fn start_on(ports: [u16; 3]) -> SentinelSet {
        SentinelSet::start_with(ports, &Options::default())
    }

    /// [`start`](Self::start) with the master and replica asking for `master_password`,
    /// and the sentinels for `sentinel_password`, if given.
    pub fn start_with_passwords(master_password: Option<&str>, sentinel_password: Option<&str>) -> SentinelSet {
        let options = Options {
            master_password,
            sentinel_password,
            tls: None,
        };
        SentinelSet::start_fresh(&options)
    }

    /// [`start`](Self::start), every process also listening for TLS (the server
    /// certificate `server.pem` of `ca.pem` in `certificates`) and talking TLS to the
    /// others; the sentinels name TLS ports. The plain ports stay open for inspection.
    pub fn start_tls(certificates: &Path) -> SentinelSet {
        let options = Options {
            tls: Some(certificates),
            ..Options::default()
        };
        SentinelSet::start_fresh(&options)
    }

    /// A set on free ports; started again on others if it does not settle (a port picked
    /// as free can be taken by another test before its server binds it).
    fn start_fresh(options: &Options<'_>) -> SentinelSet {
        for _attempt in 0..2 {
            let set = SentinelSet::launch([free_port(), free_port(), free_port()], options);
            if set.settled_within(Duration::from_secs(10)) {
                return set;
            }
            eprintln!("a sentinel set did not settle; starting another on other ports");
        }
        SentinelSet::start_with([free_port(), free_port(), free_port()], options)
    }

    fn start_with(ports: [u16; 3], options: &Options<'_>) -> SentinelSet {
        let started = Instant::now();
        let set = SentinelSet::launch(ports, options);
        set.wait_settled();
        eprintln!("sentinel set settled in {:?}", started.elapsed());
        set
    }

    /// Starts the servers and the sentinels, without waiting for them to settle.
    fn launch(ports: [u16; 3], options: &Options<'_>) -> SentinelSet {
        let tls_ports = [free_port(), free_port(), free_port(), free_port(), free_port()];
        let tls_args = |i: usize| -> Vec<String> {
            options.tls.map_or_else(Vec::new, |dir| {
                tls_config(dir, tls_ports[i])
                    .lines()
                    .flat_map(|line| {
                        let (name, value) = line.split_once(' ').unwrap();
                        [format!("--{name}"), value.to_owned()]
                    })
                    .collect()
            })
        };
        let mut args = vec!["--repl-diskless-sync-delay".to_owned(), "0".to_owned()];
        args.extend(tls_args(0));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let master = RedisServer::start_with_password(&args, options.master_password);
        let announced = |i: usize, server: &RedisServer| {
            if options.tls.is_some() {
                tls_ports[i]
            } else {
                server.port
            }
        };
        let master_port = announced(0, &master);
        let mut args = vec![
            "--replicaof".to_owned(),
            "127.0.0.1".to_owned(),
            master_port.to_string(),
            "--repl-diskless-sync-delay".to_owned(),
            "0".to_owned(),
        ];
        args.extend(tls_args(1));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let replica = RedisServer::start_replica_with(&master, &args);
        let replica_port = announced(1, &replica);
        let sentinel_ports: Vec<u16> = (0..3)
            .map(|i| {
                if options.tls.is_some() {
                    tls_ports[2 + i]
                } else {
                    ports[i]
                }
            })
            .collect();
        let ids: Vec<String> = (0..3).map(|i| format!("{:040x}", 0xc0ffee_u64 + i)).collect();
        let sentinels = (0..3)
            .map(|i| {
                let mut config = format!(
                    "sentinel myid {}\n\
                     sentinel monitor {MASTER_NAME} 127.0.0.1 {master_port} 2\n\
                     sentinel down-after-milliseconds {MASTER_NAME} 1000\n\
                     sentinel failover-timeout {MASTER_NAME} 2000\n\
                     sentinel known-replica {MASTER_NAME} 127.0.0.1 {replica_port}\n",
                    ids[i]
                );
                if let Some(dir) = options.tls {
                    config += &tls_config(dir, tls_ports[2 + i]);
                }
                if let Some(password) = options.master_password {
                    config += &format!("sentinel auth-pass {MASTER_NAME} {password}\n");
                }
                if let Some(password) = options.sentinel_password {
                    config += &format!("sentinel sentinel-pass {password}\n");
                }
                for other in (0..3).filter(|other| *other != i) {
                    config += &format!(
                        "sentinel known-sentinel {MASTER_NAME} 127.0.0.1 {} {}\n",
                        sentinel_ports[other], ids[other]
                    );
                }
                RedisServer::start_sentinel(ports[i], &config, options.sentinel_password)
            })
            .collect();
        let tls_urls = options.tls.map(|_| {
            sentinel_ports
                .iter()
                .map(|port| format!("rediss://127.0.0.1:{port}"))
                .collect()
        });
        SentinelSet {
            nodes: [master, replica],
            announced: [master_port, replica_port],
            sentinels,
            tls_urls,
            master: 0,
        }
    }

    /// Waits until every sentinel sees the master with one replica and two other
    /// sentinels, and agrees it can fail over.
    fn wait_settled(&self) {
        for sentinel in &self.sentinels {
            wait_until(&format!("the sentinel on port {} settled", sentinel.port), || {
                settled(sentinel)
            });
        }
    }

    /// Whether every sentinel settles within `patience`.
    fn settled_within(&self, patience: Duration) -> bool {
        let deadline = Instant::now() + patience;
        self.sentinels.iter().all(|sentinel| {
            loop {
                if settled(sentinel) {
                    break true;
                }
                if Instant::now() >= deadline {
                    break false;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        })
    }

    /// The sentinels' URLs.
    pub fn sentinel_urls(&self) -> Vec<String> {
        self.sentinels.iter().map(RedisServer::url).collect()
    }

    /// The node the sentinels last reported as master.
    pub fn master(&self) -> &RedisServer {
        &self.nodes[self.master]
    }

    /// The other node.
    pub fn replica(&self) -> &RedisServer {
        &self.nodes[1 - self.master]
    }

    /// A cache through the sentinels; waits until it is connected.
    pub async fn cache(&self, prefix: &str) -> Cache {
        self.cache_with(prefix, |builder| builder).await
    }

    /// A cache through the sentinels with settings of `configure`'s own; waits until it
    /// is connected.
    pub async fn cache_with(&self, prefix: &str, configure: impl FnOnce(CacheBuilder) -> CacheBuilder) -> Cache {
        let builder = Cache::builder()
            .sentinel(MASTER_NAME, self.sentinel_urls())
            .prefix(prefix);
        let cache = configure(builder).build().await.expect("build the cache");
        super::wait_connected(&cache).await;
        cache
    }

    /// SIGKILLs the master.
    pub fn kill_master(&mut self) {
        self.nodes[self.master].kill();
    }

    /// Restarts a killed node (it comes back as a master with no data; the sentinels
    /// then make it a replica of the current master).
    pub fn restart(&mut self, node: usize) {
        self.nodes[node].launch();
    }

    /// Asks a sentinel for a graceful failover (`SENTINEL FAILOVER`).
    pub fn failover(&self) {
        let mut c = self.sentinels[0].conn();
        let _: () = redis::cmd("SENTINEL")
            .arg("FAILOVER")
            .arg(MASTER_NAME)
            .query(&mut c)
            .expect("SENTINEL FAILOVER");
    }

    /// Waits until every sentinel reports the other node as master and it says (`ROLE`)
    /// it is one; returns the new master's index.
    pub fn wait_switched(&mut self) -> usize {
        let new = 1 - self.master;
        let port = self.announced[new].to_string();
        for sentinel in &self.sentinels {
            wait_until(
                &format!("the sentinel on port {} reports the new master", sentinel.port),
                || master_addr(sentinel).is_some_and(|(_, p)| p == port),
            );
        }
        wait_until("the new master says it is one", || self.nodes[new].is_master());
        self.master = new;
        new
    }
}

/// How a set is secured.
#[derive(Default)]
pub struct Options<'a> {
    pub master_password: Option<&'a str>,
    pub sentinel_password: Option<&'a str>,
    /// A directory with `ca.pem`, `server.pem` and `server.key`.
    pub tls: Option<&'a Path>,
}

/// The config lines of a process that also listens for TLS on `port` and talks TLS to
/// the others.
fn tls_config(dir: &Path, port: u16) -> String {
    let file = |name: &str| dir.join(name).display().to_string();
    format!(
        "tls-port {port}\ntls-cert-file {}\ntls-key-file {}\ntls-ca-cert-file {}\n\
         tls-auth-clients no\ntls-replication yes\n",
        file("server.pem"),
        file("server.key"),
        file("ca.pem")
    )
}

/// Where `sentinel` says the master is.
pub fn master_addr(sentinel: &RedisServer) -> Option<(String, String)> {
    let mut c = redis::Client::open(sentinel.url()).ok()?.get_connection().ok()?;
    redis::cmd("SENTINEL")
        .arg("GET-MASTER-ADDR-BY-NAME")
        .arg(MASTER_NAME)
        .query(&mut c)
        .ok()
}

/// A reply of field/value pairs, or `None` when the server does not answer.
fn query_map(server: &RedisServer, args: &[&str]) -> Option<Vec<(String, String)>> {
    let mut c = redis::Client::open(server.url()).ok()?.get_connection().ok()?;
    let flat: Vec<String> = redis::cmd(args[0]).arg(&args[1..]).query(&mut c).ok()?;
    Some(
        flat.chunks(2)
            .filter_map(|pair| match pair {
                [k, v] => Some((k.clone(), v.clone())),
                _ => None,
            })
            .collect(),
    )
}

/// Whether `sentinel` sees the master with one replica and two other sentinels.
fn settled(sentinel: &RedisServer) -> bool {
    let Some(master) = query_map(sentinel, &["SENTINEL", "MASTER", MASTER_NAME]) else {
        return false;
    };
    let field = |name: &str| master.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str());
    field("num-slaves") == Some("1") && field("num-other-sentinels") == Some("2") && field("flags") == Some("master")
}
