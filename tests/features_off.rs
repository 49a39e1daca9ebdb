//! What a user without a feature gets: a clear compile error for a codec, a clear error
//! for a `rediss://` URL. Runs only in a build without those features (`cargo test
//! --no-default-features --test features_off`, as `.ci/features` does); regenerate the
//! expected compiler output with `TRYBUILD=overwrite` in front of that command.
#![cfg(not(all(feature = "tls", feature = "json", feature = "msgpack")))]

#[cfg(not(all(feature = "json", feature = "msgpack")))]
#[test]
fn a_codec_whose_feature_is_off_is_a_compile_error_naming_the_feature() {
    let t = trybuild::TestCases::new();
    if cfg!(not(feature = "msgpack")) {
        t.compile_fail("tests/ui/features/msgpack_off.rs");
    }
    if cfg!(not(feature = "json")) {
        t.compile_fail("tests/ui/features/json_off.rs");
    }
}

#[cfg(not(feature = "tls"))]
#[tokio::test]
async fn a_rediss_url_without_tls_says_to_enable_the_feature() {
    let error = redis_cached::Cache::builder()
        .url("rediss://app:s3cr3t@127.0.0.1:6380")
        .build()
        .await
        .expect_err("no TLS without the feature");
    assert!(matches!(error, redis_cached::Error::InvalidUrl(_)), "{error:?}");
    assert_eq!(
        error.to_string(),
        "invalid redis url: a `rediss` url needs the `tls` feature of redis-cached, which is off"
    );
}
