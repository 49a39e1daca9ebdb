//! The cluster harness (tests/support/cluster.rs) against real servers: the cluster it
//! starts is whole, it finds a key's master, fails over, moves slots, speaks mutual TLS,
//! and leaves no `redis-server` behind, dropped or not.

mod support;

use redis::cluster::ClusterClientBuilder;
use redis::{ClientTlsConfig, Commands, TlsCertificates};
use support::child::{is_child, run_child};
use support::cluster::Cluster;
use support::tls::Certificates;
use support::wait_for;

#[test]
fn the_cluster_has_three_masters_each_with_a_replica_in_sync_and_every_slot_is_served() {
    let cluster = Cluster::shared();
    let masters = cluster.masters();
    assert_eq!(masters.len(), 3, "{masters:?}");
    for &master in &masters {
        let replica = cluster.replica_of(master);
        assert!(!masters.contains(&replica), "{replica:?} of {master:?} is a master");
        let info: String = redis::cmd("INFO")
            .arg("replication")
            .query(&mut cluster.node_conn(master))
            .unwrap();
        let port = format!("port={},state=online", cluster.port(replica));
        assert!(
            info.contains(&port),
            "{master:?} does not have {replica:?} in sync: {info}"
        );
    }
    let ranges: Vec<(u16, u16, redis::Value)> = redis::cmd("CLUSTER")
        .arg("SLOTS")
        .query::<Vec<Vec<redis::Value>>>(&mut cluster.node_conn(masters[0]))
        .unwrap()
        .into_iter()
        .map(|range| {
            let bound = |v: &redis::Value| redis::from_redis_value_ref::<u16>(v).unwrap();
            (bound(&range[0]), bound(&range[1]), range[2].clone())
        })
        .collect();
    let served: usize = ranges
        .iter()
        .map(|(first, last, _)| usize::from(last - first) + 1)
        .sum();
    assert_eq!(served, 16384, "{ranges:?}");
}

#[test]
fn a_key_written_through_the_cluster_connection_is_on_its_masters_node_and_its_replica() {
    let cluster = Cluster::shared();
    let key = "topologies:written";
    let _: () = cluster.conn().set(key, "v").unwrap();
    let master = cluster.master_of_key(key);
    let got: Option<String> = cluster.node_conn(master).get(key).unwrap();
    assert_eq!(got.as_deref(), Some("v"));
    for other in cluster.masters().into_iter().filter(|&m| m != master) {
        let moved = cluster.node_conn(other).get::<_, Option<String>>(key);
        assert!(moved.is_err(), "{other:?} answered for a key of {master:?}: {moved:?}");
    }
    let mut replica = cluster.node_conn(cluster.replica_of(master));
    let _: () = redis::cmd("READONLY").query(&mut replica).unwrap();
    wait_for("the replica has the key", || {
        match replica.get::<_, Option<String>>(key) {
            Ok(Some(value)) if value == "v" => Ok(()),
            other => Err(format!("{other:?}")),
        }
    });
}

#[test]
fn an_acl_user_made_everywhere_reaches_its_keys_through_the_cluster_and_no_others() {
    let cluster = Cluster::shared();
    let rules = "resetkeys ~acl:* -@all +get +set +cluster|slots +ping";
    let seeds = cluster.acl_user_everywhere("app", "s3cr3t", rules);
    assert!(
        seeds.iter().all(|url| url.starts_with("redis://app:s3cr3t@127.0.0.1:")),
        "{seeds:?}"
    );
    let mut conn = ClusterClientBuilder::new(seeds)
        .build()
        .and_then(|client| client.get_connection())
        .expect("the ACL user connects");
    let _: () = conn.set("acl:k", "v").unwrap();
    assert_eq!(conn.get::<_, String>("acl:k").unwrap(), "v");
    let refused = conn.set::<_, _, ()>("topologies:not-acl", "v");
    assert!(
        refused
            .as_ref()
            .is_err_and(|e| e.to_string().contains("no permissions to access one of the keys")),
        "{refused:?}"
    );
}

#[test]
fn a_killed_or_paused_master_is_replaced_by_its_replica_and_keys_stay_readable() {
    let cluster = Cluster::start();
    let key = "topologies:failover";
    let _: () = cluster.conn().set(key, "v").unwrap();
    let master = cluster.master_of_key(key);
    let replica = cluster.replica_of(master);
    let mut on_replica = cluster.node_conn(replica);
    let _: () = redis::cmd("READONLY").query(&mut on_replica).unwrap();
    wait_for("the replica has the key", || {
        match on_replica.get::<_, Option<String>>(key) {
            Ok(Some(_)) => Ok(()),
            other => Err(format!("{other:?}")),
        }
    });

    cluster.kill(master);
    assert_eq!(cluster.wait_promoted(master), replica);
    assert_eq!(cluster.master_of_key(key), replica);
    assert_eq!(cluster.conn().get::<_, String>(key).unwrap(), "v");

    let other = *cluster.masters().iter().find(|&&m| m != replica).unwrap();
    let other_replica = cluster.replica_of(other);
    cluster.pause(other);
    assert_eq!(cluster.wait_promoted(other), other_replica);
    assert!(!cluster.masters().contains(&other), "{:?}", cluster.masters());
    assert_eq!(cluster.conn().get::<_, String>(key).unwrap(), "v");

    cluster.resume(other);
    let port = cluster.port(other_replica);
    wait_for("the resumed master comes back as a replica of its replacement", || {
        let role: Vec<redis::Value> = redis::cmd("ROLE")
            .query(&mut cluster.node_conn(other))
            .map_err(|e| e.to_string())?;
        match &role[..] {
            [
                redis::Value::BulkString(role),
                redis::Value::BulkString(_host),
                redis::Value::Int(p),
                ..,
            ] if role == b"slave" && *p == i64::from(port) => Ok(()),
            _ => Err(format!("ROLE says {role:?}")),
        }
    });
    // Dropped while a node is paused.
    cluster.pause(other);
    assert_gone_once_dropped(cluster);
}

#[test]
fn a_slot_moves_with_its_keys_and_is_served_mid_migration() {
    let cluster = Cluster::start();
    let keys: Vec<String> = (0..10).map(|i| format!("topologies:{{moved}}:{i}")).collect();
    let mut conn = cluster.conn();
    for key in &keys {
        let _: () = conn.set(key, key).unwrap();
    }
    let slot: u16 = redis::cmd("CLUSTER")
        .arg("KEYSLOT")
        .arg(&keys[0])
        .query(&mut cluster.node_conn(cluster.masters()[0]))
        .unwrap();
    let from = cluster.owner(slot);
    let to = *cluster.masters().iter().find(|&&m| m != from).unwrap();
    let keys_on = |node| -> usize {
        redis::cmd("CLUSTER")
            .arg("COUNTKEYSINSLOT")
            .arg(slot)
            .query(&mut cluster.node_conn(node))
            .unwrap()
    };

    let migration = cluster.start_migrating(slot, to);
    assert_eq!(cluster.migrate_keys(&migration, 4).len(), 4);
    assert_eq!((keys_on(from), keys_on(to)), (6, 4));
    // Keys on either side: the moved ones after an `ASK`.
    for key in &keys {
        assert_eq!(&conn.get::<_, String>(key).unwrap(), key);
    }
    cluster.finish_migrating(migration);

    assert_eq!(cluster.owner(slot), to);
    assert_eq!(cluster.master_of_key(&keys[0]), to);
    assert_eq!((keys_on(from), keys_on(to)), (0, 10));
    let mut fresh = cluster.conn();
    for key in &keys {
        assert_eq!(&fresh.get::<_, String>(key).unwrap(), key);
    }
    assert_gone_once_dropped(cluster);
}

#[test]
fn a_tls_cluster_takes_a_cluster_connection_with_the_client_certificate_and_no_other() {
    let certificates = Certificates::make();
    let cluster = Cluster::start_tls(&certificates);
    let seeds = cluster.seeds();
    assert!(
        seeds.iter().all(|url| url.starts_with("rediss://127.0.0.1:")),
        "{seeds:?}"
    );
    let connect = |client_tls| {
        ClusterClientBuilder::new(seeds.clone())
            .certs(TlsCertificates {
                client_tls,
                root_cert: Some(certificates.read("ca.pem")),
            })
            .build()
            .and_then(|client| client.get_connection())
    };
    let mut conn = connect(Some(ClientTlsConfig {
        client_cert: certificates.read("client.pem"),
        client_key: certificates.read("client.key"),
    }))
    .expect("connects with the client certificate");
    let _: () = conn.set("topologies:tls", "v").unwrap();
    let master = cluster.master_of_key("topologies:tls");
    assert_eq!(
        cluster.node_conn(master).get::<_, String>("topologies:tls").unwrap(),
        "v"
    );
    let refused = connect(None).and_then(|mut conn| conn.get::<_, Option<String>>("topologies:tls"));
    assert!(
        refused
            .as_ref()
            .is_err_and(|e| e.to_string().contains("CertificateRequired")),
        "without a client certificate: {refused:?}"
    );
    assert_gone_once_dropped(cluster);
}

#[test]
fn the_nodes_of_a_cluster_never_dropped_are_killed_when_the_process_exits() {
    const TEST: &str = "the_nodes_of_a_cluster_never_dropped_are_killed_when_the_process_exits";
    if is_child(TEST) {
        let pids = Cluster::shared().pids();
        eprintln!("pids: {pids:?}");
        return;
    }
    let stderr = run_child(TEST, &[]);
    let pids: Vec<u32> = stderr
        .lines()
        .find_map(|line| line.strip_prefix("pids: "))
        .unwrap_or_else(|| panic!("the child printed no pids: {stderr}"))
        .trim_matches(['[', ']'])
        .split(", ")
        .map(|pid| pid.parse().unwrap())
        .collect();
    assert_eq!(pids.len(), 6, "{pids:?}");
    let running: Vec<u32> = pids.into_iter().filter(|&pid| redis_server_runs(pid)).collect();
    assert!(
        running.is_empty(),
        "still running after the process exited: {running:?}"
    );
}

/// Drops `cluster` and asserts that none of its nodes runs any more.
fn assert_gone_once_dropped(cluster: Cluster) {
    let pids = cluster.pids();
    assert!(
        pids.iter().any(|&pid| redis_server_runs(pid)),
        "{pids:?} before the drop"
    );
    drop(cluster);
    let running: Vec<u32> = pids.into_iter().filter(|&pid| redis_server_runs(pid)).collect();
    assert!(running.is_empty(), "still running after the drop: {running:?}");
}

/// Whether `pid` is a `redis-server` that has not exited (not a zombie either).
fn redis_server_runs(pid: u32) -> bool {
    let proc = std::path::Path::new("/proc").join(pid.to_string());
    let (Ok(cmdline), Ok(stat)) = (
        std::fs::read(proc.join("cmdline")),
        std::fs::read_to_string(proc.join("stat")),
    ) else {
        return false;
    };
    // `<pid> (<comm>) <state> ...`
    let state = stat.rsplit_once(") ").map(|(_, rest)| rest.chars().next());
    String::from_utf8_lossy(&cmdline).contains("redis-server") && state != Some(Some('Z'))
}
