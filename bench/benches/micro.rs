//! Micro benchmarks: key rendering and the stored envelope.
//!
//! ```text
//! cargo bench -p redis-cached-bench --bench micro
//! ```

use criterion::{Criterion, criterion_group, criterion_main};

fn key_rendering(c: &mut Criterion) {
    c.bench_function("render `product:<id>`", |b| {
        b.iter(|| {
            let mut key = redis_cached::KeyBuilder::new(16, "");
            key.literal("product:");
            key.value(std::hint::black_box(&42u64));
            key.finish()
        });
    });
}

criterion_group!(benches, key_rendering);
criterion_main!(benches);
