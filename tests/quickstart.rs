//! The quickstart example, run as a user runs it: with Redis down it still commits its
//! write, answers every call from its loader, explains why on stderr and exits 0.

mod support;

use std::path::PathBuf;
use std::process::Command;

/// `cargo test` builds the examples next to the test binaries' `deps/` folder.
fn example(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary's path");
    let profile_dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target/<profile>/deps/<test>");
    profile_dir.join("examples").join(name)
}

#[test]
fn the_quickstart_fails_open_and_commits_its_write_when_redis_is_down() {
    let dead = support::free_port();
    let output = Command::new(example("quickstart"))
        .env("REDIS_URL", format!("redis://127.0.0.1:{dead}"))
        .env("NO_COLOR", "1")
        .output()
        .expect("the quickstart example runs (built by `cargo test`)");
    let (stdout, stderr) = (
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr),
    );
    assert!(output.status.success(), "exit {:?}\n{stdout}\n{stderr}", output.status);
    let after_update = stdout
        .lines()
        .find(|line| line.starts_with("after the update"))
        .unwrap_or_else(|| panic!("no line for the read after the update in\n{stdout}"));
    assert!(after_update.contains("price_cents: 2999"), "{after_update}");
    assert!(
        stdout.lines().filter(|line| line.contains(" loaded ")).count() == 6,
        "with Redis down every call runs the loader:\n{stdout}"
    );
    let said = format!("{stdout}{stderr}");
    assert!(
        said.contains("cannot connect to redis"),
        "the dead Redis is explained:\n{said}"
    );
}
