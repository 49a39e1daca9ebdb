//! The database: the pool, the migrations, and every query the service makes.
//!
//! One code path for SQLite and Postgres: an `sqlx::AnyPool`, whose driver is picked by
//! the URL's scheme at run time, and SQL that both accept (`$1` placeholders, `BIGINT`
//! and `TEXT` columns, no `RETURNING`, no `FOR UPDATE`).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};
use sqlx::any::AnyPoolOptions;
use sqlx::migrate::MigrateDatabase;
use sqlx::{Any, AnyPool};

/// A product, as stored and as served.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, sqlx::FromRow)]
pub(crate) struct Product {
    pub(crate) id: i64,
    pub(crate) name: String,
    /// In cents.
    pub(crate) price: i64,
    /// The id of its category.
    pub(crate) category: i64,
}

/// A category.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, sqlx::FromRow)]
pub(crate) struct Category {
    pub(crate) id: i64,
    pub(crate) name: String,
}

/// A category with its products, by id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct CategoryProducts {
    pub(crate) category: Category,
    pub(crate) products: Vec<Product>,
}

/// What `PUT /products/{id}` writes: the new state of the product.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct ProductChange {
    pub(crate) name: String,
    /// In cents.
    pub(crate) price: i64,
    /// The id of its (new) category.
    pub(crate) category: i64,
}

/// A product before and after an update: the caches of both categories are affected.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Updated {
    pub(crate) before: Product,
    pub(crate) after: Product,
}

/// Why an update was not made.
#[derive(Debug)]
pub(crate) enum UpdateError {
    /// No product has this id.
    NoSuchProduct,
    /// The change names a category that does not exist.
    NoSuchCategory,
    /// The database failed.
    Db(sqlx::Error),
}

impl std::fmt::Display for UpdateError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            UpdateError::NoSuchProduct => f.write_str("no such product"),
            UpdateError::NoSuchCategory => f.write_str("no such category"),
            UpdateError::Db(error) => write!(f, "database error: {error}"),
        }
    }
}

impl std::error::Error for UpdateError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            UpdateError::Db(error) => Some(error),
            UpdateError::NoSuchProduct | UpdateError::NoSuchCategory => None,
        }
    }
}

impl From<sqlx::Error> for UpdateError {
    fn from(error: sqlx::Error) -> Self {
        UpdateError::Db(error)
    }
}

const PRODUCT_COLUMNS: &str = "SELECT id, name, price, category_id AS category FROM products";

/// The pool, and a count of the queries made through it (shown by `GET /stats`, so a
/// reader sees what the cache spared the database).
#[derive(Debug, Clone)]
pub(crate) struct Db {
    pool: AnyPool,
    queries: Arc<AtomicU64>,
}

impl Db {
    /// Connects to `url` (`sqlite://...` or `postgres://...`), creating a SQLite file
    /// that does not exist yet, and runs the migrations (schema and seed data).
    ///
    /// # Errors
    ///
    /// The database cannot be reached or created, or a migration fails.
    pub(crate) async fn connect(url: &str) -> Result<Db, sqlx::Error> {
        sqlx::any::install_default_drivers();
        if url.starts_with("sqlite:") && !Any::database_exists(url).await? {
            Any::create_database(url).await?;
        }
        let pool = AnyPoolOptions::new().max_connections(16).connect(url).await?;
        sqlx::migrate!().run(&pool).await?;
        Ok(Db {
            pool,
            queries: Arc::new(AtomicU64::new(0)),
        })
    }

    /// The number of queries sent so far (a transaction's statements count one each).
    pub(crate) fn queries(&self) -> u64 {
        self.queries.load(Ordering::Relaxed)
    }

    fn count(&self, statements: u64) {
        self.queries.fetch_add(statements, Ordering::Relaxed);
    }

    /// The product `id`, if there is one.
    pub(crate) async fn product(&self, id: i64) -> Result<Option<Product>, sqlx::Error> {
        self.count(1);
        sqlx::query_as::<_, Product>(&format!("{PRODUCT_COLUMNS} WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await
    }

    /// The category `id` with its products, if there is such a category.
    pub(crate) async fn category_products(&self, id: i64) -> Result<Option<CategoryProducts>, sqlx::Error> {
        self.count(1);
        let Some(category) = sqlx::query_as::<_, Category>("SELECT id, name FROM categories WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?
        else {
            return Ok(None);
        };
        self.count(1);
        let products = sqlx::query_as::<_, Product>(&format!("{PRODUCT_COLUMNS} WHERE category_id = $1 ORDER BY id"))
            .bind(id)
            .fetch_all(&self.pool)
            .await?;
        Ok(Some(CategoryProducts { category, products }))
    }

    /// Writes `change` to product `id` in one transaction and returns the product
    /// before and after.
    ///
    /// # Errors
    ///
    /// [`UpdateError::NoSuchProduct`], [`UpdateError::NoSuchCategory`], or the
    /// database's error; nothing is written then.
    pub(crate) async fn update_product(&self, id: i64, change: &ProductChange) -> Result<Updated, UpdateError> {
        let mut tx = self.pool.begin().await?;
        // Lock the row before reading it, so `before` is the state this update replaces
        // even with concurrent updates (`FOR UPDATE` is Postgres only; a write locks the
        // row in Postgres and the database in SQLite).
        self.count(1);
        let locked = sqlx::query("UPDATE products SET id = id WHERE id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        if locked.rows_affected() == 0 {
            return Err(UpdateError::NoSuchProduct);
        }
        self.count(1);
        let before = sqlx::query_as::<_, Product>(&format!("{PRODUCT_COLUMNS} WHERE id = $1"))
            .bind(id)
            .fetch_one(&mut *tx)
            .await?;
        self.count(1);
        let category = sqlx::query_as::<_, Category>("SELECT id, name FROM categories WHERE id = $1")
            .bind(change.category)
            .fetch_optional(&mut *tx)
            .await?;
        if category.is_none() {
            return Err(UpdateError::NoSuchCategory);
        }
        self.count(1);
        sqlx::query("UPDATE products SET name = $1, price = $2, category_id = $3 WHERE id = $4")
            .bind(&change.name)
            .bind(change.price)
            .bind(change.category)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        let after = Product {
            id,
            name: change.name.clone(),
            price: change.price,
            category: change.category,
        };
        Ok(Updated { before, after })
    }
}
