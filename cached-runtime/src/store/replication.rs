//! What a server's `ROLE` says, and whether a master's invalidations must be
//! acknowledged by a replica (`WAIT`) before they count as done.
//!
//! A master is taken to have replicas when its `ROLE` listed one, at connect or in any
//! invalidation's reply since. It keeps that status while it lists none for up to
//! [`ALONE`]: in a graceful failover the old master still says it is master, but its
//! replica, just promoted, has left it, and a write it accepts then is lost; a wait that
//! no replica acknowledges is what shows it. A master that has listed no replica for
//! longer (its replicas were removed) is taken to have none again.

use std::sync::Mutex;
use std::time::Duration;

use redis::Value;
use tokio::time::Instant;

use crate::sync::lock;

/// How long a master that had replicas may list none before its invalidations stop
/// waiting for one: longer than the old master of a graceful failover keeps accepting
/// writes (about 10 s) before the sentinels demote it.
pub(crate) const ALONE: Duration = Duration::from_secs(30);

/// A server's `ROLE`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
    /// A master, with this many replicas connected.
    Master { replicas: usize },
    /// A replica or a sentinel, or a reply that is not a `ROLE`'s.
    Other,
}

impl Role {
    /// Reads a `ROLE` reply: `["master", offset, [[ip, port, offset], ...]]` for a master.
    pub(crate) fn read(reply: &Value) -> Role {
        let Value::Array(items) = reply else {
            return Role::Other;
        };
        match items.as_slice() {
            [Value::BulkString(role), _, Value::Array(replicas), ..] if role == b"master" => Role::Master {
                replicas: replicas.len(),
            },
            _ => Role::Other,
        }
    }

    /// The connected replicas of a master; 0 for any other role.
    pub(crate) fn replicas(self) -> usize {
        match self {
            Role::Master { replicas } => replicas,
            Role::Other => 0,
        }
    }
}

/// What an invalidation is sent with, and so what its `Ok` means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Durability {
    /// The server refused `ROLE` (a proxy without it, a user not granted it): the write
    /// alone, confirmed by its reply.
    Unchecked,
    /// `ROLE`: the server that took the write is a master (one without replicas).
    Mastered,
    /// `WAIT 1` and `ROLE`: a master took it and a replica acknowledged it.
    Replicated,
}

/// Whether the current master's invalidations wait for a replica.
#[derive(Debug, Default)]
pub(crate) struct Replicas {
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    /// The server answered `ROLE`.
    known: bool,
    expected: bool,
    /// Since when a master expected to have replicas has listed none.
    alone_since: Option<Instant>,
}

impl Replicas {
    /// A new connection, to a master that lists `replicas` (`None`: it refused `ROLE`).
    pub(crate) fn connected(&self, replicas: Option<usize>) {
        *lock(&self.state) = State {
            known: replicas.is_some(),
            expected: replicas.is_some_and(|replicas| replicas > 0),
            alone_since: None,
        };
    }

    /// An invalidation's `ROLE` listed `replicas`.
    pub(crate) fn saw(&self, replicas: usize) {
        let mut state = lock(&self.state);
        if replicas > 0 {
            state.expected = true;
            state.alone_since = None;
        } else if state.expected {
            let since = *state.alone_since.get_or_insert_with(Instant::now);
            if since.elapsed() >= ALONE {
                state.expected = false;
                state.alone_since = None;
            }
        }
    }

    /// What invalidations are sent with now.
    pub(crate) fn durability(&self) -> Durability {
        let state = lock(&self.state);
        match (state.known, state.expected) {
            (false, _) => Durability::Unchecked,
            (true, false) => Durability::Mastered,
            (true, true) => Durability::Replicated,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bulk(s: &str) -> Value {
        Value::BulkString(s.as_bytes().to_vec())
    }

    #[test]
    fn role_replies_are_read() {
        let replica = Value::Array(vec![bulk("127.0.0.1"), bulk("6380"), bulk("42")]);
        let master = Value::Array(vec![bulk("master"), Value::Int(42), Value::Array(vec![replica])]);
        assert_eq!(Role::read(&master), Role::Master { replicas: 1 });
        let alone = Value::Array(vec![bulk("master"), Value::Int(0), Value::Array(vec![])]);
        assert_eq!(Role::read(&alone), Role::Master { replicas: 0 });
        let slave = Value::Array(vec![
            bulk("slave"),
            bulk("127.0.0.1"),
            Value::Int(6379),
            bulk("connected"),
            Value::Int(42),
        ]);
        assert_eq!(Role::read(&slave), Role::Other);
        assert_eq!(Role::read(&Value::Nil), Role::Other);
    }

    #[tokio::test(start_paused = true)]
    async fn a_master_that_had_replicas_keeps_waiting_until_it_has_been_alone_a_while() {
        let replicas = Replicas::default();
        replicas.connected(Some(0));
        assert_eq!(replicas.durability(), Durability::Mastered);
        replicas.saw(1);
        assert_eq!(
            replicas.durability(),
            Durability::Replicated,
            "a replica seen later counts"
        );
        replicas.saw(0);
        tokio::time::advance(ALONE - Duration::from_secs(1)).await;
        replicas.saw(0);
        assert_eq!(
            replicas.durability(),
            Durability::Replicated,
            "the replica may have just been promoted"
        );
        tokio::time::advance(Duration::from_secs(1)).await;
        replicas.saw(0);
        assert_eq!(replicas.durability(), Durability::Mastered, "alone for {ALONE:?}");
        replicas.connected(Some(2));
        assert_eq!(replicas.durability(), Durability::Replicated);
        replicas.connected(None);
        assert_eq!(replicas.durability(), Durability::Unchecked, "no ROLE");
    }
}
