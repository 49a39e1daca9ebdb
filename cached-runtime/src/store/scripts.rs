//! The Lua scripts of the Redis store. Each claim kind has its own set, composed from
//! the few lines in which a lease and a fence differ, so no script branches on the kind.
//!
//! Every claim script takes `KEYS = [value, claim]`; they share a hash tag, so one slot.
//! Scripts that announce publish the bytes they are given (see `announce`).

use std::sync::LazyLock;

use redis::Script;

/// The scripts that act on one kind of claim.
pub(super) struct ClaimScripts {
    /// Returns the stored value unless it is the expected one; else takes the claim.
    /// ARGV: token, claim ms, value limit, expects bytes (1/0), expected bytes.
    /// Reply: `{1, value, pttl}`, `{2, over expected (1/0)}` (won) or `{3, held ms}`.
    pub(super) acquire: Script,
    /// Writes the value only while the claim holds, gives the claim up, announces.
    /// ARGV: token, bytes, ttl ms, channel, announcement. Reply: 1 if stored.
    pub(super) fill: Script,
    /// Deletes the value only while the claim holds, gives the claim up, announces.
    /// ARGV: token, channel, announcement. Reply: 1 if it held.
    pub(super) clear: Script,
    /// Extends the claim while it holds. ARGV: token, ms. Reply: 1 if it held.
    pub(super) extend: Script,
    /// Gives the claim up while it holds (a lease announces it). ARGV: token, channel,
    /// announcement. Reply: 1 if it held.
    pub(super) release: Script,
}

/// The lines in which the claim kinds differ.
struct Kind {
    /// True while the claim (ARGV[1]) holds.
    ours: &'static str,
    /// Gives the claim up.
    give_up: &'static str,
    /// Takes the claim; returns the reply of `acquire` (`over` is set).
    take: &'static str,
    /// After a release: tell the waiters (a fence has none).
    announce_release: &'static str,
}

/// A lease request sent twice with one token (a cluster client re-sends a request whose
/// connection dropped before the reply) wins both times: the second finds its own lease.
const LEASE: Kind = Kind {
    ours: "redis.call('GET', KEYS[2]) == ARGV[1]",
    give_up: "redis.call('DEL', KEYS[2])",
    take: r"
local holder = redis.call('GET', KEYS[2])
if holder == ARGV[1] then
  redis.call('PEXPIRE', KEYS[2], ARGV[2])
  return {2, over}
end
if not holder and redis.call('SET', KEYS[2], ARGV[1], 'PX', ARGV[2]) then return {2, over} end
local ttl = redis.call('PTTL', KEYS[2])
if ttl < 0 then
  redis.call('PEXPIRE', KEYS[2], ARGV[2])
  ttl = tonumber(ARGV[2])
end
return {3, ttl}",
    announce_release: "redis.call('PUBLISH', ARGV[2], ARGV[3])",
};

const FENCE: Kind = Kind {
    ours: "redis.call('SISMEMBER', KEYS[2], ARGV[1]) == 1",
    give_up: "redis.call('SREM', KEYS[2], ARGV[1])",
    take: r"
redis.call('SADD', KEYS[2], ARGV[1])
redis.call('PEXPIRE', KEYS[2], ARGV[2])
return {2, over}",
    announce_release: "",
};

/// A stored value larger than the limit could never be decoded (and would only be slow
/// to send): it counts as absent.
const ACQUIRE: &str = r"
local size = redis.call('STRLEN', KEYS[1])
local over = 0
if size > 0 and size <= tonumber(ARGV[3]) then
  local value = redis.call('GET', KEYS[1])
  if ARGV[4] == '0' or value ~= ARGV[5] then
    return {1, value, redis.call('PTTL', KEYS[1])}
  end
  over = 1
end
{take}
";

/// The value first, so a write refused under OOM leaves the claim for the release.
const FILL: &str = r"
if not ({ours}) then return 0 end
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
{give_up}
redis.call('PUBLISH', ARGV[4], ARGV[5])
return 1
";

const CLEAR: &str = r"
if not ({ours}) then return 0 end
redis.call('DEL', KEYS[1])
{give_up}
redis.call('PUBLISH', ARGV[2], ARGV[3])
return 1
";

const EXTEND: &str = r"
if not ({ours}) then return 0 end
return redis.call('PEXPIRE', KEYS[2], ARGV[2])
";

const RELEASE: &str = r"
if not ({ours}) then return 0 end
{give_up}
{announce_release}
return 1
";

fn compose(kind: &Kind) -> ClaimScripts {
    let script = |template: &str| {
        Script::new(
            &template
                .replace("{ours}", kind.ours)
                .replace("{give_up}", kind.give_up)
                .replace("{take}", kind.take)
                .replace("{announce_release}", kind.announce_release),
        )
    };
    ClaimScripts {
        acquire: script(ACQUIRE),
        fill: script(FILL),
        clear: script(CLEAR),
        extend: script(EXTEND),
        release: script(RELEASE),
    }
}

pub(super) static LEASE_SCRIPTS: LazyLock<ClaimScripts> = LazyLock::new(|| compose(&LEASE));
pub(super) static FENCE_SCRIPTS: LazyLock<ClaimScripts> = LazyLock::new(|| compose(&FENCE));

/// Invalidation. KEYS: value, lease, fence. ARGV: channel, announcement.
pub(super) static DELETE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local deleted = redis.call('DEL', KEYS[1], KEYS[2], KEYS[3])
redis.call('PUBLISH', ARGV[1], ARGV[2])
return deleted
",
    )
});

/// The current versions of tags, each kept for at least `life` from now (a tag in use
/// never expires under the values that carry it). With candidates, a tag that has no
/// version gets its candidate; without, it stays missing (nil).
/// KEYS: tags. ARGV: life ms, then one candidate version per tag, or none.
pub(super) static TAG_VERSIONS: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local versions = {}
for i, key in ipairs(KEYS) do
  local v = redis.call('GET', key)
  local candidate = ARGV[i + 1]
  if v then
    -- Only ever lengthened (PEXPIRE's GT option needs Redis 7).
    local left = redis.call('PTTL', key)
    if left >= 0 and left < tonumber(ARGV[1]) then redis.call('PEXPIRE', key, ARGV[1]) end
  elseif candidate then
    v = candidate
    redis.call('SET', key, v, 'PX', ARGV[1])
  end
  versions[i] = v
end
return versions
",
    )
});

/// A new version for a tag, announced. KEYS: tag. ARGV: version, ttl ms, channel,
/// announcement.
pub(super) static BUMP_TAG: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
redis.call('PUBLISH', ARGV[3], ARGV[4])
return 1
",
    )
});

#[cfg(test)]
mod tests {
    use super::*;

    /// A `redis-server` of this test's own on a free loopback port (the workspace's tests
    /// need one on the PATH); killed when dropped.
    struct Server(std::process::Child, u16);

    impl Server {
        fn start() -> Server {
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .map(|a| a.port())
                .expect("a free port");
            let child = std::process::Command::new("redis-server")
                .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", ""])
                .stdout(std::process::Stdio::null())
                .spawn()
                .expect("start redis-server (run the tests with `cargo xtask test`)");
            Server(child, port)
        }

        fn conn(&self) -> redis::Connection {
            let client = redis::Client::open(format!("redis://127.0.0.1:{}", self.1)).expect("url");
            for _ in 0..500 {
                if let Ok(conn) = client.get_connection() {
                    return conn;
                }
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            panic!("redis-server did not come up");
        }
    }

    impl Drop for Server {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }

    /// A cluster client re-sends a request whose connection dropped before its reply: the
    /// second lease request of one token must win too, or the caller would wait on its own
    /// lease until it expired.
    #[test]
    fn a_lease_request_sent_twice_with_one_token_wins_both_times() {
        let server = Server::start();
        let mut conn = server.conn();
        let mut acquire = |token: &str| -> redis::Value {
            LEASE_SCRIPTS
                .acquire
                .key("{k}")
                .key("{k}:lease")
                .arg(token)
                .arg(10_000)
                .arg(1024)
                .arg(0)
                .arg(&[] as &[u8])
                .invoke(&mut conn)
                .expect("run the script")
        };
        let won = redis::Value::Array(vec![redis::Value::Int(2), redis::Value::Int(0)]);
        assert_eq!(acquire("t1"), won);
        assert_eq!(acquire("t1"), won, "the same token again");
        assert!(
            matches!(acquire("t2"), redis::Value::Array(reply) if reply.first() == Some(&redis::Value::Int(3))),
            "another token finds it held"
        );
    }

    #[test]
    fn every_placeholder_is_filled() {
        for kind in [&LEASE, &FENCE] {
            for template in [ACQUIRE, FILL, CLEAR, EXTEND, RELEASE] {
                let composed = template
                    .replace("{ours}", kind.ours)
                    .replace("{give_up}", kind.give_up)
                    .replace("{take}", kind.take)
                    .replace("{announce_release}", kind.announce_release);
                assert!(!composed.contains('{') || composed.contains("return {"), "{composed}");
                assert!(!composed.contains("{ours}") && !composed.contains("{take}"));
            }
        }
    }
}
