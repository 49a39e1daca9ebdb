//! A Redis Cluster of the test's own: three masters, each with a replica, on free
//! loopback ports, made with `redis-cli --cluster create`, plain or over TLS; and what
//! failover and resharding tests do to it (kill or pause a node, wait for a promotion,
//! move a slot). Every node is killed when its [`Cluster`] is dropped, or, for one that
//! never is (a `static`, such as [`Cluster::shared`]), when the test process exits.

use std::ffi::c_int;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, MutexGuard, Once, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use redis::cluster::{ClusterClientBuilder, ClusterConnection};
use redis::{ClientTlsConfig, TlsCertificates};

use super::tls::Certificates;
use super::{acl_setuser, missing_redis, send_signal, wait_for};

/// Three masters and a replica of each.
const MASTERS: usize = 3;
const NODES: usize = 2 * MASTERS;
const SLOTS: usize = 16384;
/// The cluster bus listens on the client port + 10000.
const BUS_OFFSET: u16 = 10000;

/// A node of a [`Cluster`]: which of its six processes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Node(usize);

/// A slot held mid-migration by [`Cluster::start_migrating`]: the source answers with
/// `ASK` for keys it no longer has; [`Cluster::finish_migrating`] completes it.
#[derive(Debug)]
pub struct Migration {
    /// The slot that moves.
    pub slot: u16,
    /// The master that served it.
    pub from: Node,
    /// The master that will.
    pub to: Node,
}

/// Six `redis-server` processes forming a cluster; every node is killed when dropped.
pub struct Cluster {
    nodes: Vec<Process>,
    /// The CA and client certificate of a TLS cluster.
    tls: Option<TlsCertificates>,
}

impl Cluster {
    /// Starts a cluster and waits until every slot is served and every master has a
    /// replica in sync.
    pub fn start() -> Cluster {
        Cluster::start_with(None)
    }

    /// Starts a cluster that speaks TLS only, between its nodes too, and asks clients for
    /// a certificate of the CA of `certificates` (`client.pem`, `client.key`); its
    /// [`seeds`](Cluster::seeds) are `rediss://` URLs. The files are read when it starts.
    pub fn start_tls(certificates: &Certificates) -> Cluster {
        Cluster::start_with(Some(certificates))
    }

    /// The cluster of this test binary, started on first use, for tests that each use
    /// their own keys and never kill, pause or reshard; its nodes are killed when the
    /// process exits.
    pub fn shared() -> &'static Cluster {
        static SHARED: OnceLock<Cluster> = OnceLock::new();
        SHARED.get_or_init(Cluster::start)
    }

    fn start_with(certificates: Option<&Certificates>) -> Cluster {
        let tls = certificates.map(|c| {
            install_crypto_provider();
            TlsCertificates {
                client_tls: Some(ClientTlsConfig {
                    client_cert: c.read("client.pem"),
                    client_key: c.read("client.key"),
                }),
                root_cert: Some(c.read("ca.pem")),
            }
        });
        // Built up node by node, so a panic on the way drops (kills) what has started.
        let mut cluster = Cluster { nodes: Vec::new(), tls };
        for _ in 0..NODES {
            let process = Process::start(certificates, |port| cluster.client(port));
            cluster.nodes.push(process);
        }
        cluster.create(certificates);
        // A master turns `cluster_state:ok` no sooner than 2 s after it started.
        cluster.wait_ready();
        cluster
    }

    /// `redis-cli --cluster create`: three masters and a replica for each.
    fn create(&self, certificates: Option<&Certificates>) {
        let mut command = Command::new("redis-cli");
        if let Some(certificates) = certificates {
            command.args(cli_tls_args(certificates));
        }
        command.args(["--cluster", "create"]);
        command.args(self.nodes.iter().map(|p| format!("127.0.0.1:{}", p.port)));
        command.args(["--cluster-replicas", "1", "--cluster-yes"]);
        let output = command.output().unwrap_or_else(|e| missing_redis("redis-cli", &e));
        assert!(
            output.status.success(),
            "`redis-cli --cluster create` failed: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }

    /// Waits until every node says `cluster_state:ok` with every slot served, sees three
    /// masters each with a connected replica, and every master has its replica in sync.
    fn wait_ready(&self) {
        wait_for("the cluster is formed and every replica is in sync", || {
            let mut masters = Vec::new();
            for node in self.nodes() {
                let mut conn = self.try_node_conn(node)?;
                let info: String = query(&mut conn, redis::cmd("CLUSTER").arg("INFO"))?;
                let wanted = [
                    "cluster_state:ok".to_owned(),
                    format!("cluster_slots_ok:{SLOTS}"),
                    format!("cluster_known_nodes:{NODES}"),
                ];
                for wanted in wanted {
                    if !info.lines().any(|line| line.trim() == wanted) {
                        return Err(format!("{node:?} does not say {wanted}: {info}"));
                    }
                }
                let view = self.view_from(node)?;
                masters = view.iter().filter(|e| e.serves_slots()).map(|e| e.node).collect();
                if masters.len() != MASTERS {
                    return Err(format!("{node:?} sees {} masters serving slots", masters.len()));
                }
                for &master in &masters {
                    if !view.iter().any(|e| e.master == Some(master) && e.connected) {
                        return Err(format!("{node:?} sees no connected replica of {master:?}"));
                    }
                }
            }
            for master in masters {
                let mut conn = self.try_node_conn(master)?;
                let info: String = query(&mut conn, redis::cmd("INFO").arg("replication"))?;
                if !info
                    .lines()
                    .any(|l| l.starts_with("slave0:") && l.contains("state=online"))
                {
                    return Err(format!("{master:?} has no replica in sync: {info}"));
                }
            }
            Ok(())
        });
    }

    /// All six nodes.
    pub fn nodes(&self) -> Vec<Node> {
        (0..self.nodes.len()).map(Node).collect()
    }

    /// The client port of `node`.
    pub fn port(&self, node: Node) -> u16 {
        self.process(node).port
    }

    /// The process id of every node, for checking they are gone once the cluster is.
    pub fn pids(&self) -> Vec<u32> {
        self.nodes.iter().map(|p| p.pid).collect()
    }

    /// The URL of `node`: `redis://127.0.0.1:<port>`, `rediss://` for a TLS cluster.
    pub fn url(&self, node: Node) -> String {
        let scheme = if self.tls.is_some() { "rediss" } else { "redis" };
        format!("{scheme}://127.0.0.1:{}", self.port(node))
    }

    /// The URLs of all six nodes, to build a cluster client with.
    pub fn seeds(&self) -> Vec<String> {
        self.nodes().into_iter().map(|node| self.url(node)).collect()
    }

    /// Creates the ACL user `name` on every node (`ACL SETUSER <name> on >password` and
    /// `rules`, as in an `ACL SETUSER` line) and returns the seeds with its credentials.
    /// A cluster client needs `+cluster|slots` (or `+cluster`) besides its commands.
    pub fn acl_user_everywhere(&self, name: &str, password: &str, rules: &str) -> Vec<String> {
        for node in self.live() {
            let _: () = acl_setuser(name, password, rules)
                .query(&mut self.node_conn(node))
                .unwrap_or_else(|e| panic!("ACL SETUSER on {node:?}: {e}"));
        }
        self.seeds()
            .into_iter()
            .map(|url| url.replacen("://", &format!("://{name}:{password}@"), 1))
            .collect()
    }

    /// A synchronous cluster connection (it follows `MOVED` and `ASK`), seeded with the
    /// nodes that are neither killed nor paused, for looking at what the cache stored.
    pub fn conn(&self) -> ClusterConnection {
        let seeds: Vec<String> = self.live().into_iter().map(|node| self.url(node)).collect();
        let mut builder = ClusterClientBuilder::new(seeds)
            .connection_timeout(Duration::from_secs(2))
            .response_timeout(Duration::from_secs(5));
        if let Some(tls) = &self.tls {
            builder = builder.certs(tls.clone());
        }
        builder
            .build()
            .and_then(|client| client.get_connection())
            .expect("connect to the test cluster")
    }

    /// A plain connection to `node` alone (no redirections followed).
    pub fn node_conn(&self, node: Node) -> redis::Connection {
        self.try_node_conn(node)
            .unwrap_or_else(|e| panic!("connect to {node:?} of the test cluster: {e}"))
    }

    /// The master that serves `key`'s slot, as a live node sees it.
    pub fn master_of_key(&self, key: &str) -> Node {
        let mut conn = self.node_conn(self.any_live());
        let slot: u16 = redis::cmd("CLUSTER")
            .arg("KEYSLOT")
            .arg(key)
            .query(&mut conn)
            .expect("CLUSTER KEYSLOT");
        self.owner(slot)
    }

    /// The master that serves `slot`, as a live node sees it.
    pub fn owner(&self, slot: u16) -> Node {
        self.view()
            .iter()
            .find(|e| e.serves_slots() && e.owns(slot))
            .unwrap_or_else(|| panic!("no master serves slot {slot}"))
            .node
    }

    /// The masters that serve slots, as a live node sees them.
    pub fn masters(&self) -> Vec<Node> {
        let mut masters: Vec<Node> = self
            .view()
            .iter()
            .filter(|e| e.serves_slots())
            .map(|e| e.node)
            .collect();
        masters.sort();
        masters
    }

    /// A replica of `master`, as a live node sees it.
    pub fn replica_of(&self, master: Node) -> Node {
        self.view()
            .iter()
            .find(|e| e.master == Some(master))
            .unwrap_or_else(|| panic!("{master:?} has no replica"))
            .node
    }

    /// Kills `node` (SIGKILL) and waits until it is gone.
    pub fn kill(&self, node: Node) {
        let process = self.process(node);
        let lost = match process.state() {
            State::Running => self.lost(node),
            State::Paused(lost) | State::Killed(lost) => lost,
        };
        let mut child = process.child();
        let _ = child.kill();
        let _ = child.wait();
        // Reaped: its pid may be reused, so the exit hook must not kill it.
        unregister(process.pid);
        process.set_state(State::Killed(lost));
    }

    /// Freezes `node` (SIGSTOP): its connections stay open and nothing answers; to the
    /// other nodes it fails after the node timeout (1 s).
    pub fn pause(&self, node: Node) {
        let lost = self.lost(node);
        let process = self.process(node);
        send_signal(process.pid, "-STOP");
        process.set_state(State::Paused(lost));
    }

    /// Lets a paused `node` run again; a master that was replaced comes back as a replica.
    pub fn resume(&self, node: Node) {
        let process = self.process(node);
        assert!(
            matches!(process.state(), State::Paused(_)),
            "{node:?} is not paused: only a paused node can be resumed"
        );
        send_signal(process.pid, "-CONT");
        process.set_state(State::Running);
    }

    /// What a master loses when it is killed or paused: its slots, as a live node sees
    /// them now.
    fn lost(&self, node: Node) -> Vec<(u16, u16)> {
        self.view()
            .into_iter()
            .find(|e| e.node == node)
            .map(|e| e.slots)
            .unwrap_or_default()
    }

    /// After `old_master` was killed or paused: waits until every live node says
    /// `cluster_state:ok` and that its slots are served by one other master (its former
    /// replica, promoted), and returns that master.
    pub fn wait_promoted(&self, old_master: Node) -> Node {
        let slots = match self.process(old_master).state() {
            State::Killed(slots) | State::Paused(slots) => slots,
            State::Running => panic!("{old_master:?} runs: kill or pause it before waiting for its promotion"),
        };
        assert!(!slots.is_empty(), "{old_master:?} served no slots when it was lost");
        let what = format!("every live node says another master serves the slots of {old_master:?}");
        wait_for(&what, || {
            let mut agreed = None;
            for node in self.live() {
                self.state_ok(node)?;
                let view = self.view_from(node)?;
                for &(first, last) in &slots {
                    let owner = view
                        .iter()
                        .find(|e| e.serves_slots() && e.owns(first) && e.owns(last))
                        .map(|e| e.node);
                    match owner {
                        Some(owner) if owner != old_master && agreed.is_none_or(|a| a == owner) => {
                            agreed = Some(owner);
                        }
                        other => return Err(format!("{node:?} says slots {first}-{last} are on {other:?}")),
                    }
                }
            }
            Ok(agreed.expect("a live node"))
        })
    }

    /// Moves `slot` and the keys in it from its master to the master `to`, and waits
    /// until every live node says `to` serves it.
    pub fn reshard(&self, slot: u16, to: Node) {
        let migration = self.start_migrating(slot, to);
        self.finish_migrating(migration);
    }

    /// Starts moving `slot` to the master `to` (`IMPORTING` on `to`, `MIGRATING` on its
    /// master) and moves no key yet: until [`finish_migrating`](Cluster::finish_migrating),
    /// keys the source does not have are served by `to` after an `ASK`.
    pub fn start_migrating(&self, slot: u16, to: Node) -> Migration {
        let from = self.owner(slot);
        assert_ne!(from, to, "slot {slot} is on {to:?} already");
        self.setslot(to, slot, "IMPORTING", from);
        self.setslot(from, slot, "MIGRATING", to);
        Migration { slot, from, to }
    }

    /// Moves up to `count` of the keys still on the source of `migration` to its target
    /// (`MIGRATE`), and returns them.
    pub fn migrate_keys(&self, migration: &Migration, count: usize) -> Vec<String> {
        let mut source = self.node_conn(migration.from);
        let keys: Vec<String> = redis::cmd("CLUSTER")
            .arg("GETKEYSINSLOT")
            .arg(migration.slot)
            .arg(count)
            .query(&mut source)
            .expect("CLUSTER GETKEYSINSLOT");
        if !keys.is_empty() {
            let _: () = redis::cmd("MIGRATE")
                .arg("127.0.0.1")
                .arg(self.port(migration.to))
                .arg("")
                .arg(0)
                .arg(5000)
                .arg("KEYS")
                .arg(&keys)
                .query(&mut source)
                .unwrap_or_else(|e| panic!("MIGRATE {keys:?} to {:?}: {e}", migration.to));
        }
        keys
    }

    /// Moves the keys left on the source of `migration`, gives the slot to its target on
    /// every master, and waits until every live node says the target serves it.
    pub fn finish_migrating(&self, migration: Migration) {
        while !self.migrate_keys(&migration, 100).is_empty() {}
        let Migration { slot, from, to } = migration;
        // The target first: once the source gives the slot up, it redirects there.
        self.setslot(to, slot, "NODE", to);
        self.setslot(from, slot, "NODE", to);
        for master in self.masters() {
            if master != from && master != to && self.is_live(master) {
                self.setslot(master, slot, "NODE", to);
            }
        }
        wait_for(&format!("every live node says {to:?} serves slot {slot}"), || {
            for node in self.live() {
                let view = self.view_from(node)?;
                let owner = view.iter().find(|e| e.serves_slots() && e.owns(slot)).map(|e| e.node);
                if owner != Some(to) {
                    return Err(format!("{node:?} says slot {slot} is on {owner:?}"));
                }
            }
            Ok(())
        });
    }

    /// `CLUSTER SETSLOT <slot> <how> <id of about>` on `node`.
    fn setslot(&self, node: Node, slot: u16, how: &str, about: Node) {
        let _: () = redis::cmd("CLUSTER")
            .arg("SETSLOT")
            .arg(slot)
            .arg(how)
            .arg(&self.process(about).id)
            .query(&mut self.node_conn(node))
            .unwrap_or_else(|e| panic!("CLUSTER SETSLOT {slot} {how} {about:?} on {node:?}: {e}"));
    }

    fn process(&self, node: Node) -> &Process {
        &self.nodes[node.0]
    }

    fn is_live(&self, node: Node) -> bool {
        self.process(node).state() == State::Running
    }

    /// The nodes neither killed nor paused.
    fn live(&self) -> Vec<Node> {
        self.nodes().into_iter().filter(|&node| self.is_live(node)).collect()
    }

    fn any_live(&self) -> Node {
        *self.live().first().expect("a node neither killed nor paused")
    }

    /// The cluster as a live node sees it.
    fn view(&self) -> Vec<Entry> {
        let node = self.any_live();
        self.view_from(node)
            .unwrap_or_else(|e| panic!("CLUSTER NODES on {node:?}: {e}"))
    }

    /// The cluster as `node` sees it (`CLUSTER NODES`).
    fn view_from(&self, node: Node) -> Result<Vec<Entry>, String> {
        let mut conn = self.try_node_conn(node)?;
        let text: String = query(&mut conn, redis::cmd("CLUSTER").arg("NODES"))?;
        text.lines()
            .filter(|line| !line.trim().is_empty())
            .map(|line| Entry::parse(line, |id| self.node_by_id(id)))
            .collect()
    }

    /// Whether `node` says `cluster_state:ok`.
    fn state_ok(&self, node: Node) -> Result<(), String> {
        let mut conn = self.try_node_conn(node)?;
        let info: String = query(&mut conn, redis::cmd("CLUSTER").arg("INFO"))?;
        match info.lines().find(|line| line.starts_with("cluster_state:")) {
            Some(line) if line.trim() == "cluster_state:ok" => Ok(()),
            other => Err(format!("{node:?} says {other:?}")),
        }
    }

    fn node_by_id(&self, id: &str) -> Option<Node> {
        self.nodes.iter().position(|p| p.id == id).map(Node)
    }

    fn try_node_conn(&self, node: Node) -> Result<redis::Connection, String> {
        connect(&self.client(self.port(node)))
    }

    /// A client for the node on `port`, over TLS with the client certificate for a TLS
    /// cluster.
    fn client(&self, port: u16) -> redis::Client {
        match &self.tls {
            None => redis::Client::open(format!("redis://127.0.0.1:{port}")),
            Some(tls) => redis::Client::build_with_tls(format!("rediss://127.0.0.1:{port}"), tls.clone()),
        }
        .expect("a valid URL and certificates")
    }
}

/// Connects with short timeouts, so a hung node fails a check instead of hanging it.
fn connect(client: &redis::Client) -> Result<redis::Connection, String> {
    let conn = client
        .get_connection_with_timeout(Duration::from_secs(2))
        .map_err(|e| e.to_string())?;
    for set in [
        redis::Connection::set_read_timeout,
        redis::Connection::set_write_timeout,
    ] {
        set(&conn, Some(Duration::from_secs(5))).map_err(|e| e.to_string())?;
    }
    Ok(conn)
}

fn query<T: redis::FromRedisValue>(conn: &mut redis::Connection, command: &redis::Cmd) -> Result<T, String> {
    command.query(conn).map_err(|e| e.to_string())
}

/// `redis-cli`'s arguments for TLS with the client certificate.
fn cli_tls_args(certificates: &Certificates) -> Vec<std::ffi::OsString> {
    let mut args = vec!["--tls".into()];
    for (flag, file) in [
        ("--cacert", "ca.pem"),
        ("--cert", "client.pem"),
        ("--key", "client.key"),
    ] {
        args.push(flag.into());
        args.push(certificates.path(file).into());
    }
    args
}

/// redis-rs's rustls has no crypto provider of its own; a second install is refused,
/// which is fine.
fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// One line of `CLUSTER NODES`.
#[derive(Debug)]
struct Entry {
    node: Node,
    flags: Vec<String>,
    /// The master of a replica.
    master: Option<Node>,
    /// Whether the cluster bus link to it is up.
    connected: bool,
    /// Inclusive ranges; slots mid-migration (`[slot->-id]`) are left out.
    slots: Vec<(u16, u16)>,
}

impl Entry {
    /// `<id> <ip:port@bus> <flags> <master id or -> <ping> <pong> <epoch> <link> <slots>...`
    fn parse(line: &str, lookup: impl Fn(&str) -> Option<Node>) -> Result<Entry, String> {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let [id, _address, flags, master, _ping, _pong, _epoch, link, slots @ ..] = &fields[..] else {
            return Err(format!("a CLUSTER NODES line of an unknown shape: {line}"));
        };
        let of_this_cluster = |id: &str| lookup(id).ok_or_else(|| format!("a node not of this cluster: {line}"));
        let node = of_this_cluster(id)?;
        let slots = slots
            .iter()
            .filter(|range| !range.starts_with('['))
            .map(|range| {
                let (first, last) = range.split_once('-').unwrap_or((range, range));
                Ok((
                    first.parse().map_err(|_| format!("slots {range}"))?,
                    last.parse().map_err(|_| format!("slots {range}"))?,
                ))
            })
            .collect::<Result<_, String>>()?;
        Ok(Entry {
            node,
            flags: flags.split(',').map(str::to_owned).collect(),
            master: if *master == "-" {
                None
            } else {
                Some(of_this_cluster(master)?)
            },
            connected: *link == "connected",
            slots,
        })
    }

    /// A master that serves slots and is not marked failed.
    fn serves_slots(&self) -> bool {
        let flag = |f: &str| self.flags.iter().any(|flag| flag == f);
        flag("master") && !flag("fail") && !self.slots.is_empty()
    }

    fn owns(&self, slot: u16) -> bool {
        self.slots.iter().any(|&(first, last)| first <= slot && slot <= last)
    }
}

/// One `redis-server` of a cluster, in a temp dir of its own; killed (and the dir
/// removed) when dropped.
struct Process {
    port: u16,
    pid: u32,
    /// The node's cluster id.
    id: String,
    dir: PathBuf,
    child: Mutex<Child>,
    state: Mutex<State>,
}

/// Whether a node runs; a node killed or paused keeps the slots it served then.
#[derive(Clone, Debug, PartialEq, Eq)]
enum State {
    Running,
    Paused(Vec<(u16, u16)>),
    Killed(Vec<(u16, u16)>),
}

impl Process {
    /// Starts a node on a free port whose bus port is free too, and waits until it
    /// answers; another port if the chosen one was taken meanwhile.
    fn start(certificates: Option<&Certificates>, client: impl Fn(u16) -> redis::Client) -> Process {
        let mut failures = Vec::new();
        for _ in 0..5 {
            let port = free_port_with_bus();
            let dir = std::env::temp_dir().join(format!("redis-cached-cluster-{}-{port}", std::process::id()));
            std::fs::create_dir_all(&dir).expect("create a temp dir");
            let child = launch(&dir, port, certificates);
            let pid = child.id();
            register(pid, &dir);
            let mut process = Process {
                port,
                pid,
                id: String::new(),
                dir,
                child: Mutex::new(child),
                state: Mutex::new(State::Running),
            };
            match process.wait_until_up(&client(port)) {
                Ok(id) => {
                    process.id = id;
                    return process;
                }
                Err(why) => failures.push(why),
            }
        }
        panic!("no cluster node started: {failures:#?}")
    }

    /// Waits until the node answers, and returns its cluster id; or says why it exited.
    fn wait_until_up(&self, client: &redis::Client) -> Result<String, String> {
        let deadline = Instant::now() + Duration::from_secs(10);
        // Another test's server may have taken the port first: only ours will do.
        let ours = format!("process_id:{}", self.pid);
        loop {
            if let Ok(mut conn) = connect(client)
                && let Ok(info) = query::<String>(&mut conn, redis::cmd("INFO").arg("server"))
                && info.lines().any(|line| line.trim() == ours)
                && let Ok(id) = query::<String>(&mut conn, redis::cmd("CLUSTER").arg("MYID"))
            {
                return Ok(id);
            }
            if let Ok(Some(status)) = self.child().try_wait() {
                // A port taken since it was picked, most likely; the log says.
                let log = std::fs::read_to_string(self.dir.join("redis.log")).unwrap_or_default();
                return Err(format!("redis-server on port {} exited ({status}): {log}", self.port));
            }
            assert!(
                Instant::now() < deadline,
                "redis-server on port {} did not come up",
                self.port
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn child(&self) -> MutexGuard<'_, Child> {
        self.child.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn state(&self) -> State {
        self.state.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    fn set_state(&self, state: State) {
        *self.state.lock().unwrap_or_else(PoisonError::into_inner) = state;
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let mut child = self.child();
        if matches!(self.state(), State::Paused(_)) {
            // Not `send_signal`: a panic in a drop while unwinding would abort.
            let _ = Command::new("kill").args(["-CONT", &self.pid.to_string()]).status();
        }
        let _ = child.kill();
        let _ = child.wait();
        drop(child);
        unregister(self.pid);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Starts a cluster node on `port` with its files in `dir`.
fn launch(dir: &Path, port: u16, certificates: Option<&Certificates>) -> Child {
    let mut command = Command::new("redis-server");
    match certificates {
        None => command.args(["--port", &port.to_string()]),
        Some(certificates) => {
            command.args(["--port", "0", "--tls-port", &port.to_string()]);
            command.args([
                "--tls-cluster",
                "yes",
                "--tls-replication",
                "yes",
                "--tls-auth-clients",
                "yes",
            ]);
            // The client certificate for the connections a node makes (bus, replication,
            // MIGRATE): the server certificate is for servers only.
            for (option, file) in [
                ("--tls-cert-file", "server.pem"),
                ("--tls-key-file", "server.key"),
                ("--tls-client-cert-file", "client.pem"),
                ("--tls-client-key-file", "client.key"),
                ("--tls-ca-cert-file", "ca.pem"),
            ] {
                command.arg(option).arg(certificates.path(file));
            }
            &mut command
        }
    };
    command
        .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
        .args(["--cluster-enabled", "yes", "--cluster-node-timeout", "1000"])
        // Replicas sync at once instead of after 5 s.
        .args(["--repl-diskless-sync-delay", "0"])
        .arg("--cluster-config-file")
        .arg(dir.join("nodes.conf"))
        .arg("--logfile")
        .arg(dir.join("redis.log"))
        .arg("--dir")
        .arg(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| missing_redis("redis-server", &e))
}

/// A free loopback port whose cluster bus port (+10000) is free too.
fn free_port_with_bus() -> u16 {
    for _ in 0..100 {
        let listener = TcpListener::bind("127.0.0.1:0").expect("a free port");
        let port = listener.local_addr().expect("a bound port").port();
        if let Some(bus) = port.checked_add(BUS_OFFSET)
            && TcpListener::bind(("127.0.0.1", bus)).is_ok()
        {
            return port;
        }
    }
    panic!("found no free port whose port + {BUS_OFFSET} is free too")
}

/// The nodes this process started and has not killed yet, with their dirs: killed when
/// it exits, for clusters never dropped.
static RUNNING: Mutex<Vec<(u32, PathBuf)>> = Mutex::new(Vec::new());

fn running() -> MutexGuard<'static, Vec<(u32, PathBuf)>> {
    RUNNING.lock().unwrap_or_else(PoisonError::into_inner)
}

fn register(pid: u32, dir: &Path) {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        // SAFETY: `kill_running` is an `extern "C" fn()` that does not unwind.
        let registered = unsafe { atexit(kill_running) };
        assert_eq!(registered, 0, "atexit");
    });
    running().push((pid, dir.to_owned()));
}

fn unregister(pid: u32) {
    running().retain(|&(p, _)| p != pid);
}

unsafe extern "C" {
    fn atexit(callback: extern "C" fn()) -> c_int;
    fn kill(pid: i32, signal: c_int) -> c_int;
    fn waitpid(pid: i32, status: *mut c_int, options: c_int) -> i32;
}

/// SIGKILL is 9 on every Unix; it ends a stopped process too.
const SIGKILL: c_int = 9;

/// Kills (and reaps) every node still registered, and removes its dir.
extern "C" fn kill_running() {
    for (pid, dir) in running().drain(..) {
        let pid = pid as i32;
        // SAFETY: plain system calls on a child of this process.
        unsafe {
            kill(pid, SIGKILL);
            waitpid(pid, std::ptr::null_mut(), 0);
        }
        let _ = std::fs::remove_dir_all(dir);
    }
}
