//! Micro benchmarks: key rendering and the stored envelope, per codec.
//!
//! ```text
//! cargo bench -p redis-cached-bench --bench micro
//! ```

use criterion::{Criterion, criterion_group, criterion_main};
use redis_cached::__private::{decode_envelope, encode_envelope};
use redis_cached::{Codec, KeyBuilder};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Product {
    id: u64,
    sku: String,
    name: String,
    description: String,
    price_cents: i64,
    stock: u32,
    tags: Vec<String>,
}

fn product() -> Product {
    Product {
        id: 42,
        sku: "SKU-00000042".to_owned(),
        name: "Adjustable desk lamp, model 42".to_owned(),
        description: "Warm white LED, aluminium arm with three joints, weighted base, USB-C powered, five \
                      brightness levels."
            .to_owned(),
        price_cents: 3_999,
        stock: 120,
        tags: vec!["lighting".to_owned(), "office".to_owned(), "led".to_owned()],
    }
}

fn key_rendering(c: &mut Criterion) {
    c.bench_function("key: render `product:<id>` (u64)", |b| {
        b.iter(|| {
            let mut key = KeyBuilder::new(16);
            key.literal("product:");
            key.value(std::hint::black_box(&42u64));
            key.finish()
        });
    });
    c.bench_function("key: render `pair:<a>:<b>` with escaping", |b| {
        b.iter(|| {
            let mut key = KeyBuilder::new(24);
            key.literal("pair:");
            key.value(std::hint::black_box("eu:west"));
            key.literal(":");
            key.value(std::hint::black_box("shoes {new}"));
            key.finish()
        });
    });
}

fn envelope(c: &mut Criterion) {
    let value = product();
    for codec in [Codec::Bincode, Codec::MsgPack, Codec::Json] {
        let bytes = encode_envelope(&value, codec, 1).expect("encodes");
        assert_eq!(decode_envelope::<Product>(&bytes, codec, 1), Some(value.clone()));
        c.bench_function(&format!("envelope: encode + read-back check, {}", codec.name()), |b| {
            b.iter(|| encode_envelope(std::hint::black_box(&value), codec, 1));
        });
        c.bench_function(&format!("envelope: decode, {}", codec.name()), |b| {
            b.iter(|| decode_envelope::<Product>(std::hint::black_box(&bytes), codec, 1));
        });
    }
}

criterion_group!(benches, key_rendering, envelope);
criterion_main!(benches);
