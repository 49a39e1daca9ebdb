// The expansion names everything by absolute path: it compiles without the prelude and
// beside local items named like the ones it uses.

#[derive(Clone, serde::Serialize, serde::Deserialize)]
pub struct Product {
    pub id: u64,
}

mod shadowed {
    #![no_implicit_prelude]

    #[allow(dead_code)]
    struct Result;
    #[allow(dead_code)]
    struct Option;
    #[allow(dead_code)]
    struct String;
    #[allow(dead_code)]
    struct Vec;
    #[allow(dead_code)]
    struct Box;
    #[allow(dead_code)]
    struct Cache;
    #[allow(dead_code)]
    struct Duration;
    #[allow(dead_code)]
    fn format() {}
    mod core {}
    mod std {}
    mod redis_cached {}

    pub(crate) struct Query {
        pub(crate) id: u64,
    }

    pub(crate) struct Store {
        pub(crate) cache: ::redis_cached::Cache,
    }

    #[::redis_cached::redis_cached(key = "product:<query.id>", ttl = 60, lock, negative, codec = "json")]
    pub(crate) async fn product(
        query: &Query,
    ) -> ::std::result::Result<::std::option::Option<super::Product>, ::std::io::Error> {
        ::std::result::Result::Ok(::std::option::Option::Some(super::Product { id: query.id }))
    }

    #[::redis_cached::redis_cached(key = "count", ttl = 60)]
    pub(crate) async fn count() -> u64 {
        3
    }

    pub(crate) struct Moved {
        pub(crate) before: u64,
        pub(crate) after: u64,
    }

    #[::redis_cached::redis_invalidate(key = "count", tags = ["n:<return.before>", "q:<query.id>:<return.after>"])]
    pub(crate) async fn moved(query: &Query) -> ::std::result::Result<Moved, ::std::io::Error> {
        ::std::result::Result::Ok(Moved {
            before: query.id,
            after: query.id + 1,
        })
    }

    #[::redis_cached::redis_invalidate(key = "count:<return>")]
    pub(crate) async fn counted(query: Query) -> u64 {
        query.id
    }

    impl Store {
        #[::redis_cached::redis_cached(key = "name:<id>", ttl = 60, cache = self.cache)]
        pub(crate) async fn name(&self, id: u64) -> ::std::option::Option<::std::string::String> {
            ::std::option::Option::Some(::std::string::ToString::to_string(&id))
        }
    }

    impl Query {
        #[::redis_cached::redis_cached(key = "query:<id>", ttl = 60)]
        pub(crate) async fn lookup(id: u64) -> u64 {
            id
        }
    }

    pub(crate) trait Labels {
        async fn label(&self, id: u64) -> ::std::string::String;
    }

    #[::redis_cached::redis_cached]
    impl Labels for Store {
        #[::redis_cached::redis_cached(key = "label:<id>", ttl = 60, cache = self.cache)]
        async fn label(&self, id: u64) -> ::std::string::String {
            ::std::string::ToString::to_string(&id)
        }
    }
}

fn main() {
    let query = shadowed::Query { id: 5 };
    let store = shadowed::Store {
        cache: redis_cached::Cache::in_memory(),
    };
    assert_eq!(shadowed::product_key(&query), "{product:5}");
    assert_eq!(shadowed::count_key(), "{count}");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        redis_cached::install(redis_cached::Cache::in_memory());
        assert_eq!(shadowed::product(&query).await.unwrap().unwrap().id, 5);
        assert_eq!(shadowed::count().await, 3);
        assert_eq!(shadowed::moved(&query).await.unwrap().after, 6);
        assert_eq!(shadowed::counted(shadowed::Query { id: 2 }).await, 2);
        assert_eq!(store.name(9).await.as_deref(), Some("9"));
        assert_eq!(shadowed::Query::lookup(4).await, 4);
        assert_eq!(shadowed::Labels::label(&store, 2).await, "2");
        assert_eq!(store.label_key(2), "{label:2}");
        shadowed::product_invalidate(&query).await.unwrap();
    });
}
