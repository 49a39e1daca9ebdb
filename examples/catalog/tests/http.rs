//! The catalog service driven over HTTP, as its users drive it: the built binary runs as
//! child processes on free loopback ports, against a `redis-server` the test starts on a
//! free port and a SQLite file in a temp dir, and the test speaks plain HTTP/1.1 to it.
//! Every process is killed when its guard drops, also when an assertion fails.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// How long a condition may take before the test fails.
const DEADLINE: Duration = Duration::from_secs(15);

#[test]
fn repeated_reads_are_answered_from_the_cache() {
    let dir = TempDir::new("hits");
    let redis = Redis::start(&dir);
    let service = Service::start(&dir, "a", &redis);

    let first: Vec<Value> = (1..=20).map(|id| service.get_ok(&format!("/products/{id}"))).collect();
    assert_eq!(first[6]["name"], "Product 7");
    let before = service.stats();
    for _ in 0..9 {
        for id in 1..=20 {
            assert_eq!(service.get_ok(&format!("/products/{id}")), first[id - 1]);
        }
    }
    let after = service.stats();

    // 180 reads of 20 stored products: a cache that stores nothing answers none of them.
    assert_eq!(counter(&after, "hits") - counter(&before, "hits"), 180);
    assert_eq!(queries(&after), queries(&before), "a hit must not query the database");
    let hit_rate = after["cache"]["hit_rate"].as_f64().expect("a hit rate");
    assert!(hit_rate >= 0.85, "hit rate {hit_rate} after 20 misses and 180 hits");
    // Redis counted them too, and so did the metrics.
    assert!(after["redis"]["keyspace_hits"].as_u64() >= Some(180), "{after}");
    let calls = service.metrics();
    assert_eq!(
        metric(&calls, "redis_cached_calls_total", r#"fn="product",outcome="hit""#),
        Some(180.0)
    );
    assert_eq!(
        metric(&calls, "redis_cached_calls_total", r#"fn="product",outcome="load""#),
        Some(20.0)
    );
}

#[test]
fn an_update_on_one_instance_is_read_on_the_other() {
    let dir = TempDir::new("update");
    let redis = Redis::start(&dir);
    let a = Service::start(&dir, "a", &redis);
    let b = Service::start(&dir, "b", &redis);

    // Product 7 is in category 2; b caches it and both listings it will be in.
    let reads = ["/products/7", "/categories/2/products", "/categories/4/products"];
    for path in reads {
        b.get_ok(path);
    }
    let before = b.stats();
    for path in reads {
        b.get_ok(path);
    }
    assert_eq!(
        counter(&b.stats(), "hits") - counter(&before, "hits"),
        3,
        "b reads from Redis"
    );
    assert!(listed(&b.get_ok("/categories/2/products"), 7).is_some());

    let change = json!({ "name": "Walnut desk", "price": 25_900, "category": 4 });
    let (status, written) = a.request("PUT", "/products/7", Some(&change));
    assert_eq!(status, 200, "{written}");
    let expected = json!({ "id": 7, "name": "Walnut desk", "price": 25_900, "category": 4 });
    assert_eq!(written, expected);

    assert_eq!(b.get_ok("/products/7"), expected);
    assert_eq!(listed(&b.get_ok("/categories/2/products"), 7), None, "left category 2");
    assert_eq!(listed(&b.get_ok("/categories/4/products"), 7), Some(expected));
}

#[test]
fn unknown_ids_are_cached_as_not_found() {
    let dir = TempDir::new("negative");
    let redis = Redis::start(&dir);
    let service = Service::start(&dir, "a", &redis);

    let before = service.stats();
    for _ in 0..10 {
        for id in [900_001, 900_002, 900_003] {
            let (status, body) = service.request("GET", &format!("/products/{id}"), None);
            assert_eq!(status, 404, "{body}");
        }
    }
    let after = service.stats();

    assert_eq!(queries(&after) - queries(&before), 3, "one query per unknown id");
    assert_eq!(counter(&after, "negative_hits") - counter(&before, "negative_hits"), 27);
}

#[test]
fn the_service_answers_while_redis_is_down_and_hits_resume_after() {
    let dir = TempDir::new("outage");
    let mut redis = Redis::start(&dir);
    let service = Service::start(&dir, "a", &redis);
    let product = service.get_ok("/products/11");
    wait_for("redis_cached_available 1", || {
        metric(&service.metrics(), "redis_cached_available", "") == Some(1.0)
    });
    let before = service.stats();
    assert_eq!(service.get_ok("/products/11"), product);
    assert_eq!(counter(&service.stats(), "hits"), counter(&before, "hits") + 1);

    redis.kill();
    for _ in 0..5 {
        assert_eq!(service.get_ok("/products/11"), product);
    }
    let uncached = service.get_ok("/products/12");
    assert_eq!(
        (uncached["id"].as_i64(), uncached["name"].as_str()),
        (Some(12), Some("Product 12"))
    );
    let listing = service.get_ok("/categories/1/products");
    assert_eq!(listing["products"].as_array().map(Vec::len), Some(100));
    let down = service.stats();
    assert!(
        counter(&down, "errors") + counter(&down, "skipped") > 0,
        "failing open is counted: {down}"
    );
    wait_for("redis_cached_available 0", || {
        metric(&service.metrics(), "redis_cached_available", "") == Some(0.0)
    });
    assert_eq!(service.stats()["available"], false);

    redis.run();
    let hits = counter(&service.stats(), "hits");
    wait_for("hits to resume after Redis is back", || {
        assert_eq!(service.get_ok("/products/11"), product);
        counter(&service.stats(), "hits") > hits
    });
    wait_for("redis_cached_available 1 again", || {
        metric(&service.metrics(), "redis_cached_available", "") == Some(1.0)
    });
}

/// The product `id` in a category listing, if it is there.
fn listed(listing: &Value, id: i64) -> Option<Value> {
    let products = listing["products"].as_array().expect("a listing has products");
    products.iter().find(|product| product["id"] == id).cloned()
}

/// A counter of the cache from a `/stats` answer.
fn counter(stats: &Value, name: &str) -> u64 {
    stats["cache"][name]
        .as_u64()
        .unwrap_or_else(|| panic!("no counter {name} in {stats}"))
}

/// The database queries an instance made, from a `/stats` answer.
fn queries(stats: &Value) -> u64 {
    stats["database"]["queries"].as_u64().expect("a query count")
}

/// The value of a metric in Prometheus's text format: the sample of `name` whose labels
/// are exactly `labels` (`fn="product",outcome="hit"`, or empty for none).
fn metric(text: &str, name: &str, labels: &str) -> Option<f64> {
    let series = if labels.is_empty() {
        name.to_owned()
    } else {
        format!("{name}{{{labels}}}")
    };
    text.lines()
        .find_map(|line| line.strip_prefix(series.as_str())?.strip_prefix(' '))
        .and_then(|value| value.trim().parse().ok())
}

/// Polls `condition` every 20 ms until it holds; fails the test after [`DEADLINE`].
fn wait_for(what: &str, mut condition: impl FnMut() -> bool) {
    let start = Instant::now();
    while !condition() {
        assert!(start.elapsed() < DEADLINE, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    listener.local_addr().expect("its address").port()
}

/// A directory of the test's own, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!("catalog-test-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create a temp dir");
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A `redis-server` on a free port, with no persistence; killed when dropped.
struct Redis {
    port: u16,
    dir: PathBuf,
    child: Option<Child>,
}

impl Redis {
    fn start(dir: &TempDir) -> Redis {
        let mut redis = Redis {
            port: free_port(),
            dir: dir.0.clone(),
            child: None,
        };
        redis.run();
        redis
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Starts the server (again, after [`kill`](Self::kill)) on its port, and waits until
    /// it answers `PING`.
    fn run(&mut self) {
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .current_dir(&self.dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start redis-server (Redis 6.2 or later on the PATH)");
        self.child = Some(child);
        wait_for("redis-server to answer PING", || self.ping());
    }

    fn ping(&self) -> bool {
        let Ok(mut stream) = TcpStream::connect(("127.0.0.1", self.port)) else {
            return false;
        };
        let mut reply = [0; 7];
        stream.write_all(b"PING\r\n").is_ok() && stream.read_exact(&mut reply).is_ok() && &reply == b"+PONG\r\n"
    }

    /// Kills the server with SIGKILL: no goodbye to its clients.
    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The catalog binary on a free port; killed when dropped, its log printed when the
/// test failed.
struct Service {
    addr: String,
    log: PathBuf,
    child: Child,
}

impl Service {
    /// Starts an instance with the SQLite file of `dir` and `redis`, and waits until it
    /// says where it listens.
    fn start(dir: &TempDir, name: &str, redis: &Redis) -> Service {
        let log = dir.0.join(format!("{name}.log"));
        let mut child = Command::new(env!("CARGO_BIN_EXE_catalog"))
            .env("CATALOG_ADDR", "127.0.0.1:0")
            .env(
                "DATABASE_URL",
                format!("sqlite://{}", dir.0.join("catalog.db").display()),
            )
            .env("REDIS_URL", redis.url())
            .env("CATALOG_CACHE", "redis")
            .env("RUST_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).expect("create the log file"))
            .spawn()
            .expect("start the catalog");
        let stdout = child.stdout.take().expect("its stdout");
        let (first_line, lines) = mpsc::channel();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            if let Some(Ok(line)) = lines.next() {
                let _ = first_line.send(line);
            }
            lines.for_each(drop);
        });
        let mut service = Service {
            addr: String::new(),
            log,
            child,
        };
        let line = lines.recv_timeout(DEADLINE).unwrap_or_else(|_| {
            panic!(
                "the catalog did not say where it listens; its log: {}",
                service.log_text()
            )
        });
        service.addr = line
            .strip_prefix("catalog listening on http://")
            .and_then(|rest| rest.split_whitespace().next())
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
            .to_owned();
        service
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// `GET path`, which must answer 200 with JSON.
    fn get_ok(&self, path: &str) -> Value {
        let (status, body) = self.request("GET", path, None);
        assert_eq!(status, 200, "GET {path}: {body}");
        body
    }

    fn stats(&self) -> Value {
        self.get_ok("/stats")
    }

    /// `GET /metrics`: Prometheus's text format.
    fn metrics(&self) -> String {
        match self.get_ok("/metrics") {
            Value::String(text) => text,
            other => panic!("/metrics is not text: {other}"),
        }
    }

    /// One request on a connection of its own (`Connection: close`): the status and the
    /// body, parsed as JSON (a string when it is not JSON).
    fn request(&self, method: &str, path: &str, body: Option<&Value>) -> (u16, Value) {
        let body = body.map(Value::to_string).unwrap_or_default();
        let mut stream = TcpStream::connect(&self.addr).expect("connect to the catalog");
        stream.set_read_timeout(Some(DEADLINE)).expect("set a read timeout");
        let request = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            self.addr,
            body.len()
        );
        stream.write_all(request.as_bytes()).expect("send the request");
        let mut response = String::new();
        stream.read_to_string(&mut response).expect("read the response");
        let (head, body) = response.split_once("\r\n\r\n").expect("a response with a body");
        let status = head
            .split(' ')
            .nth(1)
            .and_then(|status| status.parse().ok())
            .unwrap_or_else(|| panic!("no status in {head:?}"));
        let body = serde_json::from_str(body).unwrap_or_else(|_| Value::String(body.to_owned()));
        (status, body)
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("--- log of the catalog at {} ---\n{}", self.addr, self.log_text());
        }
    }
}
