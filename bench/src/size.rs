//! Scenario 4: bytes stored in Redis per value, for each codec, against the codec's own
//! payload (the envelope's overhead) and the hand-written JSON pattern.

use redis::Commands;
use redis_cached::{Cache, redis_cached};

use crate::model::{Product, product};
use crate::report::Table;
use crate::seed;
use crate::server::Server;

struct Sizes {
    cache: Cache,
}

impl Sizes {
    #[redis_cached(key = "size-bincode:<id>", ttl = 600, cache = self.cache)]
    async fn bincode(&self, id: u64) -> Product {
        product(id)
    }

    #[redis_cached(key = "size-msgpack:<id>", ttl = 600, codec = "msgpack", cache = self.cache)]
    async fn msgpack(&self, id: u64) -> Product {
        product(id)
    }

    #[redis_cached(key = "size-json:<id>", ttl = 600, codec = "json", cache = self.cache)]
    async fn json(&self, id: u64) -> Product {
        product(id)
    }
}

pub(crate) async fn run(server: &Server) -> Table {
    let cache = server.cache().await;
    let sizes = Sizes { cache };
    sizes.bincode(1).await;
    sizes.msgpack(1).await;
    sizes.json(1).await;
    let client = redis::Client::open(server.url()).expect("url");
    let mut conn = client.get_multiplexed_async_connection().await.expect("connect");
    seed::get_or_set(&mut conn, "seed-size:1", 600, async { product(1) }).await;

    let value = product(1);
    let payloads = [
        (
            "bincode 2",
            sizes.bincode_key(1),
            bincode::serde::encode_to_vec(&value, bincode::config::standard())
                .expect("bincode")
                .len(),
        ),
        (
            "MessagePack (named)",
            sizes.msgpack_key(1),
            rmp_serde::to_vec_named(&value).expect("msgpack").len(),
        ),
        (
            "JSON",
            sizes.json_key(1),
            serde_json::to_vec(&value).expect("json").len(),
        ),
    ];
    let mut raw = server.conn();
    let mut table = Table::new(
        "Bytes stored per value",
        &["", "codec payload", "stored", "envelope overhead"],
    );
    for (name, key, payload) in payloads {
        let stored: usize = raw.strlen(&key).expect("STRLEN");
        table.row(vec![
            format!("`#[redis_cached]`, {name}"),
            payload.to_string(),
            stored.to_string(),
            format!("{} bytes", stored.saturating_sub(payload)),
        ]);
    }
    let seed: usize = raw.strlen("seed-size:1").expect("STRLEN");
    table.row(vec![
        "hand-written getOrSet, JSON".to_owned(),
        seed.to_string(),
        seed.to_string(),
        "0 bytes".to_owned(),
    ]);
    table
}
