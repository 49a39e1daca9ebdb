// Each return shape: `T`, `Option<T>`, `Result<T, E>`, `io::Result<T>`, `Result<Option<T>, E>`.

use redis_cached::{Cache, redis_cached};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Product {
    id: u64,
}

#[derive(Debug, PartialEq)]
struct DbError;

struct Db {
    cache: Cache,
}

impl Db {
    #[redis_cached(key = "plain:<id>", ttl = 60, cache = self.cache)]
    async fn plain(&self, id: u64) -> Product {
        Product { id }
    }

    #[redis_cached(key = "option:<id>", ttl = 60, negative, cache = self.cache)]
    async fn option(&self, id: u64) -> Option<Product> {
        (id != 0).then_some(Product { id })
    }

    #[redis_cached(key = "result:<id>", ttl = 60, cache = self.cache)]
    async fn result(&self, id: u64) -> Result<Product, DbError> {
        if id == 0 { Err(DbError) } else { Ok(Product { id }) }
    }

    #[redis_cached(key = "io:<id>", ttl = 60, cache = self.cache)]
    async fn io(&self, id: u64) -> std::io::Result<Product> {
        Ok(Product { id })
    }

    #[redis_cached(key = "result_option:<id>", ttl = 60, negative, cache = self.cache)]
    async fn result_option(&self, id: u64) -> Result<Option<Product>, DbError> {
        Ok((id != 0).then_some(Product { id }))
    }
}

fn main() {
    let db = Db {
        cache: Cache::in_memory(),
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        assert_eq!(db.plain(1).await, Product { id: 1 });
        assert_eq!(db.option(2).await, Some(Product { id: 2 }));
        assert_eq!(db.option(0).await, None);
        assert_eq!(db.result(3).await, Ok(Product { id: 3 }));
        assert_eq!(db.result(0).await, Err(DbError));
        assert_eq!(db.io(4).await.unwrap(), Product { id: 4 });
        assert_eq!(db.result_option(5).await, Ok(Some(Product { id: 5 })));
        assert_eq!(db.result_option(0).await, Ok(None));
    });
}
