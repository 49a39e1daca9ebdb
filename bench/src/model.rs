//! The value every scenario caches: a product of about 200 bytes.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Product {
    pub(crate) id: u64,
    pub(crate) sku: String,
    pub(crate) name: String,
    pub(crate) description: String,
    pub(crate) price_cents: i64,
    pub(crate) stock: u32,
    pub(crate) tags: Vec<String>,
}

pub(crate) fn product(id: u64) -> Product {
    Product {
        id,
        sku: format!("SKU-{id:08}"),
        name: format!("Adjustable desk lamp, model {id}"),
        description: "Warm white LED, aluminium arm with three joints, weighted base, \
                      USB-C powered, five brightness levels."
            .to_owned(),
        price_cents: 3_999,
        stock: 120,
        tags: vec!["lighting".to_owned(), "office".to_owned(), "led".to_owned()],
    }
}
