//! Running one test of this test binary again, in a child process, for what a test cannot
//! see in its own process: its stderr, or an environment set before the process starts.

use std::process::Command;

/// Set in a child process to the name of the test whose child part it runs.
const CHILD: &str = "REDIS_CACHED_TEST_CHILD";

/// Whether this process is the child of `test`.
pub fn is_child(test: &str) -> bool {
    std::env::var(CHILD).is_ok_and(|child| child == test)
}

/// Runs `test` alone in a child process with `env` set, asserts that it passed, and
/// returns its stderr.
pub fn run_child(test: &str, env: &[(&str, &str)]) -> String {
    let output = Command::new(std::env::current_exe().expect("the test binary"))
        .args([test, "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD, test)
        .envs(env.iter().copied())
        .output()
        .expect("run the test binary");
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "the child failed: {stdout}\n{stderr}");
    assert!(stdout.contains("1 passed"), "the child ran its test: {stdout}");
    stderr
}
