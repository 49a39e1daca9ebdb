//! The cached reads and the write that invalidates them: the whole of the caching.
//!
//! Each fn wraps the query of the same name in `db.rs`. They use the cache installed at
//! start (`redis_cached::install`), under the prefix `catalog:`; with `CATALOG_CACHE=off`
//! the routes call the queries directly instead.

use redis_cached::{redis_cached, redis_invalidate};

use crate::db::{CategoryProducts, Db, Product, ProductChange, UpdateError, Updated};

/// Product `id`, kept for 5 minutes under `catalog:{product:<id>}`. One load per id
/// across every instance (`lock`); an id with no product is kept as "not found" too
/// (`negative`, for a minute), so unknown ids do not reach the database each time.
#[redis_cached(key = "product:<id>", ttl = 300, lock, negative)]
pub(crate) async fn product(db: &Db, id: i64) -> Result<Option<Product>, sqlx::Error> {
    db.product(id).await
}

/// Category `id` with its products, kept for a minute and tagged `category:<id>`: a
/// write to any product of the category invalidates the tag, and with it this listing,
/// in one write to Redis.
#[redis_cached(key = "category:<id>/products", ttl = 60, lock, negative, tags = ["category:<id>"])]
pub(crate) async fn category_products(db: &Db, id: i64) -> Result<Option<CategoryProducts>, sqlx::Error> {
    db.category_products(id).await
}

/// Updates product `id` and, once the transaction has committed, evicts the product and
/// invalidates the listings of the category it was in and of the one it is in now. The
/// old category is known only from the row the update replaced: the tags name the
/// result's fields (`<return...>`), rendered after the fn succeeded.
#[redis_invalidate(
    key = "product:<id>",
    tags = ["category:<return.before.category>", "category:<return.after.category>"]
)]
pub(crate) async fn update_product(db: &Db, id: i64, change: &ProductChange) -> Result<Updated, UpdateError> {
    db.update_product(id, change).await
}
