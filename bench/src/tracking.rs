//! Scenario 8: what client tracking costs Redis, the measurement behind the near cache's
//! choice of broadcast tracking. 32 tasks write 10,000 keys under one prefix for two
//! seconds while N other connections track them: in broadcast mode (`BCAST PREFIX`, what
//! the near cache turns on), or per key (each connection has read every key first, as a
//! per-key near cache would). Reported: the writes' rate, Redis's CPU per write (from
//! `INFO cpu`), and Redis's memory (the per-key table lives there).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, Client, ProtocolVersion, PushInfo, PushKind};

use crate::report::Table;
use crate::server::Server;

const KEYS: usize = 10_000;
const WRITERS: usize = 32;
const WRITING: Duration = Duration::from_secs(2);

#[derive(Clone, Copy)]
enum Mode {
    Broadcast,
    PerKey,
}

pub(crate) async fn run(server: &Server) -> Table {
    let mut table = Table::new(
        "Client tracking: what Redis pays per write, 32 writers on 10,000 keys",
        &[
            "tracking connections",
            "writes/s",
            "Redis CPU per write",
            "Redis memory",
            "messages heard",
        ],
    );
    let rows = [
        (0, Mode::Broadcast),
        (8, Mode::Broadcast),
        (32, Mode::Broadcast),
        (8, Mode::PerKey),
        (32, Mode::PerKey),
    ];
    for (listeners, mode) in rows {
        let mut admin = connection(server, None).await;
        let _: () = redis::cmd("FLUSHALL").query_async(&mut admin).await.expect("FLUSHALL");
        let heard = Arc::new(AtomicU64::new(0));
        let mut tracking = Vec::new();
        for _ in 0..listeners {
            tracking.push(track(server, mode, heard.clone()).await);
        }
        let memory = info_field(&mut admin, "memory", "used_memory").await;
        let cpu_before = cpu(&mut admin).await;
        let writes = write_for(server).await;
        let cpu_per_write = (cpu(&mut admin).await - cpu_before) / writes as f64;
        let name = match (listeners, mode) {
            (0, _) => "none".to_owned(),
            (n, Mode::Broadcast) => format!("{n}, broadcast (`BCAST PREFIX`)"),
            (n, Mode::PerKey) => format!("{n}, per key, each having read every key"),
        };
        table.row(vec![
            name,
            format!("{:.0}", writes as f64 / WRITING.as_secs_f64()),
            format!("{:.2} us", cpu_per_write * 1e6),
            format!("{:.1} MB", memory / 1e6),
            heard.load(Ordering::Relaxed).to_string(),
        ]);
        drop(tracking);
    }
    table
}

/// A connection to `server`, RESP3 with its pushes counted into `heard` when given.
async fn connection(server: &Server, heard: Option<Arc<AtomicU64>>) -> MultiplexedConnection {
    let info = Client::open(server.url()).expect("url").get_connection_info().clone();
    let settings = info.redis_settings().clone().set_protocol(ProtocolVersion::RESP3);
    let client = Client::open(info.set_redis_settings(settings)).expect("client");
    let mut config = AsyncConnectionConfig::new();
    if let Some(heard) = heard {
        config = config.set_push_sender(move |push: PushInfo| {
            if push.kind == PushKind::Invalidate {
                heard.fetch_add(1, Ordering::Relaxed);
            }
            Ok::<(), std::convert::Infallible>(())
        });
    }
    client
        .get_multiplexed_async_connection_with_config(&config)
        .await
        .expect("connect")
}

/// A connection tracking the keys in `mode`.
async fn track(server: &Server, mode: Mode, heard: Arc<AtomicU64>) -> MultiplexedConnection {
    let mut connection = connection(server, Some(heard)).await;
    let mut on = redis::cmd("CLIENT");
    on.arg("TRACKING").arg("ON");
    if let Mode::Broadcast = mode {
        on.arg("BCAST").arg("PREFIX").arg("tracked:");
    }
    let _: () = on.query_async(&mut connection).await.expect("CLIENT TRACKING");
    if let Mode::PerKey = mode {
        for key in 0..KEYS {
            let _: Option<String> = redis::cmd("GET")
                .arg(format!("tracked:{key}"))
                .query_async(&mut connection)
                .await
                .expect("GET");
        }
    }
    connection
}

/// Writes the keys from `WRITERS` tasks for `WRITING`; returns how many writes were made.
async fn write_for(server: &Server) -> u64 {
    let connection = connection(server, None).await;
    let written = Arc::new(AtomicU64::new(0));
    let end = Instant::now() + WRITING;
    let writers: Vec<_> = (0..WRITERS)
        .map(|first| {
            let (mut connection, written) = (connection.clone(), written.clone());
            tokio::spawn(async move {
                let mut key = first;
                while Instant::now() < end {
                    let _: () = redis::cmd("SET")
                        .arg(format!("tracked:{}", key % KEYS))
                        .arg("v")
                        .query_async(&mut connection)
                        .await
                        .expect("SET");
                    written.fetch_add(1, Ordering::Relaxed);
                    key += WRITERS;
                }
            })
        })
        .collect();
    for writer in writers {
        writer.await.expect("a writer");
    }
    written.load(Ordering::Relaxed)
}

/// Redis's CPU time so far (user and system), in seconds.
async fn cpu(admin: &mut MultiplexedConnection) -> f64 {
    info_field(admin, "cpu", "used_cpu_sys").await + info_field(admin, "cpu", "used_cpu_user").await
}

async fn info_field(admin: &mut MultiplexedConnection, section: &str, field: &str) -> f64 {
    let info: String = redis::cmd("INFO").arg(section).query_async(admin).await.expect("INFO");
    info.lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|value| value.trim().parse().ok())
        .unwrap_or(f64::NAN)
}
