//! A password in the URL never shows in `Debug`, `Display`, errors or logs.

mod support;

use redis_cached::Cache;
use support::RedisServer;

const PASSWORD: &str = "s3cr3t-pa55";

#[tokio::test]
async fn the_password_never_appears_in_debug_errors_or_logs() {
    let (logs, _guard) = support::logs::Logs::capture();
    let redis = RedisServer::start();
    let mut conn = redis.conn();
    let _: () = redis::cmd("ACL")
        .arg(&["SETUSER", "app", "on", &format!(">{PASSWORD}"), "~*", "&*", "+@all"])
        .query(&mut conn)
        .unwrap();
    let url = format!("redis://app:{PASSWORD}@127.0.0.1:{}", redis.port);

    let builder = Cache::builder().url(&url).prefix("app:");
    let cache = builder.clone().build().await.unwrap();
    support::wait_connected(&cache).await;
    let mut printed = vec![
        format!("{builder:?}"),
        format!("{cache:?}"),
        format!("{:?}", cache.stats()),
    ];

    // A wrong password: calls fail open; the errors the cache reports do not carry it.
    let wrong = format!("redis://app:{PASSWORD}-wrong@127.0.0.1:{}", redis.port);
    let unauthorised = Cache::builder().url(&wrong).build().await.unwrap();
    let error = unauthorised.invalidate("k").await.unwrap_err();
    printed.push(format!("{error} {error:?}"));
    let bad_url = format!("redis://app:{PASSWORD}@127.0.0.1:notaport");
    let error = Cache::builder().url(&bad_url).build().await.unwrap_err();
    printed.push(format!("{error} {error:?} {:?}", std::error::Error::source(&error)));

    printed.extend(logs.lines());
    assert!(
        logs.lines()
            .iter()
            .any(|l| l.contains("cannot connect") && l.contains("authentication failed")),
        "the failing cache says why: {:?}",
        logs.lines()
    );
    for text in printed {
        assert!(!text.contains(PASSWORD), "password leaked: {text}");
    }
}
