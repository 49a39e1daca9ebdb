//! The caching patterns a team writes by hand, written faithfully as the baseline:
//! `get_or_set` (GET, parse JSON, on a miss load and `SET EX NX`) and
//! `get_or_set_locked` (`SET lock NX EX 10`; the others sleep 50 ms, GET once more, and
//! load themselves if the value is still not there).

use std::time::Duration;

use redis::AsyncCommands;
use redis::aio::MultiplexedConnection;
use serde::Serialize;
use serde::de::DeserializeOwned;

pub(crate) async fn get_or_set<T, F>(conn: &mut MultiplexedConnection, key: &str, ttl_secs: u64, load: F) -> T
where
    T: Serialize + DeserializeOwned,
    F: Future<Output = T>,
{
    if let Some(value) = read(conn, key).await {
        return value;
    }
    let value = load.await;
    write(conn, key, ttl_secs, &value, true).await;
    value
}

pub(crate) async fn get_or_set_locked<T, F>(conn: &mut MultiplexedConnection, key: &str, ttl_secs: u64, load: F) -> T
where
    T: Serialize + DeserializeOwned,
    F: Future<Output = T>,
{
    if let Some(value) = read(conn, key).await {
        return value;
    }
    let lock = format!("{key}:lock");
    let locked: Option<String> = redis::cmd("SET")
        .arg(&lock)
        .arg("1")
        .arg("NX")
        .arg("EX")
        .arg(10)
        .query_async(conn)
        .await
        .unwrap_or(None);
    if locked.is_some() {
        let value = load.await;
        write(conn, key, ttl_secs, &value, false).await;
        let _: redis::RedisResult<()> = conn.del(&lock).await;
        return value;
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
    if let Some(value) = read(conn, key).await {
        return value;
    }
    load.await
}

async fn read<T: DeserializeOwned>(conn: &mut MultiplexedConnection, key: &str) -> Option<T> {
    let bytes: Option<Vec<u8>> = conn.get(key).await.ok()?;
    serde_json::from_slice(&bytes?).ok()
}

async fn write<T: Serialize>(conn: &mut MultiplexedConnection, key: &str, ttl_secs: u64, value: &T, nx: bool) {
    let Ok(json) = serde_json::to_vec(value) else { return };
    let mut set = redis::cmd("SET");
    set.arg(key).arg(json).arg("EX").arg(ttl_secs);
    if nx {
        set.arg("NX");
    }
    let _: redis::RedisResult<Option<String>> = set.query_async(conn).await;
}
