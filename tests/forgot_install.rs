//! Forgetting `install` is said once, on stderr when no `tracing` subscriber would show
//! the warning. Each test runs its calls in a child process (this test binary again,
//! with `CHILD` naming the test) and reads the child's stderr.

mod support;

use std::process::Command;

use redis_cached::redis_cached;

/// Set in a child process to the name of the test whose calls it runs.
const CHILD: &str = "REDIS_CACHED_TEST_CHILD";
const SAID: &str = "redis-cached: no cache installed";

#[redis_cached(key = "greeting:<name>", ttl = 60)]
async fn greeting(name: &str) -> String {
    format!("hello, {name}")
}

fn is_child(test: &str) -> bool {
    std::env::var(CHILD).is_ok_and(|child| child == test)
}

/// Runs `test` alone in a child process, in child mode; its stderr.
fn stderr_of_child(test: &str) -> String {
    let output = Command::new(std::env::current_exe().expect("the test binary"))
        .args([test, "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD, test)
        .output()
        .expect("run the test binary");
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "the child failed: {stdout}\n{stderr}");
    assert!(stdout.contains("1 passed"), "the child ran its test: {stdout}");
    stderr
}

#[tokio::test]
async fn forgetting_install_is_said_once_on_stderr_without_a_subscriber() {
    const TEST: &str = "forgetting_install_is_said_once_on_stderr_without_a_subscriber";
    if is_child(TEST) {
        assert_eq!(greeting("ada").await, "hello, ada");
        assert_eq!(greeting("bob").await, "hello, bob");
        return;
    }
    let stderr = stderr_of_child(TEST);
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
    let stderr = stderr_of_child(TEST);
    assert!(!stderr.contains(SAID), "the subscriber shows it: {stderr}");
}
