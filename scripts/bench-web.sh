#!/usr/bin/env bash
# Figures of serve's HTTP API with a store of many runs, and of many live clients on one run.
# Usage: scripts/bench-web.sh [RUNS] [CLIENTS]   (defaults: 10000 runs, 100 clients)
#
#   GET /api/runs?limit=50          with RUNS runs in the store: median and worst of 20
#   GET /api/runs/{id}              a run page's API call, same store: median and worst of 20
#   CLIENTS SSE clients, one run    serve's CPU (utime+stime over 20 s) and RSS, against the
#                                   same run watched by one client
#
# Uses target/release/runbook (built if missing), or $RUNBOOK_BIN. The store is filled
# through the store API by an ignored test (tests/web/api_bench.rs).
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-10000}
clients=${2:-100}
bin=${RUNBOOK_BIN:-target/release/runbook}
[ -x "$bin" ] || cargo build --release --quiet
command -v jq >/dev/null || { echo "jq is needed" >&2; exit 2; }
command -v curl >/dev/null || { echo "curl is needed" >&2; exit 2; }

work=$(mktemp -d)
serve_pid=
client_pids=()
cleanup() {
  # Only what this script started, by pid.
  for pid in "${client_pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  [ -n "$serve_pid" ] && kill -TERM "$serve_pid" 2>/dev/null && wait "$serve_pid" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
export RUNBOOK_STORE="sqlite:$work/runs.db"
ticks=$(getconf CLK_TCK)

echo "filling a store with $runs runs..." >&2
started=$(date +%s)
BENCH_STORE="$work/runs.db" BENCH_RUNS="$runs" \
  cargo test --quiet --test web -- --ignored fill_a_store_with_runs >/dev/null 2>&1
echo "filled in $(( $(date +%s) - started )) s" >&2

token=bench-token-0123456789abcdef
digest=$(printf %s "$token" | sha256sum | cut -d' ' -f1)
echo "tokens: [{name: bench, role: operator, sha256: \"sha256:$digest\"}]" > "$work/users.yaml"
cat > "$work/watched.yaml" <<'YAML'
version: 1
name: watched
steps:
  - id: tick
    for_each: '[range(40)]'
    max_parallel: 1
    exec: {command: [sleep, "0.5"]}
YAML
cat > "$work/serve.yaml" <<'YAML'
schedules: []
http:
  users_file: users.yaml
  runbooks: [watched.yaml]
YAML

"$bin" serve --config "$work/serve.yaml" --listen 127.0.0.1:0 2> "$work/serve.log" &
serve_pid=$!
for _ in $(seq 100); do
  url=$(grep -o 'listening: http://[^ /]*' "$work/serve.log" | head -n1 | cut -d' ' -f2 || true)
  [ -n "$url" ] && break
  sleep 0.1
done
[ -n "$url" ] || { cat "$work/serve.log" >&2; exit 1; }
auth="Authorization: Bearer $token"

# Times one request 20 times (after a warm-up): prints the median and the worst, in ms.
time_requests() {
  curl -sf -o /dev/null -H "$auth" "$1"
  for _ in $(seq 20); do
    curl -sf -o /dev/null -w '%{time_total}\n' -H "$auth" "$1"
  done | sort -n | awk '{t[NR]=$1*1000} END {printf "median %.1f ms, worst %.1f ms\n", t[int((NR+1)/2)], t[NR]}'
}

some_run=$(curl -sf -H "$auth" "$url/api/runs?limit=500" | jq -r '.runs[-1].id')
echo "GET /api/runs?limit=50 with $runs runs:   $(time_requests "$url/api/runs?limit=50")"
echo "GET /api/runs/{id} with $runs runs:       $(time_requests "$url/api/runs/$some_run")"

# Live clients: one run of `watched` (a step every half second for 20 s).
measure() { # CLIENTS: serve's CPU % over 15 s and its RSS, with that many clients
  local run_id start end
  run_id=$(curl -sf -H "$auth" -H 'Content-Type: application/json' \
    -d '{"runbook": "watched"}' "$url/api/runs" | jq -r .run_id)
  for _ in $(seq "$1"); do
    curl -sN -H "$auth" "$url/api/runs/$run_id/events" > /dev/null &
    client_pids+=($!)
  done
  sleep 2
  start=$(awk '{print $14 + $15}' "/proc/$serve_pid/stat")
  sleep 15
  end=$(awk '{print $14 + $15}' "/proc/$serve_pid/stat")
  rss=$(awk '/^VmRSS/ {print $2}' "/proc/$serve_pid/status")
  awk -v t=$((end - start)) -v hz="$ticks" -v rss="$rss" -v n="$1" \
    'BEGIN {printf "%3d SSE clients on one running run: CPU %.1f%%, RSS %.1f MB\n", n, 100 * t / hz / 15, rss / 1024}'
  for pid in "${client_pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  client_pids=()
  sleep 6   # the run ends; the poller stops
}
measure 1
measure "$clients"
