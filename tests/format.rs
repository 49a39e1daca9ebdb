//! The published format (FORMAT.md), read as another language reads it: the raw bytes
//! from Redis, decoded by `tests/format/read_value.py` (JSON, Python's standard library
//! only) or, for MessagePack, by rmp-serde once the envelope is stripped by hand.

mod support;

use std::io::{Cursor, Write};
use std::process::{Command, Stdio};

use redis::Commands;
use redis_cached::{Cache, redis_cached};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use support::RedisServer;

/// A value with most of serde's shapes: nested, optional, enum, float, non-ASCII text.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Product {
    id: u64,
    name: String,
    price: f64,
    labels: Vec<String>,
    note: Option<String>,
    kind: Kind,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
enum Kind {
    Lamp,
    Chair { legs: u8 },
}

fn lamp(id: u64) -> Product {
    Product {
        id,
        name: "Lampe « Nordique » \"N°1\"\n".to_owned(),
        price: 19.99,
        labels: vec!["light".to_owned(), "ø 30 cm".to_owned()],
        note: None,
        kind: Kind::Chair { legs: 3 },
    }
}

/// Product 0 does not exist.
fn find(id: u64) -> Option<Product> {
    (id != 0).then(|| lamp(id))
}

struct Shop {
    cache: Cache,
}

impl Shop {
    #[redis_cached(key = "product:<id>", ttl = 60, negative, codec = "json", version = 3, cache = self.cache)]
    async fn product_json(&self, id: u64) -> Option<Product> {
        find(id)
    }

    #[redis_cached(key = "product-mp:<id>", ttl = 60, codec = "msgpack", version = 3, cache = self.cache)]
    async fn product_msgpack(&self, id: u64) -> Option<Product> {
        find(id)
    }

    #[redis_cached(
        key = "product-tagged:<id>",
        ttl = 60,
        stale = "1m",
        codec = "json",
        tags = ["catalog", "product:<id>"],
        cache = self.cache
    )]
    async fn product_tagged(&self, id: u64) -> Option<Product> {
        find(id)
    }
}

async fn shop(redis: &RedisServer) -> Shop {
    Shop {
        cache: redis.cache("shop:").await,
    }
}

fn raw(redis: &RedisServer, key: &str) -> Vec<u8> {
    let bytes: Option<Vec<u8>> = redis.conn().get(key).unwrap();
    bytes.unwrap_or_else(|| panic!("nothing stored under {key}"))
}

const READER: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/format/read_value.py");

/// What the Python reader prints for `entry`, read as a value of `Product`.
fn read_in_python(entry: &[u8], version: &str, tag_versions: &[String]) -> String {
    let type_name = std::any::type_name::<Product>();
    let mut child = Command::new("python3")
        .arg(READER)
        .arg(type_name)
        .arg(version)
        .args(tag_versions)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run `python3` ({e}); `cargo xtask test` installs it"));
    child.stdin.take().unwrap().write_all(entry).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "the reader failed: {out:?}");
    String::from_utf8(out.stdout).unwrap().trim_end().to_owned()
}

/// The fingerprint as FORMAT.md defines it: FNV-1a 64 of the type name, folded to 32 bits.
fn fingerprint(type_name: &str) -> u32 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in type_name.bytes() {
        h ^= u64::from(byte);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    (h ^ (h >> 32)) as u32
}

#[tokio::test]
async fn a_json_value_reads_back_in_python_as_the_same_json() {
    let redis = RedisServer::start();
    let shop = shop(&redis).await;
    assert_eq!(shop.product_json(7).await, Some(lamp(7)));
    assert_eq!(shop.product_json_key(7), "shop:{product:7}");

    let printed = read_in_python(&raw(&redis, "shop:{product:7}"), "3", &[]);
    let read: Value = serde_json::from_str(&printed).unwrap_or_else(|e| panic!("{e}: {printed}"));
    assert_eq!(read, serde_json::to_value(lamp(7)).unwrap());
}

#[tokio::test]
async fn a_negative_entry_reads_in_python_as_not_found() {
    let redis = RedisServer::start();
    let shop = shop(&redis).await;
    assert_eq!(shop.product_json(0).await, None);
    assert_eq!(read_in_python(&raw(&redis, "shop:{product:0}"), "3", &[]), "not found");
}

#[tokio::test]
async fn a_tagged_value_reads_in_python_only_under_the_current_tag_versions() {
    let redis = RedisServer::start();
    let shop = shop(&redis).await;
    assert_eq!(shop.product_tagged(7).await, Some(lamp(7)));
    let keys = ["shop:{product-tagged:7}", "shop:tag:{catalog}", "shop:tag:{product:7}"];
    let read = || {
        let mut replies: Vec<Option<Vec<u8>>> = redis.conn().mget(&keys[..]).unwrap();
        let entry = replies.remove(0).expect("the value is stored");
        let versions: Vec<String> = replies
            .into_iter()
            .map(|v| String::from_utf8(v.unwrap_or_default()).unwrap())
            .collect();
        read_in_python(&entry, "0", &versions)
    };
    let printed = read();
    let value: Value = serde_json::from_str(&printed).unwrap_or_else(|e| panic!("{e}: {printed}"));
    assert_eq!(value, serde_json::to_value(lamp(7)).unwrap());

    // The bytes stay in Redis, but they were loaded under the tag's old version.
    shop.cache.invalidate_tag("catalog").await.unwrap();
    assert_eq!(read(), "miss: loaded under other tag versions");
}

#[tokio::test]
async fn a_reader_misses_what_it_cannot_vouch_for() {
    let redis = RedisServer::start();
    let shop = shop(&redis).await;
    shop.product_json(7).await;
    let entry = raw(&redis, "shop:{product:7}");
    assert!(read_in_python(&entry, "3", &[]).starts_with('{'));

    let mut format_1 = entry.clone();
    format_1[0] = 0xC1;
    let mut unknown_flag = entry.clone();
    unknown_flag[1] |= 0x40;
    let cases: [(&str, &[u8], &str); 6] = [
        ("another version", &entry, "4"),
        ("another format", &format_1, "3"),
        ("unknown flags", &unknown_flag, "3"),
        ("the entry ends inside its header", &entry[..5], "3"),
        ("no end marker: the value is cut short", &entry[..entry.len() - 1], "3"),
        ("bytes after the value", &[&entry[..], b" \n"].concat(), "3"),
    ];
    for (why, bytes, version) in cases {
        assert_eq!(read_in_python(bytes, version, &[]), format!("miss: {why}"));
    }
    // The same bytes, read as another value type.
    let mut other_type = entry.clone();
    other_type[3..7].copy_from_slice(&fingerprint("format::Other").to_le_bytes());
    assert_eq!(read_in_python(&other_type, "3", &[]), "miss: another value type");
}

/// No MessagePack library in Python's standard library: the envelope is stripped here,
/// field by field as FORMAT.md describes it, and the payload handed to rmp-serde alone.
#[tokio::test]
async fn a_msgpack_value_is_one_messagepack_value_after_the_documented_header() {
    let redis = RedisServer::start();
    let shop = shop(&redis).await;
    assert_eq!(shop.product_msgpack(7).await, Some(lamp(7)));
    let entry = raw(&redis, "shop:{product-mp:7}");

    let (header, payload) = entry.split_at(7);
    assert_eq!(header[0], 0xC2, "format 2");
    assert_eq!(
        header[1],
        1 | (2 << 2),
        "a value, codec MessagePack, not tagged or timed"
    );
    assert_eq!(header[2], 3, "version 3: one LEB128 byte");
    let type_name = std::any::type_name::<Product>();
    assert_eq!(header[3..7], fingerprint(type_name).to_le_bytes(), "{type_name}");

    let mut cursor = Cursor::new(payload);
    let read: Product = rmp_serde::from_read(&mut cursor).unwrap();
    assert_eq!(read, lamp(7));
    assert_eq!(cursor.position(), payload.len() as u64, "one value, nothing after it");
    // Structs are maps keyed by field name, so a schemaless reader sees the JSON's shape.
    let schemaless: Value = rmp_serde::from_slice(payload).unwrap();
    assert_eq!(schemaless, serde_json::to_value(lamp(7)).unwrap());
}
