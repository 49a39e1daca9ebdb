//! A Redis Cluster of the bench's own: three masters and a replica of each, on free
//! loopback ports, made with `redis-cli --cluster create`; and what the failover
//! scenario does to it (kill or pause a master, watch for its replica's promotion).
//! Every node is killed when the [`Cluster`] is dropped.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use redis::Value;

use crate::server::redis_server;

const MASTERS: usize = 3;
const NODES: usize = 2 * MASTERS;
/// The cluster bus listens on the client port + 10000.
const BUS_OFFSET: u16 = 10000;

/// One `redis-server` of the cluster.
struct Node {
    port: u16,
    child: Child,
    dir: PathBuf,
    state: State,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum State {
    Running,
    Paused,
    Killed,
}

/// Six `redis-server` processes forming a cluster; every node is killed when dropped.
pub(crate) struct Cluster {
    nodes: Vec<Node>,
}

/// Inclusive slot ranges and the port of the master serving each.
type Slots = Vec<(u16, u16, u16)>;

impl Cluster {
    /// Starts a cluster and waits until every node serves all slots and every master
    /// has a replica in sync.
    pub(crate) fn start() -> Cluster {
        // Built node by node, so a panic on the way drops (kills) what has started.
        let mut cluster = Cluster { nodes: Vec::new() };
        for _ in 0..NODES {
            let node = Node::launch(free_port_with_bus());
            cluster.nodes.push(node);
            let port = cluster.nodes.last().expect("a node").port;
            wait_for("a cluster node to answer", || {
                query::<String>(port, &redis::cmd("PING")).ok()
            });
        }
        let output = Command::new("redis-cli")
            .args(["--cluster", "create"])
            .args(cluster.nodes.iter().map(|n| format!("127.0.0.1:{}", n.port)))
            .args(["--cluster-replicas", "1", "--cluster-yes"])
            .output()
            .expect("run redis-cli");
        assert!(output.status.success(), "`redis-cli --cluster create` failed");
        wait_for("the cluster to be formed with its replicas in sync", || {
            cluster.ready().then_some(())
        });
        cluster
    }

    fn ready(&self) -> bool {
        let all_ok = self.nodes.iter().all(|n| {
            query::<String>(n.port, redis::cmd("CLUSTER").arg("INFO")).is_ok_and(|info| {
                ["cluster_state:ok", "cluster_slots_ok:16384", "cluster_known_nodes:6"]
                    .iter()
                    .all(|want| info.lines().any(|l| l.trim() == *want))
            })
        });
        all_ok && self.masters().len() == MASTERS && self.masters().into_iter().all(|m| self.in_sync(m))
    }

    /// Whether the master on `port` has a replica that has everything it wrote.
    fn in_sync(&self, port: u16) -> bool {
        let Ok(info) = query::<String>(port, redis::cmd("INFO").arg("replication")) else {
            return false;
        };
        let field = |prefix: &str| info.lines().find_map(|l| l.strip_prefix(prefix)).map(str::trim);
        let offset = field("master_repl_offset:");
        let replica = field("slave0:").unwrap_or_default();
        replica.contains("state=online") && offset.is_some_and(|o| replica.contains(&format!("offset={o},")))
    }

    /// Waits until every master's replica has everything written so far.
    pub(crate) fn wait_replicated(&self) {
        wait_for("every replica to catch up", || {
            self.masters().into_iter().all(|m| self.in_sync(m)).then_some(())
        });
    }

    /// The URLs of all six nodes.
    pub(crate) fn seeds(&self) -> Vec<String> {
        self.nodes
            .iter()
            .map(|n| format!("redis://127.0.0.1:{}", n.port))
            .collect()
    }

    /// The slots as the node on `port` sees them (`CLUSTER SLOTS`).
    fn slots_from(&self, port: u16) -> Option<Slots> {
        let Ok(Value::Array(ranges)) = query::<Value>(port, redis::cmd("CLUSTER").arg("SLOTS")) else {
            return None;
        };
        let int = |v: &Value| match v {
            Value::Int(i) => u16::try_from(*i).ok(),
            _ => None,
        };
        ranges
            .iter()
            .map(|range| {
                let Value::Array(fields) = range else { return None };
                let Some(Value::Array(master)) = fields.get(2) else {
                    return None;
                };
                Some((int(fields.first()?)?, int(fields.get(1)?)?, int(master.get(1)?)?))
            })
            .collect()
    }

    /// The slots as the first live node that answers sees them.
    fn slots(&self) -> Slots {
        let live = self.nodes.iter().filter(|n| n.state == State::Running);
        live.filter_map(|n| self.slots_from(n.port))
            .next()
            .expect("a live node's CLUSTER SLOTS")
    }

    /// The ports of the masters that serve slots.
    pub(crate) fn masters(&self) -> Vec<u16> {
        let mut masters: Vec<u16> = self.slots().into_iter().map(|(_, _, port)| port).collect();
        masters.sort_unstable();
        masters.dedup();
        masters
    }

    /// The port of the master that serves `key`.
    pub(crate) fn master_of_key(&self, key: &str) -> u16 {
        let live = self
            .nodes
            .iter()
            .find(|n| n.state == State::Running)
            .expect("a live node");
        let slot: u16 = query(live.port, redis::cmd("CLUSTER").arg("KEYSLOT").arg(key)).expect("CLUSTER KEYSLOT");
        self.slots()
            .into_iter()
            .find(|&(first, last, _)| first <= slot && slot <= last)
            .map(|(_, _, port)| port)
            .expect("a master serves every slot")
    }

    /// Whether some live node says another master now serves the slots `port` served
    /// (`lost`): its replica was promoted.
    pub(crate) fn promoted(&self, port: u16, lost: &Slots) -> Option<u16> {
        self.nodes.iter().filter(|n| n.state == State::Running).find_map(|n| {
            let now = self.slots_from(n.port)?;
            let (first, last, _) = *lost.iter().find(|&&(_, _, p)| p == port)?;
            now.iter()
                .find(|&&(f, l, p)| f <= first && last <= l && p != port)
                .map(|&(_, _, p)| p)
        })
    }

    /// Whether the first live node says `cluster_state:ok` (a master marked failed turns
    /// it to `fail` until its replica is promoted: keys of every slot get `CLUSTERDOWN`).
    pub(crate) fn state_ok(&self) -> bool {
        let live = self
            .nodes
            .iter()
            .find(|n| n.state == State::Running)
            .expect("a live node");
        query::<String>(live.port, redis::cmd("CLUSTER").arg("INFO"))
            .is_ok_and(|info| info.lines().any(|l| l.trim() == "cluster_state:ok"))
    }

    /// The slot map now, to hand to [`promoted`](Cluster::promoted) after a fault.
    pub(crate) fn slot_map(&self) -> Slots {
        self.slots()
    }

    fn node(&mut self, port: u16) -> &mut Node {
        self.nodes
            .iter_mut()
            .find(|n| n.port == port)
            .expect("a node of this cluster")
    }

    /// SIGKILL: the node is gone.
    pub(crate) fn kill(&mut self, port: u16) {
        let node = self.node(port);
        let _ = node.child.kill();
        let _ = node.child.wait();
        node.state = State::Killed;
    }

    /// SIGSTOP: its connections stay open and nothing answers.
    pub(crate) fn pause(&mut self, port: u16) {
        let node = self.node(port);
        signal(&node.child, "-STOP");
        node.state = State::Paused;
    }

    /// SIGCONT: a paused node runs again (a replaced master comes back as a replica).
    pub(crate) fn resume(&mut self, port: u16) {
        let node = self.node(port);
        signal(&node.child, "-CONT");
        node.state = State::Running;
    }
}

impl Node {
    fn launch(port: u16) -> Node {
        let dir = std::env::temp_dir().join(format!("redis-cached-bench-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("a temp dir");
        let child = redis_server(port)
            .args(["--cluster-enabled", "yes", "--cluster-node-timeout", "1000"])
            .args(["--repl-diskless-sync-delay", "0"])
            .arg("--cluster-config-file")
            .arg(dir.join("nodes.conf"))
            .arg("--dir")
            .arg(&dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start redis-server (apt-get install redis-server)");
        Node {
            port,
            child,
            dir,
            state: State::Running,
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        if self.state == State::Paused {
            signal(&self.child, "-CONT");
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn signal(child: &Child, signal: &str) {
    let _ = Command::new("kill").args([signal, &child.id().to_string()]).status();
}

/// One command on the node at `port`, with short timeouts so a hung node fails it.
fn query<T: redis::FromRedisValue>(port: u16, command: &redis::Cmd) -> redis::RedisResult<T> {
    let client = redis::Client::open(format!("redis://127.0.0.1:{port}"))?;
    let mut conn = client.get_connection_with_timeout(Duration::from_millis(500))?;
    conn.set_read_timeout(Some(Duration::from_millis(500)))?;
    command.query(&mut conn)
}

/// Polls `check` every 10 ms until it gives a value; panics after 20 s.
fn wait_for<T>(what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// A free loopback port whose cluster bus port (+10000) is free too.
fn free_port_with_bus() -> u16 {
    for _ in 0..100 {
        let listener = TcpListener::bind("127.0.0.1:0").expect("a free port");
        let port = listener.local_addr().expect("a bound port").port();
        if port
            .checked_add(BUS_OFFSET)
            .is_some_and(|bus| TcpListener::bind(("127.0.0.1", bus)).is_ok())
        {
            return port;
        }
    }
    panic!("found no free port whose port + {BUS_OFFSET} is free too")
}
