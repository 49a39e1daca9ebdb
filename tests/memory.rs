//! The in-memory store shows the same behaviour as Redis.

mod behaviour;
mod support;

use std::sync::Arc;
use std::time::Duration;

use behaviour::{Db, Sparse, behaviour_tests};
use redis_cached::{Cache, Policy};

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

/// A policy built by hand without a name is logged as `unnamed`, never as an empty field.
#[tokio::test]
async fn a_policy_without_a_name_is_logged_as_unnamed() {
    static NAMELESS: Policy = Policy::new("", Duration::from_secs(60));
    let (logs, _guard) = support::logs::Logs::capture();
    let cache = Cache::in_memory();
    let loaded = cache
        .get_or_load(&NAMELESS, "sparse:1", async {
            Ok::<_, ()>(Some(Sparse { id: 1, note: None }))
        })
        .await;
    assert_eq!(loaded, Ok(Some(Sparse { id: 1, note: None })));
    let errors: Vec<String> = logs.lines().into_iter().filter(|l| l.starts_with("ERROR")).collect();
    assert_eq!(errors.len(), 1, "{:?}", logs.lines());
    assert!(errors[0].contains(r#"function="unnamed""#), "{}", errors[0]);
    assert_eq!(logs.empty_fields(), Vec::<String>::new());
}

#[test]
fn an_in_memory_caches_debug_is_one_line() {
    assert_eq!(
        format!("{:?}", Cache::in_memory()),
        r#"Cache { prefix: "", topology: "in-memory", connected: true }"#
    );
}
