//! The HTTP routes: each handler asks the cached fn, or with `CATALOG_CACHE=off` the
//! database directly, and turns the answer into a response.

use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use metrics_exporter_prometheus::PrometheusHandle;
use redis_cached::Cache;
use serde_json::json;

use crate::cached;
use crate::config::CacheMode;
use crate::db::{Db, ProductChange, UpdateError};

/// What every handler shares.
#[derive(Debug, Clone)]
pub(crate) struct App {
    pub(crate) db: Db,
    /// The installed cache (for its stats); `None` with `CATALOG_CACHE=off`.
    pub(crate) cache: Option<Cache>,
    pub(crate) mode: CacheMode,
    pub(crate) metrics: PrometheusHandle,
}

/// The service's routes.
pub(crate) fn router(app: App) -> Router {
    Router::new()
        .route("/products/{id}", get(product).put(update_product))
        .route("/categories/{id}/products", get(category_products))
        .route("/stats", get(stats))
        .route("/metrics", get(metrics))
        .with_state(app)
}

/// `GET /products/{id}`: the product, or 404.
async fn product(State(app): State<App>, Path(id): Path<i64>) -> Response {
    let found = if app.cache.is_some() {
        cached::product(&app.db, id).await
    } else {
        app.db.product(id).await
    };
    match found {
        Ok(Some(product)) => Json(product).into_response(),
        Ok(None) => not_found("no such product"),
        Err(error) => database_error(&error),
    }
}

/// `GET /categories/{id}/products`: the category and its products, or 404.
async fn category_products(State(app): State<App>, Path(id): Path<i64>) -> Response {
    let found = if app.cache.is_some() {
        cached::category_products(&app.db, id).await
    } else {
        app.db.category_products(id).await
    };
    match found {
        Ok(Some(listing)) => Json(listing).into_response(),
        Ok(None) => not_found("no such category"),
        Err(error) => database_error(&error),
    }
}

/// `PUT /products/{id}` with `{"name": ..., "price": ..., "category": ...}`: the product
/// as written, or 404 (no such product) or 422 (no such category).
async fn update_product(State(app): State<App>, Path(id): Path<i64>, Json(change): Json<ProductChange>) -> Response {
    let updated = if app.cache.is_some() {
        cached::update_product(&app.db, id, &change).await
    } else {
        app.db.update_product(id, &change).await
    };
    match updated {
        Ok(updated) => Json(updated.after).into_response(),
        Err(UpdateError::NoSuchProduct) => not_found("no such product"),
        Err(UpdateError::NoSuchCategory) => (
            StatusCode::UNPROCESSABLE_ENTITY,
            Json(json!({ "error": "no such category" })),
        )
            .into_response(),
        Err(UpdateError::Db(error)) => database_error(&error),
    }
}

/// `GET /stats`: the cache's counters with their hit rate, whether Redis is answering,
/// Redis's own stats with their hit rate (`null` when it cannot be asked), and the number
/// of database queries this instance made. `cache`, `available` and `redis` are `null`
/// with the cache off.
async fn stats(State(app): State<App>) -> Json<serde_json::Value> {
    let (cache, available, redis) = match &app.cache {
        Some(cache) => {
            let stats = cache.stats();
            let redis = cache.server_stats().await.ok().map(|server| {
                let mut fields = to_value(&server);
                fields["hit_rate"] = json!(server.hit_rate());
                fields
            });
            let mut counters = to_value(&stats);
            counters["hit_rate"] = json!(stats.hit_rate());
            (Some(counters), Some(cache.available()), redis)
        }
        None => (None, None, None),
    };
    Json(json!({
        "mode": app.mode.to_string(),
        "cache": cache,
        "available": available,
        "redis": redis,
        "database": { "queries": app.db.queries() },
    }))
}

fn to_value(value: &impl serde::Serialize) -> serde_json::Value {
    serde_json::to_value(value).unwrap_or_default()
}

/// `GET /metrics`: every metric recorded in this process, in Prometheus's text format.
async fn metrics(State(app): State<App>) -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        app.metrics.render(),
    )
        .into_response()
}

fn not_found(what: &str) -> Response {
    (StatusCode::NOT_FOUND, Json(json!({ "error": what }))).into_response()
}

fn database_error(error: &sqlx::Error) -> Response {
    tracing::error!(%error, "database error");
    (
        StatusCode::INTERNAL_SERVER_ERROR,
        Json(json!({ "error": "database error" })),
    )
        .into_response()
}
