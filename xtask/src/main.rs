//! The project's tasks, run with `cargo xtask <task>` (an alias in `.cargo/config.toml`).
//!
//! - `cargo xtask test [args]`: makes sure the programs the tests start are installed
//!   (`redis-server` and `redis-cli` of at least [`MIN_REDIS`], `python3` and `openssl`),
//!   installing missing ones with the system's package manager when it may, then runs
//!   `cargo test --workspace --features redis-cached/metrics [args]`.
//! - `cargo xtask check`: the same preparation, then formatting, clippy and the feature
//!   combinations (`.ci/features`), each step timed. CI runs it, then
//!   `cargo xtask test`.
//! - `cargo xtask ci`: both, in one command.

use std::env;
use std::ffi::OsString;
use std::fmt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::Instant;

/// The oldest Redis the test suite runs on. The guide's least-privilege ACL line, which
/// the tests apply, limits the cache to its channel with `resetchannels` and
/// `&<prefix>fills`: channel rules came with Redis 6.2. The cache's own commands are older.
const MIN_REDIS: Version = Version { major: 6, minor: 2 };

const USAGE: &str = "usage: cargo xtask test [cargo test arguments]   prepare this machine, then run the tests
       cargo xtask check                          formatting, clippy, feature combinations
       cargo xtask ci                             check, then test";

fn main() -> ExitCode {
    let mut args = env::args_os().skip(1);
    let task = args.next();
    let result = match task.as_ref().and_then(|t| t.to_str()) {
        Some("test") => prepare().and_then(|()| cargo_test(args.collect())),
        Some("check") if args.next().is_none() => check(),
        Some("ci") if args.next().is_none() => check().and_then(|()| step("test", || cargo_test(Vec::new()))),
        Some("help" | "-h" | "--help") => {
            println!("{USAGE}");
            Ok(())
        }
        _ => {
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            eprintln!("xtask: {}", failure.message);
            ExitCode::from(failure.code)
        }
    }
}

/// Why a task stopped, and the exit code it stops with.
#[derive(Debug)]
struct Failure {
    code: u8,
    message: String,
}

impl Failure {
    fn new(code: u8, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }
}

/// The repository's root: the parent of this crate.
fn root() -> PathBuf {
    let manifest_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest_dir.parent().unwrap_or(manifest_dir).to_path_buf()
}

/// The cargo that runs this task (cargo sets `CARGO`), so the same toolchain runs the rest.
fn cargo() -> Command {
    let mut command = Command::new(env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    command.current_dir(root());
    command
}

/// Runs `command` to its end; a failure carries its exit code.
fn run(mut command: Command) -> Result<(), Failure> {
    let shown = show(&command);
    println!("$ {shown}");
    let status = command
        .status()
        .map_err(|e| Failure::new(1, format!("cannot run `{shown}`: {e}")))?;
    if status.success() {
        return Ok(());
    }
    let code = status.code().and_then(|c| u8::try_from(c).ok()).filter(|&c| c != 0);
    Err(Failure::new(code.unwrap_or(1), format!("`{shown}` failed ({status})")))
}

fn show(command: &Command) -> String {
    let mut words = vec![command.get_program().to_string_lossy().into_owned()];
    words.extend(command.get_args().map(|a| a.to_string_lossy().into_owned()));
    words.join(" ")
}

fn cargo_test(args: Vec<OsString>) -> Result<(), Failure> {
    let mut command = cargo();
    // With `metrics`, which is off by default: its recorder test runs too.
    command
        .args(["test", "--workspace", "--features", "redis-cached/metrics"])
        .args(args);
    run(command)
}

/// Everything CI checks besides the tests: the tools, formatting, clippy and the feature
/// combinations (`.ci/features`), each step timed; the first failure ends the run.
fn check() -> Result<(), Failure> {
    let started = Instant::now();
    step("prepare", prepare)?;
    step("fmt", || {
        let mut command = cargo();
        command.args(["fmt", "--all", "--", "--check"]);
        run(command)
    })?;
    step("clippy", || {
        let mut command = cargo();
        command.args(["clippy", "--workspace", "--all-targets", "--", "-D", "warnings"]);
        run(command)
    })?;
    step("features", || run(Command::new(root().join(".ci/features"))))?;
    println!("==> check: passed in {:.1?}", started.elapsed());
    Ok(())
}

/// Runs one step of `ci`, saying its name and how long it took.
fn step(name: &str, task: impl FnOnce() -> Result<(), Failure>) -> Result<(), Failure> {
    println!("==> {name}");
    let started = Instant::now();
    let result = task();
    let took = started.elapsed();
    match &result {
        Ok(()) => println!("==> {name}: ok in {took:.1?}"),
        Err(_) => println!("==> {name}: failed after {took:.1?}"),
    }
    result
}

/// A `major.minor` version; patch levels do not matter here.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Version {
    major: u32,
    minor: u32,
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)
    }
}

impl Version {
    /// The first `X.Y[.Z]` in a `--version` line: `Redis server v=7.0.15 sha=...`,
    /// `redis-cli 7.0.15`, `Python 3.11.7`.
    fn find_in(text: &str) -> Option<Version> {
        text.split(|c: char| c.is_whitespace() || c == '=').find_map(|word| {
            let mut parts = word.trim_start_matches('v').split('.');
            let major = parts.next()?.parse().ok()?;
            let minor = parts.next()?.parse().ok()?;
            Some(Version { major, minor })
        })
    }
}

/// A program the tests start, the version they need, and where it comes from.
struct Tool {
    program: &'static str,
    /// The argument that makes it print its version.
    version_arg: &'static str,
    min: Option<Version>,
    apt: &'static str,
    brew: &'static str,
}

const TOOLS: [Tool; 4] = [
    Tool {
        program: "redis-server",
        version_arg: "--version",
        min: Some(MIN_REDIS),
        apt: "redis-server",
        brew: "redis",
    },
    Tool {
        program: "redis-cli",
        version_arg: "--version",
        min: Some(MIN_REDIS),
        apt: "redis-tools",
        brew: "redis",
    },
    // The format test's reader (tests/format/read_value.py): Python's standard library only.
    Tool {
        program: "python3",
        version_arg: "--version",
        min: None,
        apt: "python3",
        brew: "python",
    },
    // The TLS tests make their CA and certificates at test time.
    Tool {
        program: "openssl",
        version_arg: "version",
        min: None,
        apt: "openssl",
        brew: "openssl",
    },
];

/// What `<program> --version` says.
enum Found {
    Missing,
    TooOld(Version),
    Fine(String),
}

fn find(tool: &Tool) -> Found {
    let Ok(out) = Command::new(tool.program)
        .arg(tool.version_arg)
        .stdin(Stdio::null())
        .output()
    else {
        return Found::Missing;
    };
    let text = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    match (Version::find_in(&text), tool.min) {
        (Some(version), Some(min)) if version < min => Found::TooOld(version),
        _ => Found::Fine(text.lines().next().unwrap_or(tool.program).trim().to_owned()),
    }
}

/// Makes sure every tool is installed and recent enough, installing missing ones when
/// this machine lets us.
fn prepare() -> Result<(), Failure> {
    let missing: Vec<&Tool> = TOOLS.iter().filter(|t| matches!(find(t), Found::Missing)).collect();
    if !missing.is_empty() {
        let names: Vec<&str> = missing.iter().map(|t| t.program).collect();
        println!("xtask: not on the PATH: {}", names.join(", "));
        install(&missing)?;
    }
    for tool in &TOOLS {
        match find(tool) {
            Found::Fine(version) => println!("xtask: {version}"),
            Found::Missing => {
                return Err(Failure::new(
                    1,
                    format!("`{}` is still not on the PATH after installing it", tool.program),
                ));
            }
            Found::TooOld(version) => {
                return Err(Failure::new(
                    1,
                    format!(
                        "`{}` is Redis {version}; the tests need Redis {MIN_REDIS} or later \
                         (ACL channel rules). Install a newer Redis (https://redis.io/downloads/) \
                         and put it first on the PATH, then run `cargo xtask test` again.",
                        tool.program
                    ),
                ));
            }
        }
    }
    Ok(())
}

/// Installs the packages of `tools` with apt (as root, or with passwordless sudo) or
/// Homebrew; otherwise says exactly what to run.
fn install(tools: &[&Tool]) -> Result<(), Failure> {
    let apt = unique(tools.iter().map(|t| t.apt));
    let brew = unique(tools.iter().map(|t| t.brew));
    if cfg!(target_os = "macos") {
        if !succeeds("brew", &["--version"]) {
            return Err(Failure::new(
                1,
                format!(
                    "install Homebrew (https://brew.sh), then run: brew install {}",
                    brew.join(" ")
                ),
            ));
        }
        let mut command = Command::new("brew");
        command.arg("install").args(&brew);
        return run(command);
    }
    let manual = format!("sudo apt-get update && sudo apt-get install -y {}", apt.join(" "));
    if !succeeds("apt-get", &["--version"]) {
        return Err(Failure::new(
            1,
            format!(
                "install Redis {MIN_REDIS} or later (redis-server, redis-cli) python3 and openssl with \
                 your package manager (on Debian or Ubuntu: {manual}), then run `cargo xtask test` again"
            ),
        ));
    }
    let sudo: &[&str] = if is_root() {
        &[]
    } else if succeeds("sudo", &["-n", "true"]) {
        &["sudo", "-n"]
    } else {
        return Err(Failure::new(
            1,
            format!("installing needs root; run: {manual}\nthen run `cargo xtask test` again"),
        ));
    };
    let apt_get = |args: &[&str]| {
        let argv: Vec<&str> = sudo.iter().chain(&["apt-get"]).chain(args).copied().collect();
        let mut command = Command::new(argv[0]);
        command.args(&argv[1..]).env("DEBIAN_FRONTEND", "noninteractive");
        command
    };
    run(apt_get(&["update", "-qq"]))?;
    run(apt_get(&[&["install", "-y", "-qq"][..], &apt].concat()))
}

/// The packages, each once, in order.
fn unique<'a>(packages: impl Iterator<Item = &'a str>) -> Vec<&'a str> {
    let mut unique = Vec::new();
    for package in packages {
        if !unique.contains(&package) {
            unique.push(package);
        }
    }
    unique
}

/// Whether `program args` runs and succeeds (quietly).
fn succeeds(program: &str, args: &[&str]) -> bool {
    Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|out| out.stdout.trim_ascii() == b"0")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_are_read_from_what_the_tools_print() {
        let v = |major, minor| Some(Version { major, minor });
        let server = "Redis server v=7.0.15 sha=00000000:0 malloc=jemalloc-5.3.0 bits=64 build=ae4d7c971a948f0";
        assert_eq!(Version::find_in(server), v(7, 0));
        assert_eq!(Version::find_in("redis-cli 6.2.14"), v(6, 2));
        assert_eq!(Version::find_in("Python 3.11.7\n"), v(3, 11));
        assert_eq!(Version::find_in("command not found"), None);
        assert!(Version { major: 6, minor: 0 } < MIN_REDIS && MIN_REDIS < Version { major: 6, minor: 10 });
    }

    /// The guide states the minimum once, with its reason; the README's development
    /// set-up and the tests' message when `redis-server` is missing repeat it: all say
    /// what this task checks.
    #[test]
    fn the_docs_and_the_tests_state_the_minimum_redis_this_task_checks() {
        let said = format!("Redis {MIN_REDIS} or later");
        for file in ["docs/guide.md", "README.md", "tests/support/mod.rs"] {
            let text = std::fs::read_to_string(root().join(file)).unwrap();
            // Wherever the lines wrap.
            let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
            assert!(text.contains(&said), "{file} does not say {said:?}");
        }
    }
}
