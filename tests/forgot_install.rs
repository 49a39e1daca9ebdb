//! Forgetting `install` is said once, on stderr when no `tracing` subscriber would show
//! the warning. Each test makes its calls in a child process and reads its stderr.

mod support;

use redis_cached::redis_cached;
use support::child::{is_child, run_child};

const SAID: &str = "redis-cached: no cache installed";

#[redis_cached(key = "greeting:<name>", ttl = 60)]
async fn greeting(name: &str) -> String {
    format!("hello, {name}")
}

#[tokio::test]
async fn forgetting_install_is_said_once_on_stderr_without_a_subscriber() {
    const TEST: &str = "forgetting_install_is_said_once_on_stderr_without_a_subscriber";
    if is_child(TEST) {
        assert_eq!(greeting("ada").await, "hello, ada");
        assert_eq!(greeting("bob").await, "hello, bob");
        return;
    }
    let stderr = run_child(TEST, &[]);
    assert_eq!(stderr.matches(SAID).count(), 1, "said once: {stderr}");
    assert!(
        stderr.contains("redis_cached::install(cache)"),
        "with the fix: {stderr}"
    );
    assert!(stderr.contains("`greeting`"), "naming the fn: {stderr}");
}

#[tokio::test(flavor = "current_thread")]
async fn with_a_subscriber_forgetting_install_is_a_warning_and_not_on_stderr() {
    const TEST: &str = "with_a_subscriber_forgetting_install_is_a_warning_and_not_on_stderr";
    if is_child(TEST) {
        let (logs, _guard) = support::logs::Logs::capture();
        greeting("ada").await;
        greeting("bob").await;
        let warnings = logs.lines().iter().filter(|l| l.contains(SAID)).count();
        assert_eq!(warnings, 1, "{:?}", logs.lines());
        return;
    }
    let stderr = run_child(TEST, &[]);
    assert!(!stderr.contains(SAID), "the subscriber shows it: {stderr}");
}
