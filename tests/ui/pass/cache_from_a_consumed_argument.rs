// `cache = ...` taken from an argument the body consumes: an owned `Arc` of the app's
// state, or `self` by value, as written and under `#[async_trait]` in either order. The
// cache is resolved before the body runs and holds no borrow of what it came from.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use async_trait::async_trait;
use redis_cached::{Cache, redis_cached};

struct AppState {
    cache: Cache,
    loads: AtomicUsize,
}

#[redis_cached(key = "state:<id>", ttl = 60, cache = state.cache)]
async fn from_state(state: Arc<AppState>, id: u64) -> u64 {
    state.loads.fetch_add(1, Ordering::SeqCst);
    id
}

#[derive(Clone)]
struct Client {
    cache: Arc<Cache>,
    base: Arc<u64>,
}

impl Client {
    #[redis_cached(key = "client:<id>", ttl = 60, cache = self.cache)]
    async fn into_value(self, id: u64) -> u64 {
        let client = self;
        *client.base + id
    }
}

#[async_trait]
trait Consume {
    async fn consume(self, id: u64) -> u64;
}

#[derive(Clone)]
struct Outside(Client);

#[async_trait]
#[redis_cached]
impl Consume for Outside {
    #[redis_cached(key = "outside:<id>", ttl = 60, cache = self.0.cache)]
    async fn consume(self, id: u64) -> u64 {
        self.0.into_value(id).await
    }
}

#[derive(Clone)]
struct Inside(Client);

#[redis_cached]
#[async_trait]
impl Consume for Inside {
    #[redis_cached(key = "inside:<id>", ttl = 60, cache = self.0.cache)]
    async fn consume(self, id: u64) -> u64 {
        self.0.into_value(id).await
    }
}

fn main() {
    let state = Arc::new(AppState {
        cache: Cache::in_memory(),
        loads: AtomicUsize::new(0),
    });
    let client = Client {
        cache: Arc::new(Cache::in_memory()),
        base: Arc::new(10),
    };
    assert_eq!(from_state_key(Arc::clone(&state), 1), "{state:1}");
    assert_eq!(client.into_value_key(1), "{client:1}");
    assert_eq!(Outside(client.clone()).consume_key(1), "{outside:1}");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        assert_eq!(from_state(Arc::clone(&state), 1).await, 1);
        assert_eq!(from_state(Arc::clone(&state), 1).await, 1);
        assert_eq!(state.loads.load(Ordering::SeqCst), 1, "the second call is a hit");
        assert_eq!(client.clone().into_value(1).await, 11);
        assert_eq!(Outside(client.clone()).consume(2).await, 12);
        assert_eq!(Inside(client.clone()).consume(3).await, 13);
    });
}
