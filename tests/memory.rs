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
