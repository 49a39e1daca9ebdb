//! Redis's own view of the cache: `INFO`'s hit and miss counts, evictions, expiries and
//! memory, as [`ServerStats`].

use serde::Serialize;

/// What Redis says about itself, from `INFO` (its `stats` and `memory` sections), from
/// [`Cache::server_stats`](crate::Cache::server_stats). On a cluster, summed over the
/// masters.
///
/// Redis counts every key lookup of every client: besides the cache's reads, its lease,
/// fence and tag version reads, and other applications' if they share the server. Its hit
/// rate is a measure of the server, [`Stats::hit_rate`](crate::Stats::hit_rate) one of
/// this process's calls.
///
/// Serializes as a map of the fields by name, e.g. for a JSON status endpoint.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct ServerStats {
    /// Lookups of keys that existed (`keyspace_hits`).
    pub keyspace_hits: u64,
    /// Lookups of keys that did not (`keyspace_misses`).
    pub keyspace_misses: u64,
    /// Keys evicted to stay under `maxmemory` (`evicted_keys`).
    pub evicted_keys: u64,
    /// Keys removed because their ttl ran out (`expired_keys`).
    pub expired_keys: u64,
    /// Bytes the server has allocated (`used_memory`).
    pub used_memory: u64,
    /// The memory limit in bytes (`maxmemory`); 0 means none. On a cluster, the sum over
    /// the masters, or 0 if any master has none.
    pub maxmemory: u64,
    /// What the server does at `maxmemory` (`maxmemory_policy`): `allkeys-lru` suits a
    /// cache; with `noeviction` fills fail with `OOM` once Redis is full. On a cluster whose
    /// masters differ, each of their policies, joined with `,`.
    pub maxmemory_policy: String,
    /// How many servers (masters) these numbers are summed over.
    pub servers: u64,
}

impl ServerStats {
    /// `keyspace_hits / (keyspace_hits + keyspace_misses)`, in `0.0..=1.0`; `0.0` before the
    /// first lookup. Below 0.5 usually means ttls that are too short, keys that are too
    /// fine-grained, or values that are read only once.
    #[must_use]
    pub fn hit_rate(&self) -> f64 {
        let lookups = self.keyspace_hits.saturating_add(self.keyspace_misses);
        if lookups == 0 {
            0.0
        } else {
            self.keyspace_hits as f64 / lookups as f64
        }
    }

    /// The stats of one server, from its `INFO` text; missing fields are 0 (or empty).
    pub(crate) fn parse(info: &str) -> Self {
        let mut stats = ServerStats {
            servers: 1,
            ..ServerStats::default()
        };
        for line in info.lines() {
            let Some((field, value)) = line.trim_end().split_once(':') else {
                continue;
            };
            let number = || value.parse::<u64>().unwrap_or(0);
            match field {
                "keyspace_hits" => stats.keyspace_hits = number(),
                "keyspace_misses" => stats.keyspace_misses = number(),
                "evicted_keys" => stats.evicted_keys = number(),
                "expired_keys" => stats.expired_keys = number(),
                "used_memory" => stats.used_memory = number(),
                "maxmemory" => stats.maxmemory = number(),
                "maxmemory_policy" => value.clone_into(&mut stats.maxmemory_policy),
                _ => {}
            }
        }
        stats
    }

    /// The stats of several servers (a cluster's masters) as one.
    pub(crate) fn sum(servers: impl IntoIterator<Item = ServerStats>) -> Self {
        let mut total: Option<ServerStats> = None;
        for server in servers {
            let Some(sum) = total.as_mut() else {
                total = Some(server);
                continue;
            };
            sum.keyspace_hits = sum.keyspace_hits.saturating_add(server.keyspace_hits);
            sum.keyspace_misses = sum.keyspace_misses.saturating_add(server.keyspace_misses);
            sum.evicted_keys = sum.evicted_keys.saturating_add(server.evicted_keys);
            sum.expired_keys = sum.expired_keys.saturating_add(server.expired_keys);
            sum.used_memory = sum.used_memory.saturating_add(server.used_memory);
            sum.maxmemory = if sum.maxmemory == 0 || server.maxmemory == 0 {
                0
            } else {
                sum.maxmemory.saturating_add(server.maxmemory)
            };
            if !sum
                .maxmemory_policy
                .split(',')
                .any(|policy| policy == server.maxmemory_policy)
            {
                sum.maxmemory_policy.push(',');
                sum.maxmemory_policy.push_str(&server.maxmemory_policy);
            }
            sum.servers += server.servers;
        }
        total.unwrap_or_default()
    }

    /// Why fills may fail once this server is full, if they may: no `maxmemory` (Redis
    /// grows until the machine runs out), or `noeviction` (writes fail with `OOM`).
    pub(crate) fn memory_warning(&self) -> Option<&'static str> {
        if self.maxmemory_policy.is_empty() {
            // A server whose `INFO` says nothing of its memory (a proxy, say): nothing known.
            None
        } else if self.maxmemory == 0 {
            Some(
                "it has no maxmemory: it grows until the machine runs out of memory; set maxmemory \
                 with maxmemory-policy allkeys-lru",
            )
        } else if self.maxmemory_policy == "noeviction" {
            Some(
                "its maxmemory-policy is noeviction: once it is full, every fill fails with OOM and \
                 calls go to the database; set maxmemory-policy allkeys-lru",
            )
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const INFO: &str = "# Stats\r\ntotal_connections_received:3\r\nexpired_keys:7\r\nevicted_keys:2\r\n\
                        keyspace_hits:30\r\nkeyspace_misses:10\r\n\r\n# Memory\r\nused_memory:1048576\r\n\
                        used_memory_human:1.00M\r\nmaxmemory:104857600\r\nmaxmemory_policy:allkeys-lru\r\n";

    #[test]
    fn info_is_read_field_by_field() {
        let stats = ServerStats::parse(INFO);
        assert_eq!(
            stats,
            ServerStats {
                keyspace_hits: 30,
                keyspace_misses: 10,
                evicted_keys: 2,
                expired_keys: 7,
                used_memory: 1_048_576,
                maxmemory: 104_857_600,
                maxmemory_policy: "allkeys-lru".to_owned(),
                servers: 1,
            }
        );
        assert!((stats.hit_rate() - 0.75).abs() < 1e-9);
        assert_eq!(stats.memory_warning(), None);
        assert_eq!(ServerStats::default().hit_rate(), 0.0);
    }

    #[test]
    fn masters_are_summed_and_an_unlimited_one_makes_the_limit_none() {
        let limited = ServerStats::parse(INFO);
        let sum = ServerStats::sum([limited.clone(), limited.clone()]);
        assert_eq!((sum.keyspace_hits, sum.maxmemory, sum.servers), (60, 209_715_200, 2));
        assert_eq!(sum.maxmemory_policy, "allkeys-lru");
        let unlimited = ServerStats::parse("maxmemory:0\r\nmaxmemory_policy:noeviction\r\nkeyspace_hits:1\r\n");
        let sum = ServerStats::sum([limited, unlimited]);
        assert_eq!((sum.keyspace_hits, sum.maxmemory), (31, 0));
        assert_eq!(sum.maxmemory_policy, "allkeys-lru,noeviction");
    }

    #[test]
    fn no_limit_and_noeviction_are_warned_about() {
        let unlimited = ServerStats::parse("maxmemory:0\r\nmaxmemory_policy:allkeys-lru\r\n");
        assert!(
            unlimited
                .memory_warning()
                .is_some_and(|why| why.contains("no maxmemory"))
        );
        let refusing = ServerStats::parse("maxmemory:1000\r\nmaxmemory_policy:noeviction\r\n");
        assert!(refusing.memory_warning().is_some_and(|why| why.contains("noeviction")));
        let silent = ServerStats::parse("# Stats\r\nkeyspace_hits:1\r\n");
        assert_eq!(silent.memory_warning(), None, "no memory section, nothing known");
    }
}
