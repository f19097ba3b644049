#!/usr/bin/env bash
# Figures of the PostgreSQL store, on a throwaway cluster of its own (scripts/pg-sandbox.sh),
# stopped however the script ends. Usage: scripts/bench-postgres.sh
#
#   durable per-step overhead   a chain of no-op steps, each start and end committed before
#                               the next step: (time of 220 steps - time of 20) / 200
#                                                                      goal: < 2 ms
#   runs claimed per second     RUNS queued runs of one no-op step, three `serve --workers 8`
#                               workers: runs finished per second, first claim to last end
#   takeover after kill -9      a worker that looks like another host (its own UTS namespace,
#                               so only its lease tells it is gone) killed -9 mid-step; the
#                               time from the kill to another worker's `run_resumed`
#                                                                      goal: lease + 1 s
#
# Uses target/release/runbook (built if missing), or $RUNBOOK_BIN. The takeover figure needs
# unshare(1) and root (a UTS namespace); without them it is skipped, saying so.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd -P)
bin=${RUNBOOK_BIN:-target/release/runbook}
[ -x "$bin" ] || cargo build --release --quiet
bin=$(cd "$(dirname "$bin")" && pwd -P)/$(basename "$bin")
RUNS=${RUNS:-100}
LEASE_S=${LEASE_S:-5}

work=$(mktemp -d)
# As root the cluster runs as the postgres user, which must reach its directory inside.
chmod 0755 "$work"
pids=()
cleanup() {
  # Only what this script started: its workers by pid, its cluster through pg_ctl.
  for pid in "${pids[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  "$root/scripts/pg-sandbox.sh" stop "$work/pg" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

url=$("$root/scripts/pg-sandbox.sh" start "$work/pg" 2>"$work/pg-start.log") || {
  cat "$work/pg-start.log" >&2
  exit 1
}
export RUNBOOK_STORE=$url
cd "$work"

now_ms() { date +%s%3N; }
psql_q() { # a query on the bench's database, as its role
  PGPASSWORD=$(cat "$work/pg/password") psql -X -qtA -h 127.0.0.1 -p "$(sed -n "s/^export PGPORT='\(.*\)'/\1/p" "$work/pg/env")" \
    -U runbook -d runbook -c "$1"
}

# --- durable per-step overhead ------------------------------------------------------------
chain() { # N: a chain of N no-op steps
  echo "version: 1"; echo "name: chain$1"; echo "steps:"
  for i in $(seq 1 "$1"); do
    echo "  - id: s$i"
    [ "$i" -gt 1 ] && echo "    needs: [s$((i - 1))]"
    echo "    assert: { that: 'true' }"
  done
}
chain 20 > chain20.yaml
chain 220 > chain220.yaml
best() { # FILE: the best of 3 wall times of a run, in ms
  local best=999999999 t0 t1
  for _ in 1 2 3; do
    t0=$(now_ms); "$bin" run "$1" --output json > /dev/null; t1=$(now_ms)
    [ $((t1 - t0)) -lt "$best" ] && best=$((t1 - t0))
  done
  echo "$best"
}
"$bin" run chain20.yaml --output json > /dev/null # the schema, created once
short=$(best chain20.yaml)
long=$(best chain220.yaml)
per_step=$(awk -v a="$short" -v b="$long" 'BEGIN {printf "%.2f", (b - a) / 200}')
echo "durable per-step overhead (PostgreSQL, chain): ${per_step} ms  (220 steps ${long} ms, 20 steps ${short} ms; best of 3)"

# --- runs claimed per second by three workers ----------------------------------------------
cat > one.yaml <<'YAML'
version: 1
name: one
steps:
  - id: done
    assert: { that: 'true' }
YAML
for i in $(seq 1 "$RUNS"); do "$bin" run --queue one.yaml --run-id "q$i" > /dev/null; done
for w in 1 2 3; do
  "$bin" serve --workers 8 --lease "${LEASE_S}s" --log-format json 2> "worker$w.log" &
  pids+=($!)
done
t0=$(now_ms)
until [ "$(psql_q "SELECT count(*) FROM runs WHERE runbook = 'one' AND status = 'succeeded'")" -ge "$RUNS" ]; do
  sleep 0.05
  [ $(( $(now_ms) - t0 )) -lt 300000 ] || { echo "the queue did not drain in 5 minutes" >&2; exit 1; }
done
first=$(psql_q "SELECT min(e.at) FROM events e JOIN runs r ON r.id = e.run_id WHERE r.runbook = 'one' AND e.kind = 'run_resumed'")
last=$(psql_q "SELECT max(ended_at) FROM runs WHERE runbook = 'one'")
rate=$(psql_q "SELECT round(($RUNS / extract(epoch from ('$last'::timestamptz - '$first'::timestamptz)))::numeric, 1)")
echo "runs claimed and run per second, three workers: ${rate}/s  ($RUNS one-step runs, first claim $first, last end $last)"
for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; done
pids=()

# --- takeover after kill -9 ----------------------------------------------------------------
if [ "$(id -u)" -ne 0 ] || ! command -v unshare > /dev/null; then
  echo "takeover after kill -9: skipped (needs root and unshare for a worker on another host name)"
  exit 0
fi
cat > long.yaml <<'YAML'
version: 1
name: long
steps:
  - id: wait
    exec: { script: 'sleep 3' }
YAML
# The victim: its own host name, so the others cannot see its process is gone.
unshare --uts sh -c "hostname elsewhere-\$\$ && exec '$bin' serve --workers 1 --lease ${LEASE_S}s --log-format json" 2> victim.log &
pids+=($!)
victim=$!
sleep 1
"$bin" run --queue long.yaml --run-id victim-run > /dev/null
until grep -q '"run started"' victim.log 2>/dev/null; do sleep 0.05; done
sleep 0.5
"$bin" serve --workers 2 --lease "${LEASE_S}s" --log-format json 2> rescuer.log &
pids+=($!)
sleep 0.5
killed=$(now_ms)
kill -KILL "$victim"
# Nothing renews it now: when the lease ends, by the database's clock.
expires=$(psql_q "SELECT expires_at_ms FROM owners WHERE run_id = 'victim-run'")
until [ "$(psql_q "SELECT count(*) FROM events WHERE run_id = 'victim-run' AND kind = 'run_resumed'")" -ge 2 ]; do
  sleep 0.02
  [ $(( $(now_ms) - killed )) -lt 60000 ] || { echo "no takeover within 60 s" >&2; exit 1; }
done
resumed=$(psql_q "SELECT (extract(epoch from max(at::timestamptz)) * 1000)::bigint FROM events WHERE run_id = 'victim-run' AND kind = 'run_resumed'")
took=$(awk -v a="$killed" -v b="$resumed" 'BEGIN {printf "%.2f", (b - a) / 1000}')
after=$(awk -v a="$expires" -v b="$resumed" 'BEGIN {printf "%.2f", (b - a) / 1000}')
echo "takeover after kill -9 (owner on another host name): ${took} s after the kill, ${after} s after its lease ended  (lease ${LEASE_S} s, renewed every third; goal: lease expiry + 1 s)"
