#!/usr/bin/env bash
# Loads `GET /products/{id}` with the cache off, on Redis and with the near cache, one
# after the other with the same wrk settings, and prints wrk's report of each.
#
#   cargo build --release -p catalog
#   examples/catalog/load/compare.sh                    # SQLite in a temp dir
#   DATABASE_URL=postgres://127.0.0.1/test examples/catalog/load/compare.sh
#
# It starts its own redis-server on a free port (no persistence) and one release
# catalog per mode; each mode gets a 3 s warm-up (not reported), then the measured run.
# DURATION (10s), CONNECTIONS (32) and THREADS (2) change wrk's settings.
set -euo pipefail
cd "$(dirname "$0")/../../.."

duration=${DURATION:-10s}
connections=${CONNECTIONS:-32}
threads=${THREADS:-2}
binary=target/release/catalog
script=examples/catalog/load/products.lua
work=$(mktemp -d)
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    rm -rf "$work"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

redis_port=$(free_port)
redis-server --port "$redis_port" --bind 127.0.0.1 --save '' --appendonly no >"$work/redis.log" 2>&1 &
pids+=($!)
until redis-cli -p "$redis_port" ping >/dev/null 2>&1; do sleep 0.05; done

export DATABASE_URL=${DATABASE_URL:-sqlite://$work/catalog.db}
export REDIS_URL=redis://127.0.0.1:$redis_port
for mode in off redis near; do
    redis-cli -p "$redis_port" flushall >/dev/null
    port=$(free_port)
    CATALOG_CACHE=$mode CATALOG_ADDR=127.0.0.1:$port RUST_LOG=warn "$binary" >"$work/$mode.out" 2>"$work/$mode.log" &
    pids+=($!)
    until grep -q listening "$work/$mode.out" 2>/dev/null; do sleep 0.05; done
    wrk -t"$threads" -c"$connections" -d3s -s "$script" "http://127.0.0.1:$port" >/dev/null
    echo "=== CATALOG_CACHE=$mode: wrk -t$threads -c$connections -d$duration --latency -s $script"
    wrk -t"$threads" -c"$connections" -d"$duration" --latency -s "$script" "http://127.0.0.1:$port"
    echo "--- /stats"
    curl -s "http://127.0.0.1:$port/stats"
    echo
    kill "${pids[-1]}"
    wait "${pids[-1]}" 2>/dev/null || true
done
