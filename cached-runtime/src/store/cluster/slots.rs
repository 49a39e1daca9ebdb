//! Which master of a cluster serves each hash slot: the map read from `CLUSTER SLOTS`,
//! and the slot of a key. Each master has its breaker here, carried over from one map to
//! the next while it serves slots.

use std::sync::Arc;

use redis::{ErrorKind, RedisError, Value};

use crate::breaker::Breaker;
use crate::store::replication::Replicas;

/// The number of hash slots of a Redis Cluster.
const SLOTS: usize = 16384;

/// Which master serves each slot.
#[derive(Default)]
pub(super) struct SlotMap {
    /// For each slot, its shard's index in `shards`; empty before the first read.
    owners: Vec<u16>,
    pub(super) shards: Vec<Arc<Shard>>,
}

/// A master, its breaker, and whether its invalidations wait for a replica.
#[derive(Debug)]
pub(crate) struct Shard {
    pub(super) host: String,
    pub(super) port: u16,
    pub(super) breaker: Breaker,
    pub(super) replicas: Replicas,
}

impl SlotMap {
    /// The map a `CLUSTER SLOTS` reply describes. Shards of `previous` that still serve
    /// slots keep their breakers; new ones start closed.
    pub(super) fn read(reply: &Value, answered_by: &str, previous: Option<&SlotMap>) -> Result<SlotMap, RedisError> {
        let Value::Array(ranges) = reply else {
            return Err(unexpected_slots(reply));
        };
        let mut map = SlotMap {
            owners: vec![u16::MAX; SLOTS],
            shards: Vec::new(),
        };
        for range in ranges {
            let (first, last, host, port, replicas) = slot_range(range).ok_or_else(|| unexpected_slots(range))?;
            // An unknown endpoint (`?`): those slots are not served, as far as the cache
            // can reach them. No host (empty or nil): the answering node's own.
            let host = match host {
                Some("?") => continue,
                Some("") | None => answered_by,
                Some(host) => host,
            };
            let index = map.shard_index(host, port, replicas, previous);
            for owner in &mut map.owners[first..=last] {
                *owner = index;
            }
        }
        Ok(map)
    }

    /// The index of the shard at `host:port`, added (from `previous`, or new with
    /// `replicas`) if needed.
    fn shard_index(&mut self, host: &str, port: u16, replicas: usize, previous: Option<&SlotMap>) -> u16 {
        let known = |shard: &&Arc<Shard>| shard.host == host && shard.port == port;
        if let Some(index) = self.shards.iter().position(|shard| known(&shard)) {
            return index_u16(index);
        }
        let shard = previous
            .and_then(|previous| previous.shards.iter().find(known).cloned())
            .unwrap_or_else(|| {
                let breaker = Breaker::new_open();
                breaker.close();
                let known_replicas = Replicas::default();
                known_replicas.connected(Some(replicas));
                Arc::new(Shard {
                    host: host.to_owned(),
                    port,
                    breaker,
                    replicas: known_replicas,
                })
            });
        self.shards.push(shard);
        index_u16(self.shards.len() - 1)
    }

    /// The shard serving `key`'s slot; `None` for a slot no master serves.
    pub(super) fn shard_of(&self, key: &str) -> Option<&Arc<Shard>> {
        let owner = *self.owners.get(usize::from(slot(key)))?;
        self.shards.get(usize::from(owner))
    }
}

/// A shard's index: there are at most as many shards as slots (16384 < 65535).
fn index_u16(index: usize) -> u16 {
    u16::try_from(index).unwrap_or(u16::MAX)
}

/// One entry of a `CLUSTER SLOTS` reply: first slot, last slot, then the master's host
/// and port first among its nodes, then its replicas (counted).
fn slot_range(range: &Value) -> Option<(usize, usize, Option<&str>, u16, usize)> {
    let Value::Array(fields) = range else { return None };
    let (Some(Value::Int(first)), Some(Value::Int(last)), Some(Value::Array(master))) =
        (fields.first(), fields.get(1), fields.get(2))
    else {
        return None;
    };
    let host = match master.first()? {
        Value::BulkString(host) => Some(std::str::from_utf8(host).ok()?),
        Value::SimpleString(host) => Some(host.as_str()),
        Value::Nil => None,
        _ => return None,
    };
    let Value::Int(port) = master.get(1)? else { return None };
    let (first, last) = (usize::try_from(*first).ok()?, usize::try_from(*last).ok()?);
    let replicas = fields.len().saturating_sub(3);
    (first <= last && last < SLOTS).then_some((first, last, host, u16::try_from(*port).ok()?, replicas))
}

fn unexpected_slots(reply: &Value) -> RedisError {
    RedisError::from((
        ErrorKind::UnexpectedReturnType,
        "unexpected CLUSTER SLOTS reply",
        format!("{reply:?}"),
    ))
}

/// The hash slot of `key`: CRC16 of its hash tag (the text between the first `{` and
/// the next `}`, if not empty), else of the whole key, modulo 16384.
fn slot(key: &str) -> u16 {
    let key = key.as_bytes();
    let tagged = key.iter().position(|&b| b == b'{').and_then(|open| {
        let rest = &key[open + 1..];
        let close = rest.iter().position(|&b| b == b'}')?;
        (close > 0).then(|| &rest[..close])
    });
    crc16::State::<crc16::XMODEM>::calculate(tagged.unwrap_or(key)) % 16384
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_those_redis_computes() {
        // `CLUSTER KEYSLOT` on Redis 7.0 gives these.
        assert_eq!(slot("foo"), 12182);
        assert_eq!(slot("shop:{product:42}"), slot("product:42"));
        assert_eq!(slot("{user1000}.following"), slot("{user1000}.followers"));
        assert_eq!(
            slot("foo{}{bar}"),
            slot("foo{}{bar}"),
            "an empty tag hashes the whole key"
        );
        assert_ne!(slot("foo{}{bar}"), slot("bar"));
        assert_eq!(slot("foo{{bar}}zap"), slot("{bar"));
    }

    fn range(first: i64, last: i64, port: i64) -> Value {
        Value::Array(vec![
            Value::Int(first),
            Value::Int(last),
            Value::Array(vec![
                Value::BulkString(b"127.0.0.1".to_vec()),
                Value::Int(port),
                Value::BulkString(b"id".to_vec()),
            ]),
        ])
    }

    #[test]
    fn the_slot_map_names_each_slots_master_and_keeps_known_breakers() {
        let reply = Value::Array(vec![range(0, 5460, 7000), range(5461, 16383, 7001)]);
        let map = SlotMap::read(&reply, "127.0.0.1", None).unwrap();
        assert_eq!(map.shards.len(), 2);
        let shard = |map: &SlotMap, key: &str| map.shard_of(key).map(|shard| shard.port);
        assert_eq!(shard(&map, "foo"), Some(7001), "slot 12182");
        map.shards[1].breaker.trip();
        // The shard of 7001 fails over to 7002; 7000 keeps its (closed) breaker.
        let reply = Value::Array(vec![range(0, 5460, 7000), range(5461, 16383, 7002)]);
        let moved = SlotMap::read(&reply, "127.0.0.1", Some(&map)).unwrap();
        assert!(Arc::ptr_eq(&moved.shards[0], &map.shards[0]));
        assert_eq!(shard(&moved, "foo"), Some(7002));
        assert!(!moved.shard_of("foo").unwrap().breaker.is_open());
    }

    fn range_of(first: i64, last: i64, host: Value) -> Value {
        Value::Array(vec![
            Value::Int(first),
            Value::Int(last),
            Value::Array(vec![host, Value::Int(7000), Value::BulkString(b"id".to_vec())]),
        ])
    }

    /// Redis leaves a master's host out (empty, or nil with
    /// `cluster-preferred-endpoint-type unknown-endpoint`) to mean the answering node's;
    /// `?` is an endpoint it does not know.
    #[test]
    fn a_master_without_a_host_is_the_answering_nodes_and_an_unknown_one_serves_nothing() {
        let reply = Value::Array(vec![
            range_of(0, 100, Value::BulkString(Vec::new())),
            range_of(101, 200, Value::Nil),
            range_of(201, 16383, Value::BulkString(b"?".to_vec())),
        ]);
        let map = SlotMap::read(&reply, "10.0.0.7", None).unwrap();
        assert_eq!(map.shards.len(), 1, "one node, named twice");
        assert_eq!(map.shards[0].host, "10.0.0.7");
        assert!(map.shard_of("foo").is_none(), "slot 12182 has an unknown endpoint");
    }

    #[test]
    fn a_slot_no_master_serves_has_no_shard() {
        let reply = Value::Array(vec![range(0, 100, 7000)]);
        let map = SlotMap::read(&reply, "127.0.0.1", None).unwrap();
        assert!(map.shard_of("foo").is_none());
        assert!(SlotMap::read(&Value::Array(vec![range(5, 16384, 7000)]), "127.0.0.1", None).is_err());
    }
}
