//! The in-memory store shows the same behaviour as Redis.

mod behaviour;
mod support;

use std::sync::Arc;

use behaviour::{Db, behaviour_tests};
use redis_cached::Cache;

async fn memory_db() -> ((), Arc<Db>) {
    ((), Arc::new(Db::new(Cache::in_memory())))
}

behaviour_tests!(memory_db());

/// A value the codec cannot read back is reported once per fn, loudly, with the fix.
#[tokio::test]
async fn an_unstorable_value_is_reported_once_with_the_fix() {
    let (logs, _guard) = support::logs::Logs::capture();
    let db = Db::new(Cache::in_memory());
    for _ in 0..3 {
        db.sparse(1).await;
    }
    let errors: Vec<String> = logs.lines().into_iter().filter(|l| l.starts_with("ERROR")).collect();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        errors[0].contains("`sparse`") && errors[0].contains(r#"codec = "msgpack""#),
        "{}",
        errors[0]
    );
    assert_eq!(db.cache.stats().unstorable, 3);
}

#[test]
fn an_in_memory_caches_debug_is_one_line() {
    assert_eq!(
        format!("{:?}", Cache::in_memory()),
        r#"Cache { prefix: "", topology: "in-memory", connected: true }"#
    );
}
